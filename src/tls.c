/*
 * OpenSSL contexts for both directions, built from client_tls_* and
 * server_tls_*, and the per-connection sessions made from them.
 *
 * Every file is read while the context is built, so a bad key or an
 * unreadable certificate is found at start or at RELOAD, with the file,
 * line and setting that named it, never at the first connection.
 *
 * Renegotiation is off in both directions: it is a denial-of-service lever
 * for clients, PostgreSQL does not use it, and without it a write never has
 * to wait for a read.
 */
#include "tls.h"
#include "log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct tls_contexts {
	SSL_CTX *client;           /* towards clients; NULL = client_tls_sslmode disable */
	SSL_CTX *server;           /* towards servers; NULL = server_tls_sslmode disable */
	enum tls_mode server_mode; /* what tls_server_session() checks */
};

static struct tls_contexts *installed;

/* Sets *err to "origin: setting: message[: OpenSSL's reason]" and clears OpenSSL's queue. */
static bool fail(char **err, const struct config *c, const char *setting, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static bool fail(char **err, const struct config *c, const char *setting, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	unsigned long e = ERR_peek_last_error();
	if (e) {
		char reason[256];
		ERR_error_string_n(e, reason, sizeof(reason));
		*err = xasprintf("%s: %s: %s: %s", config_origin(c, setting), setting, msg, reason);
	} else {
		*err = xasprintf("%s: %s: %s", config_origin(c, setting), setting, msg);
	}
	ERR_clear_error();
	return false;
}

/* OpenSSL's own messages for a missing file are obscure: say it plainly first. */
static bool readable(char **err, const struct config *c, const char *setting, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, c, setting, "cannot read %s: %s", path, strerror(errno));
	fclose(f);
	return true;
}

