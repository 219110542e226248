/* workers: the client listener, on the main event loop (one worker) or on
 * N threads of its own. Each thread runs an event base and an hs server
 * (hs.h) that accepts, reads and parses requests and writes answers: the
 * system calls, which are most of a cached answer's cost. A request the
 * worker's fast path does not take is handed to the handler on the main
 * loop, where coalescing, fetches and invalidation live; the answer goes
 * back to the thread that owns the connection. Hand-offs in either
 * direction are batched: a thread is woken (an eventfd) only when its
 * queue was empty.
 *
 * TCP: each thread listens on its own SO_REUSEPORT socket, so that the
 * kernel spreads connections; a Unix socket is one socket that all share.
 *
 * TLS: when the listener's context is loaded (tls.h) before workers_new,
 * every worker's connections speak TLS.
 *
 * A worker may first try to answer by itself (the fast callback: a cached
 * answer that needs nothing of the main loop), so that the common case
 * does not cross threads at all. It may take its time (a round trip to a
 * shared store on the worker's own loop) and hand the request over later
 * (workers_hand_over); state of its own (a store connection) lives in the
 * worker's local, made and freed on its thread.
 *
 * Every call from the main loop's thread, unless it says otherwise. */
#ifndef LCGATE_WORKERS_H
#define LCGATE_WORKERS_H

#include "hs.h"

struct event_base;
struct workers;
struct worker;

/* What a worker tries before it hands a request over, each called on that
 * worker's thread with the arg of workers_new. */
struct workers_fast {
    /* 1 if it took r: it answers r (hs_send) or hands it over
     * (workers_hand_over), now or later, on this thread; 0: handed over
     * now. local is what start made. */
    int (*take)(struct hs_req *r, void *arg, struct worker *w, void *local);
    /* When the thread starts (may be NULL): its local (NULL is valid). */
    void *(*start)(void *arg, struct event_base *base);
    /* At workers_quiesce (may be NULL): every request taken is answered
     * or handed over before it returns, and local is freed. */
    void (*stop)(void *arg, void *local);
};

/* n from 1 to 64; 1 runs the hs server on main itself (no threads). The
 * handler and reject callback are called on main, with arg; fast (may be
 * NULL, else copied) on the workers' threads; the limits' max_connections
 * is shared out among the workers. NULL on out of memory. */
struct workers *workers_new(struct event_base *main, unsigned n, const struct hs_limits *lim,
                            hs_handler h, const struct workers_fast *fast, hs_reject_cb rej,
                            void *arg);
/* On w's thread: hand r, which take took, to the handler on main. */
void workers_hand_over(struct worker *w, struct hs_req *r);
/* Requests handed to main since the start (any thread: a counter). */
unsigned long long workers_handoffs(const struct workers *ws);
/* Listen on addr (as hs_listen) and start the threads. 0, or -1 with a
 * message in err. */
int workers_listen(struct workers *ws, const char *addr, char *err, size_t errlen);
/* The answer to r (as hs_send: body's contents are moved, r is done). */
void workers_send(struct workers *ws, struct hs_req *r, int status, struct evbuffer *body);
/* The answer to a HEAD request, as hs_send_head. */
void workers_send_head(struct workers *ws, struct hs_req *r, int status, uint64_t length);
void workers_set_limits(struct workers *ws, const struct hs_limits *lim);
/* Stop accepting (as hs_close_listeners), on every worker. */
void workers_close_listeners(struct workers *ws);
/* Open client connections, all workers (read while they change: a gauge). */
unsigned workers_connections(const struct workers *ws);
/* From now on take is not called; returns once every worker has run its
 * stop (no request taken is left with a worker). */
void workers_quiesce(struct workers *ws);
/* Requests handed to main and not yet given to the handler. */
unsigned workers_queued(const struct workers *ws);
/* Stop the threads and free everything: requests the handler has not
 * answered should be answered first; those still queued for it get 503. */
void workers_free(struct workers *ws);

#endif
