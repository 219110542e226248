/* paging: from a list answer to the canonical query of its next page, the
 * way the official SDKs page (v1: offset + len(items) < total_size; v2:
 * next_page_token). Pure. */
#ifndef LCGATE_PAGING_H
#define LCGATE_PAGING_H

#include <stddef.h>

#include "query_norm.h"

/* The canonical query of the page after the answer body to canonical, or
 * NULL when there is none (last page, or a body that says nothing). */
char *pg_next(enum qn_route r, const char *canonical, const char *body, size_t len);

#endif
