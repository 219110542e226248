#include "admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

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
