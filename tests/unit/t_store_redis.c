/* t_store_redis: the Redis store (src/store_redis.c) against a live
 * redis-server, TAP on stdout.
 *
 *   t_store_redis URL MODE [TIMEOUT_MS]
 *
 * MODE is one of
 *   normal  Redis is up and its database is the test's to clear: a URL
 *           refused or accepted, round trips, misses, expiry, undecodable
 *           values, generations (MGET in one round trip, bump, bad counters),
 *           leases (NX, expiry, renew and release only of our own token,
 *           two stores as two instances), GCRA decisions (burst, remaining,
 *           retry after, refill, one budget for two stores, independent
 *           keys, expiry, the TAT on Redis's clock, bad stored values, the
 *           NOSCRIPT fallback), publish/subscribe (exact bytes, NUL, 64 KiB,
 *           both stores see each other's messages, CLIENT KILL of either
 *           connection, unsubscribe), purge, shedding, store free with
 *           gets, leases and decisions in flight and from get, lease, gcra
 *           and event callbacks.
 *   pause   Redis is up; once connected the test pauses it (CLIENT PAUSE):
 *           gets, leases and decisions fail within their deadline, the
 *           store is down, then it reconnects; then the server closes the
 *           connection (CLIENT KILL) and the store reconnects again, its
 *           subscription untouched; last, a pause longer than the
 *           subscriber heartbeat is noticed on the subscriber connection
 *           (one (NULL, 0) event) and the subscription comes back after it.
 *   hang    Redis was SIGSTOPped before the start: every get, lease and
 *           decision fails within TIMEOUT_MS + 50 ms, the subscription
 *           reports its loss once within that, and the program finishes.
 *   restart Redis is up, without persistence; the test prints the line
 *           "# restart the server now" and the harness restarts it on the
 *           same address: both connections notice, the subscription's loss
 *           is reported once, and both come back by themselves; decisions
 *           work again on the new server (which has no cached script).
 *   down    nothing answers at URL (or AUTH fails): gets, leases and
 *           decisions fail at once, the subscription reports its loss once,
 *           and the idle process does not spin.
 * tests/integration/store_redis.py starts redis-server and runs them all. */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache_entry.h"
#include "cache_store.h"
#include "clock.h"
#include "log.h"
#include "tap.h"

static struct event_base *base;
static struct store *st;
static unsigned timeout_ms = 200;

#define GEN_T "lcg:1:gen:rsc"       /* the generation the plain gets read */
#define CHANNEL "lcg:1:events"
#define HEARTBEAT_MS 5000           /* REDIS_CONN_HEARTBEAT_MS */
#define PERIOD_10 100000            /* us: 10 requests per second */

/* Run the loop until done(arg) or ms elapse; returns done(arg). */
struct until {
    int (*done)(void *);
    void *arg;
    int64_t end_ms;
};

static void until_tick(evutil_socket_t fd, short what, void *arg)
{
    struct until *u = arg;

    if (u->done(u->arg) || mono_ms() >= u->end_ms)
        event_base_loopbreak(base);
}

static int run_until(int (*done)(void *), void *arg, int ms)
{
    struct until u = {done, arg, mono_ms() + ms};
    struct timeval tv = {0, 2000};
    struct event *t;

    if (done(arg))
        return 1;
    t = event_new(base, -1, EV_PERSIST, until_tick, &u);
    event_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
    return done(arg);
}

/* Just the loop, no polling tick: the CPU check measures the store. */
static void run_for(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static int state_is(void *want)
{
    return strcmp(st->ops->state(st), want) == 0;
}

struct got {
    int calls;
    enum store_res res;
    char *enc;                   /* centry_encode of the entry on a hit */
    size_t enc_len;
    int have_gens;               /* g was not NULL */
    struct gens gens;
    int64_t t0_us, t1_us;
};

static void got_cb(void *arg, enum store_res res, struct centry *e,
                   const struct gens *gs)
{
    struct got *g = arg;

    g->calls++;
    g->res = res;
    g->t1_us = mono_us();
    if (e != NULL)
        g->enc = centry_encode(e, &g->enc_len);
    if (gs != NULL) {
        g->have_gens = 1;
        g->gens = *gs;
    }
}

static int got_done(void *arg)
{
    return ((struct got *)arg)->calls > 0;
}

static void get_start_on(struct store *s, const char *key, size_t klen,
                         const char *gen, struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->t0_us = mono_us();
    store_get(s, key, klen, gen, got_cb, g);
}

static void get_start(const char *key, size_t klen, struct got *g)
{
    get_start_on(st, key, klen, GEN_T, g);
}

/* -1 when no answer came at all. */
static int get_wait_on(struct store *s, const char *key, const char *gen,
                       struct got *g)
{
    get_start_on(s, key, strlen(key), gen, g);
    run_until(got_done, g, (int)timeout_ms + 2000);
    return g->calls == 1 ? (int)g->res : -1;
}

static int get_wait(const char *key, struct got *g)
{
    return get_wait_on(st, key, GEN_T, g);
}

/* A round trip on s's command connection: what s sent before is done. */
static void sync_store(struct store *s)
{
    struct got g;

    get_wait_on(s, "rsc:t:none", GEN_T, &g);
    free(g.enc);
}

static int64_t got_ms(const struct got *g)
{
    return (g->t1_us - g->t0_us) / 1000;
}

static const char *res_name(int r)
{
    return r == STORE_HIT ? "HIT" : r == STORE_MISS ? "MISS"
           : r == STORE_ERROR ? "ERROR" : "no answer";
}

/* Counts answers of many gets. */
struct tally {
    int calls, res[3];
};

static void tally_cb(void *arg, enum store_res res, struct centry *e,
                     const struct gens *g)
{
    struct tally *t = arg;

    t->calls++;
    t->res[res]++;
}

struct want_calls {
    struct tally *t;
    int n;
};

static int tally_done(void *arg)
{
    struct want_calls *w = arg;

    return w->t->calls >= w->n;
}

static struct store *open_store(const char *url)
{
    char err[256];
    struct store *s = store_redis_new(base, url, NULL, timeout_ms, err, sizeof(err));

    if (s == NULL) {
        printf("Bail out! store_redis_new: %s\n", err);
        exit(1);
    }
    return s;
}

/* Side channel: a blocking hiredis connection to the same database, for
 * what the store cannot do (write a foreign value, pause the server). It
 * reads the URLs the harness passes, not every URL the store accepts. */
static void pct_copy(char *dst, size_t cap, const char *p, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        if (p[i] == '%' && i + 2 < n) {
            char hex[3] = {p[i + 1], p[i + 2], 0};
            dst[j++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            dst[j++] = p[i];
        }
    }
    dst[j] = '\0';
}

static redisContext *side_open(const char *url)
{
    char host[256] = "", path[256] = "", user[128] = "", pass[128] = "";
    const char *p, *at, *colon;
    long db = 0;
    int port = 6379;
    struct timeval tv = {2, 0};
    redisContext *c;
    redisReply *r;

    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        at = *p != '/' ? strstr(p, "@/") : NULL;
    } else {
        p = url + 8;
        at = strrchr(p, '@');
    }
    if (at != NULL) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            pct_copy(user, sizeof(user), p, (size_t)(colon - p));
            p = colon + 1;
        }
        pct_copy(pass, sizeof(pass), p, (size_t)(at - p));
        p = at + 1;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(path, sizeof(path), "%.*s", (int)strcspn(p, "?"), p);
        if ((p = strstr(p, "?db=")) != NULL)
            db = atol(p + 4);
        c = redisConnectUnixWithTimeout(path, tv);
    } else {
        snprintf(host, sizeof(host), "%.*s", (int)strcspn(p, ":/"), p);
        p += strcspn(p, ":/");
        if (*p == ':')
            port = atoi(++p);
        if ((p = strchr(p, '/')) != NULL)
            db = atol(p + 1);
        c = redisConnectWithTimeout(host, port, tv);
    }
    if (c == NULL || c->err) {
        printf("Bail out! side connection: %s\n", c ? c->errstr : "ENOMEM");
        exit(1);
    }
    if (*pass != '\0') {
        r = *user ? redisCommand(c, "AUTH %s %s", user, pass)
                  : redisCommand(c, "AUTH %s", pass);
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %ld", db);
    freeReplyObject(r);
    return c;
}

static long long side_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        v = (long long)r->elements;
    freeReplyObject(r);
    return v;
}

static int side_ok(redisContext *c, const char *fmt, const char *a,
                   size_t alen, const char *b, size_t blen)
{
    redisReply *r = redisCommand(c, fmt, a, alen, b, blen);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;

    freeReplyObject(r);
    return ok;
}

struct side_wait {
    redisContext *c;
    const char *cmd, *arg;
};

static int side_zero(void *arg)
{
    struct side_wait *w = arg;

    return side_int(w->c, w->cmd, w->arg) == 0;
}

static struct centry *sample_entry(size_t body_len)
{
    static const char ctype[] = "application/json; charset=utf-8";
    char *body = malloc(body_len + 1);
    struct centry *e;

    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)(i * 7 + 3);  /* every byte value, NULs included */
    e = centry_new(200, wall_ms(), ctype, sizeof(ctype) - 1, body, body_len);
    free(body);
    return e;
}

static int state_of(struct store *s, const char *want)
{
    return strcmp(s->ops->state(s), want) == 0;
}

struct store_state {
    struct store *s;
    const char *want;
};

