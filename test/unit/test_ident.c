/*
 * ident.c: parsing pg_ident.conf-style maps (quotes, comments, errors
 * with file:line) and the matching rules (exact, regex, \1, +group, map
 * names).
 */
#include "ident.h"
#include "unit.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static struct ident_map *parse_ok(const char *text)
{
	char *err = NULL;
	struct ident_map *m = ident_parse(text, "ident.conf", &err);
	CHECK(m != NULL);
	if (err) {
		fprintf(stderr, "unexpected error: %s\n", err);
		free(err);
	}
	return m;
}

static void check_error(const char *text, const char *want)
{
	char *err = NULL;
	struct ident_map *m = ident_parse(text, "ident.conf", &err);
	CHECK(m == NULL);
	CHECK(err && strstr(err, want));
	if (err && !strstr(err, want))
		fprintf(stderr, "error was: %s\n", err);
	free(err);
	ident_free(m);
}

static void test_exact(void)
{
	struct ident_map *m = parse_ok("# comment\n"
	                               "\n"
	                               "ops   alice   admin   # trailing comment\n"
	                               "ops   bob     reader\r\n"
	                               "other alice   reader\n"
	                               "ops \"carol smith\" \"quoted\"\"role\"\n");
	CHECK(ident_allows(m, "ops", "alice", "admin"));
	CHECK(ident_allows(m, "ops", "bob", "reader"));
	CHECK(!ident_allows(m, "ops", "alice", "reader")); /* that line is in map "other" */
	CHECK(ident_allows(m, "other", "alice", "reader"));
	CHECK(!ident_allows(m, "ops", "bob", "admin"));
	CHECK(!ident_allows(m, "nosuchmap", "alice", "admin"));
	CHECK(!ident_allows(m, "ops", "Alice", "admin")); /* case matters */
	CHECK(ident_allows(m, "ops", "carol smith", "quoted\"role"));
	ident_free(m);
}

static void test_regex(void)
{
	struct ident_map *m = parse_ok("corp /^(.*)@corp\\.example$ \\1\n"
	                               "corp /^svc-(.*)$ app_\\1_ro\n"
	                               "any  /.*  guest\n");
	CHECK(ident_allows(m, "corp", "alice@corp.example", "alice"));
	CHECK(!ident_allows(m, "corp", "alice@corp.example", "bob"));
	CHECK(!ident_allows(m, "corp", "alice@corpXexample", "alice")); /* the dot is escaped */
	CHECK(!ident_allows(m, "corp", "alice@corp.example.evil", "alice")); /* anchored */
	CHECK(ident_allows(m, "corp", "svc-billing", "app_billing_ro"));
	CHECK(!ident_allows(m, "corp", "svc-billing", "app_billing"));
	CHECK(!ident_allows(m, "corp", "svc-billing", "app_billing_rox"));
	CHECK(ident_allows(m, "any", "whoever", "guest"));
	CHECK(!ident_allows(m, "any", "whoever", "admin"));
	ident_free(m);
	CHECK(!ident_allows(NULL, "corp", "alice", "alice"));
}

static void test_groups(void)
{
	struct ident_map *m = parse_ok("oidc +dba        admin\n"
	                               "oidc +analysts   reader\n"
	                               "oidc \"+literal\" lit\n"
	                               "oidc /^(.*)@corp\\.example$ \\1\n"
	                               "other +dba       other_admin\n");
	const char *dba[] = {"staff", "dba"};
	const char *analyst[] = {"analysts"};
	CHECK(ident_allows_groups(m, "oidc", "alice", dba, 2, "admin"));
	CHECK(!ident_allows_groups(m, "oidc", "alice", dba, 2, "reader"));
	CHECK(!ident_allows_groups(m, "oidc", "alice", dba, 1, "admin")); /* only "staff" */
	CHECK(ident_allows_groups(m, "oidc", "bob", analyst, 1, "reader"));
	CHECK(!ident_allows_groups(m, "oidc", "bob", analyst, 1, "admin"));
	CHECK(!ident_allows_groups(m, "oidc", "bob", NULL, 0, "reader"));
	CHECK(ident_allows_groups(m, "other", "alice", dba, 2, "other_admin"));
	CHECK(!ident_allows_groups(m, "other", "alice", dba, 2, "admin"));
	/* the group is not a name: "dba" as an identity gets nothing */
	CHECK(!ident_allows(m, "oidc", "dba", "admin"));
	CHECK(!ident_allows(m, "oidc", "+dba", "admin"));
	/* quoted, "+literal" is an exact name, not a group */
	CHECK(ident_allows(m, "oidc", "+literal", "lit"));
	const char *literal[] = {"literal"};
	CHECK(!ident_allows_groups(m, "oidc", "carol", literal, 1, "lit"));
	/* regex and exact lines behave as before, with or without groups */
	CHECK(ident_allows_groups(m, "oidc", "dave@corp.example", dba, 2, "dave"));
	CHECK(ident_allows(m, "oidc", "dave@corp.example", "dave"));
	CHECK(!ident_allows_groups(m, "oidc", "dave@corp.example", dba, 2, "alice"));
	ident_free(m);
	CHECK(!ident_allows_groups(NULL, "oidc", "alice", dba, 2, "admin"));
}

static void test_errors(void)
{
	check_error("ops alice\n", "ident.conf:1: expected MAPNAME SYSTEM-NAME ROLE");
	check_error("ok a b\nops a b c\n", "ident.conf:2:");
	check_error("ops \"unterminated b\n", "ident.conf:1:");
	check_error("ops /(unclosed b\n", "ident.conf:1: bad regular expression");
	check_error("ops +dba app_\\1\n", "ident.conf:1: a +group line's ROLE cannot use \\1");
	check_error("ops + admin\n", "ident.conf:1: empty group name");
	char *big = xmalloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	check_error(big, "line too long");
	free(big);
	char *err = NULL;
	CHECK(ident_load("/nonexistent/ident.conf", &err) == NULL);
	CHECK(err && strstr(err, "/nonexistent/ident.conf"));
	free(err);
}

int main(void)
{
	test_exact();
	test_regex();
	test_groups();
	test_errors();
	return unit_summary("test_ident");
}
