/* Invalidation by generations (cache_store.h): a write moves its project's
 * generation, a purge of everything the global one, and every list stamped
 * with an old value is invalid at once, on every instance. Also the store's
 * events (another instance's fetch ended, a generation moved) and the
 * barrier a write's answer waits on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "conf.h"
#include "util.h"

#define BARRIER_MAGIC 0x42415252u    /* "BARR" */

char *cache_cat(const char *prefix, const char *s)
{
    size_t p = strlen(prefix), n = strlen(s);
    char *out = malloc(p + n + 1);

    if (out) {                   /* on every lookup: no printf */
        memcpy(out, prefix, p);
        memcpy(out + p, s, n + 1);
    }
    return out;
}

char *gen_name_of(const char *project_id, const char *cred, size_t credlen)
{
    char label[CK_LABEL_MAX];

    ck_project_label(project_id, cred, credlen, label, sizeof(label));
    return cache_cat(STORE_GEN_PROJECT, label);
}

/* How long a generation is kept: longer than any entry stamped with it
 * lives, so that it expires only once no entry can need it. */
static uint64_t gen_ttl(const struct conf *conf)
{
    uint64_t ttl = conf->ttl_ms, swr = conf->stale_while_revalidate_ms,
             sie = conf->stale_if_error_ms;

    for (size_t i = 0; i < conf->nprojects; i++)
        if (conf->projects[i].has_ttl && conf->projects[i].ttl_ms > ttl)
            ttl = conf->projects[i].ttl_ms;
    return ttl + (swr > sie ? swr : sie) + 24 * 3600 * 1000ULL;
}

/* A fresh generation value: random, never 0 (which means "not set"). */
static uint64_t fresh_gen(void)
{
    uint64_t v;

    do
        v = util_random64() >> 1;
    while (v == 0);
    return v;
}

/* A fetch stamps what it stores with the generations it saw when it began:
 * any not set is set now, to a fresh value, unless another instance sets
 * it first (then what this fetch stores never matches: a miss, not a
 * wrong answer). */
void gens_fix(struct cache *c, struct gens *g, const char *gen_name)
{
    struct store *st = c->d.store;
    uint64_t ttl = gen_ttl(cache_conf(c));

    if (g->proj == 0) {
        g->proj = fresh_gen();
        st->ops->gen_set(st, gen_name, g->proj, 1, ttl);
    }
    if (g->all == 0) {
        g->all = fresh_gen();
        st->ops->gen_set(st, STORE_GEN_ALL, g->all, 1, ttl);
    }
}

void cache_on_event(void *arg, const char *msg, size_t len)
{
    struct cache *c = arg;

    assert(c != NULL && c->magic == CACHE_MAGIC);
    if (msg == NULL || (len >= strlen(BUMP_PREFIX) &&
                        memcmp(msg, BUMP_PREFIX, strlen(BUMP_PREFIX)) == 0)) {
        l1_flush(c);             /* lost events, or another instance's write */
        return;
    }
    if (len <= strlen(DONE_PREFIX) || memcmp(msg, DONE_PREFIX, strlen(DONE_PREFIX)) != 0)
        return;
    flight_done_elsewhere(c, msg + strlen(DONE_PREFIX), len - strlen(DONE_PREFIX));
}

/* A generation moves to a fresh value: every list stamped with the old one
 * is invalid now, here and (through the store) on every instance. */
static void bump(struct cache *c, const char *name)
{
    struct store *st = c->d.store;
    char msg[512];
    int n;

    if (name == NULL)
        return;
    st->ops->gen_set(st, name, fresh_gen(), 0, gen_ttl(cache_conf(c)));
    if (c->l1 != NULL) {
        l1_flush(c);
        n = snprintf(msg, sizeof(msg), BUMP_PREFIX "%s", name);
        if (n > 0 && (size_t)n < sizeof(msg))
            st->ops->publish(st, msg, (size_t)n);
    }
}

static void bump_project(struct cache *c, const char *project_id, const char *cred,
                         size_t credlen)
{
    char *name = gen_name_of(project_id, cred, credlen);

    bump(c, name);
    free(name);
}

void cache_invalidate_project(struct cache *c, const char *cred, size_t credlen,
                              const char *project_id)
{
    /* The credential's default project may be the one named, so both go. */
    bump_project(c, NULL, cred, credlen);
    if (project_id)
        bump_project(c, project_id, NULL, 0);
}

void cache_purge(struct cache *c, const char *project_id)
{
    if (project_id != NULL) {
        bump_project(c, project_id, NULL, 0);
        return;
    }
    bump(c, STORE_GEN_ALL);
    if (!c->d.store->ops->shared)
        c->d.store->ops->purge(c->d.store, STORE_KEY_PREFIX);
}

struct cache_barrier {
    unsigned magic;
    cache_barrier_cb done;       /* NULL once cancelled */
    void *arg;
    struct cache_barrier **slot;
};

static void on_barrier(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct cache_barrier *b = arg;

    assert(b != NULL && b->magic == BARRIER_MAGIC);
    if (b->slot != NULL)
        *b->slot = NULL;
    if (b->done != NULL)
        b->done(b->arg);
    b->magic = 0;
    free(b);
}

void cache_barrier(struct cache *c, struct cache_barrier **slot, cache_barrier_cb done,
                   void *arg)
{
    struct cache_barrier *b;

    *slot = NULL;
    /* Only instances with an L1 answer without asking the store. */
    if (c->l1 == NULL || (b = calloc(1, sizeof(*b))) == NULL) {
        done(arg);
        return;
    }
    b->magic = BARRIER_MAGIC;
    b->done = done;
    b->arg = arg;
    b->slot = slot;
    *slot = b;
    /* Any read: its answer comes after the writes sent before it. */
    store_get(c->d.store, STORE_BARRIER, strlen(STORE_BARRIER), NULL, on_barrier, b);
}

void cache_barrier_cancel(struct cache_barrier *b)
{
    if (b != NULL) {
        assert(b->magic == BARRIER_MAGIC);
        b->done = NULL;
        b->slot = NULL;
    }
}
