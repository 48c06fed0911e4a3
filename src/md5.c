/*
 * md5 authentication with OpenSSL's MD5 through EVP. MD5 is weak, but it
 * is what PostgreSQL clients and md5 secrets in auth files speak; the
 * pooler only combines hashes the way the protocol prescribes.
 *
 * Failures of the digest itself (a FIPS-only OpenSSL refuses MD5) yield an
 * empty string, and md5_check_response() refuses empty strings, so such a
 * build fails closed instead of accepting anything.
 */
#include "md5.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_HEX_LEN 32

/* out = "md5" + hex(md5(a || b)), or "" if the digest failed. */
static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen,
                     char out[MD5_PASSWD_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	          EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
	          EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == MD5_HEX_LEN / 2;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return;
	}
	memcpy(out, "md5", 3);
	for (unsigned int i = 0; i < n; i++) {
		out[3 + 2 * i] = hex[md[i] >> 4];
		out[3 + 2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[MD5_PASSWD_LEN] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool md5_is_hash(const char *s)
{
	return s && strlen(s) == MD5_PASSWD_LEN && memcmp(s, "md5", 3) == 0 &&
	       is_lower_hex(s + 3, MD5_HEX_LEN);
}

void md5_password_hash(const char *password, const char *user, char out[MD5_PASSWD_LEN + 1])
{
	md5_hex2(password, strlen(password), user, strlen(user), out);
}

void md5_salted_response(const char *md5_hash_or_plain_hex32, const uint8_t salt[4],
                         char out[MD5_PASSWD_LEN + 1])
{
	const char *hex = md5_hash_or_plain_hex32;
	if (strlen(hex) == MD5_PASSWD_LEN && memcmp(hex, "md5", 3) == 0)
		hex += 3;
	if (strlen(hex) != MD5_HEX_LEN || !is_lower_hex(hex, MD5_HEX_LEN)) {
		out[0] = '\0';
		return;
	}
	md5_hex2(hex, MD5_HEX_LEN, salt, 4, out);
}

void md5_response_for_secret(const char *secret, const char *user, const uint8_t salt[4],
                             char out[MD5_PASSWD_LEN + 1])
{
	char stored[MD5_PASSWD_LEN + 1];
	if (md5_is_hash(secret)) {
		md5_salted_response(secret, salt, out);
		return;
	}
	md5_password_hash(secret, user, stored);
	if (stored[0] == '\0')
		out[0] = '\0';
	else
		md5_salted_response(stored, salt, out);
	OPENSSL_cleanse(stored, sizeof(stored));
}

bool md5_check_response(const char *secret, const char *user, const uint8_t salt[4],
                        const char *client_response)
{
	char expected[MD5_PASSWD_LEN + 1];
	if (!secret || !user || !client_response || secret[0] == '\0' || client_response[0] == '\0')
		return false;
	md5_response_for_secret(secret, user, salt, expected);
	bool ok = expected[0] != '\0' && secure_streq(expected, client_response);
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}
