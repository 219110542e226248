/* lcgate: argv, signals, startup and shutdown order. */
#include <curl/curl.h>
#include <event2/event.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "alog.h"
#include "cache.h"
#include "cache_store.h"
#include "clock.h"
#include "conf.h"
#include "conf_keys.h"
#include "doors.h"
#include "config.h"
#include "gw.h"
#include "http_front.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "ratelimit.h"
#include "redis_sentinel.h"
#include "redis_tls.h"
#include "tls.h"
#include "upstream.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define DEFAULT_CONF SYSCONFDIR "/lcgate/lcgate.conf"

static struct gw gw;
static struct event *watchdog_timer;

/* systemd's notify protocol, when built with libsystemd and run by it. */
static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* WATCHDOG=1 at half the interval systemd asked for: proof that the event
 * loop turns. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
#ifdef HAVE_SYSTEMD
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        struct timeval tv = {(time_t)(usec / 2 / 1000000), (suseconds_t)(usec / 2 % 1000000)};
        sd_notify(0, "WATCHDOG=1");
        evtimer_add(watchdog_timer, &tv);
    }
#endif
}

/* The cache tells of fetches the upstream budgets refused: counted by
 * project and budget. */
static void on_refused(void *arg, const char *label, const char *budget)
{
    metrics_inc(gw.m.rate_limited, 1, label, budget, NULL);
}

static struct cache *new_cache(void)
{
    struct cache_deps d = {.base = gw.base, .store = gw.store, .rl = gw.rl,
                           .conf = &gw.conf, .up = gw.up, .refused = on_refused};

    return cache_new(&d);
}

static struct event *drain_timer;
static int64_t drain_deadline_ms;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: lcgate [-t | -T] [-c FILE]\n"
            "       lcgate -V | -h\n"
            "\n"
            "A caching gateway for the LlamaCloud API. Runs in the foreground and\n"
            "logs to stderr.\n"
            "\n"
            "  -c FILE  configuration file (default " DEFAULT_CONF ")\n"
            "  -t       check the configuration and exit: 0 when valid, else\n"
            "           print FILE:LINE: reason and exit 1\n"
            "  -T       check as -t, then print the effective configuration (the\n"
            "           file, environment overrides and defaults) as INI on\n"
            "           stdout, secrets masked\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n"
            "\n"
            "Every non-secret setting can be overridden from the environment as\n"
            "LCGATE_<SECTION>_<KEY>, e.g. LCGATE_SERVER_LISTEN=127.0.0.1:9000.\n"
            "LLAMA_CLOUD_API_KEY is the key when no api_key_file is configured;\n"
            "with neither, clients' own Authorization is passed through.\n"
            "\n"
            "Signals: SIGHUP reloads the configuration (and reopens the access log);\n"
            "SIGUSR1 reopens the access log file (after logrotate moved it); SIGTERM\n"
            "and SIGINT stop accepting, finish requests in flight (up to\n"
            "drain_timeout), write the access log out, exit 0.\n");
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval tick = {0, 50 * 1000};

    size_t pending = front_pending(&gw);

    if (pending == 0 || mono_ms() >= drain_deadline_ms) {
        if (pending)
            log_warn("drain_timeout reached with %zu requests in flight; answering 503",
                     pending);
        event_base_loopbreak(gw.base);
        return;
    }
    evtimer_add(drain_timer, &tick);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    if (gw.draining)
        return;
    log_info("signal %d: draining %zu requests (up to %llu ms), then exiting", (int)sig,
             gw.ninflight, (unsigned long long)gw.conf->drain_timeout_ms);
    notify("STOPPING=1");
    front_close_listeners(&gw);
    drain_deadline_ms = mono_ms() + (int64_t)gw.conf->drain_timeout_ms;
    on_drain_tick(-1, 0, NULL);
}

/* Descriptors for max_connections and the rest (process.h): the soft
 * limit raised, or a warning with the numbers. */
static void check_nofile(const struct conf *c)
{
    struct proc_nofile r;

    if (proc_raise_nofile(proc_nofile_need(c), &r) == 0) {
        if (r.soft != r.soft_before)
            log_info("raised the open files limit (RLIMIT_NOFILE) from %lu to %lu, what "
                     "max_connections = %u needs", r.soft_before, r.soft, c->max_connections);
        return;
    }
    if (r.err)
        log_warn("cannot raise the open files limit from %lu to the %lu that max_connections = "
                 "%u needs: %s; set LimitNOFILE= (systemd) or ulimit -n, or lower "
                 "max_connections", r.soft, r.need, c->max_connections, strerror(r.err));
    else
        log_warn("the open files limit is %lu (hard limit %lu), below the %lu that "
                 "max_connections = %u needs: connections may fail with EMFILE before "
                 "max_connections; raise the hard limit (LimitNOFILE= in the unit, ulimit -Hn) "
                 "or lower max_connections", r.soft, r.hard, r.need, c->max_connections);
}

