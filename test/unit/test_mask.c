/*
 * mask.c, pgtype.c and rowmask.c. Expected values are written out by
 * hand or computed here independently of the code under test: MACs with
 * OpenSSL's one-shot HMAC(), UTF-8 with a validator of this file's own,
 * DataRows with a reader of this file's own. Inputs are copied into
 * exactly-sized heap blocks, so that a read past the end shows up under
 * valgrind or AddressSanitizer.
 *
 * MASK_BENCH=1 also prints the cost of rewriting a row.
 */
#include "mask.h"
#include "pgtype.h"
#include "pktbuf.h"
#include "proto.h"
#include "rowmask.h"
#include "unit.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OID_INET      869
#define OID_TEXTARRAY 1009

static const uint8_t key1[] = "0123456789abcdef0123456789abcdef";
static const uint8_t key2[] = "fedcba9876543210fedcba9876543210";
#define KEY_LEN 32

/* The maskers most tests use. */
static struct masker *m_null, *m_redact, *m_email, *m_partial, *m_hash, *m_hash2, *m_fixed0;

/* Every type mask.h names, and three it does not. */
static const uint32_t all_oids[] = {
    PGTYPE_TEXT,        PGTYPE_VARCHAR, PGTYPE_BPCHAR,
    PGTYPE_NAME,        PGTYPE_INT2,    PGTYPE_INT4,
    PGTYPE_INT8,        PGTYPE_NUMERIC, PGTYPE_FLOAT4,
    PGTYPE_FLOAT8,      PGTYPE_DATE,    PGTYPE_TIMESTAMP,
    PGTYPE_TIMESTAMPTZ, PGTYPE_UUID,    PGTYPE_JSON,
    PGTYPE_JSONB,       PGTYPE_BOOL,    PGTYPE_BYTEA,
    OID_INET,           OID_TEXTARRAY,  0,
};

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *d = xmalloc(n ? n : 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

static struct masker *make(const struct mask_spec *spec)
{
	const char *err = NULL;
	struct masker *m = mask_new(spec, &err);
	if (!m) {
		fprintf(stderr, "mask_new: %s\n", err);
		exit(2);
	}
	return m;
}

static struct masker *make_fixed(const char *v)
{
	return make(&(struct mask_spec){.kind = MASK_FIXED, .fixed = v, .fixed_len = strlen(v)});
}

static struct masker *make_partial(uint32_t first, uint32_t last)
{
	return make(
	    &(struct mask_spec){.kind = MASK_PARTIAL, .keep_first = first, .keep_last = last});
}

/* ---- running one masker ---- */

static struct pktbuf got;
static enum mask_result got_r;

/* n == -1: SQL NULL */
static void apply_bytes(const struct masker *m, uint32_t oid, int16_t fmt, const void *in,
                        int32_t n)
{
	uint8_t *copy = n >= 0 ? dup_bytes(in, (size_t)n) : NULL;
	pktbuf_reset(&got);
	got_r = mask_apply(m, oid, fmt, copy, n, &got);
	free(copy);
}

static void apply_text(const struct masker *m, uint32_t oid, int16_t fmt, const char *in)
{
	apply_bytes(m, oid, fmt, in, in ? (int32_t)strlen(in) : -1);
}

static const char *result_name(enum mask_result r)
{
	switch (r) {
	case MASK_VALUE:
		return "value";
	case MASK_SQL_NULL:
		return "NULL";
	case MASK_CANNOT:
		return "cannot";
	case MASK_MALFORMED:
		return "malformed";
	}
	return "?";
}

static void check_got_at(const char *file, int line, const char *what, enum mask_result want_r,
                         const void *want, size_t want_len)
{
	bool ok = got_r == want_r;
	if (ok && want_r == MASK_VALUE)
		ok =
		    got.len == want_len && (want_len == 0 || memcmp(got.data, want, want_len) == 0);
	else if (ok)
		ok = got.len == 0; /* nothing appended */
	if (ok) {
		unit_passed++;
		return;
	}
	unit_failed++;
	fprintf(stderr, "%s:%d: %s: got %s \"%.*s\" (%zu bytes), want %s \"%.*s\"\n", file, line,
	        what, result_name(got_r), (int)(got.len > 200 ? 200 : got.len),
	        got.data ? (const char *)got.data : "", got.len, result_name(want_r),
	        want ? (int)(want_len > 200 ? 200 : want_len) : 0, want ? (const char *)want : "");
}

/* want NULL: SQL NULL */
static void check_got_text_at(const char *file, int line, const char *what, const char *want)
{
	check_got_at(file, line, what, want ? MASK_VALUE : MASK_SQL_NULL, want,
	             want ? strlen(want) : 0);
}

#define CHECK_GOT_TEXT(what, want) check_got_text_at(__FILE__, __LINE__, what, want)
#define CHECK_GOT_BYTES(what, lit)                                                                 \
	check_got_at(__FILE__, __LINE__, what, MASK_VALUE, lit, sizeof(lit) - 1)
#define CHECK_GOT(what, r) check_got_at(__FILE__, __LINE__, what, r, NULL, 0)

#define EXPECT_TEXT(m, oid, in, want)                                                              \
	do {                                                                                       \
		apply_text(m, oid, PGTYPE_FORMAT_TEXT, in);                                        \
		CHECK_GOT_TEXT(#m " " #oid " " #in, want);                                         \
	} while (0)

/* ---- independent references ---- */

static void hmac_ref(const uint8_t *key, const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, KEY_LEN, p, n, out, &len) || len != 32) {
		fprintf(stderr, "HMAC failed\n");
		exit(2);
	}
}

/* The first 8 bytes of HMAC(key1, s) as 16 hex digits. */
static void hex16_ref(const uint8_t *key, const void *p, size_t n, char out[17])
{
	uint8_t mac[32];
	hmac_ref(key, p, n, mac);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* A UTF-8 validator written from the Unicode tables, not from mask.c's. */
static bool utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t len;
		if (p[i] < 0x80) {
			i++;
			continue;
		} else if ((p[i] & 0xe0) == 0xc0) {
			cp = p[i] & 0x1f;
			len = 2;
		} else if ((p[i] & 0xf0) == 0xe0) {
			cp = p[i] & 0x0f;
			len = 3;
		} else if ((p[i] & 0xf8) == 0xf0) {
			cp = p[i] & 0x07;
			len = 4;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Byte offsets at which the characters of valid UTF-8 start; returns how many. */
static size_t char_starts(const uint8_t *p, size_t n, size_t *starts)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			starts[count++] = i;
	}
	return count;
}

/* A DataRow message, read by this file: type, length, count, values. */
#define MAX_TEST_COLS 16
struct test_row {
	int n;
	int32_t len[MAX_TEST_COLS];
	const uint8_t *val[MAX_TEST_COLS];
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads one DataRow at msg; the number of bytes it takes, or 0. */
static size_t read_row(const uint8_t *msg, size_t avail, struct test_row *row)
{
	if (avail < 7 || msg[0] != 'D')
		return 0;
	size_t total = 1 + get32(msg + 1);
	if (total > avail)
		return 0;
	size_t pos = 5;
	row->n = msg[pos] << 8 | msg[pos + 1];
	pos += 2;
	if (row->n > MAX_TEST_COLS)
		return 0;
	for (int i = 0; i < row->n; i++) {
		if (total - pos < 4)
			return 0;
		row->len[i] = (int32_t)get32(msg + pos);
		pos += 4;
		row->val[i] = msg + pos;
		if (row->len[i] > 0) {
			if (total - pos < (size_t)row->len[i])
				return 0;
			pos += (size_t)row->len[i];
		}
	}
	return pos == total ? total : 0;
}

static bool val_is(const struct test_row *row, int i, const char *want)
{
	if (!want)
		return row->len[i] == -1;
	return row->len[i] == (int32_t)strlen(want) && memcmp(row->val[i], want, strlen(want)) == 0;
}

/* ---- mask_new ---- */

static void test_new(void)
{
	const char *err = NULL;
	struct masker *m;

	m = mask_new(&(struct mask_spec){.kind = MASK_HASH}, &err);
	CHECK(m == NULL && err && strstr(err, "key"));
	err = NULL;
	m = mask_new(&(struct mask_spec){.kind = MASK_HASH, .key = key1, .key_len = 15}, &err);
	CHECK(m == NULL && err && strstr(err, "16 bytes"));
	m = mask_new(&(struct mask_spec){.kind = MASK_HASH, .key = key1, .key_len = 16}, &err);
	CHECK(m != NULL);
	mask_free(m);

	err = NULL;
	m = mask_new(&(struct mask_spec){.kind = MASK_FIXED, .fixed = "a\0b", .fixed_len = 3},
	             &err);
	CHECK(m == NULL && err && strstr(err, "NUL"));
	err = NULL;
	m = mask_new(&(struct mask_spec){.kind = MASK_FIXED}, &err);
	CHECK(m == NULL && err);
	err = NULL;
	m = mask_new(&(struct mask_spec){.kind = (enum mask_kind)99}, &err);
	CHECK(m == NULL && err && strstr(err, "unknown"));

	/* fixed "" is a value: the empty string */
	m = mask_new(&(struct mask_spec){.kind = MASK_FIXED, .fixed = "", .fixed_len = 0}, &err);
	CHECK(m != NULL);
	EXPECT_TEXT(m, PGTYPE_TEXT, "secret", "");
	EXPECT_TEXT(m, PGTYPE_INT4, "42", NULL);
	mask_free(m);
	mask_free(NULL); /* harmless */
}

/* ---- every masker and every type, text format ---- */

struct type_case {
	uint32_t oid;
	const char *in;
	const char *redact, *email, *partial, *fixed0;
};

/* partial is {1, 2}; fixed0 is fixed("0") */
static const struct type_case type_cases[] = {
    {PGTYPE_TEXT, "alice@corp.example", "***", "***@corp.example", "a***le", "0"},
    {PGTYPE_VARCHAR, "alice@corp.example", "***", "***@corp.example", "a***le", "0"},
    /* bpchar arrives padded, and partial shows the padding */
    {PGTYPE_BPCHAR, "alice@corp.example  ", "***", "***@corp.example  ", "a***  ", "0"},
    {PGTYPE_NAME, "alice", "***", "***", "a***ce", "0"},
    {PGTYPE_INT2, "42", NULL, NULL, NULL, "0"},
    {PGTYPE_INT4, "123456", NULL, NULL, NULL, "0"},
    {PGTYPE_INT8, "9000000000", NULL, NULL, NULL, "0"},
    {PGTYPE_NUMERIC, "12.50", NULL, NULL, NULL, "0"},
    {PGTYPE_FLOAT4, "1.5", NULL, NULL, NULL, "0"},
    {PGTYPE_FLOAT8, "2.25", NULL, NULL, NULL, "0"},
    {PGTYPE_DATE, "2024-02-29", NULL, NULL, NULL, NULL},
    {PGTYPE_TIMESTAMP, "2024-02-29 12:34:56.789", NULL, NULL, NULL, NULL},
    {PGTYPE_TIMESTAMPTZ, "2024-02-29 12:34:56+01", NULL, NULL, NULL, NULL},
    {PGTYPE_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", NULL, NULL, NULL, NULL},
    {PGTYPE_JSON, "{\"email\":\"a@b.c\"}", "\"***\"", "\"***\"", "\"***\"", "0"},
    {PGTYPE_JSONB, "{\"email\": \"a@b.c\"}", "\"***\"", "\"***\"", "\"***\"", "0"},
    {PGTYPE_BOOL, "t", NULL, NULL, NULL, "f"},
    {PGTYPE_BYTEA, "\\x0102", NULL, NULL, NULL, "\\x30"},
    /* types not known here: NULL, except fixed, sent as written */
    {OID_INET, "10.0.0.1", NULL, NULL, NULL, "0"},
    {OID_TEXTARRAY, "{a@b.c,d@e.f}", NULL, NULL, NULL, "0"},
    {0, "x", NULL, NULL, NULL, "0"},
};

static void test_type_matrix(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(type_cases); i++) {
		const struct type_case *c = &type_cases[i];
		char what[64];
		snprintf(what, sizeof(what), "oid %u", c->oid);
		apply_text(m_null, c->oid, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, NULL);
		apply_text(m_redact, c->oid, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, c->redact);
		apply_text(m_email, c->oid, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, c->email);
		apply_text(m_partial, c->oid, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, c->partial);
		apply_text(m_fixed0, c->oid, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, c->fixed0);
	}
}

/* SQL NULL stays NULL: every masker, every type, both formats, even where nothing else could be
 * sent. */
static void test_null_input(void)
{
	struct masker *date_fixed = make_fixed("2024-01-01");
	const struct masker *ms[] = {m_null, m_redact, m_email,   m_partial,
	                             m_hash, m_fixed0, date_fixed};
	bool all = true;
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		for (size_t t = 0; t < ARRAY_SIZE(all_oids); t++) {
			for (int16_t fmt = 0; fmt <= 1; fmt++) {
				apply_bytes(ms[i], all_oids[t], fmt, NULL, -1);
				if (got_r != MASK_SQL_NULL || got.len != 0) {
					fprintf(stderr,
					        "null input: masker %zu oid %u fmt %d: %s\n", i,
					        all_oids[t], fmt, result_name(got_r));
					all = false;
				}
			}
		}
	}
	CHECK(all);
	/* lengths below -1 are not NULL */
	apply_bytes(m_redact, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, "x", -2);
	CHECK_GOT("length -2", MASK_MALFORMED);
	mask_free(date_fixed);
}

