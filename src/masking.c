/*
 * Result masking: rules, the per-database catalog of the columns they
 * name, and the plan of one result; see masking.h.
 */
#include "masking.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "lua_vm.h"
#include "mask.h"
#include "outcome.h"
#include "pktbuf.h"
#include "policy.h"
#include "pool.h"
#include "proto.h"
#include "rowmask.h"
#include "sqlinfo.h"
#include "token.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct rule {
	char *script;                  /* that declared it, for SHOW POLICIES */
	uint64_t masked;               /* values masked under it */
	char *schema, *table, *column; /* patterns: '*' matches any run */
	struct masker *masker;
	char **roles;
	size_t n_roles;
	char **groups;
	size_t n_groups;
};

/*
 * A table column some rule names, which rules (bits, in declaration
 * order); or, for a columns phase, any column of a user table, with its
 * names ("schema\0table\0column").
 */
struct column_rules {
	uint32_t relid;
	int16_t attnum;
	uint64_t rules;
	char *names;
};

struct mask_catalog {
	bool loaded;
	usec_t loaded_at;
	uint64_t generation;       /* the rules' and DDL's it was read under */
	struct column_rules *cols; /* sorted by (relid, attnum) */
	size_t n, cap;
	size_t n_masked; /* columns some rule names */
	/* Masked columns and the views that read them, for strict mode by name. */
	const struct column_rules **named;
	size_t n_named;
	/* while a read is under way */
	struct column_rules *next;
	size_t next_n, next_cap;
};

struct mask_plan {
	struct rowdesc desc;
	const struct masker **maskers;
	struct rule **rules;         /* the rule of each masked column */
	int n_masked;                /* columns with a masker */
	struct column_masks *script; /* the columns phase's maskers, or NULL */
};

/* Most columns a catalog names for a columns phase; rule columns are always kept. */
#define MASKING_MAX_NAMED_COLUMNS 200000

static struct rule rules[MASKING_MAX_RULES];
static size_t n_rules;
static bool named_columns; /* a columns phase wants every column's names */
static char *catalog_sql;
static uint64_t generation = 1;

static void free_rules(struct rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].script);
		free(r[i].schema);
		free(r[i].table);
		free(r[i].column);
		mask_free(r[i].masker);
		for (size_t j = 0; j < r[i].n_roles; j++)
			free(r[i].roles[j]);
		free(r[i].roles);
		for (size_t j = 0; j < r[i].n_groups; j++)
			free(r[i].groups[j]);
		free(r[i].groups);
	}
}

static char **copy_names(char *const *names, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(names[i]);
	return out;
}

struct masker *masking_masker_new(const struct lua_mask_decl *d, char **err)
{
	static const struct {
		const char *name;
		enum mask_kind kind;
	} kinds[] = {{"null", MASK_NULL},       {"redact", MASK_REDACT}, {"email", MASK_EMAIL},
	             {"partial", MASK_PARTIAL}, {"hash", MASK_HASH},     {"fixed", MASK_FIXED}};
	struct mask_spec spec = {0};
	size_t i = 0;
	while (i < ARRAY_SIZE(kinds) && strcmp(kinds[i].name, d->kind) != 0)
		i++;
	if (i == ARRAY_SIZE(kinds)) {
		*err = xasprintf("%s: %s: unknown masker %s", d->script, d->pattern, d->kind);
		return NULL;
	}
	spec.kind = kinds[i].kind;
	spec.keep_first = d->keep_first;
	spec.keep_last = d->keep_last;
	if (spec.kind == MASK_HASH) {
		/* The key: the script's own, or the configured one; neither is ever logged. */
		const char *key = d->key ? d->key : cf->mask_hash_key;
		spec.key = (const uint8_t *)key;
		spec.key_len = d->key ? d->key_len : key ? strlen(key) : 0;
	}
	spec.fixed = d->value;
	spec.fixed_len = d->value_len;
	const char *why = NULL;
	struct masker *m = mask_new(&spec, &why);
	if (!m)
		*err = xasprintf("%s: %s: %s%s", d->script, d->pattern, why,
		                 spec.kind == MASK_HASH && !d->key ? " (set mask_hash_key)" : "");
	return m;
}

