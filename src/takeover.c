/*
 * Online restart: the running process's side (SUSPEND, SHOW FDS with
 * descriptor passing, letting go) and the new process's side (fetching
 * the sockets over the console and adopting them).
 *
 * SUSPEND stops every connection between two messages, so that no state
 * of a half-read message has to travel. What has been read but not yet
 * handled (a waiting client's query, a server's results behind a paused
 * client) travels as bytes in the row, and the new process handles it as
 * if it had just arrived. Connections that cannot stop within
 * suspend_timeout are closed, as PgBouncer does.
 */
#include "takeover.h"
#include "approvals.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "params.h"
#include "pool.h"
#include "pooler.h"
#include "prepared.h"
#include "proto.h"
#include "server.h"
#include "varcache.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Buffered input a connection may carry across; more is closed instead. */
#define MAX_PENDING (1024 * 1024)
/* The largest row we accept: pending bytes travel hex-encoded. */
#define MAX_MESSAGE (8 * 1024 * 1024)
/* Each step of the exchange, on top of suspend_timeout for SUSPEND. */
#define STEP_TIMEOUT (10 * USEC_PER_SEC)

/* SHOW FDS columns: PgBouncer's fifteen, then ours. */
enum column {
	COL_FD,
	COL_TASK,
	COL_USER,
	COL_DATABASE,
	COL_ADDR,
	COL_PORT,
	COL_CANCEL,
	COL_LINK,
	COL_CLIENT_ENCODING,
	COL_STD_STRINGS,
	COL_DATESTYLE,
	COL_TIMEZONE,
	COL_PASSWORD,
	COL_SCRAM_CLIENT_KEY,
	COL_SCRAM_SERVER_KEY,
	COL_BACKEND_PID,  /* the server's, or the one we gave the client */
	COL_TX_STATUS,    /* server: from its last ReadyForQuery */
	COL_EXPECT_READY, /* server: ReadyForQuery messages still to come */
	COL_PARAMS,       /* tracked parameters, name=hex,... */
	COL_WELCOME,      /* server: its pool's login parameters, once per pool */
	COL_PENDING,      /* hex of input read but not yet handled */
	COL_PREPARED,     /* prepared statements (transaction pooling), see prepared.h */
	NCOLS
};

static const char *const col_names[NCOLS] = {
    "fd",          "task",      "user",         "database",         "addr",
    "port",        "cancel",    "link",         "client_encoding",  "std_strings",
    "datestyle",   "timezone",  "password",     "scram_client_key", "scram_server_key",
    "backend_pid", "tx_status", "expect_ready", "params",           "welcome",
    "pending",     "prepared"};

#define T PROTO_OID_TEXT
#define I PROTO_OID_INT8
static const uint32_t col_types[NCOLS] = {I, T, T, T, T, I, I, I, T, T, T,
                                          T, T, T, T, I, T, I, T, T, T, T};
#undef T
#undef I

struct fd_row {
	int fd; /* ours: the live descriptor (old side) or the received one (new side) */
	char *v[NCOLS];
};

struct takeover {
	struct fd_row *rows;
	int count;
	int cap;
};

static struct fd_row *add_row(struct takeover *t, int fd)
{
	if (t->count == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->rows = xrealloc(t->rows, (size_t)t->cap * sizeof(*t->rows));
	}
	struct fd_row *r = &t->rows[t->count++];
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	return r;
}

static void free_rows(struct takeover *t, bool close_fds)
{
	for (int i = 0; i < t->count; i++) {
		struct fd_row *r = &t->rows[i];
		if (close_fds && r->fd >= 0)
			close(r->fd);
		for (int c = 0; c < NCOLS; c++) {
			if (!r->v[c])
				continue;
			/* Passwords, keys and queries: nothing of them stays in freed memory. */
			OPENSSL_cleanse(r->v[c], strlen(r->v[c]));
			free(r->v[c]);
		}
	}
	free(t->rows);
	t->rows = NULL;
	t->count = t->cap = 0;
}

/* Encodings */

/* "name=hex,name=hex": names are parameter names, values any bytes. */
static void pairs_add(struct pktbuf *pb, const char *name, const char *value)
{
	if (pb->len)
		pktbuf_put_byte(pb, ',');
	pktbuf_put_bytes(pb, name, strlen(name));
	pktbuf_put_byte(pb, '=');
	pktbuf_put_hex(pb, value, strlen(value));
}

