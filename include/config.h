/*
 * The configuration: one immutable struct behind one pointer. Loading
 * builds a complete new struct from pgbouncer.ini (and its %includes);
 * RELOAD swaps the pointer only if the whole file loaded, so a broken file
 * never leaves a half-applied configuration behind.
 *
 * Every PgBouncer 1.25 setting name is known to the settings table in
 * config.c. Implemented settings have a field here; the rest are accepted
 * with one warning naming them.
 */
#ifndef PGSIEVE_CONFIG_H
#define PGSIEVE_CONFIG_H

#include <stdbool.h>
#include "util.h"

enum pool_mode {
	POOL_MODE_UNSET = -1, /* a [databases]/[users] entry that inherits */
	POOL_MODE_SESSION = 0,
	POOL_MODE_TRANSACTION,
	POOL_MODE_STATEMENT,
};

enum auth_type {
	AUTH_TYPE_UNSET = -1,
	AUTH_TYPE_TRUST = 0,
	AUTH_TYPE_ANY,
	AUTH_TYPE_PLAIN, /* "password": cleartext exchange */
	AUTH_TYPE_MD5,
	AUTH_TYPE_SCRAM_SHA_256,
	AUTH_TYPE_CERT,
	AUTH_TYPE_HBA,
	AUTH_TYPE_PEER,
	AUTH_TYPE_REJECT, /* only as an hba method */
	AUTH_TYPE_OIDC,   /* a JWT as the password, in a cleartext exchange */
	AUTH_TYPE_OAUTH,  /* a JWT in SASL OAUTHBEARER, as PostgreSQL 18 */
};

/* client_tls_sslmode and server_tls_sslmode, weakest first: ">=" reads "at least". */
enum tls_mode {
	TLS_MODE_DISABLE = 0,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
};

/* TLS protocol versions, as bits of what *_tls_protocols allows. */
#define CONFIG_TLS_V1_0 0x01
#define CONFIG_TLS_V1_1 0x02
#define CONFIG_TLS_V1_2 0x04
#define CONFIG_TLS_V1_3 0x08

/* A [databases] host list has at most this many entries. */
#define DB_MAX_HOSTS 32

/* load_balance_hosts: where a new server connection starts in a host list. */
enum load_balance_hosts {
	LB_ROUND_ROBIN = 0, /* at the entry after the one the pool's last connection started at */
	LB_DISABLE,         /* always at the first entry */
};

/* target_session_attrs: which servers of a host list a new connection accepts (libpq's). */
enum session_attrs {
	TSA_ANY = 0,
	TSA_READ_WRITE,
	TSA_READ_ONLY,
	TSA_PRIMARY,
	TSA_STANDBY,
	TSA_PREFER_STANDBY, /* a standby if any host is one, else any server */
};

/* One [databases] line. Unset numbers are -1 and inherit the global value. */
struct db_config {
	char *name; /* the name clients connect to; "*" is the fallback */
	/*
	 * As written: one entry or a comma-separated list of them, each an
	 * address, a host name or a unix socket directory ("/dir"). NULL = unix
	 * socket in the default dir. config_db_host() splits it.
	 */
	char *host;
	int port;       /* default 5432; with a port list, its first entry */
	char *ports;    /* port= as written when it is a list (one per host), else NULL */
	int host_count; /* entries in host; 1 when host is NULL */
	enum load_balance_hosts load_balance_hosts;
	enum session_attrs target_session_attrs;
	char *dbname;   /* server-side name; NULL = same as name */
	char *user;     /* forced server user, or NULL */
	char *password; /* for the forced user, or NULL */
	char *auth_user;
	char *auth_query; /* per-database override, or NULL */
	char *auth_dbname;
	int pool_size;
	int min_pool_size;
	int reserve_pool;
	enum pool_mode pool_mode;
	int max_db_connections;
	int max_db_client_connections; /* 0 or -1 = inherit, as in PgBouncer */
	usec_t server_lifetime;        /* 0 = inherit, as in PgBouncer */
	usec_t query_wait_timeout;     /* -1 = inherit; 0 = no limit */
	char *connect_query;
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *application_name;
	struct db_config *next;
};

