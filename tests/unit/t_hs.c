/* hs: a server on 127.0.0.1 port 0 in this process, on its own event base
 * (this thread), and clients on plain blocking sockets in a second thread,
 * each wait bounded (socket timeouts, and alarm() as a watchdog per test).
 * Answers are checked to the byte (the Date value masked); what the handler
 * and the reject callback saw is checked after the client thread is done. */
#define _GNU_SOURCE              /* memmem */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "hs.h"
#include "tap.h"

#define WATCHDOG_S 30
#define ZC_LEN (16u << 20)

static struct event_base *base;
static struct hs_server *srv;
static unsigned port;

/* ---- what the handler and the reject callback saw (loop thread) ---- */

static struct {
    int calls;
    enum hs_method method;
    char method_name[32], target[512], path[512], query[512], xin[64], peer[64];
    int has_query, minor;
    size_t body_len;
    char body[8192];
    char peers[4][64];
    int add[8];
} H;

#define REJ_LOG 64

struct rej {
    int status;
    char method[64], target[300], peer[64];
    int has_method, has_target;
};

static struct {
    int calls, status;
    char method[64], target[300], peer[64];
    struct rej log[REJ_LOG];
} REJ;

static struct hs_req *deferred;
static struct event *defer_ev;
static int defer_gone = -1, defer_done;
static unsigned defer_busy_after = 99, defer_conns_after = 99;

static char *zc_data;
static int zc_cleanups, zc_after_send = -1, zc_after_free = -1, zc_cleaned_before_read = -1;
static int client_reading;

static void on_reject(void *arg, int status, const char *method, const char *target,
                      const char *peer)
{
    struct rej *e = &REJ.log[REJ.calls % REJ_LOG];

    REJ.calls++;
    REJ.status = status;
    snprintf(REJ.method, sizeof(REJ.method), "%s", method ? method : "");
    snprintf(REJ.target, sizeof(REJ.target), "%s", target ? target : "");
    snprintf(REJ.peer, sizeof(REJ.peer), "%s", peer ? peer : "");
    e->status = status;
    e->has_method = method != NULL;
    e->has_target = target != NULL;
    snprintf(e->method, sizeof(e->method), "%s", method ? method : "");
    snprintf(e->target, sizeof(e->target), "%s", target ? target : "");
    snprintf(e->peer, sizeof(e->peer), "%s", peer ? peer : "");
}

/* The first refusal logged with this status, or NULL. */
static const struct rej *rej_find(int status)
{
    int i;

    for (i = 0; i < REJ.calls && i < REJ_LOG; i++)
        if (REJ.log[i].status == status)
            return &REJ.log[i];
    return NULL;
}

static void answer_text(struct hs_req *r, int status, const char *text)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, text, strlen(text));
    hs_send(r, status, b);
    evbuffer_free(b);
}

static void zc_cleanup(const void *data, size_t len, void *arg)
{
    zc_cleanups++;
    zc_cleaned_before_read = !__atomic_load_n(&client_reading, __ATOMIC_SEQ_CST);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    struct evbuffer *b = evbuffer_new();

    defer_gone = hs_req_gone(deferred);
    evbuffer_add(b, "late", 4);
    hs_send(deferred, 200, b);
    evbuffer_free(b);
    deferred = NULL;
    if (srv) {
        defer_busy_after = hs_busy(srv);
        defer_conns_after = hs_connections(srv);
    }
    defer_done = 1;
}

static void handler(struct hs_req *r, void *arg)
{
    const char *v;
    char buf[128];

    if (H.calls < 4)
        snprintf(H.peers[H.calls], sizeof(H.peers[0]), "%s", r->peer);
    H.calls++;
    H.method = r->method;
    snprintf(H.method_name, sizeof(H.method_name), "%s", r->method_name);
    snprintf(H.target, sizeof(H.target), "%s", r->target);
    snprintf(H.path, sizeof(H.path), "%s", r->path);
    H.has_query = r->query != NULL;
    snprintf(H.query, sizeof(H.query), "%s", r->query ? r->query : "");
    v = hs_header(r, "x-in");
    snprintf(H.xin, sizeof(H.xin), "%s", v ? v : "(none)");
    snprintf(H.peer, sizeof(H.peer), "%s", r->peer);
    H.minor = r->minor;
    H.body_len = evbuffer_get_length(r->body);
    evbuffer_copyout(r->body, H.body, sizeof(H.body));

    if (strcmp(r->path, "/stats") == 0) {
        snprintf(buf, sizeof(buf), "conns=%u busy=%u", hs_connections(srv), hs_busy(srv));
        answer_text(r, 200, buf);
    } else if (strcmp(r->path, "/defer") == 0) {
        struct timeval tv = {0, 300 * 1000};
        deferred = r;
        evtimer_add(defer_ev, &tv);
    } else if (strcmp(r->path, "/zc") == 0) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_reference(b, zc_data, ZC_LEN, zc_cleanup, NULL);
        hs_send(r, 200, b);
        zc_after_send = zc_cleanups;
        evbuffer_free(b);
        zc_after_free = zc_cleanups;
    } else if (strcmp(r->path, "/drain") == 0) {
        hs_close_listeners(srv);
        answer_text(r, 200, "draining");
    } else if (strcmp(r->path, "/hdrs") == 0) {
        H.add[0] = hs_add_header(r, "Bad Name", "v");
        H.add[1] = hs_add_header(r, "X-Split", "a\r\nInjected: 1");
        H.add[2] = hs_add_header(r, "X-Ctl", "a\001");
        H.add[3] = hs_add_header(r, "", "v");
        H.add[4] = hs_add_header(r, "Content-Length", "999");
        H.add[5] = hs_add_header(r, "X-Ok", "v\tw");
        H.add[6] = hs_add_header(r, "Date", "Mon, 01 Jan 2024 00:00:00 GMT");
        H.add[7] = hs_add_header(r, "Connection", "close");
        answer_text(r, 200, "ok");
    } else if (strncmp(r->path, "/status/", 8) == 0) {
        answer_text(r, atoi(r->path + 8), "x");
    } else {
        hs_add_header(r, "X-Method", r->method_name);
        if (evbuffer_get_length(r->body)) {
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_buffer(b, r->body);
            hs_send(r, 200, b);
            evbuffer_free(b);
        } else {
            answer_text(r, 200, strcmp(r->path, "/hello") == 0 ? "hello world" : r->target);
        }
    }
}

