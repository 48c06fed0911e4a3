/*
 * Verifying a JWT (RFC 7519) from an identity provider against its JWKS,
 * and reading who it speaks for.
 *
 * The JOSE header is read here, strictly, before libjwt sees the token:
 * libjwt 1.x verifies with whatever alg the header names, so handed a
 * public key's PEM with "alg": "HS256" it would check an HMAC keyed with
 * that PEM, which anyone can compute. So none and HS* are refused by name
 * whatever the allow-list says, the alg must be allowed and fit the key
 * (RS* an RSA key, ES256 P-256, ES384 P-384, ES512 P-521, and the key's
 * own alg if it names one), and libjwt only ever gets a public key PEM
 * with an RS* or ES* token. A crit header is refused (no extension is
 * understood), and so is a typ other than JWT, which libjwt 1.10 cannot
 * verify (RFC 9068's "at+jwt" among them). Headers naming keys (jku, x5u,
 * jwk, x5c) are ignored: keys come from the configured JWKS only.
 *
 * Claims are checked after the signature: iss exactly, aud (a string or
 * an array), exp, nbf and iat with a leeway, required scopes, and the
 * user claim that names the identity. JSON with duplicate member names is
 * refused, so what is checked here is what any other reader would see.
 *
 * The token is a credential: no message ever holds it or any part of it.
 * Messages name only the header's alg, kid and typ, and after the
 * signature has verified, the iss, sub and jti claims, made printable.
 *
 * Pure: no I/O and no clock; the caller passes the time.
 */
#ifndef PGSIEVE_TOKEN_H
#define PGSIEVE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "jwks.h"
#include "util.h"

/* Longer tokens are refused unread; real ones are 1 to 4 KB. */
#define TOKEN_MAX_LEN (16 * 1024)

/* One outcome per reason a token is refused; messages say more. */
enum token_result {
	TOKEN_OK,
	TOKEN_MALFORMED,       /* bad segments, base64url or JSON; a claim of the wrong type */
	TOKEN_UNSUPPORTED,     /* a crit header or a typ other than JWT */
	TOKEN_ALG_NOT_ALLOWED, /* none, HS*, unknown, not allowed, or not fitting the key */
	TOKEN_UNKNOWN_KID,     /* no key in the set for the header's kid */
	TOKEN_BAD_SIGNATURE,
	TOKEN_WRONG_ISSUER,
	TOKEN_WRONG_AUDIENCE,
	TOKEN_EXPIRED,       /* exp passed, or no exp where one is required */
	TOKEN_NOT_YET_VALID, /* nbf or iat in the future */
	TOKEN_MISSING_SCOPE,
	TOKEN_NO_IDENTITY, /* the user claim is absent, empty, not a string or not printable */
};

/* A short lower-case name, for log lines and counters: "expired". */
const char *token_result_name(enum token_result r);

/* The allow-list is a bit set over enum jwk_alg. */
#define TOKEN_ALG(a)       (1u << (a))
#define TOKEN_ALGS_DEFAULT (TOKEN_ALG(JWK_ALG_RS256) | TOKEN_ALG(JWK_ALG_ES256))

/*
 * Parses an allow-list such as "RS256, ES256" (names separated by commas
 * and/or spaces) into *out. none and HS* are refused here too: they can
 * never verify against a public key.
 */
bool token_parse_algorithms(const char *list, unsigned *out, char **err) MUST_CHECK;

/*
 * What a token must satisfy. A zeroed struct plus issuer, audience and now
 * is the strictest setting: default algorithms, no leeway, exp required.
 */
struct token_rules {
	const char *issuer;   /* iss must equal it; NULL refuses every token */
	const char *audience; /* aud must contain it; NULL refuses every token */
	unsigned algorithms;  /* TOKEN_ALG() bits; 0 means TOKEN_ALGS_DEFAULT */
	unsigned leeway;      /* seconds of clock skew forgiven on exp, nbf and iat */
	time_t now;
	const char *const *required_scopes; /* each in "scope" (space-separated) or "scp" */
	size_t n_required_scopes;
	const char *user_claim;   /* names the identity; NULL means "sub" */
	const char *groups_claim; /* an array of strings or one string; NULL means "groups" */
	bool allow_no_exp;        /* accept tokens without exp: long-lived ones then pass */
};

/*
 * Who a verified token speaks for. The strings point into claims and live
 * as long as it does; claims is read-only.
 */
struct token_identity {
	const char *identity; /* the user claim's value */
	const char **groups;  /* malloc'd array */
	size_t n_groups;
	const char *issuer;
	const char *subject; /* NULL if the token has no sub */
	const char *jti;     /* NULL if the token has no jti */
	time_t exp;          /* 0 if the token has none */
	json_t *claims;      /* the whole payload, with act (RFC 8693) if present */
};

/*
 * Verifies len bytes of token (no NUL needed) with the keys and rules.
 * TOKEN_OK fills *out, to be released with token_identity_clear(); any
 * other result leaves *out zeroed and sets *why, a malloc'd message for
 * the log. keys may be NULL (not fetched yet): every token is then
 * TOKEN_UNKNOWN_KID.
 */
enum token_result token_verify(const char *token, size_t len, const struct jwks *keys,
                               const struct token_rules *rules, struct token_identity *out,
                               char **why) MUST_CHECK;

/* Frees what token_verify() filled and zeroes *id; a zeroed *id is fine. */
void token_identity_clear(struct token_identity *id);

#endif
