/* admin: the operator's listener (/healthz, /readyz, /metrics,
 * /admin/purge), kept on its own
 * address so that it can stay off the client network. */
#ifndef LCGATE_ADMIN_H
#define LCGATE_ADMIN_H

#include <stddef.h>

struct gw;

/* The metric families the other modules feed; before any request. */
int admin_metrics_init(struct gw *gw);
/* An answer: counted (lcgate_requests_total) and timed
 * (lcgate_request_duration_seconds), on any thread. */
void admin_observe_request(struct gw *gw, const char *route, int status, const char *cache,
                           double secs);
/* A SIGHUP reload was applied (ok) or rejected: counted, and a good one
 * dates the configuration in force. */
void admin_reloaded(struct gw *gw, int ok);
int admin_start(struct gw *gw, const char *addr, char *err, size_t errlen);
void admin_free(struct gw *gw);

#endif
