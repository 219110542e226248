/* The embedded store: a hash table of entries on an LRU list, bounded by
 * the bytes it holds (keys + entries + bookkeeping), with per-entry expiry.
 * Lookups are synchronous. Thread-safe (workers serve hits from it): one
 * mutex, never held while a callback runs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store.h"
#include "clock.h"
#include "util.h"

struct item {
    struct item *hnext;          /* bucket chain */
    struct item *prev, *next;    /* LRU list, most recent first */
    uint64_t hash;
    int64_t expires_ms;          /* monotonic */
    struct centry *e;
    size_t klen;
    char key[];
};

/* A generation (cache_store.h), kept apart from the entries, bounded by
 * count: losing one is safe, its lists then miss once. */
struct gen {
    struct gen *next;            /* bucket chain */
    struct gen *older, *newer;   /* in the order they were set */
    uint64_t value;
    int64_t expires_ms;          /* monotonic */
    char name[];
};

#define NGENBUCKETS 4096

struct mstore {
    struct store base;
    pthread_mutex_t mu;
    struct gen *gens[NGENBUCKETS];
    struct gen *gen_oldest, *gen_newest;
    size_t ngens;
    uint64_t gen_all;            /* STORE_GEN_ALL, read on every get: kept */
    int64_t gen_all_expires_ms;  /* apart, without a hash */
    struct item **buckets;
    size_t nbuckets;             /* a power of two */
    size_t count;
    size_t bytes;
    size_t max_bytes;
    struct item *head, *tail;
};

/* Entry keys and generation names carry client-chosen project ids. */
static uint64_t hash(const char *p, size_t n)
{
    return util_hash(p, n);
}

static size_t item_bytes(const struct item *it)
{
    return sizeof(*it) + it->klen + 1 + centry_size(it->e) + sizeof(void *);
}

static struct item **slot(struct mstore *m, const char *key, size_t klen, uint64_t h)
{
    struct item **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->hnext)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            break;
    return pp;
}

static void lru_unlink(struct mstore *m, struct item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        m->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        m->tail = it->prev;
    it->prev = it->next = NULL;
}

static void lru_push(struct mstore *m, struct item *it)
{
    it->prev = NULL;
    it->next = m->head;
    if (m->head)
        m->head->prev = it;
    m->head = it;
    if (m->tail == NULL)
        m->tail = it;
}

static void drop(struct mstore *m, struct item *it)
{
    struct item **pp = slot(m, it->key, it->klen, it->hash);

    *pp = it->hnext;
    lru_unlink(m, it);
    m->count--;
    m->bytes -= item_bytes(it);
    centry_decref(it->e);
    free(it);
}