/* ---- running a client against a server ---- */

static void (*client_fn)(void);
static int done_pipe[2];

static void *client_main(void *arg)
{
    client_fn();
    if (write(done_pipe[1], "x", 1) != 1)
        abort();
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    char b;

    if (read(fd, &b, 1) == 1)
        event_base_loopbreak(base);
}

static const struct hs_limits fast = {
    .max_request_line = 1024,
    .max_head = 4096,
    .max_headers = 20,
    .max_body = 100,
    .header_timeout_ms = 300,
    .body_timeout_ms = 300,
    .idle_timeout_ms = 300,
    .write_timeout_ms = 300,
};

static const struct hs_limits slow = {
    .max_request_line = 1024,
    .max_head = 4096,
    .max_headers = 20,
    .max_body = 100,
    .header_timeout_ms = 5000,
    .body_timeout_ms = 5000,
    .idle_timeout_ms = 5000,
    .write_timeout_ms = 5000,
};

static void serve(const struct hs_limits *lim)
{
    char err[256];

    memset(&H, 0, sizeof(H));
    memset(&REJ, 0, sizeof(REJ));
    srv = hs_new(base, lim, handler, on_reject, NULL);
    if (srv == NULL || hs_listen(srv, "127.0.0.1:0", 0, err, sizeof(err)) != 0) {
        printf("Bail out! cannot serve: %s\n", err);
        exit(1);
    }
    port = hs_port(srv);
}

static void run(void (*fn)(void))
{
    pthread_t t;

    client_fn = fn;
    alarm(WATCHDOG_S);
    if (pthread_create(&t, NULL, client_main, NULL) != 0) {
        printf("Bail out! pthread_create\n");
        exit(1);
    }
    event_base_dispatch(base);
    pthread_join(t, NULL);
    alarm(0);
}

static void stop(void)
{
    hs_free(srv);
    srv = NULL;
}

/* Run the loop until *flag is set (bounded by the watchdog). */
static void loop_until(const int *flag)
{
    alarm(WATCHDOG_S);
    while (!*flag)
        event_base_loop(base, EVLOOP_ONCE);
    alarm(0);
}

/* ---- client side (client thread): blocking sockets ---- */

struct cc {
    int fd;
    size_t len;
    char buf[1 << 17];
};

struct resp {
    int status;
    long cl;
    char head[8192];
    size_t body_len;
    char body[1 << 16];
};

static struct cc C1 = {.fd = -1}, C2 = {.fd = -1}, C3 = {.fd = -1};
static struct resp R1, R2, R3;

