#include "doors.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The host part of "host[:port]" or "[v6]:port" into out (lowercase,
 * without one trailing dot); -1 if it does not fit or is malformed. */
static int host_part(const char *v, char *out, size_t len)
{
    size_t n;
    const char *colon;

    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL)
            return -1;
        n = (size_t)(close - v) + 1;
    } else {
        colon = strchr(v, ':');
        n = colon ? (size_t)(colon - v) : strcspn(v, " \t");
    }
    if (n == 0 || n >= len)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] - 'A' + 'a' : v[i]);
    if (n > 1 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    return 0;
}

static int loopback_name(const char *h)
{
    size_t n = strlen(h);
    struct in_addr a4;
    struct in6_addr a6;
    char inner[64];

    if (strcmp(h, "localhost") == 0 || (n > 10 && strcmp(h + n - 10, ".localhost") == 0))
        return 1;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (h[0] == '[' && n >= 3 && n - 2 < sizeof(inner)) {
        memcpy(inner, h + 1, n - 2);
        inner[n - 2] = '\0';
        if (inet_pton(AF_INET6, inner, &a6) != 1)
            return 0;
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}

int door_local(const char *listen)
{
    char h[256];

    if (strncmp(listen, "unix:", 5) == 0)
        return 1;
    return host_part(listen, h, sizeof(h)) == 0 && loopback_name(h);
}

static int listed(const struct strlist *l, const char *v, int hosts)
{
    char h[256];

    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], "*") == 0)
            return 1;
        if (hosts) {
            if (host_part(l->v[i], h, sizeof(h)) == 0 && strcmp(h, v) == 0)
                return 1;
        } else {
            size_t a = strlen(l->v[i]), b = strlen(v);
            /* "https://a.example/" is the same origin as "https://a.example" */
            while (a > 0 && l->v[i][a - 1] == '/')
                a--;
            while (b > 0 && v[b - 1] == '/')
                b--;
            if (a == b && strncasecmp(l->v[i], v, a) == 0)
                return 1;
        }
    }
    return 0;
}

enum door door_check(const struct conf *c, int local, const char *host, const char *origin,
                     const char *sec_fetch_site)
{
    char h[256];

    if (host != NULL) {
        if (host_part(host, h, sizeof(h)) != 0)
            return DOOR_BAD_HOST;
        if (local ? !loopback_name(h) && !listed(&c->allowed_hosts, h, 1)
                  : c->allowed_hosts.n > 0 && !listed(&c->allowed_hosts, h, 1))
            return DOOR_BAD_HOST;
    }
    if (origin != NULL)
        return listed(&c->allowed_origins, origin, 0) ? DOOR_OPEN : DOOR_CROSS_SITE;
    if (sec_fetch_site != NULL &&
        (strcasecmp(sec_fetch_site, "cross-site") == 0 ||
         strcasecmp(sec_fetch_site, "same-site") == 0))
        return DOOR_CROSS_SITE;
    return DOOR_OPEN;
}

const char *door_detail(enum door d)
{
    switch (d) {
    case DOOR_BAD_HOST:
        return "Misdirected request: this Host is not served here (see allowed_hosts)";
    case DOOR_CROSS_SITE:
        return "Cross-site request refused (see allowed_origins)";
    default:
        return "";
    }
}
