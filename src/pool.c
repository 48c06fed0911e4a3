/*
 * Pools and the moves between their lists.
 *
 * A server is in exactly one of new_servers (connecting, logging in),
 * idle_servers, active_servers (linked to a client) or used_servers
 * (running a reset or check query). A client in a pool is on
 * active_clients (logged in, linked or not) or waiting_clients (waiting
 * for a server, or for the pool's first login to learn the welcome
 * parameters). Only this file moves them.
 */
#include "pool.h"
#include "masking.h"
#include "client.h"
#include "log.h"
#include "params.h"
#include "pooler.h"
#include "prepared.h"
#include "server.h"
#include "varcache.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct list_node all_pools = LIST_INIT(all_pools);
struct list_node all_dbs = LIST_INIT(all_dbs);
struct list_node all_users = LIST_INIT(all_users);
bool pooler_paused;
bool pooler_suspended;

/* Databases */

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void dbconf_copy(struct db_config *dst, const struct db_config *src)
{
	*dst = *src;
	dst->next = NULL;
	dst->name = dup_or_null(src->name);
	dst->host = dup_or_null(src->host);
	dst->ports = dup_or_null(src->ports);
	dst->dbname = dup_or_null(src->dbname);
	dst->user = dup_or_null(src->user);
	dst->password = dup_or_null(src->password);
	dst->auth_user = dup_or_null(src->auth_user);
	dst->auth_query = dup_or_null(src->auth_query);
	dst->auth_dbname = dup_or_null(src->auth_dbname);
	dst->connect_query = dup_or_null(src->connect_query);
	dst->client_encoding = dup_or_null(src->client_encoding);
	dst->datestyle = dup_or_null(src->datestyle);
	dst->timezone = dup_or_null(src->timezone);
	dst->application_name = dup_or_null(src->application_name);
}

static void dbconf_clear(struct db_config *c)
{
	free(c->name);
	free(c->host);
	free(c->ports);
	free(c->dbname);
	free(c->user);
	free(c->password);
	free(c->auth_user);
	free(c->auth_query);
	free(c->auth_dbname);
	free(c->connect_query);
	free(c->client_encoding);
	free(c->datestyle);
	free(c->timezone);
	free(c->application_name);
	memset(c, 0, sizeof(*c));
}

static bool dbconf_same_target(const struct db_config *a, const struct db_config *b)
{
#define SAME(f) ((a->f == NULL && b->f == NULL) || (a->f && b->f && strcmp(a->f, b->f) == 0))
	return SAME(host) && a->port == b->port && SAME(ports) && SAME(dbname) && SAME(user) &&
	       SAME(password) && a->load_balance_hosts == b->load_balance_hosts &&
	       a->target_session_attrs == b->target_session_attrs;
#undef SAME
}

struct pool_db *pool_db_find(const char *name)
{
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (!db->removed && strcmp(db->name, name) == 0)
			return db;
	}
	return NULL;
}

static struct pool_db *new_db(const char *name, const struct db_config *conf, bool autodb)
{
	struct pool_db *db = xcalloc(1, sizeof(*db));
	db->name = xstrdup(name);
	dbconf_copy(&db->conf, conf);
	if (autodb) {
		free(db->conf.name);
		db->conf.name = xstrdup(name);
		if (!conf->dbname) {
			db->conf.dbname = xstrdup(name);
		}
	}
	db->autodb = autodb;
	db->inactive_since = now_usec();
	list_append(&all_dbs, &db->node);
	return db;
}

struct pool_db *pool_db_lookup(const char *name)
{
	struct pool_db *db = pool_db_find(name);
	if (db)
		return db;
	const struct db_config *conf = config_find_db(cf, name);
	if (conf)
		return new_db(name, conf, false);
	conf = config_find_db(cf, "*");
	if (conf)
		return new_db(name, conf, true);
	return NULL;
}

/* Users */

static struct pool_user *pool_user_find(const char *name)
{
	struct list_node *it;
	list_for_each(it, &all_users)
	{
		struct pool_user *u = container_of(it, struct pool_user, node);
		if (strcmp(u->name, name) == 0)
			return u;
	}
	return NULL;
}