static bool set_protocols(SSL_CTX *ctx, const struct config *c, const char *setting,
                          const char *value, char **err)
{
	static const struct {
		unsigned bit;
		int version;
		uint64_t off;
	} versions[] = {
	    {CONFIG_TLS_V1_0, TLS1_VERSION, SSL_OP_NO_TLSv1},
	    {CONFIG_TLS_V1_1, TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
	    {CONFIG_TLS_V1_2, TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
	    {CONFIG_TLS_V1_3, TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
	};
	unsigned bits;
	char *why = NULL;
	if (!config_tls_protocols(value, &bits, &why)) {
		fail(err, c, setting, "%s", why);
		free(why);
		return false;
	}
	int lo = -1, hi = -1;
	for (int i = 0; i < (int)ARRAY_SIZE(versions); i++) {
		if (bits & versions[i].bit) {
			if (lo < 0)
				lo = i;
			hi = i;
		}
	}
	if (!SSL_CTX_set_min_proto_version(ctx, versions[lo].version) ||
	    !SSL_CTX_set_max_proto_version(ctx, versions[hi].version))
		return fail(err, c, setting, "cannot use \"%s\"", value);
	/* A gap in the list ("tlsv1.0,tlsv1.2") is switched off inside the range. */
	for (int i = lo; i <= hi; i++)
		if (!(bits & versions[i].bit))
			SSL_CTX_set_options(ctx, versions[i].off);
	return true;
}

/* PgBouncer's shortcuts all mean OpenSSL's defaults, except "all". */
static bool set_ciphers(SSL_CTX *ctx, const struct config *c, const char *setting,
                        const char *value, char **err)
{
	static const char *const defaults[] = {"default", "secure", "fast",
	                                       "normal",  "compat", "legacy"};
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		if (strcasecmp(value, defaults[i]) == 0)
			return true;
	const char *list =
	    strcasecmp(value, "all") == 0 || strcasecmp(value, "insecure") == 0 ? "ALL" : value;
	if (!SSL_CTX_set_cipher_list(ctx, list))
		return fail(err, c, setting, "no usable cipher in \"%s\"", value);
	return true;
}

static bool set_tls13_ciphers(SSL_CTX *ctx, const struct config *c, const char *setting,
                              const char *value, char **err)
{
	if (value && !SSL_CTX_set_ciphersuites(ctx, value))
		return fail(err, c, setting, "invalid TLS 1.3 cipher suites \"%s\"", value);
	return true;
}

/* Settings both directions share. */
static SSL_CTX *new_context(const SSL_METHOD *method, const struct config *c, const char *prefix,
                            const char *protocols, const char *ciphers, const char *tls13_ciphers,
                            char **err)
{
	char protocols_name[64], ciphers_name[64], tls13_name[64];
	snprintf(protocols_name, sizeof(protocols_name), "%s_tls_protocols", prefix);
	snprintf(ciphers_name, sizeof(ciphers_name), "%s_tls_ciphers", prefix);
	snprintf(tls13_name, sizeof(tls13_name), "%s_tls13_ciphers", prefix);
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		fail(err, c, protocols_name, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* What sbuf's non-blocking writes rely on (see write_out_tls()). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (!set_protocols(ctx, c, protocols_name, protocols, err) ||
	    !set_ciphers(ctx, c, ciphers_name, ciphers, err) ||
	    !set_tls13_ciphers(ctx, c, tls13_name, tls13_ciphers, err)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static bool load_key_pair(SSL_CTX *ctx, const struct config *c, const char *key_setting,
                          const char *key, const char *cert_setting, const char *cert, char **err)
{
	if (!readable(err, c, cert_setting, cert) || !readable(err, c, key_setting, key))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return fail(err, c, cert_setting, "cannot load certificate %s", cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return fail(err, c, key_setting, "cannot load private key %s", key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(err, c, key_setting, "private key %s does not match certificate %s",
		            key, cert);
	return true;
}

static bool load_ca(SSL_CTX *ctx, const struct config *c, const char *setting, const char *path,
                    char **err)
{
	if (!readable(err, c, setting, path))
		return false;
	if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
		return fail(err, c, setting, "cannot load CA certificates from %s", path);
	return true;
}

static bool set_key_exchange(SSL_CTX *ctx, const struct config *c, char **err)
{
	const char *curve = c->client_tls_ecdhcurve;
	if (strcasecmp(curve, "none") == 0) {
		/* Finite-field groups only: no elliptic curve is offered. */
		if (!SSL_CTX_set1_groups_list(ctx, "ffdhe2048:ffdhe3072:ffdhe4096"))
			return fail(err, c, "client_tls_ecdhcurve", "cannot disable ECDH");
	} else if (strcasecmp(curve, "auto") != 0 && !SSL_CTX_set1_groups_list(ctx, curve)) {
		return fail(err, c, "client_tls_ecdhcurve", "unknown curve \"%s\"", curve);
	}
	/* OpenSSL 3 sizes the DH group to the certificate's key: "legacy" gets the same. */
	if (strcasecmp(c->client_tls_dheparams, "none") != 0)
		SSL_CTX_set_dh_auto(ctx, 1);
	return true;
}

static SSL_CTX *client_context(const struct config *c, char **err)
{
	enum tls_mode mode = c->client_tls_sslmode;
	if (!c->client_tls_key_file || !c->client_tls_cert_file) {
		fail(err, c, "client_tls_sslmode",
		     "\"%s\" needs client_tls_key_file and client_tls_cert_file",
		     config_tls_mode_name(mode));
		return NULL;
	}
	if (mode >= TLS_MODE_VERIFY_CA && !c->client_tls_ca_file) {
		fail(err, c, "client_tls_sslmode",
		     "\"%s\" needs client_tls_ca_file to check "
		     "client certificates against",
		     config_tls_mode_name(mode));
		return NULL;
	}
	SSL_CTX *ctx = new_context(TLS_server_method(), c, "client", c->client_tls_protocols,
	                           c->client_tls_ciphers, c->client_tls13_ciphers, err);
	if (!ctx)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Each process its own cache: sessions cannot be resumed across a restart anyway. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (!load_key_pair(ctx, c, "client_tls_key_file", c->client_tls_key_file,
	                   "client_tls_cert_file", c->client_tls_cert_file, err) ||
	    !set_key_exchange(ctx, c, err))
		goto failed;
	if (c->client_tls_ca_file) {
		if (!load_ca(ctx, c, "client_tls_ca_file", c->client_tls_ca_file, err))
			goto failed;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_tls_ca_file);
		if (!names) {
			fail(err, c, "client_tls_ca_file", "no CA certificate in %s",
			     c->client_tls_ca_file);
			goto failed;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		/*
		 * A certificate is asked for in every mode once a CA is known
		 * (cert authentication needs one under "require" too) and, when
		 * sent, must verify; verify-ca and verify-full also demand one.
		 */
		int flags = SSL_VERIFY_PEER;
		if (mode >= TLS_MODE_VERIFY_CA)
			flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, flags, NULL);
	}
	return ctx;
failed:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *server_context(const struct config *c, char **err)
{
	enum tls_mode mode = c->server_tls_sslmode;
	if (!c->server_tls_key_file != !c->server_tls_cert_file) {
		fail(err, c,
		     c->server_tls_key_file ? "server_tls_key_file" : "server_tls_cert_file",
		     "a client certificate for servers needs both server_tls_key_file and "
		     "server_tls_cert_file");
		return NULL;
	}
	SSL_CTX *ctx = new_context(TLS_client_method(), c, "server", c->server_tls_protocols,
	                           c->server_tls_ciphers, c->server_tls13_ciphers, err);
	if (!ctx)
		return NULL;
	if (c->server_tls_key_file &&
	    !load_key_pair(ctx, c, "server_tls_key_file", c->server_tls_key_file,
	                   "server_tls_cert_file", c->server_tls_cert_file, err))
		goto failed;
	if (c->server_tls_ca_file) {
		if (!load_ca(ctx, c, "server_tls_ca_file", c->server_tls_ca_file, err))
			goto failed;
	} else if (mode >= TLS_MODE_VERIFY_CA && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		fail(err, c, "server_tls_ca_file",
		     "not set, and the system's CA store cannot be "
		     "loaded");
		goto failed;
	}
	SSL_CTX_set_verify(ctx, mode >= TLS_MODE_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	                   NULL);
	return ctx;
failed:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_contexts *tls_load(const struct config *c, char **err)
{
	ERR_clear_error();
	if (c->auth_type == AUTH_TYPE_CERT &&
	    (c->client_tls_sslmode == TLS_MODE_DISABLE || !c->client_tls_ca_file)) {
		fail(err, c, "auth_type",
		     "cert needs client_tls_sslmode other than disable and client_tls_ca_file");
		return NULL;
	}
	struct tls_contexts *t = xcalloc(1, sizeof(*t));
	t->server_mode = c->server_tls_sslmode;
	if (c->client_tls_sslmode != TLS_MODE_DISABLE) {
		t->client = client_context(c, err);
		if (!t->client)
			goto failed;
	}
	if (c->server_tls_sslmode != TLS_MODE_DISABLE) {
		t->server = server_context(c, err);
		if (!t->server)
			goto failed;
	}
	return t;
failed:
	tls_free(t);
	return NULL;
}

void tls_free(struct tls_contexts *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->client);
	SSL_CTX_free(t->server);
	free(t);
}

void tls_install(struct tls_contexts *t)
{
	tls_free(installed);
	installed = t;
}

bool tls_is_setting(const char *name)
{
	return strncmp(name, "client_tls", 10) == 0 || strncmp(name, "server_tls", 10) == 0;
}

struct ssl_st *tls_client_session(void)
{
	if (!installed || !installed->client)
		return NULL;
	SSL *ssl = SSL_new(installed->client);
	if (!ssl) {
		log_error("TLS: cannot create a session for a client");
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

static bool is_ip_address(const char *host)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
	if (!ip) {
		ERR_clear_error();
		return false;
	}
	ASN1_OCTET_STRING_free(ip);
	return true;
}

struct ssl_st *tls_server_session(const char *host)
{
	if (!installed || !installed->server)
		return NULL;
	SSL *ssl = SSL_new(installed->server);
	if (!ssl)
		goto failed;
	SSL_set_connect_state(ssl);
	bool ip = is_ip_address(host);
	/* SNI carries names only; RFC 6066 forbids addresses there. */
	if (!ip && !SSL_set_tlsext_host_name(ssl, host))
		goto failed;
	if (installed->server_mode == TLS_MODE_VERIFY_FULL) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1
		       : X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
			goto failed;
	}
	return ssl;
failed:
	log_error("TLS: cannot create a session for server %s", host);
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

const char *tls_describe(struct ssl_st *ssl, char *buf, size_t len)
{
	const char *cipher = SSL_get_cipher_name(ssl);
	int n = snprintf(buf, len, "%s/%s", SSL_get_version(ssl), cipher ? cipher : "none");
	int group = SSL_get_negotiated_group(ssl);
	const char *name = group > 0 ? OBJ_nid2sn(group) : NULL;
	if (name && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "/%s=%s",
		         strncmp(name, "ffdhe", 5) == 0 ? "DH" : "ECDH", name);
	return buf;
}

bool tls_peer_common_name(struct ssl_st *ssl, char *buf, size_t len)
{
	if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return false;
	bool ok = false;
	X509_NAME *subject = X509_get_subject_name(cert);
	int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	/* Two common names would make "the" name a matter of which one we read. */
	if (at >= 0 && X509_NAME_get_index_by_NID(subject, NID_commonName, at) < 0) {
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(
		    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
		if (n >= 0 && (size_t)n < len && !memchr(utf8, '\0', (size_t)n)) {
			memcpy(buf, utf8, (size_t)n);
			buf[n] = '\0';
			ok = true;
		}
		OPENSSL_free(utf8);
	}
	X509_free(cert);
	ERR_clear_error();
	return ok;
}
