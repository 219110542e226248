#define _GNU_SOURCE             /* pthread_setname_np */
#include "workers.h"


#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alog.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* What the threads tell each other. A request's M_REQ becomes its M_SEND:
 * one allocation carries it there and back. */
enum mkind { M_REQ, M_REJECT, M_SEND, M_LIMITS, M_CLOSE, M_SYNC, M_STOP };

struct msg {
    struct msg *next;
    enum mkind kind;
    struct worker *w;            /* M_REQ, M_SEND: the connection's worker */
    struct hs_req *req;
    int status;
    struct evbuffer *body;       /* M_SEND: the answer's, or NULL */
    int has_head_length;         /* M_SEND: hs_send_head(head_length) */
    uint64_t head_length;
    struct hs_limits lim;        /* M_LIMITS */
    sem_t *done;                 /* M_SYNC: posted when the worker gets it */
    const char *method, *target, *peer;   /* M_REJECT: copies, after the struct */
};

/* A queue that one thread drains on its event base, woken by an eventfd
 * that is written only when the queue was empty. */
struct inbox {
    pthread_mutex_t mu;
    struct msg *head, **tail;
    int efd;
    struct event *ev;
};

struct worker {
    struct workers *ws;
    struct event_base *base;
    struct hs_server *hs;
    struct inbox in;
    pthread_t th;
    int started;
    char name[16];               /* "w1", ...: its log lines' tag */
    void *local;                 /* the fast path's (fast.start) */
    int local_stopped;           /* fast.stop ran */
    struct msg *stop, *sync;     /* M_STOP, M_SYNC, allocated up front */
};

struct workers {
    hs_handler handler;
    struct workers_fast fast;    /* take NULL: none */
    hs_reject_cb reject;
    void *arg;
    struct hs_server *hs;        /* one worker: on main itself */
    unsigned n;                  /* threads (0: none) */
    struct inbox in;             /* to main */
    unsigned queued;             /* M_REQ posted, not yet handled (atomic) */
    unsigned long long handoffs; /* M_REQ posted, ever (atomic) */
    struct worker *w;
};

