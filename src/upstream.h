/* upstream: HTTP requests to the API over libcurl's multi interface, driven
 * by the same libevent base as everything else (curl's hiperfifo pattern).
 * Connections are reused across requests by the multi handle.
 *
 * The done callback is called exactly once per started transfer, never
 * from inside a curl callback, unless the transfer is cancelled first. */
#ifndef LCGATE_UPSTREAM_H
#define LCGATE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct curl_slist;

enum up_err {
    UP_OK = 0,       /* an HTTP answer arrived (any status) */
    UP_ECONNECT,     /* could not connect, resolve, or the peer reset: 502 */
    UP_ETIMEOUT,     /* connect_timeout or timeout elapsed: 504 */
    UP_EINVALID,     /* answer malformed or too large: 502 */
    UP_EBUSY         /* it would take the memory of requests in flight past
                        its bound (up_client_memory): 503 */
};

struct up_header {
    char *name;
    char *value;
};

struct up_resp {
    enum up_err err;
    const char *errmsg;          /* for logs; never holds a key */
    long status;
    struct up_header *headers;   /* in arrival order, of the final answer */
    size_t nheaders;
    const char *ctype;           /* Content-Type value or NULL */
    struct evbuffer *body;       /* the callback may drain or take it */
    int64_t elapsed_us;
};

typedef void (*up_done_cb)(void *arg, struct up_resp *resp);

struct up_client;
struct up_xfer;

struct up_client *up_client_new(struct event_base *base);
/* Called once per finished transfer (not cancelled ones), for metrics. */
typedef void (*up_observe_cb)(void *arg, const struct up_resp *resp);
void up_client_observe(struct up_client *c, up_observe_cb cb, void *arg);
/* Memory held by requests in flight: what the front end counts for their
 * bodies, plus what transfers hold (a copy of each request body and the
 * answers buffered so far). A transfer that would take used past max (0:
 * no bound) fails with UP_EBUSY. The caller owns m, which must outlive c. */
struct up_memory {
    size_t used, max;
};
void up_client_memory(struct up_client *c, struct up_memory *m, size_t max);
/* Abort every transfer in flight (their callbacks are not called). */
void up_client_free(struct up_client *c);
size_t up_client_inflight(const struct up_client *c);

/* The largest answer lcgate takes from the upstream (up_opts.max_response
 * of every request it sends). */
#define MAX_RESPONSE (64u * 1024 * 1024)

struct up_opts {
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    size_t max_response;         /* larger answers fail with UP_EINVALID */
    const char *proxy;           /* http://host:port, or NULL for none; the
                                    environment's proxies are never used */
};

/* Start method url with headers (taken over: freed by the client) and an
 * optional body (copied). NULL on failure, with headers freed. */
struct up_xfer *up_start(struct up_client *c, const char *method, const char *url,
                         struct curl_slist *headers, const void *body, size_t body_len,
                         const struct up_opts *opts, up_done_cb cb, void *arg);
/* Append "name: value" to a header list; on failure the list is freed
 * and NULL returned, so calls can be chained. */
struct curl_slist *up_header(struct curl_slist *l, const char *name, const char *value);

/* What every request lcgate sends upstream is built from, for a list the
 * cache fetches and for pass-through alike. */
struct conf;
/* base + path + "?" + query (no "?" when query is NULL or empty);
 * malloc'd, NULL on ENOMEM. path is encoded already. */
char *up_url(const char *base, const char *path, const char *query);
/* h plus Authorization (cred: "Bearer <cred>" when injected is lcgate's
 * key, else the client's own value as it is; none without a cred) and
 * X-Request-Id: rid. NULL on ENOMEM, h freed. */
struct curl_slist *up_identity(struct curl_slist *h, const char *cred, int injected,
                               const char *rid);
/* The options of every request under c's [upstream]. */
struct up_opts up_opts_of(const struct conf *c);

/* Stop a transfer in flight; its callback will not be called. */
void up_cancel(struct up_xfer *x);

#endif
