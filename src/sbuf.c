/*
 * Socket buffers over raw libevent events. We recv() into space reserved
 * in the input evbuffer (no FIONREAD round trip per read, no copy) and
 * send() straight from the output chains.
 *
 * With TLS the same two events drive OpenSSL on a non-blocking socket:
 * SSL_read() into the reserved space, SSL_write() from the head of the
 * output. OpenSSL may need the opposite direction (a read that must send
 * a key update, a write during a handshake): the tls_*_wants_* flags
 * remember which call to repeat when that event fires.
 */
#include "sbuf.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
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

/*
 * A close_notify tells the peer the stream ended on purpose (not a
 * truncation); best effort, never waited for. Not after a fatal error or
 * mid-handshake, where OpenSSL forbids it.
 */
static void free_tls(struct sbuf *sb, bool say_goodbye)
{
	if (!sb->ssl)
		return;
	if (say_goodbye && sb->fd >= 0 && !sb->tls_broken && !sb->tls_handshaking) {
		ERR_clear_error();
		SSL_shutdown(sb->ssl);
	}
	ERR_clear_error();
	SSL_free(sb->ssl);
	sb->ssl = NULL;
	sb->tls_handshaking = sb->tls_read_wants_write = sb->tls_write_wants_read = false;
}

void sbuf_close(struct sbuf *sb)
{
	free_tls(sb, true);
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
	free_tls(sb, false);
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
	/* The handshake reads for itself; the owner's wish applies once it is done. */
	if (sb->reading && !sb->tls_handshaking) {
		event_del(&sb->ev_read);
		sb->reading = false;
	}
}

