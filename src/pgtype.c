/*
 * Text forms of PostgreSQL types (see include/pgtype.h). Each check reads
 * a grammar by hand rather than through strtol and friends, which skip
 * spaces, take '+', hex and locale-dependent forms that PostgreSQL never
 * sends; libc is called only where a range is easier to get right there
 * (floats), on a bounded copy.
 */
#include "pgtype.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longer float texts than this are refused: PostgreSQL's are under 30 bytes. */
#define FLOAT_TEXT_MAX 64
/* Years as PostgreSQL's date and timestamp types bound them. */
#define DATE_MAX_YEAR      5874897
#define TIMESTAMP_MAX_YEAR 294276
#define MAX_BC_YEAR        4713

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool same(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

bool pgtype_parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *v)
{
	size_t i = 0;
	bool neg = n > 0 && s[0] == '-';
	if (neg)
		i++;
	if (i == n)
		return false;
	/* The magnitude of INT64_MIN fits in a uint64_t; anything past it stops early. */
	uint64_t mag = 0;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		if (mag > (UINT64_MAX - 9) / 10)
			return false;
		mag = mag * 10 + (uint64_t)(s[i] - '0');
	}
	int64_t val;
	if (neg) {
		if (mag > (uint64_t)INT64_MAX + 1)
			return false;
		val = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		if (mag > (uint64_t)INT64_MAX)
			return false;
		val = (int64_t)mag;
	}
	if (val < min || val > max)
		return false;
	*v = val;
	return true;
}

/* Digits from *i; how many were read. */
static size_t digits(const char *s, size_t n, size_t *i)
{
	size_t start = *i;
	while (*i < n && is_digit(s[*i]))
		(*i)++;
	return *i - start;
}

/* NaN, Infinity and -Infinity, which numeric and the floats both read. */
static bool special_number(const char *s, size_t n)
{
	return same(s, n, "NaN") || same(s, n, "Infinity") || same(s, n, "-Infinity");
}

/* [-]digits[.digits] from the start: where it ends, or 0 if s does not begin so. */
static size_t decimal_prefix(const char *s, size_t n)
{
	size_t i = n > 0 && s[0] == '-' ? 1 : 0;
	if (digits(s, n, &i) == 0)
		return 0;
	if (i < n && s[i] == '.') {
		i++;
		if (digits(s, n, &i) == 0)
			return 0;
	}
	return i;
}

bool pgtype_is_numeric(const char *s, size_t n)
{
	return special_number(s, n) || (n > 0 && decimal_prefix(s, n) == n);
}

bool pgtype_is_float(const char *s, size_t n, bool single)
{
	if (special_number(s, n))
		return true;
	size_t i = decimal_prefix(s, n);
	if (i == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (digits(s, n, &i) == 0)
			return false;
	}
	if (i != n || n > FLOAT_TEXT_MAX)
		return false;
	/* The grammar is C's too; the range is the type's. */
	char buf[FLOAT_TEXT_MAX + 1];
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	if (single)
		(void)strtof(buf, NULL);
	else
		(void)strtod(buf, NULL);
	return errno != ERANGE;
}

/* A fixed number of digits from *i as an integer, or -1. */
static long fixed_digits(const char *s, size_t n, size_t *i, size_t count)
{
	long v = 0;
	for (size_t k = 0; k < count; k++, (*i)++) {
		if (*i >= n || !is_digit(s[*i]))
			return -1;
		v = v * 10 + (s[*i] - '0');
	}
	return v;
}

