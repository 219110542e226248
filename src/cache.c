/* The cache's public entry: creation and shutdown, and a client's list
 * query (the L1, then the store, then a flight). The workers' hits are
 * cache_local.c's. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "clock.h"
#include "conf.h"

static int64_t clock_wall(void)
{
    return wall_ms();
}

static int64_t clock_mono(void)
{
    return mono_ms();
}

/* The flights, pending prefetches and holds: 0, or -1 with none made
 * (ENOMEM, or no randomness for the tables' seeds). */
static int tables_init(struct cache *c)
{
    list_init(&c->all);
    if (htab_init(&c->flights, 64) != 0)
        return -1;
    if (lru_init(&c->pending, 64) != 0) {
        htab_dispose(&c->flights);
        return -1;
    }
    if (lru_init(&c->holds, NHOLDBUCKETS) != 0) {
        lru_dispose(&c->pending);
        htab_dispose(&c->flights);
        return -1;
    }
    return 0;
}

/* Every table empty: their nodes are freed first. */
static void tables_dispose(struct cache *c)
{
    lru_dispose(&c->holds);
    lru_dispose(&c->pending);
    htab_dispose(&c->flights);
}

struct cache *cache_new(const struct cache_deps *deps)
{
    struct cache *c = calloc(1, sizeof(*c));
    struct store *st = deps->store;

    if (c == NULL)
        return NULL;
    if (tables_init(c) != 0) {
        free(c);
        return NULL;
    }
    c->magic = CACHE_MAGIC;
    c->d = *deps;
    if (c->d.up_start == NULL)
        c->d.up_start = up_start;
    if (c->d.up_cancel == NULL)
        c->d.up_cancel = up_cancel;
    if (c->d.now == NULL)
        c->d.now = clock_wall;
    if (c->d.mono == NULL)
        c->d.mono = clock_mono;
    if (st->ops->events_epoch != NULL &&
        (c->l1 = store_memory_new(cache_conf(c)->memory_max)) == NULL) {
        tables_dispose(c);
        free(c);
        return NULL;
    }
    st->ops->subscribe(st, cache_on_event, c);
    return c;
}

void cache_stop(struct cache *c)
{
    c->stopping = 1;
    c->d.store->ops->subscribe(c->d.store, NULL, NULL);
    flights_stop(c);
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    assert(c->magic == CACHE_MAGIC);
    prefetch_free_all(c);
    if (c->l1 != NULL)
        c->l1->ops->free(c->l1);
    holds_free(c);
    tables_dispose(c);
    c->magic = 0;
    free(c);
}

const struct cache_stats *cache_stats(const struct cache *c)
{
    return &c->stats;
}

/* A client's query while the store looks. */
struct lookup {
    unsigned magic;
    struct cache *c;
    struct list_query q;
    cache_done_cb cb;
    void *arg;
    char *key, *gen_name;
    uint64_t l1_flushes;         /* c->l1_flushes when the store was asked */
    int from_l1;
};

static void lookup_free(struct lookup *l)
{
    l->magic = 0;
    free(l->key);
    free(l->gen_name);
    free(l);
}

/* An answer with no entry: err, MISS, its status stated. */
static void answer_error(cache_done_cb cb, void *arg, enum cache_err err, int fwd_status)
{
    struct answer a = {.xcache = CX_MISS, .fwd = FWD_URI_MISS, .fwd_status = fwd_status,
                       .err = err};

    cb(arg, &a);
}

static void join(struct lookup *l, const struct gens *g, struct centry *stale)
{
    struct cache *c = l->c;
    int created;
    struct flight *f = flight_get(c, FK_CLIENT, &l->q, l->key, l->gen_name, g, stale, &created);

    if (f == NULL || flight_add_waiter(f, l->cb, l->arg, created, l->q.no_cache) != 0) {
        answer_error(l->cb, l->arg, CE_OOM, 500);
        if (f && created)
            flight_end(f);
        return;
    }
    if (created)
        flight_start(f);
}

