#include "admin.h"

#include <event2/buffer.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <yajl/yajl_gen.h>
#include <stdio.h>
#include <string.h>

#include "alog.h"
#include "cache.h"
#include "cache_store.h"
#include "clients.h"
#include "clock.h"
#include "conf.h"
#include "doors.h"
#include "hs.h"
#include "workers.h"
#include "log.h"
#include "gw.h"
#include "metrics.h"
#include "upstream.h"
#include "util.h"
#include "config.h"
#include "process.h"
#include "query_norm.h"
#include "request_read.h"

static struct hs_server *admin_hs;

static void reply(struct hs_req *req, int status, const char *body);
static void reply_detail(struct hs_req *req, int status, const char *text);

static void on_upstream_done(void *arg, const struct up_resp *r)
{
    struct gw *gw = arg;
    char st[16];

    if (r->err == UP_OK)
        snprintf(st, sizeof(st), "%ld", r->status);
    else
        snprintf(st, sizeof(st), "%s", r->err == UP_ETIMEOUT ? "timeout" : "error");
    metrics_inc(gw->m.upstream, 1, st, NULL, NULL);
    gw->last_upstream_status = r->err == UP_OK ? r->status : r->err == UP_ETIMEOUT ? -2 : -1;
    gw->last_upstream_ms = wall_ms();
    metrics_observe(gw->m.upstream_seconds, (double)r->elapsed_us / 1e6, NULL, NULL, NULL);
}

/* What /proc cannot tell keeps its last value (0 at first). */
static void set_known(struct mfamily *f, double v)
{
    if (!isnan(v))
        metrics_set(f, v, NULL, NULL, NULL);
}

/* Durations from 100 us (a hit) to past the upstream timeout (30 s by
 * default): bounds_past keeps them up to the first one above it. */
static const double duration_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
};
#define NDURATIONS (sizeof(duration_bounds) / sizeof(duration_bounds[0]))

/* duration_bounds from the first >= from up to the first > past (or, past
 * the last, one at twice past) into out; their number. */
static size_t bounds_past(double from, double past, double out[NDURATIONS + 1])
{
    size_t i, n = 0;

    for (i = 0; i < NDURATIONS; i++) {
        if (duration_bounds[i] < from)
            continue;
        out[n++] = duration_bounds[i];
        if (duration_bounds[i] > past)
            return n;
    }
    out[n++] = 2 * past;
    return n;
}

/* Label names, each list ending in NULL. */
static const char *const l_none[] = {NULL};
static const char *const l_route_status_cache[] = {"route", "status", "cache", NULL};
static const char *const l_route_cache[] = {"route", "cache", NULL};
static const char *const l_result[] = {"result", NULL};
static const char *const l_status[] = {"status", NULL};
static const char *const l_project_budget[] = {"project", "budget", NULL};
static const char *const l_reason[] = {"reason", NULL};
static const char *const l_version[] = {"version", NULL};

/* The metric families, registered (and rendered) in this order: each row
 * the gw_metrics field it fills, its name, type, labels, the first bound
 * a histogram keeps, and its help. */
#define ROW(field, name, type, labels, from, help) \
    {offsetof(struct gw_metrics, field), name, help, type, labels, from}
