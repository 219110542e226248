/* tls: the client listener's TLS context (tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SESSION_CACHE_SIZE 20480
#define SESSION_TIMEOUT_S 300

/* Swapped by main, read by every worker at accept. */
static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *current;

/* "what: reason" of the oldest error OpenSSL queued (the cause; the later
 * ones say where it surfaced), and the queue cleared. */
static void fail(char *err, size_t errlen, const char *key, const char *file, const char *what)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "%s %s: %s: %s", key, file, what,
             reason ? reason : e ? "unknown OpenSSL error" : strerror(errno));
    ERR_clear_error();
}

/* Refuse a client whose ALPN list lacks http/1.1 (RFC 7301: no_application_protocol
 * alert, as nginx does); a client without ALPN never gets here. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* An encrypted key would make OpenSSL ask for a passphrase on the
 * terminal: it fails instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    return -1;
}

/* Settings, not files: what every context of the listener has. */
static int configure(SSL_CTX *ctx)
{
    static const unsigned char sid_ctx[] = "lcgate";

    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* An idle keep-alive connection keeps no 34 KiB read and write buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* A write that would block is retried by the bufferevent from its own
     * output, where hs moved the bytes (hs_tls_write). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
           SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) == 1;
}

/* A file OpenSSL can read, else errno's words in err: for a missing or
 * unreadable file (or a directory) OpenSSL would say "system lib" or "no
 * start line". */
static int readable(const char *key, const char *path, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    const char *why = NULL;

    if (f == NULL || fstat(fileno(f), &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    if (f)
        fclose(f);
    if (why == NULL)
        return 0;
    snprintf(err, errlen, "%s %s: cannot read: %s", key, path, why);
    return -1;
}

static SSL_CTX *build(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx;

    ERR_clear_error();
    if (readable("tls_cert", cert, err, errlen) != 0 || readable("tls_key", key, err, errlen) != 0)
        return NULL;
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL || !configure(ctx)) {
        fail(err, errlen, "tls_cert", cert, "cannot make a TLS context");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        fail(err, errlen, "tls_cert", cert, "not a PEM certificate (chain)");
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        fail(err, errlen, "tls_key", key,
             ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH
                 ? "does not match tls_cert" : "not a PEM private key (or encrypted)");
    else if (SSL_CTX_check_private_key(ctx) != 1)
        fail(err, errlen, "tls_key", key, "does not match tls_cert");
    else
        return ctx;
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_listener_load(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = build(cert, key, err, errlen), *old;

    if (ctx == NULL)
        return -1;
    pthread_mutex_lock(&current_mu);
    old = current;
    current = ctx;
    pthread_mutex_unlock(&current_mu);
    SSL_CTX_free(old);           /* only our reference: connections hold theirs */
    return 0;
}

int tls_listener_on(void)
{
    int on;

    pthread_mutex_lock(&current_mu);
    on = current != NULL;
    pthread_mutex_unlock(&current_mu);
    return on;
}

SSL *tls_listener_ssl(void)
{
    SSL_CTX *ctx;
    SSL *ssl;

    pthread_mutex_lock(&current_mu);
    if ((ctx = current) != NULL)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&current_mu);
    if (ctx == NULL)
        return NULL;
    /* SSL_new takes a reference of its own, held until SSL_free. */
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    return ssl;
}

void tls_listener_free(void)
{
    pthread_mutex_lock(&current_mu);
    SSL_CTX_free(current);
    current = NULL;
    pthread_mutex_unlock(&current_mu);
}