static void set_timeout(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connect c->fd, made already (or -1: make it now). */
static int cc_connect(struct cc *c)
{
    struct sockaddr_in sin;

    c->len = 0;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    set_timeout(c->fd, 3000);
    return 0;
}

static int cc_open(struct cc *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    return cc_connect(c);
}

static void cc_close(struct cc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int cc_sendn(struct cc *c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cc_send(struct cc *c, const char *s)
{
    return cc_sendn(c, s, strlen(s));
}

static ssize_t cc_fill(struct cc *c)
{
    ssize_t n;

    if (c->len == sizeof(c->buf))
        return -1;
    n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static int head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return 1;
        }
        p = strstr(p, "\r\n");
    }
    return 0;
}

static int count_fields(const char *head, const char *name)
{
    char pat[64];
    const char *p = head;
    int n = 0;

    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    while ((p = strstr(p, pat)) != NULL) {
        n++;
        p += strlen(pat);
    }
    return n;
}

/* Read one answer: its head, then the body its Content-Length says (none
 * for HEAD, 1xx, 204, 304). -1 on EOF, error or timeout. */
static int cc_resp(struct cc *c, struct resp *r, int head_req)
{
    char v[64], *e;
    size_t hlen, need;

    memset(r, 0, offsetof(struct resp, body));
    r->cl = -1;
    while ((e = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (cc_fill(c) <= 0)
            return -1;
    hlen = (size_t)(e - c->buf) + 4;
    if (hlen >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    if (head_value(r->head, "Content-Length", v, sizeof(v)))
        r->cl = atol(v);
    need = head_req || r->status < 200 || r->status == 204 || r->status == 304 || r->cl < 0
               ? 0 : (size_t)r->cl;
    if (need > sizeof(r->body))
        return -1;
    while (c->len < hlen + need)
        if (cc_fill(c) <= 0)
            return -1;
    memcpy(r->body, c->buf + hlen, need);
    r->body_len = need;
    memmove(c->buf, c->buf + hlen + need, c->len - hlen - need);
    c->len -= hlen + need;
    return 0;
}

/* 1: the server closed (EOF) within ms; 0: still open; 2: reset; 3: more
 * bytes came. */
static int cc_eof(struct cc *c, int ms)
{
    char b[256];
    ssize_t n;

    if (c->len)
        return 3;
    set_timeout(c->fd, ms);
    n = recv(c->fd, b, sizeof(b), 0);
    set_timeout(c->fd, 3000);
    if (n == 0)
        return 1;
    if (n > 0)
        return 3;
    return errno == ECONNRESET ? 2 : 0;
}

/* The head with the Date value replaced by "X", if it is an IMF-fixdate. */
static const char *masked(const struct resp *r)
{
    static char out[8192];
    const char *d = strstr(r->head, "\r\nDate: ");
    size_t pre;

    if (d == NULL)
        return r->head;
    d += 8;
    pre = (size_t)(d - r->head);
    if (strlen(d) < 31 || d[3] != ',' || memcmp(d + 25, " GMT\r\n", 6) != 0)
        return r->head;
    snprintf(out, sizeof(out), "%.*sX%s", (int)pre, r->head, d + 29);
    return out;
}

static int body_is(const struct resp *r, const char *want)
{
    return r->body_len == strlen(want) && memcmp(r->body, want, r->body_len) == 0;
}

/* The exact answer hs makes to a request it refuses. */
static const char *refusal(int status, const char *phrase, const char *detail)
{
    static char out[512];
    char body[256];

    snprintf(body, sizeof(body), "{\"detail\":\"%s\"}", detail);
    snprintf(out, sizeof(out),
             "HTTP/1.1 %d %s\r\nDate: X\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             status, phrase, strlen(body), body);
    return out;
}

static int full_is(const struct resp *r, const char *want)
{
    char got[sizeof(r->head) + 512];

    snprintf(got, sizeof(got), "%s%.*s", masked(r), (int)r->body_len, r->body);
    if (strcmp(got, want) == 0)
        return 1;
    printf("#   got:  %s\n#   want: %s\n", got, want);
    return 0;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* Send a request on a new connection, read one answer: the refusals. */
static void refused(const char *req, int status, const char *phrase, const char *detail,
                    const char *name)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, req) == 0 && cc_resp(&C1, &R1, 0) == 0;

    tap_ok(ok && full_is(&R1, refusal(status, phrase, detail)), "%s: %d %s, {\"detail\":\"%s\"}",
           name, status, phrase, detail);
    tap_ok(cc_eof(&C1, 2000) == 1, "%s: then the server closes", name);
    cc_close(&C1);
}

/* ---- the tests (client side) ---- */

static unsigned local_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    getsockname(fd, (struct sockaddr *)&sin, &len);
    return ntohs(sin.sin_port);
}

static char want_peer[64];

static void c_get(void)
{
    int ok = cc_open(&C1) == 0;

    snprintf(want_peer, sizeof(want_peer), "127.0.0.1:%u", ok ? local_port(C1.fd) : 0);
    ok = ok && cc_send(&C1, "GET /hello?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-In:  v 1 \r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && full_is(&R1, "HTTP/1.1 200 OK\r\nDate: X\r\nX-Method: GET\r\n"
                              "Content-Length: 11\r\n\r\nhello world"),
           "GET: status line, Date, handler's field, Content-Length 11, body, exact bytes");
    tap_ok(strcmp(masked(&R1), R1.head) != 0, "GET: Date is an IMF-fixdate");
    tap_ok(cc_eof(&C1, 200) == 0, "GET: HTTP/1.1 connection stays open");
    cc_close(&C1);
}

static void c_pipelined(void)
{
    int ok = cc_open(&C1) == 0 &&
             cc_send(&C1, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                          "GET /second HTTP/1.1\r\nHost: t\r\n\r\n") == 0;

    ok = ok && cc_resp(&C1, &R1, 0) == 0 && cc_resp(&C1, &R2, 0) == 0;
    tap_ok(ok && R1.status == 200 && body_is(&R1, "/first"), "pipelined: first answer first");
    tap_ok(ok && R2.status == 200 && body_is(&R2, "/second"), "pipelined: second answer second");
    cc_close(&C1);
}

/* 200 requests in one send: each answer is written inside its handler
 * (write_now), and the next request must still wait for the loop's next
 * turn, in order, without the handlers nesting. */
static void c_pipelined_many(void)
{
    static char reqs[200 * 40];
    size_t n = 0;
    int ok = cc_open(&C1) == 0, i, good = 0;

    for (i = 0; i < 200; i++)
        n += (size_t)snprintf(reqs + n, sizeof(reqs) - n, "GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n",
                              i);
    ok = ok && cc_sendn(&C1, reqs, n) == 0;
    for (i = 0; i < 200 && ok; i++) {
        char want[16];
        snprintf(want, sizeof(want), "/p%d", i);
        ok = cc_resp(&C1, &R1, 0) == 0 && R1.status == 200 && body_is(&R1, want);
        good += ok;
    }
    tap_ok(good == 200, "200 pipelined requests in one send: 200 answers, in order (%d)", good);
    cc_close(&C1);
}

static void c_keepalive(void)
{
    int ok = cc_open(&C1) == 0, i;

    for (i = 0; i < 3 && ok; i++) {
        char req[64], want[16];
        snprintf(req, sizeof(req), "GET /r%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        snprintf(want, sizeof(want), "/r%d", i);
        ok = cc_send(&C1, req) == 0 && cc_resp(&C1, &R1, 0) == 0 && body_is(&R1, want) &&
             count_fields(R1.head, "Connection") == 0;
    }
    tap_ok(ok, "keep-alive: 3 requests answered on one connection, no Connection field");
    ok = ok && cc_send(&C1, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "conns=1 busy=1"), "keep-alive: the server holds one connection");
    ok = ok && cc_send(&C1, "GET /last HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "/last") && count_fields(R1.head, "Connection") == 1 &&
               strstr(R1.head, "\r\nConnection: close\r\n"),
           "Connection: close from the client: answered with Connection: close");
    tap_ok(cc_eof(&C1, 2000) == 1, "Connection: close from the client: then closed");
    cc_close(&C1);
}

static void c_http10(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /ten HTTP/1.0\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    tap_ok(ok && full_is(&R1, "HTTP/1.1 200 OK\r\nDate: X\r\nX-Method: GET\r\n"
                              "Content-Length: 4\r\nConnection: close\r\n\r\n/ten"),
           "HTTP/1.0 without keep-alive: answered with Connection: close");
    tap_ok(cc_eof(&C1, 2000) == 1, "HTTP/1.0 without keep-alive: then closed");
    cc_close(&C1);

    ok = cc_open(&C1) == 0 &&
         cc_send(&C1, "GET /ka HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && strstr(R1.head, "\r\nConnection: keep-alive\r\n") && body_is(&R1, "/ka"),
           "HTTP/1.0 with keep-alive: answered with Connection: keep-alive");
    ok = ok && cc_send(&C1, "GET /ka2 HTTP/1.0\r\n\r\n") == 0 && cc_resp(&C1, &R2, 0) == 0;
    tap_ok(ok && body_is(&R2, "/ka2") && strstr(R2.head, "Connection: close"),
           "HTTP/1.0 with keep-alive: the connection served a second request");
    cc_close(&C1);
}

static void c_bodies(void)
{
    static const char cl_req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
                                 "ab\0cd\r\nefgh";
    int ok = cc_open(&C1) == 0 && cc_sendn(&C1, cl_req, sizeof(cl_req) - 1) == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    tap_ok(ok && R1.status == 200 && R1.body_len == 11 && memcmp(R1.body, "ab\0cd\r\nefgh", 11) == 0,
           "POST with Content-Length: the 11 bytes (NUL, CRLF in them) delivered exactly");
    ok = ok && cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6;ext=\"1\"\r\n world\r\n"
                            "A \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "hello world0123456789"),
           "POST chunked (extension, BWS, trailer): de-chunked exactly");
    /* The same, a few bytes at a time. */
    if (ok) {
        const char *req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n2\ndE\n0\n\n";
        size_t i, n = strlen(req);
        for (i = 0; i < n && ok; i += 7) {
            ok = cc_sendn(&C1, req + i, n - i < 7 ? n - i : 7) == 0;
            pause_ms(5);
        }
        ok = ok && cc_resp(&C1, &R1, 0) == 0;
    }
    tap_ok(ok && body_is(&R1, "abcdE"), "POST chunked in 7-byte pieces, LF line ends: 'abcdE'");
    ok = ok && cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                            "Content-Length: 3\r\n\r\nxyz") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "xyz"), "two equal Content-Length fields: accepted");
    ok = ok && cc_send(&C1, "PURGE /thing HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && strstr(R1.head, "X-Method: PURGE\r\n"), "unknown method reaches the handler");
    cc_close(&C1);
}

