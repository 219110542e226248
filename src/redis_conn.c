/* Ownership. hiredis owns a command (struct rc_cmd, its privdata) from the
 * moment redisAsyncCommandArgv accepts it until it calls on_reply, once,
 * with the reply or with NULL when it frees the context; on_reply frees it.
 * Dropping a connection is therefore always redisAsyncFree: every pending
 * callback runs at once with NULL, and a late reply has nowhere to arrive.
 * The connection keeps its commands on a list only to cancel their timers
 * and, when it is freed, to answer them and clear their back pointer, so
 * that the later on_reply only frees. The subscription's SUBSCRIBE is the
 * exception: hiredis calls on_sub_reply with every message and confirmation
 * on its channel and keeps the command until it frees the context, when it
 * calls it once with NULL; only that call frees it. Heartbeats re-send
 * SUBSCRIBE with the same command as privdata.
 *
 * redisAsyncFree must not run inside a context's connect or disconnect
 * callback (hiredis still uses the context when it returns), so a
 * connection that fails its handshake there is parked in c->doomed and
 * freed from a zero-delay event (reap_ev). Inside a reply callback hiredis
 * defers the free until the callback returns, which is what lets an owner
 * free the connection from a reply or a message. */
#include "redis_conn.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>

#include "list.h"
#include "log.h"
#include "ratelog.h"
#include "redis_ev.h"
#include "redis_url.h"

#define CONN_MAGIC 0x52434f4eu   /* "RCON" */
#define CMD_MAGIC 0x52434d44u    /* "RCMD" */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* The handshake's steps; STEP_NONE is the owner's command. */
enum step { STEP_NONE, STEP_AUTH, STEP_SELECT, STEP_ROLE, STEP_PING, STEP_SUBSCRIBE };

static const char *const step_name[] = {
    [STEP_NONE] = "", [STEP_AUTH] = "AUTH", [STEP_SELECT] = "SELECT",
    [STEP_ROLE] = "ROLE", [STEP_PING] = "PING", [STEP_SUBSCRIBE] = "SUBSCRIBE",
};

struct rc_cmd {
    uint32_t magic;
    struct redis_conn *conn;     /* NULL once answered by redis_conn_free */
    redisAsyncContext *ac;       /* the connection it was sent on */
    struct list link;            /* in conn->pending */
    enum step step;
    const char *what;            /* the owner's name for it, for logs */
    int timed;                   /* timer armed */
    struct event timer;
    redis_conn_reply_cb cb;      /* the owner's; NULL once it fired */
    void *arg;
};

struct redis_conn {
    uint32_t magic;
    struct event_base *evb;
    const struct redis_url *url; /* the owner's, or &moved */
    struct redis_url moved;      /* retargeted: the owner's with host and port
                                    replaced (the rest borrowed) */
    int parked;                  /* retargeted to nowhere: no connects */
    int require_master;          /* ROLE is a handshake step */
    int retargeting;             /* the next down is redis_conn_retarget's */
    char *channel;               /* NULL: commands */
    const struct redis_conn_cbs *cbs;
    void *arg;

    unsigned timeout_ms;
    struct timeval timeout_tv;
    const struct timeval *cmd_tv; /* common timeout of timeout_ms */
    struct timeval hb_tv;

    redisAsyncContext *ac;       /* the current attempt or connection */
    redisAsyncContext *doomed;   /* dropped in a callback, freed by reap_ev */
    enum redis_conn_state state;
    int outage;                  /* down was reported since start or up */
    int hb_out;                  /* a heartbeat awaits its confirmation */
    int reporting;               /* in up or down: must not be freed */
    int closing;                 /* in redis_conn_free */
    unsigned backoff_ms;
    struct event *ev;            /* connect, handshake deadline, heartbeat */
    struct event *reap_ev;       /* frees doomed */

    struct list pending;         /* commands in flight */
    size_t npending;
    struct rc_cmd *sub;          /* the SUBSCRIBE on ac (its privdata) */
    struct ratelog rl_sub;
    struct redis_conn_stats n;
};

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);
static void on_reply(redisAsyncContext *ac, void *r, void *priv);
static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv);

static struct redis_conn *conn_of(const void *p)
{
    struct redis_conn *c = (struct redis_conn *)p;

    assert(c->magic == CONN_MAGIC);
    return c;
}

static struct rc_cmd *cmd_of(void *p)
{
    struct rc_cmd *cmd = p;

