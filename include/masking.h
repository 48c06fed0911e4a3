/*
 * Result masking (issue 7, DESIGN.md section 3): which output columns a
 * client may not read in clear, and the plan that masks them.
 *
 * Rules come from the scripts' sieve.mask_column declarations: a
 * schema.table.column pattern, a masker, and an optional scope of roles
 * and identity groups. Masking is structural: RowDescription says which
 * table (OID) and attribute each output column comes from, and a
 * per-database catalog, read through the pooler's own server connection,
 * says which of those the rules name. Aliases do not escape it; a column
 * that is an expression has no table and is not masked here (strict
 * mode, in the statement phase, is what denies those).
 *
 * The catalog holds only columns some rule names. It is read before the
 * first statement of a database's client runs, again after
 * policy_catalog_refresh, after RELOAD, and after DDL seen through the
 * pooler; until it is read no row of that database is sent.
 */
#ifndef PGSIEVE_MASKING_H
#define PGSIEVE_MASKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct client;
struct pool_db;
struct sqlinfo_stmt;
struct pktbuf;
struct lua_mask_decl;
struct masker;

/* Most rules a script set may declare. */
#define MASKING_MAX_RULES 64

/*
 * With a new script set: its declarations become the rules, or nothing
 * changes. every_column: some script has a columns phase, which is told
 * every output column's table and column names, so catalogs name every
 * column of user tables (up to 200000 of them).
 */
bool masking_configure(const struct lua_mask_decl *decls, size_t n, bool every_column,
                       char **err) MUST_CHECK;
/* A masker as a declaration describes it, or NULL and *err (malloc'd). */
struct masker *masking_masker_new(const struct lua_mask_decl *d, char **err) MUST_CHECK;
void masking_shutdown(void);
/* Some rule exists: RowDescriptions are worth reading. */
bool masking_active(void);

/*
 * Strict masking (mask_strict, in the statement phase): masking can only
 * find a value in a result column that RowDescription ties to its table,
 * so a statement that reads a column masked for c in any other way is
 * denied: expressions, predicates, orderings, subqueries, CTEs, set
 * operations, whole rows, RETURNING, COPY, other tables (see
 * sqlinfo_column.derived); and, once anything is masked for c, DO, CALL,
 * CREATE FUNCTION and PROCEDURE, functions that read tables by name and
 * the planner statistics views. Columns are
 * matched by name, as written: an unqualified table matches a rule of any
 * schema, an unqualified column among several tables any of them. False
 * with *why (malloc'd; names the column) when denied.
 */
bool masking_strict_allows(const struct client *c, const struct sqlinfo_stmt *st,
                           char **why) MUST_CHECK;

/* The catalog of a database */

/* The database's catalog must be read before its clients' statements run. */
bool masking_catalog_needed(struct pool_db *db);
/* The query that reads it: (oid, attnum, schema, table, column) of named columns. */
const char *masking_catalog_sql(void);
void masking_catalog_begin(struct pool_db *db);
/* One DataRow body of that query's answer. */
void masking_catalog_row(struct pool_db *db, const uint8_t *body, uint32_t len);
void masking_catalog_end(struct pool_db *db, bool ok);
/* The database's catalog was never read: strict mode waits for it. */
bool masking_catalog_unread(const struct pool_db *db);
/* Some column of this database's catalog is masked for someone. */
bool masking_db_has_masked(const struct pool_db *db);
/* Every database's catalog is read again (DDL seen, RELOAD). */
void masking_catalog_invalidate(void);
void masking_catalog_free(struct pool_db *db);

/* One result's plan */

struct mask_plan;

/*
 * The plan for a RowDescription sent to client c: NULL when nothing of it
 * is masked for this client (rows go through untouched). *refuse (with
 * *err) when the result must not be sent at all: a masked column in a
 * binary format its masker cannot write, a catalog not read, a malformed
 * RowDescription.
 */
struct mask_plan *masking_plan(const struct client *c, const uint8_t *body, uint32_t len,
                               bool *refuse, const char **err);
/*
 * The same for a statement's RowDescription (from its Describe) executed
 * through a portal whose Bind asked for these result formats.
 */
struct mask_plan *masking_plan_bound(const struct client *c, const uint8_t *body, uint32_t len,
                                     const int16_t *formats, uint16_t n_formats, bool *refuse,
                                     const char **err);
/* A DataRow body under the plan, whole message appended to out; false and *err if not. */
bool masking_apply(struct mask_plan *plan, const uint8_t *body, uint32_t len, struct pktbuf *out,
                   const char **err) MUST_CHECK;
/* Values a row masks under the plan. */
int masking_plan_width(const struct mask_plan *plan);
/* Appends the masked output columns' names to *list ("a,b"), for the audit record. */
void masking_plan_add_columns(const struct mask_plan *plan, char **list);
/* SHOW POLICIES: the columns a script declared, and the values masked under them. */
void masking_script_stats(const char *script, uint64_t *declared, uint64_t *masked);
void masking_plan_free(struct mask_plan *plan);

#endif
