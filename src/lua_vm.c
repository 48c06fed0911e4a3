/*
 * The policy scripts' Lua state; see lua_vm.h for the sandbox and budgets.
 */
#include "lua_vm.h"
#include "log.h"

#include <errno.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where a verdict table keeps its kind: a key scripts do not write by accident. */
#define VERDICT_KEY "__sieve_verdict"
/* The same for a masker (sieve.mask.*). */
#define MASKER_KEY "__sieve_masker"

struct vm_script {
	char *name; /* the file, for messages */
	int phases; /* registry ref of the table the script returned */
};

struct lua_vm {
	lua_State *L;
	size_t used, limit;
	long max_instructions;
	int sandbox; /* registry ref: the read-only globals every script sees */
	int sieve;   /* registry ref: the sieve module */
	int n_scripts;
	int current;  /* the script running now, for sieve.log; -1 outside */
	bool in_init; /* a script's init() runs: sieve.mask_column may declare */
	int masks;    /* registry ref: the list of sieve.mask_column declarations */
	struct vm_script scripts[LUA_VM_MAX_SCRIPTS];
};

/* Memory */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lua_vm *vm = ud;
	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		vm->used -= osize;
		return NULL;
	}
	/* Over the limit: Lua turns NULL into a memory error of the running call. */
	if (nsize > osize && vm->used + (nsize - osize) > vm->limit)
		return NULL;
	void *p = realloc(ptr, nsize);
	if (p)
		vm->used = vm->used - osize + nsize;
	return p;
}

/* Instructions */

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	/* From now on every instruction fails: a pcall in a loop cannot outlast it. */
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
	luaL_error(L, "instruction budget exceeded (policy_max_instructions)");
}

/* The sieve module */

static int verdict(lua_State *L, const char *kind)
{
	lua_newtable(L);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, VERDICT_KEY);
	return 1;
}

static int sieve_allow(lua_State *L)
{
	return verdict(L, "allow");
}

static int sieve_deny(lua_State *L)
{
	const char *msg = luaL_optstring(L, 1, "statement denied by policy");
	const char *state = luaL_optstring(L, 2, "42501");
	if (strlen(state) != 5)
		return luaL_error(L, "sieve.deny: sqlstate must be five characters, not \"%s\"",
		                  state);
	verdict(L, "deny");
	lua_pushstring(L, msg);
	lua_setfield(L, -2, "message");
	lua_pushstring(L, state);
	lua_setfield(L, -2, "sqlstate");
	return 1;
}

static int sieve_rewrite(lua_State *L)
{
	const char *sql = luaL_checkstring(L, 1);
	verdict(L, "rewrite");
	lua_pushstring(L, sql);
	lua_setfield(L, -2, "sql");
	return 1;
}

/*
 * sieve.approve(reason [, {ttl = seconds, approvers = {"name", ...}}]):
 * approvers may be one name or a list; it is kept as "a,b" for the store.
 */
static int sieve_approve(lua_State *L)
{
	const char *reason = luaL_checkstring(L, 1);
	long ttl = 0;
	luaL_Buffer names;
	bool have_names = false;
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "ttl");
		ttl = (long)luaL_optinteger(L, -1, 0);
		lua_pop(L, 1);
		if (ttl < 0)
			return luaL_error(L, "sieve.approve: ttl must be a number of seconds");
		lua_getfield(L, 2, "approvers");
		int t = lua_gettop(L);
		if (lua_type(L, t) == LUA_TSTRING || lua_istable(L, t)) {
			luaL_buffinit(L, &names);
			have_names = true;
			lua_Integer n = lua_istable(L, t) ? luaL_len(L, t) : 1;
			for (lua_Integer i = 1; i <= n; i++) {
				if (lua_istable(L, t))
					lua_geti(L, t, i);
				else
					lua_pushvalue(L, t);
				size_t len;
				const char *name = lua_tolstring(L, -1, &len);
				if (lua_type(L, -1) != LUA_TSTRING || len == 0 ||
				    strpbrk(name, ", \t\r\n"))
					return luaL_error(L,
					                  "sieve.approve: approvers must be names "
					                  "(strings without commas or spaces)");
				lua_pop(L, 1);
				if (i > 1)
					luaL_addchar(&names, ',');
				luaL_addlstring(&names, name, len);
			}
			luaL_pushresult(&names);
		} else if (!lua_isnil(L, t)) {
			return luaL_error(L, "sieve.approve: approvers must be a name or a list");
		}
	}
	int list = lua_gettop(L);
	verdict(L, "approve");
	lua_pushstring(L, reason);
	lua_setfield(L, -2, "message");
	lua_pushinteger(L, ttl);
	lua_setfield(L, -2, "ttl");
	if (have_names) {
		lua_pushvalue(L, list);
		lua_setfield(L, -2, "approvers");
	}
	return 1;
}

