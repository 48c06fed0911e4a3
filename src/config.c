/*
 * Loading pgbouncer.ini into a struct config.
 *
 * The [pgbouncer] settings are one table, sorted by name (the order SHOW
 * CONFIG lists them in, and what lets lookups be a binary search). Each
 * row says how to parse the value, where it lives in struct config, the
 * default PgBouncer documents, and whether a change needs a restart. The
 * defaults go through the same parser as the file, so a default can never
 * be a value the file would be refused for.
 *
 * Settings PgBouncer knows but pgsieve does not implement have no field:
 * their value is still checked (a file PgBouncer refuses is refused here
 * too), kept as text for SHOW CONFIG, and named in one warning per load.
 *
 * [databases], [users] and [peers] values are connection strings in
 * PgBouncer's dialect: space-separated key=value, a value in single quotes
 * may hold spaces and writes a quote as ''. A backslash is an ordinary
 * character, as in PgBouncer (unlike libpq), so passwords carry over as is.
 *
 * Loading builds a fresh struct and either returns it whole or frees it:
 * the caller swaps the global pointer, never a half-loaded configuration.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"
#include "ini.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct config *cf;

enum setting_type {
	ST_STRING,
	ST_CHOICE, /* a string, one of setting.choices ("a|b|c") */
	ST_INT,
	ST_BOOL,
	ST_TIME,
	ST_POOL_MODE,
	ST_AUTH_TYPE,
	ST_SSLMODE,       /* enum tls_mode */
	ST_TLS_PROTOCOLS, /* a string, checked by config_tls_protocols() */
	ST_TLS_DHEPARAMS, /* a string: none, auto or legacy */
};

#define SF_NO_RELOAD   0x01 /* read at start only */
#define SF_EMPTY_NULL  0x02 /* "" means "not set" and is stored as NULL */
#define SF_CHECK_QUERY 0x04 /* "<empty>" is the empty query, "" turns checks off */
#define SF_CONFFILE    0x08 /* the file RELOAD reads: shown, and set to read another one */
#define SF_PENDING     0x10 /* has a field, but nothing uses it yet: warn when set */
#define SF_NOT_HERE    0x20 /* means something on Windows only, as in PgBouncer: kept, no warning */
#define SF_SECRET      0x40 /* a key: SHOW CONFIG says whether it is set, never what it is */

#define NO_FIELD SIZE_MAX
#define FIELD(f) offsetof(struct config, f)
#define TIME_MAX INT64_MAX

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset; /* NO_FIELD: accepted but not implemented */
	const char *def;
	unsigned flags;
	int64_t min, max;    /* for ST_INT and ST_TIME (in microseconds) */
	const char *choices; /* for ST_CHOICE */
};

/* clang-format off */
#define STR(n, field, def, flags) {n, ST_STRING, field, def, flags, 0, 0, NULL}
#define INT(n, field, def, flags, lo, hi) {n, ST_INT, field, def, flags, lo, hi, NULL}
#define BOOL(n, field, def, flags) {n, ST_BOOL, field, def, flags, 0, 1, NULL}
#define TIME(n, field, def, flags) {n, ST_TIME, field, def, flags, 0, TIME_MAX, NULL}
#define CHOICE(n, field, def, flags, choices) {n, ST_CHOICE, field, def, flags, 0, 0, choices}
/* clang-format on */

#ifdef __linux__
#define DEFAULT_TCP_DEFER_ACCEPT "1"
#else
#define DEFAULT_TCP_DEFER_ACCEPT "0"
#endif

#define DEFAULT_AUTH_QUERY                                                                         \
	"SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "          \
	"FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