    assert(cmd->magic == CMD_MAGIC);
    return cmd;
}

static void cmd_free(struct rc_cmd *cmd)
{
    cmd->magic = 0;
    free(cmd);
}

/* The owner's callback, exactly once. */
static void answer(struct rc_cmd *cmd, const redisReply *reply)
{
    redis_conn_reply_cb cb = cmd->cb;

    assert(cb != NULL);
    cmd->cb = NULL;
    cb(cmd->arg, reply);
}

static void report_down(struct redis_conn *c, const char *why)
{
    struct redis_conn_down d = {why, c->state == RC_UP, !c->outage, c->backoff_ms,
                                c->retargeting};
    struct timeval tv;

    c->retargeting = 0;
    c->state = RC_DOWN;
    c->outage = 1;
    c->hb_out = 0;
    tv.tv_sec = c->backoff_ms / 1000;
    tv.tv_usec = (c->backoff_ms % 1000) * 1000;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    evtimer_add(c->ev, &tv);
    c->reporting = 1;
    c->cbs->down(c->arg, &d);
    c->reporting = 0;
}

static void report_up(struct redis_conn *c)
{
    int again = c->state == RC_DOWN;

    evtimer_del(c->ev);
    c->state = RC_UP;
    c->outage = 0;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->reporting = 1;
    c->cbs->up(c->arg, again);
    c->reporting = 0;
}

/* The current context is no longer ours to use. */
static redisAsyncContext *detach(struct redis_conn *c)
{
    redisAsyncContext *ac = c->ac;

    c->ac = NULL;
    c->sub = NULL;               /* hiredis frees it with ac */
    return ac;
}

/* Drop ac from outside its callbacks: every pending command answers now
 * with NULL. An answer may free c: the caller must not touch c after. */
