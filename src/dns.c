/*
 * DNS on c-ares inside the libevent loop.
 *
 * Why this shape:
 * - c-ares tells us which sockets it wants watched through its socket-state
 *   callback; each becomes a persistent libevent event, and one timer
 *   follows ares_timeout() so retransmissions and timeouts happen without
 *   any blocking call. c-ares reads /etc/hosts itself (lookups "fb"), a
 *   small local read, as the system resolver would.
 * - Results never reach the caller from inside dns_resolve or from inside
 *   a c-ares callback (c-ares answers /etc/hosts hits synchronously from
 *   ares_getaddrinfo). Finished requests go on a ready list, and one
 *   "deliver" event, activated by hand, runs their callbacks on the next
 *   turn of the loop. Callers therefore never face re-entrancy, and a
 *   callback may resolve, cancel or even shut the module down.
 * - One cache entry per host name holds the answer (or the failure) and
 *   the requests waiting for it, so a burst of connections to one host
 *   costs one query. Answers live min(record TTL, max_ttl) — PgBouncer
 *   uses dns_max_ttl alone; a shorter record TTL is honoured so that
 *   failover by DNS is not delayed — and failures live nxdomain_ttl.
 * - c-ares cannot cancel one query, so an entry with a query in flight is
 *   never freed; a cancelled request just leaves the waiting list. A query
 *   that outlives DNS_QUERY_DEADLINE fails its waiters but keeps running,
 *   and its late answer still fills the cache.
 * - Numeric addresses are parsed with getaddrinfo(AI_NUMERICHOST), which
 *   never touches the network, and bypass the cache.
 * - dns_zone_check_period, as PgBouncer: the zone of a cached name is what
 *   follows its first dot. Every period each zone's SOA is asked for; when
 *   its serial differs from the one seen before, every cached name of the
 *   zone is looked up again at once (its old answer serves meanwhile), so
 *   a changed record is noticed before its TTL or dns_max_ttl runs out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "dns.h"
#include "list.h"
#include "log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* c-ares per-try timeout and tries per server: bounded even with dead servers. */
#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES      2
/* Past this many cached names, idle ones are dropped oldest first. */
#define DNS_CACHE_MAX 1024
/* RFC 1035: 253 characters of name in text form. */
#define DNS_MAX_NAME 253

struct dns_watch {
	struct list_node node; /* in dns.watches */
	ares_socket_t fd;
	short what; /* EV_READ / EV_WRITE wanted */
	struct event *ev;
};

struct dns_entry {
	struct list_node node; /* in dns.cache, most recently used first */
	char *host;
	struct sockaddr_storage *addrs; /* port 0 */
	int n;
	char *err;        /* the cached failure, or NULL */
	bool have_result; /* addrs/err hold an answer until expires */
	usec_t expires;
	bool inflight;            /* c-ares holds a pointer to this entry */
	struct list_node waiters; /* struct dns_request, state WAITING */
	struct event *deadline;
};

enum dns_req_state {
	DNS_REQ_WAITING, /* on an entry's waiters */
	DNS_REQ_READY,   /* on dns.ready or dns.delivering, result attached */
	DNS_REQ_RUNNING, /* its callback is on the stack */
};

struct dns_request {
	struct list_node node;
	enum dns_req_state state;
	dns_callback cb;
	void *arg;
	int port;
	struct sockaddr_storage *addrs;
	int n;
	char *err;
};

/* A zone some cached name is in, for dns_zone_check_period. */
struct dns_zone {
	struct list_node node; /* in dns.zones */
	char *name;
	uint32_t serial; /* 0 = no answer yet */
	bool inflight;   /* c-ares holds a pointer to it */
	bool dead;       /* no cached name is in it any more: freed when its query ends */
};

static struct {
	bool up;
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct event *deliver;
	struct list_node watches;
	struct list_node cache;
	struct list_node ready;      /* results waiting for the deliver event */
	struct list_node delivering; /* the batch the deliver event is running */
	usec_t max_ttl, nxdomain_ttl;
	struct list_node zones;
	struct event *zone_timer;
	usec_t zone_period;
	size_t ncache;
	struct dns_stats stats;
} dns;

/* ---- requests ---- */

static void dns_req_free(struct dns_request *req)
{
	free(req->addrs);
	free(req->err);
	free(req);
}