static void test_empty(void)
{
	char hex[17];
	EXPECT_TEXT(m_null, PGTYPE_TEXT, "", NULL);
	EXPECT_TEXT(m_redact, PGTYPE_TEXT, "", "***");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "", "");
	EXPECT_TEXT(m_partial, PGTYPE_TEXT, "", "");
	EXPECT_TEXT(m_fixed0, PGTYPE_TEXT, "", "0");
	hex16_ref(key1, "", 0, hex);
	EXPECT_TEXT(m_hash, PGTYPE_TEXT, "", hex);
	/* binary text is the same bytes */
	apply_bytes(m_email, PGTYPE_TEXT, PGTYPE_FORMAT_BINARY, "", 0);
	CHECK_GOT_TEXT("empty binary email", "");
	apply_bytes(m_redact, PGTYPE_VARCHAR, PGTYPE_FORMAT_BINARY, "", 0);
	CHECK_GOT_TEXT("empty binary redact", "***");
}

/* The result is appended; nothing is appended for NULL. */
static void test_appends(void)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_put_bytes(&pb, "head", 4);
	CHECK(mask_apply(m_email, PGTYPE_TEXT, 0, (const uint8_t *)"a@b", 3, &pb) == MASK_VALUE);
	CHECK(pb.len == 9 && memcmp(pb.data, "head***@b", 9) == 0);
	CHECK(mask_apply(m_redact, PGTYPE_INT4, 0, (const uint8_t *)"1", 1, &pb) == MASK_SQL_NULL);
	CHECK(pb.len == 9);
	CHECK(mask_apply(m_fixed0, PGTYPE_DATE, 1, (const uint8_t *)"1", 1, &pb) == MASK_SQL_NULL);
	CHECK(mask_apply(m_hash, PGTYPE_INT4, 1, (const uint8_t *)"123", 3, &pb) == MASK_MALFORMED);
	CHECK(pb.len == 9);
	pktbuf_free(&pb);
}

/* ---- fixed ---- */

struct fixed_case {
	const char *value;
	uint32_t oid;
	const char *want; /* NULL: not a value of the type, sent as NULL */
};

