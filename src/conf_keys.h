/* conf_keys: every key of lcgate.conf, once, as one row: its section, name,
 * type, default, bounds, whether a reload applies it, the field it fills
 * and a line of documentation. The loader (conf.c) parses, defaults and
 * validates from these rows, lcgate -T prints them, the reload warns from
 * their CONF_RESTART flag, and tests/integration/conf_docs.py checks the
 * documents against them (lcgate -K prints them). The sections that repeat
 * ([project "id"], [client "name"]) have tables of their own. */
#ifndef LCGATE_CONF_KEYS_H
#define LCGATE_CONF_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf_value.h"

#define CONF_RESTART 1u  /* a reload keeps the running value: restart to change */

struct conf_key {
    const char *section;     /* "server", "upstream", "cache", "ratelimit";
                                "project" and "client" in their tables */
    const char *name;
    enum conf_type type;
    unsigned flags;          /* CONF_RESTART */
    const char *def;         /* the default, as the documents spell it;
                                NULL: unset */
    uint64_t min, max;       /* CT_DURATION (ms), CT_SIZE (bytes), CT_COUNT:
                                the value must be within; max 0: no upper
                                bound. Checked once the environment
                                overrides are applied. */
    const char *bound_msg;   /* out of bounds; NULL: "NAME must be ..." */
    size_t off;              /* the field, in struct conf (conf_project,
                                conf_client) */
    size_t has_off;          /* repeating sections: the int set to 1 with
                                the key; 0: none */
    int (*parse)(void *obj, const char *v);  /* instead of the type's
                                parser, given the whole struct; 0 or -1 */
    const char *bad_msg;     /* a malformed value; NULL: "NAME: expected
                                HINT, got 'VALUE'" */
    const char *doc;         /* one line */
};

extern const struct conf_key conf_keys[];          /* the four sections */
extern const struct conf_key conf_project_keys[];  /* [project "id"] */
extern const struct conf_key conf_client_keys[];   /* [client "name"] */
extern const size_t conf_nkeys, conf_nproject_keys, conf_nclient_keys;

/* The index in conf_keys of section's key name, or -1. */
int conf_key_index(const char *section, const char *name);
/* The row of name among rows[0..n), or NULL. */
const struct conf_key *conf_key_lookup(const struct conf_key *rows, size_t n,
                                       const char *name);
/* 1 when the field of k in obj is within k's bounds (always, without). */
int conf_key_in_bounds(const struct conf_key *k, const void *obj);
/* Why obj's value of k is out of bounds, into buf. */
void conf_key_bound_msg(const struct conf_key *k, char *buf, size_t len);
/* "a, b or c": the names of rows[0..n), into buf. */
void conf_key_names(const struct conf_key *rows, size_t n, char *buf, size_t len);

/* LCGATE_<SECTION>_<NAME>: the environment variable that overrides k. */
void conf_key_env_name(const struct conf_key *k, char *out, size_t len);

/* lcgate -K: every row of the three tables, one a line, tab-separated:
 * section, name, type (conf_type_name), default ("-": unset), "reload" or
 * "restart", min and max ("-": none; as the file spells them), doc. */
void conf_keys_print(FILE *out);
/* Asserts that the rows are well formed: no key twice, bounds only on
 * numbers, every default parses and is within its bounds. */
void conf_keys_check(void);

#endif
