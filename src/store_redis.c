/* store_redis: the cache store (cache_store.h) on Redis, on two
 * connections (redis_conn.h) on the gateway's libevent base: one for
 * commands, and one subscribed to the event channel once someone
 * subscribes. The connections come up, meet their deadlines and reconnect
 * by themselves; the store sends while its command connection is up,
 * answers at once while it is not, and counts.
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
 *   publish PUBLISH <STORE_EVENTS_CHANNEL> <msg>
 *   gcra    EVALSHA of a GCRA script on Redis's clock (redis_gcra.h).
 *   purge   SCAN MATCH <escaped prefix>* + UNLINK, one step in flight
 *           (redis_purge.h).
 * Gets, leases and gcra decisions are answered (ERROR, -1, NULL) at once
 * when the command connection is not up or MAX_PENDING commands are in
 * flight; sets are then dropped. The fire-and-forget control commands (gen_set,
 * renew, release, publish) are rare and matter more than a cache write, so
 * they are shed only past MAX_PENDING_CTL; a purge is never shed (it holds
 * at most two commands).
 *
 * Events. subscribe() opens the subscribed connection on
 * STORE_EVENTS_CHANNEL; it lives and dies independently of the command
 * connection, and it is never counted in MAX_PENDING or in state().
 * Whenever the subscription is lost (a disconnect, a missed heartbeat) or a
 * (re)connect fails while it is not established, the callback gets
 * (NULL, 0) once for that outage. That call is made from a zero-delay
 * event, on a clean stack, so it may free the store or (un)subscribe.
 *
 * Sentinel (store_redis_sentinel_new, store_redis_primary.h). The two
 * connections start with no address; redis_sentinel.h names the primary,
 * and each names after a failover: both connections are moved there
 * (redis_conn_retarget), and each must find ROLE master before it is up. Meanwhile, and while they
 * move, the store is down as above: requests are answered as misses. The
 * subscription's move is a loss like any other (the (NULL, 0) call, a new
 * events_epoch), so the L1 is dropped. When the command connection goes
 * down the sentinels are asked at once, not at their next poll.
 *
 * The caller's callbacks run only from reply callbacks, from store free,
 * from the operation itself (an answer given at once), and from note_ev; in
 * each, freeing the store and subscribe(NULL) are safe. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache_store.h"
#include "clock.h"
#include "log.h"
#include "ratelog.h"
#include "redis_conn.h"
#include "redis_gcra.h"
#include "redis_purge.h"
#include "redis_tls.h"
#include "redis_url.h"
#include "store_keys.h"
#include "store_redis_primary.h"
#include "util.h"

#define STORE_MAGIC 0x5253544fu  /* "RSTO" */
#define CMD_MAGIC 0x52434d53u    /* "RCMS" */
#define MAX_PENDING 10000        /* commands in flight before shedding */
#define MAX_PENDING_CTL (2 * MAX_PENDING) /* ... control commands */
#define MAX_KEEP_MS (UINT64_C(100) * 365 * 24 * 3600 * 1000)
#define TOKEN_CAP 64

enum cmd_kind { K_GET, K_SET, K_GENSET, K_LEASE, K_RENEW, K_RELEASE, K_PUBLISH };

