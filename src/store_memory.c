/* The embedded store: a hash table of entries on an LRU list, bounded by
 * the bytes it holds (keys + entries + bookkeeping), with per-entry expiry.
 * Lookups are synchronous. Thread-safe (workers serve hits from it): one
 * mutex, never held while a callback runs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store.h"
#include "clock.h"
#include "lru.h"

struct item {
    struct lru_node n;
    int64_t expires_ms;          /* monotonic */
    struct centry *e;
    size_t klen;
    char key[];
};

/* A generation (cache_store.h), kept apart from the entries, bounded by
 * count: losing one is safe, its lists then miss once. The LRU's order is
 * the order they were set (a read does not touch it). */
struct gen {
    struct lru_node n;
    uint64_t value;
    int64_t expires_ms;          /* monotonic */
    char name[];
};

struct mstore {
    struct store base;
    pthread_mutex_t mu;
    struct lru gens;
    uint64_t gen_all;            /* STORE_GEN_ALL, read on every get: kept */
    int64_t gen_all_expires_ms;  /* apart, without a hash */
    struct lru items;
    size_t bytes;
    size_t max_bytes;
};

#define item_of(p) list_entry(p, struct item, n)
#define gen_of(p) list_entry(p, struct gen, n)

static size_t item_bytes(const struct item *it)
{
    return sizeof(*it) + it->klen + 1 + centry_size(it->e) + sizeof(void *);
}

static int item_eq(const struct htab_node *h, const void *key, size_t klen)
{
    const struct item *it = list_entry(h, const struct item, n.h);

    return it->klen == klen && memcmp(it->key, key, klen) == 0;
}

static int gen_eq(const struct htab_node *h, const void *key, size_t klen)
{
    const struct gen *g = list_entry(h, const struct gen, n.h);

    return strlen(g->name) == klen && memcmp(g->name, key, klen) == 0;
}

static struct item *find(struct mstore *m, const char *key, size_t klen, uint64_t h)
{
    struct lru_node *n = lru_find(&m->items, h, key, klen, item_eq);

    return n ? item_of(n) : NULL;
}

static void drop(struct mstore *m, struct item *it)
{
    lru_remove(&m->items, &it->n);
    m->bytes -= item_bytes(it);
    centry_decref(it->e);
    free(it);
}

static struct gen *gen_find(struct mstore *m, const char *name)
{
    size_t n = strlen(name);
    struct lru_node *p = lru_find(&m->gens, lru_hash(&m->gens, name, n), name, n, gen_eq);

    return p ? gen_of(p) : NULL;
}

static void gen_drop(struct mstore *m, struct gen *g)
{
    lru_remove(&m->gens, &g->n);
    free(g);
}

/* The current value of a generation, 0 when not set. */
static uint64_t gen_value(struct mstore *m, const char *name)
{
    struct gen *g;

    if (strcmp(name, STORE_GEN_ALL) == 0)
        return m->gen_all_expires_ms > mono_ms() ? m->gen_all : 0;
    if ((g = gen_find(m, name)) == NULL)
        return 0;
    if (g->expires_ms <= mono_ms()) {
        gen_drop(m, g);
        return 0;
    }
    return g->value;
}

static void mem_get(struct store *s, const char *key, size_t klen, const char *gen_name,
                    store_get_cb cb, void *arg)
{
    struct mstore *m = (struct mstore *)s;
    struct item *it;
    struct gens gens;
    struct centry *e = NULL;

    pthread_mutex_lock(&m->mu);
    it = find(m, key, klen, lru_hash(&m->items, key, klen));
    gens.proj = gen_name ? gen_value(m, gen_name) : 0;
    gens.all = gen_value(m, STORE_GEN_ALL);
    if (it != NULL && it->expires_ms <= mono_ms()) {
        drop(m, it);
        it = NULL;
    }
    if (it != NULL) {
        lru_touch(&m->items, &it->n);
        e = it->e;
        centry_incref(e);        /* the callback's, whatever happens meanwhile */
    }
    pthread_mutex_unlock(&m->mu);
    cb(arg, e ? STORE_HIT : STORE_MISS, e, &gens);
    centry_decref(e);
}