static bool is_leap(long year)
{
	return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

/* "YYYY-MM-DD" at *i, 4 to 7 year digits; *year as written (BC not applied yet). */
static bool read_date(const char *s, size_t n, size_t *i, long *year, int *month, int *day)
{
	size_t start = *i;
	size_t nd = digits(s, n, i);
	if (nd < 4 || nd > 7)
		return false;
	long y = 0;
	for (size_t k = start; k < *i; k++)
		y = y * 10 + (s[k] - '0');
	if (*i >= n || s[(*i)++] != '-')
		return false;
	long m = fixed_digits(s, n, i, 2);
	if (m < 1 || m > 12 || *i >= n || s[(*i)++] != '-')
		return false;
	long d = fixed_digits(s, n, i, 2);
	if (y < 1 || d < 1)
		return false;
	*year = y;
	*month = (int)m;
	*day = (int)d;
	return true;
}

static bool valid_day(long year, bool bc, int month, int day, long max_year)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (bc ? year > MAX_BC_YEAR : year > max_year)
		return false;
	/* 1 BC is the astronomers' year 0, a leap year. */
	long astro = bc ? 1 - year : year;
	int last = mdays[month - 1] + (month == 2 && is_leap(astro) ? 1 : 0);
	return day <= last;
}

static bool ends_bc(const char *s, size_t *n)
{
	if (*n >= 3 && memcmp(s + *n - 3, " BC", 3) == 0) {
		*n -= 3;
		return true;
	}
	return false;
}

bool pgtype_is_date(const char *s, size_t n)
{
	if (same(s, n, "infinity") || same(s, n, "-infinity"))
		return true;
	bool bc = ends_bc(s, &n);
	size_t i = 0;
	long year;
	int month, day;
	return read_date(s, n, &i, &year, &month, &day) && i == n &&
	       valid_day(year, bc, month, day, DATE_MAX_YEAR);
}

/* ":MM" or ":SS" at *i: a colon and 00-59. */
static bool colon_sixty(const char *s, size_t n, size_t *i)
{
	if (*i >= n || s[*i] != ':')
		return false;
	(*i)++;
	long v = fixed_digits(s, n, i, 2);
	return v >= 0 && v <= 59;
}

bool pgtype_is_timestamp(const char *s, size_t n, bool with_tz)
{
	if (same(s, n, "infinity") || same(s, n, "-infinity"))
		return true;
	bool bc = ends_bc(s, &n);
	size_t i = 0;
	long year;
	int month, day;
	if (!read_date(s, n, &i, &year, &month, &day) ||
	    !valid_day(year, bc, month, day, TIMESTAMP_MAX_YEAR))
		return false;
	if (i >= n || s[i++] != ' ')
		return false;
	long hour = fixed_digits(s, n, &i, 2);
	if (hour < 0 || hour > 23 || !colon_sixty(s, n, &i) || !colon_sixty(s, n, &i))
		return false;
	if (i < n && s[i] == '.') {
		i++;
		size_t nd = digits(s, n, &i);
		if (nd < 1 || nd > 6)
			return false;
	}
	if (with_tz) {
		/* Offsets reach 15:59:59 either way; minutes and seconds only when not zero. */
		if (i >= n || (s[i] != '+' && s[i] != '-'))
			return false;
		i++;
		long oh = fixed_digits(s, n, &i, 2);
		if (oh < 0 || oh > 15)
			return false;
		if (i < n && s[i] == ':') {
			if (!colon_sixty(s, n, &i))
				return false;
			if (i < n && s[i] == ':' && !colon_sixty(s, n, &i))
				return false;
		}
	}
	return i == n;
}

bool pgtype_parse_uuid(const char *s, size_t n, uint8_t u[16])
{
	if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
		s++;
		n -= 2;
	}
	bool hyphens = n == PGTYPE_UUID_TEXT_LEN;
	if (!hyphens && n != 32)
		return false;
	size_t i = 0;
	for (int b = 0; b < 16; b++) {
		if (hyphens && (b == 4 || b == 6 || b == 8 || b == 10) && s[i++] != '-')
			return false;
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		u[b] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return true;
}

