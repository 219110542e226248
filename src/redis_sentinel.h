/* redis_sentinel: where the Redis primary is, as Redis Sentinel says, and
 * when that changes. The store (store_redis.c) asks it at start and follows
 * it through failovers; it never talks to the primary itself.
 *
 * Two connections (redis_conn.h) to the sentinels, each on one sentinel at
 * a time, with the store's deadline and the sentinel password (AUTH) if
 * any:
 *   - one for commands: SENTINEL get-master-addr-by-name NAME, asked at
 *     once, every REDIS_SENTINEL_POLL_MS, and whenever the owner calls
 *     redis_sentinel_ask (its connections went down). A sentinel that does
 *     not connect, does not answer within the deadline, or answers
 *     anything but an address (an error, nil: it does not know NAME) is
 *     skipped for the next, in the configured order, at most once each per
 *     round.
 *   - one subscribed to +switch-master, whose messages ("NAME oldip oldport
 *     newip newport") name a new primary the moment a failover ends. Lost,
 *     it moves to the next sentinel at the next poll.
 * The poll is what makes a missed message, or the loss of the subscribed
 * sentinel, cost at most a poll period.
 *
 * The owner's callback runs when a primary is named that differs from the
 * last one named (the first included), from a reply or a message callback:
 * the owner may free the sentinel there. Checking that the address named
 * is a master (ROLE) is the owner's connections' job: a sentinel's answer
 * may be stale. */
#ifndef LCGATE_REDIS_SENTINEL_H
#define LCGATE_REDIS_SENTINEL_H

#include <stddef.h>

struct event_base;
struct redis_sentinel;

#define REDIS_SENTINEL_POLL_MS 1000

struct redis_sentinel_conf {
    char *const *addrs;          /* "host:port" or "[v6]:port" each */
    size_t naddrs;               /* at least 1 */
    const char *master;          /* the name the sentinels monitor */
    const char *password;        /* the sentinels' AUTH; NULL: none */
};

/* host (valid for the call only) and port: the primary now. */
typedef void (*redis_sentinel_cb)(void *arg, const char *host, int port);

/* Starts asking on the loop's next turn; conf is copied. NULL with a
 * message in err when an address is malformed or memory is short. */
struct redis_sentinel *redis_sentinel_new(struct event_base *base,
                                          const struct redis_sentinel_conf *conf,
                                          unsigned timeout_ms, redis_sentinel_cb cb, void *arg,
                                          char *err, size_t errlen);

/* Ask now (on a clean stack, soon), not at the next poll. */
void redis_sentinel_ask(struct redis_sentinel *s);

/* The sentinel the command connection is on, "host:port", for logs. */
const char *redis_sentinel_current(const struct redis_sentinel *s);

void redis_sentinel_free(struct redis_sentinel *s);

#endif
