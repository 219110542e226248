#include "cache.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "cache_key.h"
#include "cache_store.h"
#include "clock.h"
#include "util.h"
#include "conf.h"
#include "config.h"
#include "gw.h"
#include "log.h"
#include "metrics.h"
#include "paging.h"
#include "ratelimit.h"
#include "upstream.h"

#define NBUCKETS 4096            /* flights and pending prefetches */
#define PENDING_MAX 4096
#define MAX_RESPONSE (64u * 1024 * 1024)
#define GEN_PREFIX "lcg:1:gen:p:"   /* + a project label (cache_key.h) */
#define LOCK_PREFIX "lcg:1:lock:"
#define DONE_PREFIX "d "
#define BARRIER_KEY "lcg:1:barrier"
#define BUMP_PREFIX "g "        /* a generation moved: drop the L1 */

enum fkind { FK_CLIENT, FK_REFRESH, FK_PREFETCH };
enum fstate { FS_LEASE, FS_FETCH, FS_REMOTE };

struct waiter {
    struct waiter *next;
    cache_done_cb cb;
    void *arg;
    int origin;                  /* the request that started the fetch */
    int no_cache;
};

/* One fetch of one key, shared by every request that wants it meanwhile. */
struct flight {
    struct flight *hnext;        /* c->flights bucket */
    struct flight *prev, *next;  /* c->all */
    struct cache *c;
    int refs;                    /* 1 while alive + 1 per store call pending */
    int in_table, done;
    enum fkind kind;
    enum fstate state;
    enum qn_route route;
    char *key;
    size_t klen;
    char *gen_name, *lock_name, *canonical, *cred, *rid, *project_id;
    char label[CK_LABEL_MAX];    /* project label: budgets and holds */
    char keytag[CK_TAG_LEN + 1]; /* the credential's: the key's budget */
    size_t credlen;
    int injected, no_store, holds_lease, checking;
    struct gens gens;            /* current when the flight began */
    struct centry *stale;        /* fallback for stale-if-error */
    struct waiter *waiters;
    struct up_xfer *xfer;
    int up_status;               /* of the finished fetch, for logs */
    int64_t up_us;
    struct event *timer;
    int64_t deadline_ms;         /* FS_REMOTE: fetch ourselves past this */
    uint64_t l1_flushes;         /* c->l1_flushes when the flight began */
};

/* A page fetched ahead and not yet asked for, and what follows it. */
struct pending {
    struct pending *hnext;
    struct pending *older, *newer;
    char *key, *next_canonical, *cred, *project_id;
    size_t credlen;
    int injected;
    enum qn_route route;
};

/* An upstream 429 for a project: its requests wait until until_ms. */
struct hold {
    struct hold *next;
    int64_t until_ms;            /* monotonic */
    char label[];
};
#define NHOLDBUCKETS 256
#define MAX_HOLDS 10000
#define MAX_HOLD_MS 300000

struct lookup {
    struct cache *c;
    struct list_query q;
    cache_done_cb cb;
    void *arg;
    char *key, *gen_name;
    uint64_t l1_flushes;         /* c->l1_flushes when the store was asked */
    int from_l1;
};

struct cache {
    struct gw *gw;
    struct flight *all;          /* every flight not yet freed */
    struct flight *flights[NBUCKETS];
    struct pending *pending[NBUCKETS];
    unsigned pending_marks[NBUCKETS];    /* entries per bucket (atomic): what a
                                            worker's cache_try_hit reads */
    struct pending *oldest, *newest;
    size_t npending;
    struct hold *holds[NHOLDBUCKETS];
    size_t nholds;
    /* store = redis: fresh entries kept in the process for l1_ttl, so that
     * a hit needs no round trip. Valid while the store delivers every
     * instance's invalidation events; dropped whole on any of them. */
    struct store *l1;
    uint64_t l1_epoch;           /* the store's events_epoch it is valid for */
    uint64_t l1_flushes;
    struct cache_stats stats;
};

/* Flight, prefetch and hold keys carry client-chosen queries and projects. */
static uint64_t hash(const char *p, size_t n)
{
    return util_hash(p, n);
}

static const struct conf *cf(const struct cache *c)
{
    return c->gw->conf;
}

static uint64_t ttl_in(const struct conf *conf, const char *project_id)
{
    const struct conf_project *p = conf_project(conf, project_id);

    return p && p->has_ttl ? p->ttl_ms : conf->ttl_ms;
}

static uint64_t ttl_of(const struct cache *c, const char *project_id)
{
    return ttl_in(cf(c), project_id);
}

static uint64_t keep_ms(const struct cache *c, const char *project_id)
{
    uint64_t swr = cf(c)->stale_while_revalidate_ms, sie = cf(c)->stale_if_error_ms;

    return ttl_of(c, project_id) + (swr > sie ? swr : sie);
}

static struct hold **hold_slot(struct cache *c, const char *label)
{
    struct hold **pp = &c->holds[hash(label, strlen(label)) % NHOLDBUCKETS];

