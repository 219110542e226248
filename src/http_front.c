#include "http_front.h"

#include <errno.h>
#include <pthread.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store.h"
#include "clock.h"
#include "conf.h"
#include "doors.h"
#include "front_int.h"
#include "gw.h"
#include "http_parse.h"
#include "log.h"
#include "upstream.h"
#include "workers.h"

/* The pipeline. Every request goes through the same stages, in this order,
 * whether the main loop answers it (on_request) or a worker does by itself
 * (on_fast):
 *
 *   1. read_request  the one reading: doors, path, query, projects, client
 *                    (front_read.c); a refusal is answered there and then
 *   2. greq_begin    whom it is for: request id, credential, project label,
 *                    budgets
 *   3. spend         the client's own budget, then its project's (a 429
 *                    ends it)
 *   4. go            a list: the cache's answer; anything else: the
 *                    upstream budgets, then pass-through (front_pass.c)
 *
 * A worker keeps a request only when stage 4 is a fresh hit, looked up
 * between stages 2 and 3: in the memory store (any thread may read it; its
 * budgets are decided at once), or, with a shared store, through the
 * worker's own connection and L1 (cache_local_hit; its budgets through the
 * same connection). Everything else goes to main, which starts again from
 * stage 1. */

/* A worker's own, with a shared store: its connection to the store and its
 * view of the cache through it. */
struct front_worker {
    struct gw *gw;
    struct store *st;            /* the worker's connection (cl frees it) */
    struct cache_local *cl;
};

/* The budgets a request spends: its project's client budget (g->label,
 * g->rate, g->burst; its key in g->rlkey), and the client's own
 * (g->client_*; its key in g->clkey, "" when none). */
static void budgets_of(struct greq *g, const struct conf *c, const struct conf_client *cl,
                       const char *cred)
{
    const struct conf_project *p = conf_project(c, g->project);

    ck_project_label(g->project, cred, cred ? strlen(cred) : 0, g->label, sizeof(g->label));
    g->rate = p && p->has_rate ? p->rate : c->rate;
    g->burst = p && p->has_burst ? p->burst : c->burst;
    memcpy(g->rlkey, STORE_RL_CLIENT, sizeof(STORE_RL_CLIENT) - 1);
    memcpy(g->rlkey + sizeof(STORE_RL_CLIENT) - 1, g->label, strlen(g->label) + 1);
    g->clkey[0] = '\0';
    if (cl != NULL && cl->has_rate) {
        g->client_rate = cl->rate;
        g->client_burst = cl->burst;
        g->has_client_rl = 1;
        snprintf(g->clkey, sizeof(g->clkey), STORE_RL_TOKEN "%s", cl->name);
    }
}

/* Stage 2: g takes over what rd read, and learns whom it is for. -1 on
 * ENOMEM (the caller answers 500). */
static int greq_begin(struct greq *g, const struct conf *c, struct reading *rd)
{
    const char *key, *cred;

    g->magic = GREQ_MAGIC;
    greq_set_rid(g);
    g->route = rd->route;
    g->dpath = rd->dpath;
    g->q = rd->q;
    g->project = rd->project;
    g->canonical = rd->qr.canonical;
    rd->dpath = rd->project = rd->qr.canonical = NULL;
    memset(&rd->q, 0, sizeof(rd->q));
    g->write_route = write_route(g->dpath, g->req->method);
    g->read_only = g->req->method == HS_GET || g->req->method == HS_HEAD;
    cred = credential_in(c, g->req, g->project, &key);
    g->injected = key != NULL;
    if (cred != NULL && (g->cred = strdup(cred)) == NULL)
        return -1;
    ck_cred_tag(g->cred, g->cred ? strlen(g->cred) : 0, g->keytag);
    budgets_of(g, c, rd->client, g->cred);
    if (rd->client != NULL && (g->client = strdup(rd->client->name)) == NULL)
        return -1;
    return 0;
}

/* A list query as the cache reads it: g's reading, and the client's
 * Cache-Control under the configuration c. */
static void list_query_of(const struct greq *g, const struct conf *c, struct list_query *q)
{
    const char *cc = hs_header(g->req, "Cache-Control");

    memset(q, 0, sizeof(*q));
    q->route = (enum qn_route)g->route;
    q->canonical = g->canonical;
    q->project_id = g->project;
    q->cred = g->cred;
    q->credlen = g->cred ? strlen(g->cred) : 0;
    q->injected = g->injected;
    q->no_store = hp_list_has(cc, "no-store");
    q->no_cache = hp_list_has(cc, "no-cache") && !c->ignore_client_no_cache;
    q->rid = g->rid;
}

