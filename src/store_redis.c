/* store_redis: the cache store on Redis, through hiredis's async API on the
 * gateway's libevent base.
 *
 * hiredis 0.14 has neither connect nor command timeouts, so the connection
 * carries a connect deadline and every command its own evtimer (as h2o's
 * lib/common/redis.c does). A command deadline that expires drops the whole
 * connection: a Redis that did not answer one command is not trusted with the
 * next, and while it is down every call answers at once, so a hung Redis
 * costs the requests in flight at most timeout_ms and then nothing. A timer
 * reconnects with exponential backoff. A connection is "ok" only once it has
 * answered AUTH, SELECT and a PING: a stopped Redis still completes TCP
 * handshakes from its listen backlog.
 *
 * Commands on the command connection:
 *   get     MGET <STORE_GEN_ALL> <gen_name> <key>: the entry and both
 *           generation counters in one round trip (a nil counter reads 0, a
 *           counter that is not a decimal integer makes the get an ERROR).
 *           A key of another type reads nil in MGET, so it is a MISS.
 *   set     SET <key> <LCE2 encoding> PX <keep_ms>
 *   gen_set SET <gen_name> <value> PX <ttl_ms> [NX]
 *   lease   SET <name> <token> NX PX <ttl_ms>: 1 on OK, 0 on nil. The token
 *           is this store's, 16 bytes from getrandom(2) in hex, the pid and
 *           a per-process sequence number: unique to the store object for
 *           the life of the process (one store per process in the gateway;
 *           two in one test process act as two instances).
 *   renew, release
 *           EVAL of a three-line Lua script that compares the value with our
 *           token and only then PEXPIREs or DELs, atomically. Plain EVAL,
 *           not EVALSHA: the script is ~100 bytes, Redis caches its
 *           compilation by SHA anyway, and there is no NOSCRIPT retry (which
 *           would need the arguments kept past the send) to get wrong.
 *   publish PUBLISH lcg:1:events <msg>
 *   gcra    EVALSHA <sha1 of gcra_lua> 1 <key> <T us> <tau us>: one GCRA
 *           decision in one atomic script on Redis's clock (TIME), so that
 *           every instance spends one budget (see gcra_lua for the
 *           arithmetic). One per request, of a ~750-byte script: worth
 *           EVALSHA, unlike renew and release. The SHA-1 is computed here,
 *           once per store, from the script's text (Redis names cached
 *           scripts by it), so there is no SCRIPT LOAD and no handshake
 *           step. An EVALSHA answered NOSCRIPT (a restarted or failed-over
 *           server, SCRIPT FLUSH) is sent again once as EVAL of the full
 *           text, which also puts the script back in the server's cache;
 *           the command keeps a copy of the key and the numbers for that,
 *           and the EVAL inherits what is left of the EVALSHA's deadline,
 *           so the caller still hears within timeout_ms of the call. The
 *           key is written with SET PX (the time until the bucket is full
 *           again): an idle key vanishes exactly when it would read as a
 *           full bucket anyway.
 *   purge   SCAN MATCH <escaped prefix>* + UNLINK, one step in flight.
 * Gets, leases and gcra decisions are answered (ERROR, -1, NULL) at once
 * when the connection is not ok or MAX_PENDING commands are in flight;
 * sets are then dropped. The fire-and-forget control commands (gen_set,
 * renew, release, publish) are rare and matter more than a cache write, so
 * they are shed only past MAX_PENDING_CTL; a purge is never shed (it holds
 * at most two commands).
 *
 * The subscriber connection. subscribe() opens one more connection to the
 * same server (AUTH as above; no SELECT, channels are global) in subscriber
 * mode on lcg:1:events, with its own handshake deadline (timeout_ms from
 * connect to the SUBSCRIBE confirmation) and its own reconnect backoff: it
 * lives and dies independently of the command connection, and it is never
 * counted in MAX_PENDING or in state(). Whenever the subscription is lost
 * (a disconnect, a missed heartbeat) or a (re)connect attempt fails while it
 * is not established, the callback gets (NULL, 0) once for that outage; the
 * flag re-arms when the subscription is confirmed again. That call is made
 * from a zero-delay event, on a clean stack, so it may free the store or
 * (un)subscribe.
 *
 * A hung server on the subscriber connection (SIGSTOPped, CLIENT PAUSE, a
 * half-open TCP connection) is detected by a heartbeat: SUB_HEARTBEAT_MS
 * after the last confirmation the store sends SUBSCRIBE lcg:1:events again
 * on that connection and expects its confirmation within timeout_ms, else it
 * drops the connection (-> NULL event, reconnect). Re-subscribing to a
 * channel already subscribed is a no-op for Redis apart from the
 * ["subscribe", channel, 1] confirmation, it is allowed in RESP2 subscriber
 * mode on every Redis version, and hiredis 0.14 routes that confirmation to
 * the channel's callback like the first one. PING is not used: Redis < 6
 * refuses it in subscriber mode, and Redis >= 6 answers ["pong", ""], which
 * hiredis 0.14 looks up as a pattern subscription, finds none, and hands to
 * a stale copy of the last callback it ran (the channel's: it would look
 * like a message), while the PING's own callback stays queued until the
 * connection is freed, one more per heartbeat (tried with 0.14.1 and Redis
 * 7.0). TCP keepalive is enabled as well, but it only notices a dead peer,
 * not a live one that does not answer. Messages that arrive do not count
 * as the heartbeat's answer.
 *
 * Ownership of a command (struct cmd): hiredis owns it from the moment
 * redisAsyncCommandArgv accepts it until it calls on_reply, exactly once,
 * with the reply or with NULL when the context is freed; on_reply frees it.
 * Dropping a connection is therefore always redisAsyncFree: hiredis calls
 * every pending callback at once with NULL, and a late reply has nowhere to
 * arrive. The store keeps its pending commands on a list only to cancel
 * their timers and, on store free, to answer them and clear their back
 * pointer so that the later on_reply only frees. The SUBSCRIBE command is
 * the exception: hiredis calls on_sub_reply with every message and
 * confirmation on its channel and keeps the command (its privdata) until it
 * frees the context, when it calls it once with NULL; only that call frees
 * it. Heartbeats re-send SUBSCRIBE with the same command as privdata.
 *
 * redisAsyncFree must not run inside a context's connect or disconnect
 * callback (hiredis still uses the context when it returns), so a
 * connection that fails its handshake is parked in s->doomed (s->sub_doomed)
 * and freed from a zero-delay event. Inside a reply callback hiredis defers
 * the free until the callback returns; store free and subscribe(NULL) from a
 * get, lease, gcra or event callback rely on that. The caller's callbacks
 * run only from reply callbacks, from store free, from the operation itself
 * (an answer given at once), and from sub_note_ev. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "cache_store.h"
#include "clock.h"
#include "log.h"
#include "redis_ev.h"
#include "redis_url.h"
#include "sha1.h"
#include "sha256.h"
#include "store_keys.h"
#include "util.h"

#define MAX_PENDING 10000        /* commands in flight before shedding */
#define MAX_PENDING_CTL (2 * MAX_PENDING) /* ... control commands */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LOG_EVERY_MS 10000       /* rate limit of repeated warnings */
#define MAX_KEEP_MS (UINT64_C(100) * 365 * 24 * 3600 * 1000)
#define SCAN_COUNT "1000"
#define EVENTS_CHANNEL STORE_EVENTS_CHANNEL
#define SUB_HEARTBEAT_MS 5000    /* idle time before a subscriber heartbeat */
#define TOKEN_CAP 64

enum rstate { RS_CONNECTING, RS_OK, RS_DOWN };

/* The subscriber connection: off (no callback), connecting (handshake
 * deadline on sub_ev), live (heartbeat on sub_ev), down (reconnect). */
enum sstate { SS_OFF, SS_CONNECTING, SS_LIVE, SS_DOWN };

enum cmd_kind {
    K_AUTH, K_SELECT, K_PING, K_GET, K_SET, K_SCAN, K_UNLINK,
    K_GENSET, K_LEASE, K_RENEW, K_RELEASE, K_PUBLISH, K_GCRA, K_GCRA_EVAL,
    K_SUB_AUTH, K_SUBSCRIBE,
};

