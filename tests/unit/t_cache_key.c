/* cache_key: keys separate credentials and routes, and never hold the
 * credential itself. */
#include <stdlib.h>
#include <string.h>

#include "cache_key.h"
#include "tap.h"

int main(void)
{
    const char *k1 = "llx-secret-key-one", *k2 = "llx-secret-key-two";
    char *a = ck_build(QN_V1_BATCH_JOBS, k1, strlen(k1), "limit=5");
    char *b = ck_build(QN_V1_BATCH_JOBS, k2, strlen(k2), "limit=5");
    char *c = ck_build(QN_V2_BATCHES, k1, strlen(k1), "limit=5");
    char *d = ck_build(QN_V1_BATCH_JOBS, k1, strlen(k1), "limit=5");
    char *e = ck_build(QN_V1_BATCH_JOBS, NULL, 0, "limit=5");
    char *f = ck_build(QN_V1_BATCH_JOBS, k1, strlen(k1), "limit=6");
    char tag[CK_TAG_LEN + 1];

    tap_ok(a && b && c && d && e && f, "keys are built");
    tap_ok(strcmp(a, d) == 0, "same route, credential and query give the same key");
    tap_ok(strcmp(a, b) != 0, "different credentials give different keys");
    tap_ok(strcmp(a, c) != 0, "different routes give different keys");
    tap_ok(strcmp(a, f) != 0, "different queries give different keys");
    tap_ok(strcmp(a, e) != 0, "no credential differs from a credential");
    tap_ok(strncmp(a, CK_PREFIX, strlen(CK_PREFIX)) == 0, "keys start with CK_PREFIX");
    tap_ok(strstr(a, k1) == NULL && strstr(a, "secret") == NULL,
           "the credential does not appear in the key");
    tap_is_str(strchr(a + strlen(CK_PREFIX), ':') ? strrchr(a, ':') + 1 : NULL, "limit=5",
               "the canonical query ends the key");
    ck_cred_tag(k1, strlen(k1), tag);
    tap_ok(strlen(tag) == CK_TAG_LEN && strstr(a, tag) != NULL, "the key holds the tag");
    ck_cred_tag(NULL, 0, tag);
    tap_is_str(tag, "anon", "no credential tags as anon");
    tap_ok(strstr(e, ":anon:") != NULL, "anonymous key holds anon");
    free(a); free(b); free(c); free(d); free(e); free(f);
    return tap_done();
}
