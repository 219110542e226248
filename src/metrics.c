#include "metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const double metrics_buckets[METRICS_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10};

struct mseries {
    struct mseries *next;            /* creation order, for rendering */
    struct mfamily *fam;
    const char *lv[METRICS_MAX_LABELS];
    uint64_t hash;
    double value;                    /* counter, gauge; histogram: the sum */
    uint64_t count;                  /* histogram */
    uint64_t bucket[];               /* histogram: per bucket (not cumulative),
                                        the family's nbounds + 1 with +Inf; the
                                        label values follow */
};

struct mfamily {
    struct mfamily *next;
    char *name, *help;
    enum mtype type;
    int nlabels;
    char *label[METRICS_MAX_LABELS];
    int cap_label;                   /* the label folded first; -1: all */
    double *bounds;                  /* histogram: bucket upper bounds */
    size_t nbounds;
    size_t cap;
    struct mseries *first, **tail;
    size_t n;
    struct mseries **slot;           /* open addressing, power of two */
    size_t nslot;
};

struct metrics {
    struct mfamily *first, **tail;
};

typedef char lvbuf[METRICS_MAX_LABELS][METRICS_VALUE_MAX + 1];

/* Series are found, created, changed and rendered under one lock: the
 * workers count the hits they serve. (Families are declared before any
 * thread starts.) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));

    if (m)
        m->tail = &m->first;
    return m;
}

static void family_free(struct mfamily *f)
{
    struct mseries *s, *next;
    int i;

    for (s = f->first; s; s = next) {
        next = s->next;
        free(s);
    }
    for (i = 0; i < f->nlabels; i++)
        free(f->label[i]);
    free(f->slot);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(struct metrics *m)
{
    struct mfamily *f, *next;

    if (m == NULL)
        return;
    for (f = m->first; f; f = next) {
        next = f->next;
        family_free(f);
    }
    free(m);
}

static int name_ok(const char *s, int colon)
{
    const char *p;

    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return 0;
    }
    return 1;
}

/* A label value as it is kept: valid UTF-8, at most METRICS_VALUE_MAX
 * bytes, cut at a character boundary. */
static void normalize(const char *in, char *out)
{
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    const unsigned char *end = s + strlen((const char *)s);
    size_t o = 0, k;

    while (*s) {
        k = utf8_seq_len(s, (size_t)(end - s));
        if (k == 0) {
            if (o + 3 > METRICS_VALUE_MAX)
                break;
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            s++;
            continue;
        }
        if (o + k > METRICS_VALUE_MAX)
            break;
        memcpy(out + o, s, k);
        o += k;
        s += k;
    }
    out[o] = '\0';
}

/* Label values carry client-chosen project ids: util_hash. */
static uint64_t hash_values(const struct mfamily *f, lvbuf v)
{
    char buf[sizeof(lvbuf)];
    size_t n = 0, len;
    int i;

    for (i = 0; i < f->nlabels; i++) {
        len = strlen(v[i]);
        memcpy(buf + n, v[i], len);
        n += len;
        buf[n++] = (char)0xff;   /* never occurs in UTF-8 */
    }
    return util_hash(buf, n);
}

static struct mseries *find(const struct mfamily *f, lvbuf v, uint64_t h)
{
    size_t mask = f->nslot - 1, i = (size_t)h & mask;
    struct mseries *s;
    int j;

    for (; (s = f->slot[i]) != NULL; i = (i + 1) & mask) {
        if (s->hash != h)
            continue;
        for (j = 0; j < f->nlabels; j++)
            if (strcmp(s->lv[j], v[j]) != 0)
                break;
        if (j == f->nlabels)
            return s;
    }
    return NULL;
}

static void slot_put(struct mseries **slot, size_t nslot, struct mseries *s)
{
    size_t i = (size_t)s->hash & (nslot - 1);

    while (slot[i])
        i = (i + 1) & (nslot - 1);
    slot[i] = s;
}

