/* cache: answering a list query from the store, from another request's
 * fetch, or from the upstream: coalescing (single flight, across instances
 * through a lease in the store), stale-while-revalidate, stale-if-error,
 * write invalidation by generations, and next-page prefetch.
 *
 * Every answer is a struct answer: an entry (stored, or the upstream's
 * own non-200) or an error, with the values that describe how it came
 * about, which the front end words (cache_status.h). The cache's files:
 *   cache.c           creation, a client's lookup
 *   cache_stale.c     freshness, stale-while-revalidate, stale-if-error (pure)
 *   cache_flight.c    flights (one fetch per key), their waiters, leases
 *   cache_fetch.c     a flight's upstream request and what its answer becomes
 *   cache_admit.c     upstream budgets, and holds after an upstream 429
 *   cache_prefetch.c  the next page, fetched ahead
 *   cache_l1.c        an in-process copy in front of a shared store
 *   cache_local.c     the workers' hits: a thread-safe store, or a shared one
 *                     over the worker's own connection and L1
 *   cache_inval.c     generations, invalidation, purge, barriers, events
 * and cache_int.h, what they share. */
#ifndef LCGATE_CACHE_H
#define LCGATE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cache_entry.h"
#include "query_norm.h"
#include "upstream.h"

struct cache;
struct conf;
struct curl_slist;
struct event_base;
struct ratelimiter;
struct store;

struct list_query {
    enum qn_route route;
    const char *canonical;
    const char *project_id;      /* the canonical project (request_read.h) it
                                    acts on, or NULL: the key's default */
    const char *cred;            /* the credential that identifies the answer */
    size_t credlen;
    int injected;                /* cred is lcgate's key (send "Bearer cred");
                                    else it is the client's Authorization value */
    int no_cache, no_store;      /* from the client's Cache-Control */
    const char *rid;             /* X-Request-Id to send upstream */
};

/* How an answer came about, as values: the front end words them
 * (cache_status.h: X-Cache, Cache-Status, the error bodies). */
enum cache_xcache { CX_HIT, CX_MISS, CX_STALE, CX_BYPASS };
enum cache_fwd {
    FWD_NONE,                    /* answered from the cache: "hit" */
    FWD_URI_MISS,                /* fetched: not in the cache */
    FWD_REQUEST,                 /* fetched: the client asked (no-cache) */
    FWD_BYPASS,                  /* fetched, never stored (no-store) */
    FWD_STALE                    /* the fetch failed or was refused: a stale
                                    entry instead */
};
enum cache_detail { CD_NONE, CD_SWR, CD_SIE, CD_BUDGET };
/* An answer the cache has no entry for: the front end says why. */
enum cache_err {
    CE_NONE,
    CE_OOM,                      /* 500 */
    CE_STOPPING,                 /* 503 */
    CE_UP_TIMEOUT,               /* 504 */
    CE_UP_BUSY,                  /* 503, retry after retry_after_ms */
    CE_UP_INVALID,               /* 502 */
    CE_UP_UNREACHABLE,           /* 502 */
    CE_UP_NOT_STARTED,           /* 502 */
    CE_BUDGET_KEY,               /* 429: the key's upstream budget */
    CE_BUDGET_PROJECT            /* 429: the project's, or a hold */
};

struct answer {
    struct centry *e;            /* borrowed for the callback's duration; NULL
                                    when err says what to answer */
    int stored;                  /* e is a stored answer (carries an ETag) */
    enum cache_xcache xcache;
    enum cache_fwd fwd;
    int fwd_status;              /* the upstream's status stated, 0: none */
    int wrote;                   /* the fetch stored its answer */
    int collapsed;               /* answered by another request's fetch */
    int64_t ttl_ms;              /* a cached answer's freshness left
                                    (negative: stale by that much) */
    enum cache_detail detail;
    enum cache_err err;
    int64_t retry_after_ms;      /* > 0: the client should wait this long */
    const char *project;         /* CE_BUDGET_PROJECT: the project (NULL:
                                    default); borrowed like e */
    int upstream_status;         /* of the fetch behind it, 0 if none */
    int64_t upstream_us;         /* its duration */
};

typedef void (*cache_done_cb)(void *arg, const struct answer *a);

/* What the cache works with, given at creation. */
struct cache_deps {
    struct event_base *base;     /* lease timers (shared stores only) */
    struct store *store;
    struct ratelimiter *rl;      /* the upstream budgets */
    struct conf *const *conf;    /* where the current configuration is: it
                                    is replaced whole on reload */
    struct up_client *up;
    /* How fetches start and stop: NULL for up_start and up_cancel (a test
     * puts a fake upstream here). */
    struct up_xfer *(*up_start)(struct up_client *c, const char *method, const char *url,
                                struct curl_slist *headers, const void *body, size_t len,
                                const struct up_opts *opts, up_done_cb cb, void *arg);
    void (*up_cancel)(struct up_xfer *x);
    /* Clocks in ms, NULL for clock.h's: wall time stamps entries (ages,
     * TTLs), monotonic time measures holds and deadlines. */
    int64_t (*now)(void);
    int64_t (*mono)(void);
    /* A fetch refused by an upstream budget (budget "upstream" or "key"),
     * for the metrics; may be NULL. */
    void (*refused)(void *arg, const char *label, const char *budget);
    void *arg;
};

