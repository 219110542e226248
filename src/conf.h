/* conf: the INI configuration (libinih), its defaults, validation and the
 * LCGATE_<SECTION>_<KEY> environment overrides, all read from the key
 * tables of conf_keys.h. A struct conf is immutable once loaded; a reload
 * builds a new one and swaps it in. */
#ifndef LCGATE_CONF_H
#define LCGATE_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf_value.h"

struct conf_project {
    char *id;                    /* canonical (request_read.h) */
    char *section;               /* as the section spelled it */
    int has_rate, has_burst, has_upstream_rate, has_upstream_burst, has_ttl;
    struct rate rate, upstream_rate;
    unsigned burst, upstream_burst;
    uint64_t ttl_ms;
    char *api_key_file;
    char *api_key;               /* read from api_key_file; a secret */
};

struct conf_client {
    char *name;
    uint8_t token_sha256[32];
    int all_projects;            /* projects = * */
    char **projects;             /* canonical project ids, or "default" */
    size_t nprojects;
    int has_rate;                /* rate/burst: every request of the client */
    struct rate rate;
    unsigned burst;
};

struct conf {
    int refs;                    /* holders besides the first (atomic) */
    char *path;                  /* the file it was read from */

    /* [server] */
    char *listen;
    char *admin_listen;
    char *tls_cert;              /* both or neither (conf_load checks): the */
    char *tls_key;               /* client listener speaks TLS (tls.h) */
    uint64_t drain_timeout_ms;
    size_t max_body;
    size_t max_request_line;     /* 414 beyond */
    size_t max_header_size;      /* 431 beyond: request line and fields */
    unsigned max_connections;    /* then accept no more until one closes */
    unsigned workers;            /* client I/O threads (1: all on the main loop) */
    uint64_t header_timeout_ms;  /* a request's head must arrive within */
    uint64_t idle_timeout_ms;    /* a keep-alive connection may wait */
    char *log_level;             /* error, warn, info, debug */
    char *access_log;            /* one JSON line per request to "stderr",
                                    "stdout" or this absolute path; NULL: off */
    struct strlist allowed_hosts;    /* Host names served besides loopback ones */
    struct strlist allowed_origins;  /* Origins that may send requests */
    int has_admin_token;
    uint8_t admin_token_sha256[32];  /* POST /admin/... needs this token */
    unsigned max_inflight_requests;  /* then 503 */
    size_t max_inflight_bytes;       /* bodies held by requests in flight */

    /* [upstream] */
    char *base_url;              /* without a trailing '/' */
    char *api_key_file;
    char *api_key;               /* file, else LLAMA_CLOUD_API_KEY, else NULL
                                    (pass-through mode); a secret */
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    int has_key_rate;            /* rate/burst: all that one key sends */
    struct rate key_rate;
    unsigned key_burst;
    char *proxy;                 /* http://host:port, or NULL: no proxy at all
                                    (the environment's are never used) */

    /* [cache] */
    enum store_kind store;
    char *redis_url;
    char *redis_tls_ca;          /* rediss://: NULL, the system store */
    char *redis_tls_cert;        /* rediss://: both or neither */
    char *redis_tls_key;
    char *redis_tls_server_name; /* NULL: the URL's host */
    uint64_t redis_timeout_ms;
    struct strlist sentinels;    /* host:port each; none: redis_url's host */
    char *sentinel_master;       /* the name the sentinels monitor */
    char *sentinel_password;     /* the sentinels' AUTH; a secret */
    uint64_t ttl_ms;
    uint64_t stale_while_revalidate_ms;
    uint64_t stale_if_error_ms;
    size_t memory_max;
    int prefetch;
    uint64_t lock_lease_ms;
    uint64_t l1_ttl_ms;          /* store = redis: in-process copies, 0 = none */
    int ignore_client_no_cache;

    /* [ratelimit] */
    struct rate rate, upstream_rate;
    unsigned burst, upstream_burst;

    struct conf_project *projects;
    size_t nprojects;
    struct conf_client *clients;
    size_t nclients;
};

/* Load path, apply environment overrides, validate, read key files.
 * Returns NULL and writes "FILE:LINE: reason" (or "VAR: reason") to err. */
struct conf *conf_load(const char *path, char *err, size_t errlen);
/* Another holder (a worker thread answering with it): conf_free drops one
 * hold, and the last frees. */
void conf_hold(struct conf *c);
void conf_free(struct conf *c);

/* The [project] section of a canonical project id (NULL: none). */
const struct conf_project *conf_project(const struct conf *c, const char *id);
/* The key injected for a request of project id (may be NULL): the
 * project's own key, else the global one, else NULL (pass-through). */
const char *conf_api_key(const struct conf *c, const char *project_id);

/* lcgate -T: c as INI on out, every key of [server], [upstream], [cache]
 * and [ratelimit] (set, default or overridden), then the [project] and
 * [client] sections. No secret is written: a key is "set" or "unset", the
 * Redis password is masked, token hashes are "set". 0, or -1 on a write
 * error. */
int conf_dump(const struct conf *c, FILE *out);
/* url with its password (if any) replaced by "****"; 0, or -1 if out is
 * too small. */
int conf_redis_url_masked(const char *url, char *out, size_t len);
/* A reload from cur to next: the names of the CONF_RESTART keys whose
 * values differ ("listen, workers") into buf, "" when none; their number. */
size_t conf_restart_changes(const struct conf *cur, const struct conf *next, char *buf,
                            size_t len);

#endif
