/*
 * Prepared statements across pooled server connections; see prepared.h
 * for the scheme. Three tables: the process's statements (by Parse
 * body), each client's names, and each server's cache (by statement id,
 * with an LRU list). All chained hash tables that double when full.
 */
#include "prepared.h"
#include "client.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "pktbuf.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A client may name this many statements; PostgreSQL has no limit, we need one. */
#define MAX_CLIENT_STATEMENTS 65536
/* Requests in flight on one server; a pipeline this deep is not a client. */
#define MAX_QUEUED (1 << 20)
/* Server-side names: "PGSIEVE_" and a decimal id. */
#define SERVER_NAME_LEN 32

struct prepared_stmt {
	struct prepared_stmt *next; /* in its registry bucket */
	uint64_t id;
	uint64_t hash;
	uint32_t refs; /* client names, server caches and queued requests */
	uint32_t body_len;
	uint8_t body[]; /* the Parse body after the name: query, parameter types */
};

/* Every statement of the process, by Parse body. */
static struct {
	struct prepared_stmt **buckets;
	size_t nbuckets;
	size_t count;
	uint64_t next_id;
	uint64_t seed;
} registry;

struct client_name {
	struct client_name *next;
	struct prepared_stmt *stmt;
	char name[]; /* the client's name for it */
};

struct prepared_client {
	struct client_name **buckets;
	size_t nbuckets;
	size_t count;
};

struct cached {
	struct cached *next;  /* in its bucket */
	struct list_node lru; /* most recently used first */
	struct prepared_stmt *stmt;
};

/* What a request queued on a server stands for when its response comes. */
enum queued_kind {
	Q_REQUEST,    /* the client's request, sent on: its response goes to the client */
	Q_OUR_PARSE,  /* we prepared a statement the server lacked: drop ParseComplete */
	Q_OUR_CLOSE,  /* we evicted a statement: drop CloseComplete */
	Q_OUR_BIND,   /* we bound a statement of our own: drop BindComplete */
	Q_FAKE_PARSE, /* the server had it: answer ParseComplete ourselves */
	Q_FAKE_CLOSE, /* the client closed its name: answer CloseComplete ourselves */
};

struct queued {
	uint8_t kind;
	uint8_t type;               /* Q_REQUEST: the request's message type */
	struct prepared_stmt *stmt; /* Parse and Close: the statement (a reference) */
	char *name;                 /* the client's Parse: its name, undone on failure */
};

struct prepared_server {
	struct cached **buckets;
	size_t nbuckets;
	size_t count;
	struct list_node lru;
	/* The requests whose responses are due, oldest first: a ring. */
	struct queued *queue;
	size_t cap, head, len;
};

/* Hashing */

static uint64_t hash_bytes(const void *p, size_t n)
{
	if (!registry.seed &&
	    RAND_bytes((unsigned char *)&registry.seed, sizeof(registry.seed)) != 1)
		die("RAND_bytes failed");
	/* FNV-1a from a random basis, so that collisions cannot be planned. */
	uint64_t h = 14695981039346656037ULL ^ registry.seed;
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

/* Registry */

static void registry_grow(void)
{
	size_t n = registry.nbuckets ? registry.nbuckets * 2 : 256;
	struct prepared_stmt **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < registry.nbuckets; i++) {
		struct prepared_stmt *st = registry.buckets[i];
		while (st) {
			struct prepared_stmt *next = st->next;
			st->next = b[st->hash & (n - 1)];
			b[st->hash & (n - 1)] = st;
			st = next;
		}
	}
	free(registry.buckets);
	registry.buckets = b;
	registry.nbuckets = n;
}

static struct prepared_stmt *stmt_find(const uint8_t *body, uint32_t len, uint64_t h)
{
	if (!registry.nbuckets)
		return NULL;
	for (struct prepared_stmt *st = registry.buckets[h & (registry.nbuckets - 1)]; st;
	     st = st->next) {
		if (st->hash == h && st->body_len == len && memcmp(st->body, body, len) == 0)
			return st;
	}
	return NULL;
}

