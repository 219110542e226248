#define _GNU_SOURCE             /* strchrnul */
#include "accesslog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "util.h"

/* A line but for its strings' text: the keys, quotes or nulls, the time,
 * the numbers (at most 32 bytes each), the NUL accesslog_format adds, and
 * slack for put_text's last word (it may store up to 7 bytes past a
 * string). */
#define LINE_FIXED 1024

void accesslog_entry_init(struct accesslog_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->upstream_ms = -1;
    e->bytes_received = -1;
}

/* Bytes written as they are: printable ASCII and DEL, but '"' (0x22) and
 * '\\' (0x5c). Not http_parse's classes: those are HTTP's, these JSON's. */
static const unsigned char plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

/* Are the 8 bytes of x all plain? None below 0x20, none from 0x80, no
 * '"', no '\\' (each test: some byte of the word is zero, or below n). */
static inline int plain8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

    return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & high) == 0;
}

#ifdef __SSE2__
#include <emmintrin.h>
/* Are the 16 bytes at p all plain? As plain8: a signed compare takes the
 * bytes from 0x80 for negative, so below 0x20 catches them too. */
static inline int plain16(const unsigned char *p, __m128i *x)
{
    __m128i bad;

    *x = _mm_loadu_si128((const __m128i *)(const void *)p);
    bad = _mm_or_si128(_mm_cmplt_epi8(*x, _mm_set1_epi8(0x20)),
                       _mm_or_si128(_mm_cmpeq_epi8(*x, _mm_set1_epi8('"')),
                                    _mm_cmpeq_epi8(*x, _mm_set1_epi8('\\'))));
    return _mm_movemask_epi8(bad) == 0;
}
#endif

/* s[0..n) as a JSON string, escaped as yajl_gen escapes (the line used to
 * be built with it, and readers may rely on the exact form), with each
 * byte outside valid UTF-8 as U+FFFD: at most 2 + 6 * n bytes. Plain text
 * goes 16 bytes at a time (SSE2, on every x86-64), then 8: this is most of
 * a line's cost. */
static char *put_text(char *o, const char *str, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, k;
    uint64_t x;

    *o++ = '"';
    for (;;) {
#ifdef __SSE2__
        __m128i v;
        while (n - i >= 16 && plain16(s + i, &v)) {
            _mm_storeu_si128((__m128i *)(void *)o, v);
            o += 16;
            i += 16;
        }
#endif
        while (n - i >= 8 && (memcpy(&x, s + i, 8), plain8(x))) {
            memcpy(o, &x, 8);
            o += 8;
            i += 8;
        }
        if (n - i < 8) {
            /* The rest, padded with plain bytes, as one word: o has the
             * room (the line's fixed part is reserved after it). */
            unsigned char w[8] = {'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'};
            switch (n - i) {     /* not a loop: GCC makes one a memcpy call */
            case 7: w[6] = s[i + 6]; /* fall through */
            case 6: w[5] = s[i + 5]; /* fall through */
            case 5: w[4] = s[i + 4]; /* fall through */
            case 4: w[3] = s[i + 3]; /* fall through */
            case 3: w[2] = s[i + 2]; /* fall through */
            case 2: w[1] = s[i + 1]; /* fall through */
            case 1: w[0] = s[i]; /* fall through */
            default: break;
            }
            memcpy(&x, w, 8);
            if (plain8(x)) {
                memcpy(o, &x, 8);
                o += n - i;
                break;
            }
        }
        while (i < n && plain[s[i]])
            *o++ = (char)s[i++];
        if (i == n)
            break;
        if (s[i] < 0x80) {
            *o++ = '\\';
            switch (s[i]) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                memcpy(o, "u00", 3);
                o[3] = hex[s[i] >> 4];
                o[4] = hex[s[i] & 15];
                o += 5;
            }
            i++;
        } else if ((k = utf8_seq_len(s + i, n - i)) == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, k);
            o += k;
            i += k;
        }
    }
    *o++ = '"';
    return o;
}

