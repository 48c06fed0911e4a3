/*
 * libFuzzer target for statement analysis (sqlinfo.c). Any bytes: the
 * analysis must hold its invariants (a NUL byte is refused, an error
 * reports no statement, statement texts are slices of the text, indexes
 * stay in bounds). Then the cache: after the input, texts made from it by
 * changing its literals as a client would (other digits, other string
 * contents) must get, through the cache, what a fresh analysis gives them,
 * field by field, whether or not the cache answers them from the input's
 * normalized entry. An input with a 0xff byte is also taken as two texts,
 * the second analysed through a cache that saw the first.
 */
#include "sqlinfo.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_sqlinfo: %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_invariants(const struct sqlinfo *info, const char *sql, size_t len)
{
	REQUIRE(info->text && info->text[info->len] == '\0');
	if (len <= SQLINFO_MAX_SQL)
		REQUIRE(info->len == len && memcmp(info->text, sql, len) == 0);
	if (memchr(sql, '\0', len) && len <= SQLINFO_MAX_SQL)
		REQUIRE(info->error == SQLINFO_ERR_INVALID);
	if (info->error != SQLINFO_OK) {
		REQUIRE(info->n_stmts == 0 && info->stmts == NULL);
		REQUIRE(info->error_message && info->error_sqlstate);
		return;
	}
	REQUIRE(!info->error_message && !info->error_sqlstate);
	REQUIRE(info->multi == (info->n_stmts > 1));
	REQUIRE((info->n_stmts == 0) == (info->stmts == NULL));
	size_t end = 0;
	for (size_t i = 0; i < info->n_stmts; i++) {
		const struct sqlinfo_stmt *st = &info->stmts[i];
		REQUIRE(st->sql && strlen(st->sql) == st->sql_len);
		REQUIRE(st->offset >= end && st->offset <= info->len &&
		        st->sql_len <= info->len - st->offset);
		REQUIRE(memcmp(info->text + st->offset, st->sql, st->sql_len) == 0);
		REQUIRE(info->multi || (st->sql == info->text && st->sql_len == info->len));
		end = st->offset + st->sql_len;
		REQUIRE(st->multi == info->multi);
		REQUIRE((unsigned)st->kind <= SQLINFO_UTILITY && st->command);
		REQUIRE(!st->fingerprint || strlen(st->fingerprint) == 16);
		REQUIRE(!st->explain_analyze || st->explain);
		REQUIRE(!st->has_where || st->kind == SQLINFO_UPDATE || st->kind == SQLINFO_DELETE);
		REQUIRE((st->n_tables == 0) == (st->tables == NULL));
		bool writes = false;
		for (size_t k = 0; k < st->n_tables; k++) {
			REQUIRE(st->tables[k].name);
			REQUIRE(st->tables[k].access == SQLINFO_READ ||
			        st->tables[k].access == SQLINFO_WRITE);
			writes |= st->tables[k].access == SQLINFO_WRITE;
		}
		REQUIRE(st->writes == writes);
		REQUIRE((st->n_columns == 0) == (st->columns == NULL));
		for (size_t k = 0; k < st->n_columns; k++) {
			const struct sqlinfo_column *c = &st->columns[k];
			REQUIRE(c->name && (!c->schema || c->table));
			REQUIRE(c->table_index == -1 ||
			        (c->table_index >= 0 && (size_t)c->table_index < st->n_tables));
		}
		REQUIRE((st->n_functions == 0) == (st->functions == NULL));
		for (size_t k = 0; k < st->n_functions; k++) {
			const struct sqlinfo_function *f = &st->functions[k];
			size_t nl = strlen(f->name), ql = strlen(f->qualified);
			REQUIRE(ql >= nl && strcmp(f->qualified + ql - nl, f->name) == 0);
		}
	}
}

