/*
 * The admin console. A console client has no pool and no server: its
 * simple queries are parsed here and answered with result sets built in
 * the pooler. Commands that must wait (PAUSE until servers are released)
 * leave the client waiting; admin_tick() answers it when the condition
 * holds, so the loop never blocks.
 */
#include "admin.h"
#include "approvals.h"
#include "audit.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "params.h"
#include "pool.h"
#include "masking.h"
#include "oidc.h"
#include "token.h"
#include "policy.h"
#include "pooler.h"
#include "prepared.h"
#include "proto.h"
#include "server.h"
#include "takeover.h"
#include "tls.h"

#include "dns.h"
#include "varcache.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ADMIN_MAX_QUERY 4096

/* PostgreSQL type OIDs used in RowDescription. */
#define OID_INT8 PROTO_OID_INT8
#define OID_TEXT PROTO_OID_TEXT

static struct list_node admin_clients = LIST_INIT(admin_clients);

bool admin_is_database(const char *dbname)
{
	return strcmp(dbname, "pgbouncer") == 0 || strcmp(dbname, "pgsieve") == 0;
}

bool admin_user_allowed(const char *user)
{
	return config_list_contains(cf->admin_users, user) ||
	       config_list_contains(cf->stats_users, user) ||
	       config_list_contains(cf->approval_users, user);
}

static bool may_control(const struct client *c)
{
	return c->os_admin || config_list_contains(cf->admin_users, c->user);
}

/* admin_users and approval_users answer approvals (and see what is pending). */
static bool may_approve(const struct client *c)
{
	return may_control(c) || config_list_contains(cf->approval_users, c->user);
}

/* In approval_users and nothing else: the approval commands are all it may run. */
static bool approver_only(const struct client *c)
{
	return !may_control(c) && !config_list_contains(cf->stats_users, c->user);
}

/* Result sets */

struct result {
	struct pktbuf pb;
	int ncols;
};

static void result_begin(struct result *r, int ncols, const char *const *names,
                         const uint32_t *types)
{
	pktbuf_init(&r->pb);
	r->ncols = ncols;
	proto_build_row_description(&r->pb, ncols, names, types);
}

static void result_row(struct result *r, const char *const *values)
{
	proto_build_data_row(&r->pb, r->ncols, values);
}

static void complete(struct pktbuf *pb, const char *tag)
{
	proto_build_complete(pb, tag);
	proto_build_ready(pb, 'I');
}

static void result_send(struct client *c, struct result *r, const char *tag)
{
	complete(&r->pb, tag);
	sbuf_send(&c->sb, r->pb.data, r->pb.len);
	pktbuf_free(&r->pb);
}

static void send_complete(struct client *c, const char *tag)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	complete(&pb, tag);
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

/* An ERROR keeps the console session: the client may go on. */
static void send_error(struct client *c, const char *sqlstate, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static void send_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_error(&pb, "ERROR", sqlstate, msg);
	proto_build_ready(&pb, 'I');
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

/* Number formatting into a small ring of buffers, so a row can hold several. */
static const char *num(long long v)
{
	static char ring[32][24];
	static int next;
	char *b = ring[next++ % 32];
	snprintf(b, sizeof(ring[0]), "%lld", v);
	return b;
}

/* Commands */

static void show_version(struct client *c)
{
	static const char *const names[] = {"version"};
	static const uint32_t types[] = {OID_TEXT};
	struct result r;
	result_begin(&r, 1, names, types);
	result_row(
	    &r, (const char *const[]){"pgsieve " PACKAGE_VERSION " (PgBouncer 1.25 compatible)"});
	result_send(c, &r, "SHOW");
}

static void show_config(struct client *c)
{
	static const char *const names[] = {"key", "value", "default", "changeable"};
	static const uint32_t types[] = {OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT};
	struct result r;
	result_begin(&r, 4, names, types);
	struct config_setting_info info;
	for (size_t i = 0; config_setting_at(i, &info); i++) {
		char buf[256];
		const char *value = config_show_value(cf, info.name, buf, sizeof(buf));
		result_row(&r,
		           (const char *const[]){info.name, value ? value : "", info.default_value,
		                                 info.reloadable ? "yes" : "no"});
	}
	result_send(c, &r, "SHOW");
}

/* PgBouncer answers HELP with a notice: "Console usage", the commands as its detail. */
static const char help_detail[] =
    "\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
    "\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
    "\tSHOW DNS_HOSTS|DNS_ZONES\n"
    "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
    "\tSHOW PEERS|PEER_POOLS\n"
    "\tSHOW POLICIES|AUDIT\n"
    "\tSHOW APPROVALS|GRANTS\n"
    "\tAPPROVE <id> [FOR <interval>]\n"
    "\tDENY <id> [<reason>]\n"
    "\tREVOKE GRANT <id>\n"
    "\tPAUSE [<db>]\n"
    "\tRESUME [<db>]\n"
    "\tRELOAD\n"
    "\tSHUTDOWN\n"
    "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS";

static void show_help(struct client *c)
{
	struct pktbuf pb;
	pktbuf_init(&pb);
	pktbuf_begin(&pb, 'N');
	pktbuf_put_byte(&pb, 'S');
	pktbuf_put_string(&pb, "NOTICE");
	pktbuf_put_byte(&pb, 'C');
	pktbuf_put_string(&pb, "00000");
	pktbuf_put_byte(&pb, 'M');
	pktbuf_put_string(&pb, "Console usage");
	pktbuf_put_byte(&pb, 'D');
	pktbuf_put_string(&pb, help_detail);
	pktbuf_put_byte(&pb, 0);
	pktbuf_end(&pb);
	complete(&pb, "SHOW");
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

/* PAUSE answers once no server connection of the paused scope is in use. */
static bool pause_done(const char *dbname)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (dbname && strcmp(p->db->name, dbname) != 0)
			continue;
		if (!list_empty(&p->active_servers))
			return false;
	}
	return true;
}

static struct pool_db *db_arg(struct client *c, const char *dbname)
{
	struct pool_db *db = pool_db_find(dbname);
	if (!db)
		send_error(c, "08P01", "no such database: %s", dbname);
	return db;
}

static void cmd_pause(struct client *c, const char *dbname)
{
	if (dbname) {
		struct pool_db *db = db_arg(c, dbname);
		if (!db)
			return;
		db->paused = true;
		log_info("PAUSE %s by %s", dbname, c->user);
	} else {
		if (pooler_paused || pooler_suspended) {
			send_error(c, "08P01", "already suspended/paused");
			return;
		}
		pooler_pause();
	}
	free(c->admin_wait_db);
	c->admin_wait_db = dbname ? xstrdup(dbname) : NULL;
	c->admin_waiting = ADMIN_WAIT_PAUSE;
	admin_tick();
}

/* SUSPEND answers once every connection has stopped between two messages. */
static void cmd_suspend(struct client *c)
{
	if (pooler_paused || pooler_suspended) {
		send_error(c, "08P01", "already suspended/paused");
		return;
	}
	log_info("SUSPEND by %s", c->user);
	takeover_suspend();
	c->admin_waiting = ADMIN_WAIT_SUSPEND;
	admin_tick();
}

static void cmd_reconnect(struct client *c, const char *dbname)
{
	struct pool_db *db = NULL;
	if (dbname && !(db = db_arg(c, dbname)))
		return;
	log_info("RECONNECT%s%s by %s", dbname ? " " : "", dbname ? dbname : "", c->user);
	pool_reconnect(db);
	send_complete(c, "RECONNECT");
}

