/*
 * Statement analysis: what a Simple Query string or a Parse's query text
 * does, as the policy pipeline sees it (DESIGN.md section 3: the `stmt`
 * that Lua scripts receive).
 *
 * The text goes through libpg_query, PostgreSQL 15's own raw parser, and
 * the whole string must parse: one bad statement anywhere flags the whole
 * analysis and no statement of it is reported, because a policy that saw
 * only the statements before the error would let the server run them.
 * Nothing splits the text before parsing (pg_query_split_with_scanner
 * silently drops a statement that begins with an unknown word).
 *
 * The analysis is purely textual: no catalog, no search_path. A table is
 * reported as written ("users" and "public.users" are two entries, and an
 * unqualified name means whatever the session's search_path finds); a
 * view is a table; a function's body is not looked into. Where the text
 * cannot say what will run (DO, CALL, EXECUTE of a prepared statement,
 * LOAD, a function created from a string body, a statement type this
 * module does not know), the statement is flagged opaque so that a
 * fail-closed policy can deny it. The text is read as a session with
 * standard_conforming_strings on and an ASCII-safe client_encoding reads
 * it: see sqlinfo_session_safe().
 *
 * An analysis is immutable once built and reference-counted, so that the
 * cache below and a statement held for approval can share it. Everything
 * it points to lives in one arena freed with it, or, for one the cache
 * made from another (a view, below), in one block and in the analysis it
 * holds a reference to. It holds no reference to the caller's buffer.
 * Pure: no I/O, no logging, no global state except libpg_query's
 * per-thread memory context.
 */
#ifndef PGSIEVE_SQLINFO_H
#define PGSIEVE_SQLINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest text analysed, in bytes; longer is refused (SQLSTATE 54000). */
#define SQLINFO_MAX_SQL (1024 * 1024)
/*
 * Deepest parse tree walked, in JSON levels (about two per level of
 * expression nesting, so `1+1+...` of about 5000 terms); deeper is
 * refused as too complex (SQLSTATE 54001) rather than risk the stack.
 */
#define SQLINFO_MAX_DEPTH 10000

/* What a statement is, by its top-level parse node. */
enum sqlinfo_kind {
	SQLINFO_SELECT,      /* SELECT, VALUES, TABLE, DECLARE CURSOR */
	SQLINFO_INSERT,      /* INSERT (with or without ON CONFLICT) */
	SQLINFO_UPDATE,      /* UPDATE */
	SQLINFO_DELETE,      /* DELETE */
	SQLINFO_MERGE,       /* MERGE */
	SQLINFO_DDL,         /* what log_statement=ddl logs, plus TRUNCATE and SELECT INTO */
	SQLINFO_COPY,        /* COPY in either direction */
	SQLINFO_TRANSACTION, /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION... */
	SQLINFO_SET,         /* SET, RESET, SET CONSTRAINTS, DISCARD: session state changes */
	SQLINFO_CALL,        /* CALL (opaque) */
	SQLINFO_DO,          /* DO (opaque) */
	SQLINFO_UTILITY,     /* the rest: SHOW, EXPLAIN, LOCK, VACUUM, PREPARE, EXECUTE... */
};

enum sqlinfo_access {
	SQLINFO_READ,
	SQLINFO_WRITE,
};

/* "select", "insert", ... "utility": the names Lua scripts compare with. */
const char *sqlinfo_kind_name(enum sqlinfo_kind kind);
/* "read" or "write". */
const char *sqlinfo_access_name(enum sqlinfo_access access);

/*
 * A relation the statement names. Listed once per distinct (schema, name)
 * as written, in the order of the text; a table both read and written is
 * listed once, as write. Write means the statement changes its rows or
 * its definition: INSERT/UPDATE/DELETE/MERGE targets (also inside CTEs),
 * COPY FROM, SELECT INTO and CREATE TABLE AS targets, and every relation
 * a DDL statement names (ALTER, DROP, TRUNCATE, GRANT ON, CREATE INDEX ON,
 * REFERENCES, INHERITS...), VACUUM/ANALYZE/CLUSTER/REINDEX, and LOCK in
 * any mode stronger than ACCESS SHARE (which, like PostgreSQL's privilege
 * check, is read). CTE names are not tables.
 */
