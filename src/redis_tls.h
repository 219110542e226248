/* redis_tls: the TLS settings of a rediss:// connection, made once into an
 * OpenSSL context that every connection to Redis shares.
 *
 * Verification is always on: the server's chain must lead to the CA file
 * (redis_tls_ca) or, without one, to the system store, and the certificate
 * must name the server: redis_tls_server_name, else the URL's host. A name
 * that is an IP address is checked as one (its iPAddress entries); any
 * other is checked as a DNS name and sent as SNI. TLS 1.2 at least. A
 * client certificate (redis_tls_cert and redis_tls_key, both or neither)
 * is offered to servers that ask for one.
 *
 * Everything that can fail with the files fails in redis_tls_new, so that
 * lcgate -t and the start say which file and why, and a connection can
 * then fail only because of the server it meets. */
#ifndef LCGATE_REDIS_TLS_H
#define LCGATE_REDIS_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* The settings, as the configuration has them (NULL: not set). */
struct redis_tls_conf {
    const char *ca;              /* PEM CA file; NULL: the system store */
    const char *cert, *key;      /* PEM client certificate (chain) and key */
    const char *server_name;     /* NULL: the host connected to */
};

struct redis_tls;

/* The context, or NULL with "FILE: OpenSSL's reason" (or what is wrong
 * with the settings) in err. */
struct redis_tls *redis_tls_new(const struct redis_tls_conf *tc, char *err, size_t errlen);

void redis_tls_free(struct redis_tls *t);

/* A client session on the connected (or connecting) socket fd to host,
 * with the name to check set; NULL with why when out of memory or host is
 * no name to check. */
SSL *redis_tls_session(const struct redis_tls *t, const char *host, int fd, char *why,
                       size_t n);

/* Why the last SSL call on ssl failed (ret, its return value): the
 * certificate's verify error when that is the cause ("certificate verify
 * failed: unable to get local issuer certificate"), else OpenSSL's reason,
 * else errno's. Clears OpenSSL's error queue. */
void redis_tls_why(SSL *ssl, int ret, char *why, size_t n);

#endif