static int store_state_is(void *arg)
{
    struct store_state *w = arg;

    return state_of(w->s, w->want);
}

/* Run the loop until s's state is want, for at most ms: 1 if it is. */
static int wait_state(struct store *s, const char *want, int ms)
{
    struct store_state w = {s, want};

    return run_until(store_state_is, &w, ms);
}

/* Wait until *p >= want. */
struct int_wait {
    const int *p;
    int want;
};

static int int_reached(void *arg)
{
    struct int_wait *w = arg;

    return *w->p >= w->want;
}

static int wait_int(const int *p, int want, int ms)
{
    struct int_wait w = {p, want};

    return run_until(int_reached, &w, ms);
}

/* GET through the side connection into buf; 1, or 0 for nil. */
static int side_get(redisContext *c, const char *key, char *buf, size_t cap)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    int found = 0;

    buf[0] = '\0';
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        snprintf(buf, cap, "%.*s", (int)r->len, r->str);
        found = 1;
    }
    freeReplyObject(r);
    return found;
}

/* How often the server ran a command (INFO commandstats). */
static long long side_calls(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    char want[64];
    const char *p;
    long long v = 0;

    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    if (r != NULL && r->type == REDIS_REPLY_STRING &&
        (p = strstr(r->str, want)) != NULL)
        v = atoll(p + strlen(want));
    freeReplyObject(r);
    return v;
}

static long long side_numsub(redisContext *c)
{
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB %s", CHANNEL);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        v = r->element[1]->integer;
    freeReplyObject(r);
    return v;
}

struct numsub_wait {
    redisContext *c;
    long long want;
};

static int numsub_is(void *arg)
{
    struct numsub_wait *w = arg;

    return side_numsub(w->c) == w->want;
}

/* Subscribers of the channel become want (connections close
 * asynchronously on the server). */
static int wait_numsub(redisContext *side, long long want, int ms)
{
    struct numsub_wait w = {side, want};

    return run_until(numsub_is, &w, ms);
}

/* Leases. */
struct lres {
    int calls, got;
    int64_t t0_us, t1_us;
};

static void lease_cb(void *arg, int got)
{
    struct lres *l = arg;

    l->calls++;
    l->got = got;
    l->t1_us = mono_us();
}

static int lres_done(void *arg)
{
    return ((struct lres *)arg)->calls > 0;
}

static void lease_start(struct store *s, const char *name, uint64_t ttl_ms,
                        struct lres *l)
{
    memset(l, 0, sizeof(*l));
    l->t0_us = mono_us();
    s->ops->lease(s, name, ttl_ms, lease_cb, l);
}

/* The answer, or -2 when none came or more than one. */
static int lease_wait(struct store *s, const char *name, uint64_t ttl_ms,
                      struct lres *l)
{
    lease_start(s, name, ttl_ms, l);
    run_until(lres_done, l, (int)timeout_ms + 2000);
    return l->calls == 1 ? l->got : -2;
}

static int64_t lres_ms(const struct lres *l)
{
    return (l->t1_us - l->t0_us) / 1000;
}

/* GCRA decisions. */
struct gres {
    int calls, decided;          /* decided: r was not NULL */
    struct store_gcra r;
    int64_t t0_us, t1_us;
};

static void gcra_cb(void *arg, const struct store_gcra *r)
{
    struct gres *g = arg;

    g->calls++;
    g->decided = r != NULL;
    if (r != NULL)
        g->r = *r;
    else
        memset(&g->r, 0, sizeof(g->r));
    g->t1_us = mono_us();
}

static int gres_done(void *arg)
{
    return ((struct gres *)arg)->calls > 0;
}

static void gcra_start(struct store *s, const char *key, uint64_t period_us,
                       unsigned burst, struct gres *g)
{
    memset(g, 0, sizeof(*g));
    g->t0_us = mono_us();
    s->ops->gcra(s, key, period_us, burst, 1, gcra_cb, g);
}

/* 1 allowed, 0 refused, -1 undecided (NULL), -2 no answer or more than
 * one. */
static int gcra_wait(struct store *s, const char *key, uint64_t period_us,
                     unsigned burst, struct gres *g)
{
    gcra_start(s, key, period_us, burst, g);
    run_until(gres_done, g, (int)timeout_ms + 2000);
    if (g->calls != 1)
        return -2;
    return g->decided ? g->r.allowed : -1;
}

static int64_t gres_ms(const struct gres *g)
{
    return (g->t1_us - g->t0_us) / 1000;
}

/* Events: a recorder of what a subscription delivers. Messages that start
 * with "probe:" only count (see subs_live). */
#define REC_MAX 16

struct rec {
    int losses, probes, msgs;
    int bad_len;                 /* losses reported with a length */
    int64_t first_loss_us;
    char *m[REC_MAX];            /* the first REC_MAX other messages */
    size_t mlen[REC_MAX];
};

static void rec_cb(void *arg, const char *msg, size_t len)
{
    struct rec *r = arg;

    if (msg == NULL) {
        if (r->losses++ == 0)
            r->first_loss_us = mono_us();
        r->bad_len += len != 0;
        return;
    }
    if (len > 6 && memcmp(msg, "probe:", 6) == 0) {
        r->probes++;
        return;
    }
    if (r->msgs < REC_MAX) {
        r->m[r->msgs] = malloc(len + 1);
        memcpy(r->m[r->msgs], msg, len);
        r->mlen[r->msgs] = len;
    }
    r->msgs++;
}

static void rec_clear(struct rec *r)
{
    for (int i = 0; i < REC_MAX && i < r->msgs; i++)
        free(r->m[i]);
    memset(r, 0, sizeof(*r));
}

/* Was message i exactly these bytes? */
static int rec_has(const struct rec *r, int i, const void *want, size_t len)
{
    return i < REC_MAX && r->msgs > i && r->mlen[i] == len &&
           memcmp(r->m[i], want, len) == 0;
}

/* Publish "probe:N" through the side connection every 50 ms until each
 * counter has grown: the subscriptions behind them are live. */
struct probe {
    redisContext *side;
    int n;
    const int *cnt[4];
    int want[4];
    int64_t next_ms;
};

static unsigned probe_seq;

static int probe_done(void *arg)
{
    struct probe *p = arg;
    char msg[32];
    int i, all = 1;

    for (i = 0; i < p->n; i++)
        all &= *p->cnt[i] >= p->want[i];
    if (all)
        return 1;
    if (mono_ms() >= p->next_ms) {
        snprintf(msg, sizeof(msg), "probe:%u", ++probe_seq);
        side_int(p->side, "PUBLISH " CHANNEL " %s", msg);
        p->next_ms = mono_ms() + 50;
    }
    return 0;
}

static int probe_until(redisContext *side, int n, const int *const *cnt,
                       int ms)
{
    struct probe p = {side, n, {NULL}, {0}, 0};
    int i;

    for (i = 0; i < n; i++) {
        p.cnt[i] = cnt[i];
        p.want[i] = *cnt[i] + 1;
    }
    return run_until(probe_done, &p, ms);
}

static int subs_live(redisContext *side, struct rec **r, int n, int ms)
{
    const int *cnt[4];
    int i;

    for (i = 0; i < n; i++)
        cnt[i] = &r[i]->probes;
    return probe_until(side, n, cnt, ms);
}

/* The forms of the URL are t_redis_url's; here, that the store passes a
 * refusal on and starts (not ok yet) on any accepted one. */
static void check_bad_urls(void)
{
    static const char *const bad[] = {
        "redis://:s3cret%zz@127.0.0.1",
        "rediss://:s3cret@",
        "unix://:s3cret@/",
    };
    static const char *const good[] = {
        "redis://:s3cret@127.0.0.1:1/3",
        "unix://:s3cret@/nonexistent/r.sock",
    };
    char err[256];
    struct store *s;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(err, "");
        s = store_redis_new(base, bad[i], NULL, timeout_ms, err, sizeof(err));
        tap_ok(s == NULL && strncmp(err, "redis_url: ", 11) == 0 &&
                   strstr(err, "s3cret") == NULL,
               "invalid url %zu is refused with a message that does not "
               "quote the password (%s)", i, err);
        if (s != NULL)
            s->ops->free(s);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s = store_redis_new(base, good[i], NULL, timeout_ms, err, sizeof(err));
        tap_ok(s != NULL, "valid url %zu is accepted", i);
        if (s != NULL) {
            tap_ok(strcmp(s->ops->state(s), "ok") != 0,
                   "with its server unreachable, the store says %s",
                   s->ops->state(s));
            s->ops->free(s);
        }
    }
    s = store_redis_new(base, "redis://127.0.0.1:1", NULL, 0, err, sizeof(err));
    tap_ok(s == NULL && err[0] != '\0', "timeout 0 is refused (%s)", err);
}

