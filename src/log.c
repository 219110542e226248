#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static enum log_level level = LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const char *const priorities[] = {"<3>", "<4>", "<6>", "<7>"};
static int journal;
static __thread const char *thread_tag;

int log_detect_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char end;

    journal = v != NULL && sscanf(v, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
              fstat(2, &st) == 0 && (unsigned long long)st.st_dev == dev &&
              (unsigned long long)st.st_ino == ino;
    return journal;
}

void log_set_level(enum log_level lvl)
{
    __atomic_store_n(&level, lvl, __ATOMIC_RELAXED);
}

void log_set_thread_tag(const char *tag)
{
    thread_tag = tag;
}

int log_level_parse(const char *s, enum log_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Writes msg[0..n) to out with every control byte and DEL as \xNN and a
 * backslash as \\: what a request brings cannot end the line, start a
 * forged one or reach the terminal as an escape sequence. out must hold
 * 4 * n bytes. Returns the length written. */
static size_t escape(char *out, const char *msg, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)msg[i];

        if (ch < 0x20 || ch == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else if (ch == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    char msg[2048], line[64 + 4 * sizeof(msg)], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t n, len;
    int k;

    if (lvl > __atomic_load_n(&level, __ATOMIC_RELAXED))
        return;
    va_start(ap, fmt);
    k = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    len = (size_t)k < sizeof(msg) ? (size_t)k : sizeof(msg) - 1;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line, 64, "%s%s.%03ldZ lcgate[%s] %s%s", journal ? priorities[lvl] : "", ts,
                 now.tv_nsec / 1000000, names[lvl], thread_tag ? thread_tag : "",
                 thread_tag ? ": " : "");
    n = (size_t)k < 64 ? (size_t)k : 63;
    n += escape(line + n, msg, len);
    line[n++] = '\n';
    /* One write per line, so that lines from concurrent writers never mix. */
    fwrite(line, 1, n, stderr);
}
