/* cache_entry: a stored answer, reference counted so that a hit can hand
 * the body to the socket without copying, and its wire encoding for stores
 * that hold bytes (Redis). Encode/decode are pure. */
#ifndef LCGATE_CACHE_ENTRY_H
#define LCGATE_CACHE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define CENTRY_ETAG_LEN 34   /* a quoted 32-hex-digit strong validator */

struct centry {
    int refcnt;            /* atomic: centry_incref/centry_decref */
    int status;            /* HTTP status of the stored answer (200) */
    int64_t stored_ms;     /* wall clock (ms since the epoch) when fetched */
    uint64_t gen_proj;     /* generations current when it was fetched */
    uint64_t gen_all;
    char etag[CENTRY_ETAG_LEN + 1];  /* from the body's SHA-256 */
    char *ctype;           /* Content-Type as the upstream sent it */
    size_t ctype_len;
    char *body;            /* body bytes, byte-identical to the upstream's */
    size_t body_len;
    char *extra_headers;   /* "Name: value\n" lines sent with an answer that
                              is never stored (e.g. Retry-After), or NULL */
    /* one allocation: struct, then ctype (NUL-terminated), then body */
};

/* A new entry with refcnt 1, copying ctype and body, its ETag computed
 * from the body and its generations 0; NULL on ENOMEM. */
struct centry *centry_new(int status, int64_t stored_ms, const char *ctype,
                          size_t ctype_len, const void *body, size_t body_len);
void centry_incref(struct centry *e);
void centry_decref(struct centry *e);
/* Bytes this entry holds in memory, for store accounting. */
size_t centry_size(const struct centry *e);

/* Wire format (all integers big-endian):
 *   "LCE2" | u16 status | u64 stored_ms | u64 gen_proj | u64 gen_all |
 *   etag (34 bytes) | u32 ctype_len | ctype | u32 body_len | body
 * centry_encode returns a malloc'd buffer and its length, NULL on ENOMEM. */
char *centry_encode(const struct centry *e, size_t *len);
/* NULL when buf is not exactly one well-formed encoding. */
struct centry *centry_decode(const void *buf, size_t len);

#endif