    while (*pp && strcmp((*pp)->label, label) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Milliseconds the upstream asked this project to wait for, or 0. */
static int64_t held_ms(struct cache *c, const char *label)
{
    struct hold **pp, *h;
    int64_t left;

    if (c->nholds == 0)
        return 0;
    pp = hold_slot(c, label);
    if ((h = *pp) == NULL)
        return 0;
    left = h->until_ms - mono_ms();
    if (left > 0)
        return left;
    *pp = h->next;
    free(h);
    c->nholds--;
    return 0;
}

/* The wait an upstream 429 asks for: retry-after-ms, else Retry-After in
 * seconds, else one second; at most MAX_HOLD_MS. */
static int64_t retry_hint_ms(const struct up_resp *r)
{
    int64_t ms = -1;
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        const char *v = r->headers[i].value;
        if (strcasecmp(r->headers[i].name, "retry-after-ms") == 0 && v[0] >= '0' && v[0] <= '9')
            ms = (int64_t)strtod(v, NULL);
        else if (ms < 0 && strcasecmp(r->headers[i].name, "Retry-After") == 0 &&
                 v[0] >= '0' && v[0] <= '9')
            ms = (int64_t)(strtod(v, NULL) * 1000);
    }
    if (ms < 0)
        ms = 1000;
    return ms > MAX_HOLD_MS ? MAX_HOLD_MS : ms;
}

void cache_upstream_said_429(struct cache *c, const char *label, const char *project,
                             const struct up_resp *r)
{
    struct hold **pp = hold_slot(c, label), *h = *pp;
    int64_t until = mono_ms() + retry_hint_ms(r);
    size_t n = strlen(label);

    if (h == NULL) {
        if (c->nholds >= MAX_HOLDS || (h = malloc(sizeof(*h) + n + 1)) == NULL)
            return;
        memcpy(h->label, label, n + 1);
        h->next = NULL;
        h->until_ms = 0;
        *pp = h;
        c->nholds++;
        /* The id as the client wrote it (the log escapes it), and its label. */
        log_warn("upstream answered 429 for project %s: holding its upstream requests "
                 "for %lld ms (label %s)", project ? project : "default",
                 (long long)(until - mono_ms()), label);
    }
    if (until > h->until_ms)
        h->until_ms = until;
}

/* ---- the upstream budget ---- */

struct admit_ctx {
    struct cache *c;
    cache_admit_cb cb;
    void *arg;
    char keytag[CK_TAG_LEN + 1];
};

static void on_key_admit(void *arg, const struct rl_result *r)
{
    struct admit_ctx *a = arg;

    a->cb(a->arg, r->allowed ? ADMIT_OK : ADMIT_KEY, r->allowed ? 0 : r->retry_after_ms);
    free(a);
}

static void key_budget(const char *keytag, char *key, size_t n)
{
    snprintf(key, n, CK_PREFIX "rl:k:%s", keytag);
}

static void on_project_admit(void *arg, const struct rl_result *r)
{
    struct admit_ctx *a = arg;
    const struct conf *conf = cf(a->c);
    char key[64];

    if (!r->allowed || !conf->has_key_rate) {
        a->cb(a->arg, r->allowed ? ADMIT_OK : ADMIT_PROJECT, r->allowed ? 0 : r->retry_after_ms);
        free(a);
        return;
    }
    /* The key's budget is spent only by what its project's let through. */
    key_budget(a->keytag, key, sizeof(key));
    rl_take(a->c->gw->rl, key, &conf->key_rate, conf->key_burst, on_key_admit, a);
}

void cache_upstream_admit(struct cache *c, const struct admit_who *who, int background,
                          cache_admit_cb cb, void *arg)
{
    const struct conf *conf = cf(c);
    const struct conf_project *p = conf_project(conf, who->project);
    const struct rate *rate = p && p->has_upstream_rate ? &p->upstream_rate : &conf->upstream_rate;
    unsigned burst = p && p->has_upstream_burst ? p->upstream_burst : conf->upstream_burst;
    int64_t held = held_ms(c, who->label);
    struct admit_ctx *a;
    char key[CK_LABEL_MAX + 16], kkey[64];

    snprintf(key, sizeof(key), CK_PREFIX "rl:u:%s", who->label);
    key_budget(who->keytag, kkey, sizeof(kkey));
    if (held > 0) {
        cb(arg, ADMIT_PROJECT, held);
        return;
    }
    /* Background work only spends what clients leave over. */
    if (background && (!rl_peek(c->gw->rl, key, rate, burst) ||
                       (conf->has_key_rate &&
                        !rl_peek(c->gw->rl, kkey, &conf->key_rate, conf->key_burst)))) {
        cb(arg, ADMIT_PROJECT, 1000);
        return;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        cb(arg, ADMIT_OK, 0);
        return;
    }
    a->c = c;
    a->cb = cb;
    a->arg = arg;
    snprintf(a->keytag, sizeof(a->keytag), "%s", who->keytag);
    rl_take(c->gw->rl, key, rate, burst, on_project_admit, a);
}

static char *cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

/* The generation of a list's project: its label, so that no project id
 * can name another project's generation or the global one. */
static char *gen_name_of(const char *project_id, const char *cred, size_t credlen)
{
    char label[CK_LABEL_MAX];

    ck_project_label(project_id, cred, credlen, label, sizeof(label));
    return cat(GEN_PREFIX, label);
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

/* An entry is current when its stamps are its generations' values; a
 * generation not set (0) matches nothing. */
static int gens_match(const struct centry *e, const struct gens *g)
{
    return g->proj != 0 && g->all != 0 && e->gen_proj == g->proj && e->gen_all == g->all;
}

/* A fetch stamps what it stores with the generations it saw when it began:
 * any not set is set now, to a fresh value, unless another instance sets
 * it first (then what this fetch stores never matches: a miss, not a
 * wrong answer). */
static void fix_gens(struct cache *c, struct gens *g, const char *gen_name)
{
    struct store *st = c->gw->store;
    uint64_t ttl = gen_ttl(cf(c));

    if (g->proj == 0) {
        g->proj = fresh_gen();
        st->ops->gen_set(st, gen_name, g->proj, 1, ttl);
    }
    if (g->all == 0) {
        g->all = fresh_gen();
        st->ops->gen_set(st, STORE_GEN_ALL, g->all, 1, ttl);
    }
}

static struct centry *error_entry(int status, const char *detail)
{
    yajl_gen gen = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    struct centry *e = NULL;
    size_t len;

    if (gen == NULL)
        return NULL;
    yajl_gen_map_open(gen);
    yajl_gen_string(gen, (const unsigned char *)"detail", 6);
    yajl_gen_string(gen, (const unsigned char *)detail, strlen(detail));
    yajl_gen_map_close(gen);
    if (yajl_gen_get_buf(gen, &buf, &len) == yajl_gen_status_ok)
        e = centry_new(status, wall_ms(), "application/json", 16, buf, len);
    yajl_gen_free(gen);
    return e;
}

static void answer_one(cache_done_cb cb, void *arg, struct centry *e, int stored,
                       const char *xcache, const char *status)
{
    struct answer a = {e, xcache, status, stored, 0, 0};

    if (e == NULL) {
        struct centry *oom = error_entry(500, "Out of memory");
        a.e = oom;
        a.stored = 0;
        cb(arg, &a);
        centry_decref(oom);
        return;
    }
    cb(arg, &a);
}

/* ---- pending prefetches ---- */

static size_t pending_bucket(const char *key)
{
    return hash(key, strlen(key)) % NBUCKETS;
}

static struct pending **pending_slot(struct cache *c, const char *key)
{
    struct pending **pp = &c->pending[pending_bucket(key)];

    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void pending_free(struct cache *c, struct pending *p)
{
    struct pending **pp = pending_slot(c, p->key);

    __atomic_sub_fetch(&c->pending_marks[pending_bucket(p->key)], 1, __ATOMIC_RELEASE);
    *pp = p->hnext;
    if (p->older)
        p->older->newer = p->newer;
    else
        c->oldest = p->newer;
    if (p->newer)
        p->newer->older = p->older;
    else
        c->newest = p->older;
    c->npending--;
    free(p->key);
    free(p->next_canonical);
    free(p->cred);
    free(p->project_id);
    free(p);
}

static void prefetch(struct cache *c, enum qn_route r, const char *canonical, const char *cred,
                     size_t credlen, int injected, const char *project_id);

/* ---- the L1 ---- */

static void l1_flush(struct cache *c)
{
    c->l1_flushes++;
    if (c->l1 != NULL && store_memory_count(c->l1) > 0)
        c->l1->ops->purge(c->l1, "");
}

/* May the L1 be read and written now? It is dropped whenever event
 * delivery was interrupted, since an invalidation may have been missed. */
static int l1_usable(struct cache *c)
{
    struct store *st = c->gw->store;
    uint64_t epoch;

    if (c->l1 == NULL)
        return 0;
    epoch = cf(c)->l1_ttl_ms && st->ops->events_epoch ? st->ops->events_epoch(st) : 0;
    if (epoch != c->l1_epoch) {
        l1_flush(c);
        c->l1_epoch = epoch;
    }
    return epoch != 0;
}

/* Keep a fresh entry, unless an invalidation came since `since` (the
 * entry may be from before it). */
static void l1_keep(struct cache *c, const char *key, size_t klen, struct centry *e,
                    uint64_t since)
{
    if (since == c->l1_flushes && l1_usable(c))
        store_set(c->l1, key, klen, e, cf(c)->l1_ttl_ms);
}

/* What a synchronous store (the L1, the memory store) answered, kept past
 * its callback: e is a reference of ours (NULL unless HIT). */
struct found {
    enum store_res res;
    struct centry *e;
    struct gens g;
};

static void on_found(void *arg, enum store_res res, struct centry *e, const struct gens *g)
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

/* ---- flights ---- */

static struct flight **flight_slot(struct cache *c, const char *key, size_t klen)
{
    struct flight **pp = &c->flights[hash(key, klen) % NBUCKETS];

    while (*pp && ((*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void flight_unref(struct flight *f)
{
    if (--f->refs > 0)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        f->c->all = f->next;
    if (f->next)
        f->next->prev = f->prev;
    free(f->key);
    free(f->gen_name);
    free(f->lock_name);
    free(f->canonical);
    free(f->cred);
    free(f->rid);
    free(f->project_id);
    centry_decref(f->stale);
    if (f->timer)
        event_free(f->timer);
    free(f);
}

/* Leave the table and stop timers; the flight is freed once no store call
 * still points at it. */
static void flight_end(struct flight *f)
{
    struct cache *c = f->c;

    if (f->in_table) {
        struct flight **pp = flight_slot(c, f->key, f->klen);
        *pp = f->hnext;
        f->in_table = 0;
    }
    if (f->holds_lease) {
        c->gw->store->ops->lease_release(c->gw->store, f->lock_name);
        f->holds_lease = 0;
    }
    if (f->timer)
        event_del(f->timer);
    f->done = 1;
    flight_unref(f);
}

static void on_flight_timer(evutil_socket_t fd, short what, void *arg);
static void fetch(struct flight *f);

static void arm(struct flight *f, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    if (f->timer == NULL)
        f->timer = evtimer_new(f->c->gw->base, on_flight_timer, f);
    if (f->timer)
        evtimer_add(f->timer, &tv);
}

/* Give every waiter its answer; the origin is told what was fetched, the
 * others that they collapsed onto it. */
static void answer_waiters(struct flight *f, struct centry *e, int stored,
                           const char *xcache, const char *origin_status,
                           const char *other_status)
{
    struct waiter *w = f->waiters, *next;

    f->waiters = NULL;
    for (; w; w = next) {
        struct answer a = {e, xcache, w->origin ? origin_status : other_status, stored,
                           f->up_status, f->up_us};
        next = w->next;
        if (!w->origin)
            f->c->stats.collapsed++;
        if (e == NULL)
            answer_one(w->cb, w->arg, e, stored, xcache, a.cache_status);
        else
            w->cb(w->arg, &a);
        free(w);
    }
}

static int add_waiter(struct flight *f, cache_done_cb cb, void *arg, int origin, int no_cache)
{
    struct waiter *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return -1;
    w->cb = cb;
    w->arg = arg;
    w->origin = origin;
    w->no_cache = no_cache;
    w->next = f->waiters;
    f->waiters = w;
    return 0;
}

static int is_failure(const struct up_resp *r)
{
    return r->err != UP_OK || r->status >= 500 || r->status == 429;
}

static long fwd_status(const struct up_resp *r)
{
    if (r->err == UP_ETIMEOUT)
        return 504;
    if (r->err == UP_EBUSY)
        return 503;
    return r->err != UP_OK ? 502 : r->status;
}

static int json_valid(const unsigned char *p, size_t n)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    int ok;

    if (h == NULL)
        return 0;
    ok = yajl_parse(h, p, n) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static const char *const retry_headers[] = {
    "Retry-After", "retry-after-ms", "x-should-retry", "WWW-Authenticate", NULL,
};

/* A non-200 or non-JSON answer, passed on as it came, never stored. */
static struct centry *passthrough_entry(const struct up_resp *r, const unsigned char *body,
                                        size_t len)
{
    const char *ct = r->ctype ? r->ctype : "";
    struct centry *e = centry_new((int)r->status, wall_ms(), ct, strlen(ct), body, len);
    struct evbuffer *hb;
    size_t i, j;

    if (e == NULL || (hb = evbuffer_new()) == NULL)
        return e;
    for (i = 0; i < r->nheaders; i++)
        for (j = 0; retry_headers[j]; j++)
            if (strcasecmp(r->headers[i].name, retry_headers[j]) == 0)
                evbuffer_add_printf(hb, "%s: %s\n", r->headers[i].name, r->headers[i].value);
    if (evbuffer_get_length(hb)) {
        size_t n = evbuffer_get_length(hb);
        if ((e->extra_headers = malloc(n + 1)) != NULL) {
            evbuffer_remove(hb, e->extra_headers, n);
            e->extra_headers[n] = '\0';
        }
    }
    evbuffer_free(hb);
    return e;
}

static void on_fetched(void *arg, struct up_resp *r)
{
    struct flight *f = arg;
    struct cache *c = f->c;
    struct store *st = c->gw->store;
    unsigned char *body;
    size_t len;
    char origin[160], other[96];
    int had_waiters = f->waiters != NULL, invalid;

    f->xfer = NULL;
    f->up_status = (int)fwd_status(r);
    f->up_us = r->elapsed_us;
    if (r->err == UP_OK && r->status == 429)
        cache_upstream_said_429(c, f->label, f->project_id, r);
    len = evbuffer_get_length(r->body);
    body = evbuffer_pullup(r->body, -1);
    /* A 200 whose body is not JSON is not the list it claims to be: an
     * invalid answer (502), for which a stale entry may stand in. */
    invalid = r->err == UP_OK && r->status == 200 && !json_valid(body, len);
    if (r->err == UP_OK && r->status == 200 && !invalid) {
        const char *ct = r->ctype ? r->ctype : "";
        struct centry *e = centry_new(200, wall_ms(), ct, strlen(ct), body, len);
        int origin_no_cache = 0;
        /* A prefetched page nobody asked for yet gets a pending prefetch of
         * its successor below: a worker must not answer it from the store
         * in between (and so skip that prefetch). */
        int guard = f->kind == FK_PREFETCH && !had_waiters && !f->no_store;
        struct waiter *w;

        if (guard)
            __atomic_add_fetch(&c->pending_marks[pending_bucket(f->key)], 1, __ATOMIC_RELEASE);
        if (e != NULL) {
            e->gen_proj = f->gens.proj;
            e->gen_all = f->gens.all;
            if (!f->no_store) {
                char msg[8192];
                int n;
                store_set(st, f->key, f->klen, e, keep_ms(c, f->project_id));
                l1_keep(c, f->key, f->klen, e, f->l1_flushes);
                n = snprintf(msg, sizeof(msg), DONE_PREFIX "%s", f->key);
                if (n > 0 && (size_t)n < sizeof(msg))
                    st->ops->publish(st, msg, (size_t)n);
            }
        }
        for (w = f->waiters; w; w = w->next)
            if (w->origin)
                origin_no_cache = w->no_cache;
        snprintf(origin, sizeof(origin), "lcgate; fwd=%s; fwd-status=200%s",
                 f->no_store ? "bypass" : origin_no_cache ? "request" : "uri-miss",
                 f->no_store ? "" : "; stored");
        snprintf(other, sizeof(other), "lcgate; fwd=uri-miss; collapsed");
        c->stats.misses++;
        if (f->kind == FK_PREFETCH)
            c->stats.prefetches++;
        /* Unlock before answering: the entry is in the store already. */
        if (f->in_table) {
            struct flight **pp = flight_slot(c, f->key, f->klen);
            *pp = f->hnext;
            f->in_table = 0;
        }
        answer_waiters(f, e, 1, f->no_store ? "BYPASS" : "MISS", origin, other);
        /* Paging goes forward from what clients asked: not from refreshes. */
        if (e != NULL && !f->no_store && cf(c)->prefetch && f->kind != FK_REFRESH) {
            char *next = pg_next(f->route, f->canonical, e->body, e->body_len);
            if (next != NULL && (f->kind != FK_PREFETCH || had_waiters)) {
                prefetch(c, f->route, next, f->cred, f->credlen, f->injected, f->project_id);
            } else if (next != NULL) {
                /* Nobody asked for this page yet: fetch its successor once
                 * somebody does. */
                struct pending *p = calloc(1, sizeof(*p));
                if (p && (p->key = strdup(f->key)) && (p->cred = malloc(f->credlen + 1))) {
                    struct pending **pp = pending_slot(c, p->key);
                    memcpy(p->cred, f->cred, f->credlen + 1);
                    p->credlen = f->credlen;
                    p->injected = f->injected;
                    p->route = f->route;
                    p->next_canonical = next;
                    p->project_id = f->project_id ? strdup(f->project_id) : NULL;
                    next = NULL;
                    if (*pp)
                        pending_free(c, *pp);
                    p->hnext = *pp;
                    *pp = p;
                    __atomic_add_fetch(&c->pending_marks[pending_bucket(p->key)], 1,
                                       __ATOMIC_RELEASE);
                    p->older = c->newest;
                    if (c->newest)
                        c->newest->newer = p;
                    c->newest = p;
                    if (c->oldest == NULL)
                        c->oldest = p;
                    if (++c->npending > PENDING_MAX)
                        pending_free(c, c->oldest);
                } else if (p) {
                    free(p->key);
                    free(p);
                }
            }
            free(next);
        }
        if (guard)
            __atomic_sub_fetch(&c->pending_marks[pending_bucket(f->key)], 1, __ATOMIC_RELEASE);
        centry_decref(e);
        flight_end(f);
        return;
    }
    if (is_failure(r) || invalid) {
        log_warn("upstream %s failed: %s%s (request %s)", qn_routes[f->route].name,
                 r->err == UP_OK ? "status " : r->errmsg,
                 r->err != UP_OK ? "" : invalid ? "200 with a body that is not JSON"
                 : r->status == 429 ? "429" : "5xx", f->rid);
    }
    if ((is_failure(r) || invalid) && f->stale != NULL) {
        int64_t past = wall_ms() - f->stale->stored_ms - (int64_t)ttl_of(c, f->project_id);
        snprintf(origin, sizeof(origin),
                 "lcgate; fwd=stale; fwd-status=%ld; ttl=-%lld; detail=stale-if-error",
                 invalid ? 502L : fwd_status(r), (long long)((past + 999) / 1000));
        c->stats.stale_sie++;
        answer_waiters(f, f->stale, 1, "STALE", origin, origin);
        flight_end(f);
        return;
    }
    {
        struct centry *e;
        if (r->err == UP_ETIMEOUT) {
            e = error_entry(504, "Upstream timed out");
        } else if (r->err == UP_EBUSY) {
            if ((e = error_entry(503, "Too many requests in flight")) != NULL)
                e->extra_headers = strdup("Retry-After: 1\nretry-after-ms: 1000\n");
        } else if (r->err == UP_EINVALID || invalid)
            e = error_entry(502, "Upstream sent an invalid answer");
        else if (r->err != UP_OK)
            e = error_entry(502, "Upstream unreachable");
        else
            e = passthrough_entry(r, body, len);
        snprintf(origin, sizeof(origin), "lcgate; fwd=uri-miss; fwd-status=%ld",
                 invalid ? 502L : fwd_status(r));
        answer_waiters(f, e, 0, f->no_store ? "BYPASS" : "MISS", origin, origin);
        centry_decref(e);
    }
    /* Tell other instances' waiters to stop waiting for us. */
    if (f->holds_lease) {
        char msg[8192];
        int n = snprintf(msg, sizeof(msg), DONE_PREFIX "%s", f->key);
        if (n > 0 && (size_t)n < sizeof(msg))
            c->gw->store->ops->publish(c->gw->store, msg, (size_t)n);
    }
    flight_end(f);
}

static void send_upstream(struct flight *f)
{
    struct cache *c = f->c;
    const struct conf *conf = cf(c);
    struct curl_slist *h = NULL;
    struct up_opts opts = {conf->timeout_ms, conf->connect_timeout_ms, MAX_RESPONSE,
                           conf->proxy};
    char *url, *auth = NULL;

    if (f->credlen)
        auth = f->injected ? cat("Bearer ", f->cred) : strdup(f->cred);
    url = malloc(strlen(conf->base_url) + strlen(qn_routes[f->route].path) +
                 strlen(f->canonical) + 2);
    if (url)
        sprintf(url, "%s%s%s%s", conf->base_url, qn_routes[f->route].path,
                *f->canonical ? "?" : "", f->canonical);
    if (url == NULL || (f->credlen && auth == NULL) ||
        (auth && (h = up_header(h, "Authorization", auth)) == NULL) ||
        (h = up_header(h, "Accept", "application/json")) == NULL ||
        (h = up_header(h, "X-Request-Id", f->rid)) == NULL ||
        (h = up_header(h, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION)) == NULL) {
        curl_slist_free_all(h);
        h = NULL;
    }
    free(auth);
    if (h != NULL)
        f->xfer = up_start(c->gw->up, "GET", url, h, NULL, 0, &opts, on_fetched, f);
    free(url);
    if (f->xfer == NULL) {
        struct centry *e = error_entry(502, "Upstream request could not be started");
        answer_waiters(f, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=502",
                       "lcgate; fwd=uri-miss; fwd-status=502");
        centry_decref(e);
        flight_end(f);
        return;
    }
    if (f->holds_lease)
        arm(f, conf->lock_lease_ms / 3);
}

/* Over an upstream budget, or held after an upstream 429: a stale entry
 * if there is one, else 429 with the wait. */
static void over_budget(struct flight *f, enum admit verdict, int64_t retry_after_ms)
{
    struct cache *c = f->c;
    char status[160], detail[CK_LABEL_MAX + 64];
    struct centry *e;

    c->stats.over_budget++;
    metrics_inc(c->gw->m.rate_limited, 1, f->label, verdict == ADMIT_KEY ? "key" : "upstream",
                NULL);
    if (f->stale != NULL) {
        int64_t past = wall_ms() - f->stale->stored_ms - (int64_t)ttl_of(c, f->project_id);
        snprintf(status, sizeof(status),
                 "lcgate; fwd=stale; fwd-status=429; ttl=-%lld; detail=upstream-budget",
                 (long long)((past + 999) / 1000));
        c->stats.stale_sie++;
        answer_waiters(f, f->stale, 1, "STALE", status, status);
        flight_end(f);
        return;
    }
    if (verdict == ADMIT_KEY)
        snprintf(detail, sizeof(detail), "Rate limit exceeded for the upstream key");
    else
        snprintf(detail, sizeof(detail), "Rate limit exceeded for project %s",
                 f->project_id ? f->project_id : "default");
    if ((e = error_entry(429, detail)) != NULL) {
        char hdrs[96];
        snprintf(hdrs, sizeof(hdrs), "Retry-After: %lld\nretry-after-ms: %lld\n",
                 (long long)((retry_after_ms + 999) / 1000), (long long)retry_after_ms);
        e->extra_headers = strdup(hdrs);
    }
    answer_waiters(f, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=429; detail=upstream-budget",
                   "lcgate; fwd=uri-miss; fwd-status=429; detail=upstream-budget");
    centry_decref(e);
    flight_end(f);
}

static void on_budget(void *arg, enum admit verdict, int64_t retry_after_ms)
{
    struct flight *f = arg;

    if (!f->done && !f->c->gw->stopping) {
        if (verdict == ADMIT_OK)
            send_upstream(f);
        else
            over_budget(f, verdict, retry_after_ms);
    }
    flight_unref(f);
}

static void fetch(struct flight *f)
{
    struct admit_who who = {f->label, f->project_id, f->keytag};

    f->state = FS_FETCH;
    f->refs++;
    if (!f->no_store)
        fix_gens(f->c, &f->gens, f->gen_name);
    cache_upstream_admit(f->c, &who, f->kind != FK_CLIENT, on_budget, f);
}

static void try_lease(struct flight *f);

/* Has another fetch of the key landed in the store? Asked while waiting
 * for another instance's fetch (FS_REMOTE), and once more on taking the
 * lease: a lookup answered "miss" or "stale" just before another fetch of
 * the key was stored would otherwise fetch it again. */
static void on_check(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct flight *f = arg;
    struct cache *c = f->c;

    f->checking = 0;
    if (f->done || c->gw->stopping) {
        flight_unref(f);
        return;
    }
    if (res == STORE_HIT && gens_match(e, g) &&
        wall_ms() - e->stored_ms < (int64_t)ttl_of(c, f->project_id)) {
        const char *st = "lcgate; fwd=uri-miss; collapsed";
        answer_waiters(f, e, 1, "MISS", st, st);
        flight_end(f);
    } else if (f->holds_lease || res == STORE_ERROR || mono_ms() >= f->deadline_ms) {
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
    store_get(f->c->gw->store, f->key, f->klen, f->gen_name, on_check, f);
}

static void check_remote(struct flight *f)
{
    if (f->checking || f->state != FS_REMOTE)
        return;
    check_store(f);
}

/* A waiter asked for a fresh answer (Cache-Control: no-cache, honoured). */
static int wants_refetch(const struct flight *f)
{
    const struct waiter *w;

    if (cf(f->c)->ignore_client_no_cache)
        return 0;
    for (w = f->waiters; w; w = w->next)
        if (w->no_cache)
            return 1;
    return 0;
}

static void on_flight_timer(evutil_socket_t fd, short what, void *arg)
{
    struct flight *f = arg;
    struct store *st = f->c->gw->store;

    if (f->state == FS_FETCH && f->holds_lease) {
        st->ops->lease_renew(st, f->lock_name, cf(f->c)->lock_lease_ms);
        arm(f, cf(f->c)->lock_lease_ms / 3);
    } else if (f->state == FS_REMOTE) {
        check_remote(f);
    }
}

static void on_lease(void *arg, int got)
{
    struct flight *f = arg;
    struct cache *c = f->c;

    if (f->done || c->gw->stopping) {
        if (got == 1 && !f->done)
            f->holds_lease = 1;
        if (!f->done && c->gw->stopping) {
            struct centry *e = error_entry(503, "Shutting down");
            answer_waiters(f, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=503",
                           "lcgate; fwd=uri-miss; fwd-status=503");
            centry_decref(e);
            flight_end(f);
        }
        flight_unref(f);
        return;
    }
    if (got == 0) {
        /* Another instance fetches: wait for its "done", polling as a fallback. */
        uint64_t poll = cf(c)->lock_lease_ms / 4;
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
    struct store *st = f->c->gw->store;

    f->refs++;
    st->ops->lease(st, f->lock_name, cf(f->c)->lock_lease_ms, on_lease, f);
}

/* The flight for key: joined when one is under way, else started. */
static struct flight *flight_get(struct cache *c, enum fkind kind, const struct list_query *q,
                                 const char *key, const char *gen_name, const struct gens *g,
                                 struct centry *stale, int *created)
{
    struct flight **pp = flight_slot(c, key, strlen(key)), *f;

    *created = 0;
    if (!q->no_store && *pp != NULL) {
        f = *pp;
        if (f->stale == NULL && stale != NULL) {
            centry_incref(stale);
            f->stale = stale;
        }
        return f;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    f->c = c;
    f->refs = 1;
    f->next = c->all;
    if (c->all)
        c->all->prev = f;
    c->all = f;
    f->kind = kind;
    f->route = q->route;
    f->klen = strlen(key);
    f->credlen = q->credlen;
    f->injected = q->injected;
    f->no_store = q->no_store;
    f->key = strdup(key);
    f->gen_name = strdup(gen_name);
    f->lock_name = cat(LOCK_PREFIX, key);
    f->canonical = strdup(q->canonical);
    f->rid = strdup(q->rid);
    f->cred = malloc(q->credlen + 1);
    f->project_id = q->project_id ? strdup(q->project_id) : NULL;
    if (f->key == NULL || f->gen_name == NULL || f->lock_name == NULL ||
        f->canonical == NULL || f->rid == NULL || f->cred == NULL ||
        (q->project_id && f->project_id == NULL)) {
        flight_unref(f);
        return NULL;
    }
    if (q->credlen)
        memcpy(f->cred, q->cred, q->credlen);
    f->cred[q->credlen] = '\0';
    if (g)
        f->gens = *g;
    if (stale) {
        centry_incref(stale);
        f->stale = stale;
    }
    ck_project_label(q->project_id, q->cred, q->credlen, f->label, sizeof(f->label));
    ck_cred_tag(q->cred, q->credlen, f->keytag);
    f->deadline_ms = mono_ms() + (int64_t)cf(c)->lock_lease_ms + (int64_t)cf(c)->timeout_ms;
    f->l1_flushes = c->l1_flushes;
    if (!q->no_store) {
        f->hnext = *pp;
        *pp = f;
        f->in_table = 1;
    }
    c->stats.flights++;
    *created = 1;
    return f;
}

static void flight_start(struct flight *f)
{
    /* no-store fetches, and those of a store no other instance uses, need
     * no lease. */
    if (f->no_store || !f->c->gw->store->ops->shared)
        fetch(f);
    else
        try_lease(f);
}

static void background(struct cache *c, enum fkind kind, const struct list_query *q,
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

struct prefetch_ctx {
    struct cache *c;
    struct list_query q;
    char *key, *gen_name, *canonical, *cred, *project_id;
    char rid[40];
};

static void prefetch_ctx_free(struct prefetch_ctx *p)
{
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
    struct cache *c = p->c;

    if (!c->gw->stopping && res != STORE_ERROR &&
        !(res == STORE_HIT && gens_match(e, g) &&
          wall_ms() - e->stored_ms < (int64_t)ttl_of(c, p->project_id)))
        background(c, FK_PREFETCH, &p->q, p->key, p->gen_name, g, NULL);
    prefetch_ctx_free(p);
}

static void prefetch(struct cache *c, enum qn_route r, const char *canonical, const char *cred,
                     size_t credlen, int injected, const char *project_id)
{
    struct prefetch_ctx *p = calloc(1, sizeof(*p));
    static unsigned long long n;

    if (p == NULL)
        return;
    p->c = c;
    p->canonical = strdup(canonical);
    p->cred = malloc(credlen + 1);
    p->project_id = project_id ? strdup(project_id) : NULL;
    p->key = ck_build(r, cred, credlen, canonical);
    p->gen_name = gen_name_of(project_id, cred, credlen);
    if (p->canonical == NULL || p->cred == NULL || p->key == NULL || p->gen_name == NULL ||
        (project_id && p->project_id == NULL) ||
        *flight_slot(c, p->key, strlen(p->key)) != NULL) {
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
    store_get(c->gw->store, p->key, strlen(p->key), p->gen_name, on_prefetch_lookup, p);
}

/* ---- a client's list query ---- */

static void lookup_free(struct lookup *l)
{
    free(l->key);
    free(l->gen_name);
    free(l);
}

static void join(struct lookup *l, const struct gens *g, struct centry *stale)
{
    struct cache *c = l->c;
    int created;
    struct flight *f = flight_get(c, FK_CLIENT, &l->q, l->key, l->gen_name, g, stale, &created);

    if (f == NULL || add_waiter(f, l->cb, l->arg, created, l->q.no_cache) != 0) {
        struct centry *e = error_entry(500, "Out of memory");
        answer_one(l->cb, l->arg, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=500");
        centry_decref(e);
        if (f && created)
            flight_end(f);
        return;
    }
    if (created)
        flight_start(f);
}

static void on_lookup(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct lookup *l = arg;
    struct cache *c = l->c;
    struct centry *stale = NULL;
    char status[128];

    if (res == STORE_ERROR)
        c->stats.store_errors++;
    if (c->gw->stopping) {
        struct centry *err = error_entry(503, "Shutting down");
        answer_one(l->cb, l->arg, err, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=503");
        centry_decref(err);
        lookup_free(l);
        return;
    }
    if (res == STORE_HIT && gens_match(e, g)) {
        int64_t ttl = (int64_t)ttl_of(c, l->q.project_id);
        int64_t age = wall_ms() - e->stored_ms;
        int no_cache = l->q.no_cache && !cf(c)->ignore_client_no_cache;

        if (!no_cache && age < ttl) {
            if (!l->from_l1)
                l1_keep(c, l->key, strlen(l->key), e, l->l1_flushes);
            snprintf(status, sizeof(status), "lcgate; hit; ttl=%lld",
                     (long long)((ttl - age) / 1000));
            __atomic_add_fetch(&c->stats.hits, 1, __ATOMIC_RELAXED);
            answer_one(l->cb, l->arg, e, 1, "HIT", status);
            if (c->npending) {
                struct pending **pp = pending_slot(c, l->key), *p = *pp;
                if (p != NULL) {
                    prefetch(c, p->route, p->next_canonical, p->cred, p->credlen, p->injected,
                             p->project_id);
                    pending_free(c, p);
                }
            }
            lookup_free(l);
            return;
        }
        if (!no_cache && age < ttl + (int64_t)cf(c)->stale_while_revalidate_ms) {
            snprintf(status, sizeof(status),
                     "lcgate; hit; ttl=-%lld; detail=stale-while-revalidate",
                     (long long)((age - ttl + 999) / 1000));
            c->stats.stale_swr++;
            /* Before answering: q borrows the request's strings. */
            background(c, FK_REFRESH, &l->q, l->key, l->gen_name, g, e);
            answer_one(l->cb, l->arg, e, 1, "STALE", status);
            lookup_free(l);
            return;
        }
        if (age < ttl + (int64_t)cf(c)->stale_if_error_ms)
            stale = e;
    }
    join(l, res == STORE_ERROR ? NULL : g, stale);
    lookup_free(l);
}

void cache_list(struct cache *c, const struct list_query *q, cache_done_cb cb, void *arg)
{
    struct lookup *l = calloc(1, sizeof(*l));

    if (l == NULL ||
        (l->key = ck_build(q->route, q->cred, q->credlen, q->canonical)) == NULL ||
        (l->gen_name = gen_name_of(q->project_id, q->cred, q->credlen)) == NULL) {
        struct centry *e = error_entry(500, "Out of memory");
        answer_one(cb, arg, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=500");
        centry_decref(e);
        if (l)
            lookup_free(l);
        return;
    }
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
    if (!q->no_cache && l1_usable(c)) {
        struct found found = {STORE_MISS, NULL, {0, 0}};
        store_get(c->l1, l->key, strlen(l->key), NULL, on_found, &found);
        if (found.e != NULL && wall_ms() - found.e->stored_ms <
                                   (int64_t)ttl_of(c, q->project_id)) {
            /* Invalidations drop the L1: its entries are current. */
            struct gens g = {found.e->gen_proj, found.e->gen_all};
            l->from_l1 = 1;
            c->stats.l1_hits++;
            on_lookup(l, STORE_HIT, found.e, &g);
            centry_decref(found.e);
            return;
        }
        centry_decref(found.e);
    }
    l->l1_flushes = c->l1_flushes;
    store_get(c->gw->store, l->key, strlen(l->key), l->gen_name, on_lookup, l);
}

int cache_try_hit(struct cache *c, const struct conf *conf, const struct list_query *q,
                  struct answer *a, char *status, size_t statuslen)
{
    struct found found = {STORE_MISS, NULL, {0, 0}};
    char *key = NULL, *gen_name = NULL;
    int64_t ttl, age;
    int hit = 0;

    if (q->no_cache || q->no_store || !c->gw->store->ops->threadsafe ||
        (key = ck_build(q->route, q->cred, q->credlen, q->canonical)) == NULL ||
        (gen_name = gen_name_of(q->project_id, q->cred, q->credlen)) == NULL)
        goto out;
    /* A prefetch waits for this page to be asked for: the main loop's. */
    if (__atomic_load_n(&c->pending_marks[pending_bucket(key)], __ATOMIC_ACQUIRE) != 0)
        goto out;
    store_get(c->gw->store, key, strlen(key), gen_name, on_found, &found);
    if (found.res != STORE_HIT || !gens_match(found.e, &found.g))
        goto out;
    ttl = (int64_t)ttl_in(conf, q->project_id);
    age = wall_ms() - found.e->stored_ms;
    if (age >= ttl)
        goto out;                /* stale: a refresh to start, on main */
    snprintf(status, statuslen, "lcgate; hit; ttl=%lld", (long long)((ttl - age) / 1000));
    memset(a, 0, sizeof(*a));
    a->e = found.e;
    a->xcache = "HIT";
    a->cache_status = status;
    a->stored = 1;
    found.e = NULL;
    hit = 1;
    __atomic_add_fetch(&c->stats.hits, 1, __ATOMIC_RELAXED);
out:
    centry_decref(found.e);
    free(key);
    free(gen_name);
    return hit;
}

/* ---- invalidation ---- */

static void on_event(void *arg, const char *msg, size_t len)
{
    struct cache *c = arg;
    struct flight *f;

    if (msg == NULL || (len >= strlen(BUMP_PREFIX) &&
                        memcmp(msg, BUMP_PREFIX, strlen(BUMP_PREFIX)) == 0)) {
        l1_flush(c);             /* lost events, or another instance's write */
        return;
    }
    if (len <= strlen(DONE_PREFIX) || memcmp(msg, DONE_PREFIX, strlen(DONE_PREFIX)) != 0)
        return;
    f = *flight_slot(c, msg + strlen(DONE_PREFIX), len - strlen(DONE_PREFIX));
    if (f != NULL && f->state == FS_REMOTE)
        check_remote(f);
}

/* A generation moves to a fresh value: every list stamped with the old one
 * is invalid now, here and (through the store) on every instance. */
static void bump(struct cache *c, const char *name)
{
    struct store *st = c->gw->store;
    char msg[512];
    int n;

    if (name == NULL)
        return;
    st->ops->gen_set(st, name, fresh_gen(), 0, gen_ttl(cf(c)));
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

struct cache_barrier {
    cache_barrier_cb done;       /* NULL once cancelled */
    void *arg;
    struct cache_barrier **slot;
};

static void on_barrier(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    struct cache_barrier *b = arg;

    if (b->slot != NULL)
        *b->slot = NULL;
    if (b->done != NULL)
        b->done(b->arg);
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
    b->done = done;
    b->arg = arg;
    b->slot = slot;
    *slot = b;
    /* Any read: its answer comes after the writes sent before it. */
    store_get(c->gw->store, BARRIER_KEY, strlen(BARRIER_KEY), NULL, on_barrier, b);
}

void cache_barrier_cancel(struct cache_barrier *b)
{
    if (b != NULL) {
        b->done = NULL;
        b->slot = NULL;
    }
}

void cache_purge(struct cache *c, const char *project_id)
{
    if (project_id != NULL) {
        bump_project(c, project_id, NULL, 0);
        return;
    }
    bump(c, STORE_GEN_ALL);
    if (!c->gw->store->ops->shared)
        c->gw->store->ops->purge(c->gw->store, CK_PREFIX);
}

struct cache *cache_new(struct gw *gw)
{
    struct cache *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->gw = gw;
    if (gw->store->ops->events_epoch != NULL &&
        (c->l1 = store_memory_new(gw->conf->memory_max)) == NULL) {
        free(c);
        return NULL;
    }
    gw->store->ops->subscribe(gw->store, on_event, c);
    return c;
}

void cache_stop(struct cache *c)
{
    struct flight *f, *next;

    c->gw->store->ops->subscribe(c->gw->store, NULL, NULL);
    for (f = c->all; f; f = next) {
        next = f->next;
        if (f->done)
            continue;
        if (f->xfer) {
            up_cancel(f->xfer);
            f->xfer = NULL;
        }
        {
            struct centry *e = error_entry(503, "Shutting down");
            answer_waiters(f, e, 0, "MISS", "lcgate; fwd=uri-miss; fwd-status=503",
                           "lcgate; fwd=uri-miss; fwd-status=503");
            centry_decref(e);
        }
        f->refs++; /* keep next valid: flight_end may free f */
        flight_end(f);
        next = f->next;
        flight_unref(f);
    }
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    size_t i;

    while (c->oldest)
        pending_free(c, c->oldest);
    if (c->l1 != NULL)
        c->l1->ops->free(c->l1);
    for (i = 0; i < NHOLDBUCKETS; i++)
        while (c->holds[i]) {
            struct hold *h = c->holds[i];
            c->holds[i] = h->next;
            free(h);
        }
    free(c);
}

const struct cache_stats *cache_stats(const struct cache *c)
{
    return &c->stats;
}
