/* redis_store_check: the Redis store (src/store_redis.c) against a live
 * redis-server, TAP on stdout.
 *
 *   redis_store_check URL MODE [TIMEOUT_MS]
 *
 * MODE is one of
 *   normal  Redis is up and its database is the test's to clear: URL
 *           parsing, round trips, misses, expiry, undecodable values,
 *           purge, shedding, store free with gets in flight and from a
 *           get callback.
 *   pause   Redis is up; once connected the test pauses it (CLIENT PAUSE):
 *           gets fail within their deadline, the store is down, then it
 *           reconnects; then the server closes the connection (CLIENT
 *           KILL) and the store reconnects again.
 *   hang    Redis was SIGSTOPped before the start: every get fails within
 *           TIMEOUT_MS + 50 ms and the program finishes.
 *   down    nothing answers at URL (or AUTH fails): gets fail at once and
 *           the idle process does not spin.
 * tests/integration/store_redis.py starts redis-server and runs them all. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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
    int64_t t0_us, t1_us;
};

static void got_cb(void *arg, enum store_res res, struct centry *e)
{
    struct got *g = arg;

    g->calls++;
    g->res = res;
    g->t1_us = mono_us();
    if (e != NULL)
        g->enc = centry_encode(e, &g->enc_len);
}

static int got_done(void *arg)
{
    return ((struct got *)arg)->calls > 0;
}

static void get_start(const char *key, size_t klen, struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->t0_us = mono_us();
    store_get(st, key, klen, got_cb, g);
}

/* -1 when no answer came at all. */
static int get_wait(const char *key, struct got *g)
{
    get_start(key, strlen(key), g);
    run_until(got_done, g, (int)timeout_ms + 2000);
    return g->calls == 1 ? (int)g->res : -1;
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

static void tally_cb(void *arg, enum store_res res, struct centry *e)
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
    struct store *s = store_redis_new(base, url, timeout_ms, err, sizeof(err));

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

static void check_bad_urls(void)
{
    static const char *const bad[] = {
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:s3cret@",
        "redis://:s3cret@127.0.0.1:0",
        "redis://:s3cret@127.0.0.1:65536",
        "redis://:s3cret@127.0.0.1:63a9",
        "redis://:s3cret@127.0.0.1/abc",
        "redis://:s3cret@127.0.0.1/1/2",
        "redis://:s3cret@127.0.0.1?db=1",
        "redis://:s3cret%zz@127.0.0.1",
        "redis://:s3cret@[::1",
        "rediss://:s3cret@127.0.0.1",
        "unix://relative.sock",
        "unix://:s3cret@/",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?password=s3cret",
        "unix:///tmp/0123456789012345678901234567890123456789012345678901"
        "234567890123456789012345678901234567890123456789.sock",
    };
    static const char *const good[] = {
        "redis://127.0.0.1:1",
        "redis://:s3cret@127.0.0.1:1/3",
        "redis://user:s3cr%40t@localhost:1/",
        "redis://[::1]:1/2",
        "unix:///nonexistent/r.sock?db=3",
        "unix://:s3cret@/nonexistent/r.sock",
    };
    char err[256];
    struct store *s;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(err, "");
        s = store_redis_new(base, bad[i], timeout_ms, err, sizeof(err));
        tap_ok(s == NULL && err[0] != '\0' && strstr(err, "s3cret") == NULL,
               "invalid url %zu is refused with a message that does not "
               "quote the password (%s)", i, err);
        if (s != NULL)
            s->ops->free(s);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s = store_redis_new(base, good[i], timeout_ms, err, sizeof(err));
        tap_ok(s != NULL, "valid url %zu is accepted", i);
        if (s != NULL) {
            tap_ok(strcmp(s->ops->state(s), "ok") != 0,
                   "with its server unreachable, the store says %s",
                   s->ops->state(s));
            s->ops->free(s);
        }
    }
    s = store_redis_new(base, "redis://127.0.0.1:1", 0, err, sizeof(err));
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
    tap_is_str(res_name(r), "ERROR", "a key of another type is ERROR");
    tap_is_str(st->ops->state(st), "ok", "bad values keep the connection");
    store_set(st, "rsc:t:after", 11, e, 10000);
    r = get_wait("rsc:t:after", &g);
    tap_is_str(res_name(r), "HIT", "and the store still works");
    free(g.enc);
    centry_decref(e);
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
    struct tally t = {0};
    struct want_calls w = {&t, 10005};
    struct got g;
    int i, at_once;

    get_wait("rsc:t:none", &g);  /* every earlier reply is in */
    for (i = 0; i < 10005; i++)
        store_get(st, "rsc:t:none", 10, tally_cb, &t);
    at_once = t.calls;
    tap_ok(at_once == 5 && t.res[STORE_ERROR] == 5,
           "with 10000 commands in flight, more gets are ERROR at once "
           "(%d)", at_once);
    run_until(tally_done, &w, 10000);
    tap_ok(t.calls == 10005 && t.res[STORE_MISS] == 10000,
           "the 10000 in flight are answered, each once (%d MISS)",
           t.res[STORE_MISS]);
}

