/* metrics: the exact exposition text, escaping, histogram cumulation, and
 * the cardinality cap folding into "other". */
#include <event2/buffer.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

/* The rendered text, malloc'd. */
static char *render(struct metrics *m)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *s;

    if (metrics_render(m, b) != 0)
        tap_ok(0, "metrics_render failed");
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void check_render(struct metrics *m, const char *want, const char *name)
{
    char *got = render(m);
    tap_is_str(got, want, "%s", name);
    free(got);
}

static void small_registry(void)
{
    static const char *const req_l[] = {"route", "status", "cache"};
    static const char *const up_l[] = {"route"};
    struct metrics *m = metrics_new();
    struct mfamily *req, *conns, *up, *unused;

    req = metrics_family(m, "lcgate_requests_total", "Requests answered.", MT_COUNTER, 3,
                         req_l);
    conns = metrics_family(m, "lcgate_open_connections", "Client connections open.",
                           MT_GAUGE, 0, NULL);
    up = metrics_family(m, "lcgate_upstream_request_duration_seconds",
                        "Time to the upstream's full answer.", MT_HISTOGRAM, 1, up_l);
    unused = metrics_family(m, "lcgate_unused_total", "Never used.", MT_COUNTER, 1, up_l);
    tap_ok(req && conns && up && unused, "families are declared");

    metrics_inc(req, 1, "v1_batch_jobs", "200", "HIT");
    metrics_inc(req, 1, "v2_batches", "200", "MISS");
    metrics_inc(req, 2, "v1_batch_jobs", "200", "HIT");
    metrics_inc(req, -5, "v1_batch_jobs", "200", "HIT");
    metrics_inc(conns, 3, NULL, NULL, NULL);
    metrics_inc(conns, -1, NULL, NULL, NULL);
    metrics_observe(up, 0.005, "v1_batch_jobs", NULL, NULL);  /* le is inclusive */
    metrics_observe(up, 0.2, "v1_batch_jobs", NULL, NULL);
    metrics_observe(up, 0.1, "v1_batch_jobs", NULL, NULL);
    metrics_observe(up, 30, "v1_batch_jobs", NULL, NULL);
    metrics_inc(up, 1, "v1_batch_jobs", NULL, NULL);           /* wrong type: ignored */
    tap_ok(metrics_family_size(req) == 2, "same labels share a series");

    check_render(m,
                 "# HELP lcgate_requests_total Requests answered.\n"
                 "# TYPE lcgate_requests_total counter\n"
                 "lcgate_requests_total{route=\"v1_batch_jobs\",status=\"200\",cache=\"HIT\"} 3\n"
                 "lcgate_requests_total{route=\"v2_batches\",status=\"200\",cache=\"MISS\"} 1\n"
                 "# HELP lcgate_open_connections Client connections open.\n"
                 "# TYPE lcgate_open_connections gauge\n"
                 "lcgate_open_connections 2\n"
                 "# HELP lcgate_upstream_request_duration_seconds Time to the upstream's full "
                 "answer.\n"
                 "# TYPE lcgate_upstream_request_duration_seconds histogram\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.005\"} 1\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.01\"} 1\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.025\"} 1\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.05\"} 1\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.1\"} 2\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.25\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"0.5\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"1\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"2.5\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"5\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"10\"} 3\n"
                 "lcgate_upstream_request_duration_seconds_bucket{route=\"v1_batch_jobs\",le=\"+Inf\"} 4\n"
                 "lcgate_upstream_request_duration_seconds_sum{route=\"v1_batch_jobs\"} 30.305\n"
                 "lcgate_upstream_request_duration_seconds_count{route=\"v1_batch_jobs\"} 4\n",
                 "small registry renders exactly (counter ignores a negative inc, unused "
                 "family omitted, buckets cumulative)");
    metrics_free(m);
}

