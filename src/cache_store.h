/* cache_store: the interface every store (memory, redis) implements.
 *
 * get() answers through its callback exactly once: synchronously for the
 * memory store, later for Redis (within the store's deadline). The entry
 * passed to the callback is borrowed: incref it to keep it past the call.
 * A store error is never fatal to a request: the caller treats it as a
 * miss and goes upstream. */
#ifndef LCGATE_CACHE_STORE_H
#define LCGATE_CACHE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cache_entry.h"
#include "store_keys.h"

struct event_base;
struct conf;

enum store_res { STORE_HIT, STORE_MISS, STORE_ERROR };

/* Generations: values that stamp every stored list. A write sets its
 * project's generation to a fresh random value (purge-all sets the global
 * one), and an entry whose stamp differs from the current values is
 * invalid, on every instance at once, without finding or deleting it. A
 * generation not set (never, or lost: expired, evicted, deleted) reads 0,
 * and no entry is ever stamped 0: a list invalidated before a generation
 * was lost can never match the fresh value that replaces it. */
struct gens {
    uint64_t proj;   /* of the list's project */
    uint64_t all;    /* global, STORE_GEN_ALL */
};

/* res is HIT with the entry or MISS; on ERROR neither e nor g is valid.
 * On HIT and MISS, g holds the current generations. */
typedef void (*store_get_cb)(void *arg, enum store_res res, struct centry *e,
                             const struct gens *g);
/* got: 1 the lease is ours, 0 another holder has it, -1 store error. */
typedef void (*store_lease_cb)(void *arg, int got);
/* A message published by any instance (including this one) on the store's
 * event channel; msg NULL means the subscription was lost (messages may
 * have been missed) and len is 0. */
typedef void (*store_event_cb)(void *arg, const char *msg, size_t len);

/* One GCRA decision made by the store (see ratelimit.h). */
struct store_gcra {
    int allowed;
    int64_t granted;             /* requests spent (1..want) when allowed */
    int64_t remaining;
    int64_t retry_after_ms;
    int64_t reset_ms;
};
/* r is NULL when the store could not decide (error, deadline, down). */
typedef void (*store_gcra_cb)(void *arg, const struct store_gcra *r);

struct store;

