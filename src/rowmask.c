/*
 * RowDescription and DataRow for masking (see include/rowmask.h).
 *
 * A DataRow is walked twice: once to check that every length is in
 * bounds and the columns end where the body does, then to build the new
 * row. The first walk costs a nanosecond or two per column and means the
 * second never meets a malformed row half-way, after masking work was
 * spent and bytes were written; the second may then read lengths
 * without checking them again.
 */
#include "rowmask.h"
#include "proto.h"

#include <string.h>

/* Name terminator, table OID, attnum, type OID, typlen, typmod, format. */
#define MIN_FIELD_LEN (1 + 4 + 2 + 4 + 2 + 4 + 2)

bool rowmask_parse_desc(const uint8_t *body, size_t len, struct rowdesc *desc, const char **err)
{
	struct pkt_reader r;
	pr_init(&r, body, len);
	memset(desc, 0, sizeof(*desc));

	uint16_t n = pr_uint16(&r);
	if (r.bad) {
		*err = "RowDescription truncated";
		return false;
	}
	if (n > INT16_MAX) {
		*err = "RowDescription has a negative column count";
		return false;
	}
	/* Refused before allocating for columns that cannot be there. */
	if ((size_t)n * MIN_FIELD_LEN > pr_left(&r)) {
		*err = "RowDescription truncated";
		return false;
	}
	struct rowdesc_col *cols = xcalloc(n ? n : 1, sizeof(*cols));
	for (int i = 0; i < n; i++) {
		struct rowdesc_col *c = &cols[i];
		c->name = pr_string(&r);
		c->table_oid = pr_uint32(&r);
		c->attnum = (int16_t)pr_uint16(&r);
		c->type_oid = pr_uint32(&r);
		c->typlen = (int16_t)pr_uint16(&r);
		c->typmod = (int32_t)pr_uint32(&r);
		c->format = (int16_t)pr_uint16(&r);
		if (r.bad) {
			*err = "RowDescription truncated";
			goto fail;
		}
		if (c->format != PGTYPE_FORMAT_TEXT && c->format != PGTYPE_FORMAT_BINARY) {
			*err = "RowDescription has an unknown format code";
			goto fail;
		}
	}
	if (pr_left(&r) != 0) {
		*err = "RowDescription has bytes past its last field";
		goto fail;
	}
	desc->ncols = n;
	desc->cols = cols;
	return true;
fail:
	free(cols);
	return false;
}

void rowmask_free_desc(struct rowdesc *desc)
{
	FREE_AND_NULL(desc->cols);
	desc->ncols = 0;
}

int rowmask_unmaskable(const struct rowdesc *desc, const struct masker *const *maskers)
{
	for (int i = 0; i < desc->ncols; i++) {
		const struct rowdesc_col *c = &desc->cols[i];
		if (maskers[i] && !mask_supports(maskers[i], c->type_oid, c->format))
			return i;
	}
	return -1;
}

static uint32_t get_uint32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The first walk: true if body is a DataRow of desc->ncols columns,
 * exactly. Plain index arithmetic rather than a pkt_reader: this runs
 * for every row, and every bound is checked before the read it guards.
 */
static bool check_row(const struct rowdesc *desc, const uint8_t *body, size_t len, const char **err)
{
	if (len < 2) {
		*err = "DataRow truncated";
		return false;
	}
	if ((body[0] << 8 | body[1]) != desc->ncols) {
		*err = "DataRow column count differs from its RowDescription";
		return false;
	}
	size_t pos = 2;
	for (int i = 0; i < desc->ncols; i++) {
		if (len - pos < 4) {
			*err = "DataRow truncated";
			return false;
		}
		int32_t vlen = (int32_t)get_uint32(body + pos);
		pos += 4;
		if (vlen < -1) {
			*err = "DataRow has a negative column length";
			return false;
		}
		if (vlen > 0 && (size_t)vlen > len - pos) {
			*err = "DataRow truncated";
			return false;
		}
		if (vlen > 0)
			pos += (size_t)vlen;
	}
	if (pos != len) {
		*err = "DataRow has bytes past its last column";
		return false;
	}
	return true;
}

static void patch_uint32(struct pktbuf *pb, size_t at, uint32_t v)
{
	uint8_t *p = pb->data + at;
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends one masked column: its length, then its value. */
static bool put_masked(const struct masker *m, const struct rowdesc_col *c, const uint8_t *v,
                       int32_t vlen, struct pktbuf *out, const char **err)
{
	size_t at = out->len;
	pktbuf_put_uint32(out, 0);
	switch (mask_apply(m, c->type_oid, c->format, v, vlen, out)) {
	case MASK_VALUE:
		/* bounded by max_row, checked by the caller before the row is sent */
		patch_uint32(out, at, (uint32_t)(out->len - at - 4));
		return true;
	case MASK_SQL_NULL:
		patch_uint32(out, at, UINT32_MAX); /* -1 */
		return true;
	case MASK_CANNOT:
		*err = "a column cannot be masked in its type and format";
		return false;
	case MASK_MALFORMED:
		*err = "a masked column's value is not a value of its type";
		return false;
	}
	return false;
}

bool rowmask_rewrite(const struct rowdesc *desc, const struct masker *const *maskers,
                     const uint8_t *body, size_t len, size_t max_row, struct pktbuf *out,
                     const char **err)
{
	/* Whatever the caller allows, the length field must hold it. */
	if (max_row > PROTO_MAX_MESSAGE)
		max_row = PROTO_MAX_MESSAGE;
	if (len > max_row) {
		*err = "row too large to mask";
		return false;
	}
	if (!check_row(desc, body, len, err))
		return false;

	size_t start = out->len, saved_msg_start = out->msg_start;
	bool saved_typed = out->msg_typed;
	size_t body_start = start + PROTO_HEADER_LEN;

	/*
	 * Columns sent as they are lie back to back with their lengths, so
	 * each run of them (the count included) is copied whole, when the
	 * next masked column or the end is reached.
	 */
	pktbuf_begin(out, 'D');
	size_t pos = 2, copied = 0;
	for (int i = 0; i < desc->ncols; i++) {
		size_t col = pos;
		int32_t vlen = (int32_t)get_uint32(body + pos);
		pos += 4;
		const uint8_t *v = body + pos;
		if (vlen > 0)
			pos += (size_t)vlen;
		if (!maskers[i])
			continue;
		pktbuf_put_bytes(out, body + copied, col - copied);
		copied = pos;
		if (!put_masked(maskers[i], &desc->cols[i], v, vlen, out, err))
			goto fail;
		/* Masking may grow a row: a fixed value, "***" for "". */
		if (out->len - body_start > max_row) {
			*err = "masked row too large";
			goto fail;
		}
	}
	pktbuf_put_bytes(out, body + copied, len - copied);
	if (out->len - body_start > max_row) {
		*err = "masked row too large";
		goto fail;
	}
	pktbuf_end(out);
	return true;
fail:
	out->len = start;
	out->msg_start = saved_msg_start;
	out->msg_typed = saved_typed;
	return false;
}
