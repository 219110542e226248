/* hs_int: what the parts of the HTTP server (hs.h) share, and nothing
 * outside them includes. The server is split by what each part does with a
 * connection:
 *   hs.c          connection I/O: accept, the state machine, timers, close;
 *   hs_listen.c   listening sockets and when to accept;
 *   hs_request.c  request framing: head, Content-Length and chunked bodies;
 *   hs_tls.c      a TLS connection's start: its first byte, then the
 *                 handshake or the 400 to a plain request;
 *   hs_answer.c   answers: the status line and fields, the server's own
 *                 {"detail":...} rejections, hs_send.
 * Every callback that gets a connection or a server back as void * checks
 * its magic. */
#ifndef LCGATE_HS_INT_H
#define LCGATE_HS_INT_H

#include <assert.h>
#include <event2/util.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hs.h"
#include "list.h"

struct bufferevent;
struct event;
struct evconnlistener;
struct hp_header;
struct sockaddr;

#define LEAD_SLACK 16            /* room for the empty lines hp_parse skips */
#define CHUNK_LINE_MAX 4096      /* chunk-size line, extensions included */
#define MAX_SINGLE_WRITE (1u << 20)

#define HS_CONN_MAGIC 0x4853434eu    /* "HSCN" */
#define HS_SERVER_MAGIC 0x48535356u  /* "HSSV" */

enum cstate {
    CS_IDLE,                     /* no byte of the next request yet */
    CS_HEAD,                     /* reading a head */
    CS_BODY,                     /* reading a body */
    CS_HANDLER,                  /* the request is with the handler */
    CS_WRITE,                    /* an answer is queued, being written */
    CS_LINGER,                   /* answered, closing: write side shut,
                                    input discarded until EOF */
};

enum chstate { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

/* What reading a request did: go on, wait for more input, or it is over
 * (answered, or the connection closed). */
enum step { ST_GO, ST_WAIT, ST_DONE };

/* A connection, and the one request it may have: hs_req comes first so that
 * hs_send finds the connection. Its buffers live as long as it does, so a
 * request on a warm connection allocates nothing. */
struct hs_conn {
    struct hs_req req;
    unsigned magic;               /* HS_CONN_MAGIC until released */
    struct hs_server *s;
    struct list link;             /* s->conns, while the I/O lives */
    struct bufferevent *bev;      /* NULL once closed, or not yet made */
    struct event *peek;           /* TLS: waiting for the first byte, before
                                     bev is made (the socket is its fd) */
    int tls;                      /* bev is a bufferevent_openssl */
    int handshaken;               /* TLS: the handshake is done */
    struct event *timer;
    enum cstate state;
    int started;                  /* a request was begun here */
    int have_req;                 /* req is filled (head parsed) */
    int in_handler, gone, peer_eof;
    int close_after;              /* answer says Connection: close */
    int ka10;                     /* HTTP/1.0 keep-alive */
    int head_method;              /* HEAD: answers carry no body */
    int64_t last_read_ms, last_write_ms;
    size_t scan;                  /* head end searched up to here */
    int seen_lf;
    size_t linger_bytes;
    size_t high;                  /* read high watermark set */
    char *head;                   /* a copy of the head, NUL-terminated in place */
    size_t head_cap;
    struct hp_header *hp;
    struct hs_header *hdr;
    unsigned hdr_cap;
    char *out;                    /* answer fields, already "Name: value\r\n" */
    size_t out_len, out_cap;
    int out_date;                 /* the handler set Date */
    struct evbuffer *body;
    int chunked;
    enum chstate ch;
    uint64_t body_left, body_total;
    size_t max_body;              /* this request's, from its start: a reload
                                     applies to requests begun afterwards */
    size_t trailer_bytes;
    char peer[64];
};

struct hs_listener {
    struct hs_listener *next;
    struct evconnlistener *lev;
    int tcp;
};

struct hs_server {
    unsigned magic;               /* HS_SERVER_MAGIC until released */
    struct event_base *base;
    struct hs_limits lim;
    hs_handler handler;
    hs_reject_cb reject;
    void *arg;
    hs_tls_fn new_ssl;            /* NULL: plain HTTP */
    struct evbuffer *tls_out;     /* TLS: an answer is built here, then
                                     written whole (hs_tls_write); empty
                                     between answers */
    struct hs_listener *listeners;
    struct event *pause;          /* after an accept error */
    int accepting, paused, closed, freed;
    unsigned nconns, busy;        /* nconns: changed atomically, so that
                                     hs_connections may read it anywhere */
    struct list conns;            /* struct hs_conn, by link */
    time_t date_sec;
    char date[40];
    size_t date_len;
    int64_t accept_warn_ms;
    unsigned accept_errors;
};

/* The connection a void * callback argument or a request stands for. */
static inline struct hs_conn *hs_conn_arg(void *arg)
{
    struct hs_conn *c = arg;

    assert(c->magic == HS_CONN_MAGIC);
    return c;
}

static inline struct hs_conn *hs_conn_of(const struct hs_req *r)
{
    return hs_conn_arg((char *)r - offsetof(struct hs_conn, req));
}

static inline struct hs_server *hs_server_arg(void *arg)
{
    struct hs_server *s = arg;

    assert(s->magic == HS_SERVER_MAGIC);
    return s;
}

/* hs.c */
void hs_arm(struct hs_conn *c, int64_t ms);
void hs_conn_close(struct hs_conn *c);
/* The connection's I/O from now on: callbacks, watermarks, reading. */
void hs_conn_start(struct hs_conn *c, struct bufferevent *bev);
void hs_conn_release(struct hs_conn *c);
void hs_server_release(struct hs_server *s);
void hs_written_at_once(struct hs_conn *c);
void hs_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                  void *arg);

