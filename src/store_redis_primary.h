/* store_redis_primary: which server the Redis store's two connections
 * (store_redis.c) are at, and, under Redis Sentinel, moving them there.
 *
 * Without Sentinel the server is redis_url's, fixed. With it (sentinels
 * set: redis_sentinel.h), the connections start with no address (parked),
 * each must find ROLE master before it is up, and both are retargeted
 * (redis_conn_retarget) whenever the sentinels name another primary. The
 * URL's credentials, database and TLS settings stay the connections'
 * (redis_conn.h): with rediss://, the primary's certificate must bear the
 * host the sentinels named, unless redis_tls_server_name says otherwise.
 *
 * The store owns the struct and its two connection pointers; this module
 * only retargets them. When the primary moves, the command connection's
 * commands in flight are answered NULL: that answer may free the store,
 * and this module with it, so the move is the last thing it does. */
#ifndef LCGATE_STORE_REDIS_PRIMARY_H
#define LCGATE_STORE_REDIS_PRIMARY_H

#include <stdint.h>

#include "sentinel_parse.h"

struct event_base;
struct redis_conn;
struct redis_sentinel;
struct redis_sentinel_conf;
struct redis_url;

#define STORE_PRIMARY_ADDR_CAP (SENTINEL_HOST_MAX + 16) /* "[host]:port" */

struct store_primary {
    uint32_t magic;
    struct redis_sentinel *sentinel; /* NULL: redis_url's host */
    char *master;                /* Sentinel's name of the primary */
    char host[SENTINEL_HOST_MAX + 1];
    int port;                    /* Sentinel's primary; 0: none named yet */
    char addr[STORE_PRIMARY_ADDR_CAP]; /* the server in use, "" none yet */
    char where[STORE_PRIMARY_ADDR_CAP + 64]; /* the same for logs */
    long db;
    struct redis_conn **conn, **sub; /* the store's: *sub may be NULL */
};

/* The fixed server of url (borrowed for the call only). */
void store_primary_init(struct store_primary *p, const struct redis_url *url,
                        struct redis_conn **conn, struct redis_conn **sub);

/* Under Sentinel from now on: *p->conn (already made) is parked until the
 * sentinels name the primary. 0, or -1 with a message in err (url is not
 * redis:// or rediss://, out of memory). */
int store_primary_follow(struct store_primary *p, struct event_base *base,
                         const struct redis_url *url, const struct redis_sentinel_conf *sc,
                         unsigned timeout_ms, char *err, size_t errlen);

/* A connection made after the start (the subscribed one): under Sentinel,
 * at the primary, master required. 0, or -1 when out of memory. */
int store_primary_attach(struct store_primary *p, struct redis_conn *c);

/* The command connection went down: under Sentinel, ask now. */
void store_primary_lost(struct store_primary *p);

/* Stops the sentinels; the connections are the store's to free. */
void store_primary_clear(struct store_primary *p);

#endif
