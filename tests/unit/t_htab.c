/* htab: insertion, lookup, removal by node, growth past many doublings
 * (with lookups and removals while the nodes move), and per-table keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "list.h"
#include "tap.h"

struct el {
    struct htab_node h;
    char key[16];
};

static int eq(const struct htab_node *n, const void *key, size_t klen)
{
    const struct el *e = list_entry(n, const struct el, h);

    return strlen(e->key) == klen && memcmp(e->key, key, klen) == 0;
}

static struct el *find(struct htab *t, const char *key)
{
    size_t n = strlen(key);
    struct htab_node *h = htab_find(t, htab_hash(t, key, n), key, n, eq);

    return h ? list_entry(h, struct el, h) : NULL;
}

static void insert(struct htab *t, struct el *e)
{
    htab_insert(t, &e->h, htab_hash(t, e->key, strlen(e->key)));
}

#define N 100000

int main(void)
{
    static struct el els[N];
    struct htab t, u;
    size_t i, first_buckets, missing = 0, wrong = 0;
    int differ = 0;

    tap_ok(htab_init(&t, 0) == 0, "init");
    first_buckets = t.nbuckets;
    tap_ok(find(&t, "a") == NULL, "an empty table finds nothing");

    for (i = 0; i < N; i++) {
        snprintf(els[i].key, sizeof(els[i].key), "k%zu", i);
        insert(&t, &els[i]);
        /* Look up an earlier key while the nodes are moving. */
        if (find(&t, els[i / 2].key) != &els[i / 2])
            missing++;
    }
    tap_ok(missing == 0, "every key is found while the table grows (%zu missed)", missing);
    tap_ok(htab_count(&t) == N, "count is %zu", htab_count(&t));
    tap_ok(t.nbuckets >= 8192 * first_buckets,
           "the table doubled many times (%zu -> %zu buckets)", first_buckets, t.nbuckets);
    tap_ok(t.nbuckets < 2 * N * 2, "and no more than the load asks (%zu buckets)", t.nbuckets);
    for (i = 0; i < N; i++)
        if (find(&t, els[i].key) != &els[i])
            wrong++;
    tap_ok(wrong == 0, "every key finds its own node (%zu wrong)", wrong);
    tap_ok(find(&t, "k100000") == NULL && find(&t, "") == NULL, "absent keys are absent");

    /* Remove every other node, by the node, while iterating the keys. */
    for (i = 0; i < N; i += 2)
        htab_remove(&t, &els[i].h);
    tap_ok(htab_count(&t) == N / 2, "removal by node counts down");
    wrong = 0;
    for (i = 0; i < N; i++)
        if (find(&t, els[i].key) != (i % 2 ? &els[i] : NULL))
            wrong++;
    tap_ok(wrong == 0, "removed keys are gone and the others stay (%zu wrong)", wrong);
    tap_ok(els[0].h.pprev == NULL, "a removed node is out of the table");

    insert(&t, &els[0]);
    tap_ok(find(&t, "k0") == &els[0], "a removed node can be inserted again");

    tap_ok(htab_init(&u, 0) == 0, "a second table");
    differ = memcmp(t.key, u.key, sizeof(t.key)) != 0 &&
             htab_hash(&t, "same", 4) != htab_hash(&u, "same", 4);
    tap_ok(differ, "two tables hash the same key differently (their own seeds)");
    tap_ok(htab_hash(&t, "same", 4) == htab_hash(&t, "same", 4), "a table's hash is stable");

    htab_dispose(&u);
    htab_dispose(&t);
    return tap_done();
}
