/*
 * auth_file loading. Lines are read byte by byte into a fixed buffer so a
 * line can never grow without bound and a NUL byte is noticed rather than
 * silently cutting a secret short. Parsing builds the whole table first;
 * the caller only ever sees a complete file or an error naming the line.
 *
 * Storage is one sorted array: loads are rare and lookups are per login,
 * so bsearch over a compact array is both simple and fast enough for the
 * tens of thousands of users a large installation might list.
 */
#include "authfile.h"
#include "md5.h"
#include "scram.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct authfile_entry {
	char *user;
	char *secret;
	size_t line; /* for "last one wins" among duplicates */
};

struct authfile {
	struct authfile_entry *entries;
	size_t count;
};

enum line_result {
	LINE_SKIP,
	LINE_ENTRY,
	LINE_ERROR,
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Reads a quoted field starting at the opening quote; *p ends past the
 * closing quote. The result is malloc'd.
 */
static bool read_quoted(const char **p, const char *end, char **out)
{
	const char *s = *p + 1;
	char *buf = xmalloc((size_t)(end - s) + 1);
	size_t n = 0;
	while (s < end) {
		if (*s == '"') {
			if (s + 1 < end && s[1] == '"') {
				buf[n++] = '"';
				s += 2;
				continue;
			}
			buf[n] = '\0';
			*p = s + 1;
			*out = buf;
			return true;
		}
		buf[n++] = *s++;
	}
	OPENSSL_cleanse(buf, n);
	free(buf);
	return false;
}

static enum line_result parse_line(const char *line, size_t len, char **user, char **secret,
                                   const char **why)
{
	const char *p = line, *end = line + len;
	*user = *secret = NULL;
	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p == ';' || *p == '#')
		return LINE_SKIP;
	if (*p != '"') {
		*why = "expected a double-quoted user name";
		return LINE_ERROR;
	}
	if (!read_quoted(&p, end, user)) {
		*why = "unterminated quoted user name";
		return LINE_ERROR;
	}
	if (p == end || !is_blank(*p)) {
		*why = p == end ? "missing password field" : "expected a space after the user name";
		goto fail;
	}
	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p != '"') {
		*why = p == end ? "missing password field" : "expected a double-quoted password";
		goto fail;
	}
	if (!read_quoted(&p, end, secret)) {
		*why = "unterminated quoted password";
		goto fail;
	}
	if (p != end && !is_blank(*p)) {
		*why = "expected a space after the password";
		goto fail;
	}
	return LINE_ENTRY; /* anything further is ignored, as in PgBouncer */
fail:
	free(*user);
	*user = NULL;
	if (*secret) {
		OPENSSL_cleanse(*secret, strlen(*secret));
		free(*secret);
		*secret = NULL;
	}
	return LINE_ERROR;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct authfile_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static void free_entry(struct authfile_entry *e)
{
	free(e->user);
	if (e->secret) {
		OPENSSL_cleanse(e->secret, strlen(e->secret));
		free(e->secret);
	}
}

void authfile_free(struct authfile *af)
{
	if (!af)
		return;
	for (size_t i = 0; i < af->count; i++)
		free_entry(&af->entries[i]);
	free(af->entries);
	free(af);
}

/* Sorts by user, keeping only the last line for each. */
static void sort_and_dedup(struct authfile *af)
{
	if (af->count < 2)
		return;
	qsort(af->entries, af->count, sizeof(af->entries[0]), entry_cmp);
	size_t o = 0;
	for (size_t i = 0; i < af->count; i++) {
		if (i + 1 < af->count &&
		    strcmp(af->entries[i].user, af->entries[i + 1].user) == 0) {
			free_entry(&af->entries[i]); /* a later line for the same user follows */
			continue;
		}
		af->entries[o++] = af->entries[i];
	}
	af->count = o;
}

struct authfile *authfile_load(const char *path, char **err)
{
	*err = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("could not open auth_file \"%s\": %s", path, strerror(errno));
		return NULL;
	}

	struct authfile *af = xcalloc(1, sizeof(*af));
	size_t cap = 0;
	char *line = xmalloc(AUTHFILE_MAX_LINE + 1);
	size_t lineno = 0;
	bool at_eof = false;

	while (!at_eof) {
		size_t len = 0;
		int ch;
		lineno++;
		while ((ch = getc(f)) != EOF && ch != '\n') {
			if (ch == '\0') {
				*err = xasprintf("auth_file \"%s\" line %zu: NUL byte in line",
				                 path, lineno);
				goto fail;
			}
			if (len == AUTHFILE_MAX_LINE) {
				*err = xasprintf("auth_file \"%s\" line %zu: line longer than %d "
				                 "bytes",
				                 path, lineno, AUTHFILE_MAX_LINE);
				goto fail;
			}
			line[len++] = (char)ch;
		}
		if (ch == EOF) {
			if (ferror(f)) {
				*err = xasprintf("could not read auth_file \"%s\": %s", path,
				                 strerror(errno));
				goto fail;
			}
			at_eof = true;
		}
		line[len] = '\0';

		char *user, *secret;
		const char *why = NULL;
		enum line_result r = parse_line(line, len, &user, &secret, &why);
		if (r == LINE_ERROR) {
			*err = xasprintf("auth_file \"%s\" line %zu: %s", path, lineno, why);
			goto fail;
		}
		if (r == LINE_SKIP)
			continue;
		if (af->count == cap) {
			cap = cap ? cap * 2 : 64;
			af->entries = xrealloc(af->entries, cap * sizeof(af->entries[0]));
		}
		af->entries[af->count].user = user;
		af->entries[af->count].secret = secret;
		af->entries[af->count].line = lineno;
		af->count++;
	}
	OPENSSL_cleanse(line, AUTHFILE_MAX_LINE + 1);
	free(line);
	fclose(f);
	sort_and_dedup(af);
	return af;

fail:
	OPENSSL_cleanse(line, AUTHFILE_MAX_LINE + 1);
	free(line);
	fclose(f);
	authfile_free(af);
	return NULL;
}

static int key_cmp(const void *key, const void *elem)
{
	const struct authfile_entry *e = elem;
	return strcmp(key, e->user);
}

const char *authfile_lookup(const struct authfile *af, const char *user)
{
	if (!af || !user || af->count == 0)
		return NULL;
	const struct authfile_entry *e =
	    bsearch(user, af->entries, af->count, sizeof(af->entries[0]), key_cmp);
	return e ? e->secret : NULL;
}

size_t authfile_count(const struct authfile *af)
{
	return af ? af->count : 0;
}

enum secret_kind secret_kind_of(const char *secret)
{
	struct scram_secret s;
	if (!secret || secret[0] == '\0')
		return SECRET_PLAIN;
	if (md5_is_hash(secret))
		return SECRET_MD5;
	bool scram = scram_parse_secret(secret, &s);
	OPENSSL_cleanse(&s, sizeof(s));
	return scram ? SECRET_SCRAM : SECRET_PLAIN;
}
