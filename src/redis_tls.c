#include "redis_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

struct redis_tls {
    SSL_CTX *ctx;
    const char *server_name;     /* NULL: the host connected to; else name */
    char name[];
};

/* OpenSSL's reason for what failed, the queue cleared: its first error is
 * the cause (a file that cannot be opened: errno's message), the later
 * ones what it made fail. "no detail" when the queue is empty. */
static const char *last_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (e != 0 && ERR_SYSTEM_ERROR(e))
        snprintf(buf, n, "%s", strerror(ERR_GET_REASON(e)));
    else if (r != NULL)
        snprintf(buf, n, "%s", r);
    else if (e != 0)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "no detail");
    ERR_clear_error();
    return buf;
}

static int fail(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[160];

    snprintf(err, errlen, "%s %s: %s", what, file, last_reason(reason, sizeof(reason)));
    return -1;
}

/* The trust anchors and the client certificate: 0, or -1 with err. */
static int load_files(SSL_CTX *ctx, const struct redis_tls_conf *tc, char *err, size_t errlen)
{
    char reason[160];

    if (tc->ca != NULL && SSL_CTX_load_verify_locations(ctx, tc->ca, NULL) != 1)
        return fail(err, errlen, "redis_tls_ca", tc->ca);
    if (tc->ca == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "redis_tls_ca: the system store: %s",
                 last_reason(reason, sizeof(reason)));
        return -1;
    }
    if ((tc->cert == NULL) != (tc->key == NULL)) {
        snprintf(err, errlen, "redis_tls_cert and redis_tls_key go together: set both or "
                              "neither");
        return -1;
    }
    if (tc->cert == NULL)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, tc->cert) != 1)
        return fail(err, errlen, "redis_tls_cert", tc->cert);
    /* also checks that it is the certificate's key ("key values mismatch") */
    if (SSL_CTX_use_PrivateKey_file(ctx, tc->key, SSL_FILETYPE_PEM) != 1)
        return fail(err, errlen, "redis_tls_key", tc->key);
    return 0;
}

struct redis_tls *redis_tls_new(const struct redis_tls_conf *tc, char *err, size_t errlen)
{
    size_t n = tc->server_name != NULL ? strlen(tc->server_name) + 1 : 0;
    struct redis_tls *t = calloc(1, sizeof(*t) + n);

    if (t == NULL || (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(err, errlen, "redis TLS: out of memory");
        redis_tls_free(t);
        return NULL;
    }
    if (n > 0)
        t->server_name = memcpy(t->name, tc->server_name, n);
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    /* redis_io writes from a buffer that grows between the retries of a
     * write that would block, and takes partial writes. */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (load_files(t->ctx, tc, err, errlen) != 0) {
        redis_tls_free(t);
        return NULL;
    }
    return t;
}

void redis_tls_free(struct redis_tls *t)
{
    if (t != NULL)
        SSL_CTX_free(t->ctx);
    free(t);
}

static int is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

SSL *redis_tls_session(const struct redis_tls *t, const char *host, int fd, char *why,
                       size_t n)
{
    const char *name = t->server_name != NULL ? t->server_name : host;
    SSL *ssl = SSL_new(t->ctx);
    int ok;

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        snprintf(why, n, "TLS: out of memory");
        SSL_free(ssl);
        return NULL;
    }
    if (is_ip(name))
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    else
        ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    if (!ok) {
        snprintf(why, n, "TLS: cannot check the server name %s", name);
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

void redis_tls_why(SSL *ssl, int ret, char *why, size_t n)
{
    long v = SSL_get_verify_result(ssl);
    int err = SSL_get_error(ssl, ret);
    char reason[160];

    if (v != X509_V_OK) {
        snprintf(why, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (err == SSL_ERROR_SSL) {
        snprintf(why, n, "TLS: %s", last_reason(reason, sizeof(reason)));
    } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
        snprintf(why, n, "TLS: %s", strerror(errno));
        ERR_clear_error();
    } else if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) {
        snprintf(why, n, "connection closed");
        ERR_clear_error();
    } else {
        snprintf(why, n, "TLS: error %d", err);
        ERR_clear_error();
    }
}