static const struct family_row {
    size_t off;
    const char *name, *help;
    enum mtype type;
    const char *const *labels;   /* ending in NULL */
    double from;                 /* MT_HISTOGRAM: the first bound kept */
} families[] = {
    ROW(requests, "lcgate_requests_total", MT_COUNTER, l_route_status_cache, 0,
        "Requests answered, by route, status and cache result."),
    ROW(upstream, "lcgate_upstream_requests_total", MT_COUNTER, l_status, 0,
        "Requests sent upstream, by status (or error, timeout)."),
    /* Bounds fixed at start: a reload to a longer timeout keeps them. */
    ROW(upstream_seconds, "lcgate_upstream_request_duration_seconds", MT_HISTOGRAM, l_none, 0.001,
        "Time of upstream requests."),
    ROW(request_seconds, "lcgate_request_duration_seconds", MT_HISTOGRAM, l_route_cache, 0,
        "Time from a request read to its answer, by route and cache result (0 for those answered while it is read: refusals, 404, 422)."),
    ROW(rate_limited, "lcgate_rate_limited_total", MT_COUNTER, l_project_budget, 0,
        "Requests refused or served stale by a budget, by project and budget (client, upstream: the project's; token: the client's own; key: the upstream key's)."),
    ROW(collapsed, "lcgate_coalesced_waits_total", MT_COUNTER, l_none, 0,
        "Requests answered by another request's fetch."),
    ROW(stale, "lcgate_stale_answers_total", MT_COUNTER, l_reason, 0,
        "Stale answers served, by reason."),
    ROW(prefetches, "lcgate_prefetches_total", MT_COUNTER, l_none, 0,
        "Next pages fetched ahead."),
    ROW(refreshes, "lcgate_refreshes_total", MT_COUNTER, l_none, 0,
        "Background refreshes of stale entries."),
    ROW(l1_hits, "lcgate_l1_hits_total", MT_COUNTER, l_none, 0,
        "Hits answered from the in-process copy of Redis entries (l1_ttl), without a round trip."),
    ROW(store_up, "lcgate_store_up", MT_GAUGE, l_none, 0,
        "1 while the cache store answers (Redis connected)."),
    ROW(store_errors, "lcgate_store_errors_total", MT_COUNTER, l_none, 0,
        "Cache lookups the store could not answer (Redis down, slow or failing); each went upstream."),
    ROW(cache_entries, "lcgate_cache_entries", MT_GAUGE, l_none, 0,
        "Entries in the memory store."),
    ROW(cache_bytes, "lcgate_cache_bytes", MT_GAUGE, l_none, 0,
        "Bytes held by the memory store."),
    ROW(in_flight, "lcgate_requests_in_flight", MT_GAUGE, l_none, 0,
        "Client requests not yet answered."),
    ROW(connections, "lcgate_client_connections", MT_GAUGE, l_none, 0,
        "Open client connections (max_connections bounds them)."),
    ROW(handoffs, "lcgate_worker_handoffs_total", MT_COUNTER, l_none, 0,
        "Requests a worker handed to the main loop (misses, stale answers, writes, pass-through): a hit never is."),
    ROW(alog_errors, "lcgate_access_log_errors_total", MT_COUNTER, l_none, 0,
        "Access log lines lost: a file or pipe that could not be written (full, ENOSPC, EIO)."),
    ROW(build, "lcgate_build_info", MT_GAUGE, l_version, 0,
        "The running version."),
    ROW(reloads, "lcgate_config_reloads_total", MT_COUNTER, l_result, 0,
        "Configuration reloads (SIGHUP), by result."),
    ROW(reload_time, "lcgate_config_last_reload_success_timestamp_seconds", MT_GAUGE, l_none, 0,
        "When the configuration in force was loaded (at start, then by each good reload)."),
    ROW(cpu, "process_cpu_seconds_total", MT_COUNTER, l_none, 0,
        "User and system CPU time spent, in seconds."),
    ROW(rss, "process_resident_memory_bytes", MT_GAUGE, l_none, 0,
        "Resident memory size in bytes."),
    ROW(fds, "process_open_fds", MT_GAUGE, l_none, 0,
        "Number of open file descriptors."),
    ROW(max_fds, "process_max_fds", MT_GAUGE, l_none, 0,
        "Maximum number of open file descriptors (the soft RLIMIT_NOFILE)."),
    ROW(start_time, "process_start_time_seconds", MT_GAUGE, l_none, 0,
        "Start time of the process since unix epoch in seconds."),
};
#undef ROW

int admin_metrics_init(struct gw *gw)
{
    struct gw_metrics *m = &gw->m;
    double timeout_s = (double)gw->conf->timeout_ms / 1000, b[NDURATIONS + 1];
    size_t i;

    if ((m->reg = metrics_new()) == NULL)
        return -1;
    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        const struct family_row *f = &families[i];
        struct mfamily **slot = (struct mfamily **)((char *)m + f->off);
        int n = 0;
        while (f->labels[n] != NULL)
            n++;
        if (f->type == MT_HISTOGRAM)
            *slot = metrics_histogram(m->reg, f->name, f->help, n, n ? f->labels : NULL, b,
                                      bounds_past(f->from, timeout_s, b));
        else
            *slot = metrics_family(m->reg, f->name, f->help, f->type, n, n ? f->labels : NULL);
        if (*slot == NULL)
            return -1;
    }
    if (!metrics_series(m->reloads, "success", NULL, NULL) ||
        !metrics_series(m->reloads, "failure", NULL, NULL))
        return -1;
    metrics_set(m->reload_time, (double)wall_ms() / 1000, NULL, NULL, NULL);
    set_known(m->start_time, proc_start_time());
    /* A flood of project ids must not grow memory: the top ones, then "other". */
    metrics_family_cap(m->rate_limited, "project", 100);
    metrics_set(m->build, 1, PACKAGE_VERSION, NULL, NULL);
    up_client_observe(gw->up, on_upstream_done, gw);
    return 0;
}