static const struct fixed_case fixed_cases[] = {
    {"anything at all", PGTYPE_TEXT, "anything at all"},
    {"", PGTYPE_VARCHAR, ""},
    {"not an inet", OID_INET, "not an inet"},
    /* integers, spelled as PostgreSQL does */
    {"007", PGTYPE_INT4, "7"},
    {"-0", PGTYPE_INT4, "0"},
    {"32767", PGTYPE_INT2, "32767"},
    {"32768", PGTYPE_INT2, NULL},
    {"-32768", PGTYPE_INT2, "-32768"},
    {"-32769", PGTYPE_INT2, NULL},
    {"2147483647", PGTYPE_INT4, "2147483647"},
    {"2147483648", PGTYPE_INT4, NULL},
    {"-2147483648", PGTYPE_INT4, "-2147483648"},
    {"2147483648", PGTYPE_INT8, "2147483648"},
    {"9223372036854775807", PGTYPE_INT8, "9223372036854775807"},
    {"9223372036854775808", PGTYPE_INT8, NULL},
    {"-9223372036854775808", PGTYPE_INT8, "-9223372036854775808"},
    {"-9223372036854775809", PGTYPE_INT8, NULL},
    {"99999999999999999999999999", PGTYPE_INT8, NULL},
    {"abc", PGTYPE_INT4, NULL},
    {"", PGTYPE_INT4, NULL},
    {"-", PGTYPE_INT4, NULL},
    {" 1", PGTYPE_INT4, NULL},
    {"1 ", PGTYPE_INT4, NULL},
    {"+1", PGTYPE_INT4, NULL},
    {"1.0", PGTYPE_INT4, NULL},
    {"0x10", PGTYPE_INT4, NULL},
    {"***", PGTYPE_INT4, NULL},
    /* numeric */
    {"12.50", PGTYPE_NUMERIC, "12.50"},
    {"-0.5", PGTYPE_NUMERIC, "-0.5"},
    {"NaN", PGTYPE_NUMERIC, "NaN"},
    {"-Infinity", PGTYPE_NUMERIC, "-Infinity"},
    {"1e5", PGTYPE_NUMERIC, NULL},
    {".5", PGTYPE_NUMERIC, NULL},
    {"1.", PGTYPE_NUMERIC, NULL},
    {"abc", PGTYPE_NUMERIC, NULL},
    /* floats, within each type's range */
    {"1.5", PGTYPE_FLOAT4, "1.5"},
    {"3e38", PGTYPE_FLOAT4, "3e38"},
    {"1e39", PGTYPE_FLOAT4, NULL},
    {"1e39", PGTYPE_FLOAT8, "1e39"},
    {"1e309", PGTYPE_FLOAT8, NULL},
    {"1.5e-07", PGTYPE_FLOAT8, "1.5e-07"},
    {"-Infinity", PGTYPE_FLOAT8, "-Infinity"},
    {"NaN", PGTYPE_FLOAT4, "NaN"},
    {"nan", PGTYPE_FLOAT8, NULL},
    {"inf", PGTYPE_FLOAT8, NULL},
    {"0x10", PGTYPE_FLOAT8, NULL},
    {"1e", PGTYPE_FLOAT8, NULL},
    /* dates: real days only */
    {"2024-02-29", PGTYPE_DATE, "2024-02-29"},
    {"2023-02-29", PGTYPE_DATE, NULL},
    {"2000-02-29", PGTYPE_DATE, "2000-02-29"},
    {"1900-02-29", PGTYPE_DATE, NULL},
    {"2024-04-31", PGTYPE_DATE, NULL},
    {"2024-13-01", PGTYPE_DATE, NULL},
    {"2024-00-10", PGTYPE_DATE, NULL},
    {"2024-01-00", PGTYPE_DATE, NULL},
    {"2024-1-01", PGTYPE_DATE, NULL},
    {"0000-01-01", PGTYPE_DATE, NULL},
    {"12345-06-07", PGTYPE_DATE, "12345-06-07"},
    {"0044-03-15 BC", PGTYPE_DATE, "0044-03-15 BC"},
    {"0005-02-29 BC", PGTYPE_DATE, "0005-02-29 BC"}, /* year -4: leap */
    {"0004-02-29 BC", PGTYPE_DATE, NULL},
    {"4714-01-01 BC", PGTYPE_DATE, NULL},
    {"infinity", PGTYPE_DATE, "infinity"},
    {"-infinity", PGTYPE_DATE, "-infinity"},
    {"01/02/2024", PGTYPE_DATE, NULL},
    {"2024-02-29 12:00:00", PGTYPE_DATE, NULL},
    /* timestamps */
    {"2024-02-29 12:34:56", PGTYPE_TIMESTAMP, "2024-02-29 12:34:56"},
    {"2024-02-29 23:59:59.123456", PGTYPE_TIMESTAMP, "2024-02-29 23:59:59.123456"},
    {"2024-02-29 12:34:56.1234567", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29 12:34:56.", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29 24:00:00", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29 12:60:00", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29T12:34:56", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29 12:34", PGTYPE_TIMESTAMP, NULL},
    {"2024-02-29 12:34:56+01", PGTYPE_TIMESTAMP, NULL},
    {"294277-01-01 00:00:00", PGTYPE_TIMESTAMP, NULL},
    {"0044-03-15 12:00:00 BC", PGTYPE_TIMESTAMP, "0044-03-15 12:00:00 BC"},
    {"infinity", PGTYPE_TIMESTAMP, "infinity"},
    {"2024-02-29 12:34:56+01", PGTYPE_TIMESTAMPTZ, "2024-02-29 12:34:56+01"},
    {"2024-02-29 12:34:56.5+05:30", PGTYPE_TIMESTAMPTZ, "2024-02-29 12:34:56.5+05:30"},
    {"1900-01-01 00:00:00-00:09:21", PGTYPE_TIMESTAMPTZ, "1900-01-01 00:00:00-00:09:21"},
    {"0044-03-15 12:00:00+00 BC", PGTYPE_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC"},
    {"2024-02-29 12:34:56", PGTYPE_TIMESTAMPTZ, NULL},
    {"2024-02-29 12:34:56+16", PGTYPE_TIMESTAMPTZ, NULL},
    {"2024-02-29 12:34:56+01:60", PGTYPE_TIMESTAMPTZ, NULL},
    {"2024-02-29 12:34:56+01:", PGTYPE_TIMESTAMPTZ, NULL},
    {"2024-02-29 12:34:56 UTC", PGTYPE_TIMESTAMPTZ, NULL},
    /* uuid, in lower case */
    {"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", PGTYPE_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {"{a0eebc999c0b4ef8bb6d6bb9bd380a11}", PGTYPE_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", PGTYPE_UUID, NULL},
    {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", PGTYPE_UUID, NULL},
    {"a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11", PGTYPE_UUID, NULL},
    {"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", PGTYPE_UUID, NULL},
    {"{a0eebc999c0b4ef8bb6d6bb9bd380a11x", PGTYPE_UUID, NULL},
    /* json */
    {"{\"a\":[1,2.5,null,\"x\"]}", PGTYPE_JSON, "{\"a\":[1,2.5,null,\"x\"]}"},
    {"\"redacted\"", PGTYPE_JSONB, "\"redacted\""},
    {"123456789012345678901234567890", PGTYPE_JSON, "123456789012345678901234567890"},
    {"{bad", PGTYPE_JSON, NULL},
    {"[1,]", PGTYPE_JSONB, NULL},
    {"", PGTYPE_JSON, NULL},
    {"1 2", PGTYPE_JSON, NULL},
    /* bool, as t or f */
    {"true", PGTYPE_BOOL, "t"},
    {"OFF", PGTYPE_BOOL, "f"},
    {"1", PGTYPE_BOOL, "t"},
    {"maybe", PGTYPE_BOOL, NULL},
    {"", PGTYPE_BOOL, NULL},
    /* bytea, in hex format */
    {"\\x0A0b", PGTYPE_BYTEA, "\\x0a0b"},
    {"abc", PGTYPE_BYTEA, "\\x616263"},
    {"a\\\\b", PGTYPE_BYTEA, "\\x615c62"},
    {"\\001\\377", PGTYPE_BYTEA, "\\x01ff"},
    {"", PGTYPE_BYTEA, "\\x"},
    {"\\x", PGTYPE_BYTEA, "\\x"},
    {"\\x0", PGTYPE_BYTEA, NULL},
    {"\\xzz", PGTYPE_BYTEA, NULL},
    {"\\9", PGTYPE_BYTEA, NULL},
    {"\\400", PGTYPE_BYTEA, NULL},
    {"ab\\", PGTYPE_BYTEA, NULL},
};

static void test_fixed(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fixed_cases); i++) {
		const struct fixed_case *c = &fixed_cases[i];
		struct masker *m = make_fixed(c->value);
		char what[96];
		snprintf(what, sizeof(what), "fixed(\"%s\") oid %u", c->value, c->oid);
		apply_text(m, c->oid, PGTYPE_FORMAT_TEXT, "secret");
		CHECK_GOT_TEXT(what, c->want);
		mask_free(m);
	}

	/* a long bytea value, past one hex chunk */
	char long_hex[2 + 2 * 40 + 1] = "\\x";
	for (int i = 0; i < 40; i++)
		snprintf(long_hex + 2 + 2 * i, 3, "%02x", i);
	struct masker *m = make_fixed(long_hex);
	EXPECT_TEXT(m, PGTYPE_BYTEA, "secret", long_hex);
	apply_text(m, PGTYPE_BYTEA, PGTYPE_FORMAT_BINARY, "secret");
	bool bytes_ok = got_r == MASK_VALUE && got.len == 40;
	for (int i = 0; bytes_ok && i < 40; i++)
		bytes_ok = got.data[i] == i;
	CHECK(bytes_ok);
	mask_free(m);
}

/* ---- function ---- */

/* Answers what ctx says: a text, NULL, or a failure; records what it was given. */
static char fn_seen[64];
static enum mask_result fn_masker(void *ctx, const uint8_t *in, size_t in_len, const char **out,
                                  size_t *out_len)
{
	snprintf(fn_seen, sizeof(fn_seen), "%.*s", (int)in_len, (const char *)in);
	const char *answer = ctx;
	if (!answer)
		return MASK_SQL_NULL;
	if (strcmp(answer, "fail") == 0)
		return MASK_CANNOT;
	*out = answer;
	*out_len = strlen(answer);
	return MASK_VALUE;
}

static void test_function(void)
{
	struct masker *m = make(
	    &(struct mask_spec){.kind = MASK_FUNCTION, .fn = fn_masker, .ctx = (void *)"0042"});
	/* Checked and spelled for the type, as fixed values are. */
	EXPECT_TEXT(m, PGTYPE_TEXT, "secret", "0042");
	CHECK_STR(fn_seen, "secret");
	EXPECT_TEXT(m, PGTYPE_INT4, "7", "42");
	EXPECT_TEXT(m, PGTYPE_UUID, "x", NULL);
	/* Binary: only where the binary form is the text. */
	CHECK(mask_supports(m, PGTYPE_VARCHAR, PGTYPE_FORMAT_BINARY));
	CHECK(!mask_supports(m, PGTYPE_INT4, PGTYPE_FORMAT_BINARY));
	apply_text(m, PGTYPE_INT4, PGTYPE_FORMAT_BINARY, "\x00\x00\x00\x07");
	CHECK_GOT("function int4 binary", MASK_CANNOT);
	apply_bytes(m, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, "\x01\"s\"", 4);
	CHECK_STR(fn_seen, "\"s\"");
	CHECK_GOT("function jsonb \"0042\" is not JSON", MASK_SQL_NULL);
	apply_text(m, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, NULL);
	CHECK_GOT("function NULL stays NULL", MASK_SQL_NULL);
	mask_free(m);

	m = make(&(struct mask_spec){.kind = MASK_FUNCTION, .fn = fn_masker, .ctx = NULL});
	apply_text(m, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, "secret");
	CHECK_GOT("function gives NULL", MASK_SQL_NULL);
	mask_free(m);
	m = make(
	    &(struct mask_spec){.kind = MASK_FUNCTION, .fn = fn_masker, .ctx = (void *)"fail"});
	apply_text(m, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, "secret");
	CHECK_GOT("function fails", MASK_CANNOT);
	mask_free(m);

	const char *err = NULL;
	CHECK(!mask_new(&(struct mask_spec){.kind = MASK_FUNCTION}, &err) && err);
}

/* ---- email ---- */

static void test_email(void)
{
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "alice@corp.example", "***@corp.example");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "a@b", "***@b");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "no at sign", "***");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "@corp.example", "***@corp.example");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "alice@", "***@");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "@", "***@");
	/* the domain follows the last @: a quoted local part may hold one */
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "\"a@b\"@corp.example", "***@corp.example");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "a@b@c", "***@c");
	EXPECT_TEXT(m_email, PGTYPE_TEXT, "zoë@例え.jp", "***@例え.jp");
	/* local parts of every length give the same mask */
	EXPECT_TEXT(m_email, PGTYPE_VARCHAR, "averyveryverylonglocalpart@x.org", "***@x.org");
	apply_text(m_email, PGTYPE_TEXT, PGTYPE_FORMAT_BINARY, "bob@corp.example");
	CHECK_GOT_TEXT("email binary", "***@corp.example");
	apply_text(m_email, PGTYPE_NAME, PGTYPE_FORMAT_BINARY, "bob@corp.example");
	CHECK_GOT_TEXT("email name binary", "***@corp.example");
}

/* ---- partial ---- */

struct partial_case {
	uint32_t first, last;
	const char *in, *want;
};

static const struct partial_case partial_cases[] = {
    {1, 2, "Zoë Ångström", "Z***öm"},
    {2, 1, "日本語テキスト", "日本***ト"},
    {1, 1, "😀abc😀", "😀***😀"},
    {3, 0, "ë😀日x", "ë😀日***"},
    {0, 3, "xë😀日", "***ë😀日"},
    {0, 0, "abc", "***"},
    {1, 1, "abc", "a***c"},
    /* nothing left to hide: all of it is hidden */
    {1, 1, "ab", "***"},
    {2, 2, "abcd", "***"},
    {3, 3, "éé", "***"},
    {1000000, 1000000, "abc", "***"},
    {0, 0, "", ""},
    {1, 1, "", ""},
    /* shown ends that are not UTF-8 (octal escapes: a hex one would take in "abc") */
    {1, 1, "\377abc", "***"},
    {1, 1, "abc\377", "***"},
    {1, 1, "\300\257abc", "***"},         /* overlong '/' */
    {1, 1, "\355\240\200abc", "***"},     /* surrogate */
    {1, 1, "abc\342\202", "***"},         /* truncated */
    {1, 1, "abc\202", "***"},             /* lone continuation */
    {1, 1, "\364\220\200\200abc", "***"}, /* past U+10FFFF */
    {1, 1, "abc\200\200\200\200", "***"}, /* too many continuations */
    /* a broken middle is not shown, so it does no harm */
    {1, 1, "a\377\376b", "a***b"},
    {2, 2, "ab\342cd", "ab***cd"},
};

