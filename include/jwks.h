/*
 * A JSON Web Key Set (RFC 7517), the document an identity provider
 * publishes at its jwks_uri, read into OpenSSL public keys with the PEM
 * form libjwt verifies with (libjwt 1.10 cannot read a JWKS itself).
 *
 * Only public signature keys are kept: RSA of 2048 bits or more, and EC
 * on P-256, P-384 or P-521. Anything else in the document is skipped with
 * a reason for the log, not refused, because providers publish keys for
 * other uses next to theirs: encryption keys ("use": "enc"), key types
 * pgsieve does not verify, algorithms libjwt lacks (PS256). Symmetric
 * ("oct") keys are always skipped: an HMAC secret trusted next to public
 * keys is what key-confusion attacks feed on. A key that comes with its
 * private members is skipped too: a published private key is no key.
 *
 * A set is immutable once parsed and counted by reference: verifications
 * hold a reference while they use its keys, and a refresh swaps in a new
 * set and drops the old one's reference, so the keys outlive the last
 * verification that uses them. The count is atomic.
 *
 * Pure: no I/O; the caller fetches the document.
 */
#ifndef PGSIEVE_JWKS_H
#define PGSIEVE_JWKS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "util.h"

/* Larger documents and more keys are refused; real ones hold a handful. */
#define JWKS_MAX_BYTES (1024 * 1024)
#define JWKS_MAX_KEYS  100
/* RSA keys below this many bits are skipped. */
#define JWKS_MIN_RSA_BITS 2048

struct jwks;
struct jwk;

enum jwk_type {
	JWK_RSA,
	JWK_EC,
};

/*
 * The JWS "alg" values pgsieve knows by name. Only RS* and ES* can be
 * verified with a key from a set; none and HS* are named so that they can
 * be refused by name, and anything else reads as JWK_ALG_UNKNOWN.
 */
enum jwk_alg {
	JWK_ALG_UNKNOWN,
	JWK_ALG_NONE,
	JWK_ALG_HS256,
	JWK_ALG_HS384,
	JWK_ALG_HS512,
	JWK_ALG_RS256,
	JWK_ALG_RS384,
	JWK_ALG_RS512,
	JWK_ALG_ES256,
	JWK_ALG_ES384,
	JWK_ALG_ES512,
};

/* Names are case-sensitive, as in JOSE. */
enum jwk_alg jwk_alg_from_name(const char *name);
/* "RS256"..., or "unknown". */
const char *jwk_alg_name(enum jwk_alg alg);

/*
 * Parses a JWKS document of len bytes (no NUL needed). NULL and *err if it
 * is too large, not JSON, has no "keys" array or no usable key; the
 * message then lists why each key was skipped. The set starts with one
 * reference.
 */
struct jwks *jwks_parse(const char *json, size_t len, char **err) MUST_CHECK;
/* Takes one more reference; returns set. */
struct jwks *jwks_ref(struct jwks *set);
/* Drops one reference; the last frees the set. NULL is ignored. */
void jwks_free(struct jwks *set);

/* Usable keys, in document order. */
size_t jwks_count(const struct jwks *set);
const struct jwk *jwks_key(const struct jwks *set, size_t i);
/*
 * The key with this kid, or NULL. With kid NULL (a token without one), the
 * only key if the set has exactly one: with more, guessing would mean
 * trying keys until one verifies.
 */
const struct jwk *jwks_find(const struct jwks *set, const char *kid);

/* Why each skipped key was skipped, e.g. "key 2 (kid \"x\"): use \"enc\" is not for signatures". */
size_t jwks_skipped_count(const struct jwks *set);
const char *jwks_skipped(const struct jwks *set, size_t i);

const char *jwk_kid(const struct jwk *key); /* NULL if the key has none */
enum jwk_type jwk_type(const struct jwk *key);
const char *jwk_kty(const struct jwk *key);   /* "RSA" or "EC" */
const char *jwk_alg(const struct jwk *key);   /* as published; NULL if not */
const char *jwk_curve(const struct jwk *key); /* "P-256", "P-384", "P-521"; NULL for RSA */
int jwk_bits(const struct jwk *key);
const EVP_PKEY *jwk_pkey(const struct jwk *key);
/* SubjectPublicKeyInfo PEM, as jwt_decode() takes it. */
const char *jwk_pem(const struct jwk *key);

/*
 * Can this key verify a token signed with alg? RS* need an RSA key, ES256
 * P-256, ES384 P-384, ES512 P-521, and if the key names an alg it must be
 * this one. Never true for none, HS* or an unknown alg.
 */
bool jwk_fits(const struct jwk *key, enum jwk_alg alg);

#endif
