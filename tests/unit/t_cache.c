/* cache: single flight, stale-while-revalidate and stale-if-error at the
 * edges of their windows, generations, holds after an upstream 429 and
 * next-page prefetch, driven with the memory store, a fake upstream that
 * answers when the test says, and a fake clock. The Cache-Status values
 * are checked as the front end words them (cache_status.h). */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_int.h"
#include "cache_status.h"
#include "conf.h"
#include "paging.h"
#include "ratelimit.h"
#include "tap.h"

#define T0 1700000000000LL

static int64_t wall = T0, mono = 1000000;

static int64_t fake_now(void)
{
    return wall;
}

static int64_t fake_mono(void)
{
    return mono;
}

/* The fake upstream: every request is recorded and waits for answer(). */
struct fake_xfer {
    char url[512];
    up_done_cb cb;
    void *arg;
    int live;
};
static struct fake_xfer xfers[64];
static int nxfers;

static struct up_xfer *fake_start(struct up_client *c, const char *method, const char *url,
                                  struct curl_slist *headers, const void *body, size_t len,
                                  const struct up_opts *opts, up_done_cb cb, void *arg)
{
    struct fake_xfer *x = &xfers[nxfers++];

    snprintf(x->url, sizeof(x->url), "%s", url);
    x->cb = cb;
    x->arg = arg;
    x->live = 1;
    curl_slist_free_all(headers);
    return (struct up_xfer *)x;
}

static void fake_cancel(struct up_xfer *x)
{
    ((struct fake_xfer *)x)->live = 0;
}

static void respond(int i, enum up_err err, long status, const char *body,
                    struct up_header *hdrs, size_t nhdrs)
{
    struct up_resp r;

    memset(&r, 0, sizeof(r));
    r.err = err;
    r.errmsg = err ? "fake failure" : NULL;
    r.status = status;
    r.ctype = "application/json";
    r.headers = hdrs;
    r.nheaders = nhdrs;
    r.body = evbuffer_new();
    evbuffer_add(r.body, body, strlen(body));
    xfers[i].live = 0;
    xfers[i].cb(xfers[i].arg, &r);
    evbuffer_free(r.body);
}

static void answer(int i, long status, const char *body)
{
    respond(i, UP_OK, status, body, NULL, 0);
}

/* What each request was answered, as the front end would word it. */
struct got {
    int n;                       /* answers: must end at exactly 1 */
    int order;                   /* of the last answer, among all answers */
    int status;
    char xcache[8], cstatus[CS_STATUS_MAX], detail[CS_DETAIL_MAX], body[256];
};

static void on_done(void *arg, const struct answer *a)
{
    struct got *g = arg;
    static int answers;
    int retry;

    g->n++;
    g->order = ++answers;
    snprintf(g->xcache, sizeof(g->xcache), "%s", cs_xcache(a));
    cs_format(a, g->cstatus, sizeof(g->cstatus));
    g->detail[0] = g->body[0] = '\0';
    if (a->e == NULL) {
        g->status = cs_error(a, g->detail, sizeof(g->detail), &retry);
    } else {
        g->status = a->e->status;
        snprintf(g->body, sizeof(g->body), "%.*s", (int)a->e->body_len, a->e->body);
    }
}

static struct cache *c;
static struct conf *conf;
static struct store *st;

static void ask(struct got *g, enum qn_route r, const char *canonical, const char *project,
                int no_store)
{
    struct list_query q;

    memset(&q, 0, sizeof(q));
    memset(g, 0, sizeof(*g));
    q.route = r;
    q.canonical = canonical;
    q.project_id = project;
    q.cred = "k1";
    q.credlen = 2;
    q.injected = 1;
    q.no_store = no_store;
    q.rid = "rid-1";
    cache_list(c, &q, on_done, g);
}

static void list(struct got *g, const char *canonical, const char *project)
{
    ask(g, QN_V1_BATCH_JOBS, canonical, project, 0);
}

static const char *LIST = "{\"items\":[],\"total_size\":0}";