static void check_roundtrip(void)
{
    static const char binkey[] = "rsc:t:bin\0key \xff";
    struct centry *e = sample_entry(1000), *big = sample_entry(2 << 20);
    char *want;
    size_t want_len;
    struct got g;
    int r;

    want = centry_encode(e, &want_len);
    store_set(st, "rsc:t:1", 7, e, 10000);
    r = get_wait("rsc:t:1", &g);
    tap_is_str(res_name(r), "HIT", "get after set is a HIT");
    tap_ok(g.enc != NULL && g.enc_len == want_len &&
               memcmp(g.enc, want, want_len) == 0,
           "the entry read back encodes to identical bytes");
    free(g.enc);
    free(want);

    want = centry_encode(big, &want_len);
    store_set(st, "rsc:t:big", 9, big, 10000);
    r = get_wait("rsc:t:big", &g);
    tap_ok(r == STORE_HIT && g.enc_len == want_len &&
               memcmp(g.enc, want, want_len) == 0,
           "a 2 MiB body comes back byte for byte");
    free(g.enc);
    free(want);

    store_set(st, binkey, sizeof(binkey) - 1, e, 10000);
    get_start(binkey, sizeof(binkey) - 1, &g);
    run_until(got_done, &g, (int)timeout_ms + 2000);
    tap_ok(g.calls == 1 && g.res == STORE_HIT,
           "a key with NUL and high bytes is stored as given");
    free(g.enc);
    get_start(binkey, 9, &g);        /* "rsc:t:bin" alone */
    run_until(got_done, &g, (int)timeout_ms + 2000);
    tap_ok(g.calls == 1 && g.res == STORE_MISS,
           "keys are compared with their length, not up to a NUL");

    r = get_wait("rsc:t:missing", &g);
    tap_is_str(res_name(r), "MISS", "get of a missing key is a MISS");
    tap_ok(g.calls == 1, "the callback fired exactly once");

    store_set(st, "rsc:t:exp", 9, e, 150);
    r = get_wait("rsc:t:exp", &g);
    tap_is_str(res_name(r), "HIT", "an entry kept 150 ms is there at once");
    free(g.enc);
    run_for(400);
    r = get_wait("rsc:t:exp", &g);
    tap_is_str(res_name(r), "MISS", "and gone 400 ms later (PX)");

    store_set(st, "rsc:t:zero", 10, e, 0);
    r = get_wait("rsc:t:zero", &g);
    tap_is_str(res_name(r), "MISS", "keep_ms 0 stores nothing");

    centry_decref(e);
    centry_decref(big);
}

static void check_bad_values(redisContext *side)
{
    struct centry *e = sample_entry(64);
    char *enc;
    size_t len;
    struct got g;
    int r;

    enc = centry_encode(e, &len);
    side_ok(side, "SET %b %b", "rsc:t:junk", 10, "not a cache entry", 17);
    side_ok(side, "SET %b %b", "rsc:t:trunc", 11, enc, len - 1);
    side_int(side, "DEL %s", "rsc:t:list");
    side_int(side, "RPUSH %s x", "rsc:t:list");
    free(enc);

    r = get_wait("rsc:t:junk", &g);
    tap_is_str(res_name(r), "ERROR", "a value that is not an encoding is ERROR");
    r = get_wait("rsc:t:trunc", &g);
    tap_is_str(res_name(r), "ERROR", "a truncated encoding is ERROR");
    r = get_wait("rsc:t:list", &g);
    tap_is_str(res_name(r), "MISS", "a key of another type reads nil in "
               "MGET: a MISS");
    store_set(st, "rsc:t:list", 10, e, 10000);
    r = get_wait("rsc:t:list", &g);
    tap_is_str(res_name(r), "HIT", "and a set replaces it");
    free(g.enc);
    tap_is_str(st->ops->state(st), "ok", "bad values keep the connection");
    store_set(st, "rsc:t:after", 11, e, 10000);
    r = get_wait("rsc:t:after", &g);
    tap_is_str(res_name(r), "HIT", "and the store still works");
    free(g.enc);
    centry_decref(e);
}

static void check_gens(redisContext *side)
{
    static const char key[] = "rsc:g:k", p1[] = "lcg:1:gen:rsc-p1",
                      p2[] = "lcg:1:gen:rsc-p2", bad[] = "lcg:1:gen:rsc-bad";
    static const char *const bad_values[] = {
        "12x", "-1", "", " 1", "1.5", "+1", "18446744073709551616",
        "99999999999999999999999",
    };
    struct centry *e = sample_entry(300);
    char *want, val[64];
    size_t want_len, i;
    long long mget0, get0;
    struct got g;
    int r, all_error = 1;

    side_int(side, "DEL %s", STORE_GEN_ALL);
    r = get_wait_on(st, key, p1, &g);
    tap_ok(r == STORE_MISS && g.have_gens && g.gens.proj == 0 &&
               g.gens.all == 0,
           "a MISS carries the generations, 0 while never set");
    st->ops->gen_set(st, STORE_GEN_ALL, 2, 0, 60000);
    r = get_wait_on(st, key, p1, &g);
    tap_ok(r == STORE_MISS && g.gens.all == 2 && g.gens.proj == 0,
           "setting the global generation sets it, the project's stays 0 "
           "(%" PRIu64 "/%" PRIu64 ")", g.gens.proj, g.gens.all);
    st->ops->gen_set(st, p1, 7, 0, 60000);
    r = get_wait_on(st, key, p1, &g);
    tap_ok(r == STORE_MISS && g.gens.proj == 7 && g.gens.all == 2,
           "setting the project's generation sets it (%" PRIu64 "/%" PRIu64 ")",
           g.gens.proj, g.gens.all);
    st->ops->gen_set(st, p1, 9, 1, 60000);
    st->ops->gen_set(st, p2, 5, 1, 60000);
    r = get_wait_on(st, key, p1, &g);
    tap_ok(r == STORE_MISS && g.gens.proj == 7,
           "if_absent does not replace a generation that is set");
    r = get_wait_on(st, key, p2, &g);
    tap_ok(r == STORE_MISS && g.gens.proj == 5 && g.gens.all == 2,
           "if_absent sets one that is not (%" PRIu64 "/%" PRIu64 ")", g.gens.proj,
           g.gens.all);
    st->ops->gen_set(st, p1, 2, 0, 60000);
    sync_store(st);
    side_get(side, p1, val, sizeof(val));
    tap_is_str(val, "2", "a generation is a plain decimal in Redis");
    {
        long long pttl = side_int(side, "PTTL %s", p1);
        tap_ok(pttl > 0 && pttl <= 60000, "a generation expires (PTTL %lld)", pttl);
    }

    e->gen_proj = 2;
    e->gen_all = 2;
    want = centry_encode(e, &want_len);
    store_set(st, key, sizeof(key) - 1, e, 10000);
    sync_store(st);
    mget0 = side_calls(side, "mget");
    get0 = side_calls(side, "get");
    r = get_wait_on(st, key, p1, &g);
    tap_ok(r == STORE_HIT && g.enc != NULL && g.enc_len == want_len &&
               memcmp(g.enc, want, want_len) == 0 && g.have_gens &&
               g.gens.proj == 2 && g.gens.all == 2,
           "a HIT carries the entry, with its own stamp, and the current "
           "generations");
    tap_ok(side_calls(side, "mget") == mget0 + 1 &&
               side_calls(side, "get") == get0,
           "in one round trip: one MGET and nothing else");
    free(g.enc);
    free(want);
    r = get_wait_on(st, key, NULL, &g);
    tap_ok(r == STORE_HIT && g.gens.proj == 0 && g.gens.all == 2,
           "without a project generation name its counter reads 0");
    free(g.enc);

    for (i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        side_ok(side, "SET %b %b", bad, sizeof(bad) - 1, bad_values[i],
                strlen(bad_values[i]));
        r = get_wait_on(st, key, bad, &g);
        free(g.enc);
        if (r != STORE_ERROR || g.have_gens) {
            all_error = 0;
            printf("# counter \"%s\" read as %s\n", bad_values[i],
                   res_name(r));
        }
    }
    tap_ok(all_error, "a project counter that is not a decimal 64-bit "
           "number makes the get an ERROR (%zu values)", i);
    side_ok(side, "SET %b %b", bad, sizeof(bad) - 1, "18446744073709551615",
            20);
    r = get_wait_on(st, key, bad, &g);
    free(g.enc);
    tap_ok(r == STORE_HIT && g.gens.proj == UINT64_MAX,
           "the largest 64-bit counter reads as such");
    side_ok(side, "SET %b %b", STORE_GEN_ALL, sizeof(STORE_GEN_ALL) - 1,
            "x", 1);
    r = get_wait_on(st, key, p1, &g);
    tap_is_str(res_name(r), "ERROR", "so does a bad global counter");
    tap_is_str(st->ops->state(st), "ok", "bad counters keep the connection");
    st->ops->gen_set(st, STORE_GEN_ALL, 2, 0, 60000);
    sync_store(st);
    tap_is_str(st->ops->state(st), "ok",
               "setting a generation that is not a number replaces it");
    r = get_wait_on(st, key, p1, &g);
    free(g.enc);
    tap_ok(r == STORE_HIT && g.gens.all == 2, "and reads work again once "
           "the counter is a number");
    centry_decref(e);
}

