/*
 * Token logins (auth_type oidc and oauth, DESIGN.md section 4): the
 * issuer's key set and the rules a client's token is verified by.
 *
 * The key set comes from oidc_jwks_file (read at start and on RELOAD) or
 * oidc_jwks_url (fetched over HTTPS without blocking the loop, again every
 * oidc_jwks_refresh, and at once when a token names a key the set does not
 * have, at most once per oidc_jwks_min_refresh). A failed fetch keeps the
 * set it had (served stale, said in SHOW OIDC). A login whose token needs
 * the fetch under way waits for it, bounded by the fetch's deadline.
 */
#ifndef PGSIEVE_OIDC_H
#define PGSIEVE_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct client;
struct token_identity;

/* At start and on RELOAD: rules from the settings, the key set (re)loaded. */
bool oidc_configure(char **err) MUST_CHECK;
void oidc_shutdown(void);
/* For --check: what oidc_configure would refuse, without loading anything. */
bool oidc_check(char **err) MUST_CHECK;

/* NULL if token logins can be checked; otherwise what is missing, for the log. */
const char *oidc_not_ready(void);

/*
 * The verdict on a client's token: id (the caller's to clear and free) or
 * NULL with why (for the log: never the token).
 */
typedef void (*oidc_verdict_fn)(struct client *client, struct token_identity *id, const char *why);

/* Verifies token; done runs now, or later if the key set must be fetched first. */
void oidc_verify(struct client *client, const char *token, size_t len, oidc_verdict_fn done);
/* The client is going: a verification it waits for is dropped. */
void oidc_forget(struct client *client);

/*
 * The OAUTHBEARER discovery reply (RFC 7628 section 3.2.2) that lets a
 * client such as libpq 18 find the issuer and run its own flow. malloc'd.
 */
char *oidc_discovery_reply(void);

/* SHOW OIDC: one row of what the key set and the verifications are doing. */
struct oidc_status {
	const char *source; /* the file or URL, or NULL */
	size_t keys;
	usec_t loaded_at;   /* wall clock of the set in use, 0: none */
	usec_t fetched_at;  /* wall clock of the last fetch attempt's end, 0: none */
	const char *result; /* of the last load or fetch: "ok" or why not */
	uint64_t fetches;   /* attempts */
	uint64_t accepted;  /* tokens */
	uint64_t refused;   /* tokens */
	size_t waiting;     /* logins waiting for a fetch */
};
void oidc_get_status(struct oidc_status *out);

#endif
