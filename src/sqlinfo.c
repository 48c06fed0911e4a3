/*
 * Statement analysis over libpg_query (see include/sqlinfo.h for what is
 * reported and why).
 *
 * How: pg_query_parse() gives the raw parse tree as JSON (the faster raw
 * tree API is not exported by the Debian package). jansson would turn a
 * 3.5 KB tree into objects in ~66 us, three times the parse itself, so a
 * small JSON reader here builds a read-only tree in a scratch arena
 * instead, unescaping strings in place in libpg_query's buffer (~1 us).
 *
 * The walk is generic first: every object of the tree is visited, so a
 * RangeVar (a relation name), ColumnRef or FuncCall is found wherever a
 * node type this file has never heard of puts it. Query nodes (SELECT,
 * INSERT, UPDATE, DELETE, MERGE), FROM items and WITH clauses get their
 * own code, because they decide scoping: which names are CTEs rather than
 * tables, which alias a column qualifier means, and which relation is
 * written. A relation met anywhere else is written when the statement is
 * DDL or utility (the default access passed down) and read inside any
 * query, so that a relation in an unexpected place is never missed, at
 * worst reported as written.
 *
 * Cost control, since the text comes from clients: the text is bounded,
 * the JSON depth is bounded, name lookups have a budget, and duplicates
 * are merged by sorting, so no input is worse than O(n log n) beyond the
 * parser's own cost. libpg_query itself recurses once per nesting level
 * when it writes JSON, and a 200 KB `1+1+...+1` overflows an 8 MB stack;
 * long texts are therefore analysed on a thread whose stack is sized to
 * the text.
 */
#include "sqlinfo.h"

#include <assert.h>
#include <limits.h>
#include <pg_query.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* pg_query_fingerprint parses the text again: callers that compute it lazily turn it off. */
static bool with_fingerprints = true;

void sqlinfo_set_fingerprints(bool on)
{
	with_fingerprints = on;
}

/* Texts up to this size are parsed on the caller's stack: at most about
 * 2000 nesting levels, some 300 KB of libpg_query's stack and ours. */
#define INLINE_MAX 4096
/* libpg_query's JSON writer takes ~125 bytes of stack per nesting level,
 * and a level costs at least two bytes of text: 128 per byte is twice
 * that. Our own walk at SQLINFO_MAX_DEPTH fits in the fixed part. */
#define STACK_PER_BYTE 128
#define STACK_FIXED    (8u << 20)
/* Name comparisons allowed per analysis (scope lookups). Real statements
 * use thousands; a crafted one with 10^4 aliases and 10^4 references
 * would take 10^8 and block the event loop. */
#define LOOKUP_BUDGET 20000000L

/* ------------------------------------------------------------------ */
/* Arena: bump allocation in blocks, freed at once.                    */

struct arena_block {
	struct arena_block *next;
	size_t size, used;
};

#define ARENA_ALIGN 16
#define ARENA_HDR   ((sizeof(struct arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

struct arena {
	struct arena_block *head;
	size_t block_size;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	if (n > SIZE_MAX / 4)
		abort(); /* sizes here derive from a text of at most 1 MB */
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		if (n > a->block_size / 2 && b) {
			/* A big piece gets a block of its own behind the current
			 * one, whose free space stays usable. */
			struct arena_block *big = xmalloc(ARENA_HDR + n);
			big->size = big->used = n;
			big->next = b->next;
			b->next = big;
			return (char *)big + ARENA_HDR;
		}
		size_t size = n > a->block_size ? n : a->block_size;
		b = xmalloc(ARENA_HDR + size);
		b->size = size;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b + ARENA_HDR + b->used;
	b->used += n;
	return p;
}

static void *arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	memset(p, 0, n);
	return p;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *arena_strdup(struct arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

static void arena_release(struct arena *a)
{
	struct arena_block *b = a->head;
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
}

/* ------------------------------------------------------------------ */
/* JSON reader for libpg_query's output.                               */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	const char *key; /* member name, when inside an object */
	struct jv *next; /* next member or element */
	union {
		struct jv *first; /* J_ARR, J_OBJ */
		const char *s;    /* J_STR */
		long long num;    /* J_NUM (integral part) */
		bool b;           /* J_BOOL */
	} u;
	unsigned char type;
};

struct jparser {
	char *p, *end;
	struct arena *a;
	int max_depth; /* deepest value met */
	enum sqlinfo_error err;
	const char *errmsg;
};

static void jfail(struct jparser *jp, enum sqlinfo_error err, const char *msg)
{
	if (jp->err == SQLINFO_OK) {
		jp->err = err;
		jp->errmsg = msg;
	}
}

static void jskip_ws(struct jparser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t'))
		jp->p++;
}

static long read_u4(struct jparser *jp)
{
	if (jp->end - jp->p < 4)
		return -1;
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hex_digit(jp->p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	jp->p += 4;
	return v;
}

/*
 * At an opening quote: unescapes the string in place (the result is never
 * longer than its escaped form) and NUL-terminates it. A \u0000 is refused:
 * it would cut a name short in every C string comparison after it.
 */
static char *jparse_string(struct jparser *jp)
{
	char *start = ++jp->p, *out = start;
	while (jp->p < jp->end) {
		/* Strings here are short and rarely escaped: a plain scan, and a
		 * copy only once an escape has shifted the output. */
		char *plain = jp->p;
		while (jp->p < jp->end && *jp->p != '"' && *jp->p != '\\')
			jp->p++;
		if (out != plain)
			memmove(out, plain, (size_t)(jp->p - plain));
		out += jp->p - plain;
		if (jp->p >= jp->end)
			break;
		if (*jp->p == '"') {
			*out = '\0';
			jp->p++;
			return start;
		}
		if (++jp->p >= jp->end)
			break;
		char e = *jp->p++;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			*out++ = e;
			continue;
		case 'b':
			*out++ = '\b';
			continue;
		case 'f':
			*out++ = '\f';
			continue;
		case 'n':
			*out++ = '\n';
			continue;
		case 'r':
			*out++ = '\r';
			continue;
		case 't':
			*out++ = '\t';
			continue;
		case 'u':
			break;
		default:
			goto bad;
		}
		long cp = read_u4(jp);
		if (cp <= 0)
			goto bad;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u')
				goto bad;
			jp->p += 2;
			long lo = read_u4(jp);
			if (lo < 0xDC00 || lo > 0xDFFF)
				goto bad;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
			goto bad;
		}
		if (cp < 0x80) {
			*out++ = (char)cp;
		} else if (cp < 0x800) {
			*out++ = (char)(0xC0 | (cp >> 6));
			*out++ = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			*out++ = (char)(0xE0 | (cp >> 12));
			*out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*out++ = (char)(0x80 | (cp & 0x3F));
		} else {
			*out++ = (char)(0xF0 | (cp >> 18));
			*out++ = (char)(0x80 | ((cp >> 12) & 0x3F));
			*out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*out++ = (char)(0x80 | (cp & 0x3F));
		}
	}
bad:
	jfail(jp, SQLINFO_ERR_INTERNAL, "unreadable string in the parse tree");
	return NULL;
}

static bool jliteral(struct jparser *jp, const char *word, size_t n)
{
	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
		return false;
	jp->p += n;
	return true;
}

static struct jv *jparse_value(struct jparser *jp, int depth);

/* Parses the members or elements of an object or array, after its opener. */
static bool jparse_items(struct jparser *jp, struct jv *v, bool object, int depth)
{
	char closer = object ? '}' : ']';
	struct jv **tail = &v->u.first;
	jskip_ws(jp);
	if (jp->p < jp->end && *jp->p == closer) {
		jp->p++;
		return true;
	}
	for (;;) {
		const char *key = NULL;
		if (object) {
			jskip_ws(jp);
			if (jp->p >= jp->end || *jp->p != '"')
				break;
			key = jparse_string(jp);
			if (!key)
				return false;
			jskip_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':')
				break;
			jp->p++;
		}
		struct jv *item = jparse_value(jp, depth + 1);
		if (!item)
			return false;
		item->key = key;
		*tail = item;
		tail = &item->next;
		jskip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == closer) {
			jp->p++;
			return true;
		}
		break;
	}
	jfail(jp, SQLINFO_ERR_INTERNAL, "malformed parse tree");
	return false;
}

static struct jv *jparse_value(struct jparser *jp, int depth)
{
	if (depth > SQLINFO_MAX_DEPTH) {
		jfail(jp, SQLINFO_ERR_COMPLEX, "statement is nested too deeply to analyse");
		return NULL;
	}
	if (depth > jp->max_depth)
		jp->max_depth = depth;
	jskip_ws(jp);
	if (jp->p >= jp->end) {
		jfail(jp, SQLINFO_ERR_INTERNAL, "truncated parse tree");
		return NULL;
	}
	struct jv *v = arena_zalloc(jp->a, sizeof(*v));
	char c = *jp->p;
	if (c == '{' || c == '[') {
		jp->p++;
		v->type = c == '{' ? J_OBJ : J_ARR;
		return jparse_items(jp, v, c == '{', depth) ? v : NULL;
	}
	if (c == '"') {
		v->type = J_STR;
		v->u.s = jparse_string(jp);
		return v->u.s ? v : NULL;
	}
	if (c == 't' && jliteral(jp, "true", 4)) {
		v->type = J_BOOL;
		v->u.b = true;
		return v;
	}
	if (c == 'f' && jliteral(jp, "false", 5)) {
		v->type = J_BOOL;
		return v;
	}
	if (c == 'n' && jliteral(jp, "null", 4)) {
		v->type = J_NULL;
		return v;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		bool neg = c == '-';
		if (neg)
			jp->p++;
		long long n = 0;
		const char *digits = jp->p;
		while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
			if (n < (LLONG_MAX - 9) / 10)
				n = n * 10 + (*jp->p - '0');
			jp->p++;
		}
		if (jp->p == digits) {
			jfail(jp, SQLINFO_ERR_INTERNAL, "malformed number in the parse tree");
			return NULL;
		}
		/* Fractions and exponents are skipped: only integers matter. */
		while (jp->p < jp->end &&
		       ((*jp->p >= '0' && *jp->p <= '9') || *jp->p == '.' || *jp->p == 'e' ||
		        *jp->p == 'E' || *jp->p == '+' || *jp->p == '-'))
			jp->p++;
		v->type = J_NUM;
		v->u.num = neg ? -n : n;
		return v;
	}
	jfail(jp, SQLINFO_ERR_INTERNAL, "unexpected character in the parse tree");
	return NULL;
}

