/*
 * proto.c and pktbuf.c against tables and hand-written bytes. Every
 * expected message below is spelled out from the protocol documentation
 * (chapter "Message Formats"), length fields counted by hand, so a change
 * in the builders cannot also change what the test expects. Inputs to the
 * readers are copied into exactly-sized heap blocks, so that a read past
 * the end shows up under valgrind or AddressSanitizer.
 */
#include "pktbuf.h"
#include "proto.h"
#include "unit.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An exactly-sized heap copy; NULL for an empty input is avoided on purpose. */
static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *d = xmalloc(n ? n : 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

static void dump(const char *label, const uint8_t *p, size_t n)
{
	fprintf(stderr, "  %s (%zu):", label, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %02x", p[i]);
	fprintf(stderr, "\n");
}

static void check_bytes_at(const char *file, int line, const char *what, const uint8_t *got,
                           size_t got_len, const uint8_t *want, size_t want_len)
{
	if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0)) {
		unit_passed++;
		return;
	}
	unit_failed++;
	fprintf(stderr, "%s:%d: %s: bytes differ\n", file, line, what);
	dump("got ", got, got_len);
	dump("want", want, want_len);
}

/* got, got_len, then a string literal holding the expected bytes */
#define CHECK_BYTES(what, got, got_len, lit)                                                       \
	check_bytes_at(__FILE__, __LINE__, what, got, got_len, (const uint8_t *)(lit),             \
	               sizeof(lit) - 1)
#define CHECK_PB(what, pb, lit) CHECK_BYTES(what, (pb)->data, (pb)->len, lit)

/* ---- proto_read_header ---- */

struct header_case {
	const char *in;
	size_t avail;
	uint32_t max_len;
	enum proto_status expect;
	uint8_t type;
	uint32_t body_len;
	const char *err; /* substring, for PROTO_BAD */
};

static const struct header_case header_cases[] = {
    /* fewer than five bytes: wait for more, whatever they are */
    {"", 0, 100, PROTO_INCOMPLETE, 0, 0, NULL},
    {"Q", 1, 100, PROTO_INCOMPLETE, 0, 0, NULL},
    {"Q\x00\x00\x00", 4, 100, PROTO_INCOMPLETE, 0, 0, NULL},
    {"Q\x00\x00\x00\x00", 4, 100, PROTO_INCOMPLETE, 0, 0, NULL},
    /* the length counts itself, so 0..3 cannot be */
    {"Q\x00\x00\x00\x00", 5, 100, PROTO_BAD, 0, 0, "invalid message length"},
    {"Q\x00\x00\x00\x01", 5, 100, PROTO_BAD, 0, 0, "invalid message length"},
    {"Q\x00\x00\x00\x02", 5, 100, PROTO_BAD, 0, 0, "invalid message length"},
    {"Q\x00\x00\x00\x03", 5, 100, PROTO_BAD, 0, 0, "invalid message length"},
    /* empty body (Sync, Terminate) */
    {"S\x00\x00\x00\x04", 5, 100, PROTO_OK, 'S', 0, NULL},
    {"X\x00\x00\x00\x04", 5, 0, PROTO_OK, 'X', 0, NULL},
    {"X\x00\x00\x00\x05", 5, 0, PROTO_BAD, 0, 0, "message too long"},
    /* the header alone is enough to judge: the body need not be there */
    {"Q\x00\x00\x00\x0d", 5, 100, PROTO_OK, 'Q', 9, NULL},
    /* max_len bounds the body: exactly max is fine, one more is not */
    {"D\x00\x00\x00\x68", 5, 100, PROTO_OK, 'D', 100, NULL},
    {"D\x00\x00\x00\x69", 5, 100, PROTO_BAD, 0, 0, "message too long"},
    {"d\x00\x01\x00\x04", 5, 65536, PROTO_OK, 'd', 65536, NULL},
    {"d\x00\x01\x00\x05", 5, 65536, PROTO_BAD, 0, 0, "message too long"},
    /* big-endian, all four bytes used */
    {"d\x01\x02\x03\x04", 5, 0x01020300, PROTO_OK, 'd', 0x01020300, NULL},
    {"d\x01\x02\x03\x04", 5, 0x010202ff, PROTO_BAD, 0, 0, "message too long"},
    /* hostile lengths near the top of the range */
    {"Q\xff\xff\xff\xff", 5, PROTO_MAX_MESSAGE, PROTO_BAD, 0, 0, "message too long"},
    {"Q\x80\x00\x00\x00", 5, PROTO_MAX_MESSAGE, PROTO_BAD, 0, 0, "message too long"},
    {"Q\x40\x00\x00\x04", 5, PROTO_MAX_MESSAGE, PROTO_OK, 'Q', PROTO_MAX_MESSAGE, NULL},
    {"Q\xff\xff\xff\xff", 5, UINT32_MAX, PROTO_OK, 'Q', 0xfffffffb, NULL},
    /* any type byte is framing-valid; the state machines judge types */
    {"\x00\x00\x00\x00\x04", 5, 100, PROTO_OK, 0, 0, NULL},
    {"\xff\x00\x00\x00\x04", 5, 100, PROTO_OK, 0xff, 0, NULL},
};

