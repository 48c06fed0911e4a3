/*
 * Asynchronous name resolution for database hosts, on c-ares driven by the
 * process's libevent loop. Nothing here blocks: c-ares sockets are watched
 * by events, its retransmissions by one timer, and /etc/hosts is read by
 * c-ares itself. Results are cached per host name (see dns.c for the
 * rules); concurrent requests for one name share one query.
 *
 * Callbacks always run later from the loop, never inside dns_resolve, so a
 * caller may resolve while holding any state it likes.
 */
#ifndef PGSIEVE_DNS_H
#define PGSIEVE_DNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

struct event_base;
struct dns_request;

/* At most this many addresses are returned for one name. */
#define DNS_MAX_ADDRS 32
/* A query not answered in this time fails its waiters with a timeout. */
#define DNS_QUERY_DEADLINE (10 * USEC_PER_SEC)

/*
 * addrs: the resolved addresses (IPv4 and IPv6, port already set to the
 * requested port), n = count; err = NULL on success or a message. addrs
 * and err are valid only during the call.
 */
typedef void (*dns_callback)(void *arg, const struct sockaddr_storage *addrs, int n,
                             const char *err);

/*
 * Sets up c-ares on base. max_ttl caps how long an answer is cached (the
 * record's own TTL is used when shorter; 0 = no caching); nxdomain_ttl is
 * how long a failure is cached (0 = not at all). resolv_conf NULL reads
 * the system's. Returns false with *err (to free) on failure.
 */
bool dns_init(struct event_base *base, usec_t max_ttl, usec_t nxdomain_ttl, const char *resolv_conf,
              char **err) MUST_CHECK;

/* Changes the cache lifetimes (on RELOAD); a lower limit also shortens cached entries. */
void dns_configure(usec_t max_ttl, usec_t nxdomain_ttl);

/*
 * Resolves host (a name or a numeric IPv4/IPv6 address) and calls cb(arg,
 * ...) exactly once, later, from the loop, unless cancelled first. The
 * handle is freed right after the callback returns; dns_cancel on it from
 * inside its own callback is allowed and does nothing. Returns NULL only
 * if dns_init has not succeeded (a programming error, logged).
 */
struct dns_request *dns_resolve(const char *host, int port, dns_callback cb, void *arg);

/* After this the callback is never called; req is freed. NULL is ignored. */
void dns_cancel(struct dns_request *req);

/*
 * dns_zone_check_period: every period, the SOA serial of each zone of a
 * cached name is checked; a changed serial makes the zone's names be
 * looked up again. 0 = off. Takes effect at once (RELOAD).
 */
void dns_set_zone_check_period(usec_t period);

/* For SHOW DNS_ZONES: each zone, its last serial (0 = none yet) and its cached names. */
typedef void (*dns_zone_fn)(void *arg, const char *zone, uint32_t serial, int names);
void dns_foreach_zone(dns_zone_fn fn, void *arg);

/* Frees everything; pending requests are cancelled without callbacks. */
void dns_shutdown(void);

struct dns_stats {
	uint64_t lookups;    /* dns_resolve calls on names (numeric hosts excluded) */
	uint64_t cache_hits; /* answered from the cache */
	uint64_t queries;    /* c-ares queries started */
	uint64_t failures;   /* queries that ended in an error */
	uint64_t cached;     /* names in the cache now */
	uint64_t zones;      /* zones dns_zone_check_period watches now */
};

void dns_get_stats(struct dns_stats *out);

/*
 * Calls fn once per cached name with a live answer (for SHOW DNS_HOSTS):
 * the time the entry has left and its addresses as text, comma-separated
 * ("" for a cached failure). fn must not call other dns_* functions.
 */
typedef void (*dns_host_fn)(void *arg, const char *host, usec_t ttl_left, const char *addrs);
void dns_foreach_host(dns_host_fn fn, void *arg);

#endif
