/* cache_status: the front end's words for how the cache answered (struct
 * answer, cache.h): the X-Cache value, the Cache-Status value (RFC 9211)
 * and, for an answer without an entry, its status and error detail. Pure;
 * the values on the wire are compared byte for byte by the tests. */
#ifndef LCGATE_CACHE_STATUS_H
#define LCGATE_CACHE_STATUS_H

#include <stddef.h>

#include "cache.h"

#define CS_STATUS_MAX 160        /* room for any Cache-Status value */
#define CS_DETAIL_MAX 144        /* and any error detail (longer project
                                    ids are cut, as they always were) */

/* HIT, MISS, STALE or BYPASS (a static string). */
const char *cs_xcache(const struct answer *a);
/* The Cache-Status value into buf (truncated to n - 1 bytes). */
void cs_format(const struct answer *a, char *buf, size_t n);
/* Why the answer was stale or refused, for the access log (a static
 * string), or NULL. */
const char *cs_detail(const struct answer *a);
/* An answer with no entry (a->e NULL): its HTTP status and the detail of
 * its {"detail": ...} body into detail; *retry is set when the client is to
 * be told to wait a->retry_after_ms (Retry-After, retry-after-ms). */
int cs_error(const struct answer *a, char *detail, size_t n, int *retry);

#endif
