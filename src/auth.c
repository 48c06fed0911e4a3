/*
 * Client authentication.
 *
 * The secret for a user comes from auth_file, or, when the user is not
 * there and an auth_user is configured, from auth_query run on a pooled
 * connection of auth_user. An unknown user still goes through the whole
 * exchange and fails with the same message as a wrong password, so that
 * probing cannot tell the two apart.
 *
 * What a successful login proves is kept on the user object for server
 * logins: the cleartext password (password auth) or the client's SCRAM
 * keys (pass-through, when the stored secret is the server's).
 *
 * cert: the TLS handshake already checked the client's certificate
 * against client_tls_ca_file; its common name must be the user name.
 *
 * SCRAM is offered without channel binding (no SCRAM-SHA-256-PLUS), also
 * over TLS: the binding would tie the exchange to our TLS session with the
 * client, but a SCRAM secret passed through authenticates us to the
 * server on another one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* struct ucred */
#endif
#include "auth.h"
#include "admin.h"
#include "audit.h"
#include "authfile.h"
#include "client.h"
#include "config.h"
#include "hba.h"
#include "ident.h"
#include "log.h"
#include "md5.h"
#include "policy.h"
#include "pool.h"
#include "proto.h"
#include "scram.h"
#include "server.h"
#include "oidc.h"
#include "tls.h"
#include "token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

enum auth_step {
	STEP_NONE,
	STEP_QUERY,          /* waiting for auth_query */
	STEP_CLEARTEXT,      /* sent AuthenticationCleartextPassword */
	STEP_MD5,            /* sent AuthenticationMD5Password */
	STEP_SCRAM_INITIAL,  /* sent AuthenticationSASL */
	STEP_SCRAM_FINAL,    /* sent AuthenticationSASLContinue */
	STEP_TOKEN,          /* oidc: sent AuthenticationCleartextPassword for the token */
	STEP_OAUTH_INITIAL,  /* oauth: sent AuthenticationSASL (OAUTHBEARER) */
	STEP_OAUTH_RESPONSE, /* oauth: sent an empty challenge for the client's response */
	STEP_OAUTH_FAILED,   /* oauth: sent the error reply, waiting for the client's kvsep */
	STEP_VERIFYING,      /* the token waits for the key set */
};

struct auth_state {
	enum auth_step step;
	bool no_database; /* said only after authentication, so it cannot be probed */
	bool admin;       /* logging in to the admin console */
	struct pool_db *db;
	enum auth_type method;
	char *secret; /* NULL: unknown user */
	char *map;    /* the hba line's map= (cert, peer), or NULL */
	uint8_t salt[4];
	struct scram_server scram;
};

static struct authfile *auth_file;
static struct hba *hba_rules;
static struct ident_map *ident_map;

bool auth_load_files(char **err)
{
	struct authfile *af = NULL;
	struct hba *hba = NULL;
	if (cf->auth_file && *cf->auth_file) {
		af = authfile_load(cf->auth_file, err);
		if (!af)
			return false;
	}
	if (cf->auth_type == AUTH_TYPE_HBA) {
		if (!cf->auth_hba_file || !*cf->auth_hba_file) {
			*err = xstrdup("auth_type = hba needs auth_hba_file");
			authfile_free(af);
			return false;
		}
		hba = hba_load(cf->auth_hba_file, err);
		if (!hba) {
			authfile_free(af);
			return false;
		}
	}
	struct ident_map *ident = NULL;
	if (cf->auth_ident_file && !(ident = ident_load(cf->auth_ident_file, err))) {
		authfile_free(af);
		if (hba)
			hba_free(hba);
		return false;
	}
	auth_free_files();
	auth_file = af;
	hba_rules = hba;
	ident_map = ident;
	return true;
}

void auth_free_files(void)
{
	if (auth_file)
		authfile_free(auth_file);
	if (hba_rules)
		hba_free(hba_rules);
	ident_free(ident_map);
	auth_file = NULL;
	hba_rules = NULL;
	ident_map = NULL;
}