static void c_expect(void)
{
    int ok = cc_open(&C1) == 0 &&
             cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                          "Expect: 100-continue\r\n\r\n") == 0;

    ok = ok && cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && strcmp(R1.head, "HTTP/1.1 100 Continue\r\n\r\n") == 0,
           "Expect: 100-continue: 'HTTP/1.1 100 Continue' before the body is sent");
    ok = ok && cc_send(&C1, "abcde") == 0 && cc_resp(&C1, &R2, 0) == 0;
    tap_ok(ok && R2.status == 200 && body_is(&R2, "abcde"), "Expect: 100-continue: then the answer");
    cc_close(&C1);
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: something\r\n\r\n", 417,
            "Expectation Failed", "Expectation failed", "Expect: something");
}

static void c_too_large(void)
{
    int ok = cc_open(&C1) == 0 &&
             cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    tap_ok(ok && full_is(&R1, refusal(413, "Content Too Large", "Request body too large")),
           "Content-Length 101 > max_body 100: 413 before any body byte is sent");
    tap_ok(cc_eof(&C1, 2000) == 1, "413: then the server shuts its side");
    /* Lingering: what the client still sends is read and dropped, so no
     * reset can destroy the answer before the client reads it. */
    if (ok) {
        static char junk[16384];
        memset(junk, 'j', sizeof(junk));
        ok = cc_sendn(&C1, junk, sizeof(junk)) == 0;
        pause_ms(100);
        ok = ok && cc_sendn(&C1, junk, sizeof(junk)) == 0;
        pause_ms(100);
        ok = ok && cc_sendn(&C1, junk, sizeof(junk)) == 0;
    }
    tap_ok(ok, "413: the server still reads (and drops) what the client sends after it");
    cc_close(&C1);

    ok = cc_open(&C1) == 0 &&
         cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n") == 0;
    if (ok) {
        char body[100];
        memset(body, 'b', sizeof(body));
        ok = cc_sendn(&C1, body, sizeof(body)) == 0 && cc_resp(&C1, &R1, 0) == 0;
    }
    tap_ok(ok && R1.status == 200 && R1.body_len == 100, "Content-Length 100 = max_body: accepted");
    cc_close(&C1);

    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "32\r\n01234567890123456789012345678901234567890123456789\r\n"
            "32\r\n01234567890123456789012345678901234567890123456789\r\n"
            "1\r\nx\r\n0\r\n\r\n",
            413, "Content Too Large", "Request body too large", "chunked total 101 > 100");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413,
            "Content Too Large", "Request body too large", "Content-Length past 2^64");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "ffffffffffffffffffffff\r\n",
            413, "Content Too Large", "Request body too large", "chunk size past 2^64");
}

