/*
 * A Prometheus endpoint (metrics_listen = host:port, off by default):
 * GET /metrics answers the pool, client, server and statement counters in
 * the Prometheus text format, from libevent's HTTP server in the pooler's
 * own loop. Nothing here blocks; a scrape is a walk over the pools.
 */
#ifndef PGSIEVE_METRICS_H
#define PGSIEVE_METRICS_H

#include <stdbool.h>

struct event_base;

bool metrics_start(struct event_base *base, const char *listen, char **err);
void metrics_stop(void);

#endif