/* Every answer counts in one lcgate_requests_total series and observes
 * one lcgate_request_duration_seconds series. The handles of the known
 * routes and cache results (and, for the counter, the statuses of hits,
 * 200 and 304) are kept as first used: they spare the hit path hashing
 * its labels, about 1,300 instructions. (Two threads may both fetch a
 * handle: metrics_series gives both the same.) */
static const char *const cache_results[] = {"HIT", "MISS", "STALE", "BYPASS", "none"};
#define NCACHE (sizeof(cache_results) / sizeof(cache_results[0]))
#define NROUTE (QN_NROUTES + 2)          /* the list routes, "pass", "none" */
static const int hit_statuses[] = {200, 304};
#define NSTATUS (sizeof(hit_statuses) / sizeof(hit_statuses[0]))
static struct mseries *duration_series[NROUTE][NCACHE];
static struct mseries *count_series[NROUTE][NCACHE][NSTATUS];

/* The handle in *slot, fetched the first time. */
static struct mseries *held(struct mseries **slot, struct mfamily *f, const char *l1,
                            const char *l2, const char *l3)
{
    struct mseries *s = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

    if (s == NULL) {
        s = metrics_series(f, l1, l2, l3);
        __atomic_store_n(slot, s, __ATOMIC_RELEASE);
    }
    return s;
}

void admin_observe_request(struct gw *gw, const char *route, int status, const char *cache,
                           double secs)
{
    size_t r, c, k;
    char st[12];

    if (status >= 100 && status <= 999) {    /* every HTTP status: no printf */
        st[0] = (char)('0' + status / 100);
        st[1] = (char)('0' + status / 10 % 10);
        st[2] = (char)('0' + status % 10);
        st[3] = '\0';
    } else {
        snprintf(st, sizeof(st), "%d", status);
    }
    for (r = 0; r < QN_NROUTES && strcmp(route, qn_routes[r].name) != 0; r++)
        ;
    if (r == QN_NROUTES && strcmp(route, "pass") != 0)
        r += strcmp(route, "none") == 0 ? 1 : 2;
    for (c = 0; c < NCACHE && strcmp(cache, cache_results[c]) != 0; c++)
        ;
    for (k = 0; k < NSTATUS && hit_statuses[k] != status; k++)
        ;
    if (r >= NROUTE || c == NCACHE) {
        metrics_inc(gw->m.requests, 1, route, st, cache);
        metrics_observe(gw->m.request_seconds, secs, route, cache, NULL);
        return;
    }
    if (k < NSTATUS)
        mseries_inc(held(&count_series[r][c][k], gw->m.requests, route, st, cache), 1);
    else
        metrics_inc(gw->m.requests, 1, route, st, cache);
    mseries_observe(held(&duration_series[r][c], gw->m.request_seconds, route, cache, NULL),
                    secs);
}

void admin_reloaded(struct gw *gw, int ok)
{
    metrics_inc(gw->m.reloads, 1, ok ? "success" : "failure", NULL, NULL);
    if (ok)
        metrics_set(gw->m.reload_time, (double)wall_ms() / 1000, NULL, NULL, NULL);
}

