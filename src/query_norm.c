/* query_norm: a list route's raw query -> canonical query, or the upstream's
 * own 422 body.
 *
 * The upstream is FastAPI on Starlette with pydantic v2, so every rule here
 * follows what that stack does with the same bytes: Starlette's parse_qsl,
 * pydantic-core 2.41's str_as_int (with jiter 0.11's integer reader), the
 * uuid 1.18 crate's parser and its error text, and speedate 0.17's datetime
 * and date parsers. Two queries get the same canonical form only when the
 * upstream is bound to read them as the same values. */
#include "query_norm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "query_norm_int.h"
#include "request_read.h"

static const char *const v1_status[] = {"pending",   "running", "dispatched",
                                        "completed", "failed",  "cancelled",
                                        NULL};
static const char *const v1_job_type[] = {"parse", "extract", "classify", NULL};

static const struct qn_param v1_params[] = {
    {.name = "limit", .type = QN_INT, .dflt = "50",
     .has_ge = 1, .ge = 1, .has_le = 1, .le = 1000},
    {.name = "offset", .type = QN_INT, .dflt = "0", .has_ge = 1, .ge = 0},
    {.name = "status", .type = QN_ENUM, .enums = v1_status},
    {.name = "job_type", .type = QN_ENUM, .enums = v1_job_type},
    {.name = "directory_id", .type = QN_STR},
    {.name = "project_id", .type = QN_UUID},
    {.name = "organization_id", .type = QN_UUID},
};

static const char *const v2_status[] = {"PENDING",   "THROTTLED", "RUNNING",
                                        "COMPLETED", "FAILED",    "CANCELLED",
                                        NULL};

/* page_size has no documented default: written out, it is never dropped. */
static const struct qn_param v2_params[] = {
    {.name = "page_size", .type = QN_INT},
    {.name = "page_token", .type = QN_STR},
    {.name = "status", .type = QN_ENUM, .enums = v2_status},
    {.name = "created_at_on_or_after", .type = QN_DATETIME},
    {.name = "created_at_on_or_before", .type = QN_DATETIME},
    {.name = "source_directory_id", .type = QN_STR},
    {.name = "project_id", .type = QN_STR},
    {.name = "organization_id", .type = QN_STR},
};

const struct qn_schema qn_routes[QN_NROUTES] = {
    [QN_V1_BATCH_JOBS] = {"/api/v1/beta/batch-processing", "v1_batch_jobs",
                          v1_params, sizeof v1_params / sizeof v1_params[0]},
    [QN_V2_BATCHES] = {"/api/v2/batches", "v2_batches", v2_params,
                       sizeof v2_params / sizeof v2_params[0]},
};

int qn_route_by_path(const char *path)
{
    if (path == NULL)
        return -1;
    for (int r = 0; r < QN_NROUTES; r++)
        if (strcmp(qn_routes[r].path, path) == 0)
            return r;
    return -1;
}

static const qn_check_fn checks[] = {
    [QN_INT] = qn_check_int,
    [QN_ENUM] = qn_check_enum,
    [QN_STR] = qn_check_str,
    [QN_UUID] = qn_check_uuid,
    [QN_DATETIME] = qn_check_datetime,
};

struct item {
    const char *name, *val;
    size_t nlen, vlen, seq;
};

static int item_cmp(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    size_t n = a->nlen < b->nlen ? a->nlen : b->nlen;
    int c = memcmp(a->name, b->name, n);
    if (c != 0)
        return c;
    if (a->nlen != b->nlen)
        return a->nlen < b->nlen ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void gstr(yajl_gen g, const char *s, size_t n)
{
    yajl_gen_string(g, (const unsigned char *)s, n);
}

static void gkey(yajl_gen g, const char *s)
{
    gstr(g, s, strlen(s));
}

/* The generated JSON; \u escapes lowercased, as Python's json.dumps writes
 * them (yajl writes \u001F), so the body matches the upstream's bytes. */
static char *gen_take(yajl_gen g)
{
    const unsigned char *p;
    size_t len;
    if (yajl_gen_get_buf(g, &p, &len) != yajl_gen_status_ok)
        return NULL;
    char *s = qn_dupn((const char *)p, len);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u')
            for (size_t k = i + 2; k < i + 6 && k < len; k++)
                if (s[k] >= 'A' && s[k] <= 'F')
                    s[k] = (char)(s[k] - 'A' + 'a');
        i++;
    }
    return s;
}

static void emit_fail(yajl_gen g, const char *name, const char *input, size_t n,
                      const struct qn_fail *f)
{
    yajl_gen_map_open(g);
    gkey(g, "type");
    gkey(g, f->type);
    gkey(g, "loc");
    yajl_gen_array_open(g);
    gkey(g, "query");
    gkey(g, name);
    yajl_gen_array_close(g);
    gkey(g, "msg");
    gkey(g, f->msg);
    gkey(g, "input");
    gstr(g, input, n);
    if (f->ctx_key != NULL) {
        gkey(g, "ctx");
        yajl_gen_map_open(g);
        gkey(g, f->ctx_key);
        if (f->ctx_str != NULL)
            gkey(g, f->ctx_str);
        else
            yajl_gen_integer(g, f->ctx_num);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
}

static int malformed(struct qn_result *out, const char *detail)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        return -1;
    yajl_gen_map_open(g);
    gkey(g, "detail");
    gkey(g, detail);
    yajl_gen_map_close(g);
    out->body = gen_take(g);
    yajl_gen_free(g);
    out->status = QN_MALFORMED;
    return out->body ? 0 : -1;
}

static void encode(struct qn_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || qn_is_digit(c) ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            qn_put(b, s + i, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            qn_put(b, e, 3);
        }
    }
}

