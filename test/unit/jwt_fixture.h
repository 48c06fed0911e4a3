/*
 * Keys, key sets and tokens for the jwks and token tests, made with
 * OpenSSL and libjwt the way an identity provider would make them, plus
 * the hand-built tokens an attacker would send.
 */
#ifndef PGSIEVE_JWT_FIXTURE_H
#define PGSIEVE_JWT_FIXTURE_H

#include <stddef.h>

#include <jwt.h>
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

/* A token signed by libjwt with key's private PEM (or secret, for HS*). */
char *fx_sign(jwt_alg_t alg, const unsigned char *key, size_t key_len, const char *kid,
              const char *claims_json);
/* The same with an EVP_PKEY. */
char *fx_sign_key(EVP_PKEY *key, jwt_alg_t alg, const char *kid, const char *claims_json);

/* header.payload as given (JSON encoded here) and sig as is: any header goes. */
char *fx_build(const char *header_json, const char *payload_json, const char *sig);
/* The same, signed RS256 with an RSA key by OpenSSL, whatever the header says. */
char *fx_build_rs256(EVP_PKEY *key, const char *header_json, const char *payload_json);

#endif
