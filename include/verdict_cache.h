/*
 * Cached statement-phase verdicts, for scripts that declare their verdict
 * a function of the statement, the session's user and its database alone
 * (`verdict_cache = "text"` or `"structure"`, doc/policy.md). Such a
 * verdict is looked up instead of calling into Lua.
 *
 * The key is the script, a variant byte (what else the script was shown
 * about the statement: its protocol, whether it came with others), the
 * user, the database and a statement key the caller chooses: the statement's text, or the
 * analysis's normalized key (literals replaced) for scripts whose verdict does not depend on the
 * literals either. Bounded: least recently used entries go first. A new
 * script set starts with a new cache.
 */
#ifndef PGSIEVE_VERDICT_CACHE_H
#define PGSIEVE_VERDICT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "lua_vm.h"
#include "util.h"

/* Statement keys longer than this are not cached. */
#define VERDICT_CACHE_MAX_KEY 8192

struct verdict_cache;

/* A verdict as stored: allow (or no opinion), deny, or rewrite. */
struct cached_verdict {
	enum lua_verdict verdict;
	char sqlstate[6];
	const char *message; /* deny */
	const char *sql;     /* rewrite */
};

struct verdict_cache *verdict_cache_new(size_t capacity) MUST_CHECK;
void verdict_cache_free(struct verdict_cache *cache);

/* The stored verdict, or NULL. Valid until the next put or free. */
const struct cached_verdict *verdict_cache_get(struct verdict_cache *cache, int script,
                                               uint8_t variant, const char *user,
                                               const char *database, const char *key,
                                               size_t key_len);
/* Stores a copy of v (replacing an entry with the same key). */
void verdict_cache_put(struct verdict_cache *cache, int script, uint8_t variant, const char *user,
                       const char *database, const char *key, size_t key_len,
                       const struct cached_verdict *v);

#endif