/* pattern as a LIKE pattern, escaped with '!' (names hold no quote: checked at declaration). */
static void append_like(char **sql, const char *pattern)
{
	size_t n = strlen(pattern);
	char *like = xmalloc(2 * n + 1), *w = like;
	for (const char *p = pattern; *p; p++) {
		if (*p == '*') {
			*w++ = '%';
			continue;
		}
		if (*p == '%' || *p == '_' || *p == '!')
			*w++ = '!';
		*w++ = *p;
	}
	*w = '\0';
	char *joined = xasprintf("%s'%s' ESCAPE '!'", *sql, like);
	free(*sql);
	free(like);
	*sql = joined;
}

/* "(n LIKE .. AND r LIKE .. AND a LIKE ..) OR (...)": the columns some rule names. */
static char *rule_filter(const struct rule *r, size_t n, const char *nsp, const char *rel,
                         const char *att)
{
	char *sql = xstrdup(n ? "" : "false");
	for (size_t i = 0; i < n; i++) {
		const char *parts[] = {r[i].schema, r[i].table, r[i].column};
		const char *cols[] = {nsp, rel, att};
		for (int k = 0; k < 3; k++) {
			char *next = xasprintf("%s%s%s LIKE ", sql,
			                       k   ? " AND "
			                       : i ? ") OR ("
			                           : "(",
			                       cols[k]);
			free(sql);
			sql = next;
			append_like(&sql, parts[k]);
		}
	}
	char *done = xasprintf("(%s%s)", sql, n ? ")" : "");
	free(sql);
	return done;
}

/*
 * The catalog query. Rows: (relid, attnum, schema, table, column the rules
 * are matched against, the relation's own schema and name, kind):
 *   'c' a column some rule names, of the relation itself or of an
 *       ancestor it inherits the column from (a partition of a masked
 *       table is masked);
 *   'v' (attnum 0) a view that reads such a column, directly or through
 *       other views: strict mode keeps it from sessions it masks for,
 *       unless a rule names some column of the view itself;
 *   'n' any other column of a user relation, for a columns phase.
 */
static char *build_catalog_sql(const struct rule *r, size_t n, bool every_column)
{
	char *anc = rule_filter(r, n, "an.nspname", "ac.relname", "a.attname");
	char *src = rule_filter(r, n, "n.nspname", "c.relname", "a.attname");
	char *sql = xasprintf(
	    "WITH RECURSIVE up(relid, anc) AS ("
	    " SELECT c.oid, c.oid FROM pg_catalog.pg_class c"
	    " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	    " UNION SELECT up.relid, i.inhparent FROM up"
	    " JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.anc),"
	    " viewdep(view, relid, attnum) AS ("
	    " SELECT DISTINCT w.ev_class, d.refobjid, d.refobjsubid FROM pg_catalog.pg_depend d"
	    " JOIN pg_catalog.pg_rewrite w ON d.classid = 'pg_catalog.pg_rewrite'::regclass"
	    " AND d.objid = w.oid"
	    " WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0"
	    " AND d.refobjid <> w.ev_class),"
	    " taint(view, nsp, rel, att) AS ("
	    " SELECT vd.view, n.nspname, c.relname, a.attname FROM viewdep vd"
	    " JOIN pg_catalog.pg_class c ON c.oid = vd.relid"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " JOIN pg_catalog.pg_attribute a ON a.attrelid = vd.relid AND a.attnum = vd.attnum"
	    " WHERE %s"
	    " UNION SELECT vd.view, t.nsp, t.rel, t.att FROM viewdep vd"
	    " JOIN taint t ON vd.relid = t.view)"
	    " SELECT up.relid, a.attnum, an.nspname, ac.relname, a.attname, own.nspname,"
	    " oc.relname, 'c' FROM up"
	    " JOIN pg_catalog.pg_class ac ON ac.oid = up.anc"
	    " JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace"
	    " JOIN pg_catalog.pg_class oc ON oc.oid = up.relid"
	    " JOIN pg_catalog.pg_namespace own ON own.oid = oc.relnamespace"
	    " JOIN pg_catalog.pg_attribute a ON a.attrelid = up.relid AND a.attnum > 0"
	    " AND NOT a.attisdropped"
	    " WHERE %s"
	    " UNION ALL SELECT t.view, 0, t.nsp, t.rel, t.att, n.nspname, c.relname, 'v'"
	    " FROM taint t JOIN pg_catalog.pg_class c ON c.oid = t.view"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    "%s",
	    src, anc,
	    every_column ? " UNION ALL SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname,"
	                   " n.nspname, c.relname, 'n' FROM pg_catalog.pg_attribute a"
	                   " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
	                   " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	                   " WHERE a.attnum > 0 AND NOT a.attisdropped"
	                   " AND c.relkind IN ('r', 'v', 'm', 'f', 'p')"
	                   " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	                   " AND n.nspname NOT LIKE 'pg!_toast%' ESCAPE '!'"
	                 : "");
	free(anc);
	free(src);
	return sql;
}

