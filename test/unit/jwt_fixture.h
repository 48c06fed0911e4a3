/*
 * Keys and key sets for the jwks tests, made with OpenSSL the way an
 * identity provider would make them.
 */
#ifndef PGSIEVE_JWT_FIXTURE_H
#define PGSIEVE_JWT_FIXTURE_H

#include <stddef.h>

#include <openssl/evp.h>

/* A fresh key: "RSA" with bits, or "EC" on curve ("P-256", "P-384"). */
EVP_PKEY *fx_rsa(unsigned bits);
EVP_PKEY *fx_ec(const char *curve);

/* PEM of the private or public part, malloc'd. */
char *fx_private_pem(EVP_PKEY *key);
char *fx_public_pem(EVP_PKEY *key);

/* Unpadded base64url of n bytes, malloc'd. */
char *fx_b64url(const void *p, size_t n);

/*
 * The public JWK of key as a JSON object, malloc'd; kid may be NULL and
 * extra, if not NULL, is more members ("\"use\":\"sig\"") put inside.
 */
char *fx_jwk(EVP_PKEY *key, const char *kid, const char *extra);

#endif