static const char *const kind_name[] = {
    [K_AUTH] = "AUTH",       [K_SELECT] = "SELECT",   [K_PING] = "PING",
    [K_GET] = "MGET",        [K_SET] = "SET",         [K_SCAN] = "SCAN",
    [K_UNLINK] = "UNLINK",   [K_GENSET] = "SET (generation)",       [K_LEASE] = "SET NX",
    [K_RENEW] = "lease renewal (EVAL)",
    [K_RELEASE] = "lease release (EVAL)",
    [K_PUBLISH] = "PUBLISH", [K_SUB_AUTH] = "AUTH",   [K_SUBSCRIBE] = "SUBSCRIBE",
    [K_GCRA] = "rate-limit decision (EVALSHA)",
    [K_GCRA_EVAL] = "rate-limit decision (EVAL)",
};

/* Only our token's lease is extended or dropped. KEYS[1] the lease,
 * ARGV[1] our token, ARGV[2] the new ttl in ms. */
static const char renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\nreturn 0";
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\nreturn 0";

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
static const char gcra_lua[] =
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
#define SHA1_HEX (2 * SHA1_LEN + 1)

/* Counters for a later /metrics (read on the loop thread). */
struct redis_counters {
    uint64_t gets, hits, misses, get_errors, bad_gens;
    uint64_t sets, set_errors, sets_dropped;
    uint64_t timeouts, bad_values, connects, disconnects;
    uint64_t purges, purge_errors, purged_keys;
    uint64_t bumps, leases, leases_got, leases_busy, lease_errors;
    uint64_t renews, renews_lost, releases;
    uint64_t publishes, ctl_errors, ctl_dropped;
    uint64_t gcras, gcras_allowed, gcras_refused, gcra_errors, gcra_noscript;
    uint64_t events, sub_connects, sub_losses, sub_heartbeats;
};

/* A warning that may repeat on every request is logged at most once per
 * LOG_EVERY_MS, saying how many it stood for. */
struct ratelog {
    int64_t next_ms;
    unsigned long suppressed;
    char more[48];               /* " (N more not logged)" or "" */
};

struct purge {
    char *pattern;               /* MATCH pattern: escaped prefix + '*' */
    size_t plen;
    char cursor[24];
    uint64_t found;
    unsigned steps;
};

struct rstore;

struct cmd {
    struct rstore *s;            /* NULL once the store is freed */
    redisAsyncContext *ac;       /* the connection it was sent on */
    struct cmd *prev, *next;     /* s->pending */
    enum cmd_kind kind;
    int sub;                     /* on the subscriber connection */
    int timed;                   /* timer armed */
    struct event timer;
    store_get_cb cb;             /* K_GET */
    store_lease_cb lcb;          /* K_LEASE */
    store_gcra_cb gcb;           /* K_GCRA, K_GCRA_EVAL */
    void *arg;
    size_t nkeys;                /* K_GET: keys in the MGET */
    char *gkey;                  /* K_GCRA*: the key, for a NOSCRIPT retry */
    uint64_t t_us, tau_us;       /* ... and the script's arguments */
    unsigned want;
    int64_t end_us;              /* ... and the caller's deadline (mono) */
    struct purge *job;           /* K_SCAN: owned by the step in flight */
};

struct rstore {
    struct store base;           /* first: callers hold a struct store * */
    struct event_base *evb;

    struct redis_url url;        /* where, and the credentials */
    char token[TOKEN_CAP];       /* the value of our leases */
    char gcra_sha[SHA1_HEX];     /* SHA-1 of gcra_lua, hex */

    unsigned timeout_ms;
    struct timeval timeout_tv;
    const struct timeval *cmd_tv; /* common timeout of timeout_ms */

    redisAsyncContext *ac;       /* current connection, NULL while down */
    redisAsyncContext *doomed;   /* dropped in a callback, freed by reap_ev */
    enum rstate state;           /* RS_OK iff ac answered the handshake */
    int closing;
    unsigned backoff_ms;
    struct event *conn_ev;       /* connect deadline, or next reconnect */
    struct event *reap_ev;       /* frees doomed and sub_doomed */

    struct cmd *pending;         /* commands in flight on both connections */
    size_t npending;             /* ... on the command connection */

    /* the subscriber connection */
    store_event_cb sub_cb;       /* NULL: not subscribed */
    void *sub_arg;
    redisAsyncContext *sac;      /* current subscriber connection */
    redisAsyncContext *sub_doomed;
    struct cmd *sub_cmd;         /* the SUBSCRIBE on sac (its privdata) */
    enum sstate sub_state;
    int sub_hb_out;              /* a heartbeat awaits its confirmation */
    int sub_noted;               /* the caller was told of this outage */
    unsigned sub_backoff_ms;
    struct event *sub_ev;        /* handshake deadline, heartbeat, retry */
    struct event *sub_note_ev;   /* the (NULL, 0) call, on a clean stack */
    struct timeval sub_hb_tv;

    struct ratelog rl_value, rl_get, rl_set, rl_shed, rl_gen, rl_ctl,
        rl_drop, rl_sub, rl_gcra;
    struct redis_counters n;
};

static void connect_start(struct rstore *s);
static void sub_connect(struct rstore *s);

static int ratelog_take(struct ratelog *rl)
{
    int64_t now = mono_ms();

    if (now < rl->next_ms) {
        rl->suppressed++;
        return 0;
    }
    rl->next_ms = now + LOG_EVERY_MS;
    if (rl->suppressed > 0)
        snprintf(rl->more, sizeof(rl->more), " (%lu more not logged)",
                 rl->suppressed);
    else
        rl->more[0] = '\0';
    rl->suppressed = 0;
    return 1;
}

static const char *safe_msg(const struct rstore *s, const char *msg)
{
    return redis_url_safe_msg(&s->url, msg);
}

static const char *reply_msg(const struct rstore *s, const redisReply *r)
{
    return safe_msg(s, r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "unexpected reply type");
}

static void backoff_tv(unsigned *backoff_ms, struct timeval *tv)
{
    tv->tv_sec = *backoff_ms / 1000;
    tv->tv_usec = (*backoff_ms % 1000) * 1000;
    *backoff_ms *= 2;
    if (*backoff_ms > BACKOFF_MAX_MS)
        *backoff_ms = BACKOFF_MAX_MS;
}

static void set_down(struct rstore *s, const char *why)
{
    struct timeval tv;

    if (s->state != RS_DOWN) {
        s->n.disconnects++;
        log_warn("redis: down (%s: %s), retrying in the background; "
                 "requests are served from upstream", s->url.where, why);
    } else {
        log_debug("redis: reconnect to %s failed (%s), next try in %u ms",
                  s->url.where, why, s->backoff_ms);
    }
    s->state = RS_DOWN;
    backoff_tv(&s->backoff_ms, &tv);
    evtimer_add(s->conn_ev, &tv);
}

/* Drop a connection from outside its callbacks (a timer): every pending
 * command's on_reply runs now with NULL. A callback it runs may free the
 * store, so the caller must not touch s afterwards. */