static void check_leases(redisContext *side, struct store *st2)
{
    static const char name[] = "rsc:lease:a";
    char v1[128], v2[128];
    struct lres l;
    long long pttl;
    int r;

    side_int(side, "DEL %s", name);
    r = lease_wait(st, name, 400, &l);
    tap_ok(r == 1, "the first lease on a name is ours (%d)", r);
    side_get(side, name, v1, sizeof(v1));
    r = lease_wait(st2, name, 400, &l);
    tap_ok(r == 0, "another store's lease on it is refused (%d)", r);
    r = lease_wait(st, name, 400, &l);
    tap_ok(r == 0, "and so is a second one of the holder's (%d)", r);
    pttl = side_int(side, "PTTL %s", name);
    tap_ok(pttl > 0 && pttl <= 400, "the lease has its ttl (PTTL %lld)",
           pttl);
    run_for(500);
    r = lease_wait(st2, name, 400, &l);
    tap_ok(r == 1, "once it expired, the other store gets it (%d)", r);
    side_get(side, name, v2, sizeof(v2));
    tap_ok(strlen(v1) >= 32 && strlen(v2) >= 32 && strcmp(v1, v2) != 0,
           "the two stores hold leases with different tokens");

    st->ops->lease_renew(st, name, 60000);
    sync_store(st);
    pttl = side_int(side, "PTTL %s", name);
    tap_ok(pttl > 0 && pttl <= 400, "a renewal by a store that does not "
           "hold the lease does not extend it (PTTL %lld)", pttl);
    st2->ops->lease_renew(st2, name, 60000);
    sync_store(st2);
    pttl = side_int(side, "PTTL %s", name);
    tap_ok(pttl > 50000, "a renewal by its holder does (PTTL %lld)", pttl);
    st->ops->lease_release(st, name);
    sync_store(st);
    tap_ok(side_int(side, "EXISTS %s", name) == 1,
           "a release by a store that does not hold it leaves it");
    st2->ops->lease_release(st2, name);
    sync_store(st2);
    tap_ok(side_int(side, "EXISTS %s", name) == 0,
           "a release by its holder drops it");
    r = lease_wait(st, name, 60000, &l);
    tap_ok(r == 1, "and the next taker gets it at once (%d)", r);

    /* Our lease expired and another instance's took its place. */
    side_ok(side, "SET %b %b PX 1000", name, sizeof(name) - 1, "foreign", 7);
    st->ops->lease_renew(st, name, 60000);
    sync_store(st);
    pttl = side_int(side, "PTTL %s", name);
    tap_ok(pttl > 0 && pttl <= 1000, "a lease overwritten by another token "
           "is not extended by us (PTTL %lld)", pttl);
    st->ops->lease_release(st, name);
    sync_store(st);
    side_get(side, name, v1, sizeof(v1));
    tap_is_str(v1, "foreign", "nor deleted by us");
    side_int(side, "DEL %s", name);
}

/* Redis's clock in microseconds, through the side connection. */
static int64_t side_time_us(redisContext *c)
{
    redisReply *r = redisCommand(c, "TIME");
    int64_t v = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        v = atoll(r->element[0]->str) * 1000000 + atoll(r->element[1]->str);
    freeReplyObject(r);
    return v;
}

static void check_gcra(redisContext *side, struct store *st2)
{
    static const char ka[] = "rsc:rl:a", kb[] = "rsc:rl:b",
                      kc[] = "rsc:rl:c", ks[] = "rsc:rl:shared",
                      kx[] = "rsc:rl:exp", kj[] = "rsc:rl:junk",
                      kf[] = "rsc:rl:future", kn[] = "rsc:rl:noscript",
                      kl[] = "rsc:rl:list", kh[] = "rsc:rl:huge",
                      kt[] = "rsc:rl:tiny", kg[] = "rsc:rl:grant";
    static const char *const keys[] = {ka, kb, kc, ks, kx, kj, kf, kn, kl,
                                       kh, kt};
    struct gres g;
    char val[64];
    long long pttl, eval0, sha0;
    int64_t rem[5], reset[5], now_us, tat_us, t0;
    int r, i, all = 1;
    size_t k;

    for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        side_int(side, "DEL %s", keys[k]);

    /* rate 10/s, burst 5 */
    t0 = mono_us();
    for (i = 0; i < 5; i++) {
        r = gcra_wait(st, ka, PERIOD_10, 5, &g);
        all &= r == 1 && g.r.retry_after_ms == 0;
        rem[i] = g.r.remaining;
        reset[i] = g.r.reset_ms;
    }
    tap_ok(all, "rate 10/s, burst 5: 5 requests at once are allowed");
    tap_ok(rem[0] == 4 && rem[1] == 3 && rem[2] == 2 && rem[3] == 1 &&
               rem[4] == 0,
           "remaining counts 4,3,2,1,0 (%lld,%lld,%lld,%lld,%lld)",
           (long long)rem[0], (long long)rem[1], (long long)rem[2],
           (long long)rem[3], (long long)rem[4]);
    tap_ok(reset[0] == 100 && reset[4] > 400 && reset[4] <= 500,
           "reset_ms is the time until full: 100 after the first, (400, "
           "500] after the fifth (%lld, %lld)", (long long)reset[0],
           (long long)reset[4]);
    r = gcra_wait(st, ka, PERIOD_10, 5, &g);
    tap_ok(r == 0 && g.r.remaining == 0 && g.r.retry_after_ms >= 1 &&
               g.r.retry_after_ms <= 100 && g.r.reset_ms > 400 &&
               g.r.reset_ms <= 500,
           "the 6th is refused, retry after %lld ms (1..100), reset %lld ms",
           (long long)g.r.retry_after_ms, (long long)g.r.reset_ms);
    pttl = side_int(side, "PTTL %s", ka);
    tap_ok(pttl > 300 && pttl <= 500,
           "the key expires when the bucket is full again (PTTL %lld)",
           pttl);
    now_us = side_time_us(side);
    tap_ok(side_get(side, ka, val, sizeof(val)) &&
               strspn(val, "0123456789") == strlen(val),
           "the TAT is stored as a decimal integer (%s)", val);
    tat_us = atoll(val);
    tap_ok(tat_us - now_us > 300000 && tat_us - now_us <= 500000,
           "in microseconds on Redis's clock: %lld us ahead of its TIME",
           (long long)(tat_us - now_us));
    run_for(100);
    r = gcra_wait(st, ka, PERIOD_10, 5, &g);
    tap_ok(r == 1 && g.r.remaining == 0,
           "100 ms later one more is allowed, with 0 remaining (%d, %lld; "
           "%lld ms after the burst)", r, (long long)g.r.remaining,
           (long long)((mono_us() - t0) / 1000));
    r = gcra_wait(st, ka, PERIOD_10, 5, &g);
    tap_ok(r == 0, "and the next one right after is refused (%d)", r);

    /* two instances, one budget */
    r = gcra_wait(st, ks, 1000000, 3, &g);
    all = r == 1 && g.r.remaining == 2;
    r = gcra_wait(st2, ks, 1000000, 3, &g);
    all &= r == 1 && g.r.remaining == 1;
    r = gcra_wait(st, ks, 1000000, 3, &g);
    all &= r == 1 && g.r.remaining == 0;
    tap_ok(all, "two stores spend one budget on the same key: 3 of burst 3 "
           "allowed, remaining 2,1,0 across them");
    r = gcra_wait(st2, ks, 1000000, 3, &g);
    tap_ok(r == 0 && g.r.retry_after_ms > 900 &&
               g.r.retry_after_ms <= 1000,
           "and the other store's next is refused (retry after %lld ms)",
           (long long)g.r.retry_after_ms);
    r = gcra_wait(st, ks, 1000000, 3, &g);
    tap_ok(r == 0, "so is this store's (%d)", r);

    /* grants: several requests of the budget in one decision */
    side_int(side, "DEL %s", kg);
    memset(&g, 0, sizeof(g));
    st->ops->gcra(st, kg, 1000000, 5, 3, gcra_cb, &g);
    run_until(gres_done, &g, (int)timeout_ms + 2000);
    all = g.calls == 1 && g.decided && g.r.allowed && g.r.granted == 3 && g.r.remaining == 2;
    memset(&g, 0, sizeof(g));
    st->ops->gcra(st, kg, 1000000, 5, 3, gcra_cb, &g);
    run_until(gres_done, &g, (int)timeout_ms + 2000);
    all &= g.calls == 1 && g.r.allowed && g.r.granted == 2 && g.r.remaining == 0 &&
           g.r.reset_ms > 4900 && g.r.reset_ms <= 5000;
    memset(&g, 0, sizeof(g));
    st->ops->gcra(st, kg, 1000000, 5, 3, gcra_cb, &g);
    run_until(gres_done, &g, (int)timeout_ms + 2000);
    all &= g.calls == 1 && !g.r.allowed && g.r.granted == 0 && g.r.retry_after_ms > 900;
    tap_ok(all, "grants: burst 5 asked 3 at a time gives 3 (2 left), then 2 (0 left, "
           "reset 5 s), then a refusal");
    side_int(side, "DEL %s", kg);

    /* independent keys */
    r = gcra_wait(st, kb, 1000000, 1, &g);
    all = r == 1 && g.r.remaining == 0;
    r = gcra_wait(st, kb, 1000000, 1, &g);
    all &= r == 0;
    tap_ok(all, "burst 1: one allowed, the next refused");
    r = gcra_wait(st, kc, 1000000, 1, &g);
    tap_ok(r == 1 && g.r.remaining == 0,
           "another key is independent: allowed (%d)", r);
    tap_ok(side_int(side, "EXISTS %s", kc) == 1 &&
               side_int(side, "EXISTS %s", "rsc:rl:d") == 0,
           "each key has its own TAT");

    /* idle keys vanish */
    r = gcra_wait(st, kx, 20000, 1, &g);
    pttl = side_int(side, "PTTL %s", kx);
    tap_ok(r == 1 && g.r.reset_ms == 20 && pttl > 0 && pttl <= 20,
           "a key of rate 50/s, burst 1 expires in 20 ms (PTTL %lld)",
           pttl);
    run_for(100);
    tap_ok(side_int(side, "EXISTS %s", kx) == 0,
           "and is gone once its bucket is full again");

    /* stored values that are not ours */
    side_ok(side, "SET %b %b", kj, sizeof(kj) - 1, "not a number", 12);
    r = gcra_wait(st, kj, PERIOD_10, 5, &g);
    tap_ok(r == 1 && g.r.remaining == 4,
           "a value that is not a number reads as a full bucket (%d, %lld)",
           r, (long long)g.r.remaining);
    tap_ok(side_get(side, kj, val, sizeof(val)) &&
               strspn(val, "0123456789") == strlen(val),
           "and is replaced by a TAT (%s)", val);
    snprintf(val, sizeof(val), "%lld",
             (long long)(side_time_us(side) + 3600LL * 1000000));
    side_ok(side, "SET %b %b", kf, sizeof(kf) - 1, val, strlen(val));
    r = gcra_wait(st, kf, PERIOD_10, 5, &g);
    tap_ok(r == 0 && g.r.retry_after_ms == 100 && g.r.reset_ms == 500,
           "a TAT an hour ahead (a clock stepped back) refuses for one "
           "period past the burst, not an hour (retry %lld, reset %lld)",
           (long long)g.r.retry_after_ms, (long long)g.r.reset_ms);
    side_int(side, "DEL %s", kl);
    side_int(side, "RPUSH %s x", kl);
    r = gcra_wait(st, kl, PERIOD_10, 5, &g);
    tap_ok(r == -1, "a key of another type is undecided: NULL (%d)", r);
    tap_is_str(st->ops->state(st), "ok", "and keeps the connection");

    /* extreme budgets are clamped, not errors */
    r = gcra_wait(st, kh, UINT64_MAX, UINT_MAX, &g);
    all = r == 1;
    r = gcra_wait(st, kh, UINT64_MAX, UINT_MAX, &g);
    all &= r == 1;
    tap_ok(all && g.r.reset_ms > 0, "a period and a burst of decades are "
           "decided (reset %lld ms)", (long long)g.r.reset_ms);
    r = gcra_wait(st, kt, 1, 1000000, &g);
    tap_ok(r == 1 && g.r.remaining == 999999,
           "and so is a period of 1 us (%d, remaining %lld)", r,
           (long long)g.r.remaining);

    /* EVALSHA, and EVAL after NOSCRIPT */
    r = gcra_wait(st, kn, 1000000, 2, &g);
    eval0 = side_calls(side, "eval");
    sha0 = side_calls(side, "evalsha");
    r = gcra_wait(st, kn, 1000000, 2, &g);
    tap_ok(r == 1 && g.r.remaining == 0 &&
               side_calls(side, "evalsha") == sha0 + 1 &&
               side_calls(side, "eval") == eval0,
           "a decision is one EVALSHA once the script is cached");
    {
        redisReply *rep = redisCommand(side, "SCRIPT FLUSH");

        tap_ok(rep != NULL && rep->type == REDIS_REPLY_STATUS,
               "SCRIPT FLUSH empties the server's script cache");
        freeReplyObject(rep);
    }
    eval0 = side_calls(side, "eval");
    sha0 = side_calls(side, "evalsha");
    r = gcra_wait(st, kn, 1000000, 2, &g);
    tap_ok(r == 0 && g.r.retry_after_ms > 900 && g.r.retry_after_ms <= 1000,
           "after it, a decision still comes, on the same budget (refused, "
           "retry %lld ms)", (long long)g.r.retry_after_ms);
    tap_ok(side_calls(side, "evalsha") == sha0 + 1 &&
               side_calls(side, "eval") == eval0 + 1,
           "through EVALSHA answered NOSCRIPT, then one EVAL");
    r = gcra_wait(st2, kn, 1000000, 2, &g);
    tap_ok(r == 0 && side_calls(side, "evalsha") == sha0 + 2 &&
               side_calls(side, "eval") == eval0 + 1,
           "the EVAL cached the script: the next decision, of another "
           "store, is an EVALSHA again (our SHA-1 is Redis's)");
    tap_is_str(st->ops->state(st), "ok", "the store is still ok");
    for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        side_int(side, "DEL %s", keys[k]);
}

