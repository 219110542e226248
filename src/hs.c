/* hs: the HTTP server's connections (hs.h is the contract; hs_int.h says
 * how the server is split): accept, the state machine from the first byte
 * of a request to its answer written, the timers, and closing. */
#include "hs.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "hs_int.h"
#include "log.h"

#define LINGER_MS 2000
#define LINGER_BYTES (1u << 20)

static void advance(struct hs_conn *c);

static void apply_defaults(struct hs_limits *d, const struct hs_limits *lim)
{
    static const struct hs_limits def = {8192, 32768, 100, 1 << 20, 0, 10000, 30000, 60000, 60000};

/* A limit left 0 takes its default (hs.h); max_connections 0 stays unlimited. */
#define DEFAULT(f) (d->f = d->f ? d->f : def.f)

    *d = lim ? *lim : def;
    DEFAULT(max_request_line), DEFAULT(max_head), DEFAULT(max_headers), DEFAULT(max_body);
    DEFAULT(header_timeout_ms), DEFAULT(body_timeout_ms), DEFAULT(idle_timeout_ms);
    DEFAULT(write_timeout_ms);
#undef DEFAULT
}

void hs_arm(struct hs_conn *c, int64_t ms)
{
    struct timeval tv;

    if (ms < 1)
        ms = 1;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(c->timer, &tv);
}

void hs_server_release(struct hs_server *s)
{
    assert(s->busy == 0 && list_empty(&s->conns));
    s->magic = 0;
    if (s->tls_out)
        evbuffer_free(s->tls_out);
    free(s);
}

void hs_conn_release(struct hs_conn *c)
{
    assert(!c->in_handler && c->bev == NULL);
    c->magic = 0;
    if (c->body)
        evbuffer_free(c->body);
    free(c->head);
    free(c->hp);
    free(c->hdr);
    free(c->out);
    free(c);
}

/* Close the connection's I/O. A request with the handler survives it (the
 * connection becomes a zombie that hs_send frees); else all is freed. */
