/* query_norm: a list route's raw query -> canonical query, or the upstream's
 * own 422 body.
 *
 * The upstream is FastAPI on Starlette with pydantic v2, so every rule here
 * follows what that stack does with the same bytes: Starlette's parse_qsl,
 * pydantic-core 2.41's str_as_int (with jiter 0.11's integer reader), the
 * uuid 1.18 crate's parser and its error text, and speedate 0.17's datetime
 * and date parsers. Two queries get the same canonical form only when the
 * upstream is bound to read them as the same values. */
#include "query_norm.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "request_read.h"
#include "util.h"

static const char *const v1_status[] = {"pending",   "running", "dispatched",
                                        "completed", "failed",  "cancelled",
                                        NULL};
static const char *const v1_job_type[] = {"parse", "extract", "classify", NULL};

static const struct qn_param v1_params[] = {
    {.name = "limit", .type = QN_INT, .dflt = "50",
     .has_ge = 1, .ge = 1, .has_le = 1, .le = 1000},
    {.name = "offset", .type = QN_INT, .dflt = "0", .has_ge = 1, .ge = 0},
    {.name = "status", .type = QN_ENUM, .enums = v1_status},
    {.name = "job_type", .type = QN_ENUM, .enums = v1_job_type},
    {.name = "directory_id", .type = QN_STR},
    {.name = "project_id", .type = QN_UUID},
    {.name = "organization_id", .type = QN_UUID},
};

static const char *const v2_status[] = {"PENDING",   "THROTTLED", "RUNNING",
                                        "COMPLETED", "FAILED",    "CANCELLED",
                                        NULL};

/* page_size has no documented default: written out, it is never dropped. */
static const struct qn_param v2_params[] = {
    {.name = "page_size", .type = QN_INT},
    {.name = "page_token", .type = QN_STR},
    {.name = "status", .type = QN_ENUM, .enums = v2_status},
    {.name = "created_at_on_or_after", .type = QN_DATETIME},
    {.name = "created_at_on_or_before", .type = QN_DATETIME},
    {.name = "source_directory_id", .type = QN_STR},
    {.name = "project_id", .type = QN_STR},
    {.name = "organization_id", .type = QN_STR},
};

const struct qn_schema qn_routes[QN_NROUTES] = {
    [QN_V1_BATCH_JOBS] = {"/api/v1/beta/batch-processing", "v1_batch_jobs",
                          v1_params, sizeof v1_params / sizeof v1_params[0]},
    [QN_V2_BATCHES] = {"/api/v2/batches", "v2_batches", v2_params,
                       sizeof v2_params / sizeof v2_params[0]},
};

