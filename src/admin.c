#include "admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <yajl/yajl_gen.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "cache_store.h"
#include "conf.h"
#include "http_front.h"

static struct evhttp *admin_http;

static void reply(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *buf = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    if (buf)
        evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, status, NULL, buf);
    if (buf)
        evbuffer_free(buf);
}

/* POST /admin/purge[?project_id=P]: that project's lists, or all. */
static void purge(struct gw *gw, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    const char *project = NULL;
    yajl_gen gen;
    const unsigned char *out;
    size_t len;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply(req, 405, "{\"detail\":\"Method Not Allowed\"}");
        return;
    }
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) != 0) {
        reply(req, 400, "{\"detail\":\"Malformed query string\"}");
        return;
    }
    project = evhttp_find_header(&params, "project_id");
    if (project && *project == '\0') {
        evhttp_clear_headers(&params);
        reply(req, 400, "{\"detail\":\"project_id is empty\"}");
        return;
    }
    cache_purge(gw->cache, project);
    gen = yajl_gen_alloc(NULL);
    yajl_gen_map_open(gen);
    yajl_gen_string(gen, (const unsigned char *)"purged", 6);
    yajl_gen_string(gen, (const unsigned char *)(project ? "project" : "all"),
                    project ? 7 : 3);
    if (project) {
        yajl_gen_string(gen, (const unsigned char *)"project_id", 10);
        yajl_gen_string(gen, (const unsigned char *)project, strlen(project));
    }
    yajl_gen_map_close(gen);
    yajl_gen_get_buf(gen, &out, &len);
    {
        char *body = strndup((const char *)out, len);
        reply(req, 200, body ? body : "{}");
        free(body);
    }
    yajl_gen_free(gen);
    evhttp_clear_headers(&params);
}

static void on_admin(struct evhttp_request *req, void *arg)
{
    struct gw *gw = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char body[512];

    if (path && strcmp(path, "/healthz") == 0) {
        reply(req, 200, "{\"status\":\"ok\"}");
    } else if (path && strcmp(path, "/readyz") == 0) {
        const char *st = gw->store->ops->state(gw->store);
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"store\":\"%s\",\"store_state\":\"%s\","
                 "\"requests_in_flight\":%zu}",
                 gw->draining ? "draining" : strcmp(st, "ok") ? "degraded" : "ready",
                 gw->store->ops->name, st, gw->ninflight);
        reply(req, gw->draining ? 503 : 200, body);
    } else if (path && strcmp(path, "/admin/purge") == 0) {
        purge(gw, req);
    } else {
        reply(req, 404, "{\"detail\":\"Not Found\"}");
    }
}

int admin_start(struct gw *gw, const char *addr, char *err, size_t errlen)
{
    admin_http = evhttp_new(gw->base);
    if (admin_http == NULL) {
        snprintf(err, errlen, "cannot create the admin server");
        return -1;
    }
    evhttp_set_default_content_type(admin_http, NULL);
    evhttp_set_allowed_methods(admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(admin_http, 10);
    evhttp_set_gencb(admin_http, on_admin, gw);
    return front_listen(admin_http, addr, err, errlen) ? 0 : -1;
}

void admin_free(void)
{
    if (admin_http)
        evhttp_free(admin_http);
    admin_http = NULL;
}
