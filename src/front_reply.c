/* front_reply: how the front end answers: the common headers, the access
 * log line and metrics of every answer, JSON details and refusals, and the
 * cache's answers (Cache-Status, ETag, Age, 304). */
#include <assert.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "admin.h"
#include "alog.h"
#include "cache_status.h"
#include "clock.h"
#include "conf.h"
#include "front_int.h"
#include "gw.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"
#include "util.h"
#include "workers.h"

static uint64_t rid_seed, rid_counter;

int greq_rid_init(void)
{
    return util_random(&rid_seed, sizeof(rid_seed));
}

void greq_free(struct greq *g)
{
    struct gw *gw = g->gw;

    if (g->fast == NULL) {
        assert(gw->ninflight > 0);
        list_unlink(&g->node);
        gw->ninflight--;
        gw->memory.used -= g->held_bytes;
    }
    free(g->dpath);
    rr_query_free(&g->q);
    free(g->project);
    free(g->url);
    free(g->canonical);
    free(g->cred);
    free(g->client);
    if (g->held_body)
        evbuffer_free(g->held_body);
    g->magic = 0;
    if (g->local != NULL) {      /* a worker took it: it owns g */
        centry_decref(g->hit.e);
        conf_free((struct conf *)g->fast);
        __atomic_sub_fetch(&gw->fast_pending, 1, __ATOMIC_RELEASE);
        free(g);
    } else if (g->fast == NULL) {
        free(g);                 /* else it lives on its worker's stack */
    }
}

/* IETF httpapi ratelimit-headers draft: a policy states the burst over the
 * time the bucket takes to fill, so that "remaining" never exceeds it. */
static void policy_item(struct sbuf *b, const char *name, const struct rate *rate,
                        unsigned burst)
{
    double per_s = rate->count / (double)(rate->window_s ? rate->window_s : 1);
    double w = per_s > 0 ? ceil((double)burst / per_s) : 1;
    unsigned long long ws = w < 1 ? 1 : w > 1e12 ? 1000000000000ULL : (unsigned long long)w;

    sb_put(b, "\"", 1);
    sb_str(b, name);
    sb_put(b, "\";q=", 4);
    sb_u64(b, burst);
    sb_put(b, ";w=", 3);
    sb_u64(b, ws);
}

/* What is left of a budget, and in how many seconds it is full again. */
static void limit_item(struct sbuf *b, const char *name, const struct rl_result *r)
{
    sb_put(b, "\"", 1);
    sb_str(b, name);
    sb_put(b, "\";r=", 4);
    sb_i64(b, r->remaining);
    sb_put(b, ";t=", 3);
    sb_i64(b, (r->reset_ms + 999) / 1000);
}

static void add_common_headers(struct greq *g)
{
    char pol[200], lim[200];
    struct sbuf p = sb_init(pol, sizeof(pol)), l = sb_init(lim, sizeof(lim));
    int client = g->client_taken;

    hs_add_header(g->req, "X-Request-Id", g->rid);
    if (!g->has_rl && !client)
        return;
    if (g->has_rl) {
        policy_item(&p, "project", &g->rate, g->burst);
        limit_item(&l, "project", &g->rl);
    }
    if (client) {
        if (g->has_rl) {
            sb_put(&p, ", ", 2);
            sb_put(&l, ", ", 2);
        }
        policy_item(&p, "client", &g->client_rate, g->client_burst);
        limit_item(&l, "client", &g->client_rl);
    }
    sb_len(&p);
    sb_len(&l);
    hs_add_header(g->req, "RateLimit-Policy", pol);
    hs_add_header(g->req, "RateLimit", lim);
}

/* The access log line and the request metrics, for every answer (on any
 * thread: metrics lock, and the line goes to the thread's own buffer).
 * client: the [client] name when there is no g. */
