/* ratelimit: the GCRA step on a controlled clock, the local table (keys,
 * LRU bound, peek), and the store's gcra op answering, failing and
 * answering late. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_store.h"
#include "clock.h"
#include "ratelimit.h"
#include "tap.h"

static const struct rate per_s10 = {10, 1}, per_s3 = {3, 1}, per_min6 = {6, 60},
                         per_h60 = {60, 3600}, per_h1 = {1, 3600}, per_s1e6 = {1e6, 1},
                         per_s1e4 = {1e4, 1};

/* ---- rl_gcra (milliseconds) ---- */

static void gcra_10_per_s_burst_5(void)
{
    int64_t tat = 0, left[5], before;
    struct rl_result r;
    int i, allowed = 0;

    for (i = 0; i < 5; i++) {
        rl_gcra(&tat, 0, &per_s10, 5, &r);
        allowed += r.allowed;
        left[i] = r.remaining;
        if (i == 0)
            tap_ok(r.reset_ms == 100, "10/s b5: first request: reset_ms 100 (got %lld)",
                   (long long)r.reset_ms);
    }
    tap_ok(allowed == 5, "10/s b5: 5 allowed at t=0 (got %d)", allowed);
    tap_ok(left[0] == 4 && left[1] == 3 && left[2] == 2 && left[3] == 1 && left[4] == 0,
           "10/s b5: remaining counts down 4,3,2,1,0 (got %lld,%lld,%lld,%lld,%lld)",
           (long long)left[0], (long long)left[1], (long long)left[2], (long long)left[3],
           (long long)left[4]);
    tap_ok(r.reset_ms == 500, "10/s b5: drained bucket resets in 500 ms (got %lld)",
           (long long)r.reset_ms);
    before = tat;
    rl_gcra(&tat, 0, &per_s10, 5, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 100 && r.remaining == 0 && r.reset_ms == 500,
           "10/s b5: 6th refused, retry_after_ms 100, remaining 0, reset 500 "
           "(got allowed %d retry %lld remaining %lld reset %lld)",
           r.allowed, (long long)r.retry_after_ms, (long long)r.remaining,
           (long long)r.reset_ms);
    tap_ok(tat == before, "10/s b5: a refusal does not move the TAT");
    rl_gcra(&tat, 99, &per_s10, 5, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 1, "10/s b5: at t=99 ms still refused, retry 1 ms");
    rl_gcra(&tat, 100, &per_s10, 5, &r);
    tap_ok(r.allowed && r.remaining == 0 && r.retry_after_ms == 0,
           "10/s b5: at t=100 ms one more allowed, remaining 0");
    rl_gcra(&tat, 100, &per_s10, 5, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 100, "10/s b5: and the next one refused again");
    rl_gcra(&tat, 100000, &per_s10, 5, &r);
    tap_ok(r.allowed && r.remaining == 4 && r.reset_ms == 100,
           "10/s b5: after a long idle the bucket holds burst, not more (remaining %lld)",
           (long long)r.remaining);
}

static void gcra_10_seconds_every_ms(void)
{
    int64_t tat = 0, t;
    struct rl_result r;
    int allowed = 0;

    for (t = 0; t <= 10000; t++) {
        rl_gcra(&tat, t, &per_s10, 5, &r);
        allowed += r.allowed;
    }
    tap_ok(allowed == 10 * 10 + 5,
           "10/s b5: a request every ms for 10 s (t=0..10000): 105 allowed (got %d)", allowed);
}

