/* front_int.h: what the front end's files share (http_front.c the
 * pipeline, front_read.c the reading, front_reply.c the answers,
 * front_pass.c pass-through). Not for other modules: they see
 * http_front.h. */
#ifndef LCGATE_FRONT_INT_H
#define LCGATE_FRONT_INT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "cache.h"
#include "cache_key.h"
#include "hs.h"
#include "list.h"
#include "query_norm.h"
#include "ratelimit.h"
#include "request_read.h"

struct conf;
struct conf_client;
struct evbuffer;
struct front_worker;
struct gw;
struct up_resp;
struct worker;

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
    unsigned magic;              /* GREQ_MAGIC while it is not answered */
    struct gw *gw;
    struct list node;            /* in gw->inflight (main's requests only) */
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
    char clkey[CK_LABEL_MAX + 16];   /* its client's own budget's key, or "" */
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
    const struct answer *fast_hit;   /* the hit a worker found for it */
    struct worker *worker;       /* the worker that took g, with: */
    struct front_worker *local;  /* a worker's own, when it took g (g and
                                    its held conf are then freed with it) */
    struct answer hit;           /* its hit (hit.e a reference of g's) */
    int answered;                /* greq_finish ran (a worker's, on its stack) */
    int has_head_length;         /* a pass-through HEAD: the upstream's */
    uint64_t head_length;        /* Content-Length, which the answer states */
};

#define GREQ_MAGIC 0x67726571u   /* "greq" */

/* The struct greq behind a callback's arg. */
static inline struct greq *greq_of(void *arg)
{
    struct greq *g = arg;

    assert(g->magic == GREQ_MAGIC);
    return g;
}

/* The budgets a request may be refused by: the label of
 * lcgate_rate_limited_total's budget, the access log's detail, and what
 * the 429 names. */
enum budget { B_CLIENT, B_UPSTREAM, B_TOKEN, B_KEY };

/* ---- front_read.c ---- */

/* Is the client listener local (loopback or a Unix socket)? Set once at
 * start: a reload cannot move the listener. */
extern int front_local;

/* Read req once, as the upstream will: the doors, the path, the query, the
 * list normalizer, the projects and who may act on them. rd->status is 0
 * when the request may go on. */
void read_request(const struct conf *c, struct hs_req *req, struct reading *rd);
void reading_free(struct reading *rd);
/* The credential that decides whose answer this is: the injected key
 * (*key, for project), or the client's Authorization in pass-through
 * mode (*key NULL). */
const char *credential_in(const struct conf *c, const struct hs_req *req,
                          const char *project, const char **key);

/* ---- front_reply.c ---- */

/* The request ids' random part, once at start. 0 or -1 (errno). */
int greq_rid_init(void);
/* g's X-Request-Id: the client's when it is a plain token, else a new one. */
void greq_set_rid(struct greq *g);
/* Reply and free g: the one way a request ends (a worker's g, on its
 * stack, only has its fields freed). */
void greq_finish(struct greq *g, int status, struct evbuffer *body);
/* The same with a JSON body, which it frees. */
void greq_finish_json(struct greq *g, int status, struct evbuffer *buf);
/* {"detail": text} and status. */
void greq_fail(struct greq *g, int status, const char *text);
/* The answer to an upstream request that failed (502, 503, 504). */
void greq_fail_upstream(struct greq *g, const struct up_resp *r);
/* A 429 from one of g's budgets: counted, with its wait and its name. */
void refuse_budget(struct greq *g, enum budget b, int64_t retry_after_ms);
/* The cache's answer to g (cache_done_cb). */
void greq_answer(void *arg, const struct answer *a);
/* Frees what g holds (and g, unless a worker's). */
void greq_free(struct greq *g);
/* Answer a request its reading refused, or one that never became a greq. */
void refuse_reading(struct gw *gw, struct hs_req *req, struct reading *rd);
void reply_detail(struct gw *gw, struct hs_req *req, int status, const char *text);
void front_retry_headers(struct hs_req *req, int64_t retry_after_ms);
/* {"detail":"<text>"}, text escaped as JSON (NULL on ENOMEM). */
struct evbuffer *front_detail_body(const char *text);
/* The access log line and the request metrics of an answer. client: the
 * [client] name when there is no g; r: the route when there is no g. */
void front_account(struct gw *gw, const struct conf *conf, const struct hs_req *req,
                   const struct greq *g, const char *client, int r, int status, size_t bytes);

/* ---- front_pass.c ---- */

/* The route whose lists a write to path (decoded) changes, or -1. */
int write_route(const char *path, enum hs_method m);
/* Send g upstream as it came, once the upstream budgets admit it. */
void pass_admit(struct greq *g);
/* Pass-through reads in flight (delta +1, -1): while there are some, a
 * timer looks for the ones whose client went away, and cancels them. */
void gw_pass_reads(struct gw *gw, int delta);
void front_gone_poll(evutil_socket_t fd, short what, void *arg);

#endif
