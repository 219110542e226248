/* t_redis_conn: one Redis connection (src/redis_conn.c) against a fake
 * server in the same process, so that every answer, silence and hang-up is
 * the test's to choose: the handshake (AUTH with the URL's user and
 * password, SELECT, PING) and when the connection says it is up; a reply
 * reaching its command's callback exactly once; a command with no answer
 * dropping the connection at its deadline, its callback answered NULL once,
 * and the reconnect after the backoff; a refused AUTH; free with commands
 * in flight and free from inside a reply callback; the subscribed mode
 * (SUBSCRIBE, messages, the heartbeat, a missed heartbeat); Sentinel's two
 * hooks (retarget to another address or to nowhere, the ROLE step that
 * requires a master); the transport (many commands written in one go and
 * answered in order, a reply read across many reads, a unix socket, a
 * reply to no command and bytes that are not RESP dropping the
 * connection). Redis itself is t_store_redis's
 * (tests/integration/store_redis.py), TLS redis_tls.py's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_url.h"
#include "tap.h"

#define TIMEOUT_MS 150

static struct event_base *base;

/* ---- the fake server: one client at a time, commands in RESP arrays ---- */

struct fake {
    struct evconnlistener *lev;
    struct bufferevent *bev;     /* the client, NULL when none */
    int port;
    int accepts;
    int silent;                  /* read commands, answer nothing */
    int refuse_auth;
    const char *role;            /* ROLE's first element */
    char log[4096];              /* every command, "ARG ARG|..." */
};

static struct fake fk;

/* One complete command at the front of in, as "A B C" in out; 1, or 0
 * when it is not all there yet. */
static int take_command(struct evbuffer *in, char *out, size_t cap)
{
    size_t len = evbuffer_get_length(in), pos, o = 0;
    char *p = (char *)evbuffer_pullup(in, -1), *e;
    long n, i, l;

    if (len < 4 || p[0] != '*')
        return 0;
    n = strtol(p + 1, &e, 10);
    pos = (size_t)(e - p) + 2;
    for (i = 0; i < n; i++) {
        if (pos >= len || p[pos] != '$')
            return 0;
        l = strtol(p + pos + 1, &e, 10);
        pos = (size_t)(e - p) + 2;
        if (pos + (size_t)l + 2 > len)
            return 0;
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? " " : "", (int)l, p + pos);
        pos += (size_t)l + 2;
    }
    evbuffer_drain(in, pos);
    return 1;
}

/* A bulk string of n bytes, 'a' to 'z' over and over. */
static void big_reply(struct evbuffer *out, size_t n)
{
    size_t i;

    evbuffer_add_printf(out, "$%zu\r\n", n);
    for (i = 0; i < n; i++)
        evbuffer_add(out, &"abcdefghijklmnopqrstuvwxyz"[i % 26], 1);
    evbuffer_add(out, "\r\n", 2);
}

static void fake_answer(const char *cmd)
{
    struct evbuffer *out = bufferevent_get_output(fk.bev);

    if (strncmp(cmd, "AUTH", 4) == 0)
        evbuffer_add_printf(out, fk.refuse_auth ? "-WRONGPASS pw-s3cret is wrong\r\n"
                                                : "+OK\r\n");
    else if (strncmp(cmd, "SELECT", 6) == 0)
        evbuffer_add_printf(out, "+OK\r\n");
    else if (strcmp(cmd, "ROLE") == 0)
        evbuffer_add_printf(out, "*1\r\n$%zu\r\n%s\r\n", strlen(fk.role), fk.role);
    else if (strcmp(cmd, "PING") == 0)
        evbuffer_add_printf(out, "+PONG\r\n");
    else if (strncmp(cmd, "SUBSCRIBE ", 10) == 0)
        evbuffer_add_printf(out, "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n",
                            strlen(cmd + 10), cmd + 10);
    else if (strncmp(cmd, "ECHO ", 5) == 0)
        evbuffer_add_printf(out, "$%zu\r\n%s\r\n", strlen(cmd + 5), cmd + 5);
    else if (strncmp(cmd, "BIG ", 4) == 0)
        big_reply(out, (size_t)atol(cmd + 4));
    else if (strcmp(cmd, "TWICE") == 0)
        evbuffer_add_printf(out, "+OK\r\n+OK\r\n");
    else if (strcmp(cmd, "GARBAGE") == 0)
        evbuffer_add_printf(out, "!not resp\r\n");
    else
        evbuffer_add_printf(out, "-ERR unknown\r\n");
}

