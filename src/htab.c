#include "htab.h"

#include <assert.h>
#include <stdlib.h>

#include "util.h"

/* Old buckets moved per call while growing. A table grows when it holds
 * nbuckets nodes; it takes as many inserts again to need the next growth,
 * and each moves at least this many of the nold = nbuckets / 2 old buckets:
 * the move is always over before the next one starts. */
#define MOVE_STEP 4
#define MIN_BUCKETS 8

static void link_at(struct htab_node **slot, struct htab_node *n)
{
    n->next = *slot;
    if (n->next)
        n->next->pprev = &n->next;
    n->pprev = slot;
    *slot = n;
}

/* Move up to MOVE_STEP old buckets into the new ones; free the old array
 * once it is empty. */
static void move_some(struct htab *t)
{
    size_t stop = t->moved + MOVE_STEP;
    struct htab_node *n;

    if (t->old == NULL)
        return;
    for (; t->moved < t->nold && t->moved < stop; t->moved++) {
        while ((n = t->old[t->moved]) != NULL) {
            t->old[t->moved] = n->next;
            link_at(&t->buckets[n->hash & (t->nbuckets - 1)], n);
        }
    }
    if (t->moved == t->nold) {
        free(t->old);
        t->old = NULL;
        t->nold = t->moved = 0;
    }
}

/* Start doubling; a failed allocation leaves the chains longer, still
 * correct, and the next insert tries again. */
static void grow(struct htab *t)
{
    struct htab_node **nb;

    while (t->old != NULL)
        move_some(t);
    if ((nb = calloc(t->nbuckets * 2, sizeof(*nb))) == NULL)
        return;
    t->old = t->buckets;
    t->nold = t->nbuckets;
    t->moved = 0;
    t->buckets = nb;
    t->nbuckets *= 2;
}

/* Where a node of hash h lives: its old bucket if not yet moved. */
static struct htab_node **bucket(const struct htab *t, uint64_t h)
{
    size_t i;

    if (t->old != NULL && (i = h & (t->nold - 1)) >= t->moved)
        return &t->old[i];
    return &t->buckets[h & (t->nbuckets - 1)];
}

int htab_init(struct htab *t, size_t nbuckets)
{
    size_t n = MIN_BUCKETS;

    while (n < nbuckets && n < ((size_t)1 << 30))
        n <<= 1;
    t->old = NULL;
    t->nold = t->moved = t->count = 0;
    if (util_random(t->key, sizeof(t->key)) != 0)
        return -1;
    if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL)
        return -1;
    t->nbuckets = n;
    return 0;
}

void htab_dispose(struct htab *t)
{
    free(t->buckets);
    free(t->old);
    t->buckets = t->old = NULL;
    t->nbuckets = t->nold = t->count = 0;
}

uint64_t htab_hash(const struct htab *t, const void *key, size_t klen)
{
    return util_siphash(t->key, key, klen);
}

struct htab_node *htab_find(struct htab *t, uint64_t h, const void *key, size_t klen,
                            htab_eq_fn eq)
{
    struct htab_node *n;

    move_some(t);
    for (n = *bucket(t, h); n; n = n->next)
        if (n->hash == h && eq(n, key, klen))
            return n;
    return NULL;
}

void htab_insert(struct htab *t, struct htab_node *n, uint64_t h)
{
    assert(n->pprev == NULL);
    move_some(t);
    n->hash = h;
    link_at(bucket(t, h), n);
    if (++t->count > t->nbuckets)
        grow(t);
}

void htab_remove(struct htab *t, struct htab_node *n)
{
    assert(n->pprev != NULL && *n->pprev == n);
    assert(t->count > 0);
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
    t->count--;
}