static void check_free_pending(void)
{
    struct tally t = {0};
    int i;

    for (i = 0; i < 50; i++)
        store_get(st, "rsc:t:none", 10, tally_cb, &t);
    tap_ok(t.calls == 0, "50 gets are in flight");
    st->ops->free(st);
    st = NULL;
    tap_ok(t.calls == 50 && t.res[STORE_ERROR] == 50,
           "store free answers each pending get once, with ERROR (%d)",
           t.calls);
    event_base_loop(base, EVLOOP_NONBLOCK);
    tap_ok(t.calls == 50, "and nothing answers them again");
    tap_ok(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
                                               EVENT_BASE_COUNT_ACTIVE) == 0,
           "the store left no event on the base");
}

struct freer {
    struct store *s;
    struct tally t;
};

static void free_in_cb(void *arg, enum store_res res, struct centry *e)
{
    struct freer *f = arg;

    tally_cb(&f->t, res, e);
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
    store_get(f.s, "rsc:t:none", 10, free_in_cb, &f);
    for (i = 0; i < 3; i++)
        store_get(f.s, "rsc:t:none", 10, tally_cb, &t);
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
    struct centry *e;
    struct got g;

    check_bad_urls();
    st = open_store(url);
    tap_ok(run_until(state_is, "ok", 5000), "the store connects");
    side = side_open(url);
    check_roundtrip();
    check_bad_values(side);
    check_purge(side);
    check_shedding();
    check_free_in_callback(url);

    /* The harness checks that this landed in the database of the URL. */
    e = sample_entry(8);
    store_set(st, "redis_store_check:marker", 24, e, 60000);
    centry_decref(e);
    tap_is_str(res_name(get_wait("redis_store_check:marker", &g)), "HIT",
               "the marker key is written");
    free(g.enc);

    check_free_pending();
    redisFree(side);
    return 0;
}

