#include "accesslog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "clock.h"
#include "util.h"

void accesslog_entry_init(struct accesslog_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->upstream_ms = -1;
}

/* s[0..n) as a JSON string; bytes outside valid UTF-8 become U+FFFD
 * (yajl_gen escapes the control characters but passes other bytes as
 * they are, which would make the line invalid JSON). */
static yajl_gen_status gen_text(yajl_gen g, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    yajl_gen_status st;
    unsigned char *fixed;
    size_t i = 0, o = 0, k;

    while (i < n && (k = utf8_seq_len(s + i, n - i)) != 0)
        i += k;
    if (i == n)
        return yajl_gen_string(g, s, n);
    fixed = malloc(n * 3);
    if (fixed == NULL)
        return yajl_gen_in_error_state;   /* ENOMEM: yajl has no code for it */
    memcpy(fixed, s, i);
    o = i;
    while (i < n) {
        k = utf8_seq_len(s + i, n - i);
        if (k == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        }
    }
    st = yajl_gen_string(g, fixed, o);
    free(fixed);
    return st;
}

static yajl_gen_status gen_str(yajl_gen g, const char *s)
{
    return s ? gen_text(g, s, strlen(s)) : yajl_gen_null(g);
}

/* Milliseconds to the microsecond, without trailing zeros: 12.5, 0.412, 3. */
static yajl_gen_status gen_ms(yajl_gen g, double v)
{
    char buf[64];
    size_t n;

    if (!isfinite(v))
        return yajl_gen_null(g);
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
    return yajl_gen_number(g, buf, n);
}

static yajl_gen_status gen_time(yajl_gen g, int64_t ms)
{
    char buf[64];
    struct tm tm;
    int64_t sec = ms / 1000, frac = ms % 1000;
    time_t t;
    size_t n;

    if (frac < 0)
        sec--, frac += 1000;
    t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL)
        return yajl_gen_null(g);
    n = strftime(buf, sizeof(buf) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)frac);
    return yajl_gen_string(g, (const unsigned char *)buf, n);
}

#define KEY(g, k) yajl_gen_string((g), (const unsigned char *)(k), sizeof(k) - 1)

char *accesslog_format(const struct accesslog_entry *e, size_t *len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t n;
    char *line = NULL;
    int bad = 0;

    if (g == NULL)
        return NULL;
    /* A guard only: gen_text already hands yajl valid UTF-8. */
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    bad |= yajl_gen_map_open(g);
    bad |= KEY(g, "time");
    bad |= gen_time(g, e->time_ms ? e->time_ms : wall_ms());
    bad |= KEY(g, "request_id");
    bad |= gen_str(g, e->request_id);
    bad |= KEY(g, "method");
    bad |= gen_str(g, e->method);
    bad |= KEY(g, "path");
    bad |= e->path ? gen_text(g, e->path, strcspn(e->path, "?")) : yajl_gen_null(g);
    bad |= KEY(g, "route");
    bad |= gen_str(g, e->route);
    bad |= KEY(g, "status");
    bad |= yajl_gen_integer(g, e->status);
    bad |= KEY(g, "cache");
    bad |= gen_str(g, e->cache);
    bad |= KEY(g, "project");
    bad |= gen_str(g, e->project);
    bad |= KEY(g, "upstream_status");
    bad |= e->upstream_status ? yajl_gen_integer(g, e->upstream_status) : yajl_gen_null(g);
    bad |= KEY(g, "upstream_ms");
    bad |= e->upstream_ms >= 0 ? gen_ms(g, e->upstream_ms) : yajl_gen_null(g);
    bad |= KEY(g, "duration_ms");
    bad |= gen_ms(g, e->duration_ms);
    bad |= KEY(g, "bytes");
    bad |= yajl_gen_integer(g, e->bytes > INT64_MAX ? INT64_MAX : (long long)e->bytes);
    bad |= KEY(g, "client");
    bad |= gen_str(g, e->client);
    bad |= yajl_gen_map_close(g);
    if (!bad && yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok &&
        (line = malloc(n + 2)) != NULL) {
        memcpy(line, buf, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        *len = n + 1;
    }
    yajl_gen_free(g);
    return line;
}

int accesslog_write(FILE *f, const struct accesslog_entry *e)
{
    size_t len;
    char *line = accesslog_format(e, &len);
    int rc;

    if (line == NULL)
        return -1;
    rc = fwrite(line, 1, len, f ? f : stderr) == len ? 0 : -1;
    free(line);
    return rc;
}