static void single_flight(void)
{
    struct got g[5];
    int i, all = 1;

    nxfers = 0;
    for (i = 0; i < 5; i++)
        list(&g[i], "limit=1", "pa");
    tap_ok(nxfers == 1, "five lookups of one key: one upstream request (%d)", nxfers);
    tap_ok(strstr(xfers[0].url, "/api/v1/beta/batch-processing?limit=1") != NULL,
           "the request is the list's (%s)", xfers[0].url);
    for (i = 0; i < 5; i++)
        all = all && g[i].n == 0;
    tap_ok(all, "nobody answered before the upstream");
    answer(0, 200, LIST);
    for (i = 0; i < 5; i++)
        all = all && g[i].n == 1 && strcmp(g[i].body, LIST) == 0 &&
              strcmp(g[i].xcache, "MISS") == 0;
    tap_ok(all, "all five answered once, with the body");
    for (i = 1; i < 5; i++)
        all = all && g[i].order == g[i - 1].order - 1;
    tap_ok(all, "the waiters answered the newest first");
    /* The first to ask started the fetch; the others joined it. */
    tap_is_str(g[0].cstatus, "lcgate; fwd=uri-miss; fwd-status=200; stored", "origin's status");
    tap_is_str(g[1].cstatus, "lcgate; fwd=uri-miss; collapsed", "the others collapsed");
    tap_ok(cache_stats(c)->collapsed == 4, "four collapsed");
    list(&g[0], "limit=1", "pa");
    tap_ok(g[0].n == 1 && nxfers == 1, "then a hit, no request");
    tap_is_str(g[0].cstatus, "lcgate; hit; ttl=10", "with the TTL left");
}

/* The entry of "limit=2" stored at wall, then the clock at age ms. */
static void stored_at_age(const char *canonical, int64_t age)
{
    struct got g;
    int i = nxfers;

    list(&g, canonical, "pa");
    answer(i, 200, LIST);
    wall += age;
}

static void stale_windows(void)
{
    struct got g;
    int i;

    /* ttl 10 s, stale_while_revalidate 5 s, stale_if_error 60 s */
    stored_at_age("limit=2", 9999);
    list(&g, "limit=2", "pa");
    tap_is_str(g.cstatus, "lcgate; hit; ttl=0", "1 ms before the TTL: a hit");
    wall += 1;
    i = nxfers;
    list(&g, "limit=2", "pa");
    tap_ok(g.n == 1 && strcmp(g.xcache, "STALE") == 0, "at the TTL: stale at once");
    tap_is_str(g.cstatus, "lcgate; hit; ttl=-0; detail=stale-while-revalidate", "its status");
    tap_ok(nxfers == i + 1, "and one refresh behind it");
    answer(i, 200, LIST);
    list(&g, "limit=2", "pa");
    tap_is_str(g.xcache, "HIT", "the refresh is stored");

    stored_at_age("limit=3", 14999);
    list(&g, "limit=3", "pa");
    tap_is_str(g.cstatus, "lcgate; hit; ttl=-5; detail=stale-while-revalidate",
               "1 ms before the end of stale-while-revalidate: stale");
    answer(nxfers - 1, 200, LIST);

    stored_at_age("limit=4", 15000);
    i = nxfers;
    list(&g, "limit=4", "pa");
    tap_ok(g.n == 0 && nxfers == i + 1, "past stale-while-revalidate: the client waits a fetch");
    answer(i, 503, "{\"detail\":\"down\"}");
    tap_ok(g.n == 1 && strcmp(g.xcache, "STALE") == 0, "which failed: the stale entry");
    tap_is_str(g.cstatus, "lcgate; fwd=stale; fwd-status=503; ttl=-5; detail=stale-if-error",
               "its status");

    stored_at_age("limit=5", 69999);
    i = nxfers;
    list(&g, "limit=5", "pa");
    respond(i, UP_ETIMEOUT, 0, "", NULL, 0);
    tap_is_str(g.cstatus, "lcgate; fwd=stale; fwd-status=504; ttl=-60; detail=stale-if-error",
               "1 ms before the end of stale-if-error: stale on a timeout");

    stored_at_age("limit=6", 70000);
    i = nxfers;
    list(&g, "limit=6", "pa");
    respond(i, UP_ETIMEOUT, 0, "", NULL, 0);
    tap_ok(g.n == 1 && g.status == 504 && strcmp(g.detail, "Upstream timed out") == 0,
           "past stale-if-error: the timeout (%d %s)", g.status, g.detail);
    tap_is_str(g.cstatus, "lcgate; fwd=uri-miss; fwd-status=504", "its status");

    i = nxfers;
    list(&g, "limit=7", "pa");
    answer(i, 404, "{\"detail\":\"no\"}");
    tap_ok(g.status == 404 && strcmp(g.body, "{\"detail\":\"no\"}") == 0,
           "the upstream's own error is passed on");
    list(&g, "limit=7", "pa");
    tap_ok(g.n == 0 && nxfers == i + 2, "and never stored");
    answer(i + 1, 200, LIST);
}