/* Is lcgate shutting down under g? (Main's requests only: a worker is
 * quiesced before the shared state goes.) */
static int stopping(const struct greq *g)
{
    return g->fast == NULL && g->gw->stopping;
}

/* Stage 4. */
static void go(struct greq *g)
{
    struct list_query q;

    if (g->fast_hit != NULL) {
        greq_answer(g, g->fast_hit);
    } else if (g->route >= 0) {
        list_query_of(g, g->gw->conf, &q);
        cache_list(g->gw->cache, &q, greq_answer, g);
    } else {
        pass_admit(g);
    }
}

static void take(struct greq *g, const char *key, const struct rate *rate, unsigned burst);

/* Stage 3: the client's own budget (when it has one), then the project's;
 * this is rl_take's answer for each. */
static void on_spent(void *arg, const struct rl_result *r)
{
    struct greq *g = greq_of(arg);
    int client = g->has_client_rl && !g->client_taken;     /* which one answered */

    if (client) {
        g->client_rl = *r;
        g->client_taken = 1;
    } else {
        g->rl = *r;
        g->has_rl = 1;
    }
    if (stopping(g))
        greq_fail(g, 503, "Shutting down");
    else if (!r->allowed)
        refuse_budget(g, client ? B_TOKEN : B_CLIENT, r->retry_after_ms);
    else if (client)
        take(g, g->rlkey, &g->rate, g->burst);
    else
        go(g);
}

/* Every request spends its client's budget and its project's, hits too;
 * a shared budget through its thread's own connection to the store. */
static void take(struct greq *g, const char *key, const struct rate *rate, unsigned burst)
{
    rl_take_via(g->gw->rl, g->local ? g->local->st : NULL, key, rate, burst, on_spent, g);
}

static void spend(struct greq *g)
{
    if (g->clkey[0] != '\0')
        take(g, g->clkey, &g->client_rate, g->client_burst);
    else
        take(g, g->rlkey, &g->rate, g->burst);
}

/* ---- on the main loop ---- */

/* Memory held by requests in flight, past its bound: refuse new ones. */
static int over_memory(struct gw *gw, const struct hs_req *req)
{
    const struct conf *c = gw->conf;

    return gw->ninflight >= c->max_inflight_requests ||
           gw->memory.used + evbuffer_get_length(req->body) > c->max_inflight_bytes;
}

/* A request of main's, in gw->inflight until it is answered. */
static struct greq *greq_new(struct gw *gw, struct hs_req *req)
{
    struct greq *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return NULL;
    g->gw = gw;
    g->req = req;
    g->t0_us = mono_us();
    list_push_back(&gw->inflight, &g->node);
    gw->ninflight++;
    g->held_bytes = evbuffer_get_length(req->body);
    gw->memory.used += g->held_bytes;
    return g;
}

static void on_request(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    struct reading rd;
    struct greq *g;

    read_request(gw->conf, req, &rd);
    if (rd.status != 0) {
        refuse_reading(gw, req, &rd);
        reading_free(&rd);
        return;
    }
    if (over_memory(gw, req)) {
        reading_free(&rd);
        front_retry_headers(req, 1000);
        reply_detail(gw, req, 503, "Too many requests in flight");
        return;
    }
    if ((g = greq_new(gw, req)) == NULL) {
        reading_free(&rd);
        reply_detail(gw, req, 500, "Out of memory");
        return;
    }
    if (greq_begin(g, gw->conf, &rd) != 0) {
        reading_free(&rd);
        greq_fail(g, 500, "Out of memory");
        return;
    }
    reading_free(&rd);
    spend(g);
}

/* ---- on a worker's thread ---- */

/* The configuration now, held (conf_free drops it): a reload on main may
 * replace gw->conf meanwhile. */
static struct conf *conf_get(struct gw *gw)
{
    struct conf *c;

    pthread_mutex_lock(&gw->conf_mu);
    c = gw->conf;
    conf_hold(c);
    pthread_mutex_unlock(&gw->conf_mu);
    return c;
}