static void drop_now(struct rstore *s, redisAsyncContext *ac, const char *why)
{
    if (ac == s->ac) {
        s->ac = NULL;
        set_down(s, why);
    } else if (ac == s->doomed) {
        s->doomed = NULL;
    }
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Drop the current connection from inside one of its callbacks. */
static void drop_later(struct rstore *s, const char *why)
{
    /* At most one: connect_start reaps before it makes a new connection,
     * and only the current one is ever doomed. */
    s->doomed = s->ac;
    s->ac = NULL;
    set_down(s, why);
    event_active(s->reap_ev, EV_TIMEOUT, 1);
}

/* The subscriber connection is gone or failed to come up: tell the caller
 * once per outage (from sub_note_ev) and retry after a backoff. */
static void sub_down(struct rstore *s, const char *why)
{
    struct timeval tv;

    if (s->sub_state == SS_LIVE) {
        s->n.sub_losses++;
        log_warn("redis: event subscription lost (%s: %s); reconnecting, "
                 "events may be missed meanwhile", s->url.where, why);
    } else if (!s->sub_noted && ratelog_take(&s->rl_sub)) {
        log_warn("redis: event subscription to %s failed (%s); retrying "
                 "in the background%s", s->url.where, why, s->rl_sub.more);
    } else {
        log_debug("redis: event subscription to %s failed (%s), next try "
                  "in %u ms", s->url.where, why, s->sub_backoff_ms);
    }
    s->sub_state = SS_DOWN;
    s->sub_hb_out = 0;
    backoff_tv(&s->sub_backoff_ms, &tv);
    evtimer_add(s->sub_ev, &tv);
    if (s->sub_cb != NULL && !s->sub_noted) {
        s->sub_noted = 1;
        event_active(s->sub_note_ev, EV_TIMEOUT, 1);
    }
}

/* Drop the subscriber connection ac from outside its callbacks: no
 * callback of the caller runs, so s stays valid. */
static void sub_drop_now(struct rstore *s, redisAsyncContext *ac,
                         const char *why)
{
    if (ac == s->sac) {
        s->sac = NULL;
        s->sub_cmd = NULL;
        sub_down(s, why);
    } else if (ac == s->sub_doomed) {
        s->sub_doomed = NULL;
    }
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Drop the subscriber connection from inside one of its callbacks. */
static void sub_drop_later(struct rstore *s, const char *why)
{
    s->sub_doomed = s->sac;
    s->sac = NULL;
    s->sub_cmd = NULL;
    sub_down(s, why);
    event_active(s->reap_ev, EV_TIMEOUT, 1);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;

    if (s->sub_doomed != NULL)
        sub_drop_now(s, s->sub_doomed, "");
    if (s->doomed != NULL)
        drop_now(s, s->doomed, "");
}

/* hiredis is freeing ac (an I/O error, EOF, or a failed connect). */
static void conn_lost(struct rstore *s, const redisAsyncContext *ac)
{
    if (ac == s->doomed) {
        s->doomed = NULL;
    } else if (ac == s->ac) {
        s->ac = NULL;
        set_down(s, ac->c.err ? ac->c.errstr : "connection closed");
    }
}

static void sub_conn_lost(struct rstore *s, const redisAsyncContext *ac)
{
    if (ac == s->sub_doomed) {
        s->sub_doomed = NULL;
    } else if (ac == s->sac) {
        s->sac = NULL;
        s->sub_cmd = NULL;
        sub_down(s, ac->c.err ? ac->c.errstr : "connection closed");
    }
}

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;
    char why[80];

    if (s->ac == NULL) {
        connect_start(s);
        return;
    }
    snprintf(why, sizeof(why), "connect timed out after %u ms",
             s->timeout_ms);
    drop_now(s, s->ac, why);
}

static void cmd_unlink(struct rstore *s, struct cmd *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->pending = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (!c->sub)
        s->npending--;
    if (c->timed) {
        evtimer_del(&c->timer);
        c->timed = 0;
    }
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cmd *c = arg;
    struct rstore *s = c->s;
    char why[80];

    c->timed = 0;
    s->n.timeouts++;
    snprintf(why, sizeof(why), "%s got no answer within %u ms",
             kind_name[c->kind], s->timeout_ms);
    drop_now(s, c->ac, why);     /* frees c through on_reply */
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv);
static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv);

static struct cmd *cmd_new(enum cmd_kind kind)
{
    struct cmd *c = calloc(1, sizeof(*c));

    if (c != NULL)
        c->kind = kind;
    return c;
}

static void cmd_link(struct rstore *s, struct cmd *c, redisAsyncContext *ac)
{
    c->s = s;
    c->ac = ac;
    c->next = s->pending;
    if (s->pending != NULL)
        s->pending->prev = c;
    s->pending = c;
    if (!c->sub)
        s->npending++;
}

/* Hand c to hiredis on the current connection with the deadline tv (NULL:
 * none); 0, or -1 (c is still the caller's). */
static int cmd_send_tv(struct rstore *s, struct cmd *c, int argc,
                       const char **argv, const size_t *lens,
                       const struct timeval *tv)
{
    if (redisAsyncCommandArgv(s->ac, on_reply, c, argc, argv, lens) !=
        REDIS_OK)
        return -1;
    cmd_link(s, c, s->ac);
    if (tv != NULL) {
        evtimer_assign(&c->timer, s->evb, on_cmd_timeout, c);
        evtimer_add(&c->timer, tv);
        c->timed = 1;
    }
    return 0;
}

/* ... with the common deadline of timeout_ms, or none. */
static int cmd_send(struct rstore *s, struct cmd *c, int argc,
                    const char **argv, const size_t *lens, int timed)
{
    return cmd_send_tv(s, c, argc, argv, lens, timed ? s->cmd_tv : NULL);
}

static void connect_start(struct rstore *s)
{
    redisAsyncContext *ac;
    char why[160];

    /* a doomed connection never carries a get or a lease, so no callback
     * of the caller runs here and s stays valid */
    if (s->doomed != NULL)
        drop_now(s, s->doomed, "");
    if (s->url.path != NULL)
        ac = redisAsyncConnectUnix(s->url.path);
    else
        ac = redisAsyncConnect(s->url.host, s->url.port);
    if (ac == NULL) {
        set_down(s, "out of memory");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof(why), "%s", ac->c.errstr);
        redisAsyncFree(ac);
        set_down(s, why);
        return;
    }
    ac->data = s;
    s->ac = ac;
    if (redis_ev_attach(ac, s->evb) != 0) {
        s->ac = NULL;
        redisAsyncFree(ac);
        set_down(s, "out of memory");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    evtimer_add(s->conn_ev, &s->timeout_tv);
}

/* AUTH [user] password, for either connection; 0 when there is no
 * password or it was sent. */