static void dns_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* Attaches a result (addresses or an error) and queues the request for delivery. */
static void dns_req_finish(struct dns_request *req, const struct sockaddr_storage *addrs, int n,
                           const char *err)
{
	if (err) {
		req->err = xstrdup(err);
	} else {
		req->addrs = xcalloc((size_t)n, sizeof(*req->addrs));
		memcpy(req->addrs, addrs, (size_t)n * sizeof(*addrs));
		for (int i = 0; i < n; i++)
			dns_set_port(&req->addrs[i], req->port);
		req->n = n;
	}
	req->state = DNS_REQ_READY;
	list_append(&dns.ready, &req->node);
	/* Activating an already active event is harmless. */
	event_active(dns.deliver, EV_TIMEOUT, 0);
}

static void dns_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	/*
	 * Take the current batch only: requests finished by these callbacks
	 * wait for the next turn, so a callback that resolves again cannot
	 * keep this loop running forever.
	 */
	struct list_node *n;
	while ((n = list_pop(&dns.ready)))
		list_append(&dns.delivering, n);
	while ((n = list_pop(&dns.delivering))) {
		struct dns_request *req = container_of(n, struct dns_request, node);
		req->state = DNS_REQ_RUNNING;
		req->cb(req->arg, req->addrs, req->n, req->err);
		dns_req_free(req);
		/* The callback may have shut us down, which emptied the lists. */
		if (!dns.up)
			return;
	}
}

/* ---- the c-ares <-> libevent glue ---- */

static void dns_update_timer(void)
{
	struct timeval tv, *tvp = ares_timeout(dns.channel, NULL, &tv);
	if (tvp)
		evtimer_add(dns.timer, tvp);
	else
		evtimer_del(dns.timer);
}

static void dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ares_process_fd(dns.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_update_timer();
}

static void dns_on_socket(evutil_socket_t fd, short what, void *arg)
{
	(void)arg;
	/* This may close fd and free our watch (and its event): touch neither after. */
	ares_process_fd(dns.channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_update_timer();
}

static struct dns_watch *dns_watch_find(ares_socket_t fd)
{
	struct list_node *it;
	list_for_each(it, &dns.watches)
	{
		struct dns_watch *w = container_of(it, struct dns_watch, node);
		if (w->fd == fd)
			return w;
	}
	return NULL;
}

static void dns_watch_free(struct dns_watch *w)
{
	if (w->ev)
		event_free(w->ev);
	list_del(&w->node);
	free(w);
}

/* c-ares says which of its sockets want reading or writing; (0, 0) = closing. */
static void dns_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	(void)data;
	struct dns_watch *w = dns_watch_find(fd);
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	if (!what) {
		if (w)
			dns_watch_free(w);
		return;
	}
	if (!w) {
		w = xcalloc(1, sizeof(*w));
		w->fd = fd;
		list_append(&dns.watches, &w->node);
	} else if (w->what == what && w->ev) {
		return;
	}
	if (w->ev)
		event_free(w->ev);
	w->what = what;
	w->ev = event_new(dns.base, fd, (short)(what | EV_PERSIST), dns_on_socket, NULL);
	if (!w->ev || event_add(w->ev, NULL) < 0)
		log_error("dns: cannot watch resolver socket %d; its queries will time out",
		          (int)fd);
}

/* ---- the cache ---- */

static struct dns_entry *dns_cache_find(const char *host)
{
	struct list_node *it;
	list_for_each(it, &dns.cache)
	{
		struct dns_entry *e = container_of(it, struct dns_entry, node);
		if (strcmp(e->host, host) == 0)
			return e;
	}
	return NULL;
}

static void dns_entry_clear_result(struct dns_entry *e)
{
	FREE_AND_NULL(e->addrs);
	FREE_AND_NULL(e->err);
	e->n = 0;
	e->have_result = false;
}

static void dns_entry_free(struct dns_entry *e)
{
	struct list_node *n;
	while ((n = list_pop(&e->waiters)))
		dns_req_free(container_of(n, struct dns_request, node));
	if (e->deadline)
		event_free(e->deadline);
	dns_entry_clear_result(e);
	list_del(&e->node);
	free(e->host);
	free(e);
	dns.ncache--;
}

static bool dns_entry_idle(const struct dns_entry *e)
{
	return !e->inflight && list_empty(&e->waiters);
}

