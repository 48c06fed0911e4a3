/*
 * Outgoing HTTP and HTTPS requests (the OIDC key set; webhooks), on
 * libevent's evhttp in the pooler's loop. Nothing blocks: the host name is
 * resolved by c-ares (dns.h) and the connection made to the address it
 * gives, with the name kept for the Host header, SNI and the certificate
 * check. Every request is bounded: a deadline for the whole of it and a
 * limit on the size of the answer.
 */
#ifndef PGSIEVE_FETCH_H
#define PGSIEVE_FETCH_H

#include <stddef.h>

#include "util.h"

struct fetch;

/*
 * The answer: status is the HTTP status (0 when there was none), body its
 * body (NUL-terminated), err NULL or why the request failed (connection,
 * TLS, timeout, size). Called exactly once, later, from the loop, unless
 * the request is cancelled first; body and err live only during the call.
 */
typedef void (*fetch_callback)(void *arg, int status, const char *body, size_t len,
                               const char *err);

struct fetch_request {
	const char *method; /* "GET", "POST" */
	const char *url;    /* http:// or https:// */
	const char *content_type;
	const char *body; /* NULL: none */
	size_t body_len;
	const char *ca_file; /* HTTPS: trusted CAs; NULL: the system's */
	usec_t timeout;
	size_t max_size; /* of the answer's body */
};

/*
 * Starts a request. NULL and *err when it cannot even start (a malformed
 * URL, an unsupported scheme, an unusable ca_file).
 */
struct fetch *fetch_start(const struct fetch_request *req, fetch_callback cb, void *arg,
                          char **err) MUST_CHECK;

/* The callback will not be called; what is in flight ends on its own deadline. */
void fetch_cancel(struct fetch *f);

/* At exit: every request still in flight is dropped. */
void fetch_shutdown(void);

#endif