static void fake_read(struct bufferevent *bev, void *arg)
{
    char cmd[512];

    while (take_command(bufferevent_get_input(bev), cmd, sizeof(cmd))) {
        size_t n = strlen(fk.log);

        snprintf(fk.log + n, sizeof(fk.log) - n, "%s|", cmd);
        if (!fk.silent)
            fake_answer(cmd);
    }
}

static void fake_close(void)
{
    if (fk.bev != NULL)
        bufferevent_free(fk.bev);
    fk.bev = NULL;
}

static void fake_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_close();
}

static void fake_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
    fake_close();
    fk.accepts++;
    fk.bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(fk.bev, fake_read, NULL, fake_event, NULL);
    bufferevent_enable(fk.bev, EV_READ | EV_WRITE);
}

static void fake_start(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(&fk, 0, sizeof(fk));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fk.lev = evconnlistener_new_bind(base, fake_accept, NULL,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof(sin));
    if (fk.lev == NULL) {
        printf("Bail out! cannot listen on loopback\n");
        exit(1);
    }
    getsockname(evconnlistener_get_fd(fk.lev), (struct sockaddr *)&sin, &len);
    fk.port = ntohs(sin.sin_port);
}

static void fake_start_unix(const char *path)
{
    struct sockaddr_un sun;

    memset(&fk, 0, sizeof(fk));
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    unlink(path);
    fk.lev = evconnlistener_new_bind(base, fake_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 16,
                                     (struct sockaddr *)&sun, sizeof(sun));
    if (fk.lev == NULL) {
        printf("Bail out! cannot listen on %s\n", path);
        exit(1);
    }
}

static void fake_stop(void)
{
    fake_close();
    evconnlistener_free(fk.lev);
}

/* ---- the owner ---- */

struct owner {
    int ups, agains, downs, firsts, was_ups, messages;
    char last_why[200], last_msg[64];
};

static void own_up(void *arg, int again)
{
    struct owner *o = arg;

    o->ups++;
    o->agains += again;
}

static void own_down(void *arg, const struct redis_conn_down *d)
{
    struct owner *o = arg;

    o->downs++;
    o->firsts += d->first;
    o->was_ups += d->was_up;
    snprintf(o->last_why, sizeof(o->last_why), "%s", d->why);
}

static void own_message(void *arg, const char *msg, size_t len)
{
    struct owner *o = arg;

    o->messages++;
    snprintf(o->last_msg, sizeof(o->last_msg), "%.*s", (int)len, msg);
}

static const struct redis_conn_cbs cbs = {own_up, own_down, own_message};

struct answer {
    int calls, was_null;
    char str[64];
    struct redis_conn **free_me; /* free this connection from the callback */
};

static void on_answer(void *arg, const redisReply *r)
{
    struct answer *a = arg;

    a->calls++;
    a->was_null = r == NULL;
    if (r != NULL && r->str != NULL)
        snprintf(a->str, sizeof(a->str), "%s", r->str);
    if (a->free_me != NULL && *a->free_me != NULL) {
        redis_conn_free(*a->free_me);
        *a->free_me = NULL;
    }
}

static int echo(struct redis_conn *c, const char *word, struct answer *a)
{
    const char *argv[2] = {"ECHO", word};
    size_t lens[2] = {4, strlen(word)};

    return redis_conn_send(c, "ECHO", 2, argv, lens, NULL, on_answer, a);
}

/* The loop turns at least every 2 ms (tick), so that the waits below
 * block in it instead of spinning. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *flag reaches want or ms pass. */