static void gcra_per_min_and_per_h(void)
{
    int64_t tat = 0;
    struct rl_result r;

    rl_gcra(&tat, 0, &per_min6, 2, &r);
    rl_gcra(&tat, 0, &per_min6, 2, &r);
    tap_ok(r.allowed && r.remaining == 0 && r.reset_ms == 20000,
           "6/min b2: two allowed, remaining 0, reset 20000 ms (got %lld)",
           (long long)r.reset_ms);
    rl_gcra(&tat, 0, &per_min6, 2, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 10000, "6/min b2: third refused, retry 10000 ms");
    rl_gcra(&tat, 10000, &per_min6, 2, &r);
    tap_ok(r.allowed, "6/min b2: allowed again at t=10 s");

    tat = 0;
    rl_gcra(&tat, 0, &per_h60, 1, &r);
    tap_ok(r.allowed && r.remaining == 0 && r.reset_ms == 60000, "60/h b1: allowed, reset 60 s");
    rl_gcra(&tat, 59999, &per_h60, 1, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 1, "60/h b1: refused 1 ms before the minute");
    rl_gcra(&tat, 60000, &per_h60, 1, &r);
    tap_ok(r.allowed, "60/h b1: allowed at the minute");
}

static void gcra_rounding_and_extremes(void)
{
    int64_t tat = 0, big;
    struct rl_result r;
    struct rate tiny = {1e-9, 3600}, huge = {1e9, 1};
    int i, allowed;

    rl_gcra(&tat, 0, &per_s3, 1, &r);
    tap_ok(r.allowed && r.reset_ms == 334, "3/s b1: reset rounds up to 334 ms (got %lld)",
           (long long)r.reset_ms);
    rl_gcra(&tat, 0, &per_s3, 1, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 334, "3/s b1: retry_after rounds up to 334 ms "
           "(got %lld)", (long long)r.retry_after_ms);

    /* 1/h with the largest burst: tau saturates instead of overflowing. */
    tat = 0;
    rl_gcra(&tat, 0, &per_h1, UINT_MAX, &r);
    tap_ok(r.allowed && r.remaining > 1000000 && r.reset_ms == 3600000,
           "1/h with burst UINT_MAX: allowed, remaining large, reset 1 h");
    tat = 0;
    rl_gcra(&tat, 0, &per_h1, 1, &r);
    rl_gcra(&tat, 1000, &per_h1, 1, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 3599000, "1/h b1: retry 3599000 ms after 1 s");

    /* A rate so low its period is clamped, 1000 years into the clock; and
     * the very end of the clock, where the TAT saturates rather than wraps. */
    big = (int64_t)1000 * 365 * 86400 * 1000;
    tat = 0;
    rl_gcra(&tat, big, &tiny, 3, &r);
    tap_ok(r.allowed && r.remaining == 2 && r.reset_ms == 1000000000000 && tat > big,
           "1e-9/h b3: period clamped to 1e12 ms, remaining 2 (got reset %lld)",
           (long long)r.reset_ms);
    rl_gcra(&tat, big, &tiny, 3, &r);
    rl_gcra(&tat, big, &tiny, 3, &r);
    rl_gcra(&tat, big, &tiny, 3, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 1000000000000,
           "1e-9/h b3: 4th refused, retry 1e12 ms");
    big = INT64_MAX / 1000 - 10;
    tat = big;
    rl_gcra(&tat, big, &tiny, UINT_MAX, &r);
    rl_gcra(&tat, INT64_MAX, &tiny, UINT_MAX, &r);
    tap_ok(r.retry_after_ms >= 0 && r.reset_ms >= 0 && r.remaining >= 0,
           "the end of the clock with the largest burst: no overflow, no negative field");
    tat = INT64_MIN;
    rl_gcra(&tat, INT64_MIN / 2, &huge, 0, &r);
    tap_ok(r.allowed && r.remaining == 0, "1e9/s burst 0 (as 1) at a negative clock: allowed");

    /* In milliseconds a sub-ms period cannot be kept: one per ms, never more. */
    tat = 0;
    rl_gcra(&tat, 0, &per_s1e6, 1, &r);
    tap_ok(r.allowed && r.reset_ms == 1, "1e6/s b1 (ms): allowed, reset 1 ms");
    rl_gcra(&tat, 0, &per_s1e6, 1, &r);
    tap_ok(!r.allowed && r.retry_after_ms == 1, "1e6/s b1 (ms): next refused, retry 1 ms");
    rl_gcra(&tat, 1, &per_s1e6, 1, &r);
    tap_ok(r.allowed, "1e6/s b1 (ms): allowed at t=1 ms");

    /* In microseconds it is exact. */
    {
        int64_t t = 0;

        allowed = 0;
        for (i = 0; i < 1001; i++) {
            rl_gcra_us(&t, 5000000, 1, 1000, &r);
            allowed += r.allowed;
        }
        tap_ok(allowed == 1000 && !r.allowed && r.retry_after_ms == 1,
               "1e6/s b1000 (us): 1000 allowed at once, then refused with retry 1 ms "
               "(got %d)", allowed);
        rl_gcra_us(&t, 5000001, 1, 1000, &r);
        tap_ok(r.allowed && r.remaining == 0 && r.reset_ms == 1,
               "1e6/s b1000 (us): one more 1 us later, bucket full again within 1 ms");
        t = 0;
        allowed = 0;
        for (i = 0; i < 100000; i++) {
            rl_gcra_us(&t, 1000000 + i, 100, 1, &r);   /* 1e4/s, a request every us */
            allowed += r.allowed;
        }
        tap_ok(allowed == 1000, "1e4/s b1 (us): 1000 of 100000 requests over 100 ms (got %d)",
               allowed);
    }
}

