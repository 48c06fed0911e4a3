/*
 * What became of each statement a client sent: the policy's verdict from
 * when it was checked, and the server's answer once it ran (command tag,
 * rows, duration, SQLSTATE), for the complete phase and the audit log.
 *
 * The simple protocol checks and runs a Query at once. The extended one
 * checks a statement at Parse, binds it at Bind and runs it at Execute,
 * maybe many times and in later transactions: so each client keeps its
 * statement and portal names, each mapped to the statement as checked,
 * and a queue of what it sent its server (Query and Execute, and the Sync
 * and FunctionCall that end with ReadyForQuery), in order. The server's
 * answers complete the queue's head: CommandComplete, EmptyQueryResponse
 * or PortalSuspended an Execute; each CommandComplete of a Query one of
 * its statements and its ReadyForQuery the Query; an ErrorResponse the
 * head, after which every Execute up to the next Sync did not run
 * (PostgreSQL skips to Sync).
 *
 * Active while the audit log is on or some script has a bind or complete
 * phase; otherwise a client keeps none of this.
 */
#ifndef PGSIEVE_OUTCOME_H
#define PGSIEVE_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct client;

/* A statement as the policy let it through; shared by names, portals and requests. */
struct checked_stmt {
	unsigned refs;
	bool extended;
	bool rewritten;
	bool multi;   /* a Query of several statements */
	char *script; /* the script that rewrote it, or NULL */
	char *text;   /* as the client sent it */
	char *sent;   /* as the server got it: the rewrite, or text itself */
	/* The audit log's, made on first use: a prepared statement runs many times. */
	char *fingerprint;
	char *normalized;
	/* Its RowDescription as a Describe of it answered (masking: Executes without one). */
	uint8_t *rowdesc;
	uint32_t rowdesc_len;
};

/* How a statement ended, for the complete phase and the audit record. */
enum outcome_status {
	OUTCOME_OK,
	OUTCOME_ERROR,   /* the server answered with an error */
	OUTCOME_NOT_RUN, /* skipped: an earlier message of its pipeline failed */
	OUTCOME_UNKNOWN, /* the connection ended before the answer */
};

struct outcome {
	enum outcome_status status;
	const char *command; /* the command tag without its counts: "SELECT", "UPDATE" */
	uint64_t rows;       /* what the tag counts (SELECT, INSERT, UPDATE, FETCH, COPY...) */
	usec_t duration;     /* from sending to the server to the answer */
	char sqlstate[6];    /* OUTCOME_ERROR; "" otherwise */
	const char *message; /* OUTCOME_ERROR: the server's message */
	const char *masked_columns; /* masked output columns ("a,b"), or NULL */
	uint64_t masked_values;
};

const char *outcome_status_name(enum outcome_status status);

/* Whether clients keep this state now. */
bool outcome_tracking(void);

struct checked_stmt *checked_stmt_new(const char *text, size_t len, bool extended,
                                      const char *rewrite, const char *script);
struct checked_stmt *checked_stmt_ref(struct checked_stmt *st);
void checked_stmt_unref(struct checked_stmt *st);

/*
 * The client's statement `name` (Parse) is now st; NULL when the Parse was
 * refused, which leaves no statement of that name, as a failed Parse does
 * on the server. Takes over the caller's reference.
 */
void outcome_parsed(struct client *client, const char *name, struct checked_stmt *st);
/*
 * The statement `name` as the client knows it; NULL when refused, or
 * never seen by this process (prepared before an online restart).
 */
struct checked_stmt *outcome_statement(struct client *client, const char *name);
/* Bind: portal now runs st (NULL: the Bind was refused), with these result formats. */
void outcome_bound(struct client *client, const char *portal, struct checked_stmt *st,
                   const int16_t *formats, uint16_t n_formats);
/* Close: kind 'S' a statement, 'P' a portal. */
void outcome_closed(struct client *client, char kind, const char *name);

/*
 * The Query that was checked last is on its way (a denial replaced by the
 * statement that raises it: NULL). Takes over the reference.
 */
void outcome_query_checked(struct client *client, struct checked_stmt *st);

/*
 * A message goes to the server now; msg is the whole message (type byte
 * first) for an Execute, else may be NULL.
 */
void outcome_sent(struct client *client, uint8_t type, const uint8_t *msg, uint32_t len);

/*
 * A server message on its way to the client (after the pooler's own
 * answers are taken out); body is the whole body for 'C' and 'E', else
 * may be NULL. Z's body is its transaction status.
 */
void outcome_server_message(struct client *client, uint8_t type, const uint8_t *body, uint32_t len);

/*
 * The columns of the result the server sends now, for an Execute with no
 * RowDescription of its own: its portal's as a Describe of the portal
 * answered (n_formats UINT16_MAX: the formats are those described), else
 * the statement's as its Describe answered, and the result formats its
 * Bind asked for (n_formats as in Bind: 0 all text, 1 for all, else one
 * per column). False when unknown.
 */
bool outcome_execute_columns(struct client *client, const uint8_t **rowdesc, uint32_t *len,
                             const int16_t **formats, uint16_t *n_formats);

/*
 * More of the request's pipeline follows the answer the server sends now:
 * later statements of a multi-statement Query, or Executes before the
 * next Sync (other than the Execute of a portal whose Describe this is).
 */
bool outcome_more_follows(struct client *client);

/* The server answers a Describe now: its RowDescription describes no rows that follow. */
bool outcome_describing(struct client *client);

/* The statement whose answer the server sends now, or NULL. */
const struct checked_stmt *outcome_answering(struct client *client);

/* The client is gone or its server died: what was in flight ends as unknown. */
void outcome_client_free(struct client *client);

#endif