struct pool_user *pool_user_get(const char *name)
{
	struct pool_user *u = pool_user_find(name);
	if (u)
		return u;
	u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	list_append(&all_users, &u->node);
	return u;
}

/* Pools */

static void refresh_mode(struct pool *p)
{
	p->mode = config_pool_mode(cf, &p->db->conf, config_find_user(cf, p->user->name));
}

struct pool *pool_get(struct pool_db *db, struct pool_user *user)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (p->db == db && p->user == user)
			return p;
	}
	struct pool *p = xcalloc(1, sizeof(*p));
	p->db = db;
	p->user = user;
	list_init(&p->active_clients);
	list_init(&p->waiting_clients);
	list_init(&p->idle_servers);
	list_init(&p->active_servers);
	list_init(&p->used_servers);
	list_init(&p->new_servers);
	refresh_mode(p);
	list_append(&all_pools, &p->node);
	return p;
}

int pool_server_count(const struct pool *p)
{
	return (int)(list_count(&p->idle_servers) + list_count(&p->active_servers) +
	             list_count(&p->used_servers) + list_count(&p->new_servers));
}

static void move(struct list_node *to, struct list_node *n)
{
	list_del(n);
	list_append(to, n);
}

void pool_client_logged_in(struct pool *pool, struct client *c)
{
	c->pool = pool;
	if (pool->welcome) {
		list_append(&pool->active_clients, &c->node);
		client_welcome(c);
		return;
	}
	/* No server has logged in yet: the welcome parameters come from the first one. */
	c->state = CL_WELCOME;
	list_append(&pool->waiting_clients, &c->node);
	pool_maintain(pool);
}

static bool needs_check(const struct server *s)
{
	if (!cf->server_check_query || !*cf->server_check_query)
		return false;
	return now_usec() - s->idle_since >= cf->server_check_delay;
}

static struct server *take_idle(struct pool *pool)
{
	struct list_node *n = cf->server_round_robin ? list_last(&pool->idle_servers)
	                                             : list_first(&pool->idle_servers);
	return n ? container_of(n, struct server, node) : NULL;
}

void pool_send_settings(struct server *s)
{
	/*
	 * The client's settings go ahead of its first request, in the same
	 * write: the server answers them first, and the pooler keeps those
	 * answers to itself. No round trip is spent waiting for them.
	 */
	char *sql = varcache_diff_sql(&s->client->vars, &s->vars);
	if (sql) {
		sv_log(LOG_LVL_DEBUG, s, "applying client settings: %s", sql);
		server_run_task(s, TASK_SET_VARS, sql);
		free(sql);
	}
}

static enum link_result link_pair(struct client *c, struct server *s)
{
	struct pool *pool = c->pool;
	usec_t now = now_usec();
	move(&pool->active_servers, &s->node);
	s->state = SV_ACTIVE;
	s->client = c;
	s->link_time = now;
	c->server = s;
	if (c->state == CL_WAITING)
		pool->stats.wait_time += now - c->request_time;
	move(&pool->active_clients, &c->node);
	c->state = CL_ACTIVE;
	pool->stats.server_assignment_count++;

	/* Masked columns are known before any row of this database is sent. */
	if (masking_catalog_needed(pool->db)) {
		sv_log(LOG_LVL_DEBUG, s, "reading the catalog for masking");
		sbuf_pause(&c->sb);
		masking_catalog_begin(pool->db);
		server_run_task(s, TASK_MASK_CATALOG, masking_catalog_sql());
		return LINK_LATER;
	}
	pool_send_settings(s);
	return LINK_NOW;
}

/* The next idle server that needs no check, starting checks on the others. */
static struct server *next_ready_idle(struct pool *pool)
{
	struct server *s;
	while ((s = take_idle(pool))) {
		if (!needs_check(s))
			return s;
		move(&pool->used_servers, &s->node);
		s->state = SV_USED;
		server_run_task(s, TASK_CHECK, cf->server_check_query);
	}
	return NULL;
}

