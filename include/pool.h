/*
 * Pools: one per (database, server login user). A pool owns the lists its
 * client and server connections sit on; a connection's state is the list
 * it is on, and pool_* functions are the only ones that move connections
 * between lists, so that counts and limits stay true.
 *
 * Databases and users are runtime objects made from the configuration:
 * RELOAD updates them in place, so pools and connections keep pointing
 * at live objects while the config struct they came from is replaced.
 */
#ifndef PGSIEVE_POOL_H
#define PGSIEVE_POOL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "list.h"
#include "util.h"

struct client;
struct server;
struct dns_request;
struct param_list;

struct pool_stats {
	uint64_t server_assignment_count;
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t bytes_received;
	uint64_t bytes_sent;
	usec_t xact_time;
	usec_t query_time;
	usec_t wait_time;
	uint64_t parse_count;        /* Parse messages from clients */
	uint64_t server_parse_count; /* Parse messages sent to servers */
	uint64_t bind_count;
};

struct mask_catalog;
struct server;

struct pool_db {
	struct list_node node; /* in all_dbs */
	char *name;
	struct db_config conf; /* owned copy of its [databases] entry */
	bool autodb;           /* made from the "*" entry */
	bool removed;          /* gone from the config: closed once idle */
	bool paused;           /* PAUSE <db>: no new server links */
	bool disabled;         /* DISABLE <db>: new clients are refused */
	/* Per-second rates and per-event times of the last stats_period (SHOW STATS avg_*). */
	struct pool_stats stats_prev;
	struct pool_stats stats_avg;
	usec_t stats_time;
	usec_t inactive_since;     /* autodb: no pool has connections since */
	struct pool_stats retired; /* counters of its pools freed by pool_idle_timeout */
	int server_count;          /* for max_db_connections */
	/* Resolved server address; refreshed by DNS when host is a name. */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	usec_t addr_time;
	struct dns_request *dns;
	bool dns_failed;
	/* When each entry of the host list last failed or did not fit target_session_attrs. */
	usec_t host_failed[DB_MAX_HOSTS];
	/* prefer-standby: when a connection last found no standby and took another server. */
	usec_t no_standby_since;
	struct mask_catalog *mask_catalog; /* the masked columns of this database (masking.h) */
};

struct pool_user {
	struct list_node node; /* in all_users */
	char *name;
	/* Secret from auth_file or auth_query: plain, "md5..." or "SCRAM-SHA-256$...". */
	char *secret;
	bool from_auth_file;
	/* Cleartext a client proved, usable for server logins. */
	char *password;
	/* SCRAM keys recovered from a client's login, for pass-through. */
	bool have_scram_keys;
	uint8_t scram_client_key[32];
	uint8_t scram_server_key[32];
	int client_count; /* logged-in clients, for max_user_client limits */
	int server_count; /* for max_user_connections */
};

struct pool {
	struct list_node node; /* in all_pools */
	struct pool_db *db;
	struct pool_user *user; /* whom servers log in as */
	enum pool_mode mode;    /* effective pool_mode, refreshed on RELOAD */

	/* Clients */
	struct list_node active_clients;  /* logged in; linked or between transactions */
	struct list_node waiting_clients; /* need a server */

	/* Servers */
	struct list_node idle_servers;   /* ready, most recently used first */
	struct list_node active_servers; /* linked to a client */
	struct list_node used_servers;   /* running reset/check queries */
	struct list_node new_servers;    /* connecting or logging in */

	/* ParameterStatus values of the first server login, replayed to clients. */
	struct param_list *welcome;

	usec_t last_login_failure; /* for server_login_retry */
	unsigned host_rr;          /* load_balance_hosts=round-robin: the next first host */
	char last_login_error[256];
	char last_login_sqlstate[6];

	struct pool_stats stats;
	usec_t unused_since; /* no client since; 0 = in use */
};

extern struct list_node all_pools;
extern struct list_node all_dbs;

/* Pause and shutdown state shared by every pool. */
extern bool pooler_paused;
/* SUSPEND: connections stop at a message boundary so they can be handed over. */
extern bool pooler_suspended;

