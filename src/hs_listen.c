/* hs_listen: the HTTP server's listening sockets (hs_int.h): TCP and Unix
 * listeners, sharing them between servers, and pausing accepts after an
 * error or at max_connections. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "hs_int.h"
#include "log.h"

#define ACCEPT_PAUSE_MS 100
#define ACCEPT_WARN_MS 10000
#define LISTEN_BACKLOG 1024

void hs_on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct hs_server *s = hs_server_arg(arg);

    s->paused = 0;
    hs_update_accepting(s);
}

/* EMFILE and the like: accepting again at once would spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct hs_server *s = hs_server_arg(arg);
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    int64_t now = mono_ms();

    s->accept_errors++;
    if (s->accept_warn_ms == 0 || now - s->accept_warn_ms >= ACCEPT_WARN_MS) {
        log_warn("accept failed: %s (%u times since the last report); pausing %d ms",
                 strerror(err), s->accept_errors, ACCEPT_PAUSE_MS);
        s->accept_warn_ms = now;
        s->accept_errors = 0;
    }
    s->paused = 1;
    hs_update_accepting(s);
    evtimer_add(s->pause, &tv);
}

/* Accept while open, not paused after an error, and below max_connections. */
void hs_update_accepting(struct hs_server *s)
{
    int want = !s->closed && !s->paused &&
               (s->lim.max_connections == 0 || s->nconns < s->lim.max_connections);
    struct hs_listener *l;

    if (want == s->accepting)
        return;
    for (l = s->listeners; l; l = l->next) {
        if (want)
            evconnlistener_enable(l->lev);
        else
            evconnlistener_disable(l->lev);
    }
    s->accepting = want;
}

static int add_listener(struct hs_server *s, int fd, int tcp, const char *addr, char *err,
                        size_t errlen)
{
    struct hs_listener *l = calloc(1, sizeof(*l)), **pp;

    if (l == NULL || (l->lev = evconnlistener_new(s->base, hs_on_accept, s,
                                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                  0, fd)) == NULL) {
        snprintf(err, errlen, "%s: cannot accept", addr);
        free(l);
        close(fd);
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    if (!s->accepting)
        evconnlistener_disable(l->lev);
    l->tcp = tcp;
    /* At the end: hs_port names the first one bound. */
    for (pp = &s->listeners; *pp; pp = &(*pp)->next)
        ;
    *pp = l;
    return 0;
}

static int listen_unix(struct hs_server *s, const char *addr, char *err, size_t errlen)
{
    const char *path = addr + 5;
    struct sockaddr_un sun;
    int fd;

    if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "%s: socket path empty or too long", addr);
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "%s: cannot listen: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return add_listener(s, fd, 0, addr, err, errlen);
}

static int listen_tcp(struct hs_server *s, const char *addr, int reuseport, char *err,
                      size_t errlen)
{
    const char *colon = strrchr(addr, ':'), *port, *h = addr;
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    size_t hlen;
    int fd = -1, one = 1, rc, saved = 0;

    if (colon == NULL) {
        snprintf(err, errlen, "%s: expected host:port", addr);
        return -1;
    }
    port = colon + 1;
    hlen = (size_t)(colon - addr);
    if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535) {
        snprintf(err, errlen, "%s: bad port", addr);
        return -1;
    }
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "%s: host too long", addr);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(hlen == 0 || strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
            continue;
        }
        break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot listen: %s", addr, strerror(saved));
        return -1;
    }
    return add_listener(s, fd, 1, addr, err, errlen);
}

int hs_listen(struct hs_server *s, const char *addr, int reuseport, char *err, size_t errlen)
{
    if (s->closed) {
        snprintf(err, errlen, "%s: the server is closed", addr);
        return -1;
    }
    if (strncmp(addr, "unix:", 5) == 0)
        return listen_unix(s, addr, err, errlen);
    return listen_tcp(s, addr, reuseport, err, errlen);
}

int hs_share_listeners(struct hs_server *s, const struct hs_server *from, char *err,
                       size_t errlen)
{
    const struct hs_listener *l;
    int fd;

    for (l = from->listeners; l; l = l->next) {
        if ((fd = fcntl(evconnlistener_get_fd(l->lev), F_DUPFD_CLOEXEC, 0)) < 0) {
            snprintf(err, errlen, "cannot share a listening socket: %s", strerror(errno));
            return -1;
        }
        if (add_listener(s, fd, l->tcp, "shared listener", err, errlen) != 0)
            return -1;
    }
    return 0;
}

unsigned hs_port(const struct hs_server *s)
{
    const struct hs_listener *l;
    struct sockaddr_storage ss;
    socklen_t len;

    for (l = s->listeners; l; l = l->next) {
        if (!l->tcp)
            continue;
        len = sizeof(ss);
        if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &len) != 0)
            continue;
        if (ss.ss_family == AF_INET)
            return ntohs(((struct sockaddr_in *)&ss)->sin_port);
        if (ss.ss_family == AF_INET6)
            return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}
