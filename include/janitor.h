/*
 * Periodic maintenance: every timeout of PgBouncer's, minimum pool sizes,
 * login retries and idle autodb databases. One timer, five times a
 * second; each pass is a walk over the connection lists.
 */
#ifndef PGSIEVE_JANITOR_H
#define PGSIEVE_JANITOR_H

#include <stdbool.h>

struct event_base;

bool janitor_start(struct event_base *base);
void janitor_stop(void);

#endif