/*
 * A [pgbouncer] setting that pgsieve accepts but does not implement yet,
 * kept as written so SHOW CONFIG shows what the file says.
 */
struct config_unimplemented {
	char *name;
	char *value;
	struct config_unimplemented *next;
};

/*
 * One [users] line. As in PgBouncer, a timeout of 0 here means "not set"
 * (the global value applies); only query_wait_timeout can be switched off
 * per user, with 0, and uses -1 for "not set".
 */
struct user_config {
	char *name;
	enum pool_mode pool_mode;        /* POOL_MODE_UNSET = inherit */
	int max_user_connections;        /* -1 = inherit */
	int max_user_client_connections; /* 0 or -1 = inherit, as in PgBouncer */
	int pool_size;                   /* -1 = inherit */
	int reserve_pool_size;           /* -1 = inherit */
	usec_t query_timeout;
	usec_t query_wait_timeout; /* -1 = inherit */
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t client_idle_timeout;
	struct user_config *next;
};

/* One [peers] line: another pgsieve that owns some cancel keys. */
struct peer_config {
	int id;
	char *host; /* address, host name, or "/dir" of its unix socket */
	int port;
	int pool_size; /* cancel requests in flight to it at once; -1 = default_pool_size */
	struct peer_config *next;
};

struct config {
	char *config_file; /* absolute path of the main file, for RELOAD */

	/* process */
	char *logfile;
	char *pidfile;
	char *user; /* -u / user=: drop privileges to this user */
	bool syslog;
	char *syslog_ident;
	char *syslog_facility;
	int verbose;
	bool log_connections;
	bool log_disconnections;
	bool log_pooler_errors;
	bool log_stats;
	usec_t stats_period;

	/* listeners */
	char *listen_addr; /* comma-separated; "*" = all; NULL/"" = none */
	int listen_port;
	int listen_backlog;
	char *unix_socket_dir; /* "" = no unix socket */
	int unix_socket_mode;
	char *unix_socket_group;
	bool so_reuseport;

	/* authentication */
	enum auth_type auth_type;
	char *auth_file;
	char *auth_hba_file;
	char *auth_ident_file;
	char *auth_query;
	char *auth_user;
	char *auth_dbname;
	char *admin_users; /* comma-separated */
	char *stats_users;
	int scram_iterations; /* for SCRAM secrets built from plaintext passwords */

	/* pooling */
	enum pool_mode pool_mode;
	int max_client_conn;
	int default_pool_size;
	int min_pool_size;
	int reserve_pool_size;
	usec_t reserve_pool_timeout;
	int max_db_connections;
	int max_user_connections;
	int max_db_client_connections;
	int max_user_client_connections;
	bool server_round_robin;
	char *ignore_startup_parameters; /* comma-separated */
	char *track_extra_parameters;
	bool application_name_add_host;
	bool disable_pqexec;
	int max_prepared_statements;

	/* server connections */
	char *server_reset_query;
	bool server_reset_query_always;
	char *server_check_query; /* NULL = no check; "" = empty query ("<empty>" in the file) */
	usec_t server_check_delay;
	bool server_fast_close;
	usec_t server_lifetime;
	usec_t server_idle_timeout;
	usec_t server_connect_timeout;
	usec_t server_login_retry;

	/* client timeouts */
	usec_t query_timeout;
	usec_t query_wait_timeout;
	usec_t query_wait_notify;
	usec_t cancel_wait_timeout;
	usec_t client_idle_timeout;
	usec_t client_login_timeout;
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t autodb_idle_timeout;
	usec_t pool_idle_timeout;
	char *login_notify_message;
	usec_t suspend_timeout;
	usec_t shutdown_wait_timeout; /* not in PgBouncer; 0 = wait forever */