static void cmd_wait_close(struct client *c, const char *dbname)
{
	if (dbname && !pool_db_find(dbname)) {
		send_error(c, "08P01", "no such database: %s", dbname);
		return;
	}
	free(c->admin_wait_db);
	c->admin_wait_db = dbname ? xstrdup(dbname) : NULL;
	c->admin_waiting = ADMIN_WAIT_CLOSE;
	admin_tick();
}

static void cmd_kill(struct client *c, const char *dbname)
{
	struct pool_db *db;
	if (!dbname) {
		send_error(c, "08P01", "invalid command 'KILL', use SHOW HELP;");
		return;
	}
	if (!(db = db_arg(c, dbname)))
		return;
	log_info("KILL %s by %s", dbname, c->user);
	/* As PgBouncer: the database stays paused, new clients wait for RESUME. */
	db->paused = true;
	pool_kill(db, "database killed by admin");
	send_complete(c, "KILL");
}

static void cmd_kill_client(struct client *c, const char *id)
{
	char *end;
	unsigned long long want = id ? strtoull(id, &end, 10) : 0;
	if (!id || *end || !want) {
		send_error(c, "08P01", "KILL_CLIENT needs a client id (SHOW CLIENTS)");
		return;
	}
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *victim = container_of(it, struct client, all_node);
		if (victim->id != want || victim->state == CL_CLOSED)
			continue;
		log_info("KILL_CLIENT %llu by %s", want, c->user);
		if (victim == c) {
			send_error(c, "08P01", "cannot kill your own connection");
			return;
		}
		client_fail(victim, "08P01", "client killed by admin");
		send_complete(c, "KILL_CLIENT");
		return;
	}
	send_error(c, "08P01", "no client with id %llu", want);
}

static void cmd_enable(struct client *c, const char *dbname, bool enable)
{
	struct pool_db *db;
	if (!dbname) {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;",
		           enable ? "ENABLE" : "DISABLE");
		return;
	}
	if (!(db = db_arg(c, dbname)))
		return;
	db->disabled = !enable;
	log_info("%s %s by %s", enable ? "ENABLE" : "DISABLE", dbname, c->user);
	send_complete(c, enable ? "ENABLE" : "DISABLE");
}

/* SET key = value (or TO), the value bare or in single quotes. */
/* A SET whose consequences failed: the old value comes back, the client hears why. */
static void undo_set(struct client *c, const char *key, char *old, char *err)
{
	char *undo_err = NULL;
	if (!config_set(cf, key, old, &undo_err))
		free(undo_err);
	send_error(c, "08P01", "%s", err);
	free(err);
	free(old);
}

static void cmd_set(struct client *c, const char *sql)
{
	const char *p = sql + strspn(sql, " \t");
	p += 3; /* "set" */
	p += strspn(p, " \t");
	size_t klen = strcspn(p, " \t=");
	char key[128];
	if (klen == 0 || klen >= sizeof(key)) {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", sql);
		return;
	}
	memcpy(key, p, klen);
	key[klen] = '\0';
	p += klen;
	p += strspn(p, " \t");
	if (*p == '=')
		p++;
	else if (strncasecmp(p, "to", 2) == 0)
		p += 2;
	else {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", sql);
		return;
	}
	p += strspn(p, " \t");
	char value[1024];
	size_t n = 0;
	if (*p == '\'') {
		for (p++; *p && n + 1 < sizeof(value); p++) {
			if (*p == '\'' && p[1] == '\'')
				p++;
			else if (*p == '\'')
				break;
			value[n++] = *p;
		}
	} else {
		while (*p && !isspace((unsigned char)*p) && n + 1 < sizeof(value))
			value[n++] = *p++;
	}
	value[n] = '\0';
	for (char *k = key; *k; k++)
		*k = (char)tolower((unsigned char)*k);
	char *err = NULL;
	char buf[256];
	const char *shown = config_show_value(cf, key, buf, sizeof(buf));
	char *old = shown ? xstrdup(shown) : NULL;
	if (!config_set(cf, key, value, &err)) {
		send_error(c, "08P01", "%s", err);
		free(err);
		free(old);
		return;
	}
	/* New TLS contexts, all or nothing: a value they cannot be built from is undone. */
	struct tls_contexts *t = NULL;
	if (tls_is_setting(key) && !(t = tls_load(cf, &err))) {
		undo_set(c, key, old, err);
		return;
	}
	if (t)
		tls_install(t);
	/* The scripts are compiled again with the new value, or the value is undone. */
	if (strncmp(key, "policy_", 7) == 0 && !policy_configure(&err)) {
		undo_set(c, key, old, err);
		return;
	}
	if (strncmp(key, "oidc_", 5) == 0 && !oidc_configure(&err)) {
		undo_set(c, key, old, err);
		return;
	}
	free(old);
	log_info("SET %s = '%s' by %s", key, config_is_secret(key) ? "(hidden)" : value, c->user);
	/* Settings that pools or the log keep derived state of. */
	pool_apply_config();
	if (cf->verbose > log_verbose)
		log_verbose = cf->verbose;
	send_complete(c, "SET");
}

static void cmd_resume(struct client *c, const char *dbname)
{
	if (dbname) {
		struct pool_db *db = db_arg(c, dbname);
		if (!db)
			return;
		db->paused = false;
		log_info("RESUME %s by %s", dbname, c->user);
		struct list_node *it;
		list_for_each(it, &all_pools)
		{
			struct pool *p = container_of(it, struct pool, node);
			if (p->db == db)
				pool_dispatch(p);
		}
	} else {
		if (!pooler_paused && !pooler_suspended) {
			send_error(c, "08P01", "pooler is not paused/suspended");
			return;
		}
		if (pooler_suspended)
			takeover_resume();
		pooler_resume();
	}
	send_complete(c, "RESUME");
}

static void cmd_reload(struct client *c)
{
	log_info("RELOAD command issued by %s", c->user);
	char *err = NULL;
	if (!pooler_reload(&err)) {
		send_error(c, "F0000", "RELOAD failed, the running configuration is kept: %s", err);
		free(err);
		return;
	}
	send_complete(c, "RELOAD");
}

static void cmd_shutdown(struct client *c, const char *how)
{
	enum shutdown_mode mode = SHUTDOWN_IMMEDIATE;
	if (how && strcasecmp(how, "wait_for_servers") == 0)
		mode = SHUTDOWN_WAIT_SERVERS;
	else if (how && strcasecmp(how, "wait_for_clients") == 0)
		mode = SHUTDOWN_WAIT_CLIENTS;
	else if (how) {
		send_error(c, "08P01", "invalid command 'SHUTDOWN %s', use SHOW HELP;", how);
		return;
	}
	log_info("SHUTDOWN%s%s command issued by %s", how ? " " : "", how ? how : "", c->user);
	/* After a hand-over nothing is ours to wait for. */
	if (takeover_handed_over())
		mode = SHUTDOWN_IMMEDIATE;
	send_complete(c, "SHUTDOWN");
	sbuf_flush(&c->sb);
	pooler_begin_shutdown(mode);
}

/* SHOW commands with PgBouncer 1.25's columns, in its wire order. */

#define T OID_TEXT
#define I OID_INT8

static const char *yes_no01(bool b)
{
	return b ? "1" : "0";
}