static struct mseries *add(struct mfamily *f, lvbuf v, uint64_t h)
{
    size_t len[METRICS_MAX_LABELS], size, nb;
    struct mseries *s;
    char *p;
    int i;

    if ((f->n + 1) * 2 > f->nslot) {
        size_t nslot = f->nslot * 2;
        struct mseries **slot = calloc(nslot, sizeof(*slot)), *t;
        if (slot == NULL)
            return NULL;
        for (t = f->first; t; t = t->next)
            slot_put(slot, nslot, t);
        free(f->slot);
        f->slot = slot;
        f->nslot = nslot;
    }
    nb = f->type == MT_HISTOGRAM ? f->nbounds + 1 : 0;
    size = sizeof(*s) + nb * sizeof(uint64_t);
    for (i = 0; i < f->nlabels; i++) {
        len[i] = strlen(v[i]) + 1;
        size += len[i];
    }
    s = calloc(1, size);
    if (s == NULL)
        return NULL;
    s->fam = f;
    s->hash = h;
    p = (char *)(s->bucket + nb);
    for (i = 0; i < f->nlabels; i++) {
        memcpy(p, v[i], len[i]);
        s->lv[i] = p;
        p += len[i];
    }
    slot_put(f->slot, f->nslot, s);
    *f->tail = s;
    f->tail = &s->next;
    f->n++;
    return s;
}

static struct mseries *fold_find(struct mfamily *f, lvbuf v, int label)
{
    int i;

    for (i = 0; i < f->nlabels; i++)
        if (label < 0 || i == label)
            memcpy(v[i], METRICS_OTHER, sizeof(METRICS_OTHER));
    return find(f, v, hash_values(f, v));
}

static struct mseries *series_locked(struct mfamily *f, const char *l1, const char *l2,
                                     const char *l3);

struct mseries *metrics_series(struct mfamily *f, const char *l1, const char *l2,
                               const char *l3)
{
    struct mseries *s;

    pthread_mutex_lock(&mu);
    s = series_locked(f, l1, l2, l3);
    pthread_mutex_unlock(&mu);
    return s;
}

static struct mseries *series_locked(struct mfamily *f, const char *l1, const char *l2,
                                     const char *l3)
{
    const char *in[METRICS_MAX_LABELS] = {l1, l2, l3};
    lvbuf v;
    struct mseries *s;
    int i;

    for (i = 0; i < f->nlabels; i++)
        normalize(in[i], v[i]);
    s = find(f, v, hash_values(f, v));
    if (s)
        return s;
    if (f->n >= f->cap) {
        if (f->cap_label >= 0 && (s = fold_find(f, v, f->cap_label)) != NULL)
            return s;
        if ((f->cap_label < 0 || f->n >= 2 * f->cap) && (s = fold_find(f, v, -1)) != NULL)
            return s;
    }
    return add(f, v, hash_values(f, v));
}

