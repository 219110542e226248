#include "upstream.h"


#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "conf.h"
#include "list.h"
#include "log.h"

struct up_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    size_t inflight;
    struct list xfers;           /* in flight, for up_client_free */
    up_observe_cb observe;
    void *observe_arg;
    struct up_memory *mem;       /* NULL: not counted */
};

struct up_xfer {
    struct up_client *c;
    struct list link;            /* c->xfers */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t max_response;
    int too_large, too_busy;
    size_t held;                 /* bytes counted in c->mem */
    struct up_resp resp;
    size_t cap_headers;
    char errbuf[CURL_ERROR_SIZE];
    up_done_cb cb;
    void *arg;
};

/* Per-socket state, attached with curl_multi_assign. */
struct sock {
    struct event *ev;
};

static void check_done(struct up_client *c);

static void free_headers(struct up_resp *r)
{
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

static void unlink_xfer(struct up_xfer *x)
{
    list_unlink(&x->link);
    x->c->inflight--;
}

static void xfer_free(struct up_xfer *x)
{
    if (x->c->mem != NULL)
        x->c->mem->used -= x->held;
    free_headers(&x->resp);
    if (x->resp.body)
        evbuffer_free(x->resp.body);
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct up_client *c = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
                (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;

    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *cbp, void *sockp)
{
    struct up_client *c = cbp;
    struct sock *sk = sockp;
    short kind;

    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            event_free(sk->ev);
            free(sk);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) |
                   (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
    if (sk == NULL) {
        if ((sk = calloc(1, sizeof(*sk))) == NULL)
            return -1;
        curl_multi_assign(c->multi, s, sk);
    } else {
        event_free(sk->ev);
    }
    sk->ev = event_new(c->base, s, kind, on_sock_event, c);
    if (sk->ev == NULL)
        return -1;
    event_add(sk->ev, NULL);
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct up_client *c = arg;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct up_client *c = arg;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    /* Even a 0 ms timeout goes through the loop: curl must not be re-entered
     * from its own callback. */
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(c->timer, &tv);
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct up_xfer *x = arg;
    size_t len = size * n, nlen, vstart;
    char *colon;
    struct up_header *h;

    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line: an interim answer (100) came before. */
        free_headers(&x->resp);
        x->resp.ctype = NULL;
        return len;
    }
    colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len; /* the blank line that ends the block */
    nlen = (size_t)(colon - buf);
    vstart = nlen + 1;
    while (vstart < len && (buf[vstart] == ' ' || buf[vstart] == '\t'))
        vstart++;
    while (len > vstart && (buf[len - 1] == '\r' || buf[len - 1] == '\n' ||
                            buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (x->resp.nheaders == x->cap_headers) {
        size_t cap = x->cap_headers ? x->cap_headers * 2 : 16;
        if (cap > 512)
            return 0; /* absurd header count: fail the transfer */
        h = realloc(x->resp.headers, cap * sizeof(*h));
        if (h == NULL)
            return 0;
        x->resp.headers = h;
        x->cap_headers = cap;
    }
    h = &x->resp.headers[x->resp.nheaders];
    h->name = strndup(buf, nlen);
    h->value = strndup(buf + vstart, len - vstart);
    if (h->name == NULL || h->value == NULL) {
        free(h->name);
        free(h->value);
        return 0;
    }
    x->resp.nheaders++;
    return size * n;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    struct up_xfer *x = arg;
    size_t len = size * n;

    struct up_memory *m = x->c->mem;

    if (evbuffer_get_length(x->resp.body) + len > x->max_response) {
        x->too_large = 1;
        return 0;
    }
    if (m != NULL && m->max && m->used + len > m->max) {
        x->too_busy = 1;
        return 0;
    }
    if (evbuffer_add(x->resp.body, buf, len) != 0)
        return 0;
    if (m != NULL) {
        m->used += len;
        x->held += len;
    }
    return len;
}

static enum up_err classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return UP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return UP_ETIMEOUT;
    case CURLE_WRITE_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_FILESIZE_EXCEEDED:
        return UP_EINVALID;
    default:
        return UP_ECONNECT;
    }
}

static void check_done(struct up_client *c)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct up_xfer *x;
        size_t i;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        x->resp.err = classify(msg->data.result);
        if (x->too_large)
            x->resp.err = UP_EINVALID;
        else if (x->too_busy)
            x->resp.err = UP_EBUSY;
        x->resp.errmsg = x->too_large ? "answer larger than the configured limit"
                         : x->too_busy ? "requests in flight hold max_inflight_bytes"
                         : x->errbuf[0] ? x->errbuf : curl_easy_strerror(msg->data.result);
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
        if (x->resp.err == UP_OK && x->resp.status < 100)
            x->resp.err = UP_EINVALID;
        for (i = 0; i < x->resp.nheaders; i++)
            if (strcasecmp(x->resp.headers[i].name, "Content-Type") == 0)
                x->resp.ctype = x->resp.headers[i].value;
        x->resp.elapsed_us = mono_us() - x->resp.elapsed_us;
        curl_multi_remove_handle(c->multi, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
        unlink_xfer(x);
        if (c->observe)
            c->observe(c->observe_arg, &x->resp);
        x->cb(x->arg, &x->resp);
        xfer_free(x);
    }
}