static const char *timestamp(usec_t wall, char *buf, size_t len)
{
	time_t secs = (time_t)(wall / USEC_PER_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

/* Monotonic times are kept; people want wall-clock ones. */
static usec_t to_wall(usec_t mono)
{
	return mono ? wall_usec() - (now_usec() - mono) : 0;
}

/* As PgBouncer: only a host list has a load_balance_hosts to show. */
static const char *load_balance_column(const struct db_config *dc)
{
	return dc->host_count > 1 ? config_load_balance_name(dc->load_balance_hosts) : NULL;
}

static void database_row(struct result *r, const char *name, const struct db_config *dc,
                         const struct pool_db *db)
{
	int size = config_pool_size(cf, dc);
	int min = dc->min_pool_size >= 0 ? dc->min_pool_size : cf->min_pool_size;
	int reserve = dc->reserve_pool >= 0 ? dc->reserve_pool : cf->reserve_pool_size;
	int max_db = dc->max_db_connections >= 0 ? dc->max_db_connections : cf->max_db_connections;
	result_row(
	    r, (const char *const[]){
	           name, dc->host, num(dc->port > 0 ? dc->port : 5432),
	           dc->dbname ? dc->dbname : name, dc->user, num(size), num(min), num(reserve),
	           num(config_server_lifetime(cf, dc) / USEC_PER_SEC),
	           dc->pool_mode == POOL_MODE_UNSET ? NULL : config_pool_mode_name(dc->pool_mode),
	           load_balance_column(dc), num(max_db), num(db ? db->server_count : 0),
	           num(config_max_db_client_connections(cf, dc)),
	           num(db ? pool_db_client_count(db) : 0), yes_no01(db && db->paused),
	           yes_no01(db && db->disabled)});
}

static void show_databases(struct client *c)
{
	static const char *const names[] = {"name",
	                                    "host",
	                                    "port",
	                                    "database",
	                                    "force_user",
	                                    "pool_size",
	                                    "min_pool_size",
	                                    "reserve_pool_size",
	                                    "server_lifetime",
	                                    "pool_mode",
	                                    "load_balance_hosts",
	                                    "max_connections",
	                                    "current_connections",
	                                    "max_client_connections",
	                                    "current_client_connections",
	                                    "paused",
	                                    "disabled"};
	static const uint32_t types[] = {T, T, I, T, T, I, I, I, I, T, T, I, I, I, I, I, I};
	struct result r;
	result_begin(&r, 17, names, types);
	for (const struct db_config *dc = cf->databases; dc; dc = dc->next) {
		if (strcmp(dc->name, "*") == 0)
			continue;
		struct pool_db *db = pool_db_find(dc->name);
		database_row(&r, dc->name, db ? &db->conf : dc, db);
	}
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (db->autodb && !db->removed)
			database_row(&r, db->name, &db->conf, db);
	}
	/* The console itself, as PgBouncer lists it. */
	result_row(&r, (const char *const[]){"pgbouncer", NULL, num(cf->listen_port), "pgbouncer",
	                                     "pgbouncer", "2", "0", "0", "0", "statement", NULL,
	                                     "0", "0", "0", "0", "0", "0"});
	result_send(c, &r, "SHOW");
}

static int count_state(const struct list_node *list, enum client_state st)
{
	int n = 0;
	const struct list_node *it;
	list_for_each(it, list)
	{
		if (container_of(it, struct client, node)->state == st)
			n++;
	}
	return n;
}

static int count_task(const struct list_node *list, enum server_task task)
{
	int n = 0;
	const struct list_node *it;
	list_for_each(it, list)
	{
		if (container_of(it, struct server, node)->task == task)
			n++;
	}
	return n;
}

static void show_pools(struct client *c)
{
	static const char *const names[] = {"database",
	                                    "user",
	                                    "cl_active",
	                                    "cl_waiting",
	                                    "cl_active_cancel_req",
	                                    "cl_waiting_cancel_req",
	                                    "sv_active",
	                                    "sv_active_cancel",
	                                    "sv_being_canceled",
	                                    "sv_idle",
	                                    "sv_used",
	                                    "sv_tested",
	                                    "sv_login",
	                                    "maxwait",
	                                    "maxwait_us",
	                                    "pool_mode",
	                                    "load_balance_hosts"};
	static const uint32_t types[] = {T, T, I, I, I, I, I, I, I, I, I, I, I, I, I, T, T};
	struct result r;
	result_begin(&r, 17, names, types);
	usec_t now = now_usec();
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		usec_t maxwait = 0;
		struct list_node *ci;
		list_for_each(ci, &p->waiting_clients)
		{
			struct client *wc = container_of(ci, struct client, node);
			if (wc->state == CL_WAITING && now - wc->request_time > maxwait)
				maxwait = now - wc->request_time;
		}
		int waiting = count_state(&p->waiting_clients, CL_WAITING);
		int active = (int)list_count(&p->active_clients) +
		             (int)list_count(&p->waiting_clients) - waiting;
		result_row(&r, (const char *const[]){
		                   p->db->name, p->user->name, num(active), num(waiting), "0", "0",
		                   num((long long)list_count(&p->active_servers)), "0", "0",
		                   num((long long)list_count(&p->idle_servers)),
		                   num(count_task(&p->used_servers, TASK_RESET)),
		                   num((long long)list_count(&p->used_servers) -
		                       count_task(&p->used_servers, TASK_RESET)),
		                   num((long long)list_count(&p->new_servers)),
		                   num(maxwait / USEC_PER_SEC), num(maxwait % USEC_PER_SEC),
		                   config_pool_mode_name(pool_mode_of(p)),
		                   load_balance_column(&p->db->conf)});
	}
	/* The console is a pool of its own in PgBouncer's listing. */
	result_row(&r, (const char *const[]){"pgbouncer", "pgbouncer",
	                                     num((long long)list_count(&admin_clients)), "0", "0",
	                                     "0", "0", "0", "0", "0", "0", "0", "0", "0", "0",
	                                     "statement", NULL});
	result_send(c, &r, "SHOW");
}

static const char *const stats_names[] = {"total_server_assignment_count",
                                          "total_xact_count",
                                          "total_query_count",
                                          "total_received",
                                          "total_sent",
                                          "total_xact_time",
                                          "total_query_time",
                                          "total_wait_time",
                                          "total_client_parse_count",
                                          "total_server_parse_count",
                                          "total_bind_count"};

static const char *const stats_avg_names[] = {"avg_server_assignment_count",
                                              "avg_xact_count",
                                              "avg_query_count",
                                              "avg_recv",
                                              "avg_sent",
                                              "avg_xact_time",
                                              "avg_query_time",
                                              "avg_wait_time",
                                              "avg_client_parse_count",
                                              "avg_server_parse_count",
                                              "avg_bind_count"};

static void stats_values(const struct pool_stats *s, const char **v)
{
	v[0] = num((long long)s->server_assignment_count);
	v[1] = num((long long)s->xact_count);
	v[2] = num((long long)s->query_count);
	v[3] = num((long long)s->bytes_received);
	v[4] = num((long long)s->bytes_sent);
	v[5] = num(s->xact_time);
	v[6] = num(s->query_time);
	v[7] = num(s->wait_time);
	v[8] = num((long long)s->parse_count);
	v[9] = num((long long)s->server_parse_count);
	v[10] = num((long long)s->bind_count);
}

/* which: 0 = STATS (totals and averages), 1 = STATS_TOTALS, 2 = STATS_AVERAGES */
static void show_stats(struct client *c, int which)
{
	const char *names[23];
	uint32_t types[23];
	int n = 0;
	names[n] = "database";
	types[n++] = T;
	static const char *const short_names[] = {"server_assignment_count",
	                                          "xact_count",
	                                          "query_count",
	                                          "bytes_received",
	                                          "bytes_sent",
	                                          "xact_time",
	                                          "query_time",
	                                          "wait_time",
	                                          "client_parse_count",
	                                          "server_parse_count",
	                                          "bind_count"};
	for (int i = 0; i < 11; i++) {
		if (which == 0)
			names[n] = stats_names[i];
		else if (which == 1 || i < 8)
			names[n] = short_names[i];
		else
			names[n] = stats_avg_names[i];
		types[n++] = I;
	}
	if (which == 0)
		for (int i = 0; i < 11; i++) {
			names[n] = stats_avg_names[i];
			types[n++] = I;
		}
	struct result r;
	result_begin(&r, n, names, types);
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		if (db->removed)
			continue;
		const char *v[23];
		v[0] = db->name;
		struct pool_stats totals;
		pool_db_stats(db, &totals);
		if (which == 2)
			stats_values(&db->stats_avg, v + 1);
		else
			stats_values(&totals, v + 1);
		if (which == 0)
			stats_values(&db->stats_avg, v + 12);
		result_row(&r, v);
	}
	result_send(c, &r, "SHOW");
}

