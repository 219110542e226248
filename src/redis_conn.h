/* redis_conn: one connection to a Redis server, kept up by itself, on a
 * libevent base. The store opens two: one for commands and one subscribed
 * to its event channel.
 *
 * The transport. The bytes go through redis_io.h: TCP, TLS on TCP
 * (rediss://, the settings in redis_tls.h) or a unix socket, as the URL
 * says, over one code path: the same events, buffers, deadlines, backoff
 * and heartbeat whatever carries the bytes. Commands are encoded with
 * hiredis's redisFormatCommandArgv and replies parsed with its redisReader,
 * which work with any transport; hiredis's async context is not used,
 * because hiredis 0.14 (Debian 12) cannot speak TLS, and a second path
 * beside it for TLS would give rediss:// its own deadlines, reconnects and
 * failure modes to keep equal to plain TCP's by hand. Nor is libevent's
 * bufferevent_openssl: redis_conn_poll must read what already waits on the
 * socket now, which a bufferevent cannot be asked to do. Redis answers in
 * order, so the commands in flight are one FIFO; subscribed, the
 * confirmations and the messages are pushes that answer no command.
 *
 * Coming up. A connection connects (the TLS handshake, certificate checked,
 * included), sends AUTH (when the URL has a password), ROLE (when a master
 * is required: see Sentinel below) and then, for commands, SELECT (when
 * the database is not 0) and PING, or, subscribed, SUBSCRIBE <channel> (no
 * SELECT: channels are global). It is up only once
 * the PING or the SUBSCRIBE is answered (a stopped Redis still completes
 * TCP handshakes from its listen backlog), within timeout_ms of the
 * connect; else it is dropped. A connection that is down retries after a
 * backoff that doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS and starts
 * again from the minimum once it is up. TCP keepalive is on, but it only
 * notices a dead peer, not a live one that does not answer: that is what
 * the deadlines are for.
 *
 * Deadlines. Every command carries its own evtimer (as h2o's
 * lib/common/redis.c does). A command that gets no answer in time drops the
 * whole connection: a Redis that did not answer one command is not trusted
 * with the next, and while the connection is down nothing can be sent, so a
 * hung Redis costs the commands in flight at most their deadline and then
 * nothing.
 *
 * Subscribed, a hung server (SIGSTOPped, CLIENT PAUSE, a half-open TCP
 * connection) is noticed by a heartbeat: REDIS_CONN_HEARTBEAT_MS after the
 * last confirmation the connection sends SUBSCRIBE <channel> again and
 * expects its confirmation within timeout_ms, else it is dropped. Redis
 * answers a SUBSCRIBE to a channel already subscribed with one more
 * ["subscribe", channel, 1] and nothing else, on every version, in RESP2
 * subscriber mode. PING is not used: Redis < 6 refuses it in subscriber
 * mode. Messages do not count as the heartbeat's answer.
 *
 * Which server a connection reaches, and how, is this module's alone (and
 * redis_url's, redis_io's and redis_tls's), never the store's.
 *
 * Sentinel (redis_sentinel.h) needs two things of a connection: to be moved
 * to another server (retarget: the URL's host and port replaced, its
 * credentials, database and TLS settings kept; with TLS the certificate
 * must name the new host, unless redis_tls_server_name says otherwise),
 * and, on the primary it was told of, a ROLE step in the handshake, so
 * that a server that is no longer the master (a stale answer, a demoted
 * primary) never counts as up.
 *
 * Callbacks. Each command sent answers exactly once: with the reply, or with
 * NULL when the connection is lost, dropped (its deadline, another's) or
 * freed. Inside a reply callback (and a message) the owner may do anything,
 * free the connection included. up and down only report: they must not free
 * the connection. */
#ifndef LCGATE_REDIS_CONN_H
#define LCGATE_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

struct event_base;
struct redis_tls;
struct redis_url;
struct redis_conn;

#define REDIS_CONN_HEARTBEAT_MS 5000

/* CONNECTING until it is up or fails the first time; then UP or DOWN
 * (retrying, with the backoff). */
enum redis_conn_state { RC_CONNECTING, RC_UP, RC_DOWN };

struct redis_conn_down {
    const char *why;             /* never quotes the password */
    int was_up;                  /* it was up until now */
    int first;                   /* the first failure since start or up */
    unsigned retry_ms;           /* when it tries again */
    int retargeted;              /* dropped by redis_conn_retarget */
};

struct redis_conn_cbs {
    /* It answered its handshake (subscribed: the SUBSCRIBE); again: it was
     * DOWN before, not CONNECTING. */
    void (*up)(void *arg, int again);
    void (*down)(void *arg, const struct redis_conn_down *d);
    /* Subscribed: a message on the channel. */
    void (*message)(void *arg, const char *msg, size_t len);
};

/* reply is NULL when the command was not answered (see Callbacks). */
typedef void (*redis_conn_reply_cb)(void *arg, const redisReply *reply);

/* A connection to url on base, with tls when url is rediss:// (both
 * borrowed: they must outlive the connection; tls is ignored otherwise).
 * channel NULL: for commands; else subscribed to channel (copied). The
 * first connect is made on the loop's next turn, so no callback runs
 * before this returns. NULL when out of memory. */
struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  const struct redis_tls *tls, unsigned timeout_ms,
                                  const char *channel, const struct redis_conn_cbs *cbs,
                                  void *arg);

/* ROLE must say master before the connection is up (a step between AUTH
 * and SELECT, or SUBSCRIBE). Call it before the loop runs. */
void redis_conn_require_master(struct redis_conn *c);

/* Connect to host:port from now on (NULL: nowhere, until retargeted again)
 * instead of the URL's host and port, or the last retarget's. The current
 * connection, if any, is dropped: down is reported and every command in
 * flight answers NULL before this returns (an answer may free c: do not
 * touch c after). The next connect is made within the backoff's minimum,
 * whatever the backoff had reached. Not from inside up or down. 0, or -1
 * when out of memory (nothing changed). */
int redis_conn_retarget(struct redis_conn *c, const char *host, int port);

/* Every command in flight answers NULL, before this returns. */
void redis_conn_free(struct redis_conn *c);

enum redis_conn_state redis_conn_state(const struct redis_conn *c);

/* Commands in flight, for the owner's shedding. */
size_t redis_conn_pending(const struct redis_conn *c);

/* Send a command (not on a subscribed connection) while the connection is
 * up, with the deadline tv (NULL: timeout_ms); what names it in the log
 * line of a missed deadline. 0: cb will fire exactly once, never before
 * this returns; -1: not sent (not up, freeing, out of memory), cb never
 * fires. */
int redis_conn_send(struct redis_conn *c, const char *what, int argc, const char **argv,
                    const size_t *lens, const struct timeval *tv, redis_conn_reply_cb cb,
                    void *arg);

/* Write the commands queued so far now, as far as the socket takes them
 * without blocking (else they go at the loop's next turn, as always). For
 * a write that other instances must be able to read before this one's
 * client hears of it (a fresh cache entry). Never answers or drops
 * anything itself: an error is left to the loop. */
void redis_conn_flush_now(struct redis_conn *c);

/* Read what already waits on the socket now (messages are delivered, a
 * closed connection is noticed), without blocking. The message callback
 * may free c; nothing else in it must. */
void redis_conn_poll(struct redis_conn *c);

/* For the owner's debug counters. */
struct redis_conn_stats {
    uint64_t timeouts;           /* commands dropped at their deadline */
    uint64_t heartbeats;
};
const struct redis_conn_stats *redis_conn_stats(const struct redis_conn *c);

#endif