/* Maskers: tables marked with their kind, turned into C maskers by the caller. */
static void masker(lua_State *L, const char *kind)
{
	lua_newtable(L);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, MASKER_KEY);
}

static int mask_partial(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "keep_first");
	lua_Integer first = luaL_optinteger(L, -1, 0);
	lua_getfield(L, 1, "keep_last");
	lua_Integer last = luaL_optinteger(L, -1, 0);
	if (first < 0 || last < 0 || first > 1000 || last > 1000)
		return luaL_error(L,
		                  "sieve.mask.partial: keep_first and keep_last must be 0..1000");
	masker(L, "partial");
	lua_pushinteger(L, first);
	lua_setfield(L, -2, "keep_first");
	lua_pushinteger(L, last);
	lua_setfield(L, -2, "keep_last");
	return 1;
}

static int mask_hash(lua_State *L)
{
	const char *key = NULL;
	size_t len = 0;
	if (!lua_isnoneornil(L, 1)) {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_getfield(L, 1, "key");
		key = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &len);
	}
	masker(L, "hash");
	if (key) {
		lua_pushlstring(L, key, len);
		lua_setfield(L, -2, "key");
	}
	return 1;
}

static int mask_fixed(lua_State *L)
{
	size_t len;
	const char *value = luaL_checklstring(L, 1, &len);
	masker(L, "fixed");
	lua_pushlstring(L, value, len);
	lua_setfield(L, -2, "value");
	return 1;
}

/* "schema.table.column", each part a name or a pattern with '*'. */
static bool valid_column_pattern(const char *p)
{
	int parts = 1;
	size_t run = 0;
	for (; *p; p++) {
		if (*p == '.') {
			if (run == 0)
				return false;
			parts++;
			run = 0;
		} else if (*p == '*' || *p == '_' || *p == '$' || (*p >= '0' && *p <= '9') ||
		           (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		           (unsigned char)*p >= 0x80) {
			run++;
		} else {
			return false;
		}
	}
	return parts == 3 && run > 0;
}

/* A list of strings in scope[field], copied into the declaration as a Lua array. */
static void copy_names(lua_State *L, int scope, const char *field, int decl)
{
	lua_newtable(L);
	if (scope) {
		lua_getfield(L, scope, field);
		if (!lua_isnil(L, -1)) {
			luaL_checktype(L, -1, LUA_TTABLE);
			lua_Integer n = luaL_len(L, -1);
			for (lua_Integer i = 1; i <= n; i++) {
				lua_geti(L, -1, i);
				luaL_checkstring(L, -1);
				lua_rawseti(L, -3, i);
			}
		}
		lua_pop(L, 1);
	}
	lua_setfield(L, decl, field);
}

static int sieve_mask_column(lua_State *L)
{
	struct lua_vm *vm = lua_touserdata(L, lua_upvalueindex(1));
	if (!vm->in_init)
		return luaL_error(L,
		                  "sieve.mask_column: only in init(), before any statement runs");
	const char *pattern = luaL_checkstring(L, 1);
	if (!valid_column_pattern(pattern))
		return luaL_error(L, "sieve.mask_column: \"%s\" is not schema.table.column",
		                  pattern);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 2, MASKER_KEY);
	if (!lua_isstring(L, -1))
		return luaL_error(
		    L, "sieve.mask_column: the second argument is not a sieve.mask masker");
	lua_pop(L, 1);
	int scope = 0;
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		scope = 3;
	}
	lua_newtable(L);
	int decl = lua_gettop(L);
	lua_pushstring(L, vm->scripts[vm->current].name);
	lua_setfield(L, decl, "script");
	lua_pushvalue(L, 1);
	lua_setfield(L, decl, "pattern");
	lua_pushvalue(L, 2);
	lua_setfield(L, decl, "masker");
	copy_names(L, scope, "roles", decl);
	copy_names(L, scope, "groups", decl);
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->masks);
	lua_pushvalue(L, decl);
	lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
	return 0;
}