void auth_free(struct client *c)
{
	struct auth_state *a = c->auth;
	if (!a)
		return;
	scram_server_reset(&a->scram);
	if (a->step == STEP_VERIFYING)
		oidc_forget(c);
	if (a->secret) {
		OPENSSL_cleanse(a->secret, strlen(a->secret));
		free(a->secret);
	}
	free(a->map);
	free(a);
	c->auth = NULL;
}

static void send_auth(struct client *c, uint32_t code, const void *extra, size_t n)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_auth(&pb, code, extra, n);
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

/*
 * PgBouncer's texts, which log-based alerts match; the SQLSTATE is 28P01
 * (invalid_password) so drivers classify it as an authentication error.
 */
static void fail_password(struct client *c)
{
	bool sasl = c->auth->step == STEP_SCRAM_INITIAL || c->auth->step == STEP_SCRAM_FINAL;
	cl_log(LOG_LVL_LOG, c, "login failed: db=%s user=%s", c->dbname, c->user);
	audit_login_failed(c,
	                   sasl ? "SASL authentication failed" : "password authentication failed");
	client_fail(c, "28P01",
	            sasl ? "SASL authentication failed" : "password authentication failed");
}

/*
 * max_db_client_connections / max_user_client_connections, checked once
 * the client has proved who it is (so failed logins hold no slot and the
 * limits cannot be probed without a password). PgBouncer's text; 53300
 * (too_many_connections) as for max_client_conn.
 */
static bool refused_by_client_limit(struct client *c, const struct pool_db *db)
{
	const char *limit = c->account ? pool_client_limit(db, c->account) : NULL;
	if (!limit)
		return false;
	cl_log(LOG_LVL_LOG, c, "login refused: %s reached", limit);
	client_fail(c, "53300", "client connections exceeded (%s)", limit);
	return true;
}

/* Pools and users are made only now, so failed logins cannot grow memory. */
static void succeed(struct client *c)
{
	struct auth_state *a = c->auth;
	if (!a->no_database && (!a->admin || admin_user_allowed(c->user))) {
		c->account = pool_user_get(c->user);
		c->account->client_count++;
	}
	if (a->admin) {
		if (!c->os_admin && !admin_user_allowed(c->user)) {
			cl_log(LOG_LVL_LOG, c, "login failed: not in admin_users or stats_users");
			client_fail(c, "08P01", "not allowed");
			return;
		}
		/* As PgBouncer: admin_users always get in, to repair things. */
		if (!c->os_admin && !config_list_contains(cf->admin_users, c->user) &&
		    refused_by_client_limit(c, NULL))
			return;
		auth_free(c);
		cl_log(LOG_LVL_LOG, c, "admin console login");
		admin_login(c);
		return;
	}
	if (a->no_database) {
		cl_log(LOG_LVL_LOG, c, "login failed: no such database");
		client_fail(c, "3D000", "no such database: %s", c->dbname);
		return;
	}
	if (a->db->disabled) {
		cl_log(LOG_LVL_LOG, c, "login failed: database is disabled");
		client_fail(c, "08P01", "database \"%s\" is disabled", c->dbname);
		return;
	}
	if (refused_by_client_limit(c, a->db))
		return;
	const char *login_user = a->db->conf.user ? a->db->conf.user : c->user;
	c->pool = pool_get(a->db, pool_user_get(login_user));
	auth_free(c);
	struct policy_result verdict;
	policy_connect(c, &verdict);
	if (verdict.decision == POLICY_DENIED) {
		audit_login_failed(c, "refused by policy");
		client_fail(c, verdict.sqlstate, "%s", verdict.message);
		policy_result_clear(&verdict);
		return;
	}
	audit_connect(c);
	client_auth_done(c);
}

const char *auth_query_text(const struct client *c)
{
	const struct pool_db *db = c->auth ? c->auth->db : NULL;
	return db && db->conf.auth_query ? db->conf.auth_query : cf->auth_query;
}