/* ---- rl_take / rl_peek, local ---- */

struct got {
    int n;
    struct rl_result r;
};

static void on_result(void *arg, const struct rl_result *r)
{
    struct got *g = arg;

    g->n++;
    g->r = *r;
}

static struct rl_result take(struct ratelimiter *rl, const char *key, const struct rate *rate,
                             unsigned burst)
{
    struct got g = {0};

    rl_take(rl, key, rate, burst, on_result, &g);
    if (g.n != 1)
        tap_ok(0, "rl_take answered %d times synchronously for %s", g.n, key);
    return g.r;
}

static void local_takes(void)
{
    struct ratelimiter *rl = rl_new(NULL, 100);
    struct got g = {0};
    struct rl_result r;
    int i, allowed = 0;

    rl_take(rl, "c:p1", &per_h1, 3, on_result, &g);
    tap_ok(g.n == 1 && g.r.allowed && !g.r.shared && g.r.remaining == 2,
           "no store: rl_take answers before returning, locally (shared 0), remaining 2");
    for (i = 0; i < 3; i++)
        allowed += take(rl, "c:p1", &per_h1, 3).allowed;
    tap_ok(allowed == 2, "no store: 1/h b3 allows 3 in all (got %d more)", allowed);
    r = take(rl, "c:p1", &per_h1, 3);
    tap_ok(!r.allowed && r.retry_after_ms > 3590000 && r.retry_after_ms <= 3600000,
           "no store: refused with retry_after about 1 h (got %lld)", (long long)r.retry_after_ms);
    r = take(rl, "u:p1", &per_h1, 3);
    tap_ok(r.allowed && r.remaining == 2, "keys are independent: u:p1 still has its burst");
    r = take(rl, "c:p2", &per_h1, 3);
    tap_ok(r.allowed && r.remaining == 2, "keys are independent: c:p2 still has its burst");

    tap_ok(rl_peek(rl, "c:p3", &per_h1, 1) && rl_peek(rl, "c:p3", &per_h1, 1) &&
           rl_peek(rl, "c:p3", &per_h1, 1), "rl_peek on a new key: allowed, again and again");
    r = take(rl, "c:p3", &per_h1, 1);
    tap_ok(r.allowed, "rl_peek did not spend: the take after three peeks is allowed");
    tap_ok(!rl_peek(rl, "c:p3", &per_h1, 1), "rl_peek on a drained key: refused");
    tap_ok(!rl_peek(rl, "c:p1", &per_h1, 3), "rl_peek on c:p1 (drained): refused");
    tap_ok(rl_peek(rl, "c:p1", &per_h1, 10), "rl_peek with a larger burst: allowed");
    rl_free(rl);
    rl_free(NULL);
}

