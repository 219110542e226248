/* front_pass: what is not a cached list goes upstream as it came, with
 * the key injected and hop-by-hop fields dropped; a write that succeeds
 * invalidates its project's lists before it is answered; a read whose
 * client went away is cancelled. */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "front_int.h"
#include "gw.h"
#include "log.h"
#include "upstream.h"
#define GONE_POLL_MS 50          /* how often reads of gone clients are looked for */

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

/* ---- pass-through ---- */

/* The route whose lists a write to path (decoded) changes, or -1. */
int write_route(const char *path, enum hs_method m)
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
    struct greq *g = greq_of(arg);

    greq_finish(g, g->held_status, g->held_body);
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
    struct greq *g = greq_of(arg);
    const char *conn = NULL, *clen = NULL;
    size_t i;

    g->xfer = NULL;
    if (g->read_only)
        gw_pass_reads(g->gw, -1);
    if (r->err != UP_OK) {
        greq_fail_upstream(g, r);
        return;
    }
    g->up_status = (int)r->status;
    g->up_us = r->elapsed_us;
    if (r->status >= 200 && r->status < 300 && g->write_route >= 0) {
        invalidate_after_write(g, r);
        g->held_status = (int)r->status;
        if ((g->held_body = evbuffer_new()) == NULL) {
            greq_fail(g, 500, "Out of memory");
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
    greq_finish(g, (int)r->status, r->body);
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
    char *path;
    struct up_opts opts = up_opts_of(g->gw->conf);

    if (method == NULL) {
        greq_fail(g, 405, "Method Not Allowed");
        return;
    }
    /* The path as read, encoded again: the upstream decodes it to exactly
     * what every decision here used. The query goes as it came (it was
     * read as the upstream reads it). */
    if ((path = rr_path_encode(g->dpath)) == NULL)
        goto oom;
    g->url = up_url(g->gw->conf->base_url, path, g->req->query);
    free(path);
    if (g->url == NULL)
        goto oom;
    /* The client's fields, but the hop-by-hop ones and those lcgate sets:
     * the credential it decided on (the key, or the client's
     * Authorization, once) and the request id. */
    for (i = 0; i < g->req->nheaders; i++) {
        const struct hs_header *kv = &g->req->headers[i];
        if (in_list(kv->name, hop_by_hop) || named_by_connection(kv->name, conn) ||
            strcasecmp(kv->name, "X-Request-Id") == 0 ||
            strcasecmp(kv->name, "Authorization") == 0)
            continue;
        if (strcasecmp(kv->name, "Content-Type") == 0)
            has_ctype = 1;
        if ((h = up_header(h, kv->name, kv->value)) == NULL)
            goto oom;
    }
    /* curl would add its own defaults for these; the client's (or none) win. */
    if ((h = curl_slist_append(h, "Expect:")) == NULL ||
        (!has_ctype && (h = curl_slist_append(h, "Content-Type:")) == NULL) ||
        (h = up_identity(h, g->cred, g->injected, g->rid)) == NULL)
        goto oom;
    g->xfer = up_start(g->gw->up, method, g->url, h, evbuffer_pullup(body, -1), blen,
                       &opts, on_pass_upstream, g);
    if (g->xfer == NULL) {
        greq_fail(g, 502, "Upstream request could not be started");
        return;
    }
    if (g->read_only)
        gw_pass_reads(g->gw, 1);
    return;
oom:
    curl_slist_free_all(h);
    greq_fail(g, 500, "Out of memory");
}

static void on_pass_admitted(void *arg, enum admit verdict, int64_t retry_after_ms)
{
    struct greq *g = greq_of(arg);

    if (g->gw->stopping) {
        greq_fail(g, 503, "Shutting down");
    } else if (g->read_only && hs_req_gone(g->req)) {
        /* Its client went away while it waited: nothing to read for. */
        greq_fail(g, 499, "Client closed the request");
    } else if (verdict == ADMIT_OK) {
        send_pass(g);
    } else if (verdict == ADMIT_KEY) {
        refuse_budget(g, B_KEY, retry_after_ms);
    } else {
        refuse_budget(g, B_UPSTREAM, retry_after_ms);
    }
}

void pass_admit(struct greq *g)
{
    /* Sent upstream as it is: it spends the upstream budgets too. */
    struct admit_who who = {g->label, g->project, g->keytag};

    cache_upstream_admit(g->gw->cache, &who, 0, on_pass_admitted, g);
}

/* ---- gone clients ---- */

/* Reads whose client went away are cancelled: nobody will read their
 * answer, and each may hold up to MAX_RESPONSE of it. Writes run on (their
 * invalidation must happen); list fetches run on to fill the cache. */
void front_gone_poll(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval tick = {0, GONE_POLL_MS * 1000};
    struct gw *gw = arg;
    struct list *p, *next;

    list_foreach_safe(p, next, &gw->inflight) {
        struct greq *g = list_entry(p, struct greq, node);
        if (g->xfer && g->read_only && g->route < 0 && hs_req_gone(g->req)) {
            up_cancel(g->xfer);
            g->xfer = NULL;
            gw_pass_reads(gw, -1);
            log_debug("request %s: the client went away; its upstream read is cancelled",
                      g->rid);
            greq_fail(g, 499, "Client closed the request");
        }
    }
    if (gw->pass_reads > 0)
        evtimer_add(gw->gone_timer, &tick);
}

void gw_pass_reads(struct gw *gw, int delta)
{
    static const struct timeval tick = {0, GONE_POLL_MS * 1000};

    gw->pass_reads += delta;
    if (delta > 0 && gw->gone_timer && !evtimer_pending(gw->gone_timer, NULL))
        evtimer_add(gw->gone_timer, &tick);
}