	/* low-level network */
	int pkt_buf;
	int max_packet_size;
	int sbuf_loopcnt;
	int tcp_defer_accept;
	int tcp_socket_buffer;
	int tcp_keepalive;
	int tcp_keepcnt;
	int tcp_keepidle;
	int tcp_keepintvl;
	int tcp_user_timeout;

	/* DNS */
	usec_t dns_max_ttl;
	usec_t dns_nxdomain_ttl;
	usec_t dns_zone_check_period;
	char *resolv_conf;

	/* pgsieve's own: host:port of the Prometheus endpoint; NULL = off */
	char *metrics_listen;

	/* The audit log (pgsieve's own). */
	char *audit_file;       /* NULL: none */
	char *audit_query_text; /* full | normalized | none */
	bool audit_syslog;

	/* Token logins (pgsieve's own): auth_type oidc / oauth. */
	char *oidc_issuer;   /* NULL: not configured */
	char *oidc_audience; /* NULL: not configured */
	char *oidc_jwks_file;
	char *oidc_jwks_url;
	char *oidc_jwks_ca_file; /* NULL: the system's CAs */
	usec_t oidc_jwks_min_refresh;
	usec_t oidc_jwks_refresh;
	char *oidc_algorithms;
	usec_t oidc_leeway;
	char *oidc_required_scopes; /* NULL: none */
	char *oidc_user_claim;
	char *oidc_groups_claim;
	char *oidc_ident_map; /* NULL: the hba line's map, else identity = role */
	bool oidc_enforce_expiry;
	bool oidc_allow_insecure_transport;
	char *identity_propagation; /* off | application_name | guc */

	/* Result masking (pgsieve's own). */
	char *mask_hash_key; /* sieve.mask.hash's key unless a script gives one; never logged */
	int max_masked_row_size;
	bool mask_strict; /* deny uses of masked columns other than plain output */
	usec_t policy_catalog_refresh;

	/* Approvals (pgsieve's own). */
	int approval_max_pending;       /* statements held at once, at most */
	usec_t approval_timeout;        /* how long a statement waits for a person */
	char *approval_users;           /* who may SHOW, APPROVE and DENY approvals only */
	char *approval_webhook_url;     /* NULL: none */
	char *approval_webhook_ca_file; /* NULL: the system's CAs */

	/* The policy pipeline (pgsieve's own). */
	char *policy_scripts; /* "path[:options], ..." in order; NULL = no policy */
	int policy_max_instructions;
	int policy_max_memory;
	char *policy_mode;     /* enforce | observe */
	char *policy_on_error; /* deny | allow */

	/* TLS towards clients (we are the TLS server); file names NULL = not set */
	enum tls_mode client_tls_sslmode;
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;
	char *client_tls13_ciphers; /* NULL = OpenSSL's default suites */
	char *client_tls_ecdhcurve;
	char *client_tls_dheparams;

	/* TLS towards PostgreSQL servers (we are the TLS client) */
	enum tls_mode server_tls_sslmode;
	char *server_tls_ca_file;
	char *server_tls_key_file;
	char *server_tls_cert_file;
	char *server_tls_protocols;
	char *server_tls_ciphers;
	char *server_tls13_ciphers;

	/* "file:line" where each [pgbouncer] setting was last set, by table index; NULL = default
	 */
	char **origins;

	struct db_config *databases; /* in file order */
	struct user_config *users;
	struct peer_config *peers;
	int peer_id;                                /* ours; 0 = no peering */
	struct config_unimplemented *unimplemented; /* one entry per name, last value wins */
};

/* The configuration in force. Replaced whole on RELOAD. */
extern struct config *cf;

/*
 * Reads path (and its %includes) into a new config. On failure returns
 * NULL and sets *err to a malloc'd message naming the file, line and key.
 * Warnings (settings accepted but not implemented, one line each) go to
 * the log through log_warning().
 */
struct config *config_load(const char *path, char **err) MUST_CHECK;
void config_free(struct config *c);

