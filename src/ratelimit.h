/* ratelimit: per-project GCRA budgets (a token bucket of rate and burst),
 * decided in Redis when the store is shared (one atomic script per
 * decision, on Redis's clock, so that every instance spends one budget)
 * and in memory otherwise, or while Redis cannot answer.
 *
 * GCRA keeps one number per key, the theoretical arrival time (TAT):
 *   T = window / count           (ms between requests at the steady rate)
 *   tau = T * (burst - 1)        (how far ahead of now TAT may run)
 *   allowed iff TAT - now <= tau, and then TAT = max(TAT, now) + T. */
#ifndef LCGATE_RATELIMIT_H
#define LCGATE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct store;
struct ratelimiter;

struct rl_result {
    int allowed;
    int64_t remaining;       /* requests still allowed right now */
    int64_t retry_after_ms;  /* when refused: wait this long (> 0) */
    int64_t reset_ms;        /* until the bucket is full again */
    int shared;              /* decided in Redis (else in this process) */
};

typedef void (*rl_cb)(void *arg, const struct rl_result *r);

/* Pure GCRA on a TAT value, for both paths and the unit tests. The _us
 * form is exact for any rate (the period rounded to whole microseconds);
 * the ms form rounds the TAT up, so it never lets more through. */
void rl_gcra(int64_t *tat_ms, int64_t now_ms, const struct rate *rate, unsigned burst,
             struct rl_result *out);
void rl_gcra_us(int64_t *tat_us, int64_t now_us, uint64_t period_us, unsigned burst,
                struct rl_result *out);

/* store may be NULL or a memory store: decisions are then local. max_keys
 * bounds the local table (least recently used keys go first). NULL when
 * out of memory; rl_take and rl_peek on NULL allow the request. */
struct ratelimiter *rl_new(struct store *store, size_t max_keys);
void rl_free(struct ratelimiter *rl);

/* Spend one request of key's budget; cb fires exactly once, possibly
 * before rl_take returns. */
void rl_take(struct ratelimiter *rl, const char *key, const struct rate *rate, unsigned burst,
             rl_cb cb, void *arg);
/* The same, from any thread: a shared decision goes through via (a
 * connection of the calling thread's to the ratelimiter's store; NULL:
 * the ratelimiter's own), and cb fires on that thread. */
void rl_take_via(struct ratelimiter *rl, struct store *via, const char *key,
                 const struct rate *rate, unsigned burst, rl_cb cb, void *arg);
/* Whether one request would be allowed now, without spending it (local
 * view; for background work that only uses spare budget). */
int rl_peek(struct ratelimiter *rl, const char *key, const struct rate *rate, unsigned burst);

#endif
