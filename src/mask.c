/*
 * Built-in maskers (see include/mask.h for what each gives per type).
 *
 * Types are first sorted into families that share a wire form, and what a
 * masker does for a family is decided before any value is looked at, so
 * mask_supports() and mask_apply() cannot disagree. Everything a masker
 * can know in advance is done in mask_new(): fixed's value is checked and
 * spelled for every family once, hash's key is loaded into an HMAC
 * context once (re-keying per value costs five times the MAC itself).
 * Per value, work is proportional to what is read: partial walks only the
 * characters it shows, email searches from the end, and nothing is
 * allocated beyond the caller's output buffer.
 */
#include "mask.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Types that share one wire form; the masker tables below are per family. */
enum family {
	F_OTHER,
	F_STRING, /* text, varchar, bpchar, name */
	F_INT2,
	F_INT4,
	F_INT8,
	F_NUMERIC,
	F_FLOAT4,
	F_FLOAT8,
	F_DATE,
	F_TIMESTAMP,
	F_TIMESTAMPTZ,
	F_UUID,
	F_JSON,
	F_JSONB,
	F_BOOL,
	F_BYTEA,
	F_COUNT,
};

static enum family family_of(uint32_t oid)
{
	switch (oid) {
	case PGTYPE_TEXT:
	case PGTYPE_VARCHAR:
	case PGTYPE_BPCHAR:
	case PGTYPE_NAME:
		return F_STRING;
	case PGTYPE_INT2:
		return F_INT2;
	case PGTYPE_INT4:
		return F_INT4;
	case PGTYPE_INT8:
		return F_INT8;
	case PGTYPE_NUMERIC:
		return F_NUMERIC;
	case PGTYPE_FLOAT4:
		return F_FLOAT4;
	case PGTYPE_FLOAT8:
		return F_FLOAT8;
	case PGTYPE_DATE:
		return F_DATE;
	case PGTYPE_TIMESTAMP:
		return F_TIMESTAMP;
	case PGTYPE_TIMESTAMPTZ:
		return F_TIMESTAMPTZ;
	case PGTYPE_UUID:
		return F_UUID;
	case PGTYPE_JSON:
		return F_JSON;
	case PGTYPE_JSONB:
		return F_JSONB;
	case PGTYPE_BOOL:
		return F_BOOL;
	case PGTYPE_BYTEA:
		return F_BYTEA;
	default:
		return F_OTHER;
	}
}

/* Families whose binary form is encoded here. */
static bool has_binary(enum family f)
{
	switch (f) {
	case F_STRING:
	case F_INT2:
	case F_INT4:
	case F_INT8:
	case F_UUID:
	case F_JSON:
	case F_JSONB:
	case F_BYTEA:
		return true;
	default:
		return false;
	}
}

/* fixed's value as one family spells it; valid false if it is not a value of it. */
struct fixed_form {
	bool valid;
	struct pktbuf text, binary;
};

struct masker {
	enum mask_kind kind;
	uint32_t keep_first, keep_last;
	EVP_MAC_CTX *mac; /* hash: keyed, re-initialised per value */
	struct fixed_form fixed[F_COUNT];
	mask_fn fn;
	void *ctx;
};

/* What a masker does for a family, whatever the value. */
enum action {
	ACT_NULL,
	ACT_MARKER, /* redact's marker */
	ACT_EMAIL,
	ACT_PARTIAL,
	ACT_HASH,
	ACT_FIXED,
	ACT_FUNCTION,
};

static enum action redact_action(enum family f)
{
	return f == F_STRING || f == F_JSON || f == F_JSONB ? ACT_MARKER : ACT_NULL;
}

static enum action action_for(const struct masker *m, enum family f)
{
	switch (m->kind) {
	case MASK_NULL:
		return ACT_NULL;
	case MASK_REDACT:
		return redact_action(f);
	case MASK_EMAIL:
		return f == F_STRING ? ACT_EMAIL : redact_action(f);
	case MASK_PARTIAL:
		return f == F_STRING ? ACT_PARTIAL : redact_action(f);
	case MASK_HASH:
		/* Floats, dates and booleans: see mask.h. */
		return has_binary(f) || f == F_NUMERIC ? ACT_HASH : ACT_NULL;
	case MASK_FIXED:
		return m->fixed[f].valid ? ACT_FIXED : ACT_NULL;
	case MASK_FUNCTION:
		return ACT_FUNCTION;
	}
	return ACT_NULL;
}

