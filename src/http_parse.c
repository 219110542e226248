#include "http_parse.h"

#include <string.h>
#include <strings.h>

#define MAX_LEADING_EMPTY 4

#define C_TCHAR 1                /* RFC 9110 token character */
#define C_VCHAR 2                /* visible ASCII, 0x21..0x7e */
#define C_FIELD 4                /* field-value byte: HTAB, SP, VCHAR, obs-text */

static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

#define R_LINE "Malformed request line"
#define R_TARGET "Malformed request target"
#define R_HEADER "Malformed header"
#define R_FOLD "Obsolete header line folding is not accepted"
#define R_CR "Bare CR in the request head"
#define R_VERSION "HTTP version not supported"
#define R_URI "URI too long"
#define R_FIELDS "Request header fields too large"

static enum hp_res fail(int *status, const char **reason, int st, const char *why)
{
    *status = st;
    *reason = why;
    return HP_ERROR;
}

/* Ran out of bytes at a bound: more input helps only if the bound was the
 * end of the input, not the limit. */
static enum hp_res more(int at_limit, int *status, const char **reason, int st,
                        const char *why)
{
    return at_limit ? fail(status, reason, st, why) : HP_INCOMPLETE;
}

/* The line end at b[i] (i < end): its length, 2 for CRLF and 1 for a bare
 * LF, or 0 when b[i] ends no line; EOL_SHORT when a CR is the last byte
 * before end, EOL_BARE_CR for a CR that no LF follows. */
enum { EOL_SHORT = -1, EOL_BARE_CR = -2 };

static int eol(const unsigned char *b, size_t i, size_t end)
{
    if (b[i] == '\n')
        return 1;
    if (b[i] != '\r')
        return 0;
    if (i + 1 >= end)
        return EOL_SHORT;
    return b[i + 1] == '\n' ? 2 : EOL_BARE_CR;
}

int hp_is_token(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!(cls[(unsigned char)s[i]] & C_TCHAR))
            return 0;
    return 1;
}

/* "HTTP/1.0" or "HTTP/1.1": the minor version; another "HTTP/<digits>..."
 * is a version we do not speak (-2); anything else is no version (-1). */
static int version(const unsigned char *v, size_t n)
{
    size_t i;

    if (n == 8 && v[0] == 'H' && v[1] == 'T' && v[2] == 'T' && v[3] == 'P' && v[4] == '/' &&
        v[5] == '1' && v[6] == '.' && (v[7] == '0' || v[7] == '1'))
        return v[7] - '0';
    if (n < 6 || v[0] != 'H' || v[1] != 'T' || v[2] != 'T' || v[3] != 'P' || v[4] != '/')
        return -1;
    for (i = 5; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] == '.' && i > 5)))
            return -1;
    return -2;
}

/* The request line, from b[*pi] to at most end (its limit, or the input's
 * end when cut is 0). HP_OK: r's method, target and minor are set and *pi
 * is past the line end. */
static enum hp_res request_line(const char *buf, size_t *pi, size_t end, int cut,
                                struct hp_request *r, int *status, const char **reason)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = *pi, mstart = i, tstart, vstart;
    int minor, n;

    while (i < end && (cls[b[i]] & C_TCHAR))
        i++;
    if (i == end)
        return more(cut, status, reason, 414, R_URI);
    if (b[i] != ' ' || i == mstart)
        return fail(status, reason, 400, R_LINE);
    r->method = buf + mstart;
    r->method_len = i - mstart;
    i++;

    tstart = i;
    r->target = buf + tstart;
    while (i < end && (cls[b[i]] & C_VCHAR))
        i++;
    r->target_len = i - tstart;
    if (i == end)
        return more(cut, status, reason, 414, R_URI);
    if (b[i] != ' ') {
        /* A line end here is a request line without a version (HTTP/0.9). */
        if (b[i] == '\r' || b[i] == '\n' || i == tstart)
            return fail(status, reason, 400, R_LINE);
        return fail(status, reason, 400, R_TARGET);
    }
    if (i == tstart)
        return fail(status, reason, 400, R_LINE);
    i++;

    vstart = i;
    while (i < end && (cls[b[i]] & C_VCHAR))
        i++;
    if (i == end)
        return more(cut, status, reason, 414, R_URI);
    if ((n = eol(b, i, end)) == EOL_SHORT)
        return more(cut, status, reason, 414, R_URI);
    if (n == EOL_BARE_CR)
        return fail(status, reason, 400, R_CR);
    if (n == 0)
        return fail(status, reason, 400, R_LINE);
    minor = version(b + vstart, i - vstart);
    if (minor == -1)
        return fail(status, reason, 400, R_LINE);
    if (minor == -2)
        return fail(status, reason, 505, R_VERSION);
    r->minor = minor;
    *pi = i + (size_t)n;
    return HP_OK;
}