/* Keep sorted by name: lookups are a binary search and a unit test checks the order. */
static const struct setting settings[] = {
    STR("admin_users", FIELD(admin_users), "", 0),
    BOOL("application_name_add_host", FIELD(application_name_add_host), "0", 0),
    INT("approval_max_pending", FIELD(approval_max_pending), "1000", 0, 1, 1000000),
    {"approval_timeout", ST_TIME, FIELD(approval_timeout), "300", 0, USEC_PER_SEC,
     7 * 86400 * USEC_PER_SEC, NULL},
    STR("approval_users", FIELD(approval_users), "", 0),
    STR("approval_webhook_ca_file", FIELD(approval_webhook_ca_file), "", SF_EMPTY_NULL),
    STR("approval_webhook_url", FIELD(approval_webhook_url), "", SF_EMPTY_NULL),
    STR("audit_file", FIELD(audit_file), "", SF_EMPTY_NULL),
    CHOICE("audit_query_text", FIELD(audit_query_text), "normalized", 0, "full|normalized|none"),
    BOOL("audit_syslog", FIELD(audit_syslog), "0", 0),
    STR("auth_dbname", FIELD(auth_dbname), "", SF_EMPTY_NULL),
    STR("auth_file", FIELD(auth_file), "", SF_EMPTY_NULL),
    STR("auth_hba_file", FIELD(auth_hba_file), "", SF_EMPTY_NULL),
    STR("auth_ident_file", FIELD(auth_ident_file), "", SF_EMPTY_NULL),
    STR("auth_ldap_options", NO_FIELD, "", 0),
    STR("auth_query", FIELD(auth_query), DEFAULT_AUTH_QUERY, 0),
    {"auth_type", ST_AUTH_TYPE, FIELD(auth_type), "md5", 0, 0, 0, NULL},
    STR("auth_user", FIELD(auth_user), "", SF_EMPTY_NULL),
    TIME("autodb_idle_timeout", FIELD(autodb_idle_timeout), "3600", 0),
    TIME("cancel_wait_timeout", FIELD(cancel_wait_timeout), "10", 0),
    TIME("client_idle_timeout", FIELD(client_idle_timeout), "0", 0),
    TIME("client_login_timeout", FIELD(client_login_timeout), "60", 0),
    STR("client_tls13_ciphers", FIELD(client_tls13_ciphers), "", SF_EMPTY_NULL),
    STR("client_tls_ca_file", FIELD(client_tls_ca_file), "", SF_EMPTY_NULL),
    STR("client_tls_cert_file", FIELD(client_tls_cert_file), "", SF_EMPTY_NULL),
    STR("client_tls_ciphers", FIELD(client_tls_ciphers), "default", 0),
    {"client_tls_dheparams", ST_TLS_DHEPARAMS, FIELD(client_tls_dheparams), "auto", 0, 0, 0, NULL},
    STR("client_tls_ecdhcurve", FIELD(client_tls_ecdhcurve), "auto", 0),
    STR("client_tls_key_file", FIELD(client_tls_key_file), "", SF_EMPTY_NULL),
    {"client_tls_protocols", ST_TLS_PROTOCOLS, FIELD(client_tls_protocols), "secure", 0, 0, 0,
     NULL},
    {"client_tls_sslmode", ST_SSLMODE, FIELD(client_tls_sslmode), "disable", 0, 0, 0, NULL},
    STR("conffile", NO_FIELD, "", SF_CONFFILE),
    INT("default_pool_size", FIELD(default_pool_size), "20", 0, 0, INT_MAX),
    BOOL("disable_pqexec", FIELD(disable_pqexec), "0", SF_NO_RELOAD),
    TIME("dns_max_ttl", FIELD(dns_max_ttl), "15", 0),
    TIME("dns_nxdomain_ttl", FIELD(dns_nxdomain_ttl), "15", 0),
    TIME("dns_zone_check_period", FIELD(dns_zone_check_period), "0", 0),
    CHOICE("identity_propagation", FIELD(identity_propagation), "off", SF_NO_RELOAD,
           "off|application_name|guc"),
    TIME("idle_transaction_timeout", FIELD(idle_transaction_timeout), "0", 0),
    STR("ignore_startup_parameters", FIELD(ignore_startup_parameters), "", 0),
    STR("job_name", NO_FIELD, "pgbouncer", SF_NO_RELOAD | SF_NOT_HERE),
    STR("listen_addr", FIELD(listen_addr), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    INT("listen_backlog", FIELD(listen_backlog), "128", SF_NO_RELOAD, 0, INT_MAX),
    INT("listen_port", FIELD(listen_port), "6432", SF_NO_RELOAD, 1, 65535),
    BOOL("log_connections", FIELD(log_connections), "1", 0),
    BOOL("log_disconnections", FIELD(log_disconnections), "1", 0),
    BOOL("log_pooler_errors", FIELD(log_pooler_errors), "1", 0),
    BOOL("log_stats", FIELD(log_stats), "1", 0),
    STR("logfile", FIELD(logfile), "", SF_EMPTY_NULL),
    STR("login_notify_message", FIELD(login_notify_message), "", SF_EMPTY_NULL),
    STR("mask_hash_key", FIELD(mask_hash_key), "", SF_EMPTY_NULL | SF_SECRET),
    BOOL("mask_strict", FIELD(mask_strict), "1", 0),
    INT("max_client_conn", FIELD(max_client_conn), "100", 0, 0, INT_MAX),
    INT("max_db_client_connections", FIELD(max_db_client_connections), "0", 0, 0, INT_MAX),
    INT("max_db_connections", FIELD(max_db_connections), "0", 0, 0, INT_MAX),
    INT("max_masked_row_size", FIELD(max_masked_row_size), "67108864", 0, 1024, INT_MAX),
    INT("max_packet_size", FIELD(max_packet_size), "2147483647", 0, 0, INT_MAX),
    INT("max_prepared_statements", FIELD(max_prepared_statements), "200", 0, 0, INT_MAX),
    INT("max_user_client_connections", FIELD(max_user_client_connections), "0", 0, 0, INT_MAX),
    INT("max_user_connections", FIELD(max_user_connections), "0", 0, 0, INT_MAX),
    STR("metrics_listen", FIELD(metrics_listen), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    INT("min_pool_size", FIELD(min_pool_size), "0", 0, 0, INT_MAX),
    STR("oidc_algorithms", FIELD(oidc_algorithms), "RS256, ES256", 0),
    BOOL("oidc_allow_insecure_transport", FIELD(oidc_allow_insecure_transport), "0", 0),
    STR("oidc_audience", FIELD(oidc_audience), "", SF_EMPTY_NULL),
    BOOL("oidc_enforce_expiry", FIELD(oidc_enforce_expiry), "0", 0),
    STR("oidc_groups_claim", FIELD(oidc_groups_claim), "groups", 0),
    STR("oidc_ident_map", FIELD(oidc_ident_map), "", SF_EMPTY_NULL),
    STR("oidc_issuer", FIELD(oidc_issuer), "", SF_EMPTY_NULL),
    STR("oidc_jwks_ca_file", FIELD(oidc_jwks_ca_file), "", SF_EMPTY_NULL),
    STR("oidc_jwks_file", FIELD(oidc_jwks_file), "", SF_EMPTY_NULL),
    TIME("oidc_jwks_min_refresh", FIELD(oidc_jwks_min_refresh), "60", 0),
    TIME("oidc_jwks_refresh", FIELD(oidc_jwks_refresh), "300", 0),
    STR("oidc_jwks_url", FIELD(oidc_jwks_url), "", SF_EMPTY_NULL),
    TIME("oidc_leeway", FIELD(oidc_leeway), "30", 0),
    STR("oidc_required_scopes", FIELD(oidc_required_scopes), "", SF_EMPTY_NULL),
    STR("oidc_user_claim", FIELD(oidc_user_claim), "sub", 0),
    INT("peer_id", FIELD(peer_id), "0", SF_NO_RELOAD, 0, 16383),
    STR("pidfile", FIELD(pidfile), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    /* Every connection holds buffers of this size: bounded so a typo cannot exhaust memory. */
    INT("pkt_buf", FIELD(pkt_buf), "4096", SF_NO_RELOAD, 512, 16 * 1024 * 1024),
    TIME("policy_catalog_refresh", FIELD(policy_catalog_refresh), "300", 0),
    INT("policy_max_instructions", FIELD(policy_max_instructions), "1000000", 0, 1000, INT_MAX),
    INT("policy_max_memory", FIELD(policy_max_memory), "67108864", 0, 1048576, INT_MAX),
    CHOICE("policy_mode", FIELD(policy_mode), "enforce", 0, "enforce|observe"),
    CHOICE("policy_on_error", FIELD(policy_on_error), "deny", 0, "deny|allow"),
    STR("policy_scripts", FIELD(policy_scripts), "", SF_EMPTY_NULL),
    TIME("pool_idle_timeout", FIELD(pool_idle_timeout), "0", 0),
    {"pool_mode", ST_POOL_MODE, FIELD(pool_mode), "session", 0, 0, 0, NULL},
    TIME("query_timeout", FIELD(query_timeout), "0", 0),
    TIME("query_wait_notify", FIELD(query_wait_notify), "5", 0),
    TIME("query_wait_timeout", FIELD(query_wait_timeout), "120", 0),
    INT("reserve_pool_size", FIELD(reserve_pool_size), "0", 0, 0, INT_MAX),
    TIME("reserve_pool_timeout", FIELD(reserve_pool_timeout), "5", 0),
    STR("resolv_conf", FIELD(resolv_conf), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    INT("sbuf_loopcnt", FIELD(sbuf_loopcnt), "5", 0, 0, INT_MAX),
    INT("scram_iterations", FIELD(scram_iterations), "4096", 0, 1, INT_MAX),
    TIME("server_check_delay", FIELD(server_check_delay), "30", 0),
    STR("server_check_query", FIELD(server_check_query), "<empty>", SF_CHECK_QUERY),
    TIME("server_connect_timeout", FIELD(server_connect_timeout), "15", 0),
    BOOL("server_fast_close", FIELD(server_fast_close), "0", 0),
    TIME("server_idle_timeout", FIELD(server_idle_timeout), "600", 0),
    TIME("server_lifetime", FIELD(server_lifetime), "3600", 0),
    TIME("server_login_retry", FIELD(server_login_retry), "15", 0),
    STR("server_reset_query", FIELD(server_reset_query), "DISCARD ALL", 0),
    BOOL("server_reset_query_always", FIELD(server_reset_query_always), "0", 0),
    BOOL("server_round_robin", FIELD(server_round_robin), "0", 0),
    STR("server_tls13_ciphers", FIELD(server_tls13_ciphers), "", SF_EMPTY_NULL),
    STR("server_tls_ca_file", FIELD(server_tls_ca_file), "", SF_EMPTY_NULL),
    STR("server_tls_cert_file", FIELD(server_tls_cert_file), "", SF_EMPTY_NULL),
    STR("server_tls_ciphers", FIELD(server_tls_ciphers), "default", 0),
    STR("server_tls_key_file", FIELD(server_tls_key_file), "", SF_EMPTY_NULL),
    {"server_tls_protocols", ST_TLS_PROTOCOLS, FIELD(server_tls_protocols), "secure", 0, 0, 0,
     NULL},
    {"server_tls_sslmode", ST_SSLMODE, FIELD(server_tls_sslmode), "prefer", 0, 0, 0, NULL},
    STR("service_name", NO_FIELD, "pgbouncer", SF_NO_RELOAD | SF_NOT_HERE),
    /* pgsieve's own: how long a shutdown waits for clients; 0 = as long as it takes. */
    TIME("shutdown_wait_timeout", FIELD(shutdown_wait_timeout), "0", 0),
    BOOL("so_reuseport", FIELD(so_reuseport), "0", SF_NO_RELOAD),
    {"stats_period", ST_TIME, FIELD(stats_period), "60", 0, USEC_PER_SEC, TIME_MAX, NULL},
    STR("stats_users", FIELD(stats_users), "", 0),
    TIME("suspend_timeout", FIELD(suspend_timeout), "10", 0),
    BOOL("syslog", FIELD(syslog), "0", 0),
    STR("syslog_facility", FIELD(syslog_facility), "daemon", 0),
    STR("syslog_ident", FIELD(syslog_ident), "pgbouncer", 0),
    INT("tcp_defer_accept", FIELD(tcp_defer_accept), DEFAULT_TCP_DEFER_ACCEPT, 0, 0, INT_MAX),
    INT("tcp_keepalive", FIELD(tcp_keepalive), "1", 0, 0, INT_MAX),
    INT("tcp_keepcnt", FIELD(tcp_keepcnt), "0", 0, 0, INT_MAX),
    INT("tcp_keepidle", FIELD(tcp_keepidle), "0", 0, 0, INT_MAX),
    INT("tcp_keepintvl", FIELD(tcp_keepintvl), "0", 0, 0, INT_MAX),
    INT("tcp_socket_buffer", FIELD(tcp_socket_buffer), "0", 0, 0, INT_MAX),
    INT("tcp_user_timeout", FIELD(tcp_user_timeout), "0", 0, 0, INT_MAX),
    STR("track_extra_parameters", FIELD(track_extra_parameters), "IntervalStyle", SF_NO_RELOAD),
    TIME("transaction_timeout", FIELD(transaction_timeout), "0", 0),
    STR("unix_socket_dir", FIELD(unix_socket_dir), "/tmp", SF_NO_RELOAD),
    STR("unix_socket_group", FIELD(unix_socket_group), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    INT("unix_socket_mode", FIELD(unix_socket_mode), "0777", SF_NO_RELOAD, 0, 07777),
    STR("user", FIELD(user), "", SF_EMPTY_NULL | SF_NO_RELOAD),
    /* Bounded so that adding it to a log level cannot overflow. */
    INT("verbose", FIELD(verbose), "0", 0, 0, 100),
};

#define N_SETTINGS ARRAY_SIZE(settings)

static bool has_field(const struct setting *s)
{
	return s->offset != NO_FIELD;
}

/* Pending settings are stored (the code that will use them reads the field) but warn. */
static bool implemented(const struct setting *s)
{
	return (has_field(s) && !(s->flags & SF_PENDING)) ||
	       (s->flags & (SF_NOT_HERE | SF_CONFFILE));
}

static const struct setting *find_setting(const char *name)
{
	size_t lo = 0, hi = N_SETTINGS;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(name, settings[mid].name);
		if (r == 0)
			return &settings[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- value parsers: each returns false with a malloc'd reason in *why ---- */

static bool parse_int(const char *s, int64_t lo, int64_t hi, int *out, char **why)
{
	char *end;
	errno = 0;
	/* Base 0, as PgBouncer: "0777" is octal, which unix_socket_mode relies on. */
	long long v = strtoll(s, &end, 0);
	if (end == s || *end != '\0') {
		*why = xasprintf("invalid integer \"%s\"", s);
		return false;
	}
	if (errno == ERANGE || v < lo || v > hi) {
		*why =
		    xasprintf("%s is out of range (%lld..%lld)", s, (long long)lo, (long long)hi);
		return false;
	}
	*out = (int)v;
	return true;
}

static bool parse_bool(const char *s, bool *out, char **why)
{
	static const char *const yes[] = {"on", "true", "yes"};
	static const char *const no[] = {"off", "false", "no"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	/* PgBouncer keeps booleans as integers: any non-zero number is true. */
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (end == s || *end != '\0' || errno == ERANGE) {
		*why = xasprintf("invalid boolean \"%s\" (use 0 or 1)", s);
		return false;
	}
	*out = v != 0;
	return true;
}

/*
 * A duration: a decimal number, possibly fractional, with an optional unit
 * as PostgreSQL writes them (us, ms, s, min, h, d); no unit means seconds,
 * as in PgBouncer. Integer arithmetic, so "0.1" is exactly 100000 us.
 */
static bool parse_time(const char *s, usec_t *out, char **why)
{
	static const struct {
		const char *name;
		int64_t usec;
	} units[] = {
	    {"", USEC_PER_SEC},
	    {"us", 1},
	    {"ms", 1000},
	    {"s", USEC_PER_SEC},
	    {"min", 60 * USEC_PER_SEC},
	    {"h", 3600 * USEC_PER_SEC},
	    {"d", 86400 * USEC_PER_SEC},
	};
	const char *p = s;
	uint64_t whole = 0, frac = 0;
	int frac_digits = 0;
	bool digits = false;

	for (; *p >= '0' && *p <= '9'; p++) {
		digits = true;
		if (whole > (UINT64_MAX - 9) / 10)
			goto too_large;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			digits = true;
			/* Six digits is a microsecond of a second; finer is dropped. */
			if (frac_digits < 6) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				frac_digits++;
			}
		}
	}
	if (!digits) {
		*why = xasprintf("invalid time \"%s\"", s);
		return false;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	int64_t unit = 0;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(p, units[i].name) == 0)
			unit = units[i].usec;
	if (!unit) {
		*why = xasprintf("invalid time \"%s\" (units: us, ms, s, min, h, d)", s);
		return false;
	}
	for (; frac_digits < 6; frac_digits++)
		frac *= 10;
	/* frac < 10^6 and unit <= 8.64e10, so the product fits easily. */
	uint64_t frac_usec = frac * (uint64_t)unit / 1000000;
	if (whole > (uint64_t)(INT64_MAX / unit))
		goto too_large;
	uint64_t total = whole * (uint64_t)unit;
	if (total > (uint64_t)INT64_MAX - frac_usec)
		goto too_large;
	*out = (usec_t)(total + frac_usec);
	return true;
too_large:
	*why = xasprintf("time \"%s\" is too large", s);
	return false;
}

static bool parse_pool_mode(const char *s, enum pool_mode *out, char **why)
{
	static const enum pool_mode modes[] = {POOL_MODE_SESSION, POOL_MODE_TRANSACTION,
	                                       POOL_MODE_STATEMENT};
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		if (strcasecmp(s, config_pool_mode_name(modes[i])) == 0) {
			*out = modes[i];
			return true;
		}
	}
	*why = xasprintf("invalid pool mode \"%s\" (session, transaction or statement)", s);
	return false;
}

static bool parse_auth_type(const char *s, enum auth_type *out, char **why)
{
	static const struct {
		const char *name;
		enum auth_type type;
	} types[] = {
	    {"any", AUTH_TYPE_ANY},
	    {"cert", AUTH_TYPE_CERT},
	    {"hba", AUTH_TYPE_HBA},
	    {"md5", AUTH_TYPE_MD5},
	    {"oauth", AUTH_TYPE_OAUTH},
	    {"oidc", AUTH_TYPE_OIDC},
	    {"password", AUTH_TYPE_PLAIN},
	    {"plain", AUTH_TYPE_PLAIN}, /* PgBouncer's name */
	    {"scram-sha-256", AUTH_TYPE_SCRAM_SHA_256},
	    {"trust", AUTH_TYPE_TRUST},
	};
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		if (strcasecmp(s, types[i].name) == 0) {
			*out = types[i].type;
			return true;
		}
	}
	if (strcasecmp(s, "ldap") == 0 || strcasecmp(s, "pam") == 0)
		*why = xasprintf("auth type \"%s\" is not supported by pgsieve", s);
	else
		*why = xasprintf("invalid auth type \"%s\"", s);
	return false;
}

static const char *const tls_mode_names[] = {"disable", "allow",     "prefer",
                                             "require", "verify-ca", "verify-full"};

static bool parse_sslmode(const char *s, enum tls_mode *out, char **why)
{
	for (size_t i = 0; i < ARRAY_SIZE(tls_mode_names); i++) {
		if (strcasecmp(s, tls_mode_names[i]) == 0) {
			*out = (enum tls_mode)i;
			return true;
		}
	}
	*why = xasprintf("invalid TLS mode \"%s\" (disable, allow, prefer, require, verify-ca or "
	                 "verify-full)",
	                 s);
	return false;
}

const char *config_tls_mode_name(enum tls_mode m)
{
	return (size_t)m < ARRAY_SIZE(tls_mode_names) ? tls_mode_names[m] : "unknown";
}

bool config_tls_protocols(const char *s, unsigned *bits, char **why)
{
	static const struct {
		const char *name;
		unsigned bits;
	} words[] = {
	    {"tlsv1.0", CONFIG_TLS_V1_0},
	    {"tlsv1.1", CONFIG_TLS_V1_1},
	    {"tlsv1.2", CONFIG_TLS_V1_2},
	    {"tlsv1.3", CONFIG_TLS_V1_3},
	    {"secure", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
	    {"all", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
	    {"legacy", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
	};
	*bits = 0;
	const char *p = s;
	for (;;) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (!len)
			break;
		size_t i = 0;
		while (i < ARRAY_SIZE(words) &&
		       !(strlen(words[i].name) == len && strncasecmp(p, words[i].name, len) == 0))
			i++;
		if (i == ARRAY_SIZE(words)) {
			*why =
			    xasprintf("unknown TLS protocol \"%.*s\" (tlsv1.0, tlsv1.1, tlsv1.2, "
			              "tlsv1.3, secure, all or legacy)",
			              (int)len, p);
			return false;
		}
		*bits |= words[i].bits;
		p += len;
	}
	if (!*bits) {
		*why = xstrdup("no TLS protocol given");
		return false;
	}
	return true;
}

static bool parse_dheparams(const char *s, char **why)
{
	static const char *const ok[] = {"none", "auto", "legacy"};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strcasecmp(s, ok[i]) == 0)
			return true;
	*why = xasprintf("invalid DHE parameters \"%s\" (none, auto or legacy)", s);
	return false;
}

/* ---- the struct config side ---- */

static void *field_ptr(struct config *c, const struct setting *s)
{
	return (char *)c + s->offset;
}

/* Parses value for setting s and, if s has a field, stores it into c. */
/* Settings whose field is a char *, whatever checks their value. */
static bool is_string_setting(const struct setting *s)
{
	return s->type == ST_STRING || s->type == ST_CHOICE || s->type == ST_TLS_PROTOCOLS ||
	       s->type == ST_TLS_DHEPARAMS;
}

static void store_string(const struct setting *s, char **dst, const char *value)
{
	char *v;
	if ((s->flags & SF_CHECK_QUERY) && strcmp(value, "<empty>") == 0)
		v = xstrdup("");
	else if ((s->flags & (SF_CHECK_QUERY | SF_EMPTY_NULL)) && *value == '\0')
		v = NULL;
	else
		v = xstrdup(value);
	free(*dst);
	*dst = v;
}

/* Parses value for setting s and, if s has a field, stores it into c. */
static bool setting_apply(struct config *c, const struct setting *s, const char *value, char **why)
{
	void *dst = has_field(s) ? field_ptr(c, s) : NULL;
	switch (s->type) {
	case ST_TLS_PROTOCOLS: {
		unsigned bits;
		if (!config_tls_protocols(value, &bits, why))
			return false;
		if (dst)
			store_string(s, dst, value);
		return true;
	}
	case ST_TLS_DHEPARAMS:
		if (!parse_dheparams(value, why))
			return false;
		if (dst)
			store_string(s, dst, value);
		return true;
	case ST_CHOICE: {
		size_t len = strlen(value);
		for (const char *ch = s->choices; *ch;) {
			size_t n = strcspn(ch, "|");
			if (n == len && strncasecmp(ch, value, n) == 0) {
				if (dst) {
					char *v = xstrndup(ch, n); /* as the table spells it */
					free(*(char **)dst);
					*(char **)dst = v;
				}
				return true;
			}
			ch += n + (ch[n] == '|');
		}
		*why = xasprintf("\"%s\" is not one of %s", value, s->choices);
		return false;
	}
	case ST_STRING:
		if (dst)
			store_string(s, dst, value);
		return true;
	case ST_INT: {
		int v;
		if (!parse_int(value, s->min, s->max, &v, why))
			return false;
		if (dst)
			*(int *)dst = v;
		return true;
	}
	case ST_BOOL: {
		bool v;
		if (!parse_bool(value, &v, why))
			return false;
		if (dst)
			*(bool *)dst = v;
		return true;
	}
	case ST_TIME: {
		usec_t v;
		if (!parse_time(value, &v, why))
			return false;
		if (v < s->min || v > s->max) {
			*why = xasprintf("\"%s\" is out of range (at least %lld s)", value,
			                 (long long)(s->min / USEC_PER_SEC));
			return false;
		}
		if (dst)
			*(usec_t *)dst = v;
		return true;
	}
	case ST_POOL_MODE: {
		enum pool_mode v;
		if (!parse_pool_mode(value, &v, why))
			return false;
		if (dst)
			*(enum pool_mode *)dst = v;
		return true;
	}
	case ST_AUTH_TYPE: {
		enum auth_type v;
		if (!parse_auth_type(value, &v, why))
			return false;
		if (dst)
			*(enum auth_type *)dst = v;
		return true;
	}
	case ST_SSLMODE: {
		enum tls_mode v;
		if (!parse_sslmode(value, &v, why))
			return false;
		if (dst)
			*(enum tls_mode *)dst = v;
		return true;
	}
	}
	*why = xstrdup("internal error: unknown setting type");
	return false;
}

static void remember_unimplemented(struct config *c, const char *name, const char *value)
{
	struct config_unimplemented **pp = &c->unimplemented;
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			free((*pp)->value);
			(*pp)->value = xstrdup(value);
			return;
		}
	}
	struct config_unimplemented *u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	u->value = xstrdup(value);
	*pp = u;
}

/* ---- connection strings ---- */

enum param_kind {
	PK_STRING,
	PK_PORT,
	PK_PORTS, /* [databases] port=: one port, or a list of them (fills port and ports) */
	PK_COUNT, /* an integer >= 0 */
	PK_POOL_MODE,
	PK_TIME,          /* a time; 0 is PgBouncer's "not set" for per-entry times */
	PK_TIME_OR_UNSET, /* a time, or -1 for "not set" */
	PK_LOAD_BALANCE,
	PK_SESSION_ATTRS,
};

struct param {
	const char *name;
	enum param_kind kind;
	size_t offset; /* into db_config or user_config; NO_FIELD = not implemented */
};

#define DB(f)   offsetof(struct db_config, f)
#define USER(f) offsetof(struct user_config, f)

static const struct param db_params[] = {
    {"application_name", PK_STRING, DB(application_name)},
    {"auth_dbname", PK_STRING, DB(auth_dbname)},
    {"auth_query", PK_STRING, DB(auth_query)},
    {"auth_user", PK_STRING, DB(auth_user)},
    {"client_encoding", PK_STRING, DB(client_encoding)},
    {"connect_query", PK_STRING, DB(connect_query)},
    {"datestyle", PK_STRING, DB(datestyle)},
    {"dbname", PK_STRING, DB(dbname)},
    {"host", PK_STRING, DB(host)},
    {"load_balance_hosts", PK_LOAD_BALANCE, DB(load_balance_hosts)},
    {"max_db_client_connections", PK_COUNT, DB(max_db_client_connections)},
    {"max_db_connections", PK_COUNT, DB(max_db_connections)},
    {"min_pool_size", PK_COUNT, DB(min_pool_size)},
    {"password", PK_STRING, DB(password)},
    {"pool_mode", PK_POOL_MODE, DB(pool_mode)},
    {"pool_size", PK_COUNT, DB(pool_size)},
    {"port", PK_PORTS, DB(port)},
    {"query_wait_timeout", PK_TIME_OR_UNSET, DB(query_wait_timeout)},
    {"reserve_pool", PK_COUNT, DB(reserve_pool)},
    {"reserve_pool_size", PK_COUNT, DB(reserve_pool)},
    {"server_lifetime", PK_TIME, DB(server_lifetime)},
    {"target_session_attrs", PK_SESSION_ATTRS, DB(target_session_attrs)},
    {"timezone", PK_STRING, DB(timezone)},
    {"user", PK_STRING, DB(user)},
};

static const struct param user_params[] = {
    {"client_idle_timeout", PK_TIME, USER(client_idle_timeout)},
    {"idle_transaction_timeout", PK_TIME, USER(idle_transaction_timeout)},
    {"max_user_client_connections", PK_COUNT, USER(max_user_client_connections)},
    {"max_user_connections", PK_COUNT, USER(max_user_connections)},
    {"pool_mode", PK_POOL_MODE, USER(pool_mode)},
    {"pool_size", PK_COUNT, USER(pool_size)},
    {"query_timeout", PK_TIME, USER(query_timeout)},
    {"query_wait_timeout", PK_TIME_OR_UNSET, USER(query_wait_timeout)},
    {"reserve_pool_size", PK_COUNT, USER(reserve_pool_size)},
    {"transaction_timeout", PK_TIME, USER(transaction_timeout)},
};

#define PEER(f) offsetof(struct peer_config, f)

static const struct param peer_params[] = {
    {"host", PK_STRING, PEER(host)},
    {"pool_size", PK_COUNT, PEER(pool_size)},
    {"port", PK_PORT, PEER(port)},
};

static const char *const load_balance_names[] = {
    [LB_ROUND_ROBIN] = "round-robin",
    [LB_DISABLE] = "disable",
};

static const char *const session_attrs_names[] = {
    [TSA_ANY] = "any",
    [TSA_READ_WRITE] = "read-write",
    [TSA_READ_ONLY] = "read-only",
    [TSA_PRIMARY] = "primary",
    [TSA_STANDBY] = "standby",
    [TSA_PREFER_STANDBY] = "prefer-standby",
};

const char *config_load_balance_name(enum load_balance_hosts lb)
{
	return (size_t)lb < ARRAY_SIZE(load_balance_names) ? load_balance_names[lb] : "?";
}

const char *config_session_attrs_name(enum session_attrs tsa)
{
	return (size_t)tsa < ARRAY_SIZE(session_attrs_names) ? session_attrs_names[tsa] : "?";
}

/* Index of s in names (case-insensitive), or -1. */
static int name_index(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

/*
 * Walks a comma-separated list: the next entry after *pos, without the
 * spaces around it, into buf; empty entries are skipped, as PgBouncer's
 * host lists skip them. False at the end of the list.
 */
static bool list_next(const char **pos, char *buf, size_t len)
{
	const char *p = *pos;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0') {
			*pos = p;
			return false;
		}
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (*p == ',')
			p++;
		if (end == start)
			continue;
		size_t n = (size_t)(end - start);
		if (n >= len)
			n = len - 1;
		memcpy(buf, start, n);
		buf[n] = '\0';
		*pos = p;
		return true;
	}
}

static int list_count_entries(const char *list)
{
	char buf[256];
	int n = 0;
	while (list_next(&list, buf, sizeof(buf)))
		n++;
	return n;
}

bool config_db_host(const struct db_config *db, int i, char *buf, size_t len, int *port)
{
	if (i < 0 || i >= db->host_count || len == 0)
		return false;
	*port = db->port;
	if (db->ports) {
		const char *pos = db->ports;
		char num[16];
		for (int k = 0; k <= i; k++)
			if (!list_next(&pos, num, sizeof(num)))
				return false;
		*port = atoi(num); /* checked when the file was loaded */
	}
	buf[0] = '\0';
	if (!db->host)
		return true;
	const char *pos = db->host;
	for (int k = 0; k <= i; k++)
		if (!list_next(&pos, buf, len))
			return false;
	return true;
}

/* port=: a port, or a comma-separated list of ports (checked against the host list later). */
static bool parse_ports(struct db_config *db, const char *val, char **why)
{
	const char *pos = val;
	char num[64];
	int n = 0;
	while (list_next(&pos, num, sizeof(num))) {
		int v;
		if (!parse_int(num, 1, 65535, &v, why))
			return false;
		if (n++ == 0)
			db->port = v;
	}
	if (n == 0) {
		*why = xasprintf("invalid port list \"%s\"", val);
		return false;
	}
	free(db->ports);
	db->ports = strchr(val, ',') ? xstrdup(val) : NULL;
	return true;
}

/* Checks val for param p and stores it at base + p->offset unless NO_FIELD. */
static bool param_apply(void *base, const struct param *p, const char *val, char **why)
{
	void *dst = p->offset == NO_FIELD ? NULL : (char *)base + p->offset;
	switch (p->kind) {
	case PK_STRING:
		if (dst) {
			char **sp = dst;
			free(*sp);
			*sp = xstrdup(val);
		}
		return true;
	case PK_PORT:
	case PK_COUNT: {
		int v;
		bool port = p->kind == PK_PORT;
		if (!parse_int(val, port ? 1 : 0, port ? 65535 : INT_MAX, &v, why))
			return false;
		if (dst)
			*(int *)dst = v;
		return true;
	}
	case PK_POOL_MODE: {
		enum pool_mode m;
		if (!parse_pool_mode(val, &m, why))
			return false;
		if (dst)
			*(enum pool_mode *)dst = m;
		return true;
	}
	case PK_TIME_OR_UNSET:
		if (strcmp(val, "-1") == 0) {
			if (dst)
				*(usec_t *)dst = -1;
			return true;
		}
		/* fall through */
	case PK_TIME: {
		usec_t t;
		if (!parse_time(val, &t, why))
			return false;
		if (dst)
			*(usec_t *)dst = t;
		return true;
	}
	case PK_PORTS:
		/* Only in db_params, where base is the entry. */
		return parse_ports(base, val, why);
	case PK_LOAD_BALANCE: {
		int i = name_index(val, load_balance_names, ARRAY_SIZE(load_balance_names));
		if (i >= 0) {
			if (dst)
				*(enum load_balance_hosts *)dst = (enum load_balance_hosts)i;
			return true;
		}
		*why = xasprintf("invalid load_balance_hosts \"%s\" (disable or round-robin)", val);
		return false;
	}
	case PK_SESSION_ATTRS: {
		int i = name_index(val, session_attrs_names, ARRAY_SIZE(session_attrs_names));
		if (i >= 0) {
			if (dst)
				*(enum session_attrs *)dst = (enum session_attrs)i;
			return true;
		}
		*why = xasprintf("invalid target_session_attrs \"%s\" (any, read-write, read-only, "
		                 "primary, standby or prefer-standby)",
		                 val);
		return false;
	}
	}
	*why = xstrdup("internal error: unknown parameter kind");
	return false;
}

static bool cs_space(char c)
{
	return c == ' ' || c == '\t';
}

typedef bool (*pair_fn)(void *arg, const char *key, const char *val, char **why);

/*
 * Splits a connection string into key=value pairs and calls fn on each.
 * The string is copied (a config value, so bounded by INI_MAX_LINE) and
 * cut in place; quotes are removed as PgBouncer does.
 */
static bool connstr_each(const char *connstr, pair_fn fn, void *arg, char **why)
{
	char *buf = xstrdup(connstr);
	char *p = buf;
	bool ok = true;

	while (ok) {
		while (cs_space(*p))
			p++;
		if (*p == '\0')
			break;
		char *key = p;
		while (*p && *p != '=' && !cs_space(*p))
			p++;
		char *key_end = p;
		while (cs_space(*p))
			p++;
		if (*p != '=' || key_end == key) {
			*why = xasprintf("syntax error in connection string near \"%s\"", key);
			ok = false;
			break;
		}
		*key_end = '\0';
		p++;
		while (cs_space(*p))
			p++;

		char *val;
		if (*p == '\'') {
			char *w = ++p;
			val = w;
			for (;;) {
				if (*p == '\0') {
					*why =
					    xasprintf("unterminated quoted value for \"%s\"", key);
					ok = false;
					break;
				}
				if (*p == '\'') {
					if (p[1] != '\'') {
						p++;
						break;
					}
					p++;
				}
				*w++ = *p++;
			}
			if (!ok)
				break;
			if (*p && !cs_space(*p)) {
				*why = xasprintf("unexpected text after the quoted value of \"%s\"",
				                 key);
				ok = false;
				break;
			}
			*w = '\0';
		} else {
			val = p;
			while (*p && !cs_space(*p))
				p++;
			if (*p)
				*p++ = '\0';
		}
		if (*val == '\0') {
			*why = xasprintf("empty value for \"%s\"", key);
			ok = false;
			break;
		}
		ok = fn(arg, key, val, why);
	}
	free(buf);
	return ok;
}

/* ---- the loader ---- */

enum section {
	SEC_UNKNOWN,
	SEC_MAIN,
	SEC_DATABASES,
	SEC_USERS,
	SEC_PEERS,
};

struct load_ctx {
	struct config *c;
	bool main_seen;
	bool warned[N_SETTINGS];
	bool db_warned[ARRAY_SIZE(db_params)];
	bool user_warned[ARRAY_SIZE(user_params)];
	/* For the pair callbacks: where the line is, and what it fills. */
	const char *file;
	int line;
	const char *entry;
	void *target;
};

static enum section section_of(const char *name)
{
	if (strcmp(name, "pgbouncer") == 0 || strcmp(name, "pgsieve") == 0)
		return SEC_MAIN;
	if (strcmp(name, "databases") == 0)
		return SEC_DATABASES;
	if (strcmp(name, "users") == 0)
		return SEC_USERS;
	if (strcmp(name, "peers") == 0)
		return SEC_PEERS;
	return SEC_UNKNOWN;
}

static const struct param *find_param(const struct param *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

static char *absolute_path(const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	const char *rel = path;
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	return xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, rel);
}

static bool load_main(struct load_ctx *ctx, const char *key, const char *value, char **err)
{
	const struct setting *s = find_setting(key);
	if (!s) {
		*err = xasprintf("%s: unknown setting", key);
		return false;
	}
	char *why = NULL;
	if (!setting_apply(ctx->c, s, value, &why)) {
		*err = xasprintf("%s: %s", key, why);
		free(why);
		return false;
	}
	size_t at = (size_t)(s - settings);
	free(ctx->c->origins[at]);
	ctx->c->origins[at] = xasprintf("%s:%d", ctx->file, ctx->line);
	if ((s->flags & SF_CONFFILE) && *value) {
		/* As PgBouncer: the next RELOAD reads that file instead. */
		char *path = absolute_path(value);
		if (path) {
			free(ctx->c->config_file);
			ctx->c->config_file = path;
		}
		return true;
	}
	if (!has_field(s))
		remember_unimplemented(ctx->c, s->name, value); /* for SHOW CONFIG */
	if (!implemented(s)) {
		size_t i = (size_t)(s - settings);
		if (!ctx->warned[i]) {
			ctx->warned[i] = true;
			log_warning("%s:%d: setting \"%s\" is accepted but not implemented yet; it "
			            "has no effect",
			            ctx->file, ctx->line, s->name);
		}
	}
	return true;
}

static bool section_pair(struct load_ctx *ctx, const struct param *table, size_t n, bool *warned,
                         const char *section, const char *key, const char *val, char **why)
{
	const struct param *p = find_param(table, n, key);
	if (!p) {
		*why = xasprintf("unknown parameter \"%s\" in connection string", key);
		return false;
	}
	char *reason = NULL;
	if (!param_apply(ctx->target, p, val, &reason)) {
		*why = xasprintf("%s: %s", key, reason);
		free(reason);
		return false;
	}
	size_t i = (size_t)(p - table);
	if (p->offset == NO_FIELD && warned && !warned[i]) {
		warned[i] = true;
		log_warning(
		    "%s:%d: parameter \"%s\" in [%s] is accepted but not implemented yet; it "
		    "has no effect",
		    ctx->file, ctx->line, key, section);
	}
	return true;
}

static bool db_pair(void *arg, const char *key, const char *val, char **why)
{
	struct load_ctx *ctx = arg;
	return section_pair(ctx, db_params, ARRAY_SIZE(db_params), ctx->db_warned, "databases", key,
	                    val, why);
}

static bool user_pair(void *arg, const char *key, const char *val, char **why)
{
	struct load_ctx *ctx = arg;
	return section_pair(ctx, user_params, ARRAY_SIZE(user_params), ctx->user_warned, "users",
	                    key, val, why);
}

static bool peer_pair(void *arg, const char *key, const char *val, char **why)
{
	struct load_ctx *ctx = arg;
	return section_pair(ctx, peer_params, ARRAY_SIZE(peer_params), NULL, "peers", key, val,
	                    why);
}

static void db_free(struct db_config *db)
{
	if (!db)
		return;
	free(db->name);
	free(db->host);
	free(db->ports);
	free(db->dbname);
	free(db->user);
	free(db->password);
	free(db->auth_user);
	free(db->auth_query);
	free(db->auth_dbname);
	free(db->connect_query);
	free(db->client_encoding);
	free(db->datestyle);
	free(db->timezone);
	free(db->application_name);
	free(db);
}

static void user_free(struct user_config *u)
{
	if (!u)
		return;
	free(u->name);
	free(u);
}

/* Counts host= entries and matches port= against them: one port for all, or one each. */
static bool check_host_list(struct db_config *db, char **why)
{
	db->host_count = db->host ? list_count_entries(db->host) : 1;
	if (db->host_count == 0) {
		*why = xasprintf("host: no host in \"%s\"", db->host);
		return false;
	}
	if (db->host_count > DB_MAX_HOSTS) {
		*why = xasprintf("host: %d hosts, at most %d are allowed", db->host_count,
		                 DB_MAX_HOSTS);
		return false;
	}
	if (db->ports) {
		int n = list_count_entries(db->ports);
		if (n != db->host_count) {
			*why = xasprintf("port: %d ports for %d host%s (give one port for all "
			                 "hosts, or one per host)",
			                 n, db->host_count, db->host_count == 1 ? "" : "s");
			return false;
		}
	}
	return true;
}

static bool load_database(struct load_ctx *ctx, const char *name, const char *value, char **err)
{
	/* The admin console answers to this name; a pool of that name could never be reached. */
	if (strcmp(name, "pgbouncer") == 0) {
		*err = xasprintf(
		    "%s: database name \"pgbouncer\" is reserved for the admin console", name);
		return false;
	}
	struct db_config *db = xcalloc(1, sizeof(*db));
	db->port = 5432;
	db->pool_size = db->min_pool_size = db->reserve_pool = db->max_db_connections = -1;
	db->max_db_client_connections = -1;
	db->query_wait_timeout = -1;
	db->pool_mode = POOL_MODE_UNSET;
	ctx->target = db;
	char *why = NULL;
	if (!connstr_each(value, db_pair, ctx, &why)) {
		*err = xasprintf("%s: %s", name, why);
		free(why);
		db_free(db);
		return false;
	}
	db->name = xstrdup(name);
	if (!check_host_list(db, &why)) {
		*err = xasprintf("%s: %s", name, why);
		free(why);
		db_free(db);
		return false;
	}

	/* A later line for the same name replaces the earlier one, as in PgBouncer. */
	struct db_config **pp = &ctx->c->databases;
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			db->next = (*pp)->next;
			db_free(*pp);
			*pp = db;
			return true;
		}
	}
	*pp = db;
	return true;
}

