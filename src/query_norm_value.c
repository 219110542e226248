/* query_norm_value: the generic value canonicalizers of the normalizer
 * (query_norm_int.h): pydantic's int, enum, str and UUID, each to one
 * canonical spelling or to the error pydantic would give; and the string
 * buffer and error constructors the other parts share. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_norm_int.h"
#include "request_read.h"
#include "util.h"

void qn_put(struct qn_buf *b, const void *s, size_t n)
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

void qn_put_str(struct qn_buf *b, const char *s)
{
    qn_put(b, s, strlen(s));
}

char *qn_take(struct qn_buf *b)
{
    qn_put(b, "", 0);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    char *p = b->p;
    b->p = NULL;
    return p;
}

char *qn_dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
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

static int fail_plain(struct qn_fail *f, const char *type, const char *msg)
{
    f->type = type;
    f->msg = qn_dupn(msg, strlen(msg));
    return f->msg ? 1 : -1;
}

/* pydantic's "<prefix>, <error>" messages also carry ctx {"error": ...}. */
int qn_fail_error(struct qn_fail *f, const char *type, const char *prefix,
                  const char *error)
{
    struct qn_buf m = {0};
    qn_put_str(&m, prefix);
    qn_put_str(&m, error);
    f->type = type;
    f->msg = qn_take(&m);
    f->ctx_key = "error";
    f->ctx_str = qn_dupn(error, strlen(error));
    return f->msg && f->ctx_str ? 1 : -1;
}

static int fail_bound(struct qn_fail *f, const char *type, const char *key,
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
    for (j = i; j < n && qn_is_digit(s[j]); j++)
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
static int clean_int(const char *s, size_t n, struct qn_buf *out)
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
            qn_put(out, "-", 1);
        for (i = a; i < b; i++)
            if (s[i] != '_')
                qn_put(out, s + i, 1);
        return 1;
    }
    if (n == b - a)
        return 0;
    if (neg)
        qn_put(out, "-", 1);
    qn_put(out, s + a, b - a);
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

int qn_check_int(const struct qn_param *p, const char *v, size_t n,
                 char **canon, struct qn_fail *f)
{
    static const char parsing[] =
        "Input should be a valid integer, unable to parse string as an integer";
    struct qn_buf cl = {0}, out = {0};
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
        qn_put(&out, "-", 1);
    qn_put(&out, s + d0, len - d0);
    free(cl.p);
    if ((*canon = qn_take(&out)) == NULL)
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

int qn_check_enum(const struct qn_param *p, const char *v, size_t n,
                  char **canon, struct qn_fail *f)
{
    size_t count = 0;
    for (const char *const *e = p->enums; *e != NULL; e++, count++) {
        if (strlen(*e) == n && memcmp(*e, v, n) == 0) {
            *canon = qn_dupn(v, n);
            return *canon ? 0 : -1;
        }
    }
    /* pydantic: 'a', 'b' or 'c' */
    struct qn_buf x = {0}, m = {0};
    for (size_t k = 0; k < count; k++) {
        if (k > 0)
            qn_put_str(&x, k + 1 == count ? " or " : ", ");
        qn_put(&x, "'", 1);
        qn_put_str(&x, p->enums[k]);
        qn_put(&x, "'", 1);
    }
    f->type = "enum";
    f->ctx_key = "expected";
    f->ctx_str = qn_take(&x);
    if (f->ctx_str == NULL)
        return -1;
    qn_put_str(&m, "Input should be ");
    qn_put_str(&m, f->ctx_str);
    f->msg = qn_take(&m);
    return f->msg ? 1 : -1;
}

int qn_check_str(const struct qn_param *p, const char *v, size_t n,
                 char **canon, struct qn_fail *f)
{
    *canon = qn_dupn(v, n);
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

int qn_check_uuid(const struct qn_param *p, const char *v, size_t n,
                  char **canon, struct qn_fail *f)
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
        return qn_fail_error(f, "uuid_parsing", "Input should be a valid UUID, ", why);
    }
    *canon = qn_dupn(c, 36);
    return *canon ? 0 : -1;
}
