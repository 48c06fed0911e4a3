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