/* New links wait: PAUSE, SUSPEND, or a SIGINT shutdown outside session pools. */
static bool linking_stopped(const struct pool *pool)
{
	return pooler_paused || pooler_suspended || pool->db->paused ||
	       (pooler_shutdown_mode() == SHUTDOWN_WAIT_SERVERS &&
	        pool_mode_of(pool) != POOL_MODE_SESSION);
}

enum link_result pool_request_server(struct client *c)
{
	struct pool *pool = c->pool;
	if (!linking_stopped(pool) && list_empty(&pool->waiting_clients)) {
		struct server *s = next_ready_idle(pool);
		if (s)
			return link_pair(c, s);
	}
	c->state = CL_WAITING;
	c->request_time = now_usec();
	move(&pool->waiting_clients, &c->node);
	sbuf_pause(&c->sb);
	pool_maintain(pool);
	return LINK_LATER;
}

void pool_request_auth_query(struct pool *pool, struct client *c)
{
	c->request_time = now_usec();
	move(&pool->waiting_clients, &c->node);
	pool_dispatch(pool);
	if (!c->auth_server)
		pool_maintain(pool);
}

/*
 * Linking can run the client's queued input at once, which can close it,
 * release a server and dispatch again from inside this loop: so every
 * round starts again from the head instead of keeping a next pointer.
 */
static struct client *first_dispatchable(struct pool *pool)
{
	struct list_node *it;
	list_for_each(it, &pool->waiting_clients)
	{
		struct client *c = container_of(it, struct client, node);
		if (c->state == CL_LOGIN || (c->state == CL_WAITING && !linking_stopped(pool)))
			return c;
	}
	return NULL;
}

void pool_dispatch(struct pool *pool)
{
	struct client *c;
	while ((c = first_dispatchable(pool))) {
		struct server *s = next_ready_idle(pool);
		if (!s)
			return;
		if (c->state == CL_LOGIN) {
			/* auth_query is not a query of the client's: it runs even while paused. */
			move(&login_clients, &c->node);
			move(&pool->used_servers, &s->node);
			s->state = SV_USED;
			server_run_auth_query(s, c);
			continue;
		}
		if (link_pair(c, s) == LINK_NOW)
			client_linked(c);
	}
}

bool pool_server_expired(const struct server *s, usec_t now)
{
	usec_t lifetime = config_server_lifetime(cf, &s->pool->db->conf);
	return lifetime > 0 && now - s->connect_time >= lifetime;
}

static void to_idle(struct server *s)
{
	struct pool *pool = s->pool;
	s->state = SV_IDLE;
	s->idle_since = now_usec();
	list_del(&s->node);
	list_prepend(&pool->idle_servers, &s->node);
}

void pool_release_server(struct server *s)
{
	struct pool *pool = s->pool;
	struct client *c = s->client;
	s->release_pending = false;
	if (c) {
		c->server = NULL;
		s->client = NULL;
		if (c->state == CL_ACTIVE)
			c->state = CL_IDLE;
	}
	const char *reset = cf->server_reset_query;
	bool want_reset =
	    reset && *reset &&
	    (pool_mode_of(pool) == POOL_MODE_SESSION || cf->server_reset_query_always);
	if (s->dirty || s->tx_status != 'I' || s->expect_ready > 0 || prepared_busy(s) ||
	    pool->db->removed) {
		server_close(s, s->dirty ? "server state unknown after client left"
		                         : "server was in a transaction when released");
	} else if (pool_server_expired(s, now_usec())) {
		server_close(s, "server lifetime over");
	} else if (pooler_shutting_down() && c == NULL) {
		server_close(s, "shutting down");
	} else if (want_reset) {
		move(&pool->used_servers, &s->node);
		s->state = SV_USED;
		server_run_task(s, TASK_RESET, reset);
	} else {
		to_idle(s);
	}
	pool_dispatch(pool);
	if (c && c->state == CL_IDLE && evbuffer_get_length(c->sb.in) > 0)
		client_resume_reading(c);
	pooler_check_shutdown();
}

void pool_adopt_server(struct pool *pool, struct server *s)
{
	s->pool = pool;
	s->state = SV_IDLE;
	s->idle_since = now_usec();
	list_append(&pool->idle_servers, &s->node);
	pool->db->server_count++;
	pool->user->server_count++;
	s->counted = true;
}

