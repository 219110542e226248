/* accesslog: one JSON object per request, on one line, e.g.
 *
 * {"time":"2024-05-01T12:34:56.789Z","request_id":"r1","method":"GET",
 *  "path":"/api/v1/jobs","route":"v1_batch_jobs","status":200,"cache":"HIT",
 *  "project":"p1","upstream_status":null,"upstream_ms":null,
 *  "duration_ms":0.412,"bytes":1234,"client":"127.0.0.1:50312",
 *  "client_name":"etl","user_agent":"curl/7.88.1","bytes_received":0,
 *  "protocol":"HTTP/1.1","detail":null}
 *
 * Keys always appear, in this order (new ones are appended, never
 * inserted); an absent value is null. Strings are made valid UTF-8 (each
 * byte that is not part of a valid sequence becomes U+FFFD) and escaped as
 * yajl_gen escapes them ('"', '\\', \b \f \n \r \t, other control bytes as
 * \u00XX), so every line parses.
 *
 * The fields marked "plain" are copied as they are, between quotes: they
 * hold lcgate's own words (a fixed set), a method (a token: hs checks it)
 * or a peer address as hs formats it, never a '"', a '\\' or a control
 * byte. Every other string is escaped.
 *
 * By design the entry has no field for a header other than User-Agent:
 * never put a key, a token or an Authorization value in any field. The
 * path is logged without its query (cut at the first '?'), since a query
 * may carry anything. Whether to log at all is the caller's business;
 * where the line goes is alog.h's. */
#ifndef LCGATE_ACCESSLOG_H
#define LCGATE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct accesslog_entry {
    int64_t time_ms;             /* wall clock, ms since the epoch; 0: now */
    const char *request_id;      /* X-Request-Id as sent upstream */
    const char *method;          /* plain */
    const char *path;            /* request target; the query is dropped */
    const char *route;           /* plain: "v1_batch_jobs", "v2_batches", "pass", "none" */
    int status;                  /* status sent to the client */
    const char *cache;           /* plain: "HIT", "MISS", "STALE", "BYPASS", or NULL */
    const char *project;         /* project_id, or NULL */
    int upstream_status;         /* 0: no upstream answer (null) */
    double upstream_ms;          /* < 0 or NaN: no upstream request (null) */
    double duration_ms;          /* arrival to reply */
    uint64_t bytes;              /* response body bytes */
    const char *client;          /* plain: peer address ("host:port", "unix") */
    const char *client_name;     /* the [client] section it authenticated as */
    const char *user_agent;
    int64_t bytes_received;      /* request body bytes; < 0: never read (null) */
    const char *protocol;        /* plain: "HTTP/1.1", "HTTP/1.0" */
    const char *detail;          /* plain: why an answer is stale or refused: the
                                    Cache-Status detail (stale-while-revalidate,
                                    stale-if-error, upstream-budget) or the
                                    budget behind a 429 (client-budget,
                                    token-budget, key-budget, upstream-budget) */
};

/* Every field at its null: no time (now), NULL strings, upstream_ms -1,
 * bytes_received -1. */
void accesslog_entry_init(struct accesslog_entry *e);

/* Append e's line, '\n' included, to *buf, which holds *len bytes in *cap
 * (malloc'd, grown with realloc; *buf may be NULL with *cap 0). 0, or -1
 * on ENOMEM with *len unchanged. No allocation when *cap is enough. */
int accesslog_append(const struct accesslog_entry *e, char **buf, size_t *len, size_t *cap);

/* e's line, '\n' included, in a malloc'd NUL-terminated buffer whose
 * length (without the NUL) goes to *len; NULL on ENOMEM. */
char *accesslog_format(const struct accesslog_entry *e, size_t *len);

#endif