int qn_route_by_path(const char *path)
{
    if (path == NULL)
        return -1;
    for (int r = 0; r < QN_NROUTES; r++)
        if (strcmp(qn_routes[r].path, path) == 0)
            return r;
    return -1;
}

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_str(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The buffer's string ("" when nothing was put), or NULL when out of memory. */
static char *take(struct buf *b)
{
    put(b, "", 0);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    char *p = b->p;
    b->p = NULL;
    return p;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* The code point at s, in text already checked as UTF-8; returns its
 * length in bytes. */
static size_t utf8_at(const char *str, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
    uint32_t c = k == 1 ? s[0] : s[0] & (0x7f >> k);
    for (size_t j = 1; j < k; j++)
        c = c << 6 | (s[j] & 0x3f);
    *cp = c;
    return k;
}

/* Rust's char::is_whitespace (Unicode White_Space), which str::trim uses. */
static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
           c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static void trim(const char *s, size_t *a, size_t *b)
{
    uint32_t c;
    while (*a < *b) {
        size_t k = utf8_at(s + *a, &c);
        if (!is_space(c))
            break;
        *a += k;
    }
    while (*b > *a) {
        size_t st = *b - 1;
        while (st > *a && ((unsigned char)s[st] & 0xc0) == 0x80)
            st--;
        utf8_at(s + st, &c);
        if (!is_space(c))
            break;
        *b = st;
    }
}

/* Why a value is rejected: the fields of one pydantic error. */
struct fail {
    const char *type;
    char *msg;
    const char *ctx_key; /* NULL: no "ctx" */
    char *ctx_str;       /* the ctx value; NULL: ctx_num */
    long long ctx_num;
};

/* A validator returns 0 with *canon set, 1 with *f set, -1 out of memory. */
typedef int (*check_fn)(const struct qn_param *p, const char *v, size_t n,
                        char **canon, struct fail *f);

static int fail_plain(struct fail *f, const char *type, const char *msg)
{
    f->type = type;
    f->msg = dupn(msg, strlen(msg));
    return f->msg ? 1 : -1;
}

/* pydantic's "<prefix>, <error>" messages also carry ctx {"error": ...}. */
static int fail_error(struct fail *f, const char *type, const char *prefix,
                      const char *error)
{
    struct buf m = {0};
    put_str(&m, prefix);
    put_str(&m, error);
    f->type = type;
    f->msg = take(&m);
    f->ctx_key = "error";
    f->ctx_str = dupn(error, strlen(error));
    return f->msg && f->ctx_str ? 1 : -1;
}

static int fail_bound(struct fail *f, const char *type, const char *key,
                      const char *words, long long bound)
{
    char msg[96];
    snprintf(msg, sizeof msg, "Input should be %s %lld", words, bound);
    f->ctx_key = key;
    f->ctx_num = bound;
    return fail_plain(f, type, msg);
}

enum { NUM_OK, NUM_BAD, NUM_BIG };

/* jiter's NumberInt::from_bytes: a JSON integer and nothing else. *d0 is
 * where the digits start; they never have a leading zero. */
static int json_int(const char *s, size_t n, int *neg, size_t *d0)
{
    size_t i = 0, j;
    if (n > 0 && s[0] == '-')
        i = 1;
    if (i >= n)
        return NUM_BAD;
    if (s[i] == '0') {
        *neg = 0;
        *d0 = i;
        return i + 1 == n ? NUM_OK : NUM_BAD;
    }
    if (s[i] < '1' || s[i] > '9')
        return NUM_BAD;
    for (j = i; j < n && is_digit(s[j]); j++)
        ;
    /* jiter gives up past 4300 bytes of sign and digits, whatever follows:
     * that alone is int_parsing_size. */
    if (j > 4300)
        return NUM_BIG;
    if (j != n)
        return NUM_BAD;
    *neg = i == 1;
    *d0 = i;
    return NUM_OK;
}

/* pydantic-core's clean_int_str, the second try after a strict parse:
 * trims, drops one sign and leading zeros, a fraction of only zeros, and
 * single underscores between digits. Returns 0 when it has nothing to
 * offer (the value is then int_parsing), 1 with the cleaned text in out. */
static int clean_int(const char *s, size_t n, struct buf *out)
{
    size_t a = 0, b = n, i;
    int neg = 0;

    trim(s, &a, &b);
    if (a < b && s[a] == '+') {
        if (a + 1 < b && s[a + 1] == '-')
            return 0;
        a++;
    }
    if (a < b && s[a] == '-') {
        if (a + 1 < b && (s[a + 1] == '-' || s[a + 1] == '+'))
            return 0;
        neg = 1;
        a++;
    }
    if (a >= b)
        return 0;
    if (s[a] == '0') {
        for (i = a + 1; i < b; i++) {
            if (s[i] == '0' || s[i] == '_')
                continue;
            if ((s[i] >= '1' && s[i] <= '9') || s[i] == '-')
                break;
            if (s[i] == '.') {
                i--; /* keep one zero before the point: "00.0" -> "0.0" */
                break;
            }
            return 0;
        }
        a = i < b ? i : b - 1;
    } else if (!((s[a] >= '1' && s[a] <= '9') || s[a] == '-')) {
        return 0;
    }
    const char *dot = memchr(s + a, '.', b - a);
    if (dot != NULL) {
        size_t d = (size_t)(dot - s), z = d + 1;
        while (z < b && s[z] == '0')
            z++;
        if (d + 1 < b && z == b)
            b = d;
    }
    int us = 0, twice = 0;
    for (i = a; i < b; i++) {
        if (s[i] == '_') {
            us = 1;
            if (i + 1 < b && s[i + 1] == '_')
                twice = 1;
        }
    }
    if (us && !twice && s[a] != '_' && s[b - 1] != '_') {
        if (neg)
            put(out, "-", 1);
        for (i = a; i < b; i++)
            if (s[i] != '_')
                put(out, s + i, 1);
        return 1;
    }
    if (n == b - a)
        return 0;
    if (neg)
        put(out, "-", 1);
    put(out, s + a, b - a);
    return 1;
}

/* c (canonical decimal) compared with x. */
static int cmp_ll(const char *c, long long x)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", x);
    int cn = c[0] == '-', tn = t[0] == '-';
    if (cn != tn)
        return cn ? -1 : 1;
    size_t cl = strlen(c + cn), tl = strlen(t + tn);
    int m = cl != tl ? (cl < tl ? -1 : 1) : strcmp(c + cn, t + tn);
    m = m < 0 ? -1 : m > 0;
    return cn ? -m : m;
}

static int check_int(const struct qn_param *p, const char *v, size_t n,
                     char **canon, struct fail *f)
{
    static const char parsing[] =
        "Input should be a valid integer, unable to parse string as an integer";
    struct buf cl = {0}, out = {0};
    const char *s = v;
    size_t len = n, d0 = 0;
    int neg = 0;
    int r = json_int(v, n, &neg, &d0);

    if (r == NUM_BIG)
        return fail_plain(f, "int_parsing_size",
                          "Unable to parse input string as an integer, "
                          "exceeded maximum size");
    if (r == NUM_BAD) {
        if (!clean_int(v, n, &cl))
            return fail_plain(f, "int_parsing", parsing);
        if (cl.oom) {
            free(cl.p);
            return -1;
        }
        s = cl.p;
        len = cl.len;
        if (json_int(s, len, &neg, &d0) != NUM_OK) {
            free(cl.p);
            return fail_plain(f, "int_parsing", parsing);
        }
    }
    if (neg)
        put(&out, "-", 1);
    put(&out, s + d0, len - d0);
    free(cl.p);
    if ((*canon = take(&out)) == NULL)
        return -1;
    /* pydantic checks le before ge */
    if (p->has_le && cmp_ll(*canon, p->le) > 0)
        r = fail_bound(f, "less_than_equal", "le", "less than or equal to", p->le);
    else if (p->has_ge && cmp_ll(*canon, p->ge) < 0)
        r = fail_bound(f, "greater_than_equal", "ge", "greater than or equal to",
                       p->ge);
    else
        return 0;
    free(*canon);
    *canon = NULL;
    return r;
}

static int check_enum(const struct qn_param *p, const char *v, size_t n,
                      char **canon, struct fail *f)
{
    size_t count = 0;
    for (const char *const *e = p->enums; *e != NULL; e++, count++) {
        if (strlen(*e) == n && memcmp(*e, v, n) == 0) {
            *canon = dupn(v, n);
            return *canon ? 0 : -1;
        }
    }
    /* pydantic: 'a', 'b' or 'c' */
    struct buf x = {0}, m = {0};
    for (size_t k = 0; k < count; k++) {
        if (k > 0)
            put_str(&x, k + 1 == count ? " or " : ", ");
        put(&x, "'", 1);
        put_str(&x, p->enums[k]);
        put(&x, "'", 1);
    }
    f->type = "enum";
    f->ctx_key = "expected";
    f->ctx_str = take(&x);
    if (f->ctx_str == NULL)
        return -1;
    put_str(&m, "Input should be ");
    put_str(&m, f->ctx_str);
    f->msg = take(&m);
    return f->msg ? 1 : -1;
}

static int check_str(const struct qn_param *p, const char *v, size_t n,
                     char **canon, struct fail *f)
{
    *canon = dupn(v, n);
    return *canon ? 0 : -1;
}

/* uuid 1.18's InvalidUuid::into_err and Display, including its quirks: it
 * explains only the slice that failed (the part inside braces or after
 * "urn:uuid:" when the outer shape was right), positions are byte offsets
 * plus one, and "group 4" counts the whole slice's length. */
static void uuid_error(const char *t, size_t m, char *out, size_t outsz)
{
    const char *u = t;
    size_t un = m, off = 0, hy = 0, bounds[4] = {0};
    int simple = 1;

    if (m >= 2 && t[0] == '{' && t[m - 1] == '}')
        u = t + 1, un = m - 2, off = 1, simple = 0;
    else if (m >= 9 && memcmp(t, "urn:uuid:", 9) == 0)
        u = t + 9, un = m - 9, off = 9, simple = 0;
    for (size_t i = 0; i < un;) {
        uint32_t c;
        size_t k = utf8_at(u + i, &c);
        if (c == '-') {
            if (hy < 4)
                bounds[hy] = i;
            hy++;
        } else if (c >= 0x80 || util_hexval((int)c) < 0) {
            char ch[5] = {0};
            memcpy(ch, u + i, k);
            snprintf(out, outsz,
                     "invalid character: expected an optional prefix of "
                     "`urn:uuid:` followed by [0-9a-fA-F-], found `%s` at %zu",
                     ch, i + off + 1);
            return;
        }
        i += k;
    }
    if (hy == 0 && simple) {
        snprintf(out, outsz,
                 "invalid length: expected length 32 for simple format, found %zu",
                 m);
        return;
    }
    if (hy != 4) {
        snprintf(out, outsz, "invalid group count: expected 5, found %zu", hy + 1);
        return;
    }
    static const size_t starts[5] = {0, 9, 14, 19, 24};
    static const int expect[5] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 4; g++) {
        if (bounds[g] != starts[g + 1] - 1) {
            snprintf(out, outsz,
                     "invalid group length in group %d: expected %d, found %zu",
                     g, expect[g], bounds[g] - starts[g]);
            return;
        }
    }
    snprintf(out, outsz, "invalid group length in group 4: expected 12, found %zu",
             m - starts[4]);
}

