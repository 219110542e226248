/* accesslog: one JSON object per request, on one line, e.g.
 *
 * {"time":"2024-05-01T12:34:56.789Z","request_id":"r1","method":"GET",
 *  "path":"/api/v1/jobs","route":"v1_batch_jobs","status":200,"cache":"HIT",
 *  "project":"p1","upstream_status":null,"upstream_ms":null,
 *  "duration_ms":0.412,"bytes":1234,"client":"127.0.0.1:50312"}
 *
 * Keys always appear, in this order; an absent value is null. Strings are
 * made valid UTF-8 (each byte that is not part of a valid sequence becomes
 * U+FFFD) and control characters are escaped, so every line parses.
 *
 * By design the entry has no field for a header: never put a key, a token
 * or an Authorization value in any field. The path is logged without its
 * query (cut at the first '?'), since a query may carry anything.
 * Whether to log at all is the caller's business. */
#ifndef LCGATE_ACCESSLOG_H
#define LCGATE_ACCESSLOG_H

#include <stdint.h>
#include <stdio.h>

struct accesslog_entry {
    int64_t time_ms;             /* wall clock, ms since the epoch; 0: now */
    const char *request_id;      /* X-Request-Id as sent upstream */
    const char *method;
    const char *path;            /* request target; the query is dropped */
    const char *route;           /* "v1_batch_jobs", "v2_batches", "pass", "none" */
    int status;                  /* status sent to the client */
    const char *cache;           /* "HIT", "MISS", "STALE", "BYPASS", or NULL */
    const char *project;         /* project_id, or NULL */
    int upstream_status;         /* 0: no upstream answer (null) */
    double upstream_ms;          /* < 0 or NaN: no upstream request (null) */
    double duration_ms;          /* arrival to reply */
    uint64_t bytes;              /* response body bytes */
    const char *client;          /* peer address ("host:port", "unix") */
};

/* Every field at its null: no time (now), NULL strings, upstream_ms -1. */
void accesslog_entry_init(struct accesslog_entry *e);

/* e as one JSON line, '\n' included, in a malloc'd NUL-terminated buffer
 * whose length (without the NUL) goes to *len; NULL on ENOMEM. */
char *accesslog_format(const struct accesslog_entry *e, size_t *len);

/* Write e's line to f with one fwrite (so that lines from several writers
 * do not interleave on an unbuffered or line-buffered stream). f NULL:
 * stderr. Returns 0, or -1 if the line could not be built or written. */
int accesslog_write(FILE *f, const struct accesslog_entry *e);

#endif
