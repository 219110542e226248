/* http_parse: a valid head to the byte, line ends, pipelining, every prefix
 * incomplete, each limit at its edge, and each malformed form refused with
 * its status. Every input is parsed from a heap copy of exactly its length,
 * so that AddressSanitizer sees any read past the end. */
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "tap.h"

#define MAXH 16

static struct hp_limits lim = {8192, 32768, MAXH};
static struct hp_header hdrs[MAXH];
static struct hp_request req;
static int st;
static const char *why;
static char *copy;

/* Parse s[0..n) from an exact-size heap copy (kept in copy until the next
 * call, so that the pointers in req stay valid). */
static enum hp_res parse_n(const char *s, size_t n, const struct hp_limits *l)
{
    free(copy);
    copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    req.headers = hdrs;
    st = 0;
    why = NULL;
    return hp_parse(copy, n, l, &req, &st, &why);
}

static enum hp_res parse(const char *s)
{
    return parse_n(s, strlen(s), &lim);
}

static int span_is(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

static void expect_error(const char *s, size_t n, int status, const char *name)
{
    enum hp_res res = parse_n(s, n, &lim);

    tap_ok(res == HP_ERROR && st == status, "%s: %d (got res %d status %d, %s)", name, status,
           (int)res, st, why ? why : "-");
}

static void valid_get(void)
{
    const char *s = "GET /api/v1/jobs?limit=5&x=%20 HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "Accept:   application/json  \r\n"
                    "X-Empty:\r\n"
                    "X-Tab:\tv a l\t\r\n"
                    "\r\n";
    enum hp_res res = parse(s);

    tap_ok(res == HP_OK, "valid GET: HP_OK (got %d, %s)", (int)res, why ? why : "-");
    tap_ok(span_is(req.method, req.method_len, "GET") && req.method == copy,
           "valid GET: method 'GET' at offset 0");
    tap_ok(span_is(req.target, req.target_len, "/api/v1/jobs?limit=5&x=%20") &&
               req.target == copy + 4,
           "valid GET: target as sent, at offset 4");
    tap_ok(req.minor == 1, "valid GET: minor 1");
    tap_ok(req.nheaders == 4, "valid GET: 4 headers (got %u)", req.nheaders);
    tap_ok(span_is(hdrs[0].name, hdrs[0].name_len, "Host") &&
               span_is(hdrs[0].value, hdrs[0].value_len, "example.com:8080"),
           "valid GET: Host: example.com:8080");
    tap_ok(span_is(hdrs[1].name, hdrs[1].name_len, "Accept") &&
               span_is(hdrs[1].value, hdrs[1].value_len, "application/json"),
           "valid GET: value's whitespace trimmed on both sides");
    tap_ok(span_is(hdrs[2].name, hdrs[2].name_len, "X-Empty") && hdrs[2].value_len == 0,
           "valid GET: empty value has length 0");
    tap_ok(span_is(hdrs[3].value, hdrs[3].value_len, "v a l"),
           "valid GET: inner SP kept, HTAB trimmed at the ends");
    tap_ok(hdrs[1].value == copy + strlen("GET /api/v1/jobs?limit=5&x=%20 HTTP/1.1\r\n"
                                          "Host: example.com:8080\r\nAccept:   "),
           "valid GET: value points into the buffer, past the OWS");
    tap_ok(req.head_len == strlen(s), "valid GET: head_len is the whole input (%zu)",
           req.head_len);
}

static void lf_only(void)
{
    const char *s = "POST /x HTTP/1.0\nContent-Length: 3\n\nabc";
    enum hp_res res = parse(s);

    tap_ok(res == HP_OK && req.minor == 0 && req.nheaders == 1 &&
               span_is(hdrs[0].value, hdrs[0].value_len, "3"),
           "LF-only line ends: HP_OK, HTTP/1.0, one header");
    tap_ok(req.head_len == strlen(s) - 3, "LF-only line ends: head_len stops before the body");
    res = parse("GET / HTTP/1.1\r\nA: 1\n\r\n");
    tap_ok(res == HP_OK && req.nheaders == 1, "mixed CRLF and LF line ends: HP_OK");
}

static void pipelined(void)
{
    const char *first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    char both[256];
    enum hp_res res;

    snprintf(both, sizeof(both), "%sGET /b HTTP/1.1\r\nHost: h\r\n\r\n", first);
    res = parse(both);
    tap_ok(res == HP_OK && req.head_len == strlen(first) &&
               span_is(req.target, req.target_len, "/a"),
           "pipelined: the first head only (head_len %zu)", req.head_len);
    res = parse_n(both + req.head_len, strlen(both) - strlen(first), &lim);
    tap_ok(res == HP_OK && span_is(req.target, req.target_len, "/b"),
           "pipelined: the rest parses as the second head");
}

static void every_prefix(void)
{
    const char *reqs[] = {
        "GET /api/v1/jobs?a=1 HTTP/1.1\r\nHost: h\r\nX-A:  b c \r\nX-E:\r\n\r\n",
        "\r\n\nPOST /p HTTP/1.0\nContent-Length: 2\n\n",
        "OPTIONS / HTTP/1.1\r\n\r\n",
    };
    size_t k, n, len, bad;
    enum hp_res res;

    for (k = 0; k < sizeof(reqs) / sizeof(reqs[0]); k++) {
        len = strlen(reqs[k]);
        bad = 0;
        for (n = 0; n < len; n++) {
            res = parse_n(reqs[k], n, &lim);
            if (res != HP_INCOMPLETE && bad == 0)
                bad = n + 1;
        }
        if (!tap_ok(bad == 0, "request %zu: each of its %zu proper prefixes is HP_INCOMPLETE", k,
                    len))
            printf("#   first failure: the prefix of %zu bytes\n", bad - 1);
        res = parse_n(reqs[k], len, &lim);
        tap_ok(res == HP_OK && req.head_len == len, "request %zu: whole is HP_OK", k);
    }
}

static void leading_empty_lines(void)
{
    enum hp_res res = parse("\r\n\r\n\n\r\nGET / HTTP/1.1\r\n\r\n");

    tap_ok(res == HP_OK && span_is(req.method, req.method_len, "GET") && req.head_len == 25,
           "4 leading empty lines skipped, counted in head_len");
    expect_error("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 28, 400, "5 leading empty lines");
}

static void uri_too_long(void)
{
    struct hp_limits l = {32, 1024, 8};
    char buf[64];
    enum hp_res res;

    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    res = parse_n(buf, 31, &l);
    tap_ok(res == HP_INCOMPLETE, "request line: 31 bytes without a line end, limit 32: incomplete");
    res = parse_n(buf, 32, &l);
    tap_ok(res == HP_ERROR && st == 414 && strcmp(why, "URI too long") == 0,
           "request line: 32 bytes without a line end, limit 32: 414 (no room for the LF)");
    res = parse_n(buf, 33, &l);
    tap_ok(res == HP_ERROR && st == 414, "request line: 33 bytes (max + 1) without a line end: 414");
    tap_ok(req.target == copy + 4 && req.target_len == 28,
           "414: target set to the bytes read (for the log)");

    /* "GET /" + 17 'a' + " HTTP/1.1\r\n" = 33 bytes; 32 with a bare LF. */
    memcpy(buf + 5, "aaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 30);
    res = parse_n(buf, 35, &l);
    tap_ok(res == HP_ERROR && st == 414, "request line of 33 bytes with CRLF, limit 32: 414");
    memcpy(buf + 5, "aaaaaaaaaaaaaaaaa HTTP/1.1\n\n", 28);
    res = parse_n(buf, 33, &l);
    tap_ok(res == HP_OK, "request line of 32 bytes with LF, limit 32: OK");
    memcpy(buf + 5, "aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 29);
    res = parse_n(buf, 34, &l);
    tap_ok(res == HP_OK, "request line of 32 bytes with CRLF, limit 32: OK");
    res = parse_n(buf, 31, &l);
    tap_ok(res == HP_INCOMPLETE, "... and its 31-byte prefix ending in CR: incomplete");
}

static void fields_too_large(void)
{
    struct hp_limits l = {256, 64, 3};
    /* 16 + 8*3 + 2 = 42 bytes */
    const char *three = "GET / HTTP/1.1\r\nA: 1234\r\nB: 1234\r\nC: 1234\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    char big[128];
    enum hp_res res;
    size_t n;

    res = parse_n(three, strlen(three), &l);
    tap_ok(res == HP_OK && req.nheaders == 3, "3 fields, limit 3: OK");
    res = parse_n(four, strlen(four), &l);
    tap_ok(res == HP_ERROR && st == 431 && strcmp(why, "Request header fields too large") == 0,
           "4 fields, limit 3: 431");
    res = parse_n(four, 38, &l);
    tap_ok(res == HP_ERROR && st == 431, "4 fields, limit 3: 431 once the 4th begins");

    /* A head of exactly 64 bytes, then 65. */
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %s\r\n\r\n",
                         "01234567890123456789012345678901234567890");
    tap_ok(n == 64, "(test input: head of 64 bytes, got %zu)", n);
    res = parse_n(big, n, &l);
    tap_ok(res == HP_OK && req.head_len == 64, "head of max_head (64) bytes: OK");
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %s\r\n\r\n",
                         "012345678901234567890123456789012345678901");
    res = parse_n(big, n, &l);
    tap_ok(res == HP_ERROR && st == 431, "head of max_head + 1 (65) bytes: 431");
    res = parse_n(big, 64, &l);
    tap_ok(res == HP_ERROR && st == 431, "64 bytes buffered without the head's end: 431 at once");
    res = parse_n(big, 63, &l);
    tap_ok(res == HP_INCOMPLETE, "63 bytes buffered without the end, limit 64: incomplete");
}

static void versions(void)
{
    expect_error("GET / HTTP/2.0\r\n\r\n", 18, 505, "HTTP/2.0");
    expect_error("GET / HTTP/1.2\r\n\r\n", 18, 505, "HTTP/1.2");
    expect_error("GET / HTTP/0.9\r\n\r\n", 18, 505, "HTTP/0.9");
    expect_error("GET / HTTP/10.0\r\n\r\n", 19, 505, "HTTP/10.0");
    tap_ok(st == 505 && strcmp(why, "HTTP version not supported") == 0,
           "505 reason: HTTP version not supported");
    expect_error("GET / http/1.1\r\n\r\n", 18, 400, "lower-case http/1.1");
    expect_error("GET / HTTPS/1.1\r\n\r\n", 19, 400, "HTTPS/1.1");
    expect_error("GET / HTTP/\r\n\r\n", 15, 400, "HTTP/ without a number");
    expect_error("GET /\r\n\r\n", 9, 400, "no version (HTTP/0.9 request line)");
    expect_error("GET / HTTP/1.1 \r\n\r\n", 19, 400, "space after the version");
}

static void malformed(void)
{
    expect_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 28, 400, "space before colon");
    tap_ok(strcmp(why, "Malformed header") == 0, "space before colon: reason Malformed header");
    expect_error("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 28, 400, "tab before colon");
    expect_error("GET / HTTP/1.1\r\nA: 1\r\n  continued\r\n\r\n", 37, 400, "obs-fold (SP)");
    expect_error("GET / HTTP/1.1\r\nA: 1\r\n\tcontinued\r\n\r\n", 36, 400, "obs-fold (HTAB)");
    expect_error("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 28, 400, "first field line starts with SP");
    expect_error("GET / HTTP/1.1\r\nA: x\0y\r\n\r\n", 26, 400, "NUL in a value");
    expect_error("GET / HTTP/1.1\r\nA: x\ry\r\n\r\n", 26, 400, "CR in a value");
    expect_error("GET / HTTP/1.1\r\nA: x\x7fy\r\n\r\n", 26, 400, "DEL in a value");
    expect_error("GET / HTTP/1.1\r\nA: x\x01y\r\n\r\n", 26, 400, "SOH in a value");
    expect_error("GET / HTTP/1.1\r\nA: x\x1by\r\n\r\n", 26, 400, "ESC in a value");
    expect_error("GET / HTTP/1.1\r\n: v\r\n\r\n", 23, 400, "empty field name");
    expect_error("GET / HTTP/1.1\r\nA(b: v\r\n\r\n", 26, 400, "'(' in a field name");
    expect_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 27, 400, "field line without a colon");
    expect_error("G(T / HTTP/1.1\r\n\r\n", 18, 400, "bad method char '('");
    expect_error("GE\x80T / HTTP/1.1\r\n\r\n", 19, 400, "method byte 0x80");
    expect_error(" GET / HTTP/1.1\r\n\r\n", 19, 400, "empty method");
    expect_error("GET  / HTTP/1.1\r\n\r\n", 19, 400, "two spaces after the method");
    expect_error("GET /  HTTP/1.1\r\n\r\n", 19, 400, "two spaces after the target");
    expect_error("GET /a\x7f HTTP/1.1\r\n\r\n", 20, 400, "target with 0x7F");
    tap_ok(strcmp(why, "Malformed request target") == 0, "target 0x7F: reason Malformed request target");
    expect_error("GET /a\x80 HTTP/1.1\r\n\r\n", 20, 400, "target with 0x80");
    expect_error("GET /a\x01 HTTP/1.1\r\n\r\n", 20, 400, "target with 0x01");
    expect_error("GET /a\tb HTTP/1.1\r\n\r\n", 20, 400, "target with HTAB");
    expect_error("GET /a\0b HTTP/1.1\r\n\r\n", 20, 400, "target with NUL");
    expect_error("GET /a b HTTP/1.1\r\n\r\n", 20, 400, "target with a space (three parts)");
    expect_error("GET / HTTP/1.1\rHost: h\r\n\r\n", 25, 400, "bare CR after the request line");
    tap_ok(strcmp(why, "Bare CR in the request head") == 0, "bare CR: its reason");
    expect_error("GET / HTTP/1.1\r\nA: 1\rB: 2\r\n\r\n", 29, 400, "bare CR between fields");
    expect_error("GET / HTTP/1.1\r\nA: 1\r\n\rX", 24, 400, "bare CR in the final empty line");
    expect_error("\rGET / HTTP/1.1\r\n\r\n", 19, 400, "bare CR before the request line");
    expect_error("\0GET / HTTP/1.1\r\n\r\n", 19, 400, "NUL before the method");
}

static void accepted_bytes(void)
{
    enum hp_res res = parse("GET /%E2%82%AC!$&'()*+,;=:@-._~ HTTP/1.1\r\nX: caf\xc3\xa9 \x80\xff\r\n\r\n");

    tap_ok(res == HP_OK, "target of every visible ASCII class, obs-text in a value: OK");
    tap_ok(span_is(hdrs[0].value, hdrs[0].value_len, "caf\xc3\xa9 \x80\xff"),
           "obs-text bytes kept as sent");
    res = parse("M-SEARCH * HTTP/1.1\r\n\r\n");
    tap_ok(res == HP_OK && span_is(req.target, req.target_len, "*"),
           "any token method and any visible target pass the parser (the server decides)");
    res = parse("GET / HTTP/1.1\r\nA: 1\r\nA: 2\r\n\r\n");
    tap_ok(res == HP_OK && req.nheaders == 2, "repeated field names are kept, in order");
}

static void partial_fields_on_error(void)
{
    enum hp_res res = parse("GET /abc HTTP/9.9\r\n\r\n");

    tap_ok(res == HP_ERROR && span_is(req.method, req.method_len, "GET") &&
               span_is(req.target, req.target_len, "/abc"),
           "on error, method and target are set for the log");
    res = parse("POST /ab");
    tap_ok(res == HP_INCOMPLETE && span_is(req.method, req.method_len, "POST") &&
               span_is(req.target, req.target_len, "/ab"),
           "when incomplete, method and the target so far are set");
    res = parse("POS");
    tap_ok(res == HP_INCOMPLETE && req.method == NULL && req.target == NULL,
           "no whole method yet: method and target NULL");
}

static void tokens(void)
{
    tap_ok(hp_is_token("X-Request-Id", 12), "hp_is_token: X-Request-Id");
    tap_ok(!hp_is_token("", 0), "hp_is_token: empty is not");
    tap_ok(!hp_is_token("a b", 3), "hp_is_token: a space is not");
    tap_ok(!hp_is_token("a:b", 3), "hp_is_token: a colon is not");
}

static void token_lists(void)
{
    tap_ok(hp_list_has("close", "close"), "hp_list_has: the token alone");
    tap_ok(hp_list_has("Keep-Alive, CLOSE", "close"), "hp_list_has: any case, any place");
    tap_ok(hp_list_has(" \tfoo ,\tclose\t", "close"), "hp_list_has: whitespace around elements");
    tap_ok(hp_list_has(",,close,,", "close"), "hp_list_has: empty elements skipped");
    tap_ok(hp_list_has("max-age=0, no-cache=\"Set-Cookie\"", "no-cache"),
           "hp_list_has: a directive with an argument");
    tap_ok(!hp_list_has("closed, enclose", "close"), "hp_list_has: a longer token is not it");
    tap_ok(!hp_list_has("private=\"a, no-store\"", "no-store"),
           "hp_list_has: a quoted string's copy is not it");
    tap_ok(!hp_list_has("", "close"), "hp_list_has: an empty value names nothing");
    tap_ok(!hp_list_has(NULL, "close"), "hp_list_has: an absent field names nothing");
}

int main(void)
{
    valid_get();
    lf_only();
    pipelined();
    every_prefix();
    leading_empty_lines();
    uri_too_long();
    fields_too_large();
    versions();
    malformed();
    accepted_bytes();
    partial_fields_on_error();
    tokens();
    token_lists();
    free(copy);
    return tap_done();
}