void pgtype_format_uuid(const uint8_t u[16], char out[PGTYPE_UUID_TEXT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (int b = 0; b < 16; b++) {
		if (b == 4 || b == 6 || b == 8 || b == 10)
			*p++ = '-';
		*p++ = hex[u[b] >> 4];
		*p++ = hex[u[b] & 15];
	}
	*p = '\0';
}

bool pgtype_parse_bool(const char *s, size_t n, bool *v)
{
	static const char *const yes[] = {"t", "true", "y", "yes", "on", "1"};
	static const char *const no[] = {"f", "false", "n", "no", "off", "0"};
	for (size_t k = 0; k < ARRAY_SIZE(yes); k++) {
		if (n == strlen(yes[k]) && strncasecmp(s, yes[k], n) == 0) {
			*v = true;
			return true;
		}
		if (n == strlen(no[k]) && strncasecmp(s, no[k], n) == 0) {
			*v = false;
			return true;
		}
	}
	return false;
}

bool pgtype_is_json(const char *s, size_t n)
{
	/* Integers as reals: jansson refuses integers past 64 bits, PostgreSQL does not. */
	json_t *doc = json_loadb(s, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
	json_decref(doc);
	return doc != NULL;
}

/* Decoding goes through a small buffer: one pktbuf call per byte would cost more than the decoding.
 */
#define BYTEA_CHUNK 4096

bool pgtype_decode_bytea(const char *s, size_t n, struct pktbuf *out)
{
	uint8_t chunk[BYTEA_CHUNK];
	size_t used = 0;
	bool hex = n >= 2 && s[0] == '\\' && s[1] == 'x';
	size_t i = hex ? 2 : 0;
	if (hex && (n - i) % 2 != 0)
		return false;
	while (i < n) {
		if (used == sizeof(chunk)) {
			pktbuf_put_bytes(out, chunk, used);
			used = 0;
		}
		if (hex) {
			int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
			if (hi < 0 || lo < 0)
				return false;
			chunk[used++] = (uint8_t)(hi << 4 | lo);
			i += 2;
		} else if (s[i] != '\\') {
			chunk[used++] = (uint8_t)s[i++];
		} else if (i + 1 < n && s[i + 1] == '\\') {
			chunk[used++] = '\\';
			i += 2;
		} else {
			/* \ooo, the first digit 0-3 so that it fits a byte */
			if (n - i < 4 || s[i + 1] < '0' || s[i + 1] > '3' || s[i + 2] < '0' ||
			    s[i + 2] > '7' || s[i + 3] < '0' || s[i + 3] > '7')
				return false;
			chunk[used++] = (uint8_t)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 |
			                          (s[i + 3] - '0'));
			i += 4;
		}
	}
	pktbuf_put_bytes(out, chunk, used);
	return true;
}

const char *pgtype_name(uint32_t oid)
{
	static const struct {
		uint32_t oid;
		const char *name;
	} names[] = {
	    {PGTYPE_BOOL, "bool"},
	    {PGTYPE_BYTEA, "bytea"},
	    {PGTYPE_NAME, "name"},
	    {PGTYPE_INT8, "int8"},
	    {PGTYPE_INT2, "int2"},
	    {PGTYPE_INT4, "int4"},
	    {PGTYPE_TEXT, "text"},
	    {PGTYPE_JSON, "json"},
	    {PGTYPE_FLOAT4, "float4"},
	    {PGTYPE_FLOAT8, "float8"},
	    {PGTYPE_BPCHAR, "bpchar"},
	    {PGTYPE_VARCHAR, "varchar"},
	    {PGTYPE_DATE, "date"},
	    {PGTYPE_TIMESTAMP, "timestamp"},
	    {PGTYPE_TIMESTAMPTZ, "timestamptz"},
	    {PGTYPE_NUMERIC, "numeric"},
	    {PGTYPE_UUID, "uuid"},
	    {PGTYPE_JSONB, "jsonb"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].oid == oid)
			return names[i].name;
	return NULL;
}