static void serve_metrics(struct gw *gw, struct hs_req *req)
{
    const struct cache_stats *cs = cache_stats(gw->cache);
    struct gw_metrics *m = &gw->m;
    struct evbuffer *buf = evbuffer_new();
    struct proc_stats ps;

    if (buf == NULL) {
        reply_detail(req, 500, "Out of memory");
        return;
    }
    metrics_set(m->collapsed, (double)cs->collapsed, NULL, NULL, NULL);
    metrics_set(m->stale, (double)cs->stale_swr, "stale-while-revalidate", NULL, NULL);
    metrics_set(m->stale, (double)cs->stale_sie, "stale-if-error", NULL, NULL);
    metrics_set(m->prefetches, (double)cs->prefetches, NULL, NULL, NULL);
    metrics_set(m->refreshes, (double)cs->refreshes, NULL, NULL, NULL);
    metrics_set(m->l1_hits, (double)cs->l1_hits, NULL, NULL, NULL);
    metrics_set(m->store_errors, (double)cs->store_errors, NULL, NULL, NULL);
    metrics_set(m->store_up, strcmp(gw->store->ops->state(gw->store), "ok") == 0, NULL, NULL,
                NULL);
    if (gw->store->ops->usage != NULL) {
        size_t entries, bytes;

        gw->store->ops->usage(gw->store, &entries, &bytes);
        metrics_set(m->cache_entries, (double)entries, NULL, NULL, NULL);
        metrics_set(m->cache_bytes, (double)bytes, NULL, NULL, NULL);
    }
    metrics_set(m->in_flight, (double)gw->ninflight, NULL, NULL, NULL);
    metrics_set(m->connections, gw->front ? (double)workers_connections(gw->front) : 0, NULL, NULL, NULL);
    metrics_set(m->handoffs, gw->front ? (double)workers_handoffs(gw->front) : 0, NULL, NULL,
                NULL);
    metrics_set(m->alog_errors, (double)alog_errors(), NULL, NULL, NULL);
    proc_stats_read(&ps);
    set_known(m->cpu, ps.cpu_seconds);
    set_known(m->rss, ps.rss_bytes);
    set_known(m->fds, ps.open_fds);
    set_known(m->max_fds, ps.max_fds);
    metrics_render(m->reg, buf);
    hs_add_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    hs_send(req, 200, buf);
    evbuffer_free(buf);
}

static void reply(struct hs_req *req, int status, const char *body)
{
    struct evbuffer *buf = evbuffer_new();

    hs_add_header(req, "Content-Type", "application/json");
    if (buf)
        evbuffer_add(buf, body, strlen(body));
    hs_send(req, status, buf);
    if (buf)
        evbuffer_free(buf);
}

/* Every error body: {"detail": text}. */
static void reply_detail(struct hs_req *req, int status, const char *text)
{
    char body[256];
    size_t n = util_json_detail(body, sizeof(body) - 1, text);

    body[n] = '\0';
    reply(req, status, body);
}

/* POST /admin/purge[?project_id=P]: that project's lists, or all. The
 * query is read as every other (request_read.h), the project canonical. */
static void purge(struct gw *gw, struct hs_req *req)
{
    struct rr_query q;
    const struct rr_param *p;
    const char *why;
    char *project = NULL;
    yajl_gen gen;
    const unsigned char *out;
    size_t len;

    if (req->method != HS_POST) {
        hs_add_header(req, "Allow", "POST");
        reply_detail(req, 405, "Method Not Allowed");
        return;
    }
    if (rr_query_parse(req->query, 64, &q, &why) != RR_OK) {
        reply_detail(req, 400, "Malformed query string");
        return;
    }
    if ((p = rr_query_last(&q, "project_id")) != NULL) {
        if (p->vlen == 0) {
            rr_query_free(&q);
            reply_detail(req, 400, "project_id is empty");
            return;
        }
        if ((project = rr_project_canon(p->value, p->vlen)) == NULL) {
            rr_query_free(&q);
            reply_detail(req, 500, "Out of memory");
            return;
        }
    }
    rr_query_free(&q);
    cache_purge(gw->cache, project);
    gen = yajl_gen_alloc(NULL);
    yajl_gen_map_open(gen);
    yajl_gen_string(gen, (const unsigned char *)"purged", 6);
    yajl_gen_string(gen, (const unsigned char *)(project ? "project" : "all"),
                    project ? 7 : 3);
    if (project) {
        yajl_gen_string(gen, (const unsigned char *)"project_id", 10);
        yajl_gen_string(gen, (const unsigned char *)project, strlen(project));
    }
    yajl_gen_map_close(gen);
    yajl_gen_get_buf(gen, &out, &len);
    {
        char *body = strndup((const char *)out, len);
        reply(req, 200, body ? body : "{}");
        free(body);
    }
    yajl_gen_free(gen);
    free(project);
}

/* Is the admin listener local? Its running address: a reload cannot move it. */
static int admin_local;

/* The doors of the admin listener, as the client listener's; and POST
 * /admin/... needs the admin token when one is configured (probes and
 * scrapers read without one). 1 if answered. */