/* The statement for this Parse body, with a new reference. */
static struct prepared_stmt *stmt_get(const uint8_t *body, uint32_t len)
{
	uint64_t h = hash_bytes(body, len);
	struct prepared_stmt *st = stmt_find(body, len, h);
	if (st) {
		st->refs++;
		return st;
	}
	if (registry.count >= registry.nbuckets)
		registry_grow();
	st = xmalloc(sizeof(*st) + len);
	st->id = ++registry.next_id;
	st->hash = h;
	st->refs = 1;
	st->body_len = len;
	memcpy(st->body, body, len);
	size_t i = h & (registry.nbuckets - 1);
	st->next = registry.buckets[i];
	registry.buckets[i] = st;
	registry.count++;
	return st;
}

static void stmt_ref(struct prepared_stmt *st)
{
	st->refs++;
}

static void stmt_unref(struct prepared_stmt *st)
{
	if (!st || --st->refs > 0)
		return;
	struct prepared_stmt **pp = &registry.buckets[st->hash & (registry.nbuckets - 1)];
	while (*pp != st)
		pp = &(*pp)->next;
	*pp = st->next;
	registry.count--;
	free(st);
	if (registry.count == 0) {
		/* Nothing prepared anywhere: give the table back (and keep leak checks quiet). */
		FREE_AND_NULL(registry.buckets);
		registry.nbuckets = 0;
	}
}

static void server_name(const struct prepared_stmt *st, char *buf)
{
	snprintf(buf, SERVER_NAME_LEN, "PGSIEVE_%llu", (unsigned long long)st->id);
}

/* Client names */

static struct client_name **name_slot(struct prepared_client *pc, const char *name)
{
	struct client_name **pp = &pc->buckets[hash_bytes(name, strlen(name)) & (pc->nbuckets - 1)];
	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct prepared_stmt *name_lookup(struct prepared_client *pc, const char *name)
{
	if (!pc || !pc->count)
		return NULL;
	struct client_name *cn = *name_slot(pc, name);
	return cn ? cn->stmt : NULL;
}

static void names_grow(struct prepared_client *pc)
{
	size_t n = pc->nbuckets ? pc->nbuckets * 2 : 16;
	struct client_name **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < pc->nbuckets; i++) {
		struct client_name *cn = pc->buckets[i];
		while (cn) {
			struct client_name *next = cn->next;
			size_t j = hash_bytes(cn->name, strlen(cn->name)) & (n - 1);
			cn->next = b[j];
			b[j] = cn;
			cn = next;
		}
	}
	free(pc->buckets);
	pc->buckets = b;
	pc->nbuckets = n;
}

/* Takes over the caller's reference to st. */
static void name_add(struct prepared_client *pc, const char *name, struct prepared_stmt *st)
{
	if (pc->count >= pc->nbuckets)
		names_grow(pc);
	size_t n = strlen(name);
	struct client_name *cn = xmalloc(sizeof(*cn) + n + 1);
	memcpy(cn->name, name, n + 1);
	cn->stmt = st;
	struct client_name **pp = name_slot(pc, name);
	cn->next = NULL;
	*pp = cn;
	pc->count++;
}

/* Drops the name if it still means st (any statement when st is NULL). */
static void name_del(struct prepared_client *pc, const char *name, const struct prepared_stmt *st)
{
	if (!pc || !pc->count)
		return;
	struct client_name **pp = name_slot(pc, name);
	struct client_name *cn = *pp;
	if (!cn || (st && cn->stmt != st))
		return;
	*pp = cn->next;
	pc->count--;
	stmt_unref(cn->stmt);
	free(cn);
}

static void names_clear(struct prepared_client *pc)
{
	for (size_t i = 0; pc && i < pc->nbuckets; i++) {
		while (pc->buckets[i]) {
			struct client_name *cn = pc->buckets[i];
			pc->buckets[i] = cn->next;
			stmt_unref(cn->stmt);
			free(cn);
		}
	}
	if (pc)
		pc->count = 0;
}

/* Server caches */