static void unlabelled_histogram(void)
{
    struct metrics *m = metrics_new();
    struct mfamily *h = metrics_family(m, "x_seconds", "h", MT_HISTOGRAM, 0, NULL);

    check_render(m,
                 "# HELP x_seconds h\n# TYPE x_seconds histogram\n"
                 "x_seconds_bucket{le=\"0.005\"} 0\nx_seconds_bucket{le=\"0.01\"} 0\n"
                 "x_seconds_bucket{le=\"0.025\"} 0\nx_seconds_bucket{le=\"0.05\"} 0\n"
                 "x_seconds_bucket{le=\"0.1\"} 0\nx_seconds_bucket{le=\"0.25\"} 0\n"
                 "x_seconds_bucket{le=\"0.5\"} 0\nx_seconds_bucket{le=\"1\"} 0\n"
                 "x_seconds_bucket{le=\"2.5\"} 0\nx_seconds_bucket{le=\"5\"} 0\n"
                 "x_seconds_bucket{le=\"10\"} 0\nx_seconds_bucket{le=\"+Inf\"} 0\n"
                 "x_seconds_sum 0\nx_seconds_count 0\n",
                 "a family without labels renders at zero before any event");
    metrics_observe(h, 10, NULL, NULL, NULL);
    metrics_observe(h, 10.5, NULL, NULL, NULL);
    metrics_observe(h, 0.1 + 0.2, NULL, NULL, NULL);
    {
        char *got = render(m);
        tap_ok(strstr(got, "x_seconds_bucket{le=\"5\"} 1\nx_seconds_bucket{le=\"10\"} 2\n"
                           "x_seconds_bucket{le=\"+Inf\"} 3\nx_seconds_sum 20.8\n"
                           "x_seconds_count 3\n") != NULL,
               "10 falls in le=10, 10.5 only in +Inf, sum in shortest form");
        free(got);
    }
    metrics_free(m);
}

static void escaping(void)
{
    static const char *const l[] = {"path"};
    struct metrics *m = metrics_new();
    struct mfamily *f = metrics_family(m, "esc_total", "Help with \\ and\nnewline \"as is\".",
                                       MT_COUNTER, 1, l);

    metrics_inc(f, 1, "a\\b\"c\nd", NULL, NULL);
    check_render(m,
                 "# HELP esc_total Help with \\\\ and\\nnewline \"as is\".\n"
                 "# TYPE esc_total counter\n"
                 "esc_total{path=\"a\\\\b\\\"c\\nd\"} 1\n",
                 "help escapes backslash and newline; label values also the double quote");
    metrics_free(m);
}

static void label_values(void)
{
    static const char *const l[] = {"project"};
    struct metrics *m = metrics_new();
    struct mfamily *f = metrics_family(m, "v", "v", MT_GAUGE, 1, l);
    char longv[300], want[200];

    metrics_set(f, 1, "ok\xff\xc3(\xed\xa0\x80\xc3\xa9", NULL, NULL);
    check_render(m,
                 "# HELP v v\n# TYPE v gauge\n"
                 "v{project=\"ok\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                 "\xc3\xa9\"} 1\n",
                 "invalid UTF-8 (stray byte, cut sequence, surrogate) becomes U+FFFD");
    metrics_free(m);

    m = metrics_new();
    f = metrics_family(m, "v", "v", MT_GAUGE, 1, l);
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    metrics_set(f, -2.5, longv, NULL, NULL);
    longv[200] = '\0';
    metrics_set(f, -3.25, longv, NULL, NULL);
    memset(want, 0, sizeof(want));
    snprintf(want, sizeof(want), "# HELP v v\n# TYPE v gauge\nv{project=\"%.*s\"} -3.25\n",
             METRICS_VALUE_MAX, longv);
    check_render(m, want, "long values are cut to METRICS_VALUE_MAX and then equal");
    tap_ok(metrics_family_size(f) == 1, "the two cut values share one series");
    metrics_free(m);

    m = metrics_new();
    f = metrics_family(m, "v", "v", MT_GAUGE, 1, l);
    memset(longv, 'a', sizeof(longv));
    memcpy(longv + METRICS_VALUE_MAX - 1, "\xc3\xa9", 3);  /* é across the limit */
    metrics_set(f, 0.1, longv, NULL, NULL);
    snprintf(want, sizeof(want), "# HELP v v\n# TYPE v gauge\nv{project=\"%.*s\"} 0.1\n",
             METRICS_VALUE_MAX - 1, longv);
    check_render(m, want, "the cut falls on a character boundary");
    metrics_free(m);
}

static void counters_and_gauges(void)
{
    static const char *const l[] = {"reason"};
    struct metrics *m = metrics_new();
    struct mfamily *c = metrics_family(m, "c_total", "c", MT_COUNTER, 1, l);
    struct mfamily *g = metrics_family(m, "g_bytes", "g", MT_GAUGE, 0, NULL);
    struct mseries *s = metrics_series(c, "swr", NULL, NULL);

    metrics_series(c, "sie", NULL, NULL);  /* appears at 0 */
    mseries_inc(s, 1);
    mseries_inc(s, NAN);
    metrics_set(g, 1e20, NULL, NULL, NULL);
    metrics_set(c, 12345678901.0, "mirrored", NULL, NULL);
    metrics_observe(c, 1, "swr", NULL, NULL);
    check_render(m,
                 "# HELP c_total c\n# TYPE c_total counter\n"
                 "c_total{reason=\"swr\"} 1\nc_total{reason=\"sie\"} 0\n"
                 "c_total{reason=\"mirrored\"} 12345678901\n"
                 "# HELP g_bytes g\n# TYPE g_bytes gauge\ng_bytes 1e+20\n",
                 "series handles, zero series, set on a counter, NaN and observe ignored");
    metrics_free(m);
}