static int send_auth(struct rstore *s, redisAsyncContext *ac, int sub)
{
    const char *argv[3];
    size_t lens[3];
    struct cmd *c;
    int argc = 0, i;

    if (s->url.pass == NULL)
        return 0;
    argv[argc++] = "AUTH";
    if (s->url.user != NULL)
        argv[argc++] = s->url.user;
    argv[argc++] = s->url.pass;
    for (i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if ((c = cmd_new(sub ? K_SUB_AUTH : K_AUTH)) == NULL)
        return -1;
    c->sub = sub;
    if (redisAsyncCommandArgv(ac, sub ? on_sub_reply : on_reply, c, argc,
                              argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    cmd_link(s, c, ac);
    return 0;
}

/* AUTH, SELECT and PING, pipelined; the connection is ok when the PING is
 * answered. No deadline per command: the connect deadline covers them. */
static void handshake(struct rstore *s)
{
    struct cmd *c = NULL;
    const char *argv[2];
    size_t lens[2];
    char db[24];

    if (s->url.path == NULL)
        redisEnableKeepAlive(&s->ac->c);
    if (send_auth(s, s->ac, 0) != 0)
        goto fail;
    if (s->url.db != 0) {
        snprintf(db, sizeof(db), "%ld", s->url.db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        if ((c = cmd_new(K_SELECT)) == NULL ||
            cmd_send(s, c, 2, argv, lens, 0) != 0)
            goto fail;
    }
    argv[0] = "PING";
    lens[0] = 4;
    if ((c = cmd_new(K_PING)) == NULL || cmd_send(s, c, 1, argv, lens, 0) != 0)
        goto fail;
    return;

fail:
    free(c);
    drop_later(s, "cannot send the handshake");
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct rstore *s = cac->data;

    if (s == NULL || cac != s->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees ac when this returns */
        s->ac->data = NULL;
        conn_lost(s, cac);
        return;
    }
    handshake(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;

    if (s != NULL)
        conn_lost(s, ac);
}

static void hello_done(struct rstore *s, redisAsyncContext *ac,
                       struct cmd *c, const redisReply *reply)
{
    char why[200];
    int ok;

    if (ac != s->ac || reply == NULL)
        return;                  /* an old connection, or already lost */
    ok = reply->type == REDIS_REPLY_STATUS &&
         strcmp(reply->str, c->kind == K_PING ? "PONG" : "OK") == 0;
    if (!ok) {
        snprintf(why, sizeof(why), "%s failed: %s", kind_name[c->kind],
                 safe_msg(s, reply->type == REDIS_REPLY_ERROR ||
                                     reply->type == REDIS_REPLY_STATUS
                                 ? reply->str
                                 : "unexpected reply"));
        drop_later(s, why);
        return;
    }
    if (c->kind != K_PING)
        return;
    evtimer_del(s->conn_ev);
    s->backoff_ms = BACKOFF_MIN_MS;
    s->n.connects++;
    if (s->state == RS_DOWN)
        log_info("redis: back up at %s; caching through Redis again",
                 s->url.where);
    else
        log_info("redis: connected to %s", s->url.where);
    s->state = RS_OK;
}

/* A generation counter as MGET returns it: nil reads 0; anything but a
 * decimal number that fits in 64 bits is -1. */
static int gen_parse(const redisReply *r, uint64_t *out)
{
    uint64_t v = 0;
    unsigned d;
    size_t i;

    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return -1;
    for (i = 0; i < r->len; i++) {
        d = (unsigned)((unsigned char)r->str[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void get_done(struct rstore *s, struct cmd *c, const redisReply *reply)
{
    struct centry *e = NULL;
    enum store_res res = STORE_ERROR;
    struct gens g = {0, 0};
    const redisReply *val;

    if (s == NULL)
        return;                  /* answered by store free */
    if (reply == NULL) {
        /* the connection went away; set_down logged why */
    } else if (reply->type != REDIS_REPLY_ARRAY ||
               reply->elements != c->nkeys) {
        if (ratelog_take(&s->rl_get))
            log_warn("redis: MGET failed: %s%s", reply_msg(s, reply),
                     s->rl_get.more);
    } else if (gen_parse(reply->element[0], &g.all) != 0 ||
               (c->nkeys == 3 && gen_parse(reply->element[1], &g.proj) != 0)) {
        s->n.bad_gens++;
        if (ratelog_take(&s->rl_gen))
            log_warn("redis: a generation counter is not a decimal number; "
                     "reads under it are answered as errors until it is "
                     "fixed%s", s->rl_gen.more);
    } else if ((val = reply->element[c->nkeys - 1])->type ==
               REDIS_REPLY_NIL) {
        res = STORE_MISS;
    } else if (val->type == REDIS_REPLY_STRING) {
        e = centry_decode(val->str, val->len);
        if (e != NULL) {
            res = STORE_HIT;
        } else {
            s->n.bad_values++;
            if (ratelog_take(&s->rl_value))
                log_warn("redis: a stored value (%zu bytes) is not a cache "
                         "entry; answered as an error%s",
                         val->len, s->rl_value.more);
        }
    } else if (ratelog_take(&s->rl_get)) {
        log_warn("redis: MGET failed: %s%s", reply_msg(s, val),
                 s->rl_get.more);
    }
    if (res == STORE_HIT)
        s->n.hits++;
    else if (res == STORE_MISS)
        s->n.misses++;
    else
        s->n.get_errors++;
    /* last use of s: the callback may free the store */
    c->cb(c->arg, res, e, res == STORE_ERROR ? NULL : &g);
    if (e != NULL)
        centry_decref(e);
}

static void set_done(struct rstore *s, const redisReply *reply)
{
    if (s == NULL)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS)
        return;
    s->n.set_errors++;
    if (reply != NULL && ratelog_take(&s->rl_set))
        log_warn("redis: SET failed: %s%s", reply_msg(s, reply),
                 s->rl_set.more);
}

static void lease_done(struct rstore *s, struct cmd *c,
                       const redisReply *reply)
{
    int got = -1;

    if (s == NULL)
        return;                  /* answered by store free */
    if (reply == NULL) {
        /* the connection went away; set_down logged why */
    } else if (reply->type == REDIS_REPLY_STATUS &&
               strcmp(reply->str, "OK") == 0) {
        got = 1;
    } else if (reply->type == REDIS_REPLY_NIL) {
        got = 0;
    } else if (ratelog_take(&s->rl_ctl)) {
        log_warn("redis: lease (SET NX) failed: %s%s", reply_msg(s, reply),
                 s->rl_ctl.more);
    }
    if (got == 1)
        s->n.leases_got++;
    else if (got == 0)
        s->n.leases_busy++;
    else
        s->n.lease_errors++;
    /* last use of s: the callback may free the store */
    c->lcb(c->arg, got);
}

/* INCR, EVAL (renew, release), PUBLISH: each answers an integer. */
static void ctl_done(struct rstore *s, struct cmd *c, const redisReply *reply)
{
    if (s == NULL)
        return;
    if (reply != NULL && c->kind == K_GENSET &&
        (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_NIL))
        return;                  /* set, or (NX) already set */
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (c->kind == K_RENEW && reply->integer == 0)
            s->n.renews_lost++;
        return;
    }
    s->n.ctl_errors++;
    if (reply != NULL && ratelog_take(&s->rl_ctl))
        log_warn("redis: %s failed: %s%s", kind_name[c->kind],
                 reply_msg(s, reply), s->rl_ctl.more);
}

/* EVALSHA (K_GCRA) or EVAL (K_GCRA_EVAL) of gcra_lua for c, with the
 * deadline tv; 0, or -1 (c is still the caller's). */
static int gcra_send(struct rstore *s, struct cmd *c, const struct timeval *tv)
{
    const char *argv[7];
    size_t lens[7];
    char t[24], tau[24], want[16];

    snprintf(t, sizeof(t), "%" PRIu64, c->t_us);
    snprintf(tau, sizeof(tau), "%" PRIu64, c->tau_us);
    snprintf(want, sizeof(want), "%u", c->want);
    if (c->kind == K_GCRA) {
        argv[0] = "EVALSHA", lens[0] = 7;
        argv[1] = s->gcra_sha, lens[1] = SHA1_HEX - 1;
    } else {
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = gcra_lua, lens[1] = sizeof(gcra_lua) - 1;
    }
    argv[2] = "1", lens[2] = 1;
    argv[3] = c->gkey, lens[3] = strlen(c->gkey);
    argv[4] = t, lens[4] = strlen(t);
    argv[5] = tau, lens[5] = strlen(tau);
    argv[6] = want, lens[6] = strlen(want);
    return cmd_send_tv(s, c, 7, argv, lens, tv);
}

/* The EVALSHA of c was answered NOSCRIPT: send the script itself, once,
 * within what is left of c's deadline. 0 when sent (the new command now
 * owns the key and the callback), -1 when not (c unchanged; why says why). */
static int gcra_retry(struct rstore *s, struct cmd *c, const char **why)
{
    int64_t left = c->end_us - mono_us();
    struct timeval tv;
    struct cmd *e;

    s->n.gcra_noscript++;
    if (s->state != RS_OK || s->ac == NULL) {
        *why = "NOSCRIPT, and the connection is gone";
        return -1;
    }
    if (left <= 0) {
        *why = "NOSCRIPT, and no time is left for EVAL";
        return -1;
    }
    if ((e = cmd_new(K_GCRA_EVAL)) == NULL) {
        *why = "NOSCRIPT, and out of memory";
        return -1;
    }
    e->gkey = c->gkey;
    e->t_us = c->t_us;
    e->tau_us = c->tau_us;
    e->want = c->want;
    e->end_us = c->end_us;
    e->gcb = c->gcb;
    e->arg = c->arg;
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    if (gcra_send(s, e, &tv) != 0) {
        free(e);
        *why = "NOSCRIPT, and cannot send EVAL";
        return -1;
    }
    c->gkey = NULL;              /* e's now; on_reply frees c alone */
    return 0;
}

/* The script's answer: four integers, consistent with each other. */
static int gcra_parse(const redisReply *reply, struct store_gcra *out)
{
    size_t i;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (i = 0; i < 5; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER ||
            reply->element[i]->integer < 0)
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

static void gcra_done(struct rstore *s, struct cmd *c, const redisReply *reply)
{
    struct store_gcra r = {0, 0, 0, 0, 0};
    const char *why = NULL;
    int ok = 0;

    if (s == NULL)
        return;                  /* answered by store free */
    if (reply == NULL) {
        /* the connection went away; set_down logged why */
    } else if (c->kind == K_GCRA && reply->type == REDIS_REPLY_ERROR &&
               strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        if (gcra_retry(s, c, &why) == 0)
            return;
    } else if (gcra_parse(reply, &r) == 0) {
        ok = 1;
    } else {
        why = reply->type == REDIS_REPLY_ERROR ? reply_msg(s, reply)
                                               : "unexpected reply";
    }
    if (why != NULL && ratelog_take(&s->rl_gcra))
        log_warn("redis: %s failed: %s; answered as undecided%s",
                 kind_name[c->kind], why, s->rl_gcra.more);
    if (!ok)
        s->n.gcra_errors++;
    else if (r.allowed)
        s->n.gcras_allowed++;
    else
        s->n.gcras_refused++;
    /* last use of s: the callback may free the store */
    c->gcb(c->arg, ok ? &r : NULL);
}

static void purge_free(struct purge *job)
{
    free(job->pattern);
    free(job);
}

static int scan_step(struct rstore *s, struct purge *job);

static void purge_fail(struct rstore *s, struct purge *job, const char *why)
{
    s->n.purge_errors++;
    log_warn("redis: purge aborted after %u steps and %" PRIu64
             " keys: %s", job->steps, job->found, why);
    purge_free(job);
}

/* UNLINK the keys of one SCAN answer, fire and forget. */
static int unlink_keys(struct rstore *s, const redisReply *keys)
{
    const char **argv = malloc((keys->elements + 1) * sizeof(*argv));
    size_t *lens = malloc((keys->elements + 1) * sizeof(*lens)), i;
    struct cmd *u = cmd_new(K_UNLINK);
    int rc = -1;

    if (argv == NULL || lens == NULL || u == NULL)
        goto out;
    argv[0] = "UNLINK";
    lens[0] = 6;
    for (i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            goto out;
        argv[i + 1] = keys->element[i]->str;
        lens[i + 1] = keys->element[i]->len;
    }
    rc = cmd_send(s, u, (int)keys->elements + 1, argv, lens, 1);
out:
    if (rc != 0)
        free(u);
    free(argv);
    free(lens);
    return rc;
}

/* One SCAN answer: unlink what it found and go on from its cursor. The
 * UNLINK and the next SCAN are pipelined; one step in flight per purge. */
static void scan_done(struct rstore *s, struct cmd *c, const redisReply *reply)
{
    struct purge *job = c->job;
    const redisReply *cur, *keys;

    if (s == NULL) {
        purge_free(job);
        return;
    }
    if (reply == NULL) {
        purge_fail(s, job, "the connection was lost");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        purge_fail(s, job, safe_msg(s, reply->str));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= sizeof(job->cursor) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        purge_fail(s, job, "unexpected SCAN reply");
        return;
    }
    cur = reply->element[0];
    keys = reply->element[1];
    job->steps++;
    if (keys->elements > 0 && unlink_keys(s, keys) != 0) {
        purge_fail(s, job, "cannot send UNLINK");
        return;
    }
    job->found += keys->elements;
    if (strcmp(cur->str, "0") == 0) {
        s->n.purges++;
        log_info("redis: purge done: %" PRIu64 " keys in %u steps",
                 job->found, job->steps);
        purge_free(job);
        return;
    }
    memcpy(job->cursor, cur->str, cur->len + 1);
    if (scan_step(s, job) != 0)
        purge_fail(s, job, "cannot send SCAN");
}

static void unlink_done(struct rstore *s, const redisReply *reply)
{
    if (s == NULL)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        s->n.purged_keys += (uint64_t)reply->integer;
        return;
    }
    s->n.purge_errors++;
    if (reply != NULL && ratelog_take(&s->rl_set))
        log_warn("redis: UNLINK failed: %s%s", reply_msg(s, reply),
                 s->rl_set.more);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct cmd *c = priv;
    struct rstore *s = c->s;
    const redisReply *reply = r;

    if (s != NULL) {
        cmd_unlink(s, c);
        if (reply == NULL)
            conn_lost(s, ac);
    }
    switch (c->kind) {
    case K_AUTH:
    case K_SELECT:
    case K_PING:
        if (s != NULL)
            hello_done(s, ac, c, reply);
        break;
    case K_GET:
        get_done(s, c, reply);
        break;
    case K_SET:
        set_done(s, reply);
        break;
    case K_SCAN:
        scan_done(s, c, reply);
        break;
    case K_UNLINK:
        unlink_done(s, reply);
        break;
    case K_LEASE:
        lease_done(s, c, reply);
        break;
    case K_GENSET:
    case K_RENEW:
    case K_RELEASE:
    case K_PUBLISH:
        ctl_done(s, c, reply);
        break;
    case K_GCRA:
    case K_GCRA_EVAL:
        gcra_done(s, c, reply);
        break;
    case K_SUB_AUTH:
    case K_SUBSCRIBE:
        break;                   /* on_sub_reply's */
    }
    free(c->gkey);
    free(c);
}

/* ---- the subscriber connection ---- */

/* SUBSCRIBE lcg:1:events on sac with s->sub_cmd as privdata: the first
 * one, and every heartbeat. */
static int sub_send_subscribe(struct rstore *s)
{
    const char *argv[2] = {"SUBSCRIBE", EVENTS_CHANNEL};
    const size_t lens[2] = {9, sizeof(EVENTS_CHANNEL) - 1};
    struct cmd *c = s->sub_cmd;
    int first = c == NULL;

    if (first) {
        if ((c = cmd_new(K_SUBSCRIBE)) == NULL)
            return -1;
        c->sub = 1;
    }
    if (redisAsyncCommandArgv(s->sac, on_sub_reply, c, 2, argv, lens) !=
        REDIS_OK) {
        if (first)
            free(c);
        return -1;
    }
    if (first) {
        cmd_link(s, c, s->sac);
        s->sub_cmd = c;
    }
    return 0;
}

static void on_sub_connect(const redisAsyncContext *cac, int status)
{
    struct rstore *s = cac->data;

    if (s == NULL || cac != s->sac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees ac when this returns */
        s->sac->data = NULL;
        sub_conn_lost(s, cac);
        return;
    }
    if (s->url.path == NULL)
        redisEnableKeepAlive(&s->sac->c);
    if (send_auth(s, s->sac, 1) != 0 || sub_send_subscribe(s) != 0)
        sub_drop_later(s, "cannot send AUTH and SUBSCRIBE");
}

static void on_sub_disconnect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;

    if (s != NULL)
        sub_conn_lost(s, ac);
}

static void sub_connect(struct rstore *s)
{
    redisAsyncContext *ac;
    char why[160];

    if (s->sub_doomed != NULL)
        sub_drop_now(s, s->sub_doomed, "");
    if (s->url.path != NULL)
        ac = redisAsyncConnectUnix(s->url.path);
    else
        ac = redisAsyncConnect(s->url.host, s->url.port);
    if (ac == NULL) {
        sub_down(s, "out of memory");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof(why), "%s", ac->c.errstr);
        redisAsyncFree(ac);
        sub_down(s, why);
        return;
    }
    ac->data = s;
    s->sac = ac;
    s->sub_state = SS_CONNECTING;
    s->sub_hb_out = 0;
    if (redis_ev_attach(ac, s->evb) != 0) {
        s->sac = NULL;
        redisAsyncFree(ac);
        sub_down(s, "out of memory");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_sub_connect);
    redisAsyncSetDisconnectCallback(ac, on_sub_disconnect);
    evtimer_add(s->sub_ev, &s->timeout_tv);
}

/* sub_ev: the handshake deadline, the heartbeat and its deadline, or the
 * reconnect, by state. */
static void on_sub_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;
    char why[96];

    switch (s->sub_state) {
    case SS_OFF:
        break;
    case SS_DOWN:
        sub_connect(s);
        break;
    case SS_CONNECTING:
        snprintf(why, sizeof(why), "no subscription within %u ms of "
                 "connecting", s->timeout_ms);
        sub_drop_now(s, s->sac, why);
        break;
    case SS_LIVE:
        if (s->sub_hb_out) {
            snprintf(why, sizeof(why), "heartbeat got no answer within "
                     "%u ms", s->timeout_ms);
            sub_drop_now(s, s->sac, why);
        } else if (sub_send_subscribe(s) != 0) {
            sub_drop_now(s, s->sac, "cannot send the heartbeat");
        } else {
            s->n.sub_heartbeats++;
            s->sub_hb_out = 1;
            evtimer_add(s->sub_ev, &s->timeout_tv);
        }
        break;
    }
}

static void on_sub_note(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;

    /* last use of s: the callback may free the store */
    if (s->sub_cb != NULL)
        s->sub_cb(s->sub_arg, NULL, 0);
}

static void sub_auth_done(struct rstore *s, redisAsyncContext *ac,
                          const redisReply *reply)
{
    char why[200];

    if (ac != s->sac)
        return;
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0)
        return;
    snprintf(why, sizeof(why), "AUTH failed: %s",
             safe_msg(s, reply->type == REDIS_REPLY_ERROR ||
                                 reply->type == REDIS_REPLY_STATUS
                             ? reply->str
                             : "unexpected reply"));
    sub_drop_later(s, why);
}

/* A reply on the channel: a message, or the confirmation of the first
 * SUBSCRIBE or of a heartbeat. */
static void sub_event(struct rstore *s, const redisReply *reply)
{
    const redisReply *kind, *payload;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        (kind = reply->element[0])->type != REDIS_REPLY_STRING) {
        if (ratelog_take(&s->rl_sub))
            log_warn("redis: unexpected reply on the event subscription: "
                     "%s%s", reply_msg(s, reply), s->rl_sub.more);
        return;
    }
    if (strcasecmp(kind->str, "subscribe") == 0) {
        s->sub_hb_out = 0;
        if (s->sub_state != SS_LIVE) {
            s->sub_state = SS_LIVE;
            s->sub_backoff_ms = BACKOFF_MIN_MS;
            s->sub_noted = 0;
            s->n.sub_connects++;
            log_info("redis: subscribed to %s events at %s", EVENTS_CHANNEL,
                     s->url.where);
        }
        evtimer_add(s->sub_ev, &s->sub_hb_tv);
        return;
    }
    payload = reply->element[2];
    if (strcasecmp(kind->str, "message") != 0 ||
        payload->type != REDIS_REPLY_STRING)
        return;
    s->n.events++;
    /* last use of s: the callback may free the store */
    if (s->sub_cb != NULL)
        s->sub_cb(s->sub_arg, payload->str, payload->len);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct cmd *c = priv;
    struct rstore *s = c->s;
    const redisReply *reply = r;

    if (reply == NULL) {
        /* hiredis is freeing ac: the last call with c */
        if (s != NULL) {
            cmd_unlink(s, c);
            if (c == s->sub_cmd)
                s->sub_cmd = NULL;
            sub_conn_lost(s, ac);
        }
        free(c);
        return;
    }
    if (c->kind == K_SUB_AUTH) {
        if (s != NULL) {
            cmd_unlink(s, c);
            sub_auth_done(s, ac, reply);
        }
        free(c);
        return;
    }
    /* K_SUBSCRIBE: kept until the NULL call */
    if (s != NULL && ac == s->sac)
        sub_event(s, reply);
}

/* Close the subscriber connection; no callback of the caller runs. */
static void sub_stop(struct rstore *s)
{
    redisAsyncContext *ac;

    s->sub_cb = NULL;
    s->sub_arg = NULL;
    s->sub_state = SS_OFF;
    s->sub_hb_out = 0;
    s->sub_noted = 0;
    evtimer_del(s->sub_ev);
    event_del(s->sub_note_ev);
    if ((ac = s->sac) != NULL) {
        s->sac = NULL;
        s->sub_cmd = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);      /* deferred by hiredis inside its callback */
    }
    if ((ac = s->sub_doomed) != NULL) {
        s->sub_doomed = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

static void rs_subscribe(struct store *st, store_event_cb cb, void *arg)
{
    struct rstore *s = (struct rstore *)st;

    if (cb == NULL) {
        if (s->sub_state != SS_OFF)
            log_info("redis: unsubscribed from %s events", EVENTS_CHANNEL);
        sub_stop(s);
        return;
    }
    if (s->closing)
        return;
    s->sub_cb = cb;
    s->sub_arg = arg;
    if (s->sub_state != SS_OFF)
        return;                  /* the same connection, a new callback */
    s->sub_noted = 0;
    s->sub_backoff_ms = BACKOFF_MIN_MS;
    sub_connect(s);
}

/* ---- the operations ---- */

/* Room for one more command of a request (get, lease) or a write (set):
 * 1, or 0 with a rate-limited warning. */
static int room_for(struct rstore *s, const char *what)
{
    if (s->npending < MAX_PENDING)
        return 1;
    if (ratelog_take(&s->rl_shed))
        log_warn("redis: %d commands in flight; %s%s", MAX_PENDING, what,
                 s->rl_shed.more);
    return 0;
}

static void rs_get(struct store *st, const char *key, size_t klen,
                   const char *gen_name, store_get_cb cb, void *arg)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[4];
    size_t lens[4];
    int argc = 0;
    struct cmd *c;

    s->n.gets++;
    if (s->state != RS_OK || s->closing)
        goto error;
    if (!room_for(s, "answering more reads as errors"))
        goto error;
    if ((c = cmd_new(K_GET)) == NULL)
        goto error;
    argv[argc] = "MGET", lens[argc++] = 4;
    argv[argc] = STORE_GEN_ALL, lens[argc++] = sizeof(STORE_GEN_ALL) - 1;
    if (gen_name != NULL)        /* without one, the project's reads 0 */
        argv[argc] = gen_name, lens[argc++] = strlen(gen_name);
    argv[argc] = key, lens[argc++] = klen;
    c->nkeys = (size_t)argc - 1;
    c->cb = cb;
    c->arg = arg;
    if (cmd_send(s, c, argc, argv, lens, 1) != 0) {
        free(c);
        goto error;
    }
    return;

error:
    s->n.get_errors++;
    cb(arg, STORE_ERROR, NULL, NULL);
}

static void rs_set(struct store *st, const char *key, size_t klen,
                   struct centry *e, uint64_t keep_ms)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[5];
    size_t lens[5], len;
    char px[24];
    char *buf;
    struct cmd *c;

    if (keep_ms == 0)
        return;
    s->n.sets++;
    if (s->state != RS_OK || s->closing) {
        s->n.sets_dropped++;
        return;
    }
    if (!room_for(s, "dropping cache writes")) {
        s->n.sets_dropped++;
        return;
    }
    if (keep_ms > MAX_KEEP_MS)
        keep_ms = MAX_KEEP_MS;
    snprintf(px, sizeof(px), "%" PRIu64, keep_ms);
    if ((buf = centry_encode(e, &len)) == NULL) {
        s->n.set_errors++;
        return;
    }
    argv[0] = "SET", lens[0] = 3;
    argv[1] = key, lens[1] = klen;
    argv[2] = buf, lens[2] = len;
    argv[3] = "PX", lens[3] = 2;
    argv[4] = px, lens[4] = strlen(px);
    if ((c = cmd_new(K_SET)) == NULL ||
        cmd_send(s, c, 5, argv, lens, 1) != 0) {
        free(c);
        s->n.set_errors++;
    }
    free(buf);
}

/* A fire-and-forget control command with its deadline: 0 sent, -1 not
 * (logged, rate-limited, with what is lost by that). */
static int ctl_send(struct rstore *s, enum cmd_kind kind, int argc,
                    const char **argv, const size_t *lens, const char *lost)
{
    struct cmd *c;
    const char *why;

    if (s->closing)
        return -1;
    if (s->state != RS_OK)
        why = "Redis is not connected";
    else if (s->npending >= MAX_PENDING_CTL)
        why = "too many commands in flight";
    else if ((c = cmd_new(kind)) == NULL)
        why = "out of memory";
    else if (cmd_send(s, c, argc, argv, lens, 1) != 0) {
        free(c);
        why = "cannot send";
    } else
        return 0;
    s->n.ctl_dropped++;
    if (ratelog_take(&s->rl_drop))
        log_warn("redis: %s not sent (%s)%s%s", kind_name[kind], why, lost,
                 s->rl_drop.more);
    return -1;
}

static uint64_t clamp_ms(uint64_t ms);

static void rs_gen_set(struct store *st, const char *gen_name, uint64_t value, int if_absent,
                       uint64_t ttl_ms)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[6];
    size_t lens[6];
    char v[24], px[24];
    int argc = 0;

    if (gen_name == NULL || value == 0)
        return;
    snprintf(v, sizeof(v), "%" PRIu64, value);
    snprintf(px, sizeof(px), "%" PRIu64, clamp_ms(ttl_ms));
    argv[argc] = "SET", lens[argc++] = 3;
    argv[argc] = gen_name, lens[argc++] = strlen(gen_name);
    argv[argc] = v, lens[argc++] = strlen(v);
    argv[argc] = "PX", lens[argc++] = 2;
    argv[argc] = px, lens[argc++] = strlen(px);
    if (if_absent)
        argv[argc] = "NX", lens[argc++] = 2;
    s->n.bumps++;
    ctl_send(s, K_GENSET, argc, argv, lens,
             if_absent ? "; lists of that project are not cached until it is"
                       : "; entries under that generation stay valid until they expire");
}

