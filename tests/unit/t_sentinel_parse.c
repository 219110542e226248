/* t_sentinel_parse: the sentinels' addresses the config accepts and
 * refuses, and the +switch-master message read for one master name. */
#include <string.h>

#include "sentinel_parse.h"
#include "tap.h"

static void check_addrs(void)
{
    static const struct { const char *s, *host; int port; } good[] = {
        {"127.0.0.1:26379", "127.0.0.1", 26379},
        {"sentinel-1.example:1", "sentinel-1.example", 1},
        {"redis_a:65535", "redis_a", 65535},
        {"[::1]:26379", "::1", 26379},
        {"[fe80::1%eth0]:5000", "fe80::1%eth0", 5000},
    };
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", ":26379", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:26a79", "127.0.0.1 :26379", "host/x:1", "::1:26379", "[::1:26379",
        "[::1]26379", "[]:1", "[host]:1", "127.0.0.1:123456",
    };
    char host[SENTINEL_HOST_MAX + 1];
    size_t i;
    int port;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        port = 0;
        tap_ok(sentinel_parse_addr(good[i].s, strlen(good[i].s), host, &port) == 0 &&
                   strcmp(host, good[i].host) == 0 && port == good[i].port,
               "address '%s' is %s port %d", good[i].s, good[i].host, good[i].port);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        tap_ok(sentinel_parse_addr(bad[i], strlen(bad[i]), host, &port) == -1,
               "address '%s' is refused", bad[i]);
    /* only the n bytes given are read: an entry of a longer list */
    tap_ok(sentinel_parse_addr("10.0.0.7:26379,x", 14, host, &port) == 0 &&
               strcmp(host, "10.0.0.7") == 0 && port == 26379,
           "an address is read from the bytes given only");
}

static void check_switch(void)
{
    static const struct {
        const char *msg, *what;
    } malformed[] = {
        {"lcg 127.0.0.1 6379 127.0.0.1", "four words are malformed"},
        {"lcg 127.0.0.1 6379 127.0.0.1 6380 extra", "six words are malformed"},
        {"lcg 127.0.0.1 6379 127.0.0.1 0", "a port 0 is malformed"},
        {"lcg 127.0.0.1 6379 127.0.0.1/x 6380", "a host with a '/' is malformed"},
    };
    char host[SENTINEL_HOST_MAX + 1] = "";
    const char *m;
    int port = 0;
    size_t i;

    m = "lcg 127.0.0.1 6379 127.0.0.1 6380";
    tap_ok(sentinel_parse_switch(m, strlen(m), "lcg", host, &port) == 1 &&
               strcmp(host, "127.0.0.1") == 0 && port == 6380,
           "our master's switch gives the new address");
    tap_ok(sentinel_parse_switch(m, strlen(m), "lc", host, &port) == 0,
           "a prefix of the name is another master");
    m = "other 10.0.0.1 6379 10.0.0.2 6380";
    tap_ok(sentinel_parse_switch(m, strlen(m), "lcg", host, &port) == 0,
           "another master's switch is not ours");
    m = "lcg ::1 6379 ::2 6390";
    tap_ok(sentinel_parse_switch(m, strlen(m), "lcg", host, &port) == 1 &&
               strcmp(host, "::2") == 0 && port == 6390,
           "an IPv6 address is read as sentinels send it (no brackets)");
    for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        m = malformed[i].msg;
        tap_ok(sentinel_parse_switch(m, strlen(m), "lcg", host, &port) == -1,
               "%s", malformed[i].what);
    }
    m = "lcg 127.0.0.1 6379 127.0.0.1 6380 ";
    tap_ok(sentinel_parse_switch(m, strlen(m) - 1, "lcg", host, &port) == 1 && port == 6380,
           "only the length given is read");
}

int main(void)
{
    check_addrs();
    check_switch();
    return tap_done();
}
