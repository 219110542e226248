/* Ownership. The connection owns its commands (struct rc_cmd) from the
 * moment they are queued until they are answered: a reply answers the
 * oldest one (Redis answers in order), a drop answers every one NULL. A
 * drop closes the transport at once, so no late reply can arrive: there
 * is one transport at a time, and c->gen counts them.
 *
 * Callbacks may free the connection (a reply, a message) but run while
 * this module is in the middle of its work, so every entry point from the
 * loop (enter/leave) counts itself in c->depth, and redis_conn_free inside
 * one only answers, closes and marks c closing: the outermost leave frees
 * the memory. After anything that may call the owner, the code checks
 * alive() before it goes on. */
#include "redis_conn.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/read.h>

#include "list.h"
#include "log.h"
#include "ratelog.h"
#include "redis_io.h"
#include "redis_url.h"

#define CONN_MAGIC 0x52434f4eu   /* "RCON" */
#define CMD_MAGIC 0x52434d44u    /* "RCMD" */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define READ_CHUNK 16384
#define WRITE_CHUNK 16384

/* The handshake's steps; STEP_NONE is the owner's command. */
enum step { STEP_NONE, STEP_AUTH, STEP_SELECT, STEP_ROLE, STEP_PING };

static const char *const step_name[] = {
    [STEP_NONE] = "", [STEP_AUTH] = "AUTH", [STEP_SELECT] = "SELECT", [STEP_ROLE] = "ROLE",
    [STEP_PING] = "PING",
};

struct rc_cmd {
    uint32_t magic;
    struct redis_conn *conn;
    struct list link;            /* in conn->pending, oldest first */
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
    const struct redis_tls *tls; /* rediss:// */
    char *channel;               /* NULL: commands */
    const struct redis_conn_cbs *cbs;
    void *arg;

    unsigned timeout_ms;
    struct timeval timeout_tv;
    const struct timeval *cmd_tv; /* common timeout of timeout_ms */
    struct timeval hb_tv;

    struct redis_io io;          /* io.fd < 0: no transport */
    int ready;                   /* io's handshake is done: bytes flow */
    int read_wants_write;        /* TLS: a read waits for writability */
    unsigned gen;                /* transports so far */
    redisReader *reader;         /* replies, as they arrive */
    struct evbuffer *out;        /* commands not yet written */
    struct event *rev, *wev;     /* on io.fd */

    enum redis_conn_state state;
    int outage;                  /* down was reported since start or up */
    int hb_out;                  /* a heartbeat awaits its confirmation */
    int reporting;               /* in up or down: must not be freed */
    int closing;                 /* redis_conn_free ran */
    int depth;                   /* entry points running: free is deferred */
    unsigned backoff_ms;
    struct event *ev;            /* connect, handshake deadline, heartbeat */

    struct list pending;         /* commands in flight */
    size_t npending;
    struct ratelog rl_sub;
    struct redis_conn_stats n;
};

static void on_io(evutil_socket_t fd, short what, void *arg);
static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg);

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

static void conn_release(struct redis_conn *c)
{
    free(c->channel);
    free(c->moved.host);
    c->magic = 0;
    free(c);
}

static void enter(struct redis_conn *c)
{
    c->depth++;
}

/* The end of an entry point; c may be gone after it. */
static void leave(struct redis_conn *c)
{
    assert(c->depth > 0);
    if (--c->depth == 0 && c->closing)
        conn_release(c);
}