void pool_adopt_client(struct pool *pool, struct client *c, struct server *s)
{
	c->pool = pool;
	c->state = CL_IDLE;
	list_append(&pool->active_clients, &c->node);
	if (!s)
		return;
	move(&pool->active_servers, &s->node);
	s->state = SV_ACTIVE;
	s->client = c;
	s->link_time = now_usec();
	c->server = s;
	c->state = CL_ACTIVE;
}

void pool_client_unwait(struct client *c)
{
	c->state = CL_IDLE;
	move(&c->pool->active_clients, &c->node);
}

void pool_client_gone(struct client *c)
{
	struct server *s = c->server;
	if (s) {
		/* A message half forwarded leaves the server mid-protocol. */
		if (c->sb.pkt_remaining > 0)
			s->dirty = true;
		if (s->task == TASK_SET_VARS || s->task == TASK_MASK_CATALOG)
			s->dirty = true;
		/* A query still running would go on to the end on the server: stop it. */
		if (s->expect_ready > 0 && s->task == TASK_NONE)
			server_send_cancel(s);
		pool_release_server(s);
	}
	list_del(&c->node);
	c->pool = NULL;
}

void pool_server_ready(struct server *s)
{
	struct pool *pool = s->pool;
	/* A RELOAD may have changed its database while the reset or check ran. */
	if (s->dirty || pool->db->removed) {
		server_close(s, "database configuration changed");
		return;
	}
	to_idle(s);
	pool->last_login_failure = 0;
	if (!pool->welcome && s->login_params) {
		pool->welcome = s->login_params;
		s->login_params = NULL;
		struct list_node *it, *tmp;
		list_for_each_safe(it, tmp, &pool->waiting_clients)
		{
			struct client *c = container_of(it, struct client, node);
			if (c->state != CL_WELCOME)
				continue;
			move(&pool->active_clients, &c->node);
			client_welcome(c);
		}
	}
	pool_dispatch(pool);
	pool_maintain(pool);
	pooler_check_shutdown();
}

void pool_server_gone(struct server *s)
{
	struct pool *pool = s->pool;
	list_del(&s->node);
	if (s->counted) {
		pool->db->server_count--;
		pool->user->server_count--;
		s->counted = false;
	}
	pool_maintain(pool);
	pooler_check_shutdown();
}

void pool_server_login_failed(struct pool *pool, const char *sqlstate, const char *msg)
{
	pool->last_login_failure = now_usec();
	strlcpy_s(pool->last_login_error, msg, sizeof(pool->last_login_error));
	strlcpy_s(pool->last_login_sqlstate, sqlstate, sizeof(pool->last_login_sqlstate));
	/* Clients still logging in cannot be welcomed: pass the server's reason on. */
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &pool->waiting_clients)
	{
		struct client *c = container_of(it, struct client, node);
		if (c->state == CL_WELCOME)
			client_fail(c, sqlstate, "%s", msg);
	}
}

static int waiting_count(const struct pool *pool, bool *reserve_due)
{
	int n = 0;
	usec_t now = now_usec();
	*reserve_due = false;
	struct list_node *it;
	list_for_each(it, &pool->waiting_clients)
	{
		struct client *c = container_of(it, struct client, node);
		if (c->state == CL_WAITING || c->state == CL_LOGIN) {
			n++;
			if (cf->reserve_pool_timeout > 0 &&
			    now - c->request_time >= cf->reserve_pool_timeout)
				*reserve_due = true;
		} else if (c->state == CL_WELCOME && !pool->welcome && n == 0) {
			n = 1;
		}
	}
	return n;
}

static int effective_limit(int pool_value, int global)
{
	return pool_value >= 0 ? pool_value : global;
}

