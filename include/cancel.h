/*
 * Cancel requests. Clients get a BackendKeyData of our making (random pid
 * and key); a CancelRequest carrying it is forwarded, with the real key,
 * to the server the client is linked to, over a new connection.
 *
 * Peering (peer_id and [peers]), for several pgsieve processes behind one
 * address (so_reuseport, a load balancer): a cancel request reaches any of
 * them, not necessarily the one holding the client. With peer_id set, the
 * key carries it (bits 16..29 of the key), and a process that receives a
 * key of another peer sends the request on to that peer. Bits 30..31
 * count the hops left, so that a misconfiguration cannot loop.
 */
#ifndef PGSIEVE_CANCEL_H
#define PGSIEVE_CANCEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct client;

void cancel_assign_key(struct client *client);
/* pidkey: the 8 bytes after the cancel code. */
void cancel_request(const uint8_t *pidkey, size_t len);

/*
 * Sends CancelRequest(pid, key) to addr on a new connection, closed after
 * cancel_wait_timeout at the latest. peer_id: the peer it goes to, for its
 * counters, or 0 for a server.
 */
void cancel_send(const struct sockaddr *addr, socklen_t len, uint32_t pid, uint32_t key,
                 int peer_id);
/* Drops requests still in flight (shutdown). */
void cancel_cleanup(void);

/* SHOW PEER_POOLS: requests to a peer waiting for a slot, connecting, sent. */
struct cancel_peer_counts {
	int waiting;
	int connecting;
	int active;
};
struct cancel_peer_counts cancel_peer_counts(int peer_id);

#endif
