/*
 * lua_vm.c: the sandbox (what scripts cannot reach), the two budgets
 * (a runaway loop or allocation fails the call, the state lives on), the
 * verdict constructors, script and options loading and their errors.
 */
#include "log.h"
#include "lua_vm.h"
#include "unit.h"
#include "util.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/test_lua_vm.XXXXXX";

static const char *put(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static struct lua_vm *vm_with(const char *script_text, char **err)
{
	struct lua_vm *vm = lua_vm_new(8 * 1024 * 1024, 100000, err);
	if (!vm)
		return NULL;
	char *path = xstrdup(put("s.lua", script_text));
	bool ok = lua_vm_load(vm, path, NULL, err);
	free(path);
	if (!ok) {
		lua_vm_free(vm);
		return NULL;
	}
	return vm;
}

/* Calls the script's phase "statement" with one string argument. */
static struct lua_verdict_info call(struct lua_vm *vm, const char *arg, char **err)
{
	struct lua_verdict_info none = {LUA_VERDICT_INVALID, NULL, NULL, NULL, 0, NULL};
	if (!lua_vm_push_phase(vm, 0, "statement"))
		return none;
	lua_pushstring(lua_vm_state(vm), arg);
	if (!lua_vm_call(vm, 1, err))
		return none;
	return lua_vm_take_verdict(vm);
}

static void test_verdicts(void)
{
	char *err = NULL;
	struct lua_vm *vm =
	    vm_with("return { statement = function(a)\n"
	            "  if a == 'deny' then return sieve.deny('no') end\n"
	            "  if a == 'deny2' then return sieve.deny('nope', '0A000') end\n"
	            "  if a == 'rewrite' then return sieve.rewrite('select 2') end\n"
	            "  if a == 'approve' then return sieve.approve('why', {ttl=60}) end\n"
	            "  if a == 'allow' then return require('sieve').allow() end\n"
	            "  if a == 'number' then return 42 end\n"
	            "end }\n",
	            &err);
	CHECK(vm != NULL);
	if (!vm) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return;
	}
	struct lua_verdict_info v = call(vm, "deny", &err);
	CHECK(v.verdict == LUA_VERDICT_DENY);
	CHECK_STR(v.message, "no");
	CHECK_STR(v.sqlstate, "42501");
	v = call(vm, "deny2", &err);
	CHECK(v.verdict == LUA_VERDICT_DENY && v.sqlstate && strcmp(v.sqlstate, "0A000") == 0);
	v = call(vm, "rewrite", &err);
	CHECK(v.verdict == LUA_VERDICT_REWRITE);
	CHECK_STR(v.sql, "select 2");
	v = call(vm, "approve", &err);
	CHECK(v.verdict == LUA_VERDICT_APPROVE && v.ttl == 60);
	CHECK_STR(v.message, "why");
	CHECK(call(vm, "allow", &err).verdict == LUA_VERDICT_ALLOW);
	CHECK(call(vm, "nothing", &err).verdict == LUA_VERDICT_NONE);
	CHECK(call(vm, "number", &err).verdict == LUA_VERDICT_INVALID);
	CHECK(!lua_vm_push_phase(vm, 0, "connect")); /* a phase it does not have */
	CHECK(lua_gettop(lua_vm_state(vm)) == 0);
	lua_vm_free(vm);
}

static void expect_call_error(const char *body, const char *want)
{
	char *err = NULL;
	char *text = xasprintf("return { statement = function(a) %s end }\n", body);
	struct lua_vm *vm = vm_with(text, &err);
	free(text);
	CHECK(vm != NULL);
	if (!vm) {
		free(err);
		return;
	}
	call(vm, "x", &err);
	CHECK(err && strstr(err, want));
	if (err && !strstr(err, want))
		fprintf(stderr, "  error was: %s (wanted %s)\n", err, want);
	FREE_AND_NULL(err);
	/* The state is still good for the next call. */
	CHECK(call(vm, "x", &err).verdict != LUA_VERDICT_NONE || err);
	free(err);
	lua_vm_free(vm);
}