void sbuf_resume(struct sbuf *sb)
{
	sb->want_read = true;
	if (sb->fd < 0 || sb->failed || sb->connecting || sb->tls_handshaking)
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
	if (sb->fd < 0 || sb->failed || sb->connecting || sb->tls_handshaking)
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

/* Remembers the first OpenSSL error of a failure: later ones are consequences. */
static void note_tls_failure(struct sbuf *sb)
{
	unsigned long e = ERR_peek_error();
	if (!sb->tls_error)
		sb->tls_error = e;
	sb->tls_broken = true;
	ERR_clear_error();
}

/* One TLS record's worth of plaintext: larger writes gain nothing. */
#define TLS_WRITE_CHUNK 16384

/*
 * As write_out(), through SSL_write(). The head of the output is made
 * contiguous so that small queued messages share a record. A retried
 * write after WANT_WRITE starts at the same bytes, possibly with more
 * behind them, which SSL_MODE_ENABLE_PARTIAL_WRITE and
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (set by tls.c) allow.
 */
static ssize_t write_out_tls(struct sbuf *sb)
{
	size_t len = evbuffer_get_length(sb->out);
	if (len > TLS_WRITE_CHUNK)
		len = TLS_WRITE_CHUNK;
	unsigned char *data = evbuffer_pullup(sb->out, (ssize_t)len);
	if (!data)
		die("out of memory preparing a TLS write");
	ERR_clear_error();
	int n = SSL_write(sb->ssl, data, (int)len);
	if (n > 0) {
		evbuffer_drain(sb->out, (size_t)n);
		return n;
	}
	int saved_errno = errno;
	switch (SSL_get_error(sb->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_READ:
		/* Only renegotiation makes a write read, and tls.c turns it off; still, wait for
		 * it. */
		sb->tls_write_wants_read = true;
		if (!sb->reading) {
			event_add(&sb->ev_read, NULL);
			sb->reading = true;
		}
		errno = EINPROGRESS;
		return -1;
	case SSL_ERROR_SYSCALL:
		note_tls_failure(sb);
		errno = saved_errno ? saved_errno : EPIPE;
		return -1;
	default:
		note_tls_failure(sb);
		errno = EPROTO;
		return -1;
	}
}

bool sbuf_flush(struct sbuf *sb)
{
	if (sb->fd < 0 || sb->failed)
		return false;
	/* Output waits for the connect, or for the handshake, which flushes it when done. */
	if (sb->connecting || sb->tls_handshaking)
		return true;
	while (evbuffer_get_length(sb->out) > 0) {
		ssize_t n = sb->ssl ? write_out_tls(sb) : write_out(sb);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(&sb->ev_write, NULL);
			return true;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINPROGRESS) /* TLS: waits for the socket to be readable */
			return true;
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

static void tls_on_read(struct sbuf *sb, short what);
static bool tls_on_write(struct sbuf *sb);

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sbuf *sb = arg;
	if (sb->failed) {
		sb->cb(sb, SBUF_EV_EOF, sb->arg);
		return;
	}
	/* One test keeps TLS off the plain path. */
	if (sb->ssl) {
		tls_on_read(sb, what);
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
	if (sb->ssl && tls_on_write(sb))
		return;
	if (!sbuf_flush(sb))
		return;
	if (sb->notify_drain && sbuf_out_len(sb) < SBUF_OUT_HIGH) {
		sb->notify_drain = false;
		sb->cb(sb, SBUF_EV_DRAINED, sb->arg);
	}
}

/* TLS */

static void tls_handshake(struct sbuf *sb);
static void tls_read(struct sbuf *sb);

static void tls_on_read(struct sbuf *sb, short what)
{
	if (sb->tls_handshaking) {
		tls_handshake(sb);
		return;
	}
	if (!(what & EV_READ) || !sb->reading) {
		if (evbuffer_get_length(sb->in) > 0 && sb->want_read)
			sb->cb(sb, SBUF_EV_READ, sb->arg);
		return;
	}
	tls_read(sb);
}

/* The socket is writable: true if that was all TLS needed it for. */
static bool tls_on_write(struct sbuf *sb)
{
	if (sb->tls_handshaking) {
		tls_handshake(sb);
		return true;
	}
	if (sb->tls_read_wants_write) {
		/* Repeat the read from the loop, as if the socket had become readable. */
		sb->tls_read_wants_write = false;
		event_active(&sb->ev_read, EV_READ, 0);
		if (evbuffer_get_length(sb->out) == 0) {
			event_del(&sb->ev_write);
			return true;
		}
	}
	return false;
}

bool sbuf_start_tls(struct sbuf *sb, struct ssl_st *ssl)
{
	if (sb->fd < 0 || sb->failed || sb->ssl || evbuffer_get_length(sb->in) > 0 ||
	    evbuffer_get_length(sb->out) > 0 || !SSL_set_fd(ssl, sb->fd)) {
		SSL_free(ssl);
		ERR_clear_error();
		return false;
	}
	sb->ssl = ssl;
	sb->tls_handshaking = true;
	sb->tls_error = 0;
	/*
	 * The first step runs from the loop (a fresh socket is writable at
	 * once), so the owner never hears of the handshake from inside this call.
	 */
	if (!sb->reading) {
		event_add(&sb->ev_read, NULL);
		sb->reading = true;
	}
	event_add(&sb->ev_write, NULL);
	return true;
}

/* Both sides of a handshake: one step each time the socket is ready. */
static void tls_handshake(struct sbuf *sb)
{
	ERR_clear_error();
	int rc = SSL_do_handshake(sb->ssl);
	if (rc == 1) {
		sb->tls_handshaking = false;
		event_del(&sb->ev_write);
		/* Back to what the owner asked for. */
		if (!sb->want_read && sb->reading) {
			event_del(&sb->ev_read);
			sb->reading = false;
		} else if (sb->want_read && !sb->reading) {
			event_add(&sb->ev_read, NULL);
			sb->reading = true;
		}
		if (evbuffer_get_length(sb->out) > 0 && !sbuf_flush(sb))
			return;
		sb->cb(sb, SBUF_EV_TLS_READY, sb->arg);
		return;
	}
	int saved_errno = errno;
	switch (SSL_get_error(sb->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		event_del(&sb->ev_write);
		if (!sb->reading) {
			event_add(&sb->ev_read, NULL);
			sb->reading = true;
		}
		return;
	case SSL_ERROR_WANT_WRITE:
		event_add(&sb->ev_write, NULL);
		return;
	case SSL_ERROR_SYSCALL:
		sb->error = saved_errno;
		break;
	default:
		break;
	}
	note_tls_failure(sb);
	sb->failed = true;
	event_del(&sb->ev_write);
	sb->cb(sb, SBUF_EV_TLS_FAILED, sb->arg);
}

/*
 * Reads what the socket has, and then whatever OpenSSL still holds
 * decrypted (SSL_pending): no event would wake us for those bytes. An end
 * of stream or an error after some data is reported from the loop, after
 * the data.
 */
static void tls_read(struct sbuf *sb)
{
	if (sb->tls_write_wants_read) {
		sb->tls_write_wants_read = false;
		if (!sbuf_flush(sb))
			return;
		if (!sb->want_read) {
			event_del(&sb->ev_read);
			sb->reading = false;
			return;
		}
	}
	bool got = false;
	for (;;) {
		struct evbuffer_iovec vec[1];
		if (evbuffer_reserve_space(sb->in, read_size, vec, 1) != 1)
			die("out of memory reserving read buffer");
		ERR_clear_error();
		int n = SSL_read(sb->ssl, vec[0].iov_base, (int)vec[0].iov_len);
		if (n > 0) {
			vec[0].iov_len = (size_t)n;
			evbuffer_commit_space(sb->in, vec, 1);
			got = true;
			if (SSL_pending(sb->ssl) > 0)
				continue;
			break;
		}
		evbuffer_commit_space(sb->in, vec, 0);
		int saved_errno = errno;
		int e = SSL_get_error(sb->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			sb->tls_read_wants_write = true;
			event_add(&sb->ev_write, NULL);
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			/* close_notify: a clean end of the stream. */
			ERR_clear_error();
		} else {
			note_tls_failure(sb);
			sb->error = e == SSL_ERROR_SYSCALL ? saved_errno : EPROTO;
		}
		if (!got) {
			sb->failed = true;
			sb->cb(sb, SBUF_EV_EOF, sb->arg);
			return;
		}
		fail_later(sb, sb->error);
		break;
	}
	if (got)
		sb->cb(sb, SBUF_EV_READ, sb->arg);
}

const char *sbuf_tls_error(const struct sbuf *sb, char *buf, size_t len)
{
	if (sb->ssl) {
		long verify = SSL_get_verify_result(sb->ssl);
		if (verify != X509_V_OK) {
			snprintf(buf, len, "certificate verification failed: %s",
			         X509_verify_cert_error_string(verify));
			return buf;
		}
	}
	if (sb->tls_error) {
		char reason[256];
		ERR_error_string_n(sb->tls_error, reason, sizeof(reason));
		snprintf(buf, len, "%s", reason);
	} else if (sb->error) {
		snprintf(buf, len, "%s", strerror(sb->error));
	} else {
		snprintf(buf, len, "connection closed by peer");
	}
	return buf;
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
