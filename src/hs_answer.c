/* hs_answer: the answers of the HTTP server (hs_int.h): the status line and
 * fields built in one piece, the server's own {"detail":...} rejections,
 * and hs_send. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "clock.h"
#include "hs_int.h"
#include "util.h"
#include "http_parse.h"
#include "log.h"

#define REJECT_TARGET_MAX 255

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "";          /* the reason phrase may be empty (RFC 9112 4) */
    }
}

/* The Date field's value (IMF-fixdate), formatted at most once a second, and
 * not with strftime: the locale must not change it. */
static void update_date(struct hs_server *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timeval tv;
    struct tm tm;
    int n;

    if (event_base_gettimeofday_cached(s->base, &tv) != 0)
        gettimeofday(&tv, NULL);
    if (s->date_len && tv.tv_sec == s->date_sec)
        return;
    s->date_sec = tv.tv_sec;
    gmtime_r(&s->date_sec, &tm);
    n = snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_len = n > 0 && (size_t)n < sizeof(s->date) ? (size_t)n : 0;
}

static size_t put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return n;
}

static size_t put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

#define LIT(p, s) put((p), (s), sizeof(s) - 1)

/* Write the output now rather than on the loop's next turn: most answers
 * fit in the socket's buffer at once, and then EV_WRITE is never enabled
 * (two epoll_ctl calls fewer per answer). At most MAX_SINGLE_WRITE bytes,
 * as the bufferevent would. 1 if all was written; else the bufferevent
 * writes the rest (and meets any error). */
static int write_now(struct hs_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    size_t done = 0;
    int n;

    /* A bufferevent keeps its output's start frozen, and unfreezes it
     * around its own writes: so do we. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && done < MAX_SINGLE_WRITE) {
        if ((n = evbuffer_write_atmost(out, fd, (ev_ssize_t)(MAX_SINGLE_WRITE - done))) <= 0)
            break;
        done += (size_t)n;
    }
    evbuffer_freeze(out, 1);
    return evbuffer_get_length(out) == 0;
}

/* Where an answer is built. A TLS answer that may be written at once goes
 * apart first: bufferevent_openssl would arm its write event as soon as a
 * byte reached its output (two epoll_ctl calls and a loop turn per answer),
 * and write each chunk as a TLS record of its own. */
static struct evbuffer *answer_buffer(struct hs_conn *c, int now)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->tls && now && !c->close_after && !c->s->closed && evbuffer_get_length(out) == 0)
        return c->s->tls_out;
    return out;
}

/* The head is built in one piece straight in the output buffer, then the
 * body moved behind it; an answer of the handler's may be written at once
 * (see write_now, and answer_buffer for TLS). */
void hs_queue_answer(struct hs_conn *c, int status, struct evbuffer *body, const char *text,
                     size_t tlen, int now, const uint64_t *head_len)
{
    struct hs_server *s = c->s;
    struct evbuffer *out;
    const char *why = reason_phrase(status);
    size_t blen = body ? evbuffer_get_length(body) : tlen, wlen = strlen(why), total, n = 0;
    uint64_t clen = head_len && c->head_method ? *head_len : blen;
    int no_body = status < 200 || status == 204 || status == 304;
    struct evbuffer_iovec v;
    char *p;

    if (status < 200)
        c->close_after = 1;
    out = answer_buffer(c, now);
    update_date(s);
    total = 9 + 3 + 1 + wlen + 2 + c->out_len + 2;
    if (!c->out_date)
        total += 6 + s->date_len + 2;
    if (!no_body)
        total += 16 + 20 + 2;
    total += c->close_after ? 19 : c->ka10 ? 24 : 0;
    if (evbuffer_reserve_space(out, (ev_ssize_t)total, &v, 1) < 1 || v.iov_len < total) {
        log_warn("hs: out of memory for an answer to %s", c->peer);
        c->close_after = 1;
        c->state = CS_WRITE;
        bufferevent_enable(c->bev, EV_WRITE);
        hs_arm(c, 1);
        return;
    }
    p = v.iov_base;
    n += LIT(p + n, "HTTP/1.1 ");
    p[n++] = (char)('0' + status / 100);
    p[n++] = (char)('0' + status / 10 % 10);
    p[n++] = (char)('0' + status % 10);
    p[n++] = ' ';
    n += put(p + n, why, wlen);
    n += LIT(p + n, "\r\n");
    if (!c->out_date) {
        n += LIT(p + n, "Date: ");
        n += put(p + n, s->date, s->date_len);
        n += LIT(p + n, "\r\n");
    }
    if (c->out_len)
        n += put(p + n, c->out, c->out_len);
    if (!no_body) {
        n += LIT(p + n, "Content-Length: ");
        n += put_u64(p + n, clen);
        n += LIT(p + n, "\r\n");
    }
    if (c->close_after)
        n += LIT(p + n, "Connection: close\r\n");
    else if (c->ka10)
        n += LIT(p + n, "Connection: keep-alive\r\n");
    n += LIT(p + n, "\r\n");
    v.iov_len = n;
    evbuffer_commit_space(out, &v, 1);

    if (no_body || c->head_method) {
        if (body)
            evbuffer_drain(body, blen);
    } else if (body) {
        evbuffer_add_buffer(out, body);
    } else if (tlen) {
        evbuffer_add(out, text, tlen);
    }
    c->out_len = 0;
    c->out_date = 0;
    c->state = CS_WRITE;
    c->last_write_ms = mono_ms();
    if (out == s->tls_out) {
        if (hs_tls_write(c, out)) {
            hs_written_at_once(c);
            return;
        }
        evbuffer_add_buffer(bufferevent_get_output(c->bev), out);
    } else if (now && !c->close_after && !s->closed && !c->tls &&
               !(bufferevent_get_enabled(c->bev) & EV_WRITE) && write_now(c)) {
        /* (A closing answer goes the bufferevent's way: linger() follows it.) */
        hs_written_at_once(c);
        return;
    }
    bufferevent_enable(c->bev, EV_WRITE);
    hs_arm(c, s->lim.write_timeout_ms);
}

