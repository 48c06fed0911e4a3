/*
 * Cancel keys. The key we hand out is random, so a client cannot cancel
 * another's query by guessing; the comparison is constant-time for the
 * same reason. Lookups scan the client list: cancels are rare, and the
 * scan is bounded by max_client_conn.
 */
#include "cancel.h"
#include "client.h"
#include "log.h"
#include "server.h"

#include <openssl/rand.h>
#include <string.h>

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
}

void cancel_request(const uint8_t *pidkey, size_t len)
{
	if (len != 8)
		return;
	uint32_t pid = (uint32_t)pidkey[0] << 24 | (uint32_t)pidkey[1] << 16 |
	               (uint32_t)pidkey[2] << 8 | pidkey[3];
	uint8_t key[4];
	memcpy(key, pidkey + 4, 4);
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		struct client *c = container_of(it, struct client, all_node);
		if (c->cancel_pid != pid || c->state == CL_LOGIN || c->state == CL_CLOSED)
			continue;
		uint8_t mine[4] = {(uint8_t)(c->cancel_key >> 24), (uint8_t)(c->cancel_key >> 16),
		                   (uint8_t)(c->cancel_key >> 8), (uint8_t)c->cancel_key};
		if (!secure_equal(mine, key, 4))
			continue;
		if (c->server && c->server->state == SV_ACTIVE) {
			cl_log(LOG_LVL_LOG, c, "forwarding cancel request");
			server_send_cancel(c->server);
		}
		return;
	}
	log_debug("cancel request for unknown key ignored");
}