static struct rec rec1, rec2;    /* st's and st2's events */

static void check_pubsub(redisContext *side, struct store *st2)
{
    static const char nul_msg[] = "ev\0nt \xff\r\n";
    static const char *const seq[] = {"one", "two", "three"};
    static char big[64 * 1024];
    struct rec *both[2] = {&rec1, &rec2};
    redisReply *rep;
    size_t i;
    int ok1, ok2, n2;

    st->ops->subscribe(st, rec_cb, &rec1);
    st2->ops->subscribe(st2, rec_cb, &rec2);
    tap_ok(subs_live(side, both, 2, 5000),
           "both stores' subscriptions come up");
    tap_ok(wait_numsub(side, 2, 2000), "with one subscriber connection each");

    st->ops->publish(st, nul_msg, sizeof(nul_msg) - 1);
    wait_int(&rec1.msgs, 1, 2000);
    wait_int(&rec2.msgs, 1, 2000);
    tap_ok(rec_has(&rec1, 0, nul_msg, sizeof(nul_msg) - 1) &&
               rec_has(&rec2, 0, nul_msg, sizeof(nul_msg) - 1),
           "a message with a NUL byte reaches both subscribers, its "
           "publisher included, byte for byte");
    for (i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31 + 7);
    st2->ops->publish(st2, big, sizeof(big));
    wait_int(&rec1.msgs, 2, 2000);
    wait_int(&rec2.msgs, 2, 2000);
    tap_ok(rec_has(&rec1, 1, big, sizeof(big)) &&
               rec_has(&rec2, 1, big, sizeof(big)),
           "a 64 KiB message from the other store arrives byte for byte");
    big[0] ^= 1;
    st->ops->publish(st, big, sizeof(big));
    wait_int(&rec1.msgs, 3, 2000);
    wait_int(&rec2.msgs, 3, 2000);
    tap_ok(rec_has(&rec1, 2, big, sizeof(big)) &&
               rec_has(&rec2, 2, big, sizeof(big)),
           "and one from this store to the other");
    st->ops->publish(st, "", 0);
    for (i = 0; i < 3; i++)
        st2->ops->publish(st2, seq[i], strlen(seq[i]));
    wait_int(&rec1.msgs, 7, 2000);
    wait_int(&rec2.msgs, 7, 2000);
    ok1 = ok2 = 1;
    for (i = 0; i < 3; i++) {
        ok1 &= rec_has(&rec1, 4 + (int)i, seq[i], strlen(seq[i]));
        ok2 &= rec_has(&rec2, 4 + (int)i, seq[i], strlen(seq[i]));
    }
    tap_ok(rec_has(&rec1, 3, "", 0) && rec_has(&rec2, 3, "", 0),
           "an empty message arrives empty");
    tap_ok(ok1 && ok2, "messages of one publisher arrive in order");
    tap_ok(rec1.losses == 0 && rec2.losses == 0, "no loss was reported");

    /* The command connections go: the subscriptions stay. */
    rep = redisCommand(side, "CLIENT KILL TYPE normal SKIPME yes");
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
               rep->integer >= 2,
           "the server closes both command connections");
    freeReplyObject(rep);
    side_int(side, "PUBLISH " CHANNEL " %s", "after-kill");
    wait_int(&rec1.msgs, 8, 2000);
    wait_int(&rec2.msgs, 8, 2000);
    tap_ok(rec_has(&rec1, 7, "after-kill", 10) &&
               rec_has(&rec2, 7, "after-kill", 10) && rec1.losses == 0 &&
               rec2.losses == 0,
           "the subscriptions do not depend on the command connections");
    tap_ok(wait_state(st, "ok", 3000) && wait_state(st2, "ok", 3000),
           "the command connections come back");

    /* The subscriber connections go. */
    rep = redisCommand(side, "CLIENT KILL TYPE pubsub");
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
               rep->integer >= 2,
           "the server closes both subscriber connections");
    freeReplyObject(rep);
    wait_int(&rec1.losses, 1, (int)timeout_ms + 2000);
    wait_int(&rec2.losses, 1, (int)timeout_ms + 2000);
    tap_ok(rec1.losses == 1 && rec2.losses == 1 && rec1.bad_len == 0 &&
               rec2.bad_len == 0,
           "each store's callback hears of the loss: (NULL, 0)");
    tap_is_str(st->ops->state(st), "ok",
               "the command connection does not depend on it");
    tap_ok(subs_live(side, both, 2, 5000),
           "the subscriptions come back by themselves");
    tap_ok(rec1.losses == 1 && rec2.losses == 1, "one report per loss");
    st->ops->publish(st, "back", 4);
    wait_int(&rec1.msgs, 9, 2000);
    wait_int(&rec2.msgs, 9, 2000);
    tap_ok(rec_has(&rec1, 8, "back", 4) && rec_has(&rec2, 8, "back", 4),
           "a later publish is delivered again");

    /* Unsubscribe. */
    st2->ops->subscribe(st2, NULL, NULL);
    tap_ok(wait_numsub(side, 1, 2000),
           "subscribe(NULL) closes the subscriber connection");
    n2 = rec2.msgs;
    st->ops->publish(st, "only-1", 6);
    wait_int(&rec1.msgs, 10, 2000);
    sync_store(st2);
    run_for(50);
    tap_ok(rec_has(&rec1, 9, "only-1", 6) && rec2.msgs == n2 &&
               rec2.losses == 1,
           "and its callback hears nothing more, no loss either");
    st2->ops->subscribe(st2, rec_cb, &rec2);
    tap_ok(subs_live(side, &both[1], 1, 5000), "subscribing again works");
}

