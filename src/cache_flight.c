/* Flights: one fetch per key at a time, shared by every request that wants
 * the key meanwhile (its waiters), and across instances of a shared store
 * through a lease in the store: one instance fetches, the others wait for
 * its "done" event (polling the store as a fallback, and fetching
 * themselves past a deadline). The flights of one process are in a hash
 * table by key (htab.h), and on a list until freed. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "conf.h"

static int flight_eq(const struct htab_node *n, const void *key, size_t klen)
{
    const struct flight *f = list_entry(n, const struct flight, node);

    assert(f->magic == FLIGHT_MAGIC);
    return f->klen == klen && memcmp(f->key, key, klen) == 0;
}

/* Flight keys carry client-chosen queries: the table's seeded hash. */
struct flight *flight_find(struct cache *c, const char *key, size_t klen)
{
    struct htab_node *n = htab_find(&c->flights, htab_hash(&c->flights, key, klen), key, klen,
                                    flight_eq);

    return n ? list_entry(n, struct flight, node) : NULL;
}

void flight_unref(struct flight *f)
{
    assert(f->magic == FLIGHT_MAGIC && f->refs > 0);
    if (--f->refs > 0)
        return;
    /* Nobody can answer them once it is gone. */
    assert(f->waiters == NULL && !f->in_table);
    list_unlink(&f->link);
    free(f->lock_name);
    centry_decref(f->stale);
    if (f->timer)
        event_free(f->timer);
    f->magic = 0;
    free(f);
}

void flight_untable(struct flight *f)
{
    if (f->in_table) {
        htab_remove(&f->c->flights, &f->node);
        f->in_table = 0;
    }
}

void flight_end(struct flight *f)
{
    struct cache *c = f->c;

    assert(f->magic == FLIGHT_MAGIC && !f->done);
    flight_untable(f);
    if (f->holds_lease) {
        c->d.store->ops->lease_release(c->d.store, f->lock_name);
        f->holds_lease = 0;
    }
    if (f->timer)
        event_del(f->timer);
    f->done = 1;
    flight_unref(f);
}

static void on_flight_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct flight *f, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    if (f->timer == NULL)
        f->timer = evtimer_new(f->c->d.base, on_flight_timer, f);
    if (f->timer)
        evtimer_add(f->timer, &tv);
}

void cache_deliver(cache_done_cb cb, void *arg, const struct answer *a)
{
    if (a->e == NULL && a->err == CE_NONE) {
        struct answer oom = *a;
        oom.err = CE_OOM;
        oom.stored = 0;
        cb(arg, &oom);
        return;
    }
    cb(arg, a);
}

void flight_answer(struct flight *f, const struct answer *origin, const struct answer *other)
{
    struct waiter *w = f->waiters, *next;

    f->waiters = NULL;
    for (; w; w = next) {
        struct answer a = w->origin || other == NULL ? *origin : *other;
        assert(w->magic == WAITER_MAGIC);
        next = w->next;
        a.upstream_status = f->up_status;
        a.upstream_us = f->up_us;
        if (!w->origin)
            f->c->stats.collapsed++;
        w->magic = 0;            /* answered: never again */
        cache_deliver(w->cb, w->arg, &a);
        free(w);
    }
}

int flight_add_waiter(struct flight *f, cache_done_cb cb, void *arg, int origin, int no_cache)
{
    struct waiter *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return -1;
    *w = (struct waiter){WAITER_MAGIC, f->waiters, cb, arg, origin, no_cache};
    f->waiters = w;
    return 0;
}

void flight_fail(struct flight *f, enum cache_err err, int fwd_status)
{
    struct answer a = {.xcache = CX_MISS, .fwd = FWD_URI_MISS, .fwd_status = fwd_status,
                       .err = err};

    flight_answer(f, &a, NULL);
    flight_end(f);
}

static void on_budget(void *arg, enum admit verdict, int64_t retry_after_ms)
{
    struct flight *f = flight_of(arg);

    if (!f->done && !f->c->stopping) {
        if (verdict == ADMIT_OK)
            fetch_send(f);
        else
            fetch_refused(f, verdict, retry_after_ms);
    }
    flight_unref(f);
}