static char *encode_vars(const struct varcache *vc)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	for (int i = 0; i < varcache_count(); i++) {
		const char *v = varcache_get(vc, i);
		if (v)
			pairs_add(&pb, varcache_name(i), v);
	}
	return pktbuf_take_string(&pb);
}

static char *encode_params(const struct param_list *pl)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	for (int i = 0; i < pl->count; i++)
		pairs_add(&pb, pl->names[i], pl->values[i]);
	return pktbuf_take_string(&pb);
}

typedef void (*pair_fn)(void *arg, const char *name, const char *value);

static void decode_pairs(const char *s, pair_fn fn, void *arg)
{
	while (s && *s) {
		size_t len = strcspn(s, ",");
		const char *eq = memchr(s, '=', len);
		if (eq && eq > s) {
			char *name = xstrndup(s, (size_t)(eq - s));
			size_t hex_len = len - (size_t)(eq + 1 - s);
			char *value = xcalloc(1, hex_len / 2 + 1);
			if (hex_decode(eq + 1, hex_len, (uint8_t *)value) &&
			    strlen(value) == hex_len / 2)
				fn(arg, name, value);
			free(name);
			free(value);
		}
		s += len;
		if (*s == ',')
			s++;
	}
}

static void set_var(void *arg, const char *name, const char *value)
{
	varcache_set(arg, name, value);
}

static void set_param(void *arg, const char *name, const char *value)
{
	params_set(arg, name, value);
}

static char *num_str(long long v)
{
	return xasprintf("%lld", v);
}

static long long num_of(const char *s)
{
	if (!s)
		return 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	return *end ? 0 : v;
}

/* The running process */

static usec_t suspend_started;
static bool handed_over;

static bool server_settled(const struct server *s)
{
	return s->task == TASK_NONE && s->sb.pkt_remaining == 0 && sbuf_out_len(&s->sb) == 0 &&
	       prepared_server_portable(s);
}

static bool client_settled(const struct client *c)
{
	if (c->state != CL_IDLE && c->state != CL_ACTIVE && c->state != CL_WAITING)
		return false;
	if (c->sb.pkt_remaining > 0 || sbuf_out_len(&c->sb) > 0)
		return false;
	return !c->server || server_settled(c->server);
}

/* Calls fn for every server of every pool; fn may close it. */
static void each_server(void (*fn)(struct server *))
{
	struct list_node *it, *sit, *tmp;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		struct list_node *lists[] = {&p->idle_servers, &p->active_servers, &p->used_servers,
		                             &p->new_servers};
		for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
			list_for_each_safe(sit, tmp, lists[i])
			{
				fn(container_of(sit, struct server, node));
			}
	}
}

static void pause_server(struct server *s)
{
	if ((s->state == SV_IDLE || s->state == SV_ACTIVE) && s->task == TASK_NONE &&
	    s->sb.pkt_remaining == 0)
		sbuf_pause(&s->sb);
}

void takeover_suspend(void)
{
	/* A held statement's approval lives in this process only: fail it while we can. */
	approvals_cancel_all("pgsieve is restarting");
	pooler_suspended = true;
	suspend_started = now_usec();
	pooler_set_accepting(false);
	log_info("suspending: every connection stops at its next message boundary");
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (!c->admin && (c->state == CL_IDLE || c->state == CL_ACTIVE) &&
		    c->sb.pkt_remaining == 0)
			sbuf_pause(&c->sb);
	}
	each_server(pause_server);
}

bool takeover_suspend_settled(void)
{
	bool late = now_usec() - suspend_started > cf->suspend_timeout;
	bool settled = true;
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (c->admin || c->state == CL_CLOSED || client_settled(c))
			continue;
		if (late)
			client_fail(c, "57P01",
			            "pooler restart: connection still busy after suspend_timeout");
		else
			settled = false;
	}
	return settled || late;
}

static void resume_server(struct server *s)
{
	if (s->state == SV_IDLE || s->state == SV_ACTIVE)
		sbuf_resume(&s->sb);
}

void takeover_resume(void)
{
	pooler_suspended = false;
	handed_over = false;
	pooler_set_accepting(true);
	log_info("resuming after suspend");
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (!c->admin && (c->state == CL_IDLE || c->state == CL_ACTIVE))
			sbuf_resume(&c->sb);
	}
	each_server(resume_server);
	list_for_each(it, &all_pools)
	{
		pool_dispatch(container_of(it, struct pool, node));
	}
}