static struct mfamily *declare(struct metrics *m, const char *name, const char *help,
                               enum mtype type, int nlabels, const char *const *label_names,
                               const double *bounds, size_t nbounds)
{
    struct mfamily *f;
    size_t b;
    int i, j;

    if (type == MT_HISTOGRAM) {
        if (bounds == NULL || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS)
            return NULL;
        for (b = 0; b < nbounds; b++)
            if (!isfinite(bounds[b]) || (b > 0 && !(bounds[b] > bounds[b - 1])))
                return NULL;
    }
    if (!name_ok(name, 1) || nlabels < 0 || nlabels > METRICS_MAX_LABELS ||
        (nlabels > 0 && label_names == NULL) ||
        (type != MT_COUNTER && type != MT_GAUGE && type != MT_HISTOGRAM))
        return NULL;
    for (i = 0; i < nlabels; i++) {
        if (!name_ok(label_names[i], 0) || strncmp(label_names[i], "__", 2) == 0 ||
            (type == MT_HISTOGRAM && strcmp(label_names[i], "le") == 0))
            return NULL;
        for (j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return NULL;
    }
    for (f = m->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return NULL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->type = type;
    f->nlabels = nlabels;
    f->cap = METRICS_DEFAULT_CAP;
    f->cap_label = -1;
    f->tail = &f->first;
    f->nslot = 8;
    f->slot = calloc(f->nslot, sizeof(*f->slot));
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (type == MT_HISTOGRAM && (f->bounds = malloc(nbounds * sizeof(double))) != NULL) {
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
        f->nbounds = nbounds;
    }
    for (i = 0; i < nlabels; i++)
        if ((f->label[i] = strdup(label_names[i])) == NULL)
            break;
    if (f->slot == NULL || f->name == NULL || f->help == NULL || i < nlabels ||
        (type == MT_HISTOGRAM && f->bounds == NULL) ||
        (nlabels == 0 && metrics_series(f, NULL, NULL, NULL) == NULL)) {
        f->nlabels = i;
        family_free(f);
        return NULL;
    }
    *m->tail = f;
    m->tail = &f->next;
    return f;
}

struct mfamily *metrics_family(struct metrics *m, const char *name, const char *help,
                               enum mtype type, int nlabels, const char *const *label_names)
{
    return declare(m, name, help, type, nlabels, label_names, metrics_buckets,
                   METRICS_NBUCKETS);
}

struct mfamily *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                  int nlabels, const char *const *label_names,
                                  const double *bounds, size_t nbounds)
{
    return declare(m, name, help, MT_HISTOGRAM, nlabels, label_names, bounds, nbounds);
}

int metrics_family_cap(struct mfamily *f, const char *label, size_t max_series)
{
    int i = -1;

    if (max_series == 0)
        return -1;
    if (label) {
        for (i = 0; i < f->nlabels; i++)
            if (strcmp(f->label[i], label) == 0)
                break;
        if (i == f->nlabels)
            return -1;
    }
    f->cap_label = i;
    f->cap = max_series > SIZE_MAX / 4 ? SIZE_MAX / 4 : max_series;
    return 0;
}

size_t metrics_family_size(const struct mfamily *f)
{
    return f->n;
}

static void inc_locked(struct mseries *s, double by)
{
    if (s == NULL || s->fam->type == MT_HISTOGRAM)
        return;
    if (s->fam->type == MT_COUNTER && !(by >= 0))
        return;
    s->value += by;
}

static void set_locked(struct mseries *s, double v)
{
    if (s && s->fam->type != MT_HISTOGRAM)
        s->value = v;
}

static void observe_locked(struct mseries *s, double v)
{
    size_t lo = 0, hi;

    if (s == NULL || s->fam->type != MT_HISTOGRAM || isnan(v))
        return;
    /* The first bucket whose bound is >= v; nbounds is +Inf. */
    hi = s->fam->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= s->fam->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    s->bucket[lo]++;
    s->count++;
    s->value += v;
}

/* What a change does to a series, under the lock. */
enum op { OP_INC, OP_SET, OP_OBSERVE };

static void apply_locked(struct mseries *s, enum op op, double v)
{
    if (op == OP_INC)
        inc_locked(s, v);
    else if (op == OP_SET)
        set_locked(s, v);
    else
        observe_locked(s, v);
}

static void apply(struct mseries *s, enum op op, double v)
{
    pthread_mutex_lock(&mu);
    apply_locked(s, op, v);
    pthread_mutex_unlock(&mu);
}

/* The series of f's labels is found under the same lock as the change. */
static void apply_labels(struct mfamily *f, enum op op, double v, const char *l1,
                         const char *l2, const char *l3)
{
    pthread_mutex_lock(&mu);
    apply_locked(series_locked(f, l1, l2, l3), op, v);
    pthread_mutex_unlock(&mu);
}

void mseries_inc(struct mseries *s, double by)
{
    apply(s, OP_INC, by);
}

void mseries_set(struct mseries *s, double v)
{
    apply(s, OP_SET, v);
}

void mseries_observe(struct mseries *s, double v)
{
    apply(s, OP_OBSERVE, v);
}

void metrics_inc(struct mfamily *f, double by, const char *l1, const char *l2,
                 const char *l3)
{
    apply_labels(f, OP_INC, by, l1, l2, l3);
}

void metrics_set(struct mfamily *f, double v, const char *l1, const char *l2,
                 const char *l3)
{
    apply_labels(f, OP_SET, v, l1, l2, l3);
}

void metrics_observe(struct mfamily *f, double v, const char *l1, const char *l2,
                     const char *l3)
{
    apply_labels(f, OP_OBSERVE, v, l1, l2, l3);
}

/* Shortest %g that reads back as the same double; the format's spelling
 * of the infinities and NaN. */
static const char *fmt_double(double v, char *buf, size_t len)
{
    int prec;

    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* Text with '\\', '\n' and (in label values) '"' escaped. */
static int add_escaped(struct evbuffer *out, const char *s, int quote)
{
    const char *run = s;
    int rc = 0;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                        : quote && *s == '"' ? "\\\"" : NULL;
        if (esc == NULL)
            continue;
        rc |= evbuffer_add(out, run, (size_t)(s - run));
        rc |= evbuffer_add(out, esc, 2);
        run = s + 1;
    }
    rc |= evbuffer_add(out, run, (size_t)(s - run));
    return rc;
}

/* name{l="v",...[,le="x"]} value */
static int add_sample(struct evbuffer *out, const struct mseries *s, const char *suffix,
                      const char *le, const char *value)
{
    const struct mfamily *f = s->fam;
    int rc = 0, i;

    rc |= evbuffer_add_printf(out, "%s%s", f->name, suffix) < 0;
    if (f->nlabels > 0 || le) {
        rc |= evbuffer_add(out, "{", 1);
        for (i = 0; i < f->nlabels; i++) {
            rc |= evbuffer_add_printf(out, "%s%s=\"", i ? "," : "", f->label[i]) < 0;
            rc |= add_escaped(out, s->lv[i], 1);
            rc |= evbuffer_add(out, "\"", 1);
        }
        if (le)
            rc |= evbuffer_add_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le) < 0;
        rc |= evbuffer_add(out, "}", 1);
    }
    rc |= evbuffer_add_printf(out, " %s\n", value) < 0;
    return rc;
}