/* A string field of n bytes, or null. */
static char *put_str(char *o, const char *s, size_t n)
{
    if (s == NULL) {
        memcpy(o, "null", 4);
        return o + 4;
    }
    return put_text(o, s, n);
}

/* A field that needs no escaping (accesslog.h: lcgate's own words, a
 * method, a peer address), or null: copied between quotes. Half a line's
 * fields are of this kind; escaping them cost a hit about 400
 * instructions. */
static char *put_plain(char *o, const char *s, size_t n)
{
    if (s == NULL) {
        memcpy(o, "null", 4);
        return o + 4;
    }
    *o++ = '"';
    memcpy(o, s, n);
    o[n] = '"';
    return o + n + 1;
}

static const char pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *put_int(char *o, long long v)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, t;
    char *end;
    unsigned r;
    int len = 1;

    if (v >= 100 && v <= 999) {  /* a status: no loop */
        o[0] = (char)('0' + v / 100);
        o[1] = pairs[2 * (v % 100)];
        o[2] = pairs[2 * (v % 100) + 1];
        return o + 3;
    }
    if (v < 0)
        *o++ = '-';
    for (t = u; t >= 10; t /= 10)
        len++;
    end = o + len;
    o = end;
    while (u >= 100) {           /* two digits a division */
        r = (unsigned)(u % 100);
        u /= 100;
        o -= 2;
        o[0] = pairs[2 * r];
        o[1] = pairs[2 * r + 1];
    }
    if (u >= 10) {
        o -= 2;
        o[0] = pairs[2 * u];
        o[1] = pairs[2 * u + 1];
    } else {
        *--o = (char)('0' + u);
    }
    return end;
}

/* Milliseconds to the microsecond, without trailing zeros: 12.5, 0.412, 3.
 * The usual case (0 to 10^12 ms) without printf, which costs a hit more
 * than the rest of its line. */