static char *pending_hex(struct sbuf *sb)
{
	size_t n = evbuffer_get_length(sb->in);
	return n ? hex_encode(evbuffer_pullup(sb->in, -1), n) : NULL;
}

static void secret_columns(struct fd_row *r, const struct pool_user *u)
{
	if (u->password)
		r->v[COL_PASSWORD] = xstrdup(u->password);
	if (u->have_scram_keys) {
		r->v[COL_SCRAM_CLIENT_KEY] = hex_encode(u->scram_client_key, 32);
		r->v[COL_SCRAM_SERVER_KEY] = hex_encode(u->scram_server_key, 32);
	}
}

static void listener_rows(struct takeover *t)
{
	int fds[32];
	int n = pooler_listener_fds(fds, (int)ARRAY_SIZE(fds));
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) != 0)
			continue;
		struct fd_row *r = add_row(t, fds[i]);
		r->v[COL_FD] = num_str(fds[i]);
		r->v[COL_TASK] = xstrdup("pooler");
		char host[64] = "unix";
		int port = cf->listen_port;
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			port = ntohs(in6->sin6_port);
		}
		r->v[COL_ADDR] = xstrdup(host);
		r->v[COL_PORT] = num_str(port);
	}
}

/* A TLS session's keys live in our memory: the socket alone is no use to another process. */
static bool transferable_server(const struct server *s)
{
	return (s->state == SV_IDLE || s->state == SV_ACTIVE) && !sbuf_is_tls(&s->sb) &&
	       server_settled(s) && evbuffer_get_length(s->sb.in) <= MAX_PENDING;
}

static void server_rows(struct takeover *t, bool secrets)
{
	struct list_node *it, *sit;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		bool welcome_sent = false;
		struct list_node *lists[] = {&p->idle_servers, &p->active_servers};
		for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
			list_for_each(sit, lists[i])
			{
				struct server *s = container_of(sit, struct server, node);
				if (!transferable_server(s))
					continue;
				struct fd_row *r = add_row(t, s->sb.fd);
				r->v[COL_FD] = num_str(s->sb.fd);
				r->v[COL_TASK] = xstrdup("server");
				r->v[COL_USER] = xstrdup(p->user->name);
				r->v[COL_DATABASE] = xstrdup(p->db->name);
				r->v[COL_CANCEL] = num_str(s->backend_key);
				r->v[COL_LINK] = num_str(s->client ? s->client->sb.fd : 0);
				r->v[COL_BACKEND_PID] = num_str(s->backend_pid);
				r->v[COL_TX_STATUS] = xasprintf("%c", s->tx_status);
				r->v[COL_EXPECT_READY] = num_str(s->expect_ready);
				r->v[COL_PARAMS] = encode_vars(&s->vars);
				if (secrets) {
					secret_columns(r, p->user);
					r->v[COL_PENDING] = pending_hex(&s->sb);
					r->v[COL_PREPARED] = prepared_server_export(s);
					if (p->welcome && !welcome_sent) {
						r->v[COL_WELCOME] = encode_params(p->welcome);
						welcome_sent = true;
					}
				}
			}
	}
}

static void copy_var(struct fd_row *r, enum column col, const struct client *c, const char *name)
{
	int i = varcache_index(name);
	const char *v = i >= 0 ? varcache_get(&c->vars, i) : NULL;
	if (v)
		r->v[col] = xstrdup(v);
}

