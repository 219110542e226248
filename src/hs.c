#include "hs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_parse.h"
#include "log.h"

#define LEAD_SLACK 16            /* room for the empty lines hp_parse skips */
#define CHUNK_LINE_MAX 4096      /* chunk-size line, extensions included */
#define LINGER_MS 2000
#define LINGER_BYTES (1u << 20)
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_WARN_MS 10000
#define HEAD_KEEP 16384          /* a bigger head buffer is freed after use */
#define LISTEN_BACKLOG 1024
#define REJECT_TARGET_MAX 255

enum cstate {
    CS_IDLE,                     /* no byte of the next request yet */
    CS_HEAD,                     /* reading a head */
    CS_BODY,                     /* reading a body */
    CS_HANDLER,                  /* the request is with the handler */
    CS_WRITE,                    /* an answer is queued, being written */
    CS_LINGER,                   /* answered, closing: write side shut,
                                    input discarded until EOF */
};

enum chstate { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

enum step { ST_GO, ST_WAIT, ST_DONE };

/* A connection, and the one request it may have: hs_req comes first so that
 * hs_send finds the connection. Its buffers live as long as it does, so a
 * request on a warm connection allocates nothing. */
#define MAX_SINGLE_WRITE (1u << 20)

struct hs_conn {
    struct hs_req req;
    struct hs_server *s;
    struct hs_conn *prev, *next;  /* s->conns, while the I/O lives */
    struct bufferevent *bev;      /* NULL once closed */
    struct event *timer;
    enum cstate state;
    int started;                  /* a request was begun here */
    int have_req;                 /* req is filled (head parsed) */
    int in_handler, gone, peer_eof;
    int close_after;              /* answer says Connection: close */
    int ka10;                     /* HTTP/1.0 keep-alive */
    int head_method;              /* HEAD: answers carry no body */
    int64_t last_read_ms, last_write_ms;
    size_t scan;                  /* head end searched up to here */
    int seen_lf;
    size_t linger_bytes;
    size_t high;                  /* read high watermark set */
    char *head;                   /* a copy of the head, NUL-terminated in place */
    size_t head_cap;
    struct hp_header *hp;
    struct hs_header *hdr;
    unsigned hdr_cap;
    char *out;                    /* answer fields, already "Name: value\r\n" */
    size_t out_len, out_cap;
    int out_date;                 /* the handler set Date */
    struct evbuffer *body;
    int chunked;
    enum chstate ch;
    uint64_t body_left, body_total;
    size_t max_body;              /* this request's, from its start: a reload
                                     applies to requests begun afterwards */
    size_t trailer_bytes;
    char peer[64];
};

struct hs_listener {
    struct hs_listener *next;
    struct evconnlistener *lev;
    int tcp;
};

struct hs_server {
    struct event_base *base;
    struct hs_limits lim;
    hs_handler handler;
    hs_reject_cb reject;
    void *arg;
    struct hs_listener *listeners;
    struct event *pause;          /* after an accept error */
    int accepting, paused, closed, freed;
    unsigned nconns, busy;        /* nconns: changed atomically, so that
                                     hs_connections may read it anywhere */
    struct hs_conn *conns;
    time_t date_sec;
    char date[40];
    size_t date_len;
    int64_t accept_warn_ms;
    unsigned accept_errors;
};

static void advance(struct hs_conn *c);

static void apply_defaults(struct hs_limits *d, const struct hs_limits *lim)
{
    static const struct hs_limits def = {8192, 32768, 100, 1 << 20, 0, 10000, 30000, 60000, 60000};

    *d = lim ? *lim : def;
    if (d->max_request_line == 0)
        d->max_request_line = def.max_request_line;
    if (d->max_head == 0)
        d->max_head = def.max_head;
    if (d->max_headers == 0)
        d->max_headers = def.max_headers;
    if (d->max_body == 0)
        d->max_body = def.max_body;
    if (d->header_timeout_ms == 0)
        d->header_timeout_ms = def.header_timeout_ms;
    if (d->body_timeout_ms == 0)
        d->body_timeout_ms = def.body_timeout_ms;
    if (d->idle_timeout_ms == 0)
        d->idle_timeout_ms = def.idle_timeout_ms;
    if (d->write_timeout_ms == 0)
        d->write_timeout_ms = def.write_timeout_ms;
}

static struct hs_conn *conn_of(const struct hs_req *r)
{
    return (struct hs_conn *)((char *)r - offsetof(struct hs_conn, req));
}

static void arm(struct hs_conn *c, int64_t ms)
{
    struct timeval tv;

    if (ms < 1)
        ms = 1;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(c->timer, &tv);
}

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

static void written_at_once(struct hs_conn *c);

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

/* Queue the answer: the head built in one piece straight in the output
 * buffer, then the body moved behind it (text when body is NULL). now: the
 * handler's answer, which may be written at once (see write_now). head_len:
 * a HEAD answer's Content-Length, when not the body's (NULL). */
static void queue_answer(struct hs_conn *c, int status, struct evbuffer *body, const char *text,
                         size_t tlen, int now, const uint64_t *head_len)
{
    struct hs_server *s = c->s;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *why = reason_phrase(status);
    size_t blen = body ? evbuffer_get_length(body) : tlen, wlen = strlen(why), total, n = 0;
    uint64_t clen = head_len && c->head_method ? *head_len : blen;
    int no_body = status < 200 || status == 204 || status == 304;
    struct evbuffer_iovec v;
    char *p;

    if (status < 200)
        c->close_after = 1;
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
        arm(c, 1);
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
    /* A closing answer goes the bufferevent's way: linger() follows it. */
    if (now && !c->close_after && !s->closed &&
        !(bufferevent_get_enabled(c->bev) & EV_WRITE) && write_now(c)) {
        written_at_once(c);
        return;
    }
    bufferevent_enable(c->bev, EV_WRITE);
    arm(c, s->lim.write_timeout_ms);
}

/* {"detail":"<why>"}, escaped: the reasons are fixed strings, but a JSON
 * body must stay JSON whatever they become. */
static size_t detail_json(char *buf, size_t cap, const char *why)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    n += LIT(buf, "{\"detail\":\"");
    for (; *why && n + 8 < cap; why++) {
        unsigned char ch = (unsigned char)*why;
        if (ch == '"' || ch == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            n += LIT(buf + n, "\\u00");
            buf[n++] = hex[ch >> 4];
            buf[n++] = hex[ch & 15];
        } else {
            buf[n++] = (char)ch;
        }
    }
    n += LIT(buf + n, "\"}");
    return n;
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

/* An answer the server makes itself: reported, JSON, and the connection
 * closes after it. m and t (not NUL-terminated) may be NULL. */
static void reject_as(struct hs_conn *c, int status, const char *why, const char *m, size_t mlen,
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
    n = detail_json(body, sizeof(body), why);
    memcpy(c->out, "Content-Type: application/json\r\n", 32);
    c->out_len = 32;
    queue_answer(c, status, NULL, body, n, 0, NULL);
}

static void reject(struct hs_conn *c, int status, const char *why)
{
    const char *m, *t;
    size_t mlen, tlen;

    if (c->have_req) {
        reject_as(c, status, why, c->req.method_name, strlen(c->req.method_name), c->req.target,
                  strlen(c->req.target));
    } else {
        peek_line(c, &m, &mlen, &t, &tlen);
        reject_as(c, status, why, m, mlen, t, tlen);
    }
}

static void server_release(struct hs_server *s)
{
    free(s);
}

static void conn_release(struct hs_conn *c)
{
    if (c->body)
        evbuffer_free(c->body);
    free(c->head);
    free(c->hp);
    free(c->hdr);
    free(c->out);
    free(c);
}

static void update_accepting(struct hs_server *s)
{
    int want = !s->closed && !s->paused &&
               (s->lim.max_connections == 0 || s->nconns < s->lim.max_connections);
    struct hs_listener *l;

    if (want == s->accepting)
        return;
    for (l = s->listeners; l; l = l->next) {
        if (want)
            evconnlistener_enable(l->lev);
        else
            evconnlistener_disable(l->lev);
    }
    s->accepting = want;
}

/* Close the connection's I/O. A request with the handler survives it (the
 * connection becomes a zombie that hs_send frees); else all is freed. */
static void conn_close(struct hs_conn *c)
{
    struct hs_server *s = c->s;

    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        event_free(c->timer);
        c->timer = NULL;
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
        __atomic_sub_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
        update_accepting(s);
    }
    if (c->in_handler) {
        /* Read from the handler's thread (hs_req_gone). */
        __atomic_store_n(&c->gone, 1, __ATOMIC_RELEASE);
        return;
    }
    conn_release(c);
}

