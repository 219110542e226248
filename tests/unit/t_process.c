/* process: the process_* readings move with what they read, and the soft
 * descriptor limit is raised to what is needed, up to the hard limit. */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "process.h"
#include "tap.h"

static void stats(void)
{
    struct proc_stats a, b;
    struct rlimit rl;
    int fds[10], i;
    volatile double x = 0;
    volatile char *mem;

    proc_stats_read(&a);
    for (i = 0; i < 10; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    mem = malloc(64 << 20);
    for (i = 0; mem && i < 64 << 20; i += 4096)
        mem[i] = 1;      /* volatile: every page is touched */
    for (i = 0; i < 20000000; i++)
        x += i;
    proc_stats_read(&b);
    tap_ok(b.open_fds == a.open_fds + 10, "10 more descriptors read as 10 more (%g -> %g)",
           a.open_fds, b.open_fds);
    tap_ok(b.rss_bytes >= a.rss_bytes + (60 << 20), "64 MiB touched raise the RSS (%g -> %g)",
           a.rss_bytes, b.rss_bytes);
    tap_ok(b.cpu_seconds > a.cpu_seconds, "a busy loop adds CPU time (%g -> %g)", a.cpu_seconds,
           b.cpu_seconds);
    getrlimit(RLIMIT_NOFILE, &rl);
    tap_ok(b.max_fds == (double)rl.rlim_cur, "max_fds is the soft limit");
    free((char *)mem);
    for (i = 0; i < 10; i++)
        close(fds[i]);
}

static void start_time(void)
{
    double s = proc_start_time(), now = (double)time(NULL);

    tap_ok(!isnan(s) && s <= now + 1 && s > now - 600, "the start time is a moment ago (%f)", s);
    tap_ok(proc_start_time() - s < 0.05, "and stays put");
}

static void need(void)
{
    struct conf c;

    memset(&c, 0, sizeof(c));
    c.max_connections = 4096;
    c.max_inflight_requests = 4096;
    c.workers = 1;
    c.store = STORE_KIND_MEMORY;
    tap_ok(proc_nofile_need(&c) == 4096 + 4096 + 64 + 65 + 32 + 4,
           "the defaults need 8357 descriptors (%lu)", proc_nofile_need(&c));
    c.max_inflight_requests = 100;
    c.store = STORE_KIND_REDIS;
    c.workers = 4;
    tap_ok(proc_nofile_need(&c) == 4096 + 100 + 64 + 2 + 65 + 32 + 16,
           "fewer requests in flight need fewer upstream connections; Redis two (%lu)",
           proc_nofile_need(&c));
}

static void raise_nofile(void)
{
    struct rlimit rl, now;
    struct proc_nofile r;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 512) {
        tap_ok(1, "# SKIP the hard limit is below 512");
        return;
    }
    rl.rlim_cur = 128;
    setrlimit(RLIMIT_NOFILE, &rl);
    tap_ok(proc_raise_nofile(100, &r) == 0 && r.soft == 128 && r.soft_before == 128,
           "a soft limit above the need is kept (never lowered)");
    tap_ok(proc_raise_nofile(300, &r) == 0 && r.soft_before == 128 && r.soft == 300,
           "a soft limit below the need is raised to it");
    getrlimit(RLIMIT_NOFILE, &now);
    tap_ok(now.rlim_cur == 300, "setrlimit took it (%lu)", (unsigned long)now.rlim_cur);
    rl.rlim_cur = 200;
    rl.rlim_max = 400;
    setrlimit(RLIMIT_NOFILE, &rl);
    tap_ok(proc_raise_nofile(1000, &r) == -1 && r.soft == 400 && r.hard == 400 &&
               r.need == 1000 && r.err == 0,
           "past the hard limit: raised to it, and -1 with the numbers");
    tap_ok(proc_raise_nofile(1000, &r) == -1 && r.soft_before == 400 && r.soft == 400,
           "at the hard limit already: -1 again, nothing to raise");
}

int main(void)
{
    stats();
    start_time();
    need();
    raise_nofile();
    return tap_done();
}