static int check_uuid(const struct qn_param *p, const char *v, size_t n,
                      char **canon, struct fail *f)
{
    const char *slice = v;
    size_t slen = n;
    char c[37];

    if (rr_uuid_canon(v, n, c) != 0) {
        char why[256];
        /* The error explains the slice inside braces or after "urn:uuid:"
         * when the outer shape was right. */
        if (n == 38 && v[0] == '{' && v[37] == '}')
            slice = v + 1, slen = 36;
        else if (n == 45 && memcmp(v, "urn:uuid:", 9) == 0)
            slice = v + 9, slen = 36;
        uuid_error(slice, slen, why, sizeof why);
        return fail_error(f, "uuid_parsing", "Input should be a valid UUID, ", why);
    }
    *canon = dupn(c, 36);
    return *canon ? 0 : -1;
}

/* speedate's ParseError, with its documented texts (what pydantic shows). */
enum dterr {
    DT_OK,
    DT_SHORT,
    DT_EXTRA,
    DT_DT_SEP,
    DT_DATE_SEP,
    DT_NOT_EXACT,
    DT_YEAR,
    DT_MONTH,
    DT_DAY,
    DT_TIME_SEP,
    DT_HOUR,
    DT_MINUTE,
    DT_SECOND,
    DT_TZ_SIGN,
    DT_TZ_HOUR,
    DT_TZ_MINUTE,
    DT_TZ_MINUTE_RANGE,
    DT_TZ_RANGE,
    DT_MONTH_RANGE,
    DT_DAY_RANGE,
    DT_HOUR_RANGE,
    DT_MINUTE_RANGE,
    DT_SECOND_RANGE,
    DT_FRACTION_MISSING,
    DT_TOO_SMALL,
    DT_TOO_LARGE,
    DT_TIME_TOO_LARGE,
};

