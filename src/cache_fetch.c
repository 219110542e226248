/* A flight's fetch: the upstream request for a list, and what its answer
 * becomes: a stored entry for every waiter, the upstream's own error
 * passed on, a stale entry instead of a failure (stale-if-error), or the
 * error in words the front end chooses (cache.h, enum cache_err). */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

#include "cache_int.h"
#include "conf.h"
#include "config.h"
#include "log.h"

int64_t fetch_ttl_left(const struct flight *f)
{
    const struct cache *c = f->c;

    return (int64_t)cache_ttl(cache_conf(c), f->project_id) - (c->d.now() - f->stale->stored_ms);
}

static int is_failure(const struct up_resp *r)
{
    return r->err != UP_OK || r->status >= 500 || r->status == 429;
}

static long fwd_status(const struct up_resp *r)
{
    if (r->err == UP_ETIMEOUT)
        return 504;
    if (r->err == UP_EBUSY)
        return 503;
    return r->err != UP_OK ? 502 : r->status;
}

static int json_valid(const unsigned char *p, size_t n)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    int ok;

    if (h == NULL)
        return 0;
    ok = yajl_parse(h, p, n) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static const char *const retry_headers[] = {
    "Retry-After", "retry-after-ms", "x-should-retry", "WWW-Authenticate", NULL,
};

/* A non-200 or non-JSON answer, passed on as it came, never stored. */
static struct centry *passthrough_entry(struct cache *c, const struct up_resp *r,
                                        const unsigned char *body, size_t len)
{
    const char *ct = r->ctype ? r->ctype : "";
    struct centry *e = centry_new((int)r->status, c->d.now(), ct, strlen(ct), body, len);
    struct evbuffer *hb;
    size_t i, j;

    if (e == NULL || (hb = evbuffer_new()) == NULL)
        return e;
    for (i = 0; i < r->nheaders; i++)
        for (j = 0; retry_headers[j]; j++)
            if (strcasecmp(r->headers[i].name, retry_headers[j]) == 0)
                evbuffer_add_printf(hb, "%s: %s\n", r->headers[i].name, r->headers[i].value);
    if (evbuffer_get_length(hb)) {
        size_t n = evbuffer_get_length(hb);
        if ((e->extra_headers = malloc(n + 1)) != NULL) {
            evbuffer_remove(hb, e->extra_headers, n);
            e->extra_headers[n] = '\0';
        }
    }
    evbuffer_free(hb);
    return e;
}

/* Tell other instances' waiters that the fetch of f's key ended. */
static void publish_done(struct flight *f)
{
    struct store *st = f->c->d.store;
    char msg[8192];
    int n = snprintf(msg, sizeof(msg), DONE_PREFIX "%s", f->key);

    if (n > 0 && (size_t)n < sizeof(msg))
        st->ops->publish(st, msg, (size_t)n);
}

/* A 200 with a JSON body: stored (unless no-store) and given to every
 * waiter; then the next page. */
static void fetched_list(struct flight *f, const struct up_resp *r, const unsigned char *body,
                         size_t len, int had_waiters)
{
    struct cache *c = f->c;
    const char *ct = r->ctype ? r->ctype : "";
    struct centry *e = centry_new(200, c->d.now(), ct, strlen(ct), body, len);
    /* A prefetched page nobody asked for yet gets a pending prefetch of its
     * successor below: a worker must not answer it from the store in
     * between (and so skip that prefetch). */
    int guard = f->kind == FK_PREFETCH && !had_waiters && !f->no_store;
    struct answer origin = {.e = e, .stored = 1, .fwd = FWD_URI_MISS, .fwd_status = 200,
                            .wrote = !f->no_store};
    struct answer other = {.e = e, .stored = 1, .fwd = FWD_URI_MISS, .collapsed = 1};
    struct waiter *w;

    if (guard)
        prefetch_mark(c, f->key, 1);
    if (e != NULL) {
        e->gen_proj = f->gens.proj;
        e->gen_all = f->gens.all;
        if (!f->no_store) {
            store_set(c->d.store, f->key, f->klen, e, cache_keep_ms(cache_conf(c), f->project_id));
            l1_keep(c, f->key, f->klen, e, f->l1_flushes);
            publish_done(f);
        }
    }
    for (w = f->waiters; w; w = w->next)
        if (w->origin && w->no_cache)
            origin.fwd = FWD_REQUEST;
    if (f->no_store)
        origin.fwd = FWD_BYPASS;
    origin.xcache = other.xcache = f->no_store ? CX_BYPASS : CX_MISS;
    c->stats.misses++;
    if (f->kind == FK_PREFETCH)
        c->stats.prefetches++;
    /* Unlock before answering: the entry is in the store already. */
    flight_untable(f);
    flight_answer(f, &origin, &other);
    prefetch_after(c, f, e, had_waiters);
    if (guard)
        prefetch_mark(c, f->key, -1);
    centry_decref(e);
    flight_end(f);
}