/* The runtime database of that name, if a client made it exist; never creates one. */
struct pool_db *pool_db_find(const char *name);
/* Finds or creates the runtime database for a client's database name (autodb via "*"). */
struct pool_db *pool_db_lookup(const char *name);
/* Finds or creates a user object; secret may come from auth_file later. */
struct pool_user *pool_user_get(const char *name);
struct pool *pool_get(struct pool_db *db, struct pool_user *user);

/* Applies a new configuration to databases and users (RELOAD). */
void pool_apply_config(void);

/* Client lifecycle in a pool. */
void pool_client_logged_in(struct pool *pool, struct client *client);
enum link_result {
	LINK_NOW,   /* linked and ready: forward at once */
	LINK_LATER, /* queued, or the server is applying settings: client_linked() follows */
};
/* The client needs a server; links one now or queues the client. */
enum link_result pool_request_server(struct client *client) MUST_CHECK;
/* A logging-in client needs auth_query run on a server of this pool. */
void pool_request_auth_query(struct pool *pool, struct client *client);
/* Server's transaction ended: back to idle, or to reset, or closed. */
void pool_release_server(struct server *server);
/* A waiting client stops waiting (its request was cancelled). */
void pool_client_unwait(struct client *client);
/* The client is gone: unlinks it and decides what its server needs. */
void pool_client_gone(struct client *client);

/* Server lifecycle. */
void pool_server_ready(struct server *server); /* login, check or reset finished */
void pool_server_gone(struct server *server);  /* closed; frees it */
void pool_server_login_failed(struct pool *pool, const char *sqlstate, const char *msg);

/* Online restart: connections handed over by the process we replace. */
void pool_adopt_server(struct pool *pool, struct server *server);
/* Puts the client in its pool, linked to server if that is not NULL. */
void pool_adopt_client(struct pool *pool, struct client *client, struct server *server);

/* Starts new connections where clients wait or min_pool_size is not met. */
void pool_maintain(struct pool *pool);
/* Hands idle servers to waiting clients (after RESUME, a release, a new server). */
void pool_dispatch(struct pool *pool);

int pool_server_count(const struct pool *pool);
static inline enum pool_mode pool_mode_of(const struct pool *pool)
{
	return pool->mode;
}

/* Opens min_pool_size connections for databases with a forced user. */
void pool_fill_forced(usec_t now);
/* dst += s, field by field. */
void pool_stats_add(struct pool_stats *dst, const struct pool_stats *s);
/* Sums the stats of every pool of a database. */
void pool_db_stats(const struct pool_db *db, struct pool_stats *out);
/* Recomputes the avg_* figures of every database once per stats_period. */
void pool_update_averages(usec_t now);
/* Every user object (for SHOW USERS). */
extern struct list_node all_users;

/* Logged-in clients of a database over all its pools (waiting ones included). */
int pool_db_client_count(const struct pool_db *db);
/*
 * Checked once a client has authenticated, with user->client_count already
 * counting it and before it joins a pool: the name of the limit it is over
 * (max_user_client_connections, max_db_client_connections), or NULL. db is
 * NULL for the admin console, where only the user limit applies.
 */
const char *pool_client_limit(const struct pool_db *db, const struct pool_user *user);
/* The server is older than its database's server_lifetime. */
bool pool_server_expired(const struct server *s, usec_t now);

/* Drops autodb databases idle longer than autodb_idle_timeout. */
void pool_gc_autodb(usec_t now);
/* Closes the idle servers of pools without clients for pool_idle_timeout, then frees them. */
void pool_gc_idle(usec_t now);

/* RECONNECT: servers of db (NULL = all) close when released, idle ones now. */
void pool_reconnect(struct pool_db *db);
/* Servers of db (NULL = all) that RECONNECT or RELOAD marked and that still exist. */
int pool_dirty_servers(const struct pool_db *db);
/* KILL: drops every client and server connection of db. */
void pool_kill(struct pool_db *db, const char *reason);
/* Closes every server connection (shutdown). */
void pool_close_all_servers(const char *reason);

/* Closes everything: used at exit so sanitizers see no leaks. */
void pool_free_all(void);

/* A server just linked to a client: the client's settings go out ahead of its requests. */
void pool_send_settings(struct server *s);

#endif
