/*
 * SCRAM-SHA-256 for both sides of the pooler. Hashing, HMAC, PBKDF2 and
 * random bytes come from OpenSSL; this file only parses, formats and
 * combines. Base64 is our own because OpenSSL's block decoder accepts
 * whitespace and non-canonical padding, and the peer's messages must be
 * read strictly.
 *
 * Messages are split on ',' into "x=value" attributes before anything is
 * looked at, so every check below works on bounded spans of a message
 * already known to be short and free of NUL bytes.
 *
 * Keys and passwords are wiped with OPENSSL_cleanse when no longer needed;
 * error messages never carry a password, a proof or a key.
 */
#include "scram.h"
#include "base64.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SECRET_PREFIX   "SCRAM-SHA-256$"
#define RAW_NONCE_LEN   18 /* PostgreSQL's: 24 base64 characters */
#define MAX_ATTRS       16
#define MAX_GS2_HEADER  8
#define AUTH_FAILED_MSG "password authentication failed"

/* ---- crypto primitives ---- */

static bool sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;
	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SCRAM_KEY_LEN;
}

static bool hmac256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;
	if (key_len > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) != NULL &&
	       n == SCRAM_KEY_LEN;
}

static void xor_keys(const uint8_t *a, const uint8_t *b, uint8_t *out)
{
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		out[i] = a[i] ^ b[i];
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ---- SASLprep (RFC 4013), the part we can do without Unicode tables ---- */

/* Decodes one UTF-8 sequence, rejecting overlongs and surrogates. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* RFC 3454 C.1.2, non-ASCII space characters (PostgreSQL maps U+200B here too). */
static bool is_nonascii_space(uint32_t cp)
{
	return cp == 0x00a0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200b) || cp == 0x202f ||
	       cp == 0x205f || cp == 0x3000;
}

/* RFC 3454 B.1, commonly mapped to nothing. */
static bool is_mapped_to_nothing(uint32_t cp)
{
	return cp == 0x00ad || cp == 0x034f || cp == 0x1806 || (cp >= 0x180b && cp <= 0x180d) ||
	       (cp >= 0x200b && cp <= 0x200d) || cp == 0x2060 || (cp >= 0xfe00 && cp <= 0xfe0f) ||
	       cp == 0xfeff;
}

/*
 * The password bytes SCRAM keys are derived from, malloc'd. PostgreSQL
 * uses an ASCII password as it is, and falls back to the raw bytes when
 * SASLprep fails. Without normalisation tables we apply the mapping step
 * only: if the mapped result is printable ASCII it is exactly what full
 * SASLprep yields; otherwise we use the raw bytes, which agrees with
 * PostgreSQL for passwords already in NFKC without prohibited characters
 * or mapped ones.
 */
static char *saslprep(const char *password)
{
	const unsigned char *s = (const unsigned char *)password;
	size_t n = strlen(password);
	bool ascii = true;
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			ascii = false;
	if (ascii)
		return xstrdup(password);

	char *out = xmalloc(n + 1);
	size_t o = 0;
	bool usable = true;
	for (size_t i = 0; i < n && usable;) {
		uint32_t cp;
		size_t len = utf8_decode(s + i, n - i, &cp);
		if (len == 0) {
			usable = false;
			break;
		}
		i += len;
		if (is_nonascii_space(cp))
			out[o++] = ' ';
		else if (is_mapped_to_nothing(cp))
			continue;
		else if (cp >= 0x20 && cp < 0x7f)
			out[o++] = (char)cp;
		else
			usable = false; /* non-ASCII or control left: not ours to judge */
	}
	if (!usable) {
		OPENSSL_cleanse(out, n + 1);
		free(out);
		return xstrdup(password);
	}
	out[o] = '\0';
	return out;
}

