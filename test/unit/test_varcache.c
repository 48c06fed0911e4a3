/*
 * varcache.c and params.c: which names are tracked, when a value counts
 * as changed, the exact set_config() text a server receives before a client is
 * linked to it, and the exact ParameterStatus bytes a client receives at
 * login. Expected SQL and bytes are written out by hand.
 */
#include "log.h"
#include "params.h"
#include "pktbuf.h"
#include "unit.h"
#include "util.h"
#include "varcache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const builtins[] = {
    "client_encoding",  "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name",
};

static void check_bytes_at(int line, const char *what, const struct pktbuf *pb, const char *want,
                           size_t want_len)
{
	if (pb->len == want_len && (want_len == 0 || memcmp(pb->data, want, want_len) == 0)) {
		unit_passed++;
		return;
	}
	unit_failed++;
	fprintf(stderr, "%s:%d: %s: bytes differ\n  got  (%zu):", __FILE__, line, what, pb->len);
	for (size_t i = 0; i < pb->len; i++)
		fprintf(stderr, " %02x", pb->data[i]);
	fprintf(stderr, "\n  want (%zu):", want_len);
	for (size_t i = 0; i < want_len; i++)
		fprintf(stderr, " %02x", (uint8_t)want[i]);
	fprintf(stderr, "\n");
}

#define CHECK_PB(what, pb, lit) check_bytes_at(__LINE__, what, pb, lit, sizeof(lit) - 1)

/* Compares a malloc'd result (or NULL) with the expected text (or NULL), then frees it. */
static void check_sql_at(int line, char *got, const char *want)
{
	if ((!got && !want) || (got && want && strcmp(got, want) == 0)) {
		unit_passed++;
	} else {
		unit_failed++;
		fprintf(stderr, "%s:%d: SQL\n  got  %s\n  want %s\n", __FILE__, line,
		        got ? got : "(null)", want ? want : "(null)");
	}
	free(got);
}

#define CHECK_SQL(got, want) check_sql_at(__LINE__, got, want)

/* ---- varcache_setup ---- */

struct setup_case {
	const char *extra;
	int count;
	const char *added[4]; /* names after the built-in six, in order */
};

static const struct setup_case setup_cases[] = {
    {NULL, 6, {NULL}},
    {"", 6, {NULL}},
    {" , ,\t,", 6, {NULL}},
    {"search_path", 7, {"search_path"}},
    {"search_path,work_mem", 8, {"search_path", "work_mem"}},
    /* blanks and tabs around the commas, blanks as separators too */
    {" search_path ,\twork_mem  lock_timeout,", 9, {"search_path", "work_mem", "lock_timeout"}},
    /* duplicates, and names already built in, in any case */
    {"search_path,SEARCH_PATH,Search_Path", 7, {"search_path"}},
    {"datestyle,TIMEZONE,Application_Name", 6, {NULL}},
    {"work_mem,DateStyle,work_mem,statement_timeout", 8, {"work_mem", "statement_timeout"}},
};

static void test_setup(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(setup_cases); i++) {
		const struct setup_case *c = &setup_cases[i];
		varcache_setup(c->extra);
		bool ok = varcache_count() == c->count;
		for (int j = 0; ok && j < 6; j++)
			ok = strcmp(varcache_name(j), builtins[j]) == 0;
		for (int j = 6; ok && j < c->count; j++)
			ok = c->added[j - 6] && strcmp(varcache_name(j), c->added[j - 6]) == 0;
		if (ok) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr, "setup case %zu (\"%s\"): count %d, want %d\n", i,
			        c->extra ? c->extra : "(null)", varcache_count(), c->count);
			for (int j = 0; j < varcache_count(); j++)
				fprintf(stderr, "  [%d] %s\n", j, varcache_name(j));
		}
	}

	/* Too many: the first VARCACHE_MAX names are kept, the rest ignored. */
	char extra[1024] = "";
	for (int i = 0; i < VARCACHE_MAX; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%sx%d", i ? "," : "", i);
		strcat(extra, name);
	}
	varcache_setup(extra);
	CHECK(varcache_count() == VARCACHE_MAX);
	CHECK_STR(varcache_name(6), "x0");
	CHECK_STR(varcache_name(VARCACHE_MAX - 1), "x17");
	CHECK(varcache_index("x17") == VARCACHE_MAX - 1);
	CHECK(varcache_index("x18") == -1);
	CHECK(varcache_index("x23") == -1);
	/* a duplicate arriving after the table is full is still recognised */
	varcache_setup("x0,x1,x2,x3,x4,x5,x6,x7,x8,x9,x10,x11,x12,x13,x14,x15,x16,x17,x18,X0");
	CHECK(varcache_count() == VARCACHE_MAX);
	CHECK(varcache_index("x18") == -1);

	/* teardown leaves nothing tracked */
	varcache_teardown();
	CHECK(varcache_count() == 0);
	CHECK(varcache_index("client_encoding") == -1);
}