static void lru_bound(void)
{
    struct ratelimiter *rl = rl_new(NULL, 100);
    char key[32];
    int i, tracked = 0, tracked_recent = 0, all_allowed = 1;

    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "c:proj-%d", i);
        all_allowed &= take(rl, key, &per_h1, 1).allowed;
        /* keep one key in use all along */
        all_allowed &= i == 0 || !take(rl, "c:hot", &per_h1, 1).allowed;
        if (i == 0)
            take(rl, "c:hot", &per_h1, 1);
    }
    tap_ok(all_allowed, "LRU: 1000 new keys each allowed once; the hot key stays refused");
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "c:proj-%d", i);
        if (!rl_peek(rl, key, &per_h1, 1)) {
            tracked++;
            tracked_recent += i >= 901;
        }
    }
    tracked += !rl_peek(rl, "c:hot", &per_h1, 1);
    tap_ok(tracked == 100 && tracked_recent == 99,
           "LRU: max_keys 100 after 1000 keys: exactly 100 remembered, the hot key and the "
           "99 most recent (got %d, %d recent)", tracked, tracked_recent);
    tap_ok(take(rl, "c:proj-0", &per_h1, 1).allowed,
           "LRU: an evicted key starts again with a full bucket");
    rl_free(rl);

    rl = rl_new(NULL, 0);
    take(rl, "a", &per_h1, 1);
    take(rl, "b", &per_h1, 1);
    tap_ok(rl_peek(rl, "a", &per_h1, 1) && !rl_peek(rl, "b", &per_h1, 1),
           "max_keys 0 keeps one key");
    rl_free(rl);

    /* Past the growth of the hash table, under ASan's leak check. */
    rl = rl_new(NULL, 5000);
    for (i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        take(rl, key, &per_h1, 1);
    }
    for (i = 0, tracked = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        tracked += !rl_peek(rl, key, &per_h1, 1);
    }
    tap_ok(tracked == 5000, "LRU: max_keys 5000 after 20000 keys: 5000 remembered (got %d)",
           tracked);
    rl_free(rl);
}

/* The local path keeps microseconds: 1e4/s (T = 100 us) on the real clock.
 * Only the upper bound is strict; the lower one allows for the test being
 * descheduled (which loses at most what the burst cannot hold). */
static void local_precision(void)
{
    struct ratelimiter *rl = rl_new(NULL, 10);
    int64_t t0 = mono_us(), el;
    int allowed = 0, n = 0;

    do {
        allowed += take(rl, "c:fast", &per_s1e4, 1000).allowed;
        n++;
    } while (mono_us() - t0 < 50000);
    el = mono_us() - t0;
    /* Upper bound exact; the lower one only the burst: on a loaded machine
     * (make -j) the loop can be descheduled for longer than the burst lasts. */
    tap_ok(allowed <= 1000 + el / 100 + 1 && allowed >= 1000,
           "1e4/s b1000 on the real clock: %d allowed of %d in %lld us (expected %lld)",
           allowed, n, (long long)el, (long long)(1000 + el / 100));
    rl_free(rl);
}

/* ---- a store with a gcra op ---- */

enum fake_mode { FAKE_NULL, FAKE_FIXED, FAKE_DEFER };

struct fake {
    struct store base;
    enum fake_mode mode;
    struct store_gcra fixed;
    int calls;
    char key[64];
    uint64_t period_us;
    unsigned burst, want;
    store_gcra_cb pcb[8];
    void *parg[8];
    int npending;
};

static void fake_gcra(struct store *s, const char *key, uint64_t period_us, unsigned burst,
                      unsigned want, store_gcra_cb cb, void *arg)
{
    struct fake *f = (struct fake *)s;

    f->calls++;
    snprintf(f->key, sizeof(f->key), "%s", key);
    f->period_us = period_us;
    f->burst = burst;
    f->want = want;
    if (f->mode == FAKE_NULL)
        cb(arg, NULL);
    else if (f->mode == FAKE_FIXED)
        cb(arg, &f->fixed);
    else {
        f->pcb[f->npending] = cb;
        f->parg[f->npending++] = arg;
    }
}

static const char *fake_state(struct store *s)
{
    return "down";
}

static void fake_free(struct store *s)
{
    struct fake *f = (struct fake *)s;

    while (f->npending > 0) {
        f->npending--;
        f->pcb[f->npending](f->parg[f->npending], NULL);
    }
}

