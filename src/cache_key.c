#include "cache_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/* Not a secret: it separates this use of the hash from any other, so a tag
 * cannot be matched against a plain SHA-256 of a leaked key list. */
static const char tag_key[] = "lcgate cache-key credential tag v1";

void ck_cred_tag(const char *cred, size_t len, char out[CK_TAG_LEN + 1])
{
    /* One request asks for its credential's tag several times (key, project
     * label, generation), and with an injected key it is nearly always the
     * same credential: remember the last one (per thread). */
    static __thread char last_cred[512], last_tag[CK_TAG_LEN + 1];
    static __thread size_t last_len;
    uint8_t mac[SHA256_LEN];

    if (cred == NULL || len == 0) {
        strcpy(out, "anon");
        return;
    }
    if (len == last_len && memcmp(cred, last_cred, len) == 0) {
        memcpy(out, last_tag, CK_TAG_LEN + 1);
        return;
    }
    hmac_sha256(tag_key, sizeof(tag_key) - 1, cred, len, mac);
    hex_encode(mac, CK_TAG_LEN / 2, out);
    if (len <= sizeof(last_cred)) {
        memcpy(last_cred, cred, len);
        memcpy(last_tag, out, CK_TAG_LEN + 1);
        last_len = len;
    }
}

char *ck_build(enum qn_route r, const char *cred, size_t credlen,
               const char *canonical)
{
    char tag[CK_TAG_LEN + 1];
    const char *route = qn_routes[r].name;
    size_t n = strlen(CK_PREFIX) + strlen(route) + CK_TAG_LEN + strlen(canonical) + 3;
    char *key = malloc(n);

    if (key == NULL)
        return NULL;
    ck_cred_tag(cred, credlen, tag);
    snprintf(key, n, CK_PREFIX "%s:%s:%s", route, tag, canonical);
    return key;
}

void ck_project_label(const char *project_id, const char *cred, size_t credlen, char *out,
                      size_t len)
{
    char tag[CK_TAG_LEN + 1];

    if (project_id != NULL) {
        snprintf(out, len, "%s", project_id);
        return;
    }
    ck_cred_tag(cred, credlen, tag);
    snprintf(out, len, "default:%.16s", tag);
}
