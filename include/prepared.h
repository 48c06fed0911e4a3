/*
 * Protocol-level named prepared statements under transaction and
 * statement pooling (max_prepared_statements), as PgBouncer 1.21+ does:
 *
 * - each distinct Parse (query text and parameter types) becomes one
 *   statement of the process, named PGSIEVE_<n> on servers, shared by
 *   every client that prepares the same thing under any name;
 * - a client's names map to those statements; Bind, Describe and Close
 *   are rewritten, and a statement the linked server lacks is prepared
 *   on it first, transparently;
 * - each server connection keeps at most max_prepared_statements, least
 *   recently used closed first.
 *
 * Responses must reach the client in request order, including the ones
 * the pooler answers itself (ParseComplete for a statement the server
 * already has, CloseComplete) and excluding the ones to its own Parse
 * and Close. So every request sent to a server is queued; each
 * response either completes the queue's head or belongs to it. An error
 * in an extended-protocol request makes the server skip to Sync, and the
 * queue skips with it, undoing what the skipped requests would have
 * prepared.
 */
#ifndef PGSIEVE_PREPARED_H
#define PGSIEVE_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;
struct pool;
struct prepared_client;
struct prepared_server;

/* Tracking applies to this pool: transaction or statement mode, a non-zero limit. */
bool prepared_tracking(const struct pool *pool);

/* Client messages prepared_client_message() needs whole. */
static inline bool prepared_needs_whole(uint8_t type)
{
	return type == 'P' || type == 'B' || type == 'D' || type == 'C';
}

enum prepared_verdict {
	PREPARED_FORWARD, /* send the message on unchanged */
	PREPARED_HANDLED, /* what it asked for is done: drop it */
};

/*
 * A client message for the linked server, seen once at its start; msg
 * is the whole message (type byte first) for the types above, else NULL.
 * May write to the server's output and the client's.
 */
enum prepared_verdict prepared_client_message(struct client *client, struct server *server,
                                              uint8_t type, const uint8_t *msg, uint32_t len);

/*
 * A client message while no server is linked (between transactions):
 * HANDLED if the pooler could answer it alone (Parse of a statement
 * already known, Close of a name, Sync and Flush after those), which
 * spares a server, and keeps a client that prepares synchronously from
 * waiting on a pool its own other connections hold.
 */
enum prepared_verdict prepared_client_unlinked(struct client *client, uint8_t type,
                                               const uint8_t *msg, uint32_t len);

/*
 * A server message to the linked client, seen at its start (body is the
 * whole body for '1', '3' and 'C', else NULL). False: drop it, it
 * answers the pooler's own request.
 */
bool prepared_server_message(struct server *server, uint8_t type, const uint8_t *body,
                             uint32_t len);
/*
 * Runs sql (a statement that raises the error the client must get) on the
 * server in place of a request the policy refused, as unnamed statement
 * and portal: the client sees the error in its place in the pipeline, and
 * the server skips to Sync and aborts a transaction as for any error.
 */
void prepared_raise(struct client *client, struct server *server, const char *sql);
/* Sends the answers the pooler gives itself whose turn has come. */
void prepared_emit(struct server *server);
/* Responses are still due: the server cannot go back to the pool. */
bool prepared_busy(const struct server *server);
/* The server ran a command with this tag outside a client's view (reset query). */
void prepared_command_tag(struct server *server, const char *tag);

/* Online restart: what a connection's statements need to live on in another process. */
bool prepared_server_portable(const struct server *server);
char *prepared_server_export(const struct server *server);
void prepared_server_import(struct server *server, const char *text);
char *prepared_client_export(const struct client *client);
void prepared_client_import(struct client *client, const char *text);

size_t prepared_client_count(const struct client *client);
size_t prepared_server_count(const struct server *server);
void prepared_client_free(struct client *client);
void prepared_server_free(struct server *server);

#endif