/* Ready the connection for its next request. */
static void reset_request(struct hs_conn *c)
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

/* Bounds what a client may pipeline while its request is handled, while
 * reading goes on to see a client that goes away; a head must fit. */
static void set_watermark(struct hs_conn *c)
{
    size_t high = c->s->lim.max_head + LEAD_SLACK + CHUNK_LINE_MAX;

    if (high < 65536)
        high = 65536;
    if (high != c->high) {
        bufferevent_setwatermark(c->bev, EV_READ, 0, high);
        c->high = high;
    }
}

static void linger(struct hs_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    /* Closing with unread input would send a reset, which can destroy the
     * answer before the client reads it: shut our side, drain until its
     * FIN, and only then close. */
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->linger_bytes = 0;
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_enable(c->bev, EV_READ);
    c->state = CS_LINGER;
    arm(c, LINGER_MS);
}

static void after_write(struct hs_conn *c)
{
    bufferevent_disable(c->bev, EV_WRITE);
    if (c->close_after || c->s->closed) {
        linger(c);
        return;
    }
    reset_request(c);
    c->state = CS_IDLE;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 && !c->peer_eof) {
        arm(c, c->s->lim.idle_timeout_ms);
        return;
    }
    advance(c);
}

/* A keep-alive answer written inside hs_send: as after_write, but the next
 * pipelined request waits for the loop's next turn (a deferred read
 * callback), so that handlers that answer at once do not nest. */
