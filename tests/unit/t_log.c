/* log: what reaches stderr, byte for byte. stderr is pointed at a temporary
 * file for each call, and the text after the "lcgate[level] " prefix is
 * compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

/* The lines log_info(fmt, arg) writes, prefixes stripped, in out. */
static void logged(char *out, size_t cap, const char *fmt, const char *arg)
{
    char path[] = "/tmp/t_log-XXXXXX", buf[16384], *p, *o = out;
    int fd = mkstemp(path), saved = dup(2);
    size_t n;
    FILE *f;

    out[0] = '\0';
    if (fd < 0 || saved < 0)
        return;
    fflush(stderr);
    dup2(fd, 2);
    log_info(fmt, arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    f = fopen(path, "rb");
    unlink(path);
    if (f == NULL)
        return;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Each line: "<ts> lcgate[info] <msg>\n"; keep "<msg>|" per line. */
    for (p = buf; *p; ) {
        char *nl = strchr(p, '\n'), *m = strstr(p, "lcgate[info] ");
        size_t len;

        if (nl == NULL)
            nl = p + strlen(p);
        if (m == NULL || m > nl)
            m = p;
        else
            m += strlen("lcgate[info] ");
        len = (size_t)(nl - m);
        if ((size_t)(o - out) + len + 2 > cap)
            break;
        memcpy(o, m, len);
        o += len;
        *o++ = '|';
        *o = '\0';
        p = *nl ? nl + 1 : nl;
    }
}

/* Everything one call of each level writes to stderr while JOURNAL_STREAM
 * is what stream() makes of the file stderr points to. */
static void leveled(char *out, size_t cap, int match, const char *value, int *detected)
{
    char path[] = "/tmp/t_log-XXXXXX", var[64];
    int fd = mkstemp(path), saved = dup(2);
    struct stat st;
    size_t n;
    FILE *f;

    out[0] = '\0';
    if (fd < 0 || saved < 0 || fstat(fd, &st) != 0)
        return;
    snprintf(var, sizeof(var), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (match ? 0 : 1));
    setenv("JOURNAL_STREAM", value ? value : var, 1);
    fflush(stderr);
    dup2(fd, 2);
    *detected = log_detect_journal();
    log_set_level(LOG_DEBUG);
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    log_set_level(LOG_INFO);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    unsetenv("JOURNAL_STREAM");
    log_detect_journal();
    f = fopen(path, "rb");
    unlink(path);
    if (f == NULL)
        return;
    n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
}

/* "<N>" of each line (or "-" without one) and the line's level: "<3>error,...". */
static void prefixes(const char *text, char *out)
{
    const char *p, *lv;

    out[0] = '\0';
    for (p = text; *p; p = strchr(p, '\n') + 1) {
        lv = strstr(p, "lcgate[");
        if (p[0] == '<' && p[2] == '>')
            strncat(out, p, 3);
        else
            strcat(out, "-");
        if (lv)
            strncat(out, lv + 7, strcspn(lv + 7, "]"));
        strcat(out, ",");
        if (strchr(p, '\n') == NULL)
            break;
    }
}

static void journald(void)
{
    char text[4096], got[256];
    int detected;

    leveled(text, sizeof(text), 1, NULL, &detected);
    prefixes(text, got);
    tap_ok(detected, "JOURNAL_STREAM naming stderr's device and inode is detected");
    tap_is_str(got, "<3>error,<4>warn,<6>info,<7>debug,",
               "under the journal each line starts with its sd-daemon priority");
    tap_ok(strncmp(text, "<3>20", 5) == 0 && strstr(text, "Z lcgate[error] e\n") != NULL,
           "and the rest of the line is unchanged");
    leveled(text, sizeof(text), 0, NULL, &detected);
    prefixes(text, got);
    tap_ok(!detected, "JOURNAL_STREAM naming another file is not the journal");
    tap_is_str(got, "-error,-warn,-info,-debug,", "then lines carry no prefix");
    leveled(text, sizeof(text), 1, "garbage", &detected);
    prefixes(text, got);
    tap_ok(!detected && strcmp(got, "-error,-warn,-info,-debug,") == 0,
           "a malformed JOURNAL_STREAM neither (%s)", got);
}

int main(void)
{
    char got[32768], big[3000];

    logged(got, sizeof(got), "plain %s", "text");
    tap_is_str(got, "plain text|", "printable text is written as is, one line");

    logged(got, sizeof(got), "project %s: held", "x\nlcgate-forged-line: y");
    tap_is_str(got, "project x\\x0alcgate-forged-line: y: held|",
               "LF from an argument is \\x0a: no second line");

    logged(got, sizeof(got), "%s", "a\rb\x1b[31mc\x7f" "d\te\x01");
    tap_is_str(got, "a\\x0db\\x1b[31mc\\x7fd\\x09e\\x01|",
               "CR, ESC, DEL, TAB and other control bytes are \\xNN");

    logged(got, sizeof(got), "%s", "C:\\path\\x0a");
    tap_is_str(got, "C:\\\\path\\\\x0a|",
               "a backslash is \\\\, so an escape cannot be spelled by the client");

    logged(got, sizeof(got), "%s", "caf\xc3\xa9 \xff");
    tap_is_str(got, "caf\xc3\xa9 \xff|", "bytes from 0x80 up are left alone");

    logged(got, sizeof(got), "format\n%s", "");
    tap_is_str(got, "format\\x0a|", "a control byte in the format itself is escaped too");

    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    logged(got, sizeof(got), "%s", big);
    tap_ok(strchr(got, '|') == got + strlen(got) - 1 && strncmp(got, "\\x0a\\x0a", 8) == 0,
           "a long run of newlines stays one line, escaped (possibly truncated)");
    journald();
    return tap_done();
}