static int wait_for(const int *flag, int want, int ms)
{
    int64_t end = mono_ms() + ms;

    while (*flag < want && mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    return *flag >= want;
}

static void run_ms(int ms)
{
    int never = 0;

    wait_for(&never, 1, ms);
}

static int wait_until(int (*done)(void), int ms)
{
    int64_t end = mono_ms() + ms;

    while (!done() && mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    return done();
}

static int heartbeat_seen(void)
{
    return strstr(fk.log, "SUBSCRIBE lcg:e|SUBSCRIBE lcg:e|") != NULL;
}

static void url_for(struct redis_url *u, const char *fmt)
{
    char url[128];
    const char *why;

    snprintf(url, sizeof(url), fmt, fk.port);
    if (redis_url_parse(url, u, &why) != 0) {
        printf("Bail out! %s: %s\n", url, why);
        exit(1);
    }
}

static void check_commands(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct answer a = {0}, b = {0};
    struct redis_conn *c;

    fake_start();
    url_for(&u, "redis://lcgate:pw-s3cret@127.0.0.1:%d/3");
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, NULL, &cbs, &o);
    tap_ok(c != NULL && redis_conn_state(c) == RC_CONNECTING && o.ups == 0 && o.downs == 0,
           "a new connection is connecting, and has said nothing yet");
    tap_ok(echo(c, "early", &a) == -1 && a.calls == 0,
           "a command before it is up is refused, its callback never called");
    tap_ok(wait_for(&o.ups, 1, 2000) && redis_conn_state(c) == RC_UP && o.agains == 0,
           "it comes up (not 'again')");
    tap_is_str(fk.log, "AUTH lcgate pw-s3cret|SELECT 3|PING|",
               "the handshake: AUTH user password, SELECT, PING");
    tap_ok(echo(c, "hello", &a) == 0 && a.calls == 0, "a command is sent, not answered inside");
    tap_ok(wait_for(&a.calls, 1, 2000) && strcmp(a.str, "hello") == 0,
           "its reply reaches its callback");
    run_ms(50);
    tap_ok(a.calls == 1, "exactly once (%d)", a.calls);

    fk.silent = 1;
    echo(c, "lost", &b);
    tap_ok(wait_for(&b.calls, 1, TIMEOUT_MS + 1000) && b.was_null && o.downs == 1 &&
               o.was_ups == 1 && o.firsts == 1 && redis_conn_state(c) == RC_DOWN,
           "a command with no answer is answered NULL at its deadline, and the connection "
           "is down");
    tap_ok(strstr(o.last_why, "ECHO got no answer within") != NULL, "saying why (%s)",
           o.last_why);
    tap_ok(redis_conn_stats(c)->timeouts == 1, "one timeout counted");
    fk.silent = 0;
    tap_ok(wait_for(&o.ups, 2, 2000) && o.agains == 1 && fk.accepts == 2,
           "it reconnects by itself after the backoff, 'again'");
    run_ms(50);
    tap_ok(b.calls == 1, "the lost command's callback fired once (%d)", b.calls);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    fk.silent = 1;
    echo(c, "one", &a);
    echo(c, "two", &b);
    redis_conn_free(c);
    tap_ok(a.calls == 1 && a.was_null && b.calls == 1 && b.was_null,
           "free answers every command in flight with NULL before it returns");
    run_ms(50);
    tap_ok(a.calls == 1 && b.calls == 1, "and never again");
    redis_url_clear(&u);
    fake_stop();
}

static void check_free_in_reply(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct answer a = {0}, b = {0};
    struct redis_conn *c;

    fake_start();
    url_for(&u, "redis://127.0.0.1:%d");
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, NULL, &cbs, &o);
    wait_for(&o.ups, 1, 2000);
    tap_is_str(fk.log, "PING|", "no password, database 0: PING alone");
    a.free_me = &c;
    echo(c, "first", &a);
    echo(c, "second", &b);
    wait_for(&a.calls, 1, 2000);
    tap_ok(c == NULL && a.calls == 1 && !a.was_null && b.calls == 1 && b.was_null,
           "freed from a reply callback: the next command is answered NULL at once");
    run_ms(50);
    tap_ok(a.calls == 1 && b.calls == 1, "and nothing fires after (%d, %d)", a.calls,
           b.calls);
    redis_url_clear(&u);
    fake_stop();
}

static void check_refused_auth(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct redis_conn *c;

    fake_start();
    fk.refuse_auth = 1;
    url_for(&u, "redis://:pw-s3cret@127.0.0.1:%d");
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, NULL, &cbs, &o);
    tap_ok(wait_for(&o.downs, 1, 2000) && o.ups == 0 && o.firsts == 1 && o.was_ups == 0 &&
               redis_conn_state(c) == RC_DOWN,
           "a refused AUTH: down, never up");
    tap_ok(strstr(o.last_why, "AUTH failed") != NULL && strstr(o.last_why, "s3cret") == NULL,
           "saying why without the password (%s)", o.last_why);
    tap_ok(wait_for(&o.downs, 2, 2000) && o.firsts == 1,
           "it retries, and only the first failure is 'first'");
    redis_conn_free(c);
    redis_url_clear(&u);
    fake_stop();
}

