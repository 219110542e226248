/* redis_url: the redis_url setting, parsed. Pure.
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   rediss://[[user]:password@]host[:port][/db]     (TLS: redis_io.h)
 *   unix://[[user]:password@]/path[?db=N]
 *
 * Without a ':' before the '@' all of the userinfo is the password, as
 * redis-cli reads it; an empty password sends no AUTH. The user and the
 * password are percent-decoded (a %00 is refused). A host in brackets is an
 * IPv6 address. rediss:// only says that the connection speaks TLS: its
 * certificates are settings of their own (redis_tls.h). */
#ifndef LCGATE_REDIS_URL_H
#define LCGATE_REDIS_URL_H

struct redis_url {
    char *host;                  /* TCP (without brackets), or NULL */
    int port;                    /* 6379 unless given */
    int tls;                     /* rediss:// */
    char *path;                  /* unix socket, or NULL */
    char *user;                  /* NULL: AUTH <password> alone */
    char *pass;                  /* NULL: no AUTH; a secret, never logged */
    long db;                     /* SELECT'ed when not 0 */
    char *where;                 /* the URL without credentials, for logs */
};

/* Fills u (all zero on entry, or cleared) from url: 0, or -1 with a static
 * message in *why that never quotes the password (u is then cleared). */
int redis_url_parse(const char *url, struct redis_url *u, const char **why);

/* Frees what parse filled, overwriting the password first; u reads as
 * empty afterwards. */
void redis_url_clear(struct redis_url *u);

/* msg (a server's error message) for a log line, unless it quotes u's
 * password; "no detail" for NULL or "". */
const char *redis_url_safe_msg(const struct redis_url *u, const char *msg);

#endif
