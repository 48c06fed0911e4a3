/*
 * Socket buffers over raw libevent events. We recv() into space reserved
 * in the input evbuffer (no FIONREAD round trip per read, no copy) and
 * send() straight from the output chains.
 */
#include "sbuf.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

static struct event_base *sbuf_base;
static int read_size = 16384;

void sbuf_setup(struct event_base *base, int pkt_buf)
{
	sbuf_base = base;
	/* Read at least a few packets' worth at once; pkt_buf is PgBouncer's unit. */
	read_size = pkt_buf > 4096 ? pkt_buf * 4 : 16384;
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

void sbuf_init(struct sbuf *sb, sbuf_callback cb, void *arg)
{
	memset(sb, 0, sizeof(*sb));
	sb->fd = -1;
	sb->cb = cb;
	sb->arg = arg;
}

static bool set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void sbuf_tune_tcp(int fd)
{
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (!cf)
		return;
	if (cf->tcp_keepalive) {
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		if (cf->tcp_keepidle > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cf->tcp_keepidle,
			           sizeof(cf->tcp_keepidle));
		if (cf->tcp_keepintvl > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cf->tcp_keepintvl,
			           sizeof(cf->tcp_keepintvl));
		if (cf->tcp_keepcnt > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cf->tcp_keepcnt,
			           sizeof(cf->tcp_keepcnt));
	}
	if (cf->tcp_user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &cf->tcp_user_timeout,
		           sizeof(cf->tcp_user_timeout));
	if (cf->tcp_socket_buffer > 0) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cf->tcp_socket_buffer,
		           sizeof(cf->tcp_socket_buffer));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cf->tcp_socket_buffer,
		           sizeof(cf->tcp_socket_buffer));
	}
}

static void attach(struct sbuf *sb, int fd, bool is_unix)
{
	sb->fd = fd;
	sb->is_unix = is_unix;
	sb->in = evbuffer_new();
	sb->out = evbuffer_new();
	if (!sb->in || !sb->out)
		die("out of memory allocating socket buffers");
	event_assign(&sb->ev_read, sbuf_base, fd, EV_READ | EV_PERSIST, on_read, sb);
	event_assign(&sb->ev_write, sbuf_base, fd, EV_WRITE | EV_PERSIST, on_write, sb);
}

bool sbuf_accept(struct sbuf *sb, int fd, bool is_unix)
{
	if (!set_nonblocking(fd)) {
		sb->error = errno;
		return false;
	}
	if (!is_unix)
		sbuf_tune_tcp(fd);
	attach(sb, fd, is_unix);
	sbuf_resume(sb);
	return true;
}

bool sbuf_connect(struct sbuf *sb, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sb->error = errno;
		return false;
	}
	bool is_unix = sa->sa_family == AF_UNIX;
	if (!is_unix)
		sbuf_tune_tcp(fd);
	attach(sb, fd, is_unix);
	if (connect(fd, sa, len) == 0) {
		/* Unix sockets usually connect at once; report it from the loop anyway. */
		sb->connecting = true;
		event_add(&sb->ev_write, NULL);
		return true;
	}
	if (errno != EINPROGRESS && errno != EAGAIN) {
		sb->error = errno;
		sbuf_close(sb);
		return false;
	}
	sb->connecting = true;
	event_add(&sb->ev_write, NULL);
	return true;
}

void sbuf_close(struct sbuf *sb)
{
	if (sb->fd >= 0) {
		event_del(&sb->ev_read);
		event_del(&sb->ev_write);
		close(sb->fd);
		sb->fd = -1;
	}
	if (sb->in)
		evbuffer_free(sb->in);
	if (sb->out)
		evbuffer_free(sb->out);
	sb->in = sb->out = NULL;
	sb->reading = sb->want_read = sb->connecting = false;
	sb->pkt_remaining = 0;
}

void sbuf_abandon(struct sbuf *sb)
{
	if (sb->fd < 0)
		return;
	event_del(&sb->ev_read);
	event_del(&sb->ev_write);
	close(sb->fd);
	sb->fd = -1;
	evbuffer_drain(sb->in, evbuffer_get_length(sb->in));
	evbuffer_drain(sb->out, evbuffer_get_length(sb->out));
	sb->reading = sb->want_read = false;
	sb->pkt_remaining = 0;
}

void sbuf_pause(struct sbuf *sb)
{
	sb->want_read = false;
	if (sb->reading) {
		event_del(&sb->ev_read);
		sb->reading = false;
	}
}

void sbuf_resume(struct sbuf *sb)
{
	sb->want_read = true;
	if (sb->fd < 0 || sb->failed || sb->connecting)
		return;
	if (!sb->reading) {
		event_add(&sb->ev_read, NULL);
		sb->reading = true;
	}
	/* Input left over from before the pause is handled without waiting for new bytes. */
	if (evbuffer_get_length(sb->in) > 0)
		event_active(&sb->ev_read, EV_READ, 0);
}

bool sbuf_resume_quiet(struct sbuf *sb)
{
	sb->want_read = true;
	if (sb->fd < 0 || sb->failed || sb->connecting)
		return false;
	if (!sb->reading) {
		event_add(&sb->ev_read, NULL);
		sb->reading = true;
	}
	return evbuffer_get_length(sb->in) > 0;
}

/* Marks the socket dead and lets the owner hear of it from the loop. */
static void fail_later(struct sbuf *sb, int err)
{
	sb->error = err;
	sb->failed = true;
	event_del(&sb->ev_write);
	event_active(&sb->ev_read, EV_READ, 0);
}

