/* t_sha1: SHA-1 against FIPS 180 vectors and the lengths where the padding
 * changes shape (55: one block; 56 and 63: the length spills into a second
 * block; 64: a whole block, then padding alone). */
#include <stdlib.h>
#include <string.h>

#include "sha1.h"
#include "sha256.h"
#include "tap.h"

static void check(const void *in, size_t len, const char *want, const char *name)
{
    uint8_t out[SHA1_LEN];
    char hex[2 * SHA1_LEN + 1];

    sha1(in, len, out);
    hex_encode(out, SHA1_LEN, hex);
    tap_is_str(hex, want, "sha1 of %s", name);
}

int main(void)
{
    static const struct { size_t n; const char *hex; } as[] = {
        {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
        {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
        {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
        {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
        {1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
    };
    char *a = malloc(1000000);
    size_t i;

    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "\"\"");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d", "\"abc\"");
    check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "the 448-bit FIPS message");
    if (a == NULL)
        return 1;
    memset(a, 'a', 1000000);
    for (i = 0; i < sizeof(as) / sizeof(as[0]); i++) {
        char name[32];

        snprintf(name, sizeof(name), "%zu times 'a'", as[i].n);
        check(a, as[i].n, as[i].hex, name);
    }
    free(a);
    return tap_done();
}
