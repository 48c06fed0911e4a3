/*
 * JSON Web Key Sets into OpenSSL keys; see jwks.h.
 *
 * Each key is read into a struct jwk or skipped with a reason; one bad key
 * never costs the others. Key material goes through OSSL_PARAM_BLD and
 * EVP_PKEY_fromdata, then EVP_PKEY_public_check, so OpenSSL itself refuses
 * points off the curve and unusable RSA moduli or exponents. OpenSSL
 * errors are cleared after each failure: the TLS code reads the same
 * thread-local queue and must not find ours there.
 */
#include "jwks.h"
#include "base64.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

struct jwk {
	char *kid;
	enum jwk_type type;
	char *alg;
	const char *curve; /* a static string */
	int bits;
	EVP_PKEY *pkey;
	char *pem;
};

struct jwks {
	atomic_uint refs;
	size_t n_keys;
	struct jwk *keys;
	size_t n_skipped;
	char **skipped;
};

static const char *const alg_names[] = {
    [JWK_ALG_UNKNOWN] = "unknown", [JWK_ALG_NONE] = "none",   [JWK_ALG_HS256] = "HS256",
    [JWK_ALG_HS384] = "HS384",     [JWK_ALG_HS512] = "HS512", [JWK_ALG_RS256] = "RS256",
    [JWK_ALG_RS384] = "RS384",     [JWK_ALG_RS512] = "RS512", [JWK_ALG_ES256] = "ES256",
    [JWK_ALG_ES384] = "ES384",     [JWK_ALG_ES512] = "ES512",
};

enum jwk_alg jwk_alg_from_name(const char *name)
{
	for (size_t i = JWK_ALG_NONE; i < ARRAY_SIZE(alg_names); i++)
		if (strcmp(alg_names[i], name) == 0)
			return (enum jwk_alg)i;
	return JWK_ALG_UNKNOWN;
}

const char *jwk_alg_name(enum jwk_alg alg)
{
	return (size_t)alg < ARRAY_SIZE(alg_names) ? alg_names[alg] : alg_names[JWK_ALG_UNKNOWN];
}

/* The curves JWS uses, with the coordinate size RFC 7518 6.2.1 fixes. */
static const struct curve {
	const char *name;
	size_t coord_len;
	enum jwk_alg alg;
} curves[] = {
    {"P-256", 32, JWK_ALG_ES256},
    {"P-384", 48, JWK_ALG_ES384},
    {"P-521", 66, JWK_ALG_ES512},
};

static const struct curve *curve_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(curves); i++)
		if (name && strcmp(curves[i].name, name) == 0)
			return &curves[i];
	return NULL;
}

bool jwk_fits(const struct jwk *k, enum jwk_alg alg)
{
	if (k->alg && strcmp(k->alg, jwk_alg_name(alg)) != 0)
		return false;
	switch (alg) {
	case JWK_ALG_RS256:
	case JWK_ALG_RS384:
	case JWK_ALG_RS512:
		return k->type == JWK_RSA;
	case JWK_ALG_ES256:
	case JWK_ALG_ES384:
	case JWK_ALG_ES512:
		return k->type == JWK_EC && curve_by_name(k->curve)->alg == alg;
	default:
		return false;
	}
}

/* ---- reading one key ---- */

static bool fail(char **why, const char *fmt, ...) PRINTF_LIKE(2, 3);
static bool fail(char **why, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*why = xstrdup(buf);
	ERR_clear_error();
	return false;
}

/* A member that must be a string if present; false (and *why) if it is not. */
static bool opt_string(json_t *key, const char *name, const char **out, char **why)
{
	json_t *v = json_object_get(key, name);
	*out = json_string_value(v);
	return !v || *out || fail(why, "%s is not a string", name);
}