static int sieve_log(lua_State *L)
{
	struct lua_vm *vm = lua_touserdata(L, lua_upvalueindex(1));
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	const char *who = vm->current >= 0 ? vm->scripts[vm->current].name : "policy";
	log_info("%s: %s", who, lua_tostring(L, -1));
	return 0;
}

static int sandbox_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (strcmp(name, "sieve") != 0)
		return luaL_error(L, "require: only \"sieve\" is available to policy scripts");
	lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)lua_tointeger(L, lua_upvalueindex(1)));
	return 1;
}

/* load() of text chunks only: bytecode could break out of the sandbox. */
static int sandbox_load(lua_State *L)
{
	int n = lua_gettop(L);
	if (n >= 3 && !lua_isnil(L, 3) && strcmp(luaL_checkstring(L, 3), "t") != 0)
		return luaL_error(L, "load: only text chunks (mode \"t\")");
	lua_settop(L, 4);
	lua_pushstring(L, "t");
	lua_replace(L, 3);
	lua_pushvalue(L, lua_upvalueindex(1)); /* the real load, out of scripts' reach */
	lua_insert(L, 1);
	lua_call(L, 4, LUA_MULTRET);
	return lua_gettop(L);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
	luaL_requiref(L, name, open, 1);
	lua_pop(L, 1);
}

/* Builds the globals scripts see, read-only through their environments' __index. */
static void build_sandbox(struct lua_vm *vm)
{
	lua_State *L = vm->L;
	open_lib(L, LUA_GNAME, luaopen_base);
	open_lib(L, LUA_STRLIBNAME, luaopen_string);
	open_lib(L, LUA_TABLIBNAME, luaopen_table);
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
	open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
	static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", "print"};
	for (size_t i = 0; i < ARRAY_SIZE(removed); i++) {
		lua_pushnil(L);
		lua_setglobal(L, removed[i]);
	}
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	lua_getglobal(L, "load");
	lua_pushcclosure(L, sandbox_load, 1);
	lua_setglobal(L, "load");

	/* sieve */
	lua_newtable(L);
	static const luaL_Reg fns[] = {{"allow", sieve_allow},
	                               {"deny", sieve_deny},
	                               {"rewrite", sieve_rewrite},
	                               {"approve", sieve_approve},
	                               {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
	lua_pushlightuserdata(L, vm);
	lua_pushcclosure(L, sieve_log, 1);
	lua_setfield(L, -2, "log");
	lua_pushlightuserdata(L, vm);
	lua_pushcclosure(L, sieve_mask_column, 1);
	lua_setfield(L, -2, "mask_column");
	/* sieve.mask: the built-in maskers and the constructors of the others */
	lua_newtable(L);
	static const char *const plain[] = {"redact", "null", "email"};
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		masker(L, plain[i]);
		lua_setfield(L, -2, plain[i]);
	}
	static const luaL_Reg makers[] = {
	    {"partial", mask_partial}, {"hash", mask_hash}, {"fixed", mask_fixed}, {NULL, NULL}};
	luaL_setfuncs(L, makers, 0);
	lua_setfield(L, -2, "mask");
	lua_newtable(L);
	vm->masks = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, -1);
	vm->sieve = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_setglobal(L, "sieve");
	lua_pushinteger(L, vm->sieve);
	lua_pushcclosure(L, sandbox_require, 1);
	lua_setglobal(L, "require");

	lua_pushglobaltable(L);
	vm->sandbox = luaL_ref(L, LUA_REGISTRYINDEX);
}

