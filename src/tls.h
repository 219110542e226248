/* tls: the client listener's TLS context (OpenSSL 3): made from
 * [server] tls_cert (PEM: the certificate, then the rest of its chain) and
 * tls_key; TLS 1.2 and 1.3 only; ALPN selects http/1.1 (a client that
 * offers no ALPN is served, one that offers only other protocols is
 * refused); sessions resume (a server session cache, and tickets).
 *
 * One context is current at a time. A reload builds a new one from the
 * files and swaps it in only if that worked; each connection holds a
 * reference to the context it was accepted with (SSL_new takes one), so
 * open connections never see a reload, and the old context is freed with
 * its last connection.
 *
 * tls_listener_load and tls_listener_free on main's thread;
 * tls_listener_ssl on any thread (the workers'). */
#ifndef LCGATE_TLS_H
#define LCGATE_TLS_H

#include <stddef.h>

struct ssl_st;

/* Build a context from the files and make it the current one. 0, or -1
 * with "tls_cert FILE: what failed: OpenSSL's reason" (or tls_key) in
 * err, the current context (if any) left as it was. */
int tls_listener_load(const char *cert, const char *key, char *err, size_t errlen);
/* A context was loaded: the listener speaks TLS. */
int tls_listener_on(void);
/* A new server-side SSL on the current context; NULL when out of memory
 * or none is loaded. The caller owns it. */
struct ssl_st *tls_listener_ssl(void);
/* Drop the current context (connections still open keep theirs). */
void tls_listener_free(void);

#endif