/* Store free and unsubscribe from event callbacks. */
struct evcb {
    struct store *s;
    int mode;                    /* 0 free, 1 unsubscribe, 2 free on loss */
    int msgs, losses;
};

static void evcb_cb(void *arg, const char *msg, size_t len)
{
    struct evcb *f = arg;

    if (msg == NULL)
        f->losses++;
    else
        f->msgs++;
    if (f->mode == 1 && msg != NULL) {
        f->s->ops->subscribe(f->s, NULL, NULL);
        /* and the store still works from here */
        f->s->ops->publish(f->s, "from-cb", 7);
    } else if ((f->mode == 0 && msg != NULL) || (f->mode == 2 && !msg)) {
        f->s->ops->free(f->s);
        f->s = NULL;
    }
}

static void check_free_in_event_callbacks(const char *url,
                                          redisContext *side)
{
    struct evcb f0 = {0}, f1 = {0}, f2 = {0};
    const int *cnt[1];
    long long subs = side_numsub(side);

    f0.s = open_store(url);
    f0.s->ops->subscribe(f0.s, evcb_cb, &f0);
    cnt[0] = &f0.msgs;
    probe_until(side, 1, cnt, 5000);
    tap_ok(f0.msgs == 1 && f0.s == NULL, "an event callback may free the "
           "store");
    probe_until(side, 1, cnt, 300);
    tap_ok(f0.msgs == 1 && f0.losses == 0 && wait_numsub(side, subs, 2000),
           "its subscription is closed, no call comes after");

    f1.s = open_store(url);
    wait_state(f1.s, "ok", 5000);
    f1.mode = 1;
    f1.s->ops->subscribe(f1.s, evcb_cb, &f1);
    cnt[0] = &f1.msgs;
    probe_until(side, 1, cnt, 5000);
    tap_ok(f1.msgs == 1, "an event callback may unsubscribe");
    probe_until(side, 1, cnt, 300);
    tap_ok(f1.msgs == 1 && f1.losses == 0 && wait_numsub(side, subs, 2000),
           "its subscription is closed, no call comes after");
    f1.s->ops->free(f1.s);

    f2.mode = 2;
    f2.s = open_store("unix:///nonexistent/r.sock");
    f2.s->ops->subscribe(f2.s, evcb_cb, &f2);
    tap_ok(f2.losses == 0, "a subscription's loss is never reported from "
           "within subscribe()");
    wait_int(&f2.losses, 1, (int)timeout_ms + 2000);
    tap_ok(f2.losses == 1 && f2.s == NULL, "a subscription that cannot "
           "connect is reported lost; that callback may free the store");
    run_for(300);
    tap_ok(f2.losses == 1, "no call comes after");
}

/* A lease callback frees the store; the leases behind it are -1, once. */
struct lfree {
    struct store *s;
    int calls, got;
};

static void lease_free_cb(void *arg, int got)
{
    struct lfree *f = arg;

    f->calls++;
    f->got = got;
    f->s->ops->free(f->s);
}

static void check_free_in_lease_callback(const char *url)
{
    struct lfree f = {0};
    struct lres l[3];
    char name[64];
    int i, ok = 1;

    f.s = open_store(url);
    wait_state(f.s, "ok", 5000);
    snprintf(name, sizeof(name), "rsc:lease:f:%ld", (long)getpid());
    f.s->ops->lease(f.s, name, 1000, lease_free_cb, &f);
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "rsc:lease:f:%ld:%d", (long)getpid(),
                 i);
        lease_start(f.s, name, 1000, &l[i]);
    }
    run_for(100);
    for (i = 0; i < 3; i++)
        ok &= l[i].calls == 1 && l[i].got == -1;
    tap_ok(f.calls == 1 && f.got == 1 && ok, "a lease callback may free the "
           "store; the leases behind it are -1, each once");
}

/* A gcra callback frees the store; the decisions behind it are NULL,
 * once. */
struct gfree {
    struct store *s;
    int calls, decided;
};

static void gcra_free_cb(void *arg, const struct store_gcra *r)
{
    struct gfree *f = arg;

    f->calls++;
    f->decided = r != NULL;
    f->s->ops->free(f->s);
}

static void check_free_in_gcra_callback(const char *url)
{
    struct gfree f = {0};
    struct gres g[3];
    char key[64];
    int i, ok = 1;

    f.s = open_store(url);
    wait_state(f.s, "ok", 5000);
    snprintf(key, sizeof(key), "rsc:rl:f:%ld", (long)getpid());
    f.s->ops->gcra(f.s, key, PERIOD_10, 5, 1, gcra_free_cb, &f);
    for (i = 0; i < 3; i++)
        gcra_start(f.s, key, PERIOD_10, 5, &g[i]);
    run_for(100);
    for (i = 0; i < 3; i++)
        ok &= g[i].calls == 1 && !g[i].decided;
    tap_ok(f.calls == 1 && f.decided && ok, "a gcra callback may free the "
           "store; the decisions behind it are NULL, each once");
}

static void check_purge(redisContext *side)
{
    static const char *const keep[] = {"rsc:pb:1", "rsc:pa", "rsc:pa:x:1"};
    struct centry *e = sample_entry(16);
    struct side_wait w = {side, "KEYS %s", "rsc:pa:*"};
    struct got g;
    char key[64];
    size_t i;
    int n, r;

    for (n = 0; n < 2500; n++) {
        snprintf(key, sizeof(key), "rsc:pa:%d", n);
        store_set(st, key, strlen(key), e, 60000);
    }
    store_set(st, "rsc:pb:1", 8, e, 60000);
    store_set(st, "rsc:pa", 6, e, 60000);
    store_set(st, "rsc:p*:1", 8, e, 60000);
    store_set(st, "rsc:pa:x:1", 10, e, 60000);
    r = get_wait("rsc:pa:x:1", &g); /* after every set, on one connection */
    free(g.enc);
    tap_ok(r == STORE_HIT && side_int(side, "KEYS %s", "rsc:pa:*") == 2501,
           "2501 keys under rsc:pa: are stored");

    st->ops->purge(st, "rsc:p*:");
    w.arg = "rsc:p\\*:*";
    tap_ok(run_until(side_zero, &w, 5000),
           "purge of a prefix with glob characters drops that key");
    tap_ok(side_int(side, "KEYS %s", "rsc:pa:*") == 2501,
           "and takes the characters literally (rsc:pa:* untouched)");

    st->ops->purge(st, "rsc:pa:");
    w.arg = "rsc:pa:*";
    tap_ok(run_until(side_zero, &w, 5000),
           "purge of rsc:pa: drops all 2501 keys (several SCAN steps)");
    for (i = 0; i < 2; i++) {
        r = get_wait(keep[i], &g);
        tap_ok(r == STORE_HIT, "%s, outside the prefix, is kept", keep[i]);
        free(g.enc);
    }
    r = get_wait(keep[2], &g);
    tap_is_str(res_name(r), "MISS", "rsc:pa:x:1 was dropped with it");

    st->ops->purge(st, "");
    w.cmd = "DBSIZE";
    tap_ok(run_until(side_zero, &w, 5000), "purge of \"\" drops every key");
    centry_decref(e);
}

static void check_shedding(void)
{
    struct gres gr;
    struct tally t = {0};
    struct want_calls w = {&t, 10005};
    struct got g;
    int i, at_once;

    get_wait("rsc:t:none", &g);  /* every earlier reply is in */
    for (i = 0; i < 10005; i++)
        store_get(st, "rsc:t:none", 10, GEN_T, tally_cb, &t);
    at_once = t.calls;
    tap_ok(at_once == 5 && t.res[STORE_ERROR] == 5,
           "with 10000 commands in flight, more gets are ERROR at once "
           "(%d)", at_once);
    gcra_start(st, "rsc:rl:shed", PERIOD_10, 5, &gr);
    tap_ok(gr.calls == 1 && !gr.decided,
           "and a rate-limit decision is NULL at once");
    run_until(tally_done, &w, 10000);
    tap_ok(t.calls == 10005 && t.res[STORE_MISS] == 10000,
           "the 10000 in flight are answered, each once (%d MISS)",
           t.res[STORE_MISS]);
}

static void check_free_pending(void)
{
    struct tally t = {0};
    struct lres l[20];
    struct gres gr[20];
    int i, leases_ok = 1, gcras_ok = 1, losses = rec1.losses;

    for (i = 0; i < 50; i++)
        store_get(st, "rsc:t:none", 10, GEN_T, tally_cb, &t);
    for (i = 0; i < 20; i++)
        lease_start(st, "rsc:lease:pending", 1000, &l[i]);
    for (i = 0; i < 20; i++)
        gcra_start(st, "rsc:rl:pending", PERIOD_10, 5, &gr[i]);
    tap_ok(t.calls == 0 && l[0].calls == 0 && gr[0].calls == 0,
           "50 gets, 20 leases and 20 decisions are in flight");
    st->ops->free(st);
    st = NULL;
    tap_ok(t.calls == 50 && t.res[STORE_ERROR] == 50,
           "store free answers each pending get once, with ERROR (%d)",
           t.calls);
    for (i = 0; i < 20; i++)
        leases_ok &= l[i].calls == 1 && l[i].got == -1;
    tap_ok(leases_ok, "and each pending lease once, with -1");
    for (i = 0; i < 20; i++)
        gcras_ok &= gr[i].calls == 1 && !gr[i].decided;
    tap_ok(gcras_ok, "and each pending decision once, with NULL");
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (i = 0; i < 20; i++)
        leases_ok &= l[i].calls == 1, gcras_ok &= gr[i].calls == 1;
    tap_ok(t.calls == 50 && leases_ok && gcras_ok,
           "and nothing answers them again");
    tap_ok(rec1.losses == losses, "its subscription is closed without a "
           "loss report");
    tap_ok(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
                                               EVENT_BASE_COUNT_ACTIVE) == 0,
           "the store left no event on the base");
}