struct up_client *up_client_new(struct event_base *base)
{
    struct up_client *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->base = base;
    list_init(&c->xfers);
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, on_timer, c);
    if (c->multi == NULL || c->timer == NULL) {
        up_client_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L);
    return c;
}

void up_client_free(struct up_client *c)
{
    if (c == NULL)
        return;
    while (!list_empty(&c->xfers))
        up_cancel(list_entry(list_first(&c->xfers), struct up_xfer, link));
    if (c->multi)
        curl_multi_cleanup(c->multi);
    if (c->timer)
        event_free(c->timer);
    free(c);
}

void up_client_observe(struct up_client *c, up_observe_cb cb, void *arg)
{
    c->observe = cb;
    c->observe_arg = arg;
}

void up_client_memory(struct up_client *c, struct up_memory *m, size_t max)
{
    c->mem = m;
    m->max = max;
}

size_t up_client_inflight(const struct up_client *c)
{
    return c->inflight;
}

void up_cancel(struct up_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy) {
        curl_multi_remove_handle(x->c->multi, x->easy);
        curl_easy_cleanup(x->easy);
        unlink_xfer(x);
    }
    xfer_free(x);
}

struct up_xfer *up_start(struct up_client *c, const char *method, const char *url,
                         struct curl_slist *headers, const void *body, size_t body_len,
                         const struct up_opts *opts, up_done_cb cb, void *arg)
{
    struct up_xfer *x = calloc(1, sizeof(*x));
    CURL *e;

    if (x == NULL) {
        curl_slist_free_all(headers);
        return NULL;
    }
    x->c = c;
    x->headers = headers;
    x->cb = cb;
    x->arg = arg;
    x->max_response = opts->max_response;
    x->resp.body = evbuffer_new();
    x->easy = e = curl_easy_init();
    if (e == NULL || x->resp.body == NULL ||
        (body_len && (x->body = malloc(body_len)) == NULL)) {
        if (e)
            curl_easy_cleanup(e);
        x->easy = NULL;
        xfer_free(x);
        return NULL;
    }
    if (body_len)
        memcpy(x->body, body, body_len);
    if (c->mem != NULL) {
        c->mem->used += body_len;
        x->held = body_len;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)opts->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* "" turns off curl's reading of http_proxy, ALL_PROXY and the rest (a
     * variable in lcgate's environment must not reroute the key), and
     * NOPROXY "" keeps no_proxy from bypassing the configured one. */
    curl_easy_setopt(e, CURLOPT_PROXY, opts->proxy ? opts->proxy : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (body_len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
            strcmp(method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        }
    }
    x->resp.elapsed_us = mono_us();
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        x->easy = NULL;
        xfer_free(x);
        return NULL;
    }
    c->inflight++;
    list_push_front(&c->xfers, &x->link);
    return x;
}

struct curl_slist *up_header(struct curl_slist *l, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *r = NULL;

    if (line != NULL) {
        snprintf(line, n, "%s: %s", name, value);
        r = curl_slist_append(l, line);
        free(line);
    }
    if (r == NULL)
        curl_slist_free_all(l);
    return r;
}

char *up_url(const char *base, const char *path, const char *query)
{
    int q = query != NULL && *query != '\0';
    size_t n = strlen(base) + strlen(path) + (q ? strlen(query) + 1 : 0) + 1;
    char *url = malloc(n);

    if (url != NULL)
        snprintf(url, n, "%s%s%s%s", base, path, q ? "?" : "", q ? query : "");
    return url;
}

struct curl_slist *up_identity(struct curl_slist *h, const char *cred, int injected,
                               const char *rid)
{
    /* (h may be NULL: an empty list; up_header's NULL is a failure.) */
    if (cred != NULL && injected) {
        size_t n = strlen(cred) + 8;
        char *bearer = malloc(n);
        if (bearer == NULL) {
            curl_slist_free_all(h);
            return NULL;
        }
        snprintf(bearer, n, "Bearer %s", cred);
        h = up_header(h, "Authorization", bearer);
        free(bearer);
        if (h == NULL)
            return NULL;
    } else if (cred != NULL && (h = up_header(h, "Authorization", cred)) == NULL) {
        return NULL;
    }
    return up_header(h, "X-Request-Id", rid);
}

struct up_opts up_opts_of(const struct conf *c)
{
    struct up_opts o = {c->timeout_ms, c->connect_timeout_ms, MAX_RESPONSE, c->proxy};

    return o;
}