static const char *const dt_text[] = {
    [DT_SHORT] = "input is too short",
    [DT_EXTRA] = "unexpected extra characters at the end of the input",
    [DT_DT_SEP] = "invalid datetime separator, expected `T`, `t`, `_` or space",
    [DT_DATE_SEP] = "invalid date separator, expected `-`",
    [DT_NOT_EXACT] = "Timestamp is not an exact date",
    [DT_YEAR] = "invalid character in year",
    [DT_MONTH] = "invalid character in month",
    [DT_DAY] = "invalid character in day",
    [DT_TIME_SEP] = "invalid time separator, expected `:`",
    [DT_HOUR] = "invalid character in hour",
    [DT_MINUTE] = "invalid character in minute",
    [DT_SECOND] = "invalid character in second",
    [DT_TZ_SIGN] = "invalid timezone sign",
    [DT_TZ_HOUR] = "invalid timezone hour",
    [DT_TZ_MINUTE] = "invalid timezone minute",
    [DT_TZ_MINUTE_RANGE] = "timezone minute value is outside expected range of 0-59",
    [DT_TZ_RANGE] = "timezone offset must be less than 24 hours",
    [DT_MONTH_RANGE] = "month value is outside expected range of 1-12",
    [DT_DAY_RANGE] = "day value is outside expected range",
    [DT_HOUR_RANGE] = "hour value is outside expected range of 0-23",
    [DT_MINUTE_RANGE] = "minute value is outside expected range of 0-59",
    [DT_SECOND_RANGE] = "second value is outside expected range of 0-59",
    [DT_FRACTION_MISSING] = "second fraction digits missing after `.`",
    [DT_TOO_SMALL] = "dates before 0000 are not supported as unix timestamps",
    [DT_TOO_LARGE] = "dates after 9999 are not supported as unix timestamps",
    [DT_TIME_TOO_LARGE] = "numeric times may not exceed 86,399 seconds",
};

struct dt {
    long long y;
    int mo, d, h, mi, s;
    long us;
    int aware;
    long off; /* seconds east of UTC, when aware */
};

#define MS_WATERSHED 20000000000LL
#define UNIX_0000 (-62167219200LL)
#define UNIX_9999 253402300799LL

static int dig(const char *s, size_t n, size_t i)
{
    return i < n && is_digit(s[i]) ? s[i] - '0' : -1;
}

static int leap(long long y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* speedate Date::parse_bytes_partial: YYYY-MM-DD at the start of s. */
static int parse_date(const char *s, size_t n, struct dt *t)
{
    static const int mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const struct {
        unsigned char at, err;
    } shape[] = {{0, DT_YEAR},     {1, DT_YEAR},  {2, DT_YEAR},     {3, DT_YEAR},
                 {4, DT_DATE_SEP}, {5, DT_MONTH}, {6, DT_MONTH},    {7, DT_DATE_SEP},
                 {8, DT_DAY},      {9, DT_DAY}};
    if (n < 10)
        return DT_SHORT;
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        int sep = shape[i].err == DT_DATE_SEP;
        if (sep ? s[shape[i].at] != '-' : !is_digit(s[shape[i].at]))
            return shape[i].err;
    }
    t->y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    t->mo = (s[5] - '0') * 10 + (s[6] - '0');
    t->d = (s[8] - '0') * 10 + (s[9] - '0');
    if (t->mo < 1 || t->mo > 12)
        return DT_MONTH_RANGE;
    int max = mdays[t->mo] + (t->mo == 2 && leap(t->y));
    if (t->d < 1 || t->d > max)
        return DT_DAY_RANGE;
    return DT_OK;
}