static void fake_fire(struct fake *f, const struct store_gcra *g)
{
    f->npending--;
    f->pcb[0](f->parg[0], g);
    memmove(f->pcb, f->pcb + 1, sizeof(f->pcb[0]) * (size_t)f->npending);
    memmove(f->parg, f->parg + 1, sizeof(f->parg[0]) * (size_t)f->npending);
}

static const struct store_ops fake_ops = {
    .name = "fake", .gcra = fake_gcra, .state = fake_state, .free = fake_free,
};

static const struct store_ops no_gcra_ops = {.name = "memory-like"};

/* stderr to a temporary file, to count log lines */
static FILE *cap;
static int saved_fd = -1;

static void capture_start(void)
{
    fflush(stderr);
    cap = tmpfile();
    saved_fd = dup(2);
    dup2(fileno(cap), 2);
}

static int capture_count(const char *needle)
{
    char line[4096];
    int n = 0;

    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    rewind(cap);
    while (fgets(line, sizeof(line), cap))
        n += strstr(line, needle) != NULL;
    fclose(cap);
    return n;
}

static void store_answers(void)
{
    struct fake f = {.base = {&fake_ops}, .mode = FAKE_FIXED,
                     .fixed = {.allowed = 0, .remaining = 0, .retry_after_ms = 250,
                               .reset_ms = 700}};
    struct ratelimiter *rl = rl_new(&f.base, 100);
    struct rl_result r;
    int i, allowed = 0, warns, infos;

    r = take(rl, "c:proj", &per_s10, 5);
    tap_ok(r.shared == 1 && !r.allowed && r.retry_after_ms == 250 && r.reset_ms == 700 &&
           r.remaining == 0, "store answers: its decision is passed through with shared 1");
    tap_ok(f.calls == 1 && strcmp(f.key, "c:proj") == 0 && f.period_us == 100000 &&
           f.burst == 5, "store gets the key, period_us 100000 for 10/s, and burst 5");
    tap_ok(!rl_peek(rl, "c:proj", &per_s10, 5),
           "a shared decision sets the local view: rl_peek refuses what Redis refused");
    f.fixed = (struct store_gcra){.allowed = 1, .remaining = 3, .retry_after_ms = 0,
                                  .reset_ms = 200};
    r = take(rl, "c:proj", &per_s10, 5);
    tap_ok(r.shared && r.allowed && r.remaining == 3 && r.reset_ms == 200,
           "store answers allowed: remaining and reset passed through");
    tap_ok(rl_peek(rl, "c:proj", &per_s10, 5), "and rl_peek now allows");
    f.fixed.allowed = 0;
    f.fixed.retry_after_ms = 0;
    r = take(rl, "c:proj", &per_s10, 5);
    tap_ok(!r.allowed && r.retry_after_ms == 1, "a refusal without retry_after gets 1 ms");

    capture_start();
    f.mode = FAKE_NULL;
    for (i = 0; i < 4; i++) {
        r = take(rl, "c:other", &per_h1, 2);
        allowed += r.allowed;
        if (r.shared)
            allowed += 100;
    }
    f.mode = FAKE_FIXED;
    f.fixed.allowed = 1;
    take(rl, "c:other", &per_h1, 2);
    take(rl, "c:other", &per_h1, 2);
    f.mode = FAKE_NULL;
    r = take(rl, "c:third", &per_h1, 2);
    warns = capture_count("Redis cannot decide (down)");
    tap_ok(allowed == 2, "store cannot decide: local decisions, shared 0, 1/h b2 allows 2 of 4");
    tap_ok(warns == 2, "one warning per outage, two outages: 2 (got %d)", warns);
    rl_free(rl);

    capture_start();
    rl = rl_new(&f.base, 100);
    f.mode = FAKE_NULL;
    take(rl, "c:x", &per_h1, 2);
    take(rl, "c:x", &per_h1, 2);
    f.mode = FAKE_FIXED;
    take(rl, "c:x", &per_h1, 2);
    take(rl, "c:x", &per_h1, 2);
    rl_free(rl);
    infos = capture_count("Redis decides again");
    tap_ok(infos == 1, "one info line when Redis decides again (got %d)", infos);

    /* A store without the op (the memory store) is the local path. */
    {
        struct store mem = {&no_gcra_ops};

        rl = rl_new(&mem, 10);
        r = take(rl, "c:m", &per_h1, 1);
        tap_ok(r.allowed && !r.shared && !take(rl, "c:m", &per_h1, 1).allowed,
               "a store without gcra: decided locally and synchronously");
        rl_free(rl);
    }
}

