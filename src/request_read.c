/* request_read: see request_read.h. The upstream reads queries with
 * Starlette's parse_qsl, paths with uvicorn's unquote and bodies with
 * Python's json (FastAPI); each function here names what it follows. */
#define _GNU_SOURCE             /* memmem */
#include "request_read.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

#include "util.h"

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if (s[i] < 0x80) {       /* the common case, without a call */
            i++;
            continue;
        }
        if ((k = utf8_seq_len(s + i, n - i)) == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* Percent-decodes s[0..n) into out (room for n + 1 bytes), '+' first
 * becoming a space when plus is set (parse_qsl does; paths do not).
 * Python keeps a stray '%' as it is and turns bad UTF-8 into U+FFFD;
 * lcgate refuses both, so that every value it decides on, forwards or
 * echoes is the text the upstream reads. NULL, or why not. */
static const char *decode(const char *s, size_t n, int plus, char *out, size_t *outn)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+' && plus) {
            c = ' ';
        } else if (c == '%') {
            int h = i + 2 < n ? util_hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? util_hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0)
                return "invalid percent-encoding";
            c = h << 4 | l;
            if (c == 0)
                return "encoded NUL byte";
            i += 2;
        }
        out[j++] = (char)c;
    }
    out[j] = '\0';
    *outn = j;
    if (!utf8_valid((const unsigned char *)out, j))
        return "invalid UTF-8";
    return NULL;
}

/* ---- queries ---- */

enum rr_status rr_query_parse(const char *raw, size_t max_params, struct rr_query *q,
                              const char **why)
{
    const char *s = raw ? raw : "";
    size_t n = strlen(s), count = 0, start = 0, k = 0;
    char *dec;
    const char *bad;

    memset(q, 0, sizeof(*q));
    *why = NULL;
    /* Starlette reads raw bytes as Latin-1 but %-escapes as UTF-8: a raw
     * non-ASCII byte would mean something else once re-encoded. */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            *why = "Malformed query string: non-ASCII byte must be percent-encoded";
            return RR_MALFORMED;
        }
        /* A URL parser on the way (curl's among them) ends the query at
         * '#': the upstream would read less than lcgate did. */
        if (s[i] == '#' || (unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            *why = "Malformed query string: '#', space and control bytes must be "
                   "percent-encoded";
            return RR_MALFORMED;
        }
    }
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '&') {
            count += i > start;
            start = i + 1;
        }
    }
    if (max_params > 0 && count > max_params) {
        *why = "Too many query parameters";
        return RR_MALFORMED;
    }
    if ((q->params = calloc(count + 1, sizeof(*q->params))) == NULL ||
        (q->buf = malloc(n + 2 * count + 1)) == NULL) {
        rr_query_free(q);
        return RR_NOMEM;
    }
    dec = q->buf;
    start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '&')
            continue;
        if (i > start) {
            const char *piece = s + start;
            size_t plen = i - start;
            const char *eq = memchr(piece, '=', plen);
            size_t nl = eq ? (size_t)(eq - piece) : plen;
            struct rr_param *p = &q->params[k++];

            p->name = dec;
            if ((bad = decode(piece, nl, 1, dec, &p->nlen)) != NULL)
                goto malformed;
            dec += p->nlen + 1;
            p->value = dec;
            if (eq != NULL) {
                if ((bad = decode(eq + 1, plen - nl - 1, 1, dec, &p->vlen)) != NULL)
                    goto malformed;
            } else {
                dec[0] = '\0';
                p->vlen = 0;
            }
            dec += p->vlen + 1;
        }
        start = i + 1;
    }
    q->n = k;
    return RR_OK;
malformed:
    rr_query_free(q);
    if (strcmp(bad, "invalid percent-encoding") == 0)
        *why = "Malformed query string: invalid percent-encoding";
    else if (strcmp(bad, "encoded NUL byte") == 0)
        *why = "Malformed query string: encoded NUL byte";
    else
        *why = "Malformed query string: invalid UTF-8";
    return RR_MALFORMED;
}

const struct rr_param *rr_query_last(const struct rr_query *q, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = q->n; i-- > 0;)
        if (q->params[i].nlen == n && memcmp(q->params[i].name, name, n) == 0)
            return &q->params[i];
    return NULL;
}