static void show_totals(struct client *c)
{
	static const char *const names[] = {"name", "value"};
	static const uint32_t types[] = {T, I};
	struct pool_stats sum = {0}, avg = {0};
	struct list_node *it;
	list_for_each(it, &all_dbs)
	{
		struct pool_db *db = container_of(it, struct pool_db, node);
		struct pool_stats s;
		pool_db_stats(db, &s);
		pool_stats_add(&sum, &s);
		pool_stats_add(&avg, &db->stats_avg);
	}
	const char *tv[11], *av[11];
	stats_values(&sum, tv);
	stats_values(&avg, av);
	struct result r;
	result_begin(&r, 2, names, types);
	for (int i = 0; i < 11; i++)
		result_row(&r, (const char *const[]){stats_names[i], tv[i]});
	for (int i = 0; i < 11; i++)
		result_row(&r, (const char *const[]){stats_avg_names[i], av[i]});
	result_send(c, &r, "SHOW");
}

static void show_users(struct client *c)
{
	static const char *const names[] = {"name",
	                                    "pool_size",
	                                    "reserve_pool_size",
	                                    "pool_mode",
	                                    "max_user_connections",
	                                    "current_connections",
	                                    "max_user_client_connections",
	                                    "current_client_connections"};
	static const uint32_t types[] = {T, T, T, T, I, I, I, I};
	struct result r;
	result_begin(&r, 8, names, types);
	struct list_node *it;
	list_for_each(it, &all_users)
	{
		struct pool_user *u = container_of(it, struct pool_user, node);
		const struct user_config *uc = config_find_user(cf, u->name);
		int max_user = uc && uc->max_user_connections >= 0 ? uc->max_user_connections
		                                                   : cf->max_user_connections;
		/* Empty where the [users] entry does not set it, as PgBouncer shows them. */
		char size[16] = "", reserve[16] = "";
		if (uc && uc->pool_size >= 0)
			snprintf(size, sizeof(size), "%d", uc->pool_size);
		if (uc && uc->reserve_pool_size >= 0)
			snprintf(reserve, sizeof(reserve), "%d", uc->reserve_pool_size);
		result_row(&r, (const char *const[]){
		                   u->name, *size ? size : NULL, *reserve ? reserve : NULL,
		                   uc && uc->pool_mode != POOL_MODE_UNSET
		                       ? config_pool_mode_name(uc->pool_mode)
		                       : NULL,
		                   num(max_user), num(u->server_count),
		                   num(config_max_user_client_connections(cf, uc)),
		                   num(u->client_count)});
	}
	result_send(c, &r, "SHOW");
}

static int count_clients(enum client_state st)
{
	int n = 0;
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		if (container_of(it, struct client, all_node)->state == st)
			n++;
	}
	return n;
}

static void show_lists(struct client *c)
{
	static const char *const names[] = {"list", "items"};
	static const uint32_t types[] = {T, I};
	int dbs = 0, pools = 0, users = 0, servers = 0, idle = 0;
	struct list_node *it;
	list_for_each(it, &all_dbs) dbs++;
	list_for_each(it, &all_users) users++;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		pools++;
		idle += (int)list_count(&p->idle_servers);
		servers += pool_server_count(p);
	}
	struct dns_stats ds;
	dns_get_stats(&ds);
	int login = count_clients(CL_LOGIN) + count_clients(CL_WELCOME);
	struct result r;
	result_begin(&r, 2, names, types);
	const char *rows[][2] = {
	    {"databases", num(dbs)},
	    {"users", num(users)},
	    {"peers", "0"},
	    {"pools", num(pools)},
	    {"peer_pools", "0"},
	    {"free_clients", "0"},
	    {"used_clients", num(client_count - login)},
	    {"login_clients", num(login)},
	    {"free_servers", "0"},
	    {"used_servers", num(servers)},
	    {"dns_names", num((long long)ds.cached)},
	    {"dns_zones", num((long long)ds.zones)},
	    {"dns_queries", num((long long)ds.queries)},
	    {"dns_pending", "0"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		result_row(&r, rows[i]);
	(void)idle;
	result_send(c, &r, "SHOW");
}

static const char *const socket_names[] = {
    "type",         "user",       "database",   "replication",      "state",
    "addr",         "port",       "local_addr", "local_port",       "connect_time",
    "request_time", "wait",       "wait_us",    "close_needed",     "ptr",
    "link",         "remote_pid", "tls",        "application_name", "prepared_statements",
    "id",           "recv_pos",   "pkt_pos",    "pkt_remain",       "send_pos",
    "send_remain",  "pkt_avail",  "send_avail"};
static const uint32_t socket_types[] = {T, T, T, T, T, T, I, T, I, T, T, I, I, I,
                                        T, T, I, T, T, I, I, I, I, I, I, I, I, I};

struct socket_view {
	const char *type, *user, *database, *state, *addr, *app;
	const char *identity; /* SHOW CLIENTS' extra column */
	int port, remote_pid;
	usec_t connect_time, request_time, wait;
	bool close_needed;
	const void *ptr, *link;
	uint64_t id;
	size_t prepared; /* prepared statements: the client's names, the server's cache */
	const struct sbuf *sb;
};

static void socket_row(struct result *r, const struct socket_view *v, bool debug)
{
	char local[64] = "", ptr[32], link[32], ct[40], rt[40], tls[128] = "";
	int local_port = 0;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (v->sb->fd >= 0 && getsockname(v->sb->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, local, sizeof(local));
			local_port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, local, sizeof(local));
			local_port = ntohs(in6->sin6_port);
		} else {
			strlcpy_s(local, "unix", sizeof(local));
		}
	}
	snprintf(ptr, sizeof(ptr), "%p", v->ptr);
	snprintf(link, sizeof(link), "%p", v->link);
	if (sbuf_is_tls(v->sb) && !v->sb->tls_handshaking)
		tls_describe(v->sb->ssl, tls, sizeof(tls));
	size_t in_len = v->sb->in ? evbuffer_get_length(v->sb->in) : 0;
	size_t out_len = v->sb->out ? evbuffer_get_length(v->sb->out) : 0;
	const char *vals[28] = {
	    v->type,
	    v->user,
	    v->database,
	    "none",
	    v->state,
	    v->addr,
	    num(v->port),
	    local,
	    num(local_port),
	    timestamp(to_wall(v->connect_time), ct, sizeof(ct)),
	    timestamp(to_wall(v->request_time ? v->request_time : v->connect_time), rt, sizeof(rt)),
	    num(v->wait / USEC_PER_SEC),
	    num(v->wait % USEC_PER_SEC),
	    yes_no01(v->close_needed),
	    ptr,
	    v->link ? link : NULL,
	    num(v->remote_pid),
	    tls,
	    v->app,
	    num((long long)v->prepared),
	    num((long long)v->id),
	    num((long long)in_len),
	    "0",
	    num((long long)v->sb->pkt_remaining),
	    "0",
	    num((long long)out_len),
	    num((long long)in_len),
	    num((long long)out_len)};
	if (!debug && v->type[0] == 'C')
		vals[21] = v->identity; /* SHOW CLIENTS: in place of SHOW SOCKETS' columns */
	result_row(r, vals);
}

