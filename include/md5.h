/*
 * PostgreSQL's md5 password authentication. A stored md5 secret is
 * "md5" + hex(md5(password || user)); the client answers a 4-byte salt with
 * "md5" + hex(md5(hex32 || salt)), where hex32 is the stored hash without
 * its prefix. The pooler therefore needs either the plaintext password or
 * the stored hash, never more.
 */
#ifndef PGSIEVE_MD5_H
#define PGSIEVE_MD5_H

#include <stdbool.h>
#include <stdint.h>
#include "util.h"

#define MD5_PASSWD_LEN 35 /* "md5" + 32 hex digits, without the NUL */

/* "md5" + 32 lowercase hex digits and nothing else. */
bool md5_is_hash(const char *s);

/*
 * The stored form of a password. On an internal crypto failure (an
 * OpenSSL without MD5) out is "", which matches no response.
 */
void md5_password_hash(const char *password, const char *user, char out[MD5_PASSWD_LEN + 1]);

/*
 * What a client sends for AuthenticationMD5Password. Accepts the 32 hex
 * digits of a stored hash, with or without the "md5" prefix; anything else
 * gives "".
 */
void md5_salted_response(const char *md5_hash_or_plain_hex32, const uint8_t salt[4],
                         char out[MD5_PASSWD_LEN + 1]);

/*
 * Same from an auth_file secret: a stored "md5..." hash is used as it is,
 * anything else is taken as the plaintext password of user.
 */
void md5_response_for_secret(const char *secret, const char *user, const uint8_t salt[4],
                             char out[MD5_PASSWD_LEN + 1]);

/*
 * Checks a client's PasswordMessage in constant time. secret is plaintext
 * or "md5<32 hex>". An empty secret or response never matches.
 */
bool md5_check_response(const char *secret, const char *user, const uint8_t salt[4],
                        const char *client_response) MUST_CHECK;

#endif
