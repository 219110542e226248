/* State. The command connection (q) answers one question at a time
 * (inflight). A round (asking) tries the sentinels in turn from the current
 * one, each at most once (tried), and ends at the first address or when
 * all failed; the next poll starts another. Moving a connection to another
 * sentinel is a redis_conn_retarget, whose own down report says so
 * (retargeted) and is not a failure; q_fresh says that q has not yet had
 * its chance on the sentinel it was moved to.
 *
 * redis_conn's up and down callbacks must not retarget (they may run
 * inside hiredis's connect and disconnect callbacks), so they only set
 * flags and activate kick, a zero-delay event that does the work. */
#include "redis_sentinel.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "ratelog.h"
#include "redis_conn.h"
#include "redis_url.h"
#include "sentinel_parse.h"

#define SENTINEL_MAGIC 0x53454e54u   /* "SENT" */
#define SWITCH_CHANNEL "+switch-master"
#define ASK_WHAT "SENTINEL get-master-addr-by-name"

struct addr {
    char host[SENTINEL_HOST_MAX + 1];
    int port;
};

struct redis_sentinel {
    uint32_t magic;
    struct addr *addrs;
    size_t n;
    char *master;
    struct redis_url url;        /* the sentinels' password, the first address */
    redis_sentinel_cb cb;
    void *arg;
    int closing;

    struct redis_conn *q;        /* commands, on addrs[qi] */
    size_t qi;
    int asking;                  /* a round is under way */
    size_t tried;                /* sentinels skipped in this round */
    int inflight;                /* a question awaits its answer */
    int q_failed;                /* the current sentinel failed: skip it */
    int q_fresh;                 /* moved, and not yet up or down there */

    struct redis_conn *sub;      /* +switch-master, on addrs[si] */
    size_t si;
    int sub_failed;              /* lost: move at the next poll */

    struct event *tick;          /* every REDIS_SENTINEL_POLL_MS */
    struct event *kick;          /* zero delay: the callbacks' work */
    char primary[SENTINEL_HOST_MAX + 1];
    int primary_port;            /* 0: none named yet */
    char current[SENTINEL_HOST_MAX + 16];
    struct ratelog rl_ask, rl_msg;
};

static struct redis_sentinel *sentinel_of(void *p)
{
    struct redis_sentinel *s = p;

    assert(s->magic == SENTINEL_MAGIC);
    return s;
}

/* A primary named by a sentinel; the owner hears of a change. */
static void named(struct redis_sentinel *s, const char *host, int port)
{
    if (s->primary_port == port && strcmp(s->primary, host) == 0)
        return;
    snprintf(s->primary, sizeof(s->primary), "%s", host);
    s->primary_port = port;
    /* last use of s: the callback may free it */
    s->cb(s->arg, host, port);
}

static void set_current(struct redis_sentinel *s)
{
    const struct addr *a = &s->addrs[s->qi];

    snprintf(s->current, sizeof(s->current), strchr(a->host, ':') ? "[%s]:%d" : "%s:%d",
             a->host, a->port);
}

static void move_conn(struct redis_sentinel *s, struct redis_conn *c, size_t i)
{
    if (redis_conn_retarget(c, s->addrs[i].host, s->addrs[i].port) != 0)
        log_warn("redis: cannot move to sentinel %s:%d (out of memory)", s->addrs[i].host,
                 s->addrs[i].port);
}

/* Skip the current sentinel for the next, unless all had their turn. */
static void skip_sentinel(struct redis_sentinel *s)
{
    assert(!s->inflight);
    if (++s->tried >= s->n) {
        s->asking = 0;           /* the next poll starts again */
        return;
    }
    s->qi = (s->qi + 1) % s->n;
    set_current(s);
    s->q_fresh = 1;
    move_conn(s, s->q, s->qi);
}

static void on_answer(void *arg, const redisReply *reply);

