#include "conf_keys.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "request_read.h"
#include "sentinel_parse.h"

/* A row of conf_keys: section, name, type, default (NULL: unset), the
 * struct conf field, RELOAD or RESTART; then min, max (0: none), the
 * message when out of bounds (NULL: made from min and max), and the doc. */
#define KEY(sec, k, t, d, field, fl, lo, hi, msg, text) \
    {.section = sec, .name = k, .type = t, .flags = fl, .def = d, .min = lo, .max = hi, \
     .bound_msg = msg, .off = offsetof(struct conf, field), .doc = text}
#define RELOAD 0
#define RESTART CONF_RESTART

/* One message for the keys it names (max_connections is a count: never 0). */
#define SERVER_ZERO "max_connections, header_timeout and idle_timeout must be more than 0"
#define HEAD_BOUND "max_request_line must be at least 256 and max_header_size at least " \
                   "max_request_line"
#define UPSTREAM_ZERO "upstream timeouts must be more than 0"
#define L1_BOUND "l1_ttl must be at most 1m (it bounds how long another instance's write " \
                 "may go unseen if its event is lost)"

/* sentinels: a list whose every name is a host:port. */
static int parse_sentinels(void *obj, const char *v)
{
    struct conf *c = obj;
    struct strlist list = {NULL, 0};
    char host[SENTINEL_HOST_MAX + 1];
    size_t i;
    int port;

    if (conf_parse_list(v, &list) != 0)
        return -1;
    for (i = 0; i < list.n; i++) {
        if (sentinel_parse_addr(list.v[i], strlen(list.v[i]), host, &port) != 0) {
            conf_value_free(CT_LIST, &list);
            return -1;
        }
    }
    conf_value_free(CT_LIST, &c->sentinels);
    c->sentinels = list;
    return 0;
}