static int inbox_init(struct inbox *in, struct event_base *base, event_callback_fn cb,
                      void *arg)
{
    in->head = NULL;
    in->tail = &in->head;
    in->ev = NULL;
    if ((in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -1;
    pthread_mutex_init(&in->mu, NULL);
    if ((in->ev = event_new(base, in->efd, EV_READ | EV_PERSIST, cb, arg)) == NULL ||
        event_add(in->ev, NULL) != 0)
        return -1;
    return 0;
}

static void inbox_post(struct inbox *in, struct msg *m)
{
    static const uint64_t one = 1;
    int wake;

    m->next = NULL;
    pthread_mutex_lock(&in->mu);
    wake = in->head == NULL;
    *in->tail = m;
    in->tail = &m->next;
    pthread_mutex_unlock(&in->mu);
    /* Cannot fail short of a counter at 2^64 - 1. */
    if (wake && write(in->efd, &one, sizeof(one)) < 0)
        log_error("workers: cannot wake a thread: %s", strerror(errno));
}

/* Everything queued so far, oldest first. */
static struct msg *inbox_take(struct inbox *in)
{
    struct msg *m;
    uint64_t v;

    if (read(in->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_error("workers: eventfd read failed: %s", strerror(errno));
    pthread_mutex_lock(&in->mu);
    m = in->head;
    in->head = NULL;
    in->tail = &in->head;
    pthread_mutex_unlock(&in->mu);
    return m;
}

static void inbox_free(struct inbox *in)
{
    if (in->ev) {
        event_free(in->ev);
        pthread_mutex_destroy(&in->mu);
    }
    if (in->efd >= 0)
        close(in->efd);
}

static void free_msg(struct msg *m)
{
    if (m->body)
        evbuffer_free(m->body);
    free(m);
}

/* ---- on a worker's thread ---- */

void workers_hand_over(struct worker *w, struct hs_req *r)
{
    struct msg *m;

    if ((m = calloc(1, sizeof(*m))) == NULL) {
        log_warn("workers: out of memory handing a request over: 503");
        hs_add_header(r, "Connection", "close");
        hs_send(r, 503, NULL);
        return;
    }
    m->kind = M_REQ;
    m->w = w;
    m->req = r;
    r->udata = m;
    __atomic_add_fetch(&w->ws->queued, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->ws->handoffs, 1, __ATOMIC_RELAXED);
    inbox_post(&w->ws->in, m);
}

static void on_worker_request(struct hs_req *r, void *arg)
{
    struct worker *w = arg;
    struct workers *ws = w->ws;

    if (ws->fast.take && !w->local_stopped && ws->fast.take(r, ws->arg, w, w->local))
        return;
    workers_hand_over(w, r);
}

/* Quiesce: the fast path's requests are answered or handed over, and its
 * local goes, on this thread. */
static void stop_local(struct worker *w)
{
    struct workers *ws = w->ws;

    if (w->local_stopped)
        return;
    w->local_stopped = 1;
    if (ws->fast.stop)
        ws->fast.stop(ws->arg, w->local);
    w->local = NULL;
}

static void on_worker_reject(void *arg, int status, const char *method, const char *target,
                             const char *peer)
{
    struct worker *w = arg;
    size_t ml = method ? strlen(method) + 1 : 0, tl = target ? strlen(target) + 1 : 0,
           pl = peer ? strlen(peer) + 1 : 0;
    struct msg *m = calloc(1, sizeof(*m) + ml + tl + pl);
    char *p;

    if (m == NULL)
        return;                  /* only its log line and count are lost */
    p = (char *)(m + 1);
    m->kind = M_REJECT;
    m->status = status;
    if (method)
        m->method = memcpy(p, method, ml), p += ml;
    if (target)
        m->target = memcpy(p, target, tl), p += tl;
    if (peer)
        m->peer = memcpy(p, peer, pl);
    inbox_post(&w->ws->in, m);
}

static void on_worker_inbox(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct msg *m = inbox_take(&w->in), *next;

    for (; m; m = next) {
        next = m->next;
        switch (m->kind) {
        case M_SEND:
            if (m->has_head_length)
                hs_send_head(m->req, m->status, m->head_length);
            else
                hs_send(m->req, m->status, m->body);
            break;
        case M_LIMITS:
            hs_set_limits(w->hs, &m->lim);
            break;
        case M_CLOSE:
            hs_close_listeners(w->hs);
            break;
        case M_SYNC:
            stop_local(w);
            sem_post(m->done);
            continue;            /* w->sync is freed with w */
        case M_STOP:
            /* Answers queued before this went out first. */
            hs_free(w->hs);
            w->hs = NULL;
            event_base_loopbreak(w->base);
            continue;            /* w->stop is freed with w */
        default:
            break;
        }
        free_msg(m);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    /* The access log lines of the answers it makes itself: buffered, and
     * written by this loop. */
    alog_attach(w->base);
    log_set_thread_tag(w->name);
    if (w->ws->fast.start)
        w->local = w->ws->fast.start(w->ws->arg, w->base);
    event_base_dispatch(w->base);
    stop_local(w);               /* a stop without a quiesce (a failed start) */
    alog_detach();
    return NULL;
}

/* ---- on main ---- */

static void on_main_inbox(evutil_socket_t fd, short what, void *arg)
{
    struct workers *ws = arg;
    struct msg *m = inbox_take(&ws->in), *next;

    for (; m; m = next) {
        next = m->next;          /* the handler may post m back at once */
        if (m->kind == M_REQ) {
            __atomic_sub_fetch(&ws->queued, 1, __ATOMIC_RELAXED);
            ws->handler(m->req, ws->arg);
        } else {
            if (ws->reject)
                ws->reject(ws->arg, m->status, m->method, m->target, m->peer);
            free_msg(m);
        }
    }
}

static void share_limits(const struct hs_limits *lim, unsigned n, struct hs_limits *out)
{
    if (lim)
        *out = *lim;
    else
        memset(out, 0, sizeof(*out));
    if (out->max_connections)
        out->max_connections = (out->max_connections + n - 1) / n;
}

/* With tls_cert set, every worker's connections take the current context
 * (tls.h) when accepted. */
static int use_tls(struct hs_server *hs)
{
    return tls_listener_on() ? hs_set_tls(hs, tls_listener_ssl) : 0;
}

struct workers *workers_new(struct event_base *main, unsigned n, const struct hs_limits *lim,
                            hs_handler h, const struct workers_fast *fast, hs_reject_cb rej,
                            void *arg)
{
    struct workers *ws = calloc(1, sizeof(*ws));
    struct hs_limits share;
    unsigned i;

    if (ws == NULL)
        return NULL;
    ws->handler = h;
    if (fast)
        ws->fast = *fast;
    ws->reject = rej;
    ws->arg = arg;
    ws->in.efd = -1;
    if (n <= 1) {
        if ((ws->hs = hs_new(main, lim, h, rej, arg)) == NULL || use_tls(ws->hs) != 0)
            goto fail;
        return ws;
    }
    if (inbox_init(&ws->in, main, on_main_inbox, ws) != 0 ||
        (ws->w = calloc(n, sizeof(*ws->w))) == NULL)
        goto fail;
    share_limits(lim, n, &share);
    for (i = 0; i < n; i++) {
        struct worker *w = &ws->w[i];
        ws->n++;
        w->ws = ws;
        snprintf(w->name, sizeof(w->name), "w%u", i + 1);
        w->in.efd = -1;
        if ((w->base = event_base_new()) == NULL ||
            inbox_init(&w->in, w->base, on_worker_inbox, w) != 0 ||
            (w->hs = hs_new(w->base, &share, on_worker_request, on_worker_reject, w)) == NULL ||
            use_tls(w->hs) != 0 || (w->stop = calloc(1, sizeof(*w->stop))) == NULL ||
            (w->sync = calloc(1, sizeof(*w->sync))) == NULL)
            goto fail;
        w->stop->kind = M_STOP;
        w->sync->kind = M_SYNC;
    }
    return ws;
fail:
    workers_free(ws);
    return NULL;
}

/* Every worker listens: TCP on sockets of its own (SO_REUSEPORT; a port 0
 * becomes the one the first was given), a Unix socket on the first's. */
static int listen_all(struct workers *ws, const char *addr, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    int unix_sock = strncmp(addr, "unix:", 5) == 0;
    char again[512];
    unsigned i;

    if (hs_listen(ws->w[0].hs, addr, !unix_sock, err, errlen) != 0)
        return -1;
    snprintf(again, sizeof(again), "%s", addr);
    if (!unix_sock && colon && strcmp(colon, ":0") == 0)
        snprintf(again, sizeof(again), "%.*s:%u", (int)(colon - addr), addr,
                 hs_port(ws->w[0].hs));
    for (i = 1; i < ws->n; i++) {
        if (unix_sock ? hs_share_listeners(ws->w[i].hs, ws->w[0].hs, err, errlen)
                      : hs_listen(ws->w[i].hs, again, 1, err, errlen))
            return -1;
    }
    return 0;
}

int workers_listen(struct workers *ws, const char *addr, char *err, size_t errlen)
{
    sigset_t all, old;
    char name[32];
    unsigned i;
    int rc;

    if (ws->n == 0)
        return hs_listen(ws->hs, addr, 0, err, errlen);
    if (listen_all(ws, addr, err, errlen) != 0)
        return -1;
    /* Signals are main's (libevent's evsignal): the threads block them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (i = 0; i < ws->n; i++) {
        if ((rc = pthread_create(&ws->w[i].th, NULL, worker_main, &ws->w[i])) != 0) {
            snprintf(err, errlen, "cannot start worker %u: %s", i + 1, strerror(rc));
            break;
        }
        ws->w[i].started = 1;
        /* "lcgate-w1", ...: what top -H and /proc/PID/task/TID/comm show. */
        snprintf(name, sizeof(name), "lcgate-w%u", i + 1);
        name[15] = '\0';
        pthread_setname_np(ws->w[i].th, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return i == ws->n ? 0 : -1;
}

void workers_send(struct workers *ws, struct hs_req *r, int status, struct evbuffer *body)
{
    struct msg *m = r->udata;

    if (ws->n == 0) {
        hs_send(r, status, body);
        return;
    }
    m->kind = M_SEND;
    m->status = status;
    m->body = NULL;
    if (body && evbuffer_get_length(body) > 0) {
        /* Moved, not copied: referenced entry bodies stay references. */
        if ((m->body = evbuffer_new()) == NULL || evbuffer_add_buffer(m->body, body) != 0) {
            log_warn("workers: out of memory passing an answer on: 503 instead");
            evbuffer_drain(body, evbuffer_get_length(body));
            m->status = 503;
        }
    }
    inbox_post(&m->w->in, m);
}

void workers_send_head(struct workers *ws, struct hs_req *r, int status, uint64_t length)
{
    struct msg *m = r->udata;

    if (ws->n == 0) {
        hs_send_head(r, status, length);
        return;
    }
    m->kind = M_SEND;
    m->status = status;
    m->body = NULL;
    m->has_head_length = 1;
    m->head_length = length;
    inbox_post(&m->w->in, m);
}

static void post_all(struct workers *ws, enum mkind kind, const struct hs_limits *lim)
{
    unsigned i;

    for (i = 0; i < ws->n; i++) {
        struct msg *m = calloc(1, sizeof(*m));
        if (m == NULL) {
            log_error("workers: out of memory telling worker %u to change", i + 1);
            continue;
        }
        m->kind = kind;
        if (lim)
            share_limits(lim, ws->n, &m->lim);
        inbox_post(&ws->w[i].in, m);
    }
}

void workers_set_limits(struct workers *ws, const struct hs_limits *lim)
{
    if (ws->n == 0)
        hs_set_limits(ws->hs, lim);
    else
        post_all(ws, M_LIMITS, lim);
}

void workers_close_listeners(struct workers *ws)
{
    if (ws->n == 0)
        hs_close_listeners(ws->hs);
    else
        post_all(ws, M_CLOSE, NULL);
}

unsigned workers_connections(const struct workers *ws)
{
    unsigned i, sum = 0;

    if (ws->n == 0)
        return hs_connections(ws->hs);
    for (i = 0; i < ws->n; i++)
        if (ws->w[i].hs)
            sum += hs_connections(ws->w[i].hs);
    return sum;
}

void workers_quiesce(struct workers *ws)
{
    unsigned i;
    sem_t done;

    if (ws->n == 0)
        return;
    sem_init(&done, 0, 0);
    for (i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        if (!w->started || w->sync->done != NULL)
            continue;            /* not running, or quiesced already */
        w->sync->done = &done;
        inbox_post(&w->in, w->sync);
        while (sem_wait(&done) != 0 && errno == EINTR)
            ;
    }
    sem_destroy(&done);
}

unsigned long long workers_handoffs(const struct workers *ws)
{
    return __atomic_load_n(&ws->handoffs, __ATOMIC_RELAXED);
}

unsigned workers_queued(const struct workers *ws)
{
    return __atomic_load_n(&ws->queued, __ATOMIC_RELAXED);
}

/* Requests main was handed but never gave the handler: 503. After the
 * threads have stopped, their connections are closed and hs_send only
 * frees. */
static void refuse_queued(struct workers *ws, int threads_stopped)
{
    char detail[64];
    size_t dlen = util_json_detail(detail, sizeof(detail), "Shutting down");
    struct msg *m = ws->in.ev ? inbox_take(&ws->in) : NULL, *next;
    struct evbuffer *body;

    for (; m; m = next) {
        next = m->next;
        if (m->kind != M_REQ) {
            free_msg(m);
            continue;
        }
        if (threads_stopped) {
            hs_send(m->req, 503, NULL);
            free_msg(m);
            continue;
        }
        hs_add_header(m->req, "Content-Type", "application/json");
        if ((body = evbuffer_new()) != NULL)
            evbuffer_add(body, detail, dlen);
        workers_send(ws, m->req, 503, body);
        if (body)
            evbuffer_free(body);
    }
}

/* A stopped worker's leftovers (none in an orderly stop): an answer still
 * queued only frees its request, whose connection is closed. */
static void worker_free(struct worker *w)
{
    struct msg *m = w->in.ev ? inbox_take(&w->in) : NULL, *next;

    for (; m; m = next) {
        next = m->next;
        if (m->kind == M_SEND)
            hs_send(m->req, m->status, m->body);
        if (m != w->stop && m != w->sync)
            free_msg(m);
    }
    free(w->stop);
    free(w->sync);
    if (w->hs)
        hs_free(w->hs);
    inbox_free(&w->in);
    if (w->base)
        event_base_free(w->base);
}

void workers_free(struct workers *ws)
{
    unsigned i;

    if (ws == NULL)
        return;
    if (ws->hs)
        hs_free(ws->hs);
    if (ws->w) {
        refuse_queued(ws, 0);
        for (i = 0; i < ws->n; i++) {
            if (!ws->w[i].started)
                continue;
            inbox_post(&ws->w[i].in, ws->w[i].stop);
            pthread_join(ws->w[i].th, NULL);
        }
        refuse_queued(ws, 1);
        for (i = 0; i < ws->n; i++)
            worker_free(&ws->w[i]);
        free(ws->w);
    }
    inbox_free(&ws->in);
    free(ws);
}