static void c_refusals(void)
{
    char big[2200];

    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
            "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400, "Bad Request", "Both Content-Length and Transfer-Encoding", "CL and TE");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400, "Bad Request", "Both Content-Length and Transfer-Encoding", "TE and CL");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400, "Bad Request", "Conflicting Content-Length", "differing Content-Lengths");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400, "Bad Request",
            "Malformed Content-Length", "Content-Length +3");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", 400, "Bad Request",
            "Malformed Content-Length", "Content-Length list");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
            "Not Implemented", "Transfer-Encoding not supported", "Transfer-Encoding gzip, chunked");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            501, "Not Implemented", "Transfer-Encoding not supported", "two Transfer-Encodings");
    refused("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Bad Request",
            "Transfer-Encoding in an HTTP/1.0 request", "chunked in HTTP/1.0");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
            "Bad Request", "Malformed chunked body", "chunk size 'zz'");
    refused("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400,
            "Bad Request", "Malformed chunked body", "no CRLF after chunk data");
    refused("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n", 400, "Bad Request",
            "Only origin-form request targets are accepted", "absolute-form target");
    refused("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 400, "Bad Request",
            "Only origin-form request targets are accepted", "asterisk-form target");
    refused("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400, "Bad Request",
            "CONNECT is not supported", "CONNECT");
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Bad Request",
            "More than one Host header", "two Host fields");
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "Bad Request", "Malformed header",
            "space before colon");
    refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP Version Not Supported",
            "HTTP version not supported", "HTTP/2.0");

    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 2000, " HTTP/1.1\r\nHost: t\r\n\r\n", 23);
    refused(big, 414, "URI Too Long", "URI too long", "target of 2000 bytes, limit 1024");

    /* Two 2100-byte fields: a head over max_head 4096. */
    memset(big, 'h', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memcpy(big + 2100, "\r\n", 3);
    if (cc_open(&C1) == 0) {
        int ok = cc_send(&C1, big) == 0 && cc_send(&C1, "X-Big2: ") == 0 &&
                 cc_send(&C1, big + 23) == 0 && cc_send(&C1, "\r\n") == 0 &&
                 cc_resp(&C1, &R1, 0) == 0;
        tap_ok(ok && full_is(&R1, refusal(431, "Request Header Fields Too Large",
                                          "Request header fields too large")),
               "head over max_head: 431, {\"detail\":\"Request header fields too large\"}");
        tap_ok(cc_eof(&C1, 2000) == 1, "431: then closed");
        cc_close(&C1);
    }
}