static void store_defers(void)
{
    struct fake f = {.base = {&fake_ops}, .mode = FAKE_DEFER,
                     .fixed = {.allowed = 1, .remaining = 9, .reset_ms = 100}};
    struct ratelimiter *rl = rl_new(&f.base, 100);
    struct got a = {0}, b = {0}, c = {0};

    rl_take(rl, "c:slow", &per_h1, 1, on_result, &a);
    rl_take(rl, "c:slow", &per_h1, 1, on_result, &b);
    rl_take(rl, "c:slow", &per_h1, 1, on_result, &c);
    tap_ok(a.n == 0 && b.n == 0 && c.n == 0 && f.npending == 3,
           "deferring store: no answer before the store answers");
    fake_fire(&f, &f.fixed);
    tap_ok(a.n == 1 && a.r.shared && a.r.allowed && a.r.remaining == 9,
           "deferred answer: the callback fires once, shared 1");
    capture_start();
    fake_fire(&f, NULL);
    tap_ok(b.n == 1 && !b.r.shared && !b.r.allowed && b.r.retry_after_ms > 0 &&
           b.r.retry_after_ms <= 100,
           "deferred failure: decided locally, from the TAT the shared answer left "
           "(reset 100 ms, b1: refused, retry %lld ms)", (long long)b.r.retry_after_ms);
    /* The store is freed first: its pending call fires while rl lives. */
    f.base.ops->free(&f.base);
    capture_count("cannot decide");
    tap_ok(c.n == 1 && !c.r.shared && !c.r.allowed,
           "store freed first: its pending call is decided locally while the ratelimiter lives");
    rl_free(rl);

    /* The other order: rl_free with a call pending, which answers later. */
    rl = rl_new(&f.base, 100);
    a = b = (struct got){0};
    rl_take(rl, "c:slow", &per_h1, 1, on_result, &a);
    rl_take(rl, "c:slow", &per_h1, 1, on_result, &b);
    rl_free(rl);
    fake_fire(&f, &f.fixed);
    fake_fire(&f, NULL);
    tap_ok(a.n == 1 && a.r.shared && b.n == 1 && b.r.allowed && !b.r.shared,
           "ratelimiter freed first: late answers still fire once each, without it");
}

/* A large budget is taken from the store in grants of burst/8 (at most
 * 64), handed out locally; a small one a request at a time. */
static void store_grants(void)
{
    static const struct rate per_s20 = {20, 1};
    struct fake f = {.base = {&fake_ops}, .mode = FAKE_FIXED,
                     .fixed = {.allowed = 1, .granted = 5, .remaining = 30, .reset_ms = 300}};
    struct ratelimiter *rl = rl_new(&f.base, 100);
    struct rl_result r[6];
    int i, ok = 1;

    for (i = 0; i < 5; i++) {
        r[i] = take(rl, "c:big", &per_s20, 40);
        ok &= r[i].allowed && r[i].shared;
    }
    tap_ok(ok && f.calls == 1 && f.want == 5,
           "burst 40: one store call asks for 5 (burst/8) and covers 5 requests (calls %d, "
           "want %u)", f.calls, f.want);
    tap_ok(r[0].remaining == 34 && r[1].remaining == 33 && r[4].remaining == 30,
           "remaining counts the store's 30 plus the grant not yet handed out "
           "(%lld, %lld, %lld)", (long long)r[0].remaining, (long long)r[1].remaining,
           (long long)r[4].remaining);
    r[5] = take(rl, "c:big", &per_s20, 40);
    tap_ok(r[5].allowed && f.calls == 2, "the 6th asks the store again (calls %d)", f.calls);
    take(rl, "c:big", &per_s20, 41);
    tap_ok(f.calls == 3, "a grant is not used for another burst (a reload): calls %d", f.calls);
    f.fixed = (struct store_gcra){.allowed = 1, .granted = 1, .remaining = 3, .reset_ms = 100};
    take(rl, "c:small", &per_s20, 5);
    take(rl, "c:small", &per_s20, 5);
    tap_ok(f.calls == 5 && f.want == 1,
           "burst 5: every request asks the store for 1 (calls %d, want %u)", f.calls, f.want);
    f.fixed = (struct store_gcra){.allowed = 1, .granted = 64, .remaining = 0, .reset_ms = 100};
    take(rl, "c:huge", &per_s20, 100000);
    tap_ok(f.want == 64, "a grant is at most 64 requests (want %u)", f.want);
    rl_free(rl);
}

