/* util: small pure helpers several modules share. */
#ifndef LCGATE_UTIL_H
#define LCGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, for the in-process hash tables (seed 0 unless keys may be
 * chosen by clients to collide). */
static inline uint64_t fnv1a(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL ^ seed;

    while (n--) {
        h ^= *s++;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The length of the strict UTF-8 sequence at s[0..n) (no overlongs,
 * surrogates or code points past U+10FFFF), or 0 if none starts there. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif
