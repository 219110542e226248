/* fuzz_query_norm: libFuzzer target for the one query reader
 * (rr_query_parse, src/request_read.c) and the list normalizer on top of it
 * (qn_normalize, src/query_norm.c).
 *
 * Input: byte 0 picks the route (bit 0) and a bound on the number of
 * parameters (bits 1-3: 0 means none, else 1-7); the rest is the raw query,
 * read as a NUL-terminated string (an embedded NUL ends it, as in a C
 * string from the HTTP parser).
 *
 * Invariants checked:
 *  - qn_normalize returns 0 (it may fail only on ENOMEM) and a known status;
 *  - QN_OK: canonical set, body unset; the canonical is plain ASCII made of
 *    unreserved bytes, %XX escapes, '&' and '='; normalizing the canonical
 *    again (same route, same bound) gives QN_OK, the same canonical and the
 *    same project_id (idempotence);
 *  - QN_INVALID / QN_MALFORMED: body set, canonical unset, and the body is
 *    valid JSON (yajl_tree_parse, which also checks UTF-8) holding an object
 *    whose "detail" is a non-empty array (422) or a string (400);
 *  - the reader and the normalizer agree: a query the reader refuses is
 *    QN_MALFORMED, one it reads is not; every name and value it reads is
 *    UTF-8 without a NUL; the project the normalizer keys on is, once
 *    canonical, the project the allow-list and the key choice read (the
 *    last project_id, canonical: rr_project_canon); and the canonical query
 *    read again names that same project. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "query_norm.h"
#include "request_read.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_query_norm"
#include "fuzz.h"

static int canonical_charset_ok(const char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '&' || c == '=')
            continue;
        if (c == '%') {
            for (int k = 1; k <= 2; k++) {
                unsigned char h = (unsigned char)s[i + k];
                if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
                    return 0;
            }
            i += 2;
            continue;
        }
        return 0;
    }
    return 1;
}

static void check_body(enum qn_status st, const char *body, const char *q)
{
    char errbuf[256];
    const char *path[] = {"detail", NULL};
    yajl_val root, detail;

    CHECK(body != NULL, "no body for status %d, query '%s'", (int)st, q);
    errbuf[0] = '\0';
    root = yajl_tree_parse(body, errbuf, sizeof errbuf);
    CHECK(root != NULL, "body is not JSON (%s): %s (query '%s')", errbuf, body, q);
    CHECK(YAJL_IS_OBJECT(root), "body is not an object: %s", body);
    detail = yajl_tree_get(root, path, yajl_t_any);
    CHECK(detail != NULL, "body has no detail: %s", body);
    if (st == QN_INVALID)
        CHECK(YAJL_IS_ARRAY(detail) && detail->u.array.len > 0,
              "422 detail is not a non-empty array: %s", body);
    else
        CHECK(YAJL_IS_STRING(detail), "400 detail is not a string: %s", body);
    yajl_tree_free(root);
}

static int utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* The project the allow-list reads in q (canonical), or NULL. */
static char *project_of(const char *q)
{
    struct rr_query rq;
    const struct rr_param *p;
    const char *why;
    char *c = NULL;

    if (rr_query_parse(q, 0, &rq, &why) != RR_OK)
        return NULL;
    if ((p = rr_query_last(&rq, "project_id")) != NULL)
        c = rr_project_canon(p->value, p->vlen);
    rr_query_free(&rq);
    return c;
}

