/*
 * PostgreSQL data types as a client reads them: the OIDs of the built-in
 * types whose wire forms pgsieve knows, and checks of their text forms.
 * The masking module uses these to tell whether a value it is about to
 * send in place of a column's would still parse as the column's type in
 * the client's driver, and to turn a value into one canonical spelling so
 * that the text and binary forms of one value hash alike.
 *
 * A text form is accepted when PostgreSQL could have sent it: ISO dates
 * (DateStyle ISO, the default), 't'/'f' booleans, decimal numbers without
 * '+' or spaces. Anything else is refused, which the caller turns into
 * NULL: an odd spelling may be valid SQL input yet break a driver.
 * Strings are byte ranges, not NUL-terminated.
 */
#ifndef PGSIEVE_PGTYPE_H
#define PGSIEVE_PGTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pktbuf.h"
#include "util.h"

/* pg_type OIDs, fixed across PostgreSQL versions (pg_type.dat). */
enum pgtype_oid {
	PGTYPE_BOOL = 16,
	PGTYPE_BYTEA = 17,
	PGTYPE_NAME = 19,
	PGTYPE_INT8 = 20,
	PGTYPE_INT2 = 21,
	PGTYPE_INT4 = 23,
	PGTYPE_TEXT = 25,
	PGTYPE_JSON = 114,
	PGTYPE_FLOAT4 = 700,
	PGTYPE_FLOAT8 = 701,
	PGTYPE_BPCHAR = 1042,
	PGTYPE_VARCHAR = 1043,
	PGTYPE_DATE = 1082,
	PGTYPE_TIMESTAMP = 1114,
	PGTYPE_TIMESTAMPTZ = 1184,
	PGTYPE_NUMERIC = 1700,
	PGTYPE_UUID = 2950,
	PGTYPE_JSONB = 3802,
};

/* The SQL name of one of the types above ("int4", "text"...), or NULL. */
const char *pgtype_name(uint32_t oid);

/* Format codes of RowDescription, Bind and CopyResponse. */
#define PGTYPE_FORMAT_TEXT   0
#define PGTYPE_FORMAT_BINARY 1

/* 8-4-4-4-12 hex digits, without the NUL. */
#define PGTYPE_UUID_TEXT_LEN 36
/* The version byte in front of jsonb's binary form. */
#define PGTYPE_JSONB_VERSION 1

/* An integer "-?[0-9]+" within [min, max]. */
bool pgtype_parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *v) MUST_CHECK;
/* numeric: "-?[0-9]+(.[0-9]+)?", NaN, Infinity, -Infinity. */
bool pgtype_is_numeric(const char *s, size_t n);
/* float4 (single) or float8: a decimal with an optional exponent, within
 * the type's range, or NaN, Infinity, -Infinity. */
bool pgtype_is_float(const char *s, size_t n, bool single);
/* date: "YYYY-MM-DD[ BC]" naming a real day, infinity, -infinity. */
bool pgtype_is_date(const char *s, size_t n);
/* timestamp: a date, " HH:MM:SS[.ffffff]", with_tz an offset "+HH[:MM[:SS]]", then " BC". */
bool pgtype_is_timestamp(const char *s, size_t n, bool with_tz);
/* 32 hex digits, either case, hyphenated 8-4-4-4-12 or not, optionally in braces. */
bool pgtype_parse_uuid(const char *s, size_t n, uint8_t u[16]) MUST_CHECK;
/* The canonical lower-case spelling, NUL-terminated. */
void pgtype_format_uuid(const uint8_t u[16], char out[PGTYPE_UUID_TEXT_LEN + 1]);
/* t, f, and what boolin also takes (true, yes, on, 1, ...; any case). */
bool pgtype_parse_bool(const char *s, size_t n, bool *v) MUST_CHECK;
/* A JSON text (any value at top level) that jansson parses. */
bool pgtype_is_json(const char *s, size_t n);
/*
 * Appends the bytes a bytea text form stands for: hex ("\x0a1b") or
 * escape format ("a\\b\001"). False on anything else; out may then hold
 * part of the bytes, past its length on entry.
 */
bool pgtype_decode_bytea(const char *s, size_t n, struct pktbuf *out) MUST_CHECK;

#endif
