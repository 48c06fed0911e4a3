/*
 * dns.c in a real libevent loop. There is no network here, and no query
 * may leave the machine, so the resolver is pointed at a resolv.conf
 * naming 127.0.0.1 only: "localhost" is answered from /etc/hosts, numeric
 * hosts need no query, and a .invalid name is refused by the loopback
 * (nothing listens on port 53) or times out within c-ares's bounded
 * retries. Every callback records whether it ran inside dns_resolve.
 *
 * Links: src/dns.c src/util.c src/log.c, libevent and c-ares.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "dns.h"
#include "log.h"
#include "unit.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

static struct event_base *base;
static bool in_resolve; /* set around dns_resolve calls */

struct result {
	int calls;
	bool from_inside; /* a callback ran while dns_resolve was on the stack */
	int n;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	char err[256];
	bool has_err;
};

static void on_result(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	struct result *r = arg;
	r->calls++;
	if (in_resolve)
		r->from_inside = true;
	r->n = n;
	if (n > 0 && n <= DNS_MAX_ADDRS)
		memcpy(r->addrs, addrs, (size_t)n * sizeof(*addrs));
	r->has_err = err != NULL;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static struct dns_request *resolve(const char *host, int port, struct result *r)
{
	memset(r, 0, sizeof(*r));
	in_resolve = true;
	struct dns_request *req = dns_resolve(host, port, on_result, r);
	in_resolve = false;
	return req;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until *calls reaches want or secs pass; returns elapsed seconds. */
static double run_until(const int *calls, int want, double secs)
{
	usec_t start = now_usec(), limit = start + (usec_t)(secs * USEC_PER_SEC);
	while (*calls < want && now_usec() < limit)
		event_base_loop(base, EVLOOP_ONCE);
	return (double)(now_usec() - start) / USEC_PER_SEC;
}

/* Gives the loop a few turns, for checking that nothing is called. */
static void spin(int turns)
{
	for (int i = 0; i < turns; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static int port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return -1;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

static void test_numeric(void)
{
	struct result r4, r6, bad;
	CHECK(resolve("127.0.0.1", 5432, &r4) != NULL);
	CHECK(resolve("::1", 6432, &r6) != NULL);
	CHECK(resolve("", 1, &bad) != NULL);
	/* Nothing may run before the loop does. */
	CHECK(r4.calls == 0 && r6.calls == 0 && bad.calls == 0);
	run_until(&r6.calls, 1, 2);
	run_until(&bad.calls, 1, 2);
	CHECK(r4.calls == 1 && !r4.from_inside && !r4.has_err && r4.n == 1);
	CHECK(r4.addrs[0].ss_family == AF_INET && port_of(&r4.addrs[0]) == 5432);
	CHECK(is_loopback(&r4.addrs[0]));
	CHECK(r6.calls == 1 && !r6.from_inside && !r6.has_err && r6.n == 1);
	CHECK(r6.addrs[0].ss_family == AF_INET6 && port_of(&r6.addrs[0]) == 6432);
	CHECK(is_loopback(&r6.addrs[0]));
	CHECK(bad.calls == 1 && bad.has_err && bad.n == 0);
}

static void test_localhost_and_cache(void)
{
	struct dns_stats s0, s1, s2;
	dns_get_stats(&s0);
	struct result a, b;
	CHECK(resolve("localhost", 5433, &a) != NULL);
	CHECK(a.calls == 0);
	run_until(&a.calls, 1, 5);
	CHECK(a.calls == 1 && !a.from_inside);
	CHECK_STR(a.err, "");
	CHECK(a.n >= 1);
	for (int i = 0; i < a.n; i++)
		CHECK(is_loopback(&a.addrs[i]) && port_of(&a.addrs[i]) == 5433);
	dns_get_stats(&s1);
	CHECK(s1.queries == s0.queries + 1);

	/* Second time from the cache: no query, still called later, new port applied. */
	CHECK(resolve("localhost", 7000, &b) != NULL);
	CHECK(b.calls == 0);
	run_until(&b.calls, 1, 2);
	dns_get_stats(&s2);
	CHECK(b.calls == 1 && !b.from_inside && b.n == a.n && !b.has_err);
	CHECK(b.n >= 1 && port_of(&b.addrs[0]) == 7000);
	CHECK(s2.queries == s1.queries);
	CHECK(s2.cache_hits == s1.cache_hits + 1);
}

static int hosts_seen;
static void on_host(void *arg, const char *host, usec_t ttl_left, const char *addrs)
{
	(void)arg;
	if (strcmp(host, "localhost") == 0 && ttl_left > 0 && strstr(addrs, "127.0.0.1"))
		hosts_seen++;
}

static void test_foreach(void)
{
	hosts_seen = 0;
	dns_foreach_host(on_host, NULL);
	CHECK(hosts_seen == 1);
}

static void test_nonexistent(void)
{
	struct dns_stats s0, s1;
	dns_get_stats(&s0);
	struct result a, b, c;
	/* Two requests for one name share one query. */
	CHECK(resolve("nonexistent.invalid", 5432, &a) != NULL);
	CHECK(resolve("nonexistent.invalid", 5432, &b) != NULL);
	double took = run_until(&b.calls, 1, 15);
	CHECK(a.calls == 1 && b.calls == 1);
	CHECK(took < 12);
	CHECK(a.has_err && a.n == 0 && strstr(a.err, "nonexistent.invalid") != NULL);
	CHECK(b.has_err && !b.from_inside);
	dns_get_stats(&s1);
	CHECK(s1.queries == s0.queries + 1);
	CHECK(s1.failures >= s0.failures + 1);

	/* The failure is cached for nxdomain_ttl. */
	CHECK(resolve("nonexistent.invalid", 5432, &c) != NULL);
	took = run_until(&c.calls, 1, 2);
	CHECK(c.calls == 1 && c.has_err && took < 1);
	dns_get_stats(&s0);
	CHECK(s0.queries == s1.queries && s0.cache_hits == s1.cache_hits + 1);
}

static void test_cancel(void)
{
	struct result num, cached, waiting, kept;
	struct dns_request *r1 = resolve("10.0.0.1", 1, &num);
	struct dns_request *r2 = resolve("localhost", 1, &cached);
	struct dns_request *r3 = resolve("cancelled.invalid", 1, &waiting);
	resolve("127.0.0.2", 2, &kept);
	dns_cancel(r1);
	dns_cancel(r2);
	dns_cancel(r3);
	dns_cancel(NULL);
	run_until(&kept.calls, 1, 2);
	CHECK(kept.calls == 1);
	/* The query behind r3 still finishes (and is cached); r3 hears nothing. */
	struct result later;
	resolve("cancelled.invalid", 1, &later);
	run_until(&later.calls, 1, 15);
	CHECK(later.calls == 1 && later.has_err);
	spin(5);
	CHECK(num.calls == 0 && cached.calls == 0 && waiting.calls == 0);
}

/* A callback that resolves again and cancels its own handle. */
static struct result inner;
static struct dns_request *self_req;
static int outer_calls;
static bool inner_was_sync;

static void on_outer(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	(void)arg;
	(void)addrs;
	(void)n;
	(void)err;
	outer_calls++;
	dns_cancel(self_req); /* allowed, does nothing */
	resolve("localhost", 1, &inner);
	inner_was_sync = inner.calls != 0;
}

static void test_reentrancy(void)
{
	outer_calls = 0;
	self_req = dns_resolve("127.0.0.1", 1, on_outer, NULL);
	CHECK(self_req != NULL);
	run_until(&inner.calls, 1, 2);
	CHECK(outer_calls == 1);
	CHECK(!inner_was_sync);
	CHECK(inner.calls == 1 && !inner.has_err);
}

static void test_no_cache(void)
{
	dns_configure(0, 0);
	struct dns_stats s0, s1;
	struct result a, b;
	dns_get_stats(&s0);
	resolve("localhost", 1, &a);
	run_until(&a.calls, 1, 5);
	resolve("localhost", 1, &b);
	run_until(&b.calls, 1, 5);
	dns_get_stats(&s1);
	CHECK(a.calls == 1 && b.calls == 1 && !a.has_err && !b.has_err);
	CHECK(s1.queries == s0.queries + 2);
	CHECK(s1.cache_hits == s0.cache_hits);
	dns_configure(30 * USEC_PER_SEC, 15 * USEC_PER_SEC);
}

/* dns_shutdown from a callback: the rest of the batch is dropped, nothing leaks. */
static int shut_calls;
static void on_shut(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	(void)arg;
	(void)addrs;
	(void)n;
	(void)err;
	shut_calls++;
	dns_shutdown();
}

static void test_shutdown(const char *conf)
{
	/* Pending query and undelivered results are dropped without callbacks. */
	struct result pend, ready;
	resolve("pending.invalid", 1, &pend);
	resolve("127.0.0.1", 1, &ready);
	dns_shutdown();
	spin(5);
	CHECK(pend.calls == 0 && ready.calls == 0);
	log_quiet = true; /* the error it logs is expected */
	CHECK(dns_resolve("127.0.0.1", 1, on_result, &ready) == NULL);
	log_quiet = false;

	char *err = NULL;
	CHECK(dns_init(base, 30 * USEC_PER_SEC, 15 * USEC_PER_SEC, conf, &err));
	free(err);
	shut_calls = 0;
	struct result after;
	dns_resolve("127.0.0.1", 1, on_shut, NULL);
	dns_resolve("127.0.0.1", 1, on_shut, NULL);
	resolve("::1", 1, &after);
	spin(5);
	CHECK(shut_calls == 1 && after.calls == 0);
}

/*
 * A server that never answers: a UDP socket bound to 127.0.0.2:53 and
 * never read. Binding port 53 needs root; without it the case is skipped.
 */
static void test_timeout(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(53)};
	inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
	if (s < 0 || bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		printf("test_dns: silent-server timeout case skipped (cannot bind 127.0.0.2:53)\n");
		if (s >= 0)
			close(s);
		return;
	}
	char conf[] = "/tmp/test_dns_silent.XXXXXX";
	int fd = mkstemp(conf);
	CHECK(fd >= 0 && write(fd, "nameserver 127.0.0.2\n", 21) == 21);
	close(fd);
	char *err = NULL;
	bool up = dns_init(base, 30 * USEC_PER_SEC, 15 * USEC_PER_SEC, conf, &err);
	CHECK(up);
	free(err);
	if (up) {
		struct result r;
		resolve("silent.invalid", 1, &r);
		double took = run_until(&r.calls, 1, 30);
		CHECK(r.calls == 1 && r.has_err && strstr(r.err, "silent.invalid"));
		/* Bounded by the c-ares timeout and tries, well inside the deadline. */
		CHECK(took > 1 && took < (double)DNS_QUERY_DEADLINE / USEC_PER_SEC + 1);
		printf("test_dns: unanswered query failed after %.1f s: %s\n", took, r.err);
		dns_shutdown();
	}
	unlink(conf);
	close(s);
}

int main(void)
{
	char conf[] = "/tmp/test_dns.XXXXXX";
	int fd = mkstemp(conf);
	if (fd < 0 || write(fd, "nameserver 127.0.0.1\n", 21) != 21) {
		perror("resolv.conf");
		return 2;
	}
	close(fd);

	base = event_base_new();
	struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 100 * 1000};
	event_add(tick, &tv);

	char *err = NULL;
	CHECK(!dns_init(base, 1, 1, "/nonexistent/resolv.conf", &err));
	CHECK(err && strstr(err, "/nonexistent/resolv.conf"));
	FREE_AND_NULL(err);
	bool up = dns_init(base, 30 * USEC_PER_SEC, 15 * USEC_PER_SEC, conf, &err);
	CHECK(up);
	if (!up) {
		fprintf(stderr, "dns_init: %s\n", err);
		return unit_summary("test_dns");
	}
	CHECK(!dns_init(base, 1, 1, conf, &err));
	FREE_AND_NULL(err);

	test_numeric();
	test_localhost_and_cache();
	test_foreach();
	test_nonexistent();
	test_cancel();
	test_reentrancy();
	test_no_cache();
	test_shutdown(conf);
	dns_shutdown();
	test_timeout();

	event_free(tick);
	event_base_free(base);
	libevent_global_shutdown();
	unlink(conf);
	return unit_summary("test_dns");
}
