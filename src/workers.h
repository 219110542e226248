/* workers: the client listener, on the main event loop (one worker) or on
 * N threads of its own. Each thread runs an event base and an hs server
 * (hs.h) that accepts, reads and parses requests and writes answers: the
 * system calls, which are most of a cached answer's cost. Every request
 * is handed to the handler on the main loop, where the cache, coalescing,
 * rate limits and metrics live, so that their state is shared by all
 * workers without locks; the answer goes back to the thread that owns the
 * connection. Hand-offs in either direction are batched: a thread is woken
 * (an eventfd) only when its queue was empty.
 *
 * TCP: each thread listens on its own SO_REUSEPORT socket, so that the
 * kernel spreads connections; a Unix socket is one socket that all share.
 *
 * TLS: when the listener's context is loaded (tls.h) before workers_new,
 * every worker's connections speak TLS.
 *
 * A worker may first try to answer by itself (the fast callback: a cached
 * answer that needs nothing of the main loop), so that the common case
 * does not cross threads at all.
 *
 * Every call from the main loop's thread. */
#ifndef LCGATE_WORKERS_H
#define LCGATE_WORKERS_H

#include "hs.h"

struct workers;

/* Asked on a worker's thread before a request is handed over: 1 if it
 * answered the request itself (hs_send, on that thread). */
typedef int (*workers_fast_fn)(struct hs_req *r, void *arg);

/* n from 1 to 64; 1 runs the hs server on main itself (no threads). The
 * handler and reject callback are called on main, with arg; fast (may be
 * NULL) on the workers' threads; the limits' max_connections is shared out
 * among the workers. NULL on out of memory. */
struct workers *workers_new(struct event_base *main, unsigned n, const struct hs_limits *lim,
                            hs_handler h, workers_fast_fn fast, hs_reject_cb rej, void *arg);
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
/* From now on fast is not called; returns once no worker is inside it. */
void workers_quiesce(struct workers *ws);
/* Requests handed to main and not yet given to the handler. */
unsigned workers_queued(const struct workers *ws);
/* Stop the threads and free everything: requests the handler has not
 * answered should be answered first; those still queued for it get 503. */
void workers_free(struct workers *ws);

#endif
