/* front_read: a request read once, as the upstream reads it (the doors,
 * the path, the query, the list normalizer, the projects it names and
 * whether its client may act on them). Every later decision uses this
 * reading, never the raw bytes again. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "conf.h"
#include "doors.h"
#include "front_int.h"

#define MAX_QUERY_PARAMS 256

/* ---- reading a request ---- */

/* Is this listener local (loopback or a Unix socket)? The running listen
 * address: a reload cannot move it. */
int front_local;

static int refuse(struct reading *rd, int status, const char *why)
{
    rd->status = status;
    rd->why = why;
    return -1;
}

/* The projects a request names, canonical: in the path, the query's
 * project_id, the body's. *unreadable: the body may name one that lcgate
 * cannot read. */
#define MAX_NAMED 8

struct named {
    char *v[MAX_NAMED];          /* path ones first, then the query's, the body's */
    size_t n;
    int unreadable;
    int too_many;                /* the path names more than lcgate reads */
};

static int add_named(struct named *nm, const char *s, size_t n)
{
    if ((nm->v[nm->n] = rr_project_canon(s, n)) == NULL)
        return -1;
    nm->n++;
    return 0;
}

static void named_free(struct named *nm)
{
    for (size_t i = 0; i < nm->n; i++)
        free(nm->v[i]);
    nm->n = 0;
}

static int read_named(const struct hs_req *req, const struct reading *rd, struct named *nm)
{
    const struct rr_param *p;
    const char *s;
    size_t n, len;

    memset(nm, 0, sizeof(*nm));
    /* Every /projects/<uuid> of the path, each checked like project_id. */
    for (s = rr_path_project(rd->dpath, &n); s != NULL; s = rr_path_project(s + n, &n)) {
        if (nm->n == MAX_NAMED - 2) {
            nm->too_many = 1;
            return 0;
        }
        if (add_named(nm, s, n) != 0)
            return -1;
    }
    if ((p = rr_query_last(&rd->q, "project_id")) != NULL &&
        add_named(nm, p->value, p->vlen) != 0)
        return -1;
    if ((len = evbuffer_get_length(req->body)) > 0) {
        char *v = NULL;
        const char *body = (const char *)evbuffer_pullup(req->body, -1);
        switch (rr_body_member(hs_header(req, "Content-Type"), body, len, "project_id", &v)) {
        case RR_BODY_FOUND: {
            int rc = add_named(nm, v, strlen(v));
            free(v);
            if (rc != 0)
                return -1;
            break;
        }
        case RR_BODY_UNREADABLE:
            nm->unreadable = 1;
            break;
        case RR_BODY_NOMEM:
            return -1;
        default:
            break;
        }
    }
    return 0;
}

/* Do any configured per-project keys exist? Then which project a request
 * names chooses the key. */
static int has_project_keys(const struct conf *c)
{
    for (size_t i = 0; i < c->nprojects; i++)
        if (c->projects[i].api_key)
            return 1;
    return 0;
}

/* Who may do this, and with which key: the client's token, its projects
 * (every project the request names), and one key for all of them. */
static int decide_projects(const struct conf *c, const struct hs_req *req, struct reading *rd)
{
    struct named nm;
    const char *key;
    int restricted;

    if (read_named(req, rd, &nm) != 0) {
        named_free(&nm);
        return refuse(rd, 500, "Out of memory");
    }
    if (nm.too_many) {
        named_free(&nm);
        return refuse(rd, 400, "The path names too many projects");
    }
    if (nm.n > 0 && (rd->project = strdup(nm.v[0])) == NULL) {
        named_free(&nm);
        return refuse(rd, 500, "Out of memory");
    }
    if (c->nclients > 0) {
        rd->client = client_find(c, hs_header(req, "Authorization"));
        if (rd->client == NULL) {
            named_free(&nm);
            return refuse(rd, 401, "Missing or invalid client token");
        }
        for (size_t i = 0; i < nm.n; i++) {
            if (!client_allows(rd->client, nm.v[i])) {
                named_free(&nm);
                return refuse(rd, 403, "This client may not use this project");
            }
        }
        if (nm.n == 0 && !client_allows(rd->client, NULL)) {
            named_free(&nm);
            return refuse(rd, 403, "This client may not use this project");
        }
    }
    restricted = rd->client != NULL && !rd->client->all_projects;
    if (nm.unreadable && (restricted || has_project_keys(c))) {
        named_free(&nm);
        return refuse(rd, 400, "The request body may name a project that lcgate cannot read "
                               "(send JSON, or name the project in the query)");
    }
    key = conf_api_key(c, rd->project);
    for (size_t i = 1; i < nm.n; i++) {
        const char *other = conf_api_key(c, nm.v[i]);
        if (other != key && (other == NULL || key == NULL || strcmp(other, key) != 0)) {
            named_free(&nm);
            return refuse(rd, 400, "The request names projects that use different keys");
        }
    }
    named_free(&nm);
    return 0;
}

/* Read req once, as the upstream will: the doors, the path, the query, the
 * list normalizer, the projects and who may act on them. rd->status is 0
 * when the request may go on. */
void read_request(const struct conf *c, struct hs_req *req, struct reading *rd)
{
    enum door d;

    memset(rd, 0, sizeof(*rd));
    rd->route = -1;
    d = door_check(c, front_local, hs_header(req, "Host"), hs_header(req, "Origin"),
                   hs_header(req, "Sec-Fetch-Site"));
    if (d != DOOR_OPEN) {
        refuse(rd, (int)d, door_detail(d));
        return;
    }
    switch (rr_path_decode(req->path ? req->path : "", &rd->dpath, &rd->why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        /* Outside /api it is simply not ours. */
        refuse(rd, req->path && strncmp(req->path, "/api", 4) == 0 ? 400 : 404,
               req->path && strncmp(req->path, "/api", 4) == 0 ? "Malformed request path"
                                                                 : "Not Found");
        return;
    default:
        refuse(rd, 500, "Out of memory");
        return;
    }
    if (strncmp(rd->dpath, "/api/", 5) != 0 && strcmp(rd->dpath, "/api") != 0) {
        refuse(rd, 404, "Not Found");
        return;
    }
    switch (rr_query_parse(req->query, MAX_QUERY_PARAMS, &rd->q, &rd->why)) {
    case RR_OK:
        break;
    case RR_MALFORMED:
        rd->status = 400;
        return;
    default:
        refuse(rd, 500, "Out of memory");
        return;
    }
    rd->route = req->method == HS_GET ? qn_route_by_path(rd->dpath) : -1;
    if (rd->route >= 0) {
        if (qn_normalize_query((enum qn_route)rd->route, &rd->q, &rd->qr) != 0) {
            refuse(rd, 500, "Out of memory");
            return;
        }
        if (rd->qr.status != QN_OK) {
            rd->status = 422;    /* the upstream's own body, without asking it */
            return;
        }
    }
    decide_projects(c, req, rd);
}

void reading_free(struct reading *rd)
{
    free(rd->dpath);
    rr_query_free(&rd->q);
    qn_result_free(&rd->qr);
    free(rd->project);
    rd->dpath = rd->project = NULL;
}

/* ---- credentials and budgets ---- */

/* The credential that decides whose answer this is: the injected key, or
 * the client's Authorization in pass-through mode. */
const char *credential_in(const struct conf *c, const struct hs_req *req,
                                 const char *project, const char **key)
{
    *key = conf_api_key(c, project);
    if (*key)
        return *key;
    return hs_header(req, "Authorization");
}