struct sqlinfo_table {
	const char *schema; /* NULL when not written */
	const char *name;
	enum sqlinfo_access access;
};

/*
 * A column reference (ColumnRef) or a column assigned by INSERT, UPDATE,
 * MERGE or COPY (access write). schema and table are the qualifiers as
 * written ("u" in u.email), NULL when absent; name is "*" for a star.
 * table_index points into the statement's tables when the column's
 * relation is known without the catalog: the qualifier names a table or
 * its alias in scope, the column is assigned by a DML target list, or the
 * statement has a single FROM item and it is a table. Otherwise -1 (the
 * qualifier is a subquery, function or CTE alias, or the reference is
 * unqualified among several FROM items). Distinct entries only, in the
 * order of the text; read and written, it is listed once, as write.
 *
 * A reference to a table alias alone (`SELECT c FROM customers c`,
 * row_to_json(c)) reads the whole row: it is listed as "*" of that table.
 */
struct sqlinfo_column {
	const char *schema;
	const char *table;
	const char *name;
	int table_index;
	enum sqlinfo_access access;
	/*
	 * Some read of it is more than a plain output column of the
	 * statement's result: the value feeds an expression, a predicate, an
	 * ordering or grouping (ORDER BY 1 and output aliases included), a
	 * subquery, CTE or set operation, RETURNING, COPY, another table, or
	 * a whole-row value. A plain output column is a bare reference (or
	 * star) in the target list of a top-level SELECT without set
	 * operations, also under DECLARE CURSOR and PREPARE: the only place
	 * where the server's RowDescription still names the table and column
	 * each value comes from, so that masking can find it there.
	 */
	bool derived;
};

/*
 * A function called (FuncCall), including CALL's procedure. qualified is
 * the name as written, parts joined by dots ("pg_catalog.pg_read_file");
 * name its last part; schema the part before, or NULL. SQL syntax that the
 * grammar turns into a function call appears with the pg_catalog schema
 * the grammar gives it (EXTRACT -> "pg_catalog.extract"). Functions run
 * implicitly (operators, casts, triggers, defaults) are not listed.
 * Distinct entries, in the order of the text.
 */
struct sqlinfo_function {
	const char *schema;
	const char *name;
	const char *qualified;
};

struct sqlinfo_stmt {
	/*
	 * This statement's own text, NUL-terminated: the whole input when it
	 * holds one statement, otherwise the statement between semicolons
	 * without surrounding white space (comments before it stay).
	 */
	const char *sql;
	size_t sql_len;
	size_t offset; /* where sql starts in the analysed text */
	enum sqlinfo_kind kind;
	/*
	 * The command tag as PostgreSQL's CreateCommandTag names it: "SELECT",
	 * "DROP TABLE", "CREATE INDEX", "BEGIN", "TRUNCATE TABLE", "EXPLAIN",
	 * "SELECT INTO", "CREATE TABLE AS"... ("???" for an unknown statement
	 * type). EXECUTE says "EXECUTE": the prepared statement is not known.
	 */
	const char *command;
	/* SET, RESET, SHOW: the parameter name, lower-cased since PostgreSQL
	 * ignores its case (SET "ROLE" is SET ROLE): "search_path", "role",
	 * "session_authorization", "all", "transaction" for SET TRANSACTION...;
	 * NULL otherwise and for RESET ALL. */
	const char *setting;
	const char *fingerprint; /* libpg_query's, 16 hex digits */

	const struct sqlinfo_table *tables;
	size_t n_tables;
	const struct sqlinfo_column *columns;
	size_t n_columns;
	const struct sqlinfo_function *functions;
	size_t n_functions;

