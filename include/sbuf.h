/*
 * Buffered non-blocking sockets. An sbuf owns a socket, an input and an
 * output evbuffer and two libevent events. It never interprets bytes: the
 * owner (client or server) is called back with an event and walks the
 * input itself, message by message, moving what it forwards into the
 * peer's output without copying whole buffer chains.
 *
 * Writes are attempted at once; only what the kernel does not take waits
 * for the socket to become writable. The owner applies back-pressure by
 * pausing reads while the peer's output is over SBUF_OUT_HIGH, and gets
 * SBUF_EV_DRAINED when it falls back under.
 *
 * A write error is not reported from inside sbuf_flush() (the caller may
 * be in the middle of handling the peer); it is delivered as SBUF_EV_EOF
 * from the loop.
 *
 * TLS: sbuf_start_tls() puts an SSL session (set up by tls.c) on an open
 * socket. The handshake then runs inside the sbuf, on the same two events,
 * and ends with SBUF_EV_TLS_READY or SBUF_EV_TLS_FAILED; output queued
 * meanwhile waits for it. After that the owner sees plaintext exactly as
 * on a plain socket. OpenSSL never keeps decrypted bytes the owner has
 * not seen: each read drains SSL_pending() into sb->in, because no
 * socket event would announce them.
 */
#ifndef PGSIEVE_SBUF_H
#define PGSIEVE_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "proto.h"
#include "util.h"

/* Output above this pauses whoever feeds it. */
#define SBUF_OUT_HIGH (256 * 1024)

enum sbuf_event {
	SBUF_EV_READ,           /* new bytes in sb->in */
	SBUF_EV_EOF,            /* peer closed, or a read or write failed */
	SBUF_EV_CONNECTED,      /* sbuf_connect() finished */
	SBUF_EV_CONNECT_FAILED, /* sb->error has errno */
	SBUF_EV_DRAINED,        /* output fell under SBUF_OUT_HIGH after being over it */
	SBUF_EV_TLS_READY,      /* the TLS handshake finished */
	SBUF_EV_TLS_FAILED,     /* the TLS handshake failed; sbuf_tls_error() says why */
};

struct ssl_st;

struct sbuf;
typedef void (*sbuf_callback)(struct sbuf *sb, enum sbuf_event ev, void *arg);

struct sbuf {
	int fd;
	struct event ev_read;
	struct event ev_write;
	struct evbuffer *in;
	struct evbuffer *out;
	sbuf_callback cb;
	void *arg;
	int error;         /* errno of the last failure */
	bool reading;      /* ev_read is armed */
	bool want_read;    /* the owner wants input (not paused) */
	bool connecting;   /* a non-blocking connect is in flight */
	bool failed;       /* EOF or error seen; only close is left */
	bool notify_drain; /* someone was paused on our output */
	bool is_unix;
	/* TLS: NULL on a plain socket (the fast path tests only this). */
	struct ssl_st *ssl;
	bool tls_handshaking;      /* SSL_do_handshake() has not finished */
	bool tls_read_wants_write; /* SSL_read() must be retried once the socket is writable */
	bool tls_write_wants_read; /* SSL_write() must be retried once the socket is readable */
	bool tls_broken;           /* a fatal TLS error: no close_notify may follow */
	unsigned long tls_error;   /* OpenSSL's code for the first failure, 0 if none */
	/* Bytes of the current message still to be moved to the peer (streaming). */
	size_t pkt_remaining;
};

/* Set up once for the process: the loop and the read size. */
void sbuf_setup(struct event_base *base, int pkt_buf);

void sbuf_init(struct sbuf *sb, sbuf_callback cb, void *arg);
/* Adopts an accepted socket and starts reading. */
bool sbuf_accept(struct sbuf *sb, int fd, bool is_unix) MUST_CHECK;
/* Starts a non-blocking connect; the result comes as an event. */
bool sbuf_connect(struct sbuf *sb, const struct sockaddr *sa, socklen_t len) MUST_CHECK;
/* Closes the socket and frees the buffers; the sbuf may be initialized again. */
void sbuf_close(struct sbuf *sb);
/*
 * Closes only our descriptor, silently, keeping (empty) buffers so the
 * owner can be torn down as usual: the socket lives on in the process
 * we handed it to (online restart).
 */
void sbuf_abandon(struct sbuf *sb);

void sbuf_pause(struct sbuf *sb);
void sbuf_resume(struct sbuf *sb);
/*
 * Re-arms reading without scheduling a callback for buffered input;
 * returns true if input is waiting, for a caller that handles it at once.
 */
bool sbuf_resume_quiet(struct sbuf *sb);

/*
 * Hands ssl (made by tls.c, its role set) to an open socket and starts
 * the handshake; the sbuf owns ssl from here on, also on failure. Refused
 * when bytes are buffered either way: they were sent or received in
 * clear text and must not be mistaken for part of the TLS stream.
 */
bool sbuf_start_tls(struct sbuf *sb, struct ssl_st *ssl) MUST_CHECK;

static inline bool sbuf_is_tls(const struct sbuf *sb)
{
	return sb->ssl != NULL;
}

/* Why the handshake (or a later TLS read or write) failed, into buf. */
const char *sbuf_tls_error(const struct sbuf *sb, char *buf, size_t len);

/* Tries to write out; false if the socket failed (an EOF event follows). */
bool sbuf_flush(struct sbuf *sb);
/* Appends bytes to the output and flushes. */
bool sbuf_send(struct sbuf *sb, const void *data, size_t len);

static inline size_t sbuf_out_len(const struct sbuf *sb)
{
	return evbuffer_get_length(sb->out);
}

static inline bool sbuf_is_open(const struct sbuf *sb)
{
	return sb->fd >= 0;
}

/*
 * The header of the next message in a buffer, checked against max_len:
 * PROTO_INCOMPLETE until its five bytes are in. *type is set even when
 * the length is bad, so the error can name the message.
 */
enum proto_status sbuf_peek_header(struct evbuffer *in, uint32_t max_len, uint8_t *type,
                                   uint32_t *body_len, const char **err) MUST_CHECK;

/* Applies TCP options from the configuration (nodelay, keepalive, buffers). */
void sbuf_tune_tcp(int fd);

#endif
