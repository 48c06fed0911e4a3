/*
 * Base64url without padding (RFC 4648 section 5), as JOSE writes JWT
 * segments and JWK key members (RFC 7515 section 2).
 *
 * Decoding is strict: only the URL-safe alphabet, no padding, no
 * whitespace, and the unused low bits of the last character must be zero.
 * So every byte string has exactly one spelling, and a token's text cannot
 * be changed without changing what it decodes to.
 */
#ifndef PGSIEVE_BASE64URL_H
#define PGSIEVE_BASE64URL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * Decodes n characters of s into a malloc'd buffer of *out_len bytes with
 * a NUL after them (handy for JSON); NULL if s is not canonical base64url.
 */
uint8_t *base64url_decode(const char *s, size_t n, size_t *out_len) MUST_CHECK;

#endif