static void push_message(const char *msg)
{
    evbuffer_add_printf(bufferevent_get_output(fk.bev),
                        "*3\r\n$7\r\nmessage\r\n$5\r\nlcg:e\r\n$%zu\r\n%s\r\n", strlen(msg), msg);
}

static void check_subscribed(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct redis_conn *c;

    fake_start();
    url_for(&u, "redis://:pw@127.0.0.1:%d/5");
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, "lcg:e", &cbs, &o);
    tap_ok(wait_for(&o.ups, 1, 2000) && redis_conn_state(c) == RC_UP,
           "subscribed: up once the SUBSCRIBE is confirmed");
    tap_is_str(fk.log, "AUTH pw|SUBSCRIBE lcg:e|", "AUTH, then SUBSCRIBE (no SELECT, no PING)");
    push_message("hi there");
    tap_ok(wait_for(&o.messages, 1, 2000) && strcmp(o.last_msg, "hi there") == 0,
           "a message reaches the owner");
    wait_until(heartbeat_seen, REDIS_CONN_HEARTBEAT_MS + 1000);
    run_ms(TIMEOUT_MS + 50);
    tap_ok(heartbeat_seen() && o.downs == 0 && redis_conn_stats(c)->heartbeats == 1,
           "the heartbeat re-sends SUBSCRIBE, and its confirmation keeps it up");
    fk.silent = 1;
    tap_ok(wait_for(&o.downs, 1, REDIS_CONN_HEARTBEAT_MS + TIMEOUT_MS + 1000) &&
               o.was_ups == 1 && strstr(o.last_why, "heartbeat") != NULL,
           "a heartbeat with no answer drops it (%s)", o.last_why);
    fk.silent = 0;
    tap_ok(wait_for(&o.ups, 2, 2000), "and it subscribes again by itself");
    redis_conn_free(c);
    redis_url_clear(&u);
    fake_stop();
}

static void check_retarget_role(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct redis_conn *c;

    fake_start();
    fk.role = "slave";
    url_for(&u, "redis://:pw@127.0.0.1:1/3");
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, NULL, &cbs, &o);
    redis_conn_require_master(c);
    redis_conn_retarget(c, NULL, 0);
    run_ms(300);
    tap_ok(o.ups == 0 && o.downs == 0 && fk.accepts == 0 && redis_conn_state(c) == RC_CONNECTING,
           "retargeted to nowhere: it connects nowhere, and says nothing");
    redis_conn_retarget(c, "127.0.0.1", fk.port);
    tap_ok(wait_for(&o.downs, 1, 2000) && o.ups == 0 && fk.accepts == 1 &&
               strstr(o.last_why, "ROLE says slave, not master") != NULL,
           "retargeted to host:port: it connects there, and a replica is refused (%s)",
           o.last_why);
    tap_ok(strncmp(fk.log, "AUTH pw|ROLE|", 13) == 0,
           "the URL's password is kept, then ROLE (%s)", fk.log);
    fk.role = "master";
    tap_ok(wait_for(&o.ups, 1, 2000) && redis_conn_state(c) == RC_UP,
           "once ROLE says master, it is up");
    tap_ok(strstr(fk.log, "AUTH pw|ROLE|SELECT 3|PING|") != NULL,
           "the handshake: AUTH, ROLE, SELECT, PING");
    fk.log[0] = '\0';
    redis_conn_retarget(c, "127.0.0.1", fk.port);
    tap_ok(o.downs == 2 && redis_conn_state(c) == RC_DOWN,
           "retargeting an up connection drops it at once");
    tap_ok(wait_for(&o.ups, 2, 2000) && fk.accepts == 3, "and it comes up at the new address");
    redis_conn_free(c);
    redis_url_clear(&u);
    fake_stop();
}

struct big {
    int calls;
    size_t len;
    int intact;
};

static void on_big(void *arg, const redisReply *r)
{
    struct big *b = arg;
    size_t i;

    b->calls++;
    b->len = r != NULL && r->type == REDIS_REPLY_STRING ? r->len : 0;
    b->intact = b->len > 0;
    for (i = 0; i < b->len; i++)
        b->intact &= r->str[i] == "abcdefghijklmnopqrstuvwxyz"[i % 26];
}