static uint64_t clamp_ms(uint64_t ms)
{
    return ms == 0 ? 1 : ms > MAX_KEEP_MS ? MAX_KEEP_MS : ms;
}

static void rs_lease(struct store *st, const char *name, uint64_t ttl_ms,
                     store_lease_cb cb, void *arg)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[6];
    size_t lens[6];
    char px[24];
    struct cmd *c;

    s->n.leases++;
    if (name == NULL || s->state != RS_OK || s->closing)
        goto error;
    if (!room_for(s, "answering more leases as errors"))
        goto error;
    if ((c = cmd_new(K_LEASE)) == NULL)
        goto error;
    snprintf(px, sizeof(px), "%" PRIu64, clamp_ms(ttl_ms));
    argv[0] = "SET", lens[0] = 3;
    argv[1] = name, lens[1] = strlen(name);
    argv[2] = s->token, lens[2] = strlen(s->token);
    argv[3] = "NX", lens[3] = 2;
    argv[4] = "PX", lens[4] = 2;
    argv[5] = px, lens[5] = strlen(px);
    c->lcb = cb;
    c->arg = arg;
    if (cmd_send(s, c, 6, argv, lens, 1) != 0) {
        free(c);
        goto error;
    }
    return;

error:
    s->n.lease_errors++;
    cb(arg, -1);
}