	bool multi; /* the text held more than one statement */
	/* An UPDATE or DELETE (or EXPLAIN ANALYZE of one) with a WHERE clause,
	 * WHERE CURRENT OF included. False for every other statement. */
	bool has_where;
	/* Some UPDATE or DELETE anywhere in the statement, a CTE included, has
	 * no WHERE clause: the test a "no unfiltered writes" rule needs, since
	 * `WITH d AS (DELETE FROM t) SELECT 1` is a SELECT. */
	bool unfiltered_write;
	bool writes; /* some table has access write */
	/* The analysis cannot see what runs: DO, CALL, EXECUTE (also under
	 * CREATE TABLE AS), LOAD, CREATE FUNCTION/PROCEDURE with a string
	 * body, a statement type unknown here. */
	bool opaque;
	/* EXPLAIN: kind is utility and every table is read (nothing runs),
	 * unless explain_analyze, which runs the statement: then kind,
	 * has_where and tables are those of the statement explained. */
	bool explain;
	bool explain_analyze;
	bool row_locks;    /* SELECT ... FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE */
	bool copy_program; /* COPY ... TO/FROM PROGRAM: runs a shell command on the server */
	bool copy_file;    /* COPY ... TO/FROM 'file' on the server's file system */
};

enum sqlinfo_error {
	SQLINFO_OK,
	SQLINFO_ERR_SYNTAX,   /* libpg_query rejected the text (42601) */
	SQLINFO_ERR_TOO_LONG, /* longer than SQLINFO_MAX_SQL (54000) */
	SQLINFO_ERR_COMPLEX,  /* nested deeper than SQLINFO_MAX_DEPTH, or too many names (54001) */
	SQLINFO_ERR_INVALID,  /* a NUL byte in the text (22021) */
	SQLINFO_ERR_INTERNAL, /* the parser's output was not understood (XX000) */
};

struct sqlinfo {
	const char *text; /* a NUL-terminated copy of the text ("" when too long) */
	size_t len;

	/* When error is not SQLINFO_OK, n_stmts is 0: nothing is trusted. */
	enum sqlinfo_error error;
	const char *error_message;  /* e.g. `syntax error at or near "SELEC"` */
	int error_position;         /* 1-based character position in text, 0 if none */
	const char *error_sqlstate; /* what PostgreSQL would answer, see above */

	bool multi;
	size_t n_stmts; /* 0 for an empty or comment-only text */
	const struct sqlinfo_stmt *stmts;

	/* private */
	unsigned refs;
	void *arena;
	struct sqlinfo *base;   /* a view's (see the cache): arena is NULL */
	bool literal_sensitive; /* may change with a literal's value: no normalized entry */
};

/*
 * Analyses len bytes at sql (need not be NUL-terminated). Never returns
 * NULL: a failure is reported in the result's error fields. The result
 * holds one reference, dropped with sqlinfo_free(). Texts longer than a
 * few kilobytes are parsed on a short-lived thread with a stack sized to
 * the text, because libpg_query recurses once per nesting level and a
 * long `1+1+...` would otherwise overflow the caller's stack; the call is
 * synchronous either way.
 */
struct sqlinfo *sqlinfo_analyse(const char *sql, size_t len) MUST_CHECK;

/*
 * Whether analyses fill each statement's fingerprint (on by default).
 * pg_query_fingerprint parses the statement a second time, about 40% of
 * an analysis; a caller that needs it only sometimes turns this off and
 * asks libpg_query when it does (the fingerprint is then NULL).
 */
void sqlinfo_set_fingerprints(bool on);

/*
 * Whether analyses describe what a server session with these parameter
 * values (as ParameterStatus reports them; NULL when unknown) will run.
 * libpg_query reads the text's bytes with standard_conforming_strings on;
 * the server reads them after conversion from client_encoding. With
 * standard_conforming_strings off, SELECT 'a\' , '; DROP TABLE t; --'
 * is one SELECT here and a DROP TABLE there; with SJIS, BIG5, GBK, UHC,
 * GB18030 or JOHAB a character can end in the byte of a backslash, which
 * moves the end of an E'' string. Both were checked against PostgreSQL
 * 15. Returns true only for standard_conforming_strings "on" and a
 * client_encoding PostgreSQL can also use as a server encoding (all are
 * ASCII-safe); otherwise every statement of the session must be denied.
 */