static bool load_user(struct load_ctx *ctx, const char *name, const char *value, char **err)
{
	struct user_config *u = xcalloc(1, sizeof(*u));
	u->pool_mode = POOL_MODE_UNSET;
	u->max_user_connections = u->max_user_client_connections = -1;
	u->pool_size = u->reserve_pool_size = -1;
	u->query_wait_timeout = -1;
	ctx->target = u;
	char *why = NULL;
	if (!connstr_each(value, user_pair, ctx, &why)) {
		*err = xasprintf("%s: %s", name, why);
		free(why);
		user_free(u);
		return false;
	}
	u->name = xstrdup(name);

	struct user_config **pp = &ctx->c->users;
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			u->next = (*pp)->next;
			user_free(*pp);
			*pp = u;
			return true;
		}
	}
	*pp = u;
	return true;
}

static bool host_seen(void *arg, const char *key, const char *val, char **why)
{
	bool *seen = arg;
	if (strcmp(key, "host") == 0)
		*seen = true;
	return true;
}

static void peer_free(struct peer_config *peer)
{
	free(peer->host);
	free(peer);
}

static bool load_peer(struct load_ctx *ctx, const char *name, const char *value, char **err)
{
	int id;
	char *why = NULL;
	if (!parse_int(name, 1, 16383, &id, &why)) {
		*err = xasprintf("%s: peer id must be a number from 1 to 16383", name);
		free(why);
		return false;
	}
	if (config_find_peer(ctx->c, id)) {
		*err = xasprintf("%s: peer %d is listed twice", name, id);
		return false;
	}
	struct peer_config *peer = xcalloc(1, sizeof(*peer));
	peer->id = id;
	peer->port = 6432;
	peer->pool_size = -1;
	ctx->target = peer;
	bool has_host = false;
	if (!connstr_each(value, peer_pair, ctx, &why) ||
	    !connstr_each(value, host_seen, &has_host, &why)) {
		*err = xasprintf("%s: %s", name, why);
		free(why);
		peer_free(peer);
		return false;
	}
	if (!has_host) {
		*err = xasprintf("%s: a peer needs host=", name);
		peer_free(peer);
		return false;
	}
	struct peer_config **pp = &ctx->c->peers;
	while (*pp)
		pp = &(*pp)->next;
	*pp = peer;
	return true;
}

