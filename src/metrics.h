/* metrics: a small Prometheus registry rendered in the text exposition
 * format 0.0.4 (what GET /metrics answers).
 *
 * Thread-safe: one lock (in metrics.c) guards every series, so the worker
 * threads count the answers they make while the main loop counts its own
 * and renders. Declaring is not locked: declare every family (and cap it)
 * before another thread uses the registry. A family is declared once
 * (name, help, type, label names, and a histogram's bucket bounds); a
 * series (one set of label values) is created on first use, and from then
 * on updating it allocates nothing. Families render in declaration order,
 * series in creation order.
 *
 * Label cardinality is bounded so that values chosen by clients (project
 * ids) cannot grow memory: see metrics_family_cap. Label values are also
 * cut to METRICS_VALUE_MAX bytes and made valid UTF-8 (a bad byte becomes
 * U+FFFD), since one bad value would make the whole scrape unreadable.
 *
 * Never pass a key or a token as a label value. */
#ifndef LCGATE_METRICS_H
#define LCGATE_METRICS_H

#include <stddef.h>

struct evbuffer;
struct metrics;
struct mfamily;
struct mseries;

enum mtype { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };

#define METRICS_MAX_LABELS 3
#define METRICS_VALUE_MAX 128        /* bytes of a label value kept */
#define METRICS_DEFAULT_CAP 1000     /* series per family unless capped */
#define METRICS_OTHER "other"        /* the value that folded labels take */

/* Histogram upper bounds in seconds of metrics_family; +Inf is implicit. */
#define METRICS_NBUCKETS 11
extern const double metrics_buckets[METRICS_NBUCKETS];
#define METRICS_MAX_BUCKETS 32       /* bounds of metrics_histogram */

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declare a family. name: [a-zA-Z_:][a-zA-Z0-9_:]* (by convention
 * lcgate_..._total for counters, a unit suffix such as _seconds or _bytes);
 * nlabels 0..METRICS_MAX_LABELS names from label_names ([a-zA-Z_]
 * [a-zA-Z0-9_]*, no leading "__", no "le" on a histogram). A family without
 * labels has its one series (at 0) from the start.
 * Returns NULL for an invalid or duplicate name, or on ENOMEM. */
struct mfamily *metrics_family(struct metrics *m, const char *name, const char *help,
                               enum mtype type, int nlabels, const char *const *label_names);

/* A histogram family with its own bucket upper bounds (copied): nbounds
 * from 1 to METRICS_MAX_BUCKETS finite values, strictly increasing; +Inf
 * is implicit. metrics_family(MT_HISTOGRAM) uses metrics_buckets. NULL as
 * metrics_family, and for bounds that are not so. */
struct mfamily *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                  int nlabels, const char *const *label_names,
                                  const double *bounds, size_t nbounds);

/* Bound the family to max_series series whose label `label` is not
 * "other". When a new label set arrives past that, its `label` is replaced
 * by "other" (and counted in that series); should that set be new too and
 * the family hold 2 * max_series series (another label is unbounded as
 * well), every label becomes "other". A family therefore never holds more
 * than 2 * max_series + 1 series. label NULL: fold every label at once
 * (at most max_series + 1). Series that exist are kept: counters never go
 * backwards. Without a call, the cap is METRICS_DEFAULT_CAP with label
 * NULL. Returns 0, or -1 if label is not one of the family's or max_series
 * is 0. */
int metrics_family_cap(struct mfamily *f, const char *label, size_t max_series);

/* The series for these label values, created if needed (and folded as
 * above). Use it to keep a handle on a series updated often, or to make a
 * series appear at 0 before its first event. Values past the family's
 * nlabels are ignored; a NULL value within them is "". NULL on ENOMEM. */
struct mseries *metrics_series(struct mfamily *f, const char *l1, const char *l2,
                               const char *l3);

/* Counter or gauge: add by. A counter ignores a negative or NaN by. */
void metrics_inc(struct mfamily *f, double by, const char *l1, const char *l2,
                 const char *l3);
/* Gauge: set to v. Counter: mirror a count kept elsewhere (struct
 * cache_stats, the Redis counters), refreshed before rendering; it must
 * never decrease. */
void metrics_set(struct mfamily *f, double v, const char *l1, const char *l2,
                 const char *l3);
/* Histogram: count v (seconds) in its bucket, its sum and count. NaN is
 * ignored. */
void metrics_observe(struct mfamily *f, double v, const char *l1, const char *l2,
                     const char *l3);

/* The same on a series handle (from metrics_series of a family of the
 * right type; a mismatch is ignored). */
void mseries_inc(struct mseries *s, double by);
void mseries_set(struct mseries *s, double v);
void mseries_observe(struct mseries *s, double v);

/* Number of series a family holds (for tests and self-monitoring). */
size_t metrics_family_size(const struct mfamily *f);

/* Append the exposition text of every family that has a series to out
 * (Content-Type: text/plain; version=0.0.4; charset=utf-8). Returns 0, or
 * -1 if out could not grow. */
int metrics_render(struct metrics *m, struct evbuffer *out);

#endif