/* Still the same transport, and not freed by a callback. */
static int alive(const struct redis_conn *c, unsigned gen)
{
    return !c->closing && c->gen == gen;
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

/* Unlink cmd, run the owner's callback with reply (exactly once; none for a
 * handshake step), free cmd. The callback may free c. */
static void cmd_finish(struct redis_conn *c, struct rc_cmd *cmd, const redisReply *reply)
{
    redis_conn_reply_cb cb = cmd->cb;

    cmd_unlink(c, cmd);
    cmd->cb = NULL;
    cmd->magic = 0;
    if (cb != NULL)
        cb(cmd->arg, reply);
    free(cmd);
}

/* Every command in flight answers NULL, the oldest first. An answer may
 * free c, whose free answers the rest. */
static void answer_all(struct redis_conn *c)
{
    struct list *l;

    while ((l = list_first(&c->pending)) != NULL)
        cmd_finish(c, list_entry(l, struct rc_cmd, link), NULL);
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

static void transport_close(struct redis_conn *c)
{
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    if (c->reader != NULL)
        redisReaderFree(c->reader);
    c->reader = NULL;
    if (c->out != NULL)
        evbuffer_free(c->out);
    c->out = NULL;
    redis_io_close(&c->io);
    c->ready = 0;
    c->read_wants_write = 0;
    c->gen++;
}

/* Give the transport up: down is reported, then every command in flight
 * answers NULL. Only from inside an entry point (an answer may free c). */
static void drop(struct redis_conn *c, const char *why)
{
    assert(c->depth > 0);
    transport_close(c);
    report_down(c, why);
    answer_all(c);
}

/* Queue a command (its bytes in c->out, written when the transport is
 * ready): the owner's (cb, with the deadline tv, NULL: none) or a
 * handshake step (cb NULL). The command, or NULL (not queued). */
static struct rc_cmd *cmd_queue(struct redis_conn *c, enum step step, int argc,
                                const char **argv, const size_t *lens,
                                const struct timeval *tv)
{
    struct rc_cmd *cmd;
    char *bytes;
    long long len;

    if ((len = redisFormatCommandArgv(&bytes, argc, argv, lens)) < 0)
        return NULL;
    if ((cmd = calloc(1, sizeof(*cmd))) == NULL || evbuffer_add(c->out, bytes, (size_t)len) != 0) {
        free(cmd);
        redisFreeCommand(bytes);
        return NULL;
    }
    redisFreeCommand(bytes);
    cmd->magic = CMD_MAGIC;
    cmd->conn = c;
    cmd->step = step;
    list_push_back(&c->pending, &cmd->link);
    c->npending++;
    if (tv != NULL) {
        evtimer_assign(&cmd->timer, c->evb, on_cmd_timeout, cmd);
        evtimer_add(&cmd->timer, tv);
        cmd->timed = 1;
    }
    if (c->ready)
        event_add(c->wev, NULL);
    return cmd;
}

/* SUBSCRIBE <channel>: the first, and each heartbeat. Not a command in
 * flight: its confirmation arrives like a message (sub_event). */
static int send_subscribe(struct redis_conn *c)
{
    const char *argv[2] = {"SUBSCRIBE", c->channel};
    size_t lens[2] = {9, strlen(c->channel)};
    char *bytes;
    long long len;
    int rc;

    if ((len = redisFormatCommandArgv(&bytes, 2, argv, lens)) < 0)
        return -1;
    rc = evbuffer_add(c->out, bytes, (size_t)len);
    redisFreeCommand(bytes);
    if (rc == 0 && c->ready)
        event_add(c->wev, NULL);
    return rc;
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
        if (cmd_queue(c, STEP_AUTH, argc, argv, lens, NULL) == NULL)
            return -1;
    }
    if (c->require_master) {
        argv[0] = "ROLE", lens[0] = 4;
        if (cmd_queue(c, STEP_ROLE, 1, argv, lens, NULL) == NULL)
            return -1;
    }
    if (c->channel != NULL)
        return send_subscribe(c);
    if (u->db != 0) {
        snprintf(db, sizeof(db), "%ld", u->db);
        argv[0] = "SELECT", lens[0] = 6;
        argv[1] = db, lens[1] = strlen(db);
        if (cmd_queue(c, STEP_SELECT, 2, argv, lens, NULL) == NULL)
            return -1;
    }
    argv[0] = "PING", lens[0] = 4;
    return cmd_queue(c, STEP_PING, 1, argv, lens, NULL) ? 0 : -1;
}

/* A new transport to the URL's server (or the last retarget's: the one
 * place the address is chosen), the handshake queued on it, within the
 * connect deadline. With TLS the certificate is checked against that host
 * unless redis_tls_server_name names another. */
static void connect_start(struct redis_conn *c)
{
    const struct redis_url *u = c->url;
    char why[200];

    if (redis_io_open(&c->io, u->host, u->port, u->path, u->tls ? c->tls : NULL, why,
                      sizeof(why)) != 0) {
        report_down(c, why);
        return;
    }
    c->reader = redisReaderCreate();
    c->out = evbuffer_new();
    c->rev = event_new(c->evb, c->io.fd, EV_READ | EV_PERSIST, on_io, c);
    c->wev = event_new(c->evb, c->io.fd, EV_WRITE, on_io, c);
    if (c->reader == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL ||
        send_handshake(c) != 0) {
        drop(c, "out of memory");
        return;
    }
    event_add(c->wev, NULL);     /* the connect ends */
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

/* A handshake step's answer: +OK, +PONG for the PING, an array starting
 * with "master" for the ROLE. */
static void step_done(struct redis_conn *c, enum step step, const redisReply *reply)
{
    const char *role;
    char why[200];

    if (step == STEP_ROLE) {
        if ((role = role_wrong(reply)) == NULL)
            return;
        snprintf(why, sizeof(why), "ROLE says %s, not master",
                 redis_url_safe_msg(c->url, role));
        drop(c, why);
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
    drop(c, why);
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

/* One reply: it answers the oldest command in flight; subscribed, with none
 * in flight (the AUTH is the only one), it is an event on the channel. */
static void dispatch(struct redis_conn *c, const redisReply *reply)
{
    struct list *l = list_first(&c->pending);
    struct rc_cmd *cmd;

    if (l == NULL) {
        if (c->channel != NULL)
            sub_event(c, reply);
        else
            drop(c, "a reply to no command");
        return;
    }
    cmd = list_entry(l, struct rc_cmd, link);
    if (cmd->step != STEP_NONE) {
        enum step step = cmd->step;

        cmd_finish(c, cmd, reply);
        step_done(c, step, reply);
    } else {
        cmd_finish(c, cmd, reply); /* may free c */
    }
}

/* Every complete reply read so far, while the transport lasts. */
static void dispatch_all(struct redis_conn *c, unsigned gen)
{
    void *reply;
    char why[160];

    while (alive(c, gen)) {
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            snprintf(why, sizeof(why), "protocol error: %s", c->reader->errstr);
            drop(c, why);
            return;
        }
        if (reply == NULL)
            return;
        dispatch(c, reply);
        freeReplyObject(reply);
    }
}

/* Write what c->out holds until it is empty (0), the transport must wait
 * (1, with *want), or fails (-1, with why). Drops nothing itself. */
static int write_queued(struct redis_conn *c, enum redis_io_want *want, char *why, size_t n)
{
    unsigned char *p;
    size_t len;
    ssize_t w;

    while ((len = evbuffer_get_length(c->out)) > 0) {
        len = len > WRITE_CHUNK ? WRITE_CHUNK : len;
        if ((p = evbuffer_pullup(c->out, (ev_ssize_t)len)) == NULL) {
            snprintf(why, n, "out of memory");
            return -1;
        }
        *want = RIO_ERR;
        if ((w = redis_io_write(&c->io, p, len, want, why, n)) <= 0)
            return *want == RIO_ERR ? -1 : 1;
        evbuffer_drain(c->out, (size_t)w);
    }
    return 0;
}

/* Write what c->out holds until the socket is full: 0, or -1 when that
 * dropped the transport. */
static int flush(struct redis_conn *c)
{
    enum redis_io_want want;
    char why[200];

    switch (write_queued(c, &want, why, sizeof(why))) {
    case -1:
        drop(c, why);
        return -1;
    case 1:
        /* RIO_READ (TLS): the read event, always on, calls flush again */
        if (want == RIO_WRITE)
            event_add(c->wev, NULL);
        return 0;
    default:
        return 0;
    }
}

void redis_conn_flush_now(struct redis_conn *c)
{
    enum redis_io_want want;
    char why[200];

    /* An error is left to the loop: its write event (armed by the send)
     * drops the connection outside the caller's stack. */
    if (c->ready && !c->closing)
        write_queued(c, &want, why, sizeof(why));
}

/* Read what waits on the transport, and answer each complete reply as it
 * comes, until a read would block or the transport is gone. */
static void fill(struct redis_conn *c)
{
    enum redis_io_want want = RIO_ERR;
    unsigned gen = c->gen;
    char buf[READ_CHUNK], why[200];
    ssize_t n;

    c->read_wants_write = 0;
    while (alive(c, gen)) {
        n = redis_io_read(&c->io, buf, sizeof(buf), &want, why, sizeof(why));
        if (n == 0) {
            drop(c, "connection closed");
        } else if (n < 0 && want == RIO_ERR) {
            drop(c, why);
        } else if (n < 0) {
            if (want == RIO_WRITE) {
                c->read_wants_write = 1;
                event_add(c->wev, NULL);
            }
            return;
        } else if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            drop(c, "out of memory");
        } else {
            dispatch_all(c, gen);
        }
    }
}

/* The transport is ready: from now on the read event is on. */
static void handshake(struct redis_conn *c)
{
    char why[200];

    switch (redis_io_handshake(&c->io, why, sizeof(why))) {
    case RIO_DONE:
        c->ready = 1;
        event_add(c->rev, NULL);
        break;
    case RIO_READ:
        event_add(c->rev, NULL);
        break;
    case RIO_WRITE:
        event_add(c->wev, NULL);
        break;
    case RIO_ERR:
        drop(c, why);
        break;
    }
}

/* The socket is readable or writable: carry the handshake on, then write
 * what is queued and read what arrived. */
static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *c = conn_of(arg);
    unsigned gen = c->gen;

    enter(c);
    if (!c->ready) {
        /* read events are on during the TLS handshake only when it asked */
        if (c->rev != NULL)
            event_del(c->rev);
        handshake(c);
    }
    if (alive(c, gen) && c->ready && flush(c) == 0 && ((what & EV_READ) || c->read_wants_write))
        fill(c);
    leave(c);
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct rc_cmd *cmd = cmd_of(arg);
    struct redis_conn *c = conn_of(cmd->conn);
    char why[96];

    cmd->timed = 0;
    c->n.timeouts++;
    snprintf(why, sizeof(why), "%s got no answer within %u ms", cmd->what, c->timeout_ms);
    enter(c);
    drop(c, why);                /* answers cmd */
    leave(c);
}

/* ev: the next connect (no transport), the handshake deadline (a
 * transport, not up), or the heartbeat and its deadline (up, subscribed). */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct redis_conn *c = conn_of(arg);
    char why[96];

    enter(c);
    if (c->io.fd < 0) {
        if (!c->parked)
            connect_start(c);
    } else if (c->state != RC_UP) {
        snprintf(why, sizeof(why),
                 c->channel ? "no subscription within %u ms of connecting"
                            : "connect timed out after %u ms",
                 c->timeout_ms);
        drop(c, why);
    } else if (c->hb_out) {
        snprintf(why, sizeof(why), "heartbeat got no answer within %u ms", c->timeout_ms);
        drop(c, why);
    } else if (send_subscribe(c) != 0) {
        drop(c, "cannot send the heartbeat");
    } else {
        c->n.heartbeats++;
        c->hb_out = 1;
        evtimer_add(c->ev, &c->timeout_tv);
    }
    leave(c);
}

