/* ratelimit: GCRA in integer microseconds. The period T of a rate is
 * window_s * 1e6 / count rounded to the nearest microsecond, at least 1 us
 * (so rates above 10^6/s count as 10^6/s) and at most MAX_PERIOD_US; it is
 * also what the store's gcra op receives, so that the shared and the local
 * decisions quantize alike. Durations given back are whole milliseconds
 * rounded up, so that a client waiting retry_after_ms is never early.
 *
 * The local table maps key -> TAT (monotonic us) in a hash table on an LRU
 * list of at most max_keys keys. Forgetting a key is always safe: it comes
 * back with a full bucket, which is what a key idle long enough has.
 *
 * A shared decision costs a Redis round trip, so a large budget is spent
 * in grants: one script run takes up to burst/8 requests (at most 64) of
 * it, and this instance hands them out over the next second without
 * asking again. The total stays exact (every request is paid for in
 * Redis), and so does what passes: concurrent script runs add up their
 * grants, and a request Redis refuses while requests paid ahead are held
 * takes one of them. At any moment each instance may hold a few grants of
 * burst/8 paid ahead (one per run that was in flight at once), each for
 * at most a second. Budgets with a burst under 16 are decided one request
 * at a time. */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store.h"
#include "clock.h"
#include "list.h"
#include "log.h"
#include "lru.h"
#include "ratelimit.h"

/* Bounds on T (some 31 years) and on tau (2^61 us, some 73,000 years), so
 * that TAT arithmetic on a monotonic clock never overflows; nothing real
 * is clipped. */
#define MAX_PERIOD_US ((int64_t)1000000000000000)
#define MAX_SPAN_US (INT64_MAX / 4)
#define FRESH_TAT INT64_MIN

struct slot {
    struct lru_node n;
    int64_t tat_us;              /* monotonic */
    /* Requests granted by the store and not yet handed out, for that
     * period and burst, until credit_until_us; left is the store's
     * remaining at the grant. */
    unsigned credits, credit_burst;
    uint64_t credit_period_us;
    int64_t credit_until_us, left;
    size_t klen;
    char key[];
};

#define GRANT_LIFE_US 1000000

#define CALL_MAGIC 0x524c4341u   /* "RLCA": a live struct call */

/* One decision asked of the store. It owns a copy of the key for the local
 * fallback, and is listed in the ratelimiter so that rl_free can orphan it
 * if the store outlives the ratelimiter. */
struct call {
    unsigned magic;
    struct list link;            /* rl->calls, until answered or orphaned */
    struct ratelimiter *rl;      /* NULL once orphaned */
    struct store *via;           /* that decides it */
    rl_cb cb;
    void *arg;
    uint64_t period_us;
    unsigned burst;
    char key[];
};

static unsigned grant_of(unsigned burst)
{
    unsigned k = burst / 8;

    return k < 1 ? 1 : k > 64 ? 64 : k;
}

struct ratelimiter {
    pthread_mutex_t mu;          /* the table: workers take budgets too; never
                                    held while a callback or the store runs */
    struct store *store;
    struct lru slots;
    size_t max_keys;
    struct list calls;
    int outage;                  /* the store could not decide; logged */
    int oom_logged;
};

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    return a - b;
}

/* us >= 0 */
static int64_t ceil_ms(int64_t us)
{
    return us / 1000 + (us % 1000 != 0);
}

static uint64_t period_of(const struct rate *rate)
{
    double t;

    /* count > 0 and window_s > 0 are guaranteed by conf; the clamps only
     * keep a bad value from becoming undefined behaviour. */
    if (!(rate->count > 0))
        return MAX_PERIOD_US;
    t = (double)rate->window_s * 1e6 / rate->count + 0.5;
    if (!(t >= 1))
        return 1;
    if (t >= (double)MAX_PERIOD_US)
        return MAX_PERIOD_US;
    return (uint64_t)t;
}

static int64_t tau_of(int64_t t, unsigned burst)
{
    int64_t b1 = burst > 1 ? (int64_t)burst - 1 : 0;

    return b1 > MAX_SPAN_US / t ? MAX_SPAN_US : t * b1;
}