/* Member of an object, or NULL. */
static const struct jv *jget(const struct jv *obj, const char *key)
{
	if (!obj || obj->type != J_OBJ)
		return NULL;
	for (const struct jv *m = obj->u.first; m; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

static const char *jstr(const struct jv *obj, const char *key)
{
	const struct jv *v = jget(obj, key);
	return v && v->type == J_STR ? v->u.s : NULL;
}

static bool jbool(const struct jv *obj, const char *key)
{
	const struct jv *v = jget(obj, key);
	return v && v->type == J_BOOL && v->u.b;
}

static bool jhas_int(const struct jv *obj, const char *key, long long *out)
{
	const struct jv *v = jget(obj, key);
	if (!v || v->type != J_NUM)
		return false;
	*out = v->u.num;
	return true;
}

/* First element of an array (NULL if v is not an array). */
static const struct jv *jitems(const struct jv *v)
{
	return v && v->type == J_ARR ? v->u.first : NULL;
}

/*
 * A node of the tree is an object with one member named after its type,
 * {"RangeVar": {...}}; fields typed as a specific struct are written
 * without that wrapper. Node type names start with a capital letter,
 * field names do not.
 */
static bool jnode(const struct jv *v, const char **type, const struct jv **inner)
{
	if (!v || v->type != J_OBJ || !v->u.first || v->u.first->next)
		return false;
	const struct jv *m = v->u.first;
	if (m->type != J_OBJ || m->key[0] < 'A' || m->key[0] > 'Z')
		return false;
	*type = m->key;
	*inner = m;
	return true;
}

/* The text of a String node ({"String": {"sval": "x"}}), or NULL. */
static const char *jsval(const struct jv *v)
{
	const char *type;
	const struct jv *inner;
	if (!jnode(v, &type, &inner) || strcmp(type, "String") != 0)
		return NULL;
	const char *s = jstr(inner, "sval");
	return s ? s : "";
}

/* The items of a List node or a bare array. */
static const struct jv *jlist_items(const struct jv *v)
{
	const char *type;
	const struct jv *inner;
	if (jnode(v, &type, &inner) && strcmp(type, "List") == 0)
		return jitems(jget(inner, "items"));
	return jitems(v);
}

/* ------------------------------------------------------------------ */
/* The walk.                                                           */

/*
 * What the walk collects, before duplicates are merged. Every entry starts
 * with a raw_head: its position in the walk, the position of the first
 * entry with an equal key (its group's representative), the index it gets
 * in the result, and where it appears in the text (-1: unknown), which
 * orders the result.
 */
struct raw_head {
	size_t seq, rep, out;
	long long loc;
};

struct raw_table {
	struct raw_head h;
	const char *schema, *name;
	enum sqlinfo_access access;
};

struct raw_column {
	struct raw_head h;
	const char *schema, *table_name, *name;
	int table; /* raw table index or -1 */
	enum sqlinfo_access access;
	bool unqualified;
	bool derived;
};

struct raw_function {
	struct raw_head h;
	const char *schema, *name, *qualified;
};

struct vec {
	void *items;
	size_t n, cap, size;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 16;
		v->items = xrealloc(v->items, v->cap * v->size);
	}
	void *p = (char *)v->items + v->n++ * v->size;
	memset(p, 0, v->size);
	return p;
}

/* A name visible in a query level: a CTE, or a FROM item (by its alias,
 * or its relation name when it has none). */
struct binding {
	struct binding *next;
	const char *name;
	const char *schema; /* unaliased table: its schema as written */
	int table;          /* raw table index, or -1 for anything else */
};

struct level {
	struct level *up;
	struct binding *ctes, *ranges;
};

struct walk {
	struct arena *scratch;
	struct vec tables, columns, functions;
	struct level *level;
	long budget;
	int range_items; /* FROM items and DML targets, every level */
	int last_range_table;
	bool force_read; /* under a plain EXPLAIN nothing runs */
	/* The SELECT whose bare target columns reach the client as they are. */
	const struct jv *top_select;
	bool plain; /* the column reference being walked is such a target */
	bool opaque, unfiltered_write, row_locks, copy_program, copy_file;
	/* The walk read a value that may come from a literal (see the cache). */
	bool literal_sensitive;
	/* Where the A_Const nodes met are (long long), when the cache asks. */
	struct vec *consts;
	enum sqlinfo_error err;
	const char *errmsg;
};

static void walk_fail(struct walk *w, enum sqlinfo_error err, const char *msg)
{
	if (w->err == SQLINFO_OK) {
		w->err = err;
		w->errmsg = msg;
	}
}

static bool name_eq(struct walk *w, const char *a, const char *b)
{
	if (--w->budget < 0) {
		walk_fail(w, SQLINFO_ERR_COMPLEX, "statement names too many relations to analyse");
		return false;
	}
	return strcmp(a, b) == 0;
}

static void bind(struct walk *w, struct binding **list, const char *name, const char *schema,
                 int table)
{
	if (!name)
		return;
	struct binding *b = arena_alloc(w->scratch, sizeof(*b));
	b->name = name;
	b->schema = schema;
	b->table = table;
	b->next = *list;
	*list = b;
}

static bool is_cte(struct walk *w, const char *name)
{
	for (struct level *l = w->level; l; l = l->up)
		for (struct binding *b = l->ctes; b; b = b->next)
			if (name_eq(w, b->name, name))
				return true;
	return false;
}

/* The raw table index a column qualifier means, or -1. */
static int resolve_qualifier(struct walk *w, const char *schema, const char *name)
{
	for (struct level *l = w->level; l; l = l->up)
		for (struct binding *b = l->ranges; b; b = b->next)
			if (name_eq(w, b->name, name) &&
			    (!schema || (b->schema && strcmp(b->schema, schema) == 0)))
				return b->table;
	return -1;
}

/* A node's position in the text (byte offset), or -1. */
static long long jloc(const struct jv *n)
{
	long long loc;
	return jhas_int(n, "location", &loc) ? loc : -1;
}

static int add_table(struct walk *w, const char *schema, const char *name,
                     enum sqlinfo_access access, long long loc)
{
	if (!name) {
		walk_fail(w, SQLINFO_ERR_INTERNAL, "relation without a name in the parse tree");
		return -1;
	}
	struct raw_table *t = vec_push(&w->tables);
	t->h.seq = w->tables.n - 1;
	t->h.loc = loc;
	t->schema = schema;
	t->name = name;
	t->access = w->force_read ? SQLINFO_READ : access;
	return (int)t->h.seq;
}

/* A RangeVar met outside a FROM list (DDL targets, TRUNCATE, LOCK...). */
static int add_rangevar(struct walk *w, const struct jv *rv, enum sqlinfo_access access)
{
	return add_table(w, jstr(rv, "schemaname"), jstr(rv, "relname"), access, jloc(rv));
}

static void add_column(struct walk *w, const char *schema, const char *table, const char *name,
                       int table_index, enum sqlinfo_access access, long long loc)
{
	if (!name)
		return;
	struct raw_column *c = vec_push(&w->columns);
	c->h.seq = w->columns.n - 1;
	c->h.loc = loc;
	c->schema = schema;
	c->table_name = table;
	c->name = name;
	c->table = table_index;
	c->access = w->force_read ? SQLINFO_READ : access;
	c->unqualified = !table && table_index < 0;
	c->derived = access == SQLINFO_READ && !w->plain;
}

/* A RangeVar's name and alias. */
static void rangevar_names(const struct jv *rv, const char **schema, const char **name,
                           const char **alias)
{
	*schema = jstr(rv, "schemaname");
	*name = jstr(rv, "relname");
	*alias = jstr(jget(rv, "alias"), "aliasname");
}

/* A DML target or COPY relation: recorded, and bound in the current level
 * under its alias or name so that RETURNING and SET can refer to it. */
static int add_target(struct walk *w, const struct jv *rv, enum sqlinfo_access access)
{
	const char *schema, *name, *alias;
	rangevar_names(rv, &schema, &name, &alias);
	int idx = add_table(w, schema, name, access, jloc(rv));
	bind(w, &w->level->ranges, alias ? alias : name, alias ? NULL : schema, idx);
	w->range_items++;
	w->last_range_table = idx;
	return idx;
}

static void walk_value(struct walk *w, const struct jv *v, enum sqlinfo_access access);
static void walk_select(struct walk *w, const struct jv *n);

static void walk_fields(struct walk *w, const struct jv *obj, enum sqlinfo_access access)
{
	for (const struct jv *m = obj->u.first; m && !w->err; m = m->next)
		walk_value(w, m, access);
}

static void walk_fields_except(struct walk *w, const struct jv *obj, const char *const *skip)
{
	for (const struct jv *m = obj->u.first; m && !w->err; m = m->next) {
		bool skipped = false;
		for (const char *const *s = skip; *s; s++)
			if (strcmp(m->key, *s) == 0)
				skipped = true;
		if (!skipped)
			walk_value(w, m, SQLINFO_READ);
	}
}

static void walk_column_ref(struct walk *w, const struct jv *n)
{
	const char *part[4] = {NULL, NULL, NULL, NULL};
	int count = 0;
	for (const struct jv *f = jitems(jget(n, "fields")); f; f = f->next) {
		const char *type;
		const struct jv *inner;
		const char *s = jsval(f);
		if (!s && jnode(f, &type, &inner) && strcmp(type, "A_Star") == 0)
			s = "*";
		if (!s)
			continue;
		if (count == 4) {
			memmove(part, part + 1, 3 * sizeof(part[0]));
			count = 3;
		}
		part[count++] = s;
	}
	if (count == 0)
		return;
	const char *name = part[count - 1];
	const char *table = count >= 2 ? part[count - 2] : NULL;
	const char *schema = count >= 3 ? part[count - 3] : NULL;
	int idx = table ? resolve_qualifier(w, schema, table) : -1;
	add_column(w, schema, table, name, idx, SQLINFO_READ, jloc(n));
	/* A lone name may be a FROM item's: its whole row, never a plain column. */
	int row = count == 1 && strcmp(name, "*") != 0 ? resolve_qualifier(w, NULL, name) : -1;
	if (row >= 0) {
		bool plain = w->plain;
		w->plain = false;
		add_column(w, NULL, name, "*", row, SQLINFO_READ, jloc(n));
		w->plain = plain;
	}
}

static void walk_func_call(struct walk *w, const struct jv *n)
{
	const struct jv *names = jitems(jget(n, "funcname"));
	const char *last = NULL, *before = NULL;
	size_t len = 0, parts = 0;
	for (const struct jv *f = names; f; f = f->next) {
		const char *s = jsval(f);
		if (!s)
			continue;
		before = last;
		last = s;
		len += strlen(s) + 1;
		parts++;
	}
	if (last) {
		char *q = arena_alloc(w->scratch, len), *p = q;
		for (const struct jv *f = names; f; f = f->next) {
			const char *s = jsval(f);
			if (!s)
				continue;
			if (p != q)
				*p++ = '.';
			size_t l = strlen(s);
			memcpy(p, s, l);
			p += l;
		}
		*p = '\0';
		struct raw_function *fn = vec_push(&w->functions);
		fn->h.seq = w->functions.n - 1;
		fn->h.loc = jloc(n);
		fn->schema = parts >= 2 ? before : NULL;
		fn->name = last;
		fn->qualified = q;
	}
	walk_fields(w, n, SQLINFO_READ);
}

/* CTEs: a non-recursive WITH shows each CTE to the ones after it and to
 * the query; a recursive one shows all of them to all of them. */
static void walk_with(struct walk *w, const struct jv *with)
{
	if (!with)
		return;
	bool recursive = jbool(with, "recursive");
	const struct jv *ctes = jitems(jget(with, "ctes"));
	const char *type;
	const struct jv *cte;
	if (recursive)
		for (const struct jv *c = ctes; c; c = c->next)
			if (jnode(c, &type, &cte))
				bind(w, &w->level->ctes, jstr(cte, "ctename"), NULL, -1);
	for (const struct jv *c = ctes; c && !w->err; c = c->next) {
		if (!jnode(c, &type, &cte)) {
			walk_value(w, c, SQLINFO_READ);
			continue;
		}
		walk_value(w, jget(cte, "ctequery"), SQLINFO_READ);
		if (!recursive)
			bind(w, &w->level->ctes, jstr(cte, "ctename"), NULL, -1);
	}
}

static void walk_from_item(struct walk *w, const struct jv *v)
{
	const char *type;
	const struct jv *n;
	if (!jnode(v, &type, &n)) {
		walk_value(w, v, SQLINFO_READ);
		return;
	}
	const char *alias = jstr(jget(n, "alias"), "aliasname");
	if (strcmp(type, "RangeVar") == 0) {
		const char *schema, *name;
		rangevar_names(n, &schema, &name, &alias);
		w->range_items++;
		if (!schema && name && !jget(n, "catalogname") && is_cte(w, name)) {
			bind(w, &w->level->ranges, alias ? alias : name, NULL, -1);
			w->last_range_table = -1;
			return;
		}
		int idx = add_table(w, schema, name, SQLINFO_READ, jloc(n));
		bind(w, &w->level->ranges, alias ? alias : name, alias ? NULL : schema, idx);
		w->last_range_table = idx;
	} else if (strcmp(type, "JoinExpr") == 0) {
		walk_from_item(w, jget(n, "larg"));
		walk_from_item(w, jget(n, "rarg"));
		walk_value(w, jget(n, "quals"), SQLINFO_READ);
		bind(w, &w->level->ranges, alias, NULL, -1);
		bind(w, &w->level->ranges, jstr(jget(n, "join_using_alias"), "aliasname"), NULL,
		     -1);
	} else if (strcmp(type, "RangeTableSample") == 0) {
		walk_from_item(w, jget(n, "relation"));
		walk_value(w, jget(n, "args"), SQLINFO_READ);
		walk_value(w, jget(n, "repeatable"), SQLINFO_READ);
	} else if (strcmp(type, "RangeSubselect") == 0 || strcmp(type, "RangeFunction") == 0 ||
	           strcmp(type, "RangeTableFunc") == 0) {
		w->range_items++;
		w->last_range_table = -1;
		walk_fields(w, n, SQLINFO_READ);
		bind(w, &w->level->ranges, alias, NULL, -1);
	} else {
		walk_value(w, v, SQLINFO_READ);
	}
}

static void walk_from_list(struct walk *w, const struct jv *list)
{
	for (const struct jv *i = jitems(list); i && !w->err; i = i->next)
		walk_from_item(w, i);
}

/* ResTargets naming columns of the target (INSERT's column list, SET,
 * MERGE's actions): written columns, then their values, read. */
static void walk_assignments(struct walk *w, const struct jv *list, int target)
{
	const char *type;
	const struct jv *rt;
	for (const struct jv *i = jitems(list); i && !w->err; i = i->next) {
		if (jnode(i, &type, &rt) && strcmp(type, "ResTarget") == 0) {
			add_column(w, NULL, NULL, jstr(rt, "name"), target, SQLINFO_WRITE,
			           jloc(rt));
			walk_value(w, jget(rt, "indirection"), SQLINFO_READ);
			walk_value(w, jget(rt, "val"), SQLINFO_READ);
		} else {
			walk_value(w, i, SQLINFO_READ);
		}
	}
}

static void enter(struct walk *w, struct level *l)
{
	memset(l, 0, sizeof(*l));
	l->up = w->level;
	w->level = l;
}

static void leave(struct walk *w, struct level *l)
{
	w->level = l->up;
}

/*
 * Marks, in *sorted (one flag per target, 1-based), the targets that
 * ORDER BY, GROUP BY or DISTINCT ON of list refer to by position or by
 * output alias: PostgreSQL orders or groups by the target itself then,
 * with no column reference of its own in the clause. A position marks
 * every target: reading its value would make the analysis depend on a
 * literal (ORDER BY 1 and ORDER BY 2 share a normalized key).
 */
static void mark_sorted_targets(const struct jv *list, const struct jv *targets, bool *sorted,
                                int n_targets)
{
	const char *type;
	const struct jv *e;
	for (const struct jv *i = jitems(list); i; i = i->next) {
		if (!jnode(i, &type, &e))
			continue;
		if (strcmp(type, "SortBy") == 0 && !jnode(jget(e, "node"), &type, &e))
			continue;
		if (strcmp(type, "A_Const") == 0) {
			memset(sorted, 1, (size_t)n_targets + 1);
			continue;
		}
		const struct jv *fields = jitems(jget(e, "fields"));
		const char *name = strcmp(type, "ColumnRef") == 0 && fields && !fields->next
		                       ? jsval(fields)
		                       : NULL;
		int k = 1;
		const struct jv *rt;
		for (const struct jv *t = jitems(targets); name && t; t = t->next, k++)
			if (jnode(t, &type, &rt) && jstr(rt, "name") &&
			    strcmp(jstr(rt, "name"), name) == 0)
				sorted[k] = true;
	}
}

/* The top-level SELECT's targets: bare column references are plain output
 * columns, unless the statement sorts or groups by them. */
static void walk_top_targets(struct walk *w, const struct jv *n)
{
	const struct jv *targets = jget(n, "targetList");
	int n_targets = 0;
	for (const struct jv *t = jitems(targets); t; t = t->next)
		n_targets++;
	bool *sorted = arena_zalloc(w->scratch, (size_t)n_targets + 1);
	mark_sorted_targets(jget(n, "sortClause"), targets, sorted, n_targets);
	mark_sorted_targets(jget(n, "groupClause"), targets, sorted, n_targets);
	mark_sorted_targets(jget(n, "distinctClause"), targets, sorted, n_targets);
	int k = 1;
	const char *type;
	const struct jv *rt, *val;
	for (const struct jv *t = jitems(targets); t && !w->err; t = t->next, k++) {
		if (!sorted[k] && jnode(t, &type, &rt) && strcmp(type, "ResTarget") == 0 &&
		    jnode(jget(rt, "val"), &type, &val) && strcmp(type, "ColumnRef") == 0) {
			w->plain = true;
			walk_column_ref(w, val);
			w->plain = false;
			continue;
		}
		walk_value(w, t, SQLINFO_READ);
	}
}

static void walk_select(struct walk *w, const struct jv *n)
{
	struct level l;
	enter(w, &l);
	walk_with(w, jget(n, "withClause"));
	walk_from_list(w, jget(n, "fromClause"));
	const struct jv *into = jget(n, "intoClause");
	if (into)
		add_rangevar(w, jget(into, "rel"), SQLINFO_WRITE);
	/* FOR UPDATE OF x names aliases, not tables: not walked. */
	if (jget(n, "lockingClause") && !w->force_read)
		w->row_locks = true;
	bool top = n == w->top_select && !jget(n, "larg");
	if (top)
		walk_top_targets(w, n);
	static const char *const skip[] = {"withClause", "fromClause", "intoClause",
	                                   "lockingClause", NULL};
	static const char *const skip_top[] = {"withClause",    "fromClause", "intoClause",
	                                       "lockingClause", "targetList", NULL};
	walk_fields_except(w, n, top ? skip_top : skip);
	leave(w, &l);
}

static void walk_insert(struct walk *w, const struct jv *n)
{
	struct level l;
	enter(w, &l);
	walk_with(w, jget(n, "withClause"));
	int target = add_target(w, jget(n, "relation"), SQLINFO_WRITE);
	walk_assignments(w, jget(n, "cols"), target);
	walk_value(w, jget(n, "selectStmt"), SQLINFO_READ);
	const struct jv *occ = jget(n, "onConflictClause");
	if (occ) {
		/* EXCLUDED is the row proposed for the target. */
		bind(w, &l.ranges, "excluded", NULL, target);
		walk_value(w, jget(occ, "infer"), SQLINFO_READ);
		walk_assignments(w, jget(occ, "targetList"), target);
		walk_value(w, jget(occ, "whereClause"), SQLINFO_READ);
	}
	walk_value(w, jget(n, "returningList"), SQLINFO_READ);
	leave(w, &l);
}

static void walk_update_delete(struct walk *w, const struct jv *n, bool update)
{
	struct level l;
	enter(w, &l);
	walk_with(w, jget(n, "withClause"));
	int target = add_target(w, jget(n, "relation"), SQLINFO_WRITE);
	walk_from_list(w, jget(n, update ? "fromClause" : "usingClause"));
	if (update)
		walk_assignments(w, jget(n, "targetList"), target);
	const struct jv *where = jget(n, "whereClause");
	if (!where && !w->force_read)
		w->unfiltered_write = true;
	walk_value(w, where, SQLINFO_READ);
	walk_value(w, jget(n, "returningList"), SQLINFO_READ);
	leave(w, &l);
}

static void walk_merge(struct walk *w, const struct jv *n)
{
	struct level l;
	enter(w, &l);
	walk_with(w, jget(n, "withClause"));
	int target = add_target(w, jget(n, "relation"), SQLINFO_WRITE);
	walk_from_item(w, jget(n, "sourceRelation"));
	walk_value(w, jget(n, "joinCondition"), SQLINFO_READ);
	const char *type;
	const struct jv *wc;
	for (const struct jv *i = jitems(jget(n, "mergeWhenClauses")); i && !w->err; i = i->next) {
		if (!jnode(i, &type, &wc)) {
			walk_value(w, i, SQLINFO_READ);
			continue;
		}
		walk_value(w, jget(wc, "condition"), SQLINFO_READ);
		walk_assignments(w, jget(wc, "targetList"), target);
		walk_value(w, jget(wc, "values"), SQLINFO_READ);
	}
	leave(w, &l);
}

static void walk_node(struct walk *w, const char *type, const struct jv *n,
                      enum sqlinfo_access access)
{
	switch (type[0]) {
	case 'A':
		/* A constant holds nothing the analysis reports. */
		if (strcmp(type, "A_Const") == 0) {
			if (w->consts) {
				long long loc = 0; /* libpg_query leaves out a zero */
				jhas_int(n, "location", &loc);
				*(long long *)vec_push(w->consts) = loc;
			}
			return;
		}
		break;
	case 'C':
		if (strcmp(type, "ColumnRef") == 0) {
			walk_column_ref(w, n);
			return;
		}
		break;
	case 'D':
		if (strcmp(type, "DeleteStmt") == 0) {
			walk_update_delete(w, n, false);
			return;
		}
		break;
	case 'E':
		/* CREATE TABLE ... AS EXECUTE runs a prepared statement. */
		if (strcmp(type, "ExecuteStmt") == 0 && !w->force_read)
			w->opaque = true;
		break;
	case 'F':
		if (strcmp(type, "FuncCall") == 0) {
			walk_func_call(w, n);
			return;
		}
		break;
	case 'I':
		if (strcmp(type, "InsertStmt") == 0) {
			walk_insert(w, n);
			return;
		}
		break;
	case 'M':
		if (strcmp(type, "MergeStmt") == 0) {
			walk_merge(w, n);
			return;
		}
		break;
	case 'R':
		if (strcmp(type, "RangeVar") == 0) {
			add_rangevar(w, n, access);
			return;
		}
		break;
	case 'S':
		if (strcmp(type, "SelectStmt") == 0) {
			walk_select(w, n);
			return;
		}
		if (strcmp(type, "String") == 0)
			return;
		break;
	case 'U':
		if (strcmp(type, "UpdateStmt") == 0) {
			walk_update_delete(w, n, true);
			return;
		}
		break;
	}
	walk_fields(w, n, access);
}

static void walk_value(struct walk *w, const struct jv *v, enum sqlinfo_access access)
{
	if (!v || w->err)
		return;
	if (v->type == J_ARR) {
		for (const struct jv *i = v->u.first; i && !w->err; i = i->next)
			walk_value(w, i, access);
		return;
	}
	if (v->type != J_OBJ)
		return;
	const char *type;
	const struct jv *inner;
	if (jnode(v, &type, &inner)) {
		walk_node(w, type, inner, access);
		return;
	}
	/* Struct-typed fields come unwrapped: recognise the two that matter. */
	if (jget(v, "relname")) {
		add_rangevar(w, v, access);
		return;
	}
	if (jget(v, "limitOption") && jget(v, "op")) { /* SelectStmt larg/rarg */
		walk_select(w, v);
		return;
	}
	walk_fields(w, v, access);
}

/* ------------------------------------------------------------------ */
/* Statement classification: command tags as PostgreSQL's             */
/* CreateCommandTag() (utility.c) names them.                          */

/* ObjectType enum names to SQL words, where removing "OBJECT_" and
 * turning '_' into ' ' does not give them. */
static const struct {
	const char *objtype, *words;
} objtype_words[] = {
    {"OBJECT_MATVIEW", "MATERIALIZED VIEW"},
    {"OBJECT_FDW", "FOREIGN DATA WRAPPER"},
    {"OBJECT_FOREIGN_SERVER", "SERVER"},
    {"OBJECT_TSPARSER", "TEXT SEARCH PARSER"},
    {"OBJECT_TSDICTIONARY", "TEXT SEARCH DICTIONARY"},
    {"OBJECT_TSTEMPLATE", "TEXT SEARCH TEMPLATE"},
    {"OBJECT_TSCONFIGURATION", "TEXT SEARCH CONFIGURATION"},
    {"OBJECT_OPCLASS", "OPERATOR CLASS"},
    {"OBJECT_OPFAMILY", "OPERATOR FAMILY"},
    {"OBJECT_STATISTIC_EXT", "STATISTICS"},
    {"OBJECT_LARGEOBJECT", "LARGE OBJECT"},
    /* ALTER of a part is tagged with the whole */
    {"OBJECT_ATTRIBUTE", "TYPE"},
    {"OBJECT_COLUMN", "TABLE"},
    {"OBJECT_TABCONSTRAINT", "TABLE"},
    {"OBJECT_DOMCONSTRAINT", "DOMAIN"},
};

/* "<verb> <object words>" in the result arena, or "???" when the object
 * type is missing. */
static const char *objtype_tag(struct arena *a, const char *verb, const char *objtype)
{
	if (!objtype || strncmp(objtype, "OBJECT_", 7) != 0)
		return "???";
	const char *words = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(objtype_words); i++)
		if (strcmp(objtype, objtype_words[i].objtype) == 0)
			words = objtype_words[i].words;
	size_t vl = strlen(verb);
	const char *src = words ? words : objtype + 7;
	size_t sl = strlen(src);
	char *tag = arena_alloc(a, vl + 1 + sl + 1);
	memcpy(tag, verb, vl);
	tag[vl] = ' ';
	for (size_t i = 0; i < sl; i++)
		tag[vl + 1 + i] = words ? src[i] : (src[i] == '_' ? ' ' : src[i]);
	tag[vl + 1 + sl] = '\0';
	return tag;
}

