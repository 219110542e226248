/* The L1: with a shared store (Redis), fresh entries also kept in the
 * process for l1_ttl, so that a hit needs no round trip. It holds only
 * while the store delivers every instance's invalidation events, and is
 * dropped whole on any of them (cache_inval.c) or when delivery was
 * interrupted. */
#include "cache_int.h"
#include "conf.h"

void l1_flush(struct cache *c)
{
    c->l1_flushes++;
    __atomic_add_fetch(&c->l1_drops, 1, __ATOMIC_RELEASE);
    if (c->l1 != NULL && store_memory_count(c->l1) > 0)
        c->l1->ops->purge(c->l1, "");
}

int l1_usable(struct cache *c)
{
    struct store *st = c->d.store;
    uint64_t epoch;

    if (c->l1 == NULL)
        return 0;
    epoch = cache_conf(c)->l1_ttl_ms && st->ops->events_epoch ? st->ops->events_epoch(st) : 0;
    if (epoch != c->l1_epoch) {
        l1_flush(c);
        c->l1_epoch = epoch;
    }
    return epoch != 0;
}

void l1_keep(struct cache *c, const char *key, size_t klen, struct centry *e, uint64_t since)
{
    if (since == c->l1_flushes && l1_usable(c))
        store_set(c->l1, key, klen, e, cache_conf(c)->l1_ttl_ms);
}

void cache_on_found(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct found *f = arg;

    f->res = res;
    if (g)
        f->g = *g;
    if (res == STORE_HIT) {
        centry_incref(e);
        f->e = e;
    }
}