static void written_at_once(struct hs_conn *c)
{
    reset_request(c);
    c->state = CS_IDLE;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 && !c->peer_eof) {
        arm(c, c->s->lim.idle_timeout_ms);
        return;
    }
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
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

/* Does the comma-separated list v name token t (case-insensitive)? */
static int has_token(const char *v, const char *t)
{
    size_t n = strlen(t), k;

    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        k = strcspn(v, ",");
        while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t'))
            k--;
        if (k == n && strncasecmp(v, t, n) == 0)
            return 1;
        v += strcspn(v, ",");
    }
    return 0;
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

/* Fill req from the parsed head in c->head (NUL-terminating its parts in
 * place) and decide how the body comes. */
static enum step start_request(struct hs_conn *c, const struct hp_request *hr)
{
    struct hs_server *s = c->s;
    struct hs_req *r = &c->req;
    char *h = c->head, *path;
    const char *q, *te = NULL;
    int hosts = 0, tes = 0, has_cl = 0, want_close = 0, keep = 0, expect = 0;
    uint64_t cl = 0, v;
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

    if (strcmp(r->method_name, "CONNECT") == 0) {
        reject(c, 400, "CONNECT is not supported");
        return ST_DONE;
    }
    if (r->target[0] != '/') {
        reject(c, 400, "Only origin-form request targets are accepted");
        return ST_DONE;
    }
    for (i = 0; i < r->nheaders; i++) {
        const char *n = c->hdr[i].name, *val = c->hdr[i].value;
        if (strcasecmp(n, "Host") == 0) {
            hosts++;
        } else if (strcasecmp(n, "Content-Length") == 0) {
            if (parse_length(val, &v) != 0) {
                reject(c, 400, "Malformed Content-Length");
                return ST_DONE;
            }
            if (has_cl && v != cl) {
                reject(c, 400, "Conflicting Content-Length");
                return ST_DONE;
            }
            has_cl = 1;
            cl = v;
        } else if (strcasecmp(n, "Transfer-Encoding") == 0) {
            tes++;
            te = val;
        } else if (strcasecmp(n, "Connection") == 0) {
            want_close |= has_token(val, "close");
            keep |= has_token(val, "keep-alive");
        } else if (strcasecmp(n, "Expect") == 0 && r->minor == 1) {
            /* HTTP/1.0 clients cannot mean it (RFC 9110 10.1.1). */
            if (strcasecmp(val, "100-continue") != 0) {
                reject(c, 417, "Expectation failed");
                return ST_DONE;
            }
            expect = 1;
        }
    }
    if (hosts > 1) {
        reject(c, 400, "More than one Host header");
        return ST_DONE;
    }
    if (tes && has_cl) {
        reject(c, 400, "Both Content-Length and Transfer-Encoding");
        return ST_DONE;
    }
    if (tes && r->minor == 0) {
        reject(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
        return ST_DONE;
    }
    if (tes && (tes > 1 || strcasecmp(te, "chunked") != 0)) {
        reject(c, 501, "Transfer-Encoding not supported");
        return ST_DONE;
    }
    c->max_body = s->lim.max_body;
    if (cl > c->max_body) {
        reject(c, 413, "Request body too large");
        return ST_DONE;
    }
    if (r->minor == 1)
        c->close_after = want_close;
    else if (keep && !want_close)
        c->ka10 = 1;
    else
        c->close_after = 1;

    c->chunked = tes > 0;
    c->ch = CH_SIZE;
    c->body_left = cl;
    if (expect && (c->chunked || cl > 0)) {
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        bufferevent_enable(c->bev, EV_WRITE);
    }
    c->state = CS_BODY;
    c->last_read_ms = mono_ms();
    if (c->chunked || cl > 0)
        arm(c, s->lim.body_timeout_ms);
    return ST_GO;
}

/* Parse the head once it is whole (or once a limit decides). */
static enum step read_head(struct hs_conn *c)
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
        conn_close(c);
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
                reject_as(c, st, reason, hr.method, hr.method_len, hr.target, hr.target_len);
                return ST_DONE;
            }
            return ST_WAIT;
        }
        /* Parse a copy, with room for the path behind it. */
        if (c->head_cap < 2 * end + 2) {
            char *nh = realloc(c->head, 2 * end + 2);
            if (nh == NULL) {
                log_warn("hs: out of memory reading a request from %s", c->peer);
                conn_close(c);
                return ST_DONE;
            }
            c->head = nh;
            c->head_cap = 2 * end + 2;
        }
        memcpy(c->head, p, end);
        c->head[end] = '\0';
        res = hp_parse(c->head, end, &lim, &hr, &st, &reason);
        if (res == HP_ERROR) {
            reject_as(c, st, reason, hr.method, hr.method_len, hr.target, hr.target_len);
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
        conn_close(c);
        return ST_DONE;
    }
    if ((q = memchr(p, '\n', win)) == NULL) {
        if (win < CHUNK_LINE_MAX)
            return ST_WAIT;
        reject(c, 400, "Malformed chunked body");
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

    for (; i < n; i++) {
        char ch = p[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            break;
        v = v > (UINT64_MAX >> 4) ? UINT64_MAX : v << 4 | (uint64_t)d;
    }
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
                reject(c, 400, "Malformed chunked body");
                return ST_DONE;
            }
            if (c->body_total > c->max_body || size > c->max_body - c->body_total) {
                reject(c, 413, "Request body too large");
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
                reject(c, 400, "Malformed chunked body");
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
                reject(c, 431, "Request header fields too large");
                return ST_DONE;
            }
            if (!trailer_line_ok(line, len)) {
                reject(c, 400, "Malformed chunked body");
                return ST_DONE;
            }
            evbuffer_drain(in, take);
            if (len == 0)
                return ST_GO;
            break;
        }
    }
}

