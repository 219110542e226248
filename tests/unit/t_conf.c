/* conf: value syntax, FILE:LINE errors, defaults, env overrides, keys, and
 * the key table (conf_keys.h) they all come from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conf_keys.h"
#include "tap.h"

static char path[64];

static struct conf *load(const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
    err[0] = '\0';
    return conf_load(path, err, errlen);
}

static void expect_error(const char *text, int line, const char *needle, const char *name)
{
    char err[512], want[128];
    struct conf *c = load(text, err, sizeof(err));

    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    if (!tap_ok(c == NULL && strncmp(err, want, strlen(want)) == 0 && strstr(err, needle),
                "%s", name))
        printf("#   got: %s\n#   want prefix %s and '%s'\n", err, want, needle);
    conf_free(c);
}

/* lcgate -T shows redis_url with its password, and only it, masked. */
static void redis_masking(void)
{
    static const struct { const char *url, *want; } cases[] = {
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"redis://:s3cret@h:6379/0", "redis://:****@h:6379/0"},
        {"redis://lcgate:s3cret@h/1", "redis://lcgate:****@h/1"},
        {"redis://s3cret@h", "redis://****@h"},
        {"redis://:p@ss:w@rd@[::1]:6380", "redis://:****@[::1]:6380"},
        {"redis://user:@h", "redis://user:@h"},
        {"unix://:s3cret@/run/redis.sock?db=2", "unix://:****@/run/redis.sock?db=2"},
        {"unix:///run/redis@x.sock", "unix:///run/redis@x.sock"},
    };
    char out[256], small[8];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = conf_redis_url_masked(cases[i].url, out, sizeof(out));
        tap_ok(rc == 0 && strcmp(out, cases[i].want) == 0 && !strstr(out, "s3cret") &&
                   !strstr(out, "ss:w"),
               "masked %s: %s", cases[i].url, out);
    }
    tap_ok(conf_redis_url_masked("redis://:s3cret@host", small, sizeof(small)) == -1,
           "too small a buffer is an error");
}

/* The bounds of the rows, each with the message and line finish() gave
 * before the table (the messages are the documented ones). */
static void bounds(void)
{
    char err[512];
    struct conf *c;

    expect_error("[server]\nworkers = 65\n", 2, "workers must be from 1 to 64", "workers 65");
    expect_error("[cache]\nmemory_max = 1KiB\n", 2, "memory_max must be at least 64KiB",
                 "memory_max below 64KiB");
    expect_error("[cache]\nlock_lease = 50ms\n", 2, "lock_lease must be at least 100ms",
                 "lock_lease below 100ms");
    expect_error("[cache]\nl1_ttl = 2m\n", 2, "l1_ttl must be at most 1m (it bounds",
                 "l1_ttl over 1m");
    expect_error("[cache]\nredis_timeout = 0ms\n", 2, "redis_timeout must be more than 0",
                 "redis_timeout 0");
    expect_error("[upstream]\nconnect_timeout = 0s\n", 2,
                 "upstream timeouts must be more than 0", "connect_timeout 0");
    expect_error("[server]\nidle_timeout = 0s\n", 2,
                 "max_connections, header_timeout and idle_timeout must be more than 0",
                 "idle_timeout 0");
    expect_error("[server]\nmax_request_line = 100\n", 2,
                 "max_request_line must be at least 256 and max_header_size", "request line 100");
    expect_error("[server]\nmax_header_size = 1KiB\n", 2,
                 "max_request_line must be at least 256 and max_header_size",
                 "a head shorter than the request line (across keys)");
    expect_error("[server]\nmax_inflight_bytes = 512KiB\n", 2,
                 "max_inflight_bytes must be at least max_body", "in-flight bytes below max_body");
    expect_error("[client \"c\"]\ncolour = red\n", 2,
                 "unknown key 'colour' in [client] (expected token_sha256, projects, rate or "
                 "burst)", "unknown client key lists the table's keys");
    expect_error("[project \"p\"]\ncolour = red\n", 2,
                 "unknown key 'colour' in [project] (expected rate, burst, upstream_rate, "
                 "upstream_burst, ttl or api_key_file)", "unknown project key lists them too");
    setenv("LCGATE_CACHE_TTL", "0s", 1);
    c = load("", err, sizeof(err));
    tap_ok(c == NULL && strstr(err, ":-1: ttl must be more than 0"),
           "an override out of bounds is checked too (%s)", err);
    unsetenv("LCGATE_CACHE_TTL");
    setenv("LCGATE_CACHE_TTL", "5s", 1);
    c = load("[cache]\nttl = 0s\n", err, sizeof(err));
    tap_ok(c != NULL && c->ttl_ms == 5000, "bounds are checked once the override applied");
    conf_free(c);
    unsetenv("LCGATE_CACHE_TTL");
}

