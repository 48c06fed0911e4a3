/*
 * The client side of a connection.
 *
 * Login: read the startup packet (answering an SSLRequest with 'S' and a
 * TLS handshake when client_tls_sslmode allows it on TCP, with 'N'
 * otherwise, a GSSENCRequest always with 'N', and handing CancelRequest to
 * cancel.c), find the database, run the authentication exchange, then
 * send the pool's welcome parameters.
 *
 * Data path: client_on_read() walks the input one message at a time. A
 * message either streams to the linked server (a large COPY chunk never
 * needs to be whole in memory), or is consumed here. A client with no
 * server asks its pool for one and stops reading until it is linked.
 */
#include "client.h"
#include "admin.h"
#include "approvals.h"
#include "audit.h"
#include "auth.h"
#include "cancel.h"
#include "config.h"
#include "log.h"
#include "masking.h"
#include "outcome.h"
#include "params.h"
#include "pool.h"
#include "policy.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "server.h"
#include "tls.h"
#include "token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct list_node all_clients = LIST_INIT(all_clients);
int client_count;

struct list_node login_clients = LIST_INIT(login_clients);
static uint64_t next_client_id = 1;

static void client_on_event(struct sbuf *sb, enum sbuf_event ev, void *arg);
static void free_client(struct client *c);

const char *client_tag(const struct client *c)
{
	static char buf[512];
	snprintf(buf, sizeof(buf), "C-%llu: %s/%s@%s:%d", (unsigned long long)c->id,
	         c->dbname ? c->dbname : "(nodb)", c->user ? c->user : "(nouser)", c->addr_str,
	         c->port);
	return buf;
}

static void describe_addr(struct client *c, bool is_unix)
{
	if (is_unix) {
		strlcpy_s(c->addr_str, "unix", sizeof(c->addr_str));
		c->port = cf->listen_port;
		return;
	}
	if (c->addr.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&c->addr;
		inet_ntop(AF_INET, &in->sin_addr, c->addr_str, sizeof(c->addr_str));
		c->port = ntohs(in->sin_port);
	} else if (c->addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, c->addr_str, sizeof(c->addr_str));
		c->port = ntohs(in6->sin6_port);
	}
}

void client_accept(int fd, const struct sockaddr *sa, socklen_t len, bool is_unix)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->id = next_client_id++;
	c->state = CL_LOGIN;
	memcpy(&c->addr, sa, len < sizeof(c->addr) ? len : sizeof(c->addr));
	c->addr_len = len;
	describe_addr(c, is_unix);
	c->connect_time = c->last_activity = now_usec();
	list_init(&c->node);
	list_append(&login_clients, &c->node);
	list_append(&all_clients, &c->all_node);
	client_count++;
	sbuf_init(&c->sb, client_on_event, c);
	if (!sbuf_accept(&c->sb, fd, is_unix)) {
		close(fd);
		client_close(c, "accept failed");
	}
}

struct client *client_adopt(int fd, const char *user, const char *dbname)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->id = next_client_id++;
	c->state = CL_IDLE;
	c->user = xstrdup(user);
	c->dbname = xstrdup(dbname);
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	bool is_unix = getsockname(fd, (struct sockaddr *)&local, &local_len) == 0 &&
	               local.ss_family == AF_UNIX;
	c->addr_len = sizeof(c->addr);
	if (getpeername(fd, (struct sockaddr *)&c->addr, &c->addr_len) != 0)
		c->addr_len = 0;
	describe_addr(c, is_unix);
	c->connect_time = c->last_activity = now_usec();
	list_init(&c->node);
	list_append(&all_clients, &c->all_node);
	client_count++;
	sbuf_init(&c->sb, client_on_event, c);
	if (!sbuf_accept(&c->sb, fd, is_unix)) {
		close(fd);
		client_close(c, "could not adopt the socket");
		return NULL;
	}
	return c;
}

/*
 * Freed from the loop, never inside the call chain that closed it: callers
 * up the stack may still hold the pointer and check c->state.
 */
static struct list_node closed_clients = LIST_INIT(closed_clients);

void client_reap(void)
{
	struct list_node *it;
	while ((it = list_pop(&closed_clients))) {
		struct client *c = container_of(it, struct client, node);
		free_client(c);
	}
}

static void free_client(struct client *c)
{
	list_del(&c->all_node);
	auth_free(c);
	free(c->admin_wait_db);
	varcache_free(&c->vars);
	prepared_client_free(c);
	outcome_client_free(c);
	masking_plan_free(c->mask_plan);
	free(c->masked_columns);
	free(c->approval_refusal);
	policy_client_gone(c);
	if (c->identity) {
		token_identity_clear(c->identity);
		free(c->identity);
	}
	free(c->user);
	free(c->dbname);
	free(c);
}

void client_set_identity(struct client *c, struct token_identity *id)
{
	if (c->identity) {
		token_identity_clear(c->identity);
		free(c->identity);
	}
	c->identity = id;
}