static enum step read_body(struct hs_conn *c)
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

static void dispatch(struct hs_conn *c)
{
    struct hs_server *s = c->s;

    evtimer_del(c->timer);
    c->state = CS_HANDLER;
    c->in_handler = 1;
    s->busy++;
    s->handler(&c->req, s->arg);
}

/* Run the connection as far as its input allows. */
static void advance(struct hs_conn *c)
{
    struct evbuffer *in;
    enum step st;

    for (;;) {
        switch (c->state) {
        case CS_IDLE:
            in = bufferevent_get_input(c->bev);
            if (evbuffer_get_length(in) == 0) {
                if (c->peer_eof)
                    conn_close(c);
                return;
            }
            /* The first request's head is timed from accept. */
            if (c->started)
                arm(c, c->s->lim.header_timeout_ms);
            c->started = 1;
            set_watermark(c);
            c->state = CS_HEAD;
            break;
        case CS_HEAD:
            st = read_head(c);
            if (st == ST_DONE)
                return;
            if (st == ST_WAIT) {
                if (c->peer_eof)
                    conn_close(c);
                return;
            }
            break;
        case CS_BODY:
            st = read_body(c);
            if (st == ST_DONE)
                return;
            if (st == ST_WAIT) {
                if (c->peer_eof)
                    conn_close(c);
                return;
            }
            dispatch(c);
            return;
        default:
            return;
        }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct hs_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;

    switch (c->state) {
    case CS_BODY:
        c->last_read_ms = mono_ms();
        break;
    case CS_LINGER:
        n = evbuffer_get_length(in);
        evbuffer_drain(in, n);
        c->linger_bytes += n;
        if (c->linger_bytes > LINGER_BYTES)
            conn_close(c);
        return;
    case CS_WRITE:
        /* Refused: whatever else comes is dropped. */
        if (c->close_after)
            evbuffer_drain(in, evbuffer_get_length(in));
        return;
    case CS_HANDLER:
        return;                  /* pipelined: waits (up to the watermark) */
    default:
        break;
    }
    advance(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct hs_conn *c = arg;

    if (c->state == CS_WRITE)
        after_write(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hs_conn *c = arg;

    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        c->peer_eof = 1;
        /* A half-closed client may still read its answer. */
        if (c->state == CS_WRITE)
            return;
    }
    conn_close(c);
}

static void on_progress(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    if (info->n_deleted)
        ((struct hs_conn *)arg)->last_write_ms = mono_ms();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = arg;
    const struct hs_limits *lim = &c->s->lim;
    int64_t idle;

    switch (c->state) {
    case CS_HEAD:
        reject(c, 408, "Request timeout");
        return;
    case CS_BODY:
        idle = mono_ms() - c->last_read_ms;
        if (idle < (int64_t)lim->body_timeout_ms) {
            arm(c, (int64_t)lim->body_timeout_ms - idle);
            return;
        }
        reject(c, 408, "Request timeout");
        return;
    case CS_WRITE:
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            after_write(c);
            return;
        }
        idle = mono_ms() - c->last_write_ms;
        if (idle < (int64_t)lim->write_timeout_ms) {
            arm(c, (int64_t)lim->write_timeout_ms - idle);
            return;
        }
        conn_close(c);
        return;
    case CS_HANDLER:
        return;
    default:                     /* idle, or done lingering */
        conn_close(c);
        return;
    }
}

static void format_peer(char *buf, size_t cap, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, cap, "unix");
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct hs_server *s = arg;
    struct hs_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL || (c->body = evbuffer_new()) == NULL ||
        (c->out = malloc(c->out_cap = 512)) == NULL ||
        (c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
        (c->timer = evtimer_new(s->base, on_timer, c)) == NULL) {
        log_warn("hs: out of memory accepting a connection");
        if (c && c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c) {
            if (c->body)
                evbuffer_free(c->body);
            free(c->out);
            free(c);
        }
        return;
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->s = s;
    format_peer(c->peer, sizeof(c->peer), sa);
    reset_request(c);
    c->state = CS_IDLE;
    set_watermark(c);
    /* libevent writes 16 KiB per loop turn by default: a 1 MiB answer
     * would take 64 turns (and as many writev calls). */
    bufferevent_set_max_single_write(c->bev, MAX_SINGLE_WRITE);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    evbuffer_add_cb(bufferevent_get_output(c->bev), on_progress, c);
    /* EV_WRITE (on in a new bufferevent) only while an answer waits for
     * the socket (queue_answer). */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    arm(c, s->lim.header_timeout_ms);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    __atomic_add_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
    update_accepting(s);
}

static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct hs_server *s = arg;

    s->paused = 0;
    update_accepting(s);
}