static void test_read_header(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		uint8_t *buf = dup_bytes(c->in, c->avail);
		uint8_t type = 0xAA;
		uint32_t body_len = 0xDEADBEEF;
		const char *err = NULL;
		enum proto_status st =
		    proto_read_header(buf, c->avail, c->max_len, &type, &body_len, &err);
		bool ok = st == c->expect;
		if (ok && st == PROTO_OK)
			ok = type == c->type && body_len == c->body_len && err == NULL;
		if (ok && st == PROTO_BAD)
			ok = err && strstr(err, c->err);
		if (ok && st == PROTO_INCOMPLETE)
			ok = err == NULL;
		if (ok) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr,
			        "header case %zu: got status %d type 0x%02x body %u err %s, want "
			        "%d 0x%02x %u %s\n",
			        i, (int)st, type, body_len, err ? err : "(null)", (int)c->expect,
			        c->type, c->body_len, c->err ? c->err : "(null)");
		}
		free(buf);
	}
}

/* ---- proto_read_startup_header ---- */

struct startup_header_case {
	const char *in;
	size_t avail;
	enum proto_status expect;
	uint32_t total_len;
	uint32_t code;
};

static const struct startup_header_case startup_header_cases[] = {
    {"", 0, PROTO_INCOMPLETE, 0, 0},
    {"\x00\x00\x00\x08", 4, PROTO_INCOMPLETE, 0, 0},
    {"\x00\x00\x00\x08\x04\xd2\x16", 7, PROTO_INCOMPLETE, 0, 0},
    /* lengths that cannot hold the length and the code */
    {"\x00\x00\x00\x00\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    {"\x00\x00\x00\x04\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    {"\x00\x00\x00\x07\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    /* PostgreSQL's 10000-byte ceiling, both sides of it */
    {"\x00\x00\x27\x10\x00\x03\x00\x00", 8, PROTO_OK, 10000, 0x00030000},
    {"\x00\x00\x27\x11\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    {"\xff\xff\xff\xff\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    {"\x80\x00\x00\x08\x00\x03\x00\x00", 8, PROTO_BAD, 0, 0},
    /* SSLRequest: length 8, code 1234 << 16 | 5679 */
    {"\x00\x00\x00\x08\x04\xd2\x16\x2f", 8, PROTO_OK, 8, 80877103},
    /* GSSENCRequest: 1234 << 16 | 5680 */
    {"\x00\x00\x00\x08\x04\xd2\x16\x30", 8, PROTO_OK, 8, 80877104},
    /* CancelRequest: length 16, 1234 << 16 | 5678; only the header is read */
    {"\x00\x00\x00\x10\x04\xd2\x16\x2e", 8, PROTO_OK, 16, 80877102},
    /* StartupMessage 3.0 with a body still to come */
    {"\x00\x00\x00\x29\x00\x03\x00\x00user", 12, PROTO_OK, 41, 0x00030000},
    /* an old or unknown code is not this function's business */
    {"\x00\x00\x00\x08\x00\x02\x00\x00", 8, PROTO_OK, 8, 0x00020000},
};

static void test_read_startup_header(void)
{
	CHECK(PROTO_CANCEL_CODE == 0x04d2162eu);
	CHECK(PROTO_SSL_CODE == 0x04d2162fu);
	CHECK(PROTO_GSSENC_CODE == 0x04d21630u);
	CHECK(PROTO_V3 == 0x00030000u);
	for (size_t i = 0; i < ARRAY_SIZE(startup_header_cases); i++) {
		const struct startup_header_case *c = &startup_header_cases[i];
		uint8_t *buf = dup_bytes(c->in, c->avail);
		uint32_t total = 0xDEADBEEF, code = 0xDEADBEEF;
		const char *err = NULL;
		enum proto_status st =
		    proto_read_startup_header(buf, c->avail, &total, &code, &err);
		bool ok = st == c->expect;
		if (ok && st == PROTO_OK)
			ok = total == c->total_len && code == c->code && err == NULL;
		if (ok && st == PROTO_BAD)
			ok = err && strstr(err, "invalid startup packet length");
		if (ok) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr,
			        "startup header case %zu: got %d len %u code %u err %s, want %d %u "
			        "%u\n",
			        i, (int)st, total, code, err ? err : "(null)", (int)c->expect,
			        c->total_len, c->code);
		}
		free(buf);
	}
}

/* ---- pkt_reader ---- */

static void test_reader(void)
{
	struct pkt_reader r;
	uint8_t *buf = dup_bytes("\x12\x34\x56\x78\x9a\xbc\xde", 7);

	pr_init(&r, buf, 7);
	CHECK(pr_left(&r) == 7);
	CHECK(pr_byte(&r) == 0x12);
	CHECK(pr_uint16(&r) == 0x3456);
	CHECK(pr_uint32(&r) == 0x789abcdeu);
	CHECK(!r.bad && pr_left(&r) == 0);
	/* at the end: zero-length reads are fine, anything more is not */
	CHECK(pr_bytes(&r, 0) != NULL && !r.bad);
	CHECK(pr_byte(&r) == 0 && r.bad);
	CHECK(r.pos == 7);

	/* a short read fails whole and does not move the cursor */
	pr_init(&r, buf, 3);
	CHECK(pr_uint32(&r) == 0 && r.bad && r.pos == 0);
	/* bad is sticky: later reads that would fit fail too */
	CHECK(pr_byte(&r) == 0 && r.bad && r.pos == 0);
	CHECK(pr_bytes(&r, 0) == NULL);
	CHECK(strcmp(pr_string(&r), "") == 0);

	pr_init(&r, buf, 1);
	CHECK(pr_uint16(&r) == 0 && r.bad);
	pr_init(&r, buf, 0);
	CHECK(pr_byte(&r) == 0 && r.bad);

	/* huge n must not wrap around the bounds check */
	pr_init(&r, buf, 7);
	CHECK(pr_byte(&r) == 0x12);
	CHECK(pr_bytes(&r, SIZE_MAX) == NULL && r.bad && r.pos == 1);
	pr_init(&r, buf, 7);
	CHECK(pr_bytes(&r, 7) == buf && pr_left(&r) == 0 && !r.bad);
	pr_init(&r, buf, 7);
	CHECK(pr_bytes(&r, 8) == NULL && r.bad);
	pr_init(&r, buf, 7);
	const uint8_t *p = pr_bytes(&r, 2);
	CHECK(p == buf && !r.bad && r.pos == 2);
	p = pr_bytes(&r, 5);
	CHECK(p == buf + 2 && !r.bad && pr_left(&r) == 0);
	free(buf);

	/* strings: NUL-terminated inside the body, or bad */
	buf = dup_bytes("abc\0\0def", 8);
	pr_init(&r, buf, 8);
	const char *s = pr_string(&r);
	CHECK_STR(s, "abc");
	CHECK(s == (const char *)buf && r.pos == 4);
	CHECK_STR(pr_string(&r), "");
	CHECK(!r.bad && r.pos == 5);
	/* "def" runs to the end of the body without a NUL */
	CHECK_STR(pr_string(&r), "");
	CHECK(r.bad && r.pos == 5);
	free(buf);

	/* the NUL just past the body does not count */
	buf = dup_bytes("ab\0", 3);
	pr_init(&r, buf, 2);
	CHECK_STR(pr_string(&r), "");
	CHECK(r.bad);
	pr_init(&r, buf, 3);
	CHECK_STR(pr_string(&r), "ab");
	CHECK(!r.bad && pr_left(&r) == 0);
	/* an empty remainder is not an empty string */
	CHECK_STR(pr_string(&r), "");
	CHECK(r.bad);
	/* after an overrun, a string that is there is not read either */
	pr_init(&r, buf, 3);
	CHECK(pr_bytes(&r, 4) == NULL && r.bad);
	CHECK_STR(pr_string(&r), "");
	CHECK(r.pos == 0);
	free(buf);
}

/* ---- proto_parse_startup_params ---- */

struct params_case {
	const char *body;
	size_t len;
	int max;
	bool ok;
	int n;
	const char *pairs[6]; /* name, value, ... */
	const char *err;
};

#define P(s) s, sizeof(s) - 1

static const struct params_case params_cases[] = {
    {P("user\0bob\0database\0db\0\0"), 8, true, 2, {"user", "bob", "database", "db"}, NULL},
    {P("user\0bob\0application_name\0psql\0options\0-c x=1\0\0"),
     8,
     true,
     3,
     {"user", "bob", "application_name", "psql", "options", "-c x=1"},
     NULL},
    /* only the terminator */
    {P("\0"), 8, true, 0, {NULL}, NULL},
    /* an empty value is a value */
    {P("user\0\0\0"), 8, true, 1, {"user", ""}, NULL},
    /* nothing at all: the terminator is missing */
    {P(""), 8, false, 0, {NULL}, "expected terminator"},
    {P("user\0bob\0"), 8, false, 0, {NULL}, "expected terminator"},
    {P("user\0bob\0data"), 8, false, 0, {NULL}, "expected terminator"},
    {P("user"), 8, false, 0, {NULL}, "expected terminator"},
    /* a name with no value */
    {P("user\0"), 8, false, 0, {NULL}, "missing value"},
    {P("user\0bob"), 8, false, 0, {NULL}, "missing value"},
    /* bytes after the terminator */
    {P("user\0bob\0\0x"), 8, false, 0, {NULL}, "trailing bytes"},
    {P("\0\0"), 8, false, 0, {NULL}, "trailing bytes"},
    /* the caller's array bounds the count */
    {P("a\0001\0b\0002\0\0"), 2, true, 2, {"a", "1", "b", "2"}, NULL},
    {P("a\0001\0b\0002\0c\0003\0\0"), 2, false, 0, {NULL}, "too many"},
    {P("a\0001\0\0"), 0, false, 0, {NULL}, "too many"},
};

static void test_startup_params(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(params_cases); i++) {
		const struct params_case *c = &params_cases[i];
		uint8_t *body = dup_bytes(c->body, c->len);
		struct startup_param params[8];
		int n = -1;
		const char *err = NULL;
		bool ok = proto_parse_startup_params(body, c->len, params, c->max, &n, &err);
		bool good = ok == c->ok;
		if (good && ok) {
			good = n == c->n && err == NULL;
			for (int j = 0; good && j < n; j++)
				good = strcmp(params[j].name, c->pairs[2 * j]) == 0 &&
				       strcmp(params[j].value, c->pairs[2 * j + 1]) == 0 &&
				       (const uint8_t *)params[j].name >= body &&
				       (const uint8_t *)params[j].name < body + c->len;
		} else if (good) {
			good = err && strstr(err, c->err);
		}
		if (good) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr, "startup params case %zu: got %d n=%d err %s\n", i, ok, n,
			        err ? err : "(null)");
		}
		free(body);
	}

	/* PROTO_MAX_PARAMS pairs fit an array of that size; one more does not */
	struct pktbuf pb;
	pktbuf_init(&pb);
	for (int i = 0; i <= PROTO_MAX_PARAMS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%d", i);
		pktbuf_put_string(&pb, name);
		pktbuf_put_string(&pb, "v");
	}
	pktbuf_put_byte(&pb, 0);
	struct startup_param params[PROTO_MAX_PARAMS];
	int n = 0;
	const char *err = NULL;
	CHECK(!proto_parse_startup_params(pb.data, pb.len, params, PROTO_MAX_PARAMS, &n, &err));
	CHECK(err && strstr(err, "too many startup parameters"));
	pktbuf_reset(&pb);
	for (int i = 0; i < PROTO_MAX_PARAMS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%d", i);
		pktbuf_put_string(&pb, name);
		pktbuf_put_string(&pb, "v");
	}
	pktbuf_put_byte(&pb, 0);
	err = NULL;
	CHECK(proto_parse_startup_params(pb.data, pb.len, params, PROTO_MAX_PARAMS, &n, &err));
	CHECK(n == PROTO_MAX_PARAMS && err == NULL);
	CHECK_STR(params[PROTO_MAX_PARAMS - 1].name, "p63");
	pktbuf_free(&pb);
}