static void grow(struct mstore *m)
{
    size_t n = m->nbuckets * 2, i;
    struct item **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return; /* longer chains, still correct */
    for (i = 0; i < m->nbuckets; i++) {
        struct item *it = m->buckets[i], *next;
        for (; it; it = next) {
            next = it->hnext;
            it->hnext = nb[it->hash & (n - 1)];
            nb[it->hash & (n - 1)] = it;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
}

static struct gen **gen_slot(struct mstore *m, const char *name)
{
    struct gen **pp = &m->gens[hash(name, strlen(name)) % NGENBUCKETS];

    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void gen_drop(struct mstore *m, struct gen **pp)
{
    struct gen *g = *pp;

    *pp = g->next;
    if (g->older)
        g->older->newer = g->newer;
    else
        m->gen_oldest = g->newer;
    if (g->newer)
        g->newer->older = g->older;
    else
        m->gen_newest = g->older;
    m->ngens--;
    free(g);
}

/* The current value of a generation, 0 when not set. */
static uint64_t gen_value(struct mstore *m, const char *name)
{
    struct gen **pp;

    if (strcmp(name, STORE_GEN_ALL) == 0)
        return m->gen_all_expires_ms > mono_ms() ? m->gen_all : 0;
    pp = gen_slot(m, name);

    if (*pp == NULL)
        return 0;
    if ((*pp)->expires_ms <= mono_ms()) {
        gen_drop(m, pp);
        return 0;
    }
    return (*pp)->value;
}

static void mem_get(struct store *s, const char *key, size_t klen, const char *gen_name,
                    store_get_cb cb, void *arg)
{
    struct mstore *m = (struct mstore *)s;
    uint64_t h = hash(key, klen);
    struct item *it;
    struct gens gens;
    struct centry *e = NULL;

    pthread_mutex_lock(&m->mu);
    it = *slot(m, key, klen, h);
    gens.proj = gen_name ? gen_value(m, gen_name) : 0;
    gens.all = gen_value(m, STORE_GEN_ALL);
    if (it != NULL && it->expires_ms <= mono_ms()) {
        drop(m, it);
        it = NULL;
    }
    if (it != NULL) {
        lru_unlink(m, it);
        lru_push(m, it);
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
    struct gen **pp, *g;
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
    if (*(pp = gen_slot(m, name)) != NULL)
        gen_drop(m, pp);
    if (m->ngens >= STORE_MEMORY_MAX_GENS)
        gen_drop(m, gen_slot(m, m->gen_oldest->name));
    if ((g = malloc(sizeof(*g) + n + 1)) != NULL) {
        memcpy(g->name, name, n + 1);
        g->value = value;
        g->expires_ms = mono_ms() + (int64_t)(ttl_ms > INT64_MAX / 2 ? INT64_MAX / 2 : ttl_ms);
        pp = gen_slot(m, name);
        g->next = *pp;
        *pp = g;
        g->newer = NULL;
        g->older = m->gen_newest;
        if (m->gen_newest)
            m->gen_newest->newer = g;
        else
            m->gen_oldest = g;
        m->gen_newest = g;
        m->ngens++;
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
    uint64_t h = hash(key, klen);
    struct item *it = *slot(m, key, klen, h), *old = it;
    size_t need;

    centry_incref(e); /* first: e may be the entry being replaced */
    if (old != NULL)
        drop(m, old);
    it = malloc(sizeof(*it) + klen + 1);
    if (it == NULL) {
        centry_decref(e);
        return;
    }
    memcpy(it->key, key, klen);
    it->key[klen] = '\0';
    it->klen = klen;
    it->hash = h;
    it->e = e;
    it->expires_ms = mono_ms() + (int64_t)keep_ms;
    need = item_bytes(it);
    if (need > m->max_bytes) {
        free(it);
        centry_decref(e);
        return;
    }
    while (m->tail != NULL && m->bytes + need > m->max_bytes)
        drop(m, m->tail);
    it->hnext = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = it;
    lru_push(m, it);
    m->count++;
    m->bytes += need;
    if (m->count > m->nbuckets)
        grow(m);
}

static void mem_purge(struct store *s, const char *prefix)
{
    struct mstore *m = (struct mstore *)s;
    size_t plen = strlen(prefix);
    struct item *it, *next;

    pthread_mutex_lock(&m->mu);
    for (it = m->head; it; it = next) {
        next = it->next;
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

    size_t i;

    while (m->head)
        drop(m, m->head);
    for (i = 0; i < NGENBUCKETS; i++)
        while (m->gens[i])
            gen_drop(m, &m->gens[i]);
    free(m->buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void mem_usage(struct store *s, size_t *entries, size_t *bytes)
{
    *entries = store_memory_count(s);
    *bytes = store_memory_bytes(s);
}

static const struct store_ops memory_ops = {
    .name = "memory",
    .threadsafe = 1,
    .get = mem_get,
    .set = mem_set,
    .gen_set = mem_gen_set,
    .lease = mem_lease,
    .lease_renew = mem_lease_renew,
    .lease_release = mem_lease_release,
    .publish = mem_publish,
    .subscribe = mem_subscribe,
    .purge = mem_purge,
    .usage = mem_usage,
    .state = mem_state,
    .free = mem_free,
};

struct store *store_memory_new(size_t max_bytes)
{
    struct mstore *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->nbuckets = 1024;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (m->buckets == NULL) {
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
    struct mstore *m = (struct mstore *)s;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->bytes;
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t store_memory_count(struct store *s)
{
    struct mstore *m = (struct mstore *)s;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t store_memory_gens(struct store *s)
{
    struct mstore *m = (struct mstore *)s;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->ngens;
    pthread_mutex_unlock(&m->mu);
    return n;
}