/* ---- lookup and change detection ---- */

static void test_index_and_set(void)
{
	varcache_setup("search_path");
	CHECK(varcache_index("client_encoding") == 0);
	CHECK(varcache_index("CLIENT_ENCODING") == 0);
	CHECK(varcache_index("datestyle") == 1);
	CHECK(varcache_index("DATESTYLE") == 1);
	CHECK(varcache_index("timezone") == 2);
	CHECK(varcache_index("intervalstyle") == 3);
	CHECK(varcache_index("Standard_Conforming_Strings") == 4);
	CHECK(varcache_index("APPLICATION_NAME") == 5);
	CHECK(varcache_index("Search_Path") == 6);
	CHECK(varcache_index("work_mem") == -1);
	CHECK(varcache_index("") == -1);
	CHECK(varcache_index("client_encoding ") == -1);
	CHECK(varcache_index("client_encodin") == -1);

	struct varcache vc;
	memset(&vc, 0, sizeof(vc));
	/* untracked names are not stored and are never a change */
	CHECK(!varcache_set(&vc, "work_mem", "64MB"));
	for (int i = 0; i < VARCACHE_MAX; i++)
		CHECK(vc.values[i] == NULL);
	/* unknown -> known is a change, also to the empty string */
	CHECK(varcache_set(&vc, "client_encoding", "UTF8"));
	CHECK(varcache_set(&vc, "application_name", ""));
	CHECK_STR(varcache_get(&vc, 5), "");
	/* same value: no change; the name's case does not matter */
	CHECK(!varcache_set(&vc, "client_encoding", "UTF8"));
	CHECK(!varcache_set(&vc, "CLIENT_ENCODING", "UTF8"));
	/* the value's case does: the server reports its canonical spelling */
	CHECK(varcache_set(&vc, "Client_Encoding", "utf8"));
	CHECK_STR(varcache_get(&vc, 0), "utf8");
	CHECK(varcache_set(&vc, "client_encoding", "UTF8"));
	CHECK(!varcache_set(&vc, "client_encoding", "UTF8"));
	CHECK(varcache_set(&vc, "application_name", "x"));
	CHECK(!varcache_set(&vc, "application_name", "x"));
	CHECK(varcache_set(&vc, "application_name", "x "));
	CHECK_STR(varcache_get(&vc, 5), "x ");
	CHECK(varcache_get(&vc, 1) == NULL);
	/* the stored value is a copy */
	char buf[8] = "GMT";
	CHECK(varcache_set(&vc, "TimeZone", buf));
	strcpy(buf, "UTC");
	CHECK_STR(varcache_get(&vc, 2), "GMT");

	varcache_free(&vc);
	for (int i = 0; i < VARCACHE_MAX; i++)
		CHECK(vc.values[i] == NULL);
	varcache_free(&vc); /* twice is harmless */
	varcache_teardown();
}

/* ---- varcache_diff_sql ---- */

struct kv {
	const char *name, *value;
};

struct diff_case {
	struct kv want[4];
	struct kv server[4];
	const char *sql; /* NULL: nothing to send */
};