/* The cache subscribes to the store's events; NULL on ENOMEM. */
struct cache *cache_new(const struct cache_deps *deps);
/* Shutdown, while the store still runs: answer every request waiting on a
 * fetch with 503 and end the fetches. Then the store may be freed (its
 * pending callbacks still find what they point to), then cache_free. */
void cache_stop(struct cache *c);
void cache_free(struct cache *c);

/* Answer q through cb exactly once (possibly before returning). The strings
 * q points to must stay valid until then: the cache reads them after its
 * store answers (not in a configuration that a reload may free). */
void cache_list(struct cache *c, const struct list_query *q, cache_done_cb cb, void *arg);

/* From any thread (a worker): a fresh answer to q from a thread-safe store
 * (the memory store; the running one, whatever a reload says) that needs
 * nothing of the main loop (not stale, no prefetch waiting on
 * it, no no-cache or no-store); conf is the caller's held configuration.
 * 1 with *a filled (a->e is a reference the caller drops), else 0: ask
 * cache_list on the main loop. */
int cache_try_hit(struct cache *c, const struct conf *conf, const struct list_query *q,
                  struct answer *a);

/* A worker's view of a shared store (one with events_epoch or not): its
 * own connection st (on the worker's event base; freed with it) and its
 * own L1 of at most l1_max bytes, kept exact by st's own subscription to
 * the store's events and by the main loop's drops. Made, used and freed
 * on the worker's thread; freed before the cache. NULL on ENOMEM (st is
 * then the caller's). */
struct cache_local;
struct cache_local *cache_local_new(struct cache *c, struct store *st, size_t l1_max);
/* Every lookup in flight is answered (a->e NULL) before it returns. */
void cache_local_free(struct cache_local *cl);
/* A fresh answer to q, through cb exactly once, possibly before it
 * returns: a->e set (a hit, borrowed for the call), or a->e NULL: ask
 * cache_list on the main loop (a miss, stale, a prefetch waiting on the
 * key, a store error, no-cache or no-store). conf (the caller's held
 * configuration) and q's project_id must last until cb; the rest of q is
 * read before it returns. */
void cache_local_hit(struct cache_local *cl, const struct conf *conf,
                     const struct list_query *q, cache_done_cb cb, void *arg);

/* A write of this credential for project_id (canonical; NULL: the
 * credential's default project) succeeded: every cached list of that
 * project, and of the credential's default project (which it may be), is
 * invalid from now on, on every instance. No project id reaches another
 * project's lists or the global generation. */
void cache_invalidate_project(struct cache *c, const char *cred, size_t credlen,
                              const char *project_id);
/* Admin purge of one project's lists (project_id, canonical) or of all
 * (NULL). */
void cache_purge(struct cache *c, const char *project_id);
/* Calls done once the invalidations sent so far have reached the store and
 * its other instances (at once without an L1, else after a round trip, at
 * most the store's deadline): a write is answered only then, so that no
 * instance serves what it invalidated to a client who saw the write.
 * *slot holds a handle while the call is pending (NULL before done runs,
 * which may be at once), for cache_barrier_cancel by a caller that goes
 * away first. */
typedef void (*cache_barrier_cb)(void *arg);
struct cache_barrier;
void cache_barrier(struct cache *c, struct cache_barrier **slot, cache_barrier_cb done,
                   void *arg);
void cache_barrier_cancel(struct cache_barrier *b);

/* Who a request sent upstream is for: its project label (budgets, holds),
 * its canonical project (NULL: the key's default; its [project]
 * overrides), and its credential's tag (ck_cred_tag: the key's budget). */
struct admit_who {
    const char *label, *project, *keytag;
};
enum admit {
    ADMIT_OK,                    /* go */
    ADMIT_PROJECT,               /* the project's upstream budget, or a hold
                                    after an upstream 429 */
    ADMIT_KEY                    /* the key's budget ([upstream] rate) */
};

/* May a request go upstream now? The project's upstream budget
 * (upstream_rate/upstream_burst), any hold after an upstream 429, then the
 * key's budget ([upstream] rate/burst, all projects). cb gets the verdict
 * and, when refused, the milliseconds to wait. background: only spare
 * budget (refreshes, prefetches). */
typedef void (*cache_admit_cb)(void *arg, enum admit verdict, int64_t retry_after_ms);
void cache_upstream_admit(struct cache *c, const struct admit_who *who, int background,
                          cache_admit_cb cb, void *arg);
/* The upstream answered 429 for this project (its label; its canonical id
 * or NULL, for the log): hold its requests for the time it asked
 * (retry-after-ms or Retry-After, else 1 s). */
void cache_upstream_said_429(struct cache *c, const char *label, const char *project,
                             const struct up_resp *r);

struct cache_stats {
    unsigned long long hits, misses, stale_swr, stale_sie, collapsed, prefetches,
        refreshes, flights, remote_waits, takeovers, over_budget, store_errors, l1_hits;
};
const struct cache_stats *cache_stats(const struct cache *c);

#endif
