/* accesslog: the exact JSON line, nulls, the query cut from the path,
 * strings escaped exactly as yajl_gen escapes them, odd bytes still giving
 * valid JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "accesslog.h"
#include "tap.h"
#include "util.h"

/* Does line (one JSON text and its '\n') parse with yajl's strict parser
 * (which also checks UTF-8)? */
static int parses(const char *line)
{
    char err[128];
    yajl_val v = yajl_tree_parse(line, err, sizeof(err));
    int ok = v != NULL && YAJL_IS_OBJECT(v);

    yajl_tree_free(v);
    return ok;
}

static void check(const struct accesslog_entry *e, const char *want, const char *name)
{
    size_t len = 0;
    char *got = accesslog_format(e, &len);

    tap_is_str(got, want, "%s", name);
    tap_ok(got && len == strlen(got) && parses(got), "%s: valid JSON, length right", name);
    free(got);
}

static struct accesslog_entry full(void)
{
    struct accesslog_entry e;

    accesslog_entry_init(&e);
    e.time_ms = 1714566896789;
    e.request_id = "req-1";
    e.method = "GET";
    e.path = "/api/v1/jobs";
    e.route = "v1_batch_jobs";
    e.status = 200;
    e.cache = "MISS";
    e.project = "9f2c";
    e.upstream_status = 200;
    e.upstream_ms = 41.5;
    e.duration_ms = 42.0004;
    e.bytes = 1234;
    e.client = "127.0.0.1:50312";
    e.client_name = "etl";
    e.user_agent = "curl/7.88.1";
    e.bytes_received = 17;
    e.protocol = "HTTP/1.1";
    e.detail = "stale-if-error";
    return e;
}

static void fields(void)
{
    struct accesslog_entry e = full();

    check(&e,
          "{\"time\":\"2024-05-01T12:34:56.789Z\",\"request_id\":\"req-1\",\"method\":\"GET\","
          "\"path\":\"/api/v1/jobs\",\"route\":\"v1_batch_jobs\",\"status\":200,"
          "\"cache\":\"MISS\",\"project\":\"9f2c\",\"upstream_status\":200,"
          "\"upstream_ms\":41.5,\"duration_ms\":42,\"bytes\":1234,"
          "\"client\":\"127.0.0.1:50312\",\"client_name\":\"etl\","
          "\"user_agent\":\"curl/7.88.1\",\"bytes_received\":17,\"protocol\":\"HTTP/1.1\","
          "\"detail\":\"stale-if-error\"}\n",
          "every field, in order (the new ones after client)");

    accesslog_entry_init(&e);
    e.time_ms = 1000;
    e.method = "POST";
    e.path = "/nowhere";
    e.route = "none";
    e.status = 404;
    e.duration_ms = 0.0126;
    check(&e,
          "{\"time\":\"1970-01-01T00:00:01.000Z\",\"request_id\":null,\"method\":\"POST\","
          "\"path\":\"/nowhere\",\"route\":\"none\",\"status\":404,\"cache\":null,"
          "\"project\":null,\"upstream_status\":null,\"upstream_ms\":null,"
          "\"duration_ms\":0.013,\"bytes\":0,\"client\":null,\"client_name\":null,"
          "\"user_agent\":null,\"bytes_received\":null,\"protocol\":null,\"detail\":null}\n",
          "absent values are null (init)");

    e = full();
    e.upstream_status = 0;
    e.upstream_ms = 30000;
    e.cache = "STALE";
    e.status = 200;
    check(&e,
          "{\"time\":\"2024-05-01T12:34:56.789Z\",\"request_id\":\"req-1\",\"method\":\"GET\","
          "\"path\":\"/api/v1/jobs\",\"route\":\"v1_batch_jobs\",\"status\":200,"
          "\"cache\":\"STALE\",\"project\":\"9f2c\",\"upstream_status\":null,"
          "\"upstream_ms\":30000,\"duration_ms\":42,\"bytes\":1234,"
          "\"client\":\"127.0.0.1:50312\",\"client_name\":\"etl\","
          "\"user_agent\":\"curl/7.88.1\",\"bytes_received\":17,\"protocol\":\"HTTP/1.1\","
          "\"detail\":\"stale-if-error\"}\n",
          "an upstream that timed out: time without a status");
}