/* Sends the first request of the method now that the secret is known. */
/* The outside identity (certificate CN, OS user) may log in as the requested user. */
static bool identity_may_be(const struct client *c, const char *who)
{
	const char *map = c->auth->map;
	return map ? ident_allows(ident_map, map, who, c->user) : strcmp(who, c->user) == 0;
}

/*
 * The OS user at the other end of a unix socket. getpwuid_r can block on
 * a network directory service; local logins are rare and the answer is
 * one file lookup on a usual host.
 */
static bool peer_os_user(const struct client *c, char *name, size_t len)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(c->sb.fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0)
		return false;
	struct passwd pw, *found = NULL;
	char buf[4096];
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
		return false;
	return strlcpy_s(name, found->pw_name, len) < len;
}

/* Token logins */

/* The same answer whatever was wrong with the token: the log says what. */
static void fail_token(struct client *c, const char *why)
{
	cl_log(LOG_LVL_LOG, c, "login failed: token: %s", why);
	audit_login_failed(c, "token authentication failed");
	client_fail(c, "28000", "token authentication failed for user \"%s\"", c->user);
}

/* A client that sent no token (discovery) or a bad one over OAUTHBEARER learns where to get one. */
static void oauth_error_reply(struct client *c)
{
	char *reply = oidc_discovery_reply();
	c->auth->step = STEP_OAUTH_FAILED;
	send_auth(c, AUTH_REQ_SASL_CONTINUE, reply, strlen(reply));
	free(reply);
}

static void token_verdict(struct client *c, struct token_identity *id, const char *why)
{
	struct auth_state *a = c->auth;
	enum auth_type method = a->method;
	a->step = STEP_NONE;
	if (!id) {
		if (method == AUTH_TYPE_OAUTH) {
			cl_log(LOG_LVL_LOG, c, "token refused: %s", why);
			oauth_error_reply(c);
		} else {
			fail_token(c, why);
		}
		return;
	}
	char who[256], iss[256], jti[80];
	strlcpy_printable(who, id->identity, sizeof(who));
	strlcpy_printable(iss, id->issuer ? id->issuer : "", sizeof(iss));
	strlcpy_printable(jti, id->jti ? id->jti : "-", sizeof(jti));
	const char *map = a->map ? a->map : cf->oidc_ident_map;
	bool allowed = map ? ident_map && ident_allows_groups(ident_map, map, id->identity,
	                                                      id->groups, id->n_groups, c->user)
	                   : strcmp(id->identity, c->user) == 0;
	if (!allowed) {
		char *reason =
		    xasprintf("identity \"%s\" (iss %s, jti %s) may not log in as %s%s%s", who, iss,
		              jti, c->user, map ? " by map " : "", map ? map : "");
		token_identity_clear(id);
		free(id);
		fail_token(c, reason);
		free(reason);
		return;
	}
	cl_log(LOG_LVL_LOG, c, "token login: identity \"%s\", iss %s, jti %s", who, iss, jti);
	client_set_identity(c, id);
	succeed(c);
}

static void take_token(struct client *c, const char *token, size_t len)
{
	c->auth->step = STEP_VERIFYING;
	oidc_verify(c, token, len, token_verdict);
}

static void begin_token_exchange(struct client *c, enum auth_type m)
{
	struct auth_state *a = c->auth;
	const char *missing = oidc_not_ready();
	if (missing) {
		cl_log(LOG_LVL_ERROR, c, "token login impossible: %s", missing);
		client_fail(c, "08P01", "bouncer config error");
		return;
	}
	if ((a->map || cf->oidc_ident_map) && !ident_map) {
		cl_log(LOG_LVL_ERROR, c,
		       "token login impossible: an ident map is named but "
		       "auth_ident_file is not set");
		client_fail(c, "08P01", "bouncer config error");
		return;
	}
	/* A token is a bearer credential: in clear on the network anyone could replay it. */
	if (!c->sb.is_unix && !sbuf_is_tls(&c->sb) && !cf->oidc_allow_insecure_transport) {
		cl_log(LOG_LVL_LOG, c, "login refused: token over an unencrypted connection");
		audit_login_failed(c, "token over an unencrypted connection");
		client_fail(c, "28000", "token authentication requires TLS or the unix socket");
		return;
	}
	if (m == AUTH_TYPE_OIDC) {
		a->step = STEP_TOKEN;
		send_auth(c, AUTH_REQ_CLEARTEXT, NULL, 0);
	} else {
		a->step = STEP_OAUTH_INITIAL;
		static const char mechs[] = "OAUTHBEARER\0";
		send_auth(c, AUTH_REQ_SASL, mechs, sizeof(mechs));
	}
}