static const char *client_state_name(const struct client *c)
{
	switch (c->state) {
	case CL_LOGIN:
	case CL_WELCOME:
		return "login";
	case CL_WAITING:
		return "waiting";
	case CL_IDLE:
	case CL_ACTIVE:
		return "active";
	case CL_CLOSED:
		break;
	}
	return "closed";
}

static void client_view(const struct client *cl, struct socket_view *v, usec_t now)
{
	int app = varcache_index("application_name");
	memset(v, 0, sizeof(*v));
	v->type = "C";
	v->user = cl->user ? cl->user : "";
	v->database = cl->dbname ? cl->dbname : "";
	v->state = client_state_name(cl);
	v->addr = cl->addr_str;
	v->port = cl->port;
	v->connect_time = cl->connect_time;
	v->request_time = cl->request_time;
	v->wait = cl->state == CL_WAITING ? now - cl->request_time : 0;
	v->ptr = cl;
	v->link = cl->server;
	v->app = app >= 0 && varcache_get(&cl->vars, app) ? varcache_get(&cl->vars, app) : "";
	v->id = cl->id;
	v->prepared = prepared_client_count(cl);
	v->identity = cl->identity ? cl->identity->identity : NULL;
	v->sb = &cl->sb;
}

static const char *server_state_name(const struct server *s)
{
	switch (s->state) {
	case SV_CONNECTING:
	case SV_LOGIN:
		return "login";
	case SV_IDLE:
		return "idle";
	case SV_ACTIVE:
		return "active";
	case SV_USED:
		return s->task == TASK_CHECK ? "tested" : "used";
	case SV_CLOSED:
		break;
	}
	return "closed";
}

static void server_view(const struct server *s, struct socket_view *v)
{
	int app = varcache_index("application_name");
	memset(v, 0, sizeof(*v));
	v->type = "S";
	v->user = s->pool->user->name;
	v->database = s->pool->db->name;
	v->state = server_state_name(s);
	v->addr = server_host(s, &v->port);
	v->connect_time = s->connect_time;
	v->request_time = s->request_time ? s->request_time : s->idle_since;
	v->close_needed = s->dirty;
	v->ptr = s;
	v->link = s->client;
	v->remote_pid = (int)s->backend_pid;
	v->app = app >= 0 && varcache_get(&s->vars, app) ? varcache_get(&s->vars, app) : "";
	v->id = s->id;
	v->prepared = prepared_server_count(s);
	v->sb = &s->sb;
}

/* SHOW CLIENTS: PgBouncer's columns, then who logged in with a token. */
static const char *const client_names[] = {
    "type",         "user",       "database",   "replication",      "state",
    "addr",         "port",       "local_addr", "local_port",       "connect_time",
    "request_time", "wait",       "wait_us",    "close_needed",     "ptr",
    "link",         "remote_pid", "tls",        "application_name", "prepared_statements",
    "id",           "identity"};
static const uint32_t client_types[] = {T, T, T, T, T, T, I, T, I, T, T,
                                        I, I, I, T, T, I, T, T, I, I, T};

static void show_clients(struct client *c, bool debug, bool only_active)
{
	struct result r;
	if (debug)
		result_begin(&r, 28, socket_names, socket_types);
	else
		result_begin(&r, 22, client_names, client_types);
	usec_t now = now_usec();
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *cl = container_of(it, struct client, all_node);
		if (cl->state == CL_CLOSED || (only_active && !cl->server))
			continue;
		struct socket_view v;
		client_view(cl, &v, now);
		socket_row(&r, &v, debug);
	}
	result_send(c, &r, "SHOW");
}

static void for_each_server(void (*fn)(const struct server *, void *), void *arg)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		const struct list_node *lists[] = {&p->active_servers, &p->idle_servers,
		                                   &p->used_servers, &p->new_servers};
		for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
			const struct list_node *si;
			list_for_each(si, lists[i])
			{
				fn(container_of(si, struct server, node), arg);
			}
		}
	}
}

struct server_rows {
	struct result *r;
	bool only_active;
};

static void add_server_row(const struct server *s, void *arg)
{
	struct server_rows *sr = arg;
	if (sr->only_active && !s->client)
		return;
	struct socket_view v;
	server_view(s, &v);
	socket_row(sr->r, &v, true);
}

static void show_servers(struct client *c, bool debug, bool only_active)
{
	struct result r;
	result_begin(&r, debug ? 28 : 21, socket_names, socket_types);
	struct server_rows sr = {&r, only_active};
	for_each_server(add_server_row, &sr);
	result_send(c, &r, "SHOW");
}

static void show_sockets(struct client *c, bool only_active)
{
	/* Clients, then servers, in one result set with the debug columns. */
	struct result r;
	result_begin(&r, 28, socket_names, socket_types);
	usec_t now = now_usec();
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *cl = container_of(it, struct client, all_node);
		if (cl->state == CL_CLOSED || (only_active && !cl->server))
			continue;
		struct socket_view v;
		client_view(cl, &v, now);
		socket_row(&r, &v, true);
	}
	struct server_rows sr = {&r, only_active};
	for_each_server(add_server_row, &sr);
	result_send(c, &r, "SHOW");
}

static void show_state(struct client *c)
{
	static const char *const names[] = {"key", "value"};
	static const uint32_t types[] = {T, T};
	struct result r;
	result_begin(&r, 2, names, types);
	result_row(&r, (const char *const[]){"active", pooler_paused ? "no" : "yes"});
	result_row(&r, (const char *const[]){"paused", pooler_paused ? "yes" : "no"});
	result_row(&r, (const char *const[]){"suspended", pooler_suspended ? "yes" : "no"});
	result_send(c, &r, "SHOW");
}

static void show_mem(struct client *c)
{
	static const char *const names[] = {"name", "size", "used", "free", "memtotal"};
	static const uint32_t types[] = {T, I, I, I, I};
	int dbs = 0, pools = 0, users = 0, servers = 0;
	struct list_node *it;
	list_for_each(it, &all_dbs) dbs++;
	list_for_each(it, &all_users) users++;
	list_for_each(it, &all_pools)
	{
		pools++;
		servers += pool_server_count(container_of(it, struct pool, node));
	}
	struct {
		const char *name;
		size_t size;
		int used;
	} rows[] = {
	    {"db_cache", sizeof(struct pool_db), dbs},
	    {"pool_cache", sizeof(struct pool), pools},
	    {"user_cache", sizeof(struct pool_user), users},
	    {"server_cache", sizeof(struct server), servers},
	    {"client_cache", sizeof(struct client), client_count},
	};
	struct result r;
	result_begin(&r, 5, names, types);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		result_row(&r, (const char *const[]){rows[i].name, num((long long)rows[i].size),
		                                     num(rows[i].used), "0",
		                                     num((long long)rows[i].size * rows[i].used)});
	result_send(c, &r, "SHOW");
}

struct dns_rows {
	struct result *r;
};

static void add_dns_row(void *arg, const char *host, usec_t ttl_left, const char *addrs)
{
	struct dns_rows *dr = arg;
	result_row(dr->r, (const char *const[]){host, num(ttl_left / USEC_PER_SEC), addrs});
}

