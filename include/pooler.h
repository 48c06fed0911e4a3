/*
 * The process-wide parts of the pooler: the event loop, the listening
 * sockets, pause and shutdown state, and deferred freeing of closed
 * connections.
 */
#ifndef PGSIEVE_POOLER_H
#define PGSIEVE_POOLER_H

#include <stdbool.h>

struct event_base;

extern struct event_base *pooler_base;

enum shutdown_mode {
	SHUTDOWN_NONE,
	SHUTDOWN_WAIT_CLIENTS, /* SIGTERM: exit once clients are gone */
	SHUTDOWN_WAIT_SERVERS, /* SIGINT: exit once servers are released */
	SHUTDOWN_IMMEDIATE,
};

bool pooler_init(char **err);
/* Opens the TCP and unix listeners of the configuration in force. */
bool pooler_listen(char **err);
void pooler_close_listeners(void);

/* Online restart: the listening sockets as descriptors, in order. */
int pooler_listener_fds(int *fds, int max);
/* Listens on a socket handed over by the process we replace. */
bool pooler_adopt_listener(int fd, char **err);
/* SUSPEND stops accepting; new connections wait in the kernel's queue. */
void pooler_set_accepting(bool on);
/* Closes our listeners but leaves the unix socket file to the new process. */
void pooler_let_go_listeners(void);
void pooler_run(void);
void pooler_cleanup(void);

void pooler_begin_shutdown(enum shutdown_mode mode);
bool pooler_shutting_down(void);
enum shutdown_mode pooler_shutdown_mode(void);
/* Ends the loop when the shutdown's condition holds. */
void pooler_check_shutdown(void);

/* RELOAD and SIGHUP: false (and *err) if the file is broken; nothing changed then. */
bool pooler_reload(char **err);

/* SIGUSR1 / SIGUSR2. */
void pooler_pause(void);
void pooler_resume(void);

/* Asks the loop to free closed connections after this callback. */
void pooler_schedule_reap(void);

#endif
