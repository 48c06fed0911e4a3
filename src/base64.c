/*
 * Strict base64 in its two alphabets; see base64.h.
 */
#include "base64.h"

#include <stdlib.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *src, size_t n)
{
	char *dst = xmalloc((n + 2) / 3 * 4 + 1), *o = dst;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = b64_alphabet[v >> 6 & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = b64_alphabet[v >> 6 & 63];
		*o++ = '=';
	}
	*o = '\0';
	return dst;
}

/* A character's 6 bits in the standard alphabet, or the URL-safe one; -1 if not of it. */
static int b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

bool base64_decode(const char *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len)
{
	if (len % 4 != 0)
		return false;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)src[i + (size_t)k];
			if (c == '=' && last && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after '=' */
				return false;
			v[k] = b64_value(c, false);
			if (v[k] < 0)
				return false;
		}
		if (pad == 2 && (v[1] & 0x0f))
			return false;
		if (pad == 1 && (v[2] & 0x03))
			return false;
		size_t nbytes = 3 - (size_t)pad;
		if (o + nbytes > cap)
			return false;
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		dst[o++] = (uint8_t)(w >> 16);
		if (nbytes > 1)
			dst[o++] = (uint8_t)(w >> 8);
		if (nbytes > 2)
			dst[o++] = (uint8_t)w;
	}
	*out_len = o;
	return true;
}

uint8_t *base64url_decode(const char *s, size_t n, size_t *out_len)
{
	/* One character left over carries 6 bits: not even one byte. */
	if (n % 4 == 1)
		return NULL;
	uint8_t *out = xmalloc(n / 4 * 3 + 3);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i], true);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero, or two texts would decode alike. */
	if (acc & ((1u << bits) - 1)) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}