static void test_sandbox(void)
{
	expect_call_error("return os.exit()", "attempt to index a nil value (global 'os')");
	expect_call_error("return io.open('/etc/passwd')", "global 'io'");
	expect_call_error("return debug.getinfo(1)", "global 'debug'");
	expect_call_error("return package.loadlib('x', 'y')", "global 'package'");
	expect_call_error("return require('os')", "only \"sieve\" is available");
	expect_call_error("return dofile('/etc/passwd')", "global 'dofile'");
	expect_call_error("return loadfile('/etc/passwd')", "global 'loadfile'");
	expect_call_error("return string.dump(print)", "field 'dump'");
	expect_call_error("return load('\\27Lua', 'x', 'b')", "only text chunks");
	expect_call_error("local f = load('return 1', 'x', 't'); return f() + nil",
	                  "attempt to perform arithmetic");
	expect_call_error("return sieve.deny('m', 'TOOLONG')", "five characters");
	expect_call_error("error('my own failure')", "s.lua:1: my own failure");
}

static void test_budgets(void)
{
	expect_call_error("while true do end", "instruction budget exceeded");
	/* Catching the budget error does not buy more time. */
	expect_call_error("while true do pcall(function() while true do end end) end",
	                  "instruction budget exceeded");
	expect_call_error("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000000) .. i end",
	                  "memory budget exceeded");
	/* And a normal call after a runaway one costs nothing extra. */
	char *err = NULL;
	struct lua_vm *vm = vm_with("return { statement = function(a)\n"
	                            "  if a == 'loop' then while true do end end\n"
	                            "  return sieve.allow() end }\n",
	                            &err);
	CHECK(vm != NULL);
	if (!vm)
		return;
	call(vm, "loop", &err);
	CHECK(err != NULL);
	FREE_AND_NULL(err);
	for (int i = 0; i < 50; i++)
		CHECK(call(vm, "fine", &err).verdict == LUA_VERDICT_ALLOW);
	CHECK(err == NULL);
	lua_vm_free(vm);
}

static void test_loading(void)
{
	char *err = NULL;
	struct lua_vm *vm = lua_vm_new(8 * 1024 * 1024, 100000, &err);
	CHECK(!lua_vm_load(vm, put("syntax.lua", "return {\nstatement = function( end }\n"), NULL,
	                   &err));
	CHECK(err && strstr(err, "syntax.lua:2:"));
	FREE_AND_NULL(err);
	CHECK(!lua_vm_load(vm, put("notable.lua", "return 5\n"), NULL, &err));
	CHECK(err && strstr(err, "must return a table of phase functions"));
	FREE_AND_NULL(err);
	CHECK(!lua_vm_load(vm, "/nonexistent/x.lua", NULL, &err));
	CHECK(err && strstr(err, "/nonexistent/x.lua"));
	FREE_AND_NULL(err);
	/* init gets the options; returning a string refuses them. */
	put("opts.lua", "return { roles = { 'a', 'b' }, limit = 10 }\n");
	char *opts = xasprintf("%s/opts.lua", dir);
	CHECK(lua_vm_load(vm,
	                  put("withopts.lua",
	                      "local n\n"
	                      "return { init = function(o) n = #o.roles + o.limit end,\n"
	                      "  statement = function() return sieve.deny('n=' .. n) end }\n"),
	                  opts, &err));
	CHECK(lua_vm_script_count(vm) == 1);
	CHECK(lua_vm_push_phase(vm, 0, "statement") && lua_vm_call(vm, 0, &err));
	struct lua_verdict_info v = lua_vm_take_verdict(vm);
	CHECK(v.verdict == LUA_VERDICT_DENY && v.message && strcmp(v.message, "n=12") == 0);
	CHECK(!lua_vm_load(vm,
	                   put("refuse.lua", "return { init = function(o) "
	                                     "return 'roles missing' end }\n"),
	                   opts, &err));
	CHECK(err && strstr(err, "init: roles missing"));
	FREE_AND_NULL(err);
	/* Options are data: no function is in reach there. */
	put("badopts.lua", "return { x = os.getenv('HOME') }\n");
	char *bad = xasprintf("%s/badopts.lua", dir);
	CHECK(!lua_vm_load(vm, put("fine.lua", "return {}\n"), bad, &err));
	CHECK(err && strstr(err, "badopts.lua:1:"));
	FREE_AND_NULL(err);
	free(bad);
	free(opts);
	/* A failed load leaves the loaded ones alone. */
	CHECK(lua_vm_script_count(vm) == 1);
	lua_vm_free(vm);
}

