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
#include "store_keys.h"

/* The keys ck_build makes start with it, as every key lcgate writes. */
#define CK_PREFIX STORE_KEY_PREFIX
#define CK_TAG_LEN 32

/* Hex tag of a credential (CK_TAG_LEN chars + NUL); "anon" for none. */
void ck_cred_tag(const char *cred, size_t len, char out[CK_TAG_LEN + 1]);

/* Room for any project label, with its NUL. */
#define CK_LABEL_MAX 80

/* The name of a request's project for generations, budgets, holds, logs
 * and metrics, from its canonical project id (request_read.h): a UUID as
 * it is; no project: "default:" and a short tag of the credential (whose
 * key's default project it is); any other id: "id:" and the id when it is
 * short and plain ([A-Za-z0-9._-], at most 64 bytes), else "id:~" and a
 * hash of it. So a label is always short printable ASCII, and no id can
 * take another's label. Writes at most len bytes with the NUL. */
void ck_project_label(const char *project_id, const char *cred, size_t credlen, char *out,
                      size_t len);

/* "lcg:1:<route>:<tag>:<canonical>", malloc'd; NULL on ENOMEM. */
char *ck_build(enum qn_route r, const char *cred, size_t credlen,
               const char *canonical);

#endif
