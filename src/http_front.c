#include "http_front.h"

#include <ctype.h>
#include <pthread.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "cache.h"
#include "cache_key.h"
#include "cache_store.h"
#include "clients.h"
#include "clock.h"
#include "conf.h"
#include "config.h"
#include "accesslog.h"
#include "hs.h"
#include "workers.h"
#include "log.h"
#include "metrics.h"
#include "query_norm.h"
#include "ratelimit.h"
#include "upstream.h"
#include "util.h"

#define MAX_QUERY_PARAMS 256
#define MAX_RESPONSE (64u * 1024 * 1024)

/* One client request from arrival to its single reply. */
struct greq {
    struct gw *gw;
    struct greq *prev, *next;    /* gw->inflight */
    struct hs_req *req;
    int route;                   /* enum qn_route, or -1: pass-through */
    char *key;                   /* cache key (cached routes) */
    size_t klen;
    char *url;                   /* what goes upstream */
    char *project_id;
    char *canonical;             /* list routes: the canonical query */
    char *cred;                  /* list routes: the credential, a copy (a
                                    reload may free the key it came from
                                    while the cache still reads it) */
    struct up_xfer *xfer;
    int write_route;             /* a write that changes this route's lists, or -1 */
    const char *path, *query;    /* of req, valid while it lives */
    char label[256];             /* project label: budgets, holds */
    const char *xcache;          /* for the log: HIT, MISS, ... */
    int up_status;               /* of the upstream fetch behind the answer */
    int64_t up_us;
    int has_rl;                  /* rl holds the client budget's state */
    struct rl_result rl;
    struct rate rate;            /* the client budget that applied (a copy:
                                    a reload frees the configuration) */
    unsigned burst;
    char rid[72];
    int64_t t0_us;
    struct cache_barrier *barrier;   /* a write's answer held until its
                                        invalidations have gone out */
    int held_status;
    struct evbuffer *held_body;
    const struct conf *fast;     /* answered on a worker's thread, with this
                                    held configuration (not in gw->inflight) */
    int has_head_length;         /* a pass-through HEAD: the upstream's */
    uint64_t head_length;        /* Content-Length, which the answer states */
};

static uint64_t rid_seed, rid_counter;

static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Connection", "TE", "Trailer", "Trailers", "Transfer-Encoding",
    "Upgrade", "Content-Length", "Host", "Expect", NULL,
};

static int in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0)
            return 1;
    return 0;
}

/* Is name listed in a Connection header value (which makes it hop-by-hop)? */
static int named_by_connection(const char *name, const char *conn)
{
    size_t n = strlen(name);

    while (conn && *conn) {
        while (*conn == ' ' || *conn == ',' || *conn == '\t')
            conn++;
        if (strncasecmp(conn, name, n) == 0 &&
            (conn[n] == '\0' || conn[n] == ',' || conn[n] == ' ' || conn[n] == '\t'))
            return 1;
        conn = strchr(conn, ',');
    }
    return 0;
}

static void greq_free(struct greq *g)
{
    struct gw *gw = g->gw;

    if (g->fast == NULL) {
        if (g->prev)
            g->prev->next = g->next;
        else
            gw->inflight = g->next;
        if (g->next)
            g->next->prev = g->prev;
        gw->ninflight--;
    }
    free(g->key);
    free(g->url);
    free(g->project_id);
    free(g->canonical);
    free(g->cred);
    if (g->held_body)
        evbuffer_free(g->held_body);
    if (g->fast == NULL)
        free(g);                 /* a fast one lives on its worker's stack */
}

static void add_common_headers(struct greq *g)
{
    char v[96];

    hs_add_header(g->req, "X-Request-Id", g->rid);
    if (g->has_rl) {
        /* IETF httpapi ratelimit-headers draft: the client budget, stated
         * as its burst over the time the rate takes to refill it, so that
         * RateLimit's r (at most burst - 1) never exceeds q. The 1e-12
         * keeps a whole quotient (40 / 20/s) from rounding up a window. */
        double w = (double)g->burst * g->rate.window_s / g->rate.count;
        w = w <= 1 ? 1 : w > 1e15 ? 1e15 : ceil(w * (1 - 1e-12));
        snprintf(v, sizeof(v), "\"project\";q=%u;w=%.0f", g->burst, w);
        hs_add_header(g->req, "RateLimit-Policy", v);
        snprintf(v, sizeof(v), "\"project\";r=%lld;t=%lld", (long long)g->rl.remaining,
                 (long long)((g->rl.reset_ms + 999) / 1000));
        hs_add_header(g->req, "RateLimit", v);
    }
}