static void client_rows(struct takeover *t, bool secrets)
{
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (c->admin || !c->pool || c->state == CL_CLOSED || c->state == CL_LOGIN ||
		    c->state == CL_WELCOME)
			continue;
		if (sbuf_is_tls(&c->sb)) {
			if (secrets)
				cl_log(LOG_LVL_WARNING, c, "not handed over: TLS connection");
			continue;
		}
		if (secrets &&
		    (!client_settled(c) || (c->server && !transferable_server(c->server)) ||
		     evbuffer_get_length(c->sb.in) > MAX_PENDING)) {
			cl_log(LOG_LVL_WARNING, c,
			       "not handed over: busy or too much buffered input");
			continue;
		}
		struct fd_row *r = add_row(t, c->sb.fd);
		r->v[COL_FD] = num_str(c->sb.fd);
		r->v[COL_TASK] = xstrdup("client");
		r->v[COL_USER] = xstrdup(c->user);
		r->v[COL_DATABASE] = xstrdup(c->dbname);
		r->v[COL_ADDR] = xstrdup(c->addr_str);
		r->v[COL_PORT] = num_str(c->port);
		r->v[COL_CANCEL] = num_str(c->cancel_key);
		r->v[COL_LINK] = num_str(c->server ? c->server->sb.fd : 0);
		copy_var(r, COL_CLIENT_ENCODING, c, "client_encoding");
		copy_var(r, COL_STD_STRINGS, c, "standard_conforming_strings");
		copy_var(r, COL_DATESTYLE, c, "DateStyle");
		copy_var(r, COL_TIMEZONE, c, "TimeZone");
		r->v[COL_BACKEND_PID] = num_str(c->cancel_pid);
		r->v[COL_PARAMS] = encode_vars(&c->vars);
		if (secrets) {
			secret_columns(r, c->pool->user);
			r->v[COL_PENDING] = pending_hex(&c->sb);
			r->v[COL_PREPARED] = prepared_client_export(c);
		}
	}
}

static bool wait_for(int fd, short events, usec_t deadline)
{
	for (;;) {
		usec_t left = deadline - now_usec();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)(left / 1000) + 1);
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

/* Writes all of it, the descriptor (if any) riding on the first byte. */
static bool send_all(int fd, const uint8_t *p, size_t len, int pass_fd, usec_t deadline)
{
	while (len > 0) {
		struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		if (pass_fd >= 0) {
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
		}
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			pass_fd = -1;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_for(fd, POLLOUT, deadline))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/*
 * The rows go out one message at a time, each with its socket. This
 * blocks our loop, boundedly: we are suspended, and the reader is the
 * process taking over, reading as fast as it can.
 */
static bool send_with_fds(struct client *c, struct takeover *t)
{
	usec_t deadline = now_usec() + STEP_TIMEOUT;
	int fd = c->sb.fd;
	size_t queued = sbuf_out_len(&c->sb);
	if (queued) {
		if (!send_all(fd, evbuffer_pullup(c->sb.out, -1), queued, -1, deadline))
			return false;
		evbuffer_drain(c->sb.out, queued);
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_row_description(&pb, NCOLS, col_names, col_types);
	bool ok = send_all(fd, pb.data, pb.len, -1, deadline);
	for (int i = 0; ok && i < t->count; i++) {
		pktbuf_reset(&pb);
		proto_build_data_row(&pb, NCOLS, (const char *const *)t->rows[i].v);
		ok = send_all(fd, pb.data, pb.len, t->rows[i].fd, deadline);
	}
	if (ok) {
		pktbuf_reset(&pb);
		proto_build_complete(&pb, "SHOW");
		proto_build_ready(&pb, 'I');
		ok = send_all(fd, pb.data, pb.len, -1, deadline);
	}
	OPENSSL_cleanse(pb.data, pb.cap);
	pktbuf_free(&pb);
	return ok;
}

void takeover_show_fds(struct client *c)
{
	bool pass = c->os_admin && c->sb.is_unix && pooler_suspended;
	struct takeover t = {0};
	listener_rows(&t);
	server_rows(&t, pass);
	client_rows(&t, pass);
	if (!pass) {
		struct pktbuf pb;
		pktbuf_init(&pb);
		proto_build_row_description(&pb, NCOLS, col_names, col_types);
		for (int i = 0; i < t.count; i++)
			proto_build_data_row(&pb, NCOLS, (const char *const *)t.rows[i].v);
		proto_build_complete(&pb, "SHOW");
		proto_build_ready(&pb, 'I');
		sbuf_send(&c->sb, pb.data, pb.len);
		pktbuf_free(&pb);
		free_rows(&t, false);
		return;
	}
	if (send_with_fds(c, &t)) {
		handed_over = true;
		log_info("handed %d sockets over to a new process", t.count);
	} else {
		log_error("online restart: could not send the sockets: %s", strerror(errno));
		client_close(c, "online restart failed");
	}
	free_rows(&t, false);
}

bool takeover_handed_over(void)
{
	return handed_over;
}

static void forget_server(struct server *s)
{
	/* No Terminate and no cancel: the new process carries the session on. */
	s->expect_ready = 0;
	s->dirty = true;
	sbuf_abandon(&s->sb);
}

void takeover_let_go(void)
{
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (c->state == CL_CLOSED)
			continue;
		c->sb.pkt_remaining = 0;
		sbuf_abandon(&c->sb);
	}
	each_server(forget_server);
	pooler_let_go_listeners();
}

/* The new process */

/* Bytes from the running process and the descriptors that came with them. */
struct peer {
	int fd;
	uint8_t *buf;
	size_t start, end, cap; /* unread bytes are buf[start..end) */
	int *fds;
	size_t fd_head, fd_count, fd_cap;
};

static void peer_push_fd(struct peer *p, int fd)
{
	if (p->fd_count == p->fd_cap) {
		p->fd_cap = p->fd_cap ? p->fd_cap * 2 : 64;
		p->fds = xrealloc(p->fds, p->fd_cap * sizeof(int));
	}
	p->fds[p->fd_count++] = fd;
}

/* 1: bytes read, 0: the other side closed, -1: error (*err). */
static int peer_fill(struct peer *p, usec_t deadline, char **err)
{
	if (p->start > 0) {
		memmove(p->buf, p->buf + p->start, p->end - p->start);
		p->end -= p->start;
		p->start = 0;
	}
	if (p->cap - p->end < 65536) {
		if (p->cap >= MAX_MESSAGE + 65536) {
			*err = xstrdup("message from the running process is too large");
			return -1;
		}
		p->cap = p->cap ? p->cap * 2 : 131072;
		p->buf = xrealloc(p->buf, p->cap);
	}
	if (!wait_for(p->fd, POLLIN, deadline)) {
		*err = xstrdup("timed out waiting for the running process");
		return -1;
	}
	struct iovec iov = {.iov_base = p->buf + p->end, .iov_len = p->cap - p->end};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 64)];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = ctl.buf,
	                     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(p->fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 1;
		*err = xasprintf("reading from the running process: %s", strerror(errno));
		return -1;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			peer_push_fd(p, fd);
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		*err =
		    xstrdup("sockets from the running process were lost (control data truncated)");
		return -1;
	}
	if (n == 0)
		return 0;
	p->end += (size_t)n;
	return 1;
}