struct freer {
    struct store *s;
    struct tally t;
};

static void free_in_cb(void *arg, enum store_res res, struct centry *e,
                       const struct gens *g)
{
    struct freer *f = arg;

    tally_cb(&f->t, res, e, g);
    f->s->ops->free(f->s);
}

static void check_free_in_callback(const char *url)
{
    struct freer f = {0};
    struct tally t = {0};
    struct store *keep = st;
    int i;

    st = f.s = open_store(url);
    run_until(state_is, "ok", 5000);
    store_get(f.s, "rsc:t:none", 10, GEN_T, free_in_cb, &f);
    for (i = 0; i < 3; i++)
        store_get(f.s, "rsc:t:none", 10, GEN_T, tally_cb, &t);
    st = keep;
    run_for(100);
    tap_ok(f.t.calls == 1 && f.t.res[STORE_MISS] == 1 && t.calls == 3 &&
               t.res[STORE_ERROR] == 3,
           "a get callback may free the store; the gets behind it are "
           "ERROR, each once");
}

static int mode_normal(const char *url)
{
    redisContext *side;
    struct store *st2;
    struct centry *e;
    struct got g;

    check_bad_urls();
    st = open_store(url);
    tap_ok(run_until(state_is, "ok", 5000), "the store connects");
    side = side_open(url);
    st2 = open_store(url);       /* another instance */
    tap_ok(wait_state(st2, "ok", 5000), "a second store connects");
    check_roundtrip();
    check_bad_values(side);
    check_gens(side);
    check_leases(side, st2);
    check_gcra(side, st2);
    check_pubsub(side, st2);
    st2->ops->free(st2);
    tap_ok(wait_numsub(side, 1, 2000) && rec2.losses == 1,
           "a store freed while subscribed closes its subscription "
           "without a loss report");
    check_purge(side);
    check_shedding();            /* while st is subscribed */
    check_free_in_callback(url);
    check_free_in_event_callbacks(url, side);
    check_free_in_lease_callback(url);
    check_free_in_gcra_callback(url);

    /* The harness checks that this landed in the database of the URL. */
    e = sample_entry(8);
    store_set(st, "t_store_redis:marker", 20, e, 60000);
    centry_decref(e);
    tap_is_str(res_name(get_wait("t_store_redis:marker", &g)), "HIT",
               "the marker key is written");
    free(g.enc);

    check_free_pending();
    tap_ok(wait_numsub(side, 0, 2000), "no subscriber is left");
    redisFree(side);
    rec_clear(&rec1);
    rec_clear(&rec2);
    return 0;
}

static int mode_pause(const char *url)
{
    struct centry *e = sample_entry(32);
    struct got g[5], late;
    struct lres l;
    struct gres gr;
    struct rec ev = {0}, *evp = &ev;
    redisContext *side;
    redisReply *rep;
    char ms[24], lname[64];
    int i, all_error = 1, r, losses;
    int64_t worst = 0, t0, took;

    snprintf(lname, sizeof(lname), "rsc:lease:pause:%ld", (long)getpid());
    st = open_store(url);
    tap_ok(run_until(state_is, "ok", 5000), "the store connects");
    store_set(st, "rsc:pause", 9, e, 60000);
    r = get_wait("rsc:pause", &g[0]);
    free(g[0].enc);
    tap_is_str(res_name(r), "HIT", "get works before the pause");
    side = side_open(url);
    st->ops->subscribe(st, rec_cb, &ev);
    tap_ok(subs_live(side, &evp, 1, 5000), "the subscription comes up");

    snprintf(ms, sizeof(ms), "%u", 5 * timeout_ms);
    rep = redisCommand(side, "CLIENT PAUSE %s ALL", ms);
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_STATUS,
           "redis is paused for %s ms", ms);
    freeReplyObject(rep);

    for (i = 0; i < 5; i++)
        get_start("rsc:pause", 9, &g[i]);
    lease_start(st, lname, 1000, &l);
    gcra_start(st, "rsc:rl:pause", PERIOD_10, 5, &gr);
    store_set(st, "rsc:pause2", 10, e, 60000);
    st->ops->gen_set(st, GEN_T, 1, 0, 60000);
    st->ops->publish(st, "paused", 6);
    for (i = 0; i < 5; i++) {
        run_until(got_done, &g[i], (int)timeout_ms + 2000);
        all_error &= g[i].calls == 1 && g[i].res == STORE_ERROR;
        if (got_ms(&g[i]) > worst)
            worst = got_ms(&g[i]);
    }
    tap_ok(all_error, "gets to a paused redis are ERROR");
    tap_ok(worst <= timeout_ms + 50, "within the deadline (%lld ms, "
           "deadline %u ms)", (long long)worst, timeout_ms);
    run_until(lres_done, &l, (int)timeout_ms + 2000);
    tap_ok(l.calls == 1 && l.got == -1 && lres_ms(&l) <= timeout_ms + 50,
           "a lease is -1 within the deadline too (%lld ms)",
           (long long)lres_ms(&l));
    run_until(gres_done, &gr, (int)timeout_ms + 2000);
    tap_ok(gr.calls == 1 && !gr.decided && gres_ms(&gr) <= timeout_ms + 50,
           "and a rate-limit decision NULL (%lld ms)",
           (long long)gres_ms(&gr));
    tap_is_str(st->ops->state(st), "down", "the store is down after it");
    get_start("rsc:pause", 9, &late);
    tap_ok(late.calls == 1 && late.res == STORE_ERROR,
           "while down a get is answered at once");
    lease_start(st, lname, 1000, &l);
    tap_ok(l.calls == 1 && l.got == -1, "and so is a lease, with -1");
    gcra_start(st, "rsc:rl:pause", PERIOD_10, 5, &gr);
    tap_ok(gr.calls == 1 && !gr.decided, "and a decision, with NULL");

    tap_ok(run_until(state_is, "ok", 5 * (int)timeout_ms + 8000),
           "the store reconnects once the pause ends");
    r = get_wait("rsc:pause", &late);
    free(late.enc);
    tap_is_str(res_name(r), "HIT", "and reads again");
    r = lease_wait(st, lname, 1000, &l);
    tap_ok(r == 1, "and takes leases again (%d)", r);
    st->ops->lease_release(st, lname);
    r = gcra_wait(st, "rsc:rl:pause", PERIOD_10, 5, &gr);
    tap_ok(r == 0 || r == 1, "and decides again (%d)", r);

    /* A connection the server closes: the gets on it fail, the store
     * comes back by itself; the subscription is another connection. */
    tap_ok(subs_live(side, &evp, 1, 15000), "the subscription is live");
    losses = ev.losses;
    get_start("rsc:pause", 9, &g[0]);
    rep = redisCommand(side, "CLIENT KILL TYPE normal SKIPME yes");
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
               rep->integer >= 1, "the server closes the store's connection");
    freeReplyObject(rep);
    run_until(got_done, &g[0], (int)timeout_ms + 2000);
    tap_ok(g[0].calls == 1 && g[0].res == STORE_ERROR,
           "a get on a connection the server closed is ERROR");
    tap_ok(run_until(state_is, "ok", 3000), "the store reconnects");
    r = get_wait("rsc:pause", &late);
    free(late.enc);
    tap_is_str(res_name(r), "HIT", "and reads again");
    tap_ok(subs_live(side, &evp, 1, 2000) && ev.losses == losses,
           "the subscription did not notice");

    /* A server that stops answering while the subscriber connection is
     * idle: the heartbeat notices. */
    snprintf(ms, sizeof(ms), "%d", HEARTBEAT_MS + 1000);
    t0 = mono_ms();
    rep = redisCommand(side, "CLIENT PAUSE %s ALL", ms);
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_STATUS,
           "redis is paused for %s ms", ms);
    freeReplyObject(rep);
    wait_int(&ev.losses, losses + 1, HEARTBEAT_MS + 1000);
    took = mono_ms() - t0;
    tap_ok(ev.losses == losses + 1 &&
               took <= HEARTBEAT_MS + (int)timeout_ms + 300,
           "the subscription's loss is reported within the heartbeat "
           "interval and its deadline (%lld ms)", (long long)took);
    run_for((int)(t0 + HEARTBEAT_MS + 1100 - mono_ms()));
    tap_ok(subs_live(side, &evp, 1, 15000),
           "the subscription comes back after the pause");
    tap_ok(ev.losses == losses + 1 && ev.bad_len == 0,
           "one report for that outage (%d)", ev.losses - losses);
    tap_is_str(st->ops->state(st), "ok", "the command connection, idle "
               "meanwhile, is ok");
    st->ops->free(st);
    redisFree(side);
    rec_clear(&ev);
    centry_decref(e);
    return 0;
}