static bool load_cb(void *arg, const char *file, int line, const char *section, const char *key,
                    const char *value, char **err)
{
	struct load_ctx *ctx = arg;
	ctx->file = file;
	ctx->line = line;
	if (!section) {
		*err = xasprintf("%s: setting outside of any section", key);
		return false;
	}
	enum section sec = section_of(section);
	if (sec == SEC_UNKNOWN) {
		*err = xasprintf("unknown section [%s]", section);
		return false;
	}
	if (!key) {
		if (sec == SEC_MAIN)
			ctx->main_seen = true;
		return true;
	}
	switch (sec) {
	case SEC_MAIN:
		return load_main(ctx, key, value, err);
	case SEC_DATABASES:
		return load_database(ctx, key, value, err);
	case SEC_USERS:
		return load_user(ctx, key, value, err);
	case SEC_PEERS:
		return load_peer(ctx, key, value, err);
	case SEC_UNKNOWN:
		break;
	}
	return false;
}

/* Absolute, but not resolved through symlinks: %include stays relative to the path as named. */

/*
 * What no single setting can say: settings that must agree with each
 * other, and values whose form matters beyond their type.
 */
static bool config_check(const struct config *c, const char *setting, char **err)
{
	/*
	 * Only a value someone wrote is refused: an unchanged pgbouncer.ini with
	 * a short idle_transaction_timeout must still load, and the default then
	 * gives way (config_approval_timeout()).
	 */
	bool explicit = (c->origins && c->origins[find_setting("approval_timeout") - settings]) ||
	                (setting && strcmp(setting, "approval_timeout") == 0);
	if (explicit && c->idle_transaction_timeout > 0 &&
	    c->approval_timeout >= c->idle_transaction_timeout) {
		/* A statement held inside a transaction would lose it to the other timeout. */
		*err = xasprintf("%s: approval_timeout (%.1fs) must be below "
		                 "idle_transaction_timeout (%.1fs)",
		                 config_origin(c, "approval_timeout"),
		                 (double)c->approval_timeout / USEC_PER_SEC,
		                 (double)c->idle_transaction_timeout / USEC_PER_SEC);
		return false;
	}
	for (const struct user_config *u = c->users; explicit && u; u = u->next) {
		if (u->idle_transaction_timeout > 0 &&
		    c->approval_timeout >= u->idle_transaction_timeout) {
			*err = xasprintf("%s: approval_timeout (%.1fs) must be below the "
			                 "idle_transaction_timeout of user %s in [users] (%.1fs)",
			                 config_origin(c, "approval_timeout"),
			                 (double)c->approval_timeout / USEC_PER_SEC, u->name,
			                 (double)u->idle_transaction_timeout / USEC_PER_SEC);
			return false;
		}
	}
	const char *url = c->approval_webhook_url;
	if (url && strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		*err =
		    xasprintf("%s: approval_webhook_url: \"%s\" is not an http:// or https:// URL",
		              config_origin(c, "approval_webhook_url"), url);
		return false;
	}
	return true;
}