void client_close(struct client *c, const char *reason)
{
	if (c->state == CL_CLOSED)
		return;
	if (cf->log_disconnections && c->state != CL_LOGIN)
		cl_log(LOG_LVL_LOG, c, "closing because: %s (age=%llds)", reason,
		       (long long)((now_usec() - c->connect_time) / USEC_PER_SEC));
	else
		cl_log(LOG_LVL_DEBUG, c, "closing because: %s", reason);
	if (c->auth_server) {
		c->auth_server->auth_client = NULL;
		c->auth_server = NULL;
	}
	if (c->approval_id) {
		/* Nobody is left to run it: it leaves SHOW APPROVALS. */
		approvals_withdraw(c->approval_id, "client disconnected");
		c->approval_id = 0;
	}
	if (c->pool) {
		policy_disconnect(c);
		audit_disconnect(c);
		pool_client_gone(c);
	}
	if (c->account) {
		c->account->client_count--;
		c->account = NULL;
	}
	c->state = CL_CLOSED;
	/* Whatever we queued (an error message) gets one last chance to leave. */
	if (sbuf_is_open(&c->sb) && sbuf_out_len(&c->sb) > 0)
		sbuf_flush(&c->sb);
	sbuf_close(&c->sb);
	/*
	 * It stays on all_clients until reaped: loops over that list may hold
	 * a pointer to it, and skip it by its state meanwhile.
	 */
	list_del(&c->node);
	client_count--;
	list_append(&closed_clients, &c->node);
	pooler_schedule_reap();
	pooler_check_shutdown();
}

static void send_error(struct client *c, const char *severity, const char *sqlstate,
                       const char *msg)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_error(&pb, severity, sqlstate, msg);
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

void client_fail(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cf->log_pooler_errors)
		cl_log(LOG_LVL_WARNING, c, "pooler error: %s", msg);
	send_error(c, "FATAL", sqlstate, msg);
	client_close(c, msg);
}

/* Startup phase */

/*
 * The "options" parameter (PGOPTIONS): only "-c name=value" settings, with
 * backslash escapes, as PgBouncer accepts; each must be tracked or ignored.
 */
static bool handle_options(struct client *c, const char *options)
{
	const char *p = options;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return true;
		if (strncmp(p, "-c", 2) != 0)
			break;
		p += 2;
		while (*p == ' ' || *p == '\t')
			p++;
		char arg[400];
		size_t n = 0;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= sizeof(arg)) {
				client_fail(
				    c, "08P01",
				    "unsupported options startup parameter: parameter too long");
				return false;
			}
			arg[n++] = *p++;
		}
		arg[n] = '\0';
		char *eq = strchr(arg, '=');
		if (!eq)
			break;
		*eq = '\0';
		if (varcache_index(arg) >= 0) {
			varcache_set(&c->vars, arg, eq + 1);
		} else if (!config_list_contains(cf->ignore_startup_parameters, arg) &&
		           !config_list_contains(cf->ignore_startup_parameters, "options")) {
			client_fail(c, "08P01", "unsupported startup parameter in options: %s",
			            arg);
			return false;
		}
	}
	client_fail(c, "08P01",
	            "unsupported options startup parameter: only '-c config=val' is allowed");
	return false;
}

static bool handle_startup_param(struct client *c, const char *name, const char *value)
{
	if (strcmp(name, "user") == 0) {
		free(c->user);
		c->user = xstrdup(value);
	} else if (strcmp(name, "database") == 0) {
		free(c->dbname);
		c->dbname = xstrdup(value);
	} else if (strcmp(name, "options") == 0) {
		return handle_options(c, value);
	} else if (strncmp(name, "_pq_.", 5) == 0) {
		/* Protocol extensions we do not know are declined via NegotiateProtocolVersion. */
	} else if (varcache_set(&c->vars, name, value)) {
		/* tracked: applied to servers with SET */
	} else if (varcache_index(name) >= 0) {
		/* tracked, same value */
	} else if (config_list_contains(cf->ignore_startup_parameters, name)) {
		/* explicitly ignored */
	} else if (strcmp(name, "replication") == 0) {
		client_fail(c, "08P01", "replication connections are not supported");
		return false;
	} else {
		client_fail(c, "08P01", "unsupported startup parameter: %s", name);
		return false;
	}
	return true;
}

