/* redis_purge: drop every key under a prefix, on a Redis connection
 * (redis_conn.h), in the background: SCAN 0 MATCH <escaped prefix>* COUNT
 * 1000, then for each answer an UNLINK of the keys it found, pipelined
 * with the SCAN from its cursor, until the cursor is 0 again. One step in
 * flight per purge, so a purge holds at most two commands (the owner need
 * not shed it). Fire and forget: the outcome is logged and counted. */
#ifndef LCGATE_REDIS_PURGE_H
#define LCGATE_REDIS_PURGE_H

#include <stdint.h>

#include "ratelog.h"

struct redis_conn;
struct redis_url;

/* What one owner's purges did. It must outlive the connection's answers
 * (free the connection first). */
struct redis_purges {
    const struct redis_url *url; /* for server messages in logs */
    int abandon;                 /* set before freeing the connection: the
                                    steps in flight then end without a word */
    uint64_t done, errors, keys;
    struct ratelog rl;           /* UNLINK failures */
};

/* Start purging prefix ("" for everything) on c, which is up. */
void redis_purge(struct redis_purges *p, struct redis_conn *c, const char *prefix);

#endif