/* Keeps the cache bounded: expired idle entries go first, then the least recently used. */
static void dns_cache_trim(void)
{
	if (dns.ncache < DNS_CACHE_MAX)
		return;
	usec_t now = now_usec();
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &dns.cache)
	{
		struct dns_entry *e = container_of(it, struct dns_entry, node);
		if (dns_entry_idle(e) && (!e->have_result || now >= e->expires))
			dns_entry_free(e);
	}
	for (it = dns.cache.prev; dns.ncache >= DNS_CACHE_MAX && it != &dns.cache; it = tmp) {
		tmp = it->prev;
		struct dns_entry *e = container_of(it, struct dns_entry, node);
		if (dns_entry_idle(e))
			dns_entry_free(e);
	}
}

static void dns_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct dns_entry *e = arg;
	if (!e->inflight || list_empty(&e->waiters))
		return;
	char *msg = xasprintf("could not resolve \"%s\": timed out", e->host);
	log_warning("dns: %s", msg);
	struct list_node *n;
	while ((n = list_pop(&e->waiters)))
		dns_req_finish(container_of(n, struct dns_request, node), NULL, 0, msg);
	free(msg);
	dns.stats.failures++;
}

static void dns_arm_deadline(struct dns_entry *e)
{
	if (!e->deadline)
		e->deadline = evtimer_new(dns.base, dns_on_deadline, e);
	if (e->deadline && !evtimer_pending(e->deadline, NULL)) {
		struct timeval tv = {
		    .tv_sec = (time_t)(DNS_QUERY_DEADLINE / USEC_PER_SEC),
		    .tv_usec = (suseconds_t)(DNS_QUERY_DEADLINE % USEC_PER_SEC),
		};
		evtimer_add(e->deadline, &tv);
	}
}

static bool dns_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		              &((const struct sockaddr_in *)b)->sin_addr,
		              sizeof(struct in_addr)) == 0;
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
	       x->sin6_scope_id == y->sin6_scope_id;
}

/* Appends an address unless already present; false when the array is full. */
static bool dns_add_addr(struct sockaddr_storage *arr, int *n, const struct sockaddr *sa,
                         size_t len)
{
	if (*n >= DNS_MAX_ADDRS)
		return false;
	if ((sa->sa_family != AF_INET || len < sizeof(struct sockaddr_in)) &&
	    (sa->sa_family != AF_INET6 || len < sizeof(struct sockaddr_in6)))
		return true;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa,
	       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	dns_set_port(&ss, 0);
	for (int i = 0; i < *n; i++)
		if (dns_same_addr(&arr[i], &ss))
			return true;
	arr[(*n)++] = ss;
	return true;
}

static void dns_on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	(void)timeouts;
	struct dns_entry *e = arg;
	/* Channel being destroyed: dns_shutdown frees the entry itself. */
	if (status == ARES_EDESTRUCTION) {
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	e->inflight = false;
	if (e->deadline)
		evtimer_del(e->deadline);
	dns_entry_clear_result(e);

	usec_t now = now_usec();
	if (status == ARES_SUCCESS && res) {
		struct sockaddr_storage arr[DNS_MAX_ADDRS];
		int n = 0, min_ttl = 0;
		for (struct ares_addrinfo_node *an = res->nodes; an; an = an->ai_next) {
			if (!an->ai_addr || !dns_add_addr(arr, &n, an->ai_addr, an->ai_addrlen))
				continue;
			if (an->ai_ttl > 0 && (min_ttl == 0 || an->ai_ttl < min_ttl))
				min_ttl = an->ai_ttl;
		}
		if (n > 0) {
			e->addrs = xcalloc((size_t)n, sizeof(*e->addrs));
			memcpy(e->addrs, arr, (size_t)n * sizeof(*arr));
			e->n = n;
			usec_t ttl = dns.max_ttl;
			if (min_ttl > 0 && (usec_t)min_ttl * USEC_PER_SEC < ttl)
				ttl = (usec_t)min_ttl * USEC_PER_SEC;
			e->expires = now + ttl;
			log_debug("dns: %s: %d address(es), cached for %lld ms", e->host, n,
			          (long long)(ttl / 1000));
		} else {
			status = ARES_ENODATA;
		}
	}
	if (e->n == 0) {
		e->err = xasprintf("could not resolve \"%s\": %s", e->host,
		                   status == ARES_SUCCESS ? "no addresses" : ares_strerror(status));
		e->expires = now + dns.nxdomain_ttl;
		dns.stats.failures++;
		log_debug("dns: %s", e->err);
	}
	e->have_result = true;
	if (res)
		ares_freeaddrinfo(res);

	struct list_node *n;
	while ((n = list_pop(&e->waiters)))
		dns_req_finish(container_of(n, struct dns_request, node), e->addrs, e->n, e->err);
}

