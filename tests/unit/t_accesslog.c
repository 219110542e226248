/* accesslog: the exact JSON line, nulls, the query cut from the path, odd
 * bytes still giving valid JSON, one line per write. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "accesslog.h"
#include "tap.h"

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
          "\"client\":\"127.0.0.1:50312\"}\n",
          "every field, in order");

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
          "\"duration_ms\":0.013,\"bytes\":0,\"client\":null}\n",
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
          "\"client\":\"127.0.0.1:50312\"}\n",
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
    got = accesslog_format(&e, &len);
    tap_ok(got && strstr(got, "\"request_id\":\"id\\r\",") != NULL &&
               strstr(got, "\"project\":\"p\xef\xbf\xbd\\\"\",") != NULL &&
               strstr(got, "\"client\":\"unix\"}") != NULL && parses(got),
           "every string field is cleaned the same way");
    free(got);
}

static void writes(void)
{
    struct accesslog_entry e = full();
    char *mem = NULL, *want, buf[1024];
    size_t memlen = 0, wantlen;
    FILE *f = open_memstream(&mem, &memlen);
    int lines = 0;

    want = accesslog_format(&e, &wantlen);
    tap_ok(accesslog_write(f, &e) == 0, "accesslog_write returns 0");
    fclose(f);
    tap_is_str(mem, want, "the written line is the formatted line");
    free(mem);

    f = tmpfile();
    accesslog_write(f, &e);
    e.path = "/second\xff";
    accesslog_write(f, &e);
    rewind(f);
    while (fgets(buf, sizeof(buf), f)) {
        lines++;
        tap_ok(parses(buf), "tmpfile line %d is valid JSON", lines);
    }
    fclose(f);
    tap_ok(lines == 2, "two writes, two lines");
    free(want);
}

int main(void)
{
    fields();
    numbers_and_time();
    paths();
    writes();
    return tap_done();
}