void front_account(struct gw *gw, const struct conf *conf, const struct hs_req *req,
                    const struct greq *g, const char *client, int r, int status, size_t bytes)
{
    const char *route;

    if (g != NULL)
        r = g->route;
    route = r >= 0 ? qn_routes[r].name : g != NULL || r == -1 ? "pass" : "none";
    const char *cache = g && g->xcache ? g->xcache : "none";
    int64_t took_us = g ? mono_us() - g->t0_us : 0;     /* one clock read */

    admin_observe_request(gw, route, status, cache, (double)took_us / 1e6);
    if (conf->access_log) {
        struct accesslog_entry e;

        accesslog_entry_init(&e);
        e.request_id = g ? g->rid : NULL;
        e.method = req->method_name;
        e.path = req->target;
        e.route = route;
        e.status = status;
        e.cache = g ? g->xcache : NULL;
        e.project = g && g->label[0] ? g->label : NULL;
        e.upstream_status = g ? g->up_status : 0;
        e.upstream_ms = g && g->up_status ? (double)g->up_us / 1000.0 : -1;
        e.duration_ms = (double)took_us / 1000.0;
        e.bytes = bytes;
        e.client = req->peer;
        e.client_name = g ? g->client : client;
        e.user_agent = hs_header(req, "User-Agent");
        e.bytes_received = req->body ? (int64_t)evbuffer_get_length(req->body) : -1;
        e.protocol = req->minor == 0 ? "HTTP/1.0" : req->minor == 1 ? "HTTP/1.1" : NULL;
        e.detail = g ? g->detail : NULL;
        alog_line(&e);
    }
}

/* Reply and free g: the one way a request ends. */
void greq_finish(struct greq *g, int status, struct evbuffer *body)
{
    size_t bytes = body ? evbuffer_get_length(body) : 0;

    assert(g->magic == GREQ_MAGIC && !g->answered);
    g->answered = 1;
    add_common_headers(g);
    front_account(g->gw, g->fast ? g->fast : g->gw->conf, g->req, g, NULL, 0, status, bytes);
    if (g->fast)
        hs_send(g->req, status, body);   /* on the connection's own thread */
    else if (g->has_head_length)
        workers_send_head(g->gw->front, g->req, status, g->head_length);
    else
        workers_send(g->gw->front, g->req, status, body);
    greq_free(g);
}

struct evbuffer *front_detail_body(const char *text)
{
    struct evbuffer *buf = evbuffer_new();
    struct evbuffer_iovec v;

    if (buf == NULL)
        return NULL;
    if (evbuffer_reserve_space(buf, (ev_ssize_t)UTIL_JSON_DETAIL_CAP(strlen(text)), &v, 1) != 1) {
        evbuffer_free(buf);
        return NULL;
    }
    v.iov_len = util_json_detail(v.iov_base, v.iov_len, text);
    evbuffer_commit_space(buf, &v, 1);
    return buf;
}

void greq_finish_json(struct greq *g, int status, struct evbuffer *buf)
{
    hs_add_header(g->req, "Content-Type", "application/json");
    greq_finish(g, status, buf);
    if (buf)
        evbuffer_free(buf);
}

/* {"detail":"<text>"} with text escaped as JSON, for a request that never
 * became a struct greq; route: its list route, -1 pass-through, -2 none;
 * client: the [client] it authenticated as, or NULL. */
static void reply_route_detail(struct gw *gw, struct hs_req *req, int route, int status,
                               const char *text, const char *client)
{
    struct evbuffer *buf = front_detail_body(text);
    size_t bytes = buf ? evbuffer_get_length(buf) : 0;

    hs_add_header(req, "Content-Type", "application/json");
    front_account(gw, gw->conf, req, NULL, client, route, status, bytes);
    workers_send(gw->front, req, status, buf);
    if (buf)
        evbuffer_free(buf);
}

void reply_detail(struct gw *gw, struct hs_req *req, int status, const char *text)
{
    reply_route_detail(gw, req, -2, status, text, NULL);
}

void greq_fail(struct greq *g, int status, const char *text)
{
    greq_finish_json(g, status, front_detail_body(text));
}

