/*
 * The Lua 5.4 state that runs policy scripts: one per process, swapped
 * whole on RELOAD.
 *
 * Sandbox: the base library without dofile/loadfile/collectgarbage/print,
 * load() of text only, string (no string.dump), table, math, utf8 and
 * coroutine; no io, os, debug or package. require() knows one module,
 * "sieve". Each script runs in its own environment, so one script's
 * globals are not another's.
 *
 * Budgets: every call from C (loading, init, each phase) may run at most
 * policy_max_instructions VM instructions, and the whole state may hold
 * at most policy_max_memory bytes; going over is an error of that call,
 * and the state stays usable.
 */
#ifndef PGSIEVE_LUA_VM_H
#define PGSIEVE_LUA_VM_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct lua_State;
struct lua_vm;

#define LUA_VM_MAX_SCRIPTS 32

struct lua_vm *lua_vm_new(size_t max_memory, long max_instructions, char **err) MUST_CHECK;
void lua_vm_free(struct lua_vm *vm);
struct lua_State *lua_vm_state(struct lua_vm *vm);

/*
 * Loads a script: its chunk must return a table of phase functions; its
 * init(options) runs with the table the options file returns (a Lua file
 * of data only; NULL: an empty table). False and *err ("file:line:
 * message") if any of it fails.
 */
bool lua_vm_load(struct lua_vm *vm, const char *path, const char *options_path,
                 char **err) MUST_CHECK;
int lua_vm_script_count(const struct lua_vm *vm);
const char *lua_vm_script_name(const struct lua_vm *vm, int script);

/*
 * A string field of the table the script returned (a declaration such as
 * verdict_cache), malloc'd; NULL when absent, with *other set when the
 * field holds something else than a string.
 */
char *lua_vm_script_string(struct lua_vm *vm, int script, const char *key, bool *other);
/* Whether the script's table has this phase function. */
bool lua_vm_has_phase(struct lua_vm *vm, int script, const char *phase);
/* Pushes the script's phase function and returns true, or pushes nothing. */
bool lua_vm_push_phase(struct lua_vm *vm, int script, const char *phase);
/*
 * Calls the function under the arguments on the stack, within budget,
 * leaving its one result. False: nothing left, *err says what went wrong
 * ("file:line: message", or the budget that ran out).
 */
bool lua_vm_call(struct lua_vm *vm, int nargs, char **err) MUST_CHECK;

/* What a phase returned: the verdict constructors of the sieve module. */
enum lua_verdict {
	LUA_VERDICT_NONE, /* nil: no opinion */
	LUA_VERDICT_ALLOW,
	LUA_VERDICT_DENY,
	LUA_VERDICT_REWRITE,
	LUA_VERDICT_APPROVE,
	LUA_VERDICT_INVALID, /* something else: a script bug */
};

struct lua_verdict_info {
	enum lua_verdict verdict;
	const char *message;   /* deny: the client's message; approve: the reason */
	const char *sqlstate;  /* deny: five characters */
	const char *sql;       /* rewrite: the new text */
	long ttl;              /* approve: seconds, 0 = the default */
	const char *approvers; /* approve: "name,name" who may answer, or NULL */
};

/*
 * Reads the value on top of the stack as a verdict (and pops it). Strings
 * point into the Lua state: copy them before the next call.
 */
struct lua_verdict_info lua_vm_take_verdict(struct lua_vm *vm);

/*
 * What the scripts' init() declared with sieve.mask_column(pattern, masker
 * [, {roles = {...}, groups = {...}}]), in order, copied out of the state:
 * kind is "redact", "null", "email", "partial", "hash" or "fixed".
 */
struct lua_mask_decl {
	char *script;
	char *pattern; /* "schema.table.column", parts may hold '*' */
	char *kind;
	unsigned keep_first, keep_last; /* partial */
	char *key;                      /* hash: NULL = the configured key */
	size_t key_len;
	char *value; /* fixed */
	size_t value_len;
	char **roles; /* empty: every role */
	size_t n_roles;
	char **groups; /* empty: every identity */
	size_t n_groups;
};
struct lua_mask_decl *lua_vm_mask_declarations(struct lua_vm *vm, size_t *count);
/*
 * Reads the sieve.mask masker at index into d's kind and arguments (the
 * caller frees them as a declaration's); false, with nothing read, when
 * the value is not one.
 */
bool lua_vm_read_masker(struct lua_State *L, int index, struct lua_mask_decl *d);
void lua_vm_mask_declarations_free(struct lua_mask_decl *decls, size_t count);
/* Frees what one declaration holds (the key wiped) and zeroes it. */
void lua_vm_mask_decl_clear(struct lua_mask_decl *d);

/* Memory the state holds now, for SHOW POLICIES. */
size_t lua_vm_memory(const struct lua_vm *vm);

#endif