static int find_param(const struct qn_schema *sc, const struct item *it)
{
    for (size_t k = 0; k < sc->nparams; k++)
        if (strlen(sc->params[k].name) == it->nlen &&
            memcmp(sc->params[k].name, it->name, it->nlen) == 0)
            return (int)k;
    return -1;
}

/* Validates the winning value of each known parameter in schema order. On
 * success canon[k] holds each present one's canonical value; otherwise
 * out gets the 422 body. Returns 0 or -1 (out of memory). */
static int validate(const struct qn_schema *sc, const struct item *items,
                    const size_t *last, char **canon, struct qn_result *out)
{
    yajl_gen g = NULL;
    int rc = 0;

    for (size_t k = 0; k < sc->nparams && rc == 0; k++) {
        const struct qn_param *p = &sc->params[k];
        struct qn_fail f = {0};
        if (last[k] == 0)
            continue;
        const struct item *it = &items[last[k] - 1];
        int r = checks[p->type](p, it->val, it->vlen, &canon[k], &f);
        if (r == 1) {
            if (g == NULL) {
                if ((g = yajl_gen_alloc(NULL)) == NULL) {
                    rc = -1;
                } else {
                    yajl_gen_map_open(g);
                    gkey(g, "detail");
                    yajl_gen_array_open(g);
                }
            }
            if (g != NULL)
                emit_fail(g, p->name, it->val, it->vlen, &f);
        } else if (r < 0) {
            rc = -1;
        }
        free(f.msg);
        free(f.ctx_str);
    }
    if (g != NULL) {
        if (rc == 0) {
            yajl_gen_array_close(g);
            yajl_gen_map_close(g);
            out->status = QN_INVALID;
            if ((out->body = gen_take(g)) == NULL)
                rc = -1;
        }
        yajl_gen_free(g);
    }
    return rc;
}

/* The canonical query: the known parameters less those equal to their
 * default, plus every unknown one, stably sorted by name and encoded. */
static int build(const struct qn_schema *sc, const struct item *items,
                 size_t nitems, const int *known, char *const *canon,
                 struct qn_result *out)
{
    struct item *list = malloc((nitems + 1) * sizeof *list);
    struct qn_buf b = {0};
    size_t m = 0;

    if (list == NULL)
        return -1;
    for (size_t k = 0; k < sc->nparams; k++) {
        const struct qn_param *p = &sc->params[k];
        if (canon[k] == NULL || (p->dflt != NULL && strcmp(canon[k], p->dflt) == 0))
            continue;
        list[m++] = (struct item){p->name, canon[k], strlen(p->name),
                                  strlen(canon[k]), 0};
    }
    for (size_t i = 0; i < nitems; i++)
        if (known[i] < 0)
            list[m++] = items[i];
    qsort(list, m, sizeof *list, item_cmp);
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            qn_put(&b, "&", 1);
        encode(&b, list[i].name, list[i].nlen);
        qn_put(&b, "=", 1);
        encode(&b, list[i].val, list[i].vlen);
    }
    free(list);
    out->canonical = qn_take(&b);
    if (out->canonical == NULL)
        return -1;
    for (size_t k = 0; k < sc->nparams; k++) {
        if (canon[k] != NULL && strcmp(sc->params[k].name, "project_id") == 0) {
            out->project_id = qn_dupn(canon[k], strlen(canon[k]));
            if (out->project_id == NULL)
                return -1;
        }
    }
    out->status = QN_OK;
    return 0;
}

int qn_normalize_query(enum qn_route r, const struct rr_query *rq, struct qn_result *out)
{
    if (out == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    if ((unsigned)r >= QN_NROUTES || rq == NULL)
        return -1;

    const struct qn_schema *sc = &qn_routes[r];
    size_t nitems = rq->n;
    struct item *items = malloc((nitems + 1) * sizeof *items);
    int *known = malloc((nitems + 1) * sizeof *known);
    size_t *last = calloc(sc->nparams, sizeof *last);
    char **canon = calloc(sc->nparams, sizeof *canon);
    int rc = -1;

    if (items == NULL || known == NULL || last == NULL || canon == NULL)
        goto done;
    for (size_t i = 0; i < nitems; i++) {
        const struct rr_param *p = &rq->params[i];
        items[i] = (struct item){p->name, p->value, p->nlen, p->vlen, i};
    }
    /* the last occurrence of a known parameter is the one the server reads */
    for (size_t i = 0; i < nitems; i++)
        if ((known[i] = find_param(sc, &items[i])) >= 0)
            last[known[i]] = i + 1;
    rc = validate(sc, items, last, canon, out);
    if (rc == 0 && out->status == QN_OK)
        rc = build(sc, items, nitems, known, canon, out);
done:
    if (canon != NULL)
        for (size_t k = 0; k < sc->nparams; k++)
            free(canon[k]);
    free(canon);
    free(last);
    free(known);
    free(items);
    if (rc != 0)
        qn_result_free(out);
    return rc;
}

int qn_normalize(enum qn_route r, const char *raw_query, size_t max_params,
                 struct qn_result *out)
{
    struct rr_query q;
    const char *why;
    int rc;

    if (out == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    switch (rr_query_parse(raw_query, max_params, &q, &why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        return malformed(out, why);
    default:
        return -1;
    }
    rc = qn_normalize_query(r, &q, out);
    rr_query_free(&q);
    return rc;
}

void qn_result_free(struct qn_result *res)
{
    if (res == NULL)
        return;
    free(res->canonical);
    free(res->project_id);
    free(res->body);
    res->canonical = res->project_id = res->body = NULL;
}