/* Object types whose names are relations (pg_class). */
static bool objtype_is_relation(const char *objtype)
{
	static const char *const rel[] = {"OBJECT_TABLE",    "OBJECT_VIEW",
	                                  "OBJECT_MATVIEW",  "OBJECT_FOREIGN_TABLE",
	                                  "OBJECT_SEQUENCE", "OBJECT_INDEX"};
	for (size_t i = 0; objtype && i < ARRAY_SIZE(rel); i++)
		if (strcmp(objtype, rel[i]) == 0)
			return true;
	return false;
}

/* Object types named by a relation's name and their own (a trigger, rule,
 * policy or constraint ON a table; a column as table.column). */
static bool objtype_is_on_relation(const char *objtype)
{
	static const char *const on[] = {"OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY",
	                                 "OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"};
	for (size_t i = 0; objtype && i < ARRAY_SIZE(on); i++)
		if (strcmp(objtype, on[i]) == 0)
			return true;
	return false;
}

/*
 * The relation in an object name given as a list of String nodes (DROP,
 * COMMENT, SECURITY LABEL), recorded as written: the whole name for a
 * relation, the name without its last part for an object on a relation.
 */
static void add_object_name(struct walk *w, const char *objtype, const struct jv *list)
{
	bool on = objtype_is_on_relation(objtype);
	if (!on && !objtype_is_relation(objtype))
		return;
	const char *part[3] = {NULL, NULL, NULL};
	for (const struct jv *i = jlist_items(list); i; i = i->next) {
		const char *s = jsval(i);
		if (s) {
			part[0] = part[1];
			part[1] = part[2];
			part[2] = s;
		}
	}
	if (on)
		add_table(w, part[0], part[1], SQLINFO_WRITE, -1);
	else if (part[2])
		add_table(w, part[1], part[2], SQLINFO_WRITE, -1);
}