/* What the store (or the L1) holds for l's key: answered from it, fresh or
 * stale while a refresh runs, or a flight joined. */
static void on_lookup(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct lookup *l = arg;
    struct cache *c;
    const struct conf *conf;
    struct answer a = {.e = e, .stored = 1};
    enum verdict v = V_MISS;

    assert(l != NULL && l->magic == LOOKUP_MAGIC);
    c = l->c;
    conf = cache_conf(c);
    if (res == STORE_ERROR)
        __atomic_add_fetch(&c->stats.store_errors, 1, __ATOMIC_RELAXED);
    if (c->stopping) {
        answer_error(l->cb, l->arg, CE_STOPPING, 503);
        lookup_free(l);
        return;
    }
    if (res == STORE_HIT && cache_gens_match(e, g)) {
        int64_t ttl = (int64_t)cache_ttl(conf, l->q.project_id), now = c->d.now();
        v = cache_judge(conf, e, now, ttl, l->q.no_cache);
        a.ttl_ms = ttl - (now - e->stored_ms);
    }
    if (v == V_FRESH) {
        if (!l->from_l1)
            l1_keep(c, l->key, strlen(l->key), e, l->l1_flushes);
        a.xcache = CX_HIT;
        __atomic_add_fetch(&c->stats.hits, 1, __ATOMIC_RELAXED);
        cache_deliver(l->cb, l->arg, &a);
        prefetch_on_hit(c, l->key);
    } else if (v == V_REVALIDATE) {
        a.xcache = CX_STALE;
        a.detail = CD_SWR;
        c->stats.stale_swr++;
        /* Before answering: q borrows the request's strings. */
        cache_background(c, FK_REFRESH, &l->q, l->key, l->gen_name, g, e);
        cache_deliver(l->cb, l->arg, &a);
    } else {
        join(l, res == STORE_ERROR ? NULL : g, v == V_FALLBACK ? e : NULL);
    }
    lookup_free(l);
}

/* A fresh entry for l in the L1 answers at once: 1 if it did. */
static int from_l1(struct lookup *l)
{
    struct cache *c = l->c;
    struct found found = {STORE_MISS, NULL, {0, 0}};

    store_get(c->l1, l->key, strlen(l->key), NULL, cache_on_found, &found);
    if (found.e != NULL && c->d.now() - found.e->stored_ms <
                               (int64_t)cache_ttl(cache_conf(c), l->q.project_id)) {
        /* Invalidations drop the L1: its entries are current. */
        struct gens g = {found.e->gen_proj, found.e->gen_all};
        l->from_l1 = 1;
        __atomic_add_fetch(&c->stats.l1_hits, 1, __ATOMIC_RELAXED);
        on_lookup(l, STORE_HIT, found.e, &g);
        centry_decref(found.e);
        return 1;
    }
    centry_decref(found.e);
    return 0;
}

void cache_list(struct cache *c, const struct list_query *q, cache_done_cb cb, void *arg)
{
    struct lookup *l = calloc(1, sizeof(*l));

    if (l == NULL ||
        (l->key = ck_build(q->route, q->cred, q->credlen, q->canonical)) == NULL ||
        (l->gen_name = gen_name_of(q->project_id, q->cred, q->credlen)) == NULL) {
        answer_error(cb, arg, CE_OOM, 500);
        if (l)
            lookup_free(l);
        return;
    }
    l->magic = LOOKUP_MAGIC;
    l->c = c;
    l->q = *q;
    l->cb = cb;
    l->arg = arg;
    if (q->no_store) {
        /* Neither read nor write: a fetch of its own. */
        join(l, NULL, NULL);
        lookup_free(l);
        return;
    }
    if (!q->no_cache && l1_usable(c) && from_l1(l))
        return;
    l->l1_flushes = c->l1_flushes;
    store_get(c->d.store, l->key, strlen(l->key), l->gen_name, on_lookup, l);
}