/* EMFILE and the like: accepting again at once would spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct hs_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    int64_t now = mono_ms();

    s->accept_errors++;
    if (s->accept_warn_ms == 0 || now - s->accept_warn_ms >= ACCEPT_WARN_MS) {
        log_warn("accept failed: %s (%u times since the last report); pausing %d ms",
                 strerror(err), s->accept_errors, ACCEPT_PAUSE_MS);
        s->accept_warn_ms = now;
        s->accept_errors = 0;
    }
    s->paused = 1;
    update_accepting(s);
    evtimer_add(s->pause, &tv);
}

struct hs_server *hs_new(struct event_base *base, const struct hs_limits *lim, hs_handler h,
                         hs_reject_cb rej, void *arg)
{
    struct hs_server *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    if ((s->pause = evtimer_new(base, on_pause_end, s)) == NULL) {
        free(s);
        return NULL;
    }
    s->base = base;
    apply_defaults(&s->lim, lim);
    s->handler = h;
    s->reject = rej;
    s->arg = arg;
    s->accepting = 1;
    return s;
}

void hs_set_limits(struct hs_server *s, const struct hs_limits *lim)
{
    apply_defaults(&s->lim, lim);
    update_accepting(s);
}

static int add_listener(struct hs_server *s, int fd, int tcp, const char *addr, char *err,
                        size_t errlen)
{
    struct hs_listener *l = calloc(1, sizeof(*l)), **pp;

    if (l == NULL || (l->lev = evconnlistener_new(s->base, on_accept, s,
                                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                  0, fd)) == NULL) {
        snprintf(err, errlen, "%s: cannot accept", addr);
        free(l);
        close(fd);
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    if (!s->accepting)
        evconnlistener_disable(l->lev);
    l->tcp = tcp;
    /* At the end: hs_port names the first one bound. */
    for (pp = &s->listeners; *pp; pp = &(*pp)->next)
        ;
    *pp = l;
    return 0;
}

