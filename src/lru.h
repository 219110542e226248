/* lru: a hash table (htab.h) whose nodes are also on a list from the most
 * recently used to the least, the structure of every bounded table here
 * (the memory store's entries, the rate limiter's keys). The bound is the
 * owner's: it evicts lru_oldest() until its own measure (count, bytes)
 * fits, since only it knows how to free an element.
 *
 * Not thread-safe, lookups included: the owner locks if it must. */
#ifndef LCGATE_LRU_H
#define LCGATE_LRU_H

#include "htab.h"
#include "list.h"

struct lru_node {
    struct htab_node h;
    struct list order;
};

struct lru {
    struct htab table;
    struct list order;           /* most recent first */
};

/* 0, or -1 (as htab_init). */
static inline int lru_init(struct lru *l, size_t nbuckets)
{
    list_init(&l->order);
    return htab_init(&l->table, nbuckets);
}

/* The nodes are the caller's: evict them first. */
static inline void lru_dispose(struct lru *l)
{
    htab_dispose(&l->table);
}

static inline uint64_t lru_hash(const struct lru *l, const void *key, size_t klen)
{
    return htab_hash(&l->table, key, klen);
}

/* The node holding key (hash h), its place in the order unchanged; NULL
 * when absent. eq receives &node->h. */
static inline struct lru_node *lru_find(struct lru *l, uint64_t h, const void *key, size_t klen,
                                        htab_eq_fn eq)
{
    struct htab_node *n = htab_find(&l->table, h, key, klen, eq);

    return n ? list_entry(n, struct lru_node, h) : NULL;
}

/* Make n the most recently used. */
static inline void lru_touch(struct lru *l, struct lru_node *n)
{
    list_unlink(&n->order);
    list_push_front(&l->order, &n->order);
}

/* Add n (in no table) as the most recently used; its key must be absent. */
static inline void lru_insert(struct lru *l, struct lru_node *n, uint64_t h)
{
    htab_insert(&l->table, &n->h, h);
    list_push_front(&l->order, &n->order);
}

static inline void lru_remove(struct lru *l, struct lru_node *n)
{
    htab_remove(&l->table, &n->h);
    list_unlink(&n->order);
}

/* The least recently used node, or NULL when empty. */
static inline struct lru_node *lru_oldest(const struct lru *l)
{
    struct list *p = list_last(&l->order);

    return p ? list_entry(p, struct lru_node, order) : NULL;
}

static inline size_t lru_count(const struct lru *l)
{
    return htab_count(&l->table);
}

#endif