static int admin_refuse(struct gw *gw, struct hs_req *req)
{
    const struct conf *c = gw->conf;
    enum door d = door_check(c, admin_local, hs_header(req, "Host"), hs_header(req, "Origin"),
                             hs_header(req, "Sec-Fetch-Site"));

    if (d != DOOR_OPEN) {
        reply_detail(req, (int)d, door_detail(d));
        return 1;
    }
    if (c->has_admin_token && req->path && strncmp(req->path, "/admin/", 7) == 0 &&
        !client_token_matches(hs_header(req, "Authorization"), c->admin_token_sha256)) {
        hs_add_header(req, "WWW-Authenticate", "Bearer realm=\"lcgate admin\"");
        reply_detail(req, 401, "Missing or invalid admin token");
        return 1;
    }
    return 0;
}

/* /readyz's "redis_primary" member, when the store has a server to name:
 * ',"redis_primary":"host:port"' (null while there is none), else "". */
static void primary_member(struct store *st, char *buf, size_t len)
{
    const char *p = st->ops->primary ? st->ops->primary(st) : NULL;
    size_t i;

    buf[0] = '\0';
    if (st->ops->primary == NULL)
        return;
    for (i = 0; p != NULL && p[i] != '\0'; i++)
        if (p[i] == '"' || p[i] == '\\' || (unsigned char)p[i] < 0x20)
            p = NULL;            /* a socket path JSON would need escaped */
    snprintf(buf, len, p ? ",\"redis_primary\":\"%s\"" : ",\"redis_primary\":null", p);
}

static void on_admin(struct hs_req *req, void *arg)
{
    struct gw *gw = arg;
    const char *path = req->path;
    char body[768];

    if (admin_refuse(gw, req))
        return;
    if (path && strcmp(path, "/healthz") == 0) {
        reply(req, 200, "{\"status\":\"ok\"}");
    } else if (path && strcmp(path, "/readyz") == 0) {
        const char *st = gw->store->ops->state(gw->store);
        char up[64], primary[320];
        if (gw->last_upstream_status == 0)
            snprintf(up, sizeof(up), "null");
        else if (gw->last_upstream_status < 0)
            snprintf(up, sizeof(up), "\"%s\"", gw->last_upstream_status == -2 ? "timeout" : "error");
        else
            snprintf(up, sizeof(up), "%ld", gw->last_upstream_status);
        primary_member(gw->store, primary, sizeof(primary));
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"store\":\"%s\",\"store_state\":\"%s\"%s,"
                 "\"upstream_last_status\":%s,\"upstream_last_age_s\":%lld,"
                 "\"requests_in_flight\":%zu}",
                 gw->draining ? "draining" : strcmp(st, "ok") ? "degraded" : "ready",
                 gw->store->ops->name, st, primary, up,
                 gw->last_upstream_ms ? (long long)((wall_ms() - gw->last_upstream_ms) / 1000) : -1LL,
                 gw->ninflight);
        reply(req, gw->draining ? 503 : 200, body);
    } else if (path && strcmp(path, "/metrics") == 0) {
        serve_metrics(gw, req);
    } else if (path && strcmp(path, "/admin/purge") == 0) {
        purge(gw, req);
    } else {
        reply_detail(req, 404, "Not Found");
    }
}

int admin_start(struct gw *gw, const char *addr, char *err, size_t errlen)
{
    /* hs's defaults, and few connections: operators and scrapers only. */
    struct hs_limits lim = {.max_body = 64 * 1024, .max_connections = 64};

    admin_local = door_local(addr);
    if (!admin_local && !gw->conf->has_admin_token)
        log_warn("admin_listen %s is not a loopback address and admin_token_sha256 is not "
                 "set: anyone who reaches it can purge the cache", addr);
    if ((admin_hs = hs_new(gw->base, &lim, on_admin, NULL, gw)) == NULL) {
        snprintf(err, errlen, "cannot create the admin server: out of memory");
        return -1;
    }
    return hs_listen(admin_hs, addr, 0, err, errlen);
}

void admin_free(struct gw *gw)
{
    memset(duration_series, 0, sizeof(duration_series));
    metrics_free(gw->m.reg);
    gw->m.reg = NULL;
    if (admin_hs)
        hs_free(admin_hs);
    admin_hs = NULL;
}
