/*
 * The admin console: the virtual database "pgbouncer" (alias "pgsieve"),
 * with PgBouncer's SHOW and control commands over the simple query
 * protocol. admin_users may run everything, stats_users only SHOW.
 */
#ifndef PGSIEVE_ADMIN_H
#define PGSIEVE_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

struct client;

/* True for the console's database names. */
bool admin_is_database(const char *dbname);
/* The user may log in to the console at all (admin_users or stats_users). */
bool admin_user_allowed(const char *user);

/* Authentication succeeded: welcome the client to the console. */
void admin_login(struct client *client);
/* Handles the client's buffered messages; false once the client is closed. */
bool admin_process(struct client *client);
/* Periodic work: answers PAUSE and WAIT_CLOSE once their condition holds. */
void admin_tick(void);

#endif
