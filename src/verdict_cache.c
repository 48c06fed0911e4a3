/*
 * The verdict cache: a chained hash table over one allocation per entry
 * (its composite key and the verdict's strings), with an LRU list.
 */
#include "verdict_cache.h"

#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next_in_bucket;
	struct entry *newer, *older;
	uint64_t hash;
	struct cached_verdict v;
	size_t key_len;
	char key[]; /* script, variant, user NUL, database NUL, statement key; then the strings */
};

struct verdict_cache {
	struct entry **buckets;
	size_t n_buckets, count, capacity;
	struct entry *newest, *oldest;
};

struct verdict_cache *verdict_cache_new(size_t capacity)
{
	struct verdict_cache *c = xcalloc(1, sizeof(*c));
	c->capacity = capacity;
	c->n_buckets = 64;
	while (c->n_buckets < capacity)
		c->n_buckets *= 2;
	c->buckets = xcalloc(c->n_buckets, sizeof(*c->buckets));
	return c;
}

void verdict_cache_free(struct verdict_cache *c)
{
	if (!c)
		return;
	for (struct entry *e = c->newest, *next; e; e = next) {
		next = e->older;
		free(e);
	}
	free(c->buckets);
	free(c);
}

/* The composite key in buf (malloc'd when it does not fit); its length in *len. */
static char *compose(char *buf, size_t size, int script, uint8_t variant, const char *user,
                     const char *database, const char *key, size_t key_len, size_t *len)
{
	size_t u = strlen(user) + 1, d = strlen(database) + 1;
	*len = 2 + u + d + key_len;
	char *k = *len <= size ? buf : xmalloc(*len);
	k[0] = (char)script;
	k[1] = (char)variant;
	memcpy(k + 2, user, u);
	memcpy(k + 2 + u, database, d);
	memcpy(k + 2 + u + d, key, key_len);
	return k;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
	return h;
}

static struct entry **find(struct verdict_cache *c, const char *k, size_t len, uint64_t h)
{
	struct entry **p = &c->buckets[h & (c->n_buckets - 1)];
	while (*p && !((*p)->hash == h && (*p)->key_len == len && memcmp((*p)->key, k, len) == 0))
		p = &(*p)->next_in_bucket;
	return p;
}

static void lru_unlink(struct verdict_cache *c, struct entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
}

static void lru_push(struct verdict_cache *c, struct entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	c->newest = e;
	if (!c->oldest)
		c->oldest = e;
}

static void remove_entry(struct verdict_cache *c, struct entry *e)
{
	struct entry **p = find(c, e->key, e->key_len, e->hash);
	*p = e->next_in_bucket;
	lru_unlink(c, e);
	free(e);
	c->count--;
}

const struct cached_verdict *verdict_cache_get(struct verdict_cache *c, int script, uint8_t variant,
                                               const char *user, const char *database,
                                               const char *key, size_t key_len)
{
	if (key_len > VERDICT_CACHE_MAX_KEY || c->count == 0)
		return NULL;
	char buf[512];
	size_t len;
	char *k = compose(buf, sizeof(buf), script, variant, user, database, key, key_len, &len);
	struct entry *e = *find(c, k, len, hash_bytes(k, len));
	if (k != buf)
		free(k);
	if (!e)
		return NULL;
	lru_unlink(c, e);
	lru_push(c, e);
	return &e->v;
}

void verdict_cache_put(struct verdict_cache *c, int script, uint8_t variant, const char *user,
                       const char *database, const char *key, size_t key_len,
                       const struct cached_verdict *v)
{
	if (key_len > VERDICT_CACHE_MAX_KEY || c->capacity == 0)
		return;
	char buf[512];
	size_t len;
	char *k = compose(buf, sizeof(buf), script, variant, user, database, key, key_len, &len);
	uint64_t h = hash_bytes(k, len);
	struct entry *old = *find(c, k, len, h);
	if (old)
		remove_entry(c, old);
	else if (c->count >= c->capacity)
		remove_entry(c, c->oldest);
	size_t m = v->message ? strlen(v->message) + 1 : 0;
	size_t s = v->sql ? strlen(v->sql) + 1 : 0;
	struct entry *e = xmalloc(sizeof(*e) + len + m + s);
	memcpy(e->key, k, len);
	e->key_len = len;
	e->hash = h;
	e->v = *v;
	char *strings = e->key + len;
	e->v.message = m ? memcpy(strings, v->message, m) : NULL;
	e->v.sql = s ? memcpy(strings + m, v->sql, s) : NULL;
	struct entry **slot = &c->buckets[h & (c->n_buckets - 1)];
	e->next_in_bucket = *slot;
	*slot = e;
	lru_push(c, e);
	c->count++;
	if (k != buf)
		free(k);
}
