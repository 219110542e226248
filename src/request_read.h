/* request_read: the one reading of a client request that every decision
 * uses (routing, the list normalizer, the client's projects, which key,
 * budgets, invalidation, logs). It reads the bytes exactly as the upstream
 * (FastAPI on Starlette and uvicorn, pydantic, Python's json) will, so that
 * lcgate never decides on one meaning while the upstream acts on another.
 * Pure: no I/O, no event loop.
 *
 * Where the upstream would read something lcgate cannot read the same way
 * (bad percent-encoding, invalid UTF-8, a raw non-ASCII byte, a dot
 * segment, a backslash), the request is refused rather than guessed at. */
#ifndef LCGATE_REQUEST_READ_H
#define LCGATE_REQUEST_READ_H

#include <stddef.h>

/* One parameter of a query, decoded: name and value are NUL-terminated
 * (and never hold a NUL byte). */
struct rr_param {
    const char *name, *value;
    size_t nlen, vlen;
};

/* A query as Starlette's parse_qsl(keep_blank_values=True) reads it:
 * split on '&' only, empty pieces skipped, a piece without '=' is a name
 * with an empty value, '+' is a space, then names and values
 * percent-decoded as UTF-8. Names are case-sensitive; the last of
 * repeated names is the one the upstream reads (rr_query_last). Refused:
 * a raw non-ASCII byte, '#' (a URL parser on the way would end the query
 * there), a space or a control byte, bad percent-encoding, an encoded NUL,
 * invalid UTF-8. */
struct rr_query {
    struct rr_param *params;     /* in the order they came */
    size_t n;
    char *buf;                   /* the decoded bytes params point into */
};

enum rr_status {
    RR_OK = 0,
    RR_MALFORMED = 1,            /* *why says what, a static string */
    RR_NOMEM = -1
};

/* raw: the bytes after '?' (NULL or "" for none). max_params bounds the
 * non-empty pieces (0: no bound). On RR_OK the caller frees q with
 * rr_query_free; otherwise q is empty. */
enum rr_status rr_query_parse(const char *raw, size_t max_params, struct rr_query *q,
                              const char **why);
/* The value the upstream reads for name (the last occurrence), or NULL. */
const struct rr_param *rr_query_last(const struct rr_query *q, const char *name);
void rr_query_free(struct rr_query *q);

/* The path as uvicorn hands it to the application: percent-decoded once
 * (as UTF-8). Refused: a raw byte outside printable ASCII, '#', bad
 * percent-encoding, an encoded NUL, invalid UTF-8, a control byte or DEL,
 * a backslash (raw or encoded: servers and proxies that take it for '/'
 * would see another path), and dot segments ("/." and "/.." as whole
 * segments). On RR_OK *out is the decoded path (malloc'd). */
enum rr_status rr_path_decode(const char *raw, char **out, const char **why);

/* The path again, encoded so that decoding it gives exactly decoded: the
 * form lcgate sends upstream. malloc'd, NULL on ENOMEM. */
char *rr_path_encode(const char *decoded);

/* The first project the path names: a segment that is a UUID after a
 * "projects" segment (/api/v1/projects/{id}[/...]), in the decoded path.
 * Returns a pointer into it and its length, or NULL. Call again from just
 * after one (id + len) for the next. */
const char *rr_path_project(const char *decoded, size_t *len);

/* A UUID as pydantic reads one (32 hex digits; 8-4-4-4-12 with hyphens;
 * that in braces; or after "urn:uuid:"), in any case, into its canonical
 * form: 36 bytes, lowercase, hyphenated, NUL-terminated. 0 or -1. */
int rr_uuid_canon(const char *s, size_t n, char out[37]);

/* The canonical form of a project id: a UUID in its canonical form, any
 * other value as it is (malloc'd; NULL on ENOMEM). Every spelling of one
 * UUID gives the same bytes. */
char *rr_project_canon(const char *s, size_t n);

/* What a request body says of a top-level member, read as the upstream
 * reads the body: JSON (Python's json: the last of duplicate keys wins),
 * or an application/x-www-form-urlencoded form (as a query). */
enum rr_body {
    RR_BODY_ABSENT = 0,          /* no such member (or not a string) */
    RR_BODY_FOUND = 1,           /* *out is its value (malloc'd) */
    RR_BODY_UNREADABLE = 2,      /* the upstream may read a value that lcgate
                                    cannot: a JSON body yajl refuses, a form
                                    with bad encoding, a multipart body that
                                    has such a part */
    RR_BODY_NOMEM = -1
};
/* content_type may be NULL. */
enum rr_body rr_body_member(const char *content_type, const char *body, size_t len,
                            const char *name, char **out);

#endif
