/*
 * Base64 (RFC 4648), strict in both of its alphabets:
 *
 * - the standard one with padding, as SCRAM writes salts, nonces, proofs
 *   and the secrets of pg_authid;
 * - base64url without padding (section 5), as JOSE writes JWT segments and
 *   JWK key members (RFC 7515 section 2).
 *
 * Decoding accepts only the alphabet, no whitespace, padding only where
 * the form has it, and the unused low bits of the last character must be
 * zero: every byte string has exactly one spelling, so a token's or a
 * secret's text cannot change without changing what it decodes to.
 */
#ifndef PGSIEVE_BASE64_H
#define PGSIEVE_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Standard alphabet with padding; malloc'd and NUL-terminated. */
char *base64_encode(const uint8_t *src, size_t n);

/* Decodes exactly len padded characters into at most cap bytes (*out_len of them). */
bool base64_decode(const char *src, size_t len, uint8_t *dst, size_t cap,
                   size_t *out_len) MUST_CHECK;

/*
 * Decodes n base64url characters of s into a malloc'd buffer of *out_len
 * bytes with a NUL after them (handy for JSON); NULL if s is not
 * canonical base64url.
 */
uint8_t *base64url_decode(const char *s, size_t n, size_t *out_len) MUST_CHECK;

#endif
