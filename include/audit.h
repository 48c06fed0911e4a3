/*
 * The audit log: one JSON object per line for each connect, failed
 * login, statement (with the policy's verdict) and disconnect, to
 * audit_file and/or syslog (audit_syslog).
 *
 * The event loop never waits for the disk: records go into a bounded
 * in-memory queue that a writer thread empties; when the queue is full a
 * record is dropped and counted (SHOW AUDIT), never the loop stalled.
 * audit_query_text decides what of a statement's text is kept: full,
 * normalized (constants replaced by $n, the default: no values of
 * customers' data in the log) or none.
 */
#ifndef PGSIEVE_AUDIT_H
#define PGSIEVE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct client;
struct checked_stmt;
struct outcome;

/* At start and on RELOAD/SIGHUP: (re)opens the file; false and *err if it cannot. */
bool audit_configure(char **err) MUST_CHECK;
/* Starts the writer thread: once, after the process has daemonized. */
bool audit_start(char **err) MUST_CHECK;
void audit_shutdown(void);
bool audit_enabled(void);

void audit_connect(const struct client *client);
void audit_login_failed(const struct client *client, const char *reason);
/*
 * A statement that went to a server, once its answer is known: its text,
 * the policy's verdict (allow or rewrite, and the script that rewrote),
 * and what came of it (result, command, rows, duration, SQLSTATE).
 */
void audit_statement(const struct client *client, struct checked_stmt *st, const struct outcome *o);
/* A statement the policy refused in `phase` ("statement", "bind"): it reached no server. */
void audit_denied(const struct client *client, const char *sql, size_t len, bool extended,
                  const char *phase, const char *script, const char *sqlstate);
void audit_disconnect(const struct client *client);

/* An approval's life: requested, answered, timed out, withdrawn; a grant made, used, revoked. */
struct audit_approval {
	const char *event;
	uint64_t approval_id;
	uint64_t grant_id; /* 0: none */
	uint64_t session;  /* 0: not about one session (a revocation) */
	const char *client_addr, *database, *user, *identity;
	const char *principal; /* grants: whom it is for */
	const char *fingerprint, *statement, *reason, *script;
	const char *approver; /* who answered, granted or revoked */
	double seconds;       /* waited; < 0: not said */
};
void audit_approval(const struct audit_approval *a);

struct audit_stats {
	uint64_t written; /* records handed to the file or syslog */
	uint64_t lost;    /* dropped: the queue was full or a write failed */
	size_t pending;   /* bytes waiting for the writer */
};
void audit_get_stats(struct audit_stats *out);

#endif
