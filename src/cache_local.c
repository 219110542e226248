/* The workers' hits (cache.h): from a thread-safe store at once
 * (cache_try_hit), or from a shared store on the worker's own thread, over
 * its own connection, with its own L1 (cache_local_*).
 *
 * The L1 is kept exact as the main loop's is (cache_l1.c): it is read
 * only while the worker's own subscription delivers every instance's
 * events, after the events already on its socket have been read, and it
 * is dropped whole on any invalidation event, on a lost subscription, and
 * whenever the main loop drops its own (a write through this instance, or
 * anything main heard first: c->l1_drops). An entry read from the store is
 * kept only if nothing dropped the L1 while it was read.
 *
 * Everything else (a miss, a stale entry, a prefetch waiting on the key, a
 * store error) is the main loop's: the caller hands the request over. */
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "clock.h"
#include "conf.h"

#define LOCAL_MAGIC 0x4c4f434cu      /* "LOCL" */
#define LLOOKUP_MAGIC 0x4c4c4b50u    /* "LLKP" */

struct cache_local {
    unsigned magic;
    struct cache *c;
    struct store *st;            /* the worker's own connection */
    struct store *l1;            /* NULL: the store has no events */
    uint64_t epoch;              /* st's events_epoch the L1 is valid for */
    uint64_t main_drops;         /* c->l1_drops the L1 is valid for */
    uint64_t drops;              /* this L1's drops */
    unsigned pending;            /* lookups in flight */
};

/* One lookup in the store, in flight. */
struct llookup {
    unsigned magic;
    struct cache_local *cl;
    const struct conf *conf;     /* held by the caller until cb */
    const char *project_id;      /* likewise */
    cache_done_cb cb;
    void *arg;
    uint64_t drops;              /* cl->drops when the store was asked */
    size_t klen;
    char *key;                   /* malloc'd (worker_key's) */
};

static void drop(struct cache_local *cl)
{
    cl->drops++;
    if (cl->l1 != NULL && store_memory_count(cl->l1) > 0)
        cl->l1->ops->purge(cl->l1, "");
}

/* The events already received are applied: may the L1 be read and
 * written now? */
static int l1_current(struct cache_local *cl, const struct conf *conf)
{
    uint64_t epoch, main_drops;

    if (cl->l1 == NULL)
        return 0;
    epoch = conf->l1_ttl_ms ? cl->st->ops->events_epoch(cl->st) : 0;
    main_drops = __atomic_load_n(&cl->c->l1_drops, __ATOMIC_ACQUIRE);
    if (epoch != cl->epoch || main_drops != cl->main_drops) {
        drop(cl);
        cl->epoch = epoch;
        cl->main_drops = main_drops;
    }
    return epoch != 0;
}

static void on_event(void *arg, const char *msg, size_t len)
{
    struct cache_local *cl = arg;

    assert(cl != NULL && cl->magic == LOCAL_MAGIC);
    /* Lost events, or a generation moved; a fetch that ended is main's. */
    if (msg == NULL ||
        (len >= strlen(BUMP_PREFIX) && memcmp(msg, BUMP_PREFIX, strlen(BUMP_PREFIX)) == 0))
        drop(cl);
}

struct cache_local *cache_local_new(struct cache *c, struct store *st, size_t l1_max)
{
    struct cache_local *cl = calloc(1, sizeof(*cl));

    if (cl == NULL)
        return NULL;
    cl->magic = LOCAL_MAGIC;
    cl->c = c;
    cl->st = st;
    if (st->ops->events_epoch != NULL) {
        if ((cl->l1 = store_memory_new(l1_max)) == NULL) {
            free(cl);
            return NULL;
        }
        st->ops->subscribe(st, on_event, cl);
    }
    return cl;
}

void cache_local_free(struct cache_local *cl)
{
    if (cl == NULL)
        return;
    assert(cl->magic == LOCAL_MAGIC);
    /* Its lookups are answered (as misses) before the store goes. */
    cl->st->ops->subscribe(cl->st, NULL, NULL);
    cl->st->ops->free(cl->st);
    assert(cl->pending == 0);
    if (cl->l1 != NULL)
        cl->l1->ops->free(cl->l1);
    cl->magic = 0;
    free(cl);
}

/* The key of q, or NULL when a worker must leave q to the main loop:
 * no-cache or no-store, a prefetch waiting for this page to be asked for,
 * or out of memory. malloc'd. */
static char *worker_key(struct cache *c, const struct list_query *q)
{
    char *key;

    if (q->no_cache || q->no_store ||
        (key = ck_build(q->route, q->cred, q->credlen, q->canonical)) == NULL)
        return NULL;
    if (prefetch_marked(c, key)) {
        free(key);
        return NULL;
    }
    return key;
}