/* The access log line and the request metrics, for every answer (on any
 * thread: metrics lock, and the line is one fwrite). */
static void account(struct gw *gw, const struct conf *conf, const char *method,
                    const char *target, const char *peer, const struct greq *g, int status,
                    size_t bytes)
{
    const char *route = g == NULL ? "none" : g->route >= 0 ? qn_routes[g->route].name : "pass";
    char st[8];

    snprintf(st, sizeof(st), "%d", status);
    metrics_inc(gw->m.requests, 1, route, st, g && g->xcache ? g->xcache : "none");
    if (conf->access_log) {
        struct accesslog_entry e;

        accesslog_entry_init(&e);
        e.request_id = g ? g->rid : NULL;
        e.method = method;
        e.path = target;
        e.route = route;
        e.status = status;
        e.cache = g ? g->xcache : NULL;
        e.project = g && g->label[0] ? g->label : NULL;
        e.upstream_status = g ? g->up_status : 0;
        e.upstream_ms = g && g->up_status ? (double)g->up_us / 1000.0 : -1;
        e.duration_ms = g ? (double)(mono_us() - g->t0_us) / 1000.0 : 0;
        e.bytes = bytes;
        e.client = peer;
        accesslog_write(stderr, &e);
    }
}

/* Reply and free g: the one way a request ends. */
static void finish(struct greq *g, int status, struct evbuffer *body)
{
    size_t bytes = body ? evbuffer_get_length(body) : 0;

    add_common_headers(g);
    account(g->gw, g->fast ? g->fast : g->gw->conf, g->req->method_name, g->req->target,
            g->req->peer, g, status, bytes);
    if (g->fast)
        hs_send(g->req, status, body);   /* on the connection's own thread */
    else if (g->has_head_length)
        workers_send_head(g->gw->front, g->req, status, g->head_length);
    else
        workers_send(g->gw->front, g->req, status, body);
    greq_free(g);
}

static struct evbuffer *detail_body(const char *text)
{
    yajl_gen gen = yajl_gen_alloc(NULL);
    struct evbuffer *buf = evbuffer_new();
    const unsigned char *out;
    size_t len;

    if (gen == NULL || buf == NULL) {
        if (gen)
            yajl_gen_free(gen);
        return buf;
    }
    yajl_gen_map_open(gen);
    yajl_gen_string(gen, (const unsigned char *)"detail", 6);
    yajl_gen_string(gen, (const unsigned char *)text, strlen(text));
    yajl_gen_map_close(gen);
    yajl_gen_get_buf(gen, &out, &len);
    evbuffer_add(buf, out, len);
    yajl_gen_free(gen);
    return buf;
}

static void finish_json(struct greq *g, int status, struct evbuffer *buf)
{
    hs_add_header(g->req, "Content-Type", "application/json");
    finish(g, status, buf);
    if (buf)
        evbuffer_free(buf);
}

/* {"detail":"<text>"} with text escaped as JSON, for a request that never
 * became a struct greq. */
static void reply_detail(struct gw *gw, struct hs_req *req, int status, const char *text)
{
    struct evbuffer *buf = detail_body(text);
    size_t bytes = buf ? evbuffer_get_length(buf) : 0;

    hs_add_header(req, "Content-Type", "application/json");
    account(gw, gw->conf, req->method_name, req->target, req->peer, NULL, status, bytes);
    workers_send(gw->front, req, status, buf);
    if (buf)
        evbuffer_free(buf);
}

static void fail_greq(struct greq *g, int status, const char *text)
{
    finish_json(g, status, detail_body(text));
}

static void fail_upstream(struct greq *g, const struct up_resp *r)
{
    g->gw->upstream_errors++;
    g->up_status = r->err == UP_ETIMEOUT ? 504 : 502;
    g->up_us = r->elapsed_us;
    log_warn("upstream %s failed: %s (request %s)",
             g->route >= 0 ? qn_routes[g->route].name : "pass-through", r->errmsg, g->rid);
    if (r->err == UP_ETIMEOUT)
        fail_greq(g, 504, "Upstream timed out");
    else if (r->err == UP_EINVALID)
        fail_greq(g, 502, "Upstream sent an invalid answer");
    else
        fail_greq(g, 502, "Upstream unreachable");
}