struct config *config_load(const char *path, char **err)
{
	struct config *c = xcalloc(1, sizeof(*c));
	c->origins = xcalloc(N_SETTINGS, sizeof(*c->origins));
	c->config_file = absolute_path(path);
	if (!c->config_file) {
		*err = xasprintf("%s: cannot make the path absolute: %s", path, strerror(errno));
		config_free(c);
		return NULL;
	}
	for (size_t i = 0; i < N_SETTINGS; i++) {
		char *why = NULL;
		if (has_field(&settings[i]) &&
		    !setting_apply(c, &settings[i], settings[i].def, &why)) {
			*err =
			    xasprintf("internal error: default of %s: %s", settings[i].name, why);
			free(why);
			config_free(c);
			return NULL;
		}
	}

	struct load_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->c = c;
	bool ok = ini_parse(path, load_cb, ctx, err);
	if (ok && !ctx->main_seen) {
		*err = xasprintf("%s: no [pgbouncer] section", path);
		ok = false;
	}
	free(ctx);
	if (ok)
		ok = config_check(c, NULL, err);
	if (!ok) {
		config_free(c);
		return NULL;
	}
	return c;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (has_field(&settings[i]) && is_string_setting(&settings[i]))
			free(*(char **)field_ptr(c, &settings[i]));
		if (c->origins)
			free(c->origins[i]);
	}
	free(c->origins);
	free(c->config_file);
	while (c->databases) {
		struct db_config *next = c->databases->next;
		db_free(c->databases);
		c->databases = next;
	}
	while (c->users) {
		struct user_config *next = c->users->next;
		user_free(c->users);
		c->users = next;
	}
	while (c->peers) {
		struct peer_config *next = c->peers->next;
		peer_free(c->peers);
		c->peers = next;
	}
	while (c->unimplemented) {
		struct config_unimplemented *next = c->unimplemented->next;
		free(c->unimplemented->name);
		free(c->unimplemented->value);
		free(c->unimplemented);
		c->unimplemented = next;
	}
	free(c);
}

