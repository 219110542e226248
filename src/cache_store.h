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

struct event_base;
struct conf;

enum store_res { STORE_HIT, STORE_MISS, STORE_ERROR };

typedef void (*store_get_cb)(void *arg, enum store_res res, struct centry *e);

struct store;

struct store_ops {
    const char *name;
    void (*get)(struct store *s, const char *key, size_t klen,
                store_get_cb cb, void *arg);
    /* Keep e (the store takes its own reference or copies it) for keep_ms;
     * fire and forget: a failure is counted and logged, never reported. */
    void (*set)(struct store *s, const char *key, size_t klen,
                struct centry *e, uint64_t keep_ms);
    /* Drop every entry whose key starts with prefix ("" drops all). */
    void (*purge)(struct store *s, const char *prefix);
    /* Short state for logs and /readyz: "ok", "connecting", "down". */
    const char *(*state)(struct store *s);
    void (*free)(struct store *s);
};

struct store {
    const struct store_ops *ops;
};

static inline void store_get(struct store *s, const char *key, size_t klen,
                             store_get_cb cb, void *arg)
{
    s->ops->get(s, key, klen, cb, arg);
}

static inline void store_set(struct store *s, const char *key, size_t klen,
                             struct centry *e, uint64_t keep_ms)
{
    s->ops->set(s, key, klen, e, keep_ms);
}

/* store_memory.c: bounded LRU with per-entry expiry. */
struct store *store_memory_new(size_t max_bytes);
/* Counters for tests and metrics. */
size_t store_memory_bytes(struct store *s);
size_t store_memory_count(struct store *s);

/* store_redis.c: hiredis async on base. url is redis://[:pass@]host[:port][/db]
 * or unix:///path[?db=N]; timeout_ms bounds every command and the connect.
 * Returns NULL with a message in err (errlen bytes) when url is invalid;
 * an unreachable server is not an error (it reconnects with backoff). */
struct store *store_redis_new(struct event_base *base, const char *url,
                              unsigned timeout_ms, char *err, size_t errlen);

#endif