void rr_query_free(struct rr_query *q)
{
    free(q->params);
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

/* ---- paths ---- */

enum rr_status rr_path_decode(const char *raw, char **out, const char **why)
{
    size_t n = strlen(raw), m;
    char *dec;
    const char *bad;

    *out = NULL;
    *why = "Malformed request path";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
            return RR_MALFORMED;
    }
    if ((dec = malloc(n + 1)) == NULL)
        return RR_NOMEM;
    if ((bad = decode(raw, n, 0, dec, &m)) != NULL)
        goto malformed;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)dec[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            goto malformed;
    }
    for (size_t i = 0; i < m;) {
        size_t len = strcspn(dec + i, "/");
        if ((len == 1 && dec[i] == '.') || (len == 2 && dec[i] == '.' && dec[i + 1] == '.'))
            goto malformed;
        i += len + 1;
    }
    *why = NULL;
    *out = dec;
    return RR_OK;
malformed:
    free(dec);
    return RR_MALFORMED;
}

char *rr_path_encode(const char *decoded)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(decoded), j = 0;
    char *out = malloc(3 * n + 1);

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)decoded[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~!$&'()*+,;=:@/", c) != NULL) {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
    return out;
}

const char *rr_path_project(const char *decoded, size_t *len)
{
    static const char prefix[] = "/projects/";
    const char *p = decoded;

    /* "/projects/<id>" names a project, whatever comes before it. */
    while ((p = strstr(p, prefix)) != NULL) {
        const char *id = p + sizeof(prefix) - 1;
        size_t n = strcspn(id, "/");
        char canon[37];
        if (n > 0 && rr_uuid_canon(id, n, canon) == 0) {
            *len = n;
            return id;
        }
        p = id;
    }
    return NULL;
}

/* ---- project ids ---- */

static int uuid_bytes(const char *s, const int *pos, unsigned char out[16])
{
    for (int i = 0; i < 16; i++) {
        int h = util_hexval(s[pos[i]]), l = util_hexval(s[pos[i] + 1]);
        if (h < 0 || l < 0)
            return -1;
        out[i] = (unsigned char)(h << 4 | l);
    }
    return 0;
}

