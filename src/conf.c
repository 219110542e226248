#include "conf.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "request_read.h"
#include "util.h"

enum vtype { V_STR, V_ADDR, V_URL, V_DURATION, V_SIZE, V_RATE, V_COUNT,
             V_BOOL, V_STORE, V_LEVEL, V_REDIS_URL, V_LIST, V_SHA256, V_PROXY, V_ALOG };

struct keydef {
    const char *section;
    const char *key;
    enum vtype type;
    size_t off;
};

#define K(sec, name, type, field) {sec, name, type, offsetof(struct conf, field)}
static const struct keydef keys[] = {
    K("server", "listen", V_ADDR, listen),
    K("server", "admin_listen", V_ADDR, admin_listen),
    K("server", "drain_timeout", V_DURATION, drain_timeout_ms),
    K("server", "max_body", V_SIZE, max_body),
    K("server", "max_request_line", V_SIZE, max_request_line),
    K("server", "max_header_size", V_SIZE, max_header_size),
    K("server", "max_connections", V_COUNT, max_connections),
    K("server", "workers", V_COUNT, workers),
    K("server", "header_timeout", V_DURATION, header_timeout_ms),
    K("server", "idle_timeout", V_DURATION, idle_timeout_ms),
    K("server", "log_level", V_LEVEL, log_level),
    K("server", "access_log", V_ALOG, access_log),
    K("server", "allowed_hosts", V_LIST, allowed_hosts),
    K("server", "allowed_origins", V_LIST, allowed_origins),
    K("server", "admin_token_sha256", V_SHA256, admin_token_sha256),
    K("server", "max_inflight_requests", V_COUNT, max_inflight_requests),
    K("server", "max_inflight_bytes", V_SIZE, max_inflight_bytes),
    K("upstream", "base_url", V_URL, base_url),
    K("upstream", "api_key_file", V_STR, api_key_file),
    K("upstream", "timeout", V_DURATION, timeout_ms),
    K("upstream", "connect_timeout", V_DURATION, connect_timeout_ms),
    K("upstream", "rate", V_RATE, key_rate),
    K("upstream", "burst", V_COUNT, key_burst),
    K("upstream", "proxy", V_PROXY, proxy),
    K("cache", "store", V_STORE, store),
    K("cache", "redis_url", V_REDIS_URL, redis_url),
    K("cache", "redis_timeout", V_DURATION, redis_timeout_ms),
    K("cache", "ttl", V_DURATION, ttl_ms),
    K("cache", "stale_while_revalidate", V_DURATION, stale_while_revalidate_ms),
    K("cache", "stale_if_error", V_DURATION, stale_if_error_ms),
    K("cache", "memory_max", V_SIZE, memory_max),
    K("cache", "prefetch", V_BOOL, prefetch),
    K("cache", "lock_lease", V_DURATION, lock_lease_ms),
    K("cache", "l1_ttl", V_DURATION, l1_ttl_ms),
    K("cache", "ignore_client_no_cache", V_BOOL, ignore_client_no_cache),
    K("ratelimit", "rate", V_RATE, rate),
    K("ratelimit", "burst", V_COUNT, burst),
    K("ratelimit", "upstream_rate", V_RATE, upstream_rate),
    K("ratelimit", "upstream_burst", V_COUNT, upstream_burst),
};
#undef K
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

#define P(name, type, field, has) \
    {name, type, offsetof(struct conf_project, field), offsetof(struct conf_project, has)}
static const struct pkeydef {
    const char *key;
    enum vtype type;
    size_t off, has_off;
} pkeys[] = {
    P("rate", V_RATE, rate, has_rate),
    P("burst", V_COUNT, burst, has_burst),
    P("upstream_rate", V_RATE, upstream_rate, has_upstream_rate),
    P("upstream_burst", V_COUNT, upstream_burst, has_upstream_burst),
    P("ttl", V_DURATION, ttl_ms, has_ttl),
    P("api_key_file", V_STR, api_key_file, has_ttl), /* has_ unused for strings */
};
#undef P
#define NPKEYS (sizeof(pkeys) / sizeof(pkeys[0]))

int conf_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    char *end;
    double v;
    size_t i;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            double ms = v * (double)units[i].ms;
            if (ms > 1e15)
                return -1;
            *out = (uint64_t)(ms + 0.5);
            return 0;
        }
    }
    return -1;
}

int conf_parse_size(const char *s, size_t *out)
{
    static const struct { const char *unit; uint64_t mul; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024},
        {"GiB", 1024ULL * 1024 * 1024},
    };
    char *end;
    unsigned long long v;
    size_t i;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > SIZE_MAX / units[i].mul)
                return -1;
            *out = (size_t)(v * units[i].mul);
            return 0;
        }
    }
    return -1;
}