/* Statements whose tag and kind depend on their node type only. */
static const struct {
	const char *node;
	enum sqlinfo_kind kind;
	const char *command;
} fixed_tags[] = {
    {"AlterCollationStmt", SQLINFO_DDL, "ALTER COLLATION"},
    {"AlterDatabaseRefreshCollStmt", SQLINFO_DDL, "ALTER DATABASE"},
    {"AlterDatabaseSetStmt", SQLINFO_DDL, "ALTER DATABASE"},
    {"AlterDatabaseStmt", SQLINFO_DDL, "ALTER DATABASE"},
    {"AlterDefaultPrivilegesStmt", SQLINFO_DDL, "ALTER DEFAULT PRIVILEGES"},
    {"AlterDomainStmt", SQLINFO_DDL, "ALTER DOMAIN"},
    {"AlterEnumStmt", SQLINFO_DDL, "ALTER TYPE"},
    {"AlterEventTrigStmt", SQLINFO_DDL, "ALTER EVENT TRIGGER"},
    {"AlterExtensionContentsStmt", SQLINFO_DDL, "ALTER EXTENSION"},
    {"AlterExtensionStmt", SQLINFO_DDL, "ALTER EXTENSION"},
    {"AlterFdwStmt", SQLINFO_DDL, "ALTER FOREIGN DATA WRAPPER"},
    {"AlterForeignServerStmt", SQLINFO_DDL, "ALTER SERVER"},
    {"AlterOpFamilyStmt", SQLINFO_DDL, "ALTER OPERATOR FAMILY"},
    {"AlterOperatorStmt", SQLINFO_DDL, "ALTER OPERATOR"},
    {"AlterPolicyStmt", SQLINFO_DDL, "ALTER POLICY"},
    {"AlterPublicationStmt", SQLINFO_DDL, "ALTER PUBLICATION"},
    {"AlterRoleSetStmt", SQLINFO_DDL, "ALTER ROLE"},
    {"AlterRoleStmt", SQLINFO_DDL, "ALTER ROLE"},
    {"AlterSeqStmt", SQLINFO_DDL, "ALTER SEQUENCE"},
    {"AlterStatsStmt", SQLINFO_DDL, "ALTER STATISTICS"},
    {"AlterSubscriptionStmt", SQLINFO_DDL, "ALTER SUBSCRIPTION"},
    {"AlterSystemStmt", SQLINFO_DDL, "ALTER SYSTEM"},
    {"AlterTSConfigurationStmt", SQLINFO_DDL, "ALTER TEXT SEARCH CONFIGURATION"},
    {"AlterTSDictionaryStmt", SQLINFO_DDL, "ALTER TEXT SEARCH DICTIONARY"},
    {"AlterTableSpaceOptionsStmt", SQLINFO_DDL, "ALTER TABLESPACE"},
    {"AlterTypeStmt", SQLINFO_DDL, "ALTER TYPE"},
    {"AlterUserMappingStmt", SQLINFO_DDL, "ALTER USER MAPPING"},
    {"CheckPointStmt", SQLINFO_UTILITY, "CHECKPOINT"},
    {"ClusterStmt", SQLINFO_DDL, "CLUSTER"},
    {"CreateAmStmt", SQLINFO_DDL, "CREATE ACCESS METHOD"},
    {"CreateCastStmt", SQLINFO_DDL, "CREATE CAST"},
    {"CreateConversionStmt", SQLINFO_DDL, "CREATE CONVERSION"},
    {"CreateDomainStmt", SQLINFO_DDL, "CREATE DOMAIN"},
    {"CreateEnumStmt", SQLINFO_DDL, "CREATE TYPE"},
    {"CreateEventTrigStmt", SQLINFO_DDL, "CREATE EVENT TRIGGER"},
    {"CreateExtensionStmt", SQLINFO_DDL, "CREATE EXTENSION"},
    {"CreateFdwStmt", SQLINFO_DDL, "CREATE FOREIGN DATA WRAPPER"},
    {"CreateForeignServerStmt", SQLINFO_DDL, "CREATE SERVER"},
    {"CreateForeignTableStmt", SQLINFO_DDL, "CREATE FOREIGN TABLE"},
    {"CreateOpClassStmt", SQLINFO_DDL, "CREATE OPERATOR CLASS"},
    {"CreateOpFamilyStmt", SQLINFO_DDL, "CREATE OPERATOR FAMILY"},
    {"CreatePLangStmt", SQLINFO_DDL, "CREATE LANGUAGE"},
    {"CreatePolicyStmt", SQLINFO_DDL, "CREATE POLICY"},
    {"CreatePublicationStmt", SQLINFO_DDL, "CREATE PUBLICATION"},
    {"CreateRangeStmt", SQLINFO_DDL, "CREATE TYPE"},
    {"CreateRoleStmt", SQLINFO_DDL, "CREATE ROLE"},
    {"CreateSchemaStmt", SQLINFO_DDL, "CREATE SCHEMA"},
    {"CreateSeqStmt", SQLINFO_DDL, "CREATE SEQUENCE"},
    {"CreateStatsStmt", SQLINFO_DDL, "CREATE STATISTICS"},
    {"CreateStmt", SQLINFO_DDL, "CREATE TABLE"},
    {"CreateSubscriptionStmt", SQLINFO_DDL, "CREATE SUBSCRIPTION"},
    {"CreateTableSpaceStmt", SQLINFO_DDL, "CREATE TABLESPACE"},
    {"CreateTransformStmt", SQLINFO_DDL, "CREATE TRANSFORM"},
    {"CreateTrigStmt", SQLINFO_DDL, "CREATE TRIGGER"},
    {"CreateUserMappingStmt", SQLINFO_DDL, "CREATE USER MAPPING"},
    {"CreatedbStmt", SQLINFO_DDL, "CREATE DATABASE"},
    {"DropOwnedStmt", SQLINFO_DDL, "DROP OWNED"},
    {"DropRoleStmt", SQLINFO_DDL, "DROP ROLE"},
    {"DropSubscriptionStmt", SQLINFO_DDL, "DROP SUBSCRIPTION"},
    {"DropTableSpaceStmt", SQLINFO_DDL, "DROP TABLESPACE"},
    {"DropUserMappingStmt", SQLINFO_DDL, "DROP USER MAPPING"},
    {"DropdbStmt", SQLINFO_DDL, "DROP DATABASE"},
    {"ImportForeignSchemaStmt", SQLINFO_DDL, "IMPORT FOREIGN SCHEMA"},
    {"IndexStmt", SQLINFO_DDL, "CREATE INDEX"},
    {"ListenStmt", SQLINFO_UTILITY, "LISTEN"},
    {"NotifyStmt", SQLINFO_UTILITY, "NOTIFY"},
    {"ReassignOwnedStmt", SQLINFO_DDL, "REASSIGN OWNED"},
    {"RefreshMatViewStmt", SQLINFO_DDL, "REFRESH MATERIALIZED VIEW"},
    {"ReindexStmt", SQLINFO_UTILITY, "REINDEX"},
    {"RuleStmt", SQLINFO_DDL, "CREATE RULE"},
    {"TruncateStmt", SQLINFO_DDL, "TRUNCATE TABLE"},
    {"UnlistenStmt", SQLINFO_UTILITY, "UNLISTEN"},
    {"ViewStmt", SQLINFO_DDL, "CREATE VIEW"},
};

/* Statements whose tag is a verb and the statement's object type. */
static const struct {
	const char *node, *field, *verb;
} objtype_tags[] = {
    {"AlterFunctionStmt", "objtype", "ALTER"},
    {"AlterObjectDependsStmt", "objectType", "ALTER"},
    {"AlterObjectSchemaStmt", "objectType", "ALTER"},
    {"AlterOwnerStmt", "objectType", "ALTER"},
    {"AlterTableMoveAllStmt", "objtype", "ALTER"},
    {"AlterTableStmt", "objtype", "ALTER"},
    {"DefineStmt", "kind", "CREATE"},
    {"DropStmt", "removeType", "DROP"},
};

static const struct {
	const char *kind, *command;
} transaction_tags[] = {
    {"TRANS_STMT_BEGIN", "BEGIN"},
    {"TRANS_STMT_START", "START TRANSACTION"},
    {"TRANS_STMT_COMMIT", "COMMIT"},
    {"TRANS_STMT_ROLLBACK", "ROLLBACK"},
    {"TRANS_STMT_SAVEPOINT", "SAVEPOINT"},
    {"TRANS_STMT_RELEASE", "RELEASE"},
    {"TRANS_STMT_ROLLBACK_TO", "ROLLBACK"},
    {"TRANS_STMT_PREPARE", "PREPARE TRANSACTION"},
    {"TRANS_STMT_COMMIT_PREPARED", "COMMIT PREPARED"},
    {"TRANS_STMT_ROLLBACK_PREPARED", "ROLLBACK PREPARED"},
};

static const struct {
	const char *target, *command;
} discard_tags[] = {
    {"DISCARD_ALL", "DISCARD ALL"},
    {"DISCARD_PLANS", "DISCARD PLANS"},
    {"DISCARD_SEQUENCES", "DISCARD SEQUENCES"},
    {"DISCARD_TEMP", "DISCARD TEMP"},
};

/* What the classification decides about one top-level statement. */
struct stmt_class {
	enum sqlinfo_kind kind;
	const char *command;
	const char *setting;
	bool has_where;
};

/* EXPLAIN's analyze option, as explain.c reads it: the last one wins, and
 * anything but false/off/0 is true (or an error, and then nothing runs).
 * Its argument may be a literal, (ANALYZE 0) or (ANALYZE 'off'): the only
 * literal value the walk reads (see literal_sensitive in the cache). */
static bool explain_analyzes(struct walk *w, const struct jv *options)
{
	bool analyze = false;
	const char *type;
	const struct jv *de;
	for (const struct jv *o = jitems(options); o; o = o->next) {
		if (!jnode(o, &type, &de) || strcmp(type, "DefElem") != 0)
			continue;
		const char *name = jstr(de, "defname");
		if (!name || strcmp(name, "analyze") != 0)
			continue;
		const struct jv *arg = jget(de, "arg");
		const char *s = jsval(arg);
		const struct jv *inner;
		long long num;
		if (arg)
			w->literal_sensitive = true;
		if (!arg)
			analyze = true;
		else if (s)
			analyze = !(strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0);
		else if (jnode(arg, &type, &inner) && strcmp(type, "Integer") == 0)
			analyze = jhas_int(inner, "ival", &num) && num != 0;
		else if (jnode(arg, &type, &inner) && strcmp(type, "Boolean") == 0)
			analyze = jbool(inner, "boolval");
		else
			analyze = true;
	}
	return analyze;
}

