/*
 * Masking result rows on the server-to-client stream: a RowDescription
 * read into its columns (from which the caller builds a mask plan: one
 * masker or none per column), then each DataRow rebuilt with the masked
 * columns' values replaced and every length recomputed.
 *
 * Both messages come from the server, yet are read as strictly as a
 * client's: counts, lengths and the end of the body must agree exactly,
 * and anything else is refused before a byte is written, so that a
 * confused or hostile server cannot make the pooler read out of bounds
 * or send a row in which a masked column's clear value slips through as
 * part of a neighbour. A refused row means the caller ends the query.
 */
#ifndef PGSIEVE_ROWMASK_H
#define PGSIEVE_ROWMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mask.h"
#include "pktbuf.h"
#include "util.h"

/* One RowDescription field. */
struct rowdesc_col {
	const char *name;   /* points into the message body */
	uint32_t table_oid; /* 0 when the column is not a table's */
	int16_t attnum;     /* the table's attribute number, or 0 */
	uint32_t type_oid;  /* domains arrive as their base type */
	int16_t typlen;
	int32_t typmod;
	int16_t format; /* PGTYPE_FORMAT_TEXT or _BINARY */
};

struct rowdesc {
	int ncols;
	struct rowdesc_col *cols;
};

/*
 * Parses a RowDescription body (after the type and length). On false,
 * *err says why and desc holds nothing. Names point into body, which
 * must outlive desc.
 */
bool rowmask_parse_desc(const uint8_t *body, size_t len, struct rowdesc *desc,
                        const char **err) MUST_CHECK;
void rowmask_free_desc(struct rowdesc *desc);

/*
 * The first column whose masker cannot mask its type in its format (see
 * mask_supports), or -1. maskers has desc->ncols entries, NULL for a
 * column sent as it is. Checked once per RowDescription, so the statement
 * is refused before any row is sent.
 */
int rowmask_unmaskable(const struct rowdesc *desc, const struct masker *const *maskers);

/*
 * Appends to out the DataRow with body (after the type and length),
 * whole: type byte, length, column count, and each column's length and
 * value, masked where maskers has a masker. max_row bounds the body read
 * and the body written. On false, *err says why and out is as it was.
 */
bool rowmask_rewrite(const struct rowdesc *desc, const struct masker *const *maskers,
                     const uint8_t *body, size_t len, size_t max_row, struct pktbuf *out,
                     const char **err) MUST_CHECK;

#endif
