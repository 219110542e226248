#include "redis_gcra.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_url.h"
#include "sha256.h"

/* One GCRA decision (ratelimit.h), atomically, on Redis's clock.
 *   KEYS[1]  the budget: its TAT, in microseconds of Redis's TIME, as a
 *            decimal integer string
 *   ARGV[1]  T, the period in us (1 .. GCRA_MAX_US)
 *   ARGV[2]  tau = T * (burst - 1) in us (0 .. GCRA_MAX_US)
 *   ARGV[3]  want: how many requests to spend at most (1 .. burst)
 * returns {allowed, remaining, retry_after_ms, reset_ms, granted}: allowed
 * iff TAT - now <= tau, and then granted = min(want, remaining + 1) and
 * TAT = max(TAT, now) + granted * T; remaining is how many more pass right
 * now (the k-th next passes iff ahead + k*T <= tau);
 * durations are rounded up to whole ms, so a client that waits
 * retry_after_ms is never early.
 * Lua numbers are doubles: every value here is an integer below 2^53 (now is
 * about 2^50.6 us in 2025, T and tau are at most 2^50; that holds until
 * about the year 2180), so + - * are exact and floor(a / b) is exact too
 * (a < 2^53: the rounding error of the quotient is below 1/b). A missing
 * key, or a value that is not a number, reads as a full bucket (TAT = now);
 * a TAT further ahead than any decision could have put it (now + tau + T:
 * Redis's clock stepped back, or the budget was made smaller) is cut back
 * to that, so a clock step costs at most one period beyond the burst.
 * The values written go out as "%.0f" strings, not Lua numbers (which
 * Redis versions format differently). TIME before a write needs effects
 * replication: the default since Redis 5, the only mode in 7; the
 * replicate_commands() call turns it on in 3.2 and 4 and is a no-op after. */