/* A base64url member, decoded; NULL and *why if missing, empty or malformed. */
static uint8_t *b64_member(json_t *key, const char *name, size_t *len, char **why)
{
	const char *s = json_string_value(json_object_get(key, name));
	if (!s) {
		fail(why, "%s is missing or not a string", name);
		return NULL;
	}
	uint8_t *bytes = base64url_decode(s, strlen(s), len);
	if (!bytes || *len == 0) {
		free(bytes);
		fail(why, "%s is not base64url", name);
		return NULL;
	}
	return bytes;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static bool read_rsa(json_t *key, struct jwk *out, char **why)
{
	size_t n_len, e_len;
	uint8_t *n = b64_member(key, "n", &n_len, why);
	uint8_t *e = n ? b64_member(key, "e", &e_len, why) : NULL;
	if (!e) {
		free(n);
		return false;
	}
	BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
	BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
	free(n);
	free(e);
	out->bits = bn_n ? BN_num_bits(bn_n) : 0;
	OSSL_PARAM_BLD *bld = NULL;
	if (bn_n && bn_e && out->bits >= JWKS_MIN_RSA_BITS && (bld = OSSL_PARAM_BLD_new()) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		out->pkey = pkey_from_params("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	if (out->bits < JWKS_MIN_RSA_BITS)
		return fail(why, "RSA key of %d bits, under %d", out->bits, JWKS_MIN_RSA_BITS);
	return out->pkey || fail(why, "OpenSSL cannot build an RSA key from n and e");
}

static bool read_ec(json_t *key, struct jwk *out, char **why)
{
	const char *crv = json_string_value(json_object_get(key, "crv"));
	const struct curve *c = curve_by_name(crv);
	if (!c) {
		char name[32];
		strlcpy_printable(name, crv ? crv : "(none)", sizeof(name));
		return fail(why, "curve %s is not supported", name);
	}
	size_t x_len, y_len;
	uint8_t *x = b64_member(key, "x", &x_len, why);
	uint8_t *y = x ? b64_member(key, "y", &y_len, why) : NULL;
	bool ok = y && x_len == c->coord_len && y_len == c->coord_len;
	if (y && !ok)
		fail(why, "x and y must be %zu bytes each for %s", c->coord_len, c->name);
	if (ok) {
		/* An uncompressed point: 0x04, then x, then y. */
		uint8_t point[1 + 2 * 66];
		point[0] = 4;
		memcpy(point + 1, x, x_len);
		memcpy(point + 1 + x_len, y, y_len);
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		if (bld &&
		    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->name, 0) &&
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
		                                     1 + x_len + y_len))
			out->pkey = pkey_from_params("EC", bld);
		OSSL_PARAM_BLD_free(bld);
		out->curve = c->name;
		if (out->pkey)
			out->bits = EVP_PKEY_get_bits(out->pkey);
		else
			ok = fail(why, "OpenSSL cannot build a %s key from x and y", c->name);
	}
	free(x);
	free(y);
	return ok;
}

static bool public_check(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL, *data;
	long n;
	if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0)
		pem = xstrndup(data, (size_t)n);
	BIO_free(bio);
	return pem;
}

static void jwk_clear(struct jwk *k)
{
	free(k->kid);
	free(k->alg);
	EVP_PKEY_free(k->pkey);
	free(k->pem);
	memset(k, 0, sizeof(*k));
}

/* Members that only a private key has (RFC 7518 6.2.2, 6.3.2). */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};

/* Fills *out from one element of "keys"; false and *why if it is not usable. */
static bool read_key(json_t *key, struct jwk *out, char **why)
{
	if (!json_is_object(key))
		return fail(why, "not a JSON object");
	const char *kid, *kty, *use, *alg;
	if (!opt_string(key, "kid", &kid, why) || !opt_string(key, "kty", &kty, why) ||
	    !opt_string(key, "use", &use, why) || !opt_string(key, "alg", &alg, why))
		return false;
	if (!kty)
		return fail(why, "no kty");
	if (strcmp(kty, "oct") == 0)
		return fail(why, "symmetric (oct) keys are never used: an HMAC secret among public "
		                 "keys invites key confusion");
	if (use && strcmp(use, "sig") != 0) {
		char name[32];
		strlcpy_printable(name, use, sizeof(name));
		return fail(why, "use \"%s\" is not for signatures", name);
	}
	json_t *ops = json_object_get(key, "key_ops");
	if (ops) {
		bool verify = false;
		for (size_t i = 0; i < json_array_size(ops); i++) {
			const char *op = json_string_value(json_array_get(ops, i));
			verify = verify || (op && strcmp(op, "verify") == 0);
		}
		if (!verify)
			return fail(why, "key_ops does not include verify");
	}
	for (size_t i = 0; i < ARRAY_SIZE(private_members); i++)
		if (json_object_get(key, private_members[i]))
			return fail(why,
			            "has private key member %s: a published private key "
			            "lets anyone sign",
			            private_members[i]);
	if (strcmp(kty, "RSA") == 0) {
		out->type = JWK_RSA;
		if (!read_rsa(key, out, why))
			return false;
	} else if (strcmp(kty, "EC") == 0) {
		out->type = JWK_EC;
		if (!read_ec(key, out, why))
			return false;
	} else {
		char name[32];
		strlcpy_printable(name, kty, sizeof(name));
		return fail(why, "kty \"%s\" is not supported", name);
	}
	if (!public_check(out->pkey))
		return fail(why, "OpenSSL's public key check refuses it");
	if (alg) {
		enum jwk_alg a = jwk_alg_from_name(alg);
		out->alg = xstrdup(alg); /* for jwk_fits() */
		if (!jwk_fits(out, a)) {
			char name[32];
			strlcpy_printable(name, alg, sizeof(name));
			return fail(why, "alg \"%s\" is not one pgsieve verifies with an %s key",
			            name, kty);
		}
	}
	if (!(out->pem = pem_of(out->pkey)))
		return fail(why, "OpenSSL cannot write it as PEM");
	out->kid = kid ? xstrdup(kid) : NULL;
	return true;
}

/* ---- the set ---- */

