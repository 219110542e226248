/* process: the process's own resources. The descriptor limit raised at
 * start to what the configuration needs, and the process_* metrics
 * (Prometheus's standard names), read when /metrics is scraped. Linux:
 * /proc/self and getrusage. */
#ifndef LCGATE_PROCESS_H
#define LCGATE_PROCESS_H

struct conf;

/* What the process reads about itself; NaN for what it could not read. */
struct proc_stats {
    double cpu_seconds;          /* user + system time */
    double rss_bytes;            /* resident set size */
    double open_fds;             /* descriptors open now */
    double max_fds;              /* the soft RLIMIT_NOFILE */
};

void proc_stats_read(struct proc_stats *out);

/* When the process started, in seconds since the epoch (from its start in
 * /proc/self/stat, a constant); NaN if unknown. */
double proc_start_time(void);

/* Descriptors the configuration may hold open at once: every client
 * connection (max_connections), an upstream connection per request in
 * flight (at most one per client, and max_inflight_requests) plus curl's
 * idle ones, the store's, the admin listener's, and the process's own
 * (standard streams, event loops, eventfds, listeners, key files). */
unsigned long proc_nofile_need(const struct conf *c);

struct proc_nofile {
    unsigned long need, soft_before, soft, hard;   /* RLIM_INFINITY: ~0UL */
    int err;                     /* errno of a setrlimit that failed, or 0 */
};

/* Raise the soft RLIMIT_NOFILE to need, up to the hard limit; never lower
 * it. Fills out. Returns 0 when the soft limit is now at least need, -1
 * when it is lower (the hard limit is below need, or setrlimit failed:
 * out->err). */
int proc_raise_nofile(unsigned long need, struct proc_nofile *out);

#endif