static void show_dns_hosts(struct client *c)
{
	static const char *const names[] = {"hostname", "ttl", "addrs"};
	static const uint32_t types[] = {T, I, T};
	struct result r;
	result_begin(&r, 3, names, types);
	struct dns_rows dr = {&r};
	dns_foreach_host(add_dns_row, &dr);
	result_send(c, &r, "SHOW");
}

static void add_zone_row(void *arg, const char *zone, uint32_t serial, int names)
{
	struct dns_rows *dr = arg;
	result_row(dr->r, (const char *const[]){zone, num(serial), num(names)});
}

static void show_dns_zones(struct client *c)
{
	static const char *const names[] = {"zonename", "serial", "count"};
	static const uint32_t types[] = {T, I, I};
	struct result r;
	result_begin(&r, 3, names, types);
	struct dns_rows dr = {&r};
	dns_foreach_zone(add_zone_row, &dr);
	result_send(c, &r, "SHOW");
}

static void show_peers(struct client *c)
{
	static const char *const names[] = {"peer_id", "host", "port", "pool_size"};
	static const uint32_t types[] = {I, T, I, I};
	struct result r;
	result_begin(&r, 4, names, types);
	for (const struct peer_config *p = cf->peers; p; p = p->next)
		result_row(&r, (const char *const[]){
		                   num(p->id), p->host, num(p->port),
		                   num(p->pool_size > 0 ? p->pool_size : cf->default_pool_size)});
	result_send(c, &r, "SHOW");
}

static void show_peer_pools(struct client *c)
{
	static const char *const names[] = {"peer_id", "cl_active_cancel_req",
	                                    "cl_waiting_cancel_req", "sv_active_cancel",
	                                    "sv_login"};
	static const uint32_t types[] = {I, I, I, I, I};
	struct result r;
	result_begin(&r, 5, names, types);
	for (const struct peer_config *p = cf->peers; p; p = p->next) {
		struct cancel_peer_counts n = cancel_peer_counts(p->id);
		result_row(&r,
		           (const char *const[]){num(p->id), num(n.connecting + n.active),
		                                 num(n.waiting), num(n.active), num(n.connecting)});
	}
	result_send(c, &r, "SHOW");
}

/* pgsieve's own: the audit log's destination and what became of its records. */
static void show_audit(struct client *c)
{
	static const char *const names[] = {"file",    "syslog", "query_text",
	                                    "written", "lost",   "pending_bytes"};
	static const uint32_t types[] = {T, T, T, I, I, I};
	struct audit_stats st;
	audit_get_stats(&st);
	struct result r;
	result_begin(&r, 6, names, types);
	result_row(&r, (const char *const[]){cf->audit_file, cf->audit_syslog ? "yes" : "no",
	                                     cf->audit_query_text, num((long long)st.written),
	                                     num((long long)st.lost), num((long long)st.pending)});
	result_send(c, &r, "SHOW");
}

/* pgsieve's own: one row per loaded script, then the Lua state and analysis cache. */
static void show_policies(struct client *c)
{
	static const char *const names[] = {"script",   "calls",  "cached",   "denials",
	                                    "rewrites", "errors", "avg_us",   "mode",
	                                    "masks",    "masked", "approvals"};
	static const uint32_t types[] = {T, I, I, I, I, I, I, T, I, I, I};
	struct result r;
	result_begin(&r, 11, names, types);
	for (int i = 0; i < policy_script_count(); i++) {
		const struct policy_script_stats *st = policy_script_stats(i);
		uint64_t masks, masked;
		masking_script_stats(policy_script_name(i), &masks, &masked);
		result_row(&r, (const char *const[]){
		                   policy_script_name(i), num((long long)st->calls),
		                   num((long long)st->cached), num((long long)st->denials),
		                   num((long long)st->rewrites), num((long long)st->errors),
		                   num(st->calls ? (long long)(st->usec / st->calls) : 0),
		                   cf->policy_mode, num((long long)masks), num((long long)masked),
		                   num((long long)st->approvals)});
	}
	result_send(c, &r, "SHOW");
}

/* pgsieve's own: the token logins' key set, its last load or fetch, and the verdicts. */
static void show_oidc(struct client *c)
{
	static const char *const names[] = {"source",     "keys",    "loaded_at",
	                                    "fetched_at", "result",  "fetches",
	                                    "accepted",   "refused", "waiting"};
	static const uint32_t types[] = {T, I, T, T, T, I, I, I, I};
	struct oidc_status st;
	oidc_get_status(&st);
	char loaded[40] = "", fetched[40] = "";
	if (st.loaded_at)
		timestamp(st.loaded_at, loaded, sizeof(loaded));
	if (st.fetched_at)
		timestamp(st.fetched_at, fetched, sizeof(fetched));
	struct result r;
	result_begin(&r, 9, names, types);
	result_row(&r, (const char *const[]){
	                   st.source, num((long long)st.keys), st.loaded_at ? loaded : NULL,
	                   st.fetched_at ? fetched : NULL, st.result, num((long long)st.fetches),
	                   num((long long)st.accepted), num((long long)st.refused),
	                   num((long long)st.waiting)});
	result_send(c, &r, "SHOW");
}

/* pgsieve's own: statements held for a person's approval, oldest first. */
struct approvals_rows {
	struct result *r;
	usec_t now_wall;
};

static void approval_row(void *arg, const struct approval_info *a)
{
	struct approvals_rows *rows = arg;
	char requested[40], expires[40];
	long long waiting = (long long)((rows->now_wall - a->requested_at) / USEC_PER_SEC);
	result_row(rows->r,
	           (const char *const[]){num((long long)a->id), a->database, a->user, a->identity,
	                                 a->client_addr, a->fingerprint, a->statement, a->reason,
	                                 timestamp(a->requested_at, requested, sizeof(requested)),
	                                 num(waiting < 0 ? 0 : waiting),
	                                 timestamp(a->expires_at, expires, sizeof(expires)),
	                                 a->approvers, a->script, num((long long)a->session)});
}

static void show_approvals(struct client *c)
{
	static const char *const names[] = {
	    "id",          "database",  "user",   "identity",     "client_addr",
	    "fingerprint", "statement", "reason", "requested_at", "waiting_seconds",
	    "expires_at",  "approvers", "script", "session"};
	static const uint32_t types[] = {I, T, T, T, T, T, T, T, T, I, T, T, T, I};
	struct result r;
	result_begin(&r, 14, names, types);
	struct approvals_rows rows = {&r, wall_usec()};
	approvals_foreach(approval_row, &rows);
	result_send(c, &r, "SHOW");
}

static void grant_row(void *arg, const struct approval_grant *g)
{
	struct result *r = arg;
	char granted[40], expires[40];
	result_row(r, (const char *const[]){num((long long)g->id), g->database, g->principal,
	                                    g->fingerprint, g->statement, g->granted_by,
	                                    num((long long)g->approval_id),
	                                    timestamp(g->granted_at, granted, sizeof(granted)),
	                                    timestamp(g->expires_at, expires, sizeof(expires)),
	                                    num((long long)g->uses)});
}

/* pgsieve's own: the just-in-time grants still in force. */
static void show_grants(struct client *c)
{
	static const char *const names[] = {"id",         "database",   "principal", "fingerprint",
	                                    "statement",  "granted_by", "approval",  "granted_at",
	                                    "expires_at", "uses"};
	static const uint32_t types[] = {I, T, T, T, T, T, I, T, T, I};
	struct result r;
	result_begin(&r, 10, names, types);
	approvals_foreach_grant(grant_row, &r);
	result_send(c, &r, "SHOW");
}