/* Every default prints as a value that parses back to itself (lcgate -T
 * relies on it), and a reload names the restart keys it changes. */
static void table(void)
{
    char err[512], buf[256];
    struct conf *c = load("", err, sizeof(err)), *next, *again = calloc(1, sizeof(*again));
    size_t i, bad = 0;

    conf_keys_check();
    tap_ok(c != NULL && again != NULL, "defaults load");
    if (c == NULL || again == NULL)
        return;
    for (i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        FILE *f = fmemopen(buf, sizeof(buf), "w");
        void *field = (char *)again + k->off;
        conf_value_print(f, k->type, (const char *)c + k->off);
        fclose(f);
        if (k->def && (conf_value_parse(k->type, field, buf) != 0 ||
                       !conf_value_equal(k->type, field, (const char *)c + k->off))) {
            printf("#   [%s] %s: prints %s, default %s\n", k->section, k->name, buf, k->def);
            bad++;
        }
        conf_value_free(k->type, field);
    }
    free(again);
    tap_ok(bad == 0, "every default prints as a value that parses back to it");
    next = load("[server]\nworkers = 2\nlisten = 127.0.0.1:9\n[cache]\nttl = 1s\n"
                "memory_max = 1MiB\n", err, sizeof(err));
    tap_ok(next && conf_restart_changes(c, next, buf, sizeof(buf)) == 3 &&
           strcmp(buf, "listen, workers, memory_max") == 0,
           "a reload names the changed keys that need a restart (%s)", buf);
    tap_ok(next && conf_restart_changes(next, next, buf, sizeof(buf)) == 0 && buf[0] == '\0',
           "and none when none changed");
    conf_free(next);
    conf_free(c);
}