struct lua_vm *lua_vm_new(size_t max_memory, long max_instructions, char **err)
{
	struct lua_vm *vm = xcalloc(1, sizeof(*vm));
	vm->limit = max_memory;
	vm->max_instructions = max_instructions;
	vm->current = -1;
	vm->L = lua_newstate(vm_alloc, vm);
	if (!vm->L) {
		*err = xstrdup("could not create the Lua state (policy_max_memory too small?)");
		free(vm);
		return NULL;
	}
	build_sandbox(vm);
	return vm;
}

void lua_vm_free(struct lua_vm *vm)
{
	if (!vm)
		return;
	lua_close(vm->L);
	for (int i = 0; i < vm->n_scripts; i++)
		free(vm->scripts[i].name);
	free(vm);
}

struct lua_State *lua_vm_state(struct lua_vm *vm)
{
	return vm->L;
}

size_t lua_vm_memory(const struct lua_vm *vm)
{
	return vm->used;
}

int lua_vm_script_count(const struct lua_vm *vm)
{
	return vm->n_scripts;
}

const char *lua_vm_script_name(const struct lua_vm *vm, int script)
{
	return vm->scripts[script].name;
}

bool lua_vm_call(struct lua_vm *vm, int nargs, char **err)
{
	lua_State *L = vm->L;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, (int)vm->max_instructions);
	int rc = lua_pcall(L, nargs, 1, 0);
	lua_sethook(L, NULL, 0, 0);
	if (rc == LUA_OK)
		return true;
	const char *msg =
	    rc == LUA_ERRMEM ? "memory budget exceeded (policy_max_memory)" : lua_tostring(L, -1);
	*err = xstrdup(msg ? msg : "error object is not a string");
	lua_pop(L, 1);
	return false;
}

/* Reads a whole file into a Lua chunk with the given environment on the stack top. */
static bool load_file_with_env(struct lua_vm *vm, const char *path, char **err)
{
	lua_State *L = vm->L;
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		return false;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	char chunk[8192];
	size_t n;
	size_t total = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && total < 16 * 1024 * 1024) {
		luaL_addlstring(&b, chunk, n);
		total += n;
	}
	bool failed = ferror(f) || total >= 16 * 1024 * 1024;
	fclose(f);
	luaL_pushresult(&b);
	if (failed) {
		lua_pop(L, 2);
		*err = xasprintf("%s: read error or larger than 16 MB", path);
		return false;
	}
	size_t len;
	const char *text = lua_tolstring(L, -1, &len);
	char *chunkname = xasprintf("@%s", path);
	/* Text only: a precompiled chunk could break out of the sandbox. */
	int rc = luaL_loadbufferx(L, text, len, chunkname, "t");
	free(chunkname);
	lua_remove(L, -2); /* the text */
	if (rc != LUA_OK) {
		*err = xstrdup(lua_tostring(L, -1));
		lua_pop(L, 2); /* message, env */
		return false;
	}
	lua_insert(L, -2); /* env above the function */
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return true;
}

/* A fresh environment whose reads fall through to the sandbox globals. */
static void push_env(struct lua_vm *vm, bool with_globals)
{
	lua_State *L = vm->L;
	lua_newtable(L);
	if (!with_globals)
		return;
	lua_newtable(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->sandbox);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
}