const struct peer_config *config_find_peer(const struct config *c, int id)
{
	for (const struct peer_config *p = c->peers; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

const struct db_config *config_find_db(const struct config *c, const char *name)
{
	for (const struct db_config *db = c ? c->databases : NULL; db; db = db->next)
		if (strcmp(db->name, name) == 0)
			return db;
	return NULL;
}

const struct user_config *config_find_user(const struct config *c, const char *name)
{
	for (const struct user_config *u = c ? c->users : NULL; u; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	return NULL;
}

static bool list_sep(char ch)
{
	return ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

usec_t config_approval_timeout(const struct config *c)
{
	bool explicit = c->origins && c->origins[find_setting("approval_timeout") - settings];
	if (!explicit && c->idle_transaction_timeout > 0 &&
	    c->approval_timeout >= c->idle_transaction_timeout)
		return c->idle_transaction_timeout / 2 > 0 ? c->idle_transaction_timeout / 2 : 1;
	return c->approval_timeout;
}

bool config_parse_time(const char *s, usec_t *out, char **why)
{
	return parse_time(s, out, why);
}

bool config_list_contains(const char *list, const char *name)
{
	if (!list || !name || !*name)
		return false;
	size_t len = strlen(name);
	const char *p = list;
	while (*p) {
		while (list_sep(*p))
			p++;
		const char *start = p;
		while (*p && !list_sep(*p))
			p++;
		if ((size_t)(p - start) == len && memcmp(start, name, len) == 0)
			return true;
	}
	return false;
}

enum pool_mode config_pool_mode(const struct config *c, const struct db_config *db,
                                const struct user_config *u)
{
	/* The user's mode wins over the database's, as in PgBouncer. */
	if (u && u->pool_mode != POOL_MODE_UNSET)
		return u->pool_mode;
	if (db && db->pool_mode != POOL_MODE_UNSET)
		return db->pool_mode;
	return c ? c->pool_mode : POOL_MODE_SESSION;
}

int config_pool_size(const struct config *c, const struct db_config *db)
{
	if (db && db->pool_size >= 0)
		return db->pool_size;
	return c ? c->default_pool_size : 20;
}

int config_pool_size_for(const struct config *c, const struct db_config *db,
                         const struct user_config *u)
{
	if (u && u->pool_size >= 0)
		return u->pool_size;
	return config_pool_size(c, db);
}

int config_reserve_pool_size(const struct config *c, const struct db_config *db,
                             const struct user_config *u)
{
	if (u && u->reserve_pool_size >= 0)
		return u->reserve_pool_size;
	if (db && db->reserve_pool >= 0)
		return db->reserve_pool;
	return c ? c->reserve_pool_size : 0;
}

usec_t config_server_lifetime(const struct config *c, const struct db_config *db)
{
	if (db && db->server_lifetime > 0)
		return db->server_lifetime;
	return c ? c->server_lifetime : 3600 * USEC_PER_SEC;
}

usec_t config_query_wait_timeout(const struct config *c, const struct db_config *db,
                                 const struct user_config *u)
{
	/* The user's value wins over the database's, as pool_mode and pool_size do. */
	if (u && u->query_wait_timeout >= 0)
		return u->query_wait_timeout;
	if (db && db->query_wait_timeout >= 0)
		return db->query_wait_timeout;
	return c ? c->query_wait_timeout : 120 * USEC_PER_SEC;
}

int config_max_db_client_connections(const struct config *c, const struct db_config *db)
{
	/* As in PgBouncer, 0 in the entry means "not set", not "no limit". */
	if (db && db->max_db_client_connections > 0)
		return db->max_db_client_connections;
	return c ? c->max_db_client_connections : 0;
}

int config_max_user_client_connections(const struct config *c, const struct user_config *u)
{
	if (u && u->max_user_client_connections > 0)
		return u->max_user_client_connections;
	return c ? c->max_user_client_connections : 0;
}

const char *config_pool_mode_name(enum pool_mode m)
{
	switch (m) {
	case POOL_MODE_SESSION:
		return "session";
	case POOL_MODE_TRANSACTION:
		return "transaction";
	case POOL_MODE_STATEMENT:
		return "statement";
	case POOL_MODE_UNSET:
		break;
	}
	return "unset";
}

const char *config_auth_type_name(enum auth_type t)
{
	switch (t) {
	case AUTH_TYPE_TRUST:
		return "trust";
	case AUTH_TYPE_ANY:
		return "any";
	case AUTH_TYPE_PLAIN:
		return "password";
	case AUTH_TYPE_MD5:
		return "md5";
	case AUTH_TYPE_SCRAM_SHA_256:
		return "scram-sha-256";
	case AUTH_TYPE_CERT:
		return "cert";
	case AUTH_TYPE_HBA:
		return "hba";
	case AUTH_TYPE_PEER:
		return "peer";
	case AUTH_TYPE_REJECT:
		return "reject";
	case AUTH_TYPE_OIDC:
		return "oidc";
	case AUTH_TYPE_OAUTH:
		return "oauth";
	case AUTH_TYPE_UNSET:
		break;
	}
	return "unset";
}

/* Seconds, as PgBouncer shows times: "3600", "0.5", never trailing zeros. */
static const char *show_time(usec_t t, char *buf, size_t len)
{
	long long secs = (long long)(t / USEC_PER_SEC), us = (long long)(t % USEC_PER_SEC);
	if (us == 0) {
		snprintf(buf, len, "%lld", secs);
		return buf;
	}
	char frac[8];
	snprintf(frac, sizeof(frac), "%06lld", us);
	size_t n = strlen(frac);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(buf, len, "%lld.%s", secs, frac);
	return buf;
}

bool config_is_secret(const char *name)
{
	const struct setting *s = find_setting(name);
	return s && (s->flags & SF_SECRET);
}

const char *config_show_value(const struct config *c, const char *name, char *buf, size_t len)
{
	const struct setting *s = find_setting(name);
	if (!s || !c)
		return NULL;
	if (s->flags & SF_CONFFILE)
		return c->config_file ? c->config_file : "";
	if (!has_field(s)) {
		for (const struct config_unimplemented *u = c->unimplemented; u; u = u->next)
			if (strcmp(u->name, s->name) == 0)
				return u->value;
		return s->def;
	}
	const void *p = (const char *)c + s->offset;
	switch (s->type) {
	case ST_TLS_PROTOCOLS:
	case ST_TLS_DHEPARAMS:
	case ST_CHOICE:
	case ST_STRING: {
		const char *v = *(char *const *)p;
		if (s->flags & SF_SECRET)
			return v ? "(set)" : "";
		if (s->flags & SF_CHECK_QUERY)
			return !v ? "" : *v ? v : "<empty>";
		return v ? v : "";
	}
	case ST_INT:
		snprintf(buf, len, "%d", *(const int *)p);
		return buf;
	case ST_BOOL:
		return *(const bool *)p ? "1" : "0";
	case ST_TIME:
		return show_time(*(const usec_t *)p, buf, len);
	case ST_POOL_MODE:
		return config_pool_mode_name(*(const enum pool_mode *)p);
	case ST_AUTH_TYPE: {
		enum auth_type t = *(const enum auth_type *)p;
		/* SHOW CONFIG speaks PgBouncer's vocabulary, where it is "plain". */
		return t == AUTH_TYPE_PLAIN ? "plain" : config_auth_type_name(t);
	}
	case ST_SSLMODE:
		return config_tls_mode_name(*(const enum tls_mode *)p);
	}
	return s->def;
}

bool config_setting_at(size_t i, struct config_setting_info *info)
{
	if (i >= N_SETTINGS)
		return false;
	const struct setting *s = &settings[i];
	info->name = s->name;
	info->default_value = s->def;
	info->reloadable = !(s->flags & SF_NO_RELOAD);
	info->implemented = implemented(s);
	return true;
}

static size_t setting_size(const struct setting *s)
{
	switch (s->type) {
	case ST_INT:
		return sizeof(int);
	case ST_BOOL:
		return sizeof(bool);
	case ST_TIME:
		return sizeof(usec_t);
	case ST_POOL_MODE:
		return sizeof(enum pool_mode);
	case ST_AUTH_TYPE:
		return sizeof(enum auth_type);
	case ST_STRING:
	case ST_CHOICE:
	case ST_TLS_PROTOCOLS:
	case ST_TLS_DHEPARAMS:
		return sizeof(char *);
	case ST_SSLMODE:
		return sizeof(enum tls_mode);
	}
	return 0;
}

bool config_set(struct config *c, const char *key, const char *value, char **err)
{
	const struct setting *s = find_setting(key);
	if (!s) {
		*err = xasprintf("unknown config parameter: %s", key);
		return false;
	}
	if (s->flags & SF_NO_RELOAD) {
		*err = xasprintf("%s cannot be changed at run time", key);
		return false;
	}
	if (s->flags & SF_CONFFILE) {
		/* The next RELOAD reads this file: it must be there to be read. */
		char *path = *value ? absolute_path(value) : NULL;
		if (!path || access(path, R_OK) != 0) {
			*err = xasprintf("conffile: cannot read %s", value);
			free(path);
			return false;
		}
		free(c->config_file);
		c->config_file = path;
		return true;
	}
	if (!implemented(s)) {
		*err = xasprintf("%s is not implemented yet", key);
		return false;
	}
	/* Validate on a scratch copy first, so a bad value leaves c untouched. */
	char *why = NULL;
	struct config scratch = *c;
	if (is_string_setting(s))
		*(char **)field_ptr(&scratch, s) = NULL;
	if (!setting_apply(&scratch, s, value, &why)) {
		*err = xasprintf("%s: %s", key, why);
		free(why);
		return false;
	}
	if (!config_check(&scratch, key, err)) {
		if (is_string_setting(s))
			free(*(char **)field_ptr(&scratch, s));
		return false;
	}
	if (is_string_setting(s)) {
		free(*(char **)field_ptr(c, s));
		*(char **)field_ptr(c, s) = *(char **)field_ptr(&scratch, s);
	} else {
		memcpy(field_ptr(c, s), field_ptr(&scratch, s), setting_size(s));
	}
	size_t i = (size_t)(s - settings);
	free(c->origins[i]);
	c->origins[i] = xstrdup("SET on the console");
	return true;
}

const char *config_origin(const struct config *c, const char *name)
{
	const struct setting *s = find_setting(name);
	if (s && c->origins && c->origins[s - settings])
		return c->origins[s - settings];
	return c->config_file ? c->config_file : "configuration";
}
