/* cache_key: route + credential + canonical query -> store key. Pure.
 *
 * The credential (the injected key, or in pass-through mode the client's
 * Authorization value) enters the key only as a keyed hash, so a key
 * never appears in Redis or in a log. The project and organization are in
 * the canonical query. */
#ifndef LCGATE_CACHE_KEY_H
#define LCGATE_CACHE_KEY_H

#include <stddef.h>

#include "query_norm.h"

/* Every key lcgate writes starts with this (purge-all matches it). */
#define CK_PREFIX "lcg:1:"
#define CK_TAG_LEN 32

/* Hex tag of a credential (CK_TAG_LEN chars + NUL); "anon" for none. */
void ck_cred_tag(const char *cred, size_t len, char out[CK_TAG_LEN + 1]);

/* The name of a request's project for generations, budgets and holds: its
 * project_id, else "default:" and a short tag of the credential (whose
 * key's default project it is). Writes at most len bytes with the NUL. */
void ck_project_label(const char *project_id, const char *cred, size_t credlen, char *out,
                      size_t len);

/* "lcg:1:<route>:<tag>:<canonical>", malloc'd; NULL on ENOMEM. */
char *ck_build(enum qn_route r, const char *cred, size_t credlen,
               const char *canonical);

#endif