/* The next whole message; body stays valid until the next call. */
static bool peer_next(struct peer *p, uint8_t *type, const uint8_t **body, uint32_t *len,
                      usec_t deadline, char **err)
{
	for (;;) {
		size_t avail = p->end - p->start;
		const char *bad;
		switch (proto_read_header(p->buf + p->start, avail, MAX_MESSAGE, type, len, &bad)) {
		case PROTO_BAD:
			*err = xasprintf("bad message from the running process: %s", bad);
			return false;
		case PROTO_OK:
			if (avail >= PROTO_HEADER_LEN + *len) {
				*body = p->buf + p->start + PROTO_HEADER_LEN;
				p->start += PROTO_HEADER_LEN + *len;
				return true;
			}
			break;
		case PROTO_INCOMPLETE:
			break;
		}
		int r = peer_fill(p, deadline, err);
		if (r == 0) {
			*err = xstrdup("the running process closed the connection");
			return false;
		}
		if (r < 0)
			return false;
	}
}

static bool peer_send(struct peer *p, const struct pktbuf *pb, char **err)
{
	if (!send_all(p->fd, pb->data, pb->len, -1, now_usec() + STEP_TIMEOUT)) {
		*err = xasprintf("writing to the running process: %s", strerror(errno));
		return false;
	}
	return true;
}

static bool parse_row(struct peer *p, struct takeover *t, const int *col_of, int ncols,
                      const uint8_t *body, uint32_t len, char **err)
{
	if (p->fd_head == p->fd_count) {
		*err = xstrdup("a SHOW FDS row came without its socket: is the running process "
		               "suspended, and run by our OS user?");
		return false;
	}
	struct fd_row *r = add_row(t, p->fds[p->fd_head++]);
	struct pkt_reader rd;
	pr_init(&rd, body, len);
	int n = pr_uint16(&rd);
	for (int i = 0; i < n && !rd.bad; i++) {
		uint32_t vlen = pr_uint32(&rd);
		if (vlen == 0xffffffff)
			continue;
		const uint8_t *v = pr_bytes(&rd, vlen);
		if (!rd.bad && i < ncols && col_of[i] >= 0)
			r->v[col_of[i]] = xstrndup((const char *)v, vlen);
	}
	if (rd.bad || n != ncols) {
		*err = xstrdup("malformed SHOW FDS row");
		return false;
	}
	return true;
}

