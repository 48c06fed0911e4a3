/*
 * Framing and message building for the v3 protocol. Every length read
 * from the network is checked against what the buffer holds and against a
 * configured ceiling before anything is allocated for it: a client must
 * not be able to make the pooler reserve a gigabyte with five bytes.
 */
#include "proto.h"

#include <string.h>

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum proto_status proto_read_header(const uint8_t *buf, size_t avail, uint32_t max_len,
                                    uint8_t *type, uint32_t *body_len, const char **err)
{
	if (avail < PROTO_HEADER_LEN)
		return PROTO_INCOMPLETE;
	uint32_t len = get_u32(buf + 1);
	if (len < 4) {
		*err = "invalid message length";
		return PROTO_BAD;
	}
	if (len - 4 > max_len) {
		*err = "message too long";
		return PROTO_BAD;
	}
	*type = buf[0];
	*body_len = len - 4;
	return PROTO_OK;
}

enum proto_status proto_read_startup_header(const uint8_t *buf, size_t avail, uint32_t *total_len,
                                            uint32_t *code, const char **err)
{
	if (avail < 8)
		return PROTO_INCOMPLETE;
	uint32_t len = get_u32(buf);
	if (len < 8 || len > PROTO_MAX_STARTUP) {
		*err = "invalid startup packet length";
		return PROTO_BAD;
	}
	*total_len = len;
	*code = get_u32(buf + 4);
	return PROTO_OK;
}

void pr_init(struct pkt_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->bad = false;
}

const uint8_t *pr_bytes(struct pkt_reader *r, size_t n)
{
	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->pos;
	r->pos += n;
	return p;
}

uint8_t pr_byte(struct pkt_reader *r)
{
	const uint8_t *p = pr_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t pr_uint16(struct pkt_reader *r)
{
	const uint8_t *p = pr_bytes(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t pr_uint32(struct pkt_reader *r)
{
	const uint8_t *p = pr_bytes(r, 4);
	return p ? get_u32(p) : 0;
}

const char *pr_string(struct pkt_reader *r)
{
	if (r->bad)
		return "";
	const uint8_t *start = r->p + r->pos;
	const uint8_t *nul = memchr(start, 0, r->len - r->pos);
	if (!nul) {
		r->bad = true;
		return "";
	}
	r->pos += (size_t)(nul - start) + 1;
	return (const char *)start;
}

bool proto_parse_startup_params(const uint8_t *body, size_t len, struct startup_param *params,
                                int max, int *n, const char **err)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	*n = 0;
	for (;;) {
		const char *name = pr_string(&r);
		if (r.bad) {
			*err = "invalid startup packet layout: expected terminator as last byte";
			return false;
		}
		if (*name == '\0')
			break;
		const char *value = pr_string(&r);
		if (r.bad) {
			*err = "invalid startup packet layout: missing value";
			return false;
		}
		if (*n >= max) {
			*err = "too many startup parameters";
			return false;
		}
		params[*n].name = name;
		params[*n].value = value;
		(*n)++;
	}
	if (pr_left(&r) != 0) {
		*err = "invalid startup packet layout: trailing bytes";
		return false;
	}
	return true;
}

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *e)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	memset(e, 0, sizeof(*e));
	for (;;) {
		uint8_t field = pr_byte(&r);
		if (r.bad)
			return false;
		if (field == 0)
			return true;
		const char *value = pr_string(&r);
		if (r.bad)
			return false;
		switch (field) {
		case 'S':
			/* 'V' (non-localized) wins when present, see below. */
			if (!e->severity[0])
				strlcpy_s(e->severity, value, sizeof(e->severity));
			break;
		case 'V':
			strlcpy_s(e->severity, value, sizeof(e->severity));
			break;
		case 'C':
			strlcpy_s(e->sqlstate, value, sizeof(e->sqlstate));
			break;
		case 'M':
			strlcpy_s(e->message, value, sizeof(e->message));
			break;
		default:
			break;
		}
	}
}

static void build_error_fields(struct pktbuf *pb, const char *severity, const char *sqlstate,
                               const char *message)
{
	pktbuf_put_byte(pb, 'S');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'V');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'C');
	pktbuf_put_string(pb, sqlstate);
	pktbuf_put_byte(pb, 'M');
	pktbuf_put_string(pb, message);
	pktbuf_put_byte(pb, 0);
}

void proto_build_error(struct pktbuf *pb, const char *severity, const char *sqlstate,
                       const char *message)
{
	pktbuf_begin(pb, 'E');
	build_error_fields(pb, severity, sqlstate, message);
	pktbuf_end(pb);
}

void proto_build_notice(struct pktbuf *pb, const char *sqlstate, const char *message)
{
	pktbuf_begin(pb, 'N');
	build_error_fields(pb, "NOTICE", sqlstate, message);
	pktbuf_end(pb);
}

void proto_build_auth(struct pktbuf *pb, uint32_t code, const void *extra, size_t n)
{
	pktbuf_begin(pb, 'R');
	pktbuf_put_uint32(pb, code);
	pktbuf_put_bytes(pb, extra, n);
	pktbuf_end(pb);
}

void proto_build_parameter_status(struct pktbuf *pb, const char *name, const char *value)
{
	pktbuf_begin(pb, 'S');
	pktbuf_put_string(pb, name);
	pktbuf_put_string(pb, value);
	pktbuf_end(pb);
}

