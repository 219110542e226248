/* cache_int: what the cache's files share (cache.h lists them; it is the
 * public side). Everything here runs on the main loop unless it says
 * otherwise. Every object passed to a callback as void * carries a magic
 * number that the callback checks (an assert) before using it. */
#ifndef LCGATE_CACHE_INT_H
#define LCGATE_CACHE_INT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache.h"
#include "cache_key.h"
#include "cache_store.h"
#include "htab.h"
#include "list.h"
#include "lru.h"
#include "store_keys.h"

#define CACHE_MAGIC 0x43414348u      /* "CACH" */
#define FLIGHT_MAGIC 0x464c4954u     /* "FLIT" */
#define WAITER_MAGIC 0x57414954u     /* "WAIT" */
#define LOOKUP_MAGIC 0x4c4f4f4bu     /* "LOOK" */

#define NMARKS 4096              /* pending_marks: counters, not a table */
#define PENDING_MAX 4096
#define NHOLDBUCKETS 256
#define DONE_PREFIX "d "            /* store event: a fetch of key ended */
#define BUMP_PREFIX "g "            /* store event: a generation moved: drop the L1 */

enum fkind { FK_CLIENT, FK_REFRESH, FK_PREFETCH };
enum fstate { FS_LEASE, FS_FETCH, FS_REMOTE };

/* A flight's waiters: a LIFO (answered the newest first), pushed and taken
 * whole by flight_answer, so no list.h list. */
struct waiter {
    unsigned magic;
    struct waiter *next;
    cache_done_cb cb;
    void *arg;
    int origin;                  /* the request that started the fetch */
    int no_cache;
};

/* One fetch of one key, shared by every request that wants it meanwhile. */
struct flight {
    unsigned magic;
    struct htab_node node;       /* in c->flights while in_table */
    struct list link;            /* in c->all until freed */
    struct cache *c;
    int refs;                    /* 1 while alive + 1 per store call pending */
    int in_table, done;
    enum fkind kind;
    enum fstate state;
    enum qn_route route;
    char *key;
    size_t klen;
    char *gen_name, *lock_name, *canonical, *cred, *rid, *project_id;
    char label[CK_LABEL_MAX];    /* project label: budgets and holds */
    char keytag[CK_TAG_LEN + 1]; /* the credential's: the key's budget */
    size_t credlen;
    int injected, no_store, holds_lease, checking;
    struct gens gens;            /* current when the flight began */
    struct centry *stale;        /* fallback for stale-if-error */
    struct waiter *waiters;
    struct up_xfer *xfer;
    int up_status;               /* of the finished fetch, for logs */
    int64_t up_us;
    struct event *timer;
    int64_t deadline_ms;         /* FS_REMOTE: fetch ourselves past this */
    uint64_t l1_flushes;         /* c->l1_flushes when the flight began */
    char strings[];              /* key, gen_name, canonical, cred, rid, project_id */
};

/* The strings of an object allocated in one block with them: s[0..n) and
 * a NUL copied at *at (n + 1 bytes the caller counted), which moves past
 * them. */
static inline char *cache_pack(char **at, const char *s, size_t n)
{
    char *d = *at;

    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    *at += n + 1;
    return d;
}

/* A node of the cache's bounded tables keyed by a string (the pending
 * prefetches, the holds): lru.h's node and the key it stands for. */
struct keyed {
    struct lru_node n;
    const char *key;
    size_t klen;
};

static inline int keyed_eq(const struct htab_node *n, const void *key, size_t klen)
{
    const struct keyed *k = list_entry(n, const struct keyed, n.h);

    return k->klen == klen && memcmp(k->key, key, klen) == 0;
}

/* The node of l holding key (hash h, from lru_hash), or NULL. */
static inline struct keyed *keyed_find(struct lru *l, const char *key, size_t klen, uint64_t h)
{
    struct lru_node *n = lru_find(l, h, key, klen, keyed_eq);

    return n ? list_entry(n, struct keyed, n) : NULL;
}

/* The node of l least recently inserted (or touched), or NULL. */
static inline struct keyed *keyed_oldest(const struct lru *l)
{
    struct lru_node *n = lru_oldest(l);

    return n ? list_entry(n, struct keyed, n) : NULL;
}

struct cache {
    unsigned magic;
    struct cache_deps d;         /* every function pointer set */
    int stopping;                /* cache_stop: answer 503 */
    struct list all;             /* every flight not yet freed, the newest first */
    struct htab flights;         /* the flights a request may join, by key */
    struct lru pending;          /* cache_prefetch.c's; at most PENDING_MAX */
    /* Not a table: counters (atomic) of the pending keys (and the keys
     * cache_fetch.c guards) by a hash of the key, that a worker's
     * cache_try_hit reads without the main loop's lock. Two keys may share
     * one: the worker then leaves the key to the main loop, no harm. */
    unsigned pending_marks[NMARKS];
    struct lru holds;            /* cache_admit.c's, after upstream 429s */
    /* store = redis: fresh entries kept in the process for l1_ttl, so that
     * a hit needs no round trip. Valid while the store delivers every
     * instance's invalidation events; dropped whole on any of them. */
    struct store *l1;
    uint64_t l1_epoch;           /* the store's events_epoch it is valid for */
    uint64_t l1_flushes;
    uint64_t l1_drops;           /* l1_flushes, for the workers' L1s (atomic:
                                    each drops its own when it moves) */
    struct cache_stats stats;
};

static inline const struct conf *cache_conf(const struct cache *c)
{
    return *c->d.conf;
}

/* cache_stale.c: how old an entry may be, as pure functions of the entry,
 * the configuration and the time. */
