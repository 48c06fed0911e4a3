/*
 * Online restart (-R), as PgBouncer does it: the new process logs in to
 * the running one's console on the unix socket as "pgbouncer", sends
 * SUSPEND (every connection stops between two messages), SHOW FDS (each
 * row comes with its socket over SCM_RIGHTS, plus what is needed to carry
 * the connection on) and SHUTDOWN, then serves the same listening
 * sockets, clients and server connections. Nobody is disconnected.
 *
 * Both halves live here: the running process's SUSPEND and SHOW FDS,
 * and the new process's fetching and adoption.
 */
#ifndef PGSIEVE_TAKEOVER_H
#define PGSIEVE_TAKEOVER_H

#include <stdbool.h>

struct client;
struct takeover;

/* The running process */

/* SUSPEND: stop accepting, and stop every connection at its next message boundary. */
void takeover_suspend(void);
/*
 * True once every connection has stopped, or suspend_timeout has passed
 * and the ones that did not were closed.
 */
bool takeover_suspend_settled(void);
/* RESUME after SUSPEND. */
void takeover_resume(void);
/*
 * SHOW FDS. To "pgbouncer" from our own OS user on the unix socket while
 * suspended, every row carries its socket and the connection's secrets;
 * to anyone else it is a listing with the secrets left out.
 */
void takeover_show_fds(struct client *console);
/* The sockets went to a new process: SHUTDOWN must not touch them. */
bool takeover_handed_over(void);
/* Before exiting after a hand-over: closes our descriptors without a byte sent. */
void takeover_let_go(void);

/* The new process */

/*
 * Suspends the running process and receives its sockets; *out is NULL
 * (and the result true) when no process listens on our unix socket.
 * Blocks, with bounded waits: it runs before our loop serves anyone.
 */
bool takeover_fetch(struct takeover **out, char **err);
/* Makes listeners, servers and clients of what takeover_fetch() received; frees t. */
void takeover_adopt(struct takeover *t);

#endif
