#include "cache_entry.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static struct centry *alloc_entry(int status, int64_t stored_ms, const char *ctype,
                                  size_t ctype_len, const void *body, size_t body_len)
{
    struct centry *e;

    if (ctype_len > SIZE_MAX / 2 || body_len > SIZE_MAX / 2)
        return NULL;
    e = malloc(sizeof(*e) + ctype_len + 1 + body_len + 1);
    if (e == NULL)
        return NULL;
    e->refcnt = 1;
    e->status = status;
    e->stored_ms = stored_ms;
    e->ctype = (char *)(e + 1);
    e->ctype_len = ctype_len;
    if (ctype_len)
        memcpy(e->ctype, ctype, ctype_len);
    e->ctype[ctype_len] = '\0';
    e->body = e->ctype + ctype_len + 1;
    e->body_len = body_len;
    if (body_len)
        memcpy(e->body, body, body_len);
    e->body[body_len] = '\0';
    e->gen_proj = e->gen_all = 0;
    e->extra_headers = NULL;
    return e;
}

struct centry *centry_new(int status, int64_t stored_ms, const char *ctype,
                          size_t ctype_len, const void *body, size_t body_len)
{
    struct centry *e = alloc_entry(status, stored_ms, ctype, ctype_len, body, body_len);
    uint8_t digest[SHA256_LEN];

    if (e == NULL)
        return NULL;
    sha256(body, body_len, digest);
    e->etag[0] = '"';
    hex_encode(digest, 16, e->etag + 1);
    e->etag[CENTRY_ETAG_LEN - 1] = '"';
    e->etag[CENTRY_ETAG_LEN] = '\0';
    return e;
}

/* Atomic: with workers, a body written to a client is released on that
 * worker's thread. */
void centry_incref(struct centry *e)
{
    int n = __atomic_add_fetch(&e->refcnt, 1, __ATOMIC_RELAXED);

    assert(n > 1);               /* a reference was held already */
    (void)n;
}

void centry_decref(struct centry *e)
{
    int n;

    if (e == NULL)
        return;
    n = __atomic_sub_fetch(&e->refcnt, 1, __ATOMIC_ACQ_REL);
    assert(n >= 0);
    if (n == 0) {
        free(e->extra_headers);
        free(e);
    }
}

size_t centry_size(const struct centry *e)
{
    return sizeof(*e) + e->ctype_len + e->body_len + 2;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, int n)
{
    int i;

    for (i = n - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

#define HDR_LEN (4 + 2 + 8 + 8 + 8 + CENTRY_ETAG_LEN + 4)

char *centry_encode(const struct centry *e, size_t *len)
{
    size_t n = HDR_LEN + e->ctype_len + 4 + e->body_len;
    uint8_t *buf, *p;

    if (e->ctype_len > UINT32_MAX || e->body_len > UINT32_MAX)
        return NULL;
    buf = malloc(n);
    if (buf == NULL)
        return NULL;
    memcpy(buf, "LCE2", 4);
    p = put_be(buf + 4, (uint64_t)e->status, 2);
    p = put_be(p, (uint64_t)e->stored_ms, 8);
    p = put_be(p, e->gen_proj, 8);
    p = put_be(p, e->gen_all, 8);
    memcpy(p, e->etag, CENTRY_ETAG_LEN);
    p = put_be(p + CENTRY_ETAG_LEN, e->ctype_len, 4);
    memcpy(p, e->ctype, e->ctype_len);
    p = put_be(p + e->ctype_len, e->body_len, 4);
    memcpy(p, e->body, e->body_len);
    *len = n;
    return (char *)buf;
}

struct centry *centry_decode(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t ctype_len, body_len, status;
    struct centry *e;
    size_t i;

    if (len < HDR_LEN || memcmp(p, "LCE2", 4) != 0)
        return NULL;
    status = get_be(p + 4, 2);
    ctype_len = get_be(p + HDR_LEN - 4, 4);
    if (status < 100 || status > 599 || ctype_len > len - HDR_LEN ||
        len - HDR_LEN - ctype_len < 4)
        return NULL;
    body_len = get_be(p + HDR_LEN + ctype_len, 4);
    if (body_len != len - HDR_LEN - ctype_len - 4)
        return NULL;
    /* ctype goes out in a header: no line breaks or NULs from a foreign value. */
    for (i = 0; i < ctype_len; i++)
        if (p[HDR_LEN + i] < 0x20 || p[HDR_LEN + i] == 0x7f)
            return NULL;
    /* The ETag goes out in a header: it must be the quoted hex we wrote. */
    if (p[30] != '"' || p[30 + CENTRY_ETAG_LEN - 1] != '"')
        return NULL;
    for (i = 1; i < CENTRY_ETAG_LEN - 1; i++)
        if (!((p[30 + i] >= '0' && p[30 + i] <= '9') || (p[30 + i] >= 'a' && p[30 + i] <= 'f')))
            return NULL;
    e = alloc_entry((int)status, (int64_t)get_be(p + 6, 8), (const char *)p + HDR_LEN,
                    ctype_len, p + HDR_LEN + ctype_len + 4, body_len);
    if (e == NULL)
        return NULL;
    e->gen_proj = get_be(p + 14, 8);
    e->gen_all = get_be(p + 22, 8);
    memcpy(e->etag, p + 30, CENTRY_ETAG_LEN);
    e->etag[CENTRY_ETAG_LEN] = '\0';
    return e;
}