static void mem_gen_set(struct store *s, const char *name, uint64_t value, int if_absent,
                        uint64_t ttl_ms)
{
    struct mstore *m = (struct mstore *)s;
    struct gen *g;
    size_t n = strlen(name);

    pthread_mutex_lock(&m->mu);
    if (if_absent && gen_value(m, name) != 0) {
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (strcmp(name, STORE_GEN_ALL) == 0) {
        m->gen_all = value;
        m->gen_all_expires_ms =
            mono_ms() + (int64_t)(ttl_ms > INT64_MAX / 2 ? INT64_MAX / 2 : ttl_ms);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if ((g = gen_find(m, name)) != NULL)
        gen_drop(m, g);
    if (lru_count(&m->gens) >= STORE_MEMORY_MAX_GENS)
        gen_drop(m, gen_of(lru_oldest(&m->gens)));
    if ((g = calloc(1, sizeof(*g) + n + 1)) != NULL) {
        memcpy(g->name, name, n + 1);
        g->value = value;
        g->expires_ms = mono_ms() + (int64_t)(ttl_ms > INT64_MAX / 2 ? INT64_MAX / 2 : ttl_ms);
        lru_insert(&m->gens, &g->n, lru_hash(&m->gens, name, n));
    }
    pthread_mutex_unlock(&m->mu);
}

/* One process: its own flights already coalesce, so every lease is granted
 * and there is nobody else to tell. */
static void mem_lease(struct store *s, const char *name, uint64_t ttl_ms,
                      store_lease_cb cb, void *arg)
{
    cb(arg, 1);
}

static void mem_lease_renew(struct store *s, const char *name, uint64_t ttl_ms)
{
}

static void mem_lease_release(struct store *s, const char *name)
{
}

static void mem_publish(struct store *s, const char *msg, size_t len)
{
}

static void mem_subscribe(struct store *s, store_event_cb cb, void *arg)
{
}

static void set_locked(struct mstore *m, const char *key, size_t klen, struct centry *e,
                       uint64_t keep_ms);

static void mem_set(struct store *s, const char *key, size_t klen,
                    struct centry *e, uint64_t keep_ms)
{
    struct mstore *m = (struct mstore *)s;

    pthread_mutex_lock(&m->mu);
    set_locked(m, key, klen, e, keep_ms);
    pthread_mutex_unlock(&m->mu);
}

static void set_locked(struct mstore *m, const char *key, size_t klen, struct centry *e,
                       uint64_t keep_ms)
{
    uint64_t h = lru_hash(&m->items, key, klen);
    struct item *it = find(m, key, klen, h), *old = it;
    struct lru_node *oldest;
    size_t need;

    centry_incref(e); /* first: e may be the entry being replaced */
    if (old != NULL)
        drop(m, old);
    it = calloc(1, sizeof(*it) + klen + 1);
    if (it == NULL) {
        centry_decref(e);
        return;
    }
    memcpy(it->key, key, klen);
    it->key[klen] = '\0';
    it->klen = klen;
    it->e = e;
    it->expires_ms = mono_ms() + (int64_t)keep_ms;
    need = item_bytes(it);
    if (need > m->max_bytes) {
        free(it);
        centry_decref(e);
        return;
    }
    while ((oldest = lru_oldest(&m->items)) != NULL && m->bytes + need > m->max_bytes)
        drop(m, item_of(oldest));
    lru_insert(&m->items, &it->n, h);
    m->bytes += need;
}

static void mem_purge(struct store *s, const char *prefix)
{
    struct mstore *m = (struct mstore *)s;
    size_t plen = strlen(prefix);
    struct list *p, *next;

    pthread_mutex_lock(&m->mu);
    list_foreach_safe(p, next, &m->items.order) {
        struct item *it = list_entry(p, struct item, n.order);
        if (it->klen >= plen && memcmp(it->key, prefix, plen) == 0)
            drop(m, it);
    }
    pthread_mutex_unlock(&m->mu);
}

static const char *mem_state(struct store *s)
{
    return "ok";
}

static void mem_free(struct store *s)
{
    struct mstore *m = (struct mstore *)s;
    struct lru_node *n;

    while ((n = lru_oldest(&m->items)) != NULL)
        drop(m, item_of(n));
    while ((n = lru_oldest(&m->gens)) != NULL)
        gen_drop(m, gen_of(n));
    lru_dispose(&m->items);
    lru_dispose(&m->gens);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The entries' bytes, their count and the generations' count, read together
 * under the lock. */
static void sizes(struct store *s, size_t *bytes, size_t *entries, size_t *gens)
{
    struct mstore *m = (struct mstore *)s;

    pthread_mutex_lock(&m->mu);
    *bytes = m->bytes;
    *entries = lru_count(&m->items);
    *gens = lru_count(&m->gens);
    pthread_mutex_unlock(&m->mu);
}

static void mem_usage(struct store *s, size_t *entries, size_t *bytes)
{
    size_t gens;

    sizes(s, bytes, entries, &gens);
}

static const struct store_ops memory_ops = {
    .name = "memory", .threadsafe = 1, .state = mem_state, .free = mem_free,
    /* entries and their generations */
    .get = mem_get, .set = mem_set, .gen_set = mem_gen_set, .purge = mem_purge,
    .usage = mem_usage,
    /* one process: its leases and events stay in it */
    .lease = mem_lease, .lease_renew = mem_lease_renew, .lease_release = mem_lease_release,
    .publish = mem_publish, .subscribe = mem_subscribe,
};

struct store *store_memory_new(size_t max_bytes)
{
    struct mstore *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    if (lru_init(&m->items, 1024) != 0) {
        free(m);
        return NULL;
    }
    if (lru_init(&m->gens, 64) != 0) {
        lru_dispose(&m->items);
        free(m);
        return NULL;
    }
    m->base.ops = &memory_ops;
    m->max_bytes = max_bytes;
    pthread_mutex_init(&m->mu, NULL);
    return &m->base;
}

size_t store_memory_bytes(struct store *s)
{
    size_t bytes, entries, gens;

    sizes(s, &bytes, &entries, &gens);
    return bytes;
}

size_t store_memory_count(struct store *s)
{
    size_t bytes, entries, gens;

    sizes(s, &bytes, &entries, &gens);
    return entries;
}

size_t store_memory_gens(struct store *s)
{
    size_t bytes, entries, gens;

    sizes(s, &bytes, &entries, &gens);
    return gens;
}