/* speedate Time::parse_bytes_offset: HH:MM[:SS[.f]][Z|±HH[:]MM] from o. */
static int parse_time(const char *s, size_t n, size_t o, struct dt *t)
{
    int h1, h2, m1, m2;
    size_t len = 5;

    if (n - o < 5)
        return DT_SHORT;
    if ((h1 = dig(s, n, o)) < 0 || (h2 = dig(s, n, o + 1)) < 0)
        return DT_HOUR;
    if (s[o + 2] != ':')
        return DT_TIME_SEP;
    if ((m1 = dig(s, n, o + 3)) < 0 || (m2 = dig(s, n, o + 4)) < 0)
        return DT_MINUTE;
    t->h = h1 * 10 + h2;
    t->mi = m1 * 10 + m2;
    if (t->h > 23)
        return DT_HOUR_RANGE;
    if (t->mi > 59)
        return DT_MINUTE_RANGE;
    t->s = 0;
    t->us = 0;
    if (o + 5 < n && s[o + 5] == ':') {
        int s1 = dig(s, n, o + 6), s2 = dig(s, n, o + 7);
        if (s1 < 0 || s2 < 0)
            return DT_SECOND;
        t->s = s1 * 10 + s2;
        if (t->s > 59)
            return DT_SECOND_RANGE;
        len = 8;
        if (o + 8 < n && (s[o + 8] == '.' || s[o + 8] == ',')) {
            size_t i = 0;
            len = 9;
            /* digits past the sixth are dropped (pydantic's "truncate") */
            while (o + len + i < n && is_digit(s[o + len + i])) {
                if (i < 6)
                    t->us = t->us * 10 + (s[o + len + i] - '0');
                i++;
            }
            if (i == 0)
                return DT_FRACTION_MISSING;
            for (size_t k = i; k < 6; k++)
                t->us *= 10;
            len += i;
        }
    }
    size_t pos = o + len;
    t->aware = 0;
    t->off = 0;
    if (pos < n) {
        char c = s[pos++];
        if (c == 'Z' || c == 'z') {
            t->aware = 1;
        } else {
            int sign, a, b, c1, c2;
            if (c == '+') {
                sign = 1;
            } else if (c == '-') {
                sign = -1;
            } else if ((unsigned char)c == 0xe2) {
                /* U+2212 MINUS SIGN, which ISO 8601 allows */
                if (pos >= n || (unsigned char)s[pos] != 0x88 || pos + 1 >= n ||
                    (unsigned char)s[pos + 1] != 0x92)
                    return DT_TZ_SIGN;
                pos += 2;
                sign = -1;
            } else {
                return DT_TZ_SIGN;
            }
            if ((a = dig(s, n, pos)) < 0 || (b = dig(s, n, pos + 1)) < 0)
                return DT_TZ_HOUR;
            if (pos + 2 < n && s[pos + 2] == ':') {
                pos += 3;
                if ((c1 = dig(s, n, pos)) < 0)
                    return DT_TZ_MINUTE;
            } else if ((c1 = dig(s, n, pos + 2)) >= 0) {
                pos += 2;
            } else {
                return DT_TZ_MINUTE;
            }
            if ((c2 = dig(s, n, pos + 1)) < 0)
                return DT_TZ_MINUTE;
            long mins = c1 * 600 + c2 * 60;
            if (mins >= 3600)
                return DT_TZ_MINUTE_RANGE;
            long off = sign * (a * 36000L + b * 3600L + mins);
            if (off >= 86400 || off <= -86400)
                return DT_TZ_RANGE;
            t->aware = 1;
            t->off = off;
            pos += 2;
        }
    }
    return n > pos ? DT_EXTRA : DT_OK;
}

static int parse_rfc3339(const char *s, size_t n, struct dt *t)
{
    int e = parse_date(s, n, t);
    if (e != DT_OK)
        return e;
    if (n <= 10 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ' && s[10] != '_'))
        return DT_DT_SEP;
    return parse_time(s, n, 11, t);
}

enum { TS_OK, TS_DOT, TS_BAD };

/* speedate's int_parse_bytes, wrapping arithmetic and all: one sign, then
 * digits; TS_DOT when the first bad byte is '.', for the float reader. */
static int ts_int(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (n == 0)
        return TS_BAD;
    if (n >= 2 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    uint64_t v = 0;
    for (size_t k = i; k < n; k++) {
        if (!is_digit(s[k]))
            return s[k] == '.' ? TS_DOT : TS_BAD;
        v = v * 10 + (uint64_t)(s[k] - '0');
        if (k > i && (int64_t)v < 0)
            return TS_BAD;
    }
    *out = neg ? -(long long)v : (long long)v;
    return TS_OK;
}

/* The float syntax Rust (and lexical's standard format) reads:
 * [+-] digits* . digits* [(e|E) [+-] digits+], with a digit in the mantissa. */
static int float_syntax(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < n && is_digit(s[i]); i++)
        digits++;
    if (i >= n || s[i] != '.')
        return 0;
    for (i++; i < n && is_digit(s[i]); i++)
        digits++;
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < n && is_digit(s[i]); i++)
            e++;
        if (e == 0)
            return 0;
    }
    return i == n;
}