static void copy_trunc(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The method and target of a head not (fully) parsed, for the reject
 * callback: hp_parse fills what it read even when it stops. */
static void peek_line(struct hs_conn *c, const char **m, size_t *mlen, const char **t,
                      size_t *tlen)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct hp_limits lim = {c->s->lim.max_request_line, c->s->lim.max_head, 0};
    size_t n = evbuffer_get_length(in);
    struct hp_request r;
    const char *reason;
    int st;
    char *p;

    *m = *t = NULL;
    *mlen = *tlen = 0;
    if (n > lim.max_request_line + LEAD_SLACK)
        n = lim.max_request_line + LEAD_SLACK;
    if (n == 0 || (p = (char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL)
        return;
    r.headers = NULL;
    hp_parse(p, n, &lim, &r, &st, &reason);
    *m = r.method;
    *mlen = r.method_len;
    *t = r.target;
    *tlen = r.target_len;
}

void hs_reject_as(struct hs_conn *c, int status, const char *why, const char *m, size_t mlen,
                  const char *t, size_t tlen)
{
    struct hs_server *s = c->s;
    char mb[32], tb[REJECT_TARGET_MAX + 1], body[256];
    size_t n;

    if (s->reject) {
        if (m)
            copy_trunc(mb, sizeof(mb), m, mlen);
        if (t)
            copy_trunc(tb, sizeof(tb), t, tlen);
        s->reject(s->arg, status, m ? mb : NULL, t ? tb : NULL, c->peer);
    }
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    c->out_date = 0;
    c->close_after = 1;
    c->ka10 = 0;
    n = util_json_detail(body, sizeof(body), why);
    memcpy(c->out, "Content-Type: application/json\r\n", 32);
    c->out_len = 32;
    hs_queue_answer(c, status, NULL, body, n, 0, NULL);
}

void hs_reject(struct hs_conn *c, int status, const char *why)
{
    const char *m, *t;
    size_t mlen, tlen;

    if (c->have_req) {
        hs_reject_as(c, status, why, c->req.method_name, strlen(c->req.method_name),
                     c->req.target, strlen(c->req.target));
    } else {
        peek_line(c, &m, &mlen, &t, &tlen);
        hs_reject_as(c, status, why, m, mlen, t, tlen);
    }
}

const char *hs_header(const struct hs_req *r, const char *name)
{
    unsigned i;

    for (i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int hs_add_header(struct hs_req *r, const char *name, const char *value)
{
    struct hs_conn *c = hs_conn_of(r);
    size_t nlen = strlen(name), vlen = strlen(value), need, i;

    if (!hp_is_token(name, nlen))
        return -1;
    for (i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0)
        return 0;
    if (strcasecmp(name, "Connection") == 0) {
        if (hp_list_has(value, "close"))
            c->close_after = 1;
        return 0;
    }
    need = c->out_len + nlen + 2 + vlen + 2;
    if (need > c->out_cap) {
        size_t cap = c->out_cap * 2 > need ? c->out_cap * 2 : need;
        char *p = realloc(c->out, cap);
        if (p == NULL)
            return -1;
        c->out = p;
        c->out_cap = cap;
    }
    if (strcasecmp(name, "Date") == 0)
        c->out_date = 1;
    c->out_len += put(c->out + c->out_len, name, nlen);
    c->out_len += LIT(c->out + c->out_len, ": ");
    c->out_len += put(c->out + c->out_len, value, vlen);
    c->out_len += LIT(c->out + c->out_len, "\r\n");
    return 0;
}

static void send_answer(struct hs_req *r, int status, struct evbuffer *body,
                        const uint64_t *head_len)
{
    struct hs_conn *c = hs_conn_of(r);
    struct hs_server *s = c->s;

    if (!c->in_handler) {
        log_error("hs_send: the request was answered already");
        return;
    }
    assert(s->busy > 0);
    c->in_handler = 0;
    s->busy--;
    if (c->gone) {
        if (body)
            evbuffer_drain(body, evbuffer_get_length(body));
        hs_conn_release(c);
        if (s->freed && s->busy == 0)
            hs_server_release(s);
        return;
    }
    if (status < 100 || status > 599) {
        log_warn("hs_send: status %d is not one: 500 instead", status);
        status = 500;
    }
    if (s->closed)
        c->close_after = 1;
    hs_queue_answer(c, status, body, NULL, 0, 1, head_len);
}

void hs_send(struct hs_req *r, int status, struct evbuffer *body)
{
    send_answer(r, status, body, NULL);
}

void hs_send_head(struct hs_req *r, int status, uint64_t length)
{
    send_answer(r, status, NULL, &length);
}