static int listen_unix(struct hs_server *s, const char *addr, char *err, size_t errlen)
{
    const char *path = addr + 5;
    struct sockaddr_un sun;
    int fd;

    if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "%s: socket path empty or too long", addr);
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "%s: cannot listen: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return add_listener(s, fd, 0, addr, err, errlen);
}

static int listen_tcp(struct hs_server *s, const char *addr, int reuseport, char *err,
                      size_t errlen)
{
    const char *colon = strrchr(addr, ':'), *port, *h = addr;
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    size_t hlen;
    int fd = -1, one = 1, rc, saved = 0;

    if (colon == NULL) {
        snprintf(err, errlen, "%s: expected host:port", addr);
        return -1;
    }
    port = colon + 1;
    hlen = (size_t)(colon - addr);
    if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535) {
        snprintf(err, errlen, "%s: bad port", addr);
        return -1;
    }
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "%s: host too long", addr);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(hlen == 0 || strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
            continue;
        }
        break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot listen: %s", addr, strerror(saved));
        return -1;
    }
    return add_listener(s, fd, 1, addr, err, errlen);
}

int hs_listen(struct hs_server *s, const char *addr, int reuseport, char *err, size_t errlen)
{
    if (s->closed) {
        snprintf(err, errlen, "%s: the server is closed", addr);
        return -1;
    }
    if (strncmp(addr, "unix:", 5) == 0)
        return listen_unix(s, addr, err, errlen);
    return listen_tcp(s, addr, reuseport, err, errlen);
}

