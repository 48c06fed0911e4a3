/*
 * Cancel keys and requests. The key we hand out is random, so a client
 * cannot cancel another's query by guessing; the comparison is
 * constant-time for the same reason. Lookups scan the client list:
 * cancels are rare, and the scan is bounded by max_client_conn.
 */
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "list.h"
#include "log.h"
#include "pktbuf.h"
#include "pooler.h"
#include "proto.h"
#include "sbuf.h"
#include "server.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define KEY_PEER_SHIFT 16
#define KEY_PEER_MASK  0x3fffu
#define KEY_HOPS_SHIFT 30
#define KEY_HOPS_MAX   3u
/* Requests queued for one peer beyond its pool_size; more are dropped. */
#define MAX_PEER_WAITING 1000

static int key_peer(uint32_t key)
{
	return (int)((key >> KEY_PEER_SHIFT) & KEY_PEER_MASK);
}

void cancel_assign_key(struct client *c)
{
	uint8_t r[8];
	if (RAND_bytes(r, sizeof(r)) != 1)
		die("RAND_bytes failed");
	memcpy(&c->cancel_pid, r, 4);
	memcpy(&c->cancel_key, r + 4, 4);
	c->cancel_pid &= 0x7fffffff; /* a positive pid, as clients expect */
	if (c->cancel_pid == 0)
		c->cancel_pid = 1;
	if (cf->peer_id > 0)
		c->cancel_key = (c->cancel_key & 0xffffu) |
		                (uint32_t)cf->peer_id << KEY_PEER_SHIFT |
		                KEY_HOPS_MAX << KEY_HOPS_SHIFT;
}

/* Requests on their own short-lived connections */

struct cancel_conn {
	struct list_node node; /* in cancel_conns, or its peer's waiting list */
	struct sbuf sb;
	struct event *timer;
	struct dns_request *dns;
	int peer_id;
	bool connected;
	char target[128]; /* where it goes, for log lines */
	uint8_t packet[16];
};

/* Per peer: how many requests are under way, and the ones waiting for a slot. */
struct peer_slots {
	struct list_node node;
	int peer_id;
	int connecting;
	int active;
	int waiting;
	struct list_node queue;
};

static struct list_node cancel_conns = LIST_INIT(cancel_conns);
static struct list_node peer_slots = LIST_INIT(peer_slots);

static struct peer_slots *slots_of(int peer_id, bool create)
{
	struct list_node *it;
	list_for_each(it, &peer_slots)
	{
		struct peer_slots *ps = container_of(it, struct peer_slots, node);
		if (ps->peer_id == peer_id)
			return ps;
	}
	if (!create)
		return NULL;
	struct peer_slots *ps = xcalloc(1, sizeof(*ps));
	ps->peer_id = peer_id;
	list_init(&ps->queue);
	list_append(&peer_slots, &ps->node);
	return ps;
}

struct cancel_peer_counts cancel_peer_counts(int peer_id)
{
	struct cancel_peer_counts n = {0, 0, 0};
	struct peer_slots *ps = slots_of(peer_id, false);
	if (ps) {
		n.waiting = ps->waiting;
		n.connecting = ps->connecting;
		n.active = ps->active;
	}
	return n;
}

static void start_next(int peer_id);

static void conn_free(struct cancel_conn *cc)
{
	list_del(&cc->node);
	dns_cancel(cc->dns);
	sbuf_close(&cc->sb);
	event_free(cc->timer);
	int peer_id = cc->peer_id;
	struct peer_slots *ps = peer_id ? slots_of(peer_id, false) : NULL;
	if (ps) {
		if (cc->connected)
			ps->active--;
		else
			ps->connecting--;
	}
	free(cc);
	if (ps)
		start_next(peer_id);
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_conn *cc = arg;
	log_debug("cancel request to %s: no answer within cancel_wait_timeout", cc->target);
	conn_free(cc);
}

