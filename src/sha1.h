/* sha1: SHA-1 (FIPS 180-4). Pure. Not for anything that must resist an
 * attacker: lcgate uses it only where a protocol names things by it (Redis
 * keys its script cache by the SHA-1 of a script's text, for EVALSHA).
 * Hex it with hex_encode (sha256.h). */
#ifndef LCGATE_SHA1_H
#define LCGATE_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

void sha1(const void *data, size_t len, uint8_t out[SHA1_LEN]);

#endif
