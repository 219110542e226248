/* The sentinels' answers arrive from redis_sentinel's callbacks; the store's
 * own connections only ever see a retarget. */
#include "store_redis_primary.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_conn.h"
#include "redis_sentinel.h"
#include "redis_url.h"

#define PRIMARY_MAGIC 0x5250524du /* "RPRM" */

void store_primary_init(struct store_primary *p, const struct redis_url *url,
                        struct redis_conn **conn, struct redis_conn **sub)
{
    *p = (struct store_primary){.magic = PRIMARY_MAGIC, .db = url->db, .conn = conn, .sub = sub};
    snprintf(p->where, sizeof(p->where), "%s", url->where);
    snprintf(p->addr, sizeof(p->addr), url->host == NULL ? "%s" :
             strchr(url->host, ':') ? "[%s]:%d" : "%s:%d",
             url->host ? url->host : url->path, url->port);
}

/* A connection under Sentinel: at the primary (none named yet: nowhere),
 * and up only on a master. */
static int follow(struct store_primary *p, struct redis_conn *c)
{
    redis_conn_require_master(c);
    return redis_conn_retarget(c, p->port ? p->host : NULL, p->port);
}

static void set_where(struct store_primary *p)
{
    if (p->port == 0)
        snprintf(p->where, sizeof(p->where), "the primary of %s (not named yet)", p->master);
    else
        snprintf(p->where, sizeof(p->where), "redis://%s/%ld", p->addr, p->db);
}

/* Sentinel named a new primary: both connections move there. */
static void on_primary(void *arg, const char *host, int port)
{
    struct store_primary *p = arg;
    char was[STORE_PRIMARY_ADDR_CAP];

    assert(p->magic == PRIMARY_MAGIC);
    snprintf(was, sizeof(was), "%s", p->port ? p->addr : "none");
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    snprintf(p->addr, sizeof(p->addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    set_where(p);
    log_info("redis: primary %s is now %s (was %s)", p->master, p->addr, was);
    if (*p->sub != NULL && redis_conn_retarget(*p->sub, host, port) != 0)
        log_warn("redis: cannot move the event subscription (out of memory)");
    /* last use of p: the commands in flight are answered NULL (misses) */
    if (redis_conn_retarget(*p->conn, host, port) != 0)
        log_warn("redis: cannot move to the new primary (out of memory)");
}

int store_primary_follow(struct store_primary *p, struct event_base *base,
                         const struct redis_url *url, const struct redis_sentinel_conf *sc,
                         unsigned timeout_ms, char *err, size_t errlen)
{
    if (url->host == NULL) {
        snprintf(err, errlen, "sentinels: redis_url must be redis:// or rediss:// (its "
                 "password, database and TLS are used)");
        return -1;
    }
    if ((p->master = strdup(sc->master)) == NULL) {
        snprintf(err, errlen, "redis: out of memory");
        return -1;
    }
    p->addr[0] = '\0';
    set_where(p);
    if (follow(p, *p->conn) != 0) {
        snprintf(err, errlen, "redis: out of memory");
        return -1;
    }
    p->sentinel = redis_sentinel_new(base, sc, timeout_ms, on_primary, p, err, errlen);
    return p->sentinel != NULL ? 0 : -1;
}

int store_primary_attach(struct store_primary *p, struct redis_conn *c)
{
    return p->sentinel != NULL ? follow(p, c) : 0;
}

void store_primary_lost(struct store_primary *p)
{
    if (p->sentinel != NULL)
        redis_sentinel_ask(p->sentinel);
}

void store_primary_clear(struct store_primary *p)
{
    if (p->sentinel != NULL)
        redis_sentinel_free(p->sentinel);
    p->sentinel = NULL;
    free(p->master);
    p->master = NULL;
}