/* Aborts with the first difference between a cached and a fresh analysis. */
static void require_same(const struct sqlinfo *got, const struct sqlinfo *want)
{
	REQUIRE(got->len == want->len && memcmp(got->text, want->text, got->len) == 0);
	REQUIRE(got->error == want->error);
	REQUIRE(same_str(got->error_message, want->error_message));
	REQUIRE(got->error_position == want->error_position);
	REQUIRE(same_str(got->error_sqlstate, want->error_sqlstate));
	REQUIRE(got->multi == want->multi && got->n_stmts == want->n_stmts);
	for (size_t i = 0; i < got->n_stmts; i++) {
		const struct sqlinfo_stmt *g = &got->stmts[i], *w = &want->stmts[i];
		REQUIRE(g->sql_len == w->sql_len && strcmp(g->sql, w->sql) == 0);
		REQUIRE(g->offset == w->offset);
		REQUIRE(g->kind == w->kind && same_str(g->command, w->command));
		REQUIRE(same_str(g->setting, w->setting));
		REQUIRE(same_str(g->fingerprint, w->fingerprint));
		REQUIRE(g->n_tables == w->n_tables);
		for (size_t k = 0; k < g->n_tables; k++)
			REQUIRE(same_str(g->tables[k].schema, w->tables[k].schema) &&
			        same_str(g->tables[k].name, w->tables[k].name) &&
			        g->tables[k].access == w->tables[k].access);
		REQUIRE(g->n_columns == w->n_columns);
		for (size_t k = 0; k < g->n_columns; k++)
			REQUIRE(same_str(g->columns[k].schema, w->columns[k].schema) &&
			        same_str(g->columns[k].table, w->columns[k].table) &&
			        same_str(g->columns[k].name, w->columns[k].name) &&
			        g->columns[k].table_index == w->columns[k].table_index &&
			        g->columns[k].access == w->columns[k].access);
		REQUIRE(g->n_functions == w->n_functions);
		for (size_t k = 0; k < g->n_functions; k++)
			REQUIRE(same_str(g->functions[k].schema, w->functions[k].schema) &&
			        same_str(g->functions[k].name, w->functions[k].name) &&
			        same_str(g->functions[k].qualified, w->functions[k].qualified));
		REQUIRE(g->multi == w->multi && g->has_where == w->has_where &&
		        g->unfiltered_write == w->unfiltered_write && g->writes == w->writes &&
		        g->opaque == w->opaque && g->explain == w->explain &&
		        g->explain_analyze == w->explain_analyze && g->row_locks == w->row_locks &&
		        g->copy_program == w->copy_program && g->copy_file == w->copy_file);
	}
}

/*
 * Writes into out what a client sending the same statement with other
 * values would: every run of digits replaced by another number (of
 * another length), the bytes between quotes by other letters, as many or
 * more. Blind to comments, identifiers and dollar quotes on purpose: those
 * texts must simply not be answered from the input's entry. Returns the
 * length written, at most 10 * len.
 */
static size_t change_literals(const char *in, size_t len, int variant, char *out)
{
	static const char *const numbers[] = {"7", "2147483647", "2147483648", "0", "123456"};
	size_t o = 0;
	bool quoted = false;
	for (size_t i = 0; i < len;) {
		char c = in[i];
		if (!quoted && c >= '0' && c <= '9') {
			size_t from = i;
			while (i < len && in[i] >= '0' && in[i] <= '9')
				i++;
			const char *n = numbers[(variant + from) % 5];
			if (strlen(n) == i - from && memcmp(n, in + from, i - from) == 0)
				n = "42";
			memcpy(out + o, n, strlen(n));
			o += strlen(n);
			continue;
		}
		out[o++] = c;
		i++;
		if (c == '\'') {
			quoted = !quoted;
			if (quoted && variant == 2) /* longer */
				out[o++] = 'z';
			continue;
		}
		if (quoted && ((c >= 'a' && c <= 'y') || (c >= 'A' && c <= 'Y')))
			out[o - 1] = (char)(c + 1);
		else if (quoted && c >= '0' && c <= '9')
			out[o - 1] = (char)('0' + (c - '0' + variant) % 10);
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *sql = (const char *)data;
	struct sqlinfo *fresh = sqlinfo_analyse(sql, size);
	check_invariants(fresh, sql, size);

	struct sqlinfo_cache *cache = sqlinfo_cache_new(8);
	struct sqlinfo *cached = sqlinfo_cache_analyse(cache, sql, size);
	require_same(cached, fresh);
	sqlinfo_free(cached);
	sqlinfo_free(fresh);

	/* Two texts split at a 0xff byte: the second through a cache that saw
	 * the first, so that the fuzzer can look for two texts that share a
	 * key but not a structure. */
	const char *sep = memchr(sql, 0xff, size);
	if (sep) {
		size_t n = size - (size_t)(sep - sql) - 1;
		struct sqlinfo_cache *pair = sqlinfo_cache_new(8);
		sqlinfo_free(sqlinfo_cache_analyse(pair, sql, (size_t)(sep - sql)));
		struct sqlinfo *got = sqlinfo_cache_analyse(pair, sep + 1, n);
		struct sqlinfo *want = sqlinfo_analyse(sep + 1, n);
		check_invariants(got, sep + 1, n);
		require_same(got, want);
		sqlinfo_free(got);
		sqlinfo_free(want);
		sqlinfo_cache_free(pair);
	}

	char *variant = malloc(10 * size + 1);
	for (int v = 1; v <= 3; v++) {
		size_t n = change_literals(sql, size, v, variant);
		struct sqlinfo *got = sqlinfo_cache_analyse(cache, variant, n);
		struct sqlinfo *want = sqlinfo_analyse(variant, n);
		check_invariants(got, variant, n);
		require_same(got, want);
		sqlinfo_free(got);
		sqlinfo_free(want);
	}
	free(variant);
	sqlinfo_cache_free(cache);
	return 0;
}