static void classify(struct walk *w, struct arena *out, const char *type, const struct jv *n,
                     struct stmt_class *c);

/*
 * A parameter name as PostgreSQL looks it up: without regard to case, so
 * SET "ROLE" = 'x' is SET ROLE. Lower-cased here so that a policy
 * comparing with "role" cannot be sidestepped by quoting.
 */
static const char *setting_name(struct arena *out, const char *name)
{
	if (!name)
		return NULL;
	char *s = arena_strdup(out, name);
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

static void classify_explain(struct walk *w, struct arena *out, const struct jv *n,
                             struct stmt_class *c, bool *explain_analyze)
{
	const char *type;
	const struct jv *inner;
	struct stmt_class ic = {0};
	c->kind = SQLINFO_UTILITY;
	c->command = "EXPLAIN";
	if (!jnode(jget(n, "query"), &type, &inner)) {
		walk_fail(w, SQLINFO_ERR_INTERNAL, "EXPLAIN without a statement");
		return;
	}
	if (explain_analyzes(w, jget(n, "options"))) {
		/* It runs: what runs is what a policy must judge. */
		*explain_analyze = true;
		classify(w, out, type, inner, &ic);
		c->kind = ic.kind;
		c->has_where = ic.has_where;
	} else {
		bool saved = w->force_read;
		w->force_read = true;
		classify(w, out, type, inner, &ic);
		w->force_read = saved;
	}
	walk_value(w, jget(n, "options"), SQLINFO_READ);
}

static void walk_copy(struct walk *w, const struct jv *n)
{
	bool from = jbool(n, "is_from");
	enum sqlinfo_access access = from ? SQLINFO_WRITE : SQLINFO_READ;
	struct level l;
	enter(w, &l);
	const struct jv *rel = jget(n, "relation");
	if (rel) {
		int target = add_target(w, rel, access);
		const struct jv *cols = jitems(jget(n, "attlist"));
		if (!cols) /* every column goes in or out */
			add_column(w, NULL, NULL, "*", target, access, jloc(rel));
		for (const struct jv *c = cols; c; c = c->next)
			add_column(w, NULL, NULL, jsval(c), target, access, jloc(rel));
	}
	walk_value(w, jget(n, "query"), SQLINFO_READ);
	walk_value(w, jget(n, "whereClause"), SQLINFO_READ);
	if (!w->force_read) {
		if (jbool(n, "is_program"))
			w->copy_program = true;
		else if (jstr(n, "filename")) /* a literal, but only its presence counts */
			w->copy_file = true;
	}
	leave(w, &l);
}

/* EXECUTE and FETCH answer with the RowDescription of the statement
 * PREPARE and DECLARE name: their SELECT is a top-level one. */
static void top_select_of(struct walk *w, const struct jv *query)
{
	const char *type;
	const struct jv *n;
	if (jnode(query, &type, &n) && strcmp(type, "SelectStmt") == 0 && !jget(n, "intoClause"))
		w->top_select = n;
}

static void set_opaque(struct walk *w)
{
	if (!w->force_read)
		w->opaque = true;
}

/* Decides kind and command of one statement node and walks it. */
static void classify(struct walk *w, struct arena *out, const char *type, const struct jv *n,
                     struct stmt_class *c)
{
	const char *s;
	c->kind = SQLINFO_UTILITY;
	c->command = "???";

	if (strcmp(type, "SelectStmt") == 0) {
		bool into = jget(n, "intoClause") != NULL;
		c->kind = into ? SQLINFO_DDL : SQLINFO_SELECT;
		c->command = into ? "SELECT INTO" : "SELECT";
		if (!into)
			w->top_select = n;
		walk_select(w, n);
		return;
	}
	if (strcmp(type, "InsertStmt") == 0) {
		c->kind = SQLINFO_INSERT;
		c->command = "INSERT";
		walk_insert(w, n);
		return;
	}
	if (strcmp(type, "UpdateStmt") == 0 || strcmp(type, "DeleteStmt") == 0) {
		bool update = type[0] == 'U';
		c->kind = update ? SQLINFO_UPDATE : SQLINFO_DELETE;
		c->command = update ? "UPDATE" : "DELETE";
		c->has_where = jget(n, "whereClause") != NULL;
		walk_update_delete(w, n, update);
		return;
	}
	if (strcmp(type, "MergeStmt") == 0) {
		c->kind = SQLINFO_MERGE;
		c->command = "MERGE";
		walk_merge(w, n);
		return;
	}
	if (strcmp(type, "CopyStmt") == 0) {
		c->kind = SQLINFO_COPY;
		c->command = "COPY";
		walk_copy(w, n);
		return;
	}
	if (strcmp(type, "TransactionStmt") == 0) {
		c->kind = SQLINFO_TRANSACTION;
		s = jstr(n, "kind");
		for (size_t i = 0; s && i < ARRAY_SIZE(transaction_tags); i++)
			if (strcmp(s, transaction_tags[i].kind) == 0)
				c->command = transaction_tags[i].command;
		return;
	}
	if (strcmp(type, "VariableSetStmt") == 0) {
		s = jstr(n, "kind");
		bool reset = s && strncmp(s, "VAR_RESET", 9) == 0;
		c->kind = SQLINFO_SET;
		c->command = reset ? "RESET" : "SET";
		c->setting = setting_name(out, jstr(n, "name"));
		walk_value(w, jget(n, "args"), SQLINFO_READ);
		return;
	}
	if (strcmp(type, "VariableShowStmt") == 0) {
		c->command = "SHOW";
		c->setting = setting_name(out, jstr(n, "name"));
		return;
	}
	if (strcmp(type, "DiscardStmt") == 0) {
		c->kind = SQLINFO_SET;
		s = jstr(n, "target");
		for (size_t i = 0; s && i < ARRAY_SIZE(discard_tags); i++)
			if (strcmp(s, discard_tags[i].target) == 0)
				c->command = discard_tags[i].command;
		return;
	}
	if (strcmp(type, "ExplainStmt") == 0) {
		bool analyze = false;
		classify_explain(w, out, n, c, &analyze);
		return;
	}
	if (strcmp(type, "CallStmt") == 0) {
		c->kind = SQLINFO_CALL;
		c->command = "CALL";
		set_opaque(w);
		const struct jv *fc = jget(n, "funccall");
		if (fc)
			walk_func_call(w, fc);
		return;
	}
	if (strcmp(type, "DoStmt") == 0) {
		c->kind = SQLINFO_DO;
		c->command = "DO";
		set_opaque(w);
		return;
	}
	if (strcmp(type, "ExecuteStmt") == 0) {
		c->command = "EXECUTE";
		set_opaque(w);
		walk_value(w, jget(n, "params"), SQLINFO_READ);
		return;
	}
	if (strcmp(type, "PrepareStmt") == 0) {
		/* Not run now, but EXECUTE is opaque: this is where a policy
		 * can see what a prepared statement will do. */
		c->command = "PREPARE";
		top_select_of(w, jget(n, "query"));
		walk_value(w, jget(n, "query"), SQLINFO_READ);
		return;
	}
	if (strcmp(type, "DeclareCursorStmt") == 0) {
		c->kind = SQLINFO_SELECT;
		c->command = "DECLARE CURSOR";
		top_select_of(w, jget(n, "query"));
		walk_value(w, jget(n, "query"), SQLINFO_READ);
		return;
	}
	if (strcmp(type, "ClosePortalStmt") == 0) {
		c->command = jstr(n, "portalname") ? "CLOSE CURSOR" : "CLOSE CURSOR ALL";
		return;
	}
	if (strcmp(type, "FetchStmt") == 0) {
		c->command = jbool(n, "ismove") ? "MOVE" : "FETCH";
		return;
	}
	if (strcmp(type, "DeallocateStmt") == 0) {
		c->command = jstr(n, "name") ? "DEALLOCATE" : "DEALLOCATE ALL";
		return;
	}
	if (strcmp(type, "LockStmt") == 0) {
		/* ACCESS SHARE (1) needs SELECT; every other mode needs a
		 * write privilege and blocks writers. */
		long long mode = 8;
		jhas_int(n, "mode", &mode);
		c->command = "LOCK TABLE";
		walk_value(w, jget(n, "relations"), mode == 1 ? SQLINFO_READ : SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "VacuumStmt") == 0) {
		c->command = jbool(n, "is_vacuumcmd") ? "VACUUM" : "ANALYZE";
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "GrantStmt") == 0 || strcmp(type, "GrantRoleStmt") == 0) {
		bool role = type[5] == 'R';
		bool grant = jbool(n, "is_grant");
		c->kind = SQLINFO_DDL;
		c->command =
		    role ? (grant ? "GRANT ROLE" : "REVOKE ROLE") : (grant ? "GRANT" : "REVOKE");
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "CreateFunctionStmt") == 0) {
		c->kind = SQLINFO_DDL;
		c->command = jbool(n, "is_procedure") ? "CREATE PROCEDURE" : "CREATE FUNCTION";
		/* A body given as a string (AS '...', or a C library) is code
		 * this analysis cannot read; a SQL-standard body (BEGIN ATOMIC,
		 * RETURN) is parsed and walked. */
		const char *dtype;
		const struct jv *de;
		for (const struct jv *o = jitems(jget(n, "options")); o; o = o->next)
			if (jnode(o, &dtype, &de) && (s = jstr(de, "defname")) &&
			    strcmp(s, "as") == 0)
				set_opaque(w);
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "CreateTableAsStmt") == 0) {
		s = jstr(n, "objtype");
		c->kind = SQLINFO_DDL;
		c->command = s && strcmp(s, "OBJECT_MATVIEW") == 0 ? "CREATE MATERIALIZED VIEW"
		                                                   : "CREATE TABLE AS";
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "RenameStmt") == 0) {
		s = jstr(n, "renameType");
		if (s && strcmp(s, "OBJECT_COLUMN") == 0)
			s = jstr(n, "relationType");
		c->kind = SQLINFO_DDL;
		c->command = objtype_tag(out, "ALTER", s);
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	if (strcmp(type, "CommentStmt") == 0 || strcmp(type, "SecLabelStmt") == 0) {
		c->kind = SQLINFO_DDL;
		c->command = type[0] == 'C' ? "COMMENT" : "SECURITY LABEL";
		add_object_name(w, jstr(n, "objtype"), jget(n, "object"));
		return;
	}
	if (strcmp(type, "LoadStmt") == 0) {
		/* Runs a shared library's initialisation code. */
		c->command = "LOAD";
		set_opaque(w);
		return;
	}
	if (strcmp(type, "ConstraintsSetStmt") == 0) {
		/* Its constraint names are RangeVars, but not relations. */
		c->kind = SQLINFO_SET;
		c->command = "SET CONSTRAINTS";
		return;
	}
	if (strcmp(type, "CompositeTypeStmt") == 0) {
		/* Its name is a RangeVar (composite types live in pg_class),
		 * but it names a type, not a table. */
		c->kind = SQLINFO_DDL;
		c->command = "CREATE TYPE";
		walk_value(w, jget(n, "coldeflist"), SQLINFO_WRITE);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(objtype_tags); i++) {
		if (strcmp(type, objtype_tags[i].node) != 0)
			continue;
		s = jstr(n, objtype_tags[i].field);
		c->kind = SQLINFO_DDL;
		c->command = objtype_tag(out, objtype_tags[i].verb, s);
		if (strcmp(type, "DropStmt") == 0) {
			for (const struct jv *o = jitems(jget(n, "objects")); o; o = o->next)
				add_object_name(w, s, o);
			return;
		}
		if (strcmp(type, "AlterTableStmt") == 0 && s && strcmp(s, "OBJECT_TYPE") == 0) {
			/* ALTER TYPE of a composite type: its name is a RangeVar. */
			walk_value(w, jget(n, "cmds"), SQLINFO_WRITE);
			return;
		}
		walk_fields(w, n, SQLINFO_WRITE);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fixed_tags); i++) {
		if (strcmp(type, fixed_tags[i].node) == 0) {
			c->kind = fixed_tags[i].kind;
			c->command = fixed_tags[i].command;
			walk_fields(w, n, SQLINFO_WRITE);
			return;
		}
	}
	/* A statement type unknown here: fail closed. */
	set_opaque(w);
	walk_fields(w, n, SQLINFO_WRITE);
}

/* ------------------------------------------------------------------ */
/* Merging duplicates and building the result.                         */

