/*
 * Timeouts. The client-facing ones end the client with PgBouncer's
 * message, because scripts and monitoring grep for those words.
 */
#include "janitor.h"
#include "admin.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "pktbuf.h"
#include "pool.h"
#include "pooler.h"
#include "prepared.h"
#include "proto.h"
#include "server.h"

#include <event2/event.h>
#include <string.h>

static struct event *tick;
static usec_t last_stats_time;
static struct pool_stats last_stats;

/* The "stats:" line PgBouncer writes every stats_period, over all pools. */
static void log_stats(usec_t now)
{
	if (!last_stats_time) {
		last_stats_time = now;
		return;
	}
	if (cf->stats_period <= 0 || now - last_stats_time < cf->stats_period)
		return;
	struct pool_stats sum = {0};
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		const struct pool_stats *ps = &container_of(it, struct pool, node)->stats;
		sum.xact_count += ps->xact_count;
		sum.query_count += ps->query_count;
		sum.bytes_received += ps->bytes_received;
		sum.bytes_sent += ps->bytes_sent;
		sum.xact_time += ps->xact_time;
		sum.query_time += ps->query_time;
		sum.wait_time += ps->wait_time;
	}
	if (sum.xact_count < last_stats.xact_count || sum.query_count < last_stats.query_count ||
	    sum.bytes_received < last_stats.bytes_received ||
	    sum.bytes_sent < last_stats.bytes_sent || sum.xact_time < last_stats.xact_time ||
	    sum.query_time < last_stats.query_time || sum.wait_time < last_stats.wait_time)
		memset(&last_stats, 0,
		       sizeof(last_stats)); /* a dropped autodb pool took its totals */
	double secs = (double)(now - last_stats_time) / USEC_PER_SEC;
	uint64_t xacts = sum.xact_count - last_stats.xact_count;
	uint64_t queries = sum.query_count - last_stats.query_count;
	if (cf->log_stats)
		log_info("stats: %.0f xacts/s, %.0f queries/s, in %.0f B/s, out %.0f B/s, "
		         "xact %lld us, query %lld us, wait %lld us",
		         (double)xacts / secs, (double)queries / secs,
		         (double)(sum.bytes_received - last_stats.bytes_received) / secs,
		         (double)(sum.bytes_sent - last_stats.bytes_sent) / secs,
		         xacts ? (long long)((sum.xact_time - last_stats.xact_time) / (usec_t)xacts)
		               : 0LL,
		         queries ? (long long)((sum.query_time - last_stats.query_time) /
		                               (usec_t)queries)
		                 : 0LL,
		         (long long)(sum.wait_time - last_stats.wait_time));
	last_stats = sum;
	last_stats_time = now;
}

/*
 * Ends a client and its server together for a timeout. A query still
 * running is cancelled first: closing the socket alone would leave it
 * running on the server until it next writes.
 */
static void end_linked(struct client *c, struct server *s, const char *reason)
{
	s->client = NULL;
	c->server = NULL;
	if (s->expect_ready > 0)
		server_send_cancel(s);
	server_close(s, reason);
	client_fail(c, "08P01", "%s", reason);
}

/* The client's own [users] entry: its idle and wait timeouts are its own. */
static const struct user_config *client_user(const struct client *c)
{
	return cf->users && c->user ? config_find_user(cf, c->user) : NULL;
}

static usec_t client_idle_limit(const struct client *c)
{
	const struct user_config *u = client_user(c);
	return config_user_time(u ? u->client_idle_timeout : 0, cf->client_idle_timeout);
}

/* PgBouncer 1.25's text, sent once per client connection. */
static void notify_waiting(struct client *c, usec_t now)
{
	if (cf->query_wait_notify <= 0 || c->wait_notified ||
	    now - c->request_time <= cf->query_wait_notify)
		return;
	c->wait_notified = true;
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_notice(&pb, "00000",
	                   "No server connection available in postgres backend, client being "
	                   "queued");
	if (!sbuf_send(&c->sb, pb.data, pb.len))
		cl_log(LOG_LVL_WARNING, c, "could not send the queueing notice");
	pktbuf_free(&pb);
}

/*
 * server_fast_close: RECONNECT or a RELOAD that moved the database marked
 * this session's server dirty. Once its transaction is over and the client
 * has sent nothing since (xact_start is cleared at an idle ReadyForQuery
 * and set by the next message), close both, so the client notices that
 * its session ended instead of carrying on against the old server.
 */
static bool fast_close_due(const struct client *c, const struct server *s)
{
	return cf->server_fast_close && s->dirty && pool_mode_of(s->pool) == POOL_MODE_SESSION &&
	       s->expect_ready == 0 && s->tx_status == 'I' && c->xact_start == 0 &&
	       !prepared_busy(s);
}