/* ---- proto_parse_error ---- */

struct error_case {
	const char *body;
	size_t len;
	bool ok;
	const char *severity, *sqlstate, *message;
};

static const struct error_case error_cases[] = {
    {P("SERROR\0VERROR\0C28P01\0Mpassword authentication failed for user \"x\"\0\0"), true, "ERROR",
     "28P01", "password authentication failed for user \"x\""},
    /* V (never localized) wins over S, in either order */
    {P("SFEHLER\0VERROR\0C42601\0Msyntax\0\0"), true, "ERROR", "42601", "syntax"},
    {P("VFATAL\0SFATALE\0C57P01\0Mterminating\0\0"), true, "FATAL", "57P01", "terminating"},
    /* a pre-9.6 server sends only S */
    {P("SWARNUNG\0C01000\0Mx\0\0"), true, "WARNUNG", "01000", "x"},
    /* fields the pooler ignores are skipped whole, even ones named like ours */
    {P("Ddetail with M inside\0Hhint\0P12\0F\0L1\0Rfn\0Mmsg\0\0"), true, "", "", "msg"},
    /* only the terminator */
    {P("\0"), true, "", "", ""},
    /* a later field of the same kind replaces the earlier one */
    {P("Mfirst\0Msecond\0\0"), true, "", "", "second"},
    /* fixed buffers: severity 15 chars, sqlstate 5 */
    {P("VABCDEFGHIJKLMNOPQRSTUVWXYZ\0C1234567\0\0"), true, "ABCDEFGHIJKLMNO", "12345", ""},
    /* malformed */
    {P(""), false, NULL, NULL, NULL},
    {P("SERROR\0"), false, NULL, NULL, NULL},
    {P("SERROR\0M"), false, NULL, NULL, NULL},
    {P("SERROR\0Mno nul"), false, NULL, NULL, NULL},
    {P("S"), false, NULL, NULL, NULL},
};