/* hs_listen.c */
void hs_update_accepting(struct hs_server *s);
void hs_on_pause_end(evutil_socket_t fd, short what, void *arg);

/* hs_tls.c */
/* Wait for the first byte on fd (the connection's until closed); 0, or -1
 * when out of memory (fd left to the caller). */
int hs_tls_wait(struct hs_conn *c, evutil_socket_t fd);
/* Write answer (all of it, a handler's answer that may go at once) with
 * one SSL_write: 1 if it went (answer drained); 0 if not (too long for one
 * record, or the socket would block or failed): answer is left as it was,
 * for the bufferevent, which must retry with those very bytes. */
int hs_tls_write(struct hs_conn *c, struct evbuffer *answer);
/* Move to the input what OpenSSL decrypted and holds: 1 if there was some.
 * bufferevent_openssl stops reading mid-record at the read watermark, and
 * no socket event comes for bytes already read: a pipelined request would
 * wait there until its header timeout. */
int hs_tls_pull(struct hs_conn *c);
/* The connection failed: if in its handshake, say why (debug). */
void hs_tls_failed(struct hs_conn *c);

/* hs_request.c */
void hs_reset_request(struct hs_conn *c);
enum step hs_read_head(struct hs_conn *c);
enum step hs_read_body(struct hs_conn *c);

/* hs_answer.c */
/* Queue an answer: the body moved, or text when body is NULL. now: the
 * handler's answer, which may be written at once. head_len: a HEAD answer's
 * Content-Length when not the body's (else NULL). */
void hs_queue_answer(struct hs_conn *c, int status, struct evbuffer *body, const char *text,
                     size_t tlen, int now, const uint64_t *head_len);
/* An answer the server makes itself: reported to the reject callback, a
 * {"detail":why} body, and the connection closes after it. m and t are the
 * request's method and target (not NUL-terminated; either may be NULL). */
void hs_reject_as(struct hs_conn *c, int status, const char *why, const char *m, size_t mlen,
                  const char *t, size_t tlen);
void hs_reject(struct hs_conn *c, int status, const char *why);

#endif