static int int_width(enum family f)
{
	return f == F_INT2 ? 2 : f == F_INT4 ? 4 : 8;
}

/* An integer of the family's width: decimal digits, or network order. */
static void put_int(struct pktbuf *out, enum family f, bool binary, int64_t v)
{
	if (binary) {
		uint8_t b[8];
		int w = int_width(f);
		for (int i = 0; i < w; i++)
			b[i] = (uint8_t)((uint64_t)v >> (8 * (w - 1 - i)));
		pktbuf_put_bytes(out, b, (size_t)w);
		return;
	}
	char text[24];
	int n = snprintf(text, sizeof(text), "%" PRId64, v);
	pktbuf_put_bytes(out, text, (size_t)n);
}

/* n <= 16 bytes as lower-case hex, without hex_encode()'s allocation. */
static void put_hex(struct pktbuf *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char text[32];
	for (size_t i = 0; i < n; i++) {
		text[2 * i] = digits[p[i] >> 4];
		text[2 * i + 1] = digits[p[i] & 15];
	}
	pktbuf_put_bytes(out, text, 2 * n);
}

static void put_jsonb_version(struct pktbuf *out, enum family f, bool binary)
{
	if (f == F_JSONB && binary)
		pktbuf_put_byte(out, PGTYPE_JSONB_VERSION);
}

/* ---- fixed ---- */

static void spell_fixed(struct fixed_form *form, enum family f, const char *v, size_t n)
{
	int64_t i;
	uint8_t u[16];
	char text[PGTYPE_UUID_TEXT_LEN + 1];
	bool b;
	struct pktbuf *t = &form->text, *bin = &form->binary;

	switch (f) {
	case F_STRING:
		pktbuf_put_bytes(t, v, n);
		pktbuf_put_bytes(bin, v, n);
		break;
	case F_OTHER:
		/* Unchecked: the policy's author chose it for this column. No binary form. */
		pktbuf_put_bytes(t, v, n);
		break;
	case F_INT2:
	case F_INT4:
	case F_INT8: {
		int bits = 8 * int_width(f);
		int64_t max = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1;
		if (!pgtype_parse_int(v, n, -max - 1, max, &i))
			return;
		put_int(t, f, false, i);
		put_int(bin, f, true, i);
		break;
	}
	case F_NUMERIC:
		if (!pgtype_is_numeric(v, n))
			return;
		pktbuf_put_bytes(t, v, n);
		break;
	case F_FLOAT4:
	case F_FLOAT8:
		if (!pgtype_is_float(v, n, f == F_FLOAT4))
			return;
		pktbuf_put_bytes(t, v, n);
		break;
	case F_DATE:
		if (!pgtype_is_date(v, n))
			return;
		pktbuf_put_bytes(t, v, n);
		break;
	case F_TIMESTAMP:
	case F_TIMESTAMPTZ:
		if (!pgtype_is_timestamp(v, n, f == F_TIMESTAMPTZ))
			return;
		pktbuf_put_bytes(t, v, n);
		break;
	case F_UUID:
		if (!pgtype_parse_uuid(v, n, u))
			return;
		pgtype_format_uuid(u, text);
		pktbuf_put_bytes(t, text, PGTYPE_UUID_TEXT_LEN);
		pktbuf_put_bytes(bin, u, sizeof(u));
		break;
	case F_JSON:
	case F_JSONB:
		if (!pgtype_is_json(v, n))
			return;
		pktbuf_put_bytes(t, v, n);
		put_jsonb_version(bin, f, true);
		pktbuf_put_bytes(bin, v, n);
		break;
	case F_BOOL:
		if (!pgtype_parse_bool(v, n, &b))
			return;
		pktbuf_put_byte(t, b ? 't' : 'f');
		break;
	case F_BYTEA:
		if (!pgtype_decode_bytea(v, n, bin)) {
			pktbuf_reset(bin);
			return;
		}
		pktbuf_put_bytes(t, "\\x", 2);
		/* put_hex takes 16 bytes at a time */
		for (size_t at = 0; at < bin->len; at += 16)
			put_hex(t, bin->data + at, bin->len - at < 16 ? bin->len - at : 16);
		break;
	case F_COUNT:
		return;
	}
	form->valid = true;
}

/* ---- hash ---- */