static void c_head_304(void)
{
    int ok = cc_open(&C1) == 0 &&
             cc_send(&C1, "HEAD /status/200 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 1) == 0;

    tap_ok(ok && full_is(&R1, "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 1\r\n\r\n"),
           "HEAD: Content-Length of the body (1), no body bytes");
    ok = ok && cc_send(&C1, "GET /status/304 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && full_is(&R1, "HTTP/1.1 304 Not Modified\r\nDate: X\r\n\r\n"),
           "304: no Content-Length, no body (after a HEAD on the same connection)");
    ok = ok && cc_send(&C1, "GET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && full_is(&R1, "HTTP/1.1 204 No Content\r\nDate: X\r\n\r\n"),
           "204: no Content-Length, no body");
    ok = ok && cc_send(&C1, "GET /status/299 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && full_is(&R1, "HTTP/1.1 299 \r\nDate: X\r\nContent-Length: 1\r\n\r\nx"),
           "an unlisted status: empty reason phrase, body framed; no stray bytes before it");
    ok = ok && cc_send(&C1, "GET /status/42 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && R1.status == 500, "status 42 from the handler becomes 500");
    cc_close(&C1);
}

static void c_hdrs(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /hdrs HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    tap_ok(ok && strcmp(R1.head, "HTTP/1.1 200 OK\r\nX-Ok: v\tw\r\n"
                                 "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
                                 "Content-Length: 2\r\nConnection: close\r\n\r\n") == 0,
           "hs_add_header: refused fields absent, the handler's Date replaces ours, "
           "Content-Length the server's, Connection: close honoured");
    if (!ok || strstr(R1.head, "Injected"))
        printf("#   head: %s\n", R1.head);
    tap_ok(cc_eof(&C1, 2000) == 1, "hs_add_header Connection: close: the connection closes");
    cc_close(&C1);
}

static void c_header_timeout(void)
{
    int64_t t0 = mono_ms(), dt;
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /slow HTTP/1.1\r\nHost: t\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    dt = mono_ms() - t0;
    tap_ok(ok && full_is(&R1, refusal(408, "Request Timeout", "Request timeout")),
           "partial head then nothing: 408");
    tap_ok(dt >= 250 && dt < 1500, "partial head: 408 after header_timeout 300 ms (%lld ms)",
           (long long)dt);
    tap_ok(cc_eof(&C1, 2000) == 1, "408: then closed");
    cc_close(&C1);

    /* Slowloris: a byte every 40 ms never ends the head. */
    t0 = mono_ms();
    ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /slow HTTP/1.1\r\n") == 0;
    while (ok && mono_ms() - t0 < 2000) {
        fd_set rd;
        struct timeval tv = {0, 40 * 1000};
        FD_ZERO(&rd);
        FD_SET(C1.fd, &rd);
        if (select(C1.fd + 1, &rd, NULL, NULL, &tv) > 0)
            break;
        if (send(C1.fd, "X", 1, MSG_NOSIGNAL) != 1)
            break;
    }
    ok = ok && cc_resp(&C1, &R1, 0) == 0;
    dt = mono_ms() - t0;
    tap_ok(ok && R1.status == 408 && dt >= 250 && dt < 1500,
           "slowloris (a header byte every 40 ms): 408 after header_timeout (%lld ms)",
           (long long)dt);
    cc_close(&C1);

    /* A fresh connection that sends nothing: closed without an answer. */
    t0 = mono_ms();
    ok = cc_open(&C1) == 0 && cc_eof(&C1, 2000) == 1;
    dt = mono_ms() - t0;
    tap_ok(ok && dt >= 250 && dt < 1500, "silent connection: closed after header_timeout (%lld ms)",
           (long long)dt);
    cc_close(&C1);

    /* A body that stops. */
    t0 = mono_ms();
    ok = cc_open(&C1) == 0 &&
         cc_send(&C1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    dt = mono_ms() - t0;
    tap_ok(ok && R1.status == 408 && dt >= 250 && dt < 1500,
           "body stalls after 5 of 10 bytes: 408 after body_timeout (%lld ms)", (long long)dt);
    cc_close(&C1);
}

static void c_idle(void)
{
    int64_t t0, dt;
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0;

    t0 = mono_ms();
    ok = ok && cc_eof(&C1, 2000) == 1;
    dt = mono_ms() - t0;
    tap_ok(ok && R1.status == 200 && dt >= 250 && dt < 1500,
           "idle keep-alive connection: closed silently after idle_timeout 300 ms (%lld ms)",
           (long long)dt);
    cc_close(&C1);
}

static void c_max_connections(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0 && cc_open(&C2) == 0 &&
             cc_send(&C2, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 && cc_resp(&C2, &R2, 0) == 0;

    tap_ok(ok, "max_connections 2: two connections served");
    ok = ok && cc_open(&C3) == 0;
    tap_ok(ok, "max_connections 2: a third connect succeeds (the kernel queues it)");
    ok = ok && cc_send(&C3, "GET /3 HTTP/1.1\r\nHost: t\r\n\r\n") == 0;
    set_timeout(C3.fd, 400);
    tap_ok(ok && cc_fill(&C3) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
           "max_connections 2: the third is not served while two are open");
    set_timeout(C3.fd, 3000);
    ok = ok && cc_send(&C1, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "conns=2 busy=1"), "max_connections 2: the server holds 2");
    cc_close(&C1);
    ok = ok && cc_resp(&C3, &R3, 0) == 0;
    tap_ok(ok && body_is(&R3, "/3"), "max_connections 2: the third is served once one closes");
    cc_close(&C2);
    cc_close(&C3);
}

static void c_gone(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n") == 0;

    pause_ms(100);
    cc_close(&C1);
    tap_ok(ok, "client sent a request and closed before its answer");
    pause_ms(500);
}

static void c_gone_then_free(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n") == 0;

    pause_ms(100);
    cc_close(&C1);
    pause_ms(50);
    tap_ok(ok, "client sent a request and closed (hs_free comes next)");
}

static void c_zero_copy(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /zc HTTP/1.1\r\nHost: t\r\n\r\n") == 0;
    size_t got = 0, hlen = 0, i;
    int same = 1;
    char *e = NULL;

    pause_ms(300);
    __atomic_store_n(&client_reading, 1, __ATOMIC_SEQ_CST);
    while (ok && (e = memmem(C1.buf, C1.len, "\r\n\r\n", 4)) == NULL)
        ok = cc_fill(&C1) > 0;
    if (ok) {
        hlen = (size_t)(e - C1.buf) + 4;
        ok = strstr(C1.buf, "Content-Length: 16777216\r\n") != NULL;
    }
    got = ok ? C1.len - hlen : 0;
    for (i = 0; i < got; i++)
        same &= C1.buf[hlen + i] == zc_data[i];
    while (ok && got < ZC_LEN) {
        ssize_t n = recv(C1.fd, C1.buf, sizeof(C1.buf), 0);
        if (n <= 0)
            break;
        for (i = 0; i < (size_t)n && got + i < ZC_LEN; i++)
            same &= C1.buf[i] == zc_data[got + i];
        got += (size_t)n;
    }
    tap_ok(ok && got == ZC_LEN && same, "zero-copy: 16 MiB body received exactly (%zu bytes)", got);
    cc_close(&C1);
}

static void c_write_timeout(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /zc HTTP/1.1\r\nHost: t\r\n\r\n") == 0;

    /* Read nothing: the server's writes stall. */
    pause_ms(1200);
    ok = ok && cc_open(&C2) == 0 && cc_send(&C2, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C2, &R2, 0) == 0;
    tap_ok(ok && body_is(&R2, "conns=1 busy=1"),
           "write_timeout: a client that reads nothing is dropped (%s)", ok ? R2.body : "-");
    cc_close(&C1);
    cc_close(&C2);
}

static void c_drain(void)
{
    int ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C1, &R1, 0) == 0 && cc_open(&C2) == 0 &&
             cc_send(&C2, "GET /drain HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
             cc_resp(&C2, &R2, 0) == 0;

    tap_ok(ok && body_is(&R2, "draining") && strstr(R2.head, "\r\nConnection: close\r\n"),
           "drain: the answer being made says Connection: close");
    tap_ok(ok && cc_eof(&C2, 2000) == 1, "drain: that connection closes after its answer");
    tap_ok(ok && cc_eof(&C1, 500) == 1, "drain: an idle keep-alive connection is closed at once");
    tap_ok(cc_open(&C3) != 0 && errno == ECONNREFUSED, "drain: new connections are refused");
    cc_close(&C1);
    cc_close(&C2);
    cc_close(&C3);
}

static void c_unix(void)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/t_hs.%d.sock", (int)getpid());
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    C1.fd = fd;
    C1.len = 0;
    set_timeout(fd, 3000);
    ok = ok && cc_send(&C1, "GET /u HTTP/1.1\r\nHost: t\r\n\r\n") == 0 && cc_resp(&C1, &R1, 0) == 0;
    tap_ok(ok && body_is(&R1, "/u"), "unix socket: served");
    cc_close(&C1);
}

static int emfile_limit_ok;

static void c_emfile(void)
{
    struct rlimit old, low;
    struct rusage u0, u1;
    int ok, probe;
    int64_t cpu;

    ok = cc_open(&C1) == 0 && cc_send(&C1, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_resp(&C1, &R1, 0) == 0;
    getrlimit(RLIMIT_NOFILE, &old);
    probe = socket(AF_INET, SOCK_STREAM, 0);    /* the lowest free descriptor */
    if (probe >= 0)
        close(probe);
    /* Room for the two client sockets below and not for the server's. */
    low = old;
    low.rlim_cur = (rlim_t)probe + 2;
    emfile_limit_ok = ok && setrlimit(RLIMIT_NOFILE, &low) == 0;
    /* Both sockets first: the server accepts as soon as one connects. */
    C2.fd = socket(AF_INET, SOCK_STREAM, 0);
    C3.fd = socket(AF_INET, SOCK_STREAM, 0);
    ok = emfile_limit_ok && cc_connect(&C2) == 0 && cc_connect(&C3) == 0 &&
         cc_send(&C2, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         cc_send(&C3, "GET /c HTTP/1.1\r\nHost: t\r\n\r\n") == 0;
    tap_ok(ok, "EMFILE: two clients connected with the fd limit at the brim");
    getrusage(RUSAGE_SELF, &u0);
    pause_ms(600);
    getrusage(RUSAGE_SELF, &u1);
    cpu = (int64_t)(u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec -
                    u0.ru_stime.tv_sec) * 1000 +
          (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec + u1.ru_stime.tv_usec -
           u0.ru_stime.tv_usec) / 1000;
    tap_ok(ok && cpu < 100, "EMFILE: accept fails and the server does not spin (%lld ms CPU in 600 ms)",
           (long long)cpu);
    setrlimit(RLIMIT_NOFILE, &old);
    ok = ok && cc_resp(&C2, &R2, 0) == 0 && cc_resp(&C3, &R3, 0) == 0;
    tap_ok(ok && body_is(&R2, "/b") && body_is(&R3, "/c"),
           "EMFILE: both served once descriptors are free again");
    cc_close(&C1);
    cc_close(&C2);
    cc_close(&C3);
}

/* ---- main: each test with its own server ---- */

static void t_get(void)
{
    serve(&slow);
    run(c_get);
    tap_ok(H.calls == 1 && H.method == HS_GET && strcmp(H.method_name, "GET") == 0,
           "handler: one GET, method HS_GET, method_name GET");
    tap_is_str(H.target, "/hello?x=1&y=%20", "handler: target as sent");
    tap_is_str(H.path, "/hello", "handler: path up to '?'");
    tap_ok(H.has_query && strcmp(H.query, "x=1&y=%20") == 0, "handler: query after '?', not decoded");
    tap_is_str(H.xin, "v 1", "handler: hs_header is case-insensitive, value trimmed");
    tap_is_str(H.peer, want_peer, "handler: peer is the client's ip:port");
    tap_ok(H.minor == 1 && H.body_len == 0, "handler: HTTP/1.1, empty body");
    tap_ok(hs_busy(srv) == 0, "hs_busy is 0 once answered");
    stop();
}

static void t_simple(void (*fn)(void), const struct hs_limits *lim)
{
    serve(lim);
    run(fn);
    stop();
}

static void t_pipelined_many(void)
{
    serve(&slow);
    run(c_pipelined_many);
    tap_ok(H.calls == 200, "and the handler ran once for each (%d)", H.calls);
    stop();
}

static void t_keepalive(void)
{
    serve(&slow);
    run(c_keepalive);
    tap_ok(H.calls == 5 && strcmp(H.peers[0], H.peers[1]) == 0 &&
               strcmp(H.peers[1], H.peers[2]) == 0,
           "keep-alive: the handler saw one peer for all requests");
    stop();
}

static void t_bodies(void)
{
    serve(&slow);
    run(c_bodies);
    tap_ok(H.method == HS_OTHER && strcmp(H.method_name, "PURGE") == 0,
           "unknown method: HS_OTHER, method_name PURGE");
    stop();
}

static void t_refusals(void)
{
    const struct rej *e;
    int i;

    serve(&slow);
    run(c_refusals);
    tap_ok(H.calls == 0, "refusals: the handler was never called");
    tap_ok(REJ.calls == 18, "reject callback: told of each of the 18 refusals (%d)", REJ.calls);
    e = rej_find(414);
    tap_ok(e && e->has_method && strcmp(e->method, "GET") == 0 && strlen(e->target) == 255 &&
               strncmp(e->target, "/aaa", 4) == 0,
           "reject callback: 414 with method GET and the target cut to 255 bytes");
    for (i = 0; i < REJ.calls && i < REJ_LOG; i++)
        if (strcmp(REJ.log[i].target, "http://example.com/x") == 0)
            break;
    tap_ok(i < REJ.calls && REJ.log[i].status == 400 && strcmp(REJ.log[i].method, "GET") == 0 &&
               strncmp(REJ.log[i].peer, "127.0.0.1:", 10) == 0,
           "reject callback: status, method, target, peer of the absolute-form request");
    e = rej_find(501);
    tap_ok(e && strcmp(e->method, "POST") == 0 && strcmp(e->target, "/echo") == 0,
           "reject callback: 501 with method and target");
    stop();
}

static void t_hdrs(void)
{
    serve(&slow);
    run(c_hdrs);
    tap_ok(H.add[0] == -1 && H.add[1] == -1 && H.add[2] == -1 && H.add[3] == -1,
           "hs_add_header: -1 for a bad name, CRLF, a control byte, an empty name");
    tap_ok(H.add[4] == 0 && H.add[5] == 0 && H.add[6] == 0 && H.add[7] == 0,
           "hs_add_header: 0 for Content-Length (ignored), HTAB in a value, Date, Connection");
    stop();
}

static void t_timeouts(void)
{
    serve(&fast);
    run(c_header_timeout);
    tap_ok(REJ.calls == 3 && REJ.status == 408 && strcmp(REJ.method, "POST") == 0 &&
               strcmp(REJ.target, "/echo") == 0,
           "reject callback: told of each 408 (%d)", REJ.calls);
    stop();
    serve(&fast);
    run(c_idle);
    tap_ok(REJ.calls == 0, "idle close: no reject callback");
    stop();
}

static void t_max_connections(void)
{
    struct hs_limits lim = slow;

    lim.max_connections = 2;
    serve(&lim);
    run(c_max_connections);
    stop();
}

static void t_gone(void)
{
    serve(&slow);
    defer_gone = -1;
    defer_done = 0;
    run(c_gone);
    loop_until(&defer_done);
    tap_ok(defer_gone == 1, "client gone before the answer: hs_req_gone is true");
    tap_ok(defer_busy_after == 0 && defer_conns_after == 0,
           "client gone: after hs_send, busy 0 and connections 0");
    stop();

    /* hs_free while the request is still with the handler. */
    serve(&slow);
    defer_done = 0;
    defer_gone = -1;
    run(c_gone_then_free);
    tap_ok(hs_busy(srv) == 1 && hs_connections(srv) == 0,
           "client gone: the request is still with the handler, no connection open");
    stop();
    loop_until(&defer_done);
    tap_ok(defer_gone == 1, "hs_free first: the late hs_send only frees (LeakSanitizer checks)");
}

static void t_zero_copy(void)
{
    size_t i;

    zc_data = malloc(ZC_LEN);
    for (i = 0; i < ZC_LEN; i++)
        zc_data[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    serve(&slow);
    zc_cleanups = 0;
    run(c_zero_copy);
    tap_ok(zc_after_send == 0 && zc_after_free == 0,
           "zero-copy: the reference's cleanup has not run after hs_send and evbuffer_free");
    tap_ok(zc_cleanups == 1 && zc_cleaned_before_read == 0,
           "zero-copy: cleanup ran once, only after the client began to read");
    stop();

    serve(&fast);
    zc_cleanups = 0;
    run(c_write_timeout);
    tap_ok(zc_cleanups == 1, "write_timeout: the unwritten body was released");
    stop();
    free(zc_data);
    zc_data = NULL;
}

static void t_unix(void)
{
    char path[108], addr[128], err[256];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/t_hs.%d.sock", (int)getpid());
    f = fopen(path, "w");
    if (f)
        fclose(f);
    snprintf(addr, sizeof(addr), "unix:%s", path);
    serve(&slow);
    tap_ok(hs_listen(srv, addr, 0, err, sizeof(err)) == 0,
           "hs_listen unix: a stale file at the path is replaced");
    run(c_unix);
    tap_is_str(H.peer, "unix", "unix socket: peer is \"unix\"");
    stop();
    unlink(path);
}

static void t_listen_errors(void)
{
    struct hs_server *s = hs_new(base, NULL, handler, NULL, NULL);
    char err[256];

    err[0] = '\0';
    tap_ok(hs_listen(s, "nonsense", 0, err, sizeof(err)) == -1 && err[0],
           "hs_listen 'nonsense': -1 (%s)", err);
    tap_ok(hs_listen(s, "127.0.0.1:99999", 0, err, sizeof(err)) == -1, "hs_listen port 99999: -1 (%s)",
           err);
    tap_ok(hs_listen(s, "127.0.0.1:", 0, err, sizeof(err)) == -1, "hs_listen empty port: -1");
    tap_ok(hs_port(s) == 0, "hs_port without a TCP listener: 0");
    tap_ok(hs_listen(s, "[::1]:0", 1, err, sizeof(err)) == 0 ? hs_port(s) != 0 : 1,
           "hs_listen [::1]:0 with reuseport (if IPv6 is there): a port");
    hs_free(s);
}

static void t_emfile(void)
{
    serve(&slow);
    run(c_emfile);
    stop();
}

int main(void)
{
    struct event *done_ev;

    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL || pipe(done_pipe) != 0) {
        printf("Bail out! setup\n");
        return 1;
    }
    done_ev = event_new(base, done_pipe[0], EV_READ | EV_PERSIST, on_done, NULL);
    event_add(done_ev, NULL);
    defer_ev = evtimer_new(base, on_defer, NULL);

    t_get();
    t_simple(c_pipelined, &slow);
    t_pipelined_many();
    t_keepalive();
    t_simple(c_http10, &slow);
    t_bodies();
    t_simple(c_expect, &slow);
    t_simple(c_too_large, &slow);
    t_refusals();
    t_simple(c_head_304, &slow);
    t_hdrs();
    t_timeouts();
    t_max_connections();
    t_gone();
    t_zero_copy();
    t_simple(c_drain, &slow);
    t_unix();
    t_listen_errors();
    t_emfile();

    event_free(defer_ev);
    event_free(done_ev);
    event_base_free(base);
    close(done_pipe[0]);
    close(done_pipe[1]);
    return tap_done();
}