const struct conf_key conf_keys[] = {
    KEY("server", "listen", CT_ADDR, "127.0.0.1:8080", listen, RESTART,
        0, 0, NULL, "the client listener"),
    KEY("server", "admin_listen", CT_ADDR, "127.0.0.1:8081", admin_listen, RESTART,
        0, 0, NULL, "the operator listener: /healthz /readyz /metrics /admin/"),
    KEY("server", "tls_cert", CT_PATH, NULL, tls_cert, RELOAD,
        0, 0, NULL, "PEM certificate and chain: with tls_key, the client listener speaks TLS"),
    KEY("server", "tls_key", CT_PATH, NULL, tls_key, RELOAD,
        0, 0, NULL, "PEM private key of tls_cert (both are read again on SIGHUP)"),
    KEY("server", "drain_timeout", CT_DURATION, "10s", drain_timeout_ms, RELOAD,
        0, 0, NULL, "how long SIGTERM waits for the requests in flight"),
    KEY("server", "max_body", CT_SIZE, "1MiB", max_body, RELOAD,
        0, 0, NULL, "the largest request body (413 beyond)"),
    KEY("server", "max_request_line", CT_SIZE, "8KiB", max_request_line, RELOAD,
        256, 0, HEAD_BOUND, "the longest request line (414 beyond)"),
    KEY("server", "max_header_size", CT_SIZE, "32KiB", max_header_size, RELOAD,
        0, 0, NULL, "the longest request head (431 beyond); at least max_request_line"),
    KEY("server", "max_connections", CT_COUNT, "4096", max_connections, RELOAD,
        0, 0, NULL, "open client connections at most"),
    KEY("server", "workers", CT_COUNT, "1", workers, RESTART,
        1, 64, NULL, "threads that accept, read and write client connections"),
    KEY("server", "header_timeout", CT_DURATION, "10s", header_timeout_ms, RELOAD,
        1, 0, SERVER_ZERO, "a request head must arrive within this (408)"),
    KEY("server", "idle_timeout", CT_DURATION, "60s", idle_timeout_ms, RELOAD,
        1, 0, SERVER_ZERO, "a keep-alive connection without a request is closed"),
    KEY("server", "log_level", CT_LEVEL, "info", log_level, RELOAD,
        0, 0, NULL, "the least severe message logged"),
    KEY("server", "access_log", CT_ACCESS_LOG, "on", access_log, RELOAD,
        0, 0, NULL, "one JSON line per request: on, stderr, stdout, off or /path"),
    KEY("server", "allowed_hosts", CT_LIST, NULL, allowed_hosts, RELOAD,
        0, 0, NULL, "Host names served besides the loopback ones"),
    KEY("server", "allowed_origins", CT_LIST, NULL, allowed_origins, RELOAD,
        0, 0, NULL, "browser Origins that may send requests"),
    KEY("server", "admin_token_sha256", CT_SHA256, NULL, admin_token_sha256, RELOAD,
        0, 0, NULL, "SHA-256 of the token every /admin/ request must bear"),
    KEY("server", "max_inflight_requests", CT_COUNT, "4096", max_inflight_requests, RELOAD,
        0, 0, NULL, "requests in flight at most (503 beyond)"),
    KEY("server", "max_inflight_bytes", CT_SIZE, "256MiB", max_inflight_bytes, RELOAD,
        0, 0, NULL, "bytes held by the requests in flight; at least max_body"),
    KEY("upstream", "base_url", CT_URL, "https://api.cloud.llamaindex.ai", base_url, RELOAD,
        0, 0, NULL, "the API's address"),
    KEY("upstream", "api_key_file", CT_PATH, NULL, api_key_file, RELOAD,
        0, 0, NULL, "the file of the API key; else LLAMA_CLOUD_API_KEY; else pass-through"),
    KEY("upstream", "timeout", CT_DURATION, "30s", timeout_ms, RELOAD,
        1, 0, UPSTREAM_ZERO, "the deadline of a whole upstream request"),
    KEY("upstream", "connect_timeout", CT_DURATION, "5s", connect_timeout_ms, RELOAD,
        1, 0, UPSTREAM_ZERO, "the deadline of connecting to the upstream"),
    KEY("upstream", "rate", CT_RATE, NULL, key_rate, RELOAD,
        0, 0, NULL, "a budget for everything sent upstream with one key"),
    KEY("upstream", "burst", CT_COUNT, NULL, key_burst, RELOAD,
        0, 0, NULL, "the burst of that budget; needs rate"),
    KEY("upstream", "proxy", CT_PROXY, NULL, proxy, RELOAD,
        0, 0, NULL, "an HTTP proxy for every upstream request"),
    KEY("cache", "store", CT_STORE, "memory", store, RESTART,
        0, 0, NULL, "memory (in the process) or redis (shared)"),
    KEY("cache", "redis_url", CT_REDIS_URL, "redis://127.0.0.1:6379/0", redis_url, RESTART,
        0, 0, NULL, "the Redis server of store = redis"),
    KEY("cache", "redis_tls_ca", CT_PATH, NULL, redis_tls_ca, RESTART,
        0, 0, NULL, "rediss://: the CA file (PEM) Redis is checked with (unset: the system store)"),
    KEY("cache", "redis_tls_cert", CT_PATH, NULL, redis_tls_cert, RESTART,
        0, 0, NULL, "rediss://: a client certificate (PEM chain), with redis_tls_key"),
    KEY("cache", "redis_tls_key", CT_PATH, NULL, redis_tls_key, RESTART,
        0, 0, NULL, "rediss://: the client certificate's key (PEM)"),
    KEY("cache", "redis_tls_server_name", CT_STRING, NULL, redis_tls_server_name, RESTART,
        0, 0, NULL, "rediss://: the name (or IP) Redis's certificate must bear (unset: the host)"),
    KEY("cache", "redis_timeout", CT_DURATION, "250ms", redis_timeout_ms, RESTART,
        1, 0, NULL, "the deadline of every Redis command"),
    {.section = "cache", .name = "sentinels", .type = CT_LIST, .flags = RESTART,
     .off = offsetof(struct conf, sentinels), .parse = parse_sentinels,
     .bad_msg = "sentinels must be host:port addresses separated by commas",
     .doc = "Redis Sentinel addresses: the primary is found and followed through failovers"},
    KEY("cache", "sentinel_master", CT_STRING, NULL, sentinel_master, RESTART,
        0, 0, NULL, "the master name the sentinels monitor; with sentinels, and needed by them"),
    KEY("cache", "sentinel_password", CT_STRING, NULL, sentinel_password, RESTART,
        0, 0, NULL, "the sentinels' own password (AUTH), when they require one"),
    KEY("cache", "ttl", CT_DURATION, "30s", ttl_ms, RELOAD,
        1, 0, NULL, "how long a stored list answer is fresh"),
    KEY("cache", "stale_while_revalidate", CT_DURATION, "30s", stale_while_revalidate_ms, RELOAD,
        0, 0, NULL, "past ttl: stale served while one refresh runs"),
    KEY("cache", "stale_if_error", CT_DURATION, "10m", stale_if_error_ms, RELOAD,
        0, 0, NULL, "past ttl: stale served while the upstream fails"),
    KEY("cache", "memory_max", CT_SIZE, "64MiB", memory_max, RESTART,
        64 * 1024, 0, NULL, "the bound of the memory store (of the L1 with redis)"),
    KEY("cache", "prefetch", CT_BOOL, "on", prefetch, RELOAD,
        0, 0, NULL, "fetch the next page after a list miss"),
    KEY("cache", "lock_lease", CT_DURATION, "2s", lock_lease_ms, RELOAD,
        100, 0, NULL, "the cross-instance fetch lock, renewed while fetching"),
    KEY("cache", "l1_ttl", CT_DURATION, "1s", l1_ttl_ms, RELOAD,
        0, 60000, L1_BOUND, "store = redis: fresh answers also kept in the process (0s: off)"),
    KEY("cache", "ignore_client_no_cache", CT_BOOL, "off", ignore_client_no_cache, RELOAD,
        0, 0, NULL, "treat a client's Cache-Control: no-cache like any request"),
    KEY("ratelimit", "rate", CT_RATE, "20/s", rate, RELOAD,
        0, 0, NULL, "every request of a project, hits included"),
    KEY("ratelimit", "burst", CT_COUNT, "40", burst, RELOAD,
        0, 0, NULL, "the burst of rate"),
    KEY("ratelimit", "upstream_rate", CT_RATE, "5/s", upstream_rate, RELOAD,
        0, 0, NULL, "what lcgate sends upstream for a project"),
    KEY("ratelimit", "upstream_burst", CT_COUNT, "10", upstream_burst, RELOAD,
        0, 0, NULL, "the burst of upstream_rate"),
};
const size_t conf_nkeys = sizeof(conf_keys) / sizeof(conf_keys[0]);
#undef L1_BOUND
#undef UPSTREAM_ZERO
#undef RESTART
#undef RELOAD
#undef KEY