static void ms_tv(unsigned ms, struct timeval *tv)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const struct redis_tls *tls, unsigned timeout_ms,
                                  const char *channel, const struct redis_conn_cbs *cbs,
                                  void *arg)
{
    struct redis_conn *c = malloc(sizeof(*c));
    struct timeval now = {0, 0};

    assert(!url->tls || tls != NULL);
    if (c == NULL)
        return NULL;
    *c = (struct redis_conn){.magic = CONN_MAGIC, .evb = base, .url = url, .tls = tls,
                             .cbs = cbs, .arg = arg, .timeout_ms = timeout_ms,
                             .state = RC_CONNECTING, .backoff_ms = BACKOFF_MIN_MS};
    c->io.fd = -1;
    list_init(&c->pending);
    ms_tv(timeout_ms, &c->timeout_tv);
    ms_tv(REDIS_CONN_HEARTBEAT_MS, &c->hb_tv);
    c->cmd_tv = event_base_init_common_timeout(base, &c->timeout_tv);
    c->ev = evtimer_new(base, on_timer, c);
    if ((channel != NULL && (c->channel = strdup(channel)) == NULL) || c->cmd_tv == NULL ||
        c->ev == NULL) {
        redis_conn_free(c);
        return NULL;
    }
    evtimer_add(c->ev, &now);
    return c;
}

