/*
 * Cancel requests. Clients get a BackendKeyData of our making (random pid
 * and key); a CancelRequest carrying it is forwarded, with the real key,
 * to the server the client is linked to, over a new connection.
 */
#ifndef PGSIEVE_CANCEL_H
#define PGSIEVE_CANCEL_H

#include <stddef.h>
#include <stdint.h>

struct client;

void cancel_assign_key(struct client *client);
/* pidkey: the 8 bytes after the cancel code. */
void cancel_request(const uint8_t *pidkey, size_t len);

#endif
