/*
 * libFuzzer target for the wire-protocol reader (proto.c): message and
 * startup headers, startup parameters, ErrorResponse fields and the
 * bounds-checked cursor. Besides "no crash, no read past the input", it
 * checks properties a parser must keep on any input: lengths within the
 * stated bounds, a cursor that never passes its end, and round trips
 * (what parsed cleanly, built again, gives the same bytes or fields).
 */
#include "pktbuf.h"
#include "proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static void fuzz_header(const uint8_t *data, size_t size, uint32_t max_len)
{
	uint8_t type;
	uint32_t body_len;
	const char *err = NULL;
	enum proto_status st = proto_read_header(data, size, max_len, &type, &body_len, &err);
	if (st == PROTO_INCOMPLETE) {
		REQUIRE(size < PROTO_HEADER_LEN);
		return;
	}
	REQUIRE(size >= PROTO_HEADER_LEN);
	if (st == PROTO_BAD) {
		REQUIRE(err != NULL);
		return;
	}
	REQUIRE(st == PROTO_OK && body_len <= max_len && type == data[0]);
	if (body_len > size - PROTO_HEADER_LEN)
		return;
	/* A complete message: read its body as an error, as the pooler does for 'E'/'N'. */
	struct proto_error e;
	if (proto_parse_error(data + PROTO_HEADER_LEN, body_len, &e))
		REQUIRE(strlen(e.severity) < sizeof(e.severity) &&
		        strlen(e.sqlstate) < sizeof(e.sqlstate) &&
		        strlen(e.message) < sizeof(e.message));
}

static void fuzz_startup(const uint8_t *data, size_t size)
{
	uint32_t total, code;
	const char *err = NULL;
	enum proto_status st = proto_read_startup_header(data, size, &total, &code, &err);
	if (st != PROTO_OK) {
		REQUIRE(st == PROTO_INCOMPLETE ? size < 8 : err != NULL);
		return;
	}
	REQUIRE(total >= 8 && total <= PROTO_MAX_STARTUP);
	if (total > size || code != PROTO_V3)
		return;
	const uint8_t *body = data + 8;
	size_t len = total - 8;
	struct startup_param params[PROTO_MAX_PARAMS];
	int n = -1;
	if (!proto_parse_startup_params(body, len, params, PROTO_MAX_PARAMS, &n, &err)) {
		REQUIRE(err != NULL);
		return;
	}
	REQUIRE(n >= 0 && n <= PROTO_MAX_PARAMS);
	for (int i = 0; i < n; i++) {
		const uint8_t *nm = (const uint8_t *)params[i].name;
		const uint8_t *v = (const uint8_t *)params[i].value;
		REQUIRE(nm >= body && nm < body + len && v > nm && v < body + len);
		REQUIRE(params[i].name[0] != '\0');
	}
	/* Parsed cleanly: building it again must give the very same packet. */
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_startup(&pb, params, n);
	REQUIRE(pb.len == total && memcmp(pb.data, data, total) == 0);
	pktbuf_free(&pb);
}

static void fuzz_error(const uint8_t *data, size_t size)
{
	struct proto_error e;
	if (!proto_parse_error(data, size, &e))
		return;
	/* Build from the parsed fields and parse again: the fields survive. */
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_error(&pb, e.severity, e.sqlstate, e.message);
	uint8_t type;
	uint32_t body_len;
	const char *err = NULL;
	REQUIRE(proto_read_header(pb.data, pb.len, PROTO_MAX_MESSAGE, &type, &body_len, &err) ==
	        PROTO_OK);
	REQUIRE(type == 'E' && body_len == pb.len - PROTO_HEADER_LEN);
	struct proto_error again;
	REQUIRE(proto_parse_error(pb.data + PROTO_HEADER_LEN, body_len, &again));
	REQUIRE(strcmp(e.severity, again.severity) == 0 &&
	        strcmp(e.sqlstate, again.sqlstate) == 0 && strcmp(e.message, again.message) == 0);
	pktbuf_free(&pb);
}

/* The first bytes drive a sequence of reads over the rest. */
static void fuzz_reader(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	size_t nops = data[0] % 16;
	if (nops + 1 > size)
		return;
	const uint8_t *ops = data + 1;
	struct pkt_reader r;
	pr_init(&r, ops + nops, size - 1 - nops);
	bool was_bad = false;
	for (size_t i = 0; i < nops; i++) {
		size_t before = r.pos;
		switch (ops[i] % 5) {
		case 0:
			(void)pr_byte(&r);
			break;
		case 1:
			(void)pr_uint16(&r);
			break;
		case 2:
			(void)pr_uint32(&r);
			break;
		case 3: {
			const char *s = pr_string(&r);
			if (!r.bad)
				REQUIRE(r.pos == before + strlen(s) + 1);
			break;
		}
		default: {
			size_t n = ops[i] / 5;
			const uint8_t *p = pr_bytes(&r, n);
			REQUIRE(r.bad ? p == NULL : p == r.p + before);
			break;
		}
		}
		REQUIRE(r.pos <= r.len);
		REQUIRE(!was_bad || (r.bad && r.pos == before));
		was_bad = r.bad;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_header(data, size, PROTO_MAX_MESSAGE);
	fuzz_header(data, size, 64);
	fuzz_startup(data, size);
	fuzz_error(data, size);
	fuzz_reader(data, size);
	return 0;
}
