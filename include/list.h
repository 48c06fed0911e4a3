/*
 * Intrusive doubly linked lists. Objects embed a struct list_node and move
 * between lists (a connection's state is the list it sits on) without
 * allocating.
 */
#ifndef PGSIEVE_LIST_H
#define PGSIEVE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *next, *prev;
};

/* A list head is a node that points at itself when empty. */
#define LIST_INIT(name)                                                                            \
	{                                                                                          \
		&(name), &(name)                                                                   \
	}

static inline void list_init(struct list_node *head)
{
	head->next = head->prev = head;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

static inline void list_insert_after(struct list_node *pos, struct list_node *n)
{
	n->next = pos->next;
	n->prev = pos;
	pos->next->prev = n;
	pos->next = n;
}

static inline void list_append(struct list_node *head, struct list_node *n)
{
	list_insert_after(head->prev, n);
}

static inline void list_prepend(struct list_node *head, struct list_node *n)
{
	list_insert_after(head, n);
}

static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

static inline struct list_node *list_first(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->next;
}

static inline struct list_node *list_last(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->prev;
}

static inline struct list_node *list_pop(struct list_node *head)
{
	struct list_node *n = list_first(head);
	if (n)
		list_del(n);
	return n;
}

static inline size_t list_count(const struct list_node *head)
{
	size_t n = 0;
	for (const struct list_node *it = head->next; it != head; it = it->next)
		n++;
	return n;
}

#define list_for_each(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)
/* Safe against removal of the current node. */
#define list_for_each_safe(it, tmp, head)                                                          \
	for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head);                              \
	     (it) = (tmp), (tmp) = (it)->next)

#endif
