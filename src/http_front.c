#include "http_front.h"

#include <ctype.h>
#include <pthread.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>

#include "cache.h"
#include "cache_key.h"
#include "cache_status.h"
#include "cache_store.h"
#include "clients.h"
#include "clock.h"
#include "conf.h"
#include "config.h"
#include "accesslog.h"
#include "alog.h"
#include "doors.h"
#include "gw.h"
#include "hs.h"
#include "http_parse.h"
#include "workers.h"
#include "log.h"
#include "metrics.h"
#include "admin.h"
#include "query_norm.h"
#include "ratelimit.h"
#include "request_read.h"
#include "upstream.h"
#include "util.h"

#define MAX_QUERY_PARAMS 256
#define GONE_POLL_MS 50          /* how often reads of gone clients are looked for */

/* A request read once (request_read.h), and what that reading decided:
 * every later step uses these, never the raw bytes again. */
struct reading {
    int status;                  /* 0: go on; else the answer (detail in why,
                                    or the upstream's own 422 in qr.body) */
    const char *why;
    char *dpath;                 /* the decoded path */
    struct rr_query q;           /* the query */
    int route;                   /* enum qn_route, or -1: pass-through */
    struct qn_result qr;         /* list routes: the canonical query */
    char *project;               /* the canonical project acted on, or NULL
                                    (the key's default) */
    const struct conf_client *client;
};