static int mode_restart(const char *url)
{
    struct centry *e = sample_entry(32);
    struct rec ev = {0}, *evp = &ev;
    redisContext *side;
    struct got g;
    struct lres l;
    struct gres gr;
    int r;

    st = open_store(url);
    tap_ok(run_until(state_is, "ok", 5000), "the store connects");
    side = side_open(url);
    st->ops->subscribe(st, rec_cb, &ev);
    tap_ok(subs_live(side, &evp, 1, 5000), "the subscription comes up");
    redisFree(side);
    st->ops->gen_set(st, GEN_T, 1, 0, 60000);
    store_set(st, "rsc:restart", 11, e, 60000);
    r = get_wait("rsc:restart", &g);
    free(g.enc);
    tap_ok(r == STORE_HIT && g.gens.proj == 1, "an entry and a generation "
           "are stored");

    printf("# restart the server now\n");
    fflush(stdout);
    wait_int(&ev.losses, 1, 10000);
    tap_ok(ev.losses == 1 && ev.bad_len == 0, "the subscription's loss is "
           "reported when the server goes away");
    /* both connections see EOF, in either order; the reconnect backoff
     * (>= 100 ms) keeps "down" visible to this 2 ms poll */
    tap_ok(run_until(state_is, "down", 5000),
           "the command connection notices it too");
    tap_ok(run_until(state_is, "ok", 20000),
           "the store reconnects to the restarted server");
    side = side_open(url);
    tap_ok(subs_live(side, &evp, 1, 15000), "the subscription comes back: "
           "a publish is delivered again");
    tap_ok(ev.losses == 1, "one report for that outage (%d)", ev.losses);
    r = get_wait("rsc:restart", &g);
    tap_ok(r == STORE_MISS && g.gens.proj == 0 && g.gens.all == 0,
           "the server kept nothing: a MISS with the generations at 0");
    r = lease_wait(st, "rsc:lease:restart", 1000, &l);
    tap_ok(r == 1, "leases work again (%d)", r);
    r = gcra_wait(st, "rsc:rl:restart", PERIOD_10, 5, &gr);
    tap_ok(r == 1 && gr.r.remaining == 4, "rate-limit decisions work again "
           "on the restarted server, its script cache empty (%d, %lld)",
           r, (long long)gr.r.remaining);
    tap_ok(side_calls(side, "evalsha") == 1 && side_calls(side, "eval") == 1,
           "through EVALSHA answered NOSCRIPT and one EVAL");
    st->ops->free(st);
    redisFree(side);
    rec_clear(&ev);
    centry_decref(e);
    return 0;
}

static int mode_hang(const char *url)
{
    struct centry *e = sample_entry(32);
    struct got g;
    struct lres l;
    struct gres gr;
    struct rec ev = {0};
    int n = 0, errors = 0, lerrors = 0, gerrors = 0, was_ok = 0;
    int64_t worst = 0, lworst = 0, gworst = 0, t_sub, end = mono_ms() + 1500;

    st = open_store(url);
    t_sub = mono_us();
    st->ops->subscribe(st, rec_cb, &ev);
    st->ops->purge(st, "rsc:");
    while (mono_ms() < end) {
        get_start("rsc:hang", 8, &g);
        run_until(got_done, &g, (int)timeout_ms + 2000);
        n++;
        errors += g.calls == 1 && g.res == STORE_ERROR;
        if (got_ms(&g) > worst)
            worst = got_ms(&g);
        lease_start(st, "rsc:lease:hang", 1000, &l);
        run_until(lres_done, &l, (int)timeout_ms + 2000);
        lerrors += l.calls == 1 && l.got == -1;
        if (lres_ms(&l) > lworst)
            lworst = lres_ms(&l);
        gcra_start(st, "rsc:rl:hang", PERIOD_10, 5, &gr);
        run_until(gres_done, &gr, (int)timeout_ms + 2000);
        gerrors += gr.calls == 1 && !gr.decided;
        if (gres_ms(&gr) > gworst)
            gworst = gres_ms(&gr);
        store_set(st, "rsc:hang", 8, e, 1000);
        st->ops->gen_set(st, GEN_T, 1, 0, 60000);
        st->ops->publish(st, "hang", 4);
        st->ops->lease_renew(st, "rsc:lease:hang", 1000);
        st->ops->lease_release(st, "rsc:lease:hang");
        was_ok |= state_is("ok");
        run_for(100);
    }
    tap_ok(n > 5 && errors == n, "every get to a stopped redis is ERROR "
           "(%d of %d)", errors, n);
    tap_ok(worst <= timeout_ms + 50, "within %u ms + 50 ms (worst %lld ms)",
           timeout_ms, (long long)worst);
    tap_ok(lerrors == n && lworst <= timeout_ms + 50, "every lease is -1 "
           "(%d of %d), within the deadline (worst %lld ms)", lerrors, n,
           (long long)lworst);
    tap_ok(gerrors == n && gworst <= timeout_ms + 50, "every rate-limit "
           "decision is NULL (%d of %d), within the deadline (worst %lld ms)",
           gerrors, n, (long long)gworst);
    tap_ok(ev.losses == 1 && ev.bad_len == 0 &&
               (ev.first_loss_us - t_sub) / 1000 <= timeout_ms + 50,
           "the subscription is reported lost once (%d), within the "
           "handshake deadline (%lld ms)", ev.losses,
           (long long)((ev.first_loss_us - t_sub) / 1000));
    tap_ok(!was_ok, "the store never claims to be ok");
    tap_is_str(st->ops->state(st), "down", "it reports down");
    st->ops->free(st);
    rec_clear(&ev);
    centry_decref(e);
    return 0;
}

static int mode_down(const char *url)
{
    struct rusage r0, r1;
    struct got g;
    struct lres l;
    struct gres gr;
    struct rec ev = {0};
    int64_t cpu_us, t_sub;

    st = open_store(url);
    t_sub = mono_us();
    st->ops->subscribe(st, rec_cb, &ev);
    get_start("rsc:down", 8, &g);
    run_until(got_done, &g, 2000);
    tap_ok(g.calls == 1 && g.res == STORE_ERROR && got_ms(&g) <= 5,
           "a get right after start is ERROR at once (%lld ms)",
           (long long)got_ms(&g));
    lease_start(st, "rsc:lease:down", 1000, &l);
    tap_ok(l.calls == 1 && l.got == -1,
           "a lease right after start is -1 before lease() returns");
    gcra_start(st, "rsc:rl:down", PERIOD_10, 5, &gr);
    tap_ok(gr.calls == 1 && !gr.decided,
           "a decision right after start is NULL before gcra() returns");
    tap_ok(run_until(state_is, "down", (int)timeout_ms + 1000),
           "the store reports down");
    get_start("rsc:down", 8, &g);
    tap_ok(g.calls == 1 && g.res == STORE_ERROR,
           "a get while down is answered before store_get returns");
    lease_start(st, "rsc:lease:down", 1000, &l);
    tap_ok(l.calls == 1 && l.got == -1,
           "a lease while down is -1 before lease() returns");
    gcra_start(st, "rsc:rl:down", PERIOD_10, 5, &gr);
    tap_ok(gr.calls == 1 && !gr.decided,
           "a decision while down is NULL before gcra() returns");
    st->ops->gen_set(st, GEN_T, 1, 0, 60000);
    st->ops->publish(st, "down", 4);
    st->ops->lease_renew(st, "rsc:lease:down", 1000);
    st->ops->lease_release(st, "rsc:lease:down");
    wait_int(&ev.losses, 1, (int)timeout_ms + 1000);
    tap_ok(ev.losses == 1 && ev.bad_len == 0,
           "the subscription is reported lost (after %lld ms)",
           (long long)((ev.first_loss_us - t_sub) / 1000));

    getrusage(RUSAGE_SELF, &r0);
    run_for(1000);
    getrusage(RUSAGE_SELF, &r1);
    cpu_us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000LL +
             (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
             (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000LL +
             (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    tap_ok(cpu_us < 50000, "1 s of idle loop while down costs < 50 ms CPU "
           "(%lld us)", (long long)cpu_us);
    tap_is_str(st->ops->state(st), "down", "still down");
    tap_ok(ev.losses == 1, "the subscription's loss was reported once, "
           "not on every failed reconnect (%d)", ev.losses);
    st->ops->free(st);
    rec_clear(&ev);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url, *mode;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: %s URL normal|pause|restart|hang|down "
                "[TIMEOUT_MS]\n",
                argv[0]);
        return 2;
    }
    url = argv[1];
    mode = argv[2];
    if (argc > 3)
        timeout_ms = (unsigned)atoi(argv[3]);
    signal(SIGPIPE, SIG_IGN);    /* hiredis writes with write(2) */
    log_set_level(LOG_DEBUG);    /* the harness greps every line for secrets */
    base = event_base_new();

    if (strcmp(mode, "normal") == 0)
        rc = mode_normal(url);
    else if (strcmp(mode, "pause") == 0)
        rc = mode_pause(url);
    else if (strcmp(mode, "restart") == 0)
        rc = mode_restart(url);
    else if (strcmp(mode, "hang") == 0)
        rc = mode_hang(url);
    else if (strcmp(mode, "down") == 0)
        rc = mode_down(url);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    event_base_free(base);
    return rc ? rc : tap_done();
}
