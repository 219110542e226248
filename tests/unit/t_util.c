/* util: SipHash-2-4 against the reference vectors, util_hash's spread of
 * keys crafted to share one bucket under FNV-1a, its per-process key, and
 * the random sources. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "tap.h"
#include "util.h"

/* SipHash-2-4 of the messages 00, 00 01, ... (0 to 63 bytes) under the key
 * 00 01 .. 0f: vectors_sip64 of the reference implementation
 * (github.com/veorq/SipHash, vectors.h), read as little-endian words. */
static const uint64_t sip64[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
    0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
    0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
    0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
    0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
    0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL, 0xbed65cf21aa2ee98ULL,
    0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL,
    0x2f2e6163076bcfadULL, 0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL,
    0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL, 0x7127512f72f27cceULL,
    0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL,
    0x9abfd8766a33735cULL, 0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL,
    0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL, 0xf935451de4f21df2ULL,
    0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL,
    0xa192d576b245165aULL, 0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL,
    0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL, 0xb78dbfaf3a8d83bdULL,
    0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL,
    0x958a324ceb064572ULL,
};

/* FNV-1a with seed 0: the hash the tables used, which anyone can invert. */
static uint64_t fnv0(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    while (n--) {
        h ^= (unsigned char)*p++;
        h *= 1099511628211ULL;
    }
    return h;
}

static void *draw(void *arg)
{
    *(uint64_t *)arg = util_random64();
    return NULL;
}

#define NKEYS 64
#define NB 256

/* util_json_detail against yajl_gen (which built the front end's bodies
 * before): every byte 1..255 at the start, the middle and the end of a
 * text; and a text cut where the buffer ends is still one JSON object. */
static void json_detail(void)
{
    char text[8], ours[64], *cut;
    const unsigned char *want;
    size_t n, wlen;
    int b, pos, bad = 0;

    for (b = 1; b < 256; b++) {
        for (pos = 0; pos < 3; pos++) {
            yajl_gen g = yajl_gen_alloc(NULL);
            memcpy(text, "ab", 3);
            if (pos < 2)
                text[pos] = (char)b;
            else
                text[2] = (char)b, text[3] = '\0';
            n = util_json_detail(ours, sizeof(ours), text);
            yajl_gen_map_open(g);
            yajl_gen_string(g, (const unsigned char *)"detail", 6);
            yajl_gen_string(g, (const unsigned char *)text, strlen(text));
            yajl_gen_map_close(g);
            yajl_gen_get_buf(g, &want, &wlen);
            if (n != wlen || memcmp(ours, want, n) != 0) {
                if (bad++ == 0)
                    printf("#   byte 0x%02x at %d: %.*s against yajl's %.*s\n", b, pos, (int)n,
                           ours, (int)wlen, want);
            }
            yajl_gen_free(g);
        }
    }
    tap_ok(bad == 0, "util_json_detail escapes every byte as yajl_gen does");
    cut = malloc(UTIL_JSON_DETAIL_CAP(100));
    memset(cut, '"', 100);
    cut[100] = '\0';
    n = util_json_detail(ours, 32, cut);
    tap_ok(n <= 32 && memcmp(ours, "{\"detail\":\"", 11) == 0 && memcmp(ours + n - 2, "\"}", 2) == 0 &&
           ours[n - 3] == '"' && ours[n - 4] == '\\',
           "a text cut to fit ends with a whole escape and the closing \"}");
    tap_ok(util_json_detail(cut + 0, UTIL_JSON_DETAIL_CAP(0), "") == 13, "an empty text: {\"detail\":\"\"}");
    free(cut);
}