static void add_skipped(struct jwks *set, size_t i, const char *kid, const char *why)
{
	char printable[64];
	if (kid)
		strlcpy_printable(printable, kid, sizeof(printable));
	set->skipped[set->n_skipped++] =
	    kid ? xasprintf("key %zu (kid \"%s\"): %s", i, printable, why)
	        : xasprintf("key %zu: %s", i, why);
}

static void set_free(struct jwks *set)
{
	for (size_t i = 0; i < set->n_keys; i++)
		jwk_clear(&set->keys[i]);
	for (size_t i = 0; i < set->n_skipped; i++)
		free(set->skipped[i]);
	free(set->keys);
	free(set->skipped);
	free(set);
}

/* "no usable key" with every reason, so one log line explains a bad set. */
static char *no_usable_key(const struct jwks *set)
{
	size_t len = 64;
	for (size_t i = 0; i < set->n_skipped; i++)
		len += strlen(set->skipped[i]) + 2;
	char *msg = xmalloc(len);
	int n = snprintf(msg, len, "JWKS has no usable key");
	for (size_t i = 0; i < set->n_skipped; i++)
		n += snprintf(msg + n, len - (size_t)n, "%s%s", i ? "; " : " (", set->skipped[i]);
	if (set->n_skipped)
		snprintf(msg + n, len - (size_t)n, ")");
	return msg;
}

struct jwks *jwks_parse(const char *json, size_t len, char **err)
{
	if (len > JWKS_MAX_BYTES) {
		*err = xasprintf("JWKS of %zu bytes is larger than %d", len, JWKS_MAX_BYTES);
		return NULL;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		char text[sizeof(jerr.text)];
		strlcpy_printable(text, jerr.text, sizeof(text));
		*err = xasprintf("JWKS is not JSON: %s at line %d", text, jerr.line);
		return NULL;
	}
	json_t *keys = json_object_get(doc, "keys");
	if (!json_is_array(keys) || json_array_size(keys) > JWKS_MAX_KEYS) {
		*err = json_is_array(keys) ? xasprintf("JWKS has %zu keys, more than %d",
		                                       json_array_size(keys), JWKS_MAX_KEYS)
		                           : xstrdup("JWKS has no \"keys\" array");
		json_decref(doc);
		return NULL;
	}
	size_t n = json_array_size(keys);
	struct jwks *set = xcalloc(1, sizeof(*set));
	atomic_init(&set->refs, 1);
	set->keys = xcalloc(n, sizeof(*set->keys));
	set->skipped = xcalloc(n, sizeof(*set->skipped));
	for (size_t i = 0; i < n; i++) {
		json_t *key = json_array_get(keys, i);
		const char *kid = json_string_value(json_object_get(key, "kid"));
		struct jwk *k = &set->keys[set->n_keys];
		char *why = NULL;
		if (!read_key(key, k, &why)) {
			jwk_clear(k);
		} else if (k->kid && jwks_find(set, k->kid)) {
			/* Which of two keys a token means cannot be known. */
			why = xstrdup("another key has the same kid");
			jwk_clear(k);
		} else {
			set->n_keys++;
		}
		if (why)
			add_skipped(set, i, kid, why);
		free(why);
	}
	json_decref(doc);
	if (set->n_keys == 0) {
		*err = no_usable_key(set);
		set_free(set);
		return NULL;
	}
	return set;
}

struct jwks *jwks_ref(struct jwks *set)
{
	atomic_fetch_add(&set->refs, 1);
	return set;
}

void jwks_free(struct jwks *set)
{
	if (set && atomic_fetch_sub(&set->refs, 1) == 1)
		set_free(set);
}

size_t jwks_count(const struct jwks *set)
{
	return set->n_keys;
}

const struct jwk *jwks_key(const struct jwks *set, size_t i)
{
	return i < set->n_keys ? &set->keys[i] : NULL;
}

const struct jwk *jwks_find(const struct jwks *set, const char *kid)
{
	if (!kid)
		return set->n_keys == 1 ? &set->keys[0] : NULL;
	for (size_t i = 0; i < set->n_keys; i++)
		if (set->keys[i].kid && strcmp(set->keys[i].kid, kid) == 0)
			return &set->keys[i];
	return NULL;
}

size_t jwks_skipped_count(const struct jwks *set)
{
	return set->n_skipped;
}

const char *jwks_skipped(const struct jwks *set, size_t i)
{
	return i < set->n_skipped ? set->skipped[i] : NULL;
}

const char *jwk_kid(const struct jwk *k)
{
	return k->kid;
}

enum jwk_type jwk_type(const struct jwk *k)
{
	return k->type;
}

const char *jwk_kty(const struct jwk *k)
{
	return k->type == JWK_RSA ? "RSA" : "EC";
}

const char *jwk_alg(const struct jwk *k)
{
	return k->alg;
}

const char *jwk_curve(const struct jwk *k)
{
	return k->curve;
}

int jwk_bits(const struct jwk *k)
{
	return k->bits;
}

const EVP_PKEY *jwk_pkey(const struct jwk *k)
{
	return k->pkey;
}

const char *jwk_pem(const struct jwk *k)
{
	return k->pem;
}