bool lua_vm_load(struct lua_vm *vm, const char *path, const char *options_path, char **err)
{
	lua_State *L = vm->L;
	if (vm->n_scripts == LUA_VM_MAX_SCRIPTS) {
		*err = xasprintf("%s: more than %d policy scripts", path, LUA_VM_MAX_SCRIPTS);
		return false;
	}
	int top = lua_gettop(L);
	vm->current = vm->n_scripts;
	vm->scripts[vm->n_scripts].name = xstrdup(path);
	bool ok = false;
	/* The options: a data file, evaluated with no functions at all in reach. */
	if (options_path) {
		push_env(vm, false);
		if (!load_file_with_env(vm, options_path, err) || !lua_vm_call(vm, 0, err))
			goto out;
		if (!lua_istable(L, -1)) {
			*err = xasprintf("%s: must return a table of options", options_path);
			goto out;
		}
	} else {
		lua_newtable(L);
	}
	push_env(vm, true);
	if (!load_file_with_env(vm, path, err) || !lua_vm_call(vm, 0, err))
		goto out;
	if (!lua_istable(L, -1)) {
		*err = xasprintf("%s: must return a table of phase functions", path);
		goto out;
	}
	lua_getfield(L, -1, "init");
	if (lua_isfunction(L, -1)) {
		lua_pushvalue(L, -3); /* options */
		vm->in_init = true;
		bool ran = lua_vm_call(vm, 1, err);
		vm->in_init = false;
		if (!ran)
			goto out;
		if (lua_isstring(L, -1) && !lua_isnumber(L, -1)) {
			/* init may refuse its options by returning a message */
			*err = xasprintf("%s: init: %s", path, lua_tostring(L, -1));
			goto out;
		}
	}
	lua_pop(L, 1);
	vm->scripts[vm->n_scripts].phases = luaL_ref(L, LUA_REGISTRYINDEX);
	vm->n_scripts++;
	ok = true;
out:
	if (!ok)
		FREE_AND_NULL(vm->scripts[vm->n_scripts].name);
	vm->current = -1;
	lua_settop(L, top);
	return ok;
}

bool lua_vm_push_phase(struct lua_vm *vm, int script, const char *phase)
{
	lua_State *L = vm->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->scripts[script].phases);
	lua_getfield(L, -1, phase);
	lua_remove(L, -2);
	if (lua_isfunction(L, -1)) {
		vm->current = script;
		return true;
	}
	lua_pop(L, 1);
	return false;
}

char *lua_vm_script_string(struct lua_vm *vm, int script, const char *key, bool *other)
{
	lua_State *L = vm->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->scripts[script].phases);
	lua_getfield(L, -1, key);
	char *value = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1)) : NULL;
	*other = !value && !lua_isnil(L, -1);
	lua_pop(L, 2);
	return value;
}

bool lua_vm_has_phase(struct lua_vm *vm, int script, const char *phase)
{
	lua_State *L = vm->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->scripts[script].phases);
	lua_getfield(L, -1, phase);
	bool found = lua_isfunction(L, -1);
	lua_pop(L, 2);
	return found;
}

