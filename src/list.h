/* list: an intrusive doubly-linked list, as h2o's h2o_linklist_t. A list
 * is an anchor (struct list) whose prev and next close the ring; an element
 * embeds a struct list and is found back with list_entry. A node that is in
 * no list has next == NULL: zeroed memory is an unlinked node, and asserts
 * catch a node linked twice or unlinked twice.
 *
 * Not thread-safe: the owner of the list locks if it must. */
#ifndef LCGATE_LIST_H
#define LCGATE_LIST_H

#include <assert.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

/* The struct of type that holds the node p in its field member. */
#define list_entry(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* An empty list (an anchor only). */
static inline void list_init(struct list *anchor)
{
    anchor->prev = anchor->next = anchor;
}

static inline int list_empty(const struct list *anchor)
{
    return anchor->next == anchor;
}

/* Is node in some list? */
static inline int list_linked(const struct list *node)
{
    return node->next != NULL;
}

/* Link node just before pos (pos may be the anchor: then at the end). */
static inline void list_insert_before(struct list *pos, struct list *node)
{
    assert(!list_linked(node));
    node->prev = pos->prev;
    node->next = pos;
    pos->prev->next = node;
    pos->prev = node;
}

static inline void list_push_front(struct list *anchor, struct list *node)
{
    list_insert_before(anchor->next, node);
}

static inline void list_push_back(struct list *anchor, struct list *node)
{
    list_insert_before(anchor, node);
}

/* Take node out of its list; it is then unlinked (next == NULL). */
static inline void list_unlink(struct list *node)
{
    assert(list_linked(node));
    assert(node->prev->next == node && node->next->prev == node);
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}

/* The first and last nodes, or NULL when the list is empty. */
static inline struct list *list_first(const struct list *anchor)
{
    return list_empty(anchor) ? NULL : anchor->next;
}

static inline struct list *list_last(const struct list *anchor)
{
    return list_empty(anchor) ? NULL : anchor->prev;
}

/* For every node p of the list, front to back; p may be unlinked (and
 * freed) in the body, as next is read before it runs. */
#define list_foreach_safe(p, next_, anchor)                                 \
    for ((p) = (anchor)->next, (next_) = (p)->next; (p) != (anchor);       \
         (p) = (next_), (next_) = (p)->next)

#endif