bool masking_configure(const struct lua_mask_decl *decls, size_t n, bool every_column, char **err)
{
	if (n > MASKING_MAX_RULES) {
		*err = xasprintf("policy_scripts: %zu masked column declarations, at most %d", n,
		                 MASKING_MAX_RULES);
		return false;
	}
	struct rule fresh[MASKING_MAX_RULES];
	memset(fresh, 0, sizeof(fresh));
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &fresh[i];
		if (!(r->masker = masking_masker_new(&decls[i], err))) {
			free_rules(fresh, i);
			return false;
		}
		char *copy = xstrdup(decls[i].pattern);
		char *dot1 = strchr(copy, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
		*dot1 = *dot2 = '\0'; /* three parts: checked at declaration */
		r->schema = xstrdup(copy);
		r->table = xstrdup(dot1 + 1);
		r->column = xstrdup(dot2 + 1);
		free(copy);
		r->script = xstrdup(decls[i].script);
		r->roles = copy_names(decls[i].roles, decls[i].n_roles);
		r->n_roles = decls[i].n_roles;
		r->groups = copy_names(decls[i].groups, decls[i].n_groups);
		r->n_groups = decls[i].n_groups;
	}
	free_rules(rules, n_rules);
	memcpy(rules, fresh, sizeof(rules));
	n_rules = n;
	named_columns = every_column;
	free(catalog_sql);
	catalog_sql = n || every_column ? build_catalog_sql(rules, n, every_column) : NULL;
	masking_catalog_invalidate();
	return true;
}

void masking_shutdown(void)
{
	free_rules(rules, n_rules);
	n_rules = 0;
	named_columns = false;
	FREE_AND_NULL(catalog_sql);
}

bool masking_active(void)
{
	return n_rules > 0 || named_columns;
}

/* Catalog */

static bool glob_match(const char *pattern, const char *s)
{
	if (!*pattern)
		return !*s;
	if (*pattern == '*')
		return glob_match(pattern + 1, s) || (*s && glob_match(pattern, s + 1));
	return *s == *pattern && glob_match(pattern + 1, s + 1);
}

static struct mask_catalog *catalog_of(struct pool_db *db)
{
	if (!db->mask_catalog)
		db->mask_catalog = xcalloc(1, sizeof(struct mask_catalog));
	return db->mask_catalog;
}