/* One GCRA decision in Redis; NULL at once when Redis cannot take it. T
 * and tau are clamped to GCRA_MAX_US (the script's arithmetic is in
 * doubles): only budgets of decades are affected. */
static void rs_gcra(struct store *st, const char *key, uint64_t period_us,
                    unsigned burst, unsigned want, store_gcra_cb cb, void *arg)
{
    struct rstore *s = (struct rstore *)st;
    uint64_t t, b1;
    struct cmd *c = NULL;

    s->n.gcras++;
    if (key == NULL || s->state != RS_OK || s->closing)
        goto error;
    if (!room_for(s, "answering more rate-limit decisions as undecided"))
        goto error;
    if ((c = cmd_new(K_GCRA)) == NULL || (c->gkey = strdup(key)) == NULL)
        goto error;
    t = period_us < 1 ? 1 : period_us > GCRA_MAX_US ? GCRA_MAX_US : period_us;
    b1 = burst > 1 ? burst - 1 : 0;
    c->t_us = t;
    c->tau_us = b1 > GCRA_MAX_US / t ? GCRA_MAX_US : t * b1;
    c->want = want < 1 ? 1 : want > burst ? (burst ? burst : 1) : want;
    c->end_us = mono_us() + (int64_t)s->timeout_ms * 1000;
    c->gcb = cb;
    c->arg = arg;
    if (gcra_send(s, c, s->cmd_tv) != 0)
        goto error;
    return;

error:
    if (c != NULL) {
        free(c->gkey);
        free(c);
    }
    s->n.gcra_errors++;
    cb(arg, NULL);
}