static void test_parse_error(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		uint8_t *body = dup_bytes(c->body, c->len);
		struct proto_error e;
		memset(&e, 'x', sizeof(e));
		bool ok = proto_parse_error(body, c->len, &e);
		bool good = ok == c->ok;
		if (good && ok)
			good = strcmp(e.severity, c->severity) == 0 &&
			       strcmp(e.sqlstate, c->sqlstate) == 0 &&
			       strcmp(e.message, c->message) == 0;
		if (good) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr, "error case %zu: got %d S=%.16s C=%.6s M=%.40s\n", i, ok,
			        e.severity, e.sqlstate, e.message);
		}
		free(body);
	}

	/* a long message keeps its first 511 characters and stays terminated */
	char longmsg[701];
	for (size_t i = 0; i < 700; i++)
		longmsg[i] = (char)('a' + i % 26);
	longmsg[700] = '\0';
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_put_byte(&pb, 'M');
	pktbuf_put_string(&pb, longmsg);
	pktbuf_put_byte(&pb, 'C');
	pktbuf_put_string(&pb, "XX000");
	pktbuf_put_byte(&pb, 0);
	uint8_t *body = dup_bytes(pb.data, pb.len);
	struct proto_error e;
	CHECK(proto_parse_error(body, pb.len, &e));
	CHECK(strlen(e.message) == 511);
	CHECK(memcmp(e.message, longmsg, 511) == 0);
	CHECK_STR(e.sqlstate, "XX000");
	free(body);

	/* exactly 511 fits whole */
	longmsg[511] = '\0';
	pktbuf_reset(&pb);
	pktbuf_put_byte(&pb, 'M');
	pktbuf_put_string(&pb, longmsg);
	pktbuf_put_byte(&pb, 0);
	CHECK(proto_parse_error(pb.data, pb.len, &e));
	CHECK_STR(e.message, longmsg);
	pktbuf_free(&pb);
}

