/*
 * libFuzzer target for result masking (rowmask.c, mask.c, pgtype.c): a
 * RowDescription and a DataRow, both as a server could send them, and
 * every masker over the row's bytes. Besides "no crash, no read past the
 * input", it checks what masking promises: a rewritten row reads back
 * with the described columns, unmasked columns byte for byte; a refused
 * row leaves the output as it was; a column whose masker cannot mask it
 * never gets through with a value; partial's output is valid UTF-8
 * whatever it is given; mask_supports() agrees with mask_apply().
 *
 * Input: byte 0 picks the maskers, bytes 1-2 the RowDescription body's
 * length, then that body, then the DataRow body.
 */
#include "mask.h"
#include "pgtype.h"
#include "pktbuf.h"
#include "rowmask.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define NMASKERS 8 /* the last one is "no masker" */

static struct masker *maskers[NMASKERS];

static struct masker *make(struct mask_spec spec)
{
	const char *err = NULL;
	struct masker *m = mask_new(&spec, &err);
	REQUIRE(m != NULL);
	return m;
}

static void init(void)
{
	static const uint8_t key[] = "fuzzing key, 32 bytes long.....";
	maskers[0] = make((struct mask_spec){.kind = MASK_NULL});
	maskers[1] = make((struct mask_spec){.kind = MASK_REDACT});
	maskers[2] = make((struct mask_spec){.kind = MASK_EMAIL});
	maskers[3] =
	    make((struct mask_spec){.kind = MASK_PARTIAL, .keep_first = 1, .keep_last = 1});
	maskers[4] =
	    make((struct mask_spec){.kind = MASK_PARTIAL, .keep_first = 0, .keep_last = 3});
	maskers[5] = make((struct mask_spec){.kind = MASK_HASH, .key = key, .key_len = 32});
	maskers[6] = make((struct mask_spec){.kind = MASK_FIXED, .fixed = "0", .fixed_len = 1});
	maskers[7] = NULL;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A UTF-8 validator of this file's own, from the Unicode tables. */
static bool utf8_valid(const uint8_t *p, size_t n)
{
	static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
	size_t i = 0;
	while (i < n) {
		size_t len = p[i] < 0x80             ? 1
		             : (p[i] & 0xe0) == 0xc0 ? 2
		             : (p[i] & 0xf0) == 0xe0 ? 3
		             : (p[i] & 0xf8) == 0xf0 ? 4
		                                     : 0;
		if (len == 0 || n - i < len)
			return false;
		if (len == 1) {
			i++;
			continue;
		}
		uint32_t cp = p[i] & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Every masker over one value, as each type in each format. */
static void fuzz_value(const uint8_t *v, size_t n)
{
	static const uint32_t oids[] = {PGTYPE_TEXT,    PGTYPE_INT2,  PGTYPE_INT4,  PGTYPE_INT8,
	                                PGTYPE_UUID,    PGTYPE_JSONB, PGTYPE_BYTEA, PGTYPE_DATE,
	                                PGTYPE_NUMERIC, 869};
	struct pktbuf out;
	pktbuf_init(&out);
	for (int i = 0; i < NMASKERS - 1; i++) {
		for (size_t t = 0; t < sizeof(oids) / sizeof(oids[0]); t++) {
			for (int16_t fmt = 0; fmt <= 1; fmt++) {
				pktbuf_reset(&out);
				enum mask_result r =
				    mask_apply(maskers[i], oids[t], fmt, v, (int32_t)n, &out);
				REQUIRE(r == MASK_VALUE || out.len == 0);
				if (mask_supports(maskers[i], oids[t], fmt))
					REQUIRE(r != MASK_CANNOT);
				else
					REQUIRE(r == MASK_CANNOT);
				if ((i == 3 || i == 4) && oids[t] == PGTYPE_TEXT)
					REQUIRE(r == MASK_VALUE && utf8_valid(out.data, out.len));
			}
		}
	}
	pktbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!maskers[0])
		init();
	if (size < 3)
		return 0;
	uint8_t pick = data[0];
	size_t desc_len = (size_t)data[1] << 8 | data[2];
	if (desc_len > size - 3)
		return 0;
	const uint8_t *desc_body = data + 3, *row = data + 3 + desc_len;
	size_t row_len = size - 3 - desc_len;

	if (row_len <= 4096)
		fuzz_value(row, row_len);

	struct rowdesc d;
	const char *err = NULL;
	if (!rowmask_parse_desc(desc_body, desc_len, &d, &err)) {
		REQUIRE(err != NULL && d.cols == NULL && d.ncols == 0);
		return 0;
	}
	REQUIRE(d.ncols >= 0 && d.ncols <= INT16_MAX);
	for (int i = 0; i < d.ncols; i++) {
		const uint8_t *nm = (const uint8_t *)d.cols[i].name;
		REQUIRE(nm >= desc_body && nm < desc_body + desc_len);
		REQUIRE(nm + strlen(d.cols[i].name) < desc_body + desc_len);
		REQUIRE(d.cols[i].format == 0 || d.cols[i].format == 1);
	}

	const struct masker **plan = calloc((size_t)d.ncols + 1, sizeof(*plan));
	REQUIRE(plan != NULL);
	for (int i = 0; i < d.ncols; i++)
		plan[i] = maskers[(pick + i * (pick >> 4 | 1)) % NMASKERS];
	int unmaskable = rowmask_unmaskable(&d, plan);
	REQUIRE(unmaskable >= -1 && unmaskable < d.ncols);

	struct pktbuf out;
	pktbuf_init(&out);
	err = NULL;
	bool ok = rowmask_rewrite(&d, plan, row, row_len, 1u << 20, &out, &err);
	if (!ok) {
		REQUIRE(err != NULL && out.len == 0);
		goto done;
	}
	/* Read input and output side by side. */
	REQUIRE(out.len >= 7 && out.data[0] == 'D' && get32(out.data + 1) == out.len - 1);
	REQUIRE((out.data[5] << 8 | out.data[6]) == d.ncols && row_len >= 2);
	size_t ip = 2, op = 7;
	for (int i = 0; i < d.ncols; i++) {
		REQUIRE(row_len - ip >= 4 && out.len - op >= 4);
		int32_t ilen = (int32_t)get32(row + ip), olen = (int32_t)get32(out.data + op);
		ip += 4;
		op += 4;
		REQUIRE(ilen >= -1 && olen >= -1);
		if (ilen > 0) {
			REQUIRE((size_t)ilen <= row_len - ip);
		}
		if (olen > 0) {
			REQUIRE((size_t)olen <= out.len - op);
		}
		if (!plan[i]) {
			REQUIRE(ilen == olen);
			if (ilen > 0)
				REQUIRE(memcmp(row + ip, out.data + op, (size_t)ilen) == 0);
		} else {
			/* NULL stays NULL; null masks everything; a refused column has no value */
			if (ilen == -1 || plan[i] == maskers[0] || i == unmaskable)
				REQUIRE(olen == -1);
		}
		ip += ilen > 0 ? (size_t)ilen : 0;
		op += olen > 0 ? (size_t)olen : 0;
	}
	REQUIRE(ip == row_len && op == out.len);
done:
	pktbuf_free(&out);
	free(plan);
	rowmask_free_desc(&d);
	return 0;
}
