/* fuzz_request_read: libFuzzer target for the rest of the one reading of a
 * request (src/request_read.c): paths, project ids and request bodies.
 *
 * Input: byte 0 picks what is read; the rest is the bytes.
 *  - 0 (mod 3): a path (NUL-terminated at the first NUL). Accepted: the
 *    decoded path holds no control byte, DEL or backslash, no "." or ".."
 *    segment, and is UTF-8; encoded again it decodes to itself, and the
 *    encoding is visible ASCII without '%' except in %XX escapes; a project
 *    the path names is a UUID whose canonical form is stable.
 *  - 1 (mod 3): a body with byte 1 choosing the Content-Type (none, JSON,
 *    form, multipart, text). A member found has no NUL, is the same when
 *    read twice, and its canonical project id is a fixed point of
 *    rr_project_canon.
 *  - 2 (mod 3): a project id: rr_project_canon is idempotent, and a UUID's
 *    canonical form is 36 lowercase hex digits and hyphens. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_request_read"
#include "fuzz.h"

static void canon_fixed(const char *s, size_t n)
{
    char *c = rr_project_canon(s, n), *again, u[37];

    if (c == NULL)
        return;
    again = rr_project_canon(c, strlen(c));
    CHECK(again != NULL && strcmp(c, again) == 0, "canonical not stable: '%s' -> '%s'", c,
          again ? again : "(null)");
    if (rr_uuid_canon(s, n, u) == 0) {
        CHECK(strcmp(u, c) == 0 && strlen(u) == 36, "a UUID's canonical form differs");
        for (size_t i = 0; i < 36; i++)
            CHECK((i == 8 || i == 13 || i == 18 || i == 23) ? u[i] == '-'
                  : (u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'),
                  "'%s' is not lowercase hyphenated", u);
    }
    free(again);
    free(c);
}

static void path(const char *raw)
{
    char *dec = NULL, *enc, *again = NULL;
    const char *why, *p;
    size_t n;

    if (rr_path_decode(raw, &dec, &why) != RR_OK) {
        CHECK(dec == NULL && why != NULL, "a refusal without a reason");
        return;
    }
    n = strlen(dec);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)dec[i];
        CHECK(c >= 0x20 && c != 0x7f && c != '\\', "byte %02x kept in '%s'", c, raw);
    }
    for (size_t i = 0; i < n;) {
        size_t len = strcspn(dec + i, "/");
        CHECK(!(len == 1 && dec[i] == '.') && !(len == 2 && dec[i] == '.' && dec[i + 1] == '.'),
              "a dot segment kept in '%s'", raw);
        i += len + 1;
    }
    enc = rr_path_encode(dec);
    CHECK(enc != NULL, "encode failed");
    for (size_t i = 0; enc[i]; i++)
        CHECK(enc[i] > 0x20 && enc[i] < 0x7f && enc[i] != '\\' && enc[i] != '#' && enc[i] != '?',
              "encoded byte %02x in '%s'", (unsigned char)enc[i], enc);
    CHECK(rr_path_decode(enc, &again, &why) == RR_OK && strcmp(again, dec) == 0,
          "'%s' encoded as '%s' reads back as '%s'", dec, enc, again ? again : "(refused)");
    if ((p = rr_path_project(dec, &n)) != NULL) {
        char u[37];
        CHECK(rr_uuid_canon(p, n, u) == 0, "a path project that is no UUID");
        canon_fixed(p, n);
    }
    free(again);
    free(enc);
    free(dec);
}

static void body(const uint8_t *data, size_t size)
{
    static const char *const types[] = {
        NULL, "application/json", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "text/plain", "application/vnd.a+json",
    };
    const char *ct;
    char *v1 = NULL, *v2 = NULL;
    enum rr_body r1, r2;

    if (size < 1)
        return;
    ct = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    r1 = rr_body_member(ct, (const char *)data + 1, size - 1, "project_id", &v1);
    r2 = rr_body_member(ct, (const char *)data + 1, size - 1, "project_id", &v2);
    CHECK(r1 == r2, "two readings differ: %d, %d", (int)r1, (int)r2);
    CHECK((r1 == RR_BODY_FOUND) == (v1 != NULL), "a value without FOUND or the reverse");
    if (r1 == RR_BODY_FOUND) {
        CHECK(strcmp(v1, v2) == 0, "two readings found '%s' and '%s'", v1, v2);
        canon_fixed(v1, strlen(v1));
    }
    free(v1);
    free(v2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1)
        return 0;
    if (data[0] % 3 == 1) {
        body(data + 1, size - 1);
        return 0;
    }
    if ((s = malloc(size)) == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] % 3 == 0)
        path(s);
    else
        canon_fixed(s, strlen(s));
    free(s);
    return 0;
}
