/* util: small helpers several modules share. */
#ifndef LCGATE_UTIL_H
#define LCGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* n random bytes from getrandom(2) (no /dev/urandom, no fallback): 0, or
 * -1 with errno set if the kernel cannot give them. */
int util_random(void *buf, size_t n);

/* A fast random number, for jitter and ids that need not be secret;
 * thread-safe (each thread has its own generator, seeded by util_random). */
uint64_t util_random64(void);

/* SipHash-2-4 of p[0..n) under a 16-byte key. */
uint64_t util_siphash(const unsigned char key[16], const void *p, size_t n);

/* The hash of every in-process table whose keys a client can choose:
 * SipHash-2-4 under a random key drawn once per process, so that nobody
 * outside can compute keys that share a bucket. */
uint64_t util_hash(const void *p, size_t n);

/* The value of a hex digit (either case), or -1. */
static inline int util_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Every error body lcgate makes: {"detail":"<text>"}, text escaped as
 * yajl_gen escapes a string ('"', '\\', \b \f \n \r \t, other control
 * bytes as \u00XX; the rest as it is), into buf of cap bytes (at least 16).
 * The text is cut where it would not fit: UTIL_JSON_DETAIL_CAP(n) bytes
 * hold any text of n bytes. The body's length (no NUL is added). */
size_t util_json_detail(char *buf, size_t cap, const char *text);
#define UTIL_JSON_DETAIL_CAP(n) (6 * (n) + 16)

/* The length of the strict UTF-8 sequence at s[0..n) (no overlongs,
 * surrogates or code points past U+10FFFF), or 0 if none starts there. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif
