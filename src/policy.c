/*
 * The policy pipeline's statement phase: analysis (sqlinfo), the Lua
 * tables scripts receive, the order of scripts and how their verdicts
 * combine; see policy.h.
 */
#include "policy.h"
#include "approvals.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "lua_vm.h"
#include "mask.h"
#include "masking.h"
#include "outcome.h"
#include "pgtype.h"
#include "sqlinfo.h"
#include "token.h"
#include "varcache.h"
#include "verdict_cache.h"

#include <jansson.h>
#include <lauxlib.h>
#include <pg_query.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry key of the table of session tables, by client id. */
#define SESSIONS_KEY "pgsieve.sessions"
/* Rewrites of one statement, at most: two scripts rewriting each other's work loop. */
#define MAX_REWRITES 16

static struct lua_vm *vm;
static struct sqlinfo_cache *cache;
/* Some script of the loaded set has this phase: the others cost nothing. */
static bool has_bind, has_complete;

/* What a script's statement verdict depends on, as it declares with verdict_cache. */
enum cache_level {
	CACHE_NONE,      /* anything: it is asked every time */
	CACHE_TEXT,      /* the statement's text, the user and the database */
	CACHE_STRUCTURE, /* the same, but not the values of its literals */
};
static enum cache_level cache_level[LUA_VM_MAX_SCRIPTS];
static bool has_statement[LUA_VM_MAX_SCRIPTS];
static bool has_columns[LUA_VM_MAX_SCRIPTS];
/* Counts Lua states: a Lua masker made in one is not called in the next. */
static uint64_t vm_generation;
static void column_plans_flush(void);
static struct verdict_cache *verdicts;
#define VERDICT_CACHE_ENTRIES 4096

/* Per script of the loaded set, for SHOW POLICIES; they start again with a new set. */
static struct policy_script_stats stats[LUA_VM_MAX_SCRIPTS];

bool policy_enabled(void)
{
	return vm != NULL;
}

bool policy_wants_bind(void)
{
	return has_bind;
}

bool policy_wants_complete(void)
{
	return has_complete;
}

/* "path" or "path:options" entries, comma-separated. */
static bool load_scripts(struct lua_vm *fresh, const char *list, char **err)
{
	char *copy = xstrdup(list);
	bool ok = true;
	char *save = NULL;
	for (char *item = strtok_r(copy, ",", &save); ok && item;
	     item = strtok_r(NULL, ",", &save)) {
		while (*item == ' ' || *item == '\t')
			item++;
		size_t n = strlen(item);
		while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
			item[--n] = '\0';
		if (!*item)
			continue;
		char *options = strchr(item, ':');
		if (options)
			*options++ = '\0';
		char *why = NULL;
		if (!lua_vm_load(fresh, item, options, &why)) {
			*err = xasprintf("policy_scripts: %s", why);
			free(why);
			ok = false;
		}
	}
	free(copy);
	return ok;
}

/* The verdict_cache declarations of a new script set: absent, "text" or "structure". */
static bool read_cache_levels(struct lua_vm *fresh, enum cache_level *levels, char **err)
{
	for (int i = 0; i < lua_vm_script_count(fresh); i++) {
		bool other;
		char *level = lua_vm_script_string(fresh, i, "verdict_cache", &other);
		if (!level && !other)
			continue;
		if (level && strcmp(level, "text") == 0)
			levels[i] = CACHE_TEXT;
		else if (level && strcmp(level, "structure") == 0)
			levels[i] = CACHE_STRUCTURE;
		else
			*err = xasprintf("policy_scripts: %s: verdict_cache must be \"text\" or "
			                 "\"structure\"",
			                 lua_vm_script_name(fresh, i));
		free(level);
		if (!levels[i])
			return false;
	}
	return true;
}

bool policy_configure(char **err)
{
	if (!cf->policy_scripts) {
		if (vm)
			log_info("policy: no policy_scripts, statements go through unchecked");
		column_plans_flush();
		lua_vm_free(vm);
		vm = NULL;
		vm_generation++;
		has_bind = has_complete = false;
		verdict_cache_free(verdicts);
		verdicts = NULL;
		return masking_configure(NULL, 0, false, err);
	}
	struct lua_vm *fresh =
	    lua_vm_new((size_t)cf->policy_max_memory, cf->policy_max_instructions, err);
	if (!fresh)
		return false;
	enum cache_level levels[LUA_VM_MAX_SCRIPTS] = {0};
	if (!load_scripts(fresh, cf->policy_scripts, err) ||
	    !read_cache_levels(fresh, levels, err)) {
		lua_vm_free(fresh);
		return false;
	}
	/* The masked columns the new scripts declared: the last thing that can refuse them. */
	size_t n_masks;
	struct lua_mask_decl *masks = lua_vm_mask_declarations(fresh, &n_masks);
	bool every_column = false;
	for (int i = 0; i < lua_vm_script_count(fresh); i++)
		every_column |= lua_vm_has_phase(fresh, i, "columns");
	bool masks_ok = masking_configure(masks, n_masks, every_column, err);
	lua_vm_mask_declarations_free(masks, n_masks);
	if (!masks_ok) {
		lua_vm_free(fresh);
		return false;
	}
	lua_State *L = lua_vm_state(fresh);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	/* Session tags live in the state: a new set of scripts starts them afresh. */
	column_plans_flush();
	lua_vm_free(vm);
	vm = fresh;
	vm_generation++;
	memset(stats, 0, sizeof(stats));
	has_bind = has_complete = false;
	bool caching = false;
	for (int i = 0; i < lua_vm_script_count(vm); i++) {
		has_bind |= lua_vm_has_phase(vm, i, "bind");
		has_complete |= lua_vm_has_phase(vm, i, "complete");
		has_statement[i] = lua_vm_has_phase(vm, i, "statement");
		has_columns[i] = lua_vm_has_phase(vm, i, "columns");
		cache_level[i] = levels[i];
		caching |= levels[i] != CACHE_NONE;
	}
	/* Verdicts of the old scripts mean nothing for the new ones. */
	verdict_cache_free(verdicts);
	verdicts = caching ? verdict_cache_new(VERDICT_CACHE_ENTRIES) : NULL;
	if (!cache) {
		sqlinfo_set_fingerprints(
		    false); /* scripts that read it get it from stmt_lazy_field */
		cache = sqlinfo_cache_new(SQLINFO_CACHE_DEFAULT);
	}
	log_info("policy: %d script%s loaded (%s mode)", lua_vm_script_count(vm),
	         lua_vm_script_count(vm) == 1 ? "" : "s", cf->policy_mode);
	return true;
}

int policy_script_count(void)
{
	return vm ? lua_vm_script_count(vm) : 0;
}

const char *policy_script_name(int script)
{
	return lua_vm_script_name(vm, script);
}

const struct policy_script_stats *policy_script_stats(int script)
{
	return &stats[script];
}

size_t policy_memory(void)
{
	return vm ? lua_vm_memory(vm) : 0;
}

static struct pktbuf masker_scratch;

void policy_shutdown(void)
{
	column_plans_flush();
	pktbuf_free(&masker_scratch);
	lua_vm_free(vm);
	vm = NULL;
	vm_generation++;
	has_bind = has_complete = false;
	verdict_cache_free(verdicts);
	verdicts = NULL;
	masking_shutdown();
	sqlinfo_cache_free(cache);
	cache = NULL;
	sqlinfo_shutdown();
}

void policy_result_clear(struct policy_result *r)
{
	FREE_AND_NULL(r->sql);
	FREE_AND_NULL(r->message);
	FREE_AND_NULL(r->script);
	FREE_AND_NULL(r->fingerprint);
	FREE_AND_NULL(r->approvers);
	r->ttl = 0;
	r->decision = POLICY_PASS;
}

/* Lua tables */

static void set_str(lua_State *L, const char *key, const char *value)
{
	if (!value)
		return;
	lua_pushstring(L, value);
	lua_setfield(L, -2, key);
}

static void set_bool(lua_State *L, const char *key, bool value)
{
	lua_pushboolean(L, value);
	lua_setfield(L, -2, key);
}

/* stmt.fingerprint on first read: computing it for every statement doubles the parsing. */
static int stmt_lazy_field(lua_State *L)
{
	const char *key = lua_tostring(L, 2);
	if (!key || strcmp(key, "fingerprint") != 0)
		return 0;
	lua_pushliteral(L, "sql");
	lua_rawget(L, 1);
	const char *sql = lua_tostring(L, -1);
	PgQueryFingerprintResult fp = pg_query_fingerprint(sql ? sql : "");
	if (fp.error || !fp.fingerprint_str)
		lua_pushnil(L);
	else
		lua_pushstring(L, fp.fingerprint_str);
	pg_query_free_fingerprint_result(fp);
	lua_pushliteral(L, "fingerprint");
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

static void push_stmt(lua_State *L, const struct sqlinfo_stmt *st, bool extended)
{
	lua_createtable(L, 0, 24);
	if (!st->fingerprint) {
		/* luaL_newmetatable pushes the table, new (then filled) or the existing one. */
		if (luaL_newmetatable(L, "pgsieve.stmt")) {
			lua_pushcfunction(L, stmt_lazy_field);
			lua_setfield(L, -2, "__index");
		}
		lua_setmetatable(L, -2);
	}
	lua_pushlstring(L, st->sql, st->sql_len);
	lua_setfield(L, -2, "sql");
	set_str(L, "kind", sqlinfo_kind_name(st->kind));
	set_str(L, "command", st->command);
	set_str(L, "setting", st->setting);
	set_str(L, "fingerprint", st->fingerprint);
	set_str(L, "protocol", extended ? "extended" : "simple");
	set_bool(L, "multi", st->multi);
	set_bool(L, "has_where", st->has_where);
	set_bool(L, "unfiltered_write", st->unfiltered_write);
	set_bool(L, "writes", st->writes);
	set_bool(L, "opaque", st->opaque);
	set_bool(L, "explain", st->explain);
	set_bool(L, "explain_analyze", st->explain_analyze);
	set_bool(L, "row_locks", st->row_locks);
	set_bool(L, "copy_program", st->copy_program);
	set_bool(L, "copy_file", st->copy_file);
	lua_createtable(L, (int)st->n_tables, 0);
	for (size_t i = 0; i < st->n_tables; i++) {
		const struct sqlinfo_table *t = &st->tables[i];
		lua_createtable(L, 0, 3);
		set_str(L, "schema", t->schema);
		set_str(L, "name", t->name);
		set_str(L, "access", sqlinfo_access_name(t->access));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "tables");
	lua_createtable(L, (int)st->n_columns, 0);
	for (size_t i = 0; i < st->n_columns; i++) {
		const struct sqlinfo_column *col = &st->columns[i];
		lua_createtable(L, 0, 5);
		set_str(L, "schema", col->schema);
		set_str(L, "table", col->table);
		set_str(L, "name", col->name);
		set_str(L, "access", sqlinfo_access_name(col->access));
		lua_pushboolean(L, col->derived);
		lua_setfield(L, -2, "derived");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "columns");
	lua_createtable(L, (int)st->n_functions, 0);
	for (size_t i = 0; i < st->n_functions; i++) {
		lua_pushstring(L, st->functions[i].qualified);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "functions");
}

/* A JSON value as Lua sees it; claims nested deeper than this are cut. */
#define MAX_CLAIM_DEPTH 16

static void push_json(lua_State *L, const json_t *v, int depth)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		lua_createtable(L, 0, (int)json_object_size(v));
		const char *key;
		json_t *item;
		json_object_foreach((json_t *)v, key, item)
		{
			if (depth >= MAX_CLAIM_DEPTH)
				break;
			push_json(L, item, depth + 1);
			lua_setfield(L, -2, key);
		}
		break;
	}
	case JSON_ARRAY: {
		lua_createtable(L, (int)json_array_size(v), 0);
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item)
		{
			if (depth >= MAX_CLAIM_DEPTH)
				break;
			push_json(L, item, depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	}
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, json_is_true(v));
		break;
	case JSON_NULL:
		lua_pushnil(L);
		break;
	}
}

/* session.identity: who logged in with a token, and all its claims. */
static void push_identity(lua_State *L, const struct token_identity *id)
{
	lua_createtable(L, 0, 6);
	set_str(L, "name", id->identity);
	set_str(L, "subject", id->subject);
	set_str(L, "issuer", id->issuer);
	lua_createtable(L, (int)id->n_groups, 0);
	for (size_t i = 0; i < id->n_groups; i++) {
		lua_pushstring(L, id->groups[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "groups");
	if (id->exp) {
		lua_pushinteger(L, (lua_Integer)id->exp);
		lua_setfield(L, -2, "expires");
	}
	if (id->claims) {
		push_json(L, id->claims, 0);
		lua_setfield(L, -2, "claims");
	}
}

/* The client's session table, made on first use; its tags live as long as the client. */
static void push_session(lua_State *L, const struct client *c)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	lua_rawgeti(L, -1, (lua_Integer)c->id);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 8);
		lua_pushinteger(L, (lua_Integer)c->id);
		lua_setfield(L, -2, "id");
		set_str(L, "user", c->user);
		set_str(L, "database", c->dbname);
		set_str(L, "client_addr", c->addr_str);
		lua_newtable(L);
		lua_setfield(L, -2, "tags");
		if (c->identity) {
			push_identity(L, c->identity);
			lua_setfield(L, -2, "identity");
		}
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, (lua_Integer)c->id);
	}
	lua_remove(L, -2);
	int app = varcache_index("application_name");
	const char *name = app >= 0 ? varcache_get(&c->vars, app) : NULL;
	lua_pushstring(L, name ? name : "");
	lua_setfield(L, -2, "application_name");
}

char *policy_raise_sql(const char *sqlstate, const char *message)
{
	char state[6] = "42501";
	if (strlen(sqlstate) == 5 && strspn(sqlstate, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
		memcpy(state, sqlstate, 5);
	/* An E'' literal with every byte that could end it or the dollar quote escaped. */
	size_t n = strlen(message);
	char *lit = xmalloc(n * 4 + 1), *w = lit;
	for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
		if (*p == '\\' || *p == '\'' || *p == '$' || *p < 0x20) {
			w += sprintf(w, "\\x%02x", *p);
		} else {
			*w++ = (char)*p;
		}
	}
	*w = '\0';
	char *sql = xasprintf("DO $pgsieve$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', "
	                      "MESSAGE = E'%s'; END$pgsieve$",
	                      state, lit);
	free(lit);
	return sql;
}

void policy_client_gone(struct client *c)
{
	if (!vm)
		return;
	lua_State *L = lua_vm_state(vm);
	lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	lua_pushnil(L);
	lua_rawseti(L, -2, (lua_Integer)c->id);
	lua_pop(L, 1);
}

/* Running the scripts */

static bool observing(void)
{
	return strcmp(cf->policy_mode, "observe") == 0;
}

static void deny(struct policy_result *out, const char *sqlstate, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static void deny(struct policy_result *out, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[1024];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out->decision = POLICY_DENIED;
	free(out->message);
	out->message = xstrdup(buf);
	strlcpy_s(out->sqlstate, sqlstate, sizeof(out->sqlstate));
}

/*
 * Keeps a verdict of a script that declared verdict_cache. An approval
 * is a request of its own each time; a rewrite embeds the literals, so it
 * is kept for the exact text only.
 */
/* What a script's verdict is cached by: the statement's text, or its structure's. */
static void verdict_key(int s, const struct sqlinfo_stmt *st, const struct sqlinfo_stmt *shape,
                        const char **key, size_t *len)
{
	const struct sqlinfo_stmt *k = cache_level[s] == CACHE_STRUCTURE ? shape : st;
	*key = k->sql;
	*len = k->sql_len;
}

static void remember(int s, uint8_t variant, const struct client *c, const struct sqlinfo_stmt *st,
                     const struct sqlinfo_stmt *shape, const struct lua_verdict_info *v)
{
	if (cache_level[s] == CACHE_NONE || v->verdict == LUA_VERDICT_APPROVE ||
	    v->verdict == LUA_VERDICT_INVALID ||
	    (v->verdict == LUA_VERDICT_REWRITE && cache_level[s] != CACHE_TEXT))
		return;
	struct cached_verdict cv = {.verdict = v->verdict, .message = v->message, .sql = v->sql};
	if (v->sqlstate)
		strlcpy_s(cv.sqlstate, v->sqlstate, sizeof(cv.sqlstate));
	const char *key;
	size_t len;
	verdict_key(s, st, shape, &key, &len);
	verdict_cache_put(verdicts, s, variant, c->user, c->dbname, key, len, &cv);
}

/* The statement's fingerprint (libpg_query's), computed when the analysis left it out. */
static char *statement_fingerprint(const struct sqlinfo_stmt *st)
{
	if (st->fingerprint)
		return xstrdup(st->fingerprint);
	PgQueryFingerprintResult fp = pg_query_fingerprint(st->sql ? st->sql : "");
	char *s = xstrdup(!fp.error && fp.fingerprint_str ? fp.fingerprint_str : "");
	pg_query_free_fingerprint_result(fp);
	return s;
}

/* A just-in-time grant (APPROVE ... FOR) lets this statement through without a person. */
static bool approval_granted(struct client *c, const struct sqlinfo_stmt *st, const char *script)
{
	char *fingerprint = statement_fingerprint(st);
	uint64_t grant = 0;
	bool ok =
	    approvals_grant_use(c->dbname, c->user, c->identity ? c->identity->identity : NULL,
	                        c->id, c->addr_str, fingerprint, &grant);
	if (ok)
		cl_log(LOG_LVL_LOG, c, "policy: %s asks for approval, grant %llu covers it", script,
		       (unsigned long long)grant);
	free(fingerprint);
	return ok;
}

/*
 * One statement through every script. A rewrite leaves its text in *sql
 * (malloc'd; it is analysed again). False when it is denied (*out says why).
 */
static bool run_statement(struct client *c, char **sql, const struct sqlinfo_stmt *first,
                          const struct sqlinfo_stmt *first_shape, bool extended,
                          struct policy_result *out)
{
	lua_State *L = lua_vm_state(vm);
	const struct sqlinfo_stmt *st = first, *shape = first_shape;
	struct sqlinfo *reanalysed = NULL;
	int rewrites = 0;
	bool denied = false;
	for (int s = 0; s < lua_vm_script_count(vm) && !denied; s++) {
		if (!has_statement[s])
			continue;
		const char *script = lua_vm_script_name(vm, s);
		uint8_t variant = (uint8_t)((extended ? 1 : 0) | (st->multi ? 2 : 0));
		const struct cached_verdict *cached = NULL;
		if (cache_level[s] != CACHE_NONE) {
			const char *key;
			size_t len;
			verdict_key(s, st, shape, &key, &len);
			cached =
			    verdict_cache_get(verdicts, s, variant, c->user, c->dbname, key, len);
		}
		struct lua_verdict_info v;
		if (cached) {
			stats[s].cached++;
			v = (struct lua_verdict_info){cached->verdict,
			                              cached->message,
			                              cached->sqlstate,
			                              cached->sql,
			                              0,
			                              NULL};
		} else {
			if (!lua_vm_push_phase(vm, s, "statement"))
				continue;
			push_stmt(L, st, extended);
			push_session(L, c);
			char *err = NULL;
			usec_t started = now_usec();
			bool ran = lua_vm_call(vm, 2, &err);
			stats[s].calls++;
			stats[s].usec += (uint64_t)(now_usec() - started);
			if (!ran) {
				stats[s].errors++;
				cl_log(LOG_LVL_WARNING, c, "policy: %s: %s", script, err);
				free(err);
				if (strcmp(cf->policy_on_error, "allow") != 0) {
					deny(out, "42501",
					     "statement denied: the policy could not decide");
					denied = true;
				}
				continue;
			}
			v = lua_vm_take_verdict(vm);
			remember(s, variant, c, st, shape, &v);
		}
		switch (v.verdict) {
		case LUA_VERDICT_NONE:
		case LUA_VERDICT_ALLOW:
			break;
		case LUA_VERDICT_DENY:
			free(out->script);
			out->script = xstrdup(script);
			stats[s].denials++;
			cl_log(LOG_LVL_LOG, c, "policy: %s denies: %s", script, v.message);
			deny(out, v.sqlstate, "%s", v.message);
			denied = true;
			break;
		case LUA_VERDICT_APPROVE:
			if (c->approval_passed)
				break; /* a person said yes to this very message */
			if (approval_granted(c, st, script))
				break;
			stats[s].approvals++;
			cl_log(LOG_LVL_LOG, c, "policy: %s asks for approval: %s", script,
			       v.message ? v.message : "");
			/* The first request is the one held; later scripts may still deny. */
			if (!out->fingerprint) {
				out->fingerprint = statement_fingerprint(st);
				free(out->script);
				out->script = xstrdup(script);
				free(out->message);
				out->message = xstrdup(v.message ? v.message : "");
				out->approvers = v.approvers ? xstrdup(v.approvers) : NULL;
				out->ttl = v.ttl;
			}
			break;
		case LUA_VERDICT_REWRITE: {
			if (++rewrites > MAX_REWRITES) {
				deny(out, "42501", "statement denied: rewritten too many times");
				denied = true;
				break;
			}
			stats[s].rewrites++;
			free(out->script);
			out->script = xstrdup(script);
			cl_log(LOG_LVL_DEBUG, c, "policy: %s rewrites the statement", script);
			struct sqlinfo *info = sqlinfo_cache_analyse(cache, v.sql, strlen(v.sql));
			if (info->error != SQLINFO_OK || info->n_stmts == 0) {
				cl_log(LOG_LVL_WARNING, c,
				       "policy: %s: its rewrite does not parse: %s", script,
				       info->error_message ? info->error_message : "empty");
				sqlinfo_free(info);
				deny(out, "42501",
				     "statement denied: the policy's rewrite is not valid SQL");
				denied = true;
				break;
			}
			free(*sql);
			*sql = xstrdup(v.sql);
			sqlinfo_free(reanalysed);
			reanalysed = info;
			st = &info->stmts[0];
			shape = sqlinfo_structure_of(info, 0);
			break;
		}
		case LUA_VERDICT_INVALID:
			stats[s].errors++;
			cl_log(LOG_LVL_WARNING, c,
			       "policy: %s: statement() returned something that is "
			       "not a verdict",
			       script);
			if (strcmp(cf->policy_on_error, "allow") != 0) {
				deny(out, "42501", "statement denied: the policy could not decide");
				denied = true;
			}
			break;
		}
	}
	char *why = NULL;
	if (!denied && masking_active() && !masking_strict_allows(c, st, &why)) {
		cl_log(LOG_LVL_LOG, c, "policy: masking denies: %s", why);
		deny(out, "42501", "statement denied: %s", why);
		free(why);
		denied = true;
	}
	sqlinfo_free(reanalysed);
	return !denied;
}

void policy_check(struct client *c, const char *sql, size_t len, bool extended,
                  struct policy_result *out)
{
	memset(out, 0, sizeof(*out));
	out->decision = POLICY_PASS;
	if (!vm)
		return;
	/*
	 * The analysis reads text as a session with standard_conforming_strings
	 * on and an ASCII-safe encoding would: in any other session the server
	 * could run something else than what the scripts were shown.
	 */
	const char *encoding = varcache_get(&c->vars, varcache_index("client_encoding"));
	const char *scs = varcache_get(&c->vars, varcache_index("standard_conforming_strings"));
	if (!sqlinfo_session_safe(encoding, scs)) {
		deny(out, "0A000",
		     "statement denied: policies need standard_conforming_strings on and an "
		     "ASCII-safe client_encoding (this session has %s, %s)",
		     scs ? scs : "unknown", encoding ? encoding : "unknown");
		goto done;
	}
	struct sqlinfo *info = sqlinfo_cache_analyse(cache, sql, len);
	out->multi = info->n_stmts > 1;
	if (info->error != SQLINFO_OK) {
		/* What cannot be analysed cannot be checked: fail closed, as PostgreSQL would word
		 * it. */
		cl_log(LOG_LVL_LOG, c, "policy: statement not analysed: %s", info->error_message);
		if (strcmp(cf->policy_on_error, "allow") != 0)
			deny(out, info->error_sqlstate, "%s", info->error_message);
	} else {
		/* A table's columns may change: masked ones are looked up again once it ran. */
		for (size_t i = 0; masking_active() && i < info->n_stmts; i++)
			if (info->stmts[i].kind == SQLINFO_DDL)
				c->catalog_dirty = true;
		/* Rewritten statements' new texts; NULL: none was rewritten (the usual case). */
		char **texts = NULL;
		for (size_t i = 0; i < info->n_stmts && out->decision != POLICY_DENIED; i++) {
			const struct sqlinfo_stmt *st = &info->stmts[i];
			char *rewritten = NULL;
			if (run_statement(c, &rewritten, st, sqlinfo_structure_of(info, i),
			                  extended, out) &&
			    rewritten && strcmp(rewritten, st->sql) != 0) {
				if (!texts)
					texts = xcalloc(info->n_stmts, sizeof(char *));
				texts[i] = rewritten;
			} else {
				free(rewritten);
			}
		}
		if (out->decision != POLICY_DENIED && texts) {
			/* The statements, each as it now reads, in one message again. */
			size_t total = 1;
			for (size_t i = 0; i < info->n_stmts; i++)
				total += strlen(texts[i] ? texts[i] : info->stmts[i].sql) + 2;
			char *joined = xmalloc(total);
			joined[0] = '\0';
			for (size_t i = 0; i < info->n_stmts; i++) {
				if (i)
					strcat(joined, "; ");
				strcat(joined, texts[i] ? texts[i] : info->stmts[i].sql);
			}
			out->decision = POLICY_REWRITTEN;
			out->sql = joined;
		}
		for (size_t i = 0; texts && i < info->n_stmts; i++)
			free(texts[i]);
		free(texts);
	}
	sqlinfo_free(info);
	/* Any approval holds the message, unless something in it is denied anyway. */
	if (out->fingerprint && out->decision != POLICY_DENIED) {
		free(out->sql);
		out->sql = NULL;
		out->decision = POLICY_APPROVE;
	}
done:
	if (out->decision != POLICY_PASS && observing()) {
		cl_log(LOG_LVL_LOG, c, "policy (observe): would %s: %s",
		       out->decision == POLICY_DENIED    ? "deny"
		       : out->decision == POLICY_APPROVE ? "hold for approval"
		                                         : "rewrite",
		       out->decision == POLICY_REWRITTEN ? out->sql : out->message);
		policy_result_clear(out);
	}
}

/* Runs a session phase (connect, disconnect) of every script; the first deny wins. */
static bool run_session_phase(struct client *c, const char *phase, struct policy_result *out)
{
	lua_State *L = lua_vm_state(vm);
	for (int s = 0; s < lua_vm_script_count(vm); s++) {
		if (!lua_vm_push_phase(vm, s, phase))
			continue;
		push_session(L, c);
		char *err = NULL;
		const char *script = lua_vm_script_name(vm, s);
		if (!lua_vm_call(vm, 1, &err)) {
			stats[s].errors++;
			cl_log(LOG_LVL_WARNING, c, "policy: %s: %s: %s", script, phase, err);
			free(err);
			if (strcmp(cf->policy_on_error, "allow") != 0 && out) {
				deny(out, "42501", "login denied: the policy could not decide");
				return false;
			}
			continue;
		}
		struct lua_verdict_info v = lua_vm_take_verdict(vm);
		if (v.verdict == LUA_VERDICT_DENY && out) {
			stats[s].denials++;
			cl_log(LOG_LVL_LOG, c, "policy: %s refuses the login: %s", script,
			       v.message);
			deny(out, v.sqlstate, "%s", v.message);
			free(out->script);
			out->script = xstrdup(script);
			return false;
		}
	}
	return true;
}

void policy_connect(struct client *c, struct policy_result *out)
{
	memset(out, 0, sizeof(*out));
	out->decision = POLICY_PASS;
	if (!vm)
		return;
	run_session_phase(c, "connect", out);
	if (out->decision == POLICY_DENIED && observing()) {
		cl_log(LOG_LVL_LOG, c, "policy (observe): would refuse the login: %s",
		       out->message);
		policy_result_clear(out);
	}
}

void policy_disconnect(struct client *c)
{
	if (vm)
		run_session_phase(c, "disconnect", NULL);
}

/* The analysis of a checked statement's text as the server got it; NULL if it has none. */
static struct sqlinfo *analysis_of(const struct checked_stmt *st)
{
	struct sqlinfo *info = sqlinfo_cache_analyse(cache, st->sent, strlen(st->sent));
	if (info->error == SQLINFO_OK && info->n_stmts > 0)
		return info;
	sqlinfo_free(info);
	return NULL;
}

static void push_params(lua_State *L, const struct bind_param *params, size_t n)
{
	lua_createtable(L, (int)n, 2);
	lua_pushinteger(L, (lua_Integer)n);
	lua_setfield(L, -2, "n");
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, params[i].binary ? "binary" : "text");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "formats");
	for (size_t i = 0; i < n; i++) {
		if (params[i].len < 0)
			continue; /* NULL: params[i] is nil, params.n still counts it */
		lua_pushlstring(L, (const char *)params[i].value, (size_t)params[i].len);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

void policy_bind(struct client *c, const struct checked_stmt *st, const struct bind_param *params,
                 size_t n_params, struct policy_result *out)
{
	memset(out, 0, sizeof(*out));
	out->decision = POLICY_PASS;
	if (!has_bind || !st)
		return;
	struct sqlinfo *info = analysis_of(st);
	if (!info)
		return; /* let through by policy_on_error = allow at Parse */
	lua_State *L = lua_vm_state(vm);
	for (int s = 0; s < lua_vm_script_count(vm) && out->decision != POLICY_DENIED; s++) {
		if (!lua_vm_push_phase(vm, s, "bind"))
			continue;
		push_stmt(L, &info->stmts[0], true);
		push_params(L, params, n_params);
		push_session(L, c);
		char *err = NULL;
		const char *script = lua_vm_script_name(vm, s);
		bool ran = lua_vm_call(vm, 3, &err);
		stats[s].calls++;
		struct lua_verdict_info v = {LUA_VERDICT_INVALID, NULL, NULL, NULL, 0, NULL};
		if (ran)
			v = lua_vm_take_verdict(vm);
		if (v.verdict == LUA_VERDICT_DENY) {
			stats[s].denials++;
			cl_log(LOG_LVL_LOG, c, "policy: %s denies the parameters: %s", script,
			       v.message);
			deny(out, v.sqlstate, "%s", v.message);
			out->script = xstrdup(script);
		} else if (v.verdict != LUA_VERDICT_NONE && v.verdict != LUA_VERDICT_ALLOW) {
			/* An error, or a verdict with no meaning here (rewrite, approve). */
			stats[s].errors++;
			cl_log(LOG_LVL_WARNING, c, "policy: %s: bind: %s", script,
			       ran ? "bind() may only allow or deny" : err);
			if (strcmp(cf->policy_on_error, "allow") != 0) {
				deny(out, "42501", "statement denied: the policy could not decide");
				out->script = xstrdup(script);
			}
		}
		free(err);
	}
	sqlinfo_free(info);
	if (out->decision == POLICY_DENIED && observing()) {
		cl_log(LOG_LVL_LOG, c, "policy (observe): would deny the parameters: %s",
		       out->message);
		policy_result_clear(out);
	}
}

static void push_outcome(lua_State *L, const struct outcome *o)
{
	lua_createtable(L, 0, 6);
	set_str(L, "status", outcome_status_name(o->status));
	set_str(L, "command", o->command);
	lua_pushinteger(L, (lua_Integer)o->rows);
	lua_setfield(L, -2, "rows");
	lua_pushnumber(L, (lua_Number)o->duration / 1000.0);
	lua_setfield(L, -2, "duration_ms");
	if (o->sqlstate[0])
		set_str(L, "sqlstate", o->sqlstate);
	set_str(L, "message", o->message);
}

void policy_complete(struct client *c, const struct checked_stmt *st, size_t index,
                     const struct outcome *o)
{
	if (!has_complete)
		return;
	struct sqlinfo *info = analysis_of(st);
	if (!info)
		return;
	lua_State *L = lua_vm_state(vm);
	for (int s = 0; index < info->n_stmts && s < lua_vm_script_count(vm); s++) {
		if (!lua_vm_push_phase(vm, s, "complete"))
			continue;
		push_outcome(L, o);
		push_stmt(L, &info->stmts[index], st->extended);
		push_session(L, c);
		char *err = NULL;
		if (!lua_vm_call(vm, 3, &err)) {
			stats[s].errors++;
			cl_log(LOG_LVL_WARNING, c, "policy: %s: complete: %s",
			       lua_vm_script_name(vm, s), err);
			free(err);
			continue;
		}
		lua_pop(L, 1); /* it observes: what it returns means nothing */
	}
	sqlinfo_free(info);
}

/* The columns phase */

/* A Lua function masker: the function, in the registry of the state that made it. */
struct lua_masker {
	uint64_t generation;
	int ref;
	int script;
	char *column;
};

struct column_masks {
	unsigned refs;
	int n;
	struct masker **maskers;       /* NULL: no script masks the column */
	struct lua_masker **functions; /* the Lua function behind a masker, or NULL */
};

/* Plans by key, direct-mapped: a collision replaces the older plan. */
#define COLUMN_PLAN_SLOTS 512
static struct {
	uint64_t hash;
	char *key;
	size_t key_len;
	struct column_masks *masks;
} plans[COLUMN_PLAN_SLOTS];

static enum mask_result call_lua_masker(void *ctx, const uint8_t *in, size_t in_len,
                                        const char **out, size_t *out_len)
{
	struct lua_masker *lm = ctx;
	if (!vm || lm->generation != vm_generation)
		return MASK_CANNOT; /* the scripts were reloaded while the result streamed */
	lua_State *L = lua_vm_state(vm);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lm->ref);
	lua_pushlstring(L, (const char *)in, in_len);
	lua_pushstring(L, lm->column);
	char *err = NULL;
	if (!lua_vm_call(vm, 2, &err)) {
		stats[lm->script].errors++;
		log_warning("policy: %s: masker of column %s: %s",
		            lua_vm_script_name(vm, lm->script), lm->column, err);
		free(err);
		return MASK_CANNOT;
	}
	enum mask_result r = MASK_SQL_NULL;
	int type = lua_type(L, -1);
	if (type == LUA_TSTRING || type == LUA_TNUMBER) {
		size_t len;
		const char *v = lua_tolstring(L, -1, &len);
		pktbuf_reset(&masker_scratch);
		pktbuf_put_bytes(&masker_scratch, v, len);
		*out = (const char *)masker_scratch.data;
		*out_len = len;
		r = MASK_VALUE;
	} else if (type != LUA_TNIL) {
		stats[lm->script].errors++;
		log_warning("policy: %s: masker of column %s returned a %s, not a string or nil",
		            lua_vm_script_name(vm, lm->script), lm->column, lua_typename(L, type));
		r = MASK_CANNOT;
	}
	lua_pop(L, 1);
	return r;
}

void column_masks_unref(struct column_masks *m)
{
	if (!m || --m->refs > 0)
		return;
	for (int i = 0; i < m->n; i++) {
		mask_free(m->maskers[i]);
		struct lua_masker *lm = m->functions[i];
		if (!lm)
			continue;
		if (vm && lm->generation == vm_generation)
			luaL_unref(lua_vm_state(vm), LUA_REGISTRYINDEX, lm->ref);
		free(lm->column);
		free(lm);
	}
	free(m->maskers);
	free(m->functions);
	free(m);
}

const struct masker *column_masks_get(const struct column_masks *m, int i)
{
	return i >= 0 && i < m->n ? m->maskers[i] : NULL;
}

static void column_plans_flush(void)
{
	for (size_t i = 0; i < COLUMN_PLAN_SLOTS; i++) {
		column_masks_unref(plans[i].masks);
		free(plans[i].key);
		memset(&plans[i], 0, sizeof(plans[i]));
	}
}

static void push_columns(lua_State *L, const struct policy_column *cols, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_createtable(L, 0, 6);
		set_str(L, "name", cols[i].name);
		set_str(L, "schema", cols[i].schema);
		if (cols[i].table) {
			lua_pushfstring(L, "%s.%s", cols[i].schema, cols[i].table);
			lua_setfield(L, -2, "table");
		}
		set_str(L, "column", cols[i].column);
		const char *type = pgtype_name(cols[i].type_oid);
		if (type)
			lua_pushstring(L, type);
		else
			lua_pushfstring(L, "%d", (int)cols[i].type_oid);
		lua_setfield(L, -2, "type");
		lua_pushinteger(L, cols[i].type_oid);
		lua_setfield(L, -2, "type_oid");
		lua_rawseti(L, -2, i + 1);
	}
}

/* Gives column i the masker at the top of the stack (a function or a sieve.mask one). */
static bool take_masker(lua_State *L, int s, struct column_masks *m, int i,
                        const struct policy_column *col, char **err)
{
	if (m->maskers[i])
		return true; /* an earlier script's choice stands */
	if (lua_isfunction(L, -1)) {
		struct lua_masker *lm = xcalloc(1, sizeof(*lm));
		lm->generation = vm_generation;
		lm->script = s;
		lm->column = xstrdup(col->name);
		lua_pushvalue(L, -1);
		lm->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		struct mask_spec spec = {.kind = MASK_FUNCTION, .fn = call_lua_masker, .ctx = lm};
		const char *why;
		m->maskers[i] = mask_new(&spec, &why);
		m->functions[i] = lm;
		return true;
	}
	struct lua_mask_decl d = {0};
	if (!lua_vm_read_masker(L, lua_gettop(L), &d)) {
		*err = xasprintf("columns() gave column %s a %s, not a masker", col->name,
		                 luaL_typename(L, -1));
		return false;
	}
	d.script = xstrdup(lua_vm_script_name(vm, s));
	d.pattern = xstrdup(col->name);
	m->maskers[i] = masking_masker_new(&d, err);
	lua_vm_mask_decl_clear(&d);
	return m->maskers[i] != NULL;
}