bool sqlinfo_session_safe(const char *client_encoding, const char *standard_conforming_strings);

/*
 * The statement whose text stands for the structure of info's statement i:
 * for an analysis the cache made from another by its normalized key, that
 * other's statement i (so texts that differ only in literals give the
 * same one); otherwise info's own. A key for what depends on the
 * statement but not on its literals' values.
 */
const struct sqlinfo_stmt *sqlinfo_structure_of(const struct sqlinfo *info, size_t i);

/* Adds a reference; returns info. */
struct sqlinfo *sqlinfo_ref(struct sqlinfo *info);

/* Drops a reference; the last one frees everything. NULL is ignored. */
void sqlinfo_free(struct sqlinfo *info);

/*
 * Releases libpg_query's memory context of the calling thread, at exit
 * (valgrind-clean shutdown). Harmless in a thread that never analysed
 * anything and when called again, where pg_query_exit() alone crashes;
 * analyses asked for afterwards still work, each on a short-lived thread.
 */
void sqlinfo_shutdown(void);

/*
 * A bounded LRU cache of analyses (DESIGN.md: parse once per distinct
 * statement). The analysis depends on nothing but the text, so an entry is
 * valid for every session. Texts longer than SQLINFO_CACHE_MAX_SQL are
 * analysed but not kept. For one thread (the event loop).
 *
 * Two levels. By exact text: errors included, the same analysis is shared.
 * Then, for texts whose literals vary from one call to the next (Simple
 * Query with inlined values: WHERE aid = 12345), by a normalized key: the
 * text with each number and standard string replaced by a mark of its
 * token type, every other byte kept, white space and comments included.
 * A text whose key matches gets its own analysis, cheaply made from the
 * cached one: same tables, columns, functions, flags and fingerprints,
 * with its own statement texts and offsets. This is safe because such
 * texts give the parser the same tokens in the same order, and only
 * analyses whose outcome cannot depend on the literals' values get a
 * normalized entry: successful ones, where the walk read no literal and
 * every literal became a plain constant in the tree (not FETCH 10,
 * float(10), EXPLAIN (ANALYZE 0), COPY ... 'file'). Where the key's lexer
 * is unsure (dollar quotes, E'' and other prefixed strings, exponents,
 * control bytes, anything unterminated) there is no key and the text is
 * parsed. The full argument is in sqlinfo.c.
 */
#define SQLINFO_CACHE_DEFAULT     1024
#define SQLINFO_CACHE_MAX_ENTRIES (1 << 20) /* larger capacities are cut to this */
#define SQLINFO_CACHE_MAX_SQL     32768

struct sqlinfo_cache;

struct sqlinfo_cache_stats {
	uint64_t hits;            /* by exact text */
	uint64_t normalized_hits; /* by normalized key */
	uint64_t misses;          /* parsed */
	uint64_t evictions, uncached;
	size_t entries, capacity; /* entries of both kinds, one capacity */
};

/* capacity 0 makes a cache that keeps nothing. */
struct sqlinfo_cache *sqlinfo_cache_new(size_t capacity) MUST_CHECK;

/* Drops the cache's references; analyses still held elsewhere live on. */
void sqlinfo_cache_free(struct sqlinfo_cache *cache);

/* Like sqlinfo_analyse, through the cache: the caller gets its own
 * reference either way and frees it with sqlinfo_free(). */
struct sqlinfo *sqlinfo_cache_analyse(struct sqlinfo_cache *cache, const char *sql,
                                      size_t len) MUST_CHECK;

void sqlinfo_cache_get_stats(const struct sqlinfo_cache *cache, struct sqlinfo_cache_stats *out);

#endif