/* A row of conf_project_keys: name, type, the struct conf_project field
 * and its has_ flag (or 0), the doc. */
#define PKEY(k, t, field, has, text) \
    {.section = "project", .name = k, .type = t, .off = offsetof(struct conf_project, field), \
     .has_off = has, .doc = text}
#define HAS(field) offsetof(struct conf_project, field)
const struct conf_key conf_project_keys[] = {
    PKEY("rate", CT_RATE, rate, HAS(has_rate), "the project's [ratelimit] rate"),
    PKEY("burst", CT_COUNT, burst, HAS(has_burst), "the project's [ratelimit] burst"),
    PKEY("upstream_rate", CT_RATE, upstream_rate, HAS(has_upstream_rate),
         "the project's [ratelimit] upstream_rate"),
    PKEY("upstream_burst", CT_COUNT, upstream_burst, HAS(has_upstream_burst),
         "the project's [ratelimit] upstream_burst"),
    PKEY("ttl", CT_DURATION, ttl_ms, HAS(has_ttl), "the project's [cache] ttl"),
    PKEY("api_key_file", CT_PATH, api_key_file, 0, "the key injected for the project's requests"),
};
const size_t conf_nproject_keys = sizeof(conf_project_keys) / sizeof(conf_project_keys[0]);
#undef HAS
#undef PKEY

/* projects = *, or project ids kept canonical: they are compared with a
 * request's canonical ids. */
static int parse_client_projects(void *obj, const char *v)
{
    struct conf_client *cl = obj;
    struct strlist list = {NULL, 0};
    size_t i;

    if (strcmp(v, "*") == 0) {
        cl->all_projects = 1;
        return 0;
    }
    if (conf_parse_list(v, &list) != 0)
        return -1;
    for (i = 0; i < cl->nprojects; i++)
        free(cl->projects[i]);
    free(cl->projects);
    cl->projects = list.v;
    cl->nprojects = list.n;
    for (i = 0; i < list.n; i++) {
        char *c = rr_project_canon(list.v[i], strlen(list.v[i]));
        if (c == NULL)
            return -1;
        free(list.v[i]);
        list.v[i] = c;
    }
    return 0;
}

/* A row of conf_client_keys: name, type, the struct conf_client field, its
 * has_ flag (or 0), its parser (NULL: the type's), the message of a
 * malformed value (NULL: the type's), the doc. */
#define CKEY(k, t, field, has, parser, bad, text) \
    {.section = "client", .name = k, .type = t, .off = offsetof(struct conf_client, field), \
     .has_off = has, .parse = parser, .bad_msg = bad, .doc = text}