static void test_isolation(void)
{
	char *err = NULL;
	struct lua_vm *vm = lua_vm_new(8 * 1024 * 1024, 100000, &err);
	char *a = xstrdup(put("a.lua", "secret = 'from a'\nreturn {}\n"));
	char *b = xstrdup(put("b.lua", "return { statement = function() "
	                               "return sieve.deny(tostring(secret)) end }\n"));
	CHECK(lua_vm_load(vm, a, NULL, &err) && lua_vm_load(vm, b, NULL, &err));
	CHECK(lua_vm_push_phase(vm, 1, "statement") && lua_vm_call(vm, 0, &err));
	struct lua_verdict_info v = lua_vm_take_verdict(vm);
	CHECK(v.message && strcmp(v.message, "nil") == 0); /* a's global is a's */
	CHECK_STR(lua_vm_script_name(vm, 1), b);
	free(a);
	free(b);
	lua_vm_free(vm);
}

/* sieve.mask_column in init(): what the caller gets, and what is refused. */
static void test_mask_declarations(void)
{
	char *err = NULL;
	struct lua_vm *vm =
	    vm_with("return { init = function()\n"
	            "  sieve.mask_column('public.customers.email', sieve.mask.email)\n"
	            "  sieve.mask_column('public.*.ssn', sieve.mask.partial{keep_last = 4},\n"
	            "                    {roles = {'agent'}, groups = {'mcp', 'ops'}})\n"
	            "  sieve.mask_column('crm.people.card', sieve.mask.hash{key = 'k\\0ey'})\n"
	            "  sieve.mask_column('crm.people.note', sieve.mask.fixed('n/a'))\n"
	            "end,\n"
	            "statement = function() sieve.mask_column('a.b.c', sieve.mask.null) end }",
	            &err);
	CHECK(vm != NULL);
	if (!vm) {
		free(err);
		return;
	}
	size_t n;
	struct lua_mask_decl *d = lua_vm_mask_declarations(vm, &n);
	CHECK(n == 4);
	if (n == 4) {
		CHECK(strcmp(d[0].pattern, "public.customers.email") == 0 &&
		      strcmp(d[0].kind, "email") == 0 && d[0].n_roles == 0 && d[0].n_groups == 0);
		CHECK(strcmp(d[1].kind, "partial") == 0 && d[1].keep_first == 0 &&
		      d[1].keep_last == 4);
		CHECK(d[1].n_roles == 1 && strcmp(d[1].roles[0], "agent") == 0);
		CHECK(d[1].n_groups == 2 && strcmp(d[1].groups[1], "ops") == 0);
		CHECK(strcmp(d[2].kind, "hash") == 0 && d[2].key_len == 4 &&
		      memcmp(d[2].key, "k\0ey", 4) == 0);
		CHECK(strcmp(d[3].kind, "fixed") == 0 && strcmp(d[3].value, "n/a") == 0);
		CHECK(strstr(d[0].script, "s.lua") != NULL);
	}
	lua_vm_mask_declarations_free(d, n);
	/* Outside init() declaring is an error of that call. */
	struct lua_verdict_info v = call(vm, "x", &err);
	CHECK(v.verdict == LUA_VERDICT_INVALID && err && strstr(err, "only in init()"));
	free(err);
	err = NULL;
	lua_vm_free(vm);

	static const char *const bad[] = {
	    "sieve.mask_column('customers.email', sieve.mask.email)",
	    "sieve.mask_column('a.b.c.d', sieve.mask.email)",
	    "sieve.mask_column('a..c', sieve.mask.email)",
	    "sieve.mask_column('a.b.c', 'email')",
	    "sieve.mask_column('a.b.c', {kind = 'email'})",
	    "sieve.mask_column('a.b;c', sieve.mask.null)",
	    "sieve.mask_column('a.b.c', sieve.mask.partial{keep_first = -1})",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *text = xasprintf("return { init = function() %s end }", bad[i]);
		vm = vm_with(text, &err);
		CHECK(vm == NULL && err && strstr(err, "mask"));
		free(text);
		free(err);
		err = NULL;
		lua_vm_free(vm);
	}
}

int main(void)
{
	log_quiet = true;
	if (!mkdtemp(dir))
		return 1;
	test_verdicts();
	test_sandbox();
	test_budgets();
	test_loading();
	test_isolation();
	test_mask_declarations();
	char *cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	return unit_summary("test_lua_vm");
}
