/*
 * Client connections: the startup phase, authentication, and the
 * client-to-server half of the data path. Every message a client sends
 * passes client_handle_message(), the one place where later phases
 * (policy, rewriting, holds) hook in; today it forwards.
 */
#ifndef PGSIEVE_CLIENT_H
#define PGSIEVE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "sbuf.h"
#include "varcache.h"

struct pool;
struct server;
struct auth_state;
struct pool_user;
struct prepared_client;
struct outcome_client;
struct token_identity;

/* What a console command (PAUSE, WAIT_CLOSE) waits for before it answers. */
enum admin_wait {
	ADMIN_WAIT_NONE,
	ADMIN_WAIT_PAUSE,
	ADMIN_WAIT_CLOSE,
	ADMIN_WAIT_SUSPEND,
};

enum client_state {
	CL_LOGIN,   /* startup and authentication */
	CL_WELCOME, /* authenticated; waiting for the pool's first server parameters */
	CL_IDLE,    /* logged in, no server needed right now */
	CL_WAITING, /* needs a server, queued on the pool */
	CL_ACTIVE,  /* linked to a server */
	CL_CLOSED,
};

struct client {
	struct list_node node;     /* on a pool list, or the login list */
	struct list_node all_node; /* in all_clients (cancel lookup) */
	struct sbuf sb;
	enum client_state state;
	uint64_t id;
	struct pool *pool;
	struct server *server;

	char *user;
	char *dbname;
	struct varcache vars; /* what the client set */
	struct auth_state *auth;
	bool admin;                    /* logged in to the admin console */
	bool os_admin;                 /* "pgbouncer" from our own OS user (unix socket) */
	enum admin_wait admin_waiting; /* a console command that has not answered yet */
	char *admin_wait_db;           /* PAUSE <db>: the database it waits for */

	struct sockaddr_storage addr;
	socklen_t addr_len;
	char addr_str[64];
	int port;

	uint32_t cancel_pid;
	uint32_t cancel_key;

	usec_t connect_time;
	usec_t request_time; /* waiting: since when; active: current query start */
	usec_t last_activity;
	usec_t xact_start;
	bool wait_notified;               /* query_wait_notify sent (once per connection) */
	struct pool_user *account;        /* its role, whose client count it holds */
	struct server *auth_server;       /* running our auth_query */
	struct prepared_client *prepared; /* its prepared statement names (transaction pooling) */
	struct outcome_client *outcome;   /* its statements' names and answers due (outcome.h) */
	struct token_identity *identity;  /* who logged in with a token (oidc, oauth), or NULL */
	/* Result masking (masking.h): the current result's plan, NULL = rows go as they are. */
	struct mask_plan *mask_plan;
	bool mask_described; /* the current result's RowDescription has been seen */
	bool mask_refusing; /* a result was refused: its messages are dropped up to ReadyForQuery */
	/* ... while more statements of its pipeline run: the connection must end (server.c) */
	bool mask_abort;
	/* linked to read the masking catalog before a check; nothing sent since */
	bool linked_for_check;
	uint32_t mask_skip;     /* bytes of a dropped server message still to come */
	char *masked_columns;   /* of the current request, for its audit record */
	uint64_t masked_values; /* of the current request */
	/* It sent DDL: the masked columns are read again after each of its requests until
	 * its transaction ends (others see the change only once it is committed). */
	bool catalog_dirty;
	bool policy_checked; /* the message at the head of its input has been through the policy */
	bool skip_to_sync;   /* a Parse was refused with no server: drop up to Sync */
	/*
	 * Approvals: the Query or Parse at the head of its input (and all it
	 * pipelined behind) waits for a person while approval_id is set. The
	 * answer sets approval_passed (the next check lets the approval
	 * through) or approval_refusal (the next check answers with it).
	 */
	uint64_t approval_id;
	bool approval_passed;
	char *approval_refusal;
	char approval_sqlstate[6];
};

extern struct list_node all_clients;
/* Clients in the startup or authentication phase. */
extern struct list_node login_clients;
extern int client_count;

/* A new socket from a listener. */
void client_accept(int fd, const struct sockaddr *sa, socklen_t len, bool is_unix);

/*
 * A logged-in client's socket handed over by the process we replace
 * (online restart); the caller puts it in its pool.
 */
struct client *client_adopt(int fd, const char *user, const char *dbname);

/* The pool linked a server: the client's pending input can flow. */
void client_linked(struct client *client);
/* The pool's welcome parameters are known: finish the login. */
void client_welcome(struct client *client);

/* Sends an ErrorResponse (FATAL) and closes the connection. */
void client_fail(struct client *client, const char *sqlstate, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* Frees clients closed since the last loop turn. */
void client_reap(void);
/* Closes without a message. */
void client_close(struct client *client, const char *reason);

/* A verified token's identity is the client's from now on (takes it over). */
void client_set_identity(struct client *client, struct token_identity *id);

/* Auth exchange finished successfully (called by auth.c). */
void client_auth_done(struct client *client);

/*
 * A cancel request for a client whose request still waits for a server:
 * no server saw it, so it is answered as PostgreSQL answers a cancelled
 * statement and dropped (up to its Sync). False if it cannot be done
 * (the request is not all here yet).
 */
bool client_cancel_waiting(struct client *client);

/* A cancel request for a client held for approval: the request is withdrawn, 57014. */
void client_cancel_held(struct client *client);

/* Server output to this client hit the limit / drained: back-pressure. */
void client_resume_reading(struct client *client);

/* Identity prefix for log lines: "C-<id>: db/user@addr:port". */
const char *client_tag(const struct client *client);

#define cl_log(lvl, c, fmt, ...) log_msg(lvl, "%s " fmt, client_tag(c), ##__VA_ARGS__)

#endif
