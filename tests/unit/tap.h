/* tap.h: a minimal TAP producer for the unit tests (Automake's tap-driver
 * reads it). Each check prints one "ok"/"not ok" line with its name. */
#ifndef LCGATE_TAP_H
#define LCGATE_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

/* String equality with a diagnostic of both sides on failure. */
#define tap_is_str(got, want, ...)                                          \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        int c_ = (g_ == NULL && w_ == NULL) ||                              \
                 (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);         \
        if (!tap_ok(c_, __VA_ARGS__))                                       \
            printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)",      \
                   w_ ? w_ : "(null)");                                     \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
