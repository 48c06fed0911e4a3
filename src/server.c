/*
 * The server side of a connection.
 *
 * Login over TCP first asks for TLS unless server_tls_sslmode is disable
 * (an SSLRequest; 'S' starts a handshake, 'N' goes on in clear text
 * unless the mode demands TLS), then speaks to PostgreSQL as a client:
 * cleartext, md5 or SCRAM-SHA-256
 * with the password the pooler holds, or with the SCRAM keys a client
 * proved (pass-through, when the auth_file holds the server's secret).
 *
 * Linked to a client, server_process() streams results to it message by
 * message. Only ReadyForQuery and ParameterStatus are looked at: the first
 * says when a transaction ends and the server can go back to the pool, the
 * second keeps tracked parameters true on both sides.
 *
 * Host lists (host=a,b,c): each new connection gets its own order over the
 * entries (plan_hosts): from the first one (load_balance_hosts=disable) or
 * from one further than the pool's previous connection began
 * (round-robin), with the entries that failed within server_login_retry
 * moved to the end, so that a dead host costs new connections nothing
 * while another one works. A host that refuses, times out, fails DNS,
 * closes during login, answers with a connection-class error (SQLSTATE
 * 08, 53, 57: starting up, shutting down, too many connections) or logs
 * us in but does not fit target_session_attrs makes the same server
 * object go on to the next entry (host_failed); the login fails only when
 * none is left. Authentication errors end it at once: the other hosts
 * would say the same, and libpq stops there too.
 */
#include "server.h"
#include "auth.h"
#include "authfile.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "masking.h"
#include "md5.h"
#include "outcome.h"
#include "params.h"
#include "pool.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static uint64_t next_server_id = 1;
static struct list_node closed_servers = LIST_INIT(closed_servers);

static void server_on_event(struct sbuf *sb, enum sbuf_event ev, void *arg);

const char *server_host(const struct server *s, int *port)
{
	const struct db_config *dc = &s->pool->db->conf;
	/* An adopted server (online restart) never chose an entry: show the list. */
	if (s->port > 0) {
		*port = s->port;
		return s->host[0] ? s->host : "unix";
	}
	*port = dc->port > 0 ? dc->port : 5432;
	return dc->host ? dc->host : "unix";
}

const char *server_tag(const struct server *s)
{
	static char buf[512];
	int port;
	const char *host = server_host(s, &port);
	snprintf(buf, sizeof(buf), "S-%llu: %s/%s@%s:%d", (unsigned long long)s->id,
	         s->pool->db->name, s->pool->user->name, host, port);
	return buf;
}

void server_reap(void)
{
	struct list_node *it;
	while ((it = list_pop(&closed_servers))) {
		struct server *s = container_of(it, struct server, node);
		varcache_free(&s->vars);
		prepared_server_free(s);
		params_free(s->login_params);
		if (s->scram) {
			scram_client_reset(s->scram);
			free(s->scram);
		}
		free(s->auth_secret);
		free(s);
	}
}

void server_close(struct server *s, const char *reason)
{
	if (s->state == SV_CLOSED)
		return;
	sv_log(cf->log_disconnections ? LOG_LVL_LOG : LOG_LVL_DEBUG, s, "closing because: %s",
	       reason);
	if (s->dns) {
		dns_cancel(s->dns);
		s->dns = NULL;
	}
	struct client *c = s->client;
	if (c) {
		s->client = NULL;
		c->server = NULL;
		client_fail(c, "08P01", "server conn crashed?");
	}
	struct client *ac = s->auth_client;
	if (ac) {
		s->auth_client = NULL;
		auth_query_result(ac, NULL, "auth_query failed: server connection lost");
	}
	if (sbuf_is_open(&s->sb) && !s->sb.failed && !s->sb.connecting && s->state != SV_LOGIN) {
		/* Terminate politely so the server does not log an unexpected EOF. */
		static const uint8_t terminate[] = {'X', 0, 0, 0, 4};
		sbuf_send(&s->sb, terminate, sizeof(terminate));
	}
	sbuf_close(&s->sb);
	s->state = SV_CLOSED;
	pool_server_gone(s);
	list_append(&closed_servers, &s->node);
	pooler_schedule_reap();
}

/* Connecting */

static const char *default_socket_dir(void)
{
	struct stat st;
	return stat("/var/run/postgresql", &st) == 0 ? "/var/run/postgresql" : "/tmp";
}