struct store_ops {
    const char *name;            /* for logs and /readyz only: callers choose
                                    behaviour by the capabilities below */
    /* Nonzero when other instances use the same store (Redis): a fetch then
     * takes a lease so that one instance fetches for all, and a purge of
     * everything leaves the entries to expire (the global generation hides
     * them already; scanning would hold the store). Zero (memory): this
     * process alone fetches, and a purge of everything frees them now. */
    int shared;
    /* Nonzero when every op may be called from any thread, each answering
     * synchronously (memory): workers then serve hits from it. */
    int threadsafe;
    /* Look up key and read the generations STORE_GEN_ALL and gen_name
     * (e.g. STORE_GEN_PROJECT "<label>") in one round trip. */
    void (*get)(struct store *s, const char *key, size_t klen, const char *gen_name,
                store_get_cb cb, void *arg);
    /* Keep e (the store takes its own reference or copies it) for keep_ms;
     * fire and forget: a failure is counted and logged, never reported. */
    void (*set)(struct store *s, const char *key, size_t klen,
                struct centry *e, uint64_t keep_ms);
    /* Set a generation to value (non-zero) for ttl_ms; with if_absent,
     * only if it is not set. Fire and forget. */
    void (*gen_set)(struct store *s, const char *gen_name, uint64_t value, int if_absent,
                    uint64_t ttl_ms);
    /* A lease on name for ttl_ms held by this process (SET NX PX with this
     * process's own token), so that one instance fetches a key for all. */
    void (*lease)(struct store *s, const char *name, uint64_t ttl_ms,
                  store_lease_cb cb, void *arg);
    /* Extend our lease (only if still ours), or drop it (only if ours). */
    void (*lease_renew)(struct store *s, const char *name, uint64_t ttl_ms);
    void (*lease_release)(struct store *s, const char *name);
    /* Send msg to every instance's event callback; fire and forget. */
    void (*publish)(struct store *s, const char *msg, size_t len);
    /* The one event callback (NULL to stop). */
    void (*subscribe)(struct store *s, store_event_cb cb, void *arg);
    /* Spend up to want requests (at least 1, or none: refused) of the GCRA
     * budget under key atomically, on the store's own clock: period_us
     * between requests at the steady rate, burst requests at once. NULL in
     * stores that cannot share a budget (memory): the caller decides
     * locally. cb fires exactly once. */
    void (*gcra)(struct store *s, const char *key, uint64_t period_us, unsigned burst,
                 unsigned want, store_gcra_cb cb, void *arg);
    /* Drop every entry whose key starts with prefix ("" drops all). */
    void (*purge)(struct store *s, const char *prefix);
    /* Nonzero while this store delivers every event of every instance:
     * a number that changes whenever delivery was interrupted (events may
     * have been lost in between). Events already received are delivered
     * (to the subscribe callback) before it returns. NULL for a store with
     * no other instances. */
    uint64_t (*events_epoch)(struct store *s);
    /* The entries and bytes it holds, for the metrics; NULL where they are
     * not known (a shared store). */
    void (*usage)(struct store *s, size_t *entries, size_t *bytes);
    /* Short state for logs and /readyz: "ok", "connecting", "down". */
    const char *(*state)(struct store *s);
    /* The server in use ("host:port", a socket's path), for /readyz; NULL
     * while there is none (Sentinel has named none yet). NULL: no server. */
    const char *(*primary)(struct store *s);
    /* Pending get callbacks fire once with STORE_ERROR, synchronously,
     * and pending lease callbacks with -1, before free returns. */
    void (*free)(struct store *s);
};

struct store {
    const struct store_ops *ops;
};

static inline void store_get(struct store *s, const char *key, size_t klen,
                             const char *gen_name, store_get_cb cb, void *arg)
{
    s->ops->get(s, key, klen, gen_name, cb, arg);
}

static inline void store_set(struct store *s, const char *key, size_t klen,
                             struct centry *e, uint64_t keep_ms)
{
    s->ops->set(s, key, klen, e, keep_ms);
}

/* store_memory.c: bounded LRU with per-entry expiry; at most
 * STORE_MEMORY_MAX_GENS generations (the oldest set go first). */
#define STORE_MEMORY_MAX_GENS 65536
struct store *store_memory_new(size_t max_bytes);
/* Counters for tests and metrics. */
size_t store_memory_bytes(struct store *s);
size_t store_memory_count(struct store *s);
size_t store_memory_gens(struct store *s);

/* store_redis.c: Redis on base. url is
 * redis://[[user]:password@]host[:port][/db], rediss://... (TLS, with the
 * settings tls, NULL: the defaults) or unix://[[user]:password@]/path[?db=N];
 * timeout_ms bounds every command and the connect.
 * Returns NULL with a message in err (errlen bytes) when url is invalid or
 * a TLS file cannot be used; an unreachable server is not an error (it
 * reconnects with backoff). */
struct redis_tls_conf;
struct store *store_redis_new(struct event_base *base, const char *url,
                              const struct redis_tls_conf *tls, unsigned timeout_ms, char *err,
                              size_t errlen);
/* The same, the primary found and followed through Redis Sentinel
 * (redis_sentinel.h): url's host and port are not used, its password,
 * database and TLS (rediss://, with tls) are. */
struct redis_sentinel_conf;
struct store *store_redis_sentinel_new(struct event_base *base, const char *url,
                                       const struct redis_tls_conf *tls, unsigned timeout_ms,
                                       const struct redis_sentinel_conf *sc, char *err,
                                       size_t errlen);

#endif