int main(void)
{
    uint64_t ms;
    size_t sz;
    struct rate r;
    char err[512];
    struct conf *c;
    int fd;

    strcpy(path, "/tmp/lcgate-t-conf-XXXXXX");
    fd = mkstemp(path);
    close(fd);
    unsetenv("LLAMA_CLOUD_API_KEY");

    tap_ok(conf_parse_duration_ms("250ms", &ms) == 0 && ms == 250, "250ms");
    tap_ok(conf_parse_duration_ms("30s", &ms) == 0 && ms == 30000, "30s");
    tap_ok(conf_parse_duration_ms("10m", &ms) == 0 && ms == 600000, "10m");
    tap_ok(conf_parse_duration_ms("1h", &ms) == 0 && ms == 3600000, "1h");
    tap_ok(conf_parse_duration_ms("1.5s", &ms) == 0 && ms == 1500, "1.5s");
    tap_ok(conf_parse_duration_ms("30", &ms) == -1, "a duration needs a unit");
    tap_ok(conf_parse_duration_ms("-1s", &ms) == -1, "negative duration rejected");
    tap_ok(conf_parse_duration_ms("5 s", &ms) == -1, "space before unit rejected");
    tap_ok(conf_parse_size("1MiB", &sz) == 0 && sz == 1048576, "1MiB");
    tap_ok(conf_parse_size("64KiB", &sz) == 0 && sz == 65536, "64KiB");
    tap_ok(conf_parse_size("2GiB", &sz) == 0 && sz == 2147483648u, "2GiB");
    tap_ok(conf_parse_size("4096", &sz) == 0 && sz == 4096, "plain bytes");
    tap_ok(conf_parse_size("1MB", &sz) == -1, "1MB (not a binary unit) rejected");
    tap_ok(conf_parse_rate("20/s", &r) == 0 && r.count == 20 && r.window_s == 1, "20/s");
    tap_ok(conf_parse_rate("600/min", &r) == 0 && r.count == 600 && r.window_s == 60,
           "600/min");
    tap_ok(conf_parse_rate("1000/h", &r) == 0 && r.window_s == 3600, "1000/h");
    tap_ok(conf_parse_rate("0/s", &r) == -1, "zero rate rejected");
    tap_ok(conf_parse_rate("5/day", &r) == -1, "unknown window rejected");

    c = load("", err, sizeof(err));
    tap_ok(c != NULL, "an empty file is valid (all defaults)");
    if (c) {
        tap_is_str(c->listen, "127.0.0.1:8080", "default listen");
        tap_is_str(c->base_url, "https://api.cloud.llamaindex.ai", "default base_url");
        tap_ok(c->ttl_ms == 30000 && c->stale_if_error_ms == 600000 &&
               c->memory_max == 64u << 20 && c->store == STORE_KIND_MEMORY &&
               c->prefetch == 1 && c->burst == 40 && c->upstream_burst == 10,
               "documented defaults");
        tap_ok(c->api_key == NULL, "no key configured: pass-through");
        tap_ok(c->proxy == NULL, "no proxy by default");
        conf_free(c);
    }

    expect_error("[server]\nlisten = 127.0.0.1:80\nbogus = 1\n", 3, "unknown key 'bogus'",
                 "unknown key names its line");
    expect_error("; comment\n\n[nope]\nx = 1\n", 4, "unknown section [nope]",
                 "unknown section names the line of its first key");
    expect_error("[cache]\nttl = 30\n", 2, "ttl: expected a duration",
                 "duration without unit names its line");
    expect_error("[cache]\nstore = disk\n", 2, "memory or redis", "bad store kind");
    expect_error("[server]\nlisten = localhost\n", 2, "host:port", "listen without port");
    expect_error("[upstream]\nbase_url = ftp://x\n", 2, "http://", "base_url scheme");
    expect_error("[cache]\nttl = 1s\nttl = 2s\n", 3, "set twice", "duplicate key");
    {
        static const char *const bad[] = {
            "https://proxy:3128", "socks5://proxy:1080", "proxy:3128", "http://",
            "http://:3128", "http://proxy:0", "http://proxy:65536", "http://proxy:31x",
            "http://user:pw@proxy:3128", "http://proxy:3128/path", "http://proxy:3128?a",
            "http://pro xy:3128", "http://squid", "http://[::1]", "",
        };
        size_t i;
        char text[128], name[128];

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            snprintf(text, sizeof(text), "[upstream]\nproxy = %s\n", bad[i]);
            snprintf(name, sizeof(name), "proxy refuses '%s'", bad[i]);
            expect_error(text, 2, "proxy: expected an http://host:port URL", name);
        }
    }
    c = load("[upstream]\nproxy = http://proxy.example:3128/\n", err, sizeof(err));
    tap_ok(c != NULL, "proxy = http://proxy.example:3128/ is valid");
    if (c) {
        tap_is_str(c->proxy, "http://proxy.example:3128", "proxy kept without its '/'");
        conf_free(c);
    }
    c = load("[upstream]\nproxy = http://[::1]:3128\n", err, sizeof(err));
    tap_ok(c != NULL && strcmp(c->proxy, "http://[::1]:3128") == 0,
           "proxy = http://[::1]:3128 (IPv6) is valid");
    conf_free(c);
    expect_error("[server]\nthis line is not ini\n", 2, "syntax error", "syntax error line");
    expect_error("[upstream]\napi_key_file = /nonexistent/key\n", 2, "cannot read",
                 "missing key file names its line");
    expect_error("[cache]\nttl = 0s\n", 2, "more than 0", "zero ttl");
    expect_error("[ratelimit]\nburst = 0\n", 2, "whole number", "zero burst");
    expect_error("[project \"p1\"]\nttl = 5s\ncolour = red\n", 3, "unknown key 'colour'",
                 "unknown project key");
    expect_error("[client \"c\"]\ntoken_sha256 = abc\n", 2, "64 hex", "short token hash");

    setenv("LLAMA_CLOUD_API_KEY", "llx-for-clients", 1);
    c = load("[server]\nlisten = [::1]:9000\nadmin_listen = unix:/run/lcgate.sock\n"
             "[cache]\nstore = redis\nredis_url = unix:///run/redis.sock\n"
             "memory_max = 1MiB\nprefetch = off ; inline comment\n"
             "[project \"p1\"]\nttl = 5s\nrate = 2/s\n"
             "[client \"c\"]\ntoken_sha256 = "
             "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
             "projects = p1, p2\n",
             err, sizeof(err));
    tap_ok(c != NULL, "a full file loads (%s)", err);
    if (c) {
        const struct conf_project *p = conf_project(c, "p1");
        tap_is_str(c->listen, "[::1]:9000", "v6 listen");
        tap_ok(c->store == STORE_KIND_REDIS && c->prefetch == 0, "store and inline comment");
        tap_ok(p && p->has_ttl && p->ttl_ms == 5000 && p->has_rate && !p->has_burst,
               "project overrides are kept, with which were set");
        tap_ok(c->nclients == 1 && c->clients[0].nprojects == 2 &&
               strcmp(c->clients[0].projects[1], "p2") == 0 &&
               c->clients[0].token_sha256[0] == 0x9f && c->clients[0].token_sha256[31] == 0x08,
               "client token hash and project list");
        tap_ok(conf_project(c, "nope") == NULL, "unknown project has no overrides");
        conf_free(c);
    }
    c = load("[project \"0B9B5A8E-7F7E-4C1E-9A4E-1F2D3C4B5A60\"]\nttl = 5s\n"
             "[client \"c\"]\ntoken_sha256 = "
             "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
             "projects = {6A1C2D3E-4F50-4A6B-8C7D-9E0F1A2B3C4D}, default\n"
             "rate = 5/s\n"
             "[upstream]\nrate = 2/min\n"
             "[server]\nallowed_hosts = gw.example , other.example\n"
             "admin_token_sha256 = "
             "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n",
             err, sizeof(err));
    tap_ok(c != NULL, "trust keys load (%s)", err);
    if (c) {
        tap_ok(conf_project(c, "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a60") != NULL,
               "a [project] id is kept canonical (lowercase hyphenated)");
        tap_is_str(c->clients[0].projects[0], "6a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
                   "a client's projects are kept canonical");
        tap_ok(c->clients[0].has_rate && c->clients[0].burst == 5,
               "a client rate without burst has one window's burst");
        tap_ok(c->has_key_rate && c->key_burst == 2, "[upstream] rate, burst defaulted");
        tap_ok(c->allowed_hosts.n == 2 && strcmp(c->allowed_hosts.v[1], "other.example") == 0,
               "allowed_hosts is a list");
        tap_ok(c->has_admin_token && c->admin_token_sha256[0] == 0x9f,
               "admin_token_sha256 in any case");
        tap_ok(c->max_inflight_requests == 4096 && c->max_inflight_bytes == 256u << 20,
               "in-flight bounds default to 4096 requests and 256 MiB");
        conf_free(c);
    }
    expect_error("[project \"0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a60\"]\nttl = 5s\n"
                 "[project \"0B9B5A8E-7F7E-4C1E-9A4E-1F2D3C4B5A60\"]\nttl = 6s\n", 4,
                 "names the same project", "two spellings of one project are an error");
    expect_error("[server]\nallowed_origins = https://a.example,,\n", 2, "names separated",
                 "an empty name in a list");
    expect_error("[upstream]\nburst = 3\n", 2, "needs [upstream] rate",
                 "an upstream burst without a rate");
    unsetenv("LLAMA_CLOUD_API_KEY");
    expect_error("[client \"c\"]\ntoken_sha256 = "
                 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                 "projects = *\n", 2, "need an upstream key", "client tokens need a key");

    setenv("LCGATE_SERVER_LISTEN", "127.0.0.1:9999", 1);
    setenv("LCGATE_CACHE_TTL", "5s", 1);
    c = load("[server]\nlisten = 127.0.0.1:80\n", err, sizeof(err));
    tap_ok(c && strcmp(c->listen, "127.0.0.1:9999") == 0 && c->ttl_ms == 5000,
           "LCGATE_<SECTION>_<KEY> overrides the file");
    conf_free(c);
    setenv("LCGATE_CACHE_TTL", "soon", 1);
    c = load("", err, sizeof(err));
    tap_ok(c == NULL && strncmp(err, "LCGATE_CACHE_TTL: ", 18) == 0,
           "a bad override names the variable (%s)", err);
    unsetenv("LCGATE_SERVER_LISTEN");
    unsetenv("LCGATE_CACHE_TTL");

    {
        char kpath[80];
        FILE *f;
        snprintf(kpath, sizeof(kpath), "%s.key", path);
        f = fopen(kpath, "w");
        fputs("  llx-from-file \n\n", f);
        fclose(f);
        {
            char text[256];
            snprintf(text, sizeof(text),
                     "[upstream]\napi_key_file = %s\n[project \"p9\"]\napi_key_file = %s\n",
                     kpath, kpath);
            setenv("LLAMA_CLOUD_API_KEY", "llx-from-env", 1);
            c = load(text, err, sizeof(err));
        }
        tap_ok(c && strcmp(c->api_key, "llx-from-file") == 0,
               "key file wins over the environment, whitespace trimmed");
        tap_ok(c && strcmp(conf_api_key(c, "p9"), "llx-from-file") == 0 &&
               conf_api_key(c, NULL) == c->api_key, "per-project key lookup");
        conf_free(c);
        c = load("", err, sizeof(err));
        tap_ok(c && strcmp(c->api_key, "llx-from-env") == 0,
               "LLAMA_CLOUD_API_KEY is the key without a file");
        conf_free(c);
        {
            /* systemd's LoadCredential: $CREDENTIALS_DIRECTORY/llama_cloud_api_key */
            char dir[64], cred[96];
            strcpy(dir, "/tmp/lcgate-t-cred-XXXXXX");
            if (mkdtemp(dir) != NULL) {
                snprintf(cred, sizeof(cred), "%s/llama_cloud_api_key", dir);
                f = fopen(cred, "w");
                fputs("llx-from-credential\n", f);
                fclose(f);
                setenv("CREDENTIALS_DIRECTORY", dir, 1);
                c = load("", err, sizeof(err));
                tap_ok(c && strcmp(c->api_key, "llx-from-credential") == 0,
                       "the systemd credential wins over LLAMA_CLOUD_API_KEY");
                conf_free(c);
                unsetenv("CREDENTIALS_DIRECTORY");
                unlink(cred);
                rmdir(dir);
            }
        }
        unsetenv("LLAMA_CLOUD_API_KEY");
        unlink(kpath);
    }
    bounds();
    table();
    unlink(path);
    redis_masking();
    return tap_done();
}