void rl_gcra_us(int64_t *tat_us, int64_t now_us, uint64_t period_us, unsigned burst,
                struct rl_result *out)
{
    int64_t t = period_us < 1                        ? 1
                : period_us > (uint64_t)MAX_PERIOD_US ? MAX_PERIOD_US
                                                      : (int64_t)period_us;
    int64_t tau = tau_of(t, burst);
    int64_t ahead = sat_sub(*tat_us, now_us);   /* how far TAT runs ahead of now */

    /* A TAT spent under a slower rate (before a reload) counts as a bucket
     * spent under this one, not as the old rate's debt. (The Redis script
     * cuts it back to tau + T, which owes one more period.) */
    if (ahead > sat_add(sat_add(tau, t), 1000)) { /* 1 ms: rl_gcra's rounding */
        ahead = tau;
        *tat_us = sat_add(now_us, ahead);
    }
    out->shared = 0;
    if (ahead > tau) {
        out->allowed = 0;
        out->remaining = 0;
        out->retry_after_ms = ceil_ms(ahead - tau);
        out->reset_ms = ceil_ms(ahead);
        return;
    }
    if (ahead < 0)
        ahead = 0;
    ahead += t;
    *tat_us = sat_add(now_us, ahead);
    out->allowed = 1;
    /* The k-th next request (k = 0, 1, ...) at now passes iff
     * ahead + k*T <= tau. */
    out->remaining = ahead > tau ? 0 : (tau - ahead) / t + 1;
    out->retry_after_ms = 0;
    out->reset_ms = ceil_ms(ahead);
}

static int64_t ms_to_us(int64_t ms)
{
    if (ms > INT64_MAX / 1000)
        return INT64_MAX;
    if (ms < INT64_MIN / 1000)
        return INT64_MIN;
    return ms * 1000;
}

/* The millisecond TAT is exact when T is a whole number of milliseconds.
 * Otherwise the TAT is rounded up after each request: this never admits
 * more than the rate, but a period under 1 ms then admits at most one
 * request per millisecond; rl_take keeps its TATs in microseconds. */
void rl_gcra(int64_t *tat_ms, int64_t now_ms, const struct rate *rate, unsigned burst,
             struct rl_result *out)
{
    int64_t tat = ms_to_us(*tat_ms);

    rl_gcra_us(&tat, ms_to_us(now_ms), period_of(rate), burst, out);
    if (out->allowed)
        *tat_ms = tat / 1000 + (tat % 1000 > 0);
}

static void uncounted(struct rl_result *out, unsigned burst)
{
    out->allowed = 1;
    out->remaining = burst > 1 ? (int64_t)burst - 1 : 0;
    out->retry_after_ms = 0;
    out->reset_ms = 0;
    out->shared = 0;
}

static void oom(struct ratelimiter *rl)
{
    if (rl->oom_logged)
        return;
    rl->oom_logged = 1;
    log_error("ratelimit: out of memory: requests that cannot be counted are allowed, "
              "and shared decisions may be made per instance (logged once)");
}

/* ---- the local table ---- */

static int slot_eq(const struct htab_node *h, const void *key, size_t klen)
{
    const struct slot *s = list_entry(h, const struct slot, n.h);

    return s->klen == klen && memcmp(s->key, key, klen) == 0;
}

static void evict_oldest(struct ratelimiter *rl)
{
    struct slot *s = list_entry(lru_oldest(&rl->slots), struct slot, n);

    lru_remove(&rl->slots, &s->n);
    free(s);
}

static struct slot *find(struct ratelimiter *rl, const char *key)
{
    size_t klen = strlen(key);
    struct lru_node *n = lru_find(&rl->slots, lru_hash(&rl->slots, key, klen), key, klen, slot_eq);

    return n ? list_entry(n, struct slot, n) : NULL;
}

/* key's slot, made most recent, or a new one with a full bucket; NULL
 * when out of memory. */
static struct slot *get(struct ratelimiter *rl, const char *key)
{
    size_t klen = strlen(key);
    uint64_t h = lru_hash(&rl->slots, key, klen);
    struct lru_node *n = lru_find(&rl->slots, h, key, klen, slot_eq);
    struct slot *s;