static void fetch(struct flight *f)
{
    struct admit_who who = {f->label, f->project_id, f->keytag};

    f->state = FS_FETCH;
    f->refs++;
    if (!f->no_store)
        gens_fix(f->c, &f->gens, f->gen_name);
    cache_upstream_admit(f->c, &who, f->kind != FK_CLIENT, on_budget, f);
}

static void try_lease(struct flight *f);

/* Has another fetch of the key landed in the store? Asked while waiting
 * for another instance's fetch (FS_REMOTE), and once more on taking the
 * lease: a lookup answered "miss" or "stale" just before another fetch of
 * the key was stored would otherwise fetch it again. */
static void on_check(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct flight *f = flight_of(arg);
    struct cache *c = f->c;

    f->checking = 0;
    if (f->done || c->stopping) {
        flight_unref(f);
        return;
    }
    if (res == STORE_HIT &&
        cache_fresh(e, g, c->d.now(), (int64_t)cache_ttl(cache_conf(c), f->project_id))) {
        struct answer a = {.e = e, .stored = 1, .xcache = CX_MISS, .fwd = FWD_URI_MISS,
                           .collapsed = 1};
        flight_answer(f, &a, NULL);
        flight_end(f);
    } else if (f->holds_lease || res == STORE_ERROR || c->d.mono() >= f->deadline_ms) {
        if (!f->holds_lease && res != STORE_ERROR)
            c->stats.takeovers++;
        fetch(f);
    } else {
        if (res != STORE_ERROR)
            f->gens = *g;
        try_lease(f);
    }
    flight_unref(f);
}

static void check_store(struct flight *f)
{
    f->checking = 1;
    f->refs++;
    store_get(f->c->d.store, f->key, f->klen, f->gen_name, on_check, f);
}

static void check_remote(struct flight *f)
{
    if (f->checking || f->state != FS_REMOTE)
        return;
    check_store(f);
}

void flight_done_elsewhere(struct cache *c, const char *key, size_t klen)
{
    struct flight *f = flight_find(c, key, klen);

    if (f != NULL && f->state == FS_REMOTE)
        check_remote(f);
}

/* A waiter asked for a fresh answer (Cache-Control: no-cache, honoured). */
static int wants_refetch(const struct flight *f)
{
    const struct waiter *w;

    if (cache_conf(f->c)->ignore_client_no_cache)
        return 0;
    for (w = f->waiters; w; w = w->next)
        if (w->no_cache)
            return 1;
    return 0;
}

static void on_flight_timer(evutil_socket_t fd, short what, void *arg)
{
    struct flight *f = flight_of(arg);
    struct store *st = f->c->d.store;

    if (f->state == FS_FETCH && f->holds_lease) {
        st->ops->lease_renew(st, f->lock_name, cache_conf(f->c)->lock_lease_ms);
        arm(f, cache_conf(f->c)->lock_lease_ms / 3);
    } else if (f->state == FS_REMOTE) {
        check_remote(f);
    }
}

/* A fetch under way keeps its lease. */
void flight_keep_lease(struct flight *f)
{
    if (f->holds_lease)
        arm(f, cache_conf(f->c)->lock_lease_ms / 3);
}

static void on_lease(void *arg, int got)
{
    struct flight *f = flight_of(arg);
    struct cache *c = f->c;

    if (f->done || c->stopping) {
        if (got == 1 && !f->done)
            f->holds_lease = 1;
        if (!f->done && c->stopping)
            flight_fail(f, CE_STOPPING, 503);
        flight_unref(f);
        return;
    }
    if (got == 0) {
        /* Another instance fetches: wait for its "done", polling as a fallback. */
        uint64_t poll = cache_conf(c)->lock_lease_ms / 4;
        if (f->state != FS_REMOTE) {
            f->state = FS_REMOTE;
            c->stats.remote_waits++;
        }
        arm(f, poll < 200 ? poll : 200);
    } else if (got == 1 && !f->checking && !wants_refetch(f)) {
        f->holds_lease = 1;
        f->state = FS_LEASE;
        check_store(f);
    } else {
        f->holds_lease = got == 1;
        fetch(f);
    }
    flight_unref(f);
}

static void try_lease(struct flight *f)
{
    struct store *st = f->c->d.store;

    f->refs++;
    st->ops->lease(st, f->lock_name, cache_conf(f->c)->lock_lease_ms, on_lease, f);
}