static void handle_startup(struct client *c, const uint8_t *pkt, uint32_t len)
{
	struct startup_param params[PROTO_MAX_PARAMS];
	int n;
	const char *err;
	uint32_t version =
	    (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 | pkt[7];
	if (version >> 16 != 3) {
		client_fail(c, "08P01", "unsupported frontend protocol %u.%u: server supports 3.0",
		            version >> 16, version & 0xffff);
		return;
	}
	if (!proto_parse_startup_params(pkt + 8, len - 8, params, PROTO_MAX_PARAMS, &n, &err)) {
		client_fail(c, "08P01", "%s", err);
		return;
	}
	const char *unknown[PROTO_MAX_PARAMS];
	int n_unknown = 0;
	for (int i = 0; i < n; i++) {
		if (strncmp(params[i].name, "_pq_.", 5) == 0)
			unknown[n_unknown++] = params[i].name;
		if (!handle_startup_param(c, params[i].name, params[i].value))
			return;
	}
	if (!c->user || !*c->user) {
		client_fail(c, "08P01", "no username supplied");
		return;
	}
	if (!c->dbname || !*c->dbname) {
		free(c->dbname);
		c->dbname = xstrdup(c->user);
	}
	if (cf->application_name_add_host) {
		int i = varcache_index("application_name");
		const char *app = varcache_get(&c->vars, i);
		char *name = xasprintf("%s - %s:%d", app ? app : "app", c->addr_str, c->port);
		varcache_set(&c->vars, "application_name", name);
		free(name);
	}
	if ((version & 0xffff) != 0 || n_unknown > 0) {
		struct pktbuf pb;
		pktbuf_init(&pb);
		proto_build_negotiate_version(&pb, 0, unknown, n_unknown);
		sbuf_send(&c->sb, pb.data, pb.len);
		pktbuf_free(&pb);
	}
	/* Unix sockets are local: TLS is neither offered nor demanded there, as in PgBouncer. */
	if (!c->sb.is_unix && !sbuf_is_tls(&c->sb) && cf->client_tls_sslmode >= TLS_MODE_REQUIRE) {
		cl_log(LOG_LVL_LOG, c, "login failed: TLS required, client used clear text");
		client_fail(c, "28000", "SSL required");
		return;
	}
	if (client_count > cf->max_client_conn) {
		/* PgBouncer's text; 53300 (too_many_connections) as PostgreSQL would say. */
		client_fail(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (cf->log_connections) {
		char tls[128] = "no";
		if (sbuf_is_tls(&c->sb))
			tls_describe(c->sb.ssl, tls, sizeof(tls));
		cl_log(LOG_LVL_LOG, c, "login attempt: db=%s user=%s tls=%s", c->dbname, c->user,
		       tls);
	}
	auth_start(c);
}

/*
 * SSLRequest or GSSENCRequest. 'S' starts the server side of a TLS
 * handshake; anything the client sent behind its request was sent in clear
 * text before the handshake and would be read as if it had come through
 * TLS (CVE-2021-23214), so it ends the connection. Returns false once the
 * client is gone.
 */
static bool answer_encryption_request(struct client *c, bool wants_tls)
{
	if (sbuf_is_tls(&c->sb)) {
		client_fail(c, "08P01", "encryption requested again inside TLS");
		return false;
	}
	/* 'N': the client may go on in clear text or give up. */
	if (!wants_tls || c->sb.is_unix || cf->client_tls_sslmode == TLS_MODE_DISABLE)
		return sbuf_send(&c->sb, "N", 1);
	if (evbuffer_get_length(c->sb.in) > 0) {
		cl_log(LOG_LVL_WARNING, c, "unencrypted data after SSLRequest: closing");
		client_fail(c, "08P01", "received unencrypted data after SSL request");
		return false;
	}
	if (!sbuf_send(&c->sb, "S", 1))
		return false;
	/* sbuf_start_tls() also refuses an 'S' the kernel did not take at once. */
	struct ssl_st *ssl = tls_client_session();
	if (!ssl || !sbuf_start_tls(&c->sb, ssl)) {
		client_close(c, "could not start TLS");
		return false;
	}
	return true;
}

/* Reads the untyped startup-phase packets. Returns false once the client is gone. */
static bool read_startup(struct client *c)
{
	struct evbuffer *in = c->sb.in;
	for (;;) {
		uint8_t hdr[8];
		size_t avail = evbuffer_get_length(in);
		if (evbuffer_copyout(in, hdr, avail < 8 ? avail : 8) < 0)
			return false;
		uint32_t len, code;
		const char *err;
		switch (proto_read_startup_header(hdr, avail, &len, &code, &err)) {
		case PROTO_INCOMPLETE:
			return true;
		case PROTO_BAD:
			client_fail(c, "08P01", "%s", err);
			return false;
		case PROTO_OK:
			break;
		}
		if (avail < len)
			return true;
		const uint8_t *pkt = evbuffer_pullup(in, len);
		if (code == PROTO_SSL_CODE || code == PROTO_GSSENC_CODE) {
			if (len != 8) {
				client_fail(c, "08P01", "invalid length of encryption request");
				return false;
			}
			evbuffer_drain(in, len);
			if (!answer_encryption_request(c, code == PROTO_SSL_CODE))
				return false;
			if (sbuf_is_tls(&c->sb))
				return true; /* the startup packet comes through the handshake */
			continue;
		}
		if (code == PROTO_CANCEL_CODE) {
			if (len == 16)
				cancel_request(pkt + 8, 8);
			client_close(c, "cancel request");
			return false;
		}
		uint8_t *copy = xmalloc(len);
		memcpy(copy, pkt, len);
		evbuffer_drain(in, len);
		handle_startup(c, copy, len);
		free(copy);
		return c->state != CL_CLOSED;
	}
}

/* Typed messages during authentication. */
static void read_login(struct client *c)
{
	struct evbuffer *in = c->sb.in;
	while (c->state == CL_LOGIN && c->auth) {
		uint8_t type;
		uint32_t body_len;
		const char *err;
		enum proto_status st =
		    sbuf_peek_header(in, PROTO_MAX_STARTUP, &type, &body_len, &err);
		if (st == PROTO_INCOMPLETE)
			return;
		if (st == PROTO_BAD) {
			client_fail(c, "08P01", "%s during authentication", err);
			return;
		}
		if (evbuffer_get_length(in) < PROTO_HEADER_LEN + body_len)
			return;
		if (type != 'p') {
			client_fail(c, "08P01", "expected password response, got message type %d",
			            type);
			return;
		}
		const uint8_t *msg = evbuffer_pullup(in, PROTO_HEADER_LEN + body_len);
		uint8_t *body = xmalloc(body_len + 1);
		memcpy(body, msg + PROTO_HEADER_LEN, body_len);
		body[body_len] = 0;
		evbuffer_drain(in, PROTO_HEADER_LEN + body_len);
		auth_handle_password(c, body, body_len);
		free(body);
	}
}

void client_auth_done(struct client *c)
{
	if (cf->log_connections)
		cl_log(LOG_LVL_LOG, c, "login ok");
	/* identity_propagation: who this is, in what PostgreSQL's logs and pgaudit see. */
	const char *who = c->identity ? c->identity->identity : NULL;
	if (strcmp(cf->identity_propagation, "guc") == 0)
		varcache_set(&c->vars, VARCACHE_IDENTITY, who ? who : "");
	else if (who && strcmp(cf->identity_propagation, "application_name") == 0)
		varcache_set(&c->vars, "application_name", who);
	/* pool_client_logged_in() moves it to its pool and may call client_welcome(). */
	c->state = CL_WELCOME;
	list_del(&c->node);
	pool_client_logged_in(c->pool, c);
}

void client_welcome(struct client *c)
{
	struct pool *pool = c->pool;
	/* Parameters the client did not set default to what the server reported. */
	for (int i = 0; i < pool->welcome->count; i++) {
		int v = varcache_index(pool->welcome->names[i]);
		if (v >= 0 && !varcache_get(&c->vars, v))
			varcache_set(&c->vars, pool->welcome->names[i], pool->welcome->values[i]);
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_auth(&pb, AUTH_REQ_OK, NULL, 0);
	params_build(pool->welcome, &c->vars, &pb);
	cancel_assign_key(c);
	proto_build_backend_key(&pb, c->cancel_pid, c->cancel_key);
	if (cf->login_notify_message)
		proto_build_notice(&pb, "00000", cf->login_notify_message);
	proto_build_ready(&pb, 'I');
	c->state = CL_IDLE;
	c->last_activity = now_usec();
	bool ok = sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
	if (ok)
		sbuf_resume(&c->sb);
}

/* Data path */

/* Moves up to n bytes of the current message to the server. */
static void forward(struct client *c, size_t n)
{
	struct server *s = c->server;
	if (evbuffer_remove_buffer(c->sb.in, s->sb.out, n) != (int)n)
		die("evbuffer_remove_buffer failed");
	s->pool->stats.bytes_received += n;
}

static void send_ready_idle(struct client *c)
{
	static const uint8_t ready_idle[] = {'Z', 0, 0, 0, 5, 'I'};
	sbuf_send(&c->sb, ready_idle, sizeof(ready_idle));
}

/* Replaces the message at the head of the input (the one being handled). */
static void replace_head(struct client *c, uint32_t old_len, const struct pktbuf *pb)
{
	evbuffer_drain(c->sb.in, old_len);
	if (evbuffer_prepend(c->sb.in, pb->data, pb->len) != 0)
		die("out of memory replacing a message");
}

/*
 * A refused statement or Bind: answered here when no server is linked
 * (nothing to keep in step), and otherwise replaced by a statement that
 * makes the server raise the error, so that it comes in order and aborts
 * a transaction as PostgreSQL's would.
 */
static void refuse(struct client *c, uint8_t type, uint32_t total, const struct policy_result *r)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	if (!c->server) {
		evbuffer_drain(c->sb.in, total);
		proto_build_error(&pb, "ERROR", r->sqlstate, r->message);
		sbuf_send(&c->sb, pb.data, pb.len);
		if (type == 'Q' || type == 'F')
			send_ready_idle(c);
		else
			c->skip_to_sync = true;
	} else {
		char *raise = policy_raise_sql(r->sqlstate, r->message);
		if (type == 'Q' || type == 'F') {
			proto_build_query(&pb, raise);
			replace_head(c, total, &pb);
			c->policy_checked = true;
		} else {
			evbuffer_drain(c->sb.in, total);
			prepared_raise(c, c->server, raise);
		}
		free(raise);
	}
	pktbuf_free(&pb);
}

/* Input a held client may send behind its held statement before we stop reading it. */
#define HOLD_MAX_INPUT (1024 * 1024)

/* The answer to a held statement: it runs, or is refused, on the next turn of the loop. */
static void approval_done(void *owner, const struct approval_answer *a)
{
	struct client *c = owner;
	c->approval_id = 0;
	long long waited = (long long)(a->waited / USEC_PER_SEC);
	switch (a->outcome) {
	case APPROVAL_APPROVED:
		cl_log(LOG_LVL_LOG, c, "approval %llu: approved by %s after %llds",
		       (unsigned long long)a->id, a->approver, waited);
		c->approval_passed = true;
		break;
	case APPROVAL_DENIED:
		cl_log(LOG_LVL_LOG, c, "approval %llu: denied by %s after %llds",
		       (unsigned long long)a->id, a->approver, waited);
		c->approval_refusal =
		    xasprintf("statement denied by %s (approval %llu)%s%s", a->approver,
		              (unsigned long long)a->id, a->reason && *a->reason ? ": " : "",
		              a->reason ? a->reason : "");
		strlcpy_s(c->approval_sqlstate, "42501", sizeof(c->approval_sqlstate));
		break;
	case APPROVAL_TIMED_OUT:
		cl_log(LOG_LVL_LOG, c, "approval %llu: nobody answered within %llds",
		       (unsigned long long)a->id, waited);
		c->approval_refusal =
		    xasprintf("canceling statement: approval %llu was not given within %lld s (%s)",
		              (unsigned long long)a->id, waited, a->reason ? a->reason : "");
		strlcpy_s(c->approval_sqlstate, "57014", sizeof(c->approval_sqlstate));
		break;
	case APPROVAL_CANCELLED:
		/* The process stops or hands over: this hold cannot move with the socket. */
		client_fail(c, "57P01", "approval %llu cancelled: %s", (unsigned long long)a->id,
		            a->reason ? a->reason : "pgsieve is shutting down");
		return;
	}
	c->last_activity = now_usec();
	client_resume_reading(c);
}

/*
 * POLICY_APPROVE: the message stays at the head of the input and the
 * client is read no further until someone answers; the client is told
 * at once why it waits. False (and r a denial) when it cannot be held.
 */
static bool hold_for_approval(struct client *c, const char *sql, size_t sql_len,
                              struct policy_result *r)
{
	usec_t timeout = config_approval_timeout(cf);
	if (r->ttl > 0 && (usec_t)r->ttl * USEC_PER_SEC < timeout)
		timeout = (usec_t)r->ttl * USEC_PER_SEC;
	/* A [users] idle_transaction_timeout (of the pool's login user, as the janitor's). */
	const struct user_config *pu = cf->users ? config_find_user(cf, c->pool->user->name) : NULL;
	if (pu && pu->idle_transaction_timeout > 0 && timeout >= pu->idle_transaction_timeout)
		timeout =
		    pu->idle_transaction_timeout / 2 > 0 ? pu->idle_transaction_timeout / 2 : 1;
	char *text = xstrndup(sql, sql_len);
	struct approval_request req = {
	    .session = c->id,
	    .database = c->dbname,
	    .user = c->user,
	    .identity = c->identity ? c->identity->identity : NULL,
	    .client_addr = c->addr_str,
	    .fingerprint = r->fingerprint,
	    .statement = text,
	    .reason = r->message ? r->message : "",
	    .script = r->script,
	    .approvers = r->approvers,
	    .timeout = timeout,
	};
	uint64_t id = 0;
	char *err = NULL;
	const char *sqlstate = "53300";
	bool held = approvals_request(&req, approval_done, c, &id, &err, &sqlstate);
	free(text);
	if (!held) {
		cl_log(LOG_LVL_WARNING, c, "statement not held: %s", err);
		free(r->message);
		r->message = err;
		strlcpy_s(r->sqlstate, sqlstate, sizeof(r->sqlstate));
		r->decision = POLICY_DENIED;
		return false;
	}
	c->approval_id = id;
	cl_log(LOG_LVL_LOG, c, "statement held for approval %llu: %s", (unsigned long long)id,
	       r->message ? r->message : "");
	/* A server linked only for the check (strict masking reading the catalog) goes
	 * back: outside a transaction a hold keeps none. */
	struct server *s = c->server;
	if (s && c->linked_for_check && pool_mode_of(c->pool) != POOL_MODE_SESSION &&
	    s->tx_status == 'I' && s->expect_ready == 0 && s->task == TASK_NONE)
		pool_release_server(s);
	char *notice = xasprintf("statement held for approval %llu: %s (waiting up to %lld s for "
	                         "APPROVE %llu or DENY %llu in the admin console)",
	                         (unsigned long long)id, r->message ? r->message : "",
	                         (long long)(timeout / USEC_PER_SEC), (unsigned long long)id,
	                         (unsigned long long)id);
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_notice(&pb, "00000", notice);
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
	free(notice);
	return true;
}

void client_cancel_held(struct client *c)
{
	if (!c->approval_id)
		return;
	cl_log(LOG_LVL_LOG, c, "cancel request while held for approval %llu: withdrawn",
	       (unsigned long long)c->approval_id);
	approvals_withdraw(c->approval_id, "cancel request");
	c->approval_id = 0;
	free(c->approval_refusal);
	c->approval_refusal = xstrdup("canceling statement due to user request");
	strlcpy_s(c->approval_sqlstate, "57014", sizeof(c->approval_sqlstate));
	client_resume_reading(c);
}

/*
 * The policy's verdict on a Query or Parse whose whole message is at the
 * head of the input. PASS leaves it; a rewrite replaces it; a denial is
 * refused.
 */
/*
 * A FunctionCall names its function by OID, with no statement text for
 * the policy to see: where policies run, it is refused, as a statement
 * the policy could not analyse would be.
 */
static void refuse_function_call(struct client *c, uint32_t body_len)
{
	struct policy_result r = {.decision = POLICY_DENIED, .sqlstate = "42501"};
	r.message = xstrdup("FunctionCall (the fast-path protocol) is refused: policies cannot "
	                    "see what it runs; call the function in a query");
	cl_log(LOG_LVL_LOG, c, "policy: %s", r.message);
	audit_denied(c, "", 0, false, "statement", NULL, r.sqlstate);
	refuse(c, 'F', PROTO_HEADER_LEN + body_len, &r);
	policy_result_clear(&r);
}

static void check_statement(struct client *c, uint8_t type, uint32_t body_len)
{
	uint32_t total = PROTO_HEADER_LEN + body_len;
	const uint8_t *msg = evbuffer_pullup(c->sb.in, total);
	const char *body = (const char *)msg + PROTO_HEADER_LEN;
	size_t name_len = type == 'P' ? strnlen(body, body_len) + 1 : 0;
	const char *sql = body + name_len;
	size_t sql_len = strnlen(sql, body_len - (name_len < body_len ? name_len : body_len));
	bool extended = type == 'P';
	struct policy_result r;
	bool answered = c->approval_refusal != NULL;
	if (answered) {
		/* Held, then denied or timed out: the answer takes the verdict's place. */
		memset(&r, 0, sizeof(r));
		r.decision = POLICY_DENIED;
		r.message = c->approval_refusal;
		c->approval_refusal = NULL;
		strlcpy_s(r.sqlstate, c->approval_sqlstate, sizeof(r.sqlstate));
		r.script = xstrdup("approval");
	} else {
		policy_check(c, sql, sql_len, extended, &r);
		c->approval_passed = false;
	}
	if (r.decision == POLICY_APPROVE && hold_for_approval(c, sql, sql_len, &r)) {
		policy_result_clear(&r);
		return; /* the message stays where it is until someone answers */
	}
	if (r.decision == POLICY_DENIED)
		audit_denied(c, sql, sql_len, extended, answered ? "approval" : "statement",
		             r.script, r.sqlstate);
	if (outcome_tracking()) {
		struct checked_stmt *st = NULL;
		if (r.decision != POLICY_DENIED)
			st = checked_stmt_new(sql, sql_len, extended,
			                      r.decision == POLICY_REWRITTEN ? r.sql : NULL,
			                      r.script);
		if (st)
			st->multi = r.multi;
		if (extended)
			outcome_parsed(c, body, st);
		else
			outcome_query_checked(c, st);
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	switch (r.decision) {
	case POLICY_PASS:
		c->policy_checked = true;
		break;
	case POLICY_REWRITTEN:
		pktbuf_begin(&pb, type);
		if (extended)
			pktbuf_put_string(&pb, body);
		pktbuf_put_string(&pb, r.sql);
		if (extended) {
			size_t after =
			    name_len + sql_len + 1; /* parameter types follow the query */
			if (after < body_len)
				pktbuf_put_bytes(&pb, body + after, body_len - after);
		}
		pktbuf_end(&pb);
		replace_head(c, total, &pb);
		c->policy_checked = true;
		break;
	case POLICY_APPROVE: /* not here: held, or made a denial by hold_for_approval() */
	case POLICY_DENIED:
		refuse(c, type, total, &r);
		break;
	}
	pktbuf_free(&pb);
	policy_result_clear(&r);
}

/* A Bind: the bind phase sees its parameters, and its portal now runs the statement. */
static void check_bind(struct client *c, uint32_t body_len)
{
	uint32_t total = PROTO_HEADER_LEN + body_len;
	const uint8_t *msg = evbuffer_pullup(c->sb.in, total);
	struct pkt_reader rd;
	pr_init(&rd, msg + PROTO_HEADER_LEN, body_len);
	const char *portal = pr_string(&rd);
	const char *name = pr_string(&rd);
	if (rd.bad) {
		c->policy_checked = true; /* the server will say what is wrong with it */
		return;
	}
	struct checked_stmt *st = outcome_statement(c, name);
	struct policy_result r = {.decision = POLICY_PASS};
	/* Parameters (for the bind phase), then the result formats (for masking). */
	uint16_t n_formats = pr_uint16(&rd);
	const uint8_t *formats = pr_bytes(&rd, (size_t)n_formats * 2);
	uint16_t n_params = pr_uint16(&rd);
	struct bind_param *params = xcalloc(n_params ? n_params : 1, sizeof(*params));
	for (uint16_t i = 0; i < n_params && !rd.bad; i++) {
		uint16_t f = n_formats == 1 ? 0 : i;
		params[i].binary =
		    f < n_formats && formats && ((formats[2 * f] << 8) | formats[2 * f + 1]) == 1;
		params[i].len = (int32_t)pr_uint32(&rd);
		if (params[i].len > 0)
			params[i].value = pr_bytes(&rd, (size_t)params[i].len);
	}
	uint16_t n_results = pr_uint16(&rd);
	const uint8_t *results = pr_bytes(&rd, (size_t)n_results * 2);
	int16_t *result_formats = xcalloc(n_results ? n_results : 1, sizeof(int16_t));
	for (uint16_t i = 0; results && i < n_results; i++)
		result_formats[i] = (int16_t)((results[2 * i] << 8) | results[2 * i + 1]);
	if (rd.bad)
		n_results = 0; /* malformed: the server refuses it */
	if (st && policy_wants_bind()) {
		if (rd.bad || (n_formats > 1 && n_formats != n_params)) {
			/* Malformed: the server refuses it, but the scripts cannot see it either.
			 */
			r.decision = POLICY_DENIED;
			r.message = xstrdup("statement denied: its Bind message is malformed");
			strlcpy_s(r.sqlstate, "08P01", sizeof(r.sqlstate));
		} else {
			policy_bind(c, st, params, n_params, &r);
		}
	}
	free(params);
	if (r.decision == POLICY_DENIED) {
		audit_denied(c, st->text, strlen(st->text), true, "bind", r.script, r.sqlstate);
		outcome_bound(c, portal, NULL, NULL, 0);
		refuse(c, 'B', total, &r);
	} else {
		outcome_bound(c, portal, st, result_formats, n_results);
		c->policy_checked = true;
	}
	free(result_formats);
	policy_result_clear(&r);
}

/* A Close: the name it closes no longer runs anything. */
static void note_close(struct client *c, uint32_t body_len)
{
	const uint8_t *msg = evbuffer_pullup(c->sb.in, PROTO_HEADER_LEN + body_len);
	struct pkt_reader rd;
	pr_init(&rd, msg + PROTO_HEADER_LEN, body_len);
	uint8_t kind = pr_byte(&rd);
	const char *name = pr_string(&rd);
	if (!rd.bad && (kind == 'S' || kind == 'P'))
		outcome_closed(c, (char)kind, name);
	c->policy_checked = true;
}

/*
 * oidc_enforce_expiry: a session whose token has expired ends at its next
 * request between transactions (never in the middle of one).
 */
static bool token_expired(const struct client *c)
{
	if (!c->identity || !c->identity->exp || !cf->oidc_enforce_expiry)
		return false;
	const struct server *s = c->server;
	if (s && (s->tx_status != 'I' || s->expect_ready > 0))
		return false;
	return (int64_t)time(NULL) > (int64_t)c->identity->exp + cf->oidc_leeway / USEC_PER_SEC;
}

/* A server for c: true when linked now; false when c waits for one, or is gone. */
static bool request_server(struct client *c)
{
	return pool_request_server(c) == LINK_NOW && c->state != CL_CLOSED;
}

static bool client_process(struct client *c)
{
	struct evbuffer *in = c->sb.in;
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			return true;
		if (c->sb.pkt_remaining > 0) {
			size_t n = avail < c->sb.pkt_remaining ? avail : c->sb.pkt_remaining;
			forward(c, n);
			c->sb.pkt_remaining -= n;
			continue;
		}
		if (c->approval_id) {
			/*
			 * Held: nothing more is processed, but the socket is still read
			 * (a client that goes away must leave SHOW APPROVALS), up to a
			 * bound.
			 */
			if (avail > HOLD_MAX_INPUT)
				sbuf_pause(&c->sb);
			return true;
		}
		if (pooler_suspended) {
			/* Stopped between messages: what is buffered goes with the socket. */
			sbuf_pause(&c->sb);
			return true;
		}
		uint8_t type;
		uint32_t body_len;
		const char *err;
		uint32_t max =
		    cf->max_packet_size > 0 ? (uint32_t)cf->max_packet_size : PROTO_MAX_MESSAGE;
		if (max > PROTO_MAX_MESSAGE)
			max = PROTO_MAX_MESSAGE;
		enum proto_status st = sbuf_peek_header(in, max, &type, &body_len, &err);
		if (st == PROTO_INCOMPLETE)
			return true;
		if (st == PROTO_BAD) {
			client_fail(c, "08P01", "%s (message type %d)", err, type);
			return false;
		}
		switch (type) {
		case 'X':
			client_close(c, "client close request");
			return false;
		case 'Q':
			if (cf->disable_pqexec) {
				client_fail(c, "08P01", "PQexec disallowed");
				return false;
			}
			break;
		case 'F':
		case 'S':
		case 'H':
		case 'c':
		case 'f':
		case 'P':
		case 'E':
		case 'C':
		case 'B':
		case 'D':
		case 'd':
			break;
		default:
			/* Not a frontend message: the stream is garbage, not worth forwarding. */
			cl_log(LOG_LVL_WARNING, c, "unknown pkt from client: %u/0x%x", type, type);
			client_fail(c, "08P01", "unknown pkt");
			return false;
		}
		if ((type == 'Q' || type == 'P') && token_expired(c)) {
			client_fail(
			    c, "28000",
			    "the token of this session has expired: log in again with a new one");
			return false;
		}
		if (type == 'F' && policy_enabled() && !c->policy_checked && !c->skip_to_sync) {
			if (avail < PROTO_HEADER_LEN + body_len)
				return true;
			refuse_function_call(c, body_len);
			if (c->state == CL_CLOSED)
				return false;
			continue;
		}
		bool tracking = prepared_tracking(c->pool);
		bool outcomes = outcome_tracking();
		/* An answer is applied even if a RELOAD has dropped every script since. */
		bool answered = c->approval_passed || c->approval_refusal;
		bool checking =
		    !c->policy_checked &&
		    (((policy_enabled() || outcomes || answered) && (type == 'Q' || type == 'P')) ||
		     (outcomes && (type == 'B' || type == 'C')));
		/* Statement names are rewritten, statements checked, Executes followed: such
		 * messages are handled whole. */
		if ((checking || c->skip_to_sync || (tracking && prepared_needs_whole(type)) ||
		     (outcomes && (type == 'E' || type == 'D'))) &&
		    avail < PROTO_HEADER_LEN + body_len)
			return true;
		if (c->skip_to_sync) {
			/* The rest of a refused Parse's pipeline, answered at its Sync. */
			evbuffer_drain(in, PROTO_HEADER_LEN + body_len);
			if (type == 'S') {
				c->skip_to_sync = false;
				send_ready_idle(c);
			}
			continue;
		}
		if (checking && (type == 'Q' || type == 'P') && !c->server && cf->mask_strict &&
		    masking_catalog_unread(c->pool->db)) {
			/* Strict masking reads the catalog (partitions, views) to check the
			 * statement: linking a server reads it first, then this comes again. */
			c->linked_for_check = true;
			if (!request_server(c))
				return c->state != CL_CLOSED;
		}
		if (checking) {
			if (type == 'B')
				check_bind(c, body_len);
			else if (type == 'C')
				note_close(c, body_len);
			else
				check_statement(c, type, body_len);
			if (c->state == CL_CLOSED)
				return false;
			continue; /* the head is now the checked message, or gone */
		}
		if (!c->server && tracking) {
			const uint8_t *msg = prepared_needs_whole(type)
			                         ? evbuffer_pullup(in, PROTO_HEADER_LEN + body_len)
			                         : NULL;
			if (prepared_client_unlinked(c, type, msg, body_len) == PREPARED_HANDLED) {
				evbuffer_drain(in, PROTO_HEADER_LEN + body_len);
				c->policy_checked = false;
				continue;
			}
		}
		if (!c->server && !request_server(c))
			return c->state != CL_CLOSED;
		struct server *s = c->server;
		if ((type == 'Q' || type == 'P') && s->task == TASK_NONE && s->expect_ready == 0 &&
		    masking_catalog_needed(c->pool->db)) {
			/* DDL or time made the masked columns stale: read them ahead of this
			 * request. */
			masking_catalog_begin(c->pool->db);
			server_run_task(s, TASK_MASK_CATALOG, masking_catalog_sql());
			s->catalog_ahead = true;
		}
		c->policy_checked = false; /* this message is on its way now */
		c->linked_for_check = false;
		if (!c->xact_start)
			c->xact_start = now_usec();
		switch (type) {
		case 'P':
			s->pool->stats.parse_count++;
			if (!tracking)
				s->pool->stats.server_parse_count++;
			break;
		case 'B':
			s->pool->stats.bind_count++;
			break;
		case 'Q':
		case 'S':
		case 'F':
			/* The first request after a task sent ahead of it counts from now. */
			if (s->expect_ready++ == (s->task != TASK_NONE ? 1 : 0))
				c->request_time = s->request_time = now_usec();
			break;
		default:
			break;
		}
		/* A Describe goes to the server even when renamed for it below: noted first. */
		if (outcomes && type == 'D')
			outcome_sent(c, type, evbuffer_pullup(in, PROTO_HEADER_LEN + body_len),
			             body_len);
		if (tracking || outcomes) {
			const uint8_t *msg = tracking && prepared_needs_whole(type)
			                         ? evbuffer_pullup(in, PROTO_HEADER_LEN + body_len)
			                         : NULL;
			if (prepared_client_message(c, s, type, msg, body_len) ==
			    PREPARED_HANDLED) {
				if (c->state == CL_CLOSED)
					return false;
				evbuffer_drain(in, PROTO_HEADER_LEN + body_len);
				continue;
			}
			if (c->state == CL_CLOSED)
				return false;
		}
		if (outcomes && type != 'D')
			outcome_sent(c, type,
			             type == 'E' ? evbuffer_pullup(in, PROTO_HEADER_LEN + body_len)
			                         : NULL,
			             body_len);
		c->sb.pkt_remaining = PROTO_HEADER_LEN + body_len;
	}
}

static void client_on_read(struct client *c)
{
	c->last_activity = now_usec();
	switch (c->state) {
	case CL_LOGIN:
		if (!c->auth && !read_startup(c))
			return;
		if (c->state == CL_LOGIN && c->auth)
			read_login(c);
		return;
	case CL_WELCOME:
		/* Nothing may arrive before our ReadyForQuery; keep it for later. */
		sbuf_pause(&c->sb);
		return;
	case CL_WAITING:
		sbuf_pause(&c->sb);
		return;
	case CL_IDLE:
	case CL_ACTIVE:
		break;
	case CL_CLOSED:
		return;
	}
	if (c->admin) {
		admin_process(c);
		return;
	}
	if (!client_process(c))
		return;
	/* Answers the pooler gave itself (prepared statements). */
	if (sbuf_out_len(&c->sb) > 0 && !sbuf_flush(&c->sb))
		return;
	struct server *s = c->server;
	if (!s)
		return;
	if (!sbuf_flush(&s->sb))
		return;
	if (sbuf_out_len(&s->sb) > SBUF_OUT_HIGH) {
		/* The server is slower than the client: stop reading until it catches up. */
		sbuf_pause(&c->sb);
		s->sb.notify_drain = true;
	}
}

/* Bytes of the client's first request: a Query or FunctionCall, or messages up to a Sync. */
static size_t first_request_len(struct evbuffer *in)
{
	size_t total = evbuffer_get_length(in), pos = 0;
	while (pos + PROTO_HEADER_LEN <= total) {
		uint8_t hdr[PROTO_HEADER_LEN];
		struct evbuffer_ptr at;
		evbuffer_ptr_set(in, &at, pos, EVBUFFER_PTR_SET);
		if (evbuffer_copyout_from(in, &at, hdr, sizeof(hdr)) != (ev_ssize_t)sizeof(hdr))
			return 0;
		uint8_t type;
		uint32_t len;
		const char *err;
		if (proto_read_header(hdr, sizeof(hdr), PROTO_MAX_MESSAGE, &type, &len, &err) !=
		    PROTO_OK)
			return 0;
		pos += PROTO_HEADER_LEN + len;
		if (pos > total)
			return 0;
		if (type == 'Q' || type == 'F' || type == 'S')
			return pos;
	}
	return 0;
}

bool client_cancel_waiting(struct client *c)
{
	if (c->state != CL_WAITING)
		return false;
	size_t n = first_request_len(c->sb.in);
	if (n == 0)
		return false;
	evbuffer_drain(c->sb.in, n);
	pool_client_unwait(c);
	cl_log(LOG_LVL_LOG, c, "cancel request for a query still waiting for a server: dropped");
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_error(&pb, "ERROR", "57014", "canceling statement due to user request");
	proto_build_ready(&pb, 'I');
	bool ok = sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
	if (ok)
		client_resume_reading(c);
	return true;
}

void client_resume_reading(struct client *c)
{
	if (c->state == CL_IDLE || c->state == CL_ACTIVE)
		sbuf_resume(&c->sb);
}

void client_linked(struct client *c)
{
	/* Send the query that waited right away, not on the next loop turn. */
	if (sbuf_resume_quiet(&c->sb))
		client_on_read(c);
}

static void client_on_event(struct sbuf *sb, enum sbuf_event ev, void *arg)
{
	struct client *c = arg;
	switch (ev) {
	case SBUF_EV_READ:
		client_on_read(c);
		break;
	case SBUF_EV_EOF:
		client_close(c, sb->error ? strerror(sb->error) : "client unexpected eof");
		break;
	case SBUF_EV_DRAINED:
		/* Our output drained: the server may send again. */
		if (c->server)
			sbuf_resume(&c->server->sb);
		break;
	case SBUF_EV_TLS_READY:
		cl_log(LOG_LVL_DEBUG, c, "TLS handshake done");
		break;
	case SBUF_EV_TLS_FAILED: {
		char why[256];
		cl_log(LOG_LVL_WARNING, c, "TLS handshake failed: %s",
		       sbuf_tls_error(sb, why, sizeof(why)));
		client_close(c, "TLS handshake failed");
		break;
	}
	case SBUF_EV_CONNECTED:
	case SBUF_EV_CONNECT_FAILED:
		break;
	}
}
