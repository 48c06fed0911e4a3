/*
 * PostgreSQL v3 wire protocol: framing, validation and the messages the
 * pooler itself writes. Pure functions over byte buffers, so the reader
 * can be unit-tested and fuzzed without sockets.
 *
 * A regular message is a type byte, a 4-byte length that counts itself,
 * and a body. The startup-phase messages (StartupMessage, SSLRequest,
 * GSSENCRequest, CancelRequest) have no type byte.
 */
#ifndef PGSIEVE_PROTO_H
#define PGSIEVE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pktbuf.h"
#include "util.h"

#define PROTO_V3          0x00030000u
#define PROTO_CANCEL_CODE 80877102u
#define PROTO_SSL_CODE    80877103u
#define PROTO_GSSENC_CODE 80877104u
/* A startup packet longer than this is an attack or a bug (PostgreSQL's limit). */
#define PROTO_MAX_STARTUP 10000u
/* Whole message bound when no max_packet_size applies: PostgreSQL's 1 GB. */
#define PROTO_MAX_MESSAGE 0x40000000u
#define PROTO_HEADER_LEN  5
#define PROTO_MAX_PARAMS  64

enum proto_status {
	PROTO_INCOMPLETE, /* need more bytes */
	PROTO_OK,
	PROTO_BAD, /* *err says why; the connection must be closed */
};

/*
 * Reads a regular message header from buf. On PROTO_OK, *type is the type
 * byte and *body_len the body's length (excluding type and length field).
 * Lengths below 4 or above max_len are PROTO_BAD.
 */
enum proto_status proto_read_header(const uint8_t *buf, size_t avail, uint32_t max_len,
                                    uint8_t *type, uint32_t *body_len, const char **err);

/* Reads a startup-phase header: *total_len includes the length field. */
enum proto_status proto_read_startup_header(const uint8_t *buf, size_t avail, uint32_t *total_len,
                                            uint32_t *code, const char **err);

/* A bounds-checked cursor over a message body. Any overrun sets bad. */
struct pkt_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad;
};

void pr_init(struct pkt_reader *r, const uint8_t *p, size_t len);
uint8_t pr_byte(struct pkt_reader *r);
uint16_t pr_uint16(struct pkt_reader *r);
uint32_t pr_uint32(struct pkt_reader *r);
/* NUL-terminated string inside the body; "" and bad on overrun. */
const char *pr_string(struct pkt_reader *r);
const uint8_t *pr_bytes(struct pkt_reader *r, size_t n);
static inline size_t pr_left(const struct pkt_reader *r)
{
	return r->len - r->pos;
}

struct startup_param {
	const char *name;
	const char *value;
};

/*
 * Parses a StartupMessage body after the protocol code: name/value pairs
 * ending with an empty name. Pointers point into body.
 */
bool proto_parse_startup_params(const uint8_t *body, size_t len, struct startup_param *params,
                                int max, int *n, const char **err) MUST_CHECK;

/* The fields of an ErrorResponse or NoticeResponse a pooler cares about. */
struct proto_error {
	char severity[16];
	char sqlstate[6];
	char message[512];
};

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *e) MUST_CHECK;

/* Builders: each appends one complete message to pb. */
void proto_build_error(struct pktbuf *pb, const char *severity, const char *sqlstate,
                       const char *message);
void proto_build_notice(struct pktbuf *pb, const char *sqlstate, const char *message);
void proto_build_auth(struct pktbuf *pb, uint32_t code, const void *extra, size_t n);
void proto_build_parameter_status(struct pktbuf *pb, const char *name, const char *value);
void proto_build_backend_key(struct pktbuf *pb, uint32_t pid, uint32_t key);
void proto_build_ready(struct pktbuf *pb, char status);
void proto_build_query(struct pktbuf *pb, const char *sql);
/* Parse of sql under name ("": the unnamed statement), parameter types left to the server. */
void proto_build_parse(struct pktbuf *pb, const char *name, const char *sql);
/* Bind of the unnamed statement to the unnamed portal, text parameters and results. */
void proto_build_bind(struct pktbuf *pb, const char *const *values, int n);
/* Execute of the unnamed portal, every row. */
void proto_build_execute(struct pktbuf *pb);
void proto_build_password(struct pktbuf *pb, const char *password);
void proto_build_sasl_initial(struct pktbuf *pb, const char *mechanism, const char *data, size_t n);
void proto_build_sasl_response(struct pktbuf *pb, const char *data, size_t n);
void proto_build_cancel(struct pktbuf *pb, uint32_t pid, uint32_t key);
void proto_build_negotiate_version(struct pktbuf *pb, uint32_t newest_minor,
                                   const char *const *unknown_options, int n);
/* Result sets: column types are OIDs; a NULL value is SQL NULL. */
#define PROTO_OID_INT8 20
#define PROTO_OID_TEXT 25
void proto_build_row_description(struct pktbuf *pb, int ncols, const char *const *names,
                                 const uint32_t *types);
void proto_build_data_row(struct pktbuf *pb, int ncols, const char *const *values);
void proto_build_complete(struct pktbuf *pb, const char *tag);
/* StartupMessage for protocol 3.0 with name/value pairs. */
void proto_build_startup(struct pktbuf *pb, const struct startup_param *params, int n);

/* Authentication request codes (the 'R' message). */
enum {
	AUTH_REQ_OK = 0,
	AUTH_REQ_CLEARTEXT = 3,
	AUTH_REQ_MD5 = 5,
	AUTH_REQ_SASL = 10,
	AUTH_REQ_SASL_CONTINUE = 11,
	AUTH_REQ_SASL_FINAL = 12,
};

#endif