/*
 * An OAUTHBEARER client response (RFC 7628 section 3.1): "n,," then kvsep
 * (0x01), key=value pairs each ended by kvsep, and a final kvsep. Its
 * auth value: "Bearer <token>", or empty when the client asks where to
 * get a token. NULL if the message is malformed.
 */
static const char *oauth_auth_value(char *msg, size_t len)
{
	if (strlen(msg) != len || len < 4 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return NULL;
	char *p = msg + 2;
	if (*p++ != ',' || *p++ != '\x01')
		return NULL; /* an authzid is not supported */
	const char *auth = NULL;
	while (*p) {
		char *end = strchr(p, '\x01');
		if (!end)
			return NULL;
		*end = '\0';
		if (end == p)
			return end[1] == '\0' && auth ? auth : NULL; /* the final kvsep */
		char *eq = strchr(p, '=');
		if (!eq || eq == p)
			return NULL;
		*eq = '\0';
		if (strcmp(p, "auth") == 0) {
			if (auth)
				return NULL;
			auth = eq + 1;
		}
		p = end + 1;
	}
	return NULL;
}

static void oauth_step(struct client *c, const uint8_t *body, size_t len)
{
	struct auth_state *a = c->auth;
	struct pkt_reader r;
	pr_init(&r, body, len);
	size_t n;
	const uint8_t *data;
	if (a->step == STEP_OAUTH_INITIAL) {
		const char *mech = pr_string(&r);
		uint32_t dlen = pr_uint32(&r);
		if (r.bad || strcmp(mech, "OAUTHBEARER") != 0) {
			client_fail(c, "08P01",
			            "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (dlen == 0xffffffffu && pr_left(&r) == 0) {
			/* No initial response: an empty challenge asks for it. */
			a->step = STEP_OAUTH_RESPONSE;
			send_auth(c, AUTH_REQ_SASL_CONTINUE, NULL, 0);
			return;
		}
		if (dlen != pr_left(&r)) {
			client_fail(c, "08P01", "malformed SASLInitialResponse");
			return;
		}
		n = dlen;
	} else {
		n = pr_left(&r);
	}
	data = pr_bytes(&r, n);
	if (a->step == STEP_OAUTH_FAILED) {
		/* After the error reply the only answer is a lone kvsep; either way it ends here.
		 */
		if (n != 1 || data[0] != '\x01')
			client_fail(c, "08P01", "malformed OAUTHBEARER message");
		else
			fail_token(c, "no valid bearer token");
		return;
	}
	char *msg = xmalloc(n + 1);
	memcpy(msg, data, n);
	msg[n] = '\0';
	const char *auth = oauth_auth_value(msg, n);
	if (!auth) {
		OPENSSL_cleanse(msg, n);
		free(msg);
		client_fail(c, "08P01", "malformed OAUTHBEARER message");
		return;
	}
	if (!*auth) {
		cl_log(LOG_LVL_DEBUG, c, "OAUTHBEARER discovery");
		OPENSSL_cleanse(msg, n);
		free(msg);
		oauth_error_reply(c);
		return;
	}
	if (strncasecmp(auth, "Bearer ", 7) != 0) {
		OPENSSL_cleanse(msg, n);
		free(msg);
		fail_token(c, "not a Bearer token");
		return;
	}
	const char *token = auth + 7;
	while (*token == ' ')
		token++;
	take_token(c, token, strlen(token));
	OPENSSL_cleanse(msg, n);
	free(msg);
}

static void begin_exchange(struct client *c)
{
	struct auth_state *a = c->auth;
	enum auth_type m = a->method;
	if (m == AUTH_TYPE_MD5 && a->secret && secret_kind_of(a->secret) == SECRET_SCRAM)
		m = AUTH_TYPE_SCRAM_SHA_256; /* as PgBouncer: md5 upgrades to SCRAM secrets */
	switch (m) {
	case AUTH_TYPE_TRUST:
		/* As PgBouncer: trust skips the password, not the user's existence. */
		if (!a->secret) {
			cl_log(LOG_LVL_LOG, c, "login failed: no such user: %s", c->user);
			client_fail(c, "08P01", "\"trust\" authentication failed");
			return;
		}
		succeed(c);
		return;
	case AUTH_TYPE_ANY:
		succeed(c);
		return;
	case AUTH_TYPE_PLAIN:
		a->step = STEP_CLEARTEXT;
		send_auth(c, AUTH_REQ_CLEARTEXT, NULL, 0);
		return;
	case AUTH_TYPE_MD5:
		a->step = STEP_MD5;
		if (RAND_bytes(a->salt, sizeof(a->salt)) != 1)
			die("RAND_bytes failed");
		send_auth(c, AUTH_REQ_MD5, a->salt, sizeof(a->salt));
		return;
	case AUTH_TYPE_SCRAM_SHA_256: {
		struct scram_secret secret;
		bool ok;
		if (!a->secret) {
			ok = scram_server_start_unknown_user(&a->scram, c->user,
			                                     cf->scram_iterations);
		} else if (secret_kind_of(a->secret) == SECRET_SCRAM) {
			ok = scram_parse_secret(a->secret, &secret) &&
			     scram_server_start(&a->scram, &secret);
		} else if (secret_kind_of(a->secret) == SECRET_PLAIN) {
			scram_secret_from_password(a->secret, cf->scram_iterations, &secret);
			ok = scram_server_start(&a->scram, &secret);
		} else {
			/* An md5 hash cannot answer a SCRAM exchange. */
			ok = scram_server_start_unknown_user(&a->scram, c->user,
			                                     cf->scram_iterations);
		}
		if (!ok) {
			client_fail(c, "XX000", "SCRAM authentication could not start");
			return;
		}
		a->step = STEP_SCRAM_INITIAL;
		static const char mechs[] = "SCRAM-SHA-256\0";
		send_auth(c, AUTH_REQ_SASL, mechs, sizeof(mechs));
		return;
	}
	case AUTH_TYPE_CERT: {
		char name[256];
		if (!sbuf_is_tls(&c->sb) || !tls_peer_common_name(c->sb.ssl, name, sizeof(name))) {
			cl_log(LOG_LVL_LOG, c, "login failed: no verified client certificate");
			client_fail(c, "28000", "certificate authentication failed: %s",
			            sbuf_is_tls(&c->sb) ? "no valid client certificate"
			                                : "TLS connection required");
			return;
		}
		if (!identity_may_be(c, name)) {
			cl_log(LOG_LVL_LOG, c, "login failed: certificate for \"%s\"%s%s", name,
			       a->map ? " not allowed by map " : "", a->map ? a->map : "");
			audit_login_failed(c, "certificate not allowed for this user");
			client_fail(c, "28000", "certificate authentication failed for user \"%s\"",
			            c->user);
			return;
		}
		succeed(c);
		return;
	}
	case AUTH_TYPE_PEER: {
		char name[256];
		if (!c->sb.is_unix || !peer_os_user(c, name, sizeof(name))) {
			cl_log(LOG_LVL_LOG, c,
			       "login failed: peer authentication needs a unix socket");
			client_fail(c, "28000", "peer authentication failed for user \"%s\"",
			            c->user);
			return;
		}
		if (!identity_may_be(c, name)) {
			cl_log(LOG_LVL_LOG, c, "login failed: OS user \"%s\"%s%s", name,
			       a->map ? " not allowed by map " : " is not the user",
			       a->map ? a->map : "");
			client_fail(c, "28000", "peer authentication failed for user \"%s\"",
			            c->user);
			return;
		}
		succeed(c);
		return;
	}
	case AUTH_TYPE_OIDC:
	case AUTH_TYPE_OAUTH:
		begin_token_exchange(c, m);
		return;
	case AUTH_TYPE_REJECT:
		cl_log(LOG_LVL_LOG, c, "login rejected by hba");
		audit_login_failed(c, "rejected by hba");
		client_fail(c, "08P01", "login rejected");
		return;
	case AUTH_TYPE_HBA:
	case AUTH_TYPE_UNSET:
		break;
	}
	client_fail(c, "XX000", "no authentication method");
}

/* auth_type, or the method (and map) of the first matching hba line. */
static enum auth_type method_for(const struct client *c, const char **map_out)
{
	*map_out = NULL;
	if (cf->auth_type != AUTH_TYPE_HBA)
		return cf->auth_type;
	struct hba_request req = {
	    .is_unix = c->sb.is_unix,
	    .is_tls = sbuf_is_tls(&c->sb),
	    .addr = c->sb.is_unix ? NULL : (const struct sockaddr *)&c->addr,
	    .database = c->dbname,
	    .user = c->user,
	};
	enum auth_type m = hba_rules ? hba_match(hba_rules, &req, map_out) : AUTH_TYPE_REJECT;
	if (*map_out && !ident_map) {
		/* Fail closed: a map nobody can read allows nobody. */
		cl_log(LOG_LVL_WARNING, c, "hba: map=%s but no auth_ident_file is set", *map_out);
		return AUTH_TYPE_REJECT;
	}
	return m;
}

static const char *auth_user_for(const struct pool_db *db)
{
	if (db->conf.auth_user)
		return db->conf.auth_user;
	return cf->auth_user && *cf->auth_user ? cf->auth_user : NULL;
}

static bool needs_secret(enum auth_type m)
{
	return m == AUTH_TYPE_PLAIN || m == AUTH_TYPE_MD5 || m == AUTH_TYPE_SCRAM_SHA_256;
}

static void start_auth_query(struct client *c, struct pool_db *db, const char *auth_user)
{
	const char *dbname = db->conf.auth_dbname
	                         ? db->conf.auth_dbname
	                         : (cf->auth_dbname && *cf->auth_dbname ? cf->auth_dbname : NULL);
	struct pool_db *qdb = dbname ? pool_db_lookup(dbname) : db;
	if (!qdb) {
		client_fail(c, "3D000", "auth_dbname \"%s\" is not a configured database", dbname);
		return;
	}
	struct pool_user *qu = pool_user_get(auth_user);
	const char *secret = auth_file ? authfile_lookup(auth_file, auth_user) : NULL;
	if (secret && !qu->secret) {
		qu->secret = xstrdup(secret);
		qu->from_auth_file = true;
	}
	c->auth->step = STEP_QUERY;
	pool_request_auth_query(pool_get(qdb, qu), c);
}

/*
 * As PgBouncer: "pgbouncer" on the unix socket, from the OS user the
 * pooler runs as, is an administrator without a password. Online
 * restart (-R) logs in this way.
 */
static bool is_os_admin(const struct client *c)
{
	if (!c->sb.is_unix || strcmp(c->user, "pgbouncer") != 0)
		return false;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	return getsockopt(c->sb.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       cred.uid == geteuid();
}

void auth_start(struct client *c)
{
	const char *map;
	bool admin = admin_is_database(c->dbname);
	if (admin && is_os_admin(c)) {
		c->os_admin = true;
		c->auth = xcalloc(1, sizeof(*c->auth));
		c->auth->admin = true;
		succeed(c);
		return;
	}
	struct pool_db *db = admin ? NULL : pool_db_lookup(c->dbname);
	if (!db) {
		/*
		 * The console, or a database that does not exist: authenticate
		 * against auth_file only; an unknown database is said only then.
		 */
		struct auth_state *a = xcalloc(1, sizeof(*a));
		c->auth = a;
		a->admin = admin;
		a->no_database = !admin;
		a->method = method_for(c, &map);
		a->map = map ? xstrdup(map) : NULL;
		const char *secret = auth_file ? authfile_lookup(auth_file, c->user) : NULL;
		if (secret)
			a->secret = xstrdup(secret);
		begin_exchange(c);
		return;
	}
	if (cf->auth_type == AUTH_TYPE_ANY && !db->conf.user) {
		cl_log(LOG_LVL_ERROR, c,
		       "auth_type=any requires a forced user (user= in [databases])");
		client_fail(c, "08P01", "bouncer config error");
		return;
	}
	struct auth_state *a = xcalloc(1, sizeof(*a));
	c->auth = a;
	a->method = method_for(c, &map);
	a->map = map ? xstrdup(map) : NULL;

	a->db = db;
	const char *secret = auth_file ? authfile_lookup(auth_file, c->user) : NULL;
	if (secret) {
		struct pool_user *cu = pool_user_get(c->user);
		if (!cu->secret || strcmp(cu->secret, secret) != 0) {
			free(cu->secret);
			cu->secret = xstrdup(secret);
			/* A new secret invalidates what earlier logins proved. */
			cu->have_scram_keys = false;
			FREE_AND_NULL(cu->password);
		}
		cu->from_auth_file = true;
		a->secret = xstrdup(secret);
	} else if (needs_secret(a->method) && auth_user_for(db)) {
		start_auth_query(c, db, auth_user_for(db));
		return;
	}
	if (needs_secret(a->method) && !a->secret)
		cl_log(LOG_LVL_DEBUG, c, "user not found in auth_file");
	begin_exchange(c);
}

void auth_query_result(struct client *c, const char *secret, const char *error)
{
	struct auth_state *a = c->auth;
	if (!a || a->step != STEP_QUERY)
		return;
	if (error) {
		cl_log(LOG_LVL_WARNING, c, "%s", error);
		client_fail(c, "08P01", "bouncer config error");
		return;
	}
	if (secret) {
		a->secret = xstrdup(secret);
		struct pool_user *cu = pool_user_get(c->user);
		if (!cu->from_auth_file && (!cu->secret || strcmp(cu->secret, secret) != 0)) {
			free(cu->secret);
			cu->secret = xstrdup(secret);
			cu->have_scram_keys = false;
			FREE_AND_NULL(cu->password);
		}
	}
	a->step = STEP_NONE;
	begin_exchange(c);
}

/* A cleartext password checked against any kind of stored secret. */
static bool check_cleartext(const char *secret, const char *user, const char *password)
{
	switch (secret_kind_of(secret)) {
	case SECRET_PLAIN:
		return secure_streq(secret, password);
	case SECRET_MD5: {
		char hash[MD5_PASSWD_LEN + 1];
		md5_password_hash(password, user, hash);
		return secure_streq(secret, hash);
	}
	case SECRET_SCRAM: {
		struct scram_secret stored, derived;
		if (!scram_parse_secret(secret, &stored))
			return false;
		if (!scram_secret_build(password, stored.salt, stored.salt_len, stored.iterations,
		                        &derived))
			return false;
		return secure_equal(stored.stored_key, derived.stored_key, SCRAM_KEY_LEN) &&
		       secure_equal(stored.server_key, derived.server_key, SCRAM_KEY_LEN);
	}
	}
	return false;
}

static void remember_password(struct client *c, const char *password)
{
	struct pool_user *cu = pool_user_get(c->user);
	if (cu->password && strcmp(cu->password, password) == 0)
		return;
	if (cu->password) {
		OPENSSL_cleanse(cu->password, strlen(cu->password));
		free(cu->password);
	}
	cu->password = xstrdup(password);
}

static void scram_step(struct client *c, const uint8_t *body, size_t len)
{
	struct auth_state *a = c->auth;
	struct pkt_reader r;
	pr_init(&r, body, len);
	const char *data;
	size_t n;
	if (a->step == STEP_SCRAM_INITIAL) {
		const char *mech = pr_string(&r);
		uint32_t dlen = pr_uint32(&r);
		if (r.bad || strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fail(c, "08P01",
			            "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (dlen == 0xffffffffu || dlen != pr_left(&r)) {
			client_fail(c, "08P01", "malformed SASLInitialResponse");
			return;
		}
		n = dlen;
		data = (const char *)pr_bytes(&r, n);
	} else {
		n = pr_left(&r);
		data = (const char *)pr_bytes(&r, n);
	}
	char *out = NULL, *err = NULL;
	if (a->step == STEP_SCRAM_INITIAL) {
		if (!scram_server_handle_client_first(&a->scram, data, n, &out, &err)) {
			cl_log(LOG_LVL_LOG, c, "SCRAM: %s", err ? err : "bad client-first message");
			free(err);
			client_fail(c, "08P01", "malformed SCRAM message");
			return;
		}
		a->step = STEP_SCRAM_FINAL;
		send_auth(c, AUTH_REQ_SASL_CONTINUE, out, strlen(out));
		free(out);
		return;
	}
	if (!scram_server_handle_client_final(&a->scram, data, n, &out, &err)) {
		cl_log(LOG_LVL_DEBUG, c, "SCRAM: %s", err ? err : "verification failed");
		free(err);
		fail_password(c);
		return;
	}
	struct pool_user *cu = pool_user_get(c->user);
	if (a->no_database || a->admin) {
		/* nothing to remember: no pool will log in with it */
	} else if (a->secret && secret_kind_of(a->secret) == SECRET_SCRAM &&
	           scram_server_client_key(&a->scram, cu->scram_client_key)) {
		memcpy(cu->scram_server_key, a->scram.secret.server_key, SCRAM_KEY_LEN);
		cu->have_scram_keys = true;
	} else if (a->secret && secret_kind_of(a->secret) == SECRET_PLAIN) {
		remember_password(c, a->secret);
	}
	send_auth(c, AUTH_REQ_SASL_FINAL, out, strlen(out));
	free(out);
	succeed(c);
}

void auth_handle_password(struct client *c, const uint8_t *body, size_t len)
{
	struct auth_state *a = c->auth;
	switch (a->step) {
	case STEP_CLEARTEXT: {
		const char *pw = (const char *)body;
		if (strlen(pw) + 1 != len) {
			client_fail(c, "08P01", "malformed password packet");
			return;
		}
		if (!*pw) {
			client_fail(c, "08P01", "empty password returned by client");
			return;
		}
		if (!a->secret || !check_cleartext(a->secret, c->user, pw)) {
			fail_password(c);
			return;
		}
		if (secret_kind_of(a->secret) != SECRET_PLAIN && !a->no_database && !a->admin)
			remember_password(c, pw);
		succeed(c);
		return;
	}
	case STEP_MD5: {
		const char *resp = (const char *)body;
		if (strlen(resp) + 1 != len) {
			client_fail(c, "08P01", "malformed password packet");
			return;
		}
		if (!a->secret || !md5_check_response(a->secret, c->user, a->salt, resp)) {
			fail_password(c);
			return;
		}
		succeed(c);
		return;
	}
	case STEP_SCRAM_INITIAL:
	case STEP_SCRAM_FINAL:
		scram_step(c, body, len);
		return;
	case STEP_TOKEN: {
		const char *token = (const char *)body;
		if (len == 0 || strlen(token) + 1 != len || !*token) {
			client_fail(c, "08P01", "malformed password packet");
			return;
		}
		take_token(c, token, len - 1);
		return;
	}
	case STEP_OAUTH_INITIAL:
	case STEP_OAUTH_RESPONSE:
	case STEP_OAUTH_FAILED:
		oauth_step(c, body, len);
		return;
	case STEP_NONE:
	case STEP_QUERY:
	case STEP_VERIFYING:
		break;
	}
	client_fail(c, "08P01", "unexpected password message");
}
