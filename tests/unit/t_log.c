/* log: what reaches stderr, byte for byte. stderr is pointed at a temporary
 * file for each call, and the text after the "lcgate[level] " prefix is
 * compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    return tap_done();
}
