/* redis_gcra: the store's rate-limit decisions in Redis (ratelimit.h,
 * cache_store.h's gcra): the script, its arguments, sending it on a
 * connection (redis_conn.h) and reading its answer.
 *
 * One GCRA decision in one atomic script on Redis's clock (TIME), so that
 * every instance spends one budget. The key is written with SET PX (the
 * time until the bucket is full again): an idle key vanishes exactly when
 * it would read as a full bucket anyway. One per request, of a ~750-byte
 * script, so it is named by its SHA-1 (EVALSHA), computed here from its
 * text as Redis does: there is no SCRIPT LOAD and no handshake step. An
 * EVALSHA answered NOSCRIPT (a restarted or failed-over server, SCRIPT
 * FLUSH) is sent again once as EVAL of the full text, which also puts the
 * script back in the server's cache; the EVAL inherits what is left of the
 * EVALSHA's deadline, so the caller still hears within timeout_ms. */
#ifndef LCGATE_REDIS_GCRA_H
#define LCGATE_REDIS_GCRA_H

#include <stdint.h>

#include "cache_store.h"
#include "ratelog.h"
#include "sha1.h"

struct redis_conn;
struct redis_url;

/* One owner's decisions: the script's name and what came of them. It must
 * outlive the connection's answers (free the connection first). */
struct redis_gcra {
    const struct redis_url *url; /* for server messages in logs */
    char sha[2 * SHA1_LEN + 1];  /* the script's SHA-1, lowercase hex */
    uint64_t allowed, refused, errors, noscript;
    struct ratelog rl;
};

void redis_gcra_init(struct redis_gcra *g, const struct redis_url *url);

/* Spend up to want of the budget under key (period_us between requests,
 * burst at once) on c, which is up, within timeout_ms. 0: cb fires
 * exactly once, later, with the decision or NULL (an error, the deadline,
 * the connection lost or freed); -1: not sent, cb never fires. T and tau
 * are cut to 2^50 us (the script computes in doubles): only budgets of
 * decades are affected. */
int redis_gcra_decide(struct redis_gcra *g, struct redis_conn *c, const char *key,
                      uint64_t period_us, unsigned burst, unsigned want, unsigned timeout_ms,
                      store_gcra_cb cb, void *arg);

#endif
