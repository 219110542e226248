/* redis_ev: hiredis's async context on a libevent base, like hiredis's own
 * libevent adapter but with no epoll_ctl per round trip:
 *  - the read event is persistent (added once, not removed and re-added
 *    around every reply);
 *  - a command is written on the loop's next turn without waiting for the
 *    socket to be writable (a deferred callback, no system call), so that
 *    every command issued in one turn goes out in one write; only when the
 *    socket is full does it wait for EV_WRITE.
 * While connecting, writes wait for EV_WRITE as hiredis expects (that is
 * how it learns that connect(2) finished). */
#ifndef LCGATE_REDIS_EV_H
#define LCGATE_REDIS_EV_H

#include <hiredis/async.h>

struct event_base;

/* 0, or -1 (something is attached already, or out of memory). */
int redis_ev_attach(redisAsyncContext *ac, struct event_base *base);

#endif
