/* hs_request: reading a request for the HTTP server (hs_int.h): the head
 * (parsed by http_parse), the checks hs.h lists, and Content-Length or
 * chunked bodies. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "hs_int.h"
#include "http_parse.h"
#include "log.h"
#include "util.h"

#define HEAD_KEEP 16384          /* a bigger head buffer is freed after use */

/* Ready the connection for its next request. */
void hs_reset_request(struct hs_conn *c)
{
    memset(&c->req, 0, sizeof(c->req));
    c->req.peer = c->peer;
    c->have_req = 0;
    c->close_after = 0;
    c->ka10 = 0;
    c->head_method = 0;
    c->scan = 0;
    c->seen_lf = 0;
    c->out_len = 0;
    c->out_date = 0;
    c->chunked = 0;
    c->ch = CH_SIZE;
    c->body_left = c->body_total = 0;
    c->trailer_bytes = 0;
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    if (c->head_cap > HEAD_KEEP) {
        free(c->head);
        c->head = NULL;
        c->head_cap = 0;
    }
}

/* Where the head in p[0..n) ends (just past its empty line), or 0: the
 * search goes on from c->scan, so that every byte is looked at about once. */
static size_t find_head_end(struct hs_conn *c, const char *p, size_t n)
{
    size_t i = c->scan;
    const char *q;

    while (i < n && (q = memchr(p + i, '\n', n - i)) != NULL) {
        i = (size_t)(q - p);
        c->seen_lf = 1;
        if (i + 1 >= n || (p[i + 1] == '\r' && i + 2 >= n)) {
            c->scan = i;
            return 0;
        }
        c->scan = i + 1;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
        i++;
    }
    c->scan = n;
    return 0;
}

static int grow_arrays(struct hs_conn *c, unsigned want)
{
    struct hp_header *hp;
    struct hs_header *hdr;

    if (c->hdr_cap >= want)
        return 0;
    if ((hp = realloc(c->hp, want * sizeof(*hp))) == NULL)
        return -1;
    c->hp = hp;
    if ((hdr = realloc(c->hdr, want * sizeof(*hdr))) == NULL)
        return -1;
    c->hdr = hdr;
    c->hdr_cap = want;
    return 0;
}

static enum hs_method method_of(const char *m)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    unsigned i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(m, names[i]) == 0)
            return (enum hs_method)i;
    return HS_OTHER;
}

/* Content-Length: digits only, else -1; a value past what uint64_t holds
 * saturates (then 413). */
static int parse_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;

    if (*v == '\0')
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        n = n > UINT64_MAX / 10 - 1 ? UINT64_MAX : n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

/* Fill req from the parsed head in c->head, NUL-terminating its parts in
 * place. */
static void fill_request(struct hs_conn *c, const struct hp_request *hr)
{
    struct hs_req *r = &c->req;
    char *h = c->head, *path;
    const char *q;
    unsigned i;
    size_t plen;

    h[hr->method - h + hr->method_len] = '\0';
    h[hr->target - h + hr->target_len] = '\0';
    for (i = 0; i < hr->nheaders; i++) {
        const struct hp_header *f = &c->hp[i];
        h[f->name - h + f->name_len] = '\0';
        h[f->value - h + f->value_len] = '\0';
        c->hdr[i].name = f->name;
        c->hdr[i].value = f->value;
    }
    /* The path: a copy behind the head (read_head made room). */
    path = h + hr->head_len + 1;
    q = memchr(hr->target, '?', hr->target_len);
    plen = q ? (size_t)(q - hr->target) : hr->target_len;
    memcpy(path, hr->target, plen);
    path[plen] = '\0';

    r->method_name = hr->method;
    r->method = method_of(hr->method);
    r->target = hr->target;
    r->path = path;
    r->query = q ? q + 1 : NULL;
    r->headers = c->hdr;
    r->nheaders = hr->nheaders;
    r->body = c->body;
    r->minor = hr->minor;
    r->peer = c->peer;
    c->have_req = 1;
    c->head_method = r->method == HS_HEAD;
}

/* What a request's fields say about its body and its connection. */
struct framing {
    int hosts, tes, has_cl, want_close, keep, expect;
    uint64_t cl;
    const char *te;              /* the (last) Transfer-Encoding */
};

/* Read the fields that frame the body: 0, or the status to refuse the
 * request with and *why. */
