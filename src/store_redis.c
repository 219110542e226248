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
 * Ownership of a command (struct cmd): hiredis owns it from the moment
 * redisAsyncCommandArgv accepts it until it calls on_reply, exactly once,
 * with the reply or with NULL when the context is freed; on_reply frees it.
 * Dropping a connection is therefore always redisAsyncFree: hiredis calls
 * every pending callback at once with NULL, and a late reply has nowhere to
 * arrive. The store keeps its pending commands on a list only to cancel
 * their timers and, on store free, to answer them and clear their back
 * pointer so that the later on_reply only frees.
 *
 * redisAsyncFree must not run inside one of the context's own callbacks
 * (hiredis then still uses the context when the callback returns), so a
 * connection that fails its handshake is parked in s->doomed and freed from
 * a zero-delay event. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "cache_store.h"
#include "clock.h"
#include "log.h"

#define MAX_PENDING 10000        /* commands in flight before shedding */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LOG_EVERY_MS 10000       /* rate limit of repeated warnings */
#define MAX_KEEP_MS (UINT64_C(100) * 365 * 24 * 3600 * 1000)
#define SCAN_COUNT "1000"

enum rstate { RS_CONNECTING, RS_OK, RS_DOWN };

enum cmd_kind { K_AUTH, K_SELECT, K_PING, K_GET, K_SET, K_SCAN, K_UNLINK };

static const char *const kind_name[] = {
    [K_AUTH] = "AUTH",  [K_SELECT] = "SELECT", [K_PING] = "PING",
    [K_GET] = "GET",    [K_SET] = "SET",       [K_SCAN] = "SCAN",
    [K_UNLINK] = "UNLINK",
};

/* Counters for a later /metrics (read on the loop thread). */
struct redis_counters {
    uint64_t gets, hits, misses, get_errors;
    uint64_t sets, set_errors, sets_dropped;
    uint64_t timeouts, bad_values, connects, disconnects;
    uint64_t purges, purge_errors, purged_keys;
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
    int timed;                   /* timer armed */
    struct event timer;
    store_get_cb cb;             /* K_GET */
    void *arg;
    struct purge *job;           /* K_SCAN: owned by the step in flight */
};

struct rstore {
    struct store base;           /* first: callers hold a struct store * */
    struct event_base *evb;

    char *host;                  /* TCP, or ... */
    int port;
    char *path;                  /* ... unix socket */
    char *user;                  /* NULL: AUTH <pass> */
    char *pass;                  /* a secret: never logged */
    long db;
    char *where;                 /* the URL without credentials, for logs */

    unsigned timeout_ms;
    struct timeval timeout_tv;
    const struct timeval *cmd_tv; /* common timeout of timeout_ms */

    redisAsyncContext *ac;       /* current connection, NULL while down */
    redisAsyncContext *doomed;   /* dropped in a callback, freed by reap_ev */
    enum rstate state;           /* RS_OK iff ac answered the handshake */
    int closing;
    unsigned backoff_ms;
    struct event *conn_ev;       /* connect deadline, or next reconnect */
    struct event *reap_ev;

    struct cmd *pending;
    size_t npending;

    struct ratelog rl_value, rl_get, rl_set, rl_shed;
    struct redis_counters n;
};

static void connect_start(struct rstore *s);

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

/* A server error message, unless it happens to quote the password. */
static const char *safe_msg(const struct rstore *s, const char *msg)
{
    if (msg == NULL || *msg == '\0')
        return "no detail";
    if (s->pass != NULL && strstr(msg, s->pass) != NULL)
        return "(message withheld: it quotes the password)";
    return msg;
}