bool masking_catalog_needed(struct pool_db *db)
{
	if (!masking_active())
		return false;
	struct mask_catalog *cat = catalog_of(db);
	return !cat->loaded || cat->generation != generation ||
	       (cf->policy_catalog_refresh > 0 &&
	        now_usec() - cat->loaded_at >= cf->policy_catalog_refresh);
}

const char *masking_catalog_sql(void)
{
	return catalog_sql;
}

static void free_columns(struct column_rules *cols, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(cols[i].names);
	free(cols);
}

void masking_catalog_begin(struct pool_db *db)
{
	struct mask_catalog *cat = catalog_of(db);
	free_columns(cat->next, cat->next_n);
	cat->next = NULL;
	cat->next_n = cat->next_cap = 0;
}

/* The i-th text column of a DataRow body; NULL if absent or NULL. */
static char *text_column(struct pkt_reader *r)
{
	uint32_t n = pr_uint32(r);
	if (r->bad || n == 0xffffffffu)
		return NULL;
	const uint8_t *v = pr_bytes(r, n);
	return v ? xstrndup((const char *)v, n) : NULL;
}

/* "a\0b\0c\0" in one block. */
static char *three_names(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a) + 1, lb = strlen(b) + 1, lc = strlen(c) + 1;
	char *names = xmalloc(la + lb + lc);
	memcpy(names, a, la);
	memcpy(names + la, b, lb);
	memcpy(names + la + lb, c, lc);
	return names;
}

void masking_catalog_row(struct pool_db *db, const uint8_t *body, uint32_t len)
{
	struct mask_catalog *cat = catalog_of(db);
	struct pkt_reader r;
	pr_init(&r, body, len);
	if (pr_uint16(&r) != 8)
		return;
	char *f[8];
	for (int i = 0; i < 8; i++)
		f[i] = text_column(&r);
	bool whole = true;
	for (int i = 0; i < 8; i++)
		whole &= f[i] != NULL;
	uint64_t matched = 0;
	for (size_t i = 0; whole && i < n_rules; i++) {
		if (glob_match(rules[i].schema, f[2]) && glob_match(rules[i].table, f[3]) &&
		    glob_match(rules[i].column, f[4]))
			matched |= 1ull << i;
	}
	char kind = whole ? f[7][0] : 0;
	bool keep = (kind == 'c' || kind == 'v') ? matched != 0
	            : kind == 'n' ? named_columns && cat->next_n < MASKING_MAX_NAMED_COLUMNS
	                          : false;
	if (keep) {
		if (cat->next_n == cat->next_cap) {
			cat->next_cap = cat->next_cap ? cat->next_cap * 2 : 16;
			cat->next = xrealloc(cat->next, cat->next_cap * sizeof(*cat->next));
		}
		struct column_rules *col = &cat->next[cat->next_n++];
		*col = (struct column_rules){
		    .relid = (uint32_t)strtoul(f[0], NULL, 10),
		    .attnum = (int16_t)atoi(f[1]),
		    .rules = matched,
		};
		if (kind == 'v') {
			/* A view: its own names, and the masked column it reads. */
			char *source = xasprintf("%s.%s.%s", f[2], f[3], f[4]);
			col->names = three_names(f[5], f[6], source);
			free(source);
		} else {
			col->names = three_names(f[5], f[6], f[4]);
		}
	}
	for (int i = 0; i < 8; i++)
		free(f[i]);
}

static int column_cmp(const void *pa, const void *pb)
{
	const struct column_rules *a = pa, *b = pb;
	if (a->relid != b->relid)
		return a->relid < b->relid ? -1 : 1;
	return (a->attnum > b->attnum) - (a->attnum < b->attnum);
}

static const struct column_rules *catalog_column(const struct mask_catalog *cat, uint32_t relid,
                                                 int16_t attnum)
{
	struct column_rules key = {.relid = relid, .attnum = attnum};
	return cat->n ? bsearch(&key, cat->cols, cat->n, sizeof(*cat->cols), column_cmp) : NULL;
}