/* What a failed fetch (or the upstream's non-200) becomes for the waiters. */
static void fetched_other(struct flight *f, const struct up_resp *r, const unsigned char *body,
                          size_t len, int invalid)
{
    struct cache *c = f->c;
    struct answer a = {.xcache = f->no_store ? CX_BYPASS : CX_MISS, .fwd = FWD_URI_MISS,
                       .fwd_status = invalid ? 502 : (int)fwd_status(r)};

    if (r->err == UP_ETIMEOUT) {
        a.err = CE_UP_TIMEOUT;
    } else if (r->err == UP_EBUSY) {
        a.err = CE_UP_BUSY;
        a.retry_after_ms = 1000;
    } else if (r->err == UP_EINVALID || invalid)
        a.err = CE_UP_INVALID;
    else if (r->err != UP_OK)
        a.err = CE_UP_UNREACHABLE;
    else
        a.e = passthrough_entry(c, r, body, len);
    flight_answer(f, &a, NULL);
    centry_decref(a.e);
    /* Tell other instances' waiters to stop waiting for us. */
    if (f->holds_lease)
        publish_done(f);
    flight_end(f);
}

static void on_fetched(void *arg, struct up_resp *r)
{
    struct flight *f = flight_of(arg);
    struct cache *c = f->c;
    unsigned char *body;
    size_t len;
    int had_waiters = f->waiters != NULL, invalid, failed;

    f->xfer = NULL;
    f->up_status = (int)fwd_status(r);
    f->up_us = r->elapsed_us;
    if (r->err == UP_OK && r->status == 429)
        cache_upstream_said_429(c, f->label, f->project_id, r);
    len = evbuffer_get_length(r->body);
    body = evbuffer_pullup(r->body, -1);
    /* A 200 whose body is not JSON is not the list it claims to be: an
     * invalid answer (502), for which a stale entry may stand in. */
    invalid = r->err == UP_OK && r->status == 200 && !json_valid(body, len);
    if (r->err == UP_OK && r->status == 200 && !invalid) {
        fetched_list(f, r, body, len, had_waiters);
        return;
    }
    failed = is_failure(r) || invalid;
    if (failed)
        log_warn("upstream %s failed: %s%s (request %s)", qn_routes[f->route].name,
                 r->err == UP_OK ? "status " : r->errmsg,
                 r->err != UP_OK ? "" : invalid ? "200 with a body that is not JSON"
                 : r->status == 429 ? "429" : "5xx", f->rid);
    if (failed && f->stale != NULL) {
        struct answer a = {.e = f->stale, .stored = 1, .xcache = CX_STALE, .fwd = FWD_STALE,
                           .fwd_status = invalid ? 502 : (int)fwd_status(r),
                           .ttl_ms = fetch_ttl_left(f), .detail = CD_SIE};
        c->stats.stale_sie++;
        flight_answer(f, &a, NULL);
        flight_end(f);
        return;
    }
    fetched_other(f, r, body, len, invalid);
}

/* The GET of f's list: its URL (malloc'd, in *url) and headers; NULL on
 * ENOMEM. */
static struct curl_slist *list_request(const struct flight *f, const struct conf *conf,
                                       char **url)
{
    struct curl_slist *h;

    *url = up_url(conf->base_url, qn_routes[f->route].path, f->canonical);
    h = up_identity(NULL, f->credlen ? f->cred : NULL, f->injected, f->rid);
    if (h != NULL && (h = up_header(h, "Accept", "application/json")) != NULL)
        h = up_header(h, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
    if (*url == NULL && h != NULL) {
        curl_slist_free_all(h);
        h = NULL;
    }
    return h;
}

void fetch_send(struct flight *f)
{
    struct cache *c = f->c;
    const struct conf *conf = cache_conf(c);
    struct up_opts opts = up_opts_of(conf);
    char *url = NULL;
    struct curl_slist *h = list_request(f, conf, &url);

    if (h != NULL)
        f->xfer = c->d.up_start(c->d.up, "GET", url, h, NULL, 0, &opts, on_fetched, f);
    free(url);
    if (f->xfer == NULL) {
        flight_fail(f, CE_UP_NOT_STARTED, 502);
        return;
    }
    flight_keep_lease(f);
}

/* Over an upstream budget, or held after an upstream 429: a stale entry
 * if there is one, else 429 with the wait. */
void fetch_refused(struct flight *f, enum admit verdict, int64_t retry_after_ms)
{
    struct cache *c = f->c;
    struct answer a = {.xcache = CX_MISS, .fwd = FWD_URI_MISS, .fwd_status = 429,
                       .detail = CD_BUDGET};

    c->stats.over_budget++;
    if (c->d.refused)
        c->d.refused(c->d.arg, f->label, verdict == ADMIT_KEY ? "key" : "upstream");
    if (f->stale != NULL) {
        a.e = f->stale;
        a.stored = 1;
        a.xcache = CX_STALE;
        a.fwd = FWD_STALE;
        a.ttl_ms = fetch_ttl_left(f);
        c->stats.stale_sie++;
    } else {
        a.err = verdict == ADMIT_KEY ? CE_BUDGET_KEY : CE_BUDGET_PROJECT;
        a.project = f->project_id;
        a.retry_after_ms = retry_after_ms;
    }
    flight_answer(f, &a, NULL);
    flight_end(f);
}