void hs_conn_close(struct hs_conn *c)
{
    struct hs_server *s = c->s;

    assert(c->bev == NULL || c->peek == NULL);
    if (c->bev || c->peek) {
        if (c->peek) {           /* TLS, before its first byte: the bare socket */
            close(event_get_fd(c->peek));
            event_free(c->peek);
            c->peek = NULL;
        } else {
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
        event_free(c->timer);
        c->timer = NULL;
        list_unlink(&c->link);
        assert(s->nconns > 0);
        __atomic_sub_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
        hs_update_accepting(s);
    }
    if (c->in_handler) {
        /* Read from the handler's thread (hs_req_gone). */
        __atomic_store_n(&c->gone, 1, __ATOMIC_RELEASE);
        return;
    }
    hs_conn_release(c);
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
        hs_conn_close(c);
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
    hs_arm(c, LINGER_MS);
}

/* Input to go on with: in the input buffer, or (TLS) still inside OpenSSL
 * (hs_tls_pull). */
static int have_input(struct hs_conn *c)
{
    return evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 || (c->tls && hs_tls_pull(c));
}

static void after_write(struct hs_conn *c)
{
    bufferevent_disable(c->bev, EV_WRITE);
    if (c->close_after || c->s->closed) {
        linger(c);
        return;
    }
    hs_reset_request(c);
    c->state = CS_IDLE;
    if (!c->peer_eof && !have_input(c)) {
        hs_arm(c, c->s->lim.idle_timeout_ms);
        return;
    }
    advance(c);
}

/* A keep-alive answer written inside hs_send: as after_write, but the next
 * pipelined request waits for the loop's next turn (a deferred read
 * callback), so that handlers that answer at once do not nest. */
void hs_written_at_once(struct hs_conn *c)
{
    hs_reset_request(c);
    c->state = CS_IDLE;
    if (!c->peer_eof && !have_input(c)) {
        hs_arm(c, c->s->lim.idle_timeout_ms);
        return;
    }
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
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

/* The input is used up: 1 to go on with more that OpenSSL held (TLS);
 * else 0, and a client that has closed is closed. */
static int input_used_up(struct hs_conn *c)
{
    if (c->tls && hs_tls_pull(c))
        return 1;
    if (c->peer_eof)
        hs_conn_close(c);
    return 0;
}

/* Run the connection as far as its input allows. */
static void advance(struct hs_conn *c)
{
    enum step st;
    int was;

    for (;;) {
        switch (c->state) {
        case CS_IDLE:
            if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 && !input_used_up(c))
                return;
            /* The first request's head is timed from accept. */
            if (c->started)
                hs_arm(c, c->s->lim.header_timeout_ms);
            c->started = 1;
            set_watermark(c);
            c->state = CS_HEAD;
            break;
        case CS_HEAD:
        case CS_BODY:
            /* The head, then the body (if any): each may need more input
             * (OpenSSL may hold more already; a client that stops sending
             * is closed), or end the connection's turn (answered, or
             * closed). */
            was = c->state;
            st = was == CS_HEAD ? hs_read_head(c) : hs_read_body(c);
            if (st == ST_DONE || (st == ST_WAIT && !input_used_up(c)))
                return;
            if (st == ST_WAIT)
                break;           /* more came out of OpenSSL */
            if (was == CS_BODY) {
                dispatch(c);
                return;
            }
            break;
        default:
            return;
        }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct hs_conn *c = hs_conn_arg(arg);
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
            hs_conn_close(c);
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
    struct hs_conn *c = hs_conn_arg(arg);

    if (c->state == CS_WRITE)
        after_write(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hs_conn *c = hs_conn_arg(arg);

    if (what & BEV_EVENT_CONNECTED) {
        c->handshaken = 1;       /* TLS: requests may come */
        return;
    }
    if (c->tls && !c->handshaken)
        hs_tls_failed(c);
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        c->peer_eof = 1;
        /* A half-closed client may still read its answer. */
        if (c->state == CS_WRITE)
            return;
    }
    hs_conn_close(c);
}

static void on_progress(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    if (info->n_deleted)
        hs_conn_arg(arg)->last_write_ms = mono_ms();
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = hs_conn_arg(arg);
    const struct hs_limits *lim = &c->s->lim;
    int64_t idle;

    switch (c->state) {
    case CS_HEAD:
        hs_reject(c, 408, "Request timeout");
        return;
    case CS_BODY:
        idle = mono_ms() - c->last_read_ms;
        if (idle < (int64_t)lim->body_timeout_ms) {
            hs_arm(c, (int64_t)lim->body_timeout_ms - idle);
            return;
        }
        hs_reject(c, 408, "Request timeout");
        return;
    case CS_WRITE:
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            after_write(c);
            return;
        }
        idle = mono_ms() - c->last_write_ms;
        if (idle < (int64_t)lim->write_timeout_ms) {
            hs_arm(c, (int64_t)lim->write_timeout_ms - idle);
            return;
        }
        hs_conn_close(c);
        return;
    case CS_HANDLER:
        return;
    default:                     /* idle, or done lingering */
        hs_conn_close(c);
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

void hs_conn_start(struct hs_conn *c, struct bufferevent *bev)
{
    c->bev = bev;
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
}

/* A plain connection's bufferevent now; a TLS one's after its first byte. */
static int start_io(struct hs_conn *c, evutil_socket_t fd)
{
    struct bufferevent *bev;

    if (c->s->new_ssl)
        return hs_tls_wait(c, fd);
    if ((bev = bufferevent_socket_new(c->s->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
        return -1;
    hs_conn_start(c, bev);
    return 0;
}

void hs_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                  void *arg)
{
    struct hs_server *s = hs_server_arg(arg);
    struct hs_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL || (c->body = evbuffer_new()) == NULL ||
        (c->out = malloc(c->out_cap = 512)) == NULL ||
        (c->timer = evtimer_new(s->base, on_timer, c)) == NULL) {
        log_warn("hs: out of memory accepting a connection");
        close(fd);
        if (c) {
            if (c->body)
                evbuffer_free(c->body);
            free(c->out);
            free(c);
        }
        return;
    }
    c->magic = HS_CONN_MAGIC;
    c->s = s;
    if (start_io(c, fd) != 0) {
        log_warn("hs: out of memory accepting a connection");
        close(fd);
        event_free(c->timer);
        c->timer = NULL;
        hs_conn_release(c);
        return;
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    format_peer(c->peer, sizeof(c->peer), sa);
    hs_reset_request(c);
    c->state = CS_IDLE;
    hs_arm(c, s->lim.header_timeout_ms);
    list_push_front(&s->conns, &c->link);
    __atomic_add_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
    hs_update_accepting(s);
}

struct hs_server *hs_new(struct event_base *base, const struct hs_limits *lim, hs_handler h,
                         hs_reject_cb rej, void *arg)
{
    struct hs_server *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    if ((s->pause = evtimer_new(base, hs_on_pause_end, s)) == NULL) {
        free(s);
        return NULL;
    }
    s->magic = HS_SERVER_MAGIC;
    s->base = base;
    list_init(&s->conns);
    apply_defaults(&s->lim, lim);
    s->handler = h;
    s->reject = rej;
    s->arg = arg;
    s->accepting = 1;
    return s;
}

int hs_set_tls(struct hs_server *s, hs_tls_fn new_ssl)
{
    if (s->tls_out == NULL && (s->tls_out = evbuffer_new()) == NULL)
        return -1;
    s->new_ssl = new_ssl;
    return 0;
}

void hs_set_limits(struct hs_server *s, const struct hs_limits *lim)
{
    apply_defaults(&s->lim, lim);
    hs_update_accepting(s);
}

void hs_close_listeners(struct hs_server *s)
{
    struct list *p, *next;

    while (s->listeners) {
        struct hs_listener *l = s->listeners;
        s->listeners = l->next;
        evconnlistener_free(l->lev);
        free(l);
    }
    s->closed = 1;
    s->accepting = 0;
    evtimer_del(s->pause);
    list_foreach_safe(p, next, &s->conns) {
        struct hs_conn *c = list_entry(p, struct hs_conn, link);
        if (c->state == CS_IDLE)
            hs_conn_close(c);
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
    while (!list_empty(&s->conns))
        hs_conn_close(list_entry(list_first(&s->conns), struct hs_conn, link));
    s->freed = 1;
    if (s->busy == 0)
        hs_server_release(s);
}

int hs_req_gone(const struct hs_req *r)
{
    return __atomic_load_n(&hs_conn_of(r)->gone, __ATOMIC_ACQUIRE);
}