/* Reads the plan columns() left on the stack into m. */
static bool take_plan(lua_State *L, int s, struct column_masks *m, const struct policy_column *cols,
                      char **err)
{
	if (lua_isnil(L, -1))
		return true;
	if (!lua_istable(L, -1)) {
		*err = xasprintf("columns() returned a %s, not a table of maskers",
		                 luaL_typename(L, -1));
		return false;
	}
	int plan = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, plan)) {
		bool ok = true, named = false;
		if (lua_type(L, -2) == LUA_TNUMBER) {
			lua_Integer i = lua_tointeger(L, -2);
			named = i >= 1 && i <= m->n;
			if (named)
				ok = take_masker(L, s, m, (int)i - 1, &cols[i - 1], err);
		} else if (lua_type(L, -2) == LUA_TSTRING) {
			const char *name = lua_tostring(L, -2);
			for (int i = 0; ok && i < m->n; i++)
				if (strcmp(cols[i].name, name) == 0) {
					named = true;
					ok = take_masker(L, s, m, i, &cols[i], err);
				}
		}
		if (ok && !named && !(lua_type(L, -2) == LUA_TSTRING)) {
			*err = xstrdup("columns() named a column the result does not have");
			ok = false;
		}
		if (!ok) {
			lua_settop(L, plan - 1);
			return false;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return true;
}

static struct column_masks *run_columns(const struct client *c, const struct policy_column *cols,
                                        int n, const char *sql)
{
	lua_State *L = lua_vm_state(vm);
	struct column_masks *m = xcalloc(1, sizeof(*m));
	m->refs = 1;
	m->n = n;
	m->maskers = xcalloc((size_t)n + 1, sizeof(*m->maskers));
	m->functions = xcalloc((size_t)n + 1, sizeof(*m->functions));
	struct sqlinfo *info = sql ? sqlinfo_cache_analyse(cache, sql, strlen(sql)) : NULL;
	bool ok = true;
	for (int s = 0; ok && s < lua_vm_script_count(vm); s++) {
		if (!has_columns[s] || !lua_vm_push_phase(vm, s, "columns"))
			continue;
		push_columns(L, cols, n);
		/* The statement, when the result is one statement's. */
		if (info && info->error == SQLINFO_OK && info->n_stmts == 1)
			push_stmt(L, &info->stmts[0], false);
		else
			lua_pushnil(L);
		push_session(L, c);
		char *err = NULL;
		usec_t started = now_usec();
		ok = lua_vm_call(vm, 3, &err) && take_plan(L, s, m, cols, &err);
		stats[s].calls++;
		stats[s].usec += (uint64_t)(now_usec() - started);
		if (!ok) {
			stats[s].errors++;
			cl_log(LOG_LVL_WARNING, c, "policy: %s: columns: %s",
			       lua_vm_script_name(vm, s), err);
			free(err);
		}
	}
	sqlinfo_free(info);
	if (!ok) {
		column_masks_unref(m);
		return NULL;
	}
	return m;
}

static void key_add(struct pktbuf *k, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : UINT32_MAX;
	pktbuf_put_bytes(k, &n, sizeof(n));
	if (s)
		pktbuf_put_bytes(k, s, n);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

struct column_masks *policy_columns(const struct client *c, const struct policy_column *cols, int n,
                                    const char *sql, const char **err)
{
	*err = "masking: the policy's columns phase failed";
	if (!vm)
		return NULL;
	struct pktbuf key = {0};
	key_add(&key, c->user);
	key_add(&key, c->dbname);
	key_add(&key, c->identity ? c->identity->identity : NULL);
	size_t n_groups = c->identity ? c->identity->n_groups : 0;
	pktbuf_put_bytes(&key, &n_groups, sizeof(n_groups));
	for (size_t i = 0; i < n_groups; i++)
		key_add(&key, c->identity->groups[i]);
	key_add(&key, sql);
	for (int i = 0; i < n; i++) {
		key_add(&key, cols[i].name);
		key_add(&key, cols[i].schema);
		key_add(&key, cols[i].table);
		key_add(&key, cols[i].column);
		pktbuf_put_bytes(&key, &cols[i].type_oid, sizeof(cols[i].type_oid));
	}
	uint64_t h = fnv1a(key.data, key.len);
	size_t slot = h % COLUMN_PLAN_SLOTS;
	if (plans[slot].masks && plans[slot].hash == h && plans[slot].key_len == key.len &&
	    memcmp(plans[slot].key, key.data, key.len) == 0) {
		plans[slot].masks->refs++;
		pktbuf_free(&key);
		return plans[slot].masks;
	}
	struct column_masks *m = run_columns(c, cols, n, sql);
	if (m) {
		column_masks_unref(plans[slot].masks);
		free(plans[slot].key);
		plans[slot].hash = h;
		plans[slot].key = xmalloc(key.len);
		memcpy(plans[slot].key, key.data, key.len);
		plans[slot].key_len = key.len;
		plans[slot].masks = m;
		m->refs++;
	}
	pktbuf_free(&key);
	return m;
}