static void check_reader(const char *q, size_t max_params, enum qn_status st)
{
    struct rr_query rq;
    const char *why = NULL;
    enum rr_status r = rr_query_parse(q, max_params, &rq, &why);

    CHECK(r == RR_OK || r == RR_MALFORMED, "rr_query_parse returned %d", (int)r);
    CHECK((r == RR_MALFORMED) == (st == QN_MALFORMED),
          "the reader says %d, the normalizer %d, for '%s'", (int)r, (int)st, q);
    if (r != RR_OK) {
        CHECK(why != NULL && *why != '\0', "a refusal without a reason for '%s'", q);
        return;
    }
    for (size_t i = 0; i < rq.n; i++) {
        const struct rr_param *p = &rq.params[i];
        CHECK(strlen(p->name) == p->nlen && strlen(p->value) == p->vlen,
              "a NUL inside a name or value of '%s'", q);
        CHECK(utf8_ok(p->name, p->nlen) && utf8_ok(p->value, p->vlen),
              "not UTF-8 in '%s'", q);
    }
    CHECK(max_params == 0 || rq.n <= max_params, "more than max_params read");
    rr_query_free(&rq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qn_result res, again;
    enum qn_route route;
    size_t max_params;
    char *q;
    int rc;

    if (size < 1)
        return 0;
    route = (data[0] & 1) ? QN_V2_BATCHES : QN_V1_BATCH_JOBS;
    max_params = (data[0] >> 1) & 7;
    q = malloc(size);
    if (q == NULL)
        return 0;
    memcpy(q, data + 1, size - 1);
    q[size - 1] = '\0';

    rc = qn_normalize(route, q, max_params, &res);
    CHECK(rc == 0, "qn_normalize returned %d for '%s'", rc, q);
    CHECK(res.status == QN_OK || res.status == QN_INVALID || res.status == QN_MALFORMED,
          "status %d", (int)res.status);
    check_reader(q, max_params, res.status);
    if (res.status == QN_OK) {
        char *read = project_of(q), *keyed = NULL, *again_p;
        if (res.project_id != NULL)
            keyed = rr_project_canon(res.project_id, strlen(res.project_id));
        CHECK((read == NULL) == (keyed == NULL) &&
                  (read == NULL || strcmp(read, keyed) == 0),
              "the normalizer keys on project '%s', the allow-list reads '%s' in '%s'",
              keyed ? keyed : "(none)", read ? read : "(none)", q);
        again_p = project_of(res.canonical);
        CHECK((again_p == NULL) == (read == NULL) &&
                  (again_p == NULL || strcmp(again_p, read) == 0),
              "the canonical '%s' names project '%s', the query '%s' names '%s'",
              res.canonical, again_p ? again_p : "(none)", q, read ? read : "(none)");
        free(read);
        free(keyed);
        free(again_p);
        CHECK(res.canonical != NULL, "QN_OK without canonical for '%s'", q);
        CHECK(res.body == NULL, "QN_OK with a body for '%s'", q);
        CHECK(canonical_charset_ok(res.canonical), "canonical '%s' of '%s' has a raw byte",
              res.canonical, q);
        rc = qn_normalize(route, res.canonical, max_params, &again);
        CHECK(rc == 0, "qn_normalize(canonical) returned %d", rc);
        CHECK(again.status == QN_OK, "canonical '%s' of '%s' (route %d) gives status %d: %s",
              res.canonical, q, (int)route, (int)again.status,
              again.body ? again.body : "");
        CHECK(strcmp(again.canonical, res.canonical) == 0,
              "not idempotent (route %d): '%s' -> '%s' -> '%s'", (int)route, q,
              res.canonical, again.canonical);
        CHECK((res.project_id == NULL) == (again.project_id == NULL) &&
                  (res.project_id == NULL || strcmp(res.project_id, again.project_id) == 0),
              "project_id differs: '%s' vs '%s' for '%s'",
              res.project_id ? res.project_id : "(null)",
              again.project_id ? again.project_id : "(null)", q);
        qn_result_free(&again);
    } else {
        CHECK(res.canonical == NULL && res.project_id == NULL,
              "error status %d with a canonical for '%s'", (int)res.status, q);
        check_body(res.status, res.body, q);
    }
    qn_result_free(&res);
    CHECK(res.canonical == NULL && res.project_id == NULL && res.body == NULL,
          "qn_result_free left pointers set");
    /* With no bound on parameters, "Too many query parameters" never occurs. */
    if (max_params != 0) {
        rc = qn_normalize(route, q, 0, &res);
        CHECK(rc == 0, "qn_normalize returned %d", rc);
        CHECK(res.status != QN_MALFORMED || res.body == NULL ||
                  strstr(res.body, "Too many query parameters") == NULL,
              "unbounded run says too many parameters for '%s'", q);
        qn_result_free(&res);
    }
    free(q);
    return 0;
}
