/* conf_value: the types of lcgate.conf's values. Each type parses a string
 * into its field, prints the field back in a form that parses to the same
 * value, compares two fields and frees what a field holds. Pure: no I/O
 * but the FILE a value is printed to. conf_keys.h says which key has which
 * type and field. */
#ifndef LCGATE_CONF_VALUE_H
#define LCGATE_CONF_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum store_kind { STORE_KIND_MEMORY, STORE_KIND_REDIS };

/* A rate "N/s", "N/min" or "N/h": count requests per window seconds. */
struct rate {
    double count;
    unsigned window_s;
};

/* A comma-separated list of names. */
struct strlist {
    char **v;
    size_t n;
};

/* The field each type fills, as its comment says. */
enum conf_type {
    CT_PATH,        /* char *: any non-empty string (a file) */
    CT_NAME,        /* char *: any non-empty string (a host name or address) */
    CT_ADDR,        /* char *: host:port, [v6]:port or unix:/path */
    CT_URL,         /* char *: http:// or https://, trailing '/' dropped */
    CT_PROXY,       /* char *: http://host:port, trailing '/' dropped */
    CT_REDIS_URL,   /* char *: redis://... or unix:///... */
    CT_LEVEL,       /* char *: a log level (log.h) */
    CT_ACCESS_LOG,  /* char *: NULL (off), "stderr", "stdout" or /path */
    CT_STORE,       /* enum store_kind */
    CT_LIST,        /* struct strlist */
    CT_SHA256,      /* uint8_t[32] */
    CT_DURATION,    /* uint64_t milliseconds */
    CT_SIZE,        /* size_t bytes */
    CT_RATE,        /* struct rate */
    CT_COUNT,       /* unsigned, 1 to 1000000000 */
    CT_BOOL,        /* int, 0 or 1 */
};

/* Parse v into the field at p: 0, or -1 on a malformed value (p is then
 * unchanged). A string or list replaces (and frees) what p held. */
int conf_value_parse(enum conf_type t, void *p, const char *v);
/* Free what the field at p holds (strings and lists) and zero it. */
void conf_value_free(enum conf_type t, void *p);
/* The value as the file would spell it ("1MiB", "30s", "20/s", "on"). A
 * NULL string prints nothing (an access_log prints "off"); CT_SHA256
 * prints nothing (a secret's hash). */
void conf_value_print(FILE *out, enum conf_type t, const void *p);
/* 1 when the fields at a and b hold the same value. */
int conf_value_equal(enum conf_type t, const void *a, const void *b);
/* A CT_DURATION, CT_SIZE or CT_COUNT field as a number (0 for the others). */
uint64_t conf_value_number(enum conf_type t, const void *p);
/* A number of a numeric type as the file would spell it, into buf. */
void conf_value_format(enum conf_type t, uint64_t n, char *buf, size_t len);

/* One word for the type, as lcgate.conf(5) names it ("duration"). */
const char *conf_type_name(enum conf_type t);
/* What a value of the type looks like, for "expected ..." errors. */
const char *conf_type_hint(enum conf_type t);

/* Parsers shared with tests. Each returns 0, or -1 on a malformed value. */
int conf_parse_duration_ms(const char *s, uint64_t *out);
int conf_parse_size(const char *s, size_t *out);
int conf_parse_rate(const char *s, struct rate *out);
int conf_parse_bool(const char *s, int *out);
/* "a, b ,c" into out (replacing what it held): names without surrounding
 * white space; an empty one is an error. */
int conf_parse_list(const char *s, struct strlist *out);
/* 64 hex digits in any case into 32 bytes. */
int conf_parse_sha256(const char *s, uint8_t out[32]);

#endif