int hs_share_listeners(struct hs_server *s, const struct hs_server *from, char *err,
                       size_t errlen)
{
    const struct hs_listener *l;
    int fd;

    for (l = from->listeners; l; l = l->next) {
        if ((fd = fcntl(evconnlistener_get_fd(l->lev), F_DUPFD_CLOEXEC, 0)) < 0) {
            snprintf(err, errlen, "cannot share a listening socket: %s", strerror(errno));
            return -1;
        }
        if (add_listener(s, fd, l->tcp, "shared listener", err, errlen) != 0)
            return -1;
    }
    return 0;
}

unsigned hs_port(const struct hs_server *s)
{
    const struct hs_listener *l;
    struct sockaddr_storage ss;
    socklen_t len;

    for (l = s->listeners; l; l = l->next) {
        if (!l->tcp)
            continue;
        len = sizeof(ss);
        if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET)
            return ntohs(((struct sockaddr_in *)&ss)->sin_port);
        if (ss.ss_family == AF_INET6)
            return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

void hs_close_listeners(struct hs_server *s)
{
    struct hs_conn *c, *next;

    while (s->listeners) {
        struct hs_listener *l = s->listeners;
        s->listeners = l->next;
        evconnlistener_free(l->lev);
        free(l);
    }
    s->closed = 1;
    s->accepting = 0;
    evtimer_del(s->pause);
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->state == CS_IDLE)
            conn_close(c);
    }
}

unsigned hs_connections(const struct hs_server *s)
{
    return __atomic_load_n(&s->nconns, __ATOMIC_RELAXED);
}

unsigned hs_busy(const struct hs_server *s)
{
    return s->busy;
}

void hs_free(struct hs_server *s)
{
    if (s == NULL)
        return;
    hs_close_listeners(s);
    event_free(s->pause);
    s->pause = NULL;
    while (s->conns)
        conn_close(s->conns);
    s->freed = 1;
    if (s->busy == 0)
        server_release(s);
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
    struct hs_conn *c = conn_of(r);
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
        if (has_token(value, "close"))
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
    struct hs_conn *c = conn_of(r);
    struct hs_server *s = c->s;

    if (!c->in_handler) {
        log_error("hs_send: the request was answered already");
        return;
    }
    c->in_handler = 0;
    s->busy--;
    if (c->gone) {
        if (body)
            evbuffer_drain(body, evbuffer_get_length(body));
        conn_release(c);
        if (s->freed && s->busy == 0)
            server_release(s);
        return;
    }
    if (status < 100 || status > 599) {
        log_warn("hs_send: status %d is not one: 500 instead", status);
        status = 500;
    }
    if (s->closed)
        c->close_after = 1;
    queue_answer(c, status, body, NULL, 0, 1, head_len);
}

void hs_send(struct hs_req *r, int status, struct evbuffer *body)
{
    send_answer(r, status, body, NULL);
}

void hs_send_head(struct hs_req *r, int status, uint64_t length)
{
    send_answer(r, status, NULL, &length);
}

int hs_req_gone(const struct hs_req *r)
{
    return __atomic_load_n(&conn_of(r)->gone, __ATOMIC_ACQUIRE);
}
