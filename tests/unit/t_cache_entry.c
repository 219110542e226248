/* cache_entry: encode/decode round trip and rejection of every malformed
 * encoding, since Redis may hold anything under a key. */
#include <stdlib.h>
#include <string.h>

#include "cache_entry.h"
#include "sha256.h"
#include "tap.h"

static void sha256_vectors(void)
{
    static const struct { const char *in; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    uint8_t out[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    size_t i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        sha256(v[i].in, strlen(v[i].in), out);
        hex_encode(out, SHA256_LEN, hex);
        tap_is_str(hex, v[i].hex, "sha256 FIPS 180 vector %zu", i);
    }
    /* RFC 4231 test case 2 */
    hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
    hex_encode(out, SHA256_LEN, hex);
    tap_is_str(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
               "hmac-sha256 RFC 4231 case 2");
    {
        char big[1000];
        memset(big, 'a', sizeof(big));
        struct sha256 s;
        uint8_t a[SHA256_LEN], b[SHA256_LEN];
        sha256(big, sizeof(big), a);
        sha256_init(&s);
        sha256_update(&s, big, 1);
        sha256_update(&s, big + 1, 63);
        sha256_update(&s, big + 64, 500);
        sha256_update(&s, big + 564, 436);
        sha256_final(&s, b);
        tap_ok(memcmp(a, b, SHA256_LEN) == 0, "sha256 streaming equals one-shot");
    }
}

int main(void)
{
    const char body[] = "{\"items\":[],\"next_page_token\":null,\"total_size\":0}";
    struct centry *e = centry_new(200, 1700000000123LL, "application/json", 16, body,
                                  sizeof(body) - 1);
    struct centry *d;
    size_t len, i, bad = 0;
    char *enc;

    sha256_vectors();
    tap_ok(e != NULL && e->refcnt == 1, "centry_new gives one reference");
    tap_ok(strlen(e->etag) == 34 && e->etag[0] == '"' && e->etag[33] == '"',
           "the ETag is a quoted strong validator");
    {
        struct centry *same = centry_new(200, 5, "text/plain", 10, body, sizeof(body) - 1);
        struct centry *other = centry_new(200, 5, "application/json", 16, "{}", 2);
        tap_ok(strcmp(same->etag, e->etag) == 0 && strcmp(other->etag, e->etag) != 0,
               "the ETag follows the body bytes only");
        centry_decref(same);
        centry_decref(other);
    }
    e->gen_proj = 7;
    e->gen_all = 0x0102030405060708ULL;
    enc = centry_encode(e, &len);
    tap_ok(enc != NULL && len == 4 + 2 + 8 + 8 + 8 + 34 + 4 + 16 + 4 + sizeof(body) - 1,
           "encoding has the documented length");
    d = centry_decode(enc, len);
    tap_ok(d != NULL, "decode of an encoding succeeds");
    tap_ok(d && d->status == 200 && d->stored_ms == 1700000000123LL,
           "status and stored_ms survive the round trip");
    tap_ok(d && d->ctype_len == 16 && strcmp(d->ctype, "application/json") == 0,
           "content type survives the round trip");
    tap_ok(d && d->body_len == sizeof(body) - 1 && memcmp(d->body, body, d->body_len) == 0,
           "body bytes survive the round trip");
    tap_ok(d && d->gen_proj == 7 && d->gen_all == 0x0102030405060708ULL,
           "generations survive the round trip");
    tap_is_str(d ? d->etag : NULL, e->etag, "the ETag survives the round trip");
    centry_decref(d);

    for (i = 0; i < len; i++)
        if ((d = centry_decode(enc, i)) != NULL) {
            bad++;
            centry_decref(d);
        }
    tap_ok(bad == 0, "every truncation is rejected (%zu accepted)", bad);
    {
        char *longer = malloc(len + 1);
        memcpy(longer, enc, len);
        longer[len] = 'x';
        tap_ok(centry_decode(longer, len + 1) == NULL, "trailing bytes are rejected");
        longer[0] = 'X';
        tap_ok(centry_decode(longer, len) == NULL, "wrong magic is rejected");
        memcpy(longer, enc, len);
        longer[64] = (char)0xff; /* ctype_len far too large */
        tap_ok(centry_decode(longer, len) == NULL, "oversized ctype length is rejected");
        memcpy(longer, enc, len);
        longer[4] = 0; longer[5] = 42; /* status 42 */
        tap_ok(centry_decode(longer, len) == NULL, "impossible status is rejected");
        memcpy(longer, enc, len);
        longer[68 + 3] = '\n'; /* a line break inside the content type */
        tap_ok(centry_decode(longer, len) == NULL, "a content type with CR/LF is rejected");
        memcpy(longer, enc, len);
        longer[31] = 'Z';
        tap_ok(centry_decode(longer, len) == NULL, "an ETag that is not hex is rejected");
        free(longer);
    }
    tap_ok(centry_decode("", 0) == NULL, "empty value is rejected");
    free(enc);

    centry_incref(e);
    centry_decref(e);
    tap_ok(e->refcnt == 1, "incref/decref balance");
    centry_decref(e);
    {
        struct centry *empty = centry_new(200, 0, "", 0, "", 0);
        enc = centry_encode(empty, &len);
        d = centry_decode(enc, len);
        tap_ok(d && d->body_len == 0 && d->ctype_len == 0, "empty body and type round trip");
        centry_decref(d);
        centry_decref(empty);
        free(enc);
    }
    return tap_done();
}
