/* list: push, order, removal during iteration, and the unlinked state. */
#include <stdlib.h>

#include "list.h"
#include "tap.h"

struct el {
    int v;
    struct list node;
};

/* The values front to back as a string of digits. */
static const char *order(const struct list *anchor)
{
    static char buf[64];
    const struct list *p;
    size_t n = 0;

    for (p = anchor->next; p != anchor && n + 1 < sizeof(buf); p = p->next)
        buf[n++] = (char)('0' + list_entry(p, const struct el, node)->v);
    buf[n] = '\0';
    return buf;
}

int main(void)
{
    struct list a, *p, *next;
    struct el e[10] = {{0}};
    int i;

    list_init(&a);
    tap_ok(list_empty(&a), "a new list is empty");
    tap_ok(list_first(&a) == NULL && list_last(&a) == NULL, "and has no first or last node");
    tap_ok(!list_linked(&e[0].node), "a zeroed node is unlinked");

    for (i = 0; i < 10; i++) {
        e[i].v = i;
        if (i % 2)
            list_push_front(&a, &e[i].node);
        else
            list_push_back(&a, &e[i].node);
    }
    tap_is_str(order(&a), "9753102468", "push_front and push_back keep their order");
    tap_ok(list_entry(list_first(&a), struct el, node)->v == 9, "first is the last pushed front");
    tap_ok(list_entry(list_last(&a), struct el, node)->v == 8, "last is the last pushed back");
    tap_ok(list_linked(&e[3].node), "a node in a list is linked");

    list_foreach_safe(p, next, &a) {
        if (list_entry(p, struct el, node)->v % 3 == 0)
            list_unlink(p);
    }
    tap_is_str(order(&a), "751248", "removal during iteration visits every node once");
    tap_ok(!list_linked(&e[6].node), "an unlinked node says so");

    list_insert_before(&e[2].node, &e[6].node);
    tap_is_str(order(&a), "7516248", "insert_before puts the node just before");

    list_foreach_safe(p, next, &a)
        list_unlink(p);
    tap_ok(list_empty(&a), "unlinking every node empties the list");
    list_push_back(&a, &e[0].node);
    tap_is_str(order(&a), "0", "an emptied list takes nodes again");
    return tap_done();
}
