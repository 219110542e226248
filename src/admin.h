/* admin: the operator's listener (/healthz, /readyz), kept on its own
 * address so that it can stay off the client network. */
#ifndef LCGATE_ADMIN_H
#define LCGATE_ADMIN_H

#include <stddef.h>

struct gw;

int admin_start(struct gw *gw, const char *addr, char *err, size_t errlen);
void admin_free(void);

#endif
