/*
 * Statement outcomes: the names a client gave its statements and portals,
 * the queue of what it sent its server, and how each answer completes
 * it; see outcome.h.
 */
#include "outcome.h"
#include "audit.h"
#include "client.h"
#include "log.h"
#include "masking.h"
#include "policy.h"
#include "proto.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A statement or portal name and what it runs (NULL: refused). */
struct named {
	struct named *next;
	struct checked_stmt *st;
	int16_t *formats; /* a portal's result formats, as its Bind gave them */
	uint16_t n_formats;
	uint8_t *rowdesc; /* a portal's RowDescription, as a Describe of it answered */
	uint32_t rowdesc_len;
	uint64_t bind_id; /* which Bind made the portal */
	char name[];
};

struct names {
	struct named **buckets;
	size_t n_buckets, count;
};

/* Something sent to the server whose answer is still due. */
struct request {
	/* 'Q', 'E', 'd' (a Describe), or the 'S' and 'F' that end with ReadyForQuery */
	uint8_t type;
	bool describes_statement; /* 'd': of a statement (its answer is kept on st) */
	int16_t *formats;         /* 'E': its portal's result formats */
	uint16_t n_formats;
	char *portal;     /* 'd' of a portal: its name */
	uint64_t bind_id; /* 'd' of a portal and 'E': the Bind that made the portal */
	uint8_t *rowdesc; /* 'E': its portal's description, if it was described */
	uint32_t rowdesc_len;
	bool failed;
	uint32_t done; /* a Query's statements answered so far */
	struct checked_stmt *st;
	usec_t started;
	uint64_t rows, data_rows;
	char command[32];
	char sqlstate[6];
};

struct outcome_client {
	struct names statements, portals;
	struct checked_stmt *query; /* the checked Query not sent yet */
	uint64_t binds;
	struct request *queue;
	size_t head, len, cap;
};

const char *outcome_status_name(enum outcome_status status)
{
	switch (status) {
	case OUTCOME_OK:
		return "ok";
	case OUTCOME_ERROR:
		return "error";
	case OUTCOME_NOT_RUN:
		return "not_run";
	case OUTCOME_UNKNOWN:
		break;
	}
	return "unknown";
}

bool outcome_tracking(void)
{
	return audit_enabled() || policy_wants_bind() || policy_wants_complete() ||
	       masking_active();
}

struct checked_stmt *checked_stmt_new(const char *text, size_t len, bool extended,
                                      const char *rewrite, const char *script)
{
	struct checked_stmt *st = xcalloc(1, sizeof(*st));
	st->refs = 1;
	st->extended = extended;
	st->text = xstrndup(text, len);
	st->rewritten = rewrite != NULL;
	st->sent = rewrite ? xstrdup(rewrite) : st->text;
	st->script = script ? xstrdup(script) : NULL;
	return st;
}

struct checked_stmt *checked_stmt_ref(struct checked_stmt *st)
{
	if (st)
		st->refs++;
	return st;
}

void checked_stmt_unref(struct checked_stmt *st)
{
	if (!st || --st->refs > 0)
		return;
	if (st->sent != st->text)
		free(st->sent);
	free(st->text);
	free(st->script);
	free(st->fingerprint);
	free(st->normalized);
	free(st->rowdesc);
	free(st);
}

/* Names */

static size_t name_hash(const char *s, size_t n_buckets)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return (size_t)(h & (n_buckets - 1));
}