static struct cached **cached_slot(struct prepared_server *ps, const struct prepared_stmt *st)
{
	struct cached **pp = &ps->buckets[st->id & (ps->nbuckets - 1)];
	while (*pp && (*pp)->stmt != st)
		pp = &(*pp)->next;
	return pp;
}

static struct cached *cache_find(struct prepared_server *ps, const struct prepared_stmt *st)
{
	return ps->count ? *cached_slot(ps, st) : NULL;
}

static void cache_grow(struct prepared_server *ps)
{
	size_t n = ps->nbuckets ? ps->nbuckets * 2 : 16;
	struct cached **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < ps->nbuckets; i++) {
		struct cached *ce = ps->buckets[i];
		while (ce) {
			struct cached *next = ce->next;
			ce->next = b[ce->stmt->id & (n - 1)];
			b[ce->stmt->id & (n - 1)] = ce;
			ce = next;
		}
	}
	free(ps->buckets);
	ps->buckets = b;
	ps->nbuckets = n;
}

static void cache_add(struct prepared_server *ps, struct prepared_stmt *st)
{
	if (cache_find(ps, st))
		return;
	if (ps->count >= ps->nbuckets)
		cache_grow(ps);
	struct cached *ce = xcalloc(1, sizeof(*ce));
	ce->stmt = st;
	stmt_ref(st);
	struct cached **pp = cached_slot(ps, st);
	*pp = ce;
	list_prepend(&ps->lru, &ce->lru);
	ps->count++;
}

static void cache_del(struct prepared_server *ps, struct prepared_stmt *st)
{
	if (!ps->count)
		return;
	struct cached **pp = cached_slot(ps, st);
	struct cached *ce = *pp;
	if (!ce)
		return;
	*pp = ce->next;
	list_del(&ce->lru);
	ps->count--;
	stmt_unref(ce->stmt);
	free(ce);
}

static void cache_clear(struct prepared_server *ps)
{
	struct list_node *it;
	while ((it = list_first(&ps->lru)))
		cache_del(ps, container_of(it, struct cached, lru)->stmt);
}

/* The queue */

static struct queued *queue_at(struct prepared_server *ps, size_t i)
{
	return &ps->queue[(ps->head + i) % ps->cap];
}

static bool queue_push(struct prepared_server *ps, enum queued_kind kind, uint8_t type,
                       struct prepared_stmt *st, const char *name)
{
	if (ps->len == ps->cap) {
		if (ps->cap >= MAX_QUEUED)
			return false;
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		struct queued *q = xmalloc(cap * sizeof(*q));
		for (size_t i = 0; i < ps->len; i++)
			q[i] = *queue_at(ps, i);
		free(ps->queue);
		ps->queue = q;
		ps->cap = cap;
		ps->head = 0;
	}
	struct queued *e = queue_at(ps, ps->len++);
	e->kind = (uint8_t)kind;
	e->type = type;
	e->stmt = st;
	if (st)
		stmt_ref(st);
	e->name = name ? xstrdup(name) : NULL;
	return true;
}

static void queue_pop(struct prepared_server *ps)
{
	struct queued *e = queue_at(ps, 0);
	stmt_unref(e->stmt);
	free(e->name);
	ps->head = (ps->head + 1) % ps->cap;
	ps->len--;
}

static struct prepared_server *server_state(struct server *s)
{
	if (!s->prepared) {
		s->prepared = xcalloc(1, sizeof(*s->prepared));
		list_init(&s->prepared->lru);
	}
	return s->prepared;
}

static struct prepared_client *client_state(struct client *c)
{
	if (!c->prepared)
		c->prepared = xcalloc(1, sizeof(*c->prepared));
	return c->prepared;
}

/*
 * A queued request that did not take effect (it failed, or the server
 * skipped it after an error): undo what we recorded when sending it.
 */
