#include "redis_ev.h"

#include <assert.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>

#define REDIS_EV_MAGIC 0x52455645u   /* "REVE": ac->ev.data and our events' arg */

struct redis_ev {
    uint32_t magic;
    redisAsyncContext *ac;
    struct event *rev;           /* EV_READ | EV_PERSIST */
    struct event *wev;           /* EV_WRITE: only while the socket is full */
    struct event *kick;          /* no fd: "write on the next turn" */
    int reading, writing, kicked;
};

/* The context whose deferred write runs now: hiredis may free it (and us)
 * inside redisAsyncHandleWrite, so this is not kept in struct redis_ev. */
static __thread struct redis_ev *kicking;

static struct redis_ev *ev_of(void *p)
{
    struct redis_ev *e = p;

    assert(e->magic == REDIS_EV_MAGIC);
    return e;
}

/* Add or remove the read (or the write) event, keeping its flag true to
 * the loop. */
static void toggle(struct redis_ev *e, int write, int want)
{
    struct event *ev = write ? e->wev : e->rev;
    int *on = write ? &e->writing : &e->reading;

    if (want && !*on && event_add(ev, NULL) == 0)
        *on = 1;
    else if (!want && *on) {
        event_del(ev);
        *on = 0;
    }
}

static void free_events(struct redis_ev *e)
{
    struct event *evs[] = {e->rev, e->wev, e->kick};
    size_t i;

    for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    e->magic = 0;
    free(e);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct redis_ev *e = ev_of(arg);

    redisAsyncHandleRead(e->ac);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct redis_ev *e = ev_of(arg);

    e->writing = 0;              /* not persistent: it fired, it is gone */
    redisAsyncHandleWrite(e->ac);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct redis_ev *e = ev_of(arg);

    e->kicked = 0;
    kicking = e;
    /* What is left unwritten asks for EV_WRITE again: see add_write. */
    redisAsyncHandleWrite(e->ac);
    kicking = NULL;
}

static void add_read(void *data)
{
    toggle(ev_of(data), 0, 1);
}

static void del_read(void *data)
{
    toggle(ev_of(data), 0, 0);
}

static void add_write(void *data)
{
    struct redis_ev *e = ev_of(data);

    if (e->writing)
        return;
    if ((e->ac->c.flags & REDIS_CONNECTED) && kicking != e) {
        if (!e->kicked) {
            e->kicked = 1;
            event_active(e->kick, EV_WRITE, 1);
        }
        return;
    }
    /* Connecting, or the socket took only part: wait until it is writable. */
    toggle(e, 1, 1);
}

static void del_write(void *data)
{
    toggle(ev_of(data), 1, 0);
}

static void cleanup(void *data)
{
    struct redis_ev *e = ev_of(data);

    if (kicking == e)
        kicking = NULL;
    free_events(e);
}

int redis_ev_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct redis_ev *e;
    int fd = ac->c.fd;

    if (ac->ev.data != NULL || (e = calloc(1, sizeof(*e))) == NULL)
        return -1;
    e->magic = REDIS_EV_MAGIC;
    e->ac = ac;
    e->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, e);
    e->wev = event_new(base, fd, EV_WRITE, on_write, e);
    e->kick = event_new(base, -1, 0, on_kick, e);
    if (e->rev == NULL || e->wev == NULL || e->kick == NULL) {
        free_events(e);
        return -1;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    /* As hiredis's adapter: read, and write to learn when connect ends. */
    add_read(e);
    add_write(e);
    return 0;
}