static void declarations(void)
{
    static const char *const le[] = {"le"}, *const dunder[] = {"__x"},
                      *const dup[] = {"a", "a"}, *const bad[] = {"a-b"},
                      *const ok[] = {"a", "b", "c", "d"};
    struct metrics *m = metrics_new();
    struct mfamily *f;

    tap_ok(metrics_family(m, "ok:name_total", "", MT_COUNTER, 0, NULL) != NULL,
           "a name with a colon is accepted");
    tap_ok(metrics_family(m, "ok:name_total", "", MT_GAUGE, 0, NULL) == NULL,
           "a duplicate name is refused");
    tap_ok(metrics_family(m, "9lives", "", MT_GAUGE, 0, NULL) == NULL,
           "a name starting with a digit is refused");
    tap_ok(metrics_family(m, "a-b", "", MT_GAUGE, 0, NULL) == NULL,
           "a name with a dash is refused");
    tap_ok(metrics_family(m, "h", "", MT_HISTOGRAM, 1, le) == NULL,
           "a histogram label named le is refused");
    tap_ok(metrics_family(m, "g1", "", MT_GAUGE, 1, le) != NULL, "le is fine on a gauge");
    tap_ok(metrics_family(m, "g2", "", MT_GAUGE, 1, dunder) == NULL,
           "a label starting with __ is refused");
    tap_ok(metrics_family(m, "g3", "", MT_GAUGE, 2, dup) == NULL,
           "a repeated label name is refused");
    tap_ok(metrics_family(m, "g4", "", MT_GAUGE, 1, bad) == NULL,
           "a label name with a dash is refused");
    tap_ok(metrics_family(m, "g5", "", MT_GAUGE, 4, ok) == NULL,
           "more than METRICS_MAX_LABELS labels is refused");
    f = metrics_family(m, "g6", "", MT_GAUGE, 3, ok);
    tap_ok(f != NULL, "three labels are fine");
    tap_ok(metrics_family_cap(f, "d", 10) == -1, "a cap on an unknown label is refused");
    tap_ok(metrics_family_cap(f, "a", 0) == -1, "a cap of 0 is refused");
    metrics_free(m);
}

static void cap_folding(void)
{
    static const char *const l[] = {"project", "budget"};
    struct metrics *m = metrics_new();
    struct mfamily *f = metrics_family(m, "lcgate_rate_limited_total", "Requests refused.",
                                       MT_COUNTER, 2, l);
    char id[32];
    int i;

    tap_ok(metrics_family_cap(f, "project", 2) == 0, "cap on project");
    metrics_inc(f, 1, "p1", "client", NULL);
    metrics_inc(f, 1, "p2", "client", NULL);
    metrics_inc(f, 1, "p3", "client", NULL);      /* past the cap: other */
    metrics_inc(f, 1, "p4", "client", NULL);      /* same folded series */
    metrics_inc(f, 1, "p1", "client", NULL);      /* an existing series goes on */
    metrics_inc(f, 1, "p1", "upstream", NULL);    /* new set: folded too */
    check_render(m,
                 "# HELP lcgate_rate_limited_total Requests refused.\n"
                 "# TYPE lcgate_rate_limited_total counter\n"
                 "lcgate_rate_limited_total{project=\"p1\",budget=\"client\"} 2\n"
                 "lcgate_rate_limited_total{project=\"p2\",budget=\"client\"} 1\n"
                 "lcgate_rate_limited_total{project=\"other\",budget=\"client\"} 2\n"
                 "lcgate_rate_limited_total{project=\"other\",budget=\"upstream\"} 1\n",
                 "past the cap, new projects fold into project=\"other\"");
    /* The family holds 4 = 2 * cap: a set new even when folded folds whole. */
    metrics_inc(f, 1, "p5", "x", NULL);
    metrics_inc(f, 1, "p6", "y", NULL);
    metrics_inc(f, 1, "p7", "upstream", NULL);
    tap_ok(metrics_family_size(f) == 5, "an unbounded second label ends in other/other");
    {
        char *got = render(m);
        tap_ok(strstr(got, "{project=\"other\",budget=\"other\"} 2\n") != NULL &&
                   strstr(got, "{project=\"other\",budget=\"upstream\"} 2\n") != NULL,
               "other/other counts both; a known folded set still counts in its own");
        free(got);
    }
    for (i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "flood-%d", i);
        metrics_inc(f, 1, id, id, NULL);
    }
    tap_ok(metrics_family_size(f) == 5, "a flood of ids adds no series");
    metrics_free(m);

    m = metrics_new();
    f = metrics_family(m, "g", "g", MT_GAUGE, 2, l);
    metrics_family_cap(f, NULL, 1);
    metrics_set(f, 1, "a", "b", NULL);
    metrics_set(f, 2, "c", "d", NULL);
    metrics_set(f, 3, "e", "f", NULL);
    check_render(m,
                 "# HELP g g\n# TYPE g gauge\ng{project=\"a\",budget=\"b\"} 1\n"
                 "g{project=\"other\",budget=\"other\"} 3\n",
                 "a cap without a label folds every label");
    metrics_free(m);

    m = metrics_new();
    f = metrics_family(m, "d_total", "d", MT_COUNTER, 1, l);
    for (i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "%d", i);
        metrics_inc(f, 1, id, NULL, NULL);
    }
    tap_ok(metrics_family_size(f) == METRICS_DEFAULT_CAP + 1,
           "an uncapped family stops at METRICS_DEFAULT_CAP + other");
    metrics_free(m);
}