static char *put_ms(char *o, double v)
{
    char buf[64];
    size_t n;

    if (!isfinite(v)) {
        memcpy(o, "null", 4);
        return o + 4;
    }
    if (v >= 0 && v < 1e12) {
        long long us = (long long)(v * 1000.0 + 0.5);
        int frac = (int)(us % 1000);
        o = put_int(o, us / 1000);
        if (frac != 0) {
            *o++ = '.';
            *o++ = (char)('0' + frac / 100);
            if ((frac %= 100) != 0) {
                *o++ = (char)('0' + frac / 10);
                if ((frac %= 10) != 0)
                    *o++ = (char)('0' + frac);
            }
        }
        return o;
    }
    if (fabs(v) >= 1e15) {
        n = (size_t)snprintf(buf, sizeof(buf), "%.17g", v);
    } else {
        n = (size_t)snprintf(buf, sizeof(buf), "%.3f", v);
        while (buf[n - 1] == '0')
            n--;
        if (buf[n - 1] == '.')
            n--;
        if (n == 2 && memcmp(buf, "-0", 2) == 0)
            buf[0] = '0', n = 1;
    }
    memcpy(o, buf, n);
    return o + n;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ"; the part to the second is kept per thread,
 * so gmtime_r runs once a second, not once a line. */
static char *put_time(char *o, int64_t ms)
{
    static __thread int64_t last_sec = INT64_MIN;
    static __thread char last[24];
    static __thread size_t last_len;
    int64_t sec = ms / 1000, frac = ms % 1000;
    struct tm tm;
    time_t t;

    if (frac < 0)
        sec--, frac += 1000;
    if (sec != last_sec) {
        t = (time_t)sec;
        if (gmtime_r(&t, &tm) == NULL) {
            memcpy(o, "null", 4);
            return o + 4;
        }
        last_len = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
        last_sec = sec;
    }
    *o++ = '"';
    if (last_len == 19)
        memcpy(o, last, 19);     /* years 1000 to 9999: no call */
    else
        memcpy(o, last, last_len);
    o += last_len;
    o[0] = '.';
    o[1] = (char)('0' + frac / 100);
    o[2] = (char)('0' + frac / 10 % 10);
    o[3] = (char)('0' + frac % 10);
    o[4] = 'Z';
    o[5] = '"';
    return o + 6;
}

#define KEY(o, k) (memcpy((o), (k), sizeof(k) - 1), (o) + sizeof(k) - 1)

/* The string fields, in the order of the line. */
enum { F_RID, F_METHOD, F_PATH, F_ROUTE, F_CACHE, F_PROJECT, F_CLIENT, F_CLIENT_NAME,
       F_USER_AGENT, F_PROTOCOL, F_DETAIL, NFIELDS };

int accesslog_append(const struct accesslog_entry *e, char **buf, size_t *len, size_t *cap)
{
    const char *v[NFIELDS] = {e->request_id, e->method, e->path, e->route, e->cache,
                              e->project, e->client, e->client_name, e->user_agent,
                              e->protocol, e->detail};
    size_t n[NFIELDS], need = LINE_FIXED, i;
    char *o;

    for (i = 0; i < NFIELDS; i++) {
        n[i] = v[i] == NULL ? 0 : i == F_PATH ? (size_t)(strchrnul(v[i], '?') - v[i])
                                               : strlen(v[i]);
        need += 6 * n[i];
    }
    if (*cap - *len < need) {
        size_t ncap = *cap ? *cap : 4096;
        char *grown;
        while (ncap - *len < need)
            ncap *= 2;
        if ((grown = realloc(*buf, ncap)) == NULL)
            return -1;
        *buf = grown;
        *cap = ncap;
    }
    o = *buf + *len;
    o = KEY(o, "{\"time\":");
    o = put_time(o, e->time_ms ? e->time_ms : wall_ms());
    o = put_str(KEY(o, ",\"request_id\":"), v[F_RID], n[F_RID]);
    o = put_plain(KEY(o, ",\"method\":"), v[F_METHOD], n[F_METHOD]);
    o = put_str(KEY(o, ",\"path\":"), v[F_PATH], n[F_PATH]);
    o = put_plain(KEY(o, ",\"route\":"), v[F_ROUTE], n[F_ROUTE]);
    o = put_int(KEY(o, ",\"status\":"), e->status);
    o = put_plain(KEY(o, ",\"cache\":"), v[F_CACHE], n[F_CACHE]);
    o = put_str(KEY(o, ",\"project\":"), v[F_PROJECT], n[F_PROJECT]);
    o = KEY(o, ",\"upstream_status\":");
    o = e->upstream_status ? put_int(o, e->upstream_status) : put_str(o, NULL, 0);
    o = KEY(o, ",\"upstream_ms\":");
    o = e->upstream_ms >= 0 ? put_ms(o, e->upstream_ms) : put_str(o, NULL, 0);
    o = put_ms(KEY(o, ",\"duration_ms\":"), e->duration_ms);
    o = put_int(KEY(o, ",\"bytes\":"), e->bytes > INT64_MAX ? INT64_MAX : (long long)e->bytes);
    o = put_plain(KEY(o, ",\"client\":"), v[F_CLIENT], n[F_CLIENT]);
    o = put_str(KEY(o, ",\"client_name\":"), v[F_CLIENT_NAME], n[F_CLIENT_NAME]);
    o = put_str(KEY(o, ",\"user_agent\":"), v[F_USER_AGENT], n[F_USER_AGENT]);
    o = KEY(o, ",\"bytes_received\":");
    o = e->bytes_received >= 0 ? put_int(o, e->bytes_received) : put_str(o, NULL, 0);
    o = put_plain(KEY(o, ",\"protocol\":"), v[F_PROTOCOL], n[F_PROTOCOL]);
    o = put_plain(KEY(o, ",\"detail\":"), v[F_DETAIL], n[F_DETAIL]);
    o = KEY(o, "}\n");
    *len = (size_t)(o - *buf);
    return 0;
}

char *accesslog_format(const struct accesslog_entry *e, size_t *len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (accesslog_append(e, &buf, &n, &cap) != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';               /* need leaves room for it */
    *len = n;
    return buf;
}