/* The listener's certificate, when tls_cert is set: before the listener
 * starts (and for -t), so that a bad file stops lcgate with its reason. */
static int load_tls(const struct conf *c, char *err, size_t errlen)
{
    if (c->tls_cert == NULL)
        return 0;
    return tls_listener_load(c->tls_cert, c->tls_key, err, errlen);
}

/* SIGHUP reads the certificate files again (renewed in place, or new
 * paths): new connections get the new context, open ones keep theirs.
 * TLS on or off is how the listener was made: that needs a restart. */
static int reload_tls(const struct conf *next, char *err, size_t errlen)
{
    if (!next->tls_cert != !tls_listener_on()) {
        log_warn("reload: turning TLS on or off (tls_cert, tls_key) takes effect only after "
                 "a restart");
        return 0;
    }
    if (next->tls_cert == NULL)
        return 0;
    if (tls_listener_load(next->tls_cert, next->tls_key, err, errlen) != 0)
        return -1;
    log_info("reload: TLS certificate %s loaded for new connections", next->tls_cert);
    return 0;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    char err[1024], changed[512];
    struct conf *next = conf_load(gw.conf->path, err, sizeof(err));
    enum log_level lvl;

    notify("RELOADING=1");
    if (next == NULL) {
        log_error("reload rejected, keeping the running configuration: %s", err);
        admin_reloaded(&gw, 0);
        notify("READY=1");
        return;
    }
    if (reload_tls(next, err, sizeof(err)) != 0) {
        log_error("reload rejected, keeping the running configuration and certificate: %s",
                  err);
        conf_free(next);
        admin_reloaded(&gw, 0);
        notify("READY=1");
        return;
    }
    /* The keys a reload cannot apply are flagged in their rows (conf_keys.c). */
    if (conf_restart_changes(gw.conf, next, changed, sizeof(changed)) > 0)
        log_warn("reload: a change of %s takes effect only after a restart", changed);
    if (log_level_parse(next->log_level, &lvl) == 0)
        log_set_level(lvl);
    check_nofile(next);
    front_set_conf(&gw, next);
    front_reload(&gw);
    alog_reopen(next->access_log);
    log_info("configuration reloaded from %s", next->path);
    admin_reloaded(&gw, 1);
    notify("READY=1");
}

/* logrotate's postrotate: the file was renamed; write to a new one. */
static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
    alog_rotate();
}

/* The configured store on base (gw.store_open: a worker's own connection
 * to a shared store, made on the worker's thread). */
static struct store *open_store_on(const struct conf *c, struct event_base *base, char *err,
                                   size_t errlen)
{
    const struct redis_tls_conf tls = {c->redis_tls_ca, c->redis_tls_cert, c->redis_tls_key,
                                       c->redis_tls_server_name};
    const struct redis_sentinel_conf sc = {c->sentinels.v, c->sentinels.n, c->sentinel_master,
                                           c->sentinel_password};

    if (c->store == STORE_KIND_REDIS && sc.naddrs > 0)
        return store_redis_sentinel_new(base, c->redis_url, &tls,
                                        (unsigned)c->redis_timeout_ms, &sc, err, errlen);
    if (c->store == STORE_KIND_REDIS)
        return store_redis_new(base, c->redis_url, &tls, (unsigned)c->redis_timeout_ms, err,
                               errlen);
    snprintf(err, errlen, "out of memory");
    return store_memory_new(c->memory_max);
}

/* lcgate -t (mode 1) and -T (mode 2) of the loaded gw.conf: the exit code. */
static int check_only(const char *path, int mode)
{
    int rc;

    if (!door_local(gw.conf->admin_listen) && !gw.conf->has_admin_token)
        fprintf(stderr, "%s: warning: admin_listen %s is not a loopback address and "
                "admin_token_sha256 is not set: anyone who reaches it can purge the "
                "cache\n", path, gw.conf->admin_listen);
    fprintf(stderr, "%s: configuration is valid\n", path);
    rc = mode == 2 && conf_dump(gw.conf, stdout) != 0;
    conf_free(gw.conf);
    return rc;
}

