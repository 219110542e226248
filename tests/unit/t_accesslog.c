/* accesslog and alog: the exact JSON line, nulls, the query cut from the
 * path, strings escaped exactly as yajl_gen escapes them, odd bytes still
 * giving valid JSON; then where lines go: buffered until the loop turn
 * ends or 64 KiB, a renamed file reopened, a full pipe never blocking and
 * its losses counted, threads' lines whole. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "accesslog.h"
#include "alog.h"
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
    static const char plain41[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDE";
    char s[48];
    int b, pos, bad = 0;
    size_t i;

    /* 41 bytes: two blocks of 16, one word of 8, and the rest */
    for (b = 1; b < 256; b++) {
        for (pos = 0; pos < 41; pos++) {
            char *y, *o;
            memcpy(s, plain41, sizeof(plain41));
            s[pos] = (char)b;
            y = yajl_json((const unsigned char *)s, 41);
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

/* ---- alog ---- */

static char dir[] = "/tmp/t_accesslog.XXXXXX";

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;

    *n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (cap - *n < 65536 && (buf = realloc(buf, cap = cap * 2 + 65536)) == NULL)
            abort();
        size_t k = fread(buf + *n, 1, cap - *n - 1, f);
        if (k == 0)
            break;
        *n += k;
    }
    fclose(f);
    buf[*n] = '\0';
    return buf;
}

/* Lines of text[0..n): how many, how many do not parse (or lack '\n'). */
static size_t count_lines(char *text, size_t n, size_t *bad)
{
    size_t lines = 0;
    char *p = text, *nl;

    *bad = 0;
    while (p < text + n) {
        if ((nl = memchr(p, '\n', (size_t)(text + n - p))) == NULL) {
            (*bad)++;
            break;
        }
        *nl = '\0';
        lines++;
        if (!parses(p))
            (*bad)++;
        *nl = '\n';
        p = nl + 1;
    }
    return lines;
}