static bool may_launch(struct pool *pool, int total, bool reserve_due)
{
	const struct db_config *dc = &pool->db->conf;
	const struct user_config *uc = config_find_user(cf, pool->user->name);
	int size = config_pool_size_for(cf, dc, uc);
	int reserve = config_reserve_pool_size(cf, dc, uc);
	int limit = size + (reserve_due ? reserve : 0);
	if (total >= limit)
		return false;
	int max_db = effective_limit(dc->max_db_connections, cf->max_db_connections);
	if (max_db > 0 && pool->db->server_count >= max_db)
		return false;
	int max_user = uc && uc->max_user_connections >= 0 ? uc->max_user_connections
	                                                   : cf->max_user_connections;
	if (max_user > 0 && pool->user->server_count >= max_user)
		return false;
	return true;
}

void pool_maintain(struct pool *pool)
{
	if (pool->db->removed || pooler_shutdown_mode() == SHUTDOWN_IMMEDIATE)
		return;
	if (pool->last_login_failure &&
	    now_usec() - pool->last_login_failure < cf->server_login_retry)
		return; /* the janitor calls again once server_login_retry has passed */
	bool reserve_due;
	int waiting = waiting_count(pool, &reserve_due);
	int connecting = (int)list_count(&pool->new_servers);
	int total = pool_server_count(pool);
	int min = effective_limit(pool->db->conf.min_pool_size, cf->min_pool_size);
	int want = waiting - connecting - (int)list_count(&pool->used_servers);
	/* While shutting down, only clients still being served get new servers. */
	if (total + (want > 0 ? want : 0) < min && !pooler_shutting_down())
		want = min - total;
	while (want-- > 0 && may_launch(pool, total, reserve_due)) {
		server_launch(pool);
		total++;
		if (pool->last_login_failure)
			break; /* the launch failed at once */
	}
}

static void mark_dirty(struct list_node *servers)
{
	struct list_node *it;
	list_for_each(it, servers)
	{
		container_of(it, struct server, node)->dirty = true;
	}
}

static void close_all(struct list_node *servers, const char *reason)
{
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, servers)
	{
		server_close(container_of(it, struct server, node), reason);
	}
}

void pool_apply_config(void)
{
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (db->removed)
			continue;
		const struct db_config *conf = config_find_db(cf, db->autodb ? "*" : db->name);
		if (!conf) {
			log_info("database %s removed from the configuration: closing it once idle",
			         db->name);
			db->removed = true;
			continue;
		}
		struct db_config fresh;
		dbconf_copy(&fresh, conf);
		if (db->autodb) {
			free(fresh.name);
			fresh.name = xstrdup(db->name);
			if (!fresh.dbname)
				fresh.dbname = xstrdup(db->name);
		}
		bool moved = !dbconf_same_target(&db->conf, &fresh);
		dbconf_clear(&db->conf);
		db->conf = fresh;
		if (moved) {
			log_info("database %s changed: reconnecting its servers", db->name);
			db->addr_len = 0;
			db->addr_time = 0;
			memset(db->host_failed, 0, sizeof(db->host_failed));
			db->no_standby_since = 0;
		}
		struct list_node *pit;
		list_for_each(pit, &all_pools)
		{
			struct pool *p = container_of(pit, struct pool, node);
			if (p->db != db || !moved)
				continue;
			/* Busy servers finish what they do, then close; idle ones go now. */
			mark_dirty(&p->active_servers);
			mark_dirty(&p->used_servers);
			mark_dirty(&p->new_servers);
			close_all(&p->idle_servers, "database configuration changed");
		}
	}
	/* Removed databases: idle servers go now, busy ones when released. */
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		refresh_mode(p);
		if (p->db->removed)
			close_all(&p->idle_servers, "database removed");
	}
}

int pool_db_client_count(const struct pool_db *db)
{
	int n = 0;
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		const struct pool *p = container_of(it, struct pool, node);
		if (p->db == db)
			n +=
			    (int)(list_count(&p->active_clients) + list_count(&p->waiting_clients));
	}
	return n;
}

const char *pool_client_limit(const struct pool_db *db, const struct pool_user *user)
{
	/* The database first, as PgBouncer checks them. */
	int max_db = db ? config_max_db_client_connections(cf, &db->conf) : 0;
	if (max_db > 0 && pool_db_client_count(db) >= max_db)
		return "max_db_client_connections";
	/* user->client_count already holds the client asking; the pools do not yet. */
	int max_user = config_max_user_client_connections(cf, config_find_user(cf, user->name));
	if (max_user > 0 && user->client_count > max_user)
		return "max_user_client_connections";
	return NULL;
}