static const struct diff_case diff_cases[] = {
    /* nothing known anywhere */
    {{{NULL, NULL}}, {{NULL, NULL}}, NULL},
    /* identical */
    {{{"client_encoding", "UTF8"}, {"TimeZone", "UTC"}},
     {{"client_encoding", "UTF8"}, {"TimeZone", "UTC"}},
     NULL},
    /* the client does not know a value the server has: left alone */
    {{{NULL, NULL}}, {{"TimeZone", "UTC"}, {"DateStyle", "ISO, MDY"}}, NULL},
    {{{"client_encoding", "UTF8"}},
     {{"client_encoding", "UTF8"}, {"application_name", "other"}},
     NULL},
    /* one difference */
    {{{"TimeZone", "Europe/Paris"}},
     {{"TimeZone", "UTC"}},
     "SELECT pg_catalog.set_config(E'TimeZone', E'Europe/Paris', false)"},
    /* the server does not know it either */
    {{{"application_name", "app"}},
     {{NULL, NULL}},
     "SELECT pg_catalog.set_config(E'application_name', E'app', false)"},
    /* values compare exactly */
    {{{"client_encoding", "utf8"}},
     {{"client_encoding", "UTF8"}},
     "SELECT pg_catalog.set_config(E'client_encoding', E'utf8', false)"},
    /* several, in tracking order whatever order they were set in */
    {{{"application_name", "a"}, {"DateStyle", "ISO, DMY"}, {"client_encoding", "LATIN1"}},
     {{"DateStyle", "ISO, MDY"}, {"client_encoding", "UTF8"}},
     "SELECT pg_catalog.set_config(E'client_encoding', E'LATIN1', false), "
     "pg_catalog.set_config(E'DateStyle', E'ISO, DMY', false), "
     "pg_catalog.set_config(E'application_name', E'a', false)"},
    /* single quotes are doubled */
    {{{"application_name", "it's"}},
     {{NULL, NULL}},
     "SELECT pg_catalog.set_config(E'application_name', E'it''s', false)"},
    {{{"application_name", "'; DROP TABLE t; --"}},
     {{"application_name", "x"}},
     "SELECT pg_catalog.set_config(E'application_name', E'''; DROP TABLE t; --', false)"},
    {{{"application_name", "''"}},
     {{NULL, NULL}},
     "SELECT pg_catalog.set_config(E'application_name', E'''''', false)"},
    /* the empty string is a value */
    {{{"application_name", ""}},
     {{"application_name", "psql"}},
     "SELECT pg_catalog.set_config(E'application_name', E'', false)"},
    /* backslashes are doubled inside E'': no escape can end the literal */
    {{{"application_name", "\\'; CREATE TABLE pwned(); --"}},
     {{NULL, NULL}},
     "SELECT pg_catalog.set_config(E'application_name', E'\\\\''; CREATE TABLE pwned(); --', "
     "false)"},
    /* double quotes in a value are plain characters */
    {{{"application_name", "a\"b"}},
     {{NULL, NULL}},
     "SELECT pg_catalog.set_config(E'application_name', E'a\"b', false)"},
    /* extra tracked names are quoted the way they were configured */
    {{{"Search_Path", "public"}, {"IntervalStyle", "iso_8601"}},
     {{"search_path", "\"$user\", public"}},
     "SELECT pg_catalog.set_config(E'IntervalStyle', E'iso_8601', false), "
     "pg_catalog.set_config(E'search_path', E'public', false)"},
};

static void set_all(struct varcache *vc, const struct kv *kv)
{
	for (int i = 0; i < 4 && kv[i].name; i++)
		if (!varcache_set(vc, kv[i].name, kv[i].value)) {
			unit_failed++;
			fprintf(stderr, "diff case setup: %s not tracked\n", kv[i].name);
		}
}

static void test_diff_sql(void)
{
	varcache_setup("search_path");
	for (size_t i = 0; i < ARRAY_SIZE(diff_cases); i++) {
		const struct diff_case *c = &diff_cases[i];
		struct varcache want, server;
		memset(&want, 0, sizeof(want));
		memset(&server, 0, sizeof(server));
		set_all(&want, c->want);
		set_all(&server, c->server);
		char *sql = varcache_diff_sql(&want, &server);
		bool ok = (!sql && !c->sql) || (sql && c->sql && strcmp(sql, c->sql) == 0);
		if (ok) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr, "diff case %zu:\n  got  %s\n  want %s\n", i,
			        sql ? sql : "(null)", c->sql ? c->sql : "(null)");
		}
		free(sql);
		varcache_free(&want);
		varcache_free(&server);
	}

	/* a long value outgrows the first buffer; quotes doubled all along */
	struct varcache want, server;
	memset(&want, 0, sizeof(want));
	memset(&server, 0, sizeof(server));
	char value[301], expect[700];
	for (int i = 0; i < 300; i++)
		value[i] = i % 3 == 0 ? '\'' : 'v';
	value[300] = '\0';
	size_t n = (size_t)snprintf(expect, sizeof(expect),
	                            "SELECT pg_catalog.set_config(E'application_name', E'");
	for (int i = 0; i < 300; i++) {
		if (value[i] == '\'')
			expect[n++] = '\'';
		expect[n++] = value[i];
	}
	memcpy(expect + n, "', false)", 10);
	CHECK(varcache_set(&want, "application_name", value));
	CHECK_SQL(varcache_diff_sql(&want, &server), expect);
	/* after applying it, the same diff is empty */
	CHECK(varcache_set(&server, "application_name", value));
	CHECK_SQL(varcache_diff_sql(&want, &server), NULL);
	varcache_free(&want);
	varcache_free(&server);
	varcache_teardown();
}

