/* ratelog: a warning that may repeat on every request is logged at most
 * once per RATELOG_EVERY_MS, saying how many it stood for:
 *
 *     if (ratelog_take(&rl))
 *         log_warn("redis: SET failed: %s%s", msg, rl.more);
 *
 * One struct ratelog per kind of warning, zeroed at start; one thread. */
#ifndef LCGATE_RATELOG_H
#define LCGATE_RATELOG_H

#include <stdint.h>
#include <stdio.h>

#include "clock.h"

#define RATELOG_EVERY_MS 10000

struct ratelog {
    int64_t next_ms;
    unsigned long suppressed;
    char more[48];               /* " (N more not logged)" or "" */
};

/* 1: log it now (with rl->more at the end of the line); 0: counted. */
static inline int ratelog_take(struct ratelog *rl)
{
    int64_t now = mono_ms();

    if (now < rl->next_ms) {
        rl->suppressed++;
        return 0;
    }
    rl->next_ms = now + RATELOG_EVERY_MS;
    if (rl->suppressed > 0)
        snprintf(rl->more, sizeof(rl->more), " (%lu more not logged)", rl->suppressed);
    else
        rl->more[0] = '\0';
    rl->suppressed = 0;
    return 1;
}

#endif