/* e (what a store holds under the generations g) as a worker's hit in *a,
 * counted: 1, or 0 when it is not fresh (cache_fresh). */
static int fresh_hit(struct cache *c, const struct conf *conf, const char *project_id,
                     struct centry *e, const struct gens *g, struct answer *a)
{
    int64_t ttl = (int64_t)cache_ttl(conf, project_id), now = c->d.now();

    if (!cache_fresh(e, g, now, ttl))
        return 0;
    memset(a, 0, sizeof(*a));
    a->e = e;
    a->stored = 1;
    a->xcache = CX_HIT;
    a->ttl_ms = ttl - (now - e->stored_ms);
    __atomic_add_fetch(&c->stats.hits, 1, __ATOMIC_RELAXED);
    return 1;
}

static void answer_main(cache_done_cb cb, void *arg)
{
    struct answer a = {.xcache = CX_MISS};

    cb(arg, &a);
}

static void on_lookup(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct llookup *l = arg;
    struct cache_local *cl;
    struct answer a;

    assert(l != NULL && l->magic == LLOOKUP_MAGIC);
    cl = l->cl;
    assert(cl->pending > 0);
    cl->pending--;
    /* A store error is not counted here: main, asked next, counts it if
     * the store fails it too (lcgate_store_errors_total: lookups that went
     * upstream). */
    if (res == STORE_HIT && fresh_hit(cl->c, l->conf, l->project_id, e, g, &a)) {
        if (l->drops == cl->drops && l1_current(cl, l->conf) && l->drops == cl->drops)
            store_set(cl->l1, l->key, l->klen, e, l->conf->l1_ttl_ms);
        l->cb(l->arg, &a);
    } else {
        answer_main(l->cb, l->arg);
    }
    l->magic = 0;
    free(l->key);
    free(l);
}

/* A fresh entry for key in the L1 answers at once: 1 if it did. */
static int from_l1(struct cache_local *cl, const struct conf *conf, const char *key,
                   const char *project_id, cache_done_cb cb, void *arg)
{
    struct found found = {STORE_MISS, NULL, {0, 0}};
    struct answer a;
    int hit;

    store_get(cl->l1, key, strlen(key), NULL, cache_on_found, &found);
    if (found.e != NULL) {
        /* Invalidations drop the L1: its entries are current. */
        found.g.proj = found.e->gen_proj;
        found.g.all = found.e->gen_all;
    }
    if ((hit = fresh_hit(cl->c, conf, project_id, found.e, &found.g, &a))) {
        __atomic_add_fetch(&cl->c->stats.l1_hits, 1, __ATOMIC_RELAXED);
        cb(arg, &a);
    }
    centry_decref(found.e);
    return hit;
}

void cache_local_hit(struct cache_local *cl, const struct conf *conf,
                     const struct list_query *q, cache_done_cb cb, void *arg)
{
    struct llookup *l = NULL;
    char *key, *gen_name = NULL;

    assert(cl != NULL && cl->magic == LOCAL_MAGIC);
    if ((key = worker_key(cl->c, q)) == NULL) {
        answer_main(cb, arg);
        return;
    }
    if (l1_current(cl, conf) && from_l1(cl, conf, key, q->project_id, cb, arg)) {
        ;                        /* answered */
    } else if ((gen_name = gen_name_of(q->project_id, q->cred, q->credlen)) == NULL ||
               (l = malloc(sizeof(*l))) == NULL) {
        answer_main(cb, arg);
    } else {
        l->magic = LLOOKUP_MAGIC;
        l->cl = cl;
        l->conf = conf;
        l->project_id = q->project_id;
        l->cb = cb;
        l->arg = arg;
        l->drops = cl->drops;
        l->klen = strlen(key);
        l->key = key;            /* l's from here */
        key = NULL;
        cl->pending++;
        store_get(cl->st, l->key, l->klen, gen_name, on_lookup, l);
    }
    free(key);
    free(gen_name);
}

int cache_try_hit(struct cache *c, const struct conf *conf, const struct list_query *q,
                  struct answer *a)
{
    struct found found = {STORE_MISS, NULL, {0, 0}};
    char *key, *gen_name = NULL;
    int hit = 0;

    if (!c->d.store->ops->threadsafe || (key = worker_key(c, q)) == NULL)
        return 0;
    if ((gen_name = gen_name_of(q->project_id, q->cred, q->credlen)) != NULL) {
        store_get(c->d.store, key, strlen(key), gen_name, cache_on_found, &found);
        /* Not fresh: a stale entry's refresh is the main loop's. */
        hit = found.res == STORE_HIT &&
              fresh_hit(c, conf, q->project_id, found.e, &found.g, a);
    }
    if (!hit)                    /* else a->e holds the reference */
        centry_decref(found.e);
    free(key);
    free(gen_name);
    return hit;
}
