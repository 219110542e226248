/* cache: answering a list query from the store, from another request's
 * fetch, or from the upstream: coalescing (single flight, across instances
 * through a lease in the store), stale-while-revalidate, stale-if-error,
 * write invalidation by generations, and next-page prefetch.
 *
 * Every answer is a cache entry (a stored 200, or an error built for this
 * request) with the X-Cache and Cache-Status values that describe it, so
 * the front end has one way to reply. */
#ifndef LCGATE_CACHE_H
#define LCGATE_CACHE_H

#include <stddef.h>

#include "cache_entry.h"
#include "query_norm.h"

struct gw;
struct cache;

struct list_query {
    enum qn_route route;
    const char *canonical;
    const char *project_id;      /* canonical project_id, or NULL */
    const char *cred;            /* the credential that identifies the answer */
    size_t credlen;
    int injected;                /* cred is lcgate's key (send "Bearer cred");
                                    else it is the client's Authorization value */
    int no_cache, no_store;      /* from the client's Cache-Control */
    const char *rid;             /* X-Request-Id to send upstream */
};

struct answer {
    struct centry *e;            /* borrowed for the callback's duration */
    const char *xcache;          /* HIT, MISS, STALE or BYPASS */
    const char *cache_status;    /* RFC 9211 value */
    int stored;                  /* e is a stored answer (carries an ETag) */
};

typedef void (*cache_done_cb)(void *arg, const struct answer *a);

struct cache *cache_new(struct gw *gw);
/* Shutdown, while the store still runs: answer every request waiting on a
 * fetch with 503 and end the fetches. Then the store may be freed (its
 * pending callbacks still find what they point to), then cache_free. */
void cache_stop(struct cache *c);
void cache_free(struct cache *c);

/* Answer q through cb exactly once (possibly before returning). */
void cache_list(struct cache *c, const struct list_query *q, cache_done_cb cb, void *arg);

/* A write of this credential for project_id (NULL: the credential's
 * default project) succeeded: every cached list of that project is invalid
 * from now on, on every instance. */
void cache_invalidate_project(struct cache *c, const char *cred, size_t credlen,
                              const char *project_id);
/* Admin purge of one project's lists (project_id) or of all (NULL). */
void cache_purge(struct cache *c, const char *project_id);

struct cache_stats {
    unsigned long long hits, misses, stale_swr, stale_sie, collapsed, prefetches,
        refreshes, flights, remote_waits, takeovers;
};
const struct cache_stats *cache_stats(const struct cache *c);

#endif