/* floor, round-half-away and Rust's saturating casts, without libm. */
static double dfloor(double x)
{
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return x;
    double t = (double)(long long)x;
    return t > x ? t - 1 : t;
}

static double dround(double x)
{
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return x;
    double t = (double)(long long)x, d = x - t;
    return d >= 0.5 ? t + 1 : d <= -0.5 ? t - 1 : t;
}

static long long sat_i64(double x)
{
    if (x != x)
        return 0;
    if (x >= 9223372036854775808.0)
        return LLONG_MAX;
    if (x < -9223372036854775808.0)
        return LLONG_MIN;
    return (long long)x;
}

static uint32_t sat_u32(double x)
{
    if (x != x || x <= 0)
        return 0;
    if (x >= 4294967295.0)
        return UINT32_MAX;
    return (uint32_t)x;
}

static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* t's date and time of day from seconds since the epoch (UTC). */
static void civil(long long sec, struct dt *t)
{
    long long days = sec / 86400, tod = sec % 86400;
    if (tod < 0)
        tod += 86400, days--;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    t->d = (int)(doy - (153 * mp + 2) / 5 + 1);
    t->mo = (int)(mp < 10 ? mp + 3 : mp - 9);
    t->y = yoe + era * 400 + (t->mo <= 2);
    t->h = (int)(tod / 3600);
    t->mi = (int)(tod / 60 % 60);
    t->s = (int)(tod % 60);
}

/* speedate's timestamp_watershed: past 2e10, a number is milliseconds. */
static int watershed(long long ts, long long *sec, uint32_t *us)
{
    if (ts == LLONG_MIN)
        return DT_TOO_SMALL;
    if ((ts < 0 ? -ts : ts) <= MS_WATERSHED) {
        *sec = ts;
        *us = 0;
        return DT_OK;
    }
    long long s = ts / 1000, u = ts % 1000 * 1000;
    if (u < 0)
        s--, u += 1000000;
    *sec = s;
    *us = (uint32_t)u;
    return DT_OK;
}

static int in_range(long long sec)
{
    return sec < UNIX_0000 ? DT_TOO_SMALL : sec > UNIX_9999 ? DT_TOO_LARGE : DT_OK;
}

/* speedate DateTime::from_timestamp_with_config, UTC. */
static int from_ts(long long ts, uint32_t us, struct dt *t)
{
    long long sec;
    uint32_t extra;
    int e = watershed(ts, &sec, &extra);
    if (e != DT_OK)
        return e;
    uint64_t total = (uint64_t)us + extra;
    if (total > UINT32_MAX)
        return DT_TIME_TOO_LARGE;
    if (total >= 1000000) {
        long long add = (long long)(total / 1000000);
        if (sec > LLONG_MAX - add)
            return DT_TIME_TOO_LARGE;
        sec += add;
        total %= 1000000;
    }
    if ((e = in_range(sec)) != DT_OK)
        return e;
    civil(sec, t);
    t->us = (long)total;
    t->aware = 1;
    t->off = 0;
    return DT_OK;
}

/* speedate DateTime::parse_bytes_with_config: RFC 3339-ish text, else a
 * unix timestamp (an integer, or a float read as f64). Only success
 * matters: on failure pydantic shows the date parser's reason. */
static int parse_datetime(const char *s, size_t n, struct dt *t)
{
    long long i;
    if (parse_rfc3339(s, n, t) == DT_OK)
        return DT_OK;
    switch (ts_int(s, n, &i)) {
    case TS_OK:
        return from_ts(i, 0, t);
    case TS_DOT:
        if (float_syntax(s, n)) {
            /* s is NUL-terminated and only holds the syntax checked above,
             * read in the C locale */
            double f = strtod(s, NULL);
            double norm = (f < 0 ? -f : f) > (double)MS_WATERSHED ? f / 1000.0 : f;
            long long sec = sat_i64(dfloor(norm));
            uint32_t us = sat_u32(dround((norm - (double)sec) * 1000000.0));
            return from_ts(sec, us, t);
        }
        return DT_SHORT;
    default:
        return DT_SHORT;
    }
}

/* speedate Date::parse_bytes_with_config: exactly YYYY-MM-DD, else an integer
 * timestamp of an exact day. pydantic reports this parser's error when a
 * datetime fails, and takes a date it accepts as a naive midnight. */
static int parse_date_only(const char *s, size_t n, struct dt *t)
{
    long long i, sec;
    uint32_t us;
    int e = parse_date(s, n, t);
    if (e == DT_OK && n > 10)
        e = DT_EXTRA;
    if (e == DT_OK || ts_int(s, n, &i) != TS_OK)
        return e;
    if ((e = watershed(i, &sec, &us)) != DT_OK || (e = in_range(sec)) != DT_OK)
        return e;
    civil(sec, t);
    if (t->h || t->mi || t->s || us)
        return DT_NOT_EXACT;
    return DT_OK;
}