static void set_down(struct rstore *s, const char *why)
{
    struct timeval tv;

    if (s->state != RS_DOWN) {
        s->n.disconnects++;
        log_warn("redis: down (%s: %s), retrying in the background; "
                 "requests are served from upstream", s->where, why);
    } else {
        log_debug("redis: reconnect to %s failed (%s), next try in %u ms",
                  s->where, why, s->backoff_ms);
    }
    s->state = RS_DOWN;
    tv.tv_sec = s->backoff_ms / 1000;
    tv.tv_usec = (s->backoff_ms % 1000) * 1000;
    evtimer_add(s->conn_ev, &tv);
    s->backoff_ms *= 2;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
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

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;

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

static struct cmd *cmd_new(enum cmd_kind kind)
{
    struct cmd *c = calloc(1, sizeof(*c));

    if (c != NULL)
        c->kind = kind;
    return c;
}

/* Hand c to hiredis on the current connection; 0, or -1 (c is still the
 * caller's). */
static int cmd_send(struct rstore *s, struct cmd *c, int argc,
                    const char **argv, const size_t *lens, int timed)
{
    if (redisAsyncCommandArgv(s->ac, on_reply, c, argc, argv, lens) !=
        REDIS_OK)
        return -1;
    c->s = s;
    c->ac = s->ac;
    c->next = s->pending;
    if (s->pending != NULL)
        s->pending->prev = c;
    s->pending = c;
    s->npending++;
    if (timed) {
        evtimer_assign(&c->timer, s->evb, on_cmd_timeout, c);
        evtimer_add(&c->timer, s->cmd_tv);
        c->timed = 1;
    }
    return 0;
}

static void connect_start(struct rstore *s)
{
    redisAsyncContext *ac;
    char why[160];

    /* a doomed connection never carries a get, so no callback of the
     * caller runs here and s stays valid */
    if (s->doomed != NULL)
        drop_now(s, s->doomed, "");
    if (s->path != NULL)
        ac = redisAsyncConnectUnix(s->path);
    else
        ac = redisAsyncConnect(s->host, s->port);
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
    redisLibeventAttach(ac, s->evb);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    evtimer_add(s->conn_ev, &s->timeout_tv);
}

/* Connected: AUTH, SELECT and PING, pipelined; on_reply marks the
 * connection ok on the PONG. The connect deadline still runs. */
static void handshake(struct rstore *s)
{
    struct cmd *c[3];
    const char *argv[3];
    size_t lens[3];
    char db[24];
    int n = 0, argc, i;

    if (s->path == NULL)
        redisEnableKeepAlive(&s->ac->c);
    if (s->pass != NULL) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (s->user != NULL)
            argv[argc++] = s->user;
        argv[argc++] = s->pass;
        for (i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        if ((c[n] = cmd_new(K_AUTH)) == NULL ||
            cmd_send(s, c[n], argc, argv, lens, 0) != 0)
            goto fail;
        n++;
    }
    if (s->db != 0) {
        snprintf(db, sizeof(db), "%ld", s->db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        if ((c[n] = cmd_new(K_SELECT)) == NULL ||
            cmd_send(s, c[n], 2, argv, lens, 0) != 0)
            goto fail;
        n++;
    }
    argv[0] = "PING";
    lens[0] = 4;
    if ((c[n] = cmd_new(K_PING)) == NULL ||
        cmd_send(s, c[n], 1, argv, lens, 0) != 0)
        goto fail;
    return;

fail:
    free(c[n]);
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
                 s->where);
    else
        log_info("redis: connected to %s", s->where);
    s->state = RS_OK;
}

static void get_done(struct rstore *s, struct cmd *c, const redisReply *reply)
{
    struct centry *e = NULL;
    enum store_res res = STORE_ERROR;

    if (s == NULL)
        return;                  /* answered by store free */
    if (reply == NULL) {
        /* the connection went away; set_down logged why */
    } else if (reply->type == REDIS_REPLY_NIL) {
        res = STORE_MISS;
    } else if (reply->type == REDIS_REPLY_STRING) {
        e = centry_decode(reply->str, reply->len);
        if (e != NULL) {
            res = STORE_HIT;
        } else {
            s->n.bad_values++;
            if (ratelog_take(&s->rl_value))
                log_warn("redis: a stored value (%zu bytes) is not a cache "
                         "entry; answered as an error%s",
                         reply->len, s->rl_value.more);
        }
    } else if (ratelog_take(&s->rl_get)) {
        log_warn("redis: GET failed: %s%s",
                 safe_msg(s, reply->type == REDIS_REPLY_ERROR
                                 ? reply->str
                                 : "unexpected reply type"),
                 s->rl_get.more);
    }
    if (res == STORE_HIT)
        s->n.hits++;
    else if (res == STORE_MISS)
        s->n.misses++;
    else
        s->n.get_errors++;
    /* last use of s: the callback may free the store */
    c->cb(c->arg, res, e);
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
        log_warn("redis: SET failed: %s%s",
                 safe_msg(s, reply->type == REDIS_REPLY_ERROR
                                 ? reply->str
                                 : "unexpected reply type"),
                 s->rl_set.more);
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
        log_warn("redis: UNLINK failed: %s%s",
                 safe_msg(s, reply->type == REDIS_REPLY_ERROR
                                 ? reply->str
                                 : "unexpected reply type"),
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
    }
    free(c);
}

static void rs_get(struct store *st, const char *key, size_t klen,
                   store_get_cb cb, void *arg)
{
    struct rstore *s = (struct rstore *)st;
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, klen};
    struct cmd *c;

    s->n.gets++;
    if (s->state != RS_OK || s->closing)
        goto error;
    if (s->npending >= MAX_PENDING) {
        if (ratelog_take(&s->rl_shed))
            log_warn("redis: %d commands in flight; answering more reads "
                     "as errors%s", MAX_PENDING, s->rl_shed.more);
        goto error;
    }
    if ((c = cmd_new(K_GET)) == NULL)
        goto error;
    c->cb = cb;
    c->arg = arg;
    if (cmd_send(s, c, 2, argv, lens, 1) != 0) {
        free(c);
        goto error;
    }
    return;

error:
    s->n.get_errors++;
    cb(arg, STORE_ERROR, NULL);
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
    if (s->npending >= MAX_PENDING) {
        s->n.sets_dropped++;
        if (ratelog_take(&s->rl_shed))
            log_warn("redis: %d commands in flight; dropping cache "
                     "writes%s", MAX_PENDING, s->rl_shed.more);
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
    free(s->host);
    free(s->path);
    free(s->user);
    if (s->pass != NULL) {
        memset(s->pass, 0, strlen(s->pass));
        free(s->pass);
    }
    free(s->where);
    free(s);
}

/* Every pending get is answered STORE_ERROR before this returns (so free
 * the store before what the callbacks' args point to); sets and purges in
 * flight are abandoned. It may be called from a get callback. */
static void rs_free(struct store *st)
{
    struct rstore *s = (struct rstore *)st;
    const struct redis_counters *n = &s->n;
    struct cmd *c;

    s->closing = 1;
    evtimer_del(s->conn_ev);
    event_del(s->reap_ev);
    while ((c = s->pending) != NULL) {
        cmd_unlink(s, c);
        c->s = NULL;             /* on_reply will only free it */
        if (c->kind == K_GET) {
            s->n.get_errors++;
            c->cb(c->arg, STORE_ERROR, NULL);
        }
    }
    if (s->doomed != NULL) {
        s->doomed->data = NULL;
        redisAsyncFree(s->doomed);
    }
    if (s->ac != NULL) {
        s->ac->data = NULL;
        redisAsyncFree(s->ac);
    }
    log_debug("redis: closed; gets %" PRIu64 " (hits %" PRIu64
              ", misses %" PRIu64 ", errors %" PRIu64 "), sets %" PRIu64
              " (errors %" PRIu64 ", dropped %" PRIu64 "), timeouts %" PRIu64
              ", bad values %" PRIu64 ", connects %" PRIu64
              ", disconnects %" PRIu64 ", purges %" PRIu64
              " (errors %" PRIu64 ", keys %" PRIu64 ")",
              n->gets, n->hits, n->misses, n->get_errors, n->sets,
              n->set_errors, n->sets_dropped, n->timeouts, n->bad_values,
              n->connects, n->disconnects, n->purges, n->purge_errors,
              n->purged_keys);
    rstore_release(s);
}

static const struct store_ops redis_ops = {
    .name = "redis",
    .get = rs_get,
    .set = rs_set,
    .purge = rs_purge,
    .state = rs_state,
    .free = rs_free,
};

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode p[0..n) into a new string; NULL when malformed or when it
 * would hold a NUL. */
static char *pct_decode(const char *p, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    size_t i;
    int hi, lo;

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (p[i] != '%') {
            *o++ = p[i];
            continue;
        }
        if (i + 2 >= n)
            goto bad;
        hi = hexval((unsigned char)p[i + 1]);
        lo = hexval((unsigned char)p[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* A decimal number in [min, max] spanning exactly p[0..n). */
static int parse_num(const char *p, size_t n, long min, long max, long *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return -1;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "[user:]password" in p[0..n): without a ':', all of it is the password,
 * as redis-cli reads it. An empty password sends no AUTH. */
static const char *parse_userinfo(struct rstore *s, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    size_t ulen = colon != NULL ? (size_t)(colon - p) : 0;
    const char *pw = colon != NULL ? colon + 1 : p;
    size_t pwlen = n - (size_t)(pw - p);

    if (pwlen == 0)
        return ulen ? "a user without a password" : NULL;
    if (ulen > 0 && (s->user = pct_decode(p, ulen)) == NULL)
        return "bad percent-encoding in the user name";
    if ((s->pass = pct_decode(pw, pwlen)) == NULL)
        return "bad percent-encoding in the password";
    return NULL;
}

static int host_char(int ch, int bracketed)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')
        return 1;
    return bracketed ? ch == ':' || ch == '%' : ch == '_';
}

/* redis://[[user]:password@]host[:port][/db] */
static const char *parse_tcp(struct rstore *s, const char *p)
{
    const char *at = strrchr(p, '@'), *h, *e, *err;
    long v;
    size_t n;
    int br;

    if (at != NULL) {
        if ((err = parse_userinfo(s, p, (size_t)(at - p))) != NULL)
            return err;
        p = at + 1;
    }
    br = *p == '[';
    h = p + br;
    for (e = h; *e != '\0' && host_char((unsigned char)*e, br); e++)
        ;
    if (e == h)
        return "missing host";
    if (br) {
        if (*e != ']')
            return "bad IPv6 address (expected [addr])";
        p = e + 1;
    } else {
        p = e;
    }
    if ((s->host = strndup(h, (size_t)(e - h))) == NULL)
        return "out of memory";
    s->port = 6379;
    if (*p == ':') {
        n = strcspn(++p, "/");
        if (parse_num(p, n, 1, 65535, &v) != 0)
            return "the port must be a number from 1 to 65535";
        s->port = (int)v;
        p += n;
    }
    if (*p == '/') {
        p++;
        if (*p != '\0' && parse_num(p, strlen(p), 0, 1000000, &s->db) != 0)
            return "the database (after '/') must be a number";
        p += strlen(p);
    }
    if (*p != '\0')
        return "unexpected characters after the host";
    return NULL;
}

/* unix://[[user]:password@]/path[?db=N] */
static const char *parse_unix(struct rstore *s, const char *p)
{
    const char *at, *q, *err;
    size_t n;

    if (*p != '/') {
        if ((at = strstr(p, "@/")) == NULL)
            return "the socket path must be absolute (unix:///path)";
        if ((err = parse_userinfo(s, p, (size_t)(at - p))) != NULL)
            return err;
        p = at + 1;
    }
    n = strcspn(p, "?");
    if (n >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return "the socket path is too long";
    if (n < 2)
        return "missing socket path";
    if ((s->path = strndup(p, n)) == NULL)
        return "out of memory";
    q = p + n;
    if (*q == '?') {
        q++;
        if (strncmp(q, "db=", 3) != 0)
            return "the only parameter is db=N";
        q += 3;
        if (parse_num(q, strlen(q), 0, 1000000, &s->db) != 0)
            return "db must be a number";
    }
    return NULL;
}

static const char *parse_url(struct rstore *s, const char *url)
{
    const char *err;
    size_t n;

    if (strncmp(url, "redis://", 8) == 0)
        err = parse_tcp(s, url + 8);
    else if (strncmp(url, "unix://", 7) == 0)
        err = parse_unix(s, url + 7);
    else if (strncmp(url, "rediss://", 9) == 0)
        return "rediss:// (TLS) is not supported";
    else
        return "expected redis://[[user]:password@]host[:port][/db] or "
               "unix:///path[?db=N]";
    if (err != NULL)
        return err;
    n = (s->host ? strlen(s->host) : strlen(s->path)) + 64;
    if ((s->where = malloc(n)) == NULL)
        return "out of memory";
    if (s->host != NULL)
        snprintf(s->where, n, strchr(s->host, ':') ? "redis://[%s]:%d/%ld"
                                                    : "redis://%s:%d/%ld",
                 s->host, s->port, s->db);
    else if (s->db != 0)
        snprintf(s->where, n, "unix://%s?db=%ld", s->path, s->db);
    else
        snprintf(s->where, n, "unix://%s", s->path);
    return NULL;
}

struct store *store_redis_new(struct event_base *base, const char *url,
                              unsigned timeout_ms, char *err, size_t errlen)
{
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
    if (url == NULL || (why = parse_url(s, url)) != NULL) {
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
    s->conn_ev = evtimer_new(base, on_conn_timer, s);
    s->reap_ev = event_new(base, -1, 0, on_reap, s);
    if (s->cmd_tv == NULL || s->conn_ev == NULL || s->reap_ev == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        rstore_release(s);
        return NULL;
    }
    connect_start(s);
    return &s->base;
}