/* One client request from arrival to its single reply. */
struct greq {
    struct gw *gw;
    struct greq *prev, *next;    /* gw->inflight */
    struct hs_req *req;
    int route;                   /* enum qn_route, or -1: pass-through */
    char *dpath;                 /* decoded path */
    struct rr_query q;           /* its query, read once */
    char *project;               /* canonical project acted on, or NULL */
    char *canonical;             /* list routes: the canonical query */
    char *cred;                  /* the credential, a copy (a reload may free
                                    the key it came from while the cache
                                    still reads it) */
    int injected;                /* cred is lcgate's key */
    char keytag[CK_TAG_LEN + 1]; /* the credential's tag: the key's budget */
    char *url;                   /* what goes upstream */
    struct up_xfer *xfer;
    int write_route;             /* a write that changes this route's lists, or -1 */
    int read_only;               /* GET or HEAD: cancelled when the client goes */
    char label[CK_LABEL_MAX];    /* project label: budgets, holds, logs */
    char rlkey[CK_LABEL_MAX + 16];   /* its client budget's key */
    const char *xcache;          /* for the log: HIT, MISS, ... */
    const char *detail;          /* for the log: why stale or refused */
    int up_status;               /* of the upstream fetch behind the answer */
    int64_t up_us;
    int has_rl;                  /* rl holds the project budget's state */
    struct rl_result rl;
    struct rate rate;            /* the budgets that applied (copies: a
                                    reload frees the configuration) */
    unsigned burst;
    char *client;                /* the [client] name, a copy, or NULL */
    int has_client_rl;           /* the client's own budget applies */
    int client_taken;            /* and client_rl holds its decision */
    struct rl_result client_rl;
    struct rate client_rate;
    unsigned client_burst;
    size_t held_bytes;           /* of gw->memory, for the request body */
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

static void gw_pass_reads(struct gw *gw, int delta);

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

static void reading_free(struct reading *rd)
{
    free(rd->dpath);
    rr_query_free(&rd->q);
    qn_result_free(&rd->qr);
    free(rd->project);
    rd->dpath = rd->project = NULL;
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
    if (g->fast == NULL)
        free(g);                 /* a fast one lives on its worker's stack */
}

/* IETF httpapi ratelimit-headers draft: a policy states the burst over the
 * time the bucket takes to fill, so that "remaining" never exceeds it. */
static void policy_item(char *out, size_t n, const char *name, const struct rate *rate,
                        unsigned burst)
{
    double per_s = rate->count / (double)(rate->window_s ? rate->window_s : 1);
    double w = per_s > 0 ? ceil((double)burst / per_s) : 1;
    unsigned long long ws = w < 1 ? 1 : w > 1e12 ? 1000000000000ULL : (unsigned long long)w;

    snprintf(out, n, "\"%s\";q=%u;w=%llu", name, burst, ws);
}

static void add_common_headers(struct greq *g)
{
    char p[96], c[96], pr[64], cr[64], v[200];
    int client = g->client_taken;

    hs_add_header(g->req, "X-Request-Id", g->rid);
    if (!g->has_rl && !client)
        return;
    if (g->has_rl) {
        policy_item(p, sizeof(p), "project", &g->rate, g->burst);
        snprintf(pr, sizeof(pr), "\"project\";r=%lld;t=%lld", (long long)g->rl.remaining,
                 (long long)((g->rl.reset_ms + 999) / 1000));
    }
    if (client) {
        policy_item(c, sizeof(c), "client", &g->client_rate, g->client_burst);
        snprintf(cr, sizeof(cr), "\"client\";r=%lld;t=%lld", (long long)g->client_rl.remaining,
                 (long long)((g->client_rl.reset_ms + 999) / 1000));
    }
    if (g->has_rl && client) {
        snprintf(v, sizeof(v), "%s, %s", p, c);
        hs_add_header(g->req, "RateLimit-Policy", v);
        snprintf(v, sizeof(v), "%s, %s", pr, cr);
        hs_add_header(g->req, "RateLimit", v);
    } else {
        hs_add_header(g->req, "RateLimit-Policy", g->has_rl ? p : c);
        hs_add_header(g->req, "RateLimit", g->has_rl ? pr : cr);
    }
}

/* The access log line and the request metrics, for every answer (on any
 * thread: metrics lock, and the line goes to the thread's own buffer).
 * client: the [client] name when there is no g. */
static void account(struct gw *gw, const struct conf *conf, const struct hs_req *req,
                    const struct greq *g, const char *client, int r, int status, size_t bytes)
{
    const char *route;

    if (g != NULL)
        r = g->route;
    route = r >= 0 ? qn_routes[r].name : g != NULL || r == -1 ? "pass" : "none";
    const char *cache = g && g->xcache ? g->xcache : "none";

    admin_observe_request(gw, route, status, cache,
                          g ? (double)(mono_us() - g->t0_us) / 1e6 : 0);
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
        e.duration_ms = g ? (double)(mono_us() - g->t0_us) / 1000.0 : 0;
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
static void finish(struct greq *g, int status, struct evbuffer *body)
{
    size_t bytes = body ? evbuffer_get_length(body) : 0;

    add_common_headers(g);
    account(g->gw, g->fast ? g->fast : g->gw->conf, g->req, g, NULL, 0, status, bytes);
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
 * became a struct greq; route: its list route, -1 pass-through, -2 none;
 * client: the [client] it authenticated as, or NULL. */
static void reply_route_detail(struct gw *gw, struct hs_req *req, int route, int status,
                               const char *text, const char *client)
{
    struct evbuffer *buf = detail_body(text);
    size_t bytes = buf ? evbuffer_get_length(buf) : 0;

    hs_add_header(req, "Content-Type", "application/json");
    account(gw, gw->conf, req, NULL, client, route, status, bytes);
    workers_send(gw->front, req, status, buf);
    if (buf)
        evbuffer_free(buf);
}

static void reply_detail(struct gw *gw, struct hs_req *req, int status, const char *text)
{
    reply_route_detail(gw, req, -2, status, text, NULL);
}

static void fail_greq(struct greq *g, int status, const char *text)
{
    finish_json(g, status, detail_body(text));
}

static void retry_headers(struct hs_req *req, int64_t retry_after_ms)
{
    char v[32];

    snprintf(v, sizeof(v), "%lld", (long long)((retry_after_ms + 999) / 1000));
    hs_add_header(req, "Retry-After", v);
    snprintf(v, sizeof(v), "%lld", (long long)retry_after_ms);
    hs_add_header(req, "retry-after-ms", v);
}

static void fail_upstream(struct greq *g, const struct up_resp *r)
{
    g->up_status = r->err == UP_ETIMEOUT ? 504 : r->err == UP_EBUSY ? 503 : 502;
    g->up_us = r->elapsed_us;
    log_warn("upstream %s failed: %s (request %s)",
             g->route >= 0 ? qn_routes[g->route].name : "pass-through", r->errmsg, g->rid);
    if (r->err == UP_ETIMEOUT) {
        fail_greq(g, 504, "Upstream timed out");
    } else if (r->err == UP_EBUSY) {
        retry_headers(g->req, 1000);
        fail_greq(g, 503, "Too many requests in flight");
    } else if (r->err == UP_EINVALID) {
        fail_greq(g, 502, "Upstream sent an invalid answer");
    } else {
        fail_greq(g, 502, "Upstream unreachable");
    }
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

/* ---- reading a request ---- */

/* Is this listener local (loopback or a Unix socket)? The running listen
 * address: a reload cannot move it. */
static int front_local;

static int refuse(struct reading *rd, int status, const char *why)
{
    rd->status = status;
    rd->why = why;
    return -1;
}

/* The projects a request names, canonical: in the path, the query's
 * project_id, the body's. *unreadable: the body may name one that lcgate
 * cannot read. */
#define MAX_NAMED 8

struct named {
    char *v[MAX_NAMED];          /* path ones first, then the query's, the body's */
    size_t n;
    int unreadable;
    int too_many;                /* the path names more than lcgate reads */
};

static int add_named(struct named *nm, const char *s, size_t n)
{
    if ((nm->v[nm->n] = rr_project_canon(s, n)) == NULL)
        return -1;
    nm->n++;
    return 0;
}

static void named_free(struct named *nm)
{
    for (size_t i = 0; i < nm->n; i++)
        free(nm->v[i]);
    nm->n = 0;
}

static int read_named(const struct hs_req *req, const struct reading *rd, struct named *nm)
{
    const struct rr_param *p;
    const char *s;
    size_t n, len;

    memset(nm, 0, sizeof(*nm));
    /* Every /projects/<uuid> of the path, each checked like project_id. */
    for (s = rr_path_project(rd->dpath, &n); s != NULL; s = rr_path_project(s + n, &n)) {
        if (nm->n == MAX_NAMED - 2) {
            nm->too_many = 1;
            return 0;
        }
        if (add_named(nm, s, n) != 0)
            return -1;
    }
    if ((p = rr_query_last(&rd->q, "project_id")) != NULL &&
        add_named(nm, p->value, p->vlen) != 0)
        return -1;
    if ((len = evbuffer_get_length(req->body)) > 0) {
        char *v = NULL;
        const char *body = (const char *)evbuffer_pullup(req->body, -1);
        switch (rr_body_member(hs_header(req, "Content-Type"), body, len, "project_id", &v)) {
        case RR_BODY_FOUND: {
            int rc = add_named(nm, v, strlen(v));
            free(v);
            if (rc != 0)
                return -1;
            break;
        }
        case RR_BODY_UNREADABLE:
            nm->unreadable = 1;
            break;
        case RR_BODY_NOMEM:
            return -1;
        default:
            break;
        }
    }
    return 0;
}

/* Do any configured per-project keys exist? Then which project a request
 * names chooses the key. */
static int has_project_keys(const struct conf *c)
{
    for (size_t i = 0; i < c->nprojects; i++)
        if (c->projects[i].api_key)
            return 1;
    return 0;
}

/* Who may do this, and with which key: the client's token, its projects
 * (every project the request names), and one key for all of them. */
static int decide_projects(const struct conf *c, const struct hs_req *req, struct reading *rd)
{
    struct named nm;
    const char *key;
    int restricted;

    if (read_named(req, rd, &nm) != 0) {
        named_free(&nm);
        return refuse(rd, 500, "Out of memory");
    }
    if (nm.too_many) {
        named_free(&nm);
        return refuse(rd, 400, "The path names too many projects");
    }
    if (nm.n > 0 && (rd->project = strdup(nm.v[0])) == NULL) {
        named_free(&nm);
        return refuse(rd, 500, "Out of memory");
    }
    if (c->nclients > 0) {
        rd->client = client_find(c, hs_header(req, "Authorization"));
        if (rd->client == NULL) {
            named_free(&nm);
            return refuse(rd, 401, "Missing or invalid client token");
        }
        for (size_t i = 0; i < nm.n; i++) {
            if (!client_allows(rd->client, nm.v[i])) {
                named_free(&nm);
                return refuse(rd, 403, "This client may not use this project");
            }
        }
        if (nm.n == 0 && !client_allows(rd->client, NULL)) {
            named_free(&nm);
            return refuse(rd, 403, "This client may not use this project");
        }
    }
    restricted = rd->client != NULL && !rd->client->all_projects;
    if (nm.unreadable && (restricted || has_project_keys(c))) {
        named_free(&nm);
        return refuse(rd, 400, "The request body may name a project that lcgate cannot read "
                               "(send JSON, or name the project in the query)");
    }
    key = conf_api_key(c, rd->project);
    for (size_t i = 1; i < nm.n; i++) {
        const char *other = conf_api_key(c, nm.v[i]);
        if (other != key && (other == NULL || key == NULL || strcmp(other, key) != 0)) {
            named_free(&nm);
            return refuse(rd, 400, "The request names projects that use different keys");
        }
    }
    named_free(&nm);
    return 0;
}

/* Read req once, as the upstream will: the doors, the path, the query, the
 * list normalizer, the projects and who may act on them. rd->status is 0
 * when the request may go on. */
static void read_request(const struct conf *c, struct hs_req *req, struct reading *rd)
{
    enum door d;

    memset(rd, 0, sizeof(*rd));
    rd->route = -1;
    d = door_check(c, front_local, hs_header(req, "Host"), hs_header(req, "Origin"),
                   hs_header(req, "Sec-Fetch-Site"));
    if (d != DOOR_OPEN) {
        refuse(rd, (int)d, door_detail(d));
        return;
    }
    switch (rr_path_decode(req->path ? req->path : "", &rd->dpath, &rd->why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        /* Outside /api it is simply not ours. */
        refuse(rd, req->path && strncmp(req->path, "/api", 4) == 0 ? 400 : 404,
               req->path && strncmp(req->path, "/api", 4) == 0 ? "Malformed request path"
                                                                 : "Not Found");
        return;
    default:
        refuse(rd, 500, "Out of memory");
        return;
    }
    if (strncmp(rd->dpath, "/api/", 5) != 0 && strcmp(rd->dpath, "/api") != 0) {
        refuse(rd, 404, "Not Found");
        return;
    }
    switch (rr_query_parse(req->query, MAX_QUERY_PARAMS, &rd->q, &rd->why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        rd->status = 400;
        return;
    default:
        refuse(rd, 500, "Out of memory");
        return;
    }
    rd->route = req->method == HS_GET ? qn_route_by_path(rd->dpath) : -1;
    if (rd->route >= 0) {
        if (qn_normalize_query((enum qn_route)rd->route, &rd->q, &rd->qr) != 0) {
            refuse(rd, 500, "Out of memory");
            return;
        }
        if (rd->qr.status != QN_OK) {
            rd->status = 422;    /* the upstream's own body, without asking it */
            return;
        }
    }
    decide_projects(c, req, rd);
}

/* Answer a request its reading refused. */
static void refuse_reading(struct gw *gw, struct hs_req *req, struct reading *rd)
{
    if (rd->status == 422) {
        struct evbuffer *buf = evbuffer_new();
        if (buf)
            evbuffer_add(buf, rd->qr.body, strlen(rd->qr.body));
        hs_add_header(req, "Content-Type", "application/json");
        account(gw, gw->conf, req, NULL, rd->client ? rd->client->name : NULL, rd->route, 422,
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

/* ---- credentials and budgets ---- */

/* The credential that decides whose answer this is: the injected key, or
 * the client's Authorization in pass-through mode. */
static const char *credential_in(const struct conf *c, const struct hs_req *req,
                                 const char *project, const char **key)
{
    *key = conf_api_key(c, project);
    if (*key)
        return *key;
    return hs_header(req, "Authorization");
}

/* The budgets a request spends: its project's client budget (g->label,
 * g->rate, g->burst; its key in g->rlkey), and the client's own
 * (g->client_*; its key in clkey, "" when none). */
static void budgets_of(struct greq *g, const struct conf *c, const struct conf_client *cl,
                       const char *cred, char *clkey, size_t n)
{
    const struct conf_project *p = conf_project(c, g->project);

    ck_project_label(g->project, cred, cred ? strlen(cred) : 0, g->label, sizeof(g->label));
    g->rate = p && p->has_rate ? p->rate : c->rate;
    g->burst = p && p->has_burst ? p->burst : c->burst;
    memcpy(g->rlkey, CK_PREFIX "rl:c:", sizeof(CK_PREFIX "rl:c:") - 1);
    memcpy(g->rlkey + sizeof(CK_PREFIX "rl:c:") - 1, g->label, strlen(g->label) + 1);
    clkey[0] = '\0';
    if (cl != NULL && cl->has_rate) {
        g->client_rate = cl->rate;
        g->client_burst = cl->burst;
        g->has_client_rl = 1;
        snprintf(clkey, n, CK_PREFIX "rl:t:%s", cl->name);
    }
}

/* The budgets a request may be refused by: the label of
 * lcgate_rate_limited_total's budget, the access log's detail, and what
 * the 429 names. */
enum budget { B_CLIENT, B_UPSTREAM, B_TOKEN, B_KEY };

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
static void refuse_budget(struct greq *g, enum budget b, int64_t retry_after_ms)
{
    const char *who = b == B_TOKEN ? g->client : g->project ? g->project : "default";
    size_t n = strlen(who) + 48;
    char *detail = malloc(n);

    metrics_inc(g->gw->m.rate_limited, 1, g->label, budgets[b].metric, NULL);
    g->detail = budgets[b].detail;
    retry_headers(g->req, retry_after_ms);
    if (b == B_KEY || detail == NULL) {
        fail_greq(g, 429, b == B_KEY ? "Rate limit exceeded for the upstream key"
                                     : "Rate limit exceeded");
    } else {
        snprintf(detail, n, "Rate limit exceeded for %s %s",
                 b == B_TOKEN ? "client" : "project", who);
        fail_greq(g, 429, detail);
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
        retry_headers(g->req, a->retry_after_ms);
    hs_add_header(g->req, "X-Cache", g->xcache);
    hs_add_header(g->req, "Cache-Status", cstatus);
    buf = detail_body(detail);
    finish(g, status, buf);
    if (buf)
        evbuffer_free(buf);
}

static void on_answer(void *arg, const struct answer *a)
{
    struct greq *g = arg;
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
        snprintf(agebuf, sizeof(agebuf), "%lld", (long long)(age < 0 ? 0 : age));
        hs_add_header(g->req, "Age", agebuf);
        hs_add_header(g->req, "ETag", e->etag);
    }
    hs_add_header(g->req, "X-Cache", g->xcache);
    hs_add_header(g->req, "Cache-Status", cstatus);
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

static void run_list(struct greq *g)
{
    struct list_query q;
    const char *cc = hs_header(g->req, "Cache-Control");

    memset(&q, 0, sizeof(q));
    q.route = (enum qn_route)g->route;
    q.canonical = g->canonical;
    q.project_id = g->project;
    q.cred = g->cred;
    q.credlen = g->cred ? strlen(g->cred) : 0;
    q.injected = g->injected;
    q.no_store = hp_list_has(cc, "no-store");
    q.no_cache = hp_list_has(cc, "no-cache") && !g->gw->conf->ignore_client_no_cache;
    q.rid = g->rid;
    cache_list(g->gw->cache, &q, on_answer, g);
}

/* ---- pass-through ---- */

/* The route whose lists a write to path (decoded) changes, or -1. */
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

/* A successful write changes its project's lists: the project the request
 * acted on, and the one the answer names (a create without project_id). */
static void invalidate_after_write(struct greq *g, const struct up_resp *r)
{
    size_t credlen = g->cred ? strlen(g->cred) : 0, len = evbuffer_get_length(r->body);
    char *named = NULL, *canon;

    cache_invalidate_project(g->gw->cache, g->cred, credlen, g->project);
    if (len == 0 || len > 1024 * 1024)
        return;
    if (rr_body_member("application/json", (const char *)evbuffer_pullup(r->body, -1), len,
                       "project_id", &named) != RR_BODY_FOUND)
        return;
    canon = rr_project_canon(named, strlen(named));
    if (canon != NULL && (g->project == NULL || strcmp(g->project, canon) != 0))
        cache_invalidate_project(g->gw->cache, g->cred, credlen, canon);
    free(canon);
    free(named);
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
    if (g->read_only)
        gw_pass_reads(g->gw, -1);
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
        cache_upstream_said_429(g->gw->cache, g->label, g->project, r);
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

static void send_pass(struct greq *g)
{
    struct evbuffer *body = g->req->body;
    const char *method = g->req->method == HS_OTHER ? NULL : g->req->method_name;
    const char *conn = hs_header(g->req, "Connection");
    struct curl_slist *h = NULL;
    unsigned i;
    size_t blen = evbuffer_get_length(body);
    int has_ctype = 0;
    char *bearer = NULL, *path = NULL;
    struct up_opts opts;

    if (method == NULL) {
        fail_greq(g, 405, "Method Not Allowed");
        return;
    }
    /* The path as read, encoded again: the upstream decodes it to exactly
     * what every decision here used. The query goes as it came (it was
     * read as the upstream reads it). */
    if ((path = rr_path_encode(g->dpath)) == NULL)
        goto oom;
    g->url = malloc(strlen(g->gw->conf->base_url) + strlen(path) +
                    (g->req->query ? strlen(g->req->query) + 1 : 0) + 1);
    if (g->url == NULL)
        goto oom;
    sprintf(g->url, "%s%s%s%s", g->gw->conf->base_url, path,
            g->req->query && *g->req->query ? "?" : "",
            g->req->query && *g->req->query ? g->req->query : "");
    for (i = 0; i < g->req->nheaders; i++) {
        const struct hs_header *kv = &g->req->headers[i];
        if (in_list(kv->name, hop_by_hop) || named_by_connection(kv->name, conn) ||
            strcasecmp(kv->name, "X-Request-Id") == 0 ||
            (g->injected && strcasecmp(kv->name, "Authorization") == 0))
            continue;
        if (strcasecmp(kv->name, "Content-Type") == 0)
            has_ctype = 1;
        if ((h = up_header(h, kv->name, kv->value)) == NULL)
            goto oom;
    }
    if (g->injected) {
        if ((bearer = malloc(strlen(g->cred) + 8)) == NULL)
            goto oom;
        sprintf(bearer, "Bearer %s", g->cred);
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
    h = NULL;
    free(bearer);
    free(path);
    if (g->xfer == NULL) {
        fail_greq(g, 502, "Upstream request could not be started");
        return;
    }
    if (g->read_only)
        gw_pass_reads(g->gw, 1);
    return;
oom:
    curl_slist_free_all(h);
    free(bearer);
    free(path);
    fail_greq(g, 500, "Out of memory");
}

static void on_pass_admitted(void *arg, enum admit verdict, int64_t retry_after_ms)
{
    struct greq *g = arg;

    if (g->gw->stopping) {
        fail_greq(g, 503, "Shutting down");
    } else if (g->read_only && hs_req_gone(g->req)) {
        /* Its client went away while it waited: nothing to read for. */
        fail_greq(g, 499, "Client closed the request");
    } else if (verdict == ADMIT_OK) {
        send_pass(g);
    } else if (verdict == ADMIT_KEY) {
        refuse_budget(g, B_KEY, retry_after_ms);
    } else {
        refuse_budget(g, B_UPSTREAM, retry_after_ms);
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
        refuse_budget(g, B_CLIENT, r->retry_after_ms);
    } else if (g->route >= 0) {
        run_list(g);
    } else {
        /* Sent upstream as it is: it spends the upstream budgets too. */
        struct admit_who who = {g->label, g->project, g->keytag};
        cache_upstream_admit(g->gw->cache, &who, 0, on_pass_admitted, g);
    }
}

/* The project budget, after the client's own (if it has one). */
static void take_project_budget(struct greq *g)
{
    rl_take(g->gw->rl, g->rlkey, &g->rate, g->burst, on_admitted, g);
}

static void on_client_admitted(void *arg, const struct rl_result *r)
{
    struct greq *g = arg;

    g->client_rl = *r;
    g->client_taken = 1;
    if (g->gw->stopping) {
        fail_greq(g, 503, "Shutting down");
    } else if (!r->allowed) {
        refuse_budget(g, B_TOKEN, r->retry_after_ms);
    } else {
        take_project_budget(g);
    }
}

/* Memory held by requests in flight, past its bound: refuse new ones. */
static int over_memory(struct gw *gw, const struct hs_req *req)
{
    const struct conf *c = gw->conf;

    return gw->ninflight >= c->max_inflight_requests ||
           gw->memory.used + evbuffer_get_length(req->body) > c->max_inflight_bytes;
}

static void on_request(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    const struct conf *c = gw->conf;
    struct reading rd;
    const char *key, *cred;
    struct greq *g;
    char clkey[CK_LABEL_MAX + 16];

    read_request(c, req, &rd);
    if (rd.status != 0) {
        refuse_reading(gw, req, &rd);
        reading_free(&rd);
        return;
    }
    if (over_memory(gw, req)) {
        reading_free(&rd);
        retry_headers(req, 1000);
        reply_detail(gw, req, 503, "Too many requests in flight");
        return;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        reading_free(&rd);
        reply_detail(gw, req, 500, "Out of memory");
        return;
    }
    g->gw = gw;
    g->req = req;
    g->t0_us = mono_us();
    g->next = gw->inflight;
    if (gw->inflight)
        gw->inflight->prev = g;
    gw->inflight = g;
    gw->ninflight++;
    g->held_bytes = evbuffer_get_length(req->body);
    gw->memory.used += g->held_bytes;
    set_rid(g);
    /* The request owns its reading from now on. */
    g->route = rd.route;
    g->dpath = rd.dpath;
    g->q = rd.q;
    g->project = rd.project;
    g->canonical = rd.qr.canonical;
    rd.dpath = rd.project = rd.qr.canonical = NULL;
    memset(&rd.q, 0, sizeof(rd.q));
    g->write_route = write_route(g->dpath, req->method);
    g->read_only = req->method == HS_GET || req->method == HS_HEAD;
    cred = credential_in(c, req, g->project, &key);
    g->injected = key != NULL;
    if (cred != NULL && (g->cred = strdup(cred)) == NULL) {
        reading_free(&rd);
        fail_greq(g, 500, "Out of memory");
        return;
    }
    ck_cred_tag(g->cred, g->cred ? strlen(g->cred) : 0, g->keytag);
    budgets_of(g, c, rd.client, g->cred, clkey, sizeof(clkey));
    if (rd.client != NULL && (g->client = strdup(rd.client->name)) == NULL) {
        reading_free(&rd);
        fail_greq(g, 500, "Out of memory");
        return;
    }
    reading_free(&rd);
    /* Every /api request spends its client's budget and its project's,
     * hits too. */
    if (clkey[0] != '\0')
        rl_take(gw->rl, clkey, &g->client_rate, g->client_burst, on_client_admitted, g);
    else
        take_project_budget(g);
}

/* ---- gone clients ---- */

/* Reads whose client went away are cancelled: nobody will read their
 * answer, and each may hold up to MAX_RESPONSE of it. Writes run on (their
 * invalidation must happen); list fetches run on to fill the cache. */
static void on_gone_poll(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval tick = {0, GONE_POLL_MS * 1000};
    struct gw *gw = arg;
    struct greq *g, *next;

    for (g = gw->inflight; g; g = next) {
        next = g->next;
        if (g->xfer && g->read_only && g->route < 0 && hs_req_gone(g->req)) {
            up_cancel(g->xfer);
            g->xfer = NULL;
            gw_pass_reads(gw, -1);
            log_debug("request %s: the client went away; its upstream read is cancelled",
                      g->rid);
            fail_greq(g, 499, "Client closed the request");
        }
    }
    if (gw->pass_reads > 0)
        evtimer_add(gw->gone_timer, &tick);
}

static void gw_pass_reads(struct gw *gw, int delta)
{
    static const struct timeval tick = {0, GONE_POLL_MS * 1000};

    gw->pass_reads += delta;
    if (delta > 0 && gw->gone_timer && !evtimer_pending(gw->gone_timer, NULL))
        evtimer_add(gw->gone_timer, &tick);
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
    up_client_memory(gw->up, &gw->memory, next->max_inflight_bytes);
    conf_free(old);
}

static void on_fast_rl(void *arg, const struct rl_result *r)
{
    *(struct rl_result *)arg = *r;
}

/* A worker asks before it hands a request to main: a GET of a list whose
 * fresh answer is in the (thread-safe) memory store is answered here and
 * then, with the same reading, headers, budgets, metrics and log line as
 * on main; so are its 429s. Everything else (misses, stale answers,
 * refusals, no-cache, Redis) goes to main. What it shares is under locks
 * of its own: the memory store, the rate limiter, the metrics, the
 * configuration (held). 1 if answered. */
static int on_fast(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    struct greq g;
    struct reading rd;
    struct conf *conf;
    const char *key, *cred;
    struct list_query q;
    struct answer a;
    char clkey[CK_LABEL_MAX + 16];
    int done = 0;
    int64_t t0 = mono_us();

    if (req->method != HS_GET || req->path == NULL || hs_header(req, "Cache-Control"))
        return 0;
    conf = conf_get(gw);
    read_request(conf, req, &rd);
    if (rd.status != 0 || rd.route < 0)
        goto out;
    memset(&g, 0, sizeof(g));
    g.project = rd.project;
    cred = credential_in(conf, req, g.project, &key);
    memset(&q, 0, sizeof(q));
    q.route = (enum qn_route)rd.route;
    q.canonical = rd.qr.canonical;
    q.project_id = g.project;
    q.cred = cred;
    q.credlen = cred ? strlen(cred) : 0;
    q.injected = key != NULL;
    if (!cache_try_hit(gw->cache, conf, &q, &a))
        goto out;
    g.gw = gw;
    g.req = req;
    g.route = rd.route;
    g.write_route = -1;
    g.t0_us = t0;
    g.fast = conf;
    set_rid(&g);
    /* The memory store's budgets are decided at once, locally. */
    budgets_of(&g, conf, rd.client, cred, clkey, sizeof(clkey));
    rd.project = NULL;           /* g owns it now */
    if (rd.client != NULL && (g.client = strdup(rd.client->name)) == NULL) {
        centry_decref(a.e);
        rd.project = g.project;          /* freed with rd; main answers */
        goto out;
    }
    if (clkey[0] != '\0') {
        rl_take(gw->rl, clkey, &g.client_rate, g.client_burst, on_fast_rl, &g.client_rl);
        g.client_taken = 1;
        if (!g.client_rl.allowed) {
            refuse_budget(&g, B_TOKEN, g.client_rl.retry_after_ms);
            goto answered;
        }
    }
    rl_take(gw->rl, g.rlkey, &g.rate, g.burst, on_fast_rl, &g.rl);
    g.has_rl = 1;
    if (!g.rl.allowed) {
        refuse_budget(&g, B_CLIENT, g.rl.retry_after_ms);
        goto answered;
    }
    on_answer(&g, &a);
answered:
    centry_decref(a.e);
    done = 1;
out:
    reading_free(&rd);
    conf_free(conf);
    return done;
}

/* Every answer hs makes by itself (a request it refuses) is counted and
 * logged like the others. */
static void on_reject(void *arg, int status, const char *method, const char *target,
                      const char *peer)
{
    struct gw *gw = arg;
    /* What is known of it: no fields, no body, no version (minor -1). */
    struct hs_req req = {.method_name = method, .target = target, .peer = peer, .minor = -1};

    account(gw, gw->conf, &req, NULL, NULL, -2, status, 0);
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

    if (util_random(&rid_seed, sizeof(rid_seed)) != 0) {
        snprintf(err, errlen, "cannot read random bytes (getrandom): %s", strerror(errno));
        return -1;
    }
    front_local = door_local(gw->conf->listen);
    front_limits(gw->conf, &lim);
    pthread_mutex_init(&gw->conf_mu, NULL);
    up_client_memory(gw->up, &gw->memory, gw->conf->max_inflight_bytes);
    if ((gw->gone_timer = evtimer_new(gw->base, on_gone_poll, gw)) == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server: out of memory");
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
    if (gw->gone_timer)
        event_free(gw->gone_timer);
    gw->gone_timer = NULL;
}
