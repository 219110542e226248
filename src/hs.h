/* hs: a lean HTTP/1.1 server on libevent bufferevents, for the gateway's
 * listeners. One request at a time per connection (pipelined ones wait in
 * the input), keep-alive, Content-Length and chunked request bodies, bounded
 * heads, bodies, connections and waits, and its own JSON answers
 * ({"detail":"..."}, Connection: close) to requests it refuses: 400, 408,
 * 413, 414, 417, 431, 501, 505.
 *
 * Requests it refuses itself:
 *  - a head the parser rejects (http_parse.h): 400, 414, 431, 505;
 *  - a target that is not origin-form ("/..."): absolute-form, authority-
 *    form, asterisk-form ("OPTIONS *"), and any CONNECT: 400;
 *  - more than one Host field; Content-Length not all digits, or several
 *    differing; both Content-Length and Transfer-Encoding; Transfer-Encoding
 *    in HTTP/1.0; a malformed chunked body: 400;
 *  - a Transfer-Encoding other than exactly "chunked": 501;
 *  - an Expect other than 100-continue (HTTP/1.1): 417;
 *  - a body over max_body: 413, before reading it (Content-Length) or as
 *    soon as the chunked total exceeds it;
 *  - a head not complete header_timeout_ms after its first byte (the first
 *    request: after accept), or a body with a gap over body_timeout_ms: 408.
 * Methods other than the seven of enum hs_method reach the handler as
 * HS_OTHER (it answers 405).
 *
 * With TLS (hs_set_tls), a connection whose first byte is not that of a TLS
 * handshake record gets a 400 (a plain HTTP request sent to the TLS port)
 * and is closed; the handshake counts in the first head's header timeout
 * (a client that opens a connection and says nothing is closed alike).
 *
 * Single-threaded: every call on the event base's thread. The process must
 * ignore SIGPIPE (bufferevents write with writev). Not to be called from
 * inside the reject callback, except hs_connections/hs_busy. */
#ifndef LCGATE_HS_H
#define LCGATE_HS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct ssl_st;

/* A field left 0 takes its default. */
struct hs_limits {
    size_t max_request_line;     /* 414 beyond; default 8 KiB */
    size_t max_head;             /* 431 beyond; default 32 KiB */
    unsigned max_headers;        /* 431 beyond; default 100 */
    size_t max_body;             /* 413 beyond (Content-Length, or chunked
                                    total); default 1 MiB */
    unsigned max_connections;    /* at this many open, stop accepting (the
                                    kernel queues the rest) and resume below
                                    it; 0 = unlimited */
    unsigned header_timeout_ms;  /* first byte of a request (or accept) to the
                                    end of its head: else 408; default 10 s
                                    (a new connection that sends nothing in
                                    that time is closed without an answer) */
    unsigned body_timeout_ms;    /* longest gap between body bytes: else 408;
                                    default 30 s */
    unsigned idle_timeout_ms;    /* keep-alive connection with no request:
                                    closed silently; default 60 s */
    unsigned write_timeout_ms;   /* no write progress: closed; default 60 s */
};

enum hs_method { HS_GET, HS_HEAD, HS_POST, HS_PUT, HS_DELETE, HS_PATCH, HS_OPTIONS, HS_OTHER };

struct hs_header {
    const char *name, *value;    /* NUL-terminated, valid until hs_send */
};

/* What the handler gets: read-only, valid until hs_send. */
struct hs_req {
    enum hs_method method;
    const char *method_name;     /* as sent, NUL-terminated */
    const char *target;          /* the request-target as sent */
    const char *path;            /* target up to '?' (not decoded) */
    const char *query;           /* after the first '?', or NULL */
    const struct hs_header *headers;
    unsigned nheaders;
    struct evbuffer *body;       /* complete (de-chunked) body, never NULL;
                                    the handler may drain it */
    int minor;                   /* HTTP/1.minor */
    const char *peer;            /* "ip:port", "[ip6]:port", or "unix" */
    void *udata;                 /* the handler's own, NULL when it gets r */
};

typedef void (*hs_handler)(struct hs_req *r, void *arg);
/* Told of every answer the server makes by itself (status as above), so that
 * the caller can log and count it. method and target may be NULL; target
 * may be cut short (at most 255 bytes). */
typedef void (*hs_reject_cb)(void *arg, int status, const char *method, const char *target,
                             const char *peer);