/* The decisions themselves, at the edges. */
static void judge(void)
{
    struct centry *e = centry_new(200, T0, "", 0, "{}", 2);
    int64_t ttl = 10000;

    tap_ok(cache_judge(conf, e, T0 + 9999, ttl, 0) == V_FRESH, "judge: fresh before the TTL");
    tap_ok(cache_judge(conf, e, T0 + 9999, ttl, 1) == V_FALLBACK, "judge: no-cache fetches");
    tap_ok(cache_judge(conf, e, T0 + 10000, ttl, 0) == V_REVALIDATE, "judge: SWR at the TTL");
    tap_ok(cache_judge(conf, e, T0 + 15000, ttl, 0) == V_FALLBACK, "judge: SIE past SWR");
    tap_ok(cache_judge(conf, e, T0 + 70000, ttl, 0) == V_MISS, "judge: a miss past SIE");
    tap_ok(cache_judge(conf, NULL, T0, ttl, 0) == V_MISS, "judge: no entry, a miss");
    centry_decref(e);
}

static void generations(void)
{
    struct got a, b;
    int i = nxfers;

    list(&a, "limit=8&project_id=pa", "pa");
    answer(i, 200, LIST);
    list(&b, "limit=8&project_id=pb", "pb");
    answer(i + 1, 200, LIST);
    cache_invalidate_project(c, "k1", 2, "pa");
    list(&a, "limit=8&project_id=pa", "pa");
    tap_ok(a.n == 0 && nxfers == i + 3, "a write to pa: its list is a miss");
    answer(i + 2, 200, LIST);
    list(&b, "limit=8&project_id=pb", "pb");
    tap_ok(b.n == 1 && strcmp(b.xcache, "HIT") == 0, "pb's is still a hit");
    cache_purge(c, NULL);
    list(&b, "limit=8&project_id=pb", "pb");
    tap_ok(b.n == 0 && nxfers == i + 4, "a purge of everything: a miss");
    answer(i + 3, 200, LIST);
}

static void holds(void)
{
    struct up_header h = {"Retry-After", "2"};
    struct got g;
    int i = nxfers;

    list(&g, "limit=14", "pc");
    answer(i, 200, LIST);
    wall += 20000;               /* past stale-while-revalidate */
    list(&g, "limit=9", "pc");
    respond(i + 1, UP_OK, 429, "{\"detail\":\"slow down\"}", &h, 1);
    tap_ok(g.status == 429, "the upstream's 429 is passed on");
    list(&g, "limit=10", "pc");
    tap_ok(g.n == 1 && nxfers == i + 2 && g.status == 429, "then pc is held: no request");
    tap_is_str(g.detail, "Rate limit exceeded for project pc", "its detail");
    tap_is_str(g.cstatus, "lcgate; fwd=uri-miss; fwd-status=429; detail=upstream-budget",
               "its status");
    list(&g, "limit=14", "pc");
    tap_is_str(g.cstatus, "lcgate; fwd=stale; fwd-status=429; ttl=-10; detail=upstream-budget",
               "held with a stale entry: the stale entry");
    mono += 2000;
    list(&g, "limit=10", "pc");
    tap_ok(g.n == 0 && nxfers == i + 3, "the hold ends when the upstream said");
    answer(i + 2, 200, LIST);
}