static void check_client(struct client *c, usec_t now)
{
	struct server *s = c->server;
	usec_t idle_limit;
	switch (c->state) {
	case CL_LOGIN:
	case CL_WELCOME:
		if (cf->client_login_timeout > 0 &&
		    now - c->connect_time > cf->client_login_timeout)
			client_fail(c, "08P01",
			            "client_login_timeout (server down or wrong password?)");
		return;
	case CL_WAITING: {
		usec_t wait = config_query_wait_timeout(cf, c->pool ? &c->pool->db->conf : NULL,
		                                        client_user(c));
		if (wait > 0 && now - c->request_time > wait)
			client_fail(c, "08P01", "query_wait_timeout");
		else
			notify_waiting(c, now);
		return;
	}
	case CL_IDLE:
		idle_limit = client_idle_limit(c);
		/* A client held for approval waits for us, not the other way round. */
		if (idle_limit > 0 && !c->approval_id && now - c->last_activity > idle_limit)
			client_fail(c, "08P01", "client_idle_timeout");
		return;
	case CL_ACTIVE:
		break;
	case CL_CLOSED:
		return;
	}
	if (!s || s->task != TASK_NONE)
		return;
	if (fast_close_due(c, s)) {
		end_linked(c, s, "database configuration changed");
		return;
	}
	/* Server-side timeouts follow the pool's login user, as in PgBouncer. */
	const struct user_config *pu = cf->users ? config_find_user(cf, s->pool->user->name) : NULL;
	usec_t xact_limit =
	    config_user_time(pu ? pu->transaction_timeout : 0, cf->transaction_timeout);
	if (xact_limit > 0 && c->xact_start && now - c->xact_start > xact_limit) {
		end_linked(c, s, "transaction timeout");
		return;
	}
	if (s->expect_ready > 0) {
		usec_t query_limit =
		    config_user_time(pu ? pu->query_timeout : 0, cf->query_timeout);
		if (query_limit > 0 && s->request_time && now - s->request_time > query_limit)
			end_linked(c, s, "query timeout");
		return;
	}
	if (s->tx_status != 'I') {
		usec_t itx_limit = config_user_time(pu ? pu->idle_transaction_timeout : 0,
		                                    cf->idle_transaction_timeout);
		if (itx_limit > 0 && now - s->ready_time > itx_limit)
			end_linked(c, s, "idle transaction timeout");
		return;
	}
	idle_limit = client_idle_limit(c);
	if (idle_limit > 0 && !c->approval_id && now - c->last_activity > idle_limit)
		client_fail(c, "08P01", "client_idle_timeout");
}

static void check_servers(struct pool *pool, usec_t now)
{
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &pool->idle_servers)
	{
		struct server *s = container_of(it, struct server, node);
		if (pool_server_expired(s, now))
			server_close(s, "server lifetime over");
		else if (cf->server_idle_timeout > 0 &&
		         now - s->idle_since > cf->server_idle_timeout)
			server_close(s, "server idle timeout");
	}
	list_for_each_safe(it, tmp, &pool->new_servers)
	{
		struct server *s = container_of(it, struct server, node);
		/* Per host of a host list: a timeout moves on to the next one. */
		if (cf->server_connect_timeout > 0 &&
		    now - s->attempt_time > cf->server_connect_timeout)
			server_connect_timed_out(s);
	}
}

static void janitor_run(void)
{
	usec_t now = now_usec();
	struct list_node *it, *tmp;
	if (pooler_suspended) {
		/* Nothing moves while suspended: no timeouts, no new server connections. */
		admin_tick();
		pooler_check_shutdown();
		return;
	}
	list_for_each_safe(it, tmp, &all_clients)
	{
		check_client(container_of(it, struct client, all_node), now);
	}
	list_for_each(it, &all_pools)
	{
		struct pool *pool = container_of(it, struct pool, node);
		check_servers(pool, now);
		pool_maintain(pool);
		pool_dispatch(pool);
	}
	pool_gc_autodb(now);
	pool_gc_idle(now);
	pool_fill_forced(now);
	admin_tick();
	pool_update_averages(now);
	log_stats(now);
	pooler_check_shutdown();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	janitor_run();
}

bool janitor_start(struct event_base *base)
{
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	if (!tick)
		return false;
	struct timeval tv = {0, 200000};
	return event_add(tick, &tv) == 0;
}

void janitor_stop(void)
{
	if (tick)
		event_free(tick);
	tick = NULL;
}