static void dns_start_query(struct dns_entry *e)
{
	struct ares_addrinfo_hints hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	e->inflight = true;
	dns.stats.queries++;
	/* Armed first: c-ares may answer from /etc/hosts before returning. */
	dns_arm_deadline(e);
	ares_getaddrinfo(dns.channel, e->host, NULL, &hints, dns_on_addrinfo, e);
	dns_update_timer();
}

/* ---- zones ---- */

static const char *dns_zone_of(const char *host)
{
	const char *dot = strchr(host, '.');
	return dot && dot[1] ? dot + 1 : NULL;
}

static void dns_zone_free(struct dns_zone *z)
{
	list_del(&z->node);
	free(z->name);
	free(z);
}

static int dns_zone_count(const struct dns_zone *z)
{
	int n = 0;
	struct list_node *it;
	list_for_each(it, &dns.cache)
	{
		const struct dns_entry *e = container_of(it, struct dns_entry, node);
		const char *zone = dns_zone_of(e->host);
		if (zone && strcmp(zone, z->name) == 0)
			n++;
	}
	return n;
}

/* Zones follow the cache: one per zone of a cached name. */
static void dns_zones_sync(void)
{
	struct list_node *it, *tmp;
	list_for_each(it, &dns.cache)
	{
		const struct dns_entry *e = container_of(it, struct dns_entry, node);
		const char *zone = dns_zone_of(e->host);
		if (!zone)
			continue;
		struct dns_zone *z = NULL;
		struct list_node *zi;
		list_for_each(zi, &dns.zones)
		{
			struct dns_zone *c = container_of(zi, struct dns_zone, node);
			if (strcmp(c->name, zone) == 0) {
				z = c;
				break;
			}
		}
		if (z) {
			z->dead = false;
			continue;
		}
		z = xcalloc(1, sizeof(*z));
		z->name = xstrdup(zone);
		list_append(&dns.zones, &z->node);
	}
	list_for_each_safe(it, tmp, &dns.zones)
	{
		struct dns_zone *z = container_of(it, struct dns_zone, node);
		if (dns_zone_count(z) > 0)
			continue;
		z->dead = true;
		if (!z->inflight)
			dns_zone_free(z);
	}
}

/* The zone's serial changed: ask again for every cached name in it. */
static void dns_zone_refresh(const struct dns_zone *z)
{
	struct list_node *it;
	list_for_each(it, &dns.cache)
	{
		struct dns_entry *e = container_of(it, struct dns_entry, node);
		const char *zone = dns_zone_of(e->host);
		if (zone && strcmp(zone, z->name) == 0 && !e->inflight)
			dns_start_query(e);
	}
}

static void dns_on_soa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct dns_zone *z = arg;
	/* Channel being destroyed: dns_shutdown frees the zone itself. */
	if (status == ARES_EDESTRUCTION)
		return;
	z->inflight = false;
	if (z->dead) {
		dns_zone_free(z);
		return;
	}
	struct ares_soa_reply *soa = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_soa_reply(abuf, alen, &soa);
	if (status != ARES_SUCCESS || !soa) {
		log_debug("dns: no SOA for zone %s: %s", z->name, ares_strerror(status));
		return;
	}
	uint32_t serial = soa->serial;
	ares_free_data(soa);
	if (z->serial && serial != z->serial) {
		log_info("dns: zone %s: serial %u is now %u, looking its names up again", z->name,
		         z->serial, serial);
		z->serial = serial;
		dns_zone_refresh(z);
		return;
	}
	z->serial = serial;
}

static void dns_on_zone_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	dns_zones_sync();
	struct list_node *it;
	list_for_each(it, &dns.zones)
	{
		struct dns_zone *z = container_of(it, struct dns_zone, node);
		if (z->inflight)
			continue;
		z->inflight = true;
		ares_query(dns.channel, z->name, ns_c_in, ns_t_soa, dns_on_soa, z);
	}
	dns_update_timer();
}