int conf_parse_rate(const char *s, struct rate *out)
{
    static const struct { const char *unit; unsigned secs; } units[] = {
        {"/s", 1}, {"/min", 60}, {"/h", 3600},
    };
    char *end;
    double v;
    size_t i;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || v > 1e9)
        return -1;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            out->count = v;
            out->window_s = units[i].secs;
            return 0;
        }
    }
    return -1;
}

int conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"on", "yes", "true", "1"};
    static const char *const no[] = {"off", "no", "false", "0"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int parse_count(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < 1 || v > 1000000000UL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* host:port, [v6]:port or unix:/path */
static int valid_addr(const char *s)
{
    const char *colon;
    char *end;
    long port;

    if (strncmp(s, "unix:/", 6) == 0)
        return s[6] != '\0';
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return 0;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || colon == s || memchr(s, ':', (size_t)(colon - s)))
            return 0;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    return !errno && *end == '\0' && end != colon + 1 && port >= 0 && port <= 65535;
}

struct loader {
    struct conf *c;
    const char *path;
    int line;               /* of the line inih is handling */
    FILE *f;
    char *err;
    size_t errlen;
    int failed;
    int key_lines[NKEYS];   /* where each key was set, for later checks */
    int client_line;        /* the first [client] key's line */
    int key_file_line;
};

static int fail(struct loader *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct loader *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (l->failed++)
        return 0; /* the first error is the one reported */
    n = snprintf(l->err, l->errlen, "%s:%d: ", l->path, l->line);
    if (n < 0 || (size_t)n >= l->errlen)
        return 0;
    va_start(ap, fmt);
    vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static const char *type_hint(enum vtype t)
{
    switch (t) {
    case V_ADDR: return "host:port, [v6]:port or unix:/path";
    case V_URL: return "an http:// or https:// URL";
    case V_DURATION: return "a duration such as 250ms, 30s, 10m or 1h";
    case V_SIZE: return "a size such as 4096, 512KiB, 64MiB or 1GiB";
    case V_RATE: return "a rate such as 20/s, 600/min or 1000/h";
    case V_COUNT: return "a whole number from 1 to 1000000000";
    case V_BOOL: return "on or off";
    case V_STORE: return "memory or redis";
    case V_LEVEL: return "error, warn, info or debug";
    case V_REDIS_URL: return "redis://[:password@]host[:port][/db] or unix:///path";
    case V_LIST: return "names separated by commas";
    case V_SHA256: return "64 hex digits (sha256sum of the token)";
    case V_PROXY: return "an http://host:port URL";
    case V_ALOG: return "on, off, stderr, stdout or an absolute file path";
    case V_STR: break;
    }
    return "a value";
}

static int parse_sha256(const char *v, uint8_t out[32])
{
    size_t i;

    if (strlen(v) != 64)
        return -1;
    for (i = 0; i < 32; i++) {
        int hi = util_hexval(v[2 * i]), lo = util_hexval(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void strlist_free(struct strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* "a, b ,c": the names without surrounding whitespace; empty ones are an
 * error. The list replaces what the field held. */
static int parse_list(const char *v, struct strlist *out)
{
    struct strlist l = {NULL, 0};
    const char *p = v;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char **grown;
        while (n && isspace((unsigned char)*p))
            p++, n--;
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n == 0 || (grown = realloc(l.v, (l.n + 1) * sizeof(*grown))) == NULL) {
            strlist_free(&l);
            return -1;
        }
        l.v = grown;
        if ((l.v[l.n] = strndup(p, n)) == NULL) {
            strlist_free(&l);
            return -1;
        }
        l.n++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    strlist_free(out);
    *out = l;
    return 0;
}

/* http://host:port with an optional '/': a name, an IPv4 or [v6] address
 * and a port that curl will not default (it would take 1080). No user
 * info: a password here would be one more secret in the file. */
static int valid_proxy(const char *s)
{
    const char *h = s + 7, *e;
    char *end;
    long port;

    if (strncmp(s, "http://", 7) != 0)
        return 0;
    if (*h == '[') {
        for (e = h + 1; isxdigit((unsigned char)*e) || *e == ':' || *e == '.'; e++)
            ;
        if (*e != ']' || e == h + 1)
            return 0;
        e++;
    } else {
        for (e = h; isalnum((unsigned char)*e) || *e == '.' || *e == '-' || *e == '_'; e++)
            ;
        if (e == h)
            return 0;
    }
    if (*e != ':' || !isdigit((unsigned char)e[1]))
        return 0;
    errno = 0;
    port = strtol(e + 1, &end, 10);
    return !errno && port >= 1 && port <= 65535 && (*end == '\0' || strcmp(end, "/") == 0);
}

/* access_log: NULL (off), "stderr" (on), "stdout" or an absolute path.
 * A relative path would depend on the directory lcgate was started in. */
static int parse_access_log(const char *v, char **out)
{
    int on;
    char *dup = NULL;

    if (conf_parse_bool(v, &on) == 0)
        v = on ? "stderr" : NULL;
    else if (strcmp(v, "stderr") != 0 && strcmp(v, "stdout") != 0 && v[0] != '/')
        return -1;
    if (v != NULL && (dup = strdup(v)) == NULL)
        return -1;
    free(*out);
    *out = dup;
    return 0;
}

/* Parse value of type t into the field at p; 0 or -1. */
static int set_value(enum vtype t, void *p, const char *v)
{
    enum log_level lvl;

    switch (t) {
    case V_ADDR:
        if (!valid_addr(v))
            return -1;
        break;
    case V_URL:
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
            return -1;
        break;
    case V_REDIS_URL:
        if (strncmp(v, "redis://", 8) != 0 && strncmp(v, "unix:///", 8) != 0)
            return -1;
        break;
    case V_PROXY:
        if (!valid_proxy(v))
            return -1;
        break;
    case V_LEVEL:
        if (log_level_parse(v, &lvl) != 0)
            return -1;
        break;
    case V_STR:
        if (*v == '\0')
            return -1;
        break;
    case V_LIST:
        return parse_list(v, p);
    case V_SHA256:
        return parse_sha256(v, p);
    case V_DURATION:
        return conf_parse_duration_ms(v, p);
    case V_SIZE:
        return conf_parse_size(v, p);
    case V_RATE:
        return conf_parse_rate(v, p);
    case V_COUNT:
        return parse_count(v, p);
    case V_BOOL:
        return conf_parse_bool(v, p);
    case V_ALOG:
        return parse_access_log(v, p);
    case V_STORE:
        if (strcmp(v, "memory") == 0)
            *(enum store_kind *)p = STORE_KIND_MEMORY;
        else if (strcmp(v, "redis") == 0)
            *(enum store_kind *)p = STORE_KIND_REDIS;
        else
            return -1;
        return 0;
    }
    {
        char **sp = p, *dup = strdup(v);
        if (dup == NULL)
            return -1;
        free(*sp);
        *sp = dup;
    }
    if (t == V_URL || t == V_PROXY) {
        char *s = *(char **)p;
        size_t n = strlen(s);
        while (n > 8 && s[n - 1] == '/')
            s[--n] = '\0';
    }
    return 0;
}

/* `project "id"` or `client "name"`: the quoted name, or NULL. */
static const char *quoted(const char *section, const char *kind, char *buf, size_t len)
{
    size_t k = strlen(kind), n;

    if (strncmp(section, kind, k) != 0 || section[k] != ' ')
        return NULL;
    section += k + 1;
    while (*section == ' ')
        section++;
    n = strlen(section);
    if (n < 3 || section[0] != '"' || section[n - 1] != '"' || n - 2 >= len)
        return NULL;
    memcpy(buf, section + 1, n - 2);
    buf[n - 2] = '\0';
    return strchr(buf, '"') ? NULL : buf;
}

/* The element of a named-section array whose name (a char * at name_off)
 * is name, appended zeroed with that name when there is none. */
static void *named_get(void **arr, size_t *n, size_t size, size_t name_off, const char *name)
{
    char *base = *arr, *e;
    size_t i;

    for (i = 0; i < *n; i++)
        if (strcmp(*(char **)(base + i * size + name_off), name) == 0)
            return base + i * size;
    if ((base = realloc(base, (*n + 1) * size)) == NULL)
        return NULL;
    *arr = base;
    e = base + *n * size;
    memset(e, 0, size);
    if ((*(char **)(e + name_off) = strdup(name)) == NULL)
        return NULL;
    (*n)++;
    return e;
}

/* [project "ID"]: sections are found by the canonical id, so that two
 * spellings of one UUID cannot name two sections (one would silently win). */
static struct conf_project *project_get(struct loader *l, const char *spelled)
{
    char *id = rr_project_canon(spelled, strlen(spelled));
    struct conf_project *p = NULL;
    size_t i;

    if (id == NULL) {
        fail(l, "out of memory");
        return NULL;
    }
    for (i = 0; i < l->c->nprojects; i++) {
        if (strcmp(l->c->projects[i].id, id) != 0)
            continue;
        p = &l->c->projects[i];
        if (strcmp(p->section, spelled) != 0) {
            fail(l, "[project \"%s\"] names the same project as [project \"%s\"] "
                 "(project ids are UUIDs in any case)", spelled, p->section);
            p = NULL;
        }
        free(id);
        return p;
    }
    p = named_get((void **)&l->c->projects, &l->c->nprojects, sizeof(struct conf_project),
                  offsetof(struct conf_project, id), id);
    free(id);
    if (p == NULL || (p->section = strdup(spelled)) == NULL) {
        fail(l, "out of memory");
        return NULL;
    }
    return p;
}

static struct conf_client *client_get(struct loader *l, const char *name)
{
    return named_get((void **)&l->c->clients, &l->c->nclients, sizeof(struct conf_client),
                     offsetof(struct conf_client, name), name);
}

static int client_key(struct loader *l, struct conf_client *cl, const char *key,
                      const char *value)
{
    if (strcmp(key, "token_sha256") == 0) {
        if (parse_sha256(value, cl->token_sha256) != 0)
            return fail(l, "token_sha256 must be 64 hex digits (sha256sum of the token)");
        return 1;
    }
    if (strcmp(key, "projects") == 0) {
        struct strlist list = {NULL, 0};
        size_t i;
        if (strcmp(value, "*") == 0) {
            cl->all_projects = 1;
            return 1;
        }
        if (parse_list(value, &list) != 0)
            return fail(l, "projects must list project ids separated by commas, or *");
        for (i = 0; i < cl->nprojects; i++)
            free(cl->projects[i]);
        free(cl->projects);
        cl->projects = list.v;
        cl->nprojects = list.n;
        /* Compared with a request's canonical project ids. */
        for (i = 0; i < list.n; i++) {
            char *c = rr_project_canon(list.v[i], strlen(list.v[i]));
            if (c == NULL)
                return fail(l, "out of memory");
            free(list.v[i]);
            list.v[i] = c;
        }
        return 1;
    }
    if (strcmp(key, "rate") == 0) {
        if (conf_parse_rate(value, &cl->rate) != 0)
            return fail(l, "rate: expected %s, got '%s'", type_hint(V_RATE), value);
        cl->has_rate = 1;
        return 1;
    }
    if (strcmp(key, "burst") == 0) {
        if (parse_count(value, &cl->burst) != 0)
            return fail(l, "burst: expected %s, got '%s'", type_hint(V_COUNT), value);
        return 1;
    }
    return fail(l, "unknown key '%s' in [client] (expected token_sha256, projects, rate or "
                "burst)", key);
}

static int project_key(struct loader *l, struct conf_project *p, const char *key,
                       const char *value)
{
    size_t i;

    for (i = 0; i < NPKEYS; i++) {
        if (strcmp(pkeys[i].key, key) != 0)
            continue;
        if (set_value(pkeys[i].type, (char *)p + pkeys[i].off, value) != 0)
            return fail(l, "%s: expected %s, got '%s'", key, type_hint(pkeys[i].type), value);
        if (pkeys[i].type != V_STR)
            *(int *)((char *)p + pkeys[i].has_off) = 1;
        return 1;
    }
    return fail(l, "unknown key '%s' in [project] (expected rate, burst, upstream_rate, "
                "upstream_burst, ttl or api_key_file)", key);
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct loader *l = user;
    char name[256];
    size_t i;
    int known_section = 0;

    if (key == NULL)
        return 1; /* a section header on its own */
    if (quoted(section, "project", name, sizeof(name))) {
        struct conf_project *p = project_get(l, name);
        return p ? project_key(l, p, key, value) : 0;
    }
    if (quoted(section, "client", name, sizeof(name))) {
        struct conf_client *cl = client_get(l, name);
        if (l->client_line == 0)
            l->client_line = l->line;
        return cl ? client_key(l, cl, key, value) : fail(l, "out of memory");
    }
    for (i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(keys[i].key, key) != 0)
            continue;
        if (l->key_lines[i])
            return fail(l, "%s is set twice (first on line %d)", key, l->key_lines[i]);
        l->key_lines[i] = l->line;
        if (set_value(keys[i].type, (char *)l->c + keys[i].off, value) != 0)
            return fail(l, "%s: expected %s, got '%s'", key, type_hint(keys[i].type), value);
        return 1;
    }
    if (!known_section)
        return fail(l, "unknown section [%s] (expected server, upstream, cache, ratelimit, "
                    "project \"id\" or client \"name\")", section);
    return fail(l, "unknown key '%s' in [%s]", key, section);
}

static char *reader(char *str, int num, void *stream)
{
    struct loader *l = stream;
    char *r = fgets(str, num, l->f);

    if (r != NULL)
        l->line++;
    return r;
}

/* The key in path: the file without surrounding whitespace. */
static char *read_key(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    size_t n, start = 0;
    struct stat st;

    if (f == NULL) {
        snprintf(why, whylen, "cannot read api_key_file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH))
        log_warn("api_key_file %s is readable by every user: chmod o-r it", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (!feof(f)) {
        fclose(f);
        snprintf(why, whylen, "api_key_file %s is larger than 4 KiB; is it the right file?", path);
        return NULL;
    }
    fclose(f);
    while (n && isspace((unsigned char)buf[n - 1]))
        n--;
    while (start < n && isspace((unsigned char)buf[start]))
        start++;
    if (start == n) {
        snprintf(why, whylen, "api_key_file %s is empty", path);
        return NULL;
    }
    buf[n] = '\0';
    return strdup(buf + start);
}

/* $CREDENTIALS_DIRECTORY/llama_cloud_api_key when systemd passed one. */
static char *credential_key(const char *dir)
{
    char path[4096], why[512];

    snprintf(path, sizeof(path), "%s/llama_cloud_api_key", dir);
    if (access(path, R_OK) != 0)
        return NULL;
    return read_key(path, why, sizeof(why));
}

static void env_name(const struct keydef *k, char *out, size_t len)
{
    size_t i;

    snprintf(out, len, "LCGATE_%s_%s", k->section, k->key);
    for (i = 0; out[i]; i++)
        out[i] = (char)toupper((unsigned char)out[i]);
}

static int apply_env(struct loader *l)
{
    char var[96];
    size_t i;

    for (i = 0; i < NKEYS; i++) {
        const char *v;
        env_name(&keys[i], var, sizeof(var));
        v = getenv(var);
        if (v == NULL)
            continue;
        if (set_value(keys[i].type, (char *)l->c + keys[i].off, v) != 0) {
            snprintf(l->err, l->errlen, "%s: expected %s, got '%s'", var,
                     type_hint(keys[i].type), v);
            return -1;
        }
        l->key_lines[i] = -1;
    }
    return 0;
}

static int set_defaults(struct conf *c)
{
    static const struct { const char *key, *value; } defs[] = {
        {"listen", "127.0.0.1:8080"}, {"admin_listen", "127.0.0.1:8081"},
        {"drain_timeout", "10s"}, {"max_body", "1MiB"},
        {"max_request_line", "8KiB"}, {"max_header_size", "32KiB"},
        {"max_connections", "4096"}, {"workers", "1"}, {"header_timeout", "10s"}, {"idle_timeout", "60s"}, {"log_level", "info"},
        {"access_log", "on"}, {"max_inflight_requests", "4096"},
        {"max_inflight_bytes", "256MiB"},
        {"base_url", "https://api.cloud.llamaindex.ai"},
        {"timeout", "30s"}, {"connect_timeout", "5s"},
        {"store", "memory"}, {"redis_url", "redis://127.0.0.1:6379/0"},
        {"redis_timeout", "250ms"}, {"ttl", "30s"},
        {"stale_while_revalidate", "30s"}, {"stale_if_error", "10m"},
        {"memory_max", "64MiB"}, {"prefetch", "on"},
        {"lock_lease", "2s"}, {"l1_ttl", "1s"}, {"ignore_client_no_cache", "off"},
        {"rate", "20/s"}, {"burst", "40"},
        {"upstream_rate", "5/s"}, {"upstream_burst", "10"},
    };
    size_t i, j;

    for (i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
        for (j = 0; j < NKEYS; j++)
            if (strcmp(keys[j].key, defs[i].key) == 0 &&
                set_value(keys[j].type, (char *)c + keys[j].off, defs[i].value) != 0)
                return -1;
    return 0;
}

static int key_index(const char *section, const char *key)
{
    size_t i;

    for (i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
            return (int)i;
    return 0;
}

/* A burst not given: one window's worth of requests, at least 1. */
static unsigned default_burst(const struct rate *r)
{
    double n = r->count;

    return n < 1 ? 1 : n > 1e9 ? 1000000000u : (unsigned)(n + 0.999999);
}

/* Checks across keys, and reading the key files. */
static int finish(struct loader *l)
{
    struct conf *c = l->c;
    char why[512];
    size_t i;

    if (c->ttl_ms == 0) {
        l->line = l->key_lines[key_index("cache", "ttl")];
        return fail(l, "ttl must be more than 0"), -1;
    }
    if (c->memory_max < 64 * 1024) {
        l->line = l->key_lines[key_index("cache", "memory_max")];
        return fail(l, "memory_max must be at least 64KiB"), -1;
    }
    if (c->timeout_ms == 0 || c->connect_timeout_ms == 0) {
        l->line = l->key_lines[key_index("upstream", c->timeout_ms ? "connect_timeout" : "timeout")];
        return fail(l, "upstream timeouts must be more than 0"), -1;
    }
    if (c->lock_lease_ms < 100) {
        l->line = l->key_lines[key_index("cache", "lock_lease")];
        return fail(l, "lock_lease must be at least 100ms"), -1;
    }
    if (c->max_request_line < 256 || c->max_header_size < c->max_request_line) {
        l->line = l->key_lines[key_index("server", c->max_request_line < 256 ? "max_request_line"
                                                                         : "max_header_size")];
        return fail(l, "max_request_line must be at least 256 and max_header_size at "
                    "least max_request_line"), -1;
    }
    if (c->max_connections == 0 || c->header_timeout_ms == 0 || c->idle_timeout_ms == 0) {
        l->line = l->key_lines[key_index("server", c->max_connections == 0 ? "max_connections"
                                         : c->header_timeout_ms == 0 ? "header_timeout"
                                         : "idle_timeout")];
        return fail(l, "max_connections, header_timeout and idle_timeout must be more "
                    "than 0"), -1;
    }
    if (c->workers == 0 || c->workers > 64) {
        l->line = l->key_lines[key_index("server", "workers")];
        return fail(l, "workers must be from 1 to 64"), -1;
    }
    if (c->l1_ttl_ms > 60000) {
        l->line = l->key_lines[key_index("cache", "l1_ttl")];
        return fail(l, "l1_ttl must be at most 1m (it bounds how long another "
                    "instance's write may go unseen if its event is lost)"), -1;
    }
    if (c->redis_timeout_ms == 0) {
        l->line = l->key_lines[key_index("cache", "redis_timeout")];
        return fail(l, "redis_timeout must be more than 0"), -1;
    }
    c->has_admin_token = l->key_lines[key_index("server", "admin_token_sha256")] != 0;
    c->has_key_rate = l->key_lines[key_index("upstream", "rate")] != 0;
    if (c->has_key_rate && l->key_lines[key_index("upstream", "burst")] == 0)
        c->key_burst = default_burst(&c->key_rate);
    if (l->key_lines[key_index("upstream", "burst")] != 0 && !c->has_key_rate) {
        l->line = l->key_lines[key_index("upstream", "burst")];
        return fail(l, "[upstream] burst needs [upstream] rate"), -1;
    }
    if (c->max_inflight_bytes < c->max_body) {
        l->line = l->key_lines[key_index("server", "max_inflight_bytes")];
        return fail(l, "max_inflight_bytes must be at least max_body"), -1;
    }
    for (i = 0; i < c->nclients; i++) {
        struct conf_client *cl = &c->clients[i];
        if (cl->burst && !cl->has_rate) {
            l->line = l->client_line;
            return fail(l, "[client \"%s\"] burst needs a rate", cl->name), -1;
        }
        if (cl->has_rate && cl->burst == 0)
            cl->burst = default_burst(&cl->rate);
    }
    for (i = 0; i < c->nclients; i++) {
        static const uint8_t zero[32];
        if (memcmp(c->clients[i].token_sha256, zero, 32) == 0 || c->clients[i].nprojects +
            (size_t)c->clients[i].all_projects == 0) {
            l->line = l->client_line;
            return fail(l, "[client \"%s\"] needs token_sha256 and projects",
                        c->clients[i].name), -1;
        }
    }
    if (c->api_key_file) {
        if ((c->api_key = read_key(c->api_key_file, why, sizeof(why))) == NULL) {
            l->line = l->key_lines[key_index("upstream", "api_key_file")];
            return fail(l, "%s", why), -1;
        }
    } else if (getenv("CREDENTIALS_DIRECTORY") &&
               (c->api_key = credential_key(getenv("CREDENTIALS_DIRECTORY"))) != NULL) {
        /* systemd's LoadCredential=llama_cloud_api_key */
    } else {
        const char *env = getenv("LLAMA_CLOUD_API_KEY");
        size_t n;
        while (env && isspace((unsigned char)*env))
            env++;
        n = env ? strlen(env) : 0;
        while (n && isspace((unsigned char)env[n - 1]))
            n--;
        if (n && (c->api_key = strndup(env, n)) == NULL)
            return -1;
    }
    if (c->nclients > 0 && c->api_key == NULL) {
        l->line = l->client_line;
        return fail(l, "[client] sections need an upstream key (api_key_file or "
                    "LLAMA_CLOUD_API_KEY): a client's token is never forwarded"), -1;
    }
    for (i = 0; i < c->nprojects; i++) {
        struct conf_project *p = &c->projects[i];
        if (p->api_key_file && (p->api_key = read_key(p->api_key_file, why, sizeof(why))) == NULL) {
            snprintf(l->err, l->errlen, "%s: [project \"%s\"] %s", l->path, p->id, why);
            return -1;
        }
    }
    if (l->line < 0)
        l->line = 0;
    return 0;
}

struct conf *conf_load(const char *path, char *err, size_t errlen)
{
    struct loader l;
    int rc;

    memset(&l, 0, sizeof(l));
    l.path = path;
    l.err = err;
    l.errlen = errlen;
    if ((l.c = calloc(1, sizeof(*l.c))) == NULL || (l.c->path = strdup(path)) == NULL ||
        set_defaults(l.c) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        conf_free(l.c);
        return NULL;
    }
    if ((l.f = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
        conf_free(l.c);
        return NULL;
    }
    rc = ini_parse_stream(reader, &l, handler, &l);
    fclose(l.f);
    if (rc != 0 || l.failed) {
        if (!l.failed) {
            l.line = rc > 0 ? rc : 0;
            fail(&l, "syntax error (expected [section] or key = value)");
        }
        conf_free(l.c);
        return NULL;
    }
    if (apply_env(&l) != 0 || finish(&l) != 0) {
        conf_free(l.c);
        return NULL;
    }
    return l.c;
}

void conf_hold(struct conf *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void conf_free(struct conf *c)
{
    size_t i, j;

    if (c == NULL || __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (i = 0; i < NKEYS; i++) {
        enum vtype t = keys[i].type;
        if (t == V_STR || t == V_ADDR || t == V_URL || t == V_LEVEL || t == V_REDIS_URL ||
            t == V_PROXY || t == V_ALOG)
            free(*(char **)((char *)c + keys[i].off));
        else if (t == V_LIST)
            strlist_free((struct strlist *)((char *)c + keys[i].off));
    }
    for (i = 0; i < c->nprojects; i++) {
        free(c->projects[i].id);
        free(c->projects[i].section);
        free(c->projects[i].api_key_file);
        free(c->projects[i].api_key);
    }
    for (i = 0; i < c->nclients; i++) {
        for (j = 0; j < c->clients[i].nprojects; j++)
            free(c->clients[i].projects[j]);
        free(c->clients[i].projects);
        free(c->clients[i].name);
    }
    free(c->projects);
    free(c->clients);
    free(c->api_key);
    free(c->path);
    free(c);
}

const struct conf_project *conf_project(const struct conf *c, const char *id)
{
    size_t i;

    if (id == NULL)
        return NULL;
    for (i = 0; i < c->nprojects; i++)
        if (strcmp(c->projects[i].id, id) == 0)
            return &c->projects[i];
    return NULL;
}

const char *conf_api_key(const struct conf *c, const char *project_id)
{
    const struct conf_project *p = conf_project(c, project_id);

    return p && p->api_key ? p->api_key : c->api_key;
}

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

static void dump_duration(FILE *out, uint64_t ms)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        {"h", 3600000}, {"m", 60000}, {"s", 1000},
    };
    size_t i;

    for (i = 0; ms != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            fprintf(out, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    fprintf(out, "%llums", (unsigned long long)ms);
}

static void dump_size(FILE *out, size_t n)
{
    static const struct { const char *unit; size_t mul; } units[] = {
        {"GiB", (size_t)1 << 30}, {"MiB", (size_t)1 << 20}, {"KiB", 1024},
    };
    size_t i;

    for (i = 0; n != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (n % units[i].mul == 0) {
            fprintf(out, "%zu%s", n / units[i].mul, units[i].unit);
            return;
        }
    }
    fprintf(out, "%zu", n);
}

static void dump_rate(FILE *out, const struct rate *r)
{
    fprintf(out, "%.15g/%s", r->count, r->window_s == 3600 ? "h" : r->window_s == 60 ? "min"
                                                                                  : "s");
}

static void rate_line(FILE *out, const char *key, const struct rate *r)
{
    fprintf(out, "%s = ", key);
    dump_rate(out, r);
    fputc('\n', out);
}

static void dump_list(FILE *out, const struct strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        fprintf(out, "%s%s", i ? ", " : "", l->v[i]);
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
static void dump_key(FILE *out, const struct conf *c, const struct keydef *k)
{
    const void *p = (const char *)c + k->off;
    char var[96], masked[1024];
    const char *s = NULL;

    env_name(k, var, sizeof(var));
    if (getenv(var))
        fprintf(out, "; from %s\n", var);
    switch (k->type) {
    case V_STR: case V_ADDR: case V_URL: case V_LEVEL: case V_PROXY:
        s = *(char *const *)p;
        if (s == NULL) {
            fprintf(out, "; %s = (unset)\n", k->key);
            return;
        }
        /* curl would send a user:password@ of base_url: masked too. */
        if (k->type == V_URL && url_userinfo_masked(s, masked, sizeof(masked)) == 0 &&
            strcmp(masked, s) != 0) {
            fprintf(out, "; the password is masked: put it back to use this file\n");
            s = masked;
        }
        fprintf(out, "%s = %s\n", k->key, s);
        return;
    case V_REDIS_URL:
        s = *(char *const *)p;
        if (conf_redis_url_masked(s, masked, sizeof(masked)) != 0)
            snprintf(masked, sizeof(masked), "(not shown)");
        if (strcmp(masked, s) != 0)
            fprintf(out, "; the password is masked: put it back to use this file\n");
        fprintf(out, "%s = %s\n", k->key, masked);
        return;
    case V_SHA256:
        fprintf(out, "; %s = (%s)\n", k->key,
                is_zero(p, 32) ? "unset" : "set, not shown");
        return;
    case V_ALOG:
        s = *(char *const *)p;
        fprintf(out, "%s = %s\n", k->key, s ? s : "off");
        return;
    case V_LIST:
        if (((const struct strlist *)p)->n == 0) {
            fprintf(out, "; %s = (unset)\n", k->key);
            return;
        }
        break;
    case V_RATE: case V_COUNT:
        /* [upstream] rate and burst: the key's budget, only when set. */
        if (!c->has_key_rate && (k->off == offsetof(struct conf, key_rate) ||
                                 k->off == offsetof(struct conf, key_burst))) {
            fprintf(out, "; %s = (unset)\n", k->key);
            return;
        }
        break;
    case V_DURATION: case V_SIZE: case V_BOOL: case V_STORE:
        break;
    }
    fprintf(out, "%s = ", k->key);
    switch (k->type) {
    case V_DURATION: dump_duration(out, *(const uint64_t *)p); break;
    case V_SIZE: dump_size(out, *(const size_t *)p); break;
    case V_RATE: dump_rate(out, p); break;
    case V_COUNT: fprintf(out, "%u", *(const unsigned *)p); break;
    case V_BOOL: fputs(*(const int *)p ? "on" : "off", out); break;
    case V_STORE:
        fputs(*(const enum store_kind *)p == STORE_KIND_REDIS ? "redis" : "memory", out);
        break;
    case V_LIST: dump_list(out, p); break;
    case V_STR: case V_ADDR: case V_URL: case V_LEVEL: case V_PROXY: case V_REDIS_URL:
    case V_SHA256: case V_ALOG:
        break;
    }
    fputc('\n', out);
}

/* Where the global key came from, as finish() looked. */
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

int conf_dump(const struct conf *c, FILE *out)
{
    const char *section = NULL;
    size_t i, j;

    fprintf(out, "; The effective configuration of %s: the file, then the LCGATE_*\n"
            "; environment overrides, then the defaults. Secrets are not shown:\n"
            "; keys, the Redis password (masked) and token hashes (set or unset).\n",
            c->path);
    for (i = 0; i < NKEYS; i++) {
        if (section == NULL || strcmp(section, keys[i].section) != 0) {
            section = keys[i].section;
            fprintf(out, "\n[%s]\n", section);
        }
        dump_key(out, c, &keys[i]);
        if (strcmp(keys[i].section, "upstream") == 0 && strcmp(keys[i].key, "api_key_file") == 0)
            fprintf(out, c->api_key ? "; key: set (from %s)\n"
                                    : "; key: unset (pass-through mode)\n", key_source(c));
    }
    for (i = 0; i < c->nprojects; i++) {
        const struct conf_project *p = &c->projects[i];
        fprintf(out, "\n[project \"%s\"]\n", p->section);
        if (p->has_rate)
            rate_line(out, "rate", &p->rate);
        if (p->has_burst)
            fprintf(out, "burst = %u\n", p->burst);
        if (p->has_upstream_rate)
            rate_line(out, "upstream_rate", &p->upstream_rate);
        if (p->has_upstream_burst)
            fprintf(out, "upstream_burst = %u\n", p->upstream_burst);
        if (p->has_ttl) {
            fputs("ttl = ", out);
            dump_duration(out, p->ttl_ms);
            fputc('\n', out);
        }
        if (p->api_key_file)
            fprintf(out, "api_key_file = %s\n; key: set (from api_key_file)\n",
                    p->api_key_file);
    }
    for (i = 0; i < c->nclients; i++) {
        const struct conf_client *cl = &c->clients[i];
        fprintf(out, "\n[client \"%s\"]\n; token_sha256 = (set, not shown)\nprojects = ",
                cl->name);
        if (cl->all_projects)
            fputs("*", out);
        for (j = 0; j < cl->nprojects; j++)
            fprintf(out, "%s%s", j ? ", " : "", cl->projects[j]);
        fputc('\n', out);
        if (cl->has_rate) {
            rate_line(out, "rate", &cl->rate);
            fprintf(out, "burst = %u\n", cl->burst);
        }
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}