static EVP_MAC_CTX *mac_new(const uint8_t *key, size_t key_len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	if (ctx && EVP_MAC_init(ctx, key, key_len, params) == 1)
		return ctx;
	EVP_MAC_CTX_free(ctx);
	return NULL;
}

#define MAC_LEN 32

static bool mac_of(EVP_MAC_CTX *ctx, const uint8_t *p, size_t n, uint8_t mac[MAC_LEN])
{
	size_t len = 0;
	/* A NULL key re-initialises with the key already loaded. */
	return EVP_MAC_init(ctx, NULL, 0, NULL) == 1 &&
	       (n == 0 || EVP_MAC_update(ctx, p, n) == 1) &&
	       EVP_MAC_final(ctx, mac, &len, MAC_LEN) == 1 && len == MAC_LEN;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The first bytes of the MAC as a signed integer of the family's width. */
static int64_t int_of_mac(const uint8_t mac[MAC_LEN], enum family f)
{
	uint64_t v = be64(mac);
	switch (f) {
	case F_INT2:
		return (int16_t)(v >> 48);
	case F_INT4:
		return (int32_t)(v >> 32);
	default:
		return (int64_t)v;
	}
}

/*
 * The value's canonical text, the bytes hashed: what the server sends in
 * text format, whichever format this value came in. Points at in, at
 * buf, or at bytes appended to out past mark (bytea, decoded).
 */
static bool canonical(enum family f, bool binary, const uint8_t *in, size_t n, char *buf,
                      size_t buf_len, struct pktbuf *out, const uint8_t **p, size_t *len)
{
	uint8_t u[16];
	size_t mark = out->len;

	*p = in;
	*len = n;
	switch (f) {
	case F_INT2:
	case F_INT4:
	case F_INT8:
		if (binary) {
			if (n != (size_t)int_width(f))
				return false;
			uint64_t v = 0;
			for (size_t i = 0; i < n; i++)
				v = v << 8 | in[i];
			/* sign-extend from the type's width */
			int64_t s = n == 8 ? (int64_t)v : n == 4 ? (int32_t)v : (int16_t)v;
			*len = (size_t)snprintf(buf, buf_len, "%" PRId64, s);
			*p = (const uint8_t *)buf;
		}
		return true;
	case F_UUID:
		if (binary) {
			if (n != sizeof(u))
				return false;
			memcpy(u, in, sizeof(u));
		} else if (!pgtype_parse_uuid((const char *)in, n, u)) {
			return false;
		}
		pgtype_format_uuid(u, buf);
		*p = (const uint8_t *)buf;
		*len = PGTYPE_UUID_TEXT_LEN;
		return true;
	case F_JSONB:
		if (binary) {
			if (n < 1 || in[0] != PGTYPE_JSONB_VERSION)
				return false;
			*p = in + 1;
			*len = n - 1;
		}
		return true;
	case F_BYTEA:
		if (!binary) {
			if (!pgtype_decode_bytea((const char *)in, n, out))
				return false;
			*p = out->data + mark;
			*len = out->len - mark;
		}
		return true;
	default:
		return true;
	}
}

static enum mask_result hash(const struct masker *m, enum family f, bool binary, const uint8_t *in,
                             size_t n, struct pktbuf *out)
{
	char buf[PGTYPE_UUID_TEXT_LEN + 1]; /* also holds any int64 in decimal */
	const uint8_t *p;
	size_t len;
	uint8_t mac[MAC_LEN];
	size_t mark = out->len;

	if (!canonical(f, binary, in, n, buf, sizeof(buf), out, &p, &len)) {
		out->len = mark;
		return MASK_MALFORMED;
	}
	bool ok = mac_of(m->mac, p, len, mac);
	out->len = mark; /* drops a decoded bytea */
	/* OpenSSL failing is not expected; the value is withheld all the same. */
	if (!ok)
		return MASK_CANNOT;

	switch (f) {
	case F_STRING:
		put_hex(out, mac, MASK_HASH_HEX / 2);
		break;
	case F_JSON:
	case F_JSONB:
		put_jsonb_version(out, f, binary);
		pktbuf_put_byte(out, '"');
		put_hex(out, mac, MASK_HASH_HEX / 2);
		pktbuf_put_byte(out, '"');
		break;
	case F_INT2:
	case F_INT4:
	case F_INT8:
		put_int(out, f, binary, int_of_mac(mac, f));
		break;
	case F_NUMERIC:
		put_int(out, F_INT8, false, int_of_mac(mac, F_INT8));
		break;
	case F_UUID: {
		uint8_t u[16];
		memcpy(u, mac, sizeof(u));
		u[6] = (uint8_t)((u[6] & 0x0f) | 0x80); /* version 8: custom */
		u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
		if (binary) {
			pktbuf_put_bytes(out, u, sizeof(u));
		} else {
			pgtype_format_uuid(u, buf);
			pktbuf_put_bytes(out, buf, PGTYPE_UUID_TEXT_LEN);
		}
		break;
	}
	case F_BYTEA:
		if (binary) {
			pktbuf_put_bytes(out, mac, MASK_HASH_HEX / 2);
		} else {
			pktbuf_put_bytes(out, "\\x", 2);
			put_hex(out, mac, MASK_HASH_HEX / 2);
		}
		break;
	default:
		/* action_for() sends no other family here */
		return MASK_CANNOT;
	}
	return MASK_VALUE;
}

/* ---- email and partial ---- */

static void put_redacted(struct pktbuf *out)
{
	pktbuf_put_bytes(out, MASK_REDACTED, sizeof(MASK_REDACTED) - 1);
}

static void email(const uint8_t *in, size_t n, struct pktbuf *out)
{
	if (n == 0)
		return;
	put_redacted(out);
	/* '@' is ASCII, so in UTF-8 what follows it starts a character. */
	const uint8_t *at = memrchr(in, '@', n);
	if (at)
		pktbuf_put_bytes(out, at, n - (size_t)(at - in));
}

/* The length of the valid UTF-8 character at p (n bytes left), or 0 (RFC 3629). */
static size_t utf8_char(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : lo; /* overlong */
		hi = c == 0xed ? 0x9f : hi; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : lo; /* overlong */
		hi = c == 0xf4 ? 0x8f : hi; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

/*
 * The shown ends: in[0, *head) holds keep_first characters and
 * in[*tail, n) keep_last, both valid UTF-8, with at least one byte left
 * between them to hide. False otherwise.
 */
static bool partial_ends(const struct masker *m, const uint8_t *in, size_t n, size_t *head,
                         size_t *tail)
{
	size_t h = 0, t = n;
	for (uint32_t k = 0; k < m->keep_first && h < n; k++) {
		size_t len = utf8_char(in + h, n - h);
		if (len == 0)
			return false;
		h += len;
	}
	/* Backwards: a character starts at the first byte that is not 10xxxxxx. */
	for (uint32_t k = 0; k < m->keep_last && t > h; k++) {
		size_t start = t - 1;
		while (start > h && t - start < 4 && (in[start] & 0xc0) == 0x80)
			start--;
		if (utf8_char(in + start, t - start) != t - start)
			return false;
		t = start;
	}
	*head = h;
	*tail = t;
	return h < t;
}

static void partial(const struct masker *m, const uint8_t *in, size_t n, struct pktbuf *out)
{
	size_t head, tail;
	if (n == 0)
		return;
	if (!partial_ends(m, in, n, &head, &tail)) {
		put_redacted(out);
		return;
	}
	pktbuf_put_bytes(out, in, head);
	put_redacted(out);
	pktbuf_put_bytes(out, in + tail, n - tail);
}

/* ---- function ---- */

/* Binary forms that are the value's text (jsonb's after its version byte). */
static bool binary_is_text(enum family f)
{
	return f == F_STRING || f == F_JSON || f == F_JSONB;
}

static enum mask_result call_function(const struct masker *m, enum family f, bool binary,
                                      const uint8_t *in, size_t n, struct pktbuf *out)
{
	if (binary && f == F_JSONB) {
		if (n == 0 || in[0] != PGTYPE_JSONB_VERSION)
			return MASK_MALFORMED;
		in++;
		n--;
	}
	const char *text;
	size_t len;
	enum mask_result r = m->fn(m->ctx, in, n, &text, &len);
	if (r != MASK_VALUE)
		return r == MASK_SQL_NULL ? MASK_SQL_NULL : MASK_CANNOT;
	if (memchr(text, '\0', len) || len > INT32_MAX)
		return MASK_SQL_NULL;
	/* Checked and spelled for the type as a fixed value is, once per value. */
	static struct fixed_form form;
	pktbuf_reset(&form.text);
	pktbuf_reset(&form.binary);
	form.valid = false;
	spell_fixed(&form, f, text, len);
	if (!form.valid)
		return MASK_SQL_NULL;
	const struct pktbuf *v = binary ? &form.binary : &form.text;
	pktbuf_put_bytes(out, v->data, v->len);
	return MASK_VALUE;
}

/* ---- the API ---- */

struct masker *mask_new(const struct mask_spec *spec, const char **err)
{
	switch (spec->kind) {
	case MASK_NULL:
	case MASK_REDACT:
	case MASK_EMAIL:
	case MASK_PARTIAL:
		break;
	case MASK_HASH:
		if (!spec->key || spec->key_len < MASK_HASH_MIN_KEY) {
			*err = "a hash masker needs a key of at least 16 bytes";
			return NULL;
		}
		break;
	case MASK_FIXED:
		if (!spec->fixed || memchr(spec->fixed, '\0', spec->fixed_len)) {
			*err = "a fixed mask value cannot hold a NUL byte";
			return NULL;
		}
		if (spec->fixed_len > INT32_MAX) {
			*err = "fixed mask value too long";
			return NULL;
		}
		break;
	case MASK_FUNCTION:
		if (!spec->fn) {
			*err = "a function masker needs a function";
			return NULL;
		}
		break;
	default:
		*err = "unknown masker";
		return NULL;
	}

	struct masker *m = xcalloc(1, sizeof(*m));
	m->kind = spec->kind;
	m->keep_first = spec->keep_first;
	m->keep_last = spec->keep_last;
	m->fn = spec->fn;
	m->ctx = spec->ctx;
	if (spec->kind == MASK_HASH) {
		m->mac = mac_new(spec->key, spec->key_len);
		if (!m->mac) {
			*err = "OpenSSL has no HMAC-SHA256";
			mask_free(m);
			return NULL;
		}
	}
	if (spec->kind == MASK_FIXED) {
		for (int f = 0; f < F_COUNT; f++)
			spell_fixed(&m->fixed[f], (enum family)f, spec->fixed, spec->fixed_len);
	}
	return m;
}

void mask_free(struct masker *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->mac); /* OpenSSL wipes the key it holds */
	for (int f = 0; f < F_COUNT; f++) {
		pktbuf_free(&m->fixed[f].text);
		pktbuf_free(&m->fixed[f].binary);
	}
	free(m);
}

bool mask_supports(const struct masker *m, uint32_t type_oid, int16_t format)
{
	if (format == PGTYPE_FORMAT_TEXT)
		return true;
	if (format != PGTYPE_FORMAT_BINARY)
		return false;
	enum family f = family_of(type_oid);
	enum action a = action_for(m, f);
	return a == ACT_NULL || (a == ACT_FUNCTION ? binary_is_text(f) : has_binary(f));
}

enum mask_result mask_apply(const struct masker *m, uint32_t type_oid, int16_t format,
                            const uint8_t *in, int32_t in_len, struct pktbuf *out)
{
	if (in_len == -1)
		return MASK_SQL_NULL;
	if (in_len < 0 || (!in && in_len > 0))
		return MASK_MALFORMED;
	if (!mask_supports(m, type_oid, format))
		return MASK_CANNOT;

	enum family f = family_of(type_oid);
	bool binary = format == PGTYPE_FORMAT_BINARY;
	size_t n = (size_t)in_len;
	const struct pktbuf *v;

	switch (action_for(m, f)) {
	case ACT_NULL:
		return MASK_SQL_NULL;
	case ACT_MARKER:
		if (f == F_STRING) {
			put_redacted(out);
		} else {
			put_jsonb_version(out, f, binary);
			pktbuf_put_bytes(out, "\"" MASK_REDACTED "\"", sizeof(MASK_REDACTED) + 1);
		}
		return MASK_VALUE;
	case ACT_FIXED:
		v = binary ? &m->fixed[f].binary : &m->fixed[f].text;
		pktbuf_put_bytes(out, v->data, v->len);
		return MASK_VALUE;
	case ACT_EMAIL:
		email(in, n, out);
		return MASK_VALUE;
	case ACT_PARTIAL:
		partial(m, in, n, out);
		return MASK_VALUE;
	case ACT_HASH:
		return hash(m, f, binary, in, n, out);
	case ACT_FUNCTION:
		return call_function(m, f, binary, in, n, out);
	}
	return MASK_CANNOT;
}