static bool admin_show(struct client *c, const char *what)
{
	if (strcasecmp(what, "databases") == 0)
		show_databases(c);
	else if (strcasecmp(what, "pools") == 0)
		show_pools(c);
	else if (strcasecmp(what, "stats") == 0)
		show_stats(c, 0);
	else if (strcasecmp(what, "stats_totals") == 0)
		show_stats(c, 1);
	else if (strcasecmp(what, "stats_averages") == 0)
		show_stats(c, 2);
	else if (strcasecmp(what, "totals") == 0)
		show_totals(c);
	else if (strcasecmp(what, "users") == 0)
		show_users(c);
	else if (strcasecmp(what, "lists") == 0)
		show_lists(c);
	else if (strcasecmp(what, "clients") == 0)
		show_clients(c, false, false);
	else if (strcasecmp(what, "servers") == 0)
		show_servers(c, false, false);
	else if (strcasecmp(what, "sockets") == 0)
		show_sockets(c, false);
	else if (strcasecmp(what, "active_sockets") == 0)
		show_sockets(c, true);
	else if (strcasecmp(what, "state") == 0)
		show_state(c);
	else if (strcasecmp(what, "mem") == 0)
		show_mem(c);
	else if (strcasecmp(what, "policies") == 0)
		show_policies(c);
	else if (strcasecmp(what, "audit") == 0)
		show_audit(c);
	else if (strcasecmp(what, "oidc") == 0)
		show_oidc(c);
	else if (strcasecmp(what, "dns_hosts") == 0)
		show_dns_hosts(c);
	else if (strcasecmp(what, "dns_zones") == 0)
		show_dns_zones(c);
	else if (strcasecmp(what, "peers") == 0)
		show_peers(c);
	else if (strcasecmp(what, "peer_pools") == 0)
		show_peer_pools(c);
	else if (strcasecmp(what, "fds") == 0)
		takeover_show_fds(c);
	else
		return false;
	return true;
}

#undef T
#undef I

/* Splits "cmd arg arg" (already lowercased where names are case-insensitive). */
static int split_words(char *s, char **words, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *w = strtok_r(s, " \t\r\n", &save); w && n < max;
	     w = strtok_r(NULL, " \t\r\n", &save))
		words[n++] = w;
	return n;
}

/* An approval or grant id: a positive decimal number. */
static bool parse_id(const char *s, uint64_t *id)
{
	if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
		return false;
	*id = strtoull(s, NULL, 10);
	return *id > 0;
}

/* Takes one word off *p (NULL at the end). */
static char *next_word(char **p)
{
	char *s = *p;
	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return NULL;
	char *w = s;
	while (*s && !isspace((unsigned char)*s))
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return w;
}

/* The rest of a command: trimmed, and unquoted when written as a '' literal. */
static char *rest_of(char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	size_t n = strlen(p);
	if (n >= 2 && p[0] == '\'' && p[n - 1] == '\'') {
		p[n - 1] = '\0';
		p++;
		/* '' inside the literal is one quote */
		char *w = p;
		for (char *r = p; *r; r++) {
			*w++ = *r;
			if (r[0] == '\'' && r[1] == '\'')
				r++;
		}
		*w = '\0';
	}
	return p;
}

/* "10min", "90 s", "2 hours": a duration as settings take it, with long unit names too. */
static bool parse_interval(const char *text, usec_t *out, char **why)
{
	static const struct {
		const char *word, *unit;
	} words[] = {{"second", "s"},   {"seconds", "s"},   {"sec", "s"},    {"secs", "s"},
	             {"minute", "min"}, {"minutes", "min"}, {"mins", "min"}, {"hour", "h"},
	             {"hours", "h"},    {"day", "d"},       {"days", "d"}};
	char buf[64];
	strlcpy_s(buf, text, sizeof(buf));
	size_t n = strspn(buf, "0123456789. ");
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcasecmp(buf + n, words[i].word) == 0)
			snprintf(buf + n, sizeof(buf) - n, "%s", words[i].unit);
	if (!config_parse_time(buf, out, why))
		return false;
	if (*out <= 0 || *out > APPROVALS_MAX_GRANT) {
		*why = xstrdup("the interval must be longer than 0 and at most 30 days");
		return false;
	}
	return true;
}

static void answer_error(struct client *c, enum approvals_status st, uint64_t id)
{
	switch (st) {
	case APPROVALS_UNKNOWN:
		send_error(c, "42704", "no statement waits for approval %llu",
		           (unsigned long long)id);
		break;
	case APPROVALS_SELF:
		send_error(c, "42501", "approval %llu: you can not answer for your own statement",
		           (unsigned long long)id);
		break;
	case APPROVALS_NOT_APPROVER:
		send_error(c, "42501", "approval %llu: you are not among its approvers",
		           (unsigned long long)id);
		break;
	case APPROVALS_FULL:
		send_error(c, "54000", "too many grants (%d): revoke some first",
		           APPROVALS_MAX_GRANTS);
		break;
	case APPROVALS_OK:
		break;
	}
}

/* APPROVE id [FOR interval]; DENY id [reason]; REVOKE GRANT id. */
static void cmd_approval(struct client *c, const char *verb, char *rest)
{
	struct approver who = {c->user, c->identity ? c->identity->identity : NULL};
	if (strcasecmp(verb, "revoke") == 0) {
		char *what = next_word(&rest), *ids = next_word(&rest);
		uint64_t id;
		if (!what || strcasecmp(what, "grant") != 0 || !parse_id(ids, &id) ||
		    next_word(&rest)) {
			send_error(c, "42601", "syntax: REVOKE GRANT <id>");
			return;
		}
		if (!approvals_revoke(id, c->user)) {
			send_error(c, "42704", "no grant %llu in force", (unsigned long long)id);
			return;
		}
		send_complete(c, "REVOKE GRANT");
		return;
	}
	bool approve = strcasecmp(verb, "approve") == 0;
	char *ids = next_word(&rest);
	uint64_t id;
	if (!parse_id(ids, &id)) {
		send_error(c, "42601",
		           approve ? "syntax: APPROVE <id> [FOR <interval>]"
		                   : "syntax: DENY <id> [<reason>]");
		return;
	}
	usec_t grant_for = 0;
	const char *reason = NULL;
	if (approve) {
		char *kw = next_word(&rest);
		if (kw && strcasecmp(kw, "for") != 0) {
			send_error(c, "42601", "syntax: APPROVE <id> [FOR <interval>]");
			return;
		}
		if (kw) {
			char *why = NULL;
			if (!parse_interval(rest_of(rest), &grant_for, &why)) {
				send_error(c, "22007", "APPROVE %llu FOR: %s",
				           (unsigned long long)id, why);
				free(why);
				return;
			}
		}
	} else {
		reason = rest_of(rest);
		if (!*reason)
			reason = NULL;
	}
	uint64_t grant = 0;
	enum approvals_status st = approvals_answer(id, approve, &who, reason, grant_for, &grant);
	if (st != APPROVALS_OK) {
		answer_error(c, st, id);
		return;
	}
	struct pktbuf pb;
	pktbuf_init(&pb);
	if (grant) {
		char *msg =
		    xasprintf("grant %llu: the same statement from the same identity runs "
		              "without approval for %lld s",
		              (unsigned long long)grant, (long long)(grant_for / USEC_PER_SEC));
		proto_build_notice(&pb, "00000", msg);
		free(msg);
	}
	complete(&pb, approve ? "APPROVE" : "DENY");
	sbuf_send(&c->sb, pb.data, pb.len);
	pktbuf_free(&pb);
}