static void send_startup(struct server *s)
{
	const struct pool_db *db = s->pool->db;
	struct startup_param params[8];
	int n = 0;
	params[n++] = (struct startup_param){"user", s->pool->user->name};
	params[n++] =
	    (struct startup_param){"database", db->conf.dbname ? db->conf.dbname : db->name};
	if (db->conf.client_encoding)
		params[n++] = (struct startup_param){"client_encoding", db->conf.client_encoding};
	if (db->conf.datestyle)
		params[n++] = (struct startup_param){"DateStyle", db->conf.datestyle};
	if (db->conf.timezone)
		params[n++] = (struct startup_param){"TimeZone", db->conf.timezone};
	if (db->conf.application_name)
		params[n++] = (struct startup_param){"application_name", db->conf.application_name};
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_startup(&pb, params, n);
	sbuf_send(&s->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

static void host_failed(struct server *s, const char *sqlstate, const char *msg);

static void login_failed(struct server *s, const char *sqlstate, const char *msg)
{
	sv_log(LOG_LVL_WARNING, s, "server login failed: %s", msg);
	struct pool *pool = s->pool;
	/* Record the failure first: closing asks the pool for replacements. */
	pool_server_login_failed(pool, sqlstate, msg);
	server_close(s, "login failed");
}

/* The socket is connected: ask for TLS where the mode wants it, else log in. */
static void begin_login(struct server *s)
{
	s->state = SV_LOGIN;
	sbuf_resume(&s->sb);
	if (s->sb.is_unix || cf->server_tls_sslmode == TLS_MODE_DISABLE) {
		send_startup(s);
		return;
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_put_uint32(&pb, 8);
	pktbuf_put_uint32(&pb, PROTO_SSL_CODE);
	s->tls_answer_pending = true;
	sbuf_send(&s->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

/*
 * The server's one-byte answer to our SSLRequest. Bytes behind an 'S'
 * were sent in clear text before the handshake and could be a
 * man-in-the-middle's (CVE-2021-23222): they fail the login.
 */
static void read_tls_answer(struct server *s)
{
	struct evbuffer *in = s->sb.in;
	uint8_t answer;
	if (evbuffer_remove(in, &answer, 1) != 1)
		return;
	s->tls_answer_pending = false;
	bool more = evbuffer_get_length(in) > 0;
	if (answer == 'S' && !more) {
		struct ssl_st *ssl = tls_server_session(s->host[0] ? s->host : NULL);
		if (!ssl || !sbuf_start_tls(&s->sb, ssl))
			login_failed(s, "08006", "could not start TLS");
		return; /* the startup packet goes out once the handshake is done */
	}
	if (answer == 'N' && !more) {
		if (cf->server_tls_sslmode >= TLS_MODE_REQUIRE) {
			char msg[160];
			snprintf(msg, sizeof(msg),
			         "server refused TLS, which server_tls_sslmode = %s requires",
			         config_tls_mode_name(cf->server_tls_sslmode));
			host_failed(s, "08006", msg);
			return;
		}
		send_startup(s);
		return;
	}
	login_failed(s, "08P01",
	             answer == 'S' || answer == 'N'
	                 ? "server sent unencrypted data after its answer to the TLS request"
	                 : "server gave an invalid answer to the TLS request");
}

static bool try_next_address(struct server *s);

static void connect_to(struct server *s, const struct sockaddr *sa, socklen_t len)
{
	memcpy(&s->addr, sa, len);
	s->addr_len = len;
	if (!sbuf_connect(&s->sb, sa, len)) {
		if (try_next_address(s))
			return;
		char msg[256];
		snprintf(msg, sizeof(msg), "could not connect to server: %s",
		         strerror(s->sb.error));
		host_failed(s, "08006", msg);
	}
}

static socklen_t addr_len(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void on_dns(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	struct server *s = arg;
	s->dns = NULL;
	if (err || n == 0) {
		char msg[600];
		snprintf(msg, sizeof(msg), "could not resolve host \"%s\": %s", s->host,
		         err ? err : "no addresses");
		host_failed(s, "08006", msg);
		return;
	}
	/* A name may have an address the server does not listen on (::1 for localhost). */
	int last = n - 1 < (int)ARRAY_SIZE(s->next_addrs) ? n - 1 : (int)ARRAY_SIZE(s->next_addrs);
	s->next_count = 0;
	for (int i = last; i >= 1; i--) /* stacked so that addrs[1] comes off first */
		s->next_addrs[s->next_count++] = addrs[i];
	connect_to(s, (const struct sockaddr *)&addrs[0], addr_len(&addrs[0]));
}

/* Starts a connect to the next DNS address after a failure; false if none is left. */
static bool try_next_address(struct server *s)
{
	if (s->next_count == 0)
		return false;
	struct sockaddr_storage sa = s->next_addrs[--s->next_count];
	sv_log(LOG_LVL_DEBUG, s, "connect failed (%s), trying the next address",
	       strerror(s->sb.error));
	sbuf_close(&s->sb);
	sbuf_init(&s->sb, server_on_event, s);
	connect_to(s, (const struct sockaddr *)&sa, addr_len(&sa));
	return true;
}

/* Host lists */

static bool host_recently_failed(const struct pool_db *db, int i, usec_t now)
{
	return db->host_failed[i] && now - db->host_failed[i] < cf->server_login_retry;
}

/* The order this connection tries the host list in: see the top of the file. */
static void plan_hosts(struct server *s)
{
	struct pool *pool = s->pool;
	struct pool_db *db = pool->db;
	const struct db_config *dc = &db->conf;
	int n = dc->host_count < 1              ? 1
	        : dc->host_count > DB_MAX_HOSTS ? DB_MAX_HOSTS
	                                        : dc->host_count;
	int start = 0;
	if (dc->load_balance_hosts == LB_ROUND_ROBIN && n > 1)
		start = (int)(pool->host_rr++ % (unsigned)n);
	usec_t now = now_usec();
	s->host_n = 0;
	for (int late = 0; late < 2; late++) {
		for (int k = 0; k < n; k++) {
			int i = (start + k) % n;
			if (host_recently_failed(db, i, now) == (late == 1))
				s->host_order[s->host_n++] = (uint8_t)i;
		}
	}
	s->host_pos = 0;
	/* prefer-standby found none lately: do not look again before server_login_retry. */
	s->any_pass = dc->target_session_attrs == TSA_PREFER_STANDBY && db->no_standby_since &&
	              now - db->no_standby_since < cf->server_login_retry;
	s->misfit_mask = s->any_pass ? UINT32_MAX : 0;
	s->misfits = 0;
}

/* Starts connecting to host_order[host_pos]. */
static void connect_host(struct server *s)
{
	const struct db_config *dc = &s->pool->db->conf;
	if (!config_db_host(dc, s->host_order[s->host_pos], s->host, sizeof(s->host), &s->port)) {
		/* A RELOAD shortened the list while this connection was going through it. */
		login_failed(s, "08006", "the database's host list changed");
		return;
	}
	if (s->port <= 0)
		s->port = 5432;
	s->attempt_time = now_usec();
	s->next_count = 0;
	int port = s->port;
	const char *host = s->host[0] ? s->host : default_socket_dir();
	sv_log(LOG_LVL_DEBUG, s, "new connection to server");

	if (host[0] == '/') {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", host, port);
		if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
			host_failed(s, "08006", "unix socket path too long");
			return;
		}
		connect_to(s, (struct sockaddr *)&un, sizeof(un));
		return;
	}
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
		connect_to(s, (struct sockaddr *)&in, sizeof(in));
		return;
	}
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1) {
		connect_to(s, (struct sockaddr *)&in6, sizeof(in6));
		return;
	}
	s->dns = dns_resolve(host, port, on_dns, s);
	if (!s->dns)
		host_failed(s, "08006", "could not start DNS lookup");
}

/* Back to a fresh, unconnected server object, for the next host. */
static void reset_for_next_host(struct server *s)
{
	if (s->dns) {
		dns_cancel(s->dns);
		s->dns = NULL;
	}
	if (sbuf_is_open(&s->sb) && !s->sb.failed && !s->sb.connecting && s->state == SV_USED) {
		/* Logged in (it did not fit target_session_attrs): say goodbye. */
		static const uint8_t terminate[] = {'X', 0, 0, 0, 4};
		sbuf_send(&s->sb, terminate, sizeof(terminate));
	}
	sbuf_close(&s->sb);
	sbuf_init(&s->sb, server_on_event, s);
	s->state = SV_CONNECTING;
	s->task = TASK_NONE;
	s->task_failed = false;
	s->expect_ready = 0;
	s->tx_status = 'I';
	s->tls_answer_pending = false;
	s->backend_pid = s->backend_key = 0;
	s->addr_len = 0;
	s->next_count = 0;
	s->hot_standby = s->read_only = -1;
	varcache_free(&s->vars);
	params_free(s->login_params);
	s->login_params = params_new();
	if (s->scram) {
		scram_client_reset(s->scram);
		FREE_AND_NULL(s->scram);
	}
}

/* Moves on to the next entry worth trying; false when none is left. */
static bool next_host(struct server *s)
{
	bool prefer = s->pool->db->conf.target_session_attrs == TSA_PREFER_STANDBY;
	int pos = s->host_pos + 1;
	for (;; pos++) {
		if (pos >= s->host_n) {
			/* prefer-standby saw no standby: again, over the hosts that answered. */
			if (!prefer || s->any_pass || !s->misfit_mask)
				return false;
			s->any_pass = true;
			pos = 0;
		}
		if (!s->any_pass || (s->misfit_mask & (1u << s->host_order[pos])))
			break;
	}
	reset_for_next_host(s);
	s->host_pos = pos;
	connect_host(s);
	return true;
}

/*
 * The current host did not work out (msg says why): remember that for
 * server_login_retry, then try the next one; with none left, the login
 * fails with a message that says what was tried.
 */
static void host_failed(struct server *s, const char *sqlstate, const char *msg)
{
	struct pool_db *db = s->pool->db;
	const struct db_config *dc = &db->conf;
	db->host_failed[s->host_order[s->host_pos]] = now_usec();
	if (s->host_n <= 1 && dc->target_session_attrs == TSA_ANY) {
		login_failed(s, sqlstate, msg);
		return;
	}
	char what[600];
	int port;
	const char *host = server_host(s, &port);
	snprintf(what, sizeof(what), "%s:%d: %s", host, port, msg);
	if (s->host_pos + 1 < s->host_n || dc->target_session_attrs == TSA_PREFER_STANDBY)
		sv_log(LOG_LVL_LOG, s, "%s; trying the next host", msg);
	if (next_host(s))
		return;
	char final[800];
	if (s->misfits > 0)
		snprintf(final, sizeof(final),
		         "no host of database \"%s\" fits target_session_attrs=%s (last: %s)",
		         db->name, config_session_attrs_name(dc->target_session_attrs), what);
	else if (s->host_n > 1)
		snprintf(final, sizeof(final), "%s (all %d hosts of database \"%s\" failed)", what,
		         s->host_n, db->name);
	else
		snprintf(final, sizeof(final), "%s", msg);
	login_failed(s, s->misfits > 0 ? "08001" : sqlstate, final);
}

void server_connect_timed_out(struct server *s)
{
	host_failed(s, "08006", "server connect timeout");
}

/* Connection-class errors, and "starting up", "shutting down", "too many connections". */
static bool retry_elsewhere(const char *sqlstate)
{
	return strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0 ||
	       strncmp(sqlstate, "57", 2) == 0;
}

void server_launch(struct pool *pool)
{
	struct server *s = xcalloc(1, sizeof(*s));
	s->id = next_server_id++;
	s->pool = pool;
	s->state = SV_CONNECTING;
	s->tx_status = 'I';
	s->connect_time = now_usec();
	s->login_params = params_new();
	s->hot_standby = s->read_only = -1;
	sbuf_init(&s->sb, server_on_event, s);
	list_append(&pool->new_servers, &s->node);
	pool->db->server_count++;
	pool->user->server_count++;
	s->counted = true;
	plan_hosts(s);
	connect_host(s);
}

struct server *server_adopt(int fd, struct pool *pool)
{
	struct server *s = xcalloc(1, sizeof(*s));
	s->id = next_server_id++;
	s->tx_status = 'I';
	s->hot_standby = s->read_only = -1;
	s->connect_time = now_usec();
	sbuf_init(&s->sb, server_on_event, s);
	pool_adopt_server(pool, s);
	s->addr_len = sizeof(s->addr);
	if (getpeername(fd, (struct sockaddr *)&s->addr, &s->addr_len) != 0)
		s->addr_len = 0;
	if (!sbuf_accept(&s->sb, fd, s->addr.ss_family == AF_UNIX)) {
		close(fd);
		server_close(s, "could not adopt the socket");
		return NULL;
	}
	return s;
}

/* Login */

/* The cleartext password the pooler holds for this server login, if any. */
static const char *login_password(const struct server *s)
{
	const struct pool_db *db = s->pool->db;
	const struct pool_user *u = s->pool->user;
	if (db->conf.user && db->conf.password)
		return db->conf.password;
	if (u->password)
		return u->password;
	if (u->secret && secret_kind_of(u->secret) == SECRET_PLAIN)
		return u->secret;
	return NULL;
}

static bool send_password(struct server *s, const char *pw)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_password(&pb, pw);
	bool ok = sbuf_send(&s->sb, pb.data, pb.len);
	pktbuf_free(&pb);
	return ok;
}

static bool handle_auth_request(struct server *s, struct pkt_reader *r)
{
	uint32_t code = pr_uint32(r);
	const struct pool_user *u = s->pool->user;
	const char *pw = login_password(s);
	char *err = NULL;
	switch (code) {
	case AUTH_REQ_OK:
		return true;
	case AUTH_REQ_CLEARTEXT:
		if (!pw) {
			login_failed(s, "28P01",
			             "server asked for a cleartext password, none known");
			return false;
		}
		return send_password(s, pw);
	case AUTH_REQ_MD5: {
		const uint8_t *salt = pr_bytes(r, 4);
		if (!salt)
			break;
		char out[MD5_PASSWD_LEN + 1];
		if (pw)
			md5_response_for_secret(pw, u->name, salt, out);
		else if (u->secret && secret_kind_of(u->secret) == SECRET_MD5)
			md5_response_for_secret(u->secret, u->name, salt, out);
		else {
			login_failed(s, "28P01",
			             "server asked for md5 authentication, no password known");
			return false;
		}
		return send_password(s, out);
	}
	case AUTH_REQ_SASL: {
		bool scram = false;
		for (;;) {
			const char *mech = pr_string(r);
			if (r->bad || !*mech)
				break;
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				scram = true;
		}
		if (!scram) {
			login_failed(s, "28000", "server offers no SASL mechanism we support");
			return false;
		}
		s->scram = xcalloc(1, sizeof(*s->scram));
		if (pw) {
			scram_client_init_password(s->scram, pw);
		} else if (u->have_scram_keys) {
			scram_client_init_keys(s->scram, u->scram_client_key, u->scram_server_key);
		} else {
			login_failed(s, "28P01",
			             "server asked for SCRAM authentication, no password or client "
			             "keys known");
			return false;
		}
		char *first = scram_client_first_message(s->scram);
		if (!first) {
			login_failed(s, "28000", "SCRAM: could not start exchange");
			return false;
		}
		struct pktbuf pb;
		pktbuf_init(&pb);
		proto_build_sasl_initial(&pb, "SCRAM-SHA-256", first, strlen(first));
		free(first);
		bool ok = sbuf_send(&s->sb, pb.data, pb.len);
		pktbuf_free(&pb);
		return ok;
	}
	case AUTH_REQ_SASL_CONTINUE: {
		size_t n = pr_left(r);
		const char *data = (const char *)pr_bytes(r, n);
		char *final = NULL;
		if (!s->scram || !data ||
		    !scram_client_handle_server_first(s->scram, data, n, &final, &err)) {
			char msg[256];
			snprintf(msg, sizeof(msg), "SCRAM: %s", err ? err : "unexpected message");
			free(err);
			login_failed(s, "28000", msg);
			return false;
		}
		struct pktbuf pb;
		pktbuf_init(&pb);
		proto_build_sasl_response(&pb, final, strlen(final));
		free(final);
		bool ok = sbuf_send(&s->sb, pb.data, pb.len);
		pktbuf_free(&pb);
		return ok;
	}
	case AUTH_REQ_SASL_FINAL: {
		size_t n = pr_left(r);
		const char *data = (const char *)pr_bytes(r, n);
		if (!s->scram || !data ||
		    !scram_client_verify_server_final(s->scram, data, n, &err)) {
			char msg[256];
			snprintf(msg, sizeof(msg), "SCRAM: %s", err ? err : "unexpected message");
			free(err);
			login_failed(s, "28000", msg);
			return false;
		}
		scram_client_reset(s->scram);
		FREE_AND_NULL(s->scram);
		return true;
	}
	default: {
		char msg[128];
		snprintf(msg, sizeof(msg), "server asked for unsupported authentication method %u",
		         code);
		login_failed(s, "28000", msg);
		return false;
	}
	}
	login_failed(s, "08P01", "malformed authentication request from server");
	return false;
}

/* target_session_attrs */

static enum session_attrs session_attrs_wanted(const struct server *s)
{
	return s->any_pass ? TSA_ANY : s->pool->db->conf.target_session_attrs;
}

/* ParameterStatus values that say what kind of server this is (PostgreSQL 14 and later). */
static void note_session_param(struct server *s, const char *name, const char *value)
{
	if (strcmp(name, "in_hot_standby") == 0)
		s->hot_standby = strcmp(value, "on") == 0;
	else if (strcmp(name, "default_transaction_read_only") == 0)
		s->read_only = strcmp(value, "on") == 0;
}

/* Why a server does not fit (libpq's words), or NULL when it does. */
static const char *session_misfit(enum session_attrs want, bool hot_standby, bool read_only)
{
	switch (want) {
	case TSA_ANY:
		return NULL;
	case TSA_READ_WRITE:
		return hot_standby ? "server is in hot standby mode"
		       : read_only ? "session is read-only"
		                   : NULL;
	case TSA_READ_ONLY:
		return hot_standby || read_only ? NULL : "session is not read-only";
	case TSA_PRIMARY:
		return hot_standby ? "server is in hot standby mode" : NULL;
	case TSA_STANDBY:
	case TSA_PREFER_STANDBY:
		return hot_standby ? NULL : "server is not in hot standby mode";
	}
	return NULL;
}

/* The server fits: forget the host's failures, run connect_query, then serve. */
static void host_fits(struct server *s)
{
	struct pool_db *db = s->pool->db;
	int i = s->host_order[s->host_pos];
	if (db->conf.target_session_attrs != TSA_PREFER_STANDBY) {
		db->host_failed[i] = 0;
	} else if (s->any_pass) {
		db->no_standby_since = now_usec();
	} else {
		db->host_failed[i] = 0;
		db->no_standby_since = 0;
	}
	const char *cq = db->conf.connect_query;
	if (cq && *cq) {
		server_run_task(s, TASK_CONNECT_QUERY, cq);
		return;
	}
	pool_server_ready(s);
}

static void check_session_attrs(struct server *s)
{
	const char *why =
	    session_misfit(session_attrs_wanted(s), s->hot_standby == 1, s->read_only == 1);
	if (!why) {
		host_fits(s);
		return;
	}
	s->misfits++;
	s->misfit_mask |= 1u << s->host_order[s->host_pos];
	host_failed(s, "08001", why);
}

/*
 * Logged in. The check comes before connect_query, so that a query meant
 * for one kind of server never runs on the other kind.
 */
static void login_done(struct server *s)
{
	s->state = SV_USED;
	sv_log(cf->log_connections ? LOG_LVL_LOG : LOG_LVL_DEBUG, s, "login ok");
	if (session_attrs_wanted(s) == TSA_ANY) {
		host_fits(s);
		return;
	}
	if (s->hot_standby >= 0 && s->read_only >= 0) {
		check_session_attrs(s);
		return;
	}
	/* Servers before PostgreSQL 14 report neither value: ask. */
	server_run_task(s, TASK_SESSION_CHECK,
	                "SELECT pg_catalog.pg_is_in_recovery(), "
	                "pg_catalog.current_setting('default_transaction_read_only')");
}

/* Handles one whole message during login; false once the server is closed. */
static bool login_message(struct server *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	switch (type) {
	case 'R':
		return handle_auth_request(s, &r);
	case 'S': {
		const char *name = pr_string(&r);
		const char *value = pr_string(&r);
		if (r.bad)
			break;
		params_set(s->login_params, name, value);
		varcache_set(&s->vars, name, value);
		note_session_param(s, name, value);
		return true;
	}
	case 'K':
		s->backend_pid = pr_uint32(&r);
		s->backend_key = pr_uint32(&r);
		if (r.bad)
			break;
		return true;
	case 'E': {
		struct proto_error e;
		if (!proto_parse_error(body, len, &e))
			break;
		const char *sqlstate = e.sqlstate[0] ? e.sqlstate : "08P01";
		if (retry_elsewhere(sqlstate))
			host_failed(s, sqlstate, e.message);
		else
			login_failed(s, sqlstate, e.message);
		return false;
	}
	case 'N':
	case 'v':
		return true;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		login_done(s);
		/* Closed, or gone on to the next host with a new socket. */
		return s->state != SV_CLOSED && s->state != SV_CONNECTING;
	default:
		break;
	}
	login_failed(s, "08P01", "protocol error from server during login");
	return false;
}

/* Internal queries */

void server_run_task(struct server *s, enum server_task task, const char *sql)
{
	s->task = task;
	s->task_failed = false;
	/* A client's requests may follow these at once; other tasks run alone. */
	bool shared = task == TASK_SET_VARS || task == TASK_MASK_CATALOG;
	s->expect_ready = shared ? s->expect_ready + 1 : 1;
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_query(&pb, sql);
	sbuf_send(&s->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

void server_run_auth_query(struct server *s, struct client *c)
{
	const char *query = auth_query_text(c);
	s->task = TASK_AUTH_QUERY;
	s->task_failed = false;
	s->expect_ready = 1;
	s->auth_client = c;
	s->auth_found = false;
	c->auth_server = s;
	/* Extended protocol: the user name travels as a parameter, never inside the SQL. */
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_parse(&pb, "", query);
	const char *user = c->user;
	proto_build_bind(&pb, &user, 1);
	proto_build_execute(&pb);
	pktbuf_begin(&pb, 'S');
	pktbuf_end(&pb);
	sbuf_send(&s->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

static void finish_task(struct server *s)
{
	enum server_task task = s->task;
	s->task = TASK_NONE;
	bool ok = !s->task_failed && s->tx_status == 'I';
	switch (task) {
	case TASK_CONNECT_QUERY:
	case TASK_CHECK:
	case TASK_RESET:
		if (!ok) {
			server_close(s, task == TASK_CHECK   ? "server check query failed"
			                : task == TASK_RESET ? "server reset query failed"
			                                     : "connect_query failed");
			return;
		}
		pool_server_ready(s);
		return;
	case TASK_SET_VARS:
		if (!ok) {
			struct client *c = s->client;
			s->client = NULL;
			if (c) {
				c->server = NULL;
				client_fail(c, "08P01",
				            "could not apply client settings on the server");
			}
			server_close(s, "SET of client settings failed");
			return;
		}
		return; /* the client's requests are already on their way */
	case TASK_MASK_CATALOG: {
		masking_catalog_end(s->pool->db, ok);
		struct client *c = s->client;
		if (!ok) {
			s->catalog_ahead = false;
			/* Without the catalog no row could be masked: nothing is sent. */
			s->client = NULL;
			if (c) {
				c->server = NULL;
				client_fail(c, "XX000", "masking: could not read the catalog");
			}
			server_close(s, "the masking catalog query failed");
			return;
		}
		if (s->catalog_ahead) {
			s->catalog_ahead = false; /* the client's request is already on its way */
		} else if (c) {
			pool_send_settings(s);
			client_linked(c);
		}
		return;
	}
	case TASK_AUTH_QUERY: {
		struct client *c = s->auth_client;
		s->auth_client = NULL;
		char *secret = s->auth_secret;
		s->auth_secret = NULL;
		bool found = s->auth_found;
		s->auth_found = false;
		if (c)
			c->auth_server = NULL;
		if (ok)
			pool_server_ready(s);
		else
			server_close(s, "auth_query failed");
		if (c)
			auth_query_result(c, found && ok ? secret : NULL,
			                  ok ? NULL : "auth_query failed");
		free(secret);
		return;
	}
	case TASK_SESSION_CHECK:
		if (!ok || s->hot_standby < 0 || s->read_only < 0) {
			host_failed(s, "08001", "could not check target_session_attrs");
			return;
		}
		check_session_attrs(s);
		return;
	case TASK_NONE:
		return;
	}
}

/* The answer of the TASK_SESSION_CHECK query: pg_is_in_recovery(), default_transaction_read_only.
 */
static void session_check_row(struct server *s, const uint8_t *body, uint32_t len)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	if (pr_uint16(&r) != 2)
		return;
	signed char v[2];
	for (int i = 0; i < 2; i++) {
		uint32_t n = pr_uint32(&r);
		if (r.bad || n == 0xffffffffu || n > 16)
			return;
		const uint8_t *p = pr_bytes(&r, n);
		if (!p)
			return;
		v[i] = (n == 1 && p[0] == 't') || (n == 2 && memcmp(p, "on", 2) == 0);
	}
	s->hot_standby = v[0];
	s->read_only = v[1];
}

static void auth_query_row(struct server *s, const uint8_t *body, uint32_t len)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	uint16_t ncols = pr_uint16(&r);
	if (ncols < 2 || s->auth_found)
		return;
	for (int i = 0; i < 2; i++) {
		uint32_t n = pr_uint32(&r);
		if (r.bad)
			return;
		if (n == 0xffffffffu)
			continue; /* NULL password: the user exists but cannot log in with one */
		const uint8_t *v = pr_bytes(&r, n);
		if (!v)
			return;
		if (i == 1)
			s->auth_secret = xstrndup((const char *)v, n);
	}
	s->auth_found = true;
}

static bool task_message(struct server *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	switch (type) {
	case 'E': {
		struct proto_error e;
		if (proto_parse_error(body, len, &e))
			sv_log(LOG_LVL_WARNING, s, "internal query failed: %s (%s)", e.message,
			       e.sqlstate);
		s->task_failed = true;
		return true;
	}
	case 'S': {
		struct pkt_reader r;
		pr_init(&r, body, len);
		const char *name = pr_string(&r);
		const char *value = pr_string(&r);
		if (r.bad)
			return true;
		varcache_set(&s->vars, name, value);
		/* The client asked for this value: adopt the server's spelling of it. */
		if (s->client)
			varcache_set(&s->client->vars, name, value);
		return true;
	}
	case 'D':
		if (s->task == TASK_MASK_CATALOG)
			masking_catalog_row(s->pool->db, body, len);
		else if (s->task == TASK_AUTH_QUERY)
			auth_query_row(s, body, len);
		else if (s->task == TASK_SESSION_CHECK)
			session_check_row(s, body, len);
		return true;
	case 'C':
		if (len > 0 && body[len - 1] == '\0')
			prepared_command_tag(s, (const char *)body);
		return true;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		s->expect_ready--;
		finish_task(s);
		return false;
	default:
		return true;
	}
}

/* Data path */

static void forward_to_client(struct server *s, size_t n)
{
	struct client *c = s->client;
	if (evbuffer_remove_buffer(s->sb.in, c->sb.out, n) != (int)n)
		die("evbuffer_remove_buffer failed");
	s->pool->stats.bytes_sent += n;
}

static void ready_for_query(struct server *s, char status)
{
	struct pool *pool = s->pool;
	usec_t now = now_usec();
	s->tx_status = status;
	s->ready_time = now;
	if (s->expect_ready > 0)
		s->expect_ready--;
	pool->stats.query_count++;
	if (s->request_time)
		pool->stats.query_time += now - s->request_time;
	s->request_time = s->expect_ready > 0 ? now : 0;
	struct client *c = s->client;
	if (c) {
		c->last_activity = now;
		c->request_time = s->request_time;
		/* A transaction, explicit or a single statement, ends at an idle ReadyForQuery. */
		if (status == 'I') {
			if (c->xact_start) {
				pool->stats.xact_count++;
				pool->stats.xact_time += now - c->xact_start;
			}
			c->xact_start = s->expect_ready > 0 ? now : 0;
		}
	}
	if (s->expect_ready > 0 || status != 'I' || prepared_busy(s))
		return;
	if (pool_mode_of(pool) != POOL_MODE_SESSION)
		s->release_pending = true;
}

/* Returns false when the server or its client was closed. */
/* What masking did with a server message on its way to the client. */
enum mask_step {
	MASK_PASS,    /* forward it as usual */
	MASK_DROPPED, /* sent masked, or dropped: it is gone from the input */
	MASK_WAIT,    /* not all of it is here yet */
	MASK_CLOSE,   /* the connection must end (see refuse_result) */
};

/* Largest RowDescription read for masking: thousands of columns. */
#define MASK_MAX_ROWDESC (1024 * 1024)

/* A result that must not reach the client: an error in its place, the rest dropped. */
static void refuse_result(struct client *c, const char *why)
{
	cl_log(LOG_LVL_LOG, c, "%s", why);
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_error(&pb, "ERROR", "42501", why);
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
	masking_plan_free(c->mask_plan);
	c->mask_plan = NULL;
	c->mask_refusing = true;
	/*
	 * The client now takes its pipeline to have stopped here, as after a
	 * server error; but the server goes on with the statements behind it.
	 * Ending both connections before the pipeline's ReadyForQuery rolls
	 * its open transaction back, and tells the client the truth.
	 */
	c->mask_abort = outcome_more_follows(c);
}

static enum mask_step mask_message(struct server *s, struct client *c, uint8_t type, uint32_t len,
                                   size_t avail)
{
	struct evbuffer *in = s->sb.in;
	bool whole = avail >= PROTO_HEADER_LEN + len;
	if (c->mask_refusing) {
		if (c->mask_abort)
			return MASK_CLOSE;
		if (type == 'Z') {
			c->mask_refusing = false;
			c->mask_described = false;
			return MASK_PASS;
		}
		/* What is not the result's goes on: settings, notices, notifications. */
		if (type == 'S' || type == 'N' || type == 'A')
			return MASK_PASS;
		c->mask_skip =
		    PROTO_HEADER_LEN + len; /* dropped as it comes, never buffered whole */
		return MASK_DROPPED;
	}
	switch (type) {
	case 'T': {
		if (len > MASK_MAX_ROWDESC) {
			refuse_result(c, "masking: the row description is too large");
			return mask_message(s, c, type, len, avail);
		}
		if (!whole)
			return MASK_WAIT;
		const uint8_t *body =
		    evbuffer_pullup(in, PROTO_HEADER_LEN + len) + PROTO_HEADER_LEN;
		bool refuse;
		const char *err = NULL;
		masking_plan_free(c->mask_plan);
		c->mask_plan = masking_plan(c, body, len, &refuse, &err);
		if (outcome_describing(c)) {
			/* Its Execute's rows come later, maybe after another portal's. */
			masking_plan_free(c->mask_plan);
			c->mask_plan = NULL;
		} else {
			c->mask_described = true;
			if (c->mask_plan && c->outcome)
				masking_plan_add_columns(c->mask_plan, &c->masked_columns);
		}
		if (refuse) {
			refuse_result(c, err);
			return mask_message(s, c, type, len, avail);
		}
		return MASK_PASS;
	}
	case 'D': {
		if (!c->mask_plan && !c->mask_described) {
			if (!masking_db_has_masked(c->pool->db))
				return MASK_PASS;
			/* No RowDescription came with these rows: the statement's Describe said. */
			const uint8_t *desc;
			uint32_t desc_len;
			const int16_t *formats;
			uint16_t n_formats;
			if (!outcome_execute_columns(c, &desc, &desc_len, &formats, &n_formats)) {
				refuse_result(c,
				              "masking: rows of a result whose columns were never "
				              "described (Describe the statement or the portal)");
				return mask_message(s, c, type, len, avail);
			}
			bool refuse;
			const char *err = NULL;
			c->mask_plan = masking_plan_bound(c, desc, desc_len, formats, n_formats,
			                                  &refuse, &err);
			c->mask_described = true;
			if (refuse) {
				refuse_result(c, err);
				return mask_message(s, c, type, len, avail);
			}
			if (c->mask_plan && c->outcome)
				masking_plan_add_columns(c->mask_plan, &c->masked_columns);
		}
		if (!c->mask_plan)
			return MASK_PASS;
		if (len > (uint32_t)cf->max_masked_row_size) {
			refuse_result(c, "masking: a row is larger than max_masked_row_size");
			return mask_message(s, c, type, len, avail);
		}
		if (!whole)
			return MASK_WAIT;
		const uint8_t *body =
		    evbuffer_pullup(in, PROTO_HEADER_LEN + len) + PROTO_HEADER_LEN;
		/* One buffer for every masked row; the rows go out with the rest of the read. */
		static struct pktbuf row;
		pktbuf_reset(&row);
		const char *err = NULL;
		if (!masking_apply(c->mask_plan, body, len, &row, &err)) {
			refuse_result(c, err);
			return mask_message(s, c, type, len, avail);
		}
		evbuffer_drain(in, PROTO_HEADER_LEN + len);
		c->masked_values += (uint64_t)masking_plan_width(c->mask_plan);
		if (c->outcome)
			outcome_server_message(c, 'D', NULL, 0);
		s->pool->stats.bytes_sent += row.len;
		if (evbuffer_add(c->sb.out, row.data, row.len) != 0)
			die("out of memory queueing a masked row");
		if (row.cap > 1024 * 1024)
			pktbuf_free(&row); /* a huge row's buffer is not kept */
		return MASK_DROPPED;
	}
	case 'H':
	case 'W':
		/* COPY out says nothing of the columns it sends: not from where some are masked. */
		if (!masking_db_has_masked(c->pool->db))
			return MASK_PASS;
		refuse_result(c, "masking: COPY out of a database with masked columns is refused");
		return mask_message(s, c, type, len, avail);
	case 's':
		/* The portal goes on at the next Execute, with the same columns. */
		return MASK_PASS;
	case 'C':
	case 'E':
	case 'I':
	case 'Z':
		masking_plan_free(c->mask_plan);
		c->mask_plan = NULL;
		c->mask_described = false;
		return MASK_PASS;
	default:
		return MASK_PASS;
	}
}

static bool server_process(struct server *s)
{
	struct evbuffer *in = s->sb.in;
	while (s->client) {
		size_t avail = evbuffer_get_length(in);
		if (s->client->mask_skip > 0 && avail > 0) {
			size_t n = avail < s->client->mask_skip ? avail : s->client->mask_skip;
			evbuffer_drain(in, n);
			s->client->mask_skip -= (uint32_t)n;
			continue;
		}
		if (s->sb.pkt_remaining > 0 && avail > 0) {
			size_t n = avail < s->sb.pkt_remaining ? avail : s->sb.pkt_remaining;
			forward_to_client(s, n);
			s->sb.pkt_remaining -= n;
			continue;
		}
		if (s->prepared)
			prepared_emit(s);
		/* After the transaction's last ReadyForQuery the server goes back to the pool. */
		if (s->release_pending || avail == 0 || s->sb.pkt_remaining > 0)
			return true;
		if (pooler_suspended) {
			sbuf_pause(&s->sb);
			return true;
		}
		uint8_t type;
		uint32_t len;
		const char *err;
		enum proto_status st = sbuf_peek_header(in, PROTO_MAX_MESSAGE, &type, &len, &err);
		if (st == PROTO_INCOMPLETE)
			return true;
		if (st == PROTO_BAD) {
			server_close(s, err);
			return false;
		}
		if (s->prepared) {
			/* Some responses answer the pooler's own requests; tags can clear the
			 * cache. */
			const uint8_t *body = NULL;
			if ((type == '1' || type == '3' || type == 'C') && len <= 4096) {
				if (avail < PROTO_HEADER_LEN + len)
					return true;
				body =
				    evbuffer_pullup(in, PROTO_HEADER_LEN + len) + PROTO_HEADER_LEN;
			}
			if (!prepared_server_message(s, type, body, len)) {
				evbuffer_drain(in, PROTO_HEADER_LEN + len);
				continue;
			}
		}
		struct client *c = s->client;
		if (masking_active()) {
			enum mask_step step = mask_message(s, c, type, len, avail);
			if (step == MASK_WAIT)
				return true;
			if (step == MASK_CLOSE) {
				s->client = NULL;
				c->server = NULL;
				client_fail(
				    c, "42501",
				    "masking refused a result in the middle of a pipeline: the "
				    "connection is closed; statements after it may have run, and "
				    "a transaction they left open is rolled back");
				server_close(
				    s, "masking refused a result in the middle of a pipeline");
				return false;
			}
			if (step == MASK_DROPPED)
				continue;
		}
		if (c->outcome &&
		    (type == 'C' || type == 'E' || type == 'Z' || type == 'I' || type == 's' ||
		     type == 'D' || type == 'T' || type == 'n' || type == 't')) {
			/* A statement's answer: its tag or error is read whole when it is small; a
			 * Describe's RowDescription when masking keeps it. */
			const uint8_t *body = NULL;
			if (((type == 'C' || type == 'E' || type == 'Z') && len <= 16384) ||
			    (type == 'T' && masking_active() && len <= MASK_MAX_ROWDESC)) {
				if (avail < PROTO_HEADER_LEN + len)
					return true;
				body =
				    evbuffer_pullup(in, PROTO_HEADER_LEN + len) + PROTO_HEADER_LEN;
			}
			outcome_server_message(c, type, body, len);
		}
		if (type == 'Z' || type == 'S') {
			if (len > 4096) {
				server_close(s, "oversized message from server");
				return false;
			}
			if (avail < PROTO_HEADER_LEN + len)
				return true;
			const uint8_t *msg = evbuffer_pullup(in, PROTO_HEADER_LEN + len);
			const uint8_t *body = msg + PROTO_HEADER_LEN;
			if (type == 'Z') {
				char status = len >= 1 ? (char)body[0] : 'I';
				if (status != 'I' && pool_mode_of(s->pool) == POOL_MODE_STATEMENT) {
					s->dirty = true;
					client_fail(c, "08P01",
					            "transaction blocks not allowed in statement "
					            "pooling mode");
					return false;
				}
				if (s->client->catalog_dirty) {
					masking_catalog_invalidate();
					s->client->catalog_dirty = status != 'I';
				}
				ready_for_query(s, status);
			} else {
				struct pkt_reader r;
				pr_init(&r, body, len);
				const char *name = pr_string(&r);
				const char *value = pr_string(&r);
				if (!r.bad) {
					varcache_set(&s->vars, name, value);
					varcache_set(&s->client->vars, name, value);
				}
			}
		}
		s->sb.pkt_remaining = PROTO_HEADER_LEN + len;
	}
	return true;
}

/* Messages that arrive while no client is linked and no task runs. */
static bool idle_message(struct server *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	switch (type) {
	case 'S': {
		struct pkt_reader r;
		pr_init(&r, body, len);
		const char *name = pr_string(&r);
		const char *value = pr_string(&r);
		if (!r.bad)
			varcache_set(&s->vars, name, value);
		return true;
	}
	case 'N':
	case 'A':
		return true;
	case 'E': {
		struct proto_error e;
		char reason[600];
		if (proto_parse_error(body, len, &e))
			snprintf(reason, sizeof(reason), "server error while idle: %s", e.message);
		else
			snprintf(reason, sizeof(reason), "server error while idle");
		server_close(s, reason);
		return false;
	}
	default:
		server_close(s, "unexpected message from idle server");
		return false;
	}
}

/* Walks whole messages for login, tasks and idle servers. */
static void process_whole(struct server *s)
{
	for (;;) {
		/* Closed, or gone on to the next host: the old input buffer is gone. */
		if (s->state == SV_CLOSED || s->state == SV_CONNECTING)
			return;
		struct evbuffer *in = s->sb.in;
		if (s->client && s->task == TASK_NONE && s->state == SV_ACTIVE)
			return; /* linked: the streaming path takes over */
		uint8_t type;
		uint32_t len;
		const char *err;
		/* Nothing the pooler reads itself is large; a big one means a desync. */
		enum proto_status st = sbuf_peek_header(in, 65536, &type, &len, &err);
		if (st == PROTO_INCOMPLETE)
			return;
		size_t avail = evbuffer_get_length(in);
		if (st == PROTO_BAD) {
			if (s->state == SV_LOGIN)
				login_failed(s, "08P01", err);
			else
				server_close(s, err);
			return;
		}
		if (avail < PROTO_HEADER_LEN + len)
			return;
		const uint8_t *msg = evbuffer_pullup(in, PROTO_HEADER_LEN + len);
		uint8_t *copy = xmalloc(len + 1);
		memcpy(copy, msg + PROTO_HEADER_LEN, len);
		copy[len] = 0;
		evbuffer_drain(in, PROTO_HEADER_LEN + len);
		bool go_on;
		if (s->state == SV_LOGIN)
			go_on = login_message(s, type, copy, len);
		else if (s->task != TASK_NONE)
			go_on = task_message(s, type, copy, len) || s->state != SV_CLOSED;
		else
			go_on = idle_message(s, type, copy, len);
		free(copy);
		if (!go_on)
			return;
	}
}

static void server_on_read(struct server *s)
{
	if (s->tls_answer_pending) {
		read_tls_answer(s);
		return;
	}
	if (s->state == SV_ACTIVE && s->client && s->task == TASK_NONE) {
		struct client *c = s->client;
		if (!server_process(s))
			return;
		if (!sbuf_flush(&c->sb))
			return;
		if (s->release_pending) {
			pool_release_server(s);
			if (s->state != SV_CLOSED && s->state != SV_ACTIVE)
				process_whole(s);
			return;
		}
		if (sbuf_out_len(&c->sb) > SBUF_OUT_HIGH) {
			sbuf_pause(&s->sb);
			c->sb.notify_drain = true;
		}
		return;
	}
	process_whole(s);
	/* A task that just linked a client may have left results for it. */
	if (s->state == SV_ACTIVE && s->client && s->task == TASK_NONE &&
	    evbuffer_get_length(s->sb.in) > 0)
		server_on_read(s);
}

static void server_on_event(struct sbuf *sb, enum sbuf_event ev, void *arg)
{
	struct server *s = arg;
	switch (ev) {
	case SBUF_EV_READ:
		server_on_read(s);
		break;
	case SBUF_EV_CONNECTED:
		begin_login(s);
		break;
	case SBUF_EV_TLS_READY:
		send_startup(s);
		break;
	case SBUF_EV_TLS_FAILED: {
		char why[256], msg[320];
		snprintf(msg, sizeof(msg), "TLS handshake with the server failed: %s",
		         sbuf_tls_error(sb, why, sizeof(why)));
		host_failed(s, "08006", msg);
		break;
	}
	case SBUF_EV_CONNECT_FAILED: {
		if (try_next_address(s))
			break;
		char msg[256];
		snprintf(msg, sizeof(msg), "could not connect to server: %s", strerror(sb->error));
		host_failed(s, "08006", msg);
		break;
	}
	case SBUF_EV_EOF:
		if (s->state == SV_LOGIN)
			host_failed(s, "08006", "server closed the connection during login");
		else
			server_close(s, sb->error ? strerror(sb->error)
			                          : "server closed the connection");
		break;
	case SBUF_EV_DRAINED:
		if (s->client)
			client_resume_reading(s->client);
		break;
	}
}

void server_send_cancel(struct server *s)
{
	if (!s->addr_len || !s->backend_pid)
		return;
	cancel_send((const struct sockaddr *)&s->addr, s->addr_len, s->backend_pid, s->backend_key,
	            0);
}