static void undo(struct server *s, const struct queued *e)
{
	struct prepared_server *ps = s->prepared;
	switch (e->kind) {
	case Q_REQUEST:
		if (e->type == 'P' && e->stmt) {
			cache_del(ps, e->stmt);
			if (e->name && s->client)
				name_del(s->client->prepared, e->name, e->stmt);
		}
		break;
	case Q_OUR_PARSE:
		cache_del(ps, e->stmt);
		break;
	case Q_OUR_CLOSE:
		cache_add(ps, e->stmt); /* still on the server */
		break;
	default:
		break; /* our own answers are simply not given */
	}
}

/* Sending */

static void send_parse(struct server *s, const struct prepared_stmt *st)
{
	char name[SERVER_NAME_LEN];
	server_name(st, name);
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_begin(&pb, 'P');
	pktbuf_put_string(&pb, name);
	pktbuf_put_bytes(&pb, st->body, st->body_len);
	pktbuf_end(&pb);
	evbuffer_add(s->sb.out, pb.data, pb.len);
	pktbuf_free(&pb);
	s->pool->stats.server_parse_count++;
}

static void send_close(struct server *s, const struct prepared_stmt *st)
{
	char name[SERVER_NAME_LEN];
	server_name(st, name);
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_begin(&pb, 'C');
	pktbuf_put_byte(&pb, 'S');
	pktbuf_put_string(&pb, name);
	pktbuf_end(&pb);
	evbuffer_add(s->sb.out, pb.data, pb.len);
	pktbuf_free(&pb);
}

/* Makes room for one more statement on the server, closing the least recently used. */
static bool make_room(struct server *s)
{
	struct prepared_server *ps = s->prepared;
	if (ps->count < (size_t)cf->max_prepared_statements)
		return true;
	struct cached *old = container_of(list_last(&ps->lru), struct cached, lru);
	if (!queue_push(ps, Q_OUR_CLOSE, 'C', old->stmt, NULL))
		return false;
	send_close(s, old->stmt);
	cache_del(ps, old->stmt);
	return true;
}

/* The statement is prepared on the server, or will be before what we send next. */
static bool ensure_prepared(struct server *s, struct prepared_stmt *st)
{
	struct prepared_server *ps = s->prepared;
	struct cached *ce = cache_find(ps, st);
	if (ce) {
		list_del(&ce->lru);
		list_prepend(&ps->lru, &ce->lru);
		return true;
	}
	if (!make_room(s) || !queue_push(ps, Q_OUR_PARSE, 'P', st, NULL))
		return false;
	send_parse(s, st);
	cache_add(ps, st);
	return true;
}

static const uint8_t parse_complete[] = {'1', 0, 0, 0, 4};
static const uint8_t close_complete[] = {'3', 0, 0, 0, 4};

void prepared_emit(struct server *s)
{
	struct prepared_server *ps = s->prepared;
	struct client *c = s->client;
	/* Never inside a response the server is still streaming to the client. */
	if (!ps || !c || s->sb.pkt_remaining > 0)
		return;
	while (ps->len > 0) {
		struct queued *e = queue_at(ps, 0);
		if (e->kind == Q_FAKE_PARSE)
			evbuffer_add(c->sb.out, parse_complete, sizeof(parse_complete));
		else if (e->kind == Q_FAKE_CLOSE)
			evbuffer_add(c->sb.out, close_complete, sizeof(close_complete));
		else
			break;
		queue_pop(ps);
	}
}

/* Rewrites a message whose statement-name field starts at offset name_at. */
static void send_renamed(struct server *s, const uint8_t *msg, uint32_t len, size_t name_at,
                         const char *old_name, const struct prepared_stmt *st)
{
	char name[SERVER_NAME_LEN];
	server_name(st, name);
	size_t after = name_at + strlen(old_name) + 1;
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_begin(&pb, msg[0]);
	pktbuf_put_bytes(&pb, msg + PROTO_HEADER_LEN, name_at - PROTO_HEADER_LEN);
	pktbuf_put_string(&pb, name);
	pktbuf_put_bytes(&pb, msg + after, PROTO_HEADER_LEN + len - after);
	pktbuf_end(&pb);
	evbuffer_add(s->sb.out, pb.data, pb.len);
	pktbuf_free(&pb);
}

