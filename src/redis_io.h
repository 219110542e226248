/* redis_io: the bytes between lcgate and a Redis server, over TCP, TLS on
 * TCP (rediss://) or a unix socket: a non-blocking socket and, for TLS, an
 * OpenSSL session on it. No event loop: the caller (redis_conn) waits for
 * what each call says it wants (the socket readable or writable) and
 * calls again.
 *
 * The calls follow recv and send, with the wait made explicit: a read or a
 * write that would block says which readiness it needs (TLS may need to
 * write to read, or to read to write). A write that would block must be
 * retried with at least the same bytes at the front (OpenSSL's rule; the
 * caller's buffer may have moved or grown). */
#ifndef LCGATE_REDIS_IO_H
#define LCGATE_REDIS_IO_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct redis_tls;

enum redis_io_want { RIO_DONE, RIO_READ, RIO_WRITE, RIO_ERR };

struct redis_io {
    int fd;                      /* -1: closed */
    SSL *ssl;                    /* TLS, or NULL */
    int connected;               /* the TCP (or unix) connect has completed */
    size_t retry;                /* TLS: the length of a write to retry */
};

/* Start connecting to host:port (path NULL) or to the unix socket path;
 * tls non-NULL (TCP only): TLS on top, the certificate checked against
 * host (or the configured server name). 0, then redis_io_handshake until
 * RIO_DONE; -1 with why (io closed). Name resolution blocks, as
 * hiredis's does. */
int redis_io_open(struct redis_io *io, const char *host, int port, const char *path,
                  const struct redis_tls *tls, char *why, size_t n);

/* Carry the connect (and the TLS handshake) on: RIO_DONE when the stream
 * is ready, RIO_READ or RIO_WRITE to be called again then, RIO_ERR with
 * why (a refused connect, a certificate that does not verify). */
enum redis_io_want redis_io_handshake(struct redis_io *io, char *why, size_t n);

/* > 0: bytes read (written); 0: the peer closed (read only); -1: *want
 * says what to wait for, or RIO_ERR with why. */
ssize_t redis_io_read(struct redis_io *io, void *buf, size_t len, enum redis_io_want *want,
                      char *why, size_t n);
ssize_t redis_io_write(struct redis_io *io, const void *buf, size_t len,
                       enum redis_io_want *want, char *why, size_t n);

/* Close (without a TLS close_notify: the connection is given up); io
 * reads as closed afterwards. */
void redis_io_close(struct redis_io *io);

#endif