/* Runs one console command; SHOW FDS rows go to t. */
static bool peer_command(struct peer *p, const char *sql, usec_t deadline, struct takeover *t,
                         char **err)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_query(&pb, sql);
	bool ok = peer_send(p, &pb, err);
	pktbuf_free(&pb);
	if (!ok)
		return false;
	int col_of[64];
	int ncols = 0;
	char *failure = NULL;
	for (;;) {
		uint8_t type;
		const uint8_t *body;
		uint32_t len;
		if (!peer_next(p, &type, &body, &len, deadline, err)) {
			free(failure);
			return false;
		}
		if (type == 'Z')
			break;
		if (type == 'E' && !failure) {
			struct proto_error e;
			failure = xasprintf("%s: %s", sql,
			                    proto_parse_error(body, len, &e) ? e.message : "error");
		} else if (type == 'T' && t) {
			struct pkt_reader rd;
			pr_init(&rd, body, len);
			ncols = pr_uint16(&rd);
			if (ncols > (int)ARRAY_SIZE(col_of))
				ncols = 0;
			for (int i = 0; i < ncols && !rd.bad; i++) {
				const char *name = pr_string(&rd);
				pr_bytes(&rd, 18);
				col_of[i] = -1;
				for (int c = 0; c < NCOLS; c++)
					if (strcmp(name, col_names[c]) == 0)
						col_of[i] = c;
			}
		} else if (type == 'D' && t && !failure) {
			if (!parse_row(p, t, col_of, ncols, body, len, err))
				return false;
		}
	}
	if (failure) {
		*err = failure;
		return false;
	}
	return true;
}

static bool peer_login(struct peer *p, char **err)
{
	struct startup_param params[] = {{"user", "pgbouncer"},
	                                 {"database", "pgbouncer"},
	                                 {"application_name", "pgsieve online restart"}};
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_startup(&pb, params, (int)ARRAY_SIZE(params));
	bool ok = peer_send(p, &pb, err);
	pktbuf_free(&pb);
	usec_t deadline = now_usec() + STEP_TIMEOUT;
	while (ok) {
		uint8_t type;
		const uint8_t *body;
		uint32_t len;
		if (!peer_next(p, &type, &body, &len, deadline, err))
			return false;
		if (type == 'Z')
			return true;
		if (type == 'E') {
			struct proto_error e;
			*err = xasprintf("console login refused: %s",
			                 proto_parse_error(body, len, &e) ? e.message : "error");
			return false;
		}
		if (type == 'R' && (len < 4 || body[0] | body[1] | body[2] | body[3])) {
			*err = xstrdup("the running process wants a password: is it run by another "
			               "OS user?");
			return false;
		}
	}
	return false;
}

/* After SHUTDOWN the running process closes our connection on its way out. */
static bool peer_wait_exit(struct peer *p, char **err)
{
	usec_t deadline = now_usec() + STEP_TIMEOUT;
	for (;;) {
		p->start = p->end = 0;
		int r = peer_fill(p, deadline, err);
		if (r <= 0)
			return r == 0;
	}
}

bool takeover_fetch(struct takeover **out, char **err)
{
	*out = NULL;
	if (!cf->unix_socket_dir || !*cf->unix_socket_dir) {
		*err = xstrdup("online restart (-R) needs unix_socket_dir: the running process "
		               "is reached through its unix socket");
		return false;
	}
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cf->unix_socket_dir,
	                 cf->listen_port);
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		*err = xasprintf("unix_socket_dir %s: path too long", cf->unix_socket_dir);
		return false;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = xasprintf("socket: %s", strerror(errno));
		return false;
	}
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED) {
			log_info("online restart: nothing listens on %s, starting normally",
			         un.sun_path);
			return true;
		}
		*err = xasprintf("online restart: connecting to %s: %s", un.sun_path, strerror(e));
		return false;
	}
	log_info("online restart: taking over from the process on %s", un.sun_path);
	struct peer p = {.fd = fd};
	struct takeover *t = xcalloc(1, sizeof(*t));
	bool suspended = false, ok = false;
	char *why = NULL;
	if (!peer_login(&p, &why))
		goto done;
	if (!peer_command(&p, "SUSPEND", now_usec() + cf->suspend_timeout + STEP_TIMEOUT, NULL,
	                  &why))
		goto done;
	suspended = true;
	if (!peer_command(&p, "SHOW FDS", now_usec() + STEP_TIMEOUT, t, &why))
		goto done;
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_query(&pb, "SHUTDOWN");
	ok = peer_send(&p, &pb, &why);
	pktbuf_free(&pb);
	if (ok && !peer_wait_exit(&p, &why))
		ok = false;
	if (ok)
		log_info("online restart: received %d sockets; the old process has exited",
		         t->count);