static void set_rid(struct greq *g)
{
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
    snprintf(g->rid, sizeof(g->rid), "%016llx%08llx", (unsigned long long)rid_seed,
             (unsigned long long)__atomic_add_fetch(&rid_counter, 1, __ATOMIC_RELAXED));
}

static struct up_opts up_opts(const struct conf *c)
{
    struct up_opts o = {c->timeout_ms, c->connect_timeout_ms, MAX_RESPONSE, c->proxy};
    return o;
}

static char *join_url(const char *base, const char *path, const char *query)
{
    size_t n = strlen(base) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    char *url = malloc(n);

    if (url)
        snprintf(url, n, "%s%s%s%s", base, path, query && *query ? "?" : "",
                 query && *query ? query : "");
    return url;
}

/* The credential that decides whose answer this is: the injected key, or
 * the client's Authorization in pass-through mode. */
static const char *credential_in(const struct conf *c, const struct hs_req *req,
                                 const char *project_id, const char **key)
{
    *key = conf_api_key(c, project_id);
    if (*key)
        return *key;
    return hs_header(req, "Authorization");
}

static const char *credential(struct greq *g, const char **key)
{
    return credential_in(g->gw->conf, g->req, g->project_id, key);
}

/* The client budget a request of project_id with cred spends (its
 * project's, else the default): g->label, g->rate and g->burst set, its
 * key in rlkey, the burst returned. */
static unsigned client_budget(struct greq *g, const struct conf *c, const char *project_id,
                              const char *cred, char *rlkey, size_t n)
{
    const struct conf_project *p = conf_project(c, project_id);

    ck_project_label(project_id, cred, cred ? strlen(cred) : 0, g->label, sizeof(g->label));
    g->rate = p && p->has_rate ? p->rate : c->rate;
    snprintf(rlkey, n, "lcg:1:rl:c:%s", g->label);
    g->burst = p && p->has_burst ? p->burst : c->burst;
    return g->burst;
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

static void on_answer(void *arg, const struct answer *a)
{
    struct greq *g = arg;
    struct centry *e = a->e;
    struct evbuffer *buf;
    int64_t age = (wall_ms() - e->stored_ms) / 1000;
    char agebuf[24];
    int status = e->status;
    int not_modified = a->stored && status == 200 &&
                       etag_matches(hs_header(g->req, "If-None-Match"), e->etag);

    g->xcache = a->xcache;
    g->up_status = a->upstream_status;
    g->up_us = a->upstream_us;
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
        snprintf(agebuf, sizeof(agebuf), "%lld", (long long)(age < 0 ? 0 : age));
        hs_add_header(g->req, "Age", agebuf);
        hs_add_header(g->req, "ETag", e->etag);
    }
    hs_add_header(g->req, "X-Cache", a->xcache);
    hs_add_header(g->req, "Cache-Status", a->cache_status);
    if (not_modified) {
        finish(g, 304, NULL);
        return;
    }
    if ((buf = evbuffer_new()) == NULL) {
        fail_greq(g, 500, "Out of memory");
        return;
    }
    centry_incref(e);
    /* The body goes to the socket from the entry itself, not a copy. */
    if (evbuffer_add_reference(buf, e->body, e->body_len, unref_entry, e) != 0)
        centry_decref(e);
    finish(g, status, buf);
    evbuffer_free(buf);
}

static int has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    while (value && *value) {
        while (*value == ' ' || *value == '\t' || *value == ',')
            value++;
        if (strncasecmp(value, token, n) == 0 &&
            (value[n] == '\0' || value[n] == ',' || value[n] == ' ' || value[n] == '='))
            return 1;
        value = strchr(value, ',');
    }
    return 0;
}