static void test_partial(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(partial_cases); i++) {
		const struct partial_case *c = &partial_cases[i];
		struct masker *m = make_partial(c->first, c->last);
		char what[96];
		snprintf(what, sizeof(what), "partial{%u,%u} case %zu", c->first, c->last, i);
		apply_text(m, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, c->in);
		CHECK_GOT_TEXT(what, c->want);
		apply_text(m, PGTYPE_BPCHAR, PGTYPE_FORMAT_BINARY, c->in);
		CHECK_GOT_TEXT(what, c->want);
		mask_free(m);
	}
}

/*
 * Random strings of 1- to 4-byte characters, sometimes with a stray byte:
 * the output is always valid UTF-8, and for valid input it is exactly
 * the first and last characters around "***".
 */
static void test_partial_random(void)
{
	static const char *const chars[] = {"a",  "Z", " ", "é", "ß",           "Ω",
	                                    "日", "€", "😀", "𝄞", "\xef\xbf\xbd"};
	uint8_t in[256], want[300];
	size_t starts[256];
	unsigned seed = 12345;
	int bad = 0;
	struct masker *ms[6][6];
	for (uint32_t f = 0; f < 6; f++)
		for (uint32_t l = 0; l < 6; l++)
			ms[f][l] = make_partial(f, l);

	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 0;
		int nchars = rand_r(&seed) % 12;
		for (int k = 0; k < nchars; k++) {
			const char *c = chars[rand_r(&seed) % ARRAY_SIZE(chars)];
			if (rand_r(&seed) % 20 == 0)
				in[n++] = (uint8_t)(0x80 + rand_r(&seed) % 0x80);
			else {
				memcpy(in + n, c, strlen(c));
				n += strlen(c);
			}
		}
		uint32_t f = (uint32_t)(rand_r(&seed) % 6), l = (uint32_t)(rand_r(&seed) % 6);
		apply_bytes(ms[f][l], PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, in, (int32_t)n);
		if (got_r != MASK_VALUE || !utf8_valid(got.data, got.len)) {
			bad++;
			continue;
		}
		if (!utf8_valid(in, n))
			continue;
		size_t count = char_starts(in, n, starts);
		size_t wn;
		if (n == 0) {
			wn = 0;
		} else if (count <= f + l) {
			memcpy(want, "***", 3);
			wn = 3;
		} else {
			size_t head = f < count ? starts[f] : n;
			size_t tail = l ? starts[count - l] : n;
			memcpy(want, in, head);
			memcpy(want + head, "***", 3);
			memcpy(want + head + 3, in + tail, n - tail);
			wn = head + 3 + n - tail;
		}
		if (got.len != wn || (wn && memcmp(got.data, want, wn) != 0)) {
			if (bad++ < 5)
				fprintf(stderr,
				        "partial{%u,%u} of \"%.*s\": \"%.*s\", want \"%.*s\"\n", f,
				        l, (int)n, (const char *)in, (int)got.len,
				        (const char *)got.data, (int)wn, (const char *)want);
		}
	}
	CHECK(bad == 0);

	/* any bytes at all: always valid UTF-8 out */
	int invalid = 0;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = (size_t)(rand_r(&seed) % 16);
		for (size_t k = 0; k < n; k++)
			in[k] = (uint8_t)rand_r(&seed);
		apply_bytes(ms[rand_r(&seed) % 6][rand_r(&seed) % 6], PGTYPE_TEXT,
		            PGTYPE_FORMAT_TEXT, in, (int32_t)n);
		if (got_r != MASK_VALUE || !utf8_valid(got.data, got.len))
			invalid++;
	}
	CHECK(invalid == 0);
	for (int f = 0; f < 6; f++)
		for (int l = 0; l < 6; l++)
			mask_free(ms[f][l]);
}

/* ---- hash ---- */