done:
	if (!ok && suspended) {
		/* Best effort: let the old process serve again rather than leave it stuck. */
		struct pktbuf rb;
		pktbuf_init(&rb);
		proto_build_query(&rb, "RESUME");
		char *ignored = NULL;
		if (!peer_send(&p, &rb, &ignored))
			free(ignored);
		pktbuf_free(&rb);
	}
	/* Descriptors that arrived beyond the rows (none, normally) are not ours to keep. */
	for (size_t i = p.fd_head; i < p.fd_count; i++)
		close(p.fds[i]);
	free(p.fds);
	free(p.buf);
	close(fd);
	if (!ok) {
		*err = xasprintf("online restart failed: %s", why ? why : "unknown error");
		free(why);
		free_rows(t, true);
		free(t);
		return false;
	}
	*out = t;
	return true;
}

static void restore_secrets(struct pool_user *u, const struct fd_row *r)
{
	if (!u->password && r->v[COL_PASSWORD])
		u->password = xstrdup(r->v[COL_PASSWORD]);
	const char *ck = r->v[COL_SCRAM_CLIENT_KEY], *sk = r->v[COL_SCRAM_SERVER_KEY];
	if (!u->have_scram_keys && ck && sk && strlen(ck) == 64 && strlen(sk) == 64 &&
	    hex_decode(ck, 64, u->scram_client_key) && hex_decode(sk, 64, u->scram_server_key))
		u->have_scram_keys = true;
}

static void restore_pending(struct sbuf *sb, const char *hex)
{
	size_t n = hex ? strlen(hex) : 0;
	if (!n)
		return;
	uint8_t *bytes = xmalloc(n / 2 + 1);
	if (hex_decode(hex, n, bytes))
		evbuffer_add(sb->in, bytes, n / 2);
	free(bytes);
	/* Handled from the loop as if it had just arrived. */
	sbuf_resume(sb);
}