/* Normalize the list query: 0, or -1 when it was answered (400/422). */
static int prepare_list(struct greq *g)
{
    struct qn_result qr;

    if (qn_normalize((enum qn_route)g->route, g->query, MAX_QUERY_PARAMS, &qr) != 0) {
        fail_greq(g, 500, "Out of memory");
        return -1;
    }
    if (qr.status != QN_OK) {
        /* The upstream's own 422 (or our 400), without asking it. */
        struct evbuffer *buf = evbuffer_new();
        if (buf)
            evbuffer_add(buf, qr.body, strlen(qr.body));
        finish_json(g, qr.status == QN_INVALID ? 422 : 400, buf);
        qn_result_free(&qr);
        return -1;
    }
    /* The request owns what the cache borrows until it is answered. */
    g->project_id = qr.project_id;
    g->canonical = qr.canonical;
    qr.project_id = qr.canonical = NULL;
    qn_result_free(&qr);
    return 0;
}

static void run_list(struct greq *g)
{
    struct list_query q;
    const char *key, *cred, *cc;

    cred = credential(g, &key);
    if (cred != NULL && (g->cred = strdup(cred)) == NULL) {
        fail_greq(g, 500, "Out of memory");
        return;
    }
    cc = hs_header(g->req, "Cache-Control");
    memset(&q, 0, sizeof(q));
    q.route = (enum qn_route)g->route;
    q.canonical = g->canonical;
    q.project_id = g->project_id;
    q.cred = g->cred;
    q.credlen = g->cred ? strlen(g->cred) : 0;
    q.injected = key != NULL;
    q.no_store = has_token(cc, "no-store");
    q.no_cache = has_token(cc, "no-cache") && !g->gw->conf->ignore_client_no_cache;
    q.rid = g->rid;
    cache_list(g->gw->cache, &q, on_answer, g);
}

/* ---- pass-through ---- */

/* The route whose lists a write to path changes, or -1. */
static int write_route(const char *path, enum hs_method m)
{
    int i;

    if (m != HS_POST && m != HS_PUT && m != HS_PATCH && m != HS_DELETE)
        return -1;
    for (i = 0; i < QN_NROUTES; i++) {
        size_t n = strlen(qn_routes[i].path);
        if (strncmp(path, qn_routes[i].path, n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return i;
    }
    return -1;
}

/* A successful write changes its project's lists: the project of the
 * request, and the one the answer names (a create without project_id). */
static void invalidate_after_write(struct greq *g, const struct up_resp *r)
{
    static const char *path[] = {"project_id", NULL};
    const char *key, *cred = credential(g, &key);
    size_t credlen = cred ? strlen(cred) : 0, len = evbuffer_get_length(r->body);
    char *copy;
    yajl_val root;

    cache_invalidate_project(g->gw->cache, cred, credlen, g->project_id);
    if (len == 0 || len > 1024 * 1024 || (copy = malloc(len + 1)) == NULL)
        return;
    memcpy(copy, evbuffer_pullup(r->body, (ev_ssize_t)len), len);
    copy[len] = '\0';
    root = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (root != NULL) {
        yajl_val v = yajl_tree_get(root, path, yajl_t_string);
        const char *named = v ? YAJL_GET_STRING(v) : NULL;
        if (named != NULL && (g->project_id == NULL || strcmp(g->project_id, named) != 0))
            cache_invalidate_project(g->gw->cache, cred, credlen, named);
        yajl_tree_free(root);
    }
}

static void on_invalidated(void *arg)
{
    struct greq *g = arg;

    finish(g, g->held_status, g->held_body);
}

/* A Content-Length value as curl gives it (trimmed): digits only. */
static int content_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;

    if (*v == '\0')
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

static void on_pass_upstream(void *arg, struct up_resp *r)
{
    struct greq *g = arg;
    const char *conn = NULL, *clen = NULL;
    size_t i;

    g->xfer = NULL;
    if (r->err != UP_OK) {
        fail_upstream(g, r);
        return;
    }
    g->up_status = (int)r->status;
    g->up_us = r->elapsed_us;
    if (r->status >= 200 && r->status < 300 && g->write_route >= 0) {
        invalidate_after_write(g, r);
        g->held_status = (int)r->status;
        if ((g->held_body = evbuffer_new()) == NULL) {
            fail_greq(g, 500, "Out of memory");
            return;
        }
        evbuffer_add_buffer(g->held_body, r->body);
    }
    if (r->status == 429)
        cache_upstream_said_429(g->gw->cache, g->label, r);
    for (i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, "Connection") == 0)
            conn = r->headers[i].value;
        else if (strcasecmp(r->headers[i].name, "Content-Length") == 0)
            clen = r->headers[i].value;
    }
    for (i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name;
        if (in_list(name, hop_by_hop) || named_by_connection(name, conn) ||
            strcasecmp(name, "X-Request-Id") == 0)
            continue;
        hs_add_header(g->req, name, r->headers[i].value);
    }
    if (g->held_body != NULL) {
        cache_barrier(g->gw->cache, &g->barrier, on_invalidated, g);
        return;
    }
    /* A HEAD answer says the length of the GET's body, as the upstream did. */
    if (g->req->method == HS_HEAD && clen && content_length(clen, &g->head_length) == 0)
        g->has_head_length = 1;
    finish(g, (int)r->status, r->body);
}

