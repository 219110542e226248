#include "redis_io.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>

#include "redis_tls.h"

/* As hiredis's redisEnableKeepAlive: a dead peer is noticed in about 30 s. */
#define KEEPALIVE_IDLE_S 15

static void keepalive(int fd)
{
    int on = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_IDLE_S / 3, cnt = 3;

    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* A non-blocking socket connecting to sa: the fd, or -1 with errno. */
static int start_connect(int family, const struct sockaddr *sa, socklen_t salen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e;

    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) == 0 || errno == EINPROGRESS || errno == EAGAIN)
        return fd;
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int open_unix(const char *path, char *why, size_t n)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if ((fd = start_connect(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun))) < 0)
        snprintf(why, n, "%s", strerror(errno));
    return fd;
}

/* The first address of host that a connect can start to. */
static int open_tcp(const char *host, int port, char *why, size_t n)
{
    struct addrinfo hints, *res, *ai;
    char service[8];
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%d", port);
    if ((rc = getaddrinfo(host, service, &hints, &res)) != 0) {
        snprintf(why, n, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = start_connect(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
    if (fd < 0)
        snprintf(why, n, "%s", strerror(errno));
    else
        keepalive(fd);
    freeaddrinfo(res);
    return fd;
}

int redis_io_open(struct redis_io *io, const char *host, int port, const char *path,
                  const struct redis_tls *tls, char *why, size_t n)
{
    memset(io, 0, sizeof(*io));
    io->fd = path != NULL ? open_unix(path, why, n) : open_tcp(host, port, why, n);
    if (io->fd < 0)
        return -1;
    if (tls != NULL && path == NULL &&
        (io->ssl = redis_tls_session(tls, host, io->fd, why, n)) == NULL) {
        redis_io_close(io);
        return -1;
    }
    return 0;
}

/* What SSL call's ret asks for: RIO_DONE (it worked), a wait, or RIO_ERR
 * with why. */
static enum redis_io_want tls_want(struct redis_io *io, int ret, char *why, size_t n)
{
    if (ret > 0)
        return RIO_DONE;
    switch (SSL_get_error(io->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return RIO_READ;
    case SSL_ERROR_WANT_WRITE:
        return RIO_WRITE;
    default:
        redis_tls_why(io->ssl, ret, why, n);
        return RIO_ERR;
    }
}

enum redis_io_want redis_io_handshake(struct redis_io *io, char *why, size_t n)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!io->connected) {
        /* called once the socket is writable: the connect has ended */
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            snprintf(why, n, "%s", strerror(err));
            return RIO_ERR;
        }
        io->connected = 1;
    }
    if (io->ssl == NULL)
        return RIO_DONE;
    ERR_clear_error();
    return tls_want(io, SSL_do_handshake(io->ssl), why, n);
}

/* A plain recv or send's result, as redis_io.h says. */
static ssize_t sock_result(ssize_t r, enum redis_io_want *want, enum redis_io_want wait,
                           char *why, size_t n)
{
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *want = wait;
    } else {
        *want = RIO_ERR;
        snprintf(why, n, "%s", strerror(errno));
    }
    return -1;
}

ssize_t redis_io_read(struct redis_io *io, void *buf, size_t len, enum redis_io_want *want,
                      char *why, size_t n)
{
    int r;

    if (io->ssl == NULL)
        return sock_result(recv(io->fd, buf, len, 0), want, RIO_READ, why, n);
    ERR_clear_error();
    r = SSL_read(io->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0)
        return r;
    if (SSL_get_error(io->ssl, r) == SSL_ERROR_ZERO_RETURN)
        return 0;
    *want = tls_want(io, r, why, n);
    return -1;
}

ssize_t redis_io_write(struct redis_io *io, const void *buf, size_t len,
                       enum redis_io_want *want, char *why, size_t n)
{
    int r;

    if (io->ssl == NULL)
        return sock_result(send(io->fd, buf, len, MSG_NOSIGNAL), want, RIO_WRITE, why, n);
    if (io->retry > 0) {
        assert(len >= io->retry);
        len = io->retry;
    }
    ERR_clear_error();
    r = SSL_write(io->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0) {
        io->retry = 0;
        return r;
    }
    *want = tls_want(io, r, why, n);
    io->retry = *want == RIO_ERR ? 0 : len;
    return -1;
}

void redis_io_close(struct redis_io *io)
{
    if (io->ssl != NULL)
        SSL_free(io->ssl);
    if (io->fd >= 0)
        close(io->fd);
    memset(io, 0, sizeof(*io));
    io->fd = -1;
}