static int send_word(struct redis_conn *c, const char *word, redis_conn_reply_cb cb, void *arg)
{
    const char *argv[1] = {word};
    size_t lens[1] = {strlen(word)};

    return redis_conn_send(c, word, 1, argv, lens, NULL, cb, arg);
}

#define MANY 3000

static void check_transport(void)
{
    static struct answer many[MANY];
    static char words[MANY][16];
    struct owner o = {0};
    struct redis_url u;
    struct redis_conn *c;
    struct big b = {0};
    const char *argv[2];
    size_t lens[2];
    int i, sent = 0, in_order = 1, once = 1;

    fake_start();
    url_for(&u, "redis://127.0.0.1:%d");
    c = redis_conn_new(base, &u, NULL, 2000, NULL, &cbs, &o);
    wait_for(&o.ups, 1, 2000);
    for (i = 0; i < MANY; i++) {
        snprintf(words[i], sizeof(words[i]), "w%d", i);
        sent += echo(c, words[i], &many[i]) == 0;
    }
    wait_for(&many[MANY - 1].calls, 1, 5000);
    for (i = 0; i < MANY; i++) {
        in_order &= strcmp(many[i].str, words[i]) == 0;
        once &= many[i].calls == 1;
    }
    tap_ok(sent == MANY && in_order && once && o.downs == 0,
           "%d commands sent at once (more than one write) are answered in order, each once",
           MANY);
    argv[0] = "BIG", lens[0] = 3;
    argv[1] = "300000", lens[1] = 6;
    redis_conn_send(c, "BIG", 2, argv, lens, NULL, on_big, &b);
    wait_for(&b.calls, 1, 5000);
    tap_ok(b.calls == 1 && b.len == 300000 && b.intact,
           "a 300000-byte reply, read in many pieces, arrives whole (%zu)", b.len);
    memset(many, 0, sizeof(many));
    send_word(c, "TWICE", on_answer, &many[0]);
    tap_ok(wait_for(&o.downs, 1, 2000) && many[0].calls == 1 && !many[0].was_null &&
               strstr(o.last_why, "a reply to no command") != NULL,
           "a reply to no command drops the connection (%s)", o.last_why);
    wait_for(&o.ups, 2, 2000);
    send_word(c, "GARBAGE", on_answer, &many[1]);
    tap_ok(wait_for(&o.downs, 2, 2000) && many[1].calls == 1 && many[1].was_null &&
               strstr(o.last_why, "protocol error") != NULL,
           "bytes that are not RESP drop it, the command answered NULL (%s)", o.last_why);
    redis_conn_free(c);
    redis_url_clear(&u);
    fake_stop();
}

static void check_unix(void)
{
    struct owner o = {0};
    struct redis_url u;
    struct answer a = {0};
    struct redis_conn *c;
    char path[64], url[96];
    const char *why;

    snprintf(path, sizeof(path), "/tmp/t_redis_conn.%ld.sock", (long)getpid());
    snprintf(url, sizeof(url), "unix://:pw@%s?db=2", path);
    fake_start_unix(path);
    if (redis_url_parse(url, &u, &why) != 0) {
        printf("Bail out! %s: %s\n", url, why);
        exit(1);
    }
    c = redis_conn_new(base, &u, NULL, TIMEOUT_MS, NULL, &cbs, &o);
    tap_ok(wait_for(&o.ups, 1, 2000) && echo(c, "over unix", &a) == 0 &&
               wait_for(&a.calls, 1, 2000) && strcmp(a.str, "over unix") == 0,
           "over a unix socket: up, and a command answered");
    tap_is_str(fk.log, "AUTH pw|SELECT 2|PING|ECHO over unix|", "with the same handshake");
    redis_conn_free(c);
    redis_url_clear(&u);
    fake_stop();
    unlink(path);
}

int main(void)
{
    struct timeval two_ms = {0, 2000};
    struct event *tick;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERROR);
    base = event_base_new();
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &two_ms);
    check_commands();
    check_free_in_reply();
    check_refused_auth();
    check_subscribed();
    check_retarget_role();
    check_transport();
    check_unix();
    event_free(tick);
    event_base_free(base);
    return tap_done();
}
