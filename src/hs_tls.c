/* hs_tls: a TLS connection's start (hs_int.h). Its first byte is peeked at
 * before any bufferevent is made: a TLS handshake record (0x16) gets a
 * bufferevent_openssl that does the handshake, anything else is taken for
 * plain HTTP and answered 400 over a plain bufferevent, as nginx answers
 * "The plain HTTP request was sent to HTTPS port". Either way the
 * connection then runs as any other (hs.c). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "hs_int.h"
#include "log.h"

#define TLS_HANDSHAKE_RECORD 0x16
#define TLS_RECORD_MAX 16384     /* plaintext bytes in one record */
#define PLAIN_TO_TLS "The plain HTTP request was sent to the TLS port: use https://"

static struct bufferevent *tls_bufferevent(struct hs_conn *c, evutil_socket_t fd)
{
    SSL *ssl = c->s->new_ssl();
    struct bufferevent *bev;

    if (ssl == NULL)
        return NULL;
    /* On failure libevent frees ssl (BEV_OPT_CLOSE_ON_FREE). */
    if ((bev = bufferevent_openssl_socket_new(c->s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                              BEV_OPT_CLOSE_ON_FREE)) == NULL)
        return NULL;
    /* Most clients close without a close_notify: that is an end of file
     * (a half-closed client still reads its answer), not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->tls = 1;
    return bev;
}

static void on_first_byte(evutil_socket_t fd, short what, void *arg)
{
    struct hs_conn *c = hs_conn_arg(arg);
    struct bufferevent *bev;
    unsigned char first;
    ssize_t n = recv(fd, &first, 1, MSG_PEEK);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(c->peek, NULL);
        return;
    }
    if (n <= 0) {                /* closed (or reset) before a byte */
        hs_conn_close(c);
        return;
    }
    bev = first == TLS_HANDSHAKE_RECORD
              ? tls_bufferevent(c, fd)
              : bufferevent_socket_new(c->s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        log_warn("hs: out of memory starting a TLS connection from %s", c->peer);
        hs_conn_close(c);        /* closes fd: the peek still owns it */
        return;
    }
    event_free(c->peek);
    c->peek = NULL;
    hs_conn_start(c, bev);
    if (first != TLS_HANDSHAKE_RECORD)
        hs_reject(c, 400, PLAIN_TO_TLS);
}

/* One SSL_write of the whole answer, made contiguous: one record, one
 * write(2), no write event. SSL_write (no partial writes) sends all or
 * says it would block; then OpenSSL holds part of a record, and the
 * bufferevent's own SSL_write must pass the same bytes: answer is moved,
 * not copied, to its output (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, tls.c). */
int hs_tls_write(struct hs_conn *c, struct evbuffer *answer)
{
    size_t len = evbuffer_get_length(answer);
    unsigned char *p;
    int n;

    if (len == 0 || len > TLS_RECORD_MAX || (p = evbuffer_pullup(answer, -1)) == NULL)
        return 0;
    n = SSL_write(bufferevent_openssl_get_ssl(c->bev), p, (int)len);
    if (n <= 0) {
        ERR_clear_error();       /* the bufferevent meets any error again */
        return 0;
    }
    assert((size_t)n == len);
    evbuffer_drain(answer, len);
    return 1;
}

int hs_tls_pull(struct hs_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    int n, got = 0;

    /* SSL_pending: bytes of a record already read and decrypted, which
     * SSL_read returns without touching the socket. */
    while (SSL_pending(ssl) > 0 && evbuffer_reserve_space(in, SSL_pending(ssl), &v, 1) == 1) {
        if ((n = SSL_read(ssl, v.iov_base, (int)v.iov_len)) <= 0) {
            ERR_clear_error();
            break;
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        got = 1;
    }
    return got;
}

/* Debug only: a client that does not trust the certificate, or speaks only
 * TLS 1.1, fails here by design. */
void hs_tls_failed(struct hs_conn *c)
{
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    log_debug("hs: TLS handshake with %s failed: %s", c->peer,
              why ? why : "the client closed the connection");
}

int hs_tls_wait(struct hs_conn *c, evutil_socket_t fd)
{
    if ((c->peek = event_new(c->s->base, fd, EV_READ, on_first_byte, c)) == NULL)
        return -1;
    if (event_add(c->peek, NULL) != 0) {
        event_free(c->peek);
        c->peek = NULL;
        return -1;
    }
    return 0;
}