    if (n) {
        lru_touch(&rl->slots, n);
        return list_entry(n, struct slot, n);
    }
    if (lru_count(&rl->slots) >= rl->max_keys)
        evict_oldest(rl);
    if ((s = calloc(1, sizeof(*s) + klen + 1)) == NULL)
        return NULL;
    memcpy(s->key, key, klen + 1);
    s->klen = klen;
    s->tat_us = FRESH_TAT;
    lru_insert(&rl->slots, &s->n, h);
    return s;
}

static void decide_local(struct ratelimiter *rl, const char *key, uint64_t period_us,
                         unsigned burst, struct rl_result *out)
{
    struct slot *s = get(rl, key);

    if (s == NULL) {
        oom(rl);
        uncounted(out, burst);
        return;
    }
    rl_gcra_us(&s->tat_us, mono_us(), period_us, burst, out);
}

/* A shared decision also sets the local TAT (Redis's reset is TAT - now on
 * its clock), so that rl_peek sees the shared budget and an outage starts
 * from it rather than from a full bucket. */
static void mirror(struct ratelimiter *rl, const char *key, uint64_t period_us,
                   unsigned burst, int64_t reset_ms)
{
    int64_t t = (int64_t)period_us, cap = tau_of(t, burst) + t;
    int64_t ahead = reset_ms <= 0 ? 0 : reset_ms > cap / 1000 ? cap : reset_ms * 1000;
    struct slot *s = get(rl, key);

    if (s)
        s->tat_us = sat_add(mono_us(), ahead);
}

/* ---- the API ---- */

struct ratelimiter *rl_new(struct store *store, size_t max_keys)
{
    struct ratelimiter *rl = calloc(1, sizeof(*rl));

