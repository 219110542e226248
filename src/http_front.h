/* http_front: the client-facing listener (hs, on libevent). Routes each
 * request, answers exactly once, and owns the request object (struct greq,
 * private) from arrival to reply. The state it shares (struct gw) is
 * main.c's, in gw.h. */
#ifndef LCGATE_HTTP_FRONT_H
#define LCGATE_HTTP_FRONT_H

#include <stddef.h>

struct gw;
struct conf;

struct hs_limits;
/* The HTTP server's limits from a configuration. */
void front_limits(const struct conf *c, struct hs_limits *lim);
/* Listen on conf->listen (host:port, [v6]:port, unix:/path). */
int front_start(struct gw *gw, char *err, size_t errlen);
/* A reload: the new configuration's limits apply to new requests. */
void front_reload(struct gw *gw);
/* Requests in flight, and those a worker has handed over not yet begun. */
size_t front_pending(const struct gw *gw);
/* A reload: next becomes gw->conf; the old one is freed by its last
 * holder (a worker may be answering with it). */
void front_set_conf(struct gw *gw, struct conf *next);
/* Before the shared state is torn down: workers answer nothing more by
 * themselves (returns once none is inside its fast path). */
void front_quiesce(struct gw *gw);
/* Stop accepting new connections; requests in flight go on. */
void front_close_listeners(struct gw *gw);
/* Answer 503 to every request still in flight and free the listener. */
void front_free(struct gw *gw);

#endif
