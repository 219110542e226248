#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"

#define CURL_IDLE_CONNECTIONS 64     /* CURLMOPT_MAXCONNECTS in upstream.c */
#define ADMIN_CONNECTIONS 64         /* hs_limits of admin_start */

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* statm's second field: resident pages. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;
    int n;

    if (f == NULL)
        return NAN;
    n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return NAN;
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return NAN;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return (double)(n - 1);      /* the directory's own */
}

static double max_fds(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return NAN;
    return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

void proc_stats_read(struct proc_stats *out)
{
    out->cpu_seconds = cpu_seconds();
    out->rss_bytes = rss_bytes();
    out->open_fds = open_fds();
    out->max_fds = max_fds();
}

/* /proc/self/stat's starttime (clock ticks after boot) is turned into wall
 * time with the boot clock rather than /proc/stat's btime, which the
 * unit's ProcSubset=pid hides. */
double proc_start_time(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[1024], *p;
    unsigned long long ticks = 0;
    struct timespec now, boot;
    size_t n;
    int field;

    if (f == NULL)
        return NAN;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from
     * the last ')'; starttime is field 22, state field 3. */
    if ((p = strrchr(buf, ')')) == NULL)
        return NAN;
    for (field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1 ||
        clock_gettime(CLOCK_REALTIME, &now) != 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return NAN;
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9 -
           ((double)boot.tv_sec + (double)boot.tv_nsec / 1e9) +
           (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

unsigned long proc_nofile_need(const struct conf *c)
{
    unsigned long clients = c->max_connections;
    unsigned long upstream = c->max_inflight_requests < clients ? c->max_inflight_requests
                                                                : clients;

    return clients + upstream + CURL_IDLE_CONNECTIONS +
           (c->store == STORE_KIND_REDIS ? 2 : 0) + ADMIN_CONNECTIONS + 1 +
           32 + 4ul * c->workers;
}

static unsigned long lim(rlim_t v)
{
    return v == RLIM_INFINITY ? ~0UL : (unsigned long)v;
}

int proc_raise_nofile(unsigned long need, struct proc_nofile *out)
{
    struct rlimit rl;

    memset(out, 0, sizeof(*out));
    out->need = need;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        out->err = errno;
        return -1;
    }
    out->soft_before = out->soft = lim(rl.rlim_cur);
    out->hard = lim(rl.rlim_max);
    if (out->soft >= need)
        return 0;
    rl.rlim_cur = out->hard < need ? rl.rlim_max : (rlim_t)need;
    if (rl.rlim_cur != (rlim_t)out->soft_before) {
        /* The unit's SystemCallFilter=~@resources refuses this: it sets
         * LimitNOFILE instead. */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            out->err = errno;
            return -1;
        }
        out->soft = lim(rl.rlim_cur);
    }
    return out->soft >= need ? 0 : -1;
}