static bool pool_in_use(const struct pool *p)
{
	return !list_empty(&p->active_clients) || !list_empty(&p->waiting_clients) ||
	       !list_empty(&p->idle_servers) || !list_empty(&p->active_servers) ||
	       !list_empty(&p->used_servers) || !list_empty(&p->new_servers);
}

static void pool_free(struct pool *p)
{
	pool_stats_add(&p->db->retired, &p->stats);
	list_del(&p->node);
	params_free(p->welcome);
	free(p);
}

void pool_gc_autodb(usec_t now)
{
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (!db->autodb)
			continue;
		bool used = false;
		struct list_node *pit;
		list_for_each(pit, &all_pools)
		{
			struct pool *p = container_of(pit, struct pool, node);
			if (p->db == db && pool_in_use(p))
				used = true;
		}
		if (used || cf->autodb_idle_timeout <= 0) {
			db->inactive_since = now;
			continue;
		}
		if (now - db->inactive_since < cf->autodb_idle_timeout)
			continue;
		log_info("autodb: dropping idle database %s", db->name);
		struct list_node *ptmp;
		list_for_each_safe(pit, ptmp, &all_pools)
		{
			struct pool *p = container_of(pit, struct pool, node);
			if (p->db == db)
				pool_free(p);
		}
		list_del(&db->node);
		dbconf_clear(&db->conf);
		masking_catalog_free(db);
		free(db->name);
		free(db);
	}
}

void pool_gc_idle(usec_t now)
{
	struct list_node *it, *tmp, *sit, *stmp;
	list_for_each_safe(it, tmp, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (!list_empty(&p->active_clients) || !list_empty(&p->waiting_clients) ||
		    cf->pool_idle_timeout <= 0) {
			p->unused_since = 0;
			continue;
		}
		if (!p->unused_since)
			p->unused_since = now;
		if (now - p->unused_since < cf->pool_idle_timeout)
			continue;
		list_for_each_safe(sit, stmp, &p->idle_servers)
		{
			server_close(container_of(sit, struct server, node), "pool idle timeout");
		}
		if (!pool_in_use(p)) {
			log_info("pool %s/%s: unused for pool_idle_timeout, freed", p->db->name,
			         p->user->name);
			pool_free(p);
		}
	}
}

void pool_fill_forced(usec_t now)
{
	static usec_t last;
	if (now - last < USEC_PER_SEC || pooler_shutting_down())
		return;
	last = now;
	for (const struct db_config *dc = cf->databases; dc; dc = dc->next) {
		int min = effective_limit(dc->min_pool_size, cf->min_pool_size);
		if (min <= 0 || !dc->user || strcmp(dc->name, "*") == 0)
			continue;
		/* As PgBouncer: a forced user needs no client to know whom to log in as. */
		struct pool_db *db = pool_db_lookup(dc->name);
		if (db)
			pool_maintain(pool_get(db, pool_user_get(dc->user)));
	}
}

void pool_reconnect(struct pool_db *db)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (db && p->db != db)
			continue;
		mark_dirty(&p->active_servers);
		mark_dirty(&p->used_servers);
		mark_dirty(&p->new_servers);
		close_all(&p->idle_servers, "reconnect requested");
	}
}

static int count_dirty(const struct list_node *servers)
{
	int n = 0;
	const struct list_node *it;
	list_for_each(it, servers)
	{
		if (container_of(it, struct server, node)->dirty)
			n++;
	}
	return n;
}

int pool_dirty_servers(const struct pool_db *db)
{
	int n = 0;
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (db && p->db != db)
			continue;
		n += count_dirty(&p->active_servers) + count_dirty(&p->used_servers) +
		     count_dirty(&p->new_servers);
	}
	return n;
}

/* Closing a client can release servers and relink others: take the head each time. */
static void fail_all(struct list_node *clients, const char *reason)
{
	struct list_node *it;
	while ((it = list_first(clients)))
		client_fail(container_of(it, struct client, node), "08P01", "%s", reason);
}