static int read_framing(const struct hs_req *r, struct framing *f, const char **why)
{
    unsigned i;
    uint64_t v;

    memset(f, 0, sizeof(*f));
    for (i = 0; i < r->nheaders; i++) {
        const char *n = r->headers[i].name, *val = r->headers[i].value;
        if (strcasecmp(n, "Host") == 0) {
            f->hosts++;
        } else if (strcasecmp(n, "Content-Length") == 0) {
            if (parse_length(val, &v) != 0)
                return *why = "Malformed Content-Length", 400;
            if (f->has_cl && v != f->cl)
                return *why = "Conflicting Content-Length", 400;
            f->has_cl = 1;
            f->cl = v;
        } else if (strcasecmp(n, "Transfer-Encoding") == 0) {
            f->tes++;
            f->te = val;
        } else if (strcasecmp(n, "Connection") == 0) {
            f->want_close |= hp_list_has(val, "close");
            f->keep |= hp_list_has(val, "keep-alive");
        } else if (strcasecmp(n, "Expect") == 0 && r->minor == 1) {
            /* HTTP/1.0 clients cannot mean it (RFC 9110 10.1.1). */
            if (strcasecmp(val, "100-continue") != 0)
                return *why = "Expectation failed", 417;
            f->expect = 1;
        }
    }
    return 0;
}

/* The refusals of hs.h that the request line and the framing decide: 0, or
 * a status and *why. */
static int check_request(const struct hs_req *r, const struct framing *f, size_t max_body,
                         const char **why)
{
    if (f->hosts > 1)
        return *why = "More than one Host header", 400;
    if (f->tes && f->has_cl)
        return *why = "Both Content-Length and Transfer-Encoding", 400;
    if (f->tes && r->minor == 0)
        return *why = "Transfer-Encoding in an HTTP/1.0 request", 400;
    if (f->tes && (f->tes > 1 || strcasecmp(f->te, "chunked") != 0))
        return *why = "Transfer-Encoding not supported", 501;
    if (f->cl > max_body)
        return *why = "Request body too large", 413;
    return 0;
}

/* Fill req from the parsed head, refuse it or decide how the body comes. */
static enum step start_request(struct hs_conn *c, const struct hp_request *hr)
{
    struct hs_server *s = c->s;
    struct hs_req *r = &c->req;
    struct framing f;
    const char *why;
    int status;

    fill_request(c, hr);
    if (strcmp(r->method_name, "CONNECT") == 0) {
        hs_reject(c, 400, "CONNECT is not supported");
        return ST_DONE;
    }
    if (r->target[0] != '/') {
        hs_reject(c, 400, "Only origin-form request targets are accepted");
        return ST_DONE;
    }
    c->max_body = s->lim.max_body;
    if ((status = read_framing(r, &f, &why)) != 0 ||
        (status = check_request(r, &f, c->max_body, &why)) != 0) {
        hs_reject(c, status, why);
        return ST_DONE;
    }
    if (r->minor == 1)
        c->close_after = f.want_close;
    else if (f.keep && !f.want_close)
        c->ka10 = 1;
    else
        c->close_after = 1;

    c->chunked = f.tes > 0;
    c->ch = CH_SIZE;
    c->body_left = f.cl;
    if (f.expect && (c->chunked || f.cl > 0)) {
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        bufferevent_enable(c->bev, EV_WRITE);
    }
    c->state = CS_BODY;
    c->last_read_ms = mono_ms();
    if (c->chunked || f.cl > 0)
        hs_arm(c, s->lim.body_timeout_ms);
    return ST_GO;
}

/* Parse the head once it is whole (or once a limit decides). */
enum step hs_read_head(struct hs_conn *c)
{
    struct hs_server *s = c->s;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in), cap = s->lim.max_head + LEAD_SLACK, win, end;
    struct hp_limits lim = {s->lim.max_request_line, s->lim.max_head, s->lim.max_headers};
    struct hp_request hr;
    const char *p, *reason;
    enum hp_res res;
    int st;

    win = n < cap ? n : cap;
    if (grow_arrays(c, lim.max_headers) != 0 ||
        (p = (const char *)evbuffer_pullup(in, (ev_ssize_t)win)) == NULL) {
        log_warn("hs: out of memory reading a request from %s", c->peer);
        hs_conn_close(c);
        return ST_DONE;
    }
    hr.headers = c->hp;
    for (;;) {
        end = find_head_end(c, p, win);
        if (end == 0) {
            if (win < cap && (c->seen_lf || win < lim.max_request_line))
                return ST_WAIT;
            /* A limit is reached: the parser says which. */
            res = hp_parse(p, win, &lim, &hr, &st, &reason);
            if (res == HP_ERROR) {
                hs_reject_as(c, st, reason, hr.method, hr.method_len, hr.target, hr.target_len);
                return ST_DONE;
            }
            return ST_WAIT;
        }
        /* Parse a copy, with room for the path behind it. */
        if (c->head_cap < 2 * end + 2) {
            char *nh = realloc(c->head, 2 * end + 2);
            if (nh == NULL) {
                log_warn("hs: out of memory reading a request from %s", c->peer);
                hs_conn_close(c);
                return ST_DONE;
            }
            c->head = nh;
            c->head_cap = 2 * end + 2;
        }
        memcpy(c->head, p, end);
        c->head[end] = '\0';
        res = hp_parse(c->head, end, &lim, &hr, &st, &reason);
        if (res == HP_ERROR) {
            hs_reject_as(c, st, reason, hr.method, hr.method_len, hr.target, hr.target_len);
            return ST_DONE;
        }
        if (res == HP_OK)
            break;
        /* Only empty lines before the request line end like a head. */
    }
    evbuffer_drain(in, hr.head_len);
    return start_request(c, &hr);
}