/* A histogram with its own bounds: 100 us up, past a 30 s timeout, as the
 * request and upstream durations are declared. */
static void custom_buckets(void)
{
    static const char *const l[] = {"route", "cache"};
    static const double b[] = {0.0001, 0.001, 0.01, 0.1, 1, 10, 30, 60};
    static const double bad_order[] = {1, 0.5};
    static const double bad_dup[] = {1, 1};
    static const double bad_inf[] = {1, INFINITY};
    static const double too_many[METRICS_MAX_BUCKETS + 1] = {0};
    struct metrics *m = metrics_new();
    struct mfamily *h = metrics_histogram(m, "req_seconds", "h", 2, l, b, 8);
    char *got;

    tap_ok(h != NULL, "a histogram with its own 8 bounds is declared");
    tap_ok(metrics_histogram(m, "o_seconds", "h", 0, NULL, bad_order, 2) == NULL &&
               metrics_histogram(m, "d_seconds", "h", 0, NULL, bad_dup, 2) == NULL &&
               metrics_histogram(m, "i_seconds", "h", 0, NULL, bad_inf, 2) == NULL &&
               metrics_histogram(m, "n_seconds", "h", 0, NULL, b, 0) == NULL &&
               metrics_histogram(m, "m_seconds", "h", 0, NULL, too_many,
                                 METRICS_MAX_BUCKETS + 1) == NULL &&
               metrics_histogram(m, "le_seconds", "h", 1, (const char *const[]){"le"}, b,
                                 8) == NULL,
           "bounds out of order, repeated, infinite, none or too many are refused, and "
           "le as a label");
    metrics_observe(h, 0.0001, "v2_batches", "HIT", NULL);
    metrics_observe(h, 0.0001, "v2_batches", "HIT", NULL);
    metrics_observe(h, 29.9, "v2_batches", "MISS", NULL);
    metrics_observe(h, 45, "v2_batches", "MISS", NULL);
    metrics_observe(h, 61, "v2_batches", "MISS", NULL);
    got = render(m);
    tap_is_str(got,
               "# HELP req_seconds h\n# TYPE req_seconds histogram\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"0.0001\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"0.001\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"0.01\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"0.1\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"1\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"10\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"30\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"60\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"HIT\",le=\"+Inf\"} 2\n"
               "req_seconds_sum{route=\"v2_batches\",cache=\"HIT\"} 0.0002\n"
               "req_seconds_count{route=\"v2_batches\",cache=\"HIT\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"0.0001\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"0.001\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"0.01\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"0.1\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"1\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"10\"} 0\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"30\"} 1\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"60\"} 2\n"
               "req_seconds_bucket{route=\"v2_batches\",cache=\"MISS\",le=\"+Inf\"} 3\n"
               "req_seconds_sum{route=\"v2_batches\",cache=\"MISS\"} 135.9\n"
               "req_seconds_count{route=\"v2_batches\",cache=\"MISS\"} 3\n",
               "its own bounds render in order (le inclusive, 45 s counted under 60, past "
               "the last only in +Inf)");
    free(got);
    metrics_free(m);
}

int main(void)
{
    small_registry();
    unlabelled_histogram();
    escaping();
    label_values();
    counters_and_gauges();
    declarations();
    cap_folding();
    custom_buckets();
    return tap_done();
}