static enum prepared_verdict fail(struct client *c, const char *why)
{
	client_fail(c, "54000", "%s", why);
	return PREPARED_HANDLED;
}

static enum prepared_verdict on_parse(struct client *c, struct server *s, const uint8_t *msg,
                                      uint32_t len)
{
	struct prepared_server *ps = s->prepared;
	struct pkt_reader r;
	pr_init(&r, msg + PROTO_HEADER_LEN, len);
	const char *name = pr_string(&r);
	if (r.bad || !*name)
		return queue_push(ps, Q_REQUEST, 'P', NULL, NULL) ? PREPARED_FORWARD
		                                                  : fail(c, "pipeline too deep");
	const uint8_t *body = msg + PROTO_HEADER_LEN + r.pos;
	uint32_t body_len = len - (uint32_t)r.pos;
	struct prepared_client *pc = client_state(c);
	struct prepared_stmt *existing = name_lookup(pc, name);
	if (existing) {
		/*
		 * PostgreSQL refuses a name twice. Parse the statement's server
		 * name again so that the server itself says so, in its place in
		 * the pipeline, and skips to Sync as the client expects.
		 */
		if (!ensure_prepared(s, existing) || !queue_push(ps, Q_REQUEST, 'P', NULL, NULL))
			return fail(c, "pipeline too deep");
		send_parse(s, existing);
		return PREPARED_HANDLED;
	}
	if (pc->count >= MAX_CLIENT_STATEMENTS)
		return fail(c, "too many prepared statements on one connection");
	struct prepared_stmt *st = stmt_get(body, body_len);
	name_add(pc, name, st);
	struct cached *ce = cache_find(ps, st);
	if (ce) {
		list_del(&ce->lru);
		list_prepend(&ps->lru, &ce->lru);
		if (!queue_push(ps, Q_FAKE_PARSE, 'P', NULL, NULL))
			return fail(c, "pipeline too deep");
		prepared_emit(s);
		return PREPARED_HANDLED;
	}
	if (!make_room(s) || !queue_push(ps, Q_REQUEST, 'P', st, name))
		return fail(c, "pipeline too deep");
	send_parse(s, st);
	cache_add(ps, st);
	return PREPARED_HANDLED;
}

/* Bind and Describe of a named statement: prepare it here if needed, rename it. */
static enum prepared_verdict on_statement_use(struct client *c, struct server *s, uint8_t type,
                                              const uint8_t *msg, uint32_t len)
{
	struct prepared_server *ps = s->prepared;
	struct pkt_reader r;
	pr_init(&r, msg + PROTO_HEADER_LEN, len);
	if (type == 'B')
		pr_string(&r); /* the portal */
	else if (pr_byte(&r) != 'S')
		r.bad = true; /* Describe of a portal: nothing to rename */
	size_t name_at = PROTO_HEADER_LEN + r.pos;
	const char *name = pr_string(&r);
	struct prepared_stmt *st = r.bad || !*name ? NULL : name_lookup(c->prepared, name);
	if (!st)
		return queue_push(ps, Q_REQUEST, type, NULL, NULL) ? PREPARED_FORWARD
		                                                   : fail(c, "pipeline too deep");
	if (!ensure_prepared(s, st) || !queue_push(ps, Q_REQUEST, type, NULL, NULL))
		return fail(c, "pipeline too deep");
	send_renamed(s, msg, len, name_at, name, st);
	return PREPARED_HANDLED;
}

static enum prepared_verdict on_close(struct client *c, struct server *s, const uint8_t *msg,
                                      uint32_t len)
{
	struct prepared_server *ps = s->prepared;
	struct pkt_reader r;
	pr_init(&r, msg + PROTO_HEADER_LEN, len);
	bool statement = pr_byte(&r) == 'S';
	const char *name = pr_string(&r);
	if (r.bad || !statement || !*name || !name_lookup(c->prepared, name))
		return queue_push(ps, Q_REQUEST, 'C', NULL, NULL) ? PREPARED_FORWARD
		                                                  : fail(c, "pipeline too deep");
	/* Other clients may use the statement: only the name goes. */
	name_del(c->prepared, name, NULL);
	if (!queue_push(ps, Q_FAKE_CLOSE, 'C', NULL, NULL))
		return fail(c, "pipeline too deep");
	prepared_emit(s);
	return PREPARED_HANDLED;
}

