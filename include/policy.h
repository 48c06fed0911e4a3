/*
 * The policy pipeline: the scripts of policy_scripts see every statement
 * a client sends (each statement of a Simple Query, each Parse) and
 * allow it, deny it, or rewrite it, before any server is involved.
 *
 * Rules (DESIGN.md section 3): scripts run in the listed order; the first
 * deny wins; a rewrite replaces the statement, which is analysed again
 * and goes on to the next script; a script error, an exhausted budget or
 * a statement that cannot be analysed denies (policy_on_error = deny, the
 * default) or is ignored (allow). policy_mode = observe logs what would
 * have happened and lets everything through.
 *
 * Phases here: connect, statement, bind, complete, disconnect, columns
 * (with masking). An approve verdict is POLICY_APPROVE: the caller holds
 * the statement (approvals.h) and asks again once a person has said yes,
 * with the client's approval_passed set.
 */
#ifndef PGSIEVE_POLICY_H
#define PGSIEVE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct client;
struct checked_stmt;
struct masker;
struct outcome;

enum policy_decision {
	POLICY_PASS,      /* forward the message as it is */
	POLICY_REWRITTEN, /* forward result.sql instead */
	POLICY_DENIED,    /* answer with result.sqlstate / result.message */
	POLICY_APPROVE,   /* hold it for a person: result.message is the reason */
};

struct policy_result {
	enum policy_decision decision;
	char *sql;     /* POLICY_REWRITTEN: the new text */
	char *message; /* POLICY_DENIED */
	char *script;  /* the script that denied or last rewrote, for the audit log */
	char sqlstate[6];
	bool multi; /* the text held several statements */
	/* POLICY_APPROVE: of the first statement that asked */
	char *fingerprint;
	char *approvers; /* "name,name" or NULL */
	long ttl;        /* seconds, 0: approval_timeout */
};

/*
 * At start and on RELOAD: compiles the scripts of the configuration in
 * force into a new Lua state and swaps it in only if all of them load.
 * False and *err (naming the script, line and message) otherwise; the
 * running set stays.
 */
bool policy_configure(char **err) MUST_CHECK;
void policy_shutdown(void);
/* Some script is loaded: statements go through the pipeline. */
bool policy_enabled(void);

/*
 * The connect phase, after authentication and before the client is told
 * it is in: a deny refuses the login with its message.
 */
void policy_connect(struct client *client, struct policy_result *out);
/* The disconnect phase (it cannot refuse anything). */
void policy_disconnect(struct client *client);

/* Runs the statement phase on a Query's text (extended: a Parse's). */
void policy_check(struct client *client, const char *sql, size_t len, bool extended,
                  struct policy_result *out);
void policy_result_clear(struct policy_result *result);

/* Some script has a bind / complete phase: Binds and results are worth decoding. */
bool policy_wants_bind(void);
bool policy_wants_complete(void);

/* A Bind's parameter, as the client sent it. */
struct bind_param {
	const uint8_t *value;
	int32_t len; /* -1: NULL */
	bool binary;
};

/*
 * The bind phase: st is the statement the Bind names (as checked at its
 * Parse); scripts may allow or deny (anything else is a script error).
 */
void policy_bind(struct client *client, const struct checked_stmt *st,
                 const struct bind_param *params, size_t n_params, struct policy_result *out);

/* The complete phase for statement `index` of st, which ended as o says. */
void policy_complete(struct client *client, const struct checked_stmt *st, size_t index,
                     const struct outcome *o);

/*
 * A statement that makes the server raise this error: what runs in place
 * of a denied statement on a linked server, so that the error arrives in
 * order and aborts a transaction as PostgreSQL's own would. malloc'd.
 */
char *policy_raise_sql(const char *sqlstate, const char *message);

/* SHOW POLICIES: the loaded scripts and what their statement phase did. */
struct policy_script_stats {
	uint64_t calls, denials, rewrites, errors;
	uint64_t approvals; /* statements it asked a person about (not those a grant let by) */
	uint64_t cached;    /* verdicts taken from the verdict cache, no call into Lua */
	uint64_t usec;      /* time spent in the phase */
};
int policy_script_count(void);
const char *policy_script_name(int script);
const struct policy_script_stats *policy_script_stats(int script);
size_t policy_memory(void);

/* An output column of a result, for the columns phase. */
struct policy_column {
	const char *name;                    /* as RowDescription names it */
	const char *schema, *table, *column; /* its table column, or NULL (an expression) */
	uint32_t type_oid;
};

/* The maskers a columns phase chose for one result's columns; shared, reference-counted. */
struct column_masks;

/*
 * The columns phase for a result of client c whose statement is sql (NULL
 * when unknown): each script with columns(cols, stmt, session) may return
 * {[i or column name] = masker or function}; the first script to name a
 * column wins. Plans are cached per (role, database, identity, statement,
 * columns), so a result costs no call into Lua unless a masker is a Lua
 * function (called per value). NULL and *err when the result must not be
 * sent: a script error or a plan that is not one (masking fails closed,
 * whatever policy_on_error says).
 */
struct column_masks *policy_columns(const struct client *c, const struct policy_column *cols, int n,
                                    const char *sql, const char **err);
/* Column i's masker, or NULL. */
const struct masker *column_masks_get(const struct column_masks *masks, int i);
void column_masks_unref(struct column_masks *masks);

/* The client is gone: its session table goes too. */
void policy_client_gone(struct client *client);

#endif