/* SaltedPassword, then ClientKey and ServerKey. */
static bool derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	char *prepped = saslprep(password);
	size_t plen = strlen(prepped);
	bool ok = plen <= INT_MAX && salt_len <= INT_MAX && iterations >= 1 &&
	          PKCS5_PBKDF2_HMAC(prepped, (int)plen, salt, (int)salt_len, iterations,
	                            EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
	          hmac256(salted, sizeof(salted), "Client Key", 10, client_key) &&
	          hmac256(salted, sizeof(salted), "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	wipe_free(prepped);
	return ok;
}

/* ---- secrets ---- */

/* Decimal without sign or leading zeros, within [min, max]. */
static bool parse_int(const char *s, size_t n, long min, long max, int *out)
{
	if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

bool scram_parse_secret(const char *secret, struct scram_secret *out)
{
	memset(out, 0, sizeof(*out));
	size_t plen = strlen(SECRET_PREFIX);
	if (!secret || strncmp(secret, SECRET_PREFIX, plen) != 0)
		return false;
	const char *iter = secret + plen;
	const char *colon1 = strchr(iter, ':');
	if (!colon1)
		return false;
	const char *salt = colon1 + 1;
	const char *dollar = strchr(salt, '$');
	if (!dollar)
		return false;
	const char *stored = dollar + 1;
	const char *colon2 = strchr(stored, ':');
	if (!colon2)
		return false;
	const char *server = colon2 + 1;
	size_t server_len = strlen(server);

	struct scram_secret s;
	memset(&s, 0, sizeof(s));
	size_t n;
	bool ok =
	    parse_int(iter, (size_t)(colon1 - iter), 1, INT_MAX, &s.iterations) &&
	    base64_decode(salt, (size_t)(dollar - salt), s.salt, sizeof(s.salt), &s.salt_len) &&
	    s.salt_len > 0 &&
	    base64_decode(stored, (size_t)(colon2 - stored), s.stored_key, SCRAM_KEY_LEN, &n) &&
	    n == SCRAM_KEY_LEN &&
	    base64_decode(server, server_len, s.server_key, SCRAM_KEY_LEN, &n) &&
	    n == SCRAM_KEY_LEN;
	if (ok)
		*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

bool scram_secret_build(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	memset(out, 0, sizeof(*out));
	if (!password || salt_len < 1 || salt_len > SCRAM_MAX_SALT_LEN || iterations < 1)
		return false;
	bool ok = derive_keys(password, salt, salt_len, iterations, client_key, out->server_key) &&
	          sha256(client_key, sizeof(client_key), out->stored_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (!ok) {
		OPENSSL_cleanse(out, sizeof(*out));
		return false;
	}
	memcpy(out->salt, salt, salt_len);
	out->salt_len = salt_len;
	out->iterations = iterations;
	return true;
}

void scram_secret_from_password(const char *password, int iterations, struct scram_secret *out)
{
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    !scram_secret_build(password, salt, sizeof(salt), iterations, out))
		memset(out, 0, sizeof(*out)); /* iterations 0: refused later */
}

char *scram_secret_format(const struct scram_secret *secret)
{
	char *salt = base64_encode(secret->salt, secret->salt_len);
	char *stored = base64_encode(secret->stored_key, SCRAM_KEY_LEN);
	char *server = base64_encode(secret->server_key, SCRAM_KEY_LEN);
	char *s = xasprintf(SECRET_PREFIX "%d:%s$%s:%s", secret->iterations, salt, stored, server);
	free(salt);
	free(stored);
	free(server);
	return s;
}

/* ---- message parsing ---- */

struct span {
	const char *p;
	size_t n;
};

static bool set_err(char **err, const char *msg)
{
	if (err)
		*err = xstrdup(msg);
	return false;
}

/* Every message from the peer: bounded, no NUL bytes inside. */
static bool check_message(const char *msg, size_t len, char **err)
{
	if (!msg || len == 0)
		return set_err(err, "empty SCRAM message");
	if (len > SCRAM_MAX_MESSAGE_LEN)
		return set_err(err, "SCRAM message too long");
	if (memchr(msg, '\0', len))
		return set_err(err, "SCRAM message contains a NUL byte");
	return true;
}

/* Splits on ','; empty attributes (",," or a trailing ',') are errors. */
static bool split_attrs(const char *s, size_t n, struct span *out, size_t *count)
{
	size_t k = 0;
	const char *end = s + n;
	const char *p = s;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		if (stop == p || k == MAX_ATTRS)
			return false;
		out[k].p = p;
		out[k].n = (size_t)(stop - p);
		k++;
		if (!comma)
			break;
		p = comma + 1;
	}
	*count = k;
	return true;
}

/* Is a the attribute "<name>=..."? Its value goes to *value. */
static bool attr_is(const struct span *a, char name, struct span *value)
{
	if (a->n < 2 || a->p[0] != name || a->p[1] != '=')
		return false;
	value->p = a->p + 2;
	value->n = a->n - 2;
	return true;
}

/* An optional extension: ALPHA "=" 1*value-char (RFC 5802 section 7). */
static bool attr_is_extension(const struct span *a)
{
	char c = a->p[0];
	return a->n >= 3 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) && a->p[1] == '=';
}

/* printable = %x21-2B / %x2D-7E; the ',' cannot occur after splitting. */
static bool is_printable_nonce(const struct span *v)
{
	if (v->n == 0)
		return false;
	for (size_t i = 0; i < v->n; i++) {
		unsigned char c = (unsigned char)v->p[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

static bool is_printable_str(const char *s)
{
	struct span v = {s, strlen(s)};
	return is_printable_nonce(&v);
}

static char *random_nonce(void)
{
	uint8_t raw[RAW_NONCE_LEN];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return NULL;
	return base64_encode(raw, sizeof(raw));
}

/* client-first-bare "," server-first "," client-final-without-proof */
static char *auth_message(const char *client_first_bare, const char *server_first,
                          const char *final_wo_proof, size_t final_len)
{
	return xasprintf("%s,%s,%.*s", client_first_bare, server_first, (int)final_len,
	                 final_wo_proof);
}

/* ---- server side ---- */

static uint8_t mock_key[SCRAM_KEY_LEN];
static bool mock_key_ready;

/*
 * A per-process random key, so mock salts cannot be precomputed and do
 * not repeat across restarts. The pooler is single-threaded.
 */
static bool mock_secret(const char *user, int iterations, struct scram_secret *out)
{
	if (!mock_key_ready) {
		if (RAND_bytes(mock_key, sizeof(mock_key)) != 1)
			return false;
		mock_key_ready = true;
	}
	uint8_t buf[SCRAM_KEY_LEN];
	char *salt_in = xasprintf("salt:%s", user);
	char *keys_in = xasprintf("keys:%s", user);
	memset(out, 0, sizeof(*out));
	bool ok = hmac256(mock_key, sizeof(mock_key), salt_in, strlen(salt_in), buf) &&
	          hmac256(mock_key, sizeof(mock_key), keys_in, strlen(keys_in), out->server_key);
	free(salt_in);
	free(keys_in);
	if (!ok)
		return false;
	memcpy(out->salt, buf, SCRAM_DEFAULT_SALT_LEN);
	out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	out->iterations = iterations > 0 ? iterations : SCRAM_DEFAULT_ITERATIONS;
	/* A StoredKey no ClientKey is known for; the result is discarded anyway. */
	return sha256(out->server_key, SCRAM_KEY_LEN, out->stored_key);
}

void scram_server_reset(struct scram_server *st)
{
	free(st->client_first_bare);
	free(st->server_first);
	free(st->nonce);
	free(st->test_server_nonce);
	OPENSSL_cleanse(st, sizeof(*st));
	memset(st, 0, sizeof(*st));
}

bool scram_server_start(struct scram_server *st, const struct scram_secret *secret)
{
	scram_server_reset(st);
	if (!secret)
		return scram_server_start_unknown_user(st, "", SCRAM_DEFAULT_ITERATIONS);
	if (secret->iterations < 1 || secret->salt_len < 1 || secret->salt_len > SCRAM_MAX_SALT_LEN)
		return false;
	st->secret = *secret;
	st->state = SCRAM_SERVER_STARTED;
	return true;
}

bool scram_server_start_unknown_user(struct scram_server *st, const char *user, int iterations)
{
	scram_server_reset(st);
	if (!mock_secret(user ? user : "", iterations, &st->secret)) {
		scram_server_reset(st);
		return false;
	}
	st->mock = true;
	st->state = SCRAM_SERVER_STARTED;
	return true;
}

void scram_server_set_nonce_for_test(struct scram_server *st, const char *server_nonce)
{
	free(st->test_server_nonce);
	st->test_server_nonce = xstrdup(server_nonce);
}

static bool server_fail(struct scram_server *st, char **err, const char *msg)
{
	st->state = SCRAM_SERVER_FAILED;
	return set_err(err, msg);
}

bool scram_server_handle_client_first(struct scram_server *st, const char *msg, size_t len,
                                      char **server_first_out, char **err)
{
	struct span attrs[MAX_ATTRS], user, nonce;
	size_t count, pos = 0;

	*server_first_out = NULL;
	if (err)
		*err = NULL;
	if (st->state != SCRAM_SERVER_STARTED)
		return server_fail(st, err, "unexpected SCRAM client-first-message");
	if (!check_message(msg, len, err)) {
		st->state = SCRAM_SERVER_FAILED;
		return false;
	}

	/* gs2-header: cbind-flag "," [authzid] "," */
	switch (msg[0]) {
	case 'n':
	case 'y':
		break;
	case 'p':
		return server_fail(st, err,
		                   "SCRAM channel binding is not supported by this server "
		                   "(client sent \"p=\"; use channel_binding=disable or prefer)");
	default:
		return server_fail(st, err, "malformed SCRAM message (bad GS2 header)");
	}
	if (len < 2 || msg[1] != ',')
		return server_fail(st, err, "malformed SCRAM message (bad GS2 header)");
	pos = 2;
	if (pos < len && msg[pos] == 'a')
		return server_fail(st, err, "SCRAM authorization identity is not supported");
	if (pos >= len || msg[pos] != ',')
		return server_fail(st, err, "malformed SCRAM message (bad GS2 header)");
	pos++;

	const char *bare = msg + pos;
	size_t bare_len = len - pos;
	if (bare_len == 0 || !split_attrs(bare, bare_len, attrs, &count) || count < 2)
		return server_fail(st, err, "malformed SCRAM client-first-message");
	if (attr_is(&attrs[0], 'm', &user))
		return server_fail(st, err, "SCRAM mandatory extensions are not supported");
	/* The user name was in the startup packet; this one is ignored. */
	if (!attr_is(&attrs[0], 'n', &user))
		return server_fail(st, err, "malformed SCRAM client-first-message (expected n=)");
	if (!attr_is(&attrs[1], 'r', &nonce) || !is_printable_nonce(&nonce))
		return server_fail(st, err,
		                   "malformed SCRAM client-first-message (missing or bad nonce)");
	for (size_t i = 2; i < count; i++)
		if (!attr_is_extension(&attrs[i]))
			return server_fail(st, err, "malformed SCRAM client-first-message");

	char *ours = st->test_server_nonce ? xstrdup(st->test_server_nonce) : random_nonce();
	if (!ours)
		return server_fail(st, err, "could not generate SCRAM nonce");
	char *salt = base64_encode(st->secret.salt, st->secret.salt_len);
	st->nonce = xasprintf("%.*s%s", (int)nonce.n, nonce.p, ours);
	st->server_first = xasprintf("r=%s,s=%s,i=%d", st->nonce, salt, st->secret.iterations);
	st->client_first_bare = xstrndup(bare, bare_len);
	st->cbind_flag = msg[0];
	free(ours);
	free(salt);

	st->state = SCRAM_SERVER_FIRST_SENT;
	*server_first_out = xstrdup(st->server_first);
	return true;
}

bool scram_server_handle_client_final(struct scram_server *st, const char *msg, size_t len,
                                      char **server_final_out, char **err)
{
	struct span attrs[MAX_ATTRS], cbind, nonce, proof64;
	size_t count, n;
	uint8_t gs2[MAX_GS2_HEADER], proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN], check[SCRAM_KEY_LEN];

	*server_final_out = NULL;
	if (err)
		*err = NULL;
	if (st->state != SCRAM_SERVER_FIRST_SENT)
		return server_fail(st, err, "unexpected SCRAM client-final-message");
	if (!check_message(msg, len, err)) {
		st->state = SCRAM_SERVER_FAILED;
		return false;
	}
	if (!split_attrs(msg, len, attrs, &count) || count < 3)
		return server_fail(st, err, "malformed SCRAM client-final-message");

	/* channel-binding: base64 of the GS2 header we saw, no binding data */
	const char expected_gs2[3] = {st->cbind_flag, ',', ','};
	if (!attr_is(&attrs[0], 'c', &cbind) ||
	    !base64_decode(cbind.p, cbind.n, gs2, sizeof(gs2), &n))
		return server_fail(st, err,
		                   "malformed SCRAM client-final-message (missing or bad c=)");
	if (n != sizeof(expected_gs2) || memcmp(gs2, expected_gs2, n) != 0)
		return server_fail(st, err, "SCRAM channel binding data does not match");

	if (!attr_is(&attrs[1], 'r', &nonce))
		return server_fail(st, err, "malformed SCRAM client-final-message (missing r=)");
	if (nonce.n != strlen(st->nonce) || memcmp(nonce.p, st->nonce, nonce.n) != 0)
		return server_fail(st, err, "SCRAM nonce does not match");

	for (size_t i = 2; i + 1 < count; i++)
		if (!attr_is_extension(&attrs[i]))
			return server_fail(st, err, "malformed SCRAM client-final-message");

	const struct span *last = &attrs[count - 1];
	if (!attr_is(last, 'p', &proof64) ||
	    !base64_decode(proof64.p, proof64.n, proof, sizeof(proof), &n) || n != SCRAM_KEY_LEN)
		return server_fail(st, err,
		                   "malformed SCRAM client-final-message (missing or bad proof)");

	/* Everything before ",p=" */
	size_t wo_proof_len = (size_t)(last->p - msg) - 1;
	char *auth = auth_message(st->client_first_bare, st->server_first, msg, wo_proof_len);
	bool crypto_ok = hmac256(st->secret.stored_key, SCRAM_KEY_LEN, auth, strlen(auth), sig);
	xor_keys(proof, sig, client_key);
	crypto_ok = crypto_ok && sha256(client_key, SCRAM_KEY_LEN, check);
	/* Same work for a mock secret, so the outcome is all it reveals. */
	bool valid = crypto_ok && secure_equal(check, st->secret.stored_key, SCRAM_KEY_LEN);
	if (valid && !st->mock)
		valid = hmac256(st->secret.server_key, SCRAM_KEY_LEN, auth, strlen(auth), sig);
	else
		valid = false;
	free(auth);

	if (valid) {
		char *v = base64_encode(sig, SCRAM_KEY_LEN);
		*server_final_out = xasprintf("v=%s", v);
		free(v);
		memcpy(st->client_key, client_key, SCRAM_KEY_LEN);
		st->have_client_key = true;
		st->state = SCRAM_SERVER_DONE;
	}
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(check, sizeof(check));
	if (!valid)
		return server_fail(st, err, AUTH_FAILED_MSG);
	return true;
}

bool scram_server_client_key(const struct scram_server *st, uint8_t client_key[SCRAM_KEY_LEN])
{
	if (st->state != SCRAM_SERVER_DONE || !st->have_client_key)
		return false;
	memcpy(client_key, st->client_key, SCRAM_KEY_LEN);
	return true;
}

/* ---- client side ---- */

void scram_client_reset(struct scram_client *c)
{
	wipe_free(c->password);
	free(c->username);
	free(c->client_nonce);
	free(c->client_first_bare);
	OPENSSL_cleanse(c, sizeof(*c));
	memset(c, 0, sizeof(*c));
}

void scram_client_init_password(struct scram_client *c, const char *password)
{
	memset(c, 0, sizeof(*c));
	c->password = xstrdup(password ? password : "");
	c->state = SCRAM_CLIENT_READY;
}

void scram_client_init_keys(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                            const uint8_t server_key[SCRAM_KEY_LEN])
{
	memset(c, 0, sizeof(*c));
	c->use_keys = true;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(c->server_key, server_key, SCRAM_KEY_LEN);
	c->state = SCRAM_CLIENT_READY;
}

void scram_client_set_username(struct scram_client *c, const char *user)
{
	size_t n = strlen(user);
	char *out = xmalloc(3 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (user[i] == ',') {
			memcpy(out + o, "=2C", 3);
			o += 3;
		} else if (user[i] == '=') {
			memcpy(out + o, "=3D", 3);
			o += 3;
		} else {
			out[o++] = user[i];
		}
	}
	out[o] = '\0';
	free(c->username);
	c->username = out;
}

void scram_client_set_nonce_for_test(struct scram_client *c, const char *nonce)
{
	free(c->client_nonce);
	c->client_nonce = xstrdup(nonce);
}

static bool client_fail(struct scram_client *c, char **err, const char *msg)
{
	c->state = SCRAM_CLIENT_FAILED;
	return set_err(err, msg);
}

char *scram_client_first_message(struct scram_client *c)
{
	if (c->state != SCRAM_CLIENT_READY)
		return NULL;
	if (!c->client_nonce)
		c->client_nonce = random_nonce();
	if (!c->client_nonce || !is_printable_str(c->client_nonce)) {
		c->state = SCRAM_CLIENT_FAILED;
		return NULL;
	}
	c->client_first_bare =
	    xasprintf("n=%s,r=%s", c->username ? c->username : "", c->client_nonce);
	c->state = SCRAM_CLIENT_FIRST_SENT;
	return xasprintf("n,,%s", c->client_first_bare);
}

bool scram_client_handle_server_first(struct scram_client *c, const char *msg, size_t len,
                                      char **client_final_out, char **err)
{
	struct span attrs[MAX_ATTRS], nonce, salt64, iter64;
	size_t count, salt_len;
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT_LEN];

	*client_final_out = NULL;
	if (err)
		*err = NULL;
	if (c->state != SCRAM_CLIENT_FIRST_SENT)
		return client_fail(c, err, "unexpected SCRAM server-first-message");
	if (!check_message(msg, len, err)) {
		c->state = SCRAM_CLIENT_FAILED;
		return false;
	}
	if (!split_attrs(msg, len, attrs, &count) || count < 3)
		return client_fail(c, err, "malformed SCRAM server-first-message");
	if (attr_is(&attrs[0], 'm', &nonce))
		return client_fail(c, err, "SCRAM mandatory extensions are not supported");

	size_t cn = strlen(c->client_nonce);
	if (!attr_is(&attrs[0], 'r', &nonce) || !is_printable_nonce(&nonce))
		return client_fail(c, err, "malformed SCRAM server-first-message (bad nonce)");
	if (nonce.n <= cn || memcmp(nonce.p, c->client_nonce, cn) != 0)
		return client_fail(c, err, "SCRAM server nonce does not extend the client nonce");
	if (!attr_is(&attrs[1], 's', &salt64) ||
	    !base64_decode(salt64.p, salt64.n, salt, sizeof(salt), &salt_len) || salt_len == 0)
		return client_fail(c, err, "malformed SCRAM server-first-message (bad salt)");
	if (!attr_is(&attrs[2], 'i', &iter64) ||
	    !parse_int(iter64.p, iter64.n, 1, SCRAM_MAX_CLIENT_ITERATIONS, &iterations))
		return client_fail(c, err,
		                   "SCRAM server-first-message has a bad or excessive iteration "
		                   "count");
	for (size_t i = 3; i < count; i++)
		if (!attr_is_extension(&attrs[i]))
			return client_fail(c, err, "malformed SCRAM server-first-message");

	if (!c->use_keys &&
	    !derive_keys(c->password, salt, salt_len, iterations, c->client_key, c->server_key))
		return client_fail(c, err, "SCRAM key derivation failed");

	uint8_t stored_key[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	/* "biws" is base64 of "n,,": we never use channel binding. */
	char *wo_proof = xasprintf("c=biws,r=%.*s", (int)nonce.n, nonce.p);
	char *server_first = xstrndup(msg, len);
	char *auth = auth_message(c->client_first_bare, server_first, wo_proof, strlen(wo_proof));
	bool ok = sha256(c->client_key, SCRAM_KEY_LEN, stored_key) &&
	          hmac256(stored_key, SCRAM_KEY_LEN, auth, strlen(auth), sig) &&
	          hmac256(c->server_key, SCRAM_KEY_LEN, auth, strlen(auth), c->server_signature);
	if (ok) {
		xor_keys(c->client_key, sig, proof);
		char *p64 = base64_encode(proof, SCRAM_KEY_LEN);
		*client_final_out = xasprintf("%s,p=%s", wo_proof, p64);
		free(p64);
	}
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	free(wo_proof);
	free(server_first);
	free(auth);
	if (!ok)
		return client_fail(c, err, "SCRAM computation failed");
	c->state = SCRAM_CLIENT_FINAL_SENT;
	return true;
}

bool scram_client_verify_server_final(struct scram_client *c, const char *msg, size_t len,
                                      char **err)
{
	struct span attrs[MAX_ATTRS], value;
	size_t count, n;
	uint8_t sig[SCRAM_KEY_LEN];

	if (err)
		*err = NULL;
	if (c->state != SCRAM_CLIENT_FINAL_SENT)
		return client_fail(c, err, "unexpected SCRAM server-final-message");
	if (!check_message(msg, len, err)) {
		c->state = SCRAM_CLIENT_FAILED;
		return false;
	}
	if (!split_attrs(msg, len, attrs, &count))
		return client_fail(c, err, "malformed SCRAM server-final-message");
	if (attr_is(&attrs[0], 'e', &value)) {
		/* The server's words, made printable and kept short for the log. */
		char text[128];
		size_t k = value.n < sizeof(text) - 1 ? value.n : sizeof(text) - 1;
		for (size_t i = 0; i < k; i++) {
			unsigned char ch = (unsigned char)value.p[i];
			text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		text[k] = '\0';
		c->state = SCRAM_CLIENT_FAILED;
		if (err)
			*err = xasprintf("server reported SCRAM error: %s", text);
		return false;
	}
	if (!attr_is(&attrs[0], 'v', &value) ||
	    !base64_decode(value.p, value.n, sig, sizeof(sig), &n) || n != SCRAM_KEY_LEN)
		return client_fail(c, err, "malformed SCRAM server-final-message");
	for (size_t i = 1; i < count; i++)
		if (!attr_is_extension(&attrs[i]))
			return client_fail(c, err, "malformed SCRAM server-final-message");
	if (!secure_equal(sig, c->server_signature, SCRAM_KEY_LEN))
		return client_fail(c, err,
		                   "SCRAM server signature is wrong: the server does not "
		                   "know this password");
	c->state = SCRAM_CLIENT_DONE;
	return true;
}