void dns_set_zone_check_period(usec_t period)
{
	if (!dns.up || period == dns.zone_period)
		return;
	dns.zone_period = period > 0 ? period : 0;
	evtimer_del(dns.zone_timer);
	if (dns.zone_period > 0) {
		struct timeval tv = {(time_t)(dns.zone_period / USEC_PER_SEC),
		                     (suseconds_t)(dns.zone_period % USEC_PER_SEC)};
		event_add(dns.zone_timer, &tv);
	}
}

void dns_foreach_zone(dns_zone_fn fn, void *arg)
{
	if (!dns.up)
		return;
	struct list_node *it;
	list_for_each(it, &dns.zones)
	{
		const struct dns_zone *z = container_of(it, struct dns_zone, node);
		if (!z->dead)
			fn(arg, z->name, z->serial, dns_zone_count(z));
	}
}

/* ---- public ---- */

/* Numeric IPv4/IPv6 (with %scope); false if host is not one. Never blocks. */
static bool dns_numeric(const char *host, struct sockaddr_storage *arr, int *n)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return false;
	*n = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (!dns_add_addr(arr, n, ai->ai_addr, ai->ai_addrlen))
			break;
	freeaddrinfo(res);
	return *n > 0;
}

struct dns_request *dns_resolve(const char *host, int port, dns_callback cb, void *arg)
{
	if (!dns.up || !cb) {
		log_error("dns_resolve called %s",
		          dns.up ? "without a callback" : "before dns_init");
		return NULL;
	}
	struct dns_request *req = xcalloc(1, sizeof(*req));
	req->cb = cb;
	req->arg = arg;
	req->port = port;

	if (!host || !*host || strlen(host) > DNS_MAX_NAME) {
		dns_req_finish(req, NULL, 0, "invalid host name");
		return req;
	}
	if (port < 0 || port > 65535) {
		dns_req_finish(req, NULL, 0, "invalid port");
		return req;
	}
	struct sockaddr_storage arr[DNS_MAX_ADDRS];
	int n = 0;
	if (dns_numeric(host, arr, &n)) {
		dns_req_finish(req, arr, n, NULL);
		return req;
	}

	dns.stats.lookups++;
	struct dns_entry *e = dns_cache_find(host);
	if (e) {
		/* Most recently used first, so trimming drops the coldest. */
		list_del(&e->node);
		list_prepend(&dns.cache, &e->node);
		if (e->have_result && now_usec() < e->expires) {
			dns.stats.cache_hits++;
			dns_req_finish(req, e->addrs, e->n, e->err);
			return req;
		}
	} else {
		dns_cache_trim();
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		list_init(&e->waiters);
		list_prepend(&dns.cache, &e->node);
		dns.ncache++;
	}
	req->state = DNS_REQ_WAITING;
	list_append(&e->waiters, &req->node);
	if (!e->inflight)
		dns_start_query(e);
	else
		dns_arm_deadline(e);
	return req;
}

void dns_cancel(struct dns_request *req)
{
	if (!req)
		return;
	/* From inside its own callback: the deliver loop frees it on return. */
	if (req->state == DNS_REQ_RUNNING)
		return;
	list_del(&req->node);
	dns_req_free(req);
}