static void rs_lease_renew(struct store *st, const char *name,
                           uint64_t ttl_ms)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[6];
    size_t lens[6];
    char px[24];

    if (name == NULL)
        return;
    s->n.renews++;
    snprintf(px, sizeof(px), "%" PRIu64, clamp_ms(ttl_ms));
    argv[0] = "EVAL", lens[0] = 4;
    argv[1] = renew_lua, lens[1] = sizeof(renew_lua) - 1;
    argv[2] = "1", lens[2] = 1;
    argv[3] = name, lens[3] = strlen(name);
    argv[4] = s->token, lens[4] = strlen(s->token);
    argv[5] = px, lens[5] = strlen(px);
    ctl_send(s, K_RENEW, 6, argv, lens, "; the lease may expire early");
}

static void rs_lease_release(struct store *st, const char *name)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[5];
    size_t lens[5];

    if (name == NULL)
        return;
    s->n.releases++;
    argv[0] = "EVAL", lens[0] = 4;
    argv[1] = release_lua, lens[1] = sizeof(release_lua) - 1;
    argv[2] = "1", lens[2] = 1;
    argv[3] = name, lens[3] = strlen(name);
    argv[4] = s->token, lens[4] = strlen(s->token);
    ctl_send(s, K_RELEASE, 5, argv, lens,
             "; the lease is held until it expires");
}

static void rs_publish(struct store *st, const char *msg, size_t len)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[3] = {"PUBLISH", EVENTS_CHANNEL, msg != NULL ? msg : ""};
    size_t lens[3] = {7, sizeof(EVENTS_CHANNEL) - 1, msg != NULL ? len : 0};

    s->n.publishes++;
    ctl_send(s, K_PUBLISH, 3, argv, lens,
             "; other instances rely on polling for it");
}

static int scan_step(struct rstore *s, struct purge *job)
{
    const char *argv[6] = {"SCAN", job->cursor, "MATCH", job->pattern,
                           "COUNT", SCAN_COUNT};
    size_t lens[6] = {4, strlen(job->cursor), 5, job->plen, 5,
                      sizeof(SCAN_COUNT) - 1};
    struct cmd *c = cmd_new(K_SCAN);

    if (c == NULL)
        return -1;
    c->job = job;
    if (cmd_send(s, c, 6, argv, lens, 1) != 0) {
        free(c);
        return -1;
    }
    return 0;
}

/* SCAN ... MATCH takes a glob: escape its special characters. */
static char *glob_prefix(const char *prefix, size_t *len)
{
    size_t n = strlen(prefix), i, j = 0;
    char *p = malloc(2 * n + 2);

    if (p == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (strchr("*?[]\\", prefix[i]) != NULL)
            p[j++] = '\\';
        p[j++] = prefix[i];
    }
    p[j++] = '*';
    p[j] = '\0';
    *len = j;
    return p;
}

