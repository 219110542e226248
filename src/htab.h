/* htab: a growable hash table of intrusive nodes, for every in-process table
 * whose keys a client can choose. Each table draws its own SipHash key at
 * init (getrandom), so that nobody outside can compute keys that share a
 * bucket, nor learn one table's layout from another's.
 *
 * The table holds nodes, never keys: the element embeds a struct htab_node
 * (found back with list_entry from list.h, or offsetof) and keeps its key
 * itself; lookups compare keys through the caller's eq function. The table
 * grows by doubling once it holds more nodes than buckets. Growing moves
 * the nodes a few buckets per call (as Redis's dict does), so no insert or
 * lookup pays for the whole table at once. A node is removed by itself, in
 * O(1), without a lookup.
 *
 * Not thread-safe, lookups included (they move nodes while growing): the
 * owner locks if it must. */
#ifndef LCGATE_HTAB_H
#define LCGATE_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct htab_node {
    struct htab_node *next;      /* bucket chain */
    struct htab_node **pprev;    /* what points at this node; NULL: not in a table */
    uint64_t hash;
};

struct htab {
    struct htab_node **buckets;
    size_t nbuckets;             /* a power of two */
    struct htab_node **old;      /* while growing: the previous buckets, */
    size_t nold, moved;          /* of which old[0..moved) are emptied */
    size_t count;
    unsigned char key[16];       /* this table's SipHash key */
};

/* Does n hold key[0..klen)? */
typedef int (*htab_eq_fn)(const struct htab_node *n, const void *key, size_t klen);

/* An empty table of about nbuckets buckets (rounded up to a power of two,
 * at least 8). 0, or -1 if out of memory or without randomness. */
int htab_init(struct htab *t, size_t nbuckets);
/* Free the buckets; the nodes are the caller's (remove them first, or
 * free them by another list). */
void htab_dispose(struct htab *t);

/* key's hash in this table (what htab_find and htab_insert take). */
uint64_t htab_hash(const struct htab *t, const void *key, size_t klen);
/* The node holding key (hash h), or NULL. */
struct htab_node *htab_find(struct htab *t, uint64_t h, const void *key, size_t klen,
                            htab_eq_fn eq);
/* Add n (not in a table) under hash h. Keys are not checked: the caller
 * inserts a key that is absent. */
void htab_insert(struct htab *t, struct htab_node *n, uint64_t h);
/* Take n (in t) out of the table. */
void htab_remove(struct htab *t, struct htab_node *n);

static inline size_t htab_count(const struct htab *t)
{
    return t->count;
}

#endif