void proto_build_backend_key(struct pktbuf *pb, uint32_t pid, uint32_t key)
{
	pktbuf_begin(pb, 'K');
	pktbuf_put_uint32(pb, pid);
	pktbuf_put_uint32(pb, key);
	pktbuf_end(pb);
}

void proto_build_ready(struct pktbuf *pb, char status)
{
	pktbuf_begin(pb, 'Z');
	pktbuf_put_byte(pb, (uint8_t)status);
	pktbuf_end(pb);
}

void proto_build_query(struct pktbuf *pb, const char *sql)
{
	pktbuf_begin(pb, 'Q');
	pktbuf_put_string(pb, sql);
	pktbuf_end(pb);
}

void proto_build_row_description(struct pktbuf *pb, int ncols, const char *const *names,
                                 const uint32_t *types)
{
	pktbuf_begin(pb, 'T');
	pktbuf_put_uint16(pb, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		pktbuf_put_string(pb, names[i]);
		pktbuf_put_uint32(pb, 0); /* no table */
		pktbuf_put_uint16(pb, 0);
		pktbuf_put_uint32(pb, types[i]);
		pktbuf_put_uint16(pb, types[i] == PROTO_OID_INT8 ? 8 : 0xffff);
		pktbuf_put_uint32(pb, 0xffffffff); /* no type modifier */
		pktbuf_put_uint16(pb, 0);          /* text format */
	}
	pktbuf_end(pb);
}

void proto_build_data_row(struct pktbuf *pb, int ncols, const char *const *values)
{
	pktbuf_begin(pb, 'D');
	pktbuf_put_uint16(pb, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		if (!values[i]) {
			pktbuf_put_uint32(pb, 0xffffffff);
			continue;
		}
		size_t n = strlen(values[i]);
		pktbuf_put_uint32(pb, (uint32_t)n);
		pktbuf_put_bytes(pb, values[i], n);
	}
	pktbuf_end(pb);
}

void proto_build_complete(struct pktbuf *pb, const char *tag)
{
	pktbuf_begin(pb, 'C');
	pktbuf_put_string(pb, tag);
	pktbuf_end(pb);
}

void proto_build_parse(struct pktbuf *pb, const char *name, const char *sql)
{
	pktbuf_begin(pb, 'P');
	pktbuf_put_string(pb, name);
	pktbuf_put_string(pb, sql);
	pktbuf_put_uint16(pb, 0);
	pktbuf_end(pb);
}

void proto_build_bind(struct pktbuf *pb, const char *const *values, int n)
{
	pktbuf_begin(pb, 'B');
	pktbuf_put_string(pb, "");
	pktbuf_put_string(pb, "");
	pktbuf_put_uint16(pb, 0); /* parameter formats: all text */
	pktbuf_put_uint16(pb, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(values[i]);
		pktbuf_put_uint32(pb, (uint32_t)len);
		pktbuf_put_bytes(pb, values[i], len);
	}
	pktbuf_put_uint16(pb, 0); /* result formats: all text */
	pktbuf_end(pb);
}

void proto_build_execute(struct pktbuf *pb)
{
	pktbuf_begin(pb, 'E');
	pktbuf_put_string(pb, "");
	pktbuf_put_uint32(pb, 0);
	pktbuf_end(pb);
}

void proto_build_password(struct pktbuf *pb, const char *password)
{
	pktbuf_begin(pb, 'p');
	pktbuf_put_string(pb, password);
	pktbuf_end(pb);
}

void proto_build_sasl_initial(struct pktbuf *pb, const char *mechanism, const char *data, size_t n)
{
	pktbuf_begin(pb, 'p');
	pktbuf_put_string(pb, mechanism);
	pktbuf_put_uint32(pb, (uint32_t)n);
	pktbuf_put_bytes(pb, data, n);
	pktbuf_end(pb);
}

void proto_build_sasl_response(struct pktbuf *pb, const char *data, size_t n)
{
	pktbuf_begin(pb, 'p');
	pktbuf_put_bytes(pb, data, n);
	pktbuf_end(pb);
}

void proto_build_cancel(struct pktbuf *pb, uint32_t pid, uint32_t key)
{
	pktbuf_begin(pb, 0);
	pktbuf_put_uint32(pb, PROTO_CANCEL_CODE);
	pktbuf_put_uint32(pb, pid);
	pktbuf_put_uint32(pb, key);
	pktbuf_end(pb);
}

void proto_build_negotiate_version(struct pktbuf *pb, uint32_t newest_minor,
                                   const char *const *unknown_options, int n)
{
	pktbuf_begin(pb, 'v');
	pktbuf_put_uint32(pb, PROTO_V3 | newest_minor);
	pktbuf_put_uint32(pb, (uint32_t)n);
	for (int i = 0; i < n; i++)
		pktbuf_put_string(pb, unknown_options[i]);
	pktbuf_end(pb);
}

void proto_build_startup(struct pktbuf *pb, const struct startup_param *params, int n)
{
	pktbuf_begin(pb, 0);
	pktbuf_put_uint32(pb, PROTO_V3);
	for (int i = 0; i < n; i++) {
		pktbuf_put_string(pb, params[i].name);
		pktbuf_put_string(pb, params[i].value);
	}
	pktbuf_put_byte(pb, 0);
	pktbuf_end(pb);
}
