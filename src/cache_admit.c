/* Upstream admission: may a fetch go upstream now? The project's upstream
 * budget, any hold after an upstream 429, then the key's budget
 * (cache.h). The holds are a hash table of labels (lru.h, for its list:
 * the order only serves to free them all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache_int.h"
#include "conf.h"
#include "log.h"
#include "ratelimit.h"

#define ADMIT_MAGIC 0x41444d54u      /* "ADMT" */
#define MAX_HOLDS 10000
#define MAX_HOLD_MS 300000
#define HOLD_MAGIC 0x484f4c44u       /* "HOLD" */

/* An upstream 429 for a project: its requests wait until until_ms. */
struct hold {
    unsigned magic;
    struct keyed k;              /* c->holds, in the order they began */
    int64_t until_ms;            /* monotonic */
    char label[];
};

static struct hold *hold_of(struct keyed *k)
{
    struct hold *h = k ? list_entry(k, struct hold, k) : NULL;

    assert(h == NULL || h->magic == HOLD_MAGIC);
    return h;
}

static void hold_free(struct cache *c, struct hold *h)
{
    lru_remove(&c->holds, &h->k.n);
    h->magic = 0;
    free(h);
}

/* Milliseconds the upstream asked this project to wait for, or 0. */
static int64_t held_ms(struct cache *c, const char *label)
{
    size_t n = strlen(label);
    struct hold *h;
    int64_t left;

    /* Hold keys carry client-chosen projects: the table's seeded hash. */
    if (lru_count(&c->holds) == 0 ||
        (h = hold_of(keyed_find(&c->holds, label, n, lru_hash(&c->holds, label, n)))) == NULL)
        return 0;
    left = h->until_ms - c->d.mono();
    if (left > 0)
        return left;
    hold_free(c, h);
    return 0;
}

/* The wait an upstream 429 asks for: retry-after-ms, else Retry-After in
 * seconds, else one second; at most MAX_HOLD_MS. */
static int64_t retry_hint_ms(const struct up_resp *r)
{
    int64_t ms = -1;
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        const char *v = r->headers[i].value;
        if (strcasecmp(r->headers[i].name, "retry-after-ms") == 0 && v[0] >= '0' && v[0] <= '9')
            ms = (int64_t)strtod(v, NULL);
        else if (ms < 0 && strcasecmp(r->headers[i].name, "Retry-After") == 0 &&
                 v[0] >= '0' && v[0] <= '9')
            ms = (int64_t)(strtod(v, NULL) * 1000);
    }
    if (ms < 0)
        ms = 1000;
    return ms > MAX_HOLD_MS ? MAX_HOLD_MS : ms;
}

void cache_upstream_said_429(struct cache *c, const char *label, const char *project,
                             const struct up_resp *r)
{
    size_t n = strlen(label);
    uint64_t hash = lru_hash(&c->holds, label, n);
    struct hold *h = hold_of(keyed_find(&c->holds, label, n, hash));
    int64_t until = c->d.mono() + retry_hint_ms(r);

    if (h == NULL) {
        if (lru_count(&c->holds) >= MAX_HOLDS || (h = calloc(1, sizeof(*h) + n + 1)) == NULL)
            return;
        h->magic = HOLD_MAGIC;
        h->k.key = memcpy(h->label, label, n + 1);
        h->k.klen = n;
        lru_insert(&c->holds, &h->k.n, hash);
        /* The id as the client wrote it (the log escapes it), and its label. */
        log_warn("upstream answered 429 for project %s: holding its upstream requests "
                 "for %lld ms (label %s)", project ? project : "default",
                 (long long)(until - c->d.mono()), label);
    }
    if (until > h->until_ms)
        h->until_ms = until;
}

void holds_free(struct cache *c)
{
    struct hold *h;

    while ((h = hold_of(keyed_oldest(&c->holds))) != NULL)
        hold_free(c, h);
}

struct admit_ctx {
    unsigned magic;
    struct cache *c;
    cache_admit_cb cb;
    void *arg;
    char keytag[CK_TAG_LEN + 1];
};

static struct admit_ctx *admit_of(void *arg)
{
    struct admit_ctx *a = arg;

    assert(a != NULL && a->magic == ADMIT_MAGIC);
    return a;
}

/* The verdict, once: the context goes with it. */
static void admit_done(struct admit_ctx *a, enum admit verdict, int64_t retry_after_ms)
{
    a->magic = 0;
    a->cb(a->arg, verdict, retry_after_ms);
    free(a);
}

static void on_key_admit(void *arg, const struct rl_result *r)
{
    struct admit_ctx *a = admit_of(arg);

    admit_done(a, r->allowed ? ADMIT_OK : ADMIT_KEY, r->allowed ? 0 : r->retry_after_ms);
}

static void key_budget(const char *keytag, char *key, size_t n)
{
    snprintf(key, n, STORE_RL_KEY "%s", keytag);
}

static void on_project_admit(void *arg, const struct rl_result *r)
{
    struct admit_ctx *a = admit_of(arg);
    const struct conf *conf = cache_conf(a->c);
    char key[64];

    if (!r->allowed || !conf->has_key_rate) {
        admit_done(a, r->allowed ? ADMIT_OK : ADMIT_PROJECT, r->allowed ? 0 : r->retry_after_ms);
        return;
    }
    /* The key's budget is spent only by what its project's let through. */
    key_budget(a->keytag, key, sizeof(key));
    rl_take(a->c->d.rl, key, &conf->key_rate, conf->key_burst, on_key_admit, a);
}

void cache_upstream_admit(struct cache *c, const struct admit_who *who, int background,
                          cache_admit_cb cb, void *arg)
{
    const struct conf *conf = cache_conf(c);
    const struct conf_project *p = conf_project(conf, who->project);
    const struct rate *rate = p && p->has_upstream_rate ? &p->upstream_rate : &conf->upstream_rate;
    unsigned burst = p && p->has_upstream_burst ? p->upstream_burst : conf->upstream_burst;
    int64_t held = held_ms(c, who->label);
    struct admit_ctx *a;
    char key[CK_LABEL_MAX + 16], kkey[64];

    snprintf(key, sizeof(key), STORE_RL_UPSTREAM "%s", who->label);
    key_budget(who->keytag, kkey, sizeof(kkey));
    if (held > 0) {
        cb(arg, ADMIT_PROJECT, held);
        return;
    }
    /* Background work only spends what clients leave over. */
    if (background && (!rl_peek(c->d.rl, key, rate, burst) ||
                       (conf->has_key_rate &&
                        !rl_peek(c->d.rl, kkey, &conf->key_rate, conf->key_burst)))) {
        cb(arg, ADMIT_PROJECT, 1000);
        return;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        cb(arg, ADMIT_OK, 0);
        return;
    }
    a->magic = ADMIT_MAGIC;
    a->c = c;
    a->cb = cb;
    a->arg = arg;
    snprintf(a->keytag, sizeof(a->keytag), "%s", who->keytag);
    rl_take(c->d.rl, key, rate, burst, on_project_admit, a);
}