struct hs_server;

/* lim may be NULL (all defaults); rej may be NULL. NULL on out of memory. */
struct hs_server *hs_new(struct event_base *base, const struct hs_limits *lim, hs_handler h,
                         hs_reject_cb rej, void *arg);
/* Gives each TLS connection its SSL (the caller's context); NULL: the
 * connection is closed. May be called from any server's thread. */
typedef struct ssl_st *(*hs_tls_fn)(void);
/* Every connection accepted afterwards speaks TLS (server side), each with
 * an SSL from new_ssl. Before hs_listen. 0, or -1 when out of memory. */
int hs_set_tls(struct hs_server *s, hs_tls_fn new_ssl);
/* A config reload: applies to requests and connections begun afterwards
 * (max_connections at once). */
void hs_set_limits(struct hs_server *s, const struct hs_limits *lim);
/* Listen on addr: "host:port", "[v6]:port", "*:port" or ":port" (every
 * address; the first that getaddrinfo gives for a passive socket), or
 * "unix:/path" (a stale socket file there is unlinked first). host is given
 * to getaddrinfo, so a name works too (its first address that binds).
 * reuseport sets SO_REUSEPORT (several processes on one port). May be called
 * several times. 0, or -1 with a message in err. */
int hs_listen(struct hs_server *s, const char *addr, int reuseport, char *err, size_t errlen);
/* Accept on from's listening sockets too (duplicates of them): several
 * servers, each on its own thread and base, share one socket. 0, or -1
 * with a message in err. */
int hs_share_listeners(struct hs_server *s, const struct hs_server *from, char *err,
                       size_t errlen);
/* The first bound TCP port (for port 0), 0 if none. */
unsigned hs_port(const struct hs_server *s);
/* Drain: stop accepting at once and for good; idle keep-alive connections
 * are closed now, the others after their current answer (which says
 * Connection: close if not yet sent). */
void hs_close_listeners(struct hs_server *s);
/* Open connections; may be read from another thread (a gauge). */
unsigned hs_connections(const struct hs_server *s);
unsigned hs_busy(const struct hs_server *s);          /* with the handler */
/* Close the listeners and every connection. Requests still with the handler
 * should be answered first; if some are not, their connections are closed
 * (hs_req_gone() becomes true) and the server's memory is released by the
 * last of their hs_send calls, which only free. Not from inside a handler
 * or callback of this server. */
void hs_free(struct hs_server *s);

/* The first field named name (case-insensitive), or NULL. */
const char *hs_header(const struct hs_req *r, const char *name);
/* An answer field, copied; call before hs_send. -1 if name is not a token,
 * or value holds a control byte other than HTAB (CR, LF, ...) or DEL, or out
 * of memory. Framing is the server's: Content-Length and Transfer-Encoding
 * are ignored (0), and so is Connection, except that a value naming "close"
 * closes the connection after this answer. A Date given here replaces the
 * server's. */
int hs_add_header(struct hs_req *r, const char *name, const char *value);
/* The one answer to r: the status line ("HTTP/1.1 <status> <reason>"), the
 * fields added, Date (the server's, formatted once a second), Content-Length
 * from the body (0 if body is NULL; none and no body for 1xx, 204, 304; for
 * HEAD the body's length but no bytes), Connection: close if the connection
 * then closes (keep-alive for an HTTP/1.0 keep-alive). The body's contents
 * are moved into the output without copying (evbuffer_add_buffer, so
 * evbuffer_add_reference chunks stay references until written); the caller
 * keeps and frees its (then empty) evbuffer. A status outside 100..599
 * becomes 500; a 1xx closes the connection. r is freed: do not touch it
 * again. If the client already went away, this only frees. */
void hs_send(struct hs_req *r, int status, struct evbuffer *body);
/* The answer to a HEAD request whose GET answer has length bytes (a
 * pass-through's upstream Content-Length): hs_send with no body, but
 * Content-Length: length. For a request of another method, no body and
 * Content-Length: 0, as hs_send(r, status, NULL). */
void hs_send_head(struct hs_req *r, int status, uint64_t length);
/* The client closed (EOF, which a half-closed client also sends) or the
 * connection failed while r was with the handler: its answer will go
 * nowhere. May be asked from another thread (a worker's request handled
 * on main), until r is answered. */
int hs_req_gone(const struct hs_req *r);

#endif