static void drop_now(struct redis_conn *c, redisAsyncContext *ac, const char *why)
{
    if (ac == c->ac) {
        detach(c);
        report_down(c, why);
    } else if (ac == c->doomed) {
        c->doomed = NULL;
    }
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Drop the current context from inside one of its callbacks. */
static void drop_later(struct redis_conn *c, const char *why)
{
    /* At most one: connect_start reaps before it makes a new context, and
     * only the current one is ever doomed. */
    assert(c->doomed == NULL);
    c->doomed = detach(c);
    report_down(c, why);
    event_active(c->reap_ev, EV_TIMEOUT, 1);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *c = conn_of(arg);

    /* a doomed context never carries an owner's command (those are sent
     * only once up), so no owner callback runs and c stays valid */
    if (c->doomed != NULL)
        drop_now(c, c->doomed, "");
}

/* hiredis is freeing ac (an I/O error, EOF, or a failed connect). */
static void conn_lost(struct redis_conn *c, redisAsyncContext *ac)
{
    ac->data = NULL;             /* its disconnect callback must not look */
    if (ac == c->doomed) {
        c->doomed = NULL;
    } else if (ac == c->ac) {
        detach(c);
        report_down(c, ac->c.err ? ac->c.errstr : "connection closed");
    }
}

static void cmd_unlink(struct redis_conn *c, struct rc_cmd *cmd)
{
    list_unlink(&cmd->link);
    assert(c->npending > 0);
    c->npending--;
    if (cmd->timed) {
        evtimer_del(&cmd->timer);
        cmd->timed = 0;
    }
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct rc_cmd *cmd = cmd_of(arg);
    struct redis_conn *c = conn_of(cmd->conn);
    char why[96];

    cmd->timed = 0;
    c->n.timeouts++;
    snprintf(why, sizeof(why), "%s got no answer within %u ms", cmd->what, c->timeout_ms);
    drop_now(c, cmd->ac, why);   /* answers cmd through on_reply */
}

/* Hand a new command to hiredis on ac: the owner's (cb, with the deadline
 * tv, NULL: none) or a handshake step (cb NULL). The command, or NULL (not
 * sent). */
static struct rc_cmd *cmd_send(struct redis_conn *c, redisAsyncContext *ac, enum step step,
                               int argc, const char **argv, const size_t *lens,
                               const struct timeval *tv)
{
    struct rc_cmd *cmd = calloc(1, sizeof(*cmd));

    if (cmd == NULL)
        return NULL;
    cmd->magic = CMD_MAGIC;
    cmd->step = step;
    if (redisAsyncCommandArgv(ac, step == STEP_SUBSCRIBE ? on_sub_reply : on_reply, cmd,
                              argc, argv, lens) != REDIS_OK) {
        cmd_free(cmd);
        return NULL;
    }
    cmd->conn = c;
    cmd->ac = ac;
    list_push_back(&c->pending, &cmd->link);
    c->npending++;
    if (tv != NULL) {
        evtimer_assign(&cmd->timer, c->evb, on_cmd_timeout, cmd);
        evtimer_add(&cmd->timer, tv);
        cmd->timed = 1;
    }
    return cmd;
}

/* SUBSCRIBE <channel> with c->sub as privdata: the first, and each
 * heartbeat (hiredis keeps one callback per channel: the same command). */
static int send_subscribe(struct redis_conn *c)
{
    const char *argv[2] = {"SUBSCRIBE", c->channel};
    size_t lens[2] = {9, strlen(c->channel)};

    if (c->sub == NULL)
        return (c->sub = cmd_send(c, c->ac, STEP_SUBSCRIBE, 2, argv, lens, NULL)) ? 0 : -1;
    return redisAsyncCommandArgv(c->ac, on_sub_reply, c->sub, 2, argv, lens) == REDIS_OK ? 0
                                                                                        : -1;
}

/* AUTH [user] password when there is a password, ROLE when a master is
 * required, then SELECT and PING, or SUBSCRIBE, pipelined. No deadline per
 * step: the connect deadline covers them all. */
static int send_handshake(struct redis_conn *c)
{
    const struct redis_url *u = c->url;
    const char *argv[3];
    size_t lens[3];
    char db[24];
    int argc = 0, i;

    if (u->pass != NULL) {
        argv[argc++] = "AUTH";
        if (u->user != NULL)
            argv[argc++] = u->user;
        argv[argc++] = u->pass;
        for (i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        if (cmd_send(c, c->ac, STEP_AUTH, argc, argv, lens, NULL) == NULL)
            return -1;
    }
    if (c->require_master) {
        argv[0] = "ROLE", lens[0] = 4;
        if (cmd_send(c, c->ac, STEP_ROLE, 1, argv, lens, NULL) == NULL)
            return -1;
    }
    if (c->channel != NULL)
        return send_subscribe(c);
    if (u->db != 0) {
        snprintf(db, sizeof(db), "%ld", u->db);
        argv[0] = "SELECT", lens[0] = 6;
        argv[1] = db, lens[1] = strlen(db);
        if (cmd_send(c, c->ac, STEP_SELECT, 2, argv, lens, NULL) == NULL)
            return -1;
    }
    argv[0] = "PING", lens[0] = 4;
    return cmd_send(c, c->ac, STEP_PING, 1, argv, lens, NULL) ? 0 : -1;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct redis_conn *c = cac->data;

    if (c == NULL)
        return;
    c = conn_of(c);
    if (cac != c->ac)
        return;
    if (status != REDIS_OK) {
        conn_lost(c, c->ac);     /* hiredis frees it when this returns */
        return;
    }
    if (c->url->host != NULL)
        redisEnableKeepAlive(&c->ac->c);
    if (send_handshake(c) != 0)
        drop_later(c, "cannot send the handshake");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    if (cac->data != NULL)
        conn_lost(conn_of(cac->data), (redisAsyncContext *)cac);
}

/* The transport: a TCP or unix-socket connection, as the URL says. NULL
 * with why filled when it cannot even start. */
static redisAsyncContext *transport_open(const struct redis_url *u, char *why, size_t n)
{
    redisAsyncContext *ac;

    ac = u->path != NULL ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    if (ac == NULL) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, n, "%s", ac->c.errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

static void connect_start(struct redis_conn *c)
{
    redisAsyncContext *ac;
    char why[160];

    if (c->doomed != NULL)
        drop_now(c, c->doomed, "");
    if ((ac = transport_open(c->url, why, sizeof(why))) == NULL) {
        report_down(c, why);
        return;
    }
    if (redis_ev_attach(ac, c->evb) != 0) {
        redisAsyncFree(ac);
        report_down(c, "out of memory");
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    evtimer_add(c->ev, &c->timeout_tv);
}

/* ROLE's answer: NULL when the server is a master, else what it is. */
static const char *role_wrong(const redisReply *reply)
{
    const redisReply *role;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
        (role = reply->element[0])->type != REDIS_REPLY_STRING)
        return reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    return strcmp(role->str, "master") == 0 ? NULL : role->str;
}

/* A handshake step's answer: +OK, or +PONG for the PING. */
static void step_done(struct redis_conn *c, redisAsyncContext *ac, enum step step,
                      const redisReply *reply)
{
    const char *role;
    char why[200];

    if (ac != c->ac || reply == NULL)
        return;                  /* an old context, or already lost */
    if (step == STEP_ROLE) {
        if ((role = role_wrong(reply)) == NULL)
            return;
        snprintf(why, sizeof(why), "ROLE says %s, not master",
                 redis_url_safe_msg(c->url, role));
        drop_later(c, why);
        return;
    }
    if (reply->type == REDIS_REPLY_STATUS &&
        strcmp(reply->str, step == STEP_PING ? "PONG" : "OK") == 0) {
        if (step == STEP_PING)
            report_up(c);
        return;
    }
    snprintf(why, sizeof(why), "%s failed: %s", step_name[step],
             redis_url_safe_msg(c->url, reply->type == REDIS_REPLY_ERROR ||
                                                reply->type == REDIS_REPLY_STATUS
                                            ? reply->str
                                            : "unexpected reply"));
    drop_later(c, why);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct rc_cmd *cmd = cmd_of(priv);
    struct redis_conn *c = cmd->conn;

    if (c != NULL) {
        cmd_unlink(c, cmd);
        if (r == NULL)
            conn_lost(c, ac);
        if (cmd->step != STEP_NONE)
            step_done(c, ac, cmd->step, r);
        else
            answer(cmd, r);      /* may free c */
    }
    cmd_free(cmd);
}

/* A reply on the channel: a message, or the confirmation of the first
 * SUBSCRIBE or of a heartbeat. */
static void sub_event(struct redis_conn *c, const redisReply *reply)
{
    const redisReply *kind, *payload;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        (kind = reply->element[0])->type != REDIS_REPLY_STRING) {
        if (ratelog_take(&c->rl_sub))
            log_warn("redis: unexpected reply on the subscription to %s: %s%s", c->channel,
                     redis_url_safe_msg(c->url, reply->type == REDIS_REPLY_ERROR
                                                    ? reply->str
                                                    : "unexpected reply type"),
                     c->rl_sub.more);
        return;
    }
    if (strcasecmp(kind->str, "subscribe") == 0) {
        c->hb_out = 0;
        if (c->state != RC_UP)
            report_up(c);
        evtimer_add(c->ev, &c->hb_tv);
        return;
    }
    payload = reply->element[2];
    if (strcasecmp(kind->str, "message") == 0 && payload->type == REDIS_REPLY_STRING)
        c->cbs->message(c->arg, payload->str, payload->len); /* may free c */
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct rc_cmd *cmd = cmd_of(priv);
    struct redis_conn *c = cmd->conn;

    if (r == NULL) {
        /* hiredis is freeing ac: the last call with cmd */
        if (c != NULL) {
            cmd_unlink(c, cmd);
            if (c->sub == cmd)
                c->sub = NULL;
            conn_lost(c, ac);
        }
        cmd_free(cmd);
        return;
    }
    if (c != NULL && ac == c->ac)
        sub_event(c, r);
}

/* ev: the next connect (no context), the handshake deadline (a context,
 * not up), or the heartbeat and its deadline (up, subscribed). */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *c = conn_of(arg);
    char why[96];

    if (c->ac == NULL) {
        if (!c->parked)
            connect_start(c);
    } else if (c->state != RC_UP) {
        snprintf(why, sizeof(why),
                 c->channel ? "no subscription within %u ms of connecting"
                            : "connect timed out after %u ms",
                 c->timeout_ms);
        drop_now(c, c->ac, why);
    } else if (c->hb_out) {
        snprintf(why, sizeof(why), "heartbeat got no answer within %u ms", c->timeout_ms);
        drop_now(c, c->ac, why);
    } else if (send_subscribe(c) != 0) {
        drop_now(c, c->ac, "cannot send the heartbeat");
    } else {
        c->n.heartbeats++;
        c->hb_out = 1;
        evtimer_add(c->ev, &c->timeout_tv);
    }
}

static void ms_tv(unsigned ms, struct timeval *tv)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  unsigned timeout_ms, const char *channel,
                                  const struct redis_conn_cbs *cbs, void *arg)
{
    struct redis_conn *c = malloc(sizeof(*c));
    struct timeval now = {0, 0};

    if (c == NULL)
        return NULL;
    *c = (struct redis_conn){.magic = CONN_MAGIC, .evb = base, .url = url, .cbs = cbs,
                             .arg = arg, .timeout_ms = timeout_ms, .state = RC_CONNECTING,
                             .backoff_ms = BACKOFF_MIN_MS};
    list_init(&c->pending);
    ms_tv(timeout_ms, &c->timeout_tv);
    ms_tv(REDIS_CONN_HEARTBEAT_MS, &c->hb_tv);
    c->cmd_tv = event_base_init_common_timeout(base, &c->timeout_tv);
    c->ev = evtimer_new(base, on_timer, c);
    c->reap_ev = event_new(base, -1, 0, on_reap, c);
    if ((channel != NULL && (c->channel = strdup(channel)) == NULL) || c->cmd_tv == NULL ||
        c->ev == NULL || c->reap_ev == NULL) {
        redis_conn_free(c);
        return NULL;
    }
    evtimer_add(c->ev, &now);
    return c;
}

