#include "sentinel_parse.h"

#include <stdlib.h>
#include <string.h>

/* In brackets an IPv6 address, with a zone after '%' ("fe80::1%eth0"). */
static int host_char(int ch, int bracketed)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        ch == '.')
        return 1;
    return bracketed ? ch == ':' || ch == '%' : ch == '-' || ch == '_';
}

/* A decimal port from 1 to 65535 spanning exactly p[0..n). */
static int parse_port(const char *p, size_t n, int *port)
{
    char buf[6], *end;
    long v;

    if (n == 0 || n >= sizeof(buf) || p[0] < '0' || p[0] > '9')
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    v = strtol(buf, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int sentinel_parse_addr(const char *s, size_t n, char *host, int *port)
{
    const char *end = s + n, *h, *e;
    int br = n > 0 && *s == '[';

    h = s + br;
    for (e = h; e < end && host_char((unsigned char)*e, br); e++)
        ;
    if (e == h || (size_t)(e - h) > SENTINEL_HOST_MAX)
        return -1;
    if (br && (e == end || *e++ != ']' || memchr(h, ':', (size_t)(e - 1 - h)) == NULL))
        return -1;
    if (e == end || *e != ':' || parse_port(e + 1, (size_t)(end - e - 1), port) != 0)
        return -1;
    memcpy(host, h, (size_t)(e - br - h));
    host[e - br - h] = '\0';
    return 0;
}

/* The next space-separated word of p[0..n) from *i: its start and length;
 * -1 when there is none. */
static int word(const char *p, size_t n, size_t *i, const char **w, size_t *wn)
{
    size_t j;

    while (*i < n && p[*i] == ' ')
        (*i)++;
    for (j = *i; j < n && p[j] != ' '; j++)
        ;
    if (j == *i)
        return -1;
    *w = p + *i;
    *wn = j - *i;
    *i = j;
    return 0;
}

int sentinel_parse_switch(const char *msg, size_t len, const char *name, char *host,
                          int *port)
{
    const char *w[5];
    size_t wn[5], i = 0, k;
    int old_port;

    for (k = 0; k < 5; k++)
        if (word(msg, len, &i, &w[k], &wn[k]) != 0)
            return -1;
    while (i < len && msg[i] == ' ')
        i++;
    if (i != len || parse_port(w[2], wn[2], &old_port) != 0 ||
        parse_port(w[4], wn[4], port) != 0 || wn[3] > SENTINEL_HOST_MAX)
        return -1;
    for (k = 0; k < wn[3]; k++)
        if (!host_char((unsigned char)w[3][k], 0) && w[3][k] != ':' && w[3][k] != '%')
            return -1;
    if (wn[0] != strlen(name) || memcmp(w[0], name, wn[0]) != 0)
        return 0;
    memcpy(host, w[3], wn[3]);
    host[wn[3]] = '\0';
    return 1;
}
