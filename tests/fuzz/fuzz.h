/* fuzz.h: what every libFuzzer target here shares.
 *
 * CHECK(cond, fmt, ...) stops the run on a broken property: it prints the
 * target's name (FUZZ_NAME, which each target defines before including
 * this), the condition and a message, then aborts, which libFuzzer reports
 * with the input that caused it. */
#ifndef LCGATE_FUZZ_H
#define LCGATE_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz.h"
#endif

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, FUZZ_NAME ": check failed: %s: ", #cond);        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

#endif
