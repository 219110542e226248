/* query_norm: a list route's raw query string -> canonical query, or the
 * upstream's own 422 body. Pure: no I/O, no event loop.
 *
 * The parameter schema of each cached route is data (qn_routes[]); the
 * normalizer, the validator and the tests all read it. */
#ifndef LCGATE_QUERY_NORM_H
#define LCGATE_QUERY_NORM_H

#include <stddef.h>

enum qn_route {
    QN_V1_BATCH_JOBS = 0, /* GET /api/v1/beta/batch-processing (offset paging) */
    QN_V2_BATCHES = 1,    /* GET /api/v2/batches (token paging) */
    QN_NROUTES
};

enum qn_type {
    QN_INT,      /* pydantic int: " 010", "1_0", "10.0" read as 10 */
    QN_ENUM,     /* exact, case-sensitive member of enums[] */
    QN_STR,      /* free text, kept byte for byte ("" is not absent) */
    QN_UUID,     /* pydantic UUID; canonical is lowercase hyphenated */
    QN_DATETIME  /* pydantic datetime; aware values canonical in UTC */
};

struct qn_param {
    const char *name;
    enum qn_type type;
    const char *dflt;          /* canonical spelling of the documented default, or NULL */
    int has_ge;
    long long ge;
    int has_le;
    long long le;
    const char *const *enums;  /* NULL-terminated, for QN_ENUM */
};

struct qn_schema {
    const char *path;          /* e.g. "/api/v1/beta/batch-processing" */
    const char *name;          /* short route label, e.g. "v1_batch_jobs" */
    const struct qn_param *params;
    size_t nparams;
};

extern const struct qn_schema qn_routes[QN_NROUTES];

enum qn_status {
    QN_OK = 0,         /* canonical is set */
    QN_INVALID = 1,    /* 422: body is the upstream's {"detail":[...]} */
    QN_MALFORMED = 2   /* 400: body is {"detail":"..."} (bad percent-encoding,
                          non-UTF-8, too many parameters) */
};

struct qn_result {
    enum qn_status status;
    char *canonical;   /* QN_OK: canonical query without '?', "" when empty */
    char *project_id;  /* QN_OK: canonical project_id value, NULL when absent */
    char *body;        /* QN_INVALID / QN_MALFORMED: JSON error body */
};

struct rr_query;
/* Normalize a query read by rr_query_parse (request_read.h) for route r.
 * Returns 0 with *out filled (check out->status: QN_OK or QN_INVALID), -1
 * on allocation failure. The caller frees with qn_result_free(). */
int qn_normalize_query(enum qn_route r, const struct rr_query *q, struct qn_result *out);
/* The same from the raw bytes after '?' (may be NULL or ""), read by
 * rr_query_parse with max_params (0: no bound): a query it refuses is
 * QN_MALFORMED. */
int qn_normalize(enum qn_route r, const char *raw_query, size_t max_params,
                 struct qn_result *out);
void qn_result_free(struct qn_result *res);

/* The route whose path equals path exactly, or -1. */
int qn_route_by_path(const char *path);

#endif