/* ---- builders, byte for byte ---- */

static void test_builders(void)
{
	struct pktbuf pb;
	pktbuf_init(&pb);

	/* ErrorResponse: 4 + (1+6)*2 + (1+6) + (1+4) + 1 = 31 */
	proto_build_error(&pb, "FATAL", "28P01", "bad");
	CHECK_PB("ErrorResponse", &pb,
	         "E\x00\x00\x00\x1f"
	         "SFATAL\0"
	         "VFATAL\0"
	         "C28P01\0"
	         "Mbad\0"
	         "\0");
	pktbuf_reset(&pb);

	/* NoticeResponse: 4 + (1+7)*2 + (1+6) + (1+3) + 1 = 32 */
	proto_build_notice(&pb, "01000", "hi");
	CHECK_PB("NoticeResponse", &pb,
	         "N\x00\x00\x00\x20"
	         "SNOTICE\0"
	         "VNOTICE\0"
	         "C01000\0"
	         "Mhi\0"
	         "\0");
	pktbuf_reset(&pb);

	proto_build_auth(&pb, AUTH_REQ_OK, NULL, 0);
	CHECK_PB("AuthenticationOk", &pb, "R\x00\x00\x00\x08\x00\x00\x00\x00");
	pktbuf_reset(&pb);

	proto_build_auth(&pb, AUTH_REQ_CLEARTEXT, NULL, 0);
	CHECK_PB("AuthenticationCleartextPassword", &pb, "R\x00\x00\x00\x08\x00\x00\x00\x03");
	pktbuf_reset(&pb);

	static const uint8_t salt[4] = {0x01, 0x00, 0xfe, 0x7f};
	proto_build_auth(&pb, AUTH_REQ_MD5, salt, sizeof(salt));
	CHECK_PB("AuthenticationMD5Password", &pb,
	         "R\x00\x00\x00\x0c\x00\x00\x00\x05"
	         "\x01\x00\xfe\x7f");
	pktbuf_reset(&pb);

	/* AuthenticationSASL: mechanism list ends with an empty string */
	proto_build_auth(&pb, AUTH_REQ_SASL, "SCRAM-SHA-256\0", 15);
	CHECK_PB("AuthenticationSASL", &pb,
	         "R\x00\x00\x00\x17\x00\x00\x00\x0a"
	         "SCRAM-SHA-256\0\0");
	pktbuf_reset(&pb);

	proto_build_auth(&pb, AUTH_REQ_SASL_CONTINUE, "r=ab,s=c,i=1", 12);
	CHECK_PB("AuthenticationSASLContinue", &pb,
	         "R\x00\x00\x00\x14\x00\x00\x00\x0b"
	         "r=ab,s=c,i=1");
	pktbuf_reset(&pb);

	proto_build_auth(&pb, AUTH_REQ_SASL_FINAL, "v=xyz", 5);
	CHECK_PB("AuthenticationSASLFinal", &pb,
	         "R\x00\x00\x00\x0d\x00\x00\x00\x0c"
	         "v=xyz");
	pktbuf_reset(&pb);

	/* ParameterStatus: 4 + 16 + 5 = 25 */
	proto_build_parameter_status(&pb, "client_encoding", "UTF8");
	CHECK_PB("ParameterStatus", &pb,
	         "S\x00\x00\x00\x19"
	         "client_encoding\0UTF8\0");
	pktbuf_reset(&pb);

	proto_build_parameter_status(&pb, "application_name", "");
	CHECK_PB("ParameterStatus empty", &pb,
	         "S\x00\x00\x00\x16"
	         "application_name\0\0");
	pktbuf_reset(&pb);

	proto_build_backend_key(&pb, 0x01020304u, 0xa0b0c0d0u);
	CHECK_PB("BackendKeyData", &pb,
	         "K\x00\x00\x00\x0c"
	         "\x01\x02\x03\x04\xa0\xb0\xc0\xd0");
	pktbuf_reset(&pb);

	proto_build_ready(&pb, 'I');
	proto_build_ready(&pb, 'T');
	proto_build_ready(&pb, 'E');
	CHECK_PB("ReadyForQuery", &pb,
	         "Z\x00\x00\x00\x05I"
	         "Z\x00\x00\x00\x05T"
	         "Z\x00\x00\x00\x05"
	         "E");
	pktbuf_reset(&pb);

	proto_build_query(&pb, "SELECT 1");
	CHECK_PB("Query", &pb, "Q\x00\x00\x00\x0dSELECT 1\0");
	pktbuf_reset(&pb);

	proto_build_query(&pb, "");
	CHECK_PB("Query empty", &pb, "Q\x00\x00\x00\x05\0");
	pktbuf_reset(&pb);

	/* RowDescription: 4 + 2 + (2+18) + (2+18) = 46; int8 has typlen 8, text -1 */
	{
		const char *const names[] = {"n", "t"};
		const uint32_t types[] = {PROTO_OID_INT8, PROTO_OID_TEXT};
		proto_build_row_description(&pb, 2, names, types);
		CHECK_PB(
		    "RowDescription", &pb,
		    "T\x00\x00\x00\x2e\x00\x02"
		    "n\0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x14\x00\x08\xff\xff\xff\xff\x00\x00"
		    "t\0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00");
		pktbuf_reset(&pb);
	}

	/* DataRow: NULL is length -1 with no bytes; "" is length 0 */
	{
		const char *const values[] = {"42", NULL, ""};
		proto_build_data_row(&pb, 3, values);
		CHECK_PB("DataRow", &pb,
		         "D\x00\x00\x00\x14\x00\x03"
		         "\x00\x00\x00\x02"
		         "42"
		         "\xff\xff\xff\xff"
		         "\x00\x00\x00\x00");
		pktbuf_reset(&pb);
	}

	/* Bind: portal "", statement "", 0 formats, 1 param "ab", 0 result formats */
	{
		const char *const values[] = {"ab"};
		proto_build_bind(&pb, values, 1);
		CHECK_PB("Bind", &pb,
		         "B\x00\x00\x00\x12\0\0\x00\x00\x00\x01\x00\x00\x00\x02"
		         "ab\x00\x00");
		pktbuf_reset(&pb);
		proto_build_execute(&pb);
		CHECK_PB("Execute", &pb, "E\x00\x00\x00\x09\0\x00\x00\x00\x00");
		pktbuf_reset(&pb);
	}

	proto_build_complete(&pb, "SHOW");
	CHECK_PB("CommandComplete", &pb, "C\x00\x00\x00\x09SHOW\0");
	pktbuf_reset(&pb);

	proto_build_password(&pb, "secret");
	CHECK_PB("PasswordMessage", &pb, "p\x00\x00\x00\x0bsecret\0");
	pktbuf_reset(&pb);

	/* SASLInitialResponse: 4 + 14 + 4 + 11 = 33 */
	proto_build_sasl_initial(&pb, "SCRAM-SHA-256", "n,,n=,r=abc", 11);
	CHECK_PB("SASLInitialResponse", &pb,
	         "p\x00\x00\x00\x21"
	         "SCRAM-SHA-256\0"
	         "\x00\x00\x00\x0b"
	         "n,,n=,r=abc");
	pktbuf_reset(&pb);

	proto_build_sasl_response(&pb, "c=biws,r=x,p=y", 14);
	CHECK_PB("SASLResponse", &pb,
	         "p\x00\x00\x00\x12"
	         "c=biws,r=x,p=y");
	pktbuf_reset(&pb);

	/* CancelRequest: 16 bytes, no type byte, code 80877102 */
	proto_build_cancel(&pb, 0x00001234u, 0xcafebabeu);
	CHECK(pb.len == 16);
	CHECK_PB("CancelRequest", &pb,
	         "\x00\x00\x00\x10"
	         "\x04\xd2\x16\x2e"
	         "\x00\x00\x12\x34"
	         "\xca\xfe\xba\xbe");
	pktbuf_reset(&pb);

	/* NegotiateProtocolVersion carries 3.minor, as PostgreSQL sends it */
	static const char *const unknown[] = {"_pq_.foo", "_pq_.bar"};
	proto_build_negotiate_version(&pb, 0, unknown, 2);
	CHECK_PB("NegotiateProtocolVersion", &pb,
	         "v\x00\x00\x00\x1e"
	         "\x00\x03\x00\x00"
	         "\x00\x00\x00\x02"
	         "_pq_.foo\0_pq_.bar\0");
	pktbuf_reset(&pb);

	proto_build_negotiate_version(&pb, 2, NULL, 0);
	CHECK_PB("NegotiateProtocolVersion 3.2", &pb,
	         "v\x00\x00\x00\x0c"
	         "\x00\x03\x00\x02"
	         "\x00\x00\x00\x00");
	pktbuf_reset(&pb);

	/* StartupMessage: 4 + 4 + 5 + 4 + 9 + 3 + 1 = 30 */
	static const struct startup_param sp[] = {{"user", "bob"}, {"database", "db"}};
	proto_build_startup(&pb, sp, 2);
	CHECK_PB("StartupMessage", &pb,
	         "\x00\x00\x00\x1e"
	         "\x00\x03\x00\x00"
	         "user\0bob\0database\0db\0"
	         "\0");
	pktbuf_reset(&pb);

	proto_build_startup(&pb, NULL, 0);
	CHECK_PB("StartupMessage empty", &pb, "\x00\x00\x00\x09\x00\x03\x00\x00\0");
	pktbuf_free(&pb);
	CHECK(pb.data == NULL && pb.len == 0 && pb.cap == 0);
}

