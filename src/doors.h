/* doors: which requests a listener lets in at all, before anything else
 * reads them. A browser can be made to send requests to a loopback
 * sidecar from any web page: by DNS rebinding (its Host is then the
 * page's name) or by a plain cross-site request (its Origin, or its
 * Sec-Fetch-Site, says so). Neither may spend the key. Pure. */
#ifndef LCGATE_DOORS_H
#define LCGATE_DOORS_H

#include "conf.h"

/* Is a listen address (conf syntax) reachable only from this host: a Unix
 * socket, or a loopback address or name? */
int door_local(const char *listen);

enum door {
    DOOR_OPEN = 0,
    DOOR_BAD_HOST = 421,         /* Host is not a name this listener serves */
    DOOR_CROSS_SITE = 403        /* a browser's cross-site request */
};

/* The verdict on a request's Host, Origin and Sec-Fetch-Site (each may be
 * NULL) at a listener that is local or not:
 *  - Host (port ignored, case-insensitive): on a local listener, a loopback
 *    name (localhost, *.localhost, 127.0.0.0/8, [::1]) or one in
 *    allowed_hosts; elsewhere, anything unless allowed_hosts is set, then
 *    one in it. "*" in allowed_hosts allows any. No Host: open.
 *  - Origin: when present, it must be in allowed_origins (exact, case-
 *    insensitive; "*" allows any).
 *  - Without an Origin, Sec-Fetch-Site cross-site or same-site is refused. */
enum door door_check(const struct conf *c, int local, const char *host, const char *origin,
                     const char *sec_fetch_site);
const char *door_detail(enum door d);

#endif
