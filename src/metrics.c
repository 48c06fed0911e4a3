/*
 * Prometheus text format, version 0.0.4: a HELP and a TYPE line per
 * family, then one sample per line. Counters end in _total and only grow
 * while a pool lives; label values are escaped as the format requires.
 */
#include "metrics.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "pooler.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct evhttp *http;

/* Label values: backslash, double quote and newline are escaped. */
static void put_label(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pool_sample(struct evbuffer *b, const char *name, const struct pool *p,
                        const char *state, double value)
{
	evbuffer_add_printf(b, "%s{database=\"", name);
	put_label(b, p->db->name);
	evbuffer_add(b, "\",user=\"", 8);
	put_label(b, p->user->name);
	if (state)
		evbuffer_add_printf(b, "\",state=\"%s", state);
	evbuffer_add_printf(b, "\"} %.17g\n", value);
}

static void db_sample(struct evbuffer *b, const char *name, const struct pool_db *db, double v)
{
	evbuffer_add_printf(b, "%s{database=\"", name);
	put_label(b, db->name);
	evbuffer_add_printf(b, "\"} %.17g\n", v);
}

static void render(struct evbuffer *b)
{
	family(b, "pgsieve_up", "gauge", "1 while the pooler runs.");
	evbuffer_add_printf(b, "pgsieve_up 1\n");
	family(b, "pgsieve_paused", "gauge", "1 while PAUSE (or SIGUSR1) is in force.");
	evbuffer_add_printf(b, "pgsieve_paused %d\n", pooler_paused ? 1 : 0);
	family(b, "pgsieve_client_connections", "gauge", "Client connections, all states.");
	evbuffer_add_printf(b, "pgsieve_client_connections %d\n", client_count);
	family(b, "pgsieve_max_client_connections", "gauge", "The max_client_conn setting.");
	evbuffer_add_printf(b, "pgsieve_max_client_connections %d\n", cf->max_client_conn);

	struct list_node *it;
	family(b, "pgsieve_pool_clients", "gauge", "Clients of a pool by state (SHOW POOLS cl_*).");
	list_for_each(it, &all_pools)
	{
		const struct pool *p = container_of(it, struct pool, node);
		size_t waiting = 0;
		const struct list_node *ci;
		list_for_each(ci, &p->waiting_clients)
		{
			if (container_of(ci, struct client, node)->state == CL_WAITING)
				waiting++;
		}
		size_t active =
		    list_count(&p->active_clients) + list_count(&p->waiting_clients) - waiting;
		pool_sample(b, "pgsieve_pool_clients", p, "active", (double)active);
		pool_sample(b, "pgsieve_pool_clients", p, "waiting", (double)waiting);
	}
	family(b, "pgsieve_pool_servers", "gauge", "Server connections of a pool by state (sv_*).");
	list_for_each(it, &all_pools)
	{
		const struct pool *p = container_of(it, struct pool, node);
		pool_sample(b, "pgsieve_pool_servers", p, "active",
		            (double)list_count(&p->active_servers));
		pool_sample(b, "pgsieve_pool_servers", p, "idle",
		            (double)list_count(&p->idle_servers));
		pool_sample(b, "pgsieve_pool_servers", p, "used",
		            (double)list_count(&p->used_servers));
		pool_sample(b, "pgsieve_pool_servers", p, "login",
		            (double)list_count(&p->new_servers));
	}

	static const struct {
		const char *name, *help;
		size_t offset;
		bool usec;
	} counters[] = {
	    {"pgsieve_transactions_total", "Transactions (SHOW STATS total_xact_count).",
	     offsetof(struct pool_stats, xact_count), false},
	    {"pgsieve_queries_total", "Queries (total_query_count).",
	     offsetof(struct pool_stats, query_count), false},
	    {"pgsieve_server_assignments_total", "Server connections handed to clients.",
	     offsetof(struct pool_stats, server_assignment_count), false},
	    {"pgsieve_received_bytes_total", "Bytes from clients.",
	     offsetof(struct pool_stats, bytes_received), false},
	    {"pgsieve_sent_bytes_total", "Bytes to clients.",
	     offsetof(struct pool_stats, bytes_sent), false},
	    {"pgsieve_transaction_seconds_total", "Time spent in transactions.",
	     offsetof(struct pool_stats, xact_time), true},
	    {"pgsieve_query_seconds_total", "Time spent in queries.",
	     offsetof(struct pool_stats, query_time), true},
	    {"pgsieve_wait_seconds_total", "Time clients waited for a server.",
	     offsetof(struct pool_stats, wait_time), true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++) {
		family(b, counters[i].name, "counter", counters[i].help);
		list_for_each(it, &all_dbs)
		{
			const struct pool_db *db = container_of(it, struct pool_db, node);
			if (db->removed)
				continue;
			struct pool_stats s;
			pool_db_stats(db, &s);
			const char *field = (const char *)&s + counters[i].offset;
			double v;
			if (counters[i].usec) {
				usec_t t;
				memcpy(&t, field, sizeof(t));
				v = (double)t / USEC_PER_SEC;
			} else {
				uint64_t n;
				memcpy(&n, field, sizeof(n));
				v = (double)n;
			}
			db_sample(b, counters[i].name, db, v);
		}
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b)
		die("out of memory building metrics");
	render(b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void on_other(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 404, "try /metrics");
}

bool metrics_start(struct event_base *base, const char *listen, char **err)
{
	const char *colon = strrchr(listen, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || colon == listen || *end || port < 1 || port > 65535) {
		*err = xasprintf("metrics_listen = %s: expected host:port", listen);
		return false;
	}
	char *host = xstrndup(listen, (size_t)(colon - listen));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:9127 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	http = evhttp_new(base);
	if (!http)
		die("out of memory starting the metrics endpoint");
	/* A scrape is a GET with no body: small bounds, and idle connections do not linger. */
	evhttp_set_max_headers_size(http, 8192);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_timeout(http, 10);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET);
	evhttp_set_cb(http, "/metrics", on_request, NULL);
	evhttp_set_gencb(http, on_other, NULL);
	if (!evhttp_bind_socket_with_handle(http, host, (uint16_t)port)) {
		*err = xasprintf("metrics_listen = %s: could not listen", listen);
		free(host);
		metrics_stop();
		return false;
	}
	log_info("metrics on http://%s/metrics", listen);
	free(host);
	return true;
}

void metrics_stop(void)
{
	if (http)
		evhttp_free(http);
	http = NULL;
}