void front_retry_headers(struct hs_req *req, int64_t retry_after_ms)
{
    char v[32];

    snprintf(v, sizeof(v), "%lld", (long long)((retry_after_ms + 999) / 1000));
    hs_add_header(req, "Retry-After", v);
    snprintf(v, sizeof(v), "%lld", (long long)retry_after_ms);
    hs_add_header(req, "retry-after-ms", v);
}

void greq_fail_upstream(struct greq *g, const struct up_resp *r)
{
    g->up_status = r->err == UP_ETIMEOUT ? 504 : r->err == UP_EBUSY ? 503 : 502;
    g->up_us = r->elapsed_us;
    log_warn("upstream %s failed: %s (request %s)",
             g->route >= 0 ? qn_routes[g->route].name : "pass-through", r->errmsg, g->rid);
    if (r->err == UP_ETIMEOUT) {
        greq_fail(g, 504, "Upstream timed out");
    } else if (r->err == UP_EBUSY) {
        front_retry_headers(g->req, 1000);
        greq_fail(g, 503, "Too many requests in flight");
    } else if (r->err == UP_EINVALID) {
        greq_fail(g, 502, "Upstream sent an invalid answer");
    } else {
        greq_fail(g, 502, "Upstream unreachable");
    }
}

void greq_set_rid(struct greq *g)
{
    struct sbuf sb;
    const char *in = hs_header(g->req, "X-Request-Id");
    size_t i, n = in ? strlen(in) : 0;

    /* A client's id is kept when it is a plain token, so logs correlate. */
    if (n > 0 && n < sizeof(g->rid)) {
        for (i = 0; i < n; i++)
            if (!isalnum((unsigned char)in[i]) && !strchr("-_.:", in[i]))
                break;
        if (i == n) {
            memcpy(g->rid, in, n + 1);
            return;
        }
    }
    sb = sb_init(g->rid, sizeof(g->rid));
    sb_hex(&sb, rid_seed, 16);
    sb_hex(&sb, __atomic_add_fetch(&rid_counter, 1, __ATOMIC_RELAXED), 8);
    sb_len(&sb);
}

/* Answer a request its reading refused. */
void refuse_reading(struct gw *gw, struct hs_req *req, struct reading *rd)
{
    if (rd->status == 422) {
        struct evbuffer *buf = evbuffer_new();
        if (buf)
            evbuffer_add(buf, rd->qr.body, strlen(rd->qr.body));
        hs_add_header(req, "Content-Type", "application/json");
        front_account(gw, gw->conf, req, NULL, rd->client ? rd->client->name : NULL, rd->route, 422,
                buf ? evbuffer_get_length(buf) : 0);
        workers_send(gw->front, req, 422, buf);
        if (buf)
            evbuffer_free(buf);
        return;
    }
    if (rd->status == 401)
        hs_add_header(req, "WWW-Authenticate", "Bearer realm=\"lcgate\"");
    /* Counted under the route it was read as: the doors, the path and the
     * query come before any route is known. */
    reply_route_detail(gw, req, rd->dpath != NULL && rd->q.params != NULL ? rd->route : -2,
                       rd->status, rd->why, rd->client ? rd->client->name : NULL);
}

static const struct {
    const char *metric, *detail;
} budgets[] = {
    [B_CLIENT] = {"client", "client-budget"},        /* the project's, for clients */
    [B_UPSTREAM] = {"upstream", "upstream-budget"},  /* the project's, upstream */
    [B_TOKEN] = {"token", "token-budget"},           /* the [client]'s own */
    [B_KEY] = {"key", "key-budget"},                 /* the upstream key's */
};

/* A 429 from one of the request's budgets: counted, and answered with its
 * wait and what refused it (the whole name: no truncated UTF-8). */
void refuse_budget(struct greq *g, enum budget b, int64_t retry_after_ms)
{
    const char *who = b == B_TOKEN ? g->client : g->project ? g->project : "default";
    size_t n = strlen(who) + 48;
    char *detail = malloc(n);

    metrics_inc(g->gw->m.rate_limited, 1, g->label, budgets[b].metric, NULL);
    g->detail = budgets[b].detail;
    front_retry_headers(g->req, retry_after_ms);
    if (b == B_KEY || detail == NULL) {
        greq_fail(g, 429, b == B_KEY ? "Rate limit exceeded for the upstream key"
                                     : "Rate limit exceeded");
    } else {
        snprintf(detail, n, "Rate limit exceeded for %s %s",
                 b == B_TOKEN ? "client" : "project", who);
        greq_fail(g, 429, detail);
    }
    free(detail);
}

