/* fuzz_http_parse: libFuzzer target for hp_parse (src/http_parse.c).
 *
 * Input: byte 0 picks the limits (bits 0-1: max_request_line 8, 40, 300 or
 * 8192; bits 2-3: max_head 16, 100, 1000 or 32768; bits 4-5: max_headers 0,
 * 1, 4 or 100); the rest is the buffer, parsed from a heap copy of exactly
 * its length (AddressSanitizer sees any read past it).
 *
 * Invariants checked:
 *  - a known result; an error has status 400, 414, 431 or 505 and a reason;
 *  - HP_OK: head_len <= len; the head ends with its empty line ("\n\n" or
 *    "\n\r\n"); its request line and whole head are within the limits;
 *    method a token, target visible ASCII, minor 0 or 1, nheaders <=
 *    max_headers; each name a token directly followed by ':', each value
 *    field-value bytes without whitespace at either end, all inside the
 *    head; and the head alone (buf[0..head_len)) parses the same;
 *  - whatever method and target are set point inside the buffer;
 *  - a result other than HP_INCOMPLETE on a prefix is the result on the
 *    whole buffer (more bytes never change a decision), and a prefix of an
 *    incomplete buffer is incomplete. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_http_parse"
#include "fuzz.h"

struct outcome {
    enum hp_res res;
    int status;
    const char *reason;
    struct hp_request r;
};

static struct hp_header headers[2][100];

static void parse(const char *buf, size_t len, const struct hp_limits *lim, int slot,
                  struct outcome *o)
{
    o->r.headers = headers[slot];
    o->status = 0;
    o->reason = NULL;
    o->res = hp_parse(buf, len, lim, &o->r, &o->status, &o->reason);
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static int is_vchar(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

static int field_byte(unsigned char c)
{
    return c == '\t' || c == ' ' || is_vchar(c) || c >= 0x80;
}

static void check_ok(const char *buf, size_t len, const struct hp_limits *lim,
                     const struct outcome *o)
{
    const struct hp_request *r = &o->r;
    size_t h = r->head_len, start, i, k;

    CHECK(h > 0 && h <= len, "head_len %zu of %zu", h, len);
    CHECK(buf[h - 1] == '\n' && h >= 2 &&
              (buf[h - 2] == '\n' || (buf[h - 2] == '\r' && h >= 3 && buf[h - 3] == '\n')),
          "head does not end with an empty line");
    CHECK(inside(r->method, r->method_len, buf, h) && hp_is_token(r->method, r->method_len),
          "method");
    start = (size_t)(r->method - buf);
    CHECK(start <= 8, "%zu bytes before the method", start);
    for (i = 0; i < start; i++)
        CHECK(buf[i] == '\r' || buf[i] == '\n', "a non-empty line skipped");
    CHECK(h - start <= lim->max_head, "head of %zu > max_head %zu", h - start, lim->max_head);
    CHECK(inside(r->target, r->target_len, buf, h) && r->target_len > 0 &&
              r->target == r->method + r->method_len + 1,
          "target");
    for (i = 0; i < r->target_len; i++)
        CHECK(is_vchar((unsigned char)r->target[i]), "target byte 0x%02x",
              (unsigned char)r->target[i]);
    CHECK(r->minor == 0 || r->minor == 1, "minor %d", r->minor);
    {
        const char *lf = memchr(r->target, '\n', h - (size_t)(r->target - buf));
        CHECK(lf != NULL && (size_t)(lf - r->method) + 1 <= lim->max_request_line,
              "request line over max_request_line");
        CHECK(memcmp(r->target + r->target_len, r->minor ? " HTTP/1.1" : " HTTP/1.0", 9) == 0,
              "version");
    }
    CHECK(r->nheaders <= lim->max_headers, "%u headers > %u", r->nheaders, lim->max_headers);
    for (k = 0; k < r->nheaders; k++) {
        const struct hp_header *f = &r->headers[k];
        CHECK(inside(f->name, f->name_len, buf, h) && hp_is_token(f->name, f->name_len) &&
                  f->name[f->name_len] == ':',
              "header %zu name", k);
        CHECK(inside(f->value, f->value_len, buf, h), "header %zu value outside", k);
        for (i = 0; i < f->value_len; i++)
            CHECK(field_byte((unsigned char)f->value[i]), "header %zu value byte 0x%02x", k,
                  (unsigned char)f->value[i]);
        if (f->value_len) {
            CHECK(f->value[0] != ' ' && f->value[0] != '\t' &&
                      f->value[f->value_len - 1] != ' ' && f->value[f->value_len - 1] != '\t',
                  "header %zu value not trimmed", k);
        }
        if (k > 0)
            CHECK(f->name > r->headers[k - 1].value, "headers out of order");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t rls[4] = {8, 40, 300, 8192}, heads[4] = {16, 100, 1000, 32768};
    static const unsigned nhs[4] = {0, 1, 4, 100};
    struct hp_limits lim;
    struct outcome whole, part;
    size_t len, cuts[2], j;
    char *buf;

    if (size < 1)
        return 0;
    lim.max_request_line = rls[data[0] & 3];
    lim.max_head = heads[(data[0] >> 2) & 3];
    lim.max_headers = nhs[(data[0] >> 4) & 3];
    len = size - 1;
    buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);

    parse(buf, len, &lim, 0, &whole);
    CHECK(whole.res == HP_OK || whole.res == HP_INCOMPLETE || whole.res == HP_ERROR, "result %d",
          (int)whole.res);
    if (whole.res == HP_ERROR)
        CHECK((whole.status == 400 || whole.status == 414 || whole.status == 431 ||
               whole.status == 505) &&
                  whole.reason && whole.reason[0],
              "status %d", whole.status);
    if (whole.r.method)
        CHECK(inside(whole.r.method, whole.r.method_len, buf, len), "method outside");
    if (whole.r.target)
        CHECK(inside(whole.r.target, whole.r.target_len, buf, len), "target outside");
    if (whole.res == HP_OK) {
        check_ok(buf, len, &lim, &whole);
        parse(buf, whole.r.head_len, &lim, 1, &part);
        CHECK(part.res == HP_OK && part.r.head_len == whole.r.head_len &&
                  part.r.nheaders == whole.r.nheaders,
              "the head alone parses differently");
        parse(buf, whole.r.head_len - 1, &lim, 1, &part);
        CHECK(part.res == HP_INCOMPLETE, "head less its last byte: result %d status %d",
              (int)part.res, part.status);
    }

    cuts[0] = len / 2;
    cuts[1] = len ? len - 1 : 0;
    for (j = 0; j < 2; j++) {
        parse(buf, cuts[j], &lim, 1, &part);
        if (part.res == HP_INCOMPLETE)
            continue;
        CHECK(whole.res == part.res && whole.status == part.status,
              "prefix of %zu: result %d status %d; whole %zu: result %d status %d", cuts[j],
              (int)part.res, part.status, len, (int)whole.res, whole.status);
        if (part.res == HP_OK)
            CHECK(part.r.head_len == whole.r.head_len, "head_len differs");
    }
    free(buf);
    return 0;
}