int rr_uuid_canon(const char *s, size_t n, char out[37])
{
    static const int simple[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    static const int hyph[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    static const char hex[] = "0123456789abcdef";
    unsigned char u[16];
    int r = -1;

    if (n == 38 && s[0] == '{' && s[37] == '}')
        s += 1, n = 36;
    else if (n == 45 && memcmp(s, "urn:uuid:", 9) == 0)
        s += 9, n = 36;
    if (n == 32)
        r = uuid_bytes(s, simple, u);
    else if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-')
        r = uuid_bytes(s, hyph, u);
    if (r != 0)
        return -1;
    for (int i = 0, j = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[u[i] >> 4];
        out[j++] = hex[u[i] & 15];
    }
    out[36] = '\0';
    return 0;
}

char *rr_project_canon(const char *s, size_t n)
{
    char canon[37];

    if (rr_uuid_canon(s, n, canon) == 0)
        return strdup(canon);
    return strndup(s, n);
}

/* ---- bodies ---- */

/* A top-level member of a JSON object, the last of duplicates winning. */
struct member {
    const char *name;
    size_t nlen;
    int depth;                   /* of maps and arrays open */
    int want;                    /* the next value is the member's */
    int top_is_map;
    char *value;                 /* its last value, when a string */
    int oom;
};

static int take_value(struct member *m, const unsigned char *s, size_t n, int is_string)
{
    if (m->depth == 1 && m->want) {
        free(m->value);
        m->value = NULL;
        if (is_string && (m->value = strndup((const char *)s, n)) == NULL) {
            m->oom = 1;
            return 0;
        }
    }
    m->want = 0;
    return 1;
}

static int on_null(void *ctx)
{
    return take_value(ctx, NULL, 0, 0);
}

static int on_bool(void *ctx, int b)
{
    return take_value(ctx, NULL, 0, 0);
}

static int on_number(void *ctx, const char *s, size_t n)
{
    return take_value(ctx, NULL, 0, 0);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    /* A value holding a NUL byte is no project id lcgate can name. */
    if (memchr(s, '\0', n) != NULL)
        return take_value(ctx, NULL, 0, 0);
    return take_value(ctx, s, n, 1);
}

static int on_open(void *ctx)
{
    struct member *m = ctx;

    if (m->depth == 0)
        m->top_is_map = 0;
    take_value(m, NULL, 0, 0);
    m->depth++;
    return 1;
}

static int on_open_map(void *ctx)
{
    struct member *m = ctx;
    int top = m->depth == 0;

    on_open(ctx);
    if (top)
        m->top_is_map = 1;
    return 1;
}

static int on_key(void *ctx, const unsigned char *s, size_t n)
{
    struct member *m = ctx;

    if (m->depth == 1)
        m->want = n == m->nlen && memcmp(s, m->name, n) == 0;
    return 1;
}

static int on_close(void *ctx)
{
    ((struct member *)ctx)->depth--;
    return 1;
}

static const yajl_callbacks member_cbs = {
    on_null, on_bool, NULL, NULL, on_number, on_string,
    on_open_map, on_key, on_close, on_open, on_close,
};

/* The media type of a Content-Type value, lowercased, in out. */
static void media_type(const char *ct, char *out, size_t len)
{
    size_t i = 0;

    out[0] = '\0';
    if (ct == NULL)
        return;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (; ct[i] && ct[i] != ';' && ct[i] != ' ' && ct[i] != '\t' && i + 1 < len; i++)
        out[i] = (char)((ct[i] >= 'A' && ct[i] <= 'Z') ? ct[i] - 'A' + 'a' : ct[i]);
    out[i] = '\0';
}

/* FastAPI reads a body as JSON when it has no Content-Type, or
 * application/json or application/<anything>+json. */
static int json_typed(const char *mt)
{
    size_t n = strlen(mt);

    return n == 0 || strcmp(mt, "application/json") == 0 ||
           (strncmp(mt, "application/", 12) == 0 && n > 17 && strcmp(mt + n - 5, "+json") == 0);
}

static enum rr_body json_member(const char *mt, const char *body, size_t len, const char *name,
                                char **out)
{
    struct member m = {name, strlen(name), 0, 0, 0, NULL, 0};
    yajl_handle h = yajl_alloc(&member_cbs, NULL, &m);
    int ok;

    if (h == NULL)
        return RR_BODY_NOMEM;
    ok = yajl_parse(h, (const unsigned char *)body, len) == yajl_status_ok &&
         yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    if (m.oom) {
        free(m.value);
        return RR_BODY_NOMEM;
    }
    if (!ok) {
        free(m.value);
        /* Another type of body that is not JSON says nothing of projects;
         * one the upstream would parse (Python's json takes NaN, a BOM,
         * UTF-16...) may say what lcgate cannot read. */
        return json_typed(mt) ? RR_BODY_UNREADABLE : RR_BODY_ABSENT;
    }
    if (m.value == NULL || !m.top_is_map)
        return free(m.value), RR_BODY_ABSENT;
    *out = m.value;
    return RR_BODY_FOUND;
}

static enum rr_body form_member(const char *body, size_t len, const char *name, char **out)
{
    struct rr_query q;
    const struct rr_param *p;
    const char *why;
    char *copy;
    enum rr_status st;

    if (memchr(body, '\0', len) != NULL)
        return RR_BODY_UNREADABLE;
    if ((copy = strndup(body, len)) == NULL)
        return RR_BODY_NOMEM;
    st = rr_query_parse(copy, 0, &q, &why);
    free(copy);
    if (st == RR_NOMEM)
        return RR_BODY_NOMEM;
    if (st != RR_OK)
        return RR_BODY_UNREADABLE;
    if ((p = rr_query_last(&q, name)) == NULL) {
        rr_query_free(&q);
        return RR_BODY_ABSENT;
    }
    *out = strndup(p->value, p->vlen);
    rr_query_free(&q);
    return *out ? RR_BODY_FOUND : RR_BODY_NOMEM;
}

/* Does a multipart body have a part named name? Its parts are not read:
 * such a body is unreadable (the client must name the project in the
 * query instead). */
static int multipart_names(const char *body, size_t len, const char *name)
{
    char pat[128];
    size_t n;

    if (strlen(name) + 8 > sizeof(pat))
        return 1;
    n = (size_t)snprintf(pat, sizeof(pat), "name=\"%s\"", name);
    if (memmem(body, len, pat, n) != NULL)
        return 1;
    n = (size_t)snprintf(pat, sizeof(pat), "name=%s", name);
    return memmem(body, len, pat, n) != NULL;
}

enum rr_body rr_body_member(const char *content_type, const char *body, size_t len,
                            const char *name, char **out)
{
    char mt[128];

    *out = NULL;
    if (len == 0)
        return RR_BODY_ABSENT;
    media_type(content_type, mt, sizeof(mt));
    if (strcmp(mt, "application/x-www-form-urlencoded") == 0)
        return form_member(body, len, name, out);
    if (strcmp(mt, "multipart/form-data") == 0)
        return multipart_names(body, len, name) ? RR_BODY_UNREADABLE : RR_BODY_ABSENT;
    return json_member(mt, body, len, name, out);
}
