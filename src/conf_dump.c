/* lcgate -T: the effective configuration printed from the key tables
 * (conf_keys.h), secrets masked; see conf_dump in conf.h. */
#include "conf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_keys.h"

int conf_redis_url_masked(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://"), *at, *colon;
    int n;

    if (p == NULL)
        return snprintf(out, len, "%s", url) < 0 ? -1 : 0;
    p += 3;
    /* redis://[[user]:password@]host... takes the last '@'; unix:// the
     * one before the path, as store_redis.c reads them. */
    at = strncmp(url, "unix://", 7) == 0 ? strstr(p, "@/") : strrchr(p, '@');
    if (at == NULL)
        return snprintf(out, len, "%s", url) < 0 ? -1 : 0;
    colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL)
        colon = p - 1;          /* no ':': all of it is the password */
    if (colon + 1 == at)        /* no password: nothing to hide */
        n = snprintf(out, len, "%s", url);
    else
        n = snprintf(out, len, "%.*s****%s", (int)(colon + 1 - url), url, at);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* An http(s) URL with the password of its user:password@ (in the
 * authority, before the first '/', '?' or '#') replaced by "****". */
static int url_userinfo_masked(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://"), *at = NULL, *e, *colon;
    int n;

    if (p != NULL) {
        p += 3;
        for (e = p; *e && *e != '/' && *e != '?' && *e != '#'; e++)
            if (*e == '@')
                at = e;
    }
    if (at == NULL || (colon = memchr(p, ':', (size_t)(at - p))) == NULL || colon + 1 == at)
        n = snprintf(out, len, "%s", url);
    else
        n = snprintf(out, len, "%.*s****%s", (int)(colon + 1 - url), url, at);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int is_zero(const uint8_t *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* "key = value" of a key of the table, or "; key = (why not)" for a key
 * that is unset or a secret, with the environment variable that set it. */
static void dump_key(FILE *out, const struct conf *c, const struct conf_key *k)
{
    const void *p = (const char *)c + k->off;
    char var[96], masked[1024];
    const char *s = NULL;

    conf_key_env_name(k, var, sizeof(var));
    if (getenv(var))
        fprintf(out, "; from %s\n", var);
    switch (k->type) {
    case CT_PATH: case CT_NAME: case CT_ADDR: case CT_URL: case CT_LEVEL: case CT_PROXY:
        s = *(char *const *)p;
        if (s == NULL) {
            fprintf(out, "; %s = (unset)\n", k->name);
            return;
        }
        /* curl would send a user:password@ of base_url: masked too. */
        if (k->type == CT_URL && url_userinfo_masked(s, masked, sizeof(masked)) == 0 &&
            strcmp(masked, s) != 0) {
            fprintf(out, "; the password is masked: put it back to use this file\n");
            s = masked;
        }
        fprintf(out, "%s = %s\n", k->name, s);
        return;
    case CT_REDIS_URL:
        s = *(char *const *)p;
        if (conf_redis_url_masked(s, masked, sizeof(masked)) != 0)
            snprintf(masked, sizeof(masked), "(not shown)");
        if (strcmp(masked, s) != 0)
            fprintf(out, "; the password is masked: put it back to use this file\n");
        fprintf(out, "%s = %s\n", k->name, masked);
        return;
    case CT_SHA256:
        fprintf(out, "; %s = (%s)\n", k->name, is_zero(p, 32) ? "unset" : "set, not shown");
        return;
    case CT_LIST:
        if (((const struct strlist *)p)->n == 0) {
            fprintf(out, "; %s = (unset)\n", k->name);
            return;
        }
        break;
    case CT_RATE: case CT_COUNT:
        /* [upstream] rate and burst: the key's budget, only when set. */
        if (!c->has_key_rate && (k->off == offsetof(struct conf, key_rate) ||
                                 k->off == offsetof(struct conf, key_burst))) {
            fprintf(out, "; %s = (unset)\n", k->name);
            return;
        }
        break;
    default:
        break;
    }
    fprintf(out, "%s = ", k->name);
    conf_value_print(out, k->type, p);
    fputc('\n', out);
}

/* Where the global key came from, as read_keys() looked. */
static const char *key_source(const struct conf *c)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    char path[4096];

    if (c->api_key == NULL)
        return NULL;
    if (c->api_key_file)
        return "api_key_file";
    snprintf(path, sizeof(path), "%s/llama_cloud_api_key", dir ? dir : "");
    if (dir && access(path, R_OK) == 0)
        return "$CREDENTIALS_DIRECTORY/llama_cloud_api_key";
    return "LLAMA_CLOUD_API_KEY";
}

static void value_line(FILE *out, const struct conf_key *k, const void *obj)
{
    fprintf(out, "%s = ", k->name);
    conf_value_print(out, k->type, (const char *)obj + k->off);
    fputc('\n', out);
}

/* The keys a [project] section set, in the table's order. */
static void dump_project(FILE *out, const struct conf_project *p)
{
    size_t i;

    fprintf(out, "\n[project \"%s\"]\n", p->section);
    for (i = 0; i < conf_nproject_keys; i++) {
        const struct conf_key *k = &conf_project_keys[i];
        const char *field = (const char *)p + k->off;
        if (k->has_off ? !*(const int *)((const char *)p + k->has_off)
                       : *(char *const *)field == NULL)
            continue;
        value_line(out, k, p);
        if (k->type == CT_PATH)
            fputs("; key: set (from api_key_file)\n", out);
    }
}

static void dump_client(FILE *out, const struct conf_client *cl)
{
    size_t j;

    fprintf(out, "\n[client \"%s\"]\n; token_sha256 = (set, not shown)\nprojects = ", cl->name);
    if (cl->all_projects)
        fputs("*", out);
    for (j = 0; j < cl->nprojects; j++)
        fprintf(out, "%s%s", j ? ", " : "", cl->projects[j]);
    fputc('\n', out);
    if (cl->has_rate) {
        value_line(out, conf_key_lookup(conf_client_keys, conf_nclient_keys, "rate"), cl);
        fprintf(out, "burst = %u\n", cl->burst);
    }
}

int conf_dump(const struct conf *c, FILE *out)
{
    const char *section = NULL;
    size_t i;

    fprintf(out, "; The effective configuration of %s: the file, then the LCGATE_*\n"
            "; environment overrides, then the defaults. Secrets are not shown:\n"
            "; keys, the Redis password (masked) and token hashes (set or unset).\n",
            c->path);
    for (i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        if (section == NULL || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n[%s]\n", section);
        }
        dump_key(out, c, k);
        if (k->off == offsetof(struct conf, api_key_file))
            fprintf(out, c->api_key ? "; key: set (from %s)\n"
                                    : "; key: unset (pass-through mode)\n", key_source(c));
    }
    for (i = 0; i < c->nprojects; i++)
        dump_project(out, &c->projects[i]);
    for (i = 0; i < c->nclients; i++)
        dump_client(out, &c->clients[i]);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}
