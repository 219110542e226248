/* Next-page prefetch: a page a client asked for is followed by a
 * background fetch of the page after it. A prefetched page nobody asked for
 * yet waits in a pending table (fixed buckets, oldest dropped first) until
 * somebody does, so that paging goes ahead of clients by one page only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "conf.h"
#include "paging.h"
#include "util.h"

#define PREFETCH_MAGIC 0x50524546u   /* "PREF" */

/* Pending keys carry client-chosen queries: a seeded hash. */
static size_t pending_bucket(const char *key)
{
    return util_hash(key, strlen(key)) % NBUCKETS;
}

static struct pending **pending_slot(struct cache *c, const char *key)
{
    struct pending **pp = &c->pending[pending_bucket(key)];

    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

void prefetch_mark(struct cache *c, const char *key, int delta)
{
    if (delta > 0)
        __atomic_add_fetch(&c->pending_marks[pending_bucket(key)], 1, __ATOMIC_RELEASE);
    else
        __atomic_sub_fetch(&c->pending_marks[pending_bucket(key)], 1, __ATOMIC_RELEASE);
}

int prefetch_marked(struct cache *c, const char *key)
{
    return __atomic_load_n(&c->pending_marks[pending_bucket(key)], __ATOMIC_ACQUIRE) != 0;
}

static void pending_free(struct cache *c, struct pending *p)
{
    struct pending **pp = pending_slot(c, p->key);

    assert(c->npending > 0);
    prefetch_mark(c, p->key, -1);
    *pp = p->hnext;
    /* Out of the age list: its neighbours, or its ends, point past it. */
    *(p->older ? &p->older->newer : &c->oldest) = p->newer;
    *(p->newer ? &p->newer->older : &c->newest) = p->older;
    c->npending--;
    free(p->key);
    free(p->next_canonical);
    free(p->cred);
    free(p->project_id);
    free(p);
}

void prefetch_free_all(struct cache *c)
{
    while (c->oldest)
        pending_free(c, c->oldest);
}

/* Remember that f's page is followed by next (taken over). */
static void pending_add(struct cache *c, const struct flight *f, char *next)
{
    struct pending *p = calloc(1, sizeof(*p)), **pp;

    if (p == NULL || (p->key = strdup(f->key)) == NULL || (p->cred = malloc(f->credlen + 1)) == NULL) {
        if (p)
            free(p->key);
        free(p);
        free(next);
        return;
    }
    pp = pending_slot(c, p->key);
    memcpy(p->cred, f->cred, f->credlen + 1);
    p->credlen = f->credlen;
    p->injected = f->injected;
    p->route = f->route;
    p->next_canonical = next;
    p->project_id = f->project_id ? strdup(f->project_id) : NULL;
    if (*pp)
        pending_free(c, *pp);
    p->hnext = *pp;
    *pp = p;
    prefetch_mark(c, p->key, 1);
    p->older = c->newest;        /* the newest: the last to go */
    *(c->newest ? &c->newest->newer : &c->oldest) = p;
    c->newest = p;
    if (++c->npending > PENDING_MAX)
        pending_free(c, c->oldest);
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
        free(next);
    } else {
        /* Nobody asked for this page yet: fetch its successor once
         * somebody does. */
        pending_add(c, f, next);
    }
}

void prefetch_on_hit(struct cache *c, const char *key)
{
    struct pending *p;

    if (c->npending == 0 || (p = *pending_slot(c, key)) == NULL)
        return;
    prefetch(c, p->route, p->next_canonical, p->cred, p->credlen, p->injected, p->project_id);
    pending_free(c, p);
}

struct prefetch_ctx {
    unsigned magic;
    struct cache *c;
    struct list_query q;
    char *key, *gen_name, *canonical, *cred, *project_id;
    char rid[40];
};

static void prefetch_ctx_free(struct prefetch_ctx *p)
{
    p->magic = 0;
    free(p->key);
    free(p->gen_name);
    free(p->canonical);
    free(p->cred);
    free(p->project_id);
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
          cache_fresh(e, g, c->d.now(), (int64_t)cache_ttl(cache_conf(c), p->project_id))))
        cache_background(c, FK_PREFETCH, &p->q, p->key, p->gen_name, g, NULL);
    prefetch_ctx_free(p);
}

void prefetch(struct cache *c, enum qn_route r, const char *canonical, const char *cred,
              size_t credlen, int injected, const char *project_id)
{
    struct prefetch_ctx *p = calloc(1, sizeof(*p));
    static unsigned long long n;

    if (p == NULL)
        return;
    p->magic = PREFETCH_MAGIC;
    p->c = c;
    p->canonical = strdup(canonical);
    p->cred = malloc(credlen + 1);
    p->project_id = project_id ? strdup(project_id) : NULL;
    p->key = ck_build(r, cred, credlen, canonical);
    p->gen_name = gen_name_of(project_id, cred, credlen);
    if (p->canonical == NULL || p->cred == NULL || p->key == NULL || p->gen_name == NULL ||
        (project_id && p->project_id == NULL) ||
        flight_find(c, p->key, strlen(p->key)) != NULL) {
        prefetch_ctx_free(p); /* in flight already, or out of memory */
        return;
    }
    memcpy(p->cred, cred, credlen);
    p->cred[credlen] = '\0';
    snprintf(p->rid, sizeof(p->rid), "lcgate-prefetch-%llu", ++n);
    p->q.route = r;
    p->q.canonical = p->canonical;
    p->q.project_id = p->project_id;
    p->q.cred = p->cred;
    p->q.credlen = credlen;
    p->q.injected = injected;
    p->q.rid = p->rid;
    store_get(c->d.store, p->key, strlen(p->key), p->gen_name, on_prefetch_lookup, p);
}