void masking_catalog_end(struct pool_db *db, bool ok)
{
	struct mask_catalog *cat = catalog_of(db);
	if (!ok) {
		masking_catalog_begin(db); /* the old catalog, if any, stays stale */
		return;
	}
	free_columns(cat->cols, cat->n);
	cat->cols = cat->next;
	cat->n = cat->next_n;
	cat->cap = cat->next_cap;
	cat->next = NULL;
	cat->next_n = cat->next_cap = 0;
	if (cat->n)
		qsort(cat->cols, cat->n, sizeof(*cat->cols), column_cmp);
	/* A column named both as itself and through an ancestor: one entry, all rules. */
	size_t kept = 0;
	for (size_t i = 0; i < cat->n; i++) {
		struct column_rules *prev = kept ? &cat->cols[kept - 1] : NULL;
		if (prev && cat->cols[i].attnum > 0 && column_cmp(prev, &cat->cols[i]) == 0) {
			prev->rules |= cat->cols[i].rules;
			free(cat->cols[i].names);
			continue;
		}
		cat->cols[kept++] = cat->cols[i];
	}
	cat->n = kept;
	free(cat->named);
	cat->named = NULL;
	cat->n_masked = cat->n_named = 0;
	for (size_t i = 0; i < cat->n; i++)
		if (cat->cols[i].rules) {
			cat->n_masked += cat->cols[i].attnum > 0;
			cat->named = xrealloc(cat->named, (cat->n_named + 1) * sizeof(*cat->named));
			cat->named[cat->n_named++] = &cat->cols[i];
		}
	cat->loaded = true;
	cat->loaded_at = now_usec();
	cat->generation = generation;
	if (named_columns && cat->n >= MASKING_MAX_NAMED_COLUMNS)
		log_warning("masking: %s: more than %d columns; the columns phase sees the names "
		            "of the first ones only",
		            db->name, MASKING_MAX_NAMED_COLUMNS);
	log_debug("masking: %s: %zu masked column%s in the catalog", db->name, cat->n_masked,
	          cat->n_masked == 1 ? "" : "s");
}

bool masking_db_has_masked(const struct pool_db *db)
{
	/* Not read yet: assume so, rows are then refused rather than sent unchecked.
	 * A columns phase may mask any column. */
	return named_columns || (n_rules && (!db->mask_catalog || !db->mask_catalog->loaded ||
	                                     db->mask_catalog->n_masked));
}

void masking_catalog_invalidate(void)
{
	generation++;
}

void masking_catalog_free(struct pool_db *db)
{
	struct mask_catalog *cat = db->mask_catalog;
	if (!cat)
		return;
	free_columns(cat->cols, cat->n);
	free_columns(cat->next, cat->next_n);
	free(cat->named);
	free(cat);
	db->mask_catalog = NULL;
}

/* Plans */