enum prepared_verdict prepared_client_unlinked(struct client *c, uint8_t type, const uint8_t *msg,
                                               uint32_t len)
{
	static const uint8_t ready_idle[] = {'Z', 0, 0, 0, 5, 'I'};
	struct pkt_reader r;
	pr_init(&r, msg ? msg + PROTO_HEADER_LEN : NULL, msg ? len : 0);
	switch (type) {
	case 'H':
		return PREPARED_HANDLED; /* nothing is due */
	case 'S':
		/* Unlinked means between transactions, and all that came since was ours. */
		evbuffer_add(c->sb.out, ready_idle, sizeof(ready_idle));
		return PREPARED_HANDLED;
	case 'P': {
		const char *name = pr_string(&r);
		if (r.bad || !*name || name_lookup(c->prepared, name))
			return PREPARED_FORWARD;
		const uint8_t *body = msg + PROTO_HEADER_LEN + r.pos;
		uint32_t body_len = len - (uint32_t)r.pos;
		/* Only a statement that parsed before: a new one must meet a server for its errors.
		 */
		struct prepared_stmt *st = stmt_find(body, body_len, hash_bytes(body, body_len));
		struct prepared_client *pc = client_state(c);
		if (!st || pc->count >= MAX_CLIENT_STATEMENTS)
			return PREPARED_FORWARD;
		stmt_ref(st);
		name_add(pc, name, st);
		c->pool->stats.parse_count++;
		evbuffer_add(c->sb.out, parse_complete, sizeof(parse_complete));
		return PREPARED_HANDLED;
	}
	case 'C': {
		bool statement = pr_byte(&r) == 'S';
		const char *name = pr_string(&r);
		if (r.bad || !statement || !*name || !name_lookup(c->prepared, name))
			return PREPARED_FORWARD;
		name_del(c->prepared, name, NULL);
		evbuffer_add(c->sb.out, close_complete, sizeof(close_complete));
		return PREPARED_HANDLED;
	}
	default:
		return PREPARED_FORWARD;
	}
}

bool prepared_tracking(const struct pool *pool)
{
	return cf->max_prepared_statements > 0 && pool_mode_of(pool) != POOL_MODE_SESSION;
}

enum prepared_verdict prepared_client_message(struct client *c, struct server *s, uint8_t type,
                                              const uint8_t *msg, uint32_t len)
{
	server_state(s);
	/* Without tracking the queue only keeps the order (for the policy's own requests). */
	bool rename = prepared_tracking(s->pool);
	switch (type) {
	case 'P':
		if (rename)
			return on_parse(c, s, msg, len);
		goto queue_only;
	case 'B':
	case 'D':
		if (rename)
			return on_statement_use(c, s, type, msg, len);
		goto queue_only;
	case 'C':
		if (rename)
			return on_close(c, s, msg, len);
		goto queue_only;
	queue_only:
	case 'E':
	case 'S':
	case 'Q':
	case 'F':
		/* Requests with responses; the rest (Flush, copy data) have none. */
		if (!queue_push(s->prepared, Q_REQUEST, type, NULL, NULL))
			return fail(c, "pipeline too deep");
		return PREPARED_FORWARD;
	default:
		return PREPARED_FORWARD;
	}
}

/* Does this response end the request? */
static bool completes(uint8_t request, uint8_t response)
{
	switch (request) {
	case 'P':
		return response == '1';
	case 'B':
		return response == '2';
	case 'C':
		return response == '3';
	case 'D':
		return response == 'T' || response == 'n';
	case 'E':
		return response == 'C' || response == 'I' || response == 's';
	case 'S':
	case 'Q':
	case 'F':
		return response == 'Z';
	default:
		return false;
	}
}