const struct conf_key conf_client_keys[] = {
    CKEY("token_sha256", CT_SHA256, token_sha256, 0, NULL,
         "token_sha256 must be 64 hex digits (sha256sum of the token)",
         "SHA-256 of the client's token (required)"),
    CKEY("projects", CT_LIST, projects, 0, parse_client_projects,
         "projects must list project ids separated by commas, or *",
         "the project ids the client may use, or * (required)"),
    CKEY("rate", CT_RATE, rate, offsetof(struct conf_client, has_rate), NULL, NULL,
         "a budget for every request of the client"),
    CKEY("burst", CT_COUNT, burst, 0, NULL, NULL, "the burst of the client's rate; needs rate"),
};
const size_t conf_nclient_keys = sizeof(conf_client_keys) / sizeof(conf_client_keys[0]);
#undef CKEY

int conf_key_index(const char *section, const char *name)
{
    size_t i;

    for (i = 0; i < conf_nkeys; i++)
        if (strcmp(conf_keys[i].section, section) == 0 && strcmp(conf_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

const struct conf_key *conf_key_lookup(const struct conf_key *rows, size_t n,
                                       const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    return NULL;
}

int conf_key_in_bounds(const struct conf_key *k, const void *obj)
{
    uint64_t v = conf_value_number(k->type, (const char *)obj + k->off);

    return v >= k->min && (k->max == 0 || v <= k->max);
}

void conf_key_bound_msg(const struct conf_key *k, char *buf, size_t len)
{
    char lo[32], hi[32];

    if (k->bound_msg != NULL) {
        snprintf(buf, len, "%s", k->bound_msg);
        return;
    }
    conf_value_format(k->type, k->min, lo, sizeof(lo));
    conf_value_format(k->type, k->max, hi, sizeof(hi));
    if (k->max == 0 && k->min == 1)
        snprintf(buf, len, "%s must be more than 0", k->name);
    else if (k->max == 0)
        snprintf(buf, len, "%s must be at least %s", k->name, lo);
    else if (k->min == 0)
        snprintf(buf, len, "%s must be at most %s", k->name, hi);
    else
        snprintf(buf, len, "%s must be from %s to %s", k->name, lo, hi);
}

void conf_key_names(const struct conf_key *rows, size_t n, char *buf, size_t len)
{
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                         rows[i].name);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

static void print_rows(FILE *out, const struct conf_key *rows, size_t n)
{
    char lo[32], hi[32];
    size_t i;

    for (i = 0; i < n; i++) {
        const struct conf_key *k = &rows[i];
        conf_value_format(k->type, k->min, lo, sizeof(lo));
        conf_value_format(k->type, k->max, hi, sizeof(hi));
        fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->section, k->name,
                conf_type_name(k->type), k->def ? k->def : "-",
                k->flags & CONF_RESTART ? "restart" : "reload", k->min != 0 ? lo : "-",
                k->max != 0 ? hi : "-", k->doc);
    }
}

void conf_keys_print(FILE *out)
{
    print_rows(out, conf_keys, conf_nkeys);
    print_rows(out, conf_project_keys, conf_nproject_keys);
    print_rows(out, conf_client_keys, conf_nclient_keys);
}

#ifndef NDEBUG
static void check_rows(const struct conf_key *rows, size_t n, int repeating)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        const struct conf_key *k = &rows[i];
        int numeric = k->type == CT_DURATION || k->type == CT_SIZE || k->type == CT_COUNT;

        assert(k->section && k->name && k->doc);
        assert(numeric || (k->min == 0 && k->max == 0));
        assert(k->max == 0 || k->min <= k->max);
        assert(repeating || k->has_off == 0);
        assert(!repeating || (k->def == NULL && k->flags == 0));
        for (j = 0; j < i; j++)
            assert(strcmp(rows[j].section, k->section) != 0 ||
                   strcmp(rows[j].name, k->name) != 0);
    }
}
#endif

void conf_keys_check(void)
{
#ifndef NDEBUG
    struct conf *c = calloc(1, sizeof(*c));
    size_t i;

    check_rows(conf_keys, conf_nkeys, 0);
    check_rows(conf_project_keys, conf_nproject_keys, 1);
    check_rows(conf_client_keys, conf_nclient_keys, 1);
    if (c == NULL)
        return;
    /* Every default parses and is within its bounds. */
    for (i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        int rc = k->def ? conf_value_parse(k->type, (char *)c + k->off, k->def) : 0;
        assert(rc == 0 && conf_key_in_bounds(k, c));
        conf_value_free(k->type, (char *)c + k->off);
        (void)rc;
    }
    free(c);
#endif
}

void conf_key_env_name(const struct conf_key *k, char *out, size_t len)
{
    size_t i;

    snprintf(out, len, "LCGATE_%s_%s", k->section, k->name);
    for (i = 0; out[i]; i++)
        out[i] = (char)toupper((unsigned char)out[i]);
}