static void numbers_and_time(void)
{
    struct accesslog_entry e = full();
    size_t len;
    char *got;

    e.time_ms = -1;
    e.upstream_ms = NAN;
    e.duration_ms = 1e20;
    e.bytes = UINT64_MAX;
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"time\":\"1969-12-31T23:59:59.999Z\"") != NULL,
           "a time before the epoch rounds down");
    tap_ok(got && strstr(got, "\"upstream_ms\":null,\"duration_ms\":1e+20,"
                              "\"bytes\":9223372036854775807,") != NULL,
           "NaN is null, a huge time stays a number, bytes clamp to int64");
    tap_ok(got && parses(got), "still valid JSON");
    free(got);

    e = full();
    e.duration_ms = INFINITY;
    e.upstream_ms = 0.0004;
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"upstream_ms\":0,\"duration_ms\":null,") != NULL,
           "sub-microsecond rounds to 0; infinity is null");
    free(got);

    e = full();
    e.time_ms = 0;
    got = accesslog_format(&e, &len);
    tap_ok(got && strncmp(got, "{\"time\":\"20", 11) == 0 && got[32] == 'Z' &&
               got[28] == '.' && got[19] == 'T',
           "time 0 is now, as YYYY-MM-DDTHH:MM:SS.mmmZ");
    free(got);
}

/* What put_ms writes for v, and what "%.3f" less its trailing zeros does. */
static void both_ms(double v, char *ours_out, char *want)
{
    struct accesslog_entry e;
    size_t len, n;
    char *line, *a, *b;

    accesslog_entry_init(&e);
    e.time_ms = 1;
    e.duration_ms = v;
    line = accesslog_format(&e, &len);
    a = strstr(line, "\"duration_ms\":") + 14;
    b = strchr(a, ',');
    memcpy(ours_out, a, (size_t)(b - a));
    ours_out[b - a] = '\0';
    free(line);
    n = (size_t)snprintf(want, 64, "%.3f", v);
    while (want[n - 1] == '0')
        n--;
    if (want[n - 1] == '.')
        n--;
    want[n] = '\0';
}

static void durations(void)
{
    char got[64], want[64];
    long long us, bad = 0;
    uint64_t x = 88172645463325252ULL;
    int i;

    for (us = 0; us < 200000; us++) {
        both_ms((double)us / 1000.0, got, want);
        if (strcmp(got, want) != 0 && bad++ == 0)
            printf("#   %lld us: %s, want %s\n", us, got, want);
    }
    for (i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        us = (long long)(x % 1000000000000000ULL);     /* up to 10^12 ms */
        both_ms((double)us / 1000.0, got, want);
        if (strcmp(got, want) != 0 && bad++ == 0)
            printf("#   %lld us: %s, want %s\n", us, got, want);
    }
    tap_ok(bad == 0, "a time of whole microseconds (as lcgate measures) is written as %%.3f "
           "writes it, without its trailing zeros (300000 cases)");
}

static void paths(void)
{
    struct accesslog_entry e = full();
    size_t len;
    char *got;

    e.path = "/api/v1/jobs?api_key=llx-SECRET&project_id=p";
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"path\":\"/api/v1/jobs\",") != NULL &&
               strstr(got, "SECRET") == NULL && strstr(got, "project_id") == NULL,
           "the query is cut from the path");
    free(got);

    e.path = "/a\"b\\c\x01\t\n\x1f\x7f/";
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"path\":\"/a\\\"b\\\\c\\u0001\\t\\n\\u001F\x7f/\",") != NULL,
           "quotes, backslashes and control bytes are escaped");
    tap_ok(got && parses(got) && strchr(got, '\n') == got + len - 1,
           "still one valid line");
    free(got);

    /* stray byte, lead byte cut by '/', overlong '/', surrogate, a lead
     * byte at the very end; then valid 2- and 4-byte characters. */
    e.path = "/\xff/\xc3/\xc0\xaf/\xed\xa0\x80/\xc3\xa9\xf0\x9f\x98\x80/\xe2\x82";
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"path\":\"/\xef\xbf\xbd/\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd/"
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd/\xc3\xa9\xf0\x9f\x98\x80/"
                              "\xef\xbf\xbd\xef\xbf\xbd\",") != NULL,
           "each byte outside valid UTF-8 becomes U+FFFD, valid text is kept");
    tap_ok(got && parses(got), "invalid UTF-8 in the path still gives valid JSON");
    free(got);

    e = full();
    e.project = "p\xfe\"";
    e.request_id = "id\r";
    e.client = "unix";
    e.user_agent = "ua\x01\xc3";
    e.client_name = "n\\";
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"request_id\":\"id\\r\",") != NULL &&
               strstr(got, "\"project\":\"p\xef\xbf\xbd\\\"\",") != NULL &&
               strstr(got, "\"client\":\"unix\",") != NULL &&
               strstr(got, "\"client_name\":\"n\\\\\",") != NULL &&
               strstr(got, "\"user_agent\":\"ua\\u0001\xef\xbf\xbd\",") != NULL && parses(got),
           "every string field is cleaned the same way");
    free(got);
}