static bool in_list(char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* A rule's scope: everyone, or the roles it lists, or identities with one of its groups. */
static bool applies(const struct rule *r, const struct client *c)
{
	if (!r->n_roles && !r->n_groups)
		return true;
	if (in_list(r->roles, r->n_roles, c->user))
		return true;
	for (size_t i = 0; c->identity && i < c->identity->n_groups; i++)
		if (in_list(r->groups, r->n_groups, c->identity->groups[i]))
			return true;
	return false;
}

/* Strict mode */

/* The first rule for c that masks a column of table t named column ("*": any). */
static const struct rule *masks(const struct client *c, const struct sqlinfo_table *t,
                                const char *column)
{
	for (size_t i = 0; i < n_rules; i++) {
		const struct rule *r = &rules[i];
		if ((!t->schema || glob_match(r->schema, t->schema)) &&
		    glob_match(r->table, t->name) &&
		    (strcmp(column, "*") == 0 || glob_match(r->column, column)) && applies(r, c))
			return r;
	}
	return NULL;
}

/* Functions that run SQL given as text, or read a table or cursor named by
 * a value: the statement's own text does not show what they read. */
static const char *const reads_by_name[] = {
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "database_to_xml",
    "database_to_xml_and_xmlschema",
    "database_to_xmlschema",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "schema_to_xml",
    "schema_to_xml_and_xmlschema",
    "schema_to_xmlschema",
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "table_to_xmlschema",
    "ts_stat",
    "ts_rewrite",
    "dblink",
    "dblink_exec",
    "dblink_open",
    "dblink_fetch",
    "dblink_send_query",
};

/* Statistics that hold sample values of every column the role may read. */
static const char *const statistics_views[] = {
    "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data",
};

static bool named_in(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

static bool anything_masked_for(const struct client *c)
{
	for (size_t i = 0; i < n_rules; i++)
		if (applies(&rules[i], c))
			return true;
	return false;
}

/*
 * Whether column reference col may be a column of the statement's table k:
 * its known table; or every table it may be (an alias of a subquery or
 * CTE matches none: what they read was checked where they read it).
 */
static bool may_be_of(const struct sqlinfo_column *col, size_t k, const struct sqlinfo_table *t)
{
	return col->table_index >= 0 ? (size_t)col->table_index == k
	                             : !col->table || strcmp(col->table, t->name) == 0;
}

static struct rule *rule_for(const struct column_rules *col, const struct client *c);

/* A catalog entry's own relation is table t as the statement names it. */
static bool is_relation(const struct column_rules *e, const struct sqlinfo_table *t)
{
	const char *schema = e->names, *table = schema + strlen(schema) + 1;
	return strcmp(t->name, table) == 0 && (!t->schema || strcmp(t->schema, schema) == 0);
}

/* Some column of view relid is itself masked for c: its author named what it shows. */
static bool view_reviewed(const struct mask_catalog *cat, uint32_t relid, const struct client *c)
{
	for (size_t i = 0; i < cat->n_named; i++)
		if (cat->named[i]->relid == relid && cat->named[i]->attnum > 0 &&
		    rule_for(cat->named[i], c))
			return true;
	return false;
}

/*
 * What the catalog knows beyond the rules' names: partitions and children
 * of masked tables, and views that read masked columns.
 */
static bool catalog_allows(const struct client *c, const struct mask_catalog *cat,
                           const struct sqlinfo_stmt *st, char **why)
{
	for (size_t k = 0; k < st->n_tables; k++) {
		const struct sqlinfo_table *t = &st->tables[k];
		for (size_t i = 0; i < cat->n_named; i++) {
			const struct column_rules *e = cat->named[i];
			if (!is_relation(e, t) || !rule_for(e, c))
				continue;
			const char *column = e->names + strlen(e->names) + 1;
			column += strlen(column) + 1;
			if (e->attnum == 0) {
				if (view_reviewed(cat, e->relid, c))
					continue;
				*why = xasprintf(
				    "%s reads the masked column %s, and no mask rule names "
				    "its own columns (mask_strict)",
				    t->name, column);
				return false;
			}
			for (size_t j = 0; j < st->n_columns; j++) {
				const struct sqlinfo_column *col = &st->columns[j];
				if (col->derived && may_be_of(col, k, t) &&
				    (strcmp(col->name, "*") == 0 ||
				     strcmp(col->name, column) == 0)) {
					*why = xasprintf(
					    "%s.%s is masked: it may only be selected as a "
					    "plain output column (mask_strict)",
					    t->name, column);
					return false;
				}
			}
		}
	}
	return true;
}

bool masking_strict_allows(const struct client *c, const struct sqlinfo_stmt *st, char **why)
{
	if (!cf->mask_strict || !anything_masked_for(c))
		return true;
	/* Code the text does not show: it could read a masked column and send it out
	 * in a notice, an error or a table. */
	if (st->kind == SQLINFO_DO || st->kind == SQLINFO_CALL ||
	    strcmp(st->command, "CREATE FUNCTION") == 0 ||
	    strcmp(st->command, "CREATE PROCEDURE") == 0) {
		*why =
		    xasprintf("%s runs code that masking cannot follow (mask_strict)", st->command);
		return false;
	}
	for (size_t i = 0; i < st->n_columns; i++) {
		const struct sqlinfo_column *col = &st->columns[i];
		if (!col->derived)
			continue;
		for (size_t k = 0; k < st->n_tables; k++) {
			const struct sqlinfo_table *t = &st->tables[k];
			if (!may_be_of(col, k, t))
				continue;
			const struct rule *r = masks(c, t, col->name);
			if (!r)
				continue;
			bool star = strcmp(col->name, "*") == 0;
			*why =
			    xasprintf("%s%s%s.%s is masked%s: it may only be selected as a plain "
			              "output column, not used in expressions, conditions, "
			              "orderings, subqueries, whole rows, RETURNING, COPY or other "
			              "statements (mask_strict)",
			              t->schema ? t->schema : "", t->schema ? "." : "", t->name,
			              star ? r->column : col->name,
			              star ? (col->table ? " and this reads its whole row"
			                                 : " and this reads every column")
			                   : "");
			return false;
		}
	}
	for (size_t i = 0; i < st->n_functions; i++) {
		if (named_in(reads_by_name, ARRAY_SIZE(reads_by_name), st->functions[i].name)) {
			*why = xasprintf("function %s reads tables by name, which masking cannot "
			                 "follow (mask_strict)",
			                 st->functions[i].qualified);
			return false;
		}
	}
	for (size_t i = 0; i < st->n_tables; i++) {
		if (named_in(statistics_views, ARRAY_SIZE(statistics_views), st->tables[i].name)) {
			*why = xasprintf("%s holds sample values of masked columns (mask_strict)",
			                 st->tables[i].name);
			return false;
		}
	}
	const struct mask_catalog *cat = c->pool ? c->pool->db->mask_catalog : NULL;
	return !cat || !cat->loaded || catalog_allows(c, cat, st, why);
}

bool masking_catalog_unread(const struct pool_db *db)
{
	return masking_active() && (!db->mask_catalog || !db->mask_catalog->loaded);
}

static struct rule *rule_for(const struct column_rules *col, const struct client *c)
{
	for (size_t k = 0; col && k < n_rules; k++)
		if ((col->rules >> k & 1) && applies(&rules[k], c))
			return &rules[k];
	return NULL;
}

/* The columns phase: the scripts' own maskers for the columns no rule masks. */
static bool add_script_maskers(const struct client *c, const struct mask_catalog *cat,
                               struct mask_plan *p, const char **err)
{
	int n = p->desc.ncols;
	struct policy_column *cols = xcalloc((size_t)n + 1, sizeof(*cols));
	for (int i = 0; i < n; i++) {
		const struct rowdesc_col *d = &p->desc.cols[i];
		const struct column_rules *col =
		    d->table_oid ? catalog_column(cat, d->table_oid, d->attnum) : NULL;
		cols[i].name = d->name;
		cols[i].type_oid = d->type_oid;
		if (col && col->names) {
			cols[i].schema = col->names;
			cols[i].table = cols[i].schema + strlen(cols[i].schema) + 1;
			cols[i].column = cols[i].table + strlen(cols[i].table) + 1;
		}
	}
	const struct checked_stmt *st = outcome_answering((struct client *)c);
	p->script = policy_columns(c, cols, n, st ? st->sent : NULL, err);
	free(cols);
	if (!p->script)
		return false;
	for (int i = 0; i < n; i++) {
		if (p->maskers[i])
			continue;
		p->maskers[i] = column_masks_get(p->script, i);
		p->n_masked += p->maskers[i] != NULL;
	}
	return true;
}

struct mask_plan *masking_plan(const struct client *c, const uint8_t *body, uint32_t len,
                               bool *refuse, const char **err)
{
	return masking_plan_bound(c, body, len, NULL, UINT16_MAX, refuse, err);
}

struct mask_plan *masking_plan_bound(const struct client *c, const uint8_t *body, uint32_t len,
                                     const int16_t *formats, uint16_t n_formats, bool *refuse,
                                     const char **err)
{
	*refuse = false;
	struct mask_catalog *cat = c->pool->db->mask_catalog;
	if (!cat || !cat->loaded) {
		*refuse = true;
		*err = "masking: the catalog of this database has not been read";
		return NULL;
	}
	if (!cat->n_masked && !named_columns)
		return NULL;
	struct mask_plan *p = xcalloc(1, sizeof(*p));
	if (!rowmask_parse_desc(body, len, &p->desc, err)) {
		free(p);
		*refuse = true;
		return NULL;
	}
	/* A statement's description says text; the Bind said what the rows really are. */
	if (n_formats != UINT16_MAX) {
		if (n_formats > 1 && n_formats != p->desc.ncols) {
			masking_plan_free(p);
			*refuse = true;
			*err =
			    "masking: the Bind's result formats do not fit the statement's columns";
			return NULL;
		}
		for (int i = 0; i < p->desc.ncols; i++)
			p->desc.cols[i].format =
			    n_formats == 0 ? 0 : formats[n_formats == 1 ? 0 : i];
	}
	p->maskers = xcalloc((size_t)p->desc.ncols + 1, sizeof(*p->maskers));
	p->rules = xcalloc((size_t)p->desc.ncols + 1, sizeof(*p->rules));
	for (int i = 0; i < p->desc.ncols; i++) {
		const struct rowdesc_col *col = &p->desc.cols[i];
		if (col->table_oid && cat->n_masked &&
		    (p->rules[i] = rule_for(catalog_column(cat, col->table_oid, col->attnum), c))) {
			p->maskers[i] = p->rules[i]->masker;
			p->n_masked++;
		}
	}
	if (named_columns && !add_script_maskers(c, cat, p, err)) {
		masking_plan_free(p);
		*refuse = true;
		return NULL;
	}
	int bad = p->n_masked ? rowmask_unmaskable(&p->desc, p->maskers) : -1;
	if (bad >= 0) {
		*refuse = true;
		*err = "masking: a masked column is asked for in a format its masker cannot write";
	}
	if (!p->n_masked || bad >= 0) {
		masking_plan_free(p);
		return NULL;
	}
	return p;
}

bool masking_apply(struct mask_plan *p, const uint8_t *body, uint32_t len, struct pktbuf *out,
                   const char **err)
{
	if (!rowmask_rewrite(&p->desc, p->maskers, body, len, (size_t)cf->max_masked_row_size, out,
	                     err))
		return false;
	for (int i = 0; i < p->desc.ncols; i++)
		if (p->rules[i])
			p->rules[i]->masked++;
	return true;
}

int masking_plan_width(const struct mask_plan *p)
{
	return p->n_masked;
}

void masking_plan_add_columns(const struct mask_plan *p, char **list)
{
	for (int i = 0; i < p->desc.ncols; i++) {
		if (!p->maskers[i])
			continue;
		const char *name = p->desc.cols[i].name;
		char *old = *list;
		*list = old ? xasprintf("%s,%s", old, name) : xstrdup(name);
		free(old);
	}
}

void masking_script_stats(const char *script, uint64_t *declared, uint64_t *masked)
{
	*declared = *masked = 0;
	for (size_t i = 0; i < n_rules; i++) {
		if (strcmp(rules[i].script, script) != 0)
			continue;
		(*declared)++;
		*masked += rules[i].masked;
	}
}

void masking_plan_free(struct mask_plan *p)
{
	if (!p)
		return;
	rowmask_free_desc(&p->desc);
	free(p->maskers);
	free(p->rules);
	column_masks_unref(p->script);
	free(p);
}