/* A new flight with q's strings copied; NULL on ENOMEM. */
static struct flight *flight_new(struct cache *c, enum fkind kind, const struct list_query *q,
                                 const char *key, const char *gen_name)
{
    size_t klen = strlen(key), glen = strlen(gen_name), clen = strlen(q->canonical),
           rlen = strlen(q->rid), plen = q->project_id ? strlen(q->project_id) : 0;
    /* The six strings, each with its NUL, in one block with the flight. */
    struct flight *f = calloc(1, sizeof(*f) + klen + glen + clen + q->credlen + rlen + plen + 6);
    char *at;

    if (f == NULL)
        return NULL;
    f->magic = FLIGHT_MAGIC;
    f->c = c;
    f->refs = 1;
    list_push_front(&c->all, &f->link);
    f->kind = kind;
    f->route = q->route;
    f->klen = klen;
    f->credlen = q->credlen;
    f->injected = q->injected;
    f->no_store = q->no_store;
    at = f->strings;
    f->key = cache_pack(&at, key, klen);
    f->gen_name = cache_pack(&at, gen_name, glen);
    f->canonical = cache_pack(&at, q->canonical, clen);
    f->cred = cache_pack(&at, q->cred, q->credlen);
    f->rid = cache_pack(&at, q->rid, rlen);
    f->project_id = q->project_id ? cache_pack(&at, q->project_id, plen) : NULL;
    f->lock_name = cache_cat(STORE_LOCK_PREFIX, key);
    if (f->lock_name == NULL) {
        flight_unref(f);
        return NULL;
    }
    return f;
}

struct flight *flight_get(struct cache *c, enum fkind kind, const struct list_query *q,
                          const char *key, const char *gen_name, const struct gens *g,
                          struct centry *stale, int *created)
{
    size_t klen = strlen(key);
    uint64_t h = htab_hash(&c->flights, key, klen);
    struct htab_node *n = htab_find(&c->flights, h, key, klen, flight_eq);
    const struct conf *conf = cache_conf(c);
    struct flight *f;

    *created = 0;
    if (!q->no_store && n != NULL) {
        f = list_entry(n, struct flight, node);
        if (f->stale == NULL && stale != NULL) {
            centry_incref(stale);
            f->stale = stale;
        }
        return f;
    }
    if ((f = flight_new(c, kind, q, key, gen_name)) == NULL)
        return NULL;
    if (g)
        f->gens = *g;
    if (stale) {
        centry_incref(stale);
        f->stale = stale;
    }
    ck_project_label(q->project_id, q->cred, q->credlen, f->label, sizeof(f->label));
    ck_cred_tag(q->cred, q->credlen, f->keytag);
    f->deadline_ms = c->d.mono() + (int64_t)conf->lock_lease_ms + (int64_t)conf->timeout_ms;
    f->l1_flushes = c->l1_flushes;
    if (!q->no_store) {
        htab_insert(&c->flights, &f->node, h);
        f->in_table = 1;
    }
    c->stats.flights++;
    *created = 1;
    return f;
}

void flight_start(struct flight *f)
{
    /* no-store fetches, and those of a store no other instance uses, need
     * no lease. */
    if (f->no_store || !f->c->d.store->ops->shared)
        fetch(f);
    else
        try_lease(f);
}

void cache_background(struct cache *c, enum fkind kind, const struct list_query *q,
                      const char *key, const char *gen_name, const struct gens *g,
                      struct centry *stale)
{
    int created;
    struct flight *f = flight_get(c, kind, q, key, gen_name, g, stale, &created);

    if (f != NULL && created) {
        if (kind == FK_REFRESH)
            c->stats.refreshes++;
        flight_start(f);
    }
}

void flights_stop(struct cache *c)
{
    struct list *p = c->all.next;

    /* Not list_foreach_safe: answering f's waiters may end other flights,
     * so the next one is read once f is answered (f kept by a ref). */
    while (p != &c->all) {
        struct flight *f = list_entry(p, struct flight, link);
        assert(f->magic == FLIGHT_MAGIC);
        if (f->done) {
            p = p->next;
            continue;
        }
        if (f->xfer) {
            c->d.up_cancel(f->xfer);
            f->xfer = NULL;
        }
        f->refs++;
        flight_fail(f, CE_STOPPING, 503);
        p = p->next;
        flight_unref(f);
    }
}