void front_set_conf(struct gw *gw, struct conf *next)
{
    struct conf *old;

    pthread_mutex_lock(&gw->conf_mu);
    old = gw->conf;
    gw->conf = next;
    pthread_mutex_unlock(&gw->conf_mu);
    up_client_memory(gw->up, &gw->memory, next->max_inflight_bytes);
    conf_free(old);
}

/* Stages 1 and 2 on a worker's thread, into g (zeroed), with the
 * configuration held in g->fast: 0 when g is a list query a worker may
 * answer, else -1 (main reads the request again). */
static int fast_begin(struct greq *g, struct gw *gw, struct hs_req *req, int64_t t0_us)
{
    struct reading rd;
    int rc;

    g->gw = gw;
    g->req = req;
    g->t0_us = t0_us;
    g->fast = conf_get(gw);
    read_request(g->fast, req, &rd);
    rc = -1;
    if (rd.status == 0 && rd.route >= 0)
        rc = greq_begin(g, g->fast, &rd);
    reading_free(&rd);
    return rc;
}

/* A worker asks before it hands a request to main: a GET of a list whose
 * fresh answer is in the (thread-safe) memory store goes through the
 * pipeline here, with the same stages as on main; so do its 429s.
 * Everything else (misses, stale answers, refusals, no-cache) goes to
 * main. What it shares is under locks of its own: the memory store, the
 * rate limiter, the metrics, the configuration (held). 1 if answered. */
static int fast_memory(struct gw *gw, struct hs_req *req)
{
    struct greq g;
    struct list_query q;
    struct answer a;
    int64_t t0 = mono_us();
    int answered = 0;

    memset(&g, 0, sizeof(g));
    if (fast_begin(&g, gw, req, t0) == 0) {
        list_query_of(&g, g.fast, &q);
        answered = cache_try_hit(gw->cache, g.fast, &q, &a);
    }
    if (answered) {
        g.fast_hit = &a;
        spend(&g);
        /* The memory store's budgets answer at once: g is answered. */
        assert(g.answered);
        centry_decref(a.e);
    } else {
        greq_free(&g);
    }
    conf_free((struct conf *)g.fast);    /* g, on this stack, does not */
    return answered;
}

/* The cache's answer to a request a worker took (cache_local_hit): a hit
 * goes on to its budgets here, anything else to main. */
static void on_local(void *arg, const struct answer *a)
{
    struct greq *g = greq_of(arg);

    if (a->e == NULL) {
        workers_hand_over(g->worker, g->req);    /* before g goes: it counts */
        greq_free(g);
        return;
    }
    g->hit = *a;
    centry_incref(g->hit.e);
    g->fast_hit = &g->hit;
    spend(g);
}

/* The same with a shared store, through the worker's own connection: the
 * request is read and begun here, and waits on this thread for the store
 * (and for its budgets). g owns its held configuration. */
static int fast_shared(struct front_worker *fw, struct worker *w, struct hs_req *req)
{
    struct list_query q;
    struct greq *g;
    int64_t t0 = mono_us();

    if ((g = calloc(1, sizeof(*g))) == NULL)
        return 0;
    g->worker = w;
    g->local = fw;               /* g owns itself and its conf from here */
    __atomic_add_fetch(&fw->gw->fast_pending, 1, __ATOMIC_RELAXED);
    if (fast_begin(g, fw->gw, req, t0) != 0) {
        greq_free(g);
        return 0;
    }
    list_query_of(g, g->fast, &q);
    cache_local_hit(fw->cl, g->fast, &q, on_local, g);
    return 1;
}

/* workers_fast.take: 1 if this worker took req. */
static int fast_take(struct hs_req *req, void *arg, struct worker *w, void *local)
{
    struct gw *gw = arg;

    if (req->method != HS_GET || req->path == NULL || hs_header(req, "Cache-Control"))
        return 0;
    if (local != NULL)
        return fast_shared(local, w, req);
    return gw->store->ops->threadsafe && fast_memory(gw, req);
}

/* workers_fast.start: with a shared store, the worker's own connection to
 * it (the running store's: a reload cannot change it); without one, or if
 * it cannot be had, the worker hands such requests to main. */
