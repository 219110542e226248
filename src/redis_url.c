#include "redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util.h"

/* Percent-decode p[0..n) into a new string; NULL when malformed or when it
 * would hold a NUL. */
static char *pct_decode(const char *p, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    size_t i;
    int hi, lo;

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (p[i] != '%') {
            *o++ = p[i];
            continue;
        }
        if (i + 2 >= n)
            goto bad;
        hi = util_hexval((unsigned char)p[i + 1]);
        lo = util_hexval((unsigned char)p[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* A decimal number in [min, max] spanning exactly p[0..n). */
static int parse_num(const char *p, size_t n, long min, long max, long *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return -1;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "[user:]password" in p[0..n). */
static const char *parse_userinfo(struct redis_url *u, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    size_t ulen = colon != NULL ? (size_t)(colon - p) : 0;
    const char *pw = colon != NULL ? colon + 1 : p;
    size_t pwlen = n - (size_t)(pw - p);

    if (pwlen == 0)
        return ulen ? "a user without a password" : NULL;
    if (ulen > 0 && (u->user = pct_decode(p, ulen)) == NULL)
        return "bad percent-encoding in the user name";
    if ((u->pass = pct_decode(pw, pwlen)) == NULL)
        return "bad percent-encoding in the password";
    return NULL;
}

static int host_char(int ch, int bracketed)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')
        return 1;
    return bracketed ? ch == ':' || ch == '%' : ch == '_';
}

/* After "redis://" or "rediss://". */
static const char *parse_tcp(struct redis_url *u, const char *p)
{
    const char *at = strrchr(p, '@'), *h, *e, *err;
    long v;
    size_t n;
    int br;

    if (at != NULL) {
        if ((err = parse_userinfo(u, p, (size_t)(at - p))) != NULL)
            return err;
        p = at + 1;
    }
    br = *p == '[';
    h = p + br;
    for (e = h; *e != '\0' && host_char((unsigned char)*e, br); e++)
        ;
    if (e == h)
        return "missing host";
    if (br) {
        if (*e != ']')
            return "bad IPv6 address (expected [addr])";
        p = e + 1;
    } else {
        p = e;
    }
    if ((u->host = strndup(h, (size_t)(e - h))) == NULL)
        return "out of memory";
    u->port = 6379;
    if (*p == ':') {
        n = strcspn(++p, "/");
        if (parse_num(p, n, 1, 65535, &v) != 0)
            return "the port must be a number from 1 to 65535";
        u->port = (int)v;
        p += n;
    }
    if (*p == '/') {
        p++;
        if (*p != '\0' && parse_num(p, strlen(p), 0, 1000000, &u->db) != 0)
            return "the database (after '/') must be a number";
        p += strlen(p);
    }
    if (*p != '\0')
        return "unexpected characters after the host";
    return NULL;
}

/* After "unix://". */
static const char *parse_unix(struct redis_url *u, const char *p)
{
    const char *at, *q, *err;
    size_t n;

    if (*p != '/') {
        if ((at = strstr(p, "@/")) == NULL)
            return "the socket path must be absolute (unix:///path)";
        if ((err = parse_userinfo(u, p, (size_t)(at - p))) != NULL)
            return err;
        p = at + 1;
    }
    n = strcspn(p, "?");
    if (n >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return "the socket path is too long";
    if (n < 2)
        return "missing socket path";
    if ((u->path = strndup(p, n)) == NULL)
        return "out of memory";
    q = p + n;
    if (*q == '?') {
        q++;
        if (strncmp(q, "db=", 3) != 0)
            return "the only parameter is db=N";
        q += 3;
        if (parse_num(q, strlen(q), 0, 1000000, &u->db) != 0)
            return "db must be a number";
    }
    return NULL;
}

/* u->where: where the URL points, with no credentials. */
static const char *describe(struct redis_url *u)
{
    size_t n = (u->host ? strlen(u->host) : strlen(u->path)) + 64;

    if ((u->where = malloc(n)) == NULL)
        return "out of memory";
    if (u->host != NULL)
        snprintf(u->where, n, strchr(u->host, ':') ? "%s://[%s]:%d/%ld" : "%s://%s:%d/%ld",
                 u->tls ? "rediss" : "redis", u->host, u->port, u->db);
    else if (u->db != 0)
        snprintf(u->where, n, "unix://%s?db=%ld", u->path, u->db);
    else
        snprintf(u->where, n, "unix://%s", u->path);
    return NULL;
}

int redis_url_parse(const char *url, struct redis_url *u, const char **why)
{
    const char *err;

    memset(u, 0, sizeof(*u));
    if (strncmp(url, "redis://", 8) == 0)
        err = parse_tcp(u, url + 8);
    else if (strncmp(url, "unix://", 7) == 0)
        err = parse_unix(u, url + 7);
    else if (strncmp(url, "rediss://", 9) == 0) {
        u->tls = 1;
        err = parse_tcp(u, url + 9);
    } else
        err = "expected redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or "
              "unix:///path[?db=N]";
    if (err == NULL)
        err = describe(u);
    if (err == NULL)
        return 0;
    redis_url_clear(u);
    *why = err;
    return -1;
}

void redis_url_clear(struct redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    if (u->pass != NULL) {
        memset(u->pass, 0, strlen(u->pass));
        free(u->pass);
    }
    free(u->where);
    memset(u, 0, sizeof(*u));
}

const char *redis_url_safe_msg(const struct redis_url *u, const char *msg)
{
    if (msg == NULL || *msg == '\0')
        return "no detail";
    if (u->pass != NULL && strstr(msg, u->pass) != NULL)
        return "(message withheld: it quotes the password)";
    return msg;
}
