/*
 * Test keys and tokens; see jwt_fixture.h. Failures abort: a fixture that
 * cannot make its keys makes every check meaningless.
 */
#include "jwt_fixture.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#define NEED(cond)                                                                                 \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fixture failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

EVP_PKEY *fx_rsa(unsigned bits)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	NEED(k);
	return k;
}

EVP_PKEY *fx_ec(const char *curve)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
	NEED(k);
	return k;
}

static char *bio_text(BIO *bio)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	NEED(n > 0);
	char *s = xstrndup(data, (size_t)n);
	BIO_free(bio);
	return s;
}

char *fx_private_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	NEED(bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1);
	return bio_text(bio);
}

char *fx_public_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	NEED(bio && PEM_write_bio_PUBKEY(bio, key) == 1);
	return bio_text(bio);
}

char *fx_b64url(const void *p, size_t n)
{
	char *s = xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	NEED(len >= 0);
	while (len > 0 && s[len - 1] == '=')
		len--;
	s[len] = '\0';
	for (char *c = s; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return s;
}

/* A key parameter as base64url of exactly len bytes (0: its natural length). */
static char *bn_param(EVP_PKEY *key, const char *name, size_t len)
{
	BIGNUM *bn = NULL;
	NEED(EVP_PKEY_get_bn_param(key, name, &bn) == 1);
	size_t n = len ? len : (size_t)BN_num_bytes(bn);
	unsigned char *buf = xmalloc(n);
	NEED(BN_bn2binpad(bn, buf, (int)n) == (int)n);
	char *s = fx_b64url(buf, n);
	free(buf);
	BN_free(bn);
	return s;
}

char *fx_jwk(EVP_PKEY *key, const char *kid, const char *extra)
{
	char *kid_member = kid ? xasprintf("\"kid\":\"%s\",", kid) : xstrdup("");
	const char *more = extra ? extra : "";
	const char *sep = extra ? "," : "";
	char *jwk;
	if (EVP_PKEY_is_a(key, "RSA")) {
		char *n = bn_param(key, OSSL_PKEY_PARAM_RSA_N, 0);
		char *e = bn_param(key, OSSL_PKEY_PARAM_RSA_E, 0);
		jwk = xasprintf("{%s\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", kid_member, n,
		                e, sep, more);
		free(n);
		free(e);
	} else {
		char group[32];
		NEED(EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                    sizeof(group), NULL) == 1);
		const char *crv = strcmp(group, "prime256v1") == 0  ? "P-256"
		                  : strcmp(group, "secp384r1") == 0 ? "P-384"
		                                                    : "P-521";
		size_t len = strcmp(crv, "P-256") == 0 ? 32 : strcmp(crv, "P-384") == 0 ? 48 : 66;
		char *x = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, len);
		char *y = bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, len);
		jwk = xasprintf("{%s\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
		                kid_member, crv, x, y, sep, more);
		free(x);
		free(y);
	}
	free(kid_member);
	return jwk;
}

char *fx_sign(jwt_alg_t alg, const unsigned char *key, size_t key_len, const char *kid,
              const char *claims_json)
{
	jwt_t *jwt = NULL;
	NEED(jwt_new(&jwt) == 0);
	NEED(jwt_add_grants_json(jwt, claims_json) == 0);
	if (kid)
		NEED(jwt_add_header(jwt, "kid", kid) == 0);
	NEED(jwt_set_alg(jwt, alg, key, (int)key_len) == 0);
	char *token = jwt_encode_str(jwt);
	NEED(token);
	jwt_free(jwt);
	return token;
}

char *fx_sign_key(EVP_PKEY *key, jwt_alg_t alg, const char *kid, const char *claims_json)
{
	char *pem = fx_private_pem(key);
	char *token = fx_sign(alg, (const unsigned char *)pem, strlen(pem), kid, claims_json);
	free(pem);
	return token;
}

static char *signing_input(const char *header_json, const char *payload_json)
{
	char *h = fx_b64url(header_json, strlen(header_json));
	char *p = fx_b64url(payload_json, strlen(payload_json));
	char *s = xasprintf("%s.%s", h, p);
	free(h);
	free(p);
	return s;
}

char *fx_build(const char *header_json, const char *payload_json, const char *sig)
{
	char *input = signing_input(header_json, payload_json);
	char *token = xasprintf("%s.%s", input, sig);
	free(input);
	return token;
}

char *fx_build_rs256(EVP_PKEY *key, const char *header_json, const char *payload_json)
{
	char *input = signing_input(header_json, payload_json);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[1024];
	size_t sig_len = sizeof(sig);
	NEED(md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
	NEED(EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, strlen(input)) == 1);
	EVP_MD_CTX_free(md);
	char *b64 = fx_b64url(sig, sig_len);
	char *token = xasprintf("%s.%s", input, b64);
	free(b64);
	free(input);
	return token;
}