/* The store, the upstream client, the budgets, the cache, the metrics and
 * both listeners, in that order; 0, or -1 logged. */
static int start(void)
{
    char err[1024];

    if (alog_open(gw.base, gw.conf->access_log, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    gw.store = open_store_on(gw.conf, gw.base, err, sizeof(err));
    gw.store_open = open_store_on;
    gw.up = up_client_new(gw.base);
    if (gw.store && gw.up) {
        gw.rl = rl_new(gw.store, 100000);
        gw.cache = new_cache();
    }
    if (gw.store == NULL || gw.up == NULL || gw.rl == NULL || gw.cache == NULL) {
        log_error("cannot start the %s store: %s",
                  gw.conf->store == STORE_KIND_REDIS ? "redis" : "memory", err);
        return -1;
    }
    if (admin_metrics_init(&gw) != 0) {
        log_error("cannot set up metrics: out of memory");
        return -1;
    }
    if (front_start(&gw, err, sizeof(err)) != 0 ||
        admin_start(&gw, gw.conf->admin_listen, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Signals and timers, the event loop until a stop signal's drain ends. */
static void serve(void)
{
    struct event *sigs[4];
    size_t i;

    sigs[0] = evsignal_new(gw.base, SIGTERM, on_stop, NULL);
    sigs[1] = evsignal_new(gw.base, SIGINT, on_stop, NULL);
    sigs[2] = evsignal_new(gw.base, SIGHUP, on_reload, NULL);
    sigs[3] = evsignal_new(gw.base, SIGUSR1, on_reopen, NULL);
    for (i = 0; i < 4; i++)
        evsignal_add(sigs[i], NULL);
    drain_timer = evtimer_new(gw.base, on_drain_tick, NULL);
    watchdog_timer = evtimer_new(gw.base, on_watchdog, NULL);
    on_watchdog(-1, 0, NULL);
    log_info("lcgate %s listening on %s (admin %s), store %s, upstream %s, %s",
             PACKAGE_VERSION, gw.conf->listen, gw.conf->admin_listen,
             gw.store->ops->name, gw.conf->base_url,
             gw.conf->api_key ? "key injected" : "no key configured: pass-through mode");
    notify("READY=1");
    event_base_dispatch(gw.base);
    for (i = 0; i < 4; i++)
        event_free(sigs[i]);
    event_free(drain_timer);
    event_free(watchdog_timer);
    log_info("stopped");
}

/* Workers stop answering hits first (they read the store, the budgets and
 * the metrics); then fetches end, then the store (its pending callbacks
 * still find their requests and flights), then what they pointed to. */
static void stop(void)
{
    front_quiesce(&gw);
    gw.stopping = 1;
    if (gw.cache)
        cache_stop(gw.cache);
    if (gw.store)
        gw.store->ops->free(gw.store);
    gw.store = NULL;
    rl_free(gw.rl);
    cache_free(gw.cache);
    front_free(&gw);
    tls_listener_free();
    admin_free(&gw);
    up_client_free(gw.up);
    alog_close();                /* after every answer, workers' included */
    if (gw.base)
        event_base_free(gw.base);
    curl_global_cleanup();
    conf_free(gw.conf);
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    char err[1024];
    int opt, test_only = 0, rc = 1;
    enum log_level lvl;

    log_detect_journal();
    /* -K, not in the usage: the key table (conf_keys.h), for the test that
     * holds the documents to it (tests/integration/conf_docs.py). */
    while ((opt = getopt(argc, argv, "c:tTVhK")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test_only = 1; break;
        case 'T': test_only = 2; break;
        case 'V': printf("lcgate %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        case 'K': conf_keys_print(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if ((gw.conf = conf_load(path, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (load_tls(gw.conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        conf_free(gw.conf);
        return 1;
    }
    if (test_only) {
        rc = check_only(path, test_only);
        tls_listener_free();
        return rc;
    }
    if (log_level_parse(gw.conf->log_level, &lvl) == 0)
        log_set_level(lvl);
    check_nofile(gw.conf);
    /* The process holds the key: no core dumps, no ptrace by same-uid peers. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (gw.base = event_base_new()) == NULL) {
        log_error("cannot initialize libcurl or libevent");
        return 1;
    }
    if (start() == 0) {
        serve();
        rc = 0;
    }
    stop();
    return rc;
}