/* Lookups over a loaded config; NULL when absent. */
const struct db_config *config_find_db(const struct config *c, const char *name);
const struct user_config *config_find_user(const struct config *c, const char *name);
const struct peer_config *config_find_peer(const struct config *c, int id);

/* True if name appears in a comma-separated list (admin_users etc.). */
bool config_list_contains(const char *list, const char *name);
/*
 * How long a statement waits for approval: approval_timeout, or, when it
 * was left at its default and idle_transaction_timeout is shorter, half
 * of that (a held transaction must not be ended by the other timeout).
 */
usec_t config_approval_timeout(const struct config *c);
/* A duration as settings take it ("300", "1.5", "250ms", "10 min"): false and *why if not. */
bool config_parse_time(const char *s, usec_t *out, char **why) MUST_CHECK;

/* Effective values: a database or user entry overrides the global one. */
enum pool_mode config_pool_mode(const struct config *c, const struct db_config *db,
                                const struct user_config *u);
int config_pool_size(const struct config *c, const struct db_config *db);
/*
 * The same for a pool: its login user's [users] entry (u, may be NULL)
 * wins over the database's entry, which wins over the global setting.
 */
int config_pool_size_for(const struct config *c, const struct db_config *db,
                         const struct user_config *u);
int config_reserve_pool_size(const struct config *c, const struct db_config *db,
                             const struct user_config *u);
usec_t config_server_lifetime(const struct config *c, const struct db_config *db);
usec_t config_query_wait_timeout(const struct config *c, const struct db_config *db,
                                 const struct user_config *u);
/* Client limits; 0 = none. */
int config_max_db_client_connections(const struct config *c, const struct db_config *db);
int config_max_user_client_connections(const struct config *c, const struct user_config *u);
/* A [users] timeout if set (non-zero), else the global one. */
static inline usec_t config_user_time(usec_t user_value, usec_t global)
{
	return user_value > 0 ? user_value : global;
}

const char *config_pool_mode_name(enum pool_mode m);
const char *config_load_balance_name(enum load_balance_hosts lb);
const char *config_session_attrs_name(enum session_attrs tsa);

/*
 * The i-th entry (from 0) of db's host list into buf, and its port; false
 * when i >= db->host_count. "" stands for the default unix socket dir.
 */
bool config_db_host(const struct db_config *db, int i, char *buf, size_t len, int *port);
const char *config_tls_mode_name(enum tls_mode m);

/*
 * Parses a *_tls_protocols value ("secure", "all", "legacy" or a list of
 * tlsv1.0 .. tlsv1.3) into CONFIG_TLS_* bits.
 */
bool config_tls_protocols(const char *s, unsigned *bits, char **why) MUST_CHECK;

/*
 * Where setting name got its value, for messages about it that only later
 * checks can make (an unreadable key file): "file:line", or the main
 * file's name when the value is the default.
 */
const char *config_origin(const struct config *c, const char *name);
const char *config_auth_type_name(enum auth_type t);

/*
 * Value of a setting as SHOW CONFIG prints it, by name; NULL if unknown.
 * Writes into buf (at least 256 bytes) for numeric values.
 */
/* A key whose value is never shown or logged (mask_hash_key). */
bool config_is_secret(const char *name);
const char *config_show_value(const struct config *c, const char *name, char *buf, size_t len);

/* One row of the settings table, for SHOW CONFIG and for RELOAD checks. */
struct config_setting_info {
	const char *name;
	const char *default_value; /* as PgBouncer documents it */
	bool reloadable;           /* false: a change takes effect only at restart */
	bool implemented;          /* false: accepted with a warning, no effect */
};

/* Fills *info for the i-th setting, in alphabetical order; false past the end. */
bool config_setting_at(size_t i, struct config_setting_info *info);

/*
 * SET key = value on the console: only reloadable, implemented settings;
 * the value is checked as in the file. c is unchanged on failure.
 */
bool config_set(struct config *c, const char *key, const char *value, char **err) MUST_CHECK;

#endif