static void close_orphan(int fd)
{
	/* A server session nobody will use: end it politely. */
	static const uint8_t terminate[] = {'X', 0, 0, 0, 4};
	if (send(fd, terminate, sizeof(terminate), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("terminate on an orphaned server connection: %s", strerror(errno));
	close(fd);
}

static struct server *adopt_server(struct fd_row *r)
{
	const char *dbname = r->v[COL_DATABASE], *user = r->v[COL_USER];
	struct pool_db *db = dbname && user ? pool_db_lookup(dbname) : NULL;
	if (!db) {
		log_warning("online restart: server connection to database %s dropped: not in "
		            "the configuration",
		            dbname ? dbname : "(none)");
		close_orphan(r->fd);
		return NULL;
	}
	struct pool_user *u = pool_user_get(user);
	restore_secrets(u, r);
	struct pool *pool = pool_get(db, u);
	struct server *s = server_adopt(r->fd, pool);
	if (!s)
		return NULL;
	s->backend_pid = (uint32_t)num_of(r->v[COL_BACKEND_PID]);
	s->backend_key = (uint32_t)num_of(r->v[COL_CANCEL]);
	s->tx_status = r->v[COL_TX_STATUS] && *r->v[COL_TX_STATUS] ? r->v[COL_TX_STATUS][0] : 'I';
	s->expect_ready = (int)num_of(r->v[COL_EXPECT_READY]);
	decode_pairs(r->v[COL_PARAMS], set_var, &s->vars);
	prepared_server_import(s, r->v[COL_PREPARED]);
	if (!pool->welcome && r->v[COL_WELCOME]) {
		pool->welcome = params_new();
		decode_pairs(r->v[COL_WELCOME], set_param, pool->welcome);
	}
	restore_pending(&s->sb, r->v[COL_PENDING]);
	return s;
}

/* The adopted server a client row was linked to, by the old descriptor number. */
static struct server *linked_server(struct takeover *t, struct server **servers, bool *claimed,
                                    long long old_fd)
{
	for (int i = 0; i < t->count; i++) {
		if (servers[i] && !claimed[i] && num_of(t->rows[i].v[COL_FD]) == old_fd) {
			claimed[i] = true;
			return servers[i];
		}
	}
	return NULL;
}

static bool adopt_client(struct takeover *t, int row, struct server **servers, bool *claimed)
{
	struct fd_row *r = &t->rows[row];
	const char *dbname = r->v[COL_DATABASE], *user = r->v[COL_USER];
	if (!dbname || !user) {
		close(r->fd);
		return false;
	}
	struct client *c = client_adopt(r->fd, user, dbname);
	if (!c)
		return false;
	c->cancel_pid = (uint32_t)num_of(r->v[COL_BACKEND_PID]);
	c->cancel_key = (uint32_t)num_of(r->v[COL_CANCEL]);
	decode_pairs(r->v[COL_PARAMS], set_var, &c->vars);
	prepared_client_import(c, r->v[COL_PREPARED]);
	long long link = num_of(r->v[COL_LINK]);
	struct server *s = link ? linked_server(t, servers, claimed, link) : NULL;
	struct pool_db *db = pool_db_lookup(dbname);
	if (!db) {
		if (s)
			server_close(s, "its database is not in the configuration any more");
		client_fail(c, "08P01", "database \"%s\" is not in the configuration any more",
		            dbname);
		return false;
	}
	const char *login_user = db->conf.user ? db->conf.user : user;
	struct pool *pool = pool_get(db, pool_user_get(login_user));
	restore_secrets(pool->user, r);
	c->account = pool_user_get(user);
	c->account->client_count++;
	if ((link && !s) || (s && s->pool != pool)) {
		pool_adopt_client(pool, c, NULL);
		if (s)
			server_close(s, "its pool changed in the restart");
		client_fail(c, "08P01", "server connection lost in the online restart");
		return false;
	}
	pool_adopt_client(pool, c, s);
	if (s && s->expect_ready > 0)
		c->request_time = s->request_time = now_usec();
	if (s && s->tx_status != 'I')
		c->xact_start = now_usec();
	restore_pending(&c->sb, r->v[COL_PENDING]);
	return true;
}

void takeover_adopt(struct takeover *t)
{
	struct server **servers = xcalloc((size_t)t->count + 1, sizeof(*servers));
	bool *claimed = xcalloc((size_t)t->count + 1, sizeof(*claimed));
	int listeners = 0, server_count = 0, client_count_adopted = 0;
	for (int i = 0; i < t->count; i++) {
		struct fd_row *r = &t->rows[i];
		const char *task = r->v[COL_TASK] ? r->v[COL_TASK] : "";
		if (strcmp(task, "pooler") == 0) {
			char *err = NULL;
			if (pooler_adopt_listener(r->fd, &err))
				listeners++;
			else {
				log_error("online restart: %s", err);
				free(err);
			}
		} else if (strcmp(task, "server") == 0) {
			servers[i] = adopt_server(r);
			server_count += servers[i] != NULL;
		} else if (strcmp(task, "client") != 0) {
			close(r->fd);
		}
		if (strcmp(task, "client") != 0)
			r->fd = -1;
	}
	for (int i = 0; i < t->count; i++) {
		struct fd_row *r = &t->rows[i];
		if (r->fd < 0)
			continue;
		client_count_adopted += adopt_client(t, i, servers, claimed);
		r->fd = -1;
	}
	/* A server whose client did not come along is mid-session for nobody. */
	for (int i = 0; i < t->count; i++) {
		if (servers[i] && !claimed[i] && num_of(t->rows[i].v[COL_LINK]) != 0)
			server_close(servers[i], "its client was not handed over");
	}
	log_info("online restart: took over %d listening sockets, %d server and %d client "
	         "connections",
	         listeners, server_count, client_count_adopted);
	free(servers);
	free(claimed);
	free_rows(t, false);
	free(t);
}