void redis_conn_free(struct redis_conn *c)
{
    struct rc_cmd *cmd;
    struct list *l;

    conn_of(c);
    assert(!c->reporting && !c->closing);
    c->closing = 1;
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->reap_ev != NULL)
        event_free(c->reap_ev);
    while ((l = list_first(&c->pending)) != NULL) {
        cmd = list_entry(l, struct rc_cmd, link);
        cmd_unlink(c, cmd);
        cmd->conn = NULL;        /* on_reply will only free it */
        if (cmd->cb != NULL)
            answer(cmd, NULL);
    }
    if (c->doomed != NULL) {
        c->doomed->data = NULL;
        redisAsyncFree(c->doomed);
    }
    if (c->ac != NULL) {
        c->ac->data = NULL;
        redisAsyncFree(c->ac);   /* deferred by hiredis inside its callback */
    }
    free(c->channel);
    free(c->moved.host);
    c->magic = 0;
    free(c);
}

void redis_conn_require_master(struct redis_conn *c)
{
    conn_of(c)->require_master = 1;
}

int redis_conn_retarget(struct redis_conn *c, const char *host, int port)
{
    struct timeval now = {0, 0};
    char *h = NULL;

    conn_of(c);
    assert(!c->reporting && !c->closing);
    if (host != NULL && (h = strdup(host)) == NULL)
        return -1;
    if (c->url != &c->moved) {
        c->moved = *c->url;      /* borrows all but the host */
        c->moved.host = NULL;
        c->url = &c->moved;
    }
    free(c->moved.host);
    c->moved.host = h;
    c->moved.port = port;
    c->moved.path = NULL;
    c->parked = h == NULL;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->ac != NULL) {
        c->retargeting = 1;
        drop_now(c, c->ac, "moving to another server"); /* may free c */
        return 0;
    }
    evtimer_del(c->ev);
    if (!c->parked)
        evtimer_add(c->ev, &now);
    return 0;
}

enum redis_conn_state redis_conn_state(const struct redis_conn *c)
{
    return conn_of(c)->state;
}

size_t redis_conn_pending(const struct redis_conn *c)
{
    return conn_of(c)->npending;
}

int redis_conn_send(struct redis_conn *c, const char *what, int argc, const char **argv,
                    const size_t *lens, const struct timeval *tv, redis_conn_reply_cb cb,
                    void *arg)
{
    struct rc_cmd *cmd;

    conn_of(c);
    assert(c->channel == NULL && cb != NULL);
    if (c->state != RC_UP || c->closing)
        return -1;
    if ((cmd = cmd_send(c, c->ac, STEP_NONE, argc, argv, lens, tv ? tv : c->cmd_tv)) == NULL)
        return -1;
    cmd->what = what;
    cmd->cb = cb;
    cmd->arg = arg;
    return 0;
}

void redis_conn_poll(struct redis_conn *c)
{
    char byte;
    ssize_t n;

    conn_of(c);
    if (c->ac == NULL || c->state != RC_UP)
        return;
    n = recv(c->ac->c.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        redisAsyncHandleRead(c->ac);
}

const struct redis_conn_stats *redis_conn_stats(const struct redis_conn *c)
{
    return &conn_of(c)->n;
}