static void *fast_start(void *arg, struct event_base *base)
{
    struct gw *gw = arg;
    struct front_worker *fw;
    struct conf *conf;
    char err[512] = "out of memory";

    if (gw->store->ops->threadsafe || gw->store_open == NULL)
        return NULL;
    conf = conf_get(gw);
    if ((fw = calloc(1, sizeof(*fw))) != NULL) {
        fw->gw = gw;
        fw->st = gw->store_open(conf, base, err, sizeof(err));
        /* Its L1 has its share of memory_max. */
        if (fw->st != NULL &&
            (fw->cl = cache_local_new(gw->cache, fw->st, conf->memory_max / conf->workers)) ==
                NULL) {
            fw->st->ops->free(fw->st);
            fw->st = NULL;
        }
    }
    conf_free(conf);
    if (fw == NULL || fw->cl == NULL) {
        log_error("no connection of this worker's own to the store (%s): the main loop "
                  "answers all its requests", err);
        free(fw);
        return NULL;
    }
    return fw;
}

/* workers_fast.stop: the lookups and budgets in flight are answered (the
 * store's free answers them) before the connection goes. */
static void fast_stop(void *arg, void *local)
{
    struct front_worker *fw = local;

    if (fw == NULL)
        return;
    cache_local_free(fw->cl);
    free(fw);
}

/* Every answer hs makes by itself (a request it refuses) is counted and
 * logged like the others. */
static void on_reject(void *arg, int status, const char *method, const char *target,
                      const char *peer)
{
    struct gw *gw = arg;
    /* What is known of it: no fields, no body, no version (minor -1). */
    struct hs_req req = {.method_name = method, .target = target, .peer = peer, .minor = -1};

    front_account(gw, gw->conf, &req, NULL, NULL, -2, status, 0);
}

/* ---- the listener ---- */

void front_limits(const struct conf *c, struct hs_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->max_request_line = c->max_request_line;
    lim->max_head = c->max_header_size;
    lim->max_body = c->max_body;
    lim->max_connections = c->max_connections;
    lim->header_timeout_ms = (unsigned)c->header_timeout_ms;
    lim->idle_timeout_ms = (unsigned)c->idle_timeout_ms;
}

int front_start(struct gw *gw, char *err, size_t errlen)
{
    static const struct workers_fast fast = {fast_take, fast_start, fast_stop};
    struct hs_limits lim;

    if (greq_rid_init() != 0) {
        snprintf(err, errlen, "cannot read random bytes (getrandom): %s", strerror(errno));
        return -1;
    }
    front_local = door_local(gw->conf->listen);
    front_limits(gw->conf, &lim);
    list_init(&gw->inflight);
    pthread_mutex_init(&gw->conf_mu, NULL);
    up_client_memory(gw->up, &gw->memory, gw->conf->max_inflight_bytes);
    if ((gw->gone_timer = evtimer_new(gw->base, front_gone_poll, gw)) == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server: out of memory");
        return -1;
    }
    gw->front = workers_new(gw->base, gw->conf->workers, &lim, on_request, &fast, on_reject,
                            gw);
    if (gw->front == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server: out of memory");
        return -1;
    }
    if (workers_listen(gw->front, gw->conf->listen, err, errlen) != 0) {
        workers_free(gw->front);
        gw->front = NULL;
        return -1;
    }
    return 0;
}

void front_reload(struct gw *gw)
{
    struct hs_limits lim;

    front_limits(gw->conf, &lim);
    if (gw->front)
        workers_set_limits(gw->front, &lim);
}

size_t front_pending(const struct gw *gw)
{
    return gw->ninflight + (gw->front ? workers_queued(gw->front) : 0) +
           __atomic_load_n(&gw->fast_pending, __ATOMIC_ACQUIRE);
}

void front_quiesce(struct gw *gw)
{
    if (gw->front)
        workers_quiesce(gw->front);
}

void front_close_listeners(struct gw *gw)
{
    gw->draining = 1;
    if (gw->front)
        workers_close_listeners(gw->front);
}

void front_free(struct gw *gw)
{
    struct list *p;

    while (gw->inflight.next != NULL && (p = list_first(&gw->inflight)) != NULL) {
        struct greq *g = list_entry(p, struct greq, node);
        if (g->xfer) {
            up_cancel(g->xfer);
            g->xfer = NULL;
        }
        cache_barrier_cancel(g->barrier);
        g->barrier = NULL;
        greq_fail(g, 503, "Shutting down");
    }
    workers_free(gw->front);
    gw->front = NULL;
    if (gw->gone_timer)
        event_free(gw->gone_timer);
    gw->gone_timer = NULL;
}