/* The question, once q is up on a sentinel that has not failed. */
static void try_ask(struct redis_sentinel *s)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", s->master};
    size_t lens[3] = {8, 23, strlen(s->master)};

    if (!s->asking || s->inflight)
        return;
    if (s->q_failed || (redis_conn_state(s->q) == RC_DOWN && !s->q_fresh)) {
        s->q_failed = 0;
        skip_sentinel(s);
        if (!s->asking)
            return;
    }
    if (redis_conn_state(s->q) != RC_UP)
        return;                  /* its up or down kicks */
    if (redis_conn_send(s->q, ASK_WHAT, 3, argv, lens, NULL, on_answer, s) == 0)
        s->inflight = 1;
    else
        s->q_failed = 1;         /* the next kick or poll moves on */
}

/* The address in an answer: 0, or -1 with why. */
static int answer_addr(const redisReply *r, char *host, int *port, const char **why)
{
    const redisReply *h, *p;
    char buf[SENTINEL_HOST_MAX + 16];

    *why = "unexpected reply";
    if (r == NULL) {
        *why = "no answer";
        return -1;
    }
    if (r->type == REDIS_REPLY_NIL) {
        *why = "it does not know that master";
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        *why = r->str;
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        (h = r->element[0])->type != REDIS_REPLY_STRING ||
        (p = r->element[1])->type != REDIS_REPLY_STRING || h->len > SENTINEL_HOST_MAX)
        return -1;
    snprintf(buf, sizeof(buf), strchr(h->str, ':') ? "[%s]:%s" : "%s:%s", h->str, p->str);
    return sentinel_parse_addr(buf, strlen(buf), host, port);
}

static void on_answer(void *arg, const redisReply *reply)
{
    struct redis_sentinel *s = sentinel_of(arg);
    char host[SENTINEL_HOST_MAX + 1];
    const char *why;
    int port;

    assert(s->inflight);
    s->inflight = 0;
    if (s->closing)
        return;
    if (answer_addr(reply, host, &port, &why) == 0) {
        s->asking = 0;
        named(s, host, port); /* last use of s */
        return;
    }
    if (ratelog_take(&s->rl_ask))
        log_warn("redis: sentinel %s did not name the primary of %s (%s); asking the "
                 "next%s", s->current, s->master, redis_url_safe_msg(&s->url, why),
                 s->rl_ask.more);
    s->q_failed = 1;
    event_active(s->kick, EV_TIMEOUT, 1);
}

static void q_up(void *arg, int again)
{
    struct redis_sentinel *s = sentinel_of(arg);

    s->q_fresh = 0;
    event_active(s->kick, EV_TIMEOUT, 1);
}

static void q_down(void *arg, const struct redis_conn_down *d)
{
    struct redis_sentinel *s = sentinel_of(arg);

    if (d->retargeted)
        return;
    if (s->asking && ratelog_take(&s->rl_ask))
        log_warn("redis: sentinel %s did not answer (%s); asking the next%s", s->current,
                 d->why, s->rl_ask.more);
    else
        log_debug("redis: sentinel %s: %s", s->current, d->why);
    s->q_fresh = 0;
    if (s->asking)
        s->q_failed = 1;
    event_active(s->kick, EV_TIMEOUT, 1);
}

static void sub_up(void *arg, int again)
{
    struct redis_sentinel *s = sentinel_of(arg);

    s->sub_failed = 0;
    log_debug("redis: subscribed to %s at sentinel %s:%d", SWITCH_CHANNEL,
              s->addrs[s->si].host, s->addrs[s->si].port);
}

static void sub_down(void *arg, const struct redis_conn_down *d)
{
    struct redis_sentinel *s = sentinel_of(arg);

    if (d->retargeted)
        return;
    log_debug("redis: %s subscription at sentinel %s:%d: %s", SWITCH_CHANNEL,
              s->addrs[s->si].host, s->addrs[s->si].port, d->why);
    s->sub_failed = 1;
}

static void sub_message(void *arg, const char *msg, size_t len)
{
    struct redis_sentinel *s = sentinel_of(arg);
    char host[SENTINEL_HOST_MAX + 1];
    int port, rc = sentinel_parse_switch(msg, len, s->master, host, &port);

    if (rc == 1)
        named(s, host, port); /* last use of s */
    else if (rc < 0 && ratelog_take(&s->rl_msg))
        log_warn("redis: a malformed %s message from a sentinel (%zu bytes)%s",
                 SWITCH_CHANNEL, len, s->rl_msg.more);
}