/* project_id of a raw query, decoded, for per-project keys; NULL if none. */
static char *query_project(const char *query)
{
    struct evkeyvalq params;
    const char *v;
    char *r = NULL;

    if (query == NULL || evhttp_parse_query_str(query, &params) != 0)
        return NULL;
    if ((v = evhttp_find_header(&params, "project_id")) != NULL)
        r = strdup(v);
    evhttp_clear_headers(&params);
    return r;
}

static void send_pass(struct greq *g)
{
    const char *path = g->path, *query = g->query;
    struct evbuffer *body = g->req->body;
    const char *method = g->req->method == HS_OTHER ? NULL : g->req->method_name;
    const char *conn = hs_header(g->req, "Connection"), *key;
    struct curl_slist *h = NULL;
    unsigned i;
    size_t blen = evbuffer_get_length(body);
    int has_ctype = 0;
    char bearer[4096 + 8];
    struct up_opts opts;

    if (method == NULL) {
        fail_greq(g, 405, "Method Not Allowed");
        return;
    }
    g->write_route = write_route(path, g->req->method);
    key = conf_api_key(g->gw->conf, g->project_id);
    if ((g->url = join_url(g->gw->conf->base_url, path, query)) == NULL)
        goto oom;
    for (i = 0; i < g->req->nheaders; i++) {
        const struct hs_header *kv = &g->req->headers[i];
        if (in_list(kv->name, hop_by_hop) || named_by_connection(kv->name, conn) ||
            strcasecmp(kv->name, "X-Request-Id") == 0 ||
            (key && strcasecmp(kv->name, "Authorization") == 0))
            continue;
        if (strcasecmp(kv->name, "Content-Type") == 0)
            has_ctype = 1;
        if ((h = up_header(h, kv->name, kv->value)) == NULL)
            goto oom;
    }
    if (key) {
        snprintf(bearer, sizeof(bearer), "Bearer %s", key);
        if ((h = up_header(h, "Authorization", bearer)) == NULL)
            goto oom;
    }
    /* curl would add its own defaults for these; the client's (or none) win. */
    if ((h = curl_slist_append(h, "Expect:")) == NULL ||
        (!has_ctype && (h = curl_slist_append(h, "Content-Type:")) == NULL) ||
        (h = up_header(h, "X-Request-Id", g->rid)) == NULL)
        goto oom;
    opts = up_opts(g->gw->conf);
    g->xfer = up_start(g->gw->up, method, g->url, h, evbuffer_pullup(body, -1), blen,
                       &opts, on_pass_upstream, g);
    if (g->xfer == NULL)
        fail_greq(g, 502, "Upstream request could not be started");
    return;
oom:
    fail_greq(g, 500, "Out of memory");
}

/* Dot segments and control bytes could make the upstream path differ from
 * the one lcgate routed on. */