static void clear_all(struct server *s)
{
	cache_clear(s->prepared);
	if (s->client)
		names_clear(s->client->prepared);
}

bool prepared_server_message(struct server *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct prepared_server *ps = s->prepared;
	if (type == 'C' && body && len > 0 && body[len - 1] == '\0' &&
	    (strcmp((const char *)body, "DISCARD ALL") == 0 ||
	     strcmp((const char *)body, "DEALLOCATE ALL") == 0))
		clear_all(s); /* the client dropped every statement, on the server too */
	if (!ps || ps->len == 0)
		return true;
	struct queued *e = queue_at(ps, 0);
	if (type == 'E' && e->type != 'Q' && e->type != 'F' && e->type != 'S') {
		/* The server now ignores everything up to the next Sync. */
		undo(s, e);
		queue_pop(ps);
		while (ps->len > 0 && queue_at(ps, 0)->type != 'S') {
			undo(s, queue_at(ps, 0));
			queue_pop(ps);
		}
		return true;
	}
	if (!completes(e->type, type))
		return true;
	bool ours = e->kind == Q_OUR_PARSE || e->kind == Q_OUR_CLOSE || e->kind == Q_OUR_BIND;
	queue_pop(ps);
	return !ours;
}

void prepared_raise(struct client *c, struct server *s, const char *sql)
{
	struct prepared_server *ps = server_state(s);
	/* Parse and Bind answer only us; the Execute's error is the client's answer. */
	if (!queue_push(ps, Q_OUR_PARSE, 'P', NULL, NULL) ||
	    !queue_push(ps, Q_OUR_BIND, 'B', NULL, NULL) ||
	    !queue_push(ps, Q_REQUEST, 'E', NULL, NULL)) {
		fail(c, "pipeline too deep");
		return;
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_parse(&pb, "", sql);
	proto_build_bind(&pb, NULL, 0);
	proto_build_execute(&pb);
	evbuffer_add(s->sb.out, pb.data, pb.len);
	pktbuf_free(&pb);
}

bool prepared_busy(const struct server *s)
{
	return s->prepared && s->prepared->len > 0;
}

void prepared_command_tag(struct server *s, const char *tag)
{
	if (s->prepared && (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0))
		cache_clear(s->prepared);
}

size_t prepared_client_count(const struct client *c)
{
	return c->prepared ? c->prepared->count : 0;
}

size_t prepared_server_count(const struct server *s)
{
	return s->prepared ? s->prepared->count : 0;
}

void prepared_client_free(struct client *c)
{
	if (!c->prepared)
		return;
	names_clear(c->prepared);
	free(c->prepared->buckets);
	FREE_AND_NULL(c->prepared);
}

void prepared_server_free(struct server *s)
{
	struct prepared_server *ps = s->prepared;
	if (!ps)
		return;
	while (ps->len > 0)
		queue_pop(ps);
	cache_clear(ps);
	free(ps->queue);
	free(ps->buckets);
	FREE_AND_NULL(s->prepared);
}

/*
 * Online restart. A server's cache travels as "<queued request types>|
 * id:hexbody,..." (keeping the statement ids, which are its names on
 * the server), a client's names as "hexname:hexbody,...".
 */

bool prepared_server_portable(const struct server *s)
{
	const struct prepared_server *ps = s->prepared;
	for (size_t i = 0; ps && i < ps->len; i++) {
		const struct queued *e = &ps->queue[(ps->head + i) % ps->cap];
		/* Our own requests and a Parse whose failure must be undone cannot travel. */
		if (e->kind != Q_REQUEST || e->type == 'P')
			return false;
	}
	return true;
}

char *prepared_server_export(const struct server *s)
{
	const struct prepared_server *ps = s->prepared;
	if (!ps)
		return NULL;
	struct pktbuf pb;
	pktbuf_init(&pb);
	for (size_t i = 0; i < ps->len; i++)
		pktbuf_put_byte(&pb, ps->queue[(ps->head + i) % ps->cap].type);
	pktbuf_put_byte(&pb, '|');
	struct list_node *it;
	list_for_each(it, &ps->lru)
	{
		const struct prepared_stmt *st = container_of(it, struct cached, lru)->stmt;
		char id[24];
		int n = snprintf(id, sizeof(id), "%s%llu:", it == ps->lru.next ? "" : ",",
		                 (unsigned long long)st->id);
		pktbuf_put_bytes(&pb, id, (size_t)n);
		pktbuf_put_hex(&pb, st->body, st->body_len);
	}
	return pktbuf_take_string(&pb);
}

char *prepared_client_export(const struct client *c)
{
	const struct prepared_client *pc = c->prepared;
	if (!pc || !pc->count)
		return NULL;
	struct pktbuf pb;
	pktbuf_init(&pb);
	for (size_t i = 0; i < pc->nbuckets; i++) {
		for (const struct client_name *cn = pc->buckets[i]; cn; cn = cn->next) {
			if (pb.len)
				pktbuf_put_byte(&pb, ',');
			pktbuf_put_hex(&pb, cn->name, strlen(cn->name));
			pktbuf_put_byte(&pb, ':');
			pktbuf_put_hex(&pb, cn->stmt->body, cn->stmt->body_len);
		}
	}
	return pktbuf_take_string(&pb);
}

/* Calls fn for each "key:hexvalue" item; key is as written, value decoded. */
static void each_item(const char *s,
                      void (*fn)(void *arg, const char *key, size_t key_len, const uint8_t *value,
                                 size_t value_len),
                      void *arg)
{
	while (s && *s) {
		size_t len = strcspn(s, ",");
		const char *colon = memchr(s, ':', len);
		if (colon) {
			size_t hex_len = len - (size_t)(colon + 1 - s);
			uint8_t *value = xmalloc(hex_len / 2 + 1);
			if (hex_decode(colon + 1, hex_len, value))
				fn(arg, s, (size_t)(colon - s), value, hex_len / 2);
			free(value);
		}
		s += len;
		if (*s == ',')
			s++;
	}
}

static void import_cached(void *arg, const char *key, size_t key_len, const uint8_t *body,
                          size_t body_len)
{
	struct server *s = arg;
	char idbuf[24];
	if (key_len == 0 || key_len >= sizeof(idbuf))
		return;
	memcpy(idbuf, key, key_len);
	idbuf[key_len] = '\0';
	uint64_t id = strtoull(idbuf, NULL, 10);
	uint64_t h = hash_bytes(body, body_len);
	struct prepared_stmt *st = stmt_find(body, (uint32_t)body_len, h);
	if (!st) {
		/* Same id as in the old process: it is the statement's name on this server. */
		uint64_t saved = registry.next_id;
		registry.next_id = id - 1;
		st = stmt_get(body, (uint32_t)body_len);
		registry.next_id = saved > id ? saved : id;
	} else {
		stmt_ref(st);
	}
	if (st->id == id)
		cache_add(s->prepared, st);
	stmt_unref(st);
}

void prepared_server_import(struct server *s, const char *text)
{
	if (!text)
		return;
	struct prepared_server *ps = server_state(s);
	const char *bar = strchr(text, '|');
	if (!bar)
		return;
	for (const char *t = text; t < bar; t++)
		if (!queue_push(ps, Q_REQUEST, (uint8_t)*t, NULL, NULL))
			break;
	each_item(bar + 1, import_cached, s);
}

static void import_name(void *arg, const char *key, size_t key_len, const uint8_t *body,
                        size_t body_len)
{
	struct client *c = arg;
	char *name = xcalloc(1, key_len / 2 + 1);
	if (hex_decode(key, key_len, (uint8_t *)name) && strlen(name) == key_len / 2 && *name &&
	    !name_lookup(c->prepared, name))
		name_add(c->prepared, name, stmt_get(body, (uint32_t)body_len));
	free(name);
}

void prepared_client_import(struct client *c, const char *text)
{
	if (!text)
		return;
	client_state(c);
	each_item(text, import_name, c);
}