static void conn_event(struct sbuf *sb, enum sbuf_event ev, void *arg)
{
	struct cancel_conn *cc = arg;
	switch (ev) {
	case SBUF_EV_CONNECTED:
		if (cc->peer_id) {
			struct peer_slots *ps = slots_of(cc->peer_id, false);
			ps->connecting--;
			ps->active++;
		}
		cc->connected = true;
		if (sbuf_send(sb, cc->packet, sizeof(cc->packet)))
			return; /* the other side closes the connection when it is done */
		break;
	case SBUF_EV_READ:
		evbuffer_drain(sb->in, evbuffer_get_length(sb->in));
		return;
	case SBUF_EV_CONNECT_FAILED:
		log_warning("cancel request to %s: could not connect: %s", cc->target,
		            strerror(sb->error));
		break;
	default:
		break;
	}
	conn_free(cc);
}

static void connect_now(struct cancel_conn *cc, const struct sockaddr *sa, socklen_t len)
{
	sbuf_resume(&cc->sb);
	if (!sbuf_connect(&cc->sb, sa, len)) {
		log_warning("cancel request to %s: could not connect: %s", cc->target,
		            strerror(cc->sb.error));
		conn_free(cc);
	}
}

static struct cancel_conn *conn_new(uint32_t pid, uint32_t key, int peer_id)
{
	struct cancel_conn *cc = xcalloc(1, sizeof(*cc));
	list_init(&cc->node);
	cc->peer_id = peer_id;
	struct pktbuf pb;
	pktbuf_init(&pb);
	proto_build_cancel(&pb, pid, key);
	memcpy(cc->packet, pb.data, sizeof(cc->packet));
	pktbuf_free(&pb);
	sbuf_init(&cc->sb, conn_event, cc);
	cc->timer = evtimer_new(pooler_base, conn_timeout, cc);
	if (cf->cancel_wait_timeout > 0) {
		struct timeval tv = {(time_t)(cf->cancel_wait_timeout / USEC_PER_SEC),
		                     (suseconds_t)(cf->cancel_wait_timeout % USEC_PER_SEC)};
		evtimer_add(cc->timer, &tv);
	}
	return cc;
}

void cancel_send(const struct sockaddr *sa, socklen_t len, uint32_t pid, uint32_t key, int peer_id)
{
	struct cancel_conn *cc = conn_new(pid, key, peer_id);
	snprintf(cc->target, sizeof(cc->target), "the server");
	list_append(&cancel_conns, &cc->node);
	connect_now(cc, sa, len);
}

/* To a peer: its address may be a name, so it may take a DNS lookup first. */

static void peer_resolved(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	struct cancel_conn *cc = arg;
	cc->dns = NULL;
	if (err || n == 0) {
		log_warning("cancel request to %s: %s", cc->target, err ? err : "no address");
		conn_free(cc);
		return;
	}
	socklen_t len = addrs[0].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                               : sizeof(struct sockaddr_in);
	connect_now(cc, (const struct sockaddr *)&addrs[0], len);
}

static void peer_start(struct cancel_conn *cc)
{
	const struct peer_config *peer = config_find_peer(cf, cc->peer_id);
	struct peer_slots *ps = slots_of(cc->peer_id, true);
	ps->connecting++;
	list_append(&cancel_conns, &cc->node);
	if (!peer) {
		log_warning("cancel request for peer %d: it left [peers]", cc->peer_id);
		conn_free(cc);
		return;
	}
	if (peer->host[0] == '/') {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", peer->host,
		         peer->port);
		connect_now(cc, (const struct sockaddr *)&un, sizeof(un));
		return;
	}
	cc->dns = dns_resolve(peer->host, peer->port, peer_resolved, cc);
	if (!cc->dns)
		conn_free(cc);
}

static void start_next(int peer_id)
{
	struct peer_slots *ps = slots_of(peer_id, false);
	const struct peer_config *peer = config_find_peer(cf, peer_id);
	if (!ps || list_empty(&ps->queue))
		return;
	int limit = peer && peer->pool_size > 0 ? peer->pool_size : cf->default_pool_size;
	if (ps->connecting + ps->active >= limit && peer)
		return;
	struct cancel_conn *cc = container_of(list_pop(&ps->queue), struct cancel_conn, node);
	ps->waiting--;
	peer_start(cc);
}