static const struct redis_conn_cbs q_cbs = {q_up, q_down, NULL};
static const struct redis_conn_cbs sub_cbs = {sub_up, sub_down, sub_message};

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    try_ask(sentinel_of(arg));
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct redis_sentinel *s = sentinel_of(arg);

    if (s->sub_failed && redis_conn_state(s->sub) != RC_UP) {
        s->si = (s->si + 1) % s->n;
        s->sub_failed = 0;
        move_conn(s, s->sub, s->si);
    }
    redis_sentinel_ask(s);
}

void redis_sentinel_ask(struct redis_sentinel *s)
{
    sentinel_of(s);
    if (!s->asking) {
        s->asking = 1;
        s->tried = 0;
    }
    event_active(s->kick, EV_TIMEOUT, 1);
}

const char *redis_sentinel_current(const struct redis_sentinel *s)
{
    return sentinel_of((void *)s)->current;
}

/* What new copies from conf: 0, or -1 with err filled. */
static int copy_conf(struct redis_sentinel *s, const struct redis_sentinel_conf *conf,
                     char *err, size_t errlen)
{
    size_t i;

    assert(conf->naddrs > 0 && conf->master != NULL);
    s->n = conf->naddrs;
    if ((s->addrs = calloc(s->n, sizeof(*s->addrs))) == NULL ||
        (s->master = strdup(conf->master)) == NULL)
        goto oom;
    for (i = 0; i < s->n; i++) {
        if (sentinel_parse_addr(conf->addrs[i], strlen(conf->addrs[i]), s->addrs[i].host,
                                &s->addrs[i].port) != 0) {
            snprintf(err, errlen, "sentinels: expected host:port, got '%s'", conf->addrs[i]);
            return -1;
        }
    }
    s->url.port = s->addrs[0].port;
    if ((s->url.host = strdup(s->addrs[0].host)) == NULL ||
        (s->url.where = strdup("sentinel")) == NULL ||
        (conf->password != NULL && *conf->password != '\0' &&
         (s->url.pass = strdup(conf->password)) == NULL))
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "redis: out of memory");
    return -1;
}

struct redis_sentinel *redis_sentinel_new(struct event_base *base,
                                          const struct redis_sentinel_conf *conf,
                                          unsigned timeout_ms, redis_sentinel_cb cb, void *arg,
                                          char *err, size_t errlen)
{
    struct redis_sentinel *s = calloc(1, sizeof(*s));
    struct timeval poll = {REDIS_SENTINEL_POLL_MS / 1000, (REDIS_SENTINEL_POLL_MS % 1000) * 1000};

    if (s == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    s->magic = SENTINEL_MAGIC;
    s->cb = cb;
    s->arg = arg;
    s->asking = 1;               /* the first round starts when q is up */
    if (copy_conf(s, conf, err, errlen) != 0) {
        redis_sentinel_free(s);
        return NULL;
    }
    set_current(s);
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    s->kick = event_new(base, -1, 0, on_kick, s);
    s->q = redis_conn_new(base, &s->url, NULL, timeout_ms, NULL, &q_cbs, s);
    s->sub = redis_conn_new(base, &s->url, NULL, timeout_ms, SWITCH_CHANNEL, &sub_cbs,
                            s);
    if (s->tick == NULL || s->kick == NULL || s->q == NULL || s->sub == NULL ||
        event_add(s->tick, &poll) != 0) {
        snprintf(err, errlen, "redis: out of memory");
        redis_sentinel_free(s);
        return NULL;
    }
    return s;
}

void redis_sentinel_free(struct redis_sentinel *s)
{
    sentinel_of(s);
    s->closing = 1;
    if (s->tick != NULL)
        event_free(s->tick);
    if (s->kick != NULL)
        event_free(s->kick);
    if (s->q != NULL)
        redis_conn_free(s->q);   /* a question in flight answers NULL */
    if (s->sub != NULL)
        redis_conn_free(s->sub);
    redis_url_clear(&s->url);
    free(s->addrs);
    free(s->master);
    s->magic = 0;
    free(s);
}