/* One spelling per value pydantic reads: an aware value as its UTC instant
 * with Z, a naive one (a bare date is a naive midnight) as its wall time
 * without; both with .ffffff only for a non-zero fraction. speedate reads
 * either back as the same value, and a naive one never equals an aware. */
static int check_datetime(const struct qn_param *p, const char *v, size_t n,
                          char **canon, struct fail *f)
{
    struct dt t = {0}, u;
    char c[128];
    int k;

    if (parse_datetime(v, n, &t) != DT_OK) {
        int e = parse_date_only(v, n, &t);
        if (e != DT_OK)
            return fail_error(f, "datetime_from_date_parsing",
                              "Input should be a valid datetime or date, ",
                              dt_text[e]);
        t.aware = 0; /* a date alone is a naive midnight */
    }
    if (t.y == 0)
        return fail_error(f, "datetime_parsing", "Input should be a valid datetime, ",
                          "year 0 is out of range");
    if (t.aware) {
        long long sec = days_from_civil(t.y, t.mo, t.d) * 86400 + t.h * 3600LL +
                        t.mi * 60LL + t.s - t.off;
        civil(sec, &u);
        /* an instant outside years 1-9999 in UTC cannot be sent as UTC: the
         * upstream would reject it, so it stays as the client wrote it */
        if (u.y < 1 || u.y > 9999) {
            *canon = dupn(v, n);
            return *canon ? 0 : -1;
        }
    } else {
        u = t;
    }
    k = snprintf(c, sizeof c, "%04lld-%02d-%02dT%02d:%02d:%02d", u.y, u.mo, u.d, u.h, u.mi,
                 u.s);
    if (t.us != 0)
        k += snprintf(c + k, sizeof c - (size_t)k, ".%06ld", t.us);
    if (t.aware)
        snprintf(c + k, sizeof c - (size_t)k, "Z");
    *canon = dupn(c, strlen(c));
    return *canon ? 0 : -1;
}

static const check_fn checks[] = {
    [QN_INT] = check_int,
    [QN_ENUM] = check_enum,
    [QN_STR] = check_str,
    [QN_UUID] = check_uuid,
    [QN_DATETIME] = check_datetime,
};

struct item {
    const char *name, *val;
    size_t nlen, vlen, seq;
};

static int item_cmp(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, n);
    if (c != 0)
        return c;
    if (a->nlen != b->nlen)
        return a->nlen < b->nlen ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void gstr(yajl_gen g, const char *s, size_t n)
{
    yajl_gen_string(g, (const unsigned char *)s, n);
}

static void gkey(yajl_gen g, const char *s)
{
    gstr(g, s, strlen(s));
}

/* The generated JSON; \u escapes lowercased, as Python's json.dumps writes
 * them (yajl writes \u001F), so the body matches the upstream's bytes. */
static char *gen_take(yajl_gen g)
{
    const unsigned char *p;
    size_t len;
    if (yajl_gen_get_buf(g, &p, &len) != yajl_gen_status_ok)
        return NULL;
    char *s = dupn((const char *)p, len);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u')
            for (size_t k = i + 2; k < i + 6 && k < len; k++)
                if (s[k] >= 'A' && s[k] <= 'F')
                    s[k] = (char)(s[k] - 'A' + 'a');
        i++;
    }
    return s;
}

static void emit_fail(yajl_gen g, const char *name, const char *input, size_t n,
                      const struct fail *f)
{
    yajl_gen_map_open(g);
    gkey(g, "type");
    gkey(g, f->type);
    gkey(g, "loc");
    yajl_gen_array_open(g);
    gkey(g, "query");
    gkey(g, name);
    yajl_gen_array_close(g);
    gkey(g, "msg");
    gkey(g, f->msg);
    gkey(g, "input");
    gstr(g, input, n);
    if (f->ctx_key != NULL) {
        gkey(g, "ctx");
        yajl_gen_map_open(g);
        gkey(g, f->ctx_key);
        if (f->ctx_str != NULL)
            gkey(g, f->ctx_str);
        else
            yajl_gen_integer(g, f->ctx_num);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
}

static int malformed(struct qn_result *out, const char *detail)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        return -1;
    yajl_gen_map_open(g);
    gkey(g, "detail");
    gkey(g, detail);
    yajl_gen_map_close(g);
    out->body = gen_take(g);
    yajl_gen_free(g);
    out->status = QN_MALFORMED;
    return out->body ? 0 : -1;
}

static void encode(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            put(b, s + i, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(b, e, 3);
        }
    }
}

static int find_param(const struct qn_schema *sc, const struct item *it)
{
    for (size_t k = 0; k < sc->nparams; k++)
        if (strlen(sc->params[k].name) == it->nlen &&
            memcmp(sc->params[k].name, it->name, it->nlen) == 0)
            return (int)k;
    return -1;
}

/* Validates the winning value of each known parameter in schema order. On
 * success canon[k] holds each present one's canonical value; otherwise
 * out gets the 422 body. Returns 0 or -1 (out of memory). */
