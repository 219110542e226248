/* http_front: the client-facing listener (hs, on libevent). Routes each
 * request, answers exactly once, and owns the request object (struct greq,
 * private) from arrival to reply. */
#ifndef LCGATE_HTTP_FRONT_H
#define LCGATE_HTTP_FRONT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

struct event_base;
struct workers;
struct conf;
struct store;
struct up_client;
struct greq;
struct cache;
struct ratelimiter;

struct metrics;
struct mfamily;

/* The metric families the modules feed (see admin.c for their names). */
struct gw_metrics {
    struct metrics *reg;
    struct mfamily *requests;        /* route, status, cache */
    struct mfamily *upstream;        /* status */
    struct mfamily *upstream_seconds;
    struct mfamily *rate_limited;    /* project, budget */
    struct mfamily *collapsed, *stale, *prefetches, *refreshes, *l1_hits;
    struct mfamily *store_up, *store_errors, *cache_entries, *cache_bytes, *in_flight, *build;
    struct mfamily *connections;
    struct mfamily *alog_errors;     /* access log lines lost */
    struct mfamily *request_seconds;     /* route, cache */
    struct mfamily *reloads, *reload_time;   /* result; the last success */
    struct mfamily *cpu, *rss, *fds, *max_fds, *start_time;  /* process_* */
};

/* The gateway: what every request handler reaches. One per process. */
struct gw {
    struct event_base *base;
    struct conf *conf;           /* current; replaced whole on reload
                                    (front_set_conf) */
    struct store *store;
    struct up_client *up;
    struct cache *cache;
    struct ratelimiter *rl;
    struct gw_metrics m;
    pthread_mutex_t conf_mu;     /* guards the conf pointer for workers */
    int access_log;
    struct workers *front;       /* the client listener (workers.h) */
    struct greq *inflight;       /* every request not yet answered */
    size_t ninflight;
    struct up_memory memory;     /* held by requests in flight: bodies and
                                    upstream answers (max_inflight_bytes) */
    unsigned pass_reads;         /* pass-through reads upstream (their
                                    clients may go away meanwhile) */
    struct event *gone_timer;    /* looks for them while there are some */
    int draining;                /* listeners closed, finishing */
    int stopping;                /* tearing down: answer 503 */
    uint64_t requests;           /* atomic: workers count theirs */
    uint64_t hits, misses, upstream_errors, rate_limited;
    long last_upstream_status;       /* 0: none yet; -1: error; -2: timeout */
    int64_t last_upstream_ms;        /* wall clock of that answer */
};

struct hs_limits;
/* The HTTP server's limits from a configuration. */
void front_limits(const struct conf *c, struct hs_limits *lim);
/* Listen on conf->listen (host:port, [v6]:port, unix:/path). */
int front_start(struct gw *gw, char *err, size_t errlen);
/* A reload: the new configuration's limits apply to new requests. */
void front_reload(struct gw *gw);
/* Requests in flight, and those a worker has handed over not yet begun. */
size_t front_pending(const struct gw *gw);
/* A reload: next becomes gw->conf; the old one is freed by its last
 * holder (a worker may be answering with it). */
void front_set_conf(struct gw *gw, struct conf *next);
/* Before the shared state is torn down: workers answer nothing more by
 * themselves (returns once none is inside its fast path). */
void front_quiesce(struct gw *gw);
/* Stop accepting new connections; requests in flight go on. */
void front_close_listeners(struct gw *gw);
/* Answer 503 to every request still in flight and free the listener. */
void front_free(struct gw *gw);

#endif