static void run_command(struct client *c, const char *sql)
{
	char buf[ADMIN_MAX_QUERY];
	strlcpy_s(buf, sql, sizeof(buf));
	/* A trailing semicolon and whitespace are allowed, as in PgBouncer. */
	size_t len = strlen(buf);
	while (len && (isspace((unsigned char)buf[len - 1]) || buf[len - 1] == ';'))
		buf[--len] = '\0';
	char *words[4];
	int n = split_words(buf, words, 4);
	if (n == 0) {
		struct pktbuf pb;
		pktbuf_init(&pb);
		pktbuf_begin(&pb, 'I'); /* EmptyQueryResponse */
		pktbuf_end(&pb);
		proto_build_ready(&pb, 'I');
		sbuf_send(&c->sb, pb.data, pb.len);
		pktbuf_free(&pb);
		return;
	}
	const char *verb = words[0];
	const char *what = strcasecmp(verb, "show") == 0 && n > 1 ? words[1] : "";
	bool approval_command = strcasecmp(verb, "approve") == 0 || strcasecmp(verb, "deny") == 0 ||
	                        strcasecmp(verb, "revoke") == 0 ||
	                        strcasecmp(what, "approvals") == 0 ||
	                        strcasecmp(what, "grants") == 0;
	if (approval_command) {
		/* Statement texts and their answers: for approvers, not for every stats user. */
		if (!may_approve(c)) {
			send_error(c, "42501",
			           "approval access needed (admin_users or approval_users)");
			return;
		}
		if (strcasecmp(what, "approvals") == 0 && n == 2) {
			show_approvals(c);
		} else if (strcasecmp(what, "grants") == 0 && n == 2) {
			show_grants(c);
		} else if (*what) {
			send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", sql);
		} else {
			/* Parsed again from the text: a reason or an interval has spaces in it. */
			char line[ADMIN_MAX_QUERY];
			strlcpy_s(line, sql, sizeof(line));
			size_t end = strlen(line);
			while (end &&
			       (isspace((unsigned char)line[end - 1]) || line[end - 1] == ';'))
				line[--end] = '\0';
			char *rest = line;
			next_word(&rest);
			cmd_approval(c, verb, rest);
		}
		return;
	}
	if (approver_only(c)) {
		send_error(
		    c, "42501",
		    "approval_users may only run SHOW APPROVALS, SHOW GRANTS, APPROVE, DENY and "
		    "REVOKE GRANT");
		return;
	}
	if (strcasecmp(verb, "show") == 0) {
		if (strcasecmp(what, "help") == 0)
			show_help(c);
		else if (strcasecmp(what, "version") == 0)
			show_version(c);
		else if (strcasecmp(what, "config") == 0)
			show_config(c);
		else if (strcasecmp(what, "fds") == 0 && !may_control(c))
			send_error(c, "08P01", "admin access needed"); /* it shows cancel keys */
		else if (!admin_show(c, what))
			send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", sql);
		return;
	}
	if (!may_control(c)) {
		send_error(c, "08P01", "admin access needed");
		return;
	}
	const char *arg = n > 1 ? words[1] : NULL;
	if (strcasecmp(verb, "pause") == 0)
		cmd_pause(c, arg);
	else if (strcasecmp(verb, "resume") == 0)
		cmd_resume(c, arg);
	else if (strcasecmp(verb, "reload") == 0)
		cmd_reload(c);
	else if (strcasecmp(verb, "shutdown") == 0)
		cmd_shutdown(c, arg);
	else if (strcasecmp(verb, "reconnect") == 0)
		cmd_reconnect(c, arg);
	else if (strcasecmp(verb, "suspend") == 0 && !arg)
		cmd_suspend(c);
	else if (strcasecmp(verb, "wait_close") == 0)
		cmd_wait_close(c, arg);
	else if (strcasecmp(verb, "kill") == 0)
		cmd_kill(c, arg);
	else if (strcasecmp(verb, "kill_client") == 0)
		cmd_kill_client(c, arg);
	else if (strcasecmp(verb, "disable") == 0)
		cmd_enable(c, arg, false);
	else if (strcasecmp(verb, "enable") == 0)
		cmd_enable(c, arg, true);
	else if (strcasecmp(verb, "set") == 0)
		cmd_set(c, sql);
	else
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", sql);
}

void admin_login(struct client *c)
{
	c->admin = true;
	c->state = CL_IDLE;
	list_del(&c->node);
	list_append(&admin_clients, &c->node);
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_auth(&pb, AUTH_REQ_OK, NULL, 0);
	/* What a console client needs to know; the version tells tools who answers. */
	proto_build_parameter_status(&pb, "server_version", "1.25.0/bouncer");
	proto_build_parameter_status(&pb, "client_encoding", "UTF8");
	proto_build_parameter_status(&pb, "server_encoding", "UTF8");
	proto_build_parameter_status(&pb, "DateStyle", "ISO");
	proto_build_parameter_status(&pb, "TimeZone", "UTC");
	proto_build_parameter_status(&pb, "standard_conforming_strings", "on");
	proto_build_parameter_status(&pb, "integer_datetimes", "on");
	cancel_assign_key(c);
	proto_build_backend_key(&pb, c->cancel_pid, c->cancel_key);
	proto_build_ready(&pb, 'I');
	if (sbuf_send(&c->sb, pb.data, pb.len))
		sbuf_resume(&c->sb);
	pktbuf_free(&pb);
}

bool admin_process(struct client *c)
{
	struct evbuffer *in = c->sb.in;
	while (!c->admin_waiting) {
		uint8_t type;
		uint32_t len;
		const char *err;
		enum proto_status st = sbuf_peek_header(in, ADMIN_MAX_QUERY, &type, &len, &err);
		if (st == PROTO_INCOMPLETE)
			return true;
		if (st == PROTO_BAD) {
			client_fail(c, "08P01", "%s", err);
			return false;
		}
		if (evbuffer_get_length(in) < PROTO_HEADER_LEN + len)
			return true;
		const uint8_t *msg = evbuffer_pullup(in, PROTO_HEADER_LEN + len);
		char query[ADMIN_MAX_QUERY + 1];
		memcpy(query, msg + PROTO_HEADER_LEN, len);
		query[len] = '\0';
		evbuffer_drain(in, PROTO_HEADER_LEN + len);
		switch (type) {
		case 'Q':
			if (memchr(query, '\0', len) != query + len - 1 && len > 0) {
				client_fail(c, "08P01", "malformed query message");
				return false;
			}
			cl_log(LOG_LVL_DEBUG, c, "console: %s", query);
			run_command(c, query);
			break;
		case 'X':
			client_close(c, "client close request");
			return false;
		default:
			/* As PgBouncer: the console speaks the simple protocol only. */
			client_fail(c, "08P01", "admin console supports only simple queries");
			return false;
		}
	}
	if (c->admin_waiting)
		sbuf_pause(&c->sb);
	return true;
}

void admin_tick(void)
{
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &admin_clients)
	{
		struct client *c = container_of(it, struct client, node);
		const char *tag;
		switch (c->admin_waiting) {
		case ADMIN_WAIT_PAUSE:
			if (!pause_done(c->admin_wait_db))
				continue;
			tag = "PAUSE";
			break;
		case ADMIN_WAIT_SUSPEND:
			if (!takeover_suspend_settled())
				continue;
			tag = "SUSPEND";
			break;
		case ADMIN_WAIT_CLOSE: {
			struct pool_db *db =
			    c->admin_wait_db ? pool_db_find(c->admin_wait_db) : NULL;
			if ((!c->admin_wait_db || db) && pool_dirty_servers(db) > 0)
				continue;
			tag = "WAIT_CLOSE";
			break;
		}
		default:
			continue;
		}
		c->admin_waiting = ADMIN_WAIT_NONE;
		FREE_AND_NULL(c->admin_wait_db);
		send_complete(c, tag);
		sbuf_resume(&c->sb);
	}
}
