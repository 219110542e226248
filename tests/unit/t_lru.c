/* lru: lookup without reordering, touch, insertion order and eviction of
 * the least recently used. */
#include <stdio.h>
#include <string.h>

#include "lru.h"
#include "tap.h"

struct el {
    struct lru_node n;
    char key[8];
};

static int eq(const struct htab_node *h, const void *key, size_t klen)
{
    const struct el *e = list_entry(h, const struct el, n.h);

    return strlen(e->key) == klen && memcmp(e->key, key, klen) == 0;
}

static struct el *find(struct lru *l, const char *key)
{
    size_t n = strlen(key);
    struct lru_node *p = lru_find(l, lru_hash(l, key, n), key, n, eq);

    return p ? list_entry(p, struct el, n) : NULL;
}

/* Keys from the most recent to the least. */
static const char *order(const struct lru *l)
{
    static char buf[64];
    const struct list *p;
    size_t n = 0;

    for (p = l->order.next; p != &l->order && n + 1 < sizeof(buf); p = p->next)
        buf[n++] = list_entry(p, const struct el, n.order)->key[0];
    buf[n] = '\0';
    return buf;
}

/* Insert, evicting the least recently used beyond max. */
static void put(struct lru *l, struct el *e, size_t max)
{
    struct lru_node *old;

    while (lru_count(l) >= max && (old = lru_oldest(l)) != NULL)
        lru_remove(l, old);
    lru_insert(l, &e->n, lru_hash(l, e->key, strlen(e->key)));
}

int main(void)
{
    struct el e[6];
    struct lru l;
    int i;

    memset(e, 0, sizeof(e));
    for (i = 0; i < 6; i++)
        snprintf(e[i].key, sizeof(e[i].key), "%c", 'a' + i);
    tap_ok(lru_init(&l, 0) == 0, "init");
    tap_ok(lru_oldest(&l) == NULL, "an empty lru has no oldest");
    put(&l, &e[0], 3);
    put(&l, &e[1], 3);
    put(&l, &e[2], 3);
    tap_is_str(order(&l), "cba", "the newest first");
    tap_ok(find(&l, "a") == &e[0], "lookup finds a");
    tap_is_str(order(&l), "cba", "lookup leaves the order as it was");
    lru_touch(&l, &e[0].n);
    tap_is_str(order(&l), "acb", "touch makes a the most recent");
    put(&l, &e[3], 3);
    tap_is_str(order(&l), "dac", "a fourth key evicts the least recent (b)");
    tap_ok(find(&l, "b") == NULL, "the evicted key is gone from the table");
    tap_ok(lru_count(&l) == 3, "the bound holds");
    lru_remove(&l, &e[0].n);
    tap_is_str(order(&l), "dc", "remove takes a node from the middle");
    tap_ok(lru_oldest(&l) == &e[2].n, "the oldest is c");
    put(&l, &e[0], 3);
    tap_is_str(order(&l), "adc", "a removed node comes back as the newest");
    while (lru_oldest(&l))
        lru_remove(&l, lru_oldest(&l));
    tap_ok(lru_count(&l) == 0 && list_empty(&l.order), "evicting all empties both");
    lru_dispose(&l);
    return tap_done();
}
