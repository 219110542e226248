/* store_memory: hits, misses, expiry, LRU order and the byte bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_store.h"
#include "tap.h"

static enum store_res last_res;
static struct centry *last_e;
static struct gens last_g;

static void got(void *arg, enum store_res res, struct centry *e, const struct gens *g)
{
    last_res = res;
    if (g)
        last_g = *g;
    centry_decref(last_e);
    last_e = e;
    if (e)
        centry_incref(e);
}

static void lease_cb(void *arg, int got_it)
{
    *(int *)arg = got_it;
}

static enum store_res get(struct store *s, const char *key)
{
    last_res = STORE_ERROR;
    store_get(s, key, strlen(key), "lcg:1:gen:p1", got, NULL);
    return last_res;
}

static void put(struct store *s, const char *key, size_t body_len, uint64_t keep_ms)
{
    char *body = calloc(1, body_len + 1);
    struct centry *e;

    memset(body, 'x', body_len);
    e = centry_new(200, 0, "application/json", 16, body, body_len);
    store_set(s, key, strlen(key), e, keep_ms);
    centry_decref(e);
    free(body);
}

int main(void)
{
    struct store *s = store_memory_new(64 * 1024);
    struct timespec ms50 = {0, 50 * 1000 * 1000};
    char key[32];
    int i, kept;

    tap_ok(get(s, "a") == STORE_MISS, "empty store misses");
    put(s, "a", 100, 60000);
    tap_ok(get(s, "a") == STORE_HIT && last_e->body_len == 100, "stored entry hits");
    put(s, "a", 200, 60000);
    tap_ok(get(s, "a") == STORE_HIT && last_e->body_len == 200, "set replaces an entry");
    tap_ok(store_memory_count(s) == 1, "replacing keeps one entry");
    put(s, "short", 10, 20);
    tap_ok(get(s, "short") == STORE_HIT, "entry hits before its expiry");
    nanosleep(&ms50, NULL);
    tap_ok(get(s, "short") == STORE_MISS, "entry misses after its expiry");
    tap_ok(store_memory_count(s) == 1, "an expired entry is dropped when found");

    /* Fill past the bound: the oldest go first, the bound holds. */
    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        put(s, key, 2000, 60000);
        if (i == 5)
            get(s, "a"); /* touch: "a" is recent again */
    }
    tap_ok(store_memory_bytes(s) <= 64 * 1024, "bytes stay within memory_max (%zu)",
           store_memory_bytes(s));
    tap_ok(get(s, "k0") == STORE_MISS, "least recently used entry was evicted");
    tap_ok(get(s, "k99") == STORE_HIT, "newest entry is kept");
    for (kept = 0, i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        kept += get(s, key) == STORE_HIT;
    }
    tap_ok(kept > 20 && kept < 32, "about 64 KiB of 2 KB entries are kept (%d)", kept);

    put(s, "huge", 128 * 1024, 60000);
    tap_ok(get(s, "huge") == STORE_MISS, "an entry larger than the bound is not stored");
    tap_ok(get(s, "k99") == STORE_HIT, "and it evicts nothing");

    put(s, "lcg:1:p:a", 10, 60000);
    put(s, "lcg:1:p:b", 10, 60000);
    put(s, "lcg:1:q:a", 10, 60000);
    s->ops->purge(s, "lcg:1:p:");
    tap_ok(get(s, "lcg:1:p:a") == STORE_MISS && get(s, "lcg:1:p:b") == STORE_MISS,
           "purge drops keys under the prefix");
    tap_ok(get(s, "lcg:1:q:a") == STORE_HIT, "purge keeps other keys");
    s->ops->purge(s, "");
    tap_ok(store_memory_count(s) == 0 && store_memory_bytes(s) == 0,
           "purge of everything leaves nothing");

    get(s, "none");
    tap_ok(last_g.proj == 0 && last_g.all == 0, "generations start unset (0)");
    s->ops->gen_set(s, "lcg:1:gen:p1", 5, 0, 60000);
    s->ops->gen_set(s, "lcg:1:gen:p1", 6, 1, 60000);
    s->ops->gen_set(s, "lcg:1:gen:p2", 9, 0, 60000);
    s->ops->gen_set(s, STORE_GEN_ALL, 3, 1, 60000);
    get(s, "none");
    tap_ok(last_g.proj == 5 && last_g.all == 3,
           "generations are set per name and globally; if_absent keeps a set one");
    s->ops->gen_set(s, "lcg:1:gen:p1", 8, 0, 60000);
    get(s, "none");
    tap_ok(last_g.proj == 8, "a plain set replaces it");
    s->ops->gen_set(s, "lcg:1:gen:p1", 4, 0, 1);
    usleep(5000);
    get(s, "none");
    tap_ok(last_g.proj == 0, "a generation expires");
    {
        char name[64];
        for (i = 0; i < STORE_MEMORY_MAX_GENS + 10; i++) {
            snprintf(name, sizeof(name), "lcg:1:gen:many%d", i);
            s->ops->gen_set(s, name, 1, 0, 60000);
        }
        s->ops->gen_set(s, "lcg:1:gen:p1", 11, 0, 60000);
        get(s, "none");
        tap_ok(last_g.proj == 11, "the newest generation is kept past the bound");
        tap_ok(store_memory_gens(s) == STORE_MEMORY_MAX_GENS,
               "generations are bounded: %zu kept of %d set", store_memory_gens(s),
               STORE_MEMORY_MAX_GENS + 12);
        store_get(s, "none", 4, "lcg:1:gen:many0", got, NULL);
        tap_ok(last_g.proj == 0, "the oldest set went first");
        store_get(s, "none", 4, "lcg:1:gen:many5000", got, NULL);
        tap_ok(last_g.proj == 1, "later ones stay");
    }
    {
        int got_lease = -5;
        s->ops->lease(s, "x", 1000, lease_cb, &got_lease);
        tap_ok(got_lease == 1, "the memory store grants every lease at once");
    }

    /* An entry held by a reader survives its eviction. */
    put(s, "held", 100, 60000);
    get(s, "held");
    s->ops->purge(s, "");
    tap_ok(last_e != NULL && last_e->body_len == 100 && last_e->body[99] == 'x',
           "a borrowed entry outlives its eviction");
    centry_decref(last_e);
    last_e = NULL;
    s->ops->free(s);
    return tap_done();
}