static int render_histogram(struct evbuffer *out, const struct mseries *s)
{
    const struct mfamily *f = s->fam;
    char le[32], num[32];
    uint64_t cum = 0;
    size_t b;
    int rc = 0;

    for (b = 0; b <= f->nbounds; b++) {
        cum += s->bucket[b];
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        rc |= add_sample(out, s, "_bucket",
                         b < f->nbounds ? fmt_double(f->bounds[b], le, sizeof(le)) : "+Inf",
                         num);
    }
    rc |= add_sample(out, s, "_sum", NULL, fmt_double(s->value, num, sizeof(num)));
    snprintf(num, sizeof(num), "%" PRIu64, s->count);
    rc |= add_sample(out, s, "_count", NULL, num);
    return rc;
}

int metrics_render(struct metrics *m, struct evbuffer *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const struct mfamily *f;
    const struct mseries *s;
    char num[32];
    int rc = 0;

    pthread_mutex_lock(&mu);
    for (f = m->first; f; f = f->next) {
        if (f->n == 0)
            continue;
        rc |= evbuffer_add_printf(out, "# HELP %s ", f->name) < 0;
        rc |= add_escaped(out, f->help, 0);
        rc |= evbuffer_add_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]) < 0;
        for (s = f->first; s; s = s->next) {
            if (f->type == MT_HISTOGRAM)
                rc |= render_histogram(out, s);
            else
                rc |= add_sample(out, s, "", NULL, fmt_double(s->value, num, sizeof(num)));
        }
    }
    pthread_mutex_unlock(&mu);
    return rc ? -1 : 0;
}