static struct named **names_slot(struct names *t, const char *name)
{
	if (!t->n_buckets)
		return NULL;
	struct named **p = &t->buckets[name_hash(name, t->n_buckets)];
	while (*p && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

static void names_grow(struct names *t)
{
	size_t n = t->n_buckets ? t->n_buckets * 2 : 8;
	struct named **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < t->n_buckets; i++) {
		for (struct named *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			size_t h = name_hash(e->name, n);
			e->next = b[h];
			b[h] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = n;
}

/* Takes over the reference to st. */
static void names_set(struct names *t, const char *name, struct checked_stmt *st)
{
	struct named **p = names_slot(t, name);
	if (p && *p) {
		checked_stmt_unref((*p)->st);
		(*p)->st = st;
		FREE_AND_NULL((*p)->formats);
		(*p)->n_formats = 0;
		FREE_AND_NULL((*p)->rowdesc);
		(*p)->rowdesc_len = 0;
		return;
	}
	if (t->count >= t->n_buckets) {
		names_grow(t);
		p = names_slot(t, name);
	}
	size_t n = strlen(name) + 1;
	struct named *e = xcalloc(1, sizeof(*e) + n);
	memcpy(e->name, name, n);
	e->st = st;
	e->next = NULL;
	*p = e;
	t->count++;
}

static void names_del(struct names *t, const char *name)
{
	struct named **p = names_slot(t, name);
	if (!p || !*p)
		return;
	struct named *e = *p;
	*p = e->next;
	checked_stmt_unref(e->st);
	free(e->formats);
	free(e->rowdesc);
	free(e);
	t->count--;
}

static void names_clear(struct names *t)
{
	for (size_t i = 0; i < t->n_buckets; i++) {
		for (struct named *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			checked_stmt_unref(e->st);
			free(e->formats);
			free(e->rowdesc);
			free(e);
		}
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

static struct outcome_client *state(struct client *c)
{
	if (!c->outcome)
		c->outcome = xcalloc(1, sizeof(struct outcome_client));
	return c->outcome;
}

void outcome_parsed(struct client *c, const char *name, struct checked_stmt *st)
{
	names_set(&state(c)->statements, name, st);
}

struct checked_stmt *outcome_statement(struct client *c, const char *name)
{
	struct named **p = names_slot(&state(c)->statements, name);
	return p && *p ? (*p)->st : NULL;
}

void outcome_bound(struct client *c, const char *portal, struct checked_stmt *st,
                   const int16_t *formats, uint16_t n_formats)
{
	struct names *t = &state(c)->portals;
	names_set(t, portal, checked_stmt_ref(st));
	struct named *e = *names_slot(t, portal);
	e->bind_id = ++state(c)->binds;
	if (n_formats) {
		e->formats = xmalloc(n_formats * sizeof(*e->formats));
		memcpy(e->formats, formats, n_formats * sizeof(*e->formats));
		e->n_formats = n_formats;
	}
}

void outcome_closed(struct client *c, char kind, const char *name)
{
	names_del(kind == 'S' ? &state(c)->statements : &state(c)->portals, name);
}

void outcome_query_checked(struct client *c, struct checked_stmt *st)
{
	struct outcome_client *oc = state(c);
	checked_stmt_unref(oc->query);
	oc->query = st;
}

/* The queue */

static void keep_rowdesc(uint8_t **at, uint32_t *at_len, const uint8_t *body, uint32_t len)
{
	free(*at);
	*at = xmalloc(len ? len : 1);
	memcpy(*at, body, len);
	*at_len = len;
}

static struct request *queue_at(struct outcome_client *oc, size_t i)
{
	return &oc->queue[(oc->head + i) % oc->cap];
}

static void push(struct outcome_client *oc, uint8_t type, struct checked_stmt *st)
{
	if (oc->len == oc->cap) {
		size_t cap = oc->cap ? oc->cap * 2 : 8;
		struct request *q = xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < oc->len; i++)
			q[i] = *queue_at(oc, i);
		free(oc->queue);
		oc->queue = q;
		oc->cap = cap;
		oc->head = 0;
	}
	struct request *r = queue_at(oc, oc->len++);
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->st = st;
	r->started = now_usec();
}

/* A request's answer is complete: the audit record, and the request leaves the queue. */
static void finish(struct client *c, struct outcome_client *oc, enum outcome_status status)
{
	struct request *r = queue_at(oc, 0);
	if (r->st && (r->type == 'Q' || r->type == 'E')) {
		struct outcome o = {
		    .status = r->failed && status == OUTCOME_OK ? OUTCOME_ERROR : status,
		    .command = r->command[0] ? r->command : NULL,
		    .rows = r->rows,
		    .duration = now_usec() - r->started,
		};
		memcpy(o.sqlstate, r->sqlstate, sizeof(o.sqlstate));
		o.masked_columns = c->masked_columns;
		o.masked_values = c->masked_values;
		audit_statement(c, r->st, &o);
	}
	FREE_AND_NULL(c->masked_columns);
	c->masked_values = 0;
	checked_stmt_unref(r->st);
	free(r->formats);
	free(r->portal);
	free(r->rowdesc);
	oc->head = (oc->head + 1) % oc->cap;
	oc->len--;
}

void outcome_sent(struct client *c, uint8_t type, const uint8_t *msg, uint32_t len)
{
	struct outcome_client *oc = state(c);
	switch (type) {
	case 'Q':
		push(oc, 'Q', oc->query);
		oc->query = NULL;
		break;
	case 'E': {
		struct pkt_reader r;
		pr_init(&r, msg + PROTO_HEADER_LEN, len);
		const char *portal = pr_string(&r);
		struct named **p = r.bad ? NULL : names_slot(&oc->portals, portal);
		push(oc, 'E', p && *p ? checked_stmt_ref((*p)->st) : NULL);
		struct request *e = queue_at(oc, oc->len - 1);
		e->bind_id = p && *p ? (*p)->bind_id : 0;
		if (p && *p && (*p)->n_formats) {
			e->n_formats = (*p)->n_formats;
			e->formats = xmalloc(e->n_formats * sizeof(*e->formats));
			memcpy(e->formats, (*p)->formats, e->n_formats * sizeof(*e->formats));
		}
		if (p && *p && (*p)->rowdesc)
			keep_rowdesc(&e->rowdesc, &e->rowdesc_len, (*p)->rowdesc,
			             (*p)->rowdesc_len);
		break;
	}
	case 'D': {
		/* A Describe: a statement's answer is kept, for Executes that come without one. */
		struct pkt_reader r;
		pr_init(&r, msg + PROTO_HEADER_LEN, len);
		uint8_t kind = pr_byte(&r);
		const char *name = pr_string(&r);
		struct named **p = r.bad || kind != 'S' ? NULL : names_slot(&oc->statements, name);
		push(oc, 'd', p && *p ? checked_stmt_ref((*p)->st) : NULL);
		struct request *d = queue_at(oc, oc->len - 1);
		d->describes_statement = kind == 'S';
		if (!r.bad && kind == 'P') {
			struct named **portal = names_slot(&oc->portals, name);
			d->portal = xstrdup(name);
			d->bind_id = portal && *portal ? (*portal)->bind_id : 0;
		}
		break;
	}
	case 'S':
	case 'F':
		push(oc, type, NULL);
		break;
	default:
		break;
	}
}

/* "INSERT 0 5" -> command "INSERT", rows 5; "CREATE TABLE" -> itself, 0. */
static void read_tag(struct request *r, const uint8_t *body, uint32_t len)
{
	size_t n = strnlen((const char *)body, len);
	const char *tag = (const char *)body;
	const char *end = tag + n;
	while (end > tag && (isdigit((unsigned char)end[-1]) || end[-1] == ' '))
		end--;
	const char *last = tag + n;
	while (last > tag && isdigit((unsigned char)last[-1]))
		last--;
	if (last < tag + n)
		r->rows += strtoull(last, NULL, 10);
	size_t cmd = (size_t)(end - tag);
	if (cmd >= sizeof(r->command))
		cmd = sizeof(r->command) - 1;
	memcpy(r->command, tag, cmd);
	r->command[cmd] = '\0';
}

/* The complete phase for the statement the head request just finished. */
static void complete(struct client *c, struct request *r, enum outcome_status status, uint64_t rows,
                     const char *message)
{
	if (!r->st || !policy_wants_complete())
		return;
	struct outcome o = {
	    .status = status,
	    .command = r->command[0] ? r->command : NULL,
	    .rows = rows,
	    .duration = now_usec() - r->started,
	    .message = message,
	};
	memcpy(o.sqlstate, r->sqlstate, sizeof(o.sqlstate));
	policy_complete(c, r->st, r->type == 'Q' ? r->done : 0, &o);
}

static void on_error(struct client *c, struct outcome_client *oc, const uint8_t *body, uint32_t len)
{
	struct request *r = queue_at(oc, 0);
	if (r->type == 'd') {
		/* A Describe failed; PostgreSQL skips to Sync, so nothing before it runs. */
		while (oc->len > 0 &&
		       (queue_at(oc, 0)->type == 'd' || queue_at(oc, 0)->type == 'E'))
			finish(c, oc, OUTCOME_NOT_RUN);
		return;
	}
	if (r->type != 'Q' && r->type != 'E')
		return; /* a Parse or Bind failed: no statement ran */
	struct proto_error e;
	if (!body || !proto_parse_error(body, len, &e)) {
		memset(&e, 0, sizeof(e));
		strlcpy_s(e.sqlstate, "XX000", sizeof(e.sqlstate));
	}
	memcpy(r->sqlstate, e.sqlstate, sizeof(r->sqlstate));
	r->failed = true;
	complete(c, r, OUTCOME_ERROR, 0, e.message);
	if (r->type == 'Q')
		return; /* the Query ends with its ReadyForQuery */
	finish(c, oc, OUTCOME_ERROR);
	/* PostgreSQL skips to Sync: the Executes (and Describes) before it do not run. */
	while (oc->len > 0 && (queue_at(oc, 0)->type == 'E' || queue_at(oc, 0)->type == 'd'))
		finish(c, oc, OUTCOME_NOT_RUN);
}

/*
 * A Describe of the portal that Bind bind_id made was answered: its
 * Executes, sent already or to come, have these columns. A later Bind of
 * the same name is another portal, which this does not describe.
 */
static void portal_described(struct outcome_client *oc, const char *name, uint64_t bind_id,
                             const uint8_t *body, uint32_t len)
{
	struct named **p = names_slot(&oc->portals, name);
	if (p && *p && (*p)->bind_id == bind_id)
		keep_rowdesc(&(*p)->rowdesc, &(*p)->rowdesc_len, body, len);
	for (size_t i = 0; i < oc->len; i++) {
		struct request *e = queue_at(oc, i);
		if (e->type == 'E' && e->bind_id == bind_id && !e->rowdesc)
			keep_rowdesc(&e->rowdesc, &e->rowdesc_len, body, len);
	}
}

void outcome_server_message(struct client *c, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct outcome_client *oc = c->outcome;
	if (!oc || oc->len == 0)
		return;
	struct request *r = queue_at(oc, 0);
	if (r->type == 'd') {
		/* A Describe's answer: ParameterDescription, then RowDescription or NoData. */
		if (type == 'T' && r->st && r->describes_statement && body) {
			keep_rowdesc(&r->st->rowdesc, &r->st->rowdesc_len, body, len);
		}
		if (type == 'T' && r->portal && r->bind_id && body)
			portal_described(oc, r->portal, r->bind_id, body, len);
		if (type == 'T' || type == 'n')
			finish(c, oc, OUTCOME_OK);
		if (type != 'E' && type != 'Z')
			return;
		r = oc->len ? queue_at(oc, 0) : NULL;
		if (!r)
			return;
	}
	switch (type) {
	case 'D':
		r->data_rows++;
		break;
	case 'C':
		if (r->type != 'Q' && r->type != 'E')
			break;
		if (body) {
			uint64_t before = r->rows;
			read_tag(r, body, len);
			complete(c, r, OUTCOME_OK, r->rows - before, NULL);
		}
		if (r->type == 'Q')
			r->done++;
		else
			finish(c, oc, OUTCOME_OK);
		break;
	case 'I':
	case 's':
		if (r->type != 'E')
			break;
		if (type == 's') {
			r->rows = r->data_rows;
			complete(c, r, OUTCOME_OK, r->rows, NULL);
		}
		finish(c, oc, OUTCOME_OK);
		break;
	case 'E':
		on_error(c, oc, body, len);
		break;
	case 'Z':
		/* Ends the Query, Sync or FunctionCall at the head, and whatever was left before
		 * it.
		 */
		while (oc->len > 0) {
			uint8_t t = queue_at(oc, 0)->type;
			finish(c, oc, t == 'E' ? OUTCOME_UNKNOWN : OUTCOME_OK);
			if (t != 'E' && t != 'd')
				break;
		}
		if (len >= 1 && body && body[0] == 'I')
			names_clear(&oc->portals); /* portals end with their transaction */
		break;
	default:
		break;
	}
}

bool outcome_execute_columns(struct client *c, const uint8_t **rowdesc, uint32_t *len,
                             const int16_t **formats, uint16_t *n_formats)
{
	struct outcome_client *oc = c->outcome;
	if (!oc || oc->len == 0)
		return false;
	struct request *r = queue_at(oc, 0);
	if (r->type == 'E' && r->rowdesc) {
		/* The portal's own description has its real formats. */
		*rowdesc = r->rowdesc;
		*len = r->rowdesc_len;
		*formats = NULL;
		*n_formats = UINT16_MAX;
		return true;
	}
	if (r->type != 'E' || !r->st || !r->st->rowdesc)
		return false;
	*rowdesc = r->st->rowdesc;
	*len = r->st->rowdesc_len;
	*formats = r->formats;
	*n_formats = r->n_formats;
	return true;
}

bool outcome_more_follows(struct client *c)
{
	struct outcome_client *oc = c->outcome;
	if (!oc || oc->len == 0)
		return false;
	struct request *head = queue_at(oc, 0);
	if (head->type == 'Q')
		return head->st && head->st->multi;
	/* A Describe of a portal answers for that portal's Execute, which is not more. */
	uint64_t described = head->type == 'd' && head->portal ? head->bind_id : 0;
	for (size_t i = 1; i < oc->len; i++) {
		const struct request *r = queue_at(oc, i);
		if (r->type == 'S' || r->type == 'Q' || r->type == 'F')
			return false;
		if (r->type == 'E' && !(described && r->bind_id == described))
			return true;
	}
	return false;
}

bool outcome_describing(struct client *c)
{
	struct outcome_client *oc = c->outcome;
	return oc && oc->len > 0 && queue_at(oc, 0)->type == 'd';
}

const struct checked_stmt *outcome_answering(struct client *c)
{
	struct outcome_client *oc = c->outcome;
	return oc && oc->len > 0 ? queue_at(oc, 0)->st : NULL;
}

void outcome_client_free(struct client *c)
{
	struct outcome_client *oc = c->outcome;
	if (!oc)
		return;
	while (oc->len > 0)
		finish(c, oc, OUTCOME_UNKNOWN);
	names_clear(&oc->statements);
	names_clear(&oc->portals);
	checked_stmt_unref(oc->query);
	free(oc->queue);
	free(oc);
	c->outcome = NULL;
}
