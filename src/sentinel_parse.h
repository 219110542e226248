/* sentinel_parse: the pure parts of Redis Sentinel support
 * (redis_sentinel.h): a sentinel's address as the sentinels key spells it,
 * and the +switch-master message. No I/O. */
#ifndef LCGATE_SENTINEL_PARSE_H
#define LCGATE_SENTINEL_PARSE_H

#include <stddef.h>

/* The longest host kept (a name, or an IPv6 address without brackets). */
#define SENTINEL_HOST_MAX 255

/* "host:port" or "[v6]:port" in s[0..n) (no white space), the port from 1
 * to 65535; a host of letters, digits, '.', '-' and '_', or in brackets an
 * IPv6 address (with a '%zone' if any): 0 with the host (without brackets)
 * in host (SENTINEL_HOST_MAX + 1 bytes) and the port; -1. */
int sentinel_parse_addr(const char *s, size_t n, char *host, int *port);

/* A +switch-master message, "NAME oldip oldport newip newport", read for
 * the master name: 1 when it is name's, with the new address in host
 * (SENTINEL_HOST_MAX + 1 bytes) and port; 0 when it names another master;
 * -1 when it is malformed. */
int sentinel_parse_switch(const char *msg, size_t len, const char *name, char *host,
                          int *port);

#endif