static int path_safe(const char *path)
{
    size_t n = strlen(path);
    char *dec = evhttp_uridecode(path, 0, &n);
    const char *p;
    int ok = dec != NULL;

    for (p = dec; ok && p < dec + n; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            ok = 0;
    for (p = dec; ok && (p = strstr(p, "/.")) != NULL; p++)
        if (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0')))
            ok = 0;
    free(dec);
    return ok;
}

static void reply_429(struct greq *g, int64_t retry_after_ms)
{
    char v[32], detail[320];

    snprintf(v, sizeof(v), "%lld", (long long)((retry_after_ms + 999) / 1000));
    hs_add_header(g->req, "Retry-After", v);
    snprintf(v, sizeof(v), "%lld", (long long)retry_after_ms);
    hs_add_header(g->req, "retry-after-ms", v);
    snprintf(detail, sizeof(detail), "Rate limit exceeded for project %s",
             g->project_id ? g->project_id : "default");
    fail_greq(g, 429, detail);
}

static void on_pass_admitted(void *arg, int allowed, int64_t retry_after_ms)
{
    struct greq *g = arg;

    if (g->gw->stopping) {
        fail_greq(g, 503, "Shutting down");
    } else if (allowed) {
        send_pass(g);
    } else {
        metrics_inc(g->gw->m.rate_limited, 1, g->label, "upstream", NULL);
        reply_429(g, retry_after_ms);
    }
}

static void on_admitted(void *arg, const struct rl_result *r)
{
    struct greq *g = arg;

    g->rl = *r;
    g->has_rl = 1;
    if (g->gw->stopping) {
        fail_greq(g, 503, "Shutting down");
    } else if (!r->allowed) {
        g->gw->rate_limited++;
        metrics_inc(g->gw->m.rate_limited, 1, g->label, "client", NULL);
        reply_429(g, r->retry_after_ms);
    } else if (g->route >= 0) {
        run_list(g);
    } else {
        /* Sent upstream as it is: it spends the upstream budget too. */
        cache_upstream_admit(g->gw->cache, g->label, g->project_id, 0, on_pass_admitted, g);
    }
}

/* A project_id in a JSON request body also names the project it acts on. */
static char *body_project(struct greq *g)
{
    static const char *path[] = {"project_id", NULL};
    struct evbuffer *body = g->req->body;
    size_t len = evbuffer_get_length(body);
    char *copy, *r = NULL;
    yajl_val root, v;

    if (len == 0 || (copy = malloc(len + 1)) == NULL)
        return NULL;
    memcpy(copy, evbuffer_pullup(body, (ev_ssize_t)len), len);
    copy[len] = '\0';
    root = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (root && (v = yajl_tree_get(root, path, yajl_t_string)) != NULL) {
        const char *named = YAJL_GET_STRING(v);
        if (named != NULL)
            r = strdup(named);
    }
    yajl_tree_free(root);
    return r;
}

/* Client tokens: 0, or -1 when answered 401/403. */
static int authorize(struct greq *g)
{
    const struct conf *c = g->gw->conf;
    const struct conf_client *cl;
    char *in_body;
    int ok;

    if (c->nclients == 0)
        return 0;
    cl = client_find(c, hs_header(g->req, "Authorization"));
    if (cl == NULL) {
        hs_add_header(g->req, "WWW-Authenticate", "Bearer realm=\"lcgate\"");
        fail_greq(g, 401, "Missing or invalid client token");
        return -1;
    }
    ok = client_allows(cl, g->project_id);
    if (ok && g->route < 0 && (in_body = body_project(g)) != NULL) {
        ok = client_allows(cl, in_body);
        free(in_body);
    }
    if (!ok) {
        fail_greq(g, 403, "This client may not use this project");
        return -1;
    }
    return 0;
}

static void on_request(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    const char *path = req->path, *query = req->query;
    const char *key, *cred;
    struct greq *g;
    unsigned burst;
    char rlkey[300];

    __atomic_add_fetch(&gw->requests, 1, __ATOMIC_RELAXED);
    if (path == NULL || (strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0)) {
        reply_detail(gw, req, 404, "Not Found");
        return;
    }
    if (!path_safe(path)) {
        reply_detail(gw, req, 400, "Malformed request path");
        return;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        reply_detail(gw, req, 500, "Out of memory");
        return;
    }
    g->gw = gw;
    g->req = req;
    g->path = path;
    g->query = query;
    g->t0_us = mono_us();
    g->next = gw->inflight;
    if (gw->inflight)
        gw->inflight->prev = g;
    gw->inflight = g;
    gw->ninflight++;
    set_rid(g);
    g->route = req->method == HS_GET ? qn_route_by_path(path) : -1;
    if (g->route >= 0) {
        if (prepare_list(g) != 0)
            return;
    } else {
        g->project_id = query_project(query);
    }
    if (authorize(g) != 0)
        return;
    /* Every /api request spends its project's client budget, hits too. */
    cred = credential(g, &key);
    burst = client_budget(g, gw->conf, g->project_id, cred, rlkey, sizeof(rlkey));
    rl_take(gw->rl, rlkey, &g->rate, burst, on_admitted, g);
}

/* ---- fast path: on a worker's thread ---- */

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
    conf_free(old);
}

static void on_fast_rl(void *arg, const struct rl_result *r)
{
    *(struct rl_result *)arg = *r;
}

/* A worker asks before it hands a request to main: a GET of a list whose
 * fresh answer is in the (thread-safe) memory store is answered here and then, with the
 * same headers, budget, metrics and log line as on main. Everything else
 * (misses, stale answers, refusals, no-cache, Redis) goes to main. What it
 * shares is under locks of its own: the memory store, the rate limiter,
 * the metrics, the configuration (held). 1 if answered. */
static int on_fast(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    struct greq g;
    struct qn_result qr;
    struct conf *conf;
    const struct conf_client *cl;
    const char *key, *cred;
    struct list_query q;
    struct answer a;
    struct rl_result rl = {0};
    char status[128], rlkey[300];
    unsigned burst;
    int route, done = 0;
    int64_t t0 = mono_us();

    if (req->method != HS_GET || req->path == NULL || hs_header(req, "Cache-Control") ||
        (route = qn_route_by_path(req->path)) < 0)
        return 0;
    conf = conf_get(gw);
    if (qn_normalize((enum qn_route)route, req->query, MAX_QUERY_PARAMS, &qr) != 0) {
        conf_free(conf);
        return 0;
    }
    if (qr.status != QN_OK)
        goto out;
    if (conf->nclients > 0 &&
        ((cl = client_find(conf, hs_header(req, "Authorization"))) == NULL ||
         !client_allows(cl, qr.project_id)))
        goto out;
    cred = credential_in(conf, req, qr.project_id, &key);
    memset(&q, 0, sizeof(q));
    q.route = (enum qn_route)route;
    q.canonical = qr.canonical;
    q.project_id = qr.project_id;
    q.cred = cred;
    q.credlen = cred ? strlen(cred) : 0;
    q.injected = key != NULL;
    if (!cache_try_hit(gw->cache, conf, &q, &a, status, sizeof(status)))
        goto out;
    memset(&g, 0, sizeof(g));
    burst = client_budget(&g, conf, qr.project_id, cred, rlkey, sizeof(rlkey));
    /* The memory store's budgets are decided at once, locally. */
    rl_take(gw->rl, rlkey, &g.rate, burst, on_fast_rl, &rl);
    if (!rl.allowed) {
        centry_decref(a.e);      /* main answers the 429 (and counts it) */
        goto out;
    }
    g.gw = gw;
    g.req = req;
    g.route = route;
    g.write_route = -1;
    g.t0_us = t0;
    g.fast = conf;
    g.rl = rl;
    g.has_rl = 1;
    set_rid(&g);
    __atomic_add_fetch(&gw->requests, 1, __ATOMIC_RELAXED);
    on_answer(&g, &a);
    centry_decref(a.e);
    done = 1;
out:
    qn_result_free(&qr);
    conf_free(conf);
    return done;
}

/* Every answer hs makes by itself (a request it refuses) is counted and
 * logged like the others. */
static void on_reject(void *arg, int status, const char *method, const char *target,
                      const char *peer)
{
    struct gw *gw = arg;

    __atomic_add_fetch(&gw->requests, 1, __ATOMIC_RELAXED);
    account(gw, gw->conf, method, target, peer, NULL, status, 0);
}

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
    struct hs_limits lim;

    front_limits(gw->conf, &lim);
    pthread_mutex_init(&gw->conf_mu, NULL);
    if (util_random(&rid_seed, sizeof(rid_seed)) != 0) {
        snprintf(err, errlen, "cannot draw random bytes (getrandom): %s", strerror(errno));
        return -1;
    }
    /* Workers answer hits themselves only from a store that any thread may
     * read (the running store: a reload cannot change it). */
    gw->front = workers_new(gw->base, gw->conf->workers, &lim, on_request,
                            gw->store->ops->threadsafe ? on_fast : NULL, on_reject, gw);
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
    return gw->ninflight + (gw->front ? workers_queued(gw->front) : 0);
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
    while (gw->inflight) {
        struct greq *g = gw->inflight;
        if (g->xfer) {
            up_cancel(g->xfer);
            g->xfer = NULL;
        }
        cache_barrier_cancel(g->barrier);
        g->barrier = NULL;
        fail_greq(g, 503, "Shutting down");
    }
    workers_free(gw->front);
    gw->front = NULL;
}