/* ---- round trips: what we build, we read back ---- */

static void test_round_trips(void)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	uint8_t type;
	uint32_t body_len, total, code;
	const char *err = NULL;

	proto_build_error(&pb, "ERROR", "53300", "no more connections allowed (max_client_conn)");
	CHECK(proto_read_header(pb.data, pb.len, 1000, &type, &body_len, &err) == PROTO_OK);
	CHECK(type == 'E' && body_len == pb.len - 5);
	struct proto_error e;
	CHECK(proto_parse_error(pb.data + 5, body_len, &e));
	CHECK_STR(e.severity, "ERROR");
	CHECK_STR(e.sqlstate, "53300");
	CHECK_STR(e.message, "no more connections allowed (max_client_conn)");
	pktbuf_reset(&pb);

	proto_build_notice(&pb, "01000", "careful");
	CHECK(proto_read_header(pb.data, pb.len, 1000, &type, &body_len, &err) == PROTO_OK);
	CHECK(type == 'N' && body_len == pb.len - 5);
	CHECK(proto_parse_error(pb.data + 5, body_len, &e));
	CHECK_STR(e.severity, "NOTICE");
	CHECK_STR(e.message, "careful");
	pktbuf_reset(&pb);

	static const struct startup_param sp[] = {
	    {"user", "alice"}, {"database", "app"}, {"application_name", "it's"}, {"x", ""}};
	proto_build_startup(&pb, sp, 4);
	CHECK(proto_read_startup_header(pb.data, pb.len, &total, &code, &err) == PROTO_OK);
	CHECK(total == pb.len && code == PROTO_V3);
	struct startup_param got[PROTO_MAX_PARAMS];
	int n = 0;
	CHECK(proto_parse_startup_params(pb.data + 8, total - 8, got, PROTO_MAX_PARAMS, &n, &err));
	CHECK(n == 4);
	for (int i = 0; i < 4 && i < n; i++) {
		CHECK_STR(got[i].name, sp[i].name);
		CHECK_STR(got[i].value, sp[i].value);
	}
	pktbuf_reset(&pb);

	proto_build_cancel(&pb, 4242, 0x80000001u);
	CHECK(proto_read_startup_header(pb.data, pb.len, &total, &code, &err) == PROTO_OK);
	CHECK(total == 16 && code == PROTO_CANCEL_CODE);
	struct pkt_reader r;
	pr_init(&r, pb.data + 8, total - 8);
	CHECK(pr_uint32(&r) == 4242);
	CHECK(pr_uint32(&r) == 0x80000001u);
	CHECK(!r.bad && pr_left(&r) == 0);
	pktbuf_reset(&pb);

	proto_build_parameter_status(&pb, "TimeZone", "Europe/Paris");
	proto_build_backend_key(&pb, 7, 8);
	proto_build_sasl_initial(&pb, "SCRAM-SHA-256", "n,,n=,r=nonce", 13);
	size_t off = 0;
	CHECK(proto_read_header(pb.data + off, pb.len - off, 1000, &type, &body_len, &err) ==
	      PROTO_OK);
	CHECK(type == 'S');
	pr_init(&r, pb.data + off + 5, body_len);
	CHECK_STR(pr_string(&r), "TimeZone");
	CHECK_STR(pr_string(&r), "Europe/Paris");
	CHECK(!r.bad && pr_left(&r) == 0);
	off += 5 + body_len;
	CHECK(proto_read_header(pb.data + off, pb.len - off, 1000, &type, &body_len, &err) ==
	      PROTO_OK);
	CHECK(type == 'K' && body_len == 8);
	pr_init(&r, pb.data + off + 5, body_len);
	CHECK(pr_uint32(&r) == 7 && pr_uint32(&r) == 8 && pr_left(&r) == 0);
	off += 5 + body_len;
	CHECK(proto_read_header(pb.data + off, pb.len - off, 1000, &type, &body_len, &err) ==
	      PROTO_OK);
	CHECK(type == 'p');
	pr_init(&r, pb.data + off + 5, body_len);
	CHECK_STR(pr_string(&r), "SCRAM-SHA-256");
	uint32_t dlen = pr_uint32(&r);
	CHECK(dlen == 13);
	const uint8_t *d = pr_bytes(&r, dlen);
	CHECK(d && memcmp(d, "n,,n=,r=nonce", 13) == 0);
	CHECK(!r.bad && pr_left(&r) == 0);
	off += 5 + body_len;
	CHECK(off == pb.len);
	pktbuf_free(&pb);
}