struct lua_verdict_info lua_vm_take_verdict(struct lua_vm *vm)
{
	lua_State *L = vm->L;
	struct lua_verdict_info v = {LUA_VERDICT_NONE, NULL, NULL, NULL, 0, NULL};
	vm->current = -1;
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return v;
	}
	v.verdict = LUA_VERDICT_INVALID;
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, VERDICT_KEY);
		const char *kind = lua_tostring(L, -1);
		lua_pop(L, 1);
		if (kind && strcmp(kind, "allow") == 0)
			v.verdict = LUA_VERDICT_ALLOW;
		else if (kind && strcmp(kind, "deny") == 0)
			v.verdict = LUA_VERDICT_DENY;
		else if (kind && strcmp(kind, "rewrite") == 0)
			v.verdict = LUA_VERDICT_REWRITE;
		else if (kind && strcmp(kind, "approve") == 0)
			v.verdict = LUA_VERDICT_APPROVE;
		/* The strings stay alive in the registry slot below until the next take. */
		lua_getfield(L, -1, "message");
		v.message = lua_tostring(L, -1);
		lua_getfield(L, -2, "sqlstate");
		v.sqlstate = lua_tostring(L, -1);
		lua_getfield(L, -3, "sql");
		v.sql = lua_tostring(L, -1);
		lua_getfield(L, -4, "ttl");
		v.ttl = (long)lua_tointeger(L, -1);
		lua_getfield(L, -5, "approvers");
		v.approvers = lua_tostring(L, -1);
		lua_pop(L, 5);
	}
	/* Keep the table reachable while the caller reads its strings. */
	lua_setfield(L, LUA_REGISTRYINDEX, "__sieve_last_verdict");
	return v;
}

static char *field_string(lua_State *L, int t, const char *field, size_t *len)
{
	lua_getfield(L, t, field);
	size_t n = 0;
	const char *v = lua_tolstring(L, -1, &n);
	char *copy = NULL;
	if (v) {
		copy = xmalloc(n + 1);
		memcpy(copy, v, n);
		copy[n] = '\0';
	}
	if (len)
		*len = n;
	lua_pop(L, 1);
	return copy;
}

static char **field_names(lua_State *L, int t, const char *field, size_t *n)
{
	lua_getfield(L, t, field);
	*n = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
	char **names = xcalloc(*n ? *n : 1, sizeof(char *));
	for (size_t i = 0; i < *n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		names[i] = xstrdup(lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return names;
}

bool lua_vm_read_masker(struct lua_State *L, int index, struct lua_mask_decl *d)
{
	if (!lua_istable(L, index))
		return false;
	d->kind = field_string(L, index, MASKER_KEY, NULL);
	if (!d->kind)
		return false;
	d->key = field_string(L, index, "key", &d->key_len);
	d->value = field_string(L, index, "value", &d->value_len);
	lua_getfield(L, index, "keep_first");
	d->keep_first = (unsigned)lua_tointeger(L, -1);
	lua_getfield(L, index, "keep_last");
	d->keep_last = (unsigned)lua_tointeger(L, -1);
	lua_pop(L, 2);
	return true;
}

struct lua_mask_decl *lua_vm_mask_declarations(struct lua_vm *vm, size_t *count)
{
	lua_State *L = vm->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, vm->masks);
	size_t n = (size_t)lua_rawlen(L, -1);
	struct lua_mask_decl *d = xcalloc(n ? n : 1, sizeof(*d));
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		int t = lua_gettop(L);
		d[i].script = field_string(L, t, "script", NULL);
		d[i].pattern = field_string(L, t, "pattern", NULL);
		d[i].roles = field_names(L, t, "roles", &d[i].n_roles);
		d[i].groups = field_names(L, t, "groups", &d[i].n_groups);
		lua_getfield(L, t, "masker");
		lua_vm_read_masker(L, lua_gettop(L), &d[i]);
		lua_settop(L, t - 1);
	}
	lua_pop(L, 1);
	*count = n;
	return d;
}

void lua_vm_mask_decl_clear(struct lua_mask_decl *d)
{
	free(d->script);
	free(d->pattern);
	free(d->kind);
	if (d->key) {
		OPENSSL_cleanse(d->key, d->key_len);
		free(d->key);
	}
	free(d->value);
	for (size_t j = 0; j < d->n_roles; j++)
		free(d->roles[j]);
	free(d->roles);
	for (size_t j = 0; j < d->n_groups; j++)
		free(d->groups[j]);
	free(d->groups);
	memset(d, 0, sizeof(*d));
}

void lua_vm_mask_declarations_free(struct lua_mask_decl *d, size_t count)
{
	for (size_t i = 0; i < count; i++)
		lua_vm_mask_decl_clear(&d[i]);
	free(d);
}