static size_t file_lines(const char *path, size_t *bad)
{
    size_t n, lines;
    char *text = slurp(path, &n);

    *bad = 0;
    if (text == NULL)
        return 0;
    lines = count_lines(text, n, bad);
    free(text);
    return lines;
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Run base until a file's batch is due (alog.c: BATCH_MS, 200 ms). */
static void batch_due(struct event_base *base)
{
    struct timeval tv = {0, 300 * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void buffered(void)
{
    struct event_base *base = event_base_new();
    struct accesslog_entry e = full();
    char path[128], err[256];
    struct stat st;
    size_t bad;
    mode_t um = umask(0);

    umask(um);
    snprintf(path, sizeof(path), "%s/a.log", dir);
    tap_ok(alog_open(base, path, err, sizeof(err)) == 0 && stat(path, &st) == 0 &&
               (st.st_mode & 0777) == (0640 & ~um),
           "alog_open creates the file, mode 0640 less the umask");
    alog_line(&e);
    alog_line(&e);
    alog_line(&e);
    tap_ok(file_size(path) == 0, "three lines wait in the thread's buffer");
    event_base_loop(base, EVLOOP_NONBLOCK);
    tap_ok(file_size(path) == 0, "to a file, past the loop turn too (a batch)");
    batch_due(base);
    tap_ok(file_lines(path, &bad) == 3 && bad == 0, "within 200 ms they are written");
    alog_line(&e);
    alog_close();
    tap_ok(file_lines(path, &bad) == 4 && bad == 0, "alog_close writes what is left");
    alog_line(&e);
    tap_ok(file_lines(path, &bad) == 4, "after alog_close a line goes nowhere");
    snprintf(path, sizeof(path), "%s/no-such-dir/a.log", dir);
    tap_ok(alog_open(base, path, err, sizeof(err)) == -1 && strstr(err, path) &&
               strstr(err, strerror(ENOENT)),
           "a file that cannot be opened: -1, with the path and the reason (%s)", err);
    event_base_free(base);
}

static void big(void)
{
    struct event_base *base = event_base_new();
    struct accesslog_entry e = full();
    char path[128], err[256], *ua = malloc(ALOG_FLUSH_AT + 1001);
    size_t bad, n = 0, line;
    char *one = accesslog_format(&e, &line);
    off_t size;

    snprintf(path, sizeof(path), "%s/big.log", dir);
    alog_open(base, path, err, sizeof(err));
    while ((n + 1) * line <= ALOG_FLUSH_AT) {
        alog_line(&e);
        n++;
    }
    tap_ok(file_size(path) == 0, "ALOG_FLUSH_AT (%d KiB) of lines (%zu) wait", ALOG_FLUSH_AT / 1024, n);
    alog_line(&e);
    size = file_size(path);
    tap_ok(size == (off_t)(n * line), "the next line sends them out at once, without it "
           "(%lld bytes)", (long long)size);
    memset(ua, 'u', ALOG_FLUSH_AT + 1000);
    ua[ALOG_FLUSH_AT + 1000] = '\0';
    e.user_agent = ua;
    alog_line(&e);
    tap_ok(file_size(path) > (off_t)(ALOG_FLUSH_AT + 1000 + n * line),
           "a line longer than ALOG_FLUSH_AT goes out at once, after the one before it");
    event_base_loop(base, EVLOOP_NONBLOCK);
    tap_ok(file_lines(path, &bad) == n + 2 && bad == 0, "every line whole");
    alog_close();
    event_base_free(base);
    free(ua);
    free(one);
}

static void rotate(void)
{
    struct event_base *base = event_base_new();
    struct accesslog_entry e = full();
    char path[128], moved[140], other[140], err[256];
    size_t bad;

    snprintf(path, sizeof(path), "%s/r.log", dir);
    snprintf(moved, sizeof(moved), "%s/r.log.1", dir);
    snprintf(other, sizeof(other), "%s/nowhere/r.log", dir);
    alog_open(base, path, err, sizeof(err));
    alog_line(&e);
    alog_line(&e);
    rename(path, moved);
    batch_due(base);
    alog_line(&e);
    tap_ok(alog_rotate() == 0 && file_size(path) == 0,
           "alog_rotate creates the moved file anew");
    alog_line(&e);
    batch_due(base);
    tap_ok(file_lines(moved, &bad) == 3 && file_lines(path, &bad) == 1,
           "lines before it in the moved file (3), after it in the new one (1)");
    tap_ok(alog_reopen(other) == -1, "alog_reopen of a path that cannot be opened: -1");
    alog_line(&e);
    batch_due(base);
    tap_ok(file_lines(path, &bad) == 2, "and the old file stays");
    tap_ok(alog_reopen(NULL) == 0, "alog_reopen(NULL) stops the log");
    alog_line(&e);
    batch_due(base);
    tap_ok(file_lines(path, &bad) == 2 && file_lines(moved, &bad) == 3, "no line goes anywhere");
    alog_close();
    event_base_free(base);
}

/* Everything the pipe's read end p holds now (nonblocking). */
static size_t drain(int p, char **text, size_t *n, size_t *cap)
{
    size_t got = 0;
    ssize_t k;

    for (;;) {
        if (*cap - *n < 65536 && (*text = realloc(*text, *cap = *cap * 2 + 65536)) == NULL)
            abort();
        if ((k = read(p, *text + *n, *cap - *n)) <= 0)
            return got;
        *n += (size_t)k;
        got += (size_t)k;
    }
}

static void full_pipe(void)
{
    struct event_base *base = event_base_new();
    struct accesslog_entry e = full();
    char err[256], ua[1001], *text = NULL;
    size_t n = 0, cap = 0, i, lines, bad, total = 2000;
    uint64_t lost0 = alog_errors(), lost;
    int p[2], saved = dup(2), rounds;

    memset(ua, 'v', 1000);
    ua[1000] = '\0';
    e.user_agent = ua;
    if (pipe(p) != 0 || dup2(p[1], 2) < 0)
        abort();
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    alarm(30);                   /* a write that blocked would hang here */
    alog_open(base, "stderr", err, sizeof(err));
    for (i = 0; i < total; i++) {
        alog_line(&e);
        if (i % 50 == 49)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    lost = alog_errors() - lost0;
    tap_ok(lost > 0 && lost < total,
           "a pipe nobody reads: %zu lines (2.3 MB) written without blocking, those past the "
           "pipe and 1 MiB dropped and counted (%llu)", total, (unsigned long long)lost);
    for (rounds = 0; rounds < 50; rounds++) {
        drain(p[0], &text, &n, &cap);
        lines = count_lines(text, n, &bad);
        if (lines + lost >= total)
            break;
        event_base_loop(base, EVLOOP_ONCE);   /* the retry, 200 ms on */
    }
    lines = count_lines(text, n, &bad);
    tap_ok(lines + lost == total && bad == 0,
           "read again, the rest flows: read %zu + lost %llu = %zu, every line whole", lines,
           (unsigned long long)lost, total);
    alog_close();
    dup2(saved, 2);
    close(saved);
    close(p[0]);
    alarm(0);
    free(text);
    event_base_free(base);
}

static pthread_t reader;
static int reader_started, saved_stderr = -1;

struct writer {
    pthread_t th;
    int id;
    size_t n;
};

static void *write_lines(void *arg)
{
    struct writer *w = arg;
    struct event_base *base = event_base_new();
    struct accesslog_entry e = full();
    char rid[32];
    size_t i;

    alog_attach(base);
    e.request_id = rid;
    for (i = 0; i < w->n; i++) {
        snprintf(rid, sizeof(rid), "t%d-%zu", w->id, i);
        alog_line(&e);
        if (i % 7 == 6)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    alog_detach();
    event_base_free(base);
    return NULL;
}

static void *read_pipe(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536], path[128];
    ssize_t k;
    FILE *f;

    snprintf(path, sizeof(path), "%s/pipe.out", dir);
    if ((f = fopen(path, "wb")) == NULL)
        return NULL;
    while ((k = read(fd, buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR))
        if (k > 0)
            fwrite(buf, 1, (size_t)k, f);
    fclose(f);
    return NULL;
}

/* Four threads, each with its own loop, 1000 lines each, to dest; then
 * what readback holds: every line whole and in its thread's order, and
 * the lines there plus those counted lost are all 4000. */
static void threads_to(const char *dest, const char *readback, const char *what)
{
    struct event_base *base = event_base_new();
    struct writer w[4];
    char err[256], *text, *p, *end;
    size_t n, lines, bad, i, order = 0;
    long next[4] = {-1, -1, -1, -1};
    uint64_t lost0 = alog_errors(), lost;

    alog_open(base, dest, err, sizeof(err));
    for (i = 0; i < 4; i++) {
        w[i].id = (int)i;
        w[i].n = 1000;
        pthread_create(&w[i].th, NULL, write_lines, &w[i]);
    }
    for (i = 0; i < 4; i++)
        pthread_join(w[i].th, NULL);
    alog_close();
    event_base_free(base);
    lost = alog_errors() - lost0;
    if (strcmp(dest, "stderr") == 0)
        dup2(saved_stderr, 2);   /* the pipe's last writer: the reader ends */
    if (reader_started)
        pthread_join(reader, NULL);
    if ((text = slurp(readback, &n)) == NULL)
        text = strdup(""), n = 0;
    lines = count_lines(text, n, &bad);
    for (p = text; (p = strstr(p, "\"request_id\":\"t")) != NULL; p = end) {
        int id = p[15] - '0';
        long seq = strtol(p + 17, &end, 10);
        if (id < 0 || id > 3 || seq <= next[id])
            order++;
        else
            next[id] = seq;
    }
    tap_ok(lines + lost == 4000 && bad == 0 && order == 0,
           "4 threads to %s: %zu lines written, %llu counted lost, every one whole, in each "
           "thread's order", what, lines, (unsigned long long)lost);
    free(text);
}

static void threads(void)
{
    char path[128], out[128];
    int p[2];

    snprintf(path, sizeof(path), "%s/threads.log", dir);
    threads_to(path, path, "a file");
    snprintf(out, sizeof(out), "%s/pipe.out", dir);
    saved_stderr = dup(2);
    if (pipe(p) != 0 || dup2(p[1], 2) < 0)
        abort();
    close(p[1]);
    reader_started = pthread_create(&reader, NULL, read_pipe, &p[0]) == 0;
    threads_to("stderr", out, "a pipe read by another thread");
    close(p[0]);
    close(saved_stderr);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    fields();
    numbers_and_time();
    durations();
    paths();
    like_yajl();
    appends();
    buffered();
    big();
    rotate();
    full_pipe();
    threads();
    {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            tap_ok(0, "removing %s", dir);
    }
    return tap_done();
}