void pool_kill(struct pool_db *db, const char *reason)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (p->db != db)
			continue;
		fail_all(&p->waiting_clients, reason);
		fail_all(&p->active_clients, reason);
		close_all(&p->idle_servers, reason);
		close_all(&p->active_servers, reason);
		close_all(&p->used_servers, reason);
		close_all(&p->new_servers, reason);
	}
}

void pool_close_all_servers(const char *reason)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		close_all(&p->idle_servers, reason);
		close_all(&p->active_servers, reason);
		close_all(&p->used_servers, reason);
		close_all(&p->new_servers, reason);
	}
}

void pool_stats_add(struct pool_stats *dst, const struct pool_stats *s)
{
	dst->server_assignment_count += s->server_assignment_count;
	dst->xact_count += s->xact_count;
	dst->query_count += s->query_count;
	dst->bytes_received += s->bytes_received;
	dst->bytes_sent += s->bytes_sent;
	dst->xact_time += s->xact_time;
	dst->query_time += s->query_time;
	dst->wait_time += s->wait_time;
	dst->parse_count += s->parse_count;
	dst->server_parse_count += s->server_parse_count;
	dst->bind_count += s->bind_count;
}

void pool_db_stats(const struct pool_db *db, struct pool_stats *out)
{
	/* Counters only grow: those of freed pools stay with the database. */
	*out = db->retired;
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		const struct pool *p = container_of(it, struct pool, node);
		if (p->db == db)
			pool_stats_add(out, &p->stats);
	}
}

/* Counts are per second; times are per transaction, query or assignment, as PgBouncer's. */
void pool_update_averages(usec_t now)
{
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (!db->stats_time) {
			db->stats_time = now;
			pool_db_stats(db, &db->stats_prev);
			continue;
		}
		if (cf->stats_period <= 0 || now - db->stats_time < cf->stats_period)
			continue;
		struct pool_stats cur, *prev = &db->stats_prev, *avg = &db->stats_avg;
		pool_db_stats(db, &cur);
		double secs = (double)(now - db->stats_time) / USEC_PER_SEC;
		uint64_t xacts = cur.xact_count - prev->xact_count;
		uint64_t queries = cur.query_count - prev->query_count;
		uint64_t assigns = cur.server_assignment_count - prev->server_assignment_count;
		avg->server_assignment_count = (uint64_t)(assigns / secs);
		avg->xact_count = (uint64_t)(xacts / secs);
		avg->query_count = (uint64_t)(queries / secs);
		avg->bytes_received =
		    (uint64_t)((cur.bytes_received - prev->bytes_received) / secs);
		avg->bytes_sent = (uint64_t)((cur.bytes_sent - prev->bytes_sent) / secs);
		avg->xact_time = xacts ? (cur.xact_time - prev->xact_time) / (usec_t)xacts : 0;
		avg->query_time =
		    queries ? (cur.query_time - prev->query_time) / (usec_t)queries : 0;
		avg->wait_time = assigns ? (cur.wait_time - prev->wait_time) / (usec_t)assigns : 0;
		avg->parse_count = (uint64_t)((cur.parse_count - prev->parse_count) / secs);
		avg->server_parse_count =
		    (uint64_t)((cur.server_parse_count - prev->server_parse_count) / secs);
		avg->bind_count = (uint64_t)((cur.bind_count - prev->bind_count) / secs);
		*prev = cur;
		db->stats_time = now;
	}
}

void pool_free_all(void)
{
	struct list_node *it;
	while ((it = list_pop(&all_pools))) {
		struct pool *p = container_of(it, struct pool, node);
		params_free(p->welcome);
		free(p);
	}
	while ((it = list_pop(&all_dbs))) {
		struct pool_db *db = container_of(it, struct pool_db, node);
		dbconf_clear(&db->conf);
		masking_catalog_free(db);
		free(db->name);
		free(db);
	}
	while ((it = list_pop(&all_users))) {
		struct pool_user *u = container_of(it, struct pool_user, node);
		free(u->name);
		free(u->secret);
		if (u->password) {
			OPENSSL_cleanse(u->password, strlen(u->password));
			free(u->password);
		}
		free(u);
	}
}