static int validate(const struct qn_schema *sc, const struct item *items,
                    const size_t *last, char **canon, struct qn_result *out)
{
    yajl_gen g = NULL;
    int rc = 0;

    for (size_t k = 0; k < sc->nparams && rc == 0; k++) {
        const struct qn_param *p = &sc->params[k];
        struct fail f = {0};
        if (last[k] == 0)
            continue;
        const struct item *it = &items[last[k] - 1];
        int r = checks[p->type](p, it->val, it->vlen, &canon[k], &f);
        if (r == 1) {
            if (g == NULL) {
                if ((g = yajl_gen_alloc(NULL)) == NULL) {
                    rc = -1;
                } else {
                    yajl_gen_map_open(g);
                    gkey(g, "detail");
                    yajl_gen_array_open(g);
                }
            }
            if (g != NULL)
                emit_fail(g, p->name, it->val, it->vlen, &f);
        } else if (r < 0) {
            rc = -1;
        }
        free(f.msg);
        free(f.ctx_str);
    }
    if (g != NULL) {
        if (rc == 0) {
            yajl_gen_array_close(g);
            yajl_gen_map_close(g);
            out->status = QN_INVALID;
            if ((out->body = gen_take(g)) == NULL)
                rc = -1;
        }
        yajl_gen_free(g);
    }
    return rc;
}

/* The canonical query: the known parameters less those equal to their
 * default, plus every unknown one, stably sorted by name and encoded. */
static int build(const struct qn_schema *sc, const struct item *items,
                 size_t nitems, const int *known, char *const *canon,
                 struct qn_result *out)
{
    struct item *list = malloc((nitems + 1) * sizeof *list);
    struct buf b = {0};
    size_t m = 0;

    if (list == NULL)
        return -1;
    for (size_t k = 0; k < sc->nparams; k++) {
        const struct qn_param *p = &sc->params[k];
        if (canon[k] == NULL || (p->dflt != NULL && strcmp(canon[k], p->dflt) == 0))
            continue;
        list[m++] = (struct item){p->name, canon[k], strlen(p->name),
                                  strlen(canon[k]), 0};
    }
    for (size_t i = 0; i < nitems; i++)
        if (known[i] < 0)
            list[m++] = items[i];
    qsort(list, m, sizeof *list, item_cmp);
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            put(&b, "&", 1);
        encode(&b, list[i].name, list[i].nlen);
        put(&b, "=", 1);
        encode(&b, list[i].val, list[i].vlen);
    }
    free(list);
    out->canonical = take(&b);
    if (out->canonical == NULL)
        return -1;
    for (size_t k = 0; k < sc->nparams; k++) {
        if (canon[k] != NULL && strcmp(sc->params[k].name, "project_id") == 0) {
            out->project_id = dupn(canon[k], strlen(canon[k]));
            if (out->project_id == NULL)
                return -1;
        }
    }
    out->status = QN_OK;
    return 0;
}

int qn_normalize_query(enum qn_route r, const struct rr_query *rq, struct qn_result *out)
{
    if (out == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    if ((unsigned)r >= QN_NROUTES || rq == NULL)
        return -1;

    const struct qn_schema *sc = &qn_routes[r];
    size_t nitems = rq->n;
    struct item *items = malloc((nitems + 1) * sizeof *items);
    int *known = malloc((nitems + 1) * sizeof *known);
    size_t *last = calloc(sc->nparams, sizeof *last);
    char **canon = calloc(sc->nparams, sizeof *canon);
    int rc = -1;

    if (items == NULL || known == NULL || last == NULL || canon == NULL)
        goto done;
    for (size_t i = 0; i < nitems; i++) {
        const struct rr_param *p = &rq->params[i];
        items[i] = (struct item){p->name, p->value, p->nlen, p->vlen, i};
    }
    /* the last occurrence of a known parameter is the one the server reads */
    for (size_t i = 0; i < nitems; i++)
        if ((known[i] = find_param(sc, &items[i])) >= 0)
            last[known[i]] = i + 1;
    rc = validate(sc, items, last, canon, out);
    if (rc == 0 && out->status == QN_OK)
        rc = build(sc, items, nitems, known, canon, out);
done:
    if (canon != NULL)
        for (size_t k = 0; k < sc->nparams; k++)
            free(canon[k]);
    free(canon);
    free(last);
    free(known);
    free(items);
    if (rc != 0)
        qn_result_free(out);
    return rc;
}

int qn_normalize(enum qn_route r, const char *raw_query, size_t max_params,
                 struct qn_result *out)
{
    struct rr_query q;
    const char *why;
    int rc;

    if (out == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    switch (rr_query_parse(raw_query, max_params, &q, &why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        return malformed(out, why);
    default:
        return -1;
    }
    rc = qn_normalize_query(r, &q, out);
    rr_query_free(&q);
    return rc;
}

void qn_result_free(struct qn_result *res)
{
    if (res == NULL)
        return;
    free(res->canonical);
    free(res->project_id);
    free(res->body);
    res->canonical = res->project_id = res->body = NULL;
}
