/* gw: the gateway's shared state, one per process. main.c creates it,
 * fills it in startup order and tears it down in shutdown order; the front
 * end (http_front.c) and the admin listener (admin.c) read and update it.
 * Modules below them (cache, store, ratelimit, upstream) never see it: each
 * gets what it needs at creation. */
#ifndef LCGATE_GW_H
#define LCGATE_GW_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "upstream.h"

struct event;
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
    struct mfamily *connections, *handoffs;
    struct mfamily *alog_errors;     /* access log lines lost */
    struct mfamily *request_seconds;     /* route, cache */
    struct mfamily *reloads, *reload_time;   /* result; the last success */
    struct mfamily *cpu, *rss, *fds, *max_fds, *start_time;  /* process_* */
};

/* The gateway: what every request handler reaches. */
struct gw {
    struct event_base *base;
    struct conf *conf;           /* current; replaced whole on reload
                                    (front_set_conf) */
    struct store *store;
    /* Another connection to the running store, on a worker's base (a
     * shared store: each worker serves hits through its own); NULL with a
     * message in err. */
    struct store *(*store_open)(const struct conf *c, struct event_base *base, char *err,
                                size_t errlen);
    struct up_client *up;
    struct cache *cache;
    struct ratelimiter *rl;
    struct gw_metrics m;
    pthread_mutex_t conf_mu;     /* guards the conf pointer for workers */
    int access_log;
    struct workers *front;       /* the client listener (workers.h) */
    struct list inflight;        /* every request not yet answered (struct
                                    greq, front_int.h) */
    size_t ninflight;
    unsigned fast_pending;       /* taken by workers, still with them (atomic) */
    struct up_memory memory;     /* held by requests in flight: bodies and
                                    upstream answers (max_inflight_bytes) */
    unsigned pass_reads;         /* pass-through reads upstream (their
                                    clients may go away meanwhile) */
    struct event *gone_timer;    /* looks for them while there are some */
    int draining;                /* listeners closed, finishing */
    int stopping;                /* tearing down: answer 503 */
    long last_upstream_status;       /* 0: none yet; -1: error; -2: timeout */
    int64_t last_upstream_ms;        /* wall clock of that answer */
};

#endif
