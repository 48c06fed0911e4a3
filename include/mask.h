/*
 * Built-in maskers (sieve.mask.* in DESIGN.md section 3): each turns one
 * column value, as the server sent it, into the value the client reads.
 * The result is always a valid value of the column's type in the column's
 * format, or NULL, so a client's driver parses a masked result like any
 * other; the clear value is never passed through.
 *
 * What each masker gives, by column type, in text format (text values
 * shown bare, json ones are JSON strings):
 *
 *   type                 redact  email       partial   hash               fixed(v)
 *   text varchar bpchar  ***     ***@domain  ab***yz   16 hex digits      v
 *     name
 *   int2 int4 int8       NULL    NULL        NULL      an integer of the  v if an integer
 *                                                      type's width       in range
 *   numeric              NULL    NULL        NULL      int8's integer     v if a number
 *   uuid                 NULL    NULL        NULL      a version-8 uuid   v if a uuid
 *   json jsonb           "***"   "***"       "***"     "<16 hex digits>"  v if JSON
 *   bytea                NULL    NULL        NULL      8 bytes            v if a bytea
 *   float4 float8 date   NULL    NULL        NULL      NULL               v if one (ISO
 *     timestamp[tz] bool                                                  dates, t/f)
 *   any other type       NULL    NULL        NULL      NULL               v as written
 *
 * null gives NULL everywhere. A NULL input stays NULL (SQL NULL is not a
 * secret). Why these:
 * - A marker is sent only where it is a valid value and cannot be taken
 *   for data; a number, date or uuid has no such value, so it gets NULL.
 * - email keeps what follows the last '@' (a quoted local part may hold
 *   '@'); no '@' at all is redacted; the local part is "***" whatever
 *   its length, "" included, so its length does not show.
 * - partial counts UTF-8 characters and shows keep_first of them, "***",
 *   then keep_last; the hidden run is always "***", so the length does
 *   not show either. A value with no character left to hide, or whose
 *   shown ends are not valid UTF-8, is "***". It assumes client_encoding
 *   UTF8 (or SQL_ASCII): in a multibyte encoding such as SJIS it could
 *   cut a character, so the caller should redact there instead.
 * - email and partial on a non-text column give what redact gives: a
 *   number or date has no domain or ends worth keeping.
 * - email and partial leave "" as "" (there is nothing to hide in it, as
 *   in NULL); redact and fixed replace it; hash hashes it.
 * - hash is HMAC-SHA256 with the masker's key over the value's canonical
 *   text (an int4 in binary is hashed as its decimal digits, a bytea as
 *   its bytes), so one value gives one pseudonym in either format and in
 *   every text-like type, and joins and counts still work. Integers take
 *   the first 2, 4 or 8 bytes of the MAC as a signed integer; numeric
 *   takes int8's, so int8 and numeric keys still join. A uuid takes 16
 *   bytes with the version (8, custom) and variant bits set. Floats,
 *   dates and booleans give NULL: as pseudonyms they would pass for data,
 *   and a boolean's two values cannot be hidden by renaming them. Text is
 *   hashed in the session's client_encoding, so pseudonyms of non-ASCII
 *   text match only between sessions with the same encoding.
 * - fixed sends v spelled as PostgreSQL would (an int "007" as "7", a
 *   uuid in lower case, a boolean "yes" as "t", a bytea in hex), or NULL
 *   when v is not a value of the type.
 * - Any other type (arrays, enums, inet, extension types) gets NULL from
 *   every masker but fixed, which sends v unchecked, as the policy's
 *   author wrote it for that column: the type's text form is unknown
 *   here, and a wrong one would break the driver. A caller that knows a
 *   type to be text-like (citext) may pass PGTYPE_TEXT for it. Domains
 *   arrive as their base type.
 *
 * function (a policy's own, a Lua function in the columns phase) gets the
 * value's text and gives a text, sent as fixed sends its value (checked
 * and spelled for the type, NULL when it is not one of it); in binary it
 * masks only the text-like types and json(b), whose binary form is their
 * text.
 *
 * Binary format: NULL works for every type. The text-like types, json
 * (same bytes as text), jsonb (a version byte, then text), int2/4/8
 * (network order), uuid (16 bytes) and bytea (raw) are encoded; a masker
 * that would give a value of any other type in binary cannot mask the
 * column, and the caller must not send it (deny the statement). Which
 * columns those are is known from the RowDescription alone, before any
 * row: see mask_supports().
 *
 * A masker is immutable once made, except for the HMAC context that
 * hash reuses per value: pgsieve runs one thread per process, and a
 * masker must not be used by two threads at once.
 */
#ifndef PGSIEVE_MASK_H
#define PGSIEVE_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgtype.h"
#include "pktbuf.h"
#include "util.h"

enum mask_kind {
	MASK_NULL,
	MASK_REDACT,
	MASK_EMAIL,
	MASK_PARTIAL,
	MASK_HASH,
	MASK_FIXED,
	MASK_FUNCTION,
};

/* What a text value is replaced with. */
#define MASK_REDACTED "***"
/* hash's text output: this many hex digits of the MAC (64 bits). */
#define MASK_HASH_HEX 16
/*
 * A hash key shorter than this is refused: values like emails and phone
 * numbers can be enumerated, and with a guessable key every pseudonym
 * could be turned back into its value.
 */
#define MASK_HASH_MIN_KEY 16

/*
 * MASK_FUNCTION's callback: the value's text (in_len bytes, not
 * NUL-terminated) in; MASK_VALUE with *out (out_len bytes, valid until
 * the next call) or MASK_SQL_NULL; MASK_CANNOT when it failed, and the
 * result must not be sent.
 */
typedef enum mask_result (*mask_fn)(void *ctx, const uint8_t *in, size_t in_len, const char **out,
                                    size_t *out_len);

/* A masker as a policy asks for it: the arguments of sieve.mask.*. */
struct mask_spec {
	enum mask_kind kind;
	uint32_t keep_first, keep_last; /* partial: characters shown at each end */
	const uint8_t *key;             /* hash: copied into OpenSSL, never logged */
	size_t key_len;
	const char *fixed; /* fixed: the value's text, copied */
	size_t fixed_len;
	mask_fn fn; /* function: called per value with ctx */
	void *ctx;
};

struct masker;

/* A masker, or NULL and *err says why (a short key, a NUL in the value). */
struct masker *mask_new(const struct mask_spec *spec, const char **err) MUST_CHECK;
/* Wipes the key. */
void mask_free(struct masker *m);

enum mask_result {
	MASK_VALUE,     /* the masked value was appended to out */
	MASK_SQL_NULL,  /* the masked value is NULL; nothing appended */
	MASK_CANNOT,    /* no valid value of this type in this format: do not send it */
	MASK_MALFORMED, /* the input is not a value of its type (a 3-byte binary int4) */
};

/*
 * Whether mask_apply gives a value or NULL, never MASK_CANNOT, for
 * well-formed values of this type in this format (format 0 text, 1
 * binary, anything else cannot be masked).
 */
bool mask_supports(const struct masker *m, uint32_t type_oid, int16_t format);

/*
 * Masks one value: in_len bytes at in, or SQL NULL when in_len is -1 (a
 * DataRow's encoding). Appends the result to out, which the caller
 * reuses from value to value so that masking allocates nothing once out
 * has grown. On anything but MASK_VALUE out is as it was.
 */
enum mask_result mask_apply(const struct masker *m, uint32_t type_oid, int16_t format,
                            const uint8_t *in, int32_t in_len, struct pktbuf *out) MUST_CHECK;

#endif
