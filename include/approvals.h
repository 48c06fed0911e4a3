/*
 * Approvals: statements a policy wants a person to look at before they
 * run (sieve.approve), and the just-in-time grants that let the same
 * statement shape through again for a while.
 *
 * This module is the store and nothing else: pending requests, their
 * answers and deadlines, grants, the webhook that announces a request,
 * and the audit records of all of it. It knows nothing of clients,
 * servers or the protocol: whoever asks for an approval passes a
 * callback, called exactly once with the outcome (unless the request is
 * withdrawn first), and decides then what the client gets. Keeping it so
 * lets the store move elsewhere (a table in PostgreSQL shared by several
 * pgsieve processes) behind the same functions.
 *
 * Everything runs in the pooler's loop: deadlines are libevent timers,
 * the webhook goes out through fetch.h, nothing blocks.
 */
#ifndef PGSIEVE_APPROVALS_H
#define PGSIEVE_APPROVALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct event_base;

/* The longest grant: a standing permission belongs in the role's privileges. */
#define APPROVALS_MAX_GRANT ((usec_t)30 * 86400 * USEC_PER_SEC)
/* Live grants, at most; APPROVE ... FOR beyond that is refused. */
#define APPROVALS_MAX_GRANTS 10000

/* What became of a request. */
enum approval_outcome {
	APPROVAL_APPROVED,
	APPROVAL_DENIED,
	APPROVAL_TIMED_OUT,
	APPROVAL_CANCELLED, /* the process stops: nobody can answer any more */
};

struct approval_answer {
	enum approval_outcome outcome;
	uint64_t id;
	const char *approver; /* APPROVED, DENIED: the console user who answered */
	const char *reason;   /* DENIED: the approver's words (may be NULL); CANCELLED: why */
	usec_t waited;        /* since the request */
};

/* Called once with the outcome; the request is gone from the store by then. */
typedef void (*approval_done_fn)(void *owner, const struct approval_answer *answer);

/* A request: the statement, whose it is, and why the policy wants a person. */
struct approval_request {
	uint64_t session; /* the client's id, as SHOW CLIENTS shows it */
	const char *database;
	const char *user;     /* the database role */
	const char *identity; /* a token login's identity, or NULL */
	const char *client_addr;
	const char *fingerprint; /* of the statement that asked; grants are per fingerprint */
	const char *statement;   /* the text held */
	const char *reason;
	const char *script;    /* the script that asked */
	const char *approvers; /* comma-separated names that may answer, or NULL: any approver */
	usec_t timeout;        /* > 0 */
};

/* The store's view of a pending request (SHOW APPROVALS). */
struct approval_info {
	uint64_t id;
	uint64_t session;
	char *database, *user, *identity, *client_addr;
	char *fingerprint, *statement, *reason, *script, *approvers;
	usec_t requested_at; /* wall clock */
	usec_t expires_at;   /* wall clock */
	usec_t requested_mono;
};

/* A just-in-time grant (SHOW GRANTS). */
struct approval_grant {
	uint64_t id;
	uint64_t approval_id; /* the request whose answer made it */
	char *database;
	char *principal; /* the identity, or the database role when there is none */
	char *fingerprint, *statement, *granted_by;
	usec_t granted_at, expires_at; /* wall clock */
	usec_t expires_mono;
	uint64_t uses;
};

/* Who answers, from the admin console. */
struct approver {
	const char *user;     /* the console login */
	const char *identity; /* its token identity, or NULL */
};

/* Once at start, with the loop the timers and the webhook run in. */
void approvals_init(struct event_base *base);

/*
 * Records a request and announces it (webhook, audit). True with *id;
 * false with *err (malloc'd) and *sqlstate when the store is full
 * (approval_max_pending).
 */
bool approvals_request(const struct approval_request *req, approval_done_fn done, void *owner,
                       uint64_t *id, char **err, const char **sqlstate) MUST_CHECK;

/* The requester is gone (the client disconnected): forgotten, no callback. */
void approvals_withdraw(uint64_t id, const char *why);

enum approvals_status {
	APPROVALS_OK,
	APPROVALS_UNKNOWN,      /* no such pending request (answered, timed out, withdrawn) */
	APPROVALS_SELF,         /* the approver is whom the statement belongs to */
	APPROVALS_NOT_APPROVER, /* the request names its approvers, and not this one */
	APPROVALS_FULL,         /* a grant was asked for and there are too many */
};

/*
 * APPROVE (approve = true) or DENY. grant_for > 0: also a grant of the
 * statement's fingerprint to its identity (or role) for that long, whose
 * id is *grant_id. The callback of the request runs before this returns.
 */
enum approvals_status approvals_answer(uint64_t id, bool approve, const struct approver *who,
                                       const char *reason, usec_t grant_for,
                                       uint64_t *grant_id) MUST_CHECK;

/*
 * A live grant covers this statement for this principal in this
 * database: its use is counted and audited, and true returned.
 */
bool approvals_grant_use(const char *database, const char *user, const char *identity,
                         uint64_t session, const char *client_addr, const char *fingerprint,
                         uint64_t *grant_id);

/* REVOKE GRANT: false when there is no such live grant. */
bool approvals_revoke(uint64_t grant_id, const char *by);

/* Every pending request, oldest first / every live grant, oldest first. */
void approvals_foreach(void (*fn)(void *arg, const struct approval_info *a), void *arg);
void approvals_foreach_grant(void (*fn)(void *arg, const struct approval_grant *g), void *arg);

/* Shutdown, online restart: every pending request ends CANCELLED with this reason. */
void approvals_cancel_all(const char *why);

/* At exit: timers, grants and webhooks in flight are dropped. */
void approvals_shutdown(void);

#endif
