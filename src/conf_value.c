#include "conf_value.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* The units of durations (ms), sizes (bytes) and rates (seconds of the
 * window), smallest first; a printed value takes the largest that divides
 * it (the size unit "" before "B", so that 256 prints as 256). */
struct unit {
    const char *name;
    uint64_t mul;
};
#define NUNITS(u) (sizeof(u) / sizeof(u[0]))
static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};
static const struct unit size_units[] = {
    {"B", 1}, {"", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024ULL * 1024 * 1024},
};
static const struct unit rate_units[] = {
    {"/s", 1}, {"/min", 60}, {"/h", 3600},
};

/* The unit spelled end, or NULL. */
static const struct unit *unit_named(const char *end, const struct unit *u, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(end, u[i].name) == 0)
            return &u[i];
    return NULL;
}

/* The largest unit that divides v (for 0, the largest of 1). */
static const struct unit *unit_dividing(uint64_t v, const struct unit *u, size_t n)
{
    while (n > 1 && (v % u[n - 1].mul != 0 || (v == 0 && u[n - 1].mul != 1)))
        n--;
    return &u[n - 1];
}

/* A number that starts with a digit (no sign, no space) into v, end after
 * it; 0 or -1. */
static int leading_number(const char *s, double *v, char **end)
{
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    *v = strtod(s, end);
    return errno || *end == s ? -1 : 0;
}

int conf_parse_duration_ms(const char *s, uint64_t *out)
{
    const struct unit *u;
    char *end;
    double v;

    if (leading_number(s, &v, &end) != 0 ||
        (u = unit_named(end, duration_units, NUNITS(duration_units))) == NULL ||
        v * (double)u->mul > 1e15)
        return -1;
    *out = (uint64_t)(v * (double)u->mul + 0.5);
    return 0;
}

int conf_parse_size(const char *s, size_t *out)
{
    const struct unit *u;
    char *end;
    unsigned long long v;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtoull(s, &end, 10);
    if (errno || (u = unit_named(end, size_units, NUNITS(size_units))) == NULL ||
        v > SIZE_MAX / u->mul)
        return -1;
    *out = (size_t)(v * u->mul);
    return 0;
}