    if (rl == NULL)
        return NULL;
    rl->store = store;
    rl->max_keys = max_keys ? max_keys : 1;
    if (lru_init(&rl->slots, rl->max_keys < 64 ? rl->max_keys : 64) != 0) {
        free(rl);
        return NULL;
    }
    list_init(&rl->calls);
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void rl_free(struct ratelimiter *rl)
{
    struct list *p, *next;

    if (rl == NULL)
        return;
    list_foreach_safe(p, next, &rl->calls) {
        list_unlink(p);
        list_entry(p, struct call, link)->rl = NULL;
    }
    while (lru_count(&rl->slots) > 0)
        evict_oldest(rl);
    lru_dispose(&rl->slots);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

/* Does s hold requests paid ahead for this budget, now? */
static int has_credit(const struct slot *s, uint64_t period_us, unsigned burst, int64_t now)
{
    return s != NULL && s->credits > 0 && s->credit_period_us == period_us &&
           s->credit_burst == burst && now < s->credit_until_us;
}

/* One request paid ahead, handed out: r allows it. */
static void spend_credit(struct slot *s, struct rl_result *r, int64_t now)
{
    int64_t ahead = sat_sub(s->tat_us, now);

    s->credits--;
    r->allowed = 1;
    r->remaining = s->left + s->credits;
    r->retry_after_ms = 0;
    r->reset_ms = ahead > 0 ? ceil_ms(ahead) : 0;
    r->shared = 1;
}

/* The store decided c (r, from g): the requests it granted beyond this one
 * are kept to hand out, added to those kept already (concurrent calls each
 * bring some); a refusal takes one kept, if any, so that no request paid
 * for in the store is lost. Under rl->mu. */
static void shared_answer(struct ratelimiter *rl, const struct call *c,
                          const struct store_gcra *g, struct rl_result *r)
{
    int64_t now = mono_us();
    struct slot *s;

    mirror(rl, c->key, c->period_us, c->burst, r->reset_ms);
    if ((s = find(rl, c->key)) == NULL)
        return;
    if (r->allowed && g->granted > 1) {
        if (!has_credit(s, c->period_us, c->burst, now))
            s->credits = 0;      /* for another budget, or too old */
        s->credits += (unsigned)(g->granted - 1);
        s->credit_burst = c->burst;
        s->credit_period_us = c->period_us;
        s->credit_until_us = now + GRANT_LIFE_US;
        s->left = r->remaining;
        r->remaining += s->credits;
    } else if (!r->allowed && has_credit(s, c->period_us, c->burst, now)) {
        spend_credit(s, r, now);
    }
}

static void on_gcra(void *arg, const struct store_gcra *g)
{
    struct call *c = arg;
    struct ratelimiter *rl;
    struct rl_result r;
    rl_cb cb;
    void *cbarg;

    assert(c->magic == CALL_MAGIC);
    rl = c->rl;
    cb = c->cb;
    cbarg = c->arg;
    if (rl) {
        pthread_mutex_lock(&rl->mu);
        list_unlink(&c->link);
    }
    if (g) {
        r.allowed = g->allowed != 0;
        r.remaining = g->remaining > 0 ? g->remaining : 0;
        r.retry_after_ms = r.allowed ? 0 : g->retry_after_ms > 0 ? g->retry_after_ms : 1;
        r.reset_ms = g->reset_ms > 0 ? g->reset_ms : 0;
        r.shared = 1;
        if (rl) {
            if (rl->outage) {
                rl->outage = 0;
                log_info("ratelimit: Redis decides again, budgets are shared by all instances");
            }
            shared_answer(rl, c, g, &r);
        }
    } else if (rl) {
        if (!rl->outage) {
            const char *st = c->via->ops->state ? c->via->ops->state(c->via) : NULL;

            rl->outage = 1;
            log_warn("ratelimit: Redis cannot decide (%s), limiting per instance until it is back",
                     st && strcmp(st, "ok") != 0 ? st : "error or deadline");
        }
        decide_local(rl, c->key, c->period_us, c->burst, &r);
    } else {
        /* The ratelimiter is gone: nothing to count with. */
        uncounted(&r, c->burst);
    }
    if (rl)
        pthread_mutex_unlock(&rl->mu);
    c->magic = 0;                /* answered once: a second answer asserts */
    free(c);
    cb(cbarg, &r);
}

void rl_take(struct ratelimiter *rl, const char *key, const struct rate *rate, unsigned burst,
             rl_cb cb, void *arg)
{
    rl_take_via(rl, NULL, key, rate, burst, cb, arg);
}

void rl_take_via(struct ratelimiter *rl, struct store *via, const char *key,
                 const struct rate *rate, unsigned burst, rl_cb cb, void *arg)
{
    uint64_t period_us = period_of(rate);
    struct rl_result r;

    if (burst < 1)
        burst = 1;
    if (rl == NULL) {
        uncounted(&r, burst);
        cb(arg, &r);
        return;
    }
    if (via == NULL)
        via = rl->store;
    pthread_mutex_lock(&rl->mu);
    if (via && via->ops->gcra) {
        size_t klen = strlen(key);
        struct slot *s = find(rl, key);
        int64_t now = mono_us();
        struct call *c;

        if (has_credit(s, period_us, burst, now)) {
            spend_credit(s, &r, now);
            pthread_mutex_unlock(&rl->mu);
            cb(arg, &r);
            return;
        }
        c = calloc(1, sizeof(*c) + klen + 1);

        if (c) {
            c->magic = CALL_MAGIC;
            memcpy(c->key, key, klen + 1);
            c->rl = rl;
            c->via = via;
            c->cb = cb;
            c->arg = arg;
            c->period_us = period_us;
            c->burst = burst;
            /* Listed before the call: the store may answer at once. */
            list_push_front(&rl->calls, &c->link);
            pthread_mutex_unlock(&rl->mu);
            via->ops->gcra(via, key, period_us, burst, grant_of(burst), on_gcra, c);
            return;
        }
        oom(rl);
    }
    decide_local(rl, key, period_us, burst, &r);
    pthread_mutex_unlock(&rl->mu);
    cb(arg, &r);
}

int rl_peek(struct ratelimiter *rl, const char *key, const struct rate *rate, unsigned burst)
{
    struct slot *s;
    int64_t t = (int64_t)period_of(rate);
    int ok = 1;

    if (rl == NULL)
        return 1;
    pthread_mutex_lock(&rl->mu);
    if ((s = find(rl, key)) != NULL)
        ok = sat_sub(s->tat_us, mono_us()) <= tau_of(t, burst);
    pthread_mutex_unlock(&rl->mu);
    return ok;
}