enum verdict {
    V_FRESH,                     /* answer it */
    V_REVALIDATE,                /* answer it, and refresh it behind */
    V_FALLBACK,                  /* fetch; answer it if the fetch fails */
    V_MISS                       /* fetch */
};
/* The TTL of a project's lists, and how long the store keeps them (past
 * the TTL for as long as a stale answer may be served). */
uint64_t cache_ttl(const struct conf *conf, const char *project_id);
uint64_t cache_keep_ms(const struct conf *conf, const char *project_id);
/* An entry is current when its stamps are its generations' values; a
 * generation not set (0) matches nothing. */
int cache_gens_match(const struct centry *e, const struct gens *g);
/* e (a current entry, or NULL) at now_ms for a client that said no-cache
 * or not. */
enum verdict cache_judge(const struct conf *conf, const struct centry *e, int64_t now_ms,
                         int64_t ttl_ms, int no_cache);
/* A current entry within its TTL. */
int cache_fresh(const struct centry *e, const struct gens *g, int64_t now_ms, int64_t ttl_ms);

/* cache_flight.c */
/* The flight fetching key, or NULL. */
struct flight *flight_find(struct cache *c, const char *key, size_t klen);
/* The flight for key: joined when one is under way (no_store never joins),
 * else made (*created), not yet started. NULL on ENOMEM. */
struct flight *flight_get(struct cache *c, enum fkind kind, const struct list_query *q,
                          const char *key, const char *gen_name, const struct gens *g,
                          struct centry *stale, int *created);
int flight_add_waiter(struct flight *f, cache_done_cb cb, void *arg, int origin,
                      int no_cache);
void flight_start(struct flight *f);
/* A fetch started: renew its lease (if any) while it runs. */
void flight_keep_lease(struct flight *f);
/* Every waiter gets the error err (MISS, fwd-status) and the flight ends. */
void flight_fail(struct flight *f, enum cache_err err, int fwd_status);
/* Leave the table, give up the lease, stop timers (exactly once); freed
 * once no store call still points at it. */
void flight_end(struct flight *f);
void flight_unref(struct flight *f);
/* Out of the table: a new request starts a fetch of its own. */
void flight_untable(struct flight *f);
/* Give every waiter its answer (exactly once each): the origin gets
 * origin, the others other (NULL: origin too). */
void flight_answer(struct flight *f, const struct answer *origin, const struct answer *other);
/* One answer to one request: e NULL without err is out of memory. */
void cache_deliver(cache_done_cb cb, void *arg, const struct answer *a);
/* Another instance's fetch of key ended: look in the store. */
void flight_done_elsewhere(struct cache *c, const char *key, size_t klen);
/* A refresh or prefetch nobody waits on. */
void cache_background(struct cache *c, enum fkind kind, const struct list_query *q,
                      const char *key, const char *gen_name, const struct gens *g,
                      struct centry *stale);
/* Shutdown: every flight answered 503 and ended. */
void flights_stop(struct cache *c);
static inline struct flight *flight_of(void *arg)
{
    struct flight *f = arg;

    assert(f != NULL && f->magic == FLIGHT_MAGIC);
    return f;
}

/* cache_fetch.c: a flight admitted upstream (or refused by a budget). */
void fetch_send(struct flight *f);
void fetch_refused(struct flight *f, enum admit verdict, int64_t retry_after_ms);
/* How fresh a stale fallback still is (negative: past its TTL), for its
 * answer. */
int64_t fetch_ttl_left(const struct flight *f);

/* cache_admit.c */
void holds_free(struct cache *c);

/* cache_prefetch.c */
/* Fetch the page canonical names, unless it is in flight or fresh. */
void prefetch(struct cache *c, enum qn_route r, const char *canonical, const char *cred,
              size_t credlen, int injected, const char *project_id);
/* A page f fetched (e, stored): prefetch its successor now, or once somebody
 * asks for it (had_waiters: somebody did). */
void prefetch_after(struct cache *c, const struct flight *f, const struct centry *e,
                    int had_waiters);
/* A hit on key: the prefetch waiting for it starts. */
void prefetch_on_hit(struct cache *c, const char *key);
/* Workers must not answer key while this is nonzero (from any thread). */
int prefetch_marked(struct cache *c, const char *key);
void prefetch_mark(struct cache *c, const char *key, int delta);
void prefetch_free_all(struct cache *c);

/* cache_l1.c */
/* Drop the L1, and every worker's (cache_local.c). */
void l1_flush(struct cache *c);
/* May the L1 be read and written now? */
int l1_usable(struct cache *c);
/* Keep a fresh entry, unless an invalidation came since `since`. */
void l1_keep(struct cache *c, const char *key, size_t klen, struct centry *e, uint64_t since);
/* What a synchronous store (the L1, the memory store) answered, kept past
 * its callback: e is a reference of ours (NULL unless HIT). */
struct found {
    enum store_res res;
    struct centry *e;
    struct gens g;
};
void cache_on_found(void *arg, enum store_res res, struct centry *e, const struct gens *g);

/* cache_inval.c */
/* The generation of a list's project (malloc'd): its label, so that no
 * project id can name another project's generation or the global one. */
char *gen_name_of(const char *project_id, const char *cred, size_t credlen);
/* Set the generations g lacks (0) to fresh values, unless another
 * instance sets them first. */
void gens_fix(struct cache *c, struct gens *g, const char *gen_name);
void cache_on_event(void *arg, const char *msg, size_t len);
/* "prefix" + s, malloc'd. */
char *cache_cat(const char *prefix, const char *s);

#endif
