/* fuzz_entry: libFuzzer target for the cached-entry wire format
 * (centry_decode / centry_encode in src/cache_entry.c).
 *
 * 1. centry_decode on the raw input. When it accepts, every field must be
 *    within bounds (status 100-599, lengths adding up to the input size,
 *    NUL-terminated ctype and body, a quoted lowercase-hex ETag, a ctype
 *    without control bytes, refcnt 1, no extra headers), and centry_encode
 *    of the result must give back exactly the input bytes.
 * 2. The other direction: an entry built by centry_new from the input
 *    (status, stored_ms, a ctype and a body cut from it) encodes, and that
 *    encoding decodes to the same fields whenever the ctype holds no control
 *    byte (the decoder refuses those by design). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_entry"
#include "fuzz.h"

#define HDR_LEN (4 + 2 + 8 + 8 + 8 + CENTRY_ETAG_LEN + 4)

static void check_fields(const struct centry *e)
{
    CHECK(e->refcnt == 1, "refcnt %d", e->refcnt);
    CHECK(e->status >= 100 && e->status <= 599, "status %d", e->status);
    CHECK(e->extra_headers == NULL, "extra_headers set");
    CHECK(e->ctype != NULL && e->ctype[e->ctype_len] == '\0', "ctype not terminated");
    CHECK(e->body != NULL && e->body[e->body_len] == '\0', "body not terminated");
    CHECK(e->etag[0] == '"' && e->etag[CENTRY_ETAG_LEN - 1] == '"' &&
              e->etag[CENTRY_ETAG_LEN] == '\0',
          "etag not quoted/terminated");
    for (size_t i = 1; i < CENTRY_ETAG_LEN - 1; i++)
        CHECK((e->etag[i] >= '0' && e->etag[i] <= '9') || (e->etag[i] >= 'a' && e->etag[i] <= 'f'),
              "etag byte %zu is 0x%02x", i, (unsigned char)e->etag[i]);
    CHECK(centry_size(e) >= e->ctype_len + e->body_len, "centry_size too small");
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void decode_direction(const uint8_t *data, size_t size)
{
    struct centry *e = centry_decode(data, size);
    char *enc;
    size_t len = 0;

    if (e == NULL)
        return;
    check_fields(e);
    /* ctype goes out in a header: a decoded one never holds a control byte */
    for (size_t i = 0; i < e->ctype_len; i++)
        CHECK((unsigned char)e->ctype[i] >= 0x20 && e->ctype[i] != 0x7f,
              "ctype byte %zu is 0x%02x", i, (unsigned char)e->ctype[i]);
    CHECK(size == HDR_LEN + e->ctype_len + 4 + e->body_len,
          "lengths %zu + %zu do not add up to %zu", e->ctype_len, e->body_len, size);
    CHECK((uint64_t)e->status == be(data + 4, 2), "status differs");
    enc = centry_encode(e, &len);
    CHECK(enc != NULL, "centry_encode failed");
    CHECK(len == size, "re-encoding has %zu bytes, input %zu", len, size);
    CHECK(memcmp(enc, data, size) == 0, "re-encoding differs from the input");
    free(enc);
    centry_incref(e);
    CHECK(e->refcnt == 2, "incref");
    centry_decref(e);
    centry_decref(e);
}

static void encode_direction(const uint8_t *data, size_t size)
{
    struct centry *e, *d;
    size_t ctype_len, body_len, len = 0;
    const char *ctype, *body;
    int status, clean = 1;
    int64_t stored_ms;
    char *enc;

    if (size < 11)
        return;
    status = 100 + (int)(be(data, 2) % 500);
    stored_ms = (int64_t)be(data + 2, 8);
    ctype_len = data[10] % 64;
    if (ctype_len > size - 11)
        ctype_len = size - 11;
    ctype = (const char *)data + 11;
    body = ctype + ctype_len;
    body_len = size - 11 - ctype_len;
    for (size_t i = 0; i < ctype_len; i++)
        if ((unsigned char)ctype[i] < 0x20 || ctype[i] == 0x7f)
            clean = 0;

    e = centry_new(status, stored_ms, ctype, ctype_len, body, body_len);
    CHECK(e != NULL, "centry_new failed");
    e->gen_proj = be(data + 2, 8) ^ 0x5555555555555555ULL;
    e->gen_all = ~be(data + 2, 8);
    check_fields(e);
    enc = centry_encode(e, &len);
    CHECK(enc != NULL, "centry_encode failed");
    CHECK(len == HDR_LEN + ctype_len + 4 + body_len, "encoding length %zu", len);
    d = centry_decode(enc, len);
    if (!clean) {
        CHECK(d == NULL, "decoded a ctype with a control byte");
    } else {
        CHECK(d != NULL, "own encoding does not decode (ctype_len %zu body_len %zu)",
              ctype_len, body_len);
        check_fields(d);
        CHECK(d->status == e->status && d->stored_ms == e->stored_ms &&
                  d->gen_proj == e->gen_proj && d->gen_all == e->gen_all &&
                  strcmp(d->etag, e->etag) == 0 && d->ctype_len == e->ctype_len &&
                  d->body_len == e->body_len &&
                  memcmp(d->ctype, e->ctype, e->ctype_len) == 0 &&
                  memcmp(d->body, e->body, e->body_len) == 0,
              "decoded entry differs from the encoded one");
        centry_decref(d);
    }
    free(enc);
    centry_decref(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_direction(data, size);
    encode_direction(data, size);
    return 0;
}
