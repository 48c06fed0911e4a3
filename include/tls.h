/*
 * OpenSSL contexts built from the configuration, one per direction:
 * towards clients the pooler is the TLS server (client_tls_*), towards
 * PostgreSQL it is the TLS client (server_tls_*). Sessions are made here
 * with their role and checks set, then handed to an sbuf, which runs the
 * handshake and the I/O.
 *
 * Loading is all or nothing: tls_load() builds both contexts (reading
 * every key, certificate and CA file) before anything changes, and
 * tls_install() swaps them in. A session holds a reference to the context
 * it came from, so connections made before a reload keep theirs; new
 * connections use the new certificates.
 */
#ifndef PGSIEVE_TLS_H
#define PGSIEVE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "util.h"

struct ssl_st;
struct tls_contexts;

/*
 * Builds the contexts c asks for. On failure returns NULL and sets *err
 * (to free) naming the file, line and setting at fault.
 */
struct tls_contexts *tls_load(const struct config *c, char **err) MUST_CHECK;
/* Makes ctxs the contexts in force and frees the previous ones. */
void tls_install(struct tls_contexts *ctxs);
void tls_free(struct tls_contexts *ctxs);

/* True if name is a client_tls_* or server_tls_* setting. */
bool tls_is_setting(const char *name);

/*
 * A session for a client that asked for TLS, or NULL when TLS towards
 * clients is off (client_tls_sslmode = disable).
 */
struct ssl_st *tls_client_session(void);

/*
 * A session for a server connection to host (a name or an address, as
 * configured): SNI for names, and with verify-full the name or address
 * the certificate must match. NULL when TLS towards servers is off.
 */
struct ssl_st *tls_server_session(const char *host);

/* PgBouncer's SHOW CLIENTS form: "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519". */
const char *tls_describe(struct ssl_st *ssl, char *buf, size_t len);

/*
 * The common name of the peer's certificate, when the peer sent one and
 * it verified against the configured CA; false otherwise (also when the
 * name is longer than len or holds a NUL byte).
 */
bool tls_peer_common_name(struct ssl_st *ssl, char *buf, size_t len) MUST_CHECK;

#endif