static const char *const kind_name[] = {
    [K_GET] = "MGET",        [K_SET] = "SET",
    [K_GENSET] = "SET (generation)",        [K_LEASE] = "SET NX",
    [K_RENEW] = "lease renewal (EVAL)",     [K_RELEASE] = "lease release (EVAL)",
    [K_PUBLISH] = "PUBLISH",
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

/* Counters for a later /metrics (read on the loop thread). */
struct redis_counters {
    uint64_t gets, hits, misses, get_errors, bad_gens;
    uint64_t sets, set_errors, sets_dropped;
    uint64_t bad_values, connects, disconnects;
    uint64_t bumps, leases, leases_got, leases_busy, lease_errors;
    uint64_t renews, renews_lost, releases;
    uint64_t publishes, ctl_errors, ctl_dropped;
    uint64_t gcras;
    uint64_t events, sub_connects, sub_losses, sub_heartbeats;
};

struct rstore;

/* One command of the store in flight: redis_conn answers it exactly once
 * (on_reply), which frees it. */
struct cmd {
    uint32_t magic;
    struct rstore *s;
    enum cmd_kind kind;
    store_get_cb cb;             /* K_GET */
    store_lease_cb lcb;          /* K_LEASE */
    void *arg;
    size_t nkeys;                /* K_GET: keys in the MGET */
};

struct rstore {
    struct store base;           /* first: callers hold a struct store * */
    uint32_t magic;
    struct event_base *evb;
    struct redis_url url;        /* where (unless Sentinel), the credentials */
    struct store_primary pr;     /* the server in use, Sentinel's or url's */
    struct redis_tls *tls;       /* rediss://: the certificates; else NULL */
    unsigned timeout_ms;
    char token[TOKEN_CAP];       /* the value of our leases */
    int closing;

    struct redis_conn *conn;     /* commands */
    struct redis_conn *sub;      /* events: NULL while not subscribed */
    store_event_cb sub_cb;
    void *sub_arg;
    struct event *note_ev;       /* the (NULL, 0) call, on a clean stack */

    struct ratelog rl_value, rl_get, rl_set, rl_shed, rl_gen, rl_ctl,
        rl_drop, rl_sub;
    struct redis_counters n;
    struct redis_gcra gcra;      /* rate-limit decisions */
    struct redis_purges purges;
};

static struct rstore *rstore_of(void *p)
{
    struct rstore *s = p;

    assert(s->magic == STORE_MAGIC);
    return s;
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

static int conn_up(const struct rstore *s)
{
    return !s->closing && redis_conn_state(s->conn) == RC_UP;
}

/* ---- what the connections report ---- */

static void conn_up_cb(void *arg, int again)
{
    struct rstore *s = rstore_of(arg);

    s->n.connects++;
    if (again)
        log_info("redis: back up at %s; caching through Redis again", s->pr.where);
    else
        log_info("redis: connected to %s", s->pr.where);
}

static void conn_down_cb(void *arg, const struct redis_conn_down *d)
{
    struct rstore *s = rstore_of(arg);

    if (d->retargeted) {
        log_debug("redis: left %s for the new primary", s->pr.where);
        return;
    }
    store_primary_lost(&s->pr);
    if (!d->first) {
        log_debug("redis: reconnect to %s failed (%s), next try in %u ms",
                  s->pr.where, d->why, d->retry_ms);
        return;
    }
    s->n.disconnects++;
    log_warn("redis: down (%s: %s), retrying in the background; "
             "requests are served from upstream", s->pr.where, d->why);
}

static void sub_up_cb(void *arg, int again)
{
    struct rstore *s = rstore_of(arg);

    s->n.sub_connects++;
    log_info("redis: subscribed to %s events at %s", STORE_EVENTS_CHANNEL, s->pr.where);
}

/* Tell the caller once per outage (from note_ev). */
static void sub_down_cb(void *arg, const struct redis_conn_down *d)
{
    struct rstore *s = rstore_of(arg);

    if (d->retargeted) {
        s->n.sub_losses++;
        log_debug("redis: event subscription moves to the new primary");
    } else if (d->was_up) {
        s->n.sub_losses++;
        log_warn("redis: event subscription lost (%s: %s); reconnecting, "
                 "events may be missed meanwhile", s->pr.where, d->why);
    } else if (d->first && ratelog_take(&s->rl_sub)) {
        log_warn("redis: event subscription to %s failed (%s); retrying "
                 "in the background%s", s->pr.where, d->why, s->rl_sub.more);
    } else {
        log_debug("redis: event subscription to %s failed (%s), next try "
                  "in %u ms", s->pr.where, d->why, d->retry_ms);
    }
    if (d->first && s->sub_cb != NULL)
        event_active(s->note_ev, EV_TIMEOUT, 1);
}

static void sub_message_cb(void *arg, const char *msg, size_t len)
{
    struct rstore *s = rstore_of(arg);

    s->n.events++;
    /* last use of s: the callback may free the store */
    if (s->sub_cb != NULL)
        s->sub_cb(s->sub_arg, msg, len);
}

static void on_note(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = rstore_of(arg);

    /* last use of s: the callback may free the store */
    if (s->sub_cb != NULL)
        s->sub_cb(s->sub_arg, NULL, 0);
}

static const struct redis_conn_cbs conn_cbs = {conn_up_cb, conn_down_cb, NULL};
static const struct redis_conn_cbs sub_cbs = {sub_up_cb, sub_down_cb, sub_message_cb};

/* ---- commands ---- */

static void on_reply(void *arg, const redisReply *reply);

static struct cmd *cmd_new(struct rstore *s, enum cmd_kind kind)
{
    struct cmd *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->magic = CMD_MAGIC;
        c->s = s;
        c->kind = kind;
    }
    return c;
}

static void cmd_free(struct cmd *c)
{
    c->magic = 0;
    free(c);
}

/* Send c on the command connection with the deadline of timeout_ms; 0, or
 * -1 (c is still the caller's). */
static int cmd_send(struct rstore *s, struct cmd *c, int argc, const char **argv,
                    const size_t *lens)
{
    return redis_conn_send(s->conn, kind_name[c->kind], argc, argv, lens, NULL, on_reply, c);
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

    if (reply == NULL) {
        /* the connection went away (logged), or the store is closing */
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

    if (reply == NULL) {
        /* the connection went away (logged), or the store is closing */
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

/* Fire-and-forget commands abandoned by store free: nothing to count. */
static int abandoned(const struct cmd *c, const redisReply *reply)
{
    return reply == NULL && c->s->closing && c->kind != K_GET && c->kind != K_LEASE;
}

static void on_reply(void *arg, const redisReply *reply)
{
    struct cmd *c = arg;
    struct rstore *s = c->s;

    assert(c->magic == CMD_MAGIC);
    if (abandoned(c, reply)) {
        cmd_free(c);
        return;
    }
    switch (c->kind) {
    case K_GET:
        get_done(s, c, reply);
        break;
    case K_SET:
        set_done(s, reply);
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
    }
    cmd_free(c);
}

/* ---- subscribe ---- */

/* Close the subscribed connection; no callback of the caller runs. */
static void sub_stop(struct rstore *s)
{
    s->sub_cb = NULL;
    s->sub_arg = NULL;
    event_del(s->note_ev);
    if (s->sub != NULL) {
        s->n.sub_heartbeats += redis_conn_stats(s->sub)->heartbeats;
        redis_conn_free(s->sub);
        s->sub = NULL;
    }
}

static void rs_subscribe(struct store *st, store_event_cb cb, void *arg)
{
    struct rstore *s = rstore_of(st);

    if (cb == NULL) {
        if (s->sub != NULL)
            log_info("redis: unsubscribed from %s events", STORE_EVENTS_CHANNEL);
        sub_stop(s);
        return;
    }
    if (s->closing)
        return;
    s->sub_cb = cb;
    s->sub_arg = arg;
    if (s->sub != NULL)
        return;                  /* the same connection, a new callback */
    s->sub = redis_conn_new(s->evb, &s->url, s->tls, s->timeout_ms, STORE_EVENTS_CHANNEL,
                            &sub_cbs, s);
    if (s->sub != NULL && store_primary_attach(&s->pr, s->sub) != 0) {
        redis_conn_free(s->sub);
        s->sub = NULL;
    }
    if (s->sub == NULL) {
        log_warn("redis: event subscription to %s failed (out of memory)", s->pr.where);
        event_active(s->note_ev, EV_TIMEOUT, 1);
    }
}

/* ---- the operations ---- */

/* Room for one more command of a request (get, lease) or a write (set):
 * 1, or 0 with a rate-limited warning. */
static int room_for(struct rstore *s, const char *what)
{
    if (redis_conn_pending(s->conn) < MAX_PENDING)
        return 1;
    if (ratelog_take(&s->rl_shed))
        log_warn("redis: %d commands in flight; %s%s", MAX_PENDING, what,
                 s->rl_shed.more);
    return 0;
}

static void rs_get(struct store *st, const char *key, size_t klen,
                   const char *gen_name, store_get_cb cb, void *arg)
{
    struct rstore *s = rstore_of(st);
    const char *argv[4];
    size_t lens[4];
    int argc = 0;
    struct cmd *c;

    s->n.gets++;
    if (!conn_up(s))
        goto error;
    if (!room_for(s, "answering more reads as errors"))
        goto error;
    if ((c = cmd_new(s, K_GET)) == NULL)
        goto error;
    argv[argc] = "MGET", lens[argc++] = 4;
    argv[argc] = STORE_GEN_ALL, lens[argc++] = sizeof(STORE_GEN_ALL) - 1;
    if (gen_name != NULL)        /* without one, the project's reads 0 */
        argv[argc] = gen_name, lens[argc++] = strlen(gen_name);
    argv[argc] = key, lens[argc++] = klen;
    c->nkeys = (size_t)argc - 1;
    c->cb = cb;
    c->arg = arg;
    if (cmd_send(s, c, argc, argv, lens) != 0) {
        cmd_free(c);
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
    struct rstore *s = rstore_of(st);
    const char *argv[5];
    size_t lens[5], len;
    char px[24];
    char *buf;
    struct cmd *c;

    if (keep_ms == 0)
        return;
    s->n.sets++;
    if (!conn_up(s)) {
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
    if ((c = cmd_new(s, K_SET)) == NULL ||
        cmd_send(s, c, 5, argv, lens) != 0) {
        if (c != NULL)
            cmd_free(c);
        s->n.set_errors++;
    } else {
        /* Out before this instance answers its client: a client that asks
         * another instance next finds it (Redis reads it first). */
        redis_conn_flush_now(s->conn);
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
    if (!conn_up(s))
        why = "Redis is not connected";
    else if (redis_conn_pending(s->conn) >= MAX_PENDING_CTL)
        why = "too many commands in flight";
    else if ((c = cmd_new(s, kind)) == NULL)
        why = "out of memory";
    else if (cmd_send(s, c, argc, argv, lens) != 0) {
        cmd_free(c);
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
    struct rstore *s = rstore_of(st);
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
    struct rstore *s = rstore_of(st);
    const char *argv[6];
    size_t lens[6];
    char px[24];
    struct cmd *c;

    s->n.leases++;
    if (name == NULL || !conn_up(s))
        goto error;
    if (!room_for(s, "answering more leases as errors"))
        goto error;
    if ((c = cmd_new(s, K_LEASE)) == NULL)
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
    if (cmd_send(s, c, 6, argv, lens) != 0) {
        cmd_free(c);
        goto error;
    }
    return;

error:
    s->n.lease_errors++;
    cb(arg, -1);
}

/* One GCRA decision in Redis; NULL at once when Redis cannot take it. */
static void rs_gcra(struct store *st, const char *key, uint64_t period_us,
                    unsigned burst, unsigned want, store_gcra_cb cb, void *arg)
{
    struct rstore *s = rstore_of(st);

    s->n.gcras++;
    if (key == NULL || !conn_up(s) ||
        !room_for(s, "answering more rate-limit decisions as undecided") ||
        redis_gcra_decide(&s->gcra, s->conn, key, period_us, burst, want, s->timeout_ms, cb,
                          arg) != 0) {
        s->gcra.errors++;
        cb(arg, NULL);
    }
}

static void rs_lease_renew(struct store *st, const char *name,
                           uint64_t ttl_ms)
{
    struct rstore *s = rstore_of(st);
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
    struct rstore *s = rstore_of(st);
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
    struct rstore *s = rstore_of(st);
    const char *argv[3] = {"PUBLISH", STORE_EVENTS_CHANNEL, msg != NULL ? msg : ""};
    size_t lens[3] = {7, sizeof(STORE_EVENTS_CHANNEL) - 1, msg != NULL ? len : 0};

    s->n.publishes++;
    ctl_send(s, K_PUBLISH, 3, argv, lens,
             "; other instances rely on polling for it");
}

static uint64_t rs_events_epoch(struct store *st)
{
    struct rstore *s = rstore_of(st);

    /* Events already on the socket are read first: an instance answers a
     * write only once Redis has passed its event on, so that a client who
     * saw the write can never read a list it invalidated from here. A
     * closed connection is noticed the same way. */
    if (s->sub != NULL)
        redis_conn_poll(s->sub);
    return conn_up(s) && s->sub != NULL && redis_conn_state(s->sub) == RC_UP
               ? s->n.sub_connects
               : 0;
}

static const char *rs_state(struct store *st)
{
    static const char *const names[] = {
        [RC_CONNECTING] = "connecting", [RC_UP] = "ok", [RC_DOWN] = "down"};

    return names[redis_conn_state(rstore_of(st)->conn)];
}

static void rs_purge(struct store *st, const char *prefix)
{
    struct rstore *s = rstore_of(st);

    if (!conn_up(s)) {
        s->purges.errors++;
        log_warn("redis: purge not done: Redis is not connected (%s)",
                 s->closing ? "closing" : rs_state(st));
        return;
    }
    redis_purge(&s->purges, s->conn, prefix);
}

static const char *rs_primary(struct store *st)
{
    struct rstore *s = rstore_of(st);

    return s->pr.addr[0] != '\0' ? s->pr.addr : NULL;
}

static void rstore_release(struct rstore *s)
{
    store_primary_clear(&s->pr);
    if (s->note_ev != NULL)
        event_free(s->note_ev);
    redis_url_clear(&s->url);
    redis_tls_free(s->tls);
    s->magic = 0;
    free(s);
}

/* Every pending get is answered STORE_ERROR, every pending lease -1 and
 * every pending gcra NULL before this returns (so free the store before
 * what the callbacks' args point to); sets, control commands and purges in
 * flight are abandoned, the subscription is closed without a (NULL, 0)
 * call. It may be called from any callback of the store. */
static void rs_free(struct store *st)
{
    struct rstore *s = rstore_of(st);
    const struct redis_counters *n = &s->n;

    assert(!s->closing);
    /* the callbacks that run now may call the store: closing answers them
     * at once and subscribe() no longer opens anything */
    s->closing = 1;
    s->purges.abandon = 1;
    store_primary_clear(&s->pr);
    sub_stop(s);
    log_debug("redis: closed; gets %" PRIu64 " (hits %" PRIu64
              ", misses %" PRIu64 ", errors %" PRIu64 ", bad generations %"
              PRIu64 "), sets %" PRIu64 " (errors %" PRIu64 ", dropped %"
              PRIu64 "), timeouts %" PRIu64 ", bad values %" PRIu64
              ", connects %" PRIu64 ", disconnects %" PRIu64 ", purges %"
              PRIu64 " (errors %" PRIu64 ", keys %" PRIu64 ")",
              n->gets, n->hits, n->misses, n->get_errors, n->bad_gens,
              n->sets, n->set_errors, n->sets_dropped, redis_conn_stats(s->conn)->timeouts,
              n->bad_values, n->connects, n->disconnects, s->purges.done,
              s->purges.errors, s->purges.keys);
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
              PRIu64 ")", n->gcras, s->gcra.allowed, s->gcra.refused,
              s->gcra.errors, s->gcra.noscript);
    redis_conn_free(s->conn);    /* answers what is pending */
    rstore_release(s);
}

static const struct store_ops redis_ops = {
    .name = "redis", .shared = 1, .state = rs_state, .primary = rs_primary, .free = rs_free,
    /* entries and their generations */
    .get = rs_get, .set = rs_set, .gen_set = rs_gen_set, .purge = rs_purge,
    /* one fetch for every instance */
    .lease = rs_lease, .lease_renew = rs_lease_renew, .lease_release = rs_lease_release,
    /* events between instances */
    .publish = rs_publish, .subscribe = rs_subscribe, .events_epoch = rs_events_epoch,
    /* one rate-limit budget for every instance */
    .gcra = rs_gcra,
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
    /* Workers open stores of their own on their threads. */
    snprintf(tok, cap, "%s.%ld.%u", hex, (long)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    return 0;
}

struct store *store_redis_sentinel_new(struct event_base *base, const char *url,
                                       const struct redis_tls_conf *tls, unsigned timeout_ms,
                                       const struct redis_sentinel_conf *sc, char *err,
                                       size_t errlen)
{
    static const struct redis_tls_conf tls_defaults;
    struct rstore *s;
    const char *why;

    if ((s = calloc(1, sizeof(*s))) == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    s->base.ops = &redis_ops;
    s->magic = STORE_MAGIC;
    s->evb = base;
    s->timeout_ms = timeout_ms;
    if (url == NULL || redis_url_parse(url, &s->url, &why) != 0) {
        snprintf(err, errlen, "redis_url: %s", url == NULL ? "missing" : why);
        rstore_release(s);
        return NULL;
    }
    if (s->url.tls &&
        (s->tls = redis_tls_new(tls != NULL ? tls : &tls_defaults, err, errlen)) == NULL) {
        rstore_release(s);
        return NULL;
    }
    if (timeout_ms == 0) {
        snprintf(err, errlen, "redis timeout: must be more than 0 ms");
        rstore_release(s);
        return NULL;
    }
    if (make_token(s->token, sizeof(s->token)) != 0) {
        snprintf(err, errlen, "redis: cannot draw random bytes (getrandom): %s",
                 strerror(errno));
        rstore_release(s);
        return NULL;
    }
    store_primary_init(&s->pr, &s->url, &s->conn, &s->sub);
    redis_gcra_init(&s->gcra, &s->url);
    s->purges.url = &s->url;
    s->note_ev = event_new(base, -1, 0, on_note, s);
    if (s->note_ev == NULL ||
        (s->conn = redis_conn_new(base, &s->url, s->tls, timeout_ms, NULL, &conn_cbs, s)) ==
            NULL) {
        snprintf(err, errlen, "redis: out of memory");
        rstore_release(s);
        return NULL;
    }
    if (sc != NULL &&
        store_primary_follow(&s->pr, base, &s->url, sc, timeout_ms, err, errlen) != 0) {
        redis_conn_free(s->conn);
        rstore_release(s);
        return NULL;
    }
    return &s->base;
}

struct store *store_redis_new(struct event_base *base, const char *url,
                              const struct redis_tls_conf *tls, unsigned timeout_ms, char *err,
                              size_t errlen)
{
    return store_redis_sentinel_new(base, url, tls, timeout_ms, NULL, err, errlen);
}