/* Concurrent takes of a large budget: each asks the store, grants add up,
 * and a request the store refused takes a request paid ahead, so that
 * exactly the requests the store granted are handed out, none lost. */
static void store_grants_concurrent(void)
{
    static const struct rate per_s20 = {20, 1};
    struct fake f = {.base = {&fake_ops}, .mode = FAKE_DEFER};
    struct ratelimiter *rl = rl_new(&f.base, 100);
    const struct store_gcra granted = {.allowed = 1, .granted = 5, .remaining = 0,
                                       .reset_ms = 300},
                            refused = {.allowed = 0, .remaining = 0, .retry_after_ms = 50,
                                       .reset_ms = 300};
    struct got g[4] = {{0}};
    int i, allowed = 0, later = 0;

    for (i = 0; i < 4; i++)
        rl_take(rl, "c:herd", &per_s20, 40, on_result, &g[i]);
    tap_ok(f.npending == 4, "4 concurrent takes: 4 store calls (%d)", f.npending);
    fake_fire(&f, &granted);
    fake_fire(&f, &granted);
    fake_fire(&f, &refused);
    fake_fire(&f, &refused);
    for (i = 0; i < 4; i++)
        allowed += g[i].n == 1 && g[i].r.allowed;
    tap_ok(allowed == 4 && g[2].r.shared && g[3].r.shared,
           "two grants of 5: the two the store refused take requests paid ahead "
           "(allowed %d of 4)", allowed);
    f.mode = FAKE_FIXED;
    f.fixed = refused;
    for (i = 0; i < 10; i++)
        later += take(rl, "c:herd", &per_s20, 40).allowed;
    tap_ok(later == 6 && f.calls == 8,
           "the other 6 paid for are handed out without asking, then the store "
           "decides (allowed %d, calls %d)", later, f.calls);
    rl_free(rl);
}

/* A reload to a faster rate: the spent bucket carries over, the old
 * rate's debt does not. */
static void reload_to_faster_rate(void)
{
    int64_t tat = 0;
    struct rl_result r;

    rl_gcra_us(&tat, 1000000, 3600000000ULL, 1, &r);          /* 1/h, spent */
    rl_gcra_us(&tat, 1000001, 3600000000ULL, 1, &r);
    tap_ok(!r.allowed, "reload: spent under 1/h");
    rl_gcra_us(&tat, 1000002, 10000, 100, &r);                 /* now 100/s burst 100 */
    tap_ok(r.allowed, "reload: allowed again under the faster rate at once");
    rl_gcra_us(&tat, 1000003, 10000, 100, &r);
    tap_ok(!r.allowed && r.retry_after_ms <= 10,
           "reload: but the bucket counts as spent (retry %lld ms)", (long long)r.retry_after_ms);
}

int main(void)
{
    reload_to_faster_rate();
    gcra_10_per_s_burst_5();
    gcra_10_seconds_every_ms();
    gcra_per_min_and_per_h();
    gcra_rounding_and_extremes();
    local_takes();
    lru_bound();
    local_precision();
    store_answers();
    store_defers();
    store_grants();
    store_grants_concurrent();
    return tap_done();
}
