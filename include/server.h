/*
 * Server connections: connect, log in, and the server-to-client half of
 * the data path. The pooler also runs its own short queries on a server
 * (connect_query, server_check_query, server_reset_query, SET for tracked
 * parameters); their results never reach a client.
 */
#ifndef PGSIEVE_SERVER_H
#define PGSIEVE_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "list.h"
#include "sbuf.h"
#include "varcache.h"

struct pool;
struct client;
struct scram_client;
struct param_list;
struct dns_request;
struct prepared_server;

enum server_state {
	SV_CONNECTING,
	SV_LOGIN,
	SV_IDLE,
	SV_ACTIVE,
	SV_USED, /* running an internal query (reset, check) */
	SV_CLOSED,
};

/* Why an internal query runs, i.e. what happens at its ReadyForQuery. */
enum server_task {
	TASK_NONE,
	TASK_CONNECT_QUERY,
	TASK_CHECK,
	TASK_RESET,
	TASK_SET_VARS,      /* the client's settings, sent ahead of its first request */
	TASK_AUTH_QUERY,    /* auth_query for a logging-in client */
	TASK_SESSION_CHECK, /* target_session_attrs, on servers that do not report it */
	TASK_MASK_CATALOG,  /* the masked columns of the database, then link to the client */
};

struct server {
	struct list_node node;
	struct sbuf sb;
	enum server_state state;
	enum server_task task;
	uint64_t id;
	struct pool *pool;
	struct client *client;

	uint32_t backend_pid;
	uint32_t backend_key;
	struct varcache vars; /* the server's current values */

	int expect_ready;     /* ReadyForQuery messages still to come */
	char tx_status;       /* from the last ReadyForQuery */
	bool task_failed;     /* the internal query returned an error */
	bool release_pending; /* release at the end of this read */
	bool dirty;           /* state unknown: close instead of reusing */
	bool counted;         /* holds a slot in db/user server counts */

	bool tls_answer_pending; /* sent SSLRequest, its one-byte answer has not come */

	struct scram_client *scram;
	struct param_list *login_params; /* ParameterStatus seen during login */
	struct dns_request *dns;
	struct client *auth_client;       /* TASK_AUTH_QUERY: whom the answer is for */
	struct prepared_server *prepared; /* statements prepared here, responses due */
	char *auth_secret;                /* TASK_AUTH_QUERY: the password column */
	bool catalog_ahead; /* TASK_MASK_CATALOG sent ahead of a linked client's request */
	bool auth_found;
	struct sockaddr_storage addr; /* where we connected, for cancel requests */
	socklen_t addr_len;
	/* The other addresses DNS gave, tried in turn when a connect fails. */
	struct sockaddr_storage next_addrs[4];
	int next_count;

	/* The entries of a host list, in the order this connection tries them (server.c). */
	uint8_t host_order[DB_MAX_HOSTS];
	int host_n;
	int host_pos;            /* host_order[host_pos] is being tried */
	char host[256];          /* that entry ("" = the default socket dir) */
	int port;                /* and its port */
	usec_t attempt_time;     /* when it began: server_connect_timeout counts from here */
	int misfits;             /* hosts that logged us in but did not fit target_session_attrs */
	uint32_t misfit_mask;    /* which ones (bits of host indexes) */
	bool any_pass;           /* prefer-standby found no standby: any server will do */
	signed char hot_standby; /* in_hot_standby as reported or queried; -1 = unknown */
	signed char read_only;   /* default_transaction_read_only; -1 = unknown */

	usec_t connect_time;
	usec_t idle_since;
	usec_t request_time; /* when the client's current query began */
	usec_t link_time;
	usec_t ready_time; /* last ReadyForQuery */
};

/* Opens a new server connection for the pool (async). */
void server_launch(struct pool *pool);
/* A logged-in server socket handed over by the process we replace; idle in pool. */
struct server *server_adopt(int fd, struct pool *pool);
/* Frees servers closed since the last loop turn. */
void server_reap(void);

/* Runs an internal query on an idle server; pool_server_ready() follows. */
void server_run_task(struct server *server, enum server_task task, const char *sql);

void server_close(struct server *server, const char *reason);

/* server_connect_timeout passed for the current host: the next one, or the login fails. */
void server_connect_timed_out(struct server *server);

/* The host (entry of the host list) and port this server is connected to. */
const char *server_host(const struct server *server, int *port);

/* Runs auth_query for a logging-in client; auth_query_result() follows. */
void server_run_auth_query(struct server *server, struct client *client);

/* Sends a CancelRequest for this server's backend on a new connection. */
void server_send_cancel(struct server *server);

const char *server_tag(const struct server *server);

#define sv_log(lvl, s, fmt, ...) log_msg(lvl, "%s " fmt, server_tag(s), ##__VA_ARGS__)

#endif