/* ---- params ---- */

static void test_params(void)
{
	varcache_setup(NULL);
	struct param_list *pl = params_new();
	CHECK(pl->count == 0);
	CHECK(params_get(pl, "client_encoding") == NULL);

	params_set(pl, "server_version", "16.2");
	params_set(pl, "client_encoding", "UTF8");
	params_set(pl, "application_name", "");
	CHECK(pl->count == 3);
	CHECK_STR(params_get(pl, "server_version"), "16.2");
	CHECK_STR(params_get(pl, "SERVER_VERSION"), "16.2");
	CHECK(params_get(pl, "server_versio") == NULL);
	/* replacing keeps the first spelling and the position */
	params_set(pl, "Client_Encoding", "SQL_ASCII");
	CHECK(pl->count == 3);
	CHECK_STR(pl->names[1], "client_encoding");
	CHECK_STR(params_get(pl, "client_encoding"), "SQL_ASCII");
	params_set(pl, "client_encoding", "UTF8");

	struct pktbuf pb;
	pktbuf_init(&pb);
	/* no client values: pl as it is, in order */
	params_build(pl, NULL, &pb);
	CHECK_PB("welcome", &pb,
	         "S\x00\x00\x00\x18"
	         "server_version\0"
	         "16.2\0"
	         "S\x00\x00\x00\x19"
	         "client_encoding\0"
	         "UTF8\0"
	         "S\x00\x00\x00\x16"
	         "application_name\0"
	         "\0");
	pktbuf_reset(&pb);

	/* client values override where known; unknown ones and untracked names keep pl's */
	struct varcache vars;
	memset(&vars, 0, sizeof(vars));
	CHECK(varcache_set(&vars, "client_encoding", "LATIN1"));
	CHECK(varcache_set(&vars, "application_name", "psql"));
	CHECK(varcache_set(&vars, "TimeZone", "UTC")); /* not in pl: not added */
	params_build(pl, &vars, &pb);
	CHECK_PB("welcome with client values", &pb,
	         "S\x00\x00\x00\x18"
	         "server_version\0"
	         "16.2\0"
	         "S\x00\x00\x00\x1b"
	         "client_encoding\0"
	         "LATIN1\0"
	         "S\x00\x00\x00\x1a"
	         "application_name\0"
	         "psql\0");
	pktbuf_reset(&pb);
	/* pl itself is untouched */
	CHECK_STR(params_get(pl, "client_encoding"), "UTF8");

	/* a server that reports a tracked name in another case still matches */
	struct param_list *pl2 = params_new();
	params_set(pl2, "timezone", "Etc/UTC");
	params_build(pl2, &vars, &pb);
	CHECK_PB("case-insensitive override", &pb,
	         "S\x00\x00\x00\x11"
	         "timezone\0"
	         "UTC\0");
	pktbuf_reset(&pb);
	params_free(pl2);

	/* an empty list builds nothing */
	pl2 = params_new();
	params_build(pl2, &vars, &pb);
	CHECK(pb.len == 0);
	params_free(pl2);
	params_free(NULL);

	/* PARAMS_MAX names at most; an existing one can still be replaced */
	pl2 = params_new();
	for (int i = 0; i < PARAMS_MAX + 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%d", i);
		params_set(pl2, name, "v");
	}
	CHECK(pl2->count == PARAMS_MAX);
	CHECK(params_get(pl2, "p63") != NULL);
	CHECK(params_get(pl2, "p64") == NULL);
	params_set(pl2, "p0", "w");
	CHECK_STR(params_get(pl2, "p0"), "w");
	CHECK(pl2->count == PARAMS_MAX);
	params_free(pl2);

	varcache_free(&vars);
	pktbuf_free(&pb);
	params_free(pl);
	varcache_teardown();
}

int main(void)
{
	log_quiet = true; /* "too many parameters" warnings are expected */
	test_setup();
	test_index_and_set();
	test_diff_sql();
	test_params();
	return unit_summary("test_varcache");
}