static bool is_uuid_text(const uint8_t *p, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
		if (hyphen ? p[i] != '-'
		           : !((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	}
	/* version 8, RFC 9562 variant */
	return p[14] == '8' && strchr("89ab", p[19]) != NULL;
}

/* got as a decimal integer in [min, max] */
static bool got_int(int64_t min, int64_t max, int64_t *v)
{
	char buf[32];
	if (got_r != MASK_VALUE || got.len == 0 || got.len >= sizeof(buf))
		return false;
	memcpy(buf, got.data, got.len);
	buf[got.len] = '\0';
	char *end;
	errno = 0;
	long long x = strtoll(buf, &end, 10);
	if (errno || *end || x < min || x > max)
		return false;
	*v = x;
	return true;
}

static int64_t be_signed(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (n == 2)
		return (int16_t)v;
	if (n == 4)
		return (int32_t)v;
	return (int64_t)v;
}

static void test_hash_text(void)
{
	char hex[17], hex2[17];
	const char *email = "alice@corp.example";
	hex16_ref(key1, email, strlen(email), hex);
	hex16_ref(key2, email, strlen(email), hex2);

	/* text-like types: 16 hex digits of HMAC(key, value), alike in all four */
	EXPECT_TEXT(m_hash, PGTYPE_TEXT, email, hex);
	EXPECT_TEXT(m_hash, PGTYPE_VARCHAR, email, hex);
	EXPECT_TEXT(m_hash, PGTYPE_BPCHAR, email, hex);
	EXPECT_TEXT(m_hash, PGTYPE_NAME, email, hex);
	apply_text(m_hash, PGTYPE_TEXT, PGTYPE_FORMAT_BINARY, email);
	CHECK_GOT_TEXT("hash text binary", hex);
	/* stable, keyed, and different values differ */
	EXPECT_TEXT(m_hash, PGTYPE_TEXT, email, hex);
	EXPECT_TEXT(m_hash2, PGTYPE_TEXT, email, hex2);
	CHECK(strcmp(hex, hex2) != 0);
	apply_text(m_hash, PGTYPE_TEXT, PGTYPE_FORMAT_TEXT, "bob@corp.example");
	CHECK(got_r == MASK_VALUE && got.len == 16 && memcmp(got.data, hex, 16) != 0);
	/* a second masker with the same key gives the same pseudonyms */
	struct masker *again =
	    make(&(struct mask_spec){.kind = MASK_HASH, .key = key1, .key_len = KEY_LEN});
	EXPECT_TEXT(again, PGTYPE_TEXT, email, hex);
	mask_free(again);

	/* json: the same digits as a JSON string; jsonb in binary after its version byte */
	const char *doc = "{\"email\": \"a@b.c\"}";
	char json[24];
	hex16_ref(key1, doc, strlen(doc), hex);
	snprintf(json, sizeof(json), "\"%s\"", hex);
	EXPECT_TEXT(m_hash, PGTYPE_JSON, doc, json);
	EXPECT_TEXT(m_hash, PGTYPE_JSONB, doc, json);
	apply_text(m_hash, PGTYPE_JSON, PGTYPE_FORMAT_BINARY, doc);
	CHECK_GOT_TEXT("hash json binary", json);
	uint8_t jb[64];
	jb[0] = 1;
	memcpy(jb + 1, doc, strlen(doc));
	apply_bytes(m_hash, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, jb, (int32_t)strlen(doc) + 1);
	CHECK(got_r == MASK_VALUE && got.len == 1 + strlen(json) && got.data[0] == 1 &&
	      memcmp(got.data + 1, json, strlen(json)) == 0);
	jb[0] = 2;
	apply_bytes(m_hash, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, jb, (int32_t)strlen(doc) + 1);
	CHECK_GOT("jsonb version 2", MASK_MALFORMED);
	apply_bytes(m_hash, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, jb, 0);
	CHECK_GOT("jsonb empty", MASK_MALFORMED);

	/* bytea: the bytes, whichever way they came; out as 8 bytes */
	char bytea_want[20];
	hex16_ref(key1, "abc", 3, hex);
	snprintf(bytea_want, sizeof(bytea_want), "\\x%s", hex);
	EXPECT_TEXT(m_hash, PGTYPE_BYTEA, "\\x616263", bytea_want);
	EXPECT_TEXT(m_hash, PGTYPE_BYTEA, "abc", bytea_want);
	EXPECT_TEXT(m_hash, PGTYPE_BYTEA, "\\141\\142c", bytea_want);
	apply_text(m_hash, PGTYPE_BYTEA, PGTYPE_FORMAT_BINARY, "abc");
	uint8_t mac[32];
	hmac_ref(key1, "abc", 3, mac);
	CHECK(got_r == MASK_VALUE && got.len == 8 && memcmp(got.data, mac, 8) == 0);
	EXPECT_TEXT(m_hash, PGTYPE_TEXT, "abc", hex); /* the same pseudonym as text */
	apply_text(m_hash, PGTYPE_BYTEA, PGTYPE_FORMAT_TEXT, "\\xzz");
	CHECK_GOT("bad bytea", MASK_MALFORMED);
	/* an odd number of hex digits, followed in memory by one more */
	pktbuf_reset(&got);
	got_r = mask_apply(m_hash, PGTYPE_BYTEA, PGTYPE_FORMAT_TEXT, (const uint8_t *)"\\x6161", 5,
	                   &got);
	CHECK_GOT("odd hex bytea", MASK_MALFORMED);

	/* no pseudonym for these */
	EXPECT_TEXT(m_hash, PGTYPE_FLOAT4, "1.5", NULL);
	EXPECT_TEXT(m_hash, PGTYPE_FLOAT8, "1.5", NULL);
	EXPECT_TEXT(m_hash, PGTYPE_DATE, "2024-01-01", NULL);
	EXPECT_TEXT(m_hash, PGTYPE_TIMESTAMP, "2024-01-01 00:00:00", NULL);
	EXPECT_TEXT(m_hash, PGTYPE_TIMESTAMPTZ, "2024-01-01 00:00:00+00", NULL);
	EXPECT_TEXT(m_hash, PGTYPE_BOOL, "t", NULL);
	EXPECT_TEXT(m_hash, OID_INET, "10.0.0.1", NULL);
	EXPECT_TEXT(m_hash, OID_TEXTARRAY, "{a}", NULL);
}

static void test_hash_int(void)
{
	struct {
		uint32_t oid;
		int width;
		int64_t min, max;
	} ints[] = {
	    {PGTYPE_INT2, 2, INT16_MIN, INT16_MAX},
	    {PGTYPE_INT4, 4, INT32_MIN, INT32_MAX},
	    {PGTYPE_INT8, 8, INT64_MIN, INT64_MAX},
	};
	const char *values[] = {"0", "42", "-1", "123456", "-32768"};
	for (size_t t = 0; t < ARRAY_SIZE(ints); t++) {
		for (size_t k = 0; k < ARRAY_SIZE(values); k++) {
			const char *v = values[k];
			uint8_t mac[32];
			hmac_ref(key1, v, strlen(v), mac);
			int64_t want = be_signed(mac, (size_t)ints[t].width);
			int64_t x = 0;
			apply_text(m_hash, ints[t].oid, PGTYPE_FORMAT_TEXT, v);
			CHECK(got_int(ints[t].min, ints[t].max, &x) && x == want);

			/* the same value in binary: the same pseudonym, in binary */
			int64_t iv = strtoll(v, NULL, 10);
			uint8_t bin[8];
			for (int i = 0; i < ints[t].width; i++)
				bin[i] = (uint8_t)((uint64_t)iv >> (8 * (ints[t].width - 1 - i)));
			if (ints[t].oid == PGTYPE_INT2 && (iv < INT16_MIN || iv > INT16_MAX))
				continue;
			apply_bytes(m_hash, ints[t].oid, PGTYPE_FORMAT_BINARY, bin, ints[t].width);
			CHECK(got_r == MASK_VALUE && got.len == (size_t)ints[t].width &&
			      be_signed(got.data, got.len) == want);
		}
		/* a binary value of the wrong size */
		apply_bytes(m_hash, ints[t].oid, PGTYPE_FORMAT_BINARY, "\0\0\0\0\0\0\0\0\0",
		            ints[t].width + 1);
		CHECK_GOT("int wrong size", MASK_MALFORMED);
		apply_bytes(m_hash, ints[t].oid, PGTYPE_FORMAT_BINARY, "", 0);
		CHECK_GOT("int empty", MASK_MALFORMED);
	}
	/* the key matters */
	int64_t a = 0, b = 0;
	apply_text(m_hash, PGTYPE_INT8, PGTYPE_FORMAT_TEXT, "42");
	CHECK(got_int(INT64_MIN, INT64_MAX, &a));
	apply_text(m_hash2, PGTYPE_INT8, PGTYPE_FORMAT_TEXT, "42");
	CHECK(got_int(INT64_MIN, INT64_MAX, &b));
	CHECK(a != b);
	/* numeric: int8's pseudonym, so that the two still join */
	int64_t n = 0;
	apply_text(m_hash, PGTYPE_NUMERIC, PGTYPE_FORMAT_TEXT, "42");
	CHECK(got_int(INT64_MIN, INT64_MAX, &n) && n == a);
	CHECK(pgtype_is_numeric((const char *)got.data, got.len));
	apply_text(m_hash, PGTYPE_NUMERIC, PGTYPE_FORMAT_BINARY, "42");
	CHECK_GOT("numeric binary", MASK_CANNOT);
}

static void test_hash_uuid(void)
{
	const char *lower = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
	apply_text(m_hash, PGTYPE_UUID, PGTYPE_FORMAT_TEXT, lower);
	CHECK(got_r == MASK_VALUE && is_uuid_text(got.data, got.len));
	char first[37] = "";
	memcpy(first, got.data, got.len < 36 ? got.len : 36);
	/* the MAC's first 16 bytes with the version and variant bits set */
	uint8_t mac[32];
	hmac_ref(key1, lower, strlen(lower), mac);
	mac[6] = (uint8_t)((mac[6] & 0x0f) | 0x80);
	mac[8] = (uint8_t)((mac[8] & 0x3f) | 0x80);
	char want[37];
	pgtype_format_uuid(mac, want);
	CHECK_STR(first, want);

	EXPECT_TEXT(m_hash, PGTYPE_UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", want);
	uint8_t u[16];
	CHECK(pgtype_parse_uuid(lower, strlen(lower), u));
	apply_bytes(m_hash, PGTYPE_UUID, PGTYPE_FORMAT_BINARY, u, 16);
	CHECK(got_r == MASK_VALUE && got.len == 16 && memcmp(got.data, mac, 16) == 0);
	apply_text(m_hash2, PGTYPE_UUID, PGTYPE_FORMAT_TEXT, lower);
	CHECK(got_r == MASK_VALUE && is_uuid_text(got.data, got.len) &&
	      memcmp(got.data, want, 36) != 0);

	apply_text(m_hash, PGTYPE_UUID, PGTYPE_FORMAT_TEXT, "not-a-uuid");
	CHECK_GOT("bad uuid text", MASK_MALFORMED);
	apply_bytes(m_hash, PGTYPE_UUID, PGTYPE_FORMAT_BINARY, u, 15);
	CHECK_GOT("bad uuid binary", MASK_MALFORMED);
}

/* ---- binary format ---- */

static void test_binary(void)
{
	/* text-like: the same bytes as text */
	apply_text(m_redact, PGTYPE_TEXT, PGTYPE_FORMAT_BINARY, "secret");
	CHECK_GOT_TEXT("redact text binary", "***");
	apply_text(m_partial, PGTYPE_VARCHAR, PGTYPE_FORMAT_BINARY, "secret");
	CHECK_GOT_TEXT("partial varchar binary", "s***et");
	/* NULL results work for any type */
	apply_bytes(m_redact, PGTYPE_INT4, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT("redact int4 binary", MASK_SQL_NULL);
	apply_bytes(m_redact, PGTYPE_NUMERIC, PGTYPE_FORMAT_BINARY, "\0\0\0\0\0\0\0\0", 8);
	CHECK_GOT("redact numeric binary", MASK_SQL_NULL);
	apply_bytes(m_email, PGTYPE_DATE, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT("email date binary", MASK_SQL_NULL);
	apply_bytes(m_null, OID_INET, PGTYPE_FORMAT_BINARY, "\2\040\0\4\1\2\3\4", 8);
	CHECK_GOT("null inet binary", MASK_SQL_NULL);
	apply_bytes(m_hash, PGTYPE_FLOAT8, PGTYPE_FORMAT_BINARY, "\0\0\0\0\0\0\0\0", 8);
	CHECK_GOT("hash float8 binary", MASK_SQL_NULL);
	/* json: text bytes; jsonb: a version byte first */
	apply_text(m_redact, PGTYPE_JSON, PGTYPE_FORMAT_BINARY, "{}");
	CHECK_GOT_BYTES("redact json binary", "\"***\"");
	apply_bytes(m_redact, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, "\1{}", 3);
	CHECK_GOT_BYTES("redact jsonb binary", "\1\"***\"");

	/* fixed, encoded */
	apply_bytes(m_fixed0, PGTYPE_INT2, PGTYPE_FORMAT_BINARY, "\0\1", 2);
	CHECK_GOT_BYTES("fixed int2", "\0\0");
	apply_bytes(m_fixed0, PGTYPE_INT4, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT_BYTES("fixed int4", "\0\0\0\0");
	apply_bytes(m_fixed0, PGTYPE_INT8, PGTYPE_FORMAT_BINARY, "\0\0\0\0\0\0\0\1", 8);
	CHECK_GOT_BYTES("fixed int8", "\0\0\0\0\0\0\0\0");
	struct masker *neg = make_fixed("-2");
	apply_bytes(neg, PGTYPE_INT4, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT_BYTES("fixed -2 int4", "\xff\xff\xff\xfe");
	apply_bytes(neg, PGTYPE_INT2, PGTYPE_FORMAT_BINARY, "\0\1", 2);
	CHECK_GOT_BYTES("fixed -2 int2", "\xff\xfe");
	mask_free(neg);
	struct masker *uuid = make_fixed("00112233-4455-6677-8899-AABBCCDDEEFF");
	apply_bytes(uuid, PGTYPE_UUID, PGTYPE_FORMAT_BINARY, "0123456789abcdef", 16);
	CHECK_GOT_BYTES("fixed uuid binary",
	                "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff");
	mask_free(uuid);
	struct masker *json = make_fixed("{\"masked\":true}");
	apply_bytes(json, PGTYPE_JSONB, PGTYPE_FORMAT_BINARY, "\1{}", 3);
	CHECK_GOT_BYTES("fixed jsonb binary", "\1{\"masked\":true}");
	apply_text(json, PGTYPE_JSON, PGTYPE_FORMAT_BINARY, "{}");
	CHECK_GOT_BYTES("fixed json binary", "{\"masked\":true}");
	mask_free(json);
	struct masker *bytes = make_fixed("\\xdeadbeef");
	apply_bytes(bytes, PGTYPE_BYTEA, PGTYPE_FORMAT_BINARY, "x", 1);
	CHECK_GOT_BYTES("fixed bytea binary", "\xde\xad\xbe\xef");
	mask_free(bytes);

	/* types without an encoder here: nothing but NULL */
	struct masker *date = make_fixed("2024-01-01");
	CHECK(mask_supports(date, PGTYPE_DATE, PGTYPE_FORMAT_TEXT));
	CHECK(!mask_supports(date, PGTYPE_DATE, PGTYPE_FORMAT_BINARY));
	apply_bytes(date, PGTYPE_DATE, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT("fixed date binary", MASK_CANNOT);
	/* ...but a fixed value that is not a value of the type is NULL, which works */
	CHECK(mask_supports(date, PGTYPE_INT4, PGTYPE_FORMAT_BINARY));
	apply_bytes(date, PGTYPE_INT4, PGTYPE_FORMAT_BINARY, "\0\0\0\1", 4);
	CHECK_GOT("fixed date on int4 binary", MASK_SQL_NULL);
	mask_free(date);
	apply_bytes(m_fixed0, PGTYPE_NUMERIC, PGTYPE_FORMAT_BINARY, "\0\0\0\0\0\0\0\0", 8);
	CHECK_GOT("fixed numeric binary", MASK_CANNOT);
	apply_bytes(m_fixed0, PGTYPE_BOOL, PGTYPE_FORMAT_BINARY, "\1", 1);
	CHECK_GOT("fixed bool binary", MASK_CANNOT);
	apply_bytes(m_fixed0, OID_INET, PGTYPE_FORMAT_BINARY, "\2\040\0\4\1\2\3\4", 8);
	CHECK_GOT("fixed inet binary", MASK_CANNOT);
	/* unknown format codes */
	CHECK(!mask_supports(m_redact, PGTYPE_TEXT, 2));
	CHECK(!mask_supports(m_null, PGTYPE_TEXT, -1));
	apply_text(m_null, PGTYPE_TEXT, 2, "secret");
	CHECK_GOT("format 2", MASK_CANNOT);
}

/* A value of the type in the format, as a server would send it. */
static const char *well_formed(uint32_t oid, int16_t fmt, size_t *n)
{
	static const char uuid_bin[16] = {1, 2, 3};
	const char *v = "12";
	*n = 2;
	if (fmt != PGTYPE_FORMAT_BINARY) {
		if (oid == PGTYPE_UUID)
			v = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
		else if (oid == PGTYPE_BYTEA)
			v = "\\x01";
		*n = strlen(v);
		return v;
	}
	switch (oid) {
	case PGTYPE_INT2:
		return "\0\1";
	case PGTYPE_INT4:
		*n = 4;
		return "\0\0\0\1";
	case PGTYPE_INT8:
		*n = 8;
		return "\0\0\0\0\0\0\0\1";
	case PGTYPE_UUID:
		*n = 16;
		return uuid_bin;
	case PGTYPE_JSONB:
		return "\0011"; /* version 1, then the number 1 */
	default:
		return v;
	}
}

/*
 * mask_supports() and mask_apply() agree for every masker, type and
 * format, on a well-formed value: a masker never says "cannot" for a
 * column that was accepted, and a refused column is never masked.
 */
static void test_supports_agrees(void)
{
	struct masker *date = make_fixed("2024-01-01");
	struct masker *uuid = make_fixed("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	struct masker *text = make_fixed("hidden");
	const struct masker *ms[] = {m_null,   m_redact, m_email, m_partial, m_hash,
	                             m_fixed0, date,     uuid,    text};
	int disagree = 0, malformed = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		for (size_t t = 0; t < ARRAY_SIZE(all_oids); t++) {
			uint32_t oid = all_oids[t];
			for (int16_t fmt = -1; fmt <= 2; fmt++) {
				size_t n;
				const char *in = well_formed(oid, fmt, &n);
				bool sup = mask_supports(ms[i], oid, fmt);
				apply_bytes(ms[i], oid, fmt, in, (int32_t)n);
				if (sup == (got_r == MASK_CANNOT)) {
					disagree++;
					fprintf(stderr,
					        "masker %zu oid %u fmt %d: supports %d, %s\n", i,
					        oid, fmt, sup, result_name(got_r));
				}
				if (got_r == MASK_MALFORMED) {
					malformed++;
					fprintf(stderr, "masker %zu oid %u fmt %d: malformed\n", i,
					        oid, fmt);
				}
			}
		}
	}
	CHECK(disagree == 0);
	CHECK(malformed == 0);
	mask_free(date);
	mask_free(uuid);
	mask_free(text);
}

/* ---- RowDescription ---- */

static void put_field(struct pktbuf *pb, const char *name, uint32_t table, int16_t attnum,
                      uint32_t type, int16_t typlen, int32_t typmod, int16_t format)
{
	pktbuf_put_string(pb, name);
	pktbuf_put_uint32(pb, table);
	pktbuf_put_uint16(pb, (uint16_t)attnum);
	pktbuf_put_uint32(pb, type);
	pktbuf_put_uint16(pb, (uint16_t)typlen);
	pktbuf_put_uint32(pb, (uint32_t)typmod);
	pktbuf_put_uint16(pb, (uint16_t)format);
}

static void test_parse_desc(void)
{
	const char *err = NULL;
	struct rowdesc d;

	/* written by hand */
	static const char desc_bytes[] = "\x00\x03" /* three fields */
	                                 "id\0"     /* int4, binary, table 16384 column 1 */
	                                 "\x00\x00\x40\x00"
	                                 "\x00\x01"
	                                 "\x00\x00\x00\x17"
	                                 "\x00\x04"
	                                 "\xff\xff\xff\xff"
	                                 "\x00\x01"
	                                 "e\0" /* varchar(20), text */
	                                 "\x00\x00\x40\x00"
	                                 "\x00\x02"
	                                 "\x00\x00\x04\x13"
	                                 "\xff\xff"
	                                 "\x00\x00\x00\x18"
	                                 "\x00\x00"
	                                 "?column?\0" /* text, no table, attnum -1 */
	                                 "\x00\x00\x00\x00"
	                                 "\xff\xff"
	                                 "\x00\x00\x00\x19"
	                                 "\xff\xff"
	                                 "\xff\xff\xff\xff"
	                                 "\x00\x00";
	size_t len = sizeof(desc_bytes) - 1;
	uint8_t *body = dup_bytes(desc_bytes, len);
	CHECK(rowmask_parse_desc(body, len, &d, &err));
	CHECK(d.ncols == 3);
	if (d.ncols == 3) {
		CHECK_STR(d.cols[0].name, "id");
		CHECK(d.cols[0].table_oid == 16384 && d.cols[0].attnum == 1);
		CHECK(d.cols[0].type_oid == PGTYPE_INT4 && d.cols[0].typlen == 4);
		CHECK(d.cols[0].typmod == -1 && d.cols[0].format == PGTYPE_FORMAT_BINARY);
		CHECK_STR(d.cols[1].name, "e");
		CHECK(d.cols[1].attnum == 2 && d.cols[1].type_oid == PGTYPE_VARCHAR);
		CHECK(d.cols[1].typlen == -1 && d.cols[1].typmod == 24 && d.cols[1].format == 0);
		CHECK_STR(d.cols[2].name, "?column?");
		CHECK(d.cols[2].table_oid == 0 && d.cols[2].attnum == -1);
		CHECK(d.cols[2].type_oid == PGTYPE_TEXT);
	}
	rowmask_free_desc(&d);
	CHECK(d.cols == NULL && d.ncols == 0);

	/* every truncation is refused */
	int accepted = 0;
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *b = dup_bytes(desc_bytes, cut);
		err = NULL;
		if (rowmask_parse_desc(b, cut, &d, &err) || !err || d.cols) {
			accepted++;
			rowmask_free_desc(&d);
		}
		free(b);
	}
	CHECK(accepted == 0);
	free(body);

	/* no columns (a SELECT with an empty target list) */
	body = dup_bytes("\0\0", 2);
	CHECK(rowmask_parse_desc(body, 2, &d, &err) && d.ncols == 0);
	rowmask_free_desc(&d);
	free(body);

	struct {
		const char *what;
		const char *bytes;
		size_t len;
		const char *err;
	} bad[] = {
	    {"trailing byte", "\0\0\0", 3, "past its last"},
	    {"negative count", "\x80\x00", 2, "negative"},
	    {"count -1", "\xff\xff", 2, "negative"},
	    {"count past the body",
	     "\x00\x02"
	     "a\0\0\0\0\0\0\0\0\0\0\x19\0\0\0\0\0\0\0\0",
	     22, "truncated"},
	    {"format 2",
	     "\x00\x01"
	     "a\0\0\0\0\0\0\0\0\0\0\x19\0\0\0\0\0\0\0\x02",
	     22, "format"},
	    {"format -1",
	     "\x00\x01"
	     "a\0\0\0\0\0\0\0\0\0\0\x19\0\0\0\0\0\0\xff\xff",
	     22, "format"},
	    {"name without its NUL",
	     "\x00\x01"
	     "abcdefghijklmnopqrstuvwxyz",
	     28, "truncated"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		body = dup_bytes(bad[i].bytes, bad[i].len);
		err = NULL;
		bool ok = rowmask_parse_desc(body, bad[i].len, &d, &err);
		CHECK(!ok && err && strstr(err, bad[i].err) && d.cols == NULL);
		if (ok || !err || !strstr(err, bad[i].err))
			fprintf(stderr, "  bad RowDescription \"%s\": %s\n", bad[i].what,
			        err ? err : "accepted");
		if (ok)
			rowmask_free_desc(&d);
		free(body);
	}

	/* the largest count a RowDescription can carry */
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_put_uint16(&pb, INT16_MAX);
	for (int i = 0; i < INT16_MAX; i++)
		put_field(&pb, "c", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	body = dup_bytes(pb.data, pb.len);
	CHECK(rowmask_parse_desc(body, pb.len, &d, &err) && d.ncols == INT16_MAX);
	rowmask_free_desc(&d);
	free(body);
	pktbuf_free(&pb);
}

/* ---- DataRow ---- */

/* A RowDescription body built with the test's put_field. */
struct test_desc {
	struct pktbuf body;
	struct rowdesc d;
};

static void desc_begin(struct test_desc *t, int n)
{
	pktbuf_init(&t->body);
	pktbuf_put_uint16(&t->body, (uint16_t)n);
}

static void desc_end(struct test_desc *t)
{
	const char *err = NULL;
	if (!rowmask_parse_desc(t->body.data, t->body.len, &t->d, &err)) {
		fprintf(stderr, "test RowDescription refused: %s\n", err);
		exit(2);
	}
}

static void desc_free(struct test_desc *t)
{
	rowmask_free_desc(&t->d);
	pktbuf_free(&t->body);
}

/* A DataRow body from values (NULL: SQL NULL) with lengths (-1: strlen). */
static void row_body(struct pktbuf *pb, int n, const char *const *vals, const int32_t *lens)
{
	pktbuf_reset(pb);
	pktbuf_put_uint16(pb, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		if (!vals[i]) {
			pktbuf_put_uint32(pb, UINT32_MAX);
			continue;
		}
		size_t len = lens && lens[i] >= 0 ? (size_t)lens[i] : strlen(vals[i]);
		pktbuf_put_uint32(pb, (uint32_t)len);
		pktbuf_put_bytes(pb, vals[i], len);
	}
}

static bool rewrite(const struct rowdesc *d, const struct masker *const *ms, const uint8_t *body,
                    size_t len, size_t max, struct pktbuf *out, const char **err)
{
	uint8_t *copy = dup_bytes(body, len);
	bool ok = rowmask_rewrite(d, ms, copy, len, max, out, err);
	free(copy);
	return ok;
}

static void test_rewrite(void)
{
	struct test_desc t;
	desc_begin(&t, 7);
	put_field(&t.body, "id", 16384, 1, PGTYPE_INT4, 4, -1, 0);
	put_field(&t.body, "email", 16384, 2, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "name", 16384, 3, PGTYPE_VARCHAR, -1, 44, 0);
	put_field(&t.body, "account", 16384, 4, PGTYPE_INT8, 8, -1, 1);
	put_field(&t.body, "ref", 16384, 5, PGTYPE_UUID, 16, -1, 0);
	put_field(&t.body, "phone", 16384, 6, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "note", 16384, 7, PGTYPE_TEXT, -1, -1, 0);
	desc_end(&t);
	const struct masker *plan[7] = {NULL, m_email, m_partial, m_hash, NULL, m_redact, m_email};
	CHECK(rowmask_unmaskable(&t.d, plan) == -1);

	const char *vals[7] = {"42",
	                       "alice@corp.example",
	                       "Zoë Ångström",
	                       "\0\0\0\0\0\0\0\x2a",
	                       "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	                       NULL,
	                       ""};
	const int32_t lens[7] = {-1, -1, -1, 8, -1, -1, -1};
	struct pktbuf body, out;
	pktbuf_init(&body);
	pktbuf_init(&out);
	row_body(&body, 7, vals, lens);

	/* what each masked column must become, from mask_apply alone */
	char account[8];
	apply_bytes(m_hash, PGTYPE_INT8, PGTYPE_FORMAT_BINARY, vals[3], 8);
	CHECK(got_r == MASK_VALUE && got.len == 8);
	memcpy(account, got.data, 8);

	const char *err = NULL;
	pktbuf_put_bytes(&out, "prev", 4); /* appended after what is there */
	CHECK(rewrite(&t.d, plan, body.data, body.len, 1 << 20, &out, &err));
	CHECK(rewrite(&t.d, plan, body.data, body.len, 1 << 20, &out, &err));
	CHECK(out.len > 4 && memcmp(out.data, "prev", 4) == 0);
	size_t pos = 4;
	for (int copy = 0; copy < 2; copy++) {
		struct test_row row;
		size_t used = read_row(out.data + pos, out.len - pos, &row);
		CHECK(used > 0 && row.n == 7);
		if (!used || row.n != 7)
			break;
		CHECK(val_is(&row, 0, "42"));
		CHECK(val_is(&row, 1, "***@corp.example"));
		CHECK(val_is(&row, 2, "Z***öm"));
		CHECK(row.len[3] == 8 && memcmp(row.val[3], account, 8) == 0);
		CHECK(val_is(&row, 4, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
		CHECK(val_is(&row, 5, NULL)); /* NULL stays NULL */
		CHECK(val_is(&row, 6, ""));
		pos += used;
	}
	CHECK(pos == out.len);

	/* nothing masked: the same bytes back */
	const struct masker *none[7] = {0};
	pktbuf_reset(&out);
	CHECK(rewrite(&t.d, none, body.data, body.len, body.len, &out, &err));
	CHECK(out.len == body.len + 5 && out.data[0] == 'D' &&
	      get32(out.data + 1) == body.len + 4 &&
	      memcmp(out.data + 5, body.data, body.len) == 0);

	/* a refused row leaves out as it was */
	static const char tail[] = "tail";
	pktbuf_reset(&out);
	pktbuf_put_bytes(&out, tail, 4);
	const char *short_vals[7] = {"42", "a", "b", "\0\0\0", "u", NULL, ""};
	const int32_t short_lens[7] = {-1, -1, -1, 3, -1, -1, -1};
	row_body(&body, 7, short_vals, short_lens);
	err = NULL;
	CHECK(!rewrite(&t.d, plan, body.data, body.len, 1 << 20, &out, &err));
	CHECK(err && strstr(err, "not a value of its type"));
	CHECK(out.len == 4 && memcmp(out.data, tail, 4) == 0);

	pktbuf_free(&body);
	pktbuf_free(&out);
	desc_free(&t);
}

/* Bytes written out by hand, so the builder cannot be checked against itself. */
static void test_rewrite_bytes(void)
{
	struct test_desc t;
	desc_begin(&t, 2);
	put_field(&t.body, "a", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "b", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	desc_end(&t);
	const struct masker *plan[2] = {m_redact, NULL};
	static const char body[] = "\x00\x02"
	                           "\x00\x00\x00\x06"
	                           "secret"
	                           "\xff\xff\xff\xff";
	struct pktbuf out;
	pktbuf_init(&out);
	const char *err = NULL;
	CHECK(rewrite(&t.d, plan, (const uint8_t *)body, sizeof(body) - 1, 100, &out, &err));
	static const char want[] = "D\x00\x00\x00\x11"
	                           "\x00\x02"
	                           "\x00\x00\x00\x03"
	                           "***"
	                           "\xff\xff\xff\xff";
	CHECK(out.len == sizeof(want) - 1 && memcmp(out.data, want, out.len) == 0);

	/* a masker turning a value into NULL */
	const struct masker *nulls[2] = {m_null, m_null};
	pktbuf_reset(&out);
	CHECK(rewrite(&t.d, nulls, (const uint8_t *)body, sizeof(body) - 1, 100, &out, &err));
	static const char want_null[] = "D\x00\x00\x00\x0e"
	                                "\x00\x02"
	                                "\xff\xff\xff\xff"
	                                "\xff\xff\xff\xff";
	CHECK(out.len == sizeof(want_null) - 1 && memcmp(out.data, want_null, out.len) == 0);
	pktbuf_free(&out);
	desc_free(&t);

	/* no columns */
	desc_begin(&t, 0);
	desc_end(&t);
	pktbuf_init(&out);
	CHECK(rewrite(&t.d, NULL, (const uint8_t *)"\0\0", 2, 100, &out, &err));
	CHECK(out.len == 7 && memcmp(out.data, "D\x00\x00\x00\x06\x00\x00", 7) == 0);
	pktbuf_free(&out);
	desc_free(&t);
}

static void test_rewrite_refused(void)
{
	struct test_desc t;
	desc_begin(&t, 3);
	put_field(&t.body, "a", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "b", 0, 0, PGTYPE_DATE, 4, -1, 1);
	put_field(&t.body, "c", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	desc_end(&t);
	const struct masker *plan[3] = {m_redact, NULL, m_email};
	struct pktbuf out;
	pktbuf_init(&out);
	pktbuf_put_bytes(&out, "keep", 4);
	const char *err;

	static const char good[] = "\x00\x03"
	                           "\x00\x00\x00\x03"
	                           "abc"
	                           "\x00\x00\x00\x04"
	                           "\x00\x00\x01\x00"
	                           "\x00\x00\x00\x03"
	                           "a@b";
	size_t good_len = sizeof(good) - 1;
	CHECK(rewrite(&t.d, plan, (const uint8_t *)good, good_len, 100, &out, &err));
	size_t after_good = out.len;

	/* every truncation, and one byte too many */
	int accepted = 0;
	for (size_t cut = 0; cut < good_len; cut++) {
		err = NULL;
		if (rewrite(&t.d, plan, (const uint8_t *)good, cut, 100, &out, &err) || !err)
			accepted++;
	}
	CHECK(accepted == 0);
	uint8_t longer[sizeof(good)];
	memcpy(longer, good, good_len);
	longer[good_len] = 0;
	err = NULL;
	CHECK(!rewrite(&t.d, plan, longer, good_len + 1, 100, &out, &err) && err &&
	      strstr(err, "past its last"));

	struct {
		const char *what;
		const char *bytes;
		size_t len;
		const char *err;
	} bad[] = {
	    {"count 2 of 3",
	     "\x00\x02\x00\x00\x00\x01"
	     "a\x00\x00\x00\x01"
	     "b",
	     12, "count"},
	    {"count 4 of 3",
	     "\x00\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 18,
	     "count"},
	    {"length -2", "\x00\x03\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\xff\xff", 14,
	     "negative"},
	    {"length INT32_MIN", "\x00\x03\x80\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 14,
	     "negative"},
	    {"length INT32_MAX",
	     "\x00\x03\x7f\xff\xff\xff"
	     "abc",
	     9, "truncated"},
	    {"length one past",
	     "\x00\x03\x00\x00\x00\x04"
	     "abc",
	     9, "truncated"},
	    /* a length that would swallow the next columns' headers */
	    {"length over neighbours", "\x00\x03\x00\x00\x00\x08\xff\xff\xff\xff\xff\xff\xff\xff",
	     14, "truncated"},
	    {"empty body", "", 0, "truncated"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		bool ok =
		    rewrite(&t.d, plan, (const uint8_t *)bad[i].bytes, bad[i].len, 100, &out, &err);
		CHECK(!ok && err && strstr(err, bad[i].err));
		if (ok || !err || !strstr(err, bad[i].err))
			fprintf(stderr, "  bad DataRow \"%s\": %s\n", bad[i].what,
			        err ? err : "accepted");
	}
	/* none of it touched out */
	CHECK(out.len == after_good && memcmp(out.data, "keep", 4) == 0);

	/* a column its masker cannot mask */
	struct masker *date = make_fixed("2024-01-01");
	const struct masker *cannot[3] = {NULL, date, NULL};
	CHECK(rowmask_unmaskable(&t.d, cannot) == 1);
	err = NULL;
	CHECK(!rewrite(&t.d, cannot, (const uint8_t *)good, good_len, 100, &out, &err) && err &&
	      strstr(err, "cannot be masked"));
	CHECK(out.len == after_good);
	mask_free(date);

	/* max_row bounds the row read and the row written ("a@b" grows by 2) */
	err = NULL;
	CHECK(!rewrite(&t.d, plan, (const uint8_t *)good, good_len, good_len - 1, &out, &err) &&
	      err && strstr(err, "row too large to mask"));
	err = NULL;
	CHECK(!rewrite(&t.d, plan, (const uint8_t *)good, good_len, good_len + 1, &out, &err) &&
	      err && strstr(err, "masked row too large"));
	CHECK(out.len == after_good);
	CHECK(rewrite(&t.d, plan, (const uint8_t *)good, good_len, good_len + 2, &out, &err));
	struct masker *big = make_fixed("a value much longer than the one it replaces");
	const struct masker *grow[3] = {big, NULL, NULL};
	size_t grown = good_len - 3 + strlen("a value much longer than the one it replaces");
	size_t before = out.len;
	err = NULL;
	CHECK(!rewrite(&t.d, grow, (const uint8_t *)good, good_len, grown - 1, &out, &err) && err &&
	      strstr(err, "masked row too large"));
	CHECK(out.len == before);
	CHECK(rewrite(&t.d, grow, (const uint8_t *)good, good_len, grown, &out, &err));
	CHECK(out.len == before + 5 + grown);
	mask_free(big);

	pktbuf_free(&out);
	desc_free(&t);
}

/* ---- 50 MB values: linear work, right answers ---- */

#define BIG (50u << 20)

static void test_big(void)
{
	uint8_t *big = xmalloc(BIG);
	memset(big, 'a', BIG);
	memcpy(big, "bob", 3);
	big[3] = '@';
	memcpy(big + BIG - 4, "é!", 3); /* a 2-byte character near the end */
	big[BIG - 1] = 'z';
	usec_t t0 = now_usec();

	struct pktbuf out;
	pktbuf_init(&out);
	CHECK(mask_apply(m_email, PGTYPE_TEXT, 0, big, BIG, &out) == MASK_VALUE);
	CHECK(out.len == BIG - 3 + 3 && memcmp(out.data, "***@", 4) == 0 &&
	      memcmp(out.data + 4, big + 4, BIG - 4) == 0);
	pktbuf_reset(&out);

	struct masker *p = make_partial(2, 3);
	CHECK(mask_apply(p, PGTYPE_TEXT, 0, big, BIG, &out) == MASK_VALUE);
	CHECK(out.len == strlen("bo***é!z") && memcmp(out.data, "bo***é!z", out.len) == 0);
	pktbuf_reset(&out);
	mask_free(p);

	CHECK(mask_apply(m_redact, PGTYPE_TEXT, 0, big, BIG, &out) == MASK_VALUE);
	CHECK(out.len == 3);
	pktbuf_reset(&out);

	char hex[17];
	hex16_ref(key1, big, BIG, hex);
	CHECK(mask_apply(m_hash, PGTYPE_TEXT, 0, big, BIG, &out) == MASK_VALUE);
	CHECK(out.len == 16 && memcmp(out.data, hex, 16) == 0);
	pktbuf_reset(&out);

	/* a bytea of 25 MB in hex: decoded, then hashed as bytes */
	uint8_t *hexbytes = xmalloc(BIG);
	hexbytes[0] = '\\';
	hexbytes[1] = 'x';
	for (size_t i = 2; i < BIG; i += 2) {
		hexbytes[i] = '6';
		hexbytes[i + 1] = '1';
	}
	char want_bytea[20];
	hex16_ref(key1, big + 4, BIG / 2 - 1, hex); /* 'a' * (BIG/2 - 1) */
	snprintf(want_bytea, sizeof(want_bytea), "\\x%s", hex);
	CHECK(mask_apply(m_hash, PGTYPE_BYTEA, 0, hexbytes, BIG, &out) == MASK_VALUE);
	CHECK(out.len == 18 && memcmp(out.data, want_bytea, 18) == 0);
	pktbuf_reset(&out);
	free(hexbytes);

	/* in a row: a 50 MB masked column and a 50 MB one passed through */
	struct test_desc t;
	desc_begin(&t, 2);
	put_field(&t.body, "e", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "n", 0, 0, PGTYPE_TEXT, -1, -1, 0);
	desc_end(&t);
	struct pktbuf body;
	pktbuf_init(&body);
	pktbuf_put_uint16(&body, 2);
	pktbuf_put_uint32(&body, BIG);
	pktbuf_put_bytes(&body, big, BIG);
	pktbuf_put_uint32(&body, BIG);
	pktbuf_put_bytes(&body, big, BIG);
	const struct masker *plan[2] = {m_email, NULL};
	const char *err = NULL;
	CHECK(rowmask_rewrite(&t.d, plan, body.data, body.len, 2 * BIG + 10, &out, &err));
	struct test_row row;
	CHECK(read_row(out.data, out.len, &row) == out.len && row.n == 2);
	CHECK(row.len[0] == (int32_t)BIG && memcmp(row.val[0], "***@", 4) == 0);
	CHECK(row.len[1] == (int32_t)BIG && memcmp(row.val[1], big, BIG) == 0);
	pktbuf_free(&body);
	pktbuf_free(&out);
	desc_free(&t);
	free(big);
	if (getenv("MASK_BENCH"))
		printf("50 MB values: %.0f ms in all\n", (double)(now_usec() - t0) / 1000);
}

/* ---- MASK_BENCH=1 ---- */

static double ns_per(usec_t start, long n)
{
	return (double)(now_usec() - start) * 1000.0 / (double)n;
}

static void bench(void)
{
	if (!getenv("MASK_BENCH"))
		return;
	/* a customer row: 10 columns, email and phone masked */
	struct test_desc t;
	desc_begin(&t, 10);
	put_field(&t.body, "id", 1, 1, PGTYPE_INT4, 4, -1, 0);
	put_field(&t.body, "email", 1, 2, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "name", 1, 3, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "phone", 1, 4, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "created", 1, 5, PGTYPE_TIMESTAMPTZ, 8, -1, 0);
	put_field(&t.body, "balance", 1, 6, PGTYPE_NUMERIC, -1, -1, 0);
	put_field(&t.body, "status", 1, 7, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "country", 1, 8, PGTYPE_TEXT, -1, -1, 0);
	put_field(&t.body, "ref", 1, 9, PGTYPE_UUID, 16, -1, 0);
	put_field(&t.body, "note", 1, 10, PGTYPE_TEXT, -1, -1, 0);
	desc_end(&t);
	const char *vals[10] = {"123456",
	                        "alice.martin@corp.example",
	                        "Alice Martin",
	                        "+33 6 12 34 56 78",
	                        "2024-02-29 12:34:56.789+01",
	                        "1234.50",
	                        "active",
	                        "FR",
	                        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	                        NULL};
	struct pktbuf body, out;
	pktbuf_init(&body);
	pktbuf_init(&out);
	row_body(&body, 10, vals, NULL);
	const struct masker *none[10] = {0};
	const struct masker *email_partial[10] = {NULL, m_email, NULL, m_partial};
	const struct masker *email_hash[10] = {NULL, m_email, NULL, m_hash};
	const long n = 2000000;
	const char *err;
	bool ok = true;

	usec_t t0 = now_usec();
	for (long i = 0; i < n; i++) {
		pktbuf_reset(&out);
		pktbuf_begin(&out, 'D');
		pktbuf_put_bytes(&out, body.data, body.len);
		pktbuf_end(&out);
	}
	double copy = ns_per(t0, n);
	t0 = now_usec();
	for (long i = 0; i < n; i++) {
		pktbuf_reset(&out);
		ok &= rowmask_rewrite(&t.d, none, body.data, body.len, 1 << 20, &out, &err);
	}
	double pass = ns_per(t0, n);
	t0 = now_usec();
	for (long i = 0; i < n; i++) {
		pktbuf_reset(&out);
		ok &=
		    rowmask_rewrite(&t.d, email_partial, body.data, body.len, 1 << 20, &out, &err);
	}
	double masked = ns_per(t0, n);
	t0 = now_usec();
	for (long i = 0; i < n; i++) {
		pktbuf_reset(&out);
		ok &= rowmask_rewrite(&t.d, email_hash, body.data, body.len, 1 << 20, &out, &err);
	}
	double hashed = ns_per(t0, n);
	CHECK(ok);
	printf("row of 10 columns, %zu bytes: plain copy %.0f ns, rewrite with nothing masked "
	       "%.0f ns, email+partial %.0f ns, email+hash %.0f ns\n",
	       body.len, copy, pass, masked, hashed);
	pktbuf_free(&body);
	pktbuf_free(&out);
	desc_free(&t);
}

int main(void)
{
	m_null = make(&(struct mask_spec){.kind = MASK_NULL});
	m_redact = make(&(struct mask_spec){.kind = MASK_REDACT});
	m_email = make(&(struct mask_spec){.kind = MASK_EMAIL});
	m_partial = make_partial(1, 2);
	m_hash = make(&(struct mask_spec){.kind = MASK_HASH, .key = key1, .key_len = KEY_LEN});
	m_hash2 = make(&(struct mask_spec){.kind = MASK_HASH, .key = key2, .key_len = KEY_LEN});
	m_fixed0 = make_fixed("0");
	pktbuf_init(&got);

	test_new();
	test_type_matrix();
	test_null_input();
	test_empty();
	test_appends();
	test_fixed();
	test_function();
	test_email();
	test_partial();
	test_partial_random();
	test_hash_text();
	test_hash_int();
	test_hash_uuid();
	test_binary();
	test_supports_agrees();
	test_parse_desc();
	test_rewrite();
	test_rewrite_bytes();
	test_rewrite_refused();
	test_big();
	bench();

	pktbuf_free(&got);
	mask_free(m_null);
	mask_free(m_redact);
	mask_free(m_email);
	mask_free(m_partial);
	mask_free(m_hash);
	mask_free(m_hash2);
	mask_free(m_fixed0);
	return unit_summary("test_mask");
}