int main(void)
{
    unsigned char key[16], msg[64], buf[65536], zero[sizeof(buf)];
    uint64_t child_h, own_h, a, b, seen[NB] = {0};
    char keys[NKEYS][32];
    int fds[2], i, ok, nkeys = 0, used = 0, most = 0, same_fnv = 1, counts[NB] = {0};
    unsigned long n;
    pid_t pid = -1;

    /* Before anything here hashes: a child keys its own table. */
    if (pipe(fds) == 0 && (pid = fork()) == 0) {
        uint64_t h = util_hash("lcgate", 6);
        ssize_t w = write(fds[1], &h, sizeof(h));
        _exit(w == (ssize_t)sizeof(h) ? 0 : 1);
    } else {
        ok = 0;
        own_h = util_hash("lcgate", 6);
        if (pid > 0 && read(fds[0], &child_h, sizeof(child_h)) == (ssize_t)sizeof(child_h))
            ok = child_h != own_h;
        if (pid > 0)
            waitpid(pid, NULL, 0);
        tap_ok(ok, "two processes hash one key differently (a random key per process)");
    }
    tap_ok(util_hash("lcgate", 6) == own_h && util_hash("lcgate", 6) != util_hash("lcgatf", 6),
           "util_hash is stable within the process and depends on the bytes");

    for (i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    ok = 1;
    for (i = 0; i < 64; i++) {
        uint64_t h = util_siphash(key, msg, (size_t)i);
        if (h != sip64[i]) {
            printf("#   length %d: got %016llx want %016llx\n", i, (unsigned long long)h,
                   (unsigned long long)sip64[i]);
            ok = 0;
        }
    }
    tap_ok(ok, "util_siphash matches the 64 SipHash-2-4 reference vectors");

    /* Keys an attacker computes offline: all in bucket 0 of 256 under
     * FNV-1a seed 0. */
    for (n = 0; nkeys < NKEYS && n < 10000000; n++) {
        int len = snprintf(keys[nkeys], sizeof(keys[0]), "project-%lu", n);
        if ((fnv0(keys[nkeys], (size_t)len) & (NB - 1)) == 0)
            nkeys++;
    }
    for (i = 0; i < nkeys; i++) {
        uint64_t h = util_hash(keys[i], strlen(keys[i]));
        same_fnv &= (fnv0(keys[i], strlen(keys[i])) & (NB - 1)) == 0;
        if (counts[h & (NB - 1)]++ == 0)
            used++;
        if (counts[h & (NB - 1)] > most)
            most = counts[h & (NB - 1)];
    }
    tap_ok(nkeys == NKEYS && same_fnv, "%d crafted keys share bucket 0 under FNV-1a", nkeys);
    tap_ok(used >= 40 && most <= 6,
           "under util_hash they spread: %d buckets used, at most %d in one", used, most);

    memset(buf, 0, sizeof(buf));
    memset(zero, 0, sizeof(zero));
    tap_ok(util_random(buf, 0) == 0, "util_random of 0 bytes: 0");
    tap_ok(util_random(buf, sizeof(buf)) == 0 && memcmp(buf + sizeof(buf) - 16, zero, 16) != 0,
           "util_random fills 64 KiB, to the last bytes");
    memset(counts, 0, sizeof(counts));
    for (i = 0, used = 0; i < (int)sizeof(buf); i++)
        if (counts[buf[i]]++ == 0)
            used++;
    tap_ok(used == 256, "every byte value occurs in 64 KiB of it (%d)", used);
    memcpy(zero, buf, 32);
    tap_ok(util_random(buf, 32) == 0 && memcmp(buf, zero, 32) != 0,
           "two draws differ");

    ok = 1;
    for (i = 0; i < NB; i++) {
        int j;
        seen[i] = util_random64();
        for (j = 0; j < i; j++)
            ok &= seen[j] != seen[i];
    }
    a = 0;
    for (i = 0; i < NB; i++)
        a |= seen[i];
    tap_ok(ok && a == UINT64_MAX, "util_random64: 256 distinct draws, every bit set in some");
    {
        pthread_t t1, t2;
        a = b = 0;
        pthread_create(&t1, NULL, draw, &a);
        pthread_create(&t2, NULL, draw, &b);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        ok = a != b;
        for (i = 0; i < NB; i++)
            ok &= seen[i] != a && seen[i] != b;
        tap_ok(ok, "util_random64 in two other threads: draws of their own");
    }
    json_detail();
    return tap_done();
}
