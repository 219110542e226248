#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int util_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    ssize_t r;

    while (n > 0) {
        /* Blocks only until the kernel's pool is first initialised. */
        r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* getrandom fails only where lcgate cannot run (Linux before 3.17), and
 * front_start has drawn from it already; a generator or a table key
 * without randomness would be worse than stopping. */
static void need_random(void *buf, size_t n)
{
    if (util_random(buf, n) != 0) {
        fprintf(stderr, "lcgate: getrandom: %s\n", strerror(errno));
        abort();
    }
}

/* SplitMix64 on a per-thread state. */
uint64_t util_random64(void)
{
    static __thread uint64_t state;
    static __thread int seeded;
    uint64_t z;

    if (!seeded) {
        need_random(&state, sizeof(state));
        seeded = 1;
    }
    z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

uint64_t util_siphash(const unsigned char key[16], const void *p, size_t n)
{
    const unsigned char *s = p, *end = s + (n & ~(size_t)7);
    uint64_t k0 = le64(key), k1 = le64(key + 8), m, b = (uint64_t)n << 56;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t i;

    for (; s < end; s += 8) {
        m = le64(s);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < (n & 7); i++)
        b |= (uint64_t)s[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static unsigned char hash_key[16];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    need_random(hash_key, sizeof(hash_key));
}

uint64_t util_hash(const void *p, size_t n)
{
    pthread_once(&hash_once, hash_key_init);
    return util_siphash(hash_key, p, n);
}


size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k, j;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

size_t util_json_detail(char *buf, size_t cap, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char head[] = "{\"detail\":\"";
    size_t n = sizeof(head) - 1;
    const unsigned char *t = (const unsigned char *)text;

    memcpy(buf, head, n);
    for (; *t && n + 6 + 2 <= cap; t++) {
        const char *esc = NULL;
        switch (*t) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc != NULL) {
            buf[n++] = esc[0];
            buf[n++] = esc[1];
        } else if (*t < 0x20) {
            memcpy(buf + n, "\\u00", 4);
            buf[n + 4] = hex[*t >> 4];
            buf[n + 5] = hex[*t & 15];
            n += 6;
        } else {
            buf[n++] = (char)*t;
        }
    }
    buf[n++] = '"';
    buf[n++] = '}';
    return n;
}