static int nullcmp(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int table_key_cmp(const void *pa, const void *pb)
{
	const struct raw_table *a = *(const struct raw_table *const *)pa;
	const struct raw_table *b = *(const struct raw_table *const *)pb;
	int c = nullcmp(a->schema, b->schema);
	return c ? c : strcmp(a->name, b->name);
}

static int column_key_cmp(const void *pa, const void *pb)
{
	const struct raw_column *a = *(const struct raw_column *const *)pa;
	const struct raw_column *b = *(const struct raw_column *const *)pb;
	int c = nullcmp(a->schema, b->schema);
	if (!c)
		c = nullcmp(a->table_name, b->table_name);
	if (!c)
		c = strcmp(a->name, b->name);
	if (!c)
		c = (a->table > b->table) - (a->table < b->table);
	return c;
}

static int function_key_cmp(const void *pa, const void *pb)
{
	const struct raw_function *a = *(const struct raw_function *const *)pa;
	const struct raw_function *b = *(const struct raw_function *const *)pb;
	return strcmp(a->qualified, b->qualified);
}

static int text_order_cmp(const void *pa, const void *pb)
{
	const struct raw_head *a = *(const struct raw_head *const *)pa;
	const struct raw_head *b = *(const struct raw_head *const *)pb;
	if (a->loc != b->loc)
		return a->loc < b->loc ? -1 : 1;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

static struct raw_head *entry(const struct vec *v, size_t i)
{
	return (struct raw_head *)((char *)v->items + i * v->size);
}

/*
 * Groups the entries of v with equal keys (by sorting: O(n log n) whatever
 * the input) and numbers the groups in text order: sets every entry's rep
 * and out. Returns the number of groups.
 */
static size_t group_entries(struct arena *scratch, struct vec *v,
                            int (*cmp)(const void *, const void *))
{
	if (v->n == 0)
		return 0;
	struct raw_head **p = arena_alloc(scratch, v->n * sizeof(*p));
	for (size_t i = 0; i < v->n; i++)
		p[i] = entry(v, i);
	qsort(p, v->n, sizeof(*p), cmp);
	for (size_t i = 0; i < v->n;) {
		size_t j = i, first = p[i]->seq;
		long long loc = p[i]->loc;
		for (; j < v->n && cmp(&p[i], &p[j]) == 0; j++) {
			if (p[j]->seq < first)
				first = p[j]->seq;
			if (p[j]->loc >= 0 && (loc < 0 || p[j]->loc < loc))
				loc = p[j]->loc;
		}
		for (size_t k = i; k < j; k++)
			p[k]->rep = first;
		entry(v, first)->loc = loc;
		i = j;
	}
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		if (entry(v, i)->rep == i)
			p[n++] = entry(v, i);
	qsort(p, n, sizeof(*p), text_order_cmp);
	for (size_t k = 0; k < n; k++)
		p[k]->out = k;
	for (size_t i = 0; i < v->n; i++)
		entry(v, i)->out = entry(v, entry(v, i)->rep)->out;
	return n;
}

static void build_tables(struct walk *w, struct arena *out, struct sqlinfo_stmt *st)
{
	struct raw_table *raw = w->tables.items;
	size_t n = group_entries(w->scratch, &w->tables, table_key_cmp);
	struct sqlinfo_table *t = n ? arena_zalloc(out, n * sizeof(*t)) : NULL;
	for (size_t i = 0; i < w->tables.n; i++) {
		struct sqlinfo_table *o = &t[raw[i].h.out];
		if (raw[i].h.rep == i) {
			o->schema = arena_strdup(out, raw[i].schema);
			o->name = arena_strdup(out, raw[i].name);
		}
		if (raw[i].access == SQLINFO_WRITE) {
			o->access = SQLINFO_WRITE;
			st->writes = true;
		}
	}
	st->tables = t;
	st->n_tables = n;
}

static void build_columns(struct walk *w, struct arena *out, struct sqlinfo_stmt *st)
{
	struct raw_column *raw = w->columns.items;
	struct raw_table *tables = w->tables.items;
	/* The only FROM item of the whole statement is a table: an
	 * unqualified column can only be one of its columns. */
	int single = w->range_items == 1 ? w->last_range_table : -1;
	for (size_t i = 0; i < w->columns.n; i++) {
		if (raw[i].unqualified && single >= 0)
			raw[i].table = single;
		raw[i].table = raw[i].table >= 0 ? (int)tables[raw[i].table].h.out : -1;
	}
	size_t n = group_entries(w->scratch, &w->columns, column_key_cmp);
	struct sqlinfo_column *c = n ? arena_zalloc(out, n * sizeof(*c)) : NULL;
	for (size_t i = 0; i < w->columns.n; i++) {
		struct sqlinfo_column *o = &c[raw[i].h.out];
		if (raw[i].h.rep == i) {
			o->schema = arena_strdup(out, raw[i].schema);
			o->table = arena_strdup(out, raw[i].table_name);
			o->name = arena_strdup(out, raw[i].name);
			o->table_index = raw[i].table;
		}
		if (raw[i].access == SQLINFO_WRITE)
			o->access = SQLINFO_WRITE;
		if (raw[i].derived)
			o->derived = true;
	}
	st->columns = c;
	st->n_columns = n;
}

static void build_functions(struct walk *w, struct arena *out, struct sqlinfo_stmt *st)
{
	struct raw_function *raw = w->functions.items;
	size_t n = group_entries(w->scratch, &w->functions, function_key_cmp);
	struct sqlinfo_function *f = n ? arena_zalloc(out, n * sizeof(*f)) : NULL;
	for (size_t i = 0; i < w->functions.n; i++) {
		if (raw[i].h.rep != i)
			continue;
		struct sqlinfo_function *o = &f[raw[i].h.out];
		o->schema = arena_strdup(out, raw[i].schema);
		o->name = arena_strdup(out, raw[i].name);
		o->qualified = arena_strdup(out, raw[i].qualified);
	}
	st->functions = f;
	st->n_functions = n;
}

/* ------------------------------------------------------------------ */
/* Literals, for the cache's normalized keys.                          */

/*
 * A normalized key is the text with every numeric and standard string
 * literal replaced by one byte naming the token PostgreSQL's scanner makes
 * of it, every other byte kept. The lexer below accepts only what it can
 * tell apart exactly as scan.l does; for anything else there is no key and
 * the text is parsed (a cost, never a risk):
 *   - `$` must start a parameter ($1 is kept as written): no dollar quotes;
 *   - a `'` must follow white space, the start or one of ( , = < > + - * / | [ %,
 *     so that E'', B'', X'', N'' and U&'' are never taken for standard
 *     strings, and `&"` (U&"" and its UESCAPE) is refused;
 *   - numbers are \d+ and \d+\.\d+ only, not after a `.` and not before
 *     a letter, `_`, `.`, `$` or a byte >= 0x80 (exponents, junk, 1..2);
 *   - control bytes other than \t \n \r \f outside literals, NUL anywhere,
 *     and unterminated strings, comments or quoted identifiers.
 * A standard string ends at a `'` not doubled (standard_conforming_strings
 * is on, see sqlinfo_session_safe()); `--` comments end at \n or \r;
 * block comments nest.
 */
enum { KEY_ICONST = 1, KEY_FCONST = 2, KEY_SCONST = 3 };

#define NO_SIGN SIZE_MAX

struct literal {
	size_t start, len;
	/* A '-' before it with only white space or comments between: the
	 * grammar folds "- 5" into one constant placed at the sign. */
	size_t sign;
	/* A string continuing the previous one across a newline: the scanner
	 * makes one token of both. */
	bool joined;
};

struct normkey {
	char *key;
	size_t key_len;
	struct literal *lits;
	size_t n, cap;
	struct literal few[4]; /* lits until there are more */
};

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* scan.l's ident_start and ident_cont. */
static bool is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_cont(unsigned char c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

/* Bytes a key may keep: the placeholders are control bytes. */
static bool is_key_byte(unsigned char c)
{
	return c >= 0x20 || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool quote_may_follow(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       (c != '\0' && strchr("(,=<>+-*/|[%", c) != NULL);
}

/* ICONST when it fits an int (scan.l's process_integer_literal), else FCONST. */
static char integer_token(const unsigned char *d, size_t n)
{
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (d[i] - '0');
		if (v > INT_MAX)
			return KEY_FCONST;
	}
	return KEY_ICONST;
}

static void add_literal(struct normkey *nk, size_t start, size_t len, size_t sign, bool joined)
{
	if (nk->n == nk->cap) {
		size_t cap = nk->cap * 4;
		struct literal *l = xmalloc(cap * sizeof(*l));
		memcpy(l, nk->lits, nk->n * sizeof(*l));
		if (nk->lits != nk->few)
			free(nk->lits);
		nk->lits = l;
		nk->cap = cap;
	}
	nk->lits[nk->n++] = (struct literal){start, len, sign, joined};
}

static void normkey_release(struct normkey *nk)
{
	free(nk->key);
	if (nk->lits != nk->few)
		free(nk->lits);
}

/* Fills nk (released by the caller either way); false: no key. */
static bool normalize(const char *sql, size_t len, struct normkey *nk)
{
	const unsigned char *t = (const unsigned char *)sql;
	char *k = nk->key = xmalloc(len + 1);
	nk->lits = nk->few;
	nk->n = 0;
	nk->cap = ARRAY_SIZE(nk->few);
	size_t sign = NO_SIGN;
	/* Since the last string: only white space, and a newline in it. */
	bool after_string = false, newline = false;
	size_t i = 0;
	while (i < len) {
		unsigned char c = t[i];
		size_t from = i;
		bool literal = false, space = false;
		if (c == '-' && i + 1 < len && t[i + 1] == '-') {
			while (i < len && t[i] != '\n' && t[i] != '\r')
				if (!is_key_byte(t[i++]))
					return false;
			space = true;
			after_string = false;
		} else if (c == '/' && i + 1 < len && t[i + 1] == '*') {
			i += 2;
			for (int depth = 1; depth > 0;) {
				if (i + 1 >= len)
					return false;
				if (t[i] == '/' && t[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (t[i] == '*' && t[i + 1] == '/') {
					depth--;
					i += 2;
				} else if (!is_key_byte(t[i++])) {
					return false;
				}
			}
			space = true;
			after_string = false;
		} else if (c == '"') {
			for (i++;; i++) {
				if (i >= len || !is_key_byte(t[i]))
					return false;
				if (t[i] == '"' && (i + 1 >= len || t[i + 1] != '"'))
					break;
				if (t[i] == '"')
					i++;
			}
			i++;
		} else if (c == '\'') {
			if (i > 0 && !quote_may_follow(t[i - 1]))
				return false;
			for (i++;; i++) {
				if (i >= len || t[i] == '\0')
					return false;
				if (t[i] == '\'' && (i + 1 >= len || t[i + 1] != '\''))
					break;
				if (t[i] == '\'')
					i++;
			}
			i++;
			add_literal(nk, from, i - from, sign, after_string && newline);
			*k++ = KEY_SCONST;
			literal = true;
		} else if (is_digit(c)) {
			if (i > 0 && t[i - 1] == '.')
				return false;
			while (i < len && is_digit(t[i]))
				i++;
			char token = integer_token(t + from, i - from);
			if (i + 1 < len && t[i] == '.' && is_digit(t[i + 1])) {
				for (i++; i < len && is_digit(t[i]);)
					i++;
				token = KEY_FCONST;
			}
			if (i < len && (is_ident_start(t[i]) || t[i] == '.' || t[i] == '$'))
				return false;
			add_literal(nk, from, i - from, sign, false);
			*k++ = token;
			literal = true;
		} else if (c == '$') {
			if (i + 1 >= len || !is_digit(t[i + 1]))
				return false;
			for (i++; i < len && is_digit(t[i]);)
				i++;
		} else if (is_ident_start(c)) {
			while (i < len && is_ident_cont(t[i]))
				i++;
		} else if (c == '&' && i + 1 < len && (t[i + 1] == '"' || t[i + 1] == '\'')) {
			return false;
		} else if (!is_key_byte(c)) {
			return false;
		} else {
			i++;
			space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
			if (c == '\n' || c == '\r')
				newline = true;
		}
		if (!literal) {
			memcpy(k, t + from, i - from);
			k += i - from;
		}
		if (space)
			continue;
		sign = c == '-' && !literal ? from : NO_SIGN;
		after_string = literal && c == '\'';
		newline = false;
	}
	nk->key_len = (size_t)(k - nk->key);
	return true;
}

static int loc_cmp(const void *pa, const void *pb)
{
	long long a = *(const long long *)pa, b = *(const long long *)pb;
	return (a > b) - (a < b);
}

static bool has_loc(const long long *locs, size_t n, size_t at)
{
	long long key = (long long)at;
	return bsearch(&key, locs, n, sizeof(*locs), loc_cmp) != NULL;
}

/*
 * Whether every literal of nk is at the place of an A_Const node (whose
 * positions the walk collected): its own, that of a '-' before it, or, for
 * a string continuing another, that of the first. Where the grammar keeps
 * a literal some other way (FETCH 10, float(10), int[5], a DefElem's
 * argument, COPY's file name), its value may change the parse or the
 * fingerprint. This also catches the lexer taking for a literal what the
 * scanner does not (a quote inside a dollar quote or a comment): no
 * constant is there.
 */
static bool literals_in_consts(struct vec *consts, const struct normkey *nk)
{
	long long *locs = consts->items;
	if (consts->n == 0)
		return nk->n == 0;
	qsort(locs, consts->n, sizeof(*locs), loc_cmp);
	bool held = false;
	for (size_t i = 0; i < nk->n; i++) {
		const struct literal *l = &nk->lits[i];
		held = (l->joined && held) || has_loc(locs, consts->n, l->start) ||
		       (l->sign != NO_SIGN && has_loc(locs, consts->n, l->sign));
		if (!held)
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Analysis.                                                           */

const char *sqlinfo_kind_name(enum sqlinfo_kind kind)
{
	static const char *const names[] = {
	    [SQLINFO_SELECT] = "select", [SQLINFO_INSERT] = "insert",
	    [SQLINFO_UPDATE] = "update", [SQLINFO_DELETE] = "delete",
	    [SQLINFO_MERGE] = "merge",   [SQLINFO_DDL] = "ddl",
	    [SQLINFO_COPY] = "copy",     [SQLINFO_TRANSACTION] = "transaction",
	    [SQLINFO_SET] = "set",       [SQLINFO_CALL] = "call",
	    [SQLINFO_DO] = "do",         [SQLINFO_UTILITY] = "utility",
	};
	return (size_t)kind < ARRAY_SIZE(names) ? names[kind] : "utility";
}

const char *sqlinfo_access_name(enum sqlinfo_access access)
{
	return access == SQLINFO_WRITE ? "write" : "read";
}

static const char *error_sqlstate(enum sqlinfo_error err)
{
	switch (err) {
	case SQLINFO_OK:
		return NULL;
	case SQLINFO_ERR_SYNTAX:
		return "42601";
	case SQLINFO_ERR_TOO_LONG:
		return "54000";
	case SQLINFO_ERR_COMPLEX:
		return "54001";
	case SQLINFO_ERR_INVALID:
		return "22021";
	case SQLINFO_ERR_INTERNAL:
		break;
	}
	return "XX000";
}

static void set_error(struct sqlinfo *info, struct arena *a, enum sqlinfo_error err,
                      const char *msg, int pos)
{
	info->error = err;
	info->error_message = arena_strdup(a, msg);
	info->error_position = pos;
	info->error_sqlstate = error_sqlstate(err);
	info->n_stmts = 0;
	info->stmts = NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Analyses one RawStmt of the tree into st. */
static bool analyse_stmt(struct sqlinfo *info, struct arena *out, struct arena *scratch,
                         struct vec *consts, const struct jv *raw, struct sqlinfo_stmt *st)
{
	long long loc = 0, len = 0;
	jhas_int(raw, "stmt_location", &loc);
	jhas_int(raw, "stmt_len", &len);
	if (loc < 0 || len < 0 || (size_t)loc > info->len ||
	    (size_t)len > info->len - (size_t)loc) {
		set_error(info, out, SQLINFO_ERR_INTERNAL, "statement outside the text", 0);
		return false;
	}
	if (len == 0) /* the last statement runs to the end */
		len = (long long)(info->len - (size_t)loc);
	if (info->multi) {
		size_t b = (size_t)loc, e = (size_t)(loc + len);
		while (b < e && is_space(info->text[b]))
			b++;
		while (e > b && is_space(info->text[e - 1]))
			e--;
		st->sql = arena_strndup(out, info->text + b, e - b);
		st->sql_len = e - b;
		st->offset = b;
	} else {
		st->sql = info->text;
		st->sql_len = info->len;
		st->offset = 0;
	}
	st->multi = info->multi;

	const char *type;
	const struct jv *node;
	if (!jnode(jget(raw, "stmt"), &type, &node)) {
		set_error(info, out, SQLINFO_ERR_INTERNAL, "statement node not understood", 0);
		return false;
	}
	struct walk w = {
	    .scratch = scratch,
	    .tables = {.size = sizeof(struct raw_table)},
	    .columns = {.size = sizeof(struct raw_column)},
	    .functions = {.size = sizeof(struct raw_function)},
	    .budget = LOOKUP_BUDGET,
	    .last_range_table = -1,
	    .consts = consts,
	};
	struct level top = {0};
	w.level = &top;
	struct stmt_class c = {0};
	bool ok = false;
	if (strcmp(type, "ExplainStmt") == 0) {
		st->explain = true;
		classify_explain(&w, out, node, &c, &st->explain_analyze);
	} else {
		classify(&w, out, type, node, &c);
	}
	if (w.err != SQLINFO_OK) {
		set_error(info, out, w.err, w.errmsg, 0);
		goto done;
	}
	st->kind = c.kind;
	st->command = c.command;
	st->setting = arena_strdup(out, c.setting);
	st->has_where = c.has_where;
	st->unfiltered_write = w.unfiltered_write;
	st->opaque = w.opaque;
	st->row_locks = w.row_locks;
	st->copy_program = w.copy_program;
	st->copy_file = w.copy_file;
	if (w.literal_sensitive)
		info->literal_sensitive = true;
	build_tables(&w, out, st);
	build_columns(&w, out, st);
	build_functions(&w, out, st);

	if (!with_fingerprints) {
		ok = true;
		goto done;
	}
	PgQueryFingerprintResult fp = pg_query_fingerprint(st->sql);
	if (fp.error || !fp.fingerprint_str) {
		set_error(info, out, SQLINFO_ERR_INTERNAL,
		          fp.error ? fp.error->message : "no fingerprint", 0);
	} else {
		st->fingerprint = arena_strdup(out, fp.fingerprint_str);
		ok = true;
	}
	pg_query_free_fingerprint_result(fp);
done:
	free(w.tables.items);
	free(w.columns.items);
	free(w.functions.items);
	return ok;
}

/* Counts statements without trusting anything else of the tree. */
static size_t count_items(const struct jv *v)
{
	size_t n = 0;
	for (const struct jv *i = jitems(v); i; i = i->next)
		n++;
	return n;
}

static struct sqlinfo *new_info(const char *sql, size_t len)
{
	struct arena a = {.head = NULL, .block_size = 2048};
	struct sqlinfo *info = arena_zalloc(&a, sizeof(*info));
	info->refs = 1;
	size_t keep = len > SQLINFO_MAX_SQL ? 0 : len;
	info->text = arena_strndup(&a, sql ? sql : "", sql ? keep : 0);
	info->len = keep;
	struct arena *home = arena_alloc(&a, sizeof(*home));
	*home = a;
	info->arena = home;
	return info;
}

/* The arena that holds the analysis, stored in one of its own blocks. */
static struct arena *info_arena(struct sqlinfo *info)
{
	return info->arena;
}

/*
 * Whether this thread holds libpg_query's memory context, and whether it
 * has released it: pg_query_exit() crashes in a thread that never parsed
 * and when called twice, and after it the thread cannot parse again
 * (libpg_query exits the process), so later analyses go to a new thread.
 */
static _Thread_local bool pg_query_used, pg_query_closed;

/*
 * Parses and walks info->text. nk: the cache's literals of the text, or
 * NULL; with them, an analysis that may depend on their values is marked
 * literal_sensitive.
 */
static void analyse_core(struct sqlinfo *info, const struct normkey *nk)
{
	struct arena *out = info_arena(info);
	pg_query_used = true;
	PgQueryParseResult pr = pg_query_parse(info->text);
	if (pr.error) {
		set_error(info, out, SQLINFO_ERR_SYNTAX, pr.error->message, pr.error->cursorpos);
		pg_query_free_parse_result(pr);
		return;
	}
	struct arena scratch = {.head = NULL, .block_size = 32768};
	struct vec consts = {.size = sizeof(long long)};
	struct jparser jp = {
	    .p = pr.parse_tree,
	    .end = pr.parse_tree + strlen(pr.parse_tree),
	    .a = &scratch,
	};
	struct jv *tree = jparse_value(&jp, 0);
	if (tree) {
		jskip_ws(&jp);
		if (jp.p != jp.end)
			jfail(&jp, SQLINFO_ERR_INTERNAL, "trailing data after the parse tree");
	}
	if (jp.err != SQLINFO_OK) {
		set_error(info, out, jp.err, jp.errmsg, 0);
		goto done;
	}
	/* libpg_query leaves out an integer constant's value when it is zero
	 * (or negative): one level less, so at the limit a 0 may pass where
	 * a 5 is refused. */
	if (jp.max_depth >= SQLINFO_MAX_DEPTH - 1)
		info->literal_sensitive = true;
	const struct jv *stmts = jget(tree, "stmts");
	if (!stmts || stmts->type != J_ARR) {
		set_error(info, out, SQLINFO_ERR_INTERNAL, "parse tree without statements", 0);
		goto done;
	}
	size_t n = count_items(stmts);
	info->multi = n > 1;
	struct sqlinfo_stmt *st = n ? arena_zalloc(out, n * sizeof(*st)) : NULL;
	size_t i = 0;
	for (const struct jv *raw = jitems(stmts); raw; raw = raw->next, i++)
		if (!analyse_stmt(info, out, &scratch, nk ? &consts : NULL, raw, &st[i]))
			goto done;
	info->stmts = st;
	info->n_stmts = n;
	if (nk && !literals_in_consts(&consts, nk))
		info->literal_sensitive = true;
done:
	free(consts.items);
	arena_release(&scratch);
	pg_query_free_parse_result(pr);
}

struct analysis_job {
	struct sqlinfo *info;
	const struct normkey *nk;
};

static void *analyse_thread(void *arg)
{
	struct analysis_job *job = arg;
	analyse_core(job->info, job->nk);
	return NULL;
}

/* Runs analyse_core on a thread with a stack big enough for the text (see
 * the top of the file). Signals stay with the event loop's thread. */
static void analyse_on_thread(struct sqlinfo *info, const struct normkey *nk)
{
	struct analysis_job job = {info, nk};
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int rc = pthread_attr_init(&attr);
	if (rc == 0)
		rc = pthread_attr_setstacksize(&attr, STACK_FIXED + info->len * STACK_PER_BYTE);
	if (rc == 0) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&thread, &attr, analyse_thread, &job);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc == 0)
			pthread_join(thread, NULL);
	}
	pthread_attr_destroy(&attr);
	if (rc != 0)
		set_error(info, info_arena(info), SQLINFO_ERR_INTERNAL,
		          "could not start the analysis of a long statement", 0);
}

static struct sqlinfo *analyse(const char *sql, size_t len, const struct normkey *nk)
{
	if (!sql)
		len = 0;
	struct sqlinfo *info = new_info(sql, len);
	struct arena *out = info_arena(info);
	if (len > SQLINFO_MAX_SQL) {
		char msg[128];
		snprintf(msg, sizeof(msg),
		         "statement of %zu bytes is longer than the %d bytes analysed", len,
		         SQLINFO_MAX_SQL);
		set_error(info, out, SQLINFO_ERR_TOO_LONG, msg, 0);
		return info;
	}
	const char *nul = memchr(info->text, '\0', len);
	if (nul) {
		set_error(info, out, SQLINFO_ERR_INVALID, "statement text contains a NUL byte",
		          (int)(nul - info->text) + 1);
		return info;
	}
	if (len > INLINE_MAX || pg_query_closed)
		analyse_on_thread(info, nk);
	else
		analyse_core(info, nk);
	return info;
}

struct sqlinfo *sqlinfo_analyse(const char *sql, size_t len)
{
	return analyse(sql, len, NULL);
}

/* PostgreSQL's server encodings (pg_wchar.h, up to PG_ENCODING_BE_LAST):
 * none has a multibyte character with an ASCII byte in it. Names are
 * compared as PostgreSQL compares them: case and punctuation ignored. */
static const char *const safe_encodings[] = {
    "sqlascii",    "utf8",        "unicode",      "eucjp",       "euccn",       "euckr",
    "euctw",       "eucjis2004",  "muleinternal", "latin1",      "latin2",      "latin3",
    "latin4",      "latin5",      "latin6",       "latin7",      "latin8",      "latin9",
    "latin10",     "iso88591",    "iso88592",     "iso88593",    "iso88594",    "iso88595",
    "iso88596",    "iso88597",    "iso88598",     "iso88599",    "iso885910",   "iso885913",
    "iso885914",   "iso885915",   "iso885916",    "win866",      "win874",      "win1250",
    "win1251",     "win1252",     "win1253",      "win1254",     "win1255",     "win1256",
    "win1257",     "win1258",     "windows866",   "windows874",  "windows1250", "windows1251",
    "windows1252", "windows1253", "windows1254",  "windows1255", "windows1256", "windows1257",
    "windows1258", "koi8r",       "koi8",         "koi8u",
};

bool sqlinfo_session_safe(const char *client_encoding, const char *standard_conforming_strings)
{
	if (!client_encoding || !standard_conforming_strings ||
	    strcasecmp(standard_conforming_strings, "on") != 0)
		return false;
	char name[32];
	size_t n = 0;
	for (const char *p = client_encoding; *p; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			continue;
		if (n + 1 >= sizeof(name))
			return false;
		name[n++] = ch;
	}
	name[n] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(safe_encodings); i++)
		if (strcmp(name, safe_encodings[i]) == 0)
			return true;
	return false;
}

const struct sqlinfo_stmt *sqlinfo_structure_of(const struct sqlinfo *info, size_t i)
{
	return info->base ? &info->base->stmts[i] : &info->stmts[i];
}

struct sqlinfo *sqlinfo_ref(struct sqlinfo *info)
{
	info->refs++;
	return info;
}

void sqlinfo_free(struct sqlinfo *info)
{
	if (!info)
		return;
	assert(info->refs > 0);
	if (--info->refs > 0)
		return;
	struct sqlinfo *base = info->base;
	if (base) { /* a view (see the cache): one block */
		free(info);
		sqlinfo_free(base);
		return;
	}
	struct arena a = *info_arena(info);
	arena_release(&a);
}

void sqlinfo_shutdown(void)
{
	if (pg_query_used)
		pg_query_exit();
	pg_query_used = false;
	pg_query_closed = true;
}

/* ------------------------------------------------------------------ */
/* Cache.                                                              */

/*
 * Two kinds of entries share one LRU list and one capacity. An exact entry
 * is keyed by the text and serves it again. A normalized entry is keyed by
 * normalize()'s key of an analysed text that has literals, and serves any
 * text with the same key, that is the same statement with other literal
 * values, as a view of that analysis: see make_view().
 *
 * Why a view says what a parse would: equal keys mean the same bytes
 * outside the literals, and literals the scanner turns into the same
 * tokens (ICONST, FCONST or SCONST), so the grammar reduces the same way
 * and builds the same tree but for the values of those tokens and the
 * positions after them. (That rests on the lexer; a literal it would see
 * where the scanner sees none has no A_Const, below, and marks the
 * analysis.) What could still differ, and what answers it:
 *   - The walk reading a value: it reads one only for EXPLAIN's analyze
 *     option, and marks the analysis literal_sensitive there.
 *   - The grammar keeping a value outside an A_Const, or checking it:
 *     FETCH 10 is a count (in the fingerprint), float(60) an error, int[5]
 *     an array bound, COPY's file name a string field. A literal that is
 *     not at an A_Const's place marks the analysis too (literals_in_consts).
 *     An A_Const's value the walk never reads and libpg_query's
 *     fingerprint ignores, and PostgreSQL 15's grammar does not look at it
 *     once made from a literal (zone_value checks an interval's mask,
 *     made from key words).
 *   - The tree's depth: libpg_query leaves out a zero integer, one JSON
 *     level; an analysis at the depth limit is marked.
 *   - Positions: tables, columns and functions are ordered by where they
 *     appear, and a position moves by what the literals before it grew or
 *     shrank, which keeps the order; make_view() moves statement texts
 *     and offsets the same way.
 * Only successful, unmarked analyses get a normalized entry. A normalized
 * hit does not add the exact text: with literals that vary, it would not
 * be asked for again and would push out entries that are.
 */
struct span {
	size_t start, len;
};

struct cache_entry {
	struct cache_entry *hnext;       /* hash chain */
	struct cache_entry *prev, *next; /* LRU list, newest first */
	uint64_t hash;
	struct sqlinfo *info; /* the cache's reference */
	const char *key;      /* info->text, or the normalized key after lits */
	size_t key_len;
	bool normalized;
	/* Normalized: where info->text's literals are, for make_view(); they
	 * and the key follow the entry in its block. */
	const struct span *lits;
	size_t n_lits;
};

struct sqlinfo_cache {
	struct cache_entry **buckets;
	size_t nbuckets;        /* a power of two, at least twice the capacity */
	struct cache_entry lru; /* sentinel: lru.next is the newest, lru.prev the oldest */
	uint64_t seed;
	struct sqlinfo_cache_stats stats;
};

/* FNV-1a from a random basis, so that clients cannot plan collisions. */
static uint64_t cache_hash(const struct sqlinfo_cache *c, const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL ^ c->seed;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

struct sqlinfo_cache *sqlinfo_cache_new(size_t capacity)
{
	struct sqlinfo_cache *c = xcalloc(1, sizeof(*c));
	if (capacity > SQLINFO_CACHE_MAX_ENTRIES)
		capacity = SQLINFO_CACHE_MAX_ENTRIES;
	c->stats.capacity = capacity;
	c->nbuckets = 16;
	while (c->nbuckets < capacity * 2)
		c->nbuckets *= 2;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	c->lru.next = c->lru.prev = &c->lru;
	if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
		c->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
	return c;
}

static void lru_unlink(struct cache_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push_newest(struct sqlinfo_cache *c, struct cache_entry *e)
{
	e->next = c->lru.next;
	e->prev = &c->lru;
	c->lru.next->prev = e;
	c->lru.next = e;
}

static void cache_remove(struct sqlinfo_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	sqlinfo_free(e->info);
	free(e);
	c->stats.entries--;
}

void sqlinfo_cache_free(struct sqlinfo_cache *c)
{
	if (!c)
		return;
	while (c->lru.prev != &c->lru)
		cache_remove(c, c->lru.prev);
	free(c->buckets);
	free(c);
}

/* The entry for a key, made the newest; or NULL. */
static struct cache_entry *cache_find(struct sqlinfo_cache *c, uint64_t h, const char *key,
                                      size_t len, bool normalized)
{
	for (struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
		if (e->hash == h && e->normalized == normalized && e->key_len == len &&
		    memcmp(e->key, key, len) == 0) {
			lru_unlink(e);
			lru_push_newest(c, e);
			return e;
		}
	}
	return NULL;
}

/* Adds e (its key, hash and info set), pushing out the oldest when full. */
static void cache_insert(struct sqlinfo_cache *c, struct cache_entry *e)
{
	if (c->stats.entries == c->stats.capacity) {
		cache_remove(c, c->lru.prev);
		c->stats.evictions++;
	}
	size_t b = e->hash & (c->nbuckets - 1);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	lru_push_newest(c, e);
	c->stats.entries++;
}

static void cache_add_normalized(struct sqlinfo_cache *c, struct sqlinfo *info,
                                 const struct normkey *nk, uint64_t h)
{
	struct cache_entry *e = xmalloc(sizeof(*e) + nk->n * sizeof(struct span) + nk->key_len);
	struct span *lits = (struct span *)(e + 1);
	char *key = (char *)(lits + nk->n);
	for (size_t i = 0; i < nk->n; i++)
		lits[i] = (struct span){nk->lits[i].start, nk->lits[i].len};
	memcpy(key, nk->key, nk->key_len);
	*e = (struct cache_entry){
	    .hash = h,
	    .info = sqlinfo_ref(info),
	    .key = key,
	    .key_len = nk->key_len,
	    .normalized = true,
	    .lits = lits,
	    .n_lits = nk->n,
	};
	cache_insert(c, e);
}

/*
 * An analysis of sql (len bytes) made from base, the analysis of a text
 * with the same normalized key; base_lits and lits are the literals of the
 * two texts, n of each. One block: the struct, a copy of base's statements
 * with their texts and offsets moved onto sql, and the texts. Everything
 * else it points to is base's, which it holds a reference to.
 */
static struct sqlinfo *make_view(struct sqlinfo *base, const char *sql, size_t len,
                                 const struct span *base_lits, const struct literal *lits, size_t n)
{
	size_t ns = base->n_stmts;
	size_t head = (sizeof(struct sqlinfo) + 15) & ~(size_t)15;
	size_t stmts = ns * sizeof(struct sqlinfo_stmt);
	/* The text, then each statement's own copy when there are several:
	 * they do not overlap, so at most the text again and a NUL each. */
	size_t texts = len + 1 + (base->multi ? len + ns : 0);
	char *block = xmalloc(head + stmts + texts);
	struct sqlinfo *v = (struct sqlinfo *)block;
	struct sqlinfo_stmt *st = (struct sqlinfo_stmt *)(block + head);
	char *text = block + head + stmts, *p = text + len + 1;
	*v = *base;
	v->refs = 1;
	v->arena = NULL;
	v->base = sqlinfo_ref(base);
	v->text = text;
	v->len = len;
	v->stmts = st;
	memcpy(text, sql, len);
	text[len] = '\0';
	if (ns)
		memcpy(st, base->stmts, stmts);
	/* A position of base's text outside its literals moves by what the
	 * literals before it grew or shrank. Statements come in text order. */
	size_t k = 0, grown = 0, shrunk = 0;
	for (size_t i = 0; i < ns; i++) {
		size_t at[2] = {st[i].offset, st[i].offset + st[i].sql_len};
		for (int j = 0; j < 2; j++) {
			for (; k < n && base_lits[k].start + base_lits[k].len <= at[j]; k++) {
				grown += lits[k].len;
				shrunk += base_lits[k].len;
			}
			at[j] = at[j] + grown - shrunk;
		}
		assert(at[0] <= at[1] && at[1] <= len);
		st[i].offset = at[0];
		st[i].sql_len = at[1] - at[0];
		if (!base->multi) {
			st[i].sql = text;
			continue;
		}
		memcpy(p, text + at[0], st[i].sql_len);
		p[st[i].sql_len] = '\0';
		st[i].sql = p;
		p += st[i].sql_len + 1;
	}
	return v;
}

struct sqlinfo *sqlinfo_cache_analyse(struct sqlinfo_cache *c, const char *sql, size_t len)
{
	if (!sql) {
		sql = "";
		len = 0;
	}
	/* The length bound is also normalize()'s: keys stay short. */
	if (c->stats.capacity == 0 || len > SQLINFO_CACHE_MAX_SQL) {
		c->stats.uncached++;
		return sqlinfo_analyse(sql, len);
	}
	uint64_t h = cache_hash(c, sql, len);
	struct cache_entry *e = cache_find(c, h, sql, len, false);
	if (e) {
		c->stats.hits++;
		return sqlinfo_ref(e->info);
	}
	struct normkey nk;
	bool keyed = normalize(sql, len, &nk) && nk.n > 0;
	uint64_t nh = keyed ? cache_hash(c, nk.key, nk.key_len) : 0;
	e = keyed ? cache_find(c, nh, nk.key, nk.key_len, true) : NULL;
	if (e) {
		c->stats.normalized_hits++;
		struct sqlinfo *view = make_view(e->info, sql, len, e->lits, nk.lits, nk.n);
		normkey_release(&nk);
		return view;
	}
	c->stats.misses++;
	struct sqlinfo *info = analyse(sql, len, keyed ? &nk : NULL);
	e = xcalloc(1, sizeof(*e));
	e->hash = h;
	e->info = sqlinfo_ref(info);
	e->key = info->text;
	e->key_len = info->len;
	cache_insert(c, e);
	if (keyed && info->error == SQLINFO_OK && !info->literal_sensitive)
		cache_add_normalized(c, info, &nk, nh);
	normkey_release(&nk);
	return info;
}

void sqlinfo_cache_get_stats(const struct sqlinfo_cache *c, struct sqlinfo_cache_stats *out)
{
	*out = c->stats;
}