/* ---- pktbuf ---- */

static void test_pktbuf(void)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	CHECK(pb.data == NULL && pb.len == 0);

	/* several messages back to back, typed and untyped, with every put */
	pktbuf_begin(&pb, 'X');
	pktbuf_end(&pb);
	pktbuf_begin(&pb, 0);
	pktbuf_put_uint16(&pb, 0xbeef);
	pktbuf_put_byte(&pb, 0x7f);
	pktbuf_end(&pb);
	pktbuf_begin(&pb, 'd');
	pktbuf_put_bytes(&pb, "abc", 3);
	pktbuf_put_bytes(&pb, NULL, 0);
	pktbuf_put_uint32(&pb, 0x01020304u);
	pktbuf_put_string(&pb, "");
	pktbuf_end(&pb);
	CHECK_PB("back to back", &pb,
	         "X\x00\x00\x00\x04"
	         "\x00\x00\x00\x07\xbe\xef\x7f"
	         "d\x00\x00\x00\x0c"
	         "abc\x01\x02\x03\x04\0");

	/* reset keeps the memory and starts over */
	uint8_t *before = pb.data;
	pktbuf_reset(&pb);
	CHECK(pb.len == 0 && pb.data == before);
	proto_build_ready(&pb, 'I');
	CHECK_PB("after reset", &pb, "Z\x00\x00\x00\x05I");
	pktbuf_reset(&pb);

	/* growth: a message that straddles the first 256 bytes ... */
	char sql[1001];
	memset(sql, 'x', 1000);
	sql[1000] = '\0';
	proto_build_ready(&pb, 'I');
	proto_build_query(&pb, sql);
	proto_build_ready(&pb, 'T');
	CHECK(pb.len == 6 + 5 + 1001 + 6);
	CHECK(pb.cap >= pb.len);
	CHECK_BYTES("straddling header", pb.data + 6, 5, "Q\x00\x00\x03\xed");
	CHECK(pb.data[11] == 'x' && pb.data[1010] == 'x' && pb.data[1011] == '\0');
	CHECK_BYTES("after growth", pb.data + 1012, 6, "Z\x00\x00\x00\x05T");
	pktbuf_reset(&pb);

	/* ... and many small messages, each patched in the right place */
	for (int i = 0; i < 200; i++)
		proto_build_backend_key(&pb, (uint32_t)i, (uint32_t)(i * 7));
	CHECK(pb.len == 200 * 13);
	bool all = true;
	for (int i = 0; i < 200; i++) {
		const uint8_t *m = pb.data + i * 13;
		uint8_t want[13] = {'K', 0, 0, 0, 12, 0, 0, 0, (uint8_t)i, 0, 0, 0, 0};
		uint32_t k = (uint32_t)(i * 7);
		want[9] = (uint8_t)(k >> 24);
		want[10] = (uint8_t)(k >> 16);
		want[11] = (uint8_t)(k >> 8);
		want[12] = (uint8_t)k;
		if (memcmp(m, want, 13) != 0) {
			all = false;
			fprintf(stderr, "pktbuf: message %d wrong\n", i);
			break;
		}
	}
	CHECK(all);
	pktbuf_free(&pb);

	/* a length field patched after the buffer moved, untyped */
	pktbuf_begin(&pb, 0);
	for (int i = 0; i < 300; i++)
		pktbuf_put_byte(&pb, (uint8_t)i);
	pktbuf_end(&pb);
	CHECK(pb.len == 304);
	CHECK_BYTES("untyped grown", pb.data, 5, "\x00\x00\x01\x30\x00");
	CHECK(pb.data[303] == (uint8_t)299);
	pktbuf_free(&pb);
	pktbuf_free(&pb); /* twice is harmless */
}

int main(void)
{
	test_read_header();
	test_read_startup_header();
	test_reader();
	test_startup_params();
	test_parse_error();
	test_builders();
	test_round_trips();
	test_pktbuf();
	return unit_summary("test_proto");
}