/* ---- cached list routes ---- */

static void unref_entry(const void *data, size_t len, void *arg)
{
    centry_decref(arg);
}

/* Does an If-None-Match value name etag (or "*")? Weak comparison, as
 * RFC 9110 asks for If-None-Match. */
static int etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);

    while (inm && *inm) {
        while (*inm == ' ' || *inm == '\t' || *inm == ',')
            inm++;
        if (*inm == '*')
            return 1;
        if (strncmp(inm, "W/", 2) == 0)
            inm += 2;
        if (strncmp(inm, etag, n) == 0 &&
            (inm[n] == '\0' || inm[n] == ',' || inm[n] == ' ' || inm[n] == '\t'))
            return 1;
        inm = strchr(inm, ',');
    }
    return 0;
}

/* An answer the cache has no entry for: the error it names, in JSON. */
static void answer_error(struct greq *g, const struct answer *a, const char *cstatus)
{
    char detail[CS_DETAIL_MAX];
    int retry, status = cs_error(a, detail, sizeof(detail), &retry);
    struct evbuffer *buf;

    hs_add_header(g->req, "Content-Type", "application/json");
    if (retry)
        front_retry_headers(g->req, a->retry_after_ms);
    hs_add_header(g->req, "X-Cache", g->xcache);
    hs_add_header(g->req, "Cache-Status", cstatus);
    buf = front_detail_body(detail);
    greq_finish(g, status, buf);
    if (buf)
        evbuffer_free(buf);
}

void greq_answer(void *arg, const struct answer *a)
{
    struct greq *g = greq_of(arg);
    struct centry *e = a->e;
    struct evbuffer *buf;
    char agebuf[24], cstatus[CS_STATUS_MAX];
    int64_t age;
    int status, not_modified;

    g->xcache = cs_xcache(a);
    g->detail = cs_detail(a);
    g->up_status = a->upstream_status;
    g->up_us = a->upstream_us;
    cs_format(a, cstatus, sizeof(cstatus));
    if (e == NULL) {
        answer_error(g, a, cstatus);
        return;
    }
    age = (wall_ms() - e->stored_ms) / 1000;
    status = e->status;
    not_modified = a->stored && status == 200 &&
                   etag_matches(hs_header(g->req, "If-None-Match"), e->etag);
    if (e->ctype_len && !not_modified)
        hs_add_header(g->req, "Content-Type", e->ctype);
    if (e->extra_headers) {
        char *line = e->extra_headers, *nl, *colon;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if ((colon = strchr(line, ':')) != NULL) {
                *colon = '\0';
                hs_add_header(g->req, line, colon + 2);
                *colon = ':';
            }
            *nl = '\n';
            line = nl + 1;
        }
    }
    if (a->stored) {
        struct sbuf sb = sb_init(agebuf, sizeof(agebuf));
        sb_i64(&sb, age < 0 ? 0 : age);
        sb_len(&sb);
        hs_add_header(g->req, "Age", agebuf);
        hs_add_header(g->req, "ETag", e->etag);
    }
    hs_add_header(g->req, "X-Cache", g->xcache);
    hs_add_header(g->req, "Cache-Status", cstatus);
    if (not_modified) {
        greq_finish(g, 304, NULL);
        return;
    }
    if ((buf = evbuffer_new()) == NULL) {
        greq_fail(g, 500, "Out of memory");
        return;
    }
    centry_incref(e);
    /* The body goes to the socket from the entry itself, not a copy. */
    if (evbuffer_add_reference(buf, e->body, e->body_len, unref_entry, e) != 0)
        centry_decref(e);
    greq_finish(g, status, buf);
    evbuffer_free(buf);
}