void redis_conn_free(struct redis_conn *c)
{
    conn_of(c);
    assert(!c->reporting && !c->closing);
    c->closing = 1;
    if (c->ev != NULL)
        event_free(c->ev);
    c->ev = NULL;
    enter(c);                    /* an answer must not release c under us */
    answer_all(c);
    transport_close(c);
    leave(c);                    /* releases c, unless inside an entry point */
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
        c->moved = *c->url;      /* borrows all but the host: tls, password, db */
        c->moved.host = NULL;
        c->url = &c->moved;
    }
    free(c->moved.host);
    c->moved.host = h;
    c->moved.port = port;
    c->moved.path = NULL;
    c->parked = h == NULL;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->io.fd >= 0) {
        c->retargeting = 1;
        enter(c);
        drop(c, "moving to another server"); /* an answer may free c */
        leave(c);
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
    if ((cmd = cmd_queue(c, STEP_NONE, argc, argv, lens, tv ? tv : c->cmd_tv)) == NULL)
        return -1;
    cmd->what = what;
    cmd->cb = cb;
    cmd->arg = arg;
    return 0;
}

void redis_conn_poll(struct redis_conn *c)
{
    conn_of(c);
    if (!c->ready || c->state != RC_UP)
        return;
    enter(c);
    fill(c);
    leave(c);
}

const struct redis_conn_stats *redis_conn_stats(const struct redis_conn *c)
{
    return &conn_of(c)->n;
}