static int mode_pause(const char *url)
{
    struct centry *e = sample_entry(32);
    struct got g[5], late;
    redisContext *side;
    char ms[24];
    int i, all_error = 1, r;
    int64_t worst = 0;

    st = open_store(url);
    tap_ok(run_until(state_is, "ok", 5000), "the store connects");
    store_set(st, "rsc:pause", 9, e, 60000);
    r = get_wait("rsc:pause", &g[0]);
    free(g[0].enc);
    tap_is_str(res_name(r), "HIT", "get works before the pause");

    side = side_open(url);
    snprintf(ms, sizeof(ms), "%u", 5 * timeout_ms);
    redisReply *rep = redisCommand(side, "CLIENT PAUSE %s ALL", ms);
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_STATUS,
           "redis is paused for %s ms", ms);
    freeReplyObject(rep);
    redisFree(side);

    for (i = 0; i < 5; i++)
        get_start("rsc:pause", 9, &g[i]);
    store_set(st, "rsc:pause2", 10, e, 60000);
    for (i = 0; i < 5; i++) {
        run_until(got_done, &g[i], (int)timeout_ms + 2000);
        all_error &= g[i].calls == 1 && g[i].res == STORE_ERROR;
        if (got_ms(&g[i]) > worst)
            worst = got_ms(&g[i]);
    }
    tap_ok(all_error, "gets to a paused redis are ERROR");
    tap_ok(worst <= timeout_ms + 50, "within the deadline (%lld ms, "
           "deadline %u ms)", (long long)worst, timeout_ms);
    tap_is_str(st->ops->state(st), "down", "the store is down after it");
    get_start("rsc:pause", 9, &late);
    tap_ok(late.calls == 1 && late.res == STORE_ERROR,
           "while down a get is answered at once");

    tap_ok(run_until(state_is, "ok", 5 * (int)timeout_ms + 8000),
           "the store reconnects once the pause ends");
    r = get_wait("rsc:pause", &late);
    free(late.enc);
    tap_is_str(res_name(r), "HIT", "and reads again");

    /* A connection the server closes: the gets on it fail, the store
     * comes back by itself. */
    get_start("rsc:pause", 9, &g[0]);
    side = side_open(url);
    rep = redisCommand(side, "CLIENT KILL TYPE normal SKIPME yes");
    tap_ok(rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
               rep->integer >= 1, "the server closes the store's connection");
    freeReplyObject(rep);
    redisFree(side);
    run_until(got_done, &g[0], (int)timeout_ms + 2000);
    tap_ok(g[0].calls == 1 && g[0].res == STORE_ERROR,
           "a get on a connection the server closed is ERROR");
    tap_ok(run_until(state_is, "ok", 3000), "the store reconnects");
    r = get_wait("rsc:pause", &late);
    free(late.enc);
    tap_is_str(res_name(r), "HIT", "and reads again");
    st->ops->free(st);
    centry_decref(e);
    return 0;
}

static int mode_hang(const char *url)
{
    struct centry *e = sample_entry(32);
    struct got g;
    int n = 0, errors = 0, was_ok = 0;
    int64_t worst = 0, end = mono_ms() + 1500;

    st = open_store(url);
    st->ops->purge(st, "rsc:");
    while (mono_ms() < end) {
        get_start("rsc:hang", 8, &g);
        run_until(got_done, &g, (int)timeout_ms + 2000);
        n++;
        errors += g.calls == 1 && g.res == STORE_ERROR;
        if (got_ms(&g) > worst)
            worst = got_ms(&g);
        store_set(st, "rsc:hang", 8, e, 1000);
        was_ok |= state_is("ok");
        run_for(100);
    }
    tap_ok(n > 5 && errors == n, "every get to a stopped redis is ERROR "
           "(%d of %d)", errors, n);
    tap_ok(worst <= timeout_ms + 50, "within %u ms + 50 ms (worst %lld ms)",
           timeout_ms, (long long)worst);
    tap_ok(!was_ok, "the store never claims to be ok");
    tap_is_str(st->ops->state(st), "down", "it reports down");
    st->ops->free(st);
    centry_decref(e);
    return 0;
}

static int mode_down(const char *url)
{
    struct rusage r0, r1;
    struct got g;
    int64_t cpu_us;

    st = open_store(url);
    get_start("rsc:down", 8, &g);
    run_until(got_done, &g, 2000);
    tap_ok(g.calls == 1 && g.res == STORE_ERROR && got_ms(&g) <= 5,
           "a get right after start is ERROR at once (%lld ms)",
           (long long)got_ms(&g));
    tap_ok(run_until(state_is, "down", (int)timeout_ms + 1000),
           "the store reports down");
    get_start("rsc:down", 8, &g);
    tap_ok(g.calls == 1 && g.res == STORE_ERROR,
           "a get while down is answered before store_get returns");

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
    st->ops->free(st);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url, *mode;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: %s URL normal|pause|hang|down [TIMEOUT_MS]\n",
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