bool dns_init(struct event_base *base, usec_t max_ttl, usec_t nxdomain_ttl, const char *resolv_conf,
              char **err)
{
	if (dns.up) {
		*err = xstrdup("dns_init: already initialised");
		return false;
	}
	if (!base) {
		*err = xstrdup("dns_init: no event base");
		return false;
	}
	if (resolv_conf && access(resolv_conf, R_OK) != 0) {
		*err = xasprintf("cannot read resolver configuration %s", resolv_conf);
		return false;
	}
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		*err = xasprintf("c-ares: %s", ares_strerror(rc));
		return false;
	}

	memset(&dns, 0, sizeof(dns));
	dns.base = base;
	list_init(&dns.watches);
	list_init(&dns.cache);
	list_init(&dns.ready);
	list_init(&dns.delivering);
	list_init(&dns.zones);
	dns_configure(max_ttl, nxdomain_ttl);

	char lookups[] = "fb";
	struct ares_options opts;
	memset(&opts, 0, sizeof(opts));
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
	opts.sock_state_cb = dns_on_sock_state;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.lookups = lookups;
	char *rc_path = NULL;
	if (resolv_conf) {
		rc_path = xstrdup(resolv_conf);
		opts.resolvconf_path = rc_path;
		mask |= ARES_OPT_RESOLVCONF;
	}
	rc = ares_init_options(&dns.channel, &opts, mask);
	free(rc_path);
	if (rc != ARES_SUCCESS) {
		*err = xasprintf("c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return false;
	}
	dns.timer = evtimer_new(base, dns_on_timer, NULL);
	dns.deliver = event_new(base, -1, 0, dns_on_deliver, NULL);
	dns.zone_timer = event_new(base, -1, EV_PERSIST, dns_on_zone_timer, NULL);
	if (!dns.timer || !dns.deliver || !dns.zone_timer) {
		*err = xstrdup("dns: cannot create events");
		if (dns.timer)
			event_free(dns.timer);
		if (dns.deliver)
			event_free(dns.deliver);
		if (dns.zone_timer)
			event_free(dns.zone_timer);
		ares_destroy(dns.channel);
		ares_library_cleanup();
		memset(&dns, 0, sizeof(dns));
		return false;
	}
	dns.up = true;
	return true;
}

void dns_configure(usec_t max_ttl, usec_t nxdomain_ttl)
{
	dns.max_ttl = max_ttl > 0 ? max_ttl : 0;
	dns.nxdomain_ttl = nxdomain_ttl > 0 ? nxdomain_ttl : 0;
	/* A lowered limit applies to what is cached already; a raised one does not. */
	usec_t now = now_usec();
	struct list_node *it;
	list_for_each(it, &dns.cache)
	{
		struct dns_entry *e = container_of(it, struct dns_entry, node);
		usec_t cap = now + (e->err ? dns.nxdomain_ttl : dns.max_ttl);
		if (e->have_result && e->expires > cap)
			e->expires = cap;
	}
}

void dns_shutdown(void)
{
	if (!dns.up)
		return;
	dns.up = false;
	/* Calls dns_on_addrinfo with ARES_EDESTRUCTION and closes its sockets. */
	ares_destroy(dns.channel);
	struct list_node *n;
	while ((n = list_first(&dns.watches)))
		dns_watch_free(container_of(n, struct dns_watch, node));
	while ((n = list_first(&dns.cache)))
		dns_entry_free(container_of(n, struct dns_entry, node));
	while ((n = list_pop(&dns.ready)))
		dns_req_free(container_of(n, struct dns_request, node));
	while ((n = list_pop(&dns.delivering)))
		dns_req_free(container_of(n, struct dns_request, node));
	while ((n = list_first(&dns.zones)))
		dns_zone_free(container_of(n, struct dns_zone, node));
	event_free(dns.timer);
	event_free(dns.deliver);
	event_free(dns.zone_timer);
	ares_library_cleanup();
	memset(&dns, 0, sizeof(dns));
}

void dns_get_stats(struct dns_stats *out)
{
	*out = dns.stats;
	out->cached = dns.ncache;
	out->zones = 0;
	if (!dns.up)
		return;
	struct list_node *it;
	list_for_each(it, &dns.zones)
	{
		if (!container_of(it, struct dns_zone, node)->dead)
			out->zones++;
	}
}

void dns_foreach_host(dns_host_fn fn, void *arg)
{
	if (!dns.up)
		return;
	usec_t now = now_usec();
	struct list_node *it;
	list_for_each(it, &dns.cache)
	{
		const struct dns_entry *e = container_of(it, struct dns_entry, node);
		if (!e->have_result || now >= e->expires)
			continue;
		char buf[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1) + 1];
		size_t len = 0;
		buf[0] = '\0';
		for (int i = 0; i < e->n; i++) {
			char one[INET6_ADDRSTRLEN];
			const void *src =
			    e->addrs[i].ss_family == AF_INET
			        ? (const void *)&((const struct sockaddr_in *)&e->addrs[i])
			              ->sin_addr
			        : (const void *)&((const struct sockaddr_in6 *)&e->addrs[i])
			              ->sin6_addr;
			if (!inet_ntop(e->addrs[i].ss_family, src, one, sizeof(one)))
				continue;
			int w = snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", one);
			if (w < 0 || (size_t)w >= sizeof(buf) - len)
				break;
			len += (size_t)w;
		}
		fn(arg, e->host, e->expires - now, buf);
	}
}