static const char script[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local T, tau, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if tat == nil or tat ~= tat or tat < now then tat = now end\n"
    "tat = math.floor(tat)\n"
    "if tat > now + tau + T then tat = now + tau + T end\n"
    "local function ms(us) return math.floor((us + 999) / 1000) end\n"
    "local ahead = tat - now\n"
    "if ahead > tau then return {0, 0, ms(ahead - tau), ms(ahead), 0} end\n"
    "local left = math.floor((tau - ahead) / T)\n"
    "local g = math.min(want, left + 1)\n"
    "ahead = ahead + g * T\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', now + ahead), 'PX',\n"
    "           string.format('%.0f', ms(ahead)))\n"
    "return {1, left + 1 - g, 0, ms(ahead), g}\n";
#define GCRA_MAX_US (UINT64_C(1) << 50)  /* some 35 years */
#define REQ_MAGIC 0x52474352u    /* "RGCR" */

/* One decision in flight: the argument of its command's callback, kept
 * for the NOSCRIPT retry. */
struct req {
    uint32_t magic;
    struct redis_gcra *g;
    struct redis_conn *c;
    int eval;                    /* EVAL (the retry), not EVALSHA */
    char *key;
    uint64_t t_us, tau_us;
    unsigned want;
    int64_t end_us;              /* the caller's deadline (mono) */
    store_gcra_cb cb;
    void *arg;
};

void redis_gcra_init(struct redis_gcra *g, const struct redis_url *url)
{
    uint8_t d[SHA1_LEN];

    memset(g, 0, sizeof(*g));
    g->url = url;
    sha1(script, sizeof(script) - 1, d);
    hex_encode(d, SHA1_LEN, g->sha);
}

static void req_free(struct req *r)
{
    r->magic = 0;
    free(r->key);
    free(r);
}

static void on_reply(void *arg, const redisReply *reply);

/* EVALSHA (or EVAL) <script> 1 <key> <T> <tau> <want>, within tv. */
static int send_req(struct req *r, const struct timeval *tv)
{
    const char *argv[7];
    size_t lens[7];
    char t[24], tau[24], want[16];

    snprintf(t, sizeof(t), "%" PRIu64, r->t_us);
    snprintf(tau, sizeof(tau), "%" PRIu64, r->tau_us);
    snprintf(want, sizeof(want), "%u", r->want);
    if (!r->eval) {
        argv[0] = "EVALSHA", lens[0] = 7;
        argv[1] = r->g->sha, lens[1] = 2 * SHA1_LEN;
    } else {
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = script, lens[1] = sizeof(script) - 1;
    }
    argv[2] = "1", lens[2] = 1;
    argv[3] = r->key, lens[3] = strlen(r->key);
    argv[4] = t, lens[4] = strlen(t);
    argv[5] = tau, lens[5] = strlen(tau);
    argv[6] = want, lens[6] = strlen(want);
    return redis_conn_send(r->c,
                           r->eval ? "rate-limit decision (EVAL)"
                                   : "rate-limit decision (EVALSHA)",
                           7, argv, lens, tv, on_reply, r);
}

int redis_gcra_decide(struct redis_gcra *g, struct redis_conn *c, const char *key,
                      uint64_t period_us, unsigned burst, unsigned want, unsigned timeout_ms,
                      store_gcra_cb cb, void *arg)
{
    struct req *r = calloc(1, sizeof(*r));
    uint64_t b1 = burst > 1 ? burst - 1 : 0;

    if (r == NULL || (r->key = strdup(key)) == NULL) {
        free(r);
        return -1;
    }
    r->magic = REQ_MAGIC;
    r->g = g;
    r->c = c;
    r->t_us = period_us < 1 ? 1 : period_us > GCRA_MAX_US ? GCRA_MAX_US : period_us;
    r->tau_us = b1 > GCRA_MAX_US / r->t_us ? GCRA_MAX_US : r->t_us * b1;
    r->want = want < 1 ? 1 : want > burst ? (burst ? burst : 1) : want;
    r->end_us = mono_us() + (int64_t)timeout_ms * 1000;
    r->cb = cb;
    r->arg = arg;
    if (send_req(r, NULL) != 0) {
        req_free(r);
        return -1;
    }
    return 0;
}

/* The EVALSHA of r was answered NOSCRIPT: send the script itself, once,
 * within what is left of r's deadline. 0 when sent, -1 (why says why). */
static int retry(struct req *r, const char **why)
{
    int64_t left = r->end_us - mono_us();
    struct timeval tv;

    r->g->noscript++;
    r->eval = 1;
    if (redis_conn_state(r->c) != RC_UP) {
        *why = "NOSCRIPT, and the connection is gone";
        return -1;
    }
    if (left <= 0) {
        *why = "NOSCRIPT, and no time is left for EVAL";
        return -1;
    }
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    if (send_req(r, &tv) != 0) {
        *why = "NOSCRIPT, and cannot send EVAL";
        return -1;
    }
    return 0;
}

/* The script's answer: five integers, consistent with each other. */
static int parse(const redisReply *reply, struct store_gcra *out)
{
    size_t i;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (i = 0; i < 5; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
    if (reply->element[0]->integer > 1)
        return -1;
    out->allowed = (int)reply->element[0]->integer;
    out->remaining = reply->element[1]->integer;
    out->retry_after_ms = reply->element[2]->integer;
    out->reset_ms = reply->element[3]->integer;
    out->granted = reply->element[4]->integer;
    if (out->allowed ? out->retry_after_ms != 0 || out->granted < 1
                     : out->retry_after_ms == 0 || out->remaining != 0 || out->granted != 0)
        return -1;
    return 0;
}

static void on_reply(void *arg, const redisReply *reply)
{
    struct req *r = arg;
    struct redis_gcra *g = r->g;
    struct store_gcra d = {0, 0, 0, 0, 0};
    const char *why = NULL;
    int ok = 0, was_eval = r->eval;

    assert(r->magic == REQ_MAGIC);
    if (reply == NULL) {
        /* the connection went away (its owner logged why), or was freed */
    } else if (!r->eval && reply->type == REDIS_REPLY_ERROR &&
               strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        if (retry(r, &why) == 0)
            return;              /* r rides on the EVAL now */
    } else if (parse(reply, &d) == 0) {
        ok = 1;
    } else {
        why = reply->type == REDIS_REPLY_ERROR ? redis_url_safe_msg(g->url, reply->str)
                                               : "unexpected reply";
    }
    if (why != NULL && ratelog_take(&g->rl))
        log_warn("redis: rate-limit decision (%s) failed: %s; answered as undecided%s",
                 was_eval ? "EVAL" : "EVALSHA", why, g->rl.more);
    if (!ok)
        g->errors++;
    else if (d.allowed)
        g->allowed++;
    else
        g->refused++;
    /* last use of r's owner: the callback may free it */
    r->cb(r->arg, ok ? &d : NULL);
    req_free(r);
}