/* A chunk-size or trailer line: its length without the line end in *len,
 * the bytes to drain in *take; ST_WAIT if not whole yet. */
static enum step chunk_line(struct hs_conn *c, const char **line, size_t *len, size_t *take)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in), win = n < CHUNK_LINE_MAX ? n : CHUNK_LINE_MAX;
    const char *p, *q;

    if (win == 0)
        return ST_WAIT;
    if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)win)) == NULL) {
        hs_conn_close(c);
        return ST_DONE;
    }
    if ((q = memchr(p, '\n', win)) == NULL) {
        if (win < CHUNK_LINE_MAX)
            return ST_WAIT;
        hs_reject(c, 400, "Malformed chunked body");
        return ST_DONE;
    }
    *line = p;
    *take = (size_t)(q - p) + 1;
    *len = (size_t)(q - p);
    if (*len > 0 && p[*len - 1] == '\r')
        (*len)--;
    return ST_GO;
}

/* chunk-size [ BWS ";" chunk-ext ] : the size, or -1 if malformed; a size
 * past what uint64_t holds saturates (then 413). */
static int parse_chunk_size(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    int d;

    for (; i < n && (d = util_hexval((unsigned char)p[i])) >= 0; i++)
        v = v > (UINT64_MAX >> 4) ? UINT64_MAX : v << 4 | (uint64_t)d;
    if (i == 0)
        return -1;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < n && p[i] != ';')
        return -1;
    /* Extensions are ignored, but only field-value bytes may be in them. */
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    *out = v;
    return 0;
}

static int trailer_line_ok(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

static enum step read_chunked(struct hs_conn *c)
{
    struct hs_server *s = c->s;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    const char *line;
    size_t len, take, avail;
    uint64_t size;
    enum step st;

    for (;;) {
        avail = evbuffer_get_length(in);
        switch (c->ch) {
        case CH_SIZE:
            if ((st = chunk_line(c, &line, &len, &take)) != ST_GO)
                return st;
            if (parse_chunk_size(line, len, &size) != 0) {
                hs_reject(c, 400, "Malformed chunked body");
                return ST_DONE;
            }
            if (c->body_total > c->max_body || size > c->max_body - c->body_total) {
                hs_reject(c, 413, "Request body too large");
                return ST_DONE;
            }
            evbuffer_drain(in, take);
            c->body_total += size;
            c->body_left = size;
            c->ch = size ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA:
            if (avail == 0)
                return ST_WAIT;
            len = avail < c->body_left ? avail : (size_t)c->body_left;
            evbuffer_remove_buffer(in, c->body, len);
            c->body_left -= len;
            if (c->body_left)
                return ST_WAIT;
            c->ch = CH_DATA_END;
            break;
        case CH_DATA_END: {
            unsigned char crlf[2];
            if (avail == 0)
                return ST_WAIT;
            evbuffer_copyout(in, crlf, avail < 2 ? avail : 2);
            if (crlf[0] == '\n') {
                evbuffer_drain(in, 1);
            } else if (crlf[0] == '\r' && avail < 2) {
                return ST_WAIT;
            } else if (crlf[0] == '\r' && crlf[1] == '\n') {
                evbuffer_drain(in, 2);
            } else {
                hs_reject(c, 400, "Malformed chunked body");
                return ST_DONE;
            }
            c->ch = CH_SIZE;
            break;
        }
        case CH_TRAILER:
            if ((st = chunk_line(c, &line, &len, &take)) != ST_GO)
                return st;
            c->trailer_bytes += take;
            if (c->trailer_bytes > s->lim.max_head) {
                hs_reject(c, 431, "Request header fields too large");
                return ST_DONE;
            }
            if (!trailer_line_ok(line, len)) {
                hs_reject(c, 400, "Malformed chunked body");
                return ST_DONE;
            }
            evbuffer_drain(in, take);
            if (len == 0)
                return ST_GO;
            break;
        }
    }
}

enum step hs_read_body(struct hs_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);

    if (c->chunked)
        return read_chunked(c);
    if (n > c->body_left)
        n = (size_t)c->body_left;
    /* Moves the chains: no copy of the body. */
    if (n)
        evbuffer_remove_buffer(in, c->body, n);
    c->body_left -= n;
    return c->body_left ? ST_WAIT : ST_GO;
}