static void forward_to_peer(uint32_t pid, uint32_t key, int peer_id)
{
	uint32_t hops = key >> KEY_HOPS_SHIFT;
	if (hops == 0) {
		log_warning("cancel request for peer %d dropped: forwarded too often (check "
		            "[peers] and peer_id on every process)",
		            peer_id);
		return;
	}
	const struct peer_config *peer = config_find_peer(cf, peer_id);
	if (!peer) {
		log_debug("cancel request for unknown peer %d ignored", peer_id);
		return;
	}
	struct peer_slots *ps = slots_of(peer_id, true);
	if (ps->waiting >= MAX_PEER_WAITING) {
		log_warning("cancel request for peer %d dropped: %d already waiting", peer_id,
		            ps->waiting);
		return;
	}
	key = (key & ~(KEY_HOPS_MAX << KEY_HOPS_SHIFT)) | (hops - 1) << KEY_HOPS_SHIFT;
	struct cancel_conn *cc = conn_new(pid, key, peer_id);
	snprintf(cc->target, sizeof(cc->target), "peer %d (%s:%d)", peer_id, peer->host,
	         peer->port);
	log_info("forwarding cancel request to peer %d", peer_id);
	list_append(&ps->queue, &cc->node);
	ps->waiting++;
	start_next(peer_id);
}

void cancel_request(const uint8_t *pidkey, size_t len)
{
	if (len != 8)
		return;
	uint32_t pid = (uint32_t)pidkey[0] << 24 | (uint32_t)pidkey[1] << 16 |
	               (uint32_t)pidkey[2] << 8 | pidkey[3];
	uint32_t key = (uint32_t)pidkey[4] << 24 | (uint32_t)pidkey[5] << 16 |
	               (uint32_t)pidkey[6] << 8 | pidkey[7];
	if (cf->peer_id > 0) {
		int owner = key_peer(key);
		if (owner != cf->peer_id) {
			forward_to_peer(pid, key, owner);
			return;
		}
		/* Ours: the hop count is not part of what we handed out. */
		key |= KEY_HOPS_MAX << KEY_HOPS_SHIFT;
	}
	uint8_t want[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8),
	                   (uint8_t)key};
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (c->cancel_pid != pid || c->state == CL_LOGIN || c->state == CL_CLOSED)
			continue;
		uint8_t mine[4] = {(uint8_t)(c->cancel_key >> 24), (uint8_t)(c->cancel_key >> 16),
		                   (uint8_t)(c->cancel_key >> 8), (uint8_t)c->cancel_key};
		if (!secure_equal(mine, want, 4))
			continue;
		if (c->approval_id) {
			client_cancel_held(c);
		} else if (c->server && c->server->state == SV_ACTIVE) {
			cl_log(LOG_LVL_LOG, c, "forwarding cancel request");
			server_send_cancel(c->server);
		} else if (c->state == CL_WAITING) {
			client_cancel_waiting(c);
		}
		return;
	}
	log_debug("cancel request for unknown key ignored");
}

void cancel_cleanup(void)
{
	struct list_node *it;
	/* The queued first, so that freeing the others starts none of them. */
	list_for_each(it, &peer_slots)
	{
		struct peer_slots *ps = container_of(it, struct peer_slots, node);
		struct list_node *q;
		while ((q = list_pop(&ps->queue))) {
			struct cancel_conn *cc = container_of(q, struct cancel_conn, node);
			sbuf_close(&cc->sb);
			event_free(cc->timer);
			free(cc);
		}
		ps->waiting = 0;
	}
	while ((it = list_first(&cancel_conns)))
		conn_free(container_of(it, struct cancel_conn, node));
	while ((it = list_pop(&peer_slots)))
		free(container_of(it, struct peer_slots, node));
}