/* One field line "name: value", from b[*pi] to at most hend (as end above).
 * HP_OK: the field is stored (when r->headers is set), counted, and *pi is
 * past its line end. */
static enum hp_res field_line(const char *buf, size_t *pi, size_t hend, int cut,
                              struct hp_request *r, int *status, const char **reason)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = *pi, nstart = i, nlen, vstart, vend;
    int n;

    while (i < hend && (cls[b[i]] & C_TCHAR))
        i++;
    if (i >= hend)
        return more(cut, status, reason, 431, R_FIELDS);
    /* No whitespace before the colon (RFC 9112 5.1): smuggling. */
    if (b[i] != ':' || i == nstart)
        return fail(status, reason, 400, R_HEADER);
    nlen = i - nstart;
    i++;
    while (i < hend && (b[i] == ' ' || b[i] == '\t'))
        i++;
    vstart = vend = i;
    while (i < hend && (cls[b[i]] & C_FIELD)) {
        if (b[i] != ' ' && b[i] != '\t')
            vend = i + 1;
        i++;
    }
    if (i >= hend || (n = eol(b, i, hend)) == EOL_SHORT)
        return more(cut, status, reason, 431, R_FIELDS);
    if (n == EOL_BARE_CR)
        return fail(status, reason, 400, R_CR);
    if (n == 0)
        return fail(status, reason, 400, R_HEADER);
    if (r->headers) {
        struct hp_header *h = &r->headers[r->nheaders];
        h->name = buf + nstart;
        h->name_len = nlen;
        h->value = buf + vstart;
        h->value_len = vend - vstart;
    }
    r->nheaders++;
    *pi = i + (size_t)n;
    return HP_OK;
}

enum hp_res hp_parse(const char *buf, size_t len, const struct hp_limits *lim,
                     struct hp_request *r, int *status, const char **reason)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = 0, start, hend;
    int rl_cut, h_cut, n;
    enum hp_res res;
    unsigned k;

    r->method = r->target = NULL;
    r->method_len = r->target_len = 0;
    r->nheaders = 0;
    r->head_len = 0;
    r->minor = 0;

    for (k = 0; k < MAX_LEADING_EMPTY && i < len; k++) {
        if ((n = eol(b, i, len)) == EOL_SHORT)
            return HP_INCOMPLETE;
        if (n == EOL_BARE_CR)
            return fail(status, reason, 400, R_CR);
        if (n == 0)
            break;
        i += (size_t)n;
    }
    start = i;
    /* Scan the request line only as far as its limit allows. */
    rl_cut = len - start >= lim->max_request_line;
    res = request_line(buf, &i, rl_cut ? start + lim->max_request_line : len, rl_cut, r,
                       status, reason);
    if (res != HP_OK)
        return res;

    h_cut = len - start >= lim->max_head;
    hend = h_cut ? start + lim->max_head : len;
    if (i > hend)
        return fail(status, reason, 431, R_FIELDS);
    for (;;) {
        if (i >= hend || (n = eol(b, i, hend)) == EOL_SHORT)
            return more(h_cut, status, reason, 431, R_FIELDS);
        if (n == EOL_BARE_CR)
            return fail(status, reason, 400, R_CR);
        if (n > 0) {             /* the empty line: the end of the head */
            i += (size_t)n;
            break;
        }
        if (b[i] == ' ' || b[i] == '\t')
            return fail(status, reason, 400, R_FOLD);
        if (r->nheaders >= lim->max_headers)
            return fail(status, reason, 431, R_FIELDS);
        if ((res = field_line(buf, &i, hend, h_cut, r, status, reason)) != HP_OK)
            return res;
    }
    r->head_len = i;
    return HP_OK;
}

int hp_list_has(const char *value, const char *token)
{
    size_t n = strlen(token);

    while (value && *value) {
        while (*value == ' ' || *value == '\t' || *value == ',')
            value++;
        if (strncasecmp(value, token, n) == 0 &&
            (value[n] == '\0' || value[n] == ',' || value[n] == ' ' || value[n] == '\t' ||
             value[n] == '='))
            return 1;
        value += strcspn(value, ",");
    }
    return 0;
}