int conf_parse_rate(const char *s, struct rate *out)
{
    const struct unit *u;
    char *end;
    double v;

    if (leading_number(s, &v, &end) != 0 || !(v > 0) || v > 1e9 ||
        (u = unit_named(end, rate_units, NUNITS(rate_units))) == NULL)
        return -1;
    out->count = v;
    out->window_s = (unsigned)u->mul;
    return 0;
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

static int parse_count(const char *s, void *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < 1 || v > 1000000000UL)
        return -1;
    *(unsigned *)out = (unsigned)v;
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

int conf_parse_sha256(const char *v, uint8_t out[32])
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

int conf_parse_list(const char *v, struct strlist *out)
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
static int parse_access_log(const char *v, void *field)
{
    char **out = field;
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

static int valid_url(const char *v)
{
    return strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0;
}

static int valid_redis_url(const char *v)
{
    return strncmp(v, "redis://", 8) == 0 || strncmp(v, "rediss://", 9) == 0 ||
           strncmp(v, "unix:///", 8) == 0;
}

static int valid_level(const char *v)
{
    enum log_level lvl;

    return log_level_parse(v, &lvl) == 0;
}

static int valid_path(const char *v)
{
    return *v != '\0';
}

static int parse_store(const char *v, void *p)
{
    if (strcmp(v, "memory") == 0)
        *(enum store_kind *)p = STORE_KIND_MEMORY;
    else if (strcmp(v, "redis") == 0)
        *(enum store_kind *)p = STORE_KIND_REDIS;
    else
        return -1;
    return 0;
}

static int parse_list(const char *v, void *p) { return conf_parse_list(v, p); }
static int parse_sha256(const char *v, void *p) { return conf_parse_sha256(v, p); }
static int parse_duration(const char *v, void *p) { return conf_parse_duration_ms(v, p); }
static int parse_size(const char *v, void *p) { return conf_parse_size(v, p); }
static int parse_rate(const char *v, void *p) { return conf_parse_rate(v, p); }
static int parse_bool(const char *v, void *p) { return conf_parse_bool(v, p); }

/* A char * type has valid (checked, then copied) or parse; the others
 * parse. */
static const struct ctype {
    enum conf_type t;
    const char *name, *hint;
    int (*valid)(const char *v);
    int (*parse)(const char *v, void *p);
    int is_string;
} ctypes[] = {
    {CT_PATH, "path", "a value", valid_path, NULL, 1},
    {CT_ADDR, "address", "host:port, [v6]:port or unix:/path", valid_addr, NULL, 1},
    {CT_URL, "URL", "an http:// or https:// URL", valid_url, NULL, 1},
    {CT_PROXY, "URL", "an http://host:port URL", valid_proxy, NULL, 1},
    {CT_REDIS_URL, "URL", "redis://[:password@]host[:port][/db], rediss://... or unix:///path",
     valid_redis_url, NULL, 1},
    {CT_LEVEL, "level", "error, warn, info or debug", valid_level, NULL, 1},
    {CT_ACCESS_LOG, "destination", "on, off, stderr, stdout or an absolute file path", NULL,
     parse_access_log, 1},
    {CT_STORE, "kind", "memory or redis", NULL, parse_store, 0},
    {CT_LIST, "list", "names separated by commas", NULL, parse_list, 0},
    {CT_SHA256, "hex", "64 hex digits (sha256sum of the token)", NULL, parse_sha256, 0},
    {CT_DURATION, "duration", "a duration such as 250ms, 30s, 10m or 1h", NULL,
     parse_duration, 0},
    {CT_SIZE, "size", "a size such as 4096, 512KiB, 64MiB or 1GiB", NULL, parse_size, 0},
    {CT_RATE, "rate", "a rate such as 20/s, 600/min or 1000/h", NULL, parse_rate, 0},
    {CT_COUNT, "count", "a whole number from 1 to 1000000000", NULL, parse_count, 0},
    {CT_BOOL, "boolean", "on or off", NULL, parse_bool, 0},
    {CT_STRING, "string", "a value", valid_path, NULL, 1},
};

static const struct ctype *ctype(enum conf_type t)
{
    assert((size_t)t < sizeof(ctypes) / sizeof(ctypes[0]) && ctypes[t].t == t);
    return &ctypes[t];
}

const char *conf_type_name(enum conf_type t)
{
    return ctype(t)->name;
}

const char *conf_type_hint(enum conf_type t)
{
    return ctype(t)->hint;
}

int conf_value_parse(enum conf_type t, void *p, const char *v)
{
    const struct ctype *ct = ctype(t);
    char **sp = p, *dup;
    size_t n;

    if (ct->parse != NULL)
        return ct->parse(v, p);
    if (!ct->valid(v) || (dup = strdup(v)) == NULL)
        return -1;
    free(*sp);
    *sp = dup;
    if (t == CT_URL || t == CT_PROXY) {
        n = strlen(dup);
        while (n > 8 && dup[n - 1] == '/')
            dup[--n] = '\0';
    }
    return 0;
}

void conf_value_free(enum conf_type t, void *p)
{
    if (ctype(t)->is_string) {
        free(*(char **)p);
        *(char **)p = NULL;
    } else if (t == CT_LIST) {
        strlist_free(p);
    }
}

void conf_value_format(enum conf_type t, uint64_t n, char *buf, size_t len)
{
    const struct unit *u = NULL;

    if (t == CT_DURATION)
        u = unit_dividing(n, duration_units, NUNITS(duration_units));
    else if (t == CT_SIZE)
        u = unit_dividing(n, size_units, NUNITS(size_units));
    snprintf(buf, len, "%llu%s", (unsigned long long)(u ? n / u->mul : n), u ? u->name : "");
}

void conf_value_print(FILE *out, enum conf_type t, const void *p)
{
    const struct rate *r = p;
    const struct strlist *l = p;
    char buf[64];
    size_t i;

    if (ctype(t)->is_string) {
        if (*(char *const *)p != NULL)
            fputs(*(char *const *)p, out);
        else if (t == CT_ACCESS_LOG)
            fputs("off", out);
        return;
    }
    switch (t) {
    case CT_DURATION: case CT_SIZE: case CT_COUNT:
        conf_value_format(t, conf_value_number(t, p), buf, sizeof(buf));
        fputs(buf, out);
        break;
    case CT_RATE:
        fprintf(out, "%.15g%s", r->count,
                unit_dividing(r->window_s, rate_units, NUNITS(rate_units))->name);
        break;
    case CT_BOOL:
        fputs(*(const int *)p ? "on" : "off", out);
        break;
    case CT_STORE:
        fputs(*(const enum store_kind *)p == STORE_KIND_REDIS ? "redis" : "memory", out);
        break;
    case CT_LIST:
        for (i = 0; i < l->n; i++)
            fprintf(out, "%s%s", i ? ", " : "", l->v[i]);
        break;
    default:
        break;
    }
}

uint64_t conf_value_number(enum conf_type t, const void *p)
{
    switch (t) {
    case CT_DURATION: return *(const uint64_t *)p;
    case CT_SIZE: return *(const size_t *)p;
    case CT_COUNT: return *(const unsigned *)p;
    default: return 0;
    }
}

int conf_value_equal(enum conf_type t, const void *a, const void *b)
{
    const struct strlist *la = a, *lb = b;
    size_t i;

    if (ctype(t)->is_string) {
        const char *sa = *(char *const *)a, *sb = *(char *const *)b;
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
    }
    switch (t) {
    case CT_STORE: return *(const enum store_kind *)a == *(const enum store_kind *)b;
    case CT_SHA256: return memcmp(a, b, 32) == 0;
    case CT_RATE:
        return ((const struct rate *)a)->count == ((const struct rate *)b)->count &&
               ((const struct rate *)a)->window_s == ((const struct rate *)b)->window_s;
    case CT_BOOL: return *(const int *)a == *(const int *)b;
    case CT_LIST:
        for (i = 0; la->n == lb->n && i < la->n && strcmp(la->v[i], lb->v[i]) == 0; i++)
            ;
        return la->n == lb->n && i == la->n;
    default: return conf_value_number(t, a) == conf_value_number(t, b);
    }
}
