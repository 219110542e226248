/* http_parse: the head of an HTTP/1.x request (RFC 9112), checked strictly
 * and parsed in place. Pure: no I/O, no allocation, no state between calls,
 * so it can be unit tested and fuzzed alone. hs_request.c feeds it; the
 * front end reads field values with hp_list_has. */
#ifndef LCGATE_HTTP_PARSE_H
#define LCGATE_HTTP_PARSE_H

#include <stddef.h>

struct hp_header {
    const char *name;
    size_t name_len;
    const char *value;           /* optional whitespace around it trimmed */
    size_t value_len;
};

struct hp_limits {
    size_t max_request_line;     /* bytes, its line end included: 414 beyond */
    size_t max_head;             /* request line + fields + empty line: 431 beyond */
    unsigned max_headers;        /* fields: 431 beyond */
};

struct hp_request {
    const char *method;
    size_t method_len;
    const char *target;          /* as sent */
    size_t target_len;
    int minor;                   /* HTTP/1.<minor>, 0 or 1 */
    struct hp_header *headers;   /* the caller's array, capacity max_headers */
    unsigned nheaders;
    size_t head_len;             /* bytes of buf the head took, from buf[0]
                                    (skipped empty lines included) to the end
                                    of its empty line */
};

enum hp_res { HP_OK, HP_INCOMPLETE, HP_ERROR };

/* Parse the request head at the start of buf[0..len). HP_OK: r is filled and
 * every pointer in it points into buf. HP_INCOMPLETE: more bytes may make it
 * a head (never returned once a limit is certainly exceeded). HP_ERROR:
 * *status is the HTTP status to answer (400, 414, 431, 505) and *reason a
 * short fixed English sentence for the answer's body.
 *
 * On HP_INCOMPLETE and HP_ERROR, r->method is set (else NULL) if a whole
 * method was read, and r->target (else NULL) to the target bytes read so far,
 * which may be cut short: for a log line only.
 *
 * The limits count from the request line's first byte: up to 4 empty lines
 * before it are skipped (RFC 9112 2.2) and not counted. The request line is
 * too long (414) as soon as max_request_line bytes of it hold no line end;
 * the head too large (431) as soon as max_head bytes of it hold no end. */
enum hp_res hp_parse(const char *buf, size_t len, const struct hp_limits *lim,
                     struct hp_request *r, int *status, const char **reason);

/* Is s[0..n) an RFC 9110 token (1+ tchar)? */
int hp_is_token(const char *s, size_t n);

/* Does the comma-separated field value (Connection, Cache-Control; NULL
 * for an absent field) name token, case-insensitively? An element names it
 * when it is the token, alone or followed by whitespace or by "=" and an
 * argument (a Cache-Control directive's, RFC 9111 5.2). */
int hp_list_has(const char *value, const char *token);

#endif