static uint64_t rs_events_epoch(struct store *st)
{
    struct rstore *s = (struct rstore *)st;
    char byte;
    ssize_t n;

    /* Events already on the socket are read first: an instance answers a
     * write only once Redis has passed its event on, so that a client who
     * saw the write can never read a list it invalidated from here. A
     * closed connection is noticed the same way. */
    if (s->sac != NULL && s->sub_state == SS_LIVE) {
        n = recv(s->sac->c.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            redisAsyncHandleRead(s->sac);
    }
    return s->state == RS_OK && s->sub_state == SS_LIVE ? s->n.sub_connects : 0;
}

static const char *rs_state(struct store *st)
{
    static const char *const names[] = {
        [RS_CONNECTING] = "connecting", [RS_OK] = "ok", [RS_DOWN] = "down"};

    return names[((struct rstore *)st)->state];
}

static void rs_purge(struct store *st, const char *prefix)
{
    struct rstore *s = (struct rstore *)st;
    struct purge *job;

    if (s->state != RS_OK || s->closing) {
        s->n.purge_errors++;
        log_warn("redis: purge not done: Redis is not connected (%s)",
                 s->closing ? "closing" : rs_state(st));
        return;
    }
    /* A purge is not shed under load: it holds at most two commands. */
    if ((job = calloc(1, sizeof(*job))) == NULL ||
        (job->pattern = glob_prefix(prefix, &job->plen)) == NULL) {
        free(job);
        s->n.purge_errors++;
        log_warn("redis: purge not done: out of memory");
        return;
    }
    strcpy(job->cursor, "0");
    if (scan_step(s, job) != 0)
        purge_fail(s, job, "cannot send SCAN");
}

static void rstore_release(struct rstore *s)
{
    if (s->conn_ev != NULL)
        event_free(s->conn_ev);
    if (s->reap_ev != NULL)
        event_free(s->reap_ev);
    if (s->sub_ev != NULL)
        event_free(s->sub_ev);
    if (s->sub_note_ev != NULL)
        event_free(s->sub_note_ev);
    redis_url_clear(&s->url);
    free(s);
}

/* Every pending get is answered STORE_ERROR, every pending lease -1 and
 * every pending gcra NULL before this returns (so free the store before
 * what the callbacks' args point to); sets, control commands and purges in
 * flight are abandoned, the subscription is closed without a (NULL, 0)
 * call. It may be called from any callback of the store. */
static void rs_free(struct store *st)
{
    struct rstore *s = (struct rstore *)st;
    const struct redis_counters *n = &s->n;
    struct cmd *c;

    s->closing = 1;
    evtimer_del(s->conn_ev);
    event_del(s->reap_ev);
    /* the callbacks below may call the store: closing answers them at once
     * and subscribe() no longer opens anything */
    while ((c = s->pending) != NULL) {
        cmd_unlink(s, c);
        c->s = NULL;             /* on_reply will only free it */
        if (c->kind == K_GET) {
            s->n.get_errors++;
            c->cb(c->arg, STORE_ERROR, NULL, NULL);
        } else if (c->kind == K_LEASE) {
            s->n.lease_errors++;
            c->lcb(c->arg, -1);
        } else if (c->kind == K_GCRA || c->kind == K_GCRA_EVAL) {
            s->n.gcra_errors++;
            c->gcb(c->arg, NULL);
        }
    }
    sub_stop(s);
    if (s->doomed != NULL) {
        s->doomed->data = NULL;
        redisAsyncFree(s->doomed);
    }
    if (s->ac != NULL) {
        s->ac->data = NULL;
        redisAsyncFree(s->ac);
    }
    log_debug("redis: closed; gets %" PRIu64 " (hits %" PRIu64
              ", misses %" PRIu64 ", errors %" PRIu64 ", bad generations %"
              PRIu64 "), sets %" PRIu64 " (errors %" PRIu64 ", dropped %"
              PRIu64 "), timeouts %" PRIu64 ", bad values %" PRIu64
              ", connects %" PRIu64 ", disconnects %" PRIu64 ", purges %"
              PRIu64 " (errors %" PRIu64 ", keys %" PRIu64 ")",
              n->gets, n->hits, n->misses, n->get_errors, n->bad_gens,
              n->sets, n->set_errors, n->sets_dropped, n->timeouts,
              n->bad_values, n->connects, n->disconnects, n->purges,
              n->purge_errors, n->purged_keys);
    log_debug("redis: bumps %" PRIu64 ", leases %" PRIu64 " (got %" PRIu64
              ", busy %" PRIu64 ", errors %" PRIu64 "), renewals %" PRIu64
              " (lost %" PRIu64 "), releases %" PRIu64 ", publishes %"
              PRIu64 ", control errors %" PRIu64 " (dropped %" PRIu64
              "), events %" PRIu64 ", subscriptions %" PRIu64 " (lost %"
              PRIu64 ", heartbeats %" PRIu64 ")",
              n->bumps, n->leases, n->leases_got, n->leases_busy,
              n->lease_errors, n->renews, n->renews_lost, n->releases,
              n->publishes, n->ctl_errors, n->ctl_dropped, n->events,
              n->sub_connects, n->sub_losses, n->sub_heartbeats);
    log_debug("redis: rate-limit decisions %" PRIu64 " (allowed %" PRIu64
              ", refused %" PRIu64 ", undecided %" PRIu64 ", NOSCRIPT %"
              PRIu64 ")", n->gcras, n->gcras_allowed, n->gcras_refused,
              n->gcra_errors, n->gcra_noscript);
    rstore_release(s);
}

static const struct store_ops redis_ops = {
    .name = "redis",
    .shared = 1,
    .get = rs_get,
    .set = rs_set,
    .gen_set = rs_gen_set,
    .lease = rs_lease,
    .lease_renew = rs_lease_renew,
    .lease_release = rs_lease_release,
    .publish = rs_publish,
    .subscribe = rs_subscribe,
    .gcra = rs_gcra,
    .purge = rs_purge,
    .events_epoch = rs_events_epoch,
    .state = rs_state,
    .free = rs_free,
};

/* This store's lease token: 16 random bytes in hex, the pid, and a
 * sequence number that keeps two stores of one process apart. A token that
 * others could guess would let them release our leases: no fallback. */
static int make_token(char *tok, size_t cap)
{
    static unsigned seq;
    unsigned char rnd[16];
    char hex[2 * sizeof(rnd) + 1];
    size_t i;

    if (util_random(rnd, sizeof(rnd)) != 0)
        return -1;
    for (i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(tok, cap, "%s.%ld.%u", hex, (long)getpid(), ++seq);
    return 0;
}

struct store *store_redis_new(struct event_base *base, const char *url,
                              unsigned timeout_ms, char *err, size_t errlen)
{
    uint8_t sha[SHA1_LEN];
    struct rstore *s;
    const char *why;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    s->base.ops = &redis_ops;
    s->evb = base;
    s->state = RS_CONNECTING;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->sub_state = SS_OFF;
    s->sub_backoff_ms = BACKOFF_MIN_MS;
    if (url == NULL || redis_url_parse(url, &s->url, &why) != 0) {
        snprintf(err, errlen, "redis_url: %s",
                 url == NULL ? "missing" : why);
        rstore_release(s);
        return NULL;
    }
    if (timeout_ms == 0) {
        snprintf(err, errlen, "redis timeout: must be more than 0 ms");
        rstore_release(s);
        return NULL;
    }
    s->timeout_ms = timeout_ms;
    s->timeout_tv.tv_sec = timeout_ms / 1000;
    s->timeout_tv.tv_usec = (timeout_ms % 1000) * 1000;
    s->cmd_tv = event_base_init_common_timeout(base, &s->timeout_tv);
    s->sub_hb_tv.tv_sec = SUB_HEARTBEAT_MS / 1000;
    s->sub_hb_tv.tv_usec = (SUB_HEARTBEAT_MS % 1000) * 1000;
    s->conn_ev = evtimer_new(base, on_conn_timer, s);
    s->reap_ev = event_new(base, -1, 0, on_reap, s);
    s->sub_ev = evtimer_new(base, on_sub_timer, s);
    s->sub_note_ev = event_new(base, -1, 0, on_sub_note, s);
    if (s->cmd_tv == NULL || s->conn_ev == NULL || s->reap_ev == NULL ||
        s->sub_ev == NULL || s->sub_note_ev == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        rstore_release(s);
        return NULL;
    }
    if (make_token(s->token, sizeof(s->token)) != 0) {
        snprintf(err, errlen, "redis: cannot draw random bytes (getrandom): %s",
                 strerror(errno));
        rstore_release(s);
        return NULL;
    }
    sha1(gcra_lua, sizeof(gcra_lua) - 1, sha);
    hex_encode(sha, SHA1_LEN, s->gcra_sha);
    connect_start(s);
    return &s->base;
}