/* A client's no-cache fetches, and stores what it fetched. */
static void no_cache(void)
{
    struct list_query q;
    struct got g;
    int i = nxfers;

    list(&g, "limit=13", "pa");
    answer(i, 200, LIST);
    memset(&q, 0, sizeof(q));
    memset(&g, 0, sizeof(g));
    q.route = QN_V1_BATCH_JOBS;
    q.canonical = "limit=13";
    q.project_id = "pa";
    q.cred = "k1";
    q.credlen = 2;
    q.injected = 1;
    q.no_cache = 1;
    q.rid = "rid-2";
    cache_list(c, &q, on_done, &g);
    tap_ok(g.n == 0 && nxfers == i + 2, "no-cache on a fresh entry: a fetch");
    answer(i + 1, 200, LIST);
    tap_is_str(g.cstatus, "lcgate; fwd=request; fwd-status=200; stored", "its status");
}

static void prefetch_next(void)
{
    const char *p1 = "{\"items\":[1],\"next_page_token\":\"t2\"}";
    const char *p2 = "{\"items\":[2],\"next_page_token\":\"t3\"}";
    char *c2 = pg_next(QN_V2_BATCHES, "", p1, strlen(p1));
    struct got g;
    int i = nxfers;

    ask(&g, QN_V2_BATCHES, "", "pa", 0);
    answer(i, 200, p1);
    tap_ok(nxfers == i + 2 && strstr(xfers[i + 1].url, "page_token=t2") != NULL,
           "a page fetched: the next one is prefetched (%s)", xfers[i + 1].url);
    answer(i + 1, 200, p2);
    tap_ok(nxfers == i + 2, "nobody asked for it yet: no further prefetch");
    ask(&g, QN_V2_BATCHES, c2, "pa", 0);
    tap_ok(g.n == 1 && strcmp(g.xcache, "HIT") == 0, "the next page is a hit");
    tap_ok(nxfers == i + 3 && strstr(xfers[i + 2].url, "page_token=t3") != NULL,
           "which prefetches the one after it");
    answer(i + 2, 200, LIST);
    free(c2);
}

static void no_store_and_stop(void)
{
    struct got a, b;
    int i = nxfers;

    ask(&a, QN_V1_BATCH_JOBS, "limit=11", "pa", 1);
    ask(&b, QN_V1_BATCH_JOBS, "limit=11", "pa", 1);
    tap_ok(nxfers == i + 2, "no-store fetches are never shared");
    answer(i, 200, LIST);
    tap_is_str(a.cstatus, "lcgate; fwd=bypass; fwd-status=200", "nor stored");
    tap_is_str(a.xcache, "BYPASS", "BYPASS");
    list(&a, "limit=12", "pa");
    cache_stop(c);
    tap_ok(a.n == 1 && a.status == 503 && xfers[i + 2].live == 0 && b.n == 1 &&
           b.status == 503, "cache_stop answers every waiter 503 and cancels the fetches");
    tap_is_str(a.detail, "Shutting down", "its detail");
}

int main(void)
{
    char path[] = "/tmp/t_cache.XXXXXX", err[256];
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct ratelimiter *rl;
    struct cache_deps d;

    fputs("[upstream]\nbase_url = http://upstream.test\n"
          "[cache]\nttl = 10s\nstale_while_revalidate = 5s\nstale_if_error = 60s\n"
          "prefetch = on\n"
          "[ratelimit]\nupstream_rate = 1000/s\nupstream_burst = 1000\n", f);
    fclose(f);
    conf = conf_load(path, err, sizeof(err));
    unlink(path);
    if (!tap_ok(conf != NULL, "configuration (%s)", err))
        return tap_done();
    st = store_memory_new(1 << 20);
    rl = rl_new(st, 1000);
    memset(&d, 0, sizeof(d));
    d.store = st;
    d.rl = rl;
    d.conf = &conf;
    d.up_start = fake_start;
    d.up_cancel = fake_cancel;
    d.now = fake_now;
    d.mono = fake_mono;
    c = cache_new(&d);
    single_flight();
    stale_windows();
    judge();
    generations();
    holds();
    no_cache();
    prefetch_next();
    no_store_and_stop();
    st->ops->free(st);
    rl_free(rl);
    cache_free(c);
    conf_free(conf);
    return tap_done();
}