/*
 * Writes what the kernel takes. send()/sendmsg() rather than writev(): on
 * sockets they skip the VFS layer, and MSG_NOSIGNAL spares us SIGPIPE.
 */
static ssize_t write_out(struct sbuf *sb)
{
	struct evbuffer_iovec vec[16];
	int n = evbuffer_peek(sb->out, -1, NULL, vec, ARRAY_SIZE(vec));
	if (n <= 0)
		return 0;
	if (n > (int)ARRAY_SIZE(vec))
		n = ARRAY_SIZE(vec);
	ssize_t w;
	if (n == 1) {
		w = send(sb->fd, vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL);
	} else {
		struct iovec iov[ARRAY_SIZE(vec)];
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = vec[i].iov_base;
			iov[i].iov_len = vec[i].iov_len;
		}
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		w = sendmsg(sb->fd, &msg, MSG_NOSIGNAL);
	}
	if (w > 0)
		evbuffer_drain(sb->out, (size_t)w);
	return w;
}

bool sbuf_flush(struct sbuf *sb)
{
	if (sb->fd < 0 || sb->failed)
		return false;
	if (sb->connecting)
		return true;
	while (evbuffer_get_length(sb->out) > 0) {
		ssize_t n = write_out(sb);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(&sb->ev_write, NULL);
			return true;
		}
		if (n < 0 && errno == EINTR)
			continue;
		fail_later(sb, n < 0 ? errno : EPIPE);
		return false;
	}
	event_del(&sb->ev_write);
	return true;
}

bool sbuf_send(struct sbuf *sb, const void *data, size_t len)
{
	if (sb->fd < 0 || sb->failed)
		return false;
	if (evbuffer_add(sb->out, data, len) != 0)
		die("out of memory queueing %zu bytes", len);
	return sbuf_flush(sb);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sbuf *sb = arg;
	if (sb->failed) {
		sb->cb(sb, SBUF_EV_EOF, sb->arg);
		return;
	}
	/* Woken by sbuf_resume() with input pending: no new bytes needed. */
	if (!(what & EV_READ) || !sb->reading) {
		if (evbuffer_get_length(sb->in) > 0 && sb->want_read)
			sb->cb(sb, SBUF_EV_READ, sb->arg);
		return;
	}

	/*
	 * sbuf_loopcnt: a full read suggests more is waiting, so read again
	 * (after the owner has handled this much) up to that many rounds, then
	 * let the loop serve other sockets; level-triggered, the event fires
	 * again for the rest. 0 = until the socket is drained.
	 */
	int rounds = 0;
again:;
	struct evbuffer_iovec vec[1];
	if (evbuffer_reserve_space(sb->in, read_size, vec, 1) != 1)
		die("out of memory reserving read buffer");
	size_t space = vec[0].iov_len;
	ssize_t n = recv(fd, vec[0].iov_base, space, 0);
	if (n < 0) {
		evbuffer_commit_space(sb->in, vec, 0);
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			if (rounds == 0 && evbuffer_get_length(sb->in) > 0)
				sb->cb(sb, SBUF_EV_READ, sb->arg);
			return;
		}
		sb->error = errno;
		sb->failed = true;
		sb->cb(sb, SBUF_EV_EOF, sb->arg);
		return;
	}
	if (n == 0) {
		evbuffer_commit_space(sb->in, vec, 0);
		sb->failed = true;
		sb->cb(sb, SBUF_EV_EOF, sb->arg);
		return;
	}
	vec[0].iov_len = (size_t)n;
	int nvec = 1;
	evbuffer_commit_space(sb->in, vec, nvec);
	sb->cb(sb, SBUF_EV_READ, sb->arg);
	/* The owner may have paused, closed or failed the socket meanwhile. */
	int loopcnt = cf ? cf->sbuf_loopcnt : 5;
	if ((size_t)n == space && (loopcnt == 0 || ++rounds < loopcnt) && sb->fd == fd &&
	    sb->reading && !sb->failed)
		goto again;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct sbuf *sb = arg;
	if (sb->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == EINPROGRESS)
			return;
		sb->connecting = false;
		event_del(&sb->ev_write);
		if (err) {
			sb->error = err;
			sb->failed = true;
			sb->cb(sb, SBUF_EV_CONNECT_FAILED, sb->arg);
			return;
		}
		if (sb->want_read)
			sbuf_resume(sb);
		sb->cb(sb, SBUF_EV_CONNECTED, sb->arg);
		return;
	}
	if (!sbuf_flush(sb))
		return;
	if (sb->notify_drain && sbuf_out_len(sb) < SBUF_OUT_HIGH) {
		sb->notify_drain = false;
		sb->cb(sb, SBUF_EV_DRAINED, sb->arg);
	}
}

enum proto_status sbuf_peek_header(struct evbuffer *in, uint32_t max_len, uint8_t *type,
                                   uint32_t *body_len, const char **err)
{
	uint8_t hdr[PROTO_HEADER_LEN];
	size_t avail = evbuffer_get_length(in);
	if (avail < PROTO_HEADER_LEN)
		return PROTO_INCOMPLETE;
	evbuffer_copyout(in, hdr, PROTO_HEADER_LEN);
	*type = hdr[0];
	return proto_read_header(hdr, avail, max_len, type, body_len, err);
}
