#include "cache_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

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
    struct sbuf sb;

    ck_cred_tag(cred, credlen, tag);
    sb = sb_init(key, n);            /* on every request: no printf */
    sb_put(&sb, CK_PREFIX, sizeof(CK_PREFIX) - 1);
    sb_str(&sb, route);
    sb_put(&sb, ":", 1);
    sb_str(&sb, tag);
    sb_put(&sb, ":", 1);
    sb_str(&sb, canonical);
    sb_len(&sb);
    return key;
}

static int plain_uuid(const char *s)
{
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23 ? c != '-'
                                                   : !((c >= '0' && c <= '9') ||
                                                       (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[36] == '\0';
}

static int plain_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

void ck_project_label(const char *project_id, const char *cred, size_t credlen, char *out,
                      size_t len)
{
    char tag[CK_TAG_LEN + 1];
    uint8_t digest[SHA256_LEN];

    if (project_id == NULL) {
        struct sbuf sb = sb_init(out, len);  /* on every request: no printf */
        ck_cred_tag(cred, credlen, tag);
        sb_put(&sb, "default:", 8);
        sb_put(&sb, tag, strnlen(tag, 16));
        sb_len(&sb);
    } else if (len > 36 && strlen(project_id) == 36 && plain_uuid(project_id)) {
        memcpy(out, project_id, 37);     /* on every request: no printf */
    } else if (plain_id(project_id)) {
        snprintf(out, len, "id:%s", project_id);
    } else {
        sha256(project_id, strlen(project_id), digest);
        hex_encode(digest, 16, tag);
        snprintf(out, len, "id:~%s", tag);
    }
}
