/* t_redis_url: every form of redis_url the store accepts (rediss://
 * included), what it reads from each, and the refusals, whose messages never quote the password. */
#include <string.h>

#include "redis_url.h"
#include "tap.h"

static void check_bad(void)
{
    static const char *const bad[] = {
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:s3cret@",
        "redis://:s3cret@127.0.0.1:0",
        "redis://:s3cret@127.0.0.1:65536",
        "redis://:s3cret@127.0.0.1:63a9",
        "redis://:s3cret@127.0.0.1/abc",
        "redis://:s3cret@127.0.0.1/1/2",
        "redis://:s3cret@127.0.0.1?db=1",
        "redis://:s3cret%zz@127.0.0.1",
        "redis://:s3cret%00@127.0.0.1",
        "redis://user:@127.0.0.1",
        "redis://:s3cret@[::1",
        "rediss://:s3cret@",
        "rediss://:s3cret@127.0.0.1:0",
        "rediss:///tmp/r.sock",
        "unix://relative.sock",
        "unix://:s3cret@/",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?password=s3cret",
        ("unix:///tmp/0123456789012345678901234567890123456789012345678901"
         "234567890123456789012345678901234567890123456789.sock"),
    };
    struct redis_url u;
    const char *why;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        tap_ok(redis_url_parse(bad[i], &u, &why) == -1 && why != NULL &&
                   strstr(why, "s3cret") == NULL && u.host == NULL &&
                   u.pass == NULL && u.where == NULL,
               "invalid url %zu is refused with a message that does not quote "
               "the password, and nothing kept (%s)", i, why ? why : "none");
    }
}

struct want {
    const char *url, *host;
    int port;
    const char *path, *user, *pass;
    long db;
    const char *where;
    int tls;
};

static void check_good(void)
{
    static const struct want good[] = {
        {"redis://127.0.0.1:1", "127.0.0.1", 1, NULL, NULL, NULL, 0,
         "redis://127.0.0.1:1/0", 0},
        {"redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0,
         "redis://localhost:6379/0", 0},
        {"redis://:s3cret@127.0.0.1:1/3", "127.0.0.1", 1, NULL, NULL, "s3cret",
         3, "redis://127.0.0.1:1/3", 0},
        {"redis://s3cret@redis_1", "redis_1", 6379, NULL, NULL, "s3cret", 0,
         "redis://redis_1:6379/0", 0},
        {"redis://user:s3cr%40t@localhost:1/", "localhost", 1, NULL, "user",
         "s3cr@t", 0, "redis://localhost:1/0", 0},
        {"redis://:p%3A%2F%40w@h@h2:7", "h2", 7, NULL, NULL, "p:/@w@h", 0,
         "redis://h2:7/0", 0},
        {"redis://[::1]:1/2", "::1", 1, NULL, NULL, NULL, 2, "redis://[::1]:1/2", 0},
        {"rediss://redis.example", "redis.example", 6379, NULL, NULL, NULL, 0,
         "rediss://redis.example:6379/0", 1},
        {"rediss://:s3cret@redis.example:6380/2", "redis.example", 6380, NULL, NULL,
         "s3cret", 2, "rediss://redis.example:6380/2", 1},
        {"rediss://lcgate:s3cret@[::1]:7", "::1", 7, NULL, "lcgate", "s3cret", 0,
         "rediss://[::1]:7/0", 1},
        {"unix:///nonexistent/r.sock?db=3", NULL, 0, "/nonexistent/r.sock", NULL,
         NULL, 3, "unix:///nonexistent/r.sock?db=3", 0},
        {"unix://:s3cret@/nonexistent/r.sock", NULL, 0, "/nonexistent/r.sock",
         NULL, "s3cret", 0, "unix:///nonexistent/r.sock", 0},
        {"unix://lcgate:s3cret@/r.sock", NULL, 0, "/r.sock", "lcgate", "s3cret",
         0, "unix:///r.sock", 0},
    };
    struct redis_url u;
    const char *why = "";
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct want *w = &good[i];

        if (!tap_ok(redis_url_parse(w->url, &u, &why) == 0,
                    "valid url %zu is accepted", i)) {
            printf("#   %s\n", why);
            continue;
        }
        tap_is_str(u.host, w->host, "url %zu: host", i);
        tap_ok(u.port == w->port, "url %zu: port %d (got %d)", i, w->port, u.port);
        tap_is_str(u.path, w->path, "url %zu: socket path", i);
        tap_is_str(u.user, w->user, "url %zu: user", i);
        tap_is_str(u.pass, w->pass, "url %zu: password, percent-decoded", i);
        tap_ok(u.db == w->db, "url %zu: database %ld (got %ld)", i, w->db, u.db);
        tap_is_str(u.where, w->where, "url %zu: shown without credentials", i);
        tap_ok(u.tls == w->tls, "url %zu: TLS %s", i, w->tls ? "on" : "off");
        redis_url_clear(&u);
        tap_ok(u.host == NULL && u.pass == NULL && u.where == NULL,
               "url %zu: cleared", i);
    }
}

static void check_safe_msg(void)
{
    struct redis_url u;
    const char *why;

    redis_url_parse("redis://:s3cret@h", &u, &why);
    tap_is_str(redis_url_safe_msg(&u, "ERR wrong s3cret"),
               "(message withheld: it quotes the password)",
               "a server message quoting the password is withheld");
    tap_is_str(redis_url_safe_msg(&u, "ERR no"), "ERR no", "any other is kept");
    tap_is_str(redis_url_safe_msg(&u, ""), "no detail", "an empty one says so");
    redis_url_clear(&u);
}

int main(void)
{
    check_bad();
    check_good();
    check_safe_msg();
    return tap_done();
}