/* yajl_gen's own encoding of s[0..n), after the same UTF-8 cleaning. */
static char *yajl_json(const unsigned char *s, size_t n)
{
    unsigned char fixed[256];
    const unsigned char *out;
    size_t i = 0, o = 0, k, len;
    yajl_gen g = yajl_gen_alloc(NULL);
    char *r;

    while (i < n) {
        if ((k = utf8_seq_len(s + i, n - i)) == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        }
    }
    yajl_gen_string(g, fixed, o);
    yajl_gen_get_buf(g, &out, &len);
    r = strndup((const char *)out, len);
    yajl_gen_free(g);
    return r;
}

/* The user_agent value of s's line, as accesslog writes it. */
static char *ours(const char *s)
{
    struct accesslog_entry e;
    size_t len;
    char *line, *a, *b, *r = NULL;

    accesslog_entry_init(&e);
    e.time_ms = 1;
    e.user_agent = s;
    line = accesslog_format(&e, &len);
    if (line && (a = strstr(line, "\"user_agent\":")) != NULL &&
        (b = strstr(a, ",\"bytes_received\":")) != NULL)
        r = strndup(a + 13, (size_t)(b - a - 13));
    free(line);
    return r;
}

static void like_yajl(void)
{
    static const char *const seqs[] = {
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xc0\xaf",
        "\xf4\x90\x80\x80", "\xe2\x82", "\xf0\x9f\x98", "/\"\\\b\f\n\r\t\x7f\x1f", "",
    };
    char s[24];
    int b, pos, bad = 0;
    size_t i;

    for (b = 1; b < 256; b++) {
        for (pos = 0; pos < 17; pos++) {
            char *y, *o;
            memcpy(s, "abcdefghijklmnopq", 18);   /* 8 bytes at a time, and the rest */
            s[pos] = (char)b;
            y = yajl_json((const unsigned char *)s, 17);
            o = ours(s);
            if (o == NULL || strcmp(y, o) != 0) {
                if (bad++ == 0)
                    printf("#   byte 0x%02x at %d: yajl %s, ours %s\n", b, pos, y,
                           o ? o : "(null)");
            }
            free(y);
            free(o);
        }
    }
    tap_ok(bad == 0, "each byte 1..255, anywhere in a string, is written exactly as yajl_gen "
           "writes it");
    bad = 0;
    for (i = 0; i < 2 * sizeof(seqs) / sizeof(seqs[0]); i++) {
        char t[64], *y, *o;
        /* alone, and across the 8-byte boundary of a longer string */
        snprintf(t, sizeof(t), i % 2 ? "%s" : "abcdefg%shijklmnopq", seqs[i / 2]);
        y = yajl_json((const unsigned char *)t, strlen(t));
        o = ours(t);
        if (o == NULL || strcmp(y, o) != 0) {
            if (bad++ == 0)
                printf("#   case %zu: yajl %s, ours %s\n", i, y, o ? o : "(null)");
        }
        free(y);
        free(o);
    }
    tap_ok(bad == 0, "so are multi-byte sequences, valid and not, and the escapes");
}

static void appends(void)
{
    struct accesslog_entry e = full();
    char *buf = NULL, *first, *one;
    size_t len = 0, cap = 0, n1;

    one = accesslog_format(&e, &n1);
    tap_ok(accesslog_append(&e, &buf, &len, &cap) == 0 && len == n1 &&
               memcmp(buf, one, n1) == 0, "accesslog_append writes the line");
    first = buf;
    tap_ok(accesslog_append(&e, &buf, &len, &cap) == 0 && len == 2 * n1 &&
               memcmp(buf + n1, one, n1) == 0 && buf == first,
           "a second line follows it, in the same buffer while it has room");
    free(buf);
    free(one);
}

int main(void)
{
    fields();
    numbers_and_time();
    durations();
    paths();
    like_yajl();
    appends();
    return tap_done();
}
