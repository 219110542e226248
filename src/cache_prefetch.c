/* Next-page prefetch: a page a client asked for is followed by a
 * background fetch of the page after it. A prefetched page nobody asked for
 * yet waits in a pending table (lru.h, at most PENDING_MAX, the oldest
 * dropped first) until somebody does, so that paging goes ahead of clients
 * by one page only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "conf.h"
#include "paging.h"
#include "util.h"

#define PREFETCH_MAGIC 0x50524546u   /* "PREF" */
#define PENDING_MAGIC 0x50454e44u    /* "PEND" */

/* A page fetched ahead and not yet asked for, and what follows it; one
 * block with its strings. */
struct pending {
    unsigned magic;
    struct keyed k;              /* c->pending, the newest first */
    char *next_canonical, *cred, *project_id;
    size_t credlen;
    int injected;
    enum qn_route route;
    char strings[];
};

/* The workers' marks are counters by a hash of the key (cache_int.h), not
 * a table: the process's seeded hash is enough. */
static size_t mark_of(const char *key)
{
    return util_hash(key, strlen(key)) % NMARKS;
}

void prefetch_mark(struct cache *c, const char *key, int delta)
{
    if (delta > 0)
        __atomic_add_fetch(&c->pending_marks[mark_of(key)], 1, __ATOMIC_RELEASE);
    else
        __atomic_sub_fetch(&c->pending_marks[mark_of(key)], 1, __ATOMIC_RELEASE);
}

int prefetch_marked(struct cache *c, const char *key)
{
    return __atomic_load_n(&c->pending_marks[mark_of(key)], __ATOMIC_ACQUIRE) != 0;
}

static struct pending *pending_of(struct keyed *k)
{
    struct pending *p = k ? list_entry(k, struct pending, k) : NULL;

    assert(p == NULL || p->magic == PENDING_MAGIC);
    return p;
}

/* Pending keys carry client-chosen queries: the table's seeded hash. */
static struct pending *pending_find(struct cache *c, const char *key, size_t klen, uint64_t h)
{
    return pending_of(keyed_find(&c->pending, key, klen, h));
}

/* Out of the table, unmarked, freed. */
static void pending_free(struct cache *c, struct pending *p)
{
    lru_remove(&c->pending, &p->k.n);
    prefetch_mark(c, p->k.key, -1);
    p->magic = 0;
    free(p);
}

void prefetch_free_all(struct cache *c)
{
    struct pending *p;

    while ((p = pending_of(keyed_oldest(&c->pending))) != NULL)
        pending_free(c, p);
}

/* Remember that f's page is followed by next: the newest pending, in place
 * of any for the same key; the oldest goes past PENDING_MAX. */
static void pending_add(struct cache *c, const struct flight *f, const char *next)
{
    size_t nlen = strlen(next), plen = f->project_id ? strlen(f->project_id) : 0;
    uint64_t h = lru_hash(&c->pending, f->key, f->klen);
    /* The four strings, each with its NUL, in one block with it. */
    struct pending *p = calloc(1, sizeof(*p) + f->klen + nlen + f->credlen + plen + 4);
    struct pending *old;
    char *at;

    if (p == NULL)
        return;
    p->magic = PENDING_MAGIC;
    at = p->strings;
    p->k.key = cache_pack(&at, f->key, f->klen);
    p->k.klen = f->klen;
    p->next_canonical = cache_pack(&at, next, nlen);
    p->cred = cache_pack(&at, f->cred, f->credlen);
    p->project_id = f->project_id ? cache_pack(&at, f->project_id, plen) : NULL;
    p->credlen = f->credlen;
    p->injected = f->injected;
    p->route = f->route;
    if ((old = pending_find(c, f->key, f->klen, h)) != NULL)
        pending_free(c, old);
    lru_insert(&c->pending, &p->k.n, h);
    prefetch_mark(c, p->k.key, 1);
    if (lru_count(&c->pending) > PENDING_MAX)
        pending_free(c, pending_of(keyed_oldest(&c->pending)));
}

void prefetch_after(struct cache *c, const struct flight *f, const struct centry *e,
                    int had_waiters)
{
    char *next;

    /* Paging goes forward from what clients asked: not from refreshes. */
    if (e == NULL || f->no_store || !cache_conf(c)->prefetch || f->kind == FK_REFRESH)
        return;
    if ((next = pg_next(f->route, f->canonical, e->body, e->body_len)) == NULL)
        return;
    if (f->kind != FK_PREFETCH || had_waiters) {
        prefetch(c, f->route, next, f->cred, f->credlen, f->injected, f->project_id);
    } else {
        /* Nobody asked for this page yet: fetch its successor once
         * somebody does. */
        pending_add(c, f, next);
    }
    free(next);
}

void prefetch_on_hit(struct cache *c, const char *key)
{
    size_t klen = strlen(key);
    struct pending *p;

    if (lru_count(&c->pending) == 0 ||
        (p = pending_find(c, key, klen, lru_hash(&c->pending, key, klen))) == NULL)
        return;
    prefetch(c, p->route, p->next_canonical, p->cred, p->credlen, p->injected, p->project_id);
    pending_free(c, p);
}

struct prefetch_ctx {
    unsigned magic;
    struct cache *c;
    struct list_query q;
    char *key, *gen_name;
    char rid[40];
    char strings[];              /* q's canonical, cred and project_id */
};

static void prefetch_ctx_free(struct prefetch_ctx *p)
{
    p->magic = 0;
    free(p->key);
    free(p->gen_name);
    free(p);
}

static void on_prefetch_lookup(void *arg, enum store_res res, struct centry *e,
                               const struct gens *g)
{
    struct prefetch_ctx *p = arg;
    struct cache *c;

    assert(p != NULL && p->magic == PREFETCH_MAGIC);
    c = p->c;
    if (!c->stopping && res != STORE_ERROR &&
        !(res == STORE_HIT &&
          cache_fresh(e, g, c->d.now(), (int64_t)cache_ttl(cache_conf(c), p->q.project_id))))
        cache_background(c, FK_PREFETCH, &p->q, p->key, p->gen_name, g, NULL);
    prefetch_ctx_free(p);
}

void prefetch(struct cache *c, enum qn_route r, const char *canonical, const char *cred,
              size_t credlen, int injected, const char *project_id)
{
    size_t clen = strlen(canonical), plen = project_id ? strlen(project_id) : 0;
    /* The three strings, each with its NUL, in one block with it. */
    struct prefetch_ctx *p = calloc(1, sizeof(*p) + clen + credlen + plen + 3);
    static unsigned long long n;
    char *at;

    if (p == NULL)
        return;
    p->magic = PREFETCH_MAGIC;
    p->c = c;
    p->key = ck_build(r, cred, credlen, canonical);
    p->gen_name = gen_name_of(project_id, cred, credlen);
    if (p->key == NULL || p->gen_name == NULL || flight_find(c, p->key, strlen(p->key)) != NULL) {
        prefetch_ctx_free(p); /* in flight already, or out of memory */
        return;
    }
    at = p->strings;
    p->q.canonical = cache_pack(&at, canonical, clen);
    p->q.cred = cache_pack(&at, cred, credlen);
    p->q.project_id = project_id ? cache_pack(&at, project_id, plen) : NULL;
    snprintf(p->rid, sizeof(p->rid), "lcgate-prefetch-%llu", ++n);
    p->q.route = r;
    p->q.credlen = credlen;
    p->q.injected = injected;
    p->q.rid = p->rid;
    store_get(c->d.store, p->key, strlen(p->key), p->gen_name, on_prefetch_lookup, p);
}
