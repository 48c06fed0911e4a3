/*
 * token.c: tokens signed by libjwt with freshly generated keys, verified
 * against a JWKS made from their public halves; the time, issuer,
 * audience, scope, identity and groups rules; and the tokens an attacker
 * would send (none, HS256 keyed with the public key, an alg that does not
 * fit the key, tampering, bad segments). Every refusal is also checked
 * for its message never holding any part of the token.
 */
#include "token.h"
#include "ident.h"
#include "jwt_fixture.h"
#include "unit.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL
#define ISS "https://idp.example"
#define AUD "pgsieve"

static EVP_PKEY *rsa, *ec256, *ec384, *stranger;
static struct jwks *keys;

static struct token_rules rules(void)
{
	return (struct token_rules){
	    .issuer = ISS,
	    .audience = AUD,
	    .now = (time_t)NOW,
	};
}

/* Claims of a valid token, with more members if extra is not "". */
static char *claims(const char *extra)
{
	return xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\","
	                 "\"exp\":%lld,\"iat\":%lld,\"jti\":\"j-1\"%s%s}",
	                 NOW + 300, NOW - 10, *extra ? "," : "", extra);
}

/* The message must not hold the token, nor any of its segments. */
static bool leaks(const char *why, const char *token)
{
	if (strlen(token) >= 8 && strstr(why, token))
		return true;
	for (const char *p = token; *p;) {
		size_t n = strcspn(p, ".");
		/* a segment is distinctive from 8 characters on */
		if (n >= 8) {
			char *seg = xstrndup(p, n);
			bool found = strstr(why, seg) != NULL;
			free(seg);
			if (found)
				return true;
		}
		p += n + (p[n] == '.');
	}
	return false;
}

/* token_verify() on a NUL-terminated token, checking the message and *out. */
static enum token_result verify_with(const char *token, const struct jwks *set,
                                     const struct token_rules *r, struct token_identity *out)
{
	char *why = NULL;
	enum token_result res = token_verify(token, strlen(token), set, r, out, &why);
	if (res == TOKEN_OK) {
		CHECK(why == NULL && out->claims != NULL && out->identity != NULL);
	} else {
		bool clean = why != NULL && !leaks(why, token);
		CHECK(clean);
		if (!clean)
			fprintf(stderr, "  why: %s\n  token: %s\n", why ? why : "(null)", token);
		CHECK(out->claims == NULL && out->identity == NULL && out->groups == NULL);
	}
	free(why);
	return res;
}

/* The result alone, the identity dropped. */
static enum token_result verify(const char *token, const struct token_rules *r)
{
	struct token_identity id;
	enum token_result res = verify_with(token, keys, r, &id);
	token_identity_clear(&id);
	return res;
}

/* The message of a refusal, to look into; malloc'd. */
static char *why_of(const char *token, const struct token_rules *r)
{
	struct token_identity id;
	char *why = NULL;
	if (token_verify(token, strlen(token), keys, r, &id, &why) == TOKEN_OK)
		token_identity_clear(&id);
	return why ? why : xstrdup("");
}

/* A token signed by key with alg and kid, over claims(extra). */
static char *signed_token(EVP_PKEY *key, jwt_alg_t alg, const char *kid, const char *extra)
{
	char *c = claims(extra);
	char *t = fx_sign_key(key, alg, kid, c);
	free(c);
	return t;
}

/* A token signed RS256 by key r1 over exactly the claims formatted. */
static char *signed_fmt(const char *fmt, ...) PRINTF_LIKE(1, 2);
static char *signed_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *c = NULL;
	if (vasprintf(&c, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *t = fx_sign_key(rsa, JWT_ALG_RS256, "r1", c);
	free(c);
	return t;
}

#define EXPECT(token_expr, r, want)                                                                \
	do {                                                                                       \
		char *t_ = (token_expr);                                                           \
		enum token_result got_ = verify(t_, (r));                                          \
		CHECK(got_ == (want));                                                             \
		if (got_ != (want))                                                                \
			fprintf(stderr, "  got %s, want %s\n", token_result_name(got_),            \
			        token_result_name(want));                                          \
		free(t_);                                                                          \
	} while (0)

static void test_valid(void)
{
	struct token_rules r = rules();
	char *t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"dba\",\"staff\"]");
	struct token_identity id;
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK);
	CHECK_STR(id.identity, "alice");
	CHECK_STR(id.subject, "alice");
	CHECK_STR(id.issuer, ISS);
	CHECK_STR(id.jti, "j-1");
	CHECK(id.exp == (time_t)(NOW + 300));
	CHECK(id.n_groups == 2 && id.groups);
	if (id.n_groups == 2) {
		CHECK_STR(id.groups[0], "dba");
		CHECK_STR(id.groups[1], "staff");
	}
	token_identity_clear(&id);
	CHECK(id.claims == NULL && id.groups == NULL && id.identity == NULL);
	token_identity_clear(&id); /* twice is fine */

	/* the length given counts: what follows the token is not read */
	char *padded = xasprintf("%s.garbage", t);
	char *why = NULL;
	CHECK(token_verify(padded, strlen(t), keys, &r, &id, &why) == TOKEN_OK && why == NULL);
	token_identity_clear(&id);
	free(padded);
	free(t);

	EXPECT(signed_token(ec256, JWT_ALG_ES256, "e1", ""), &r, TOKEN_OK);
	/* typ JWT in any case, as libjwt reads it */
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"jwt\"}",
	                      "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\","
	                      "\"exp\":1700000300}"),
	       &r, TOKEN_OK);

	/* ES384 only once allowed */
	EXPECT(signed_token(ec384, JWT_ALG_ES384, "e2", ""), &r, TOKEN_ALG_NOT_ALLOWED);
	r.algorithms = TOKEN_ALG(JWK_ALG_RS256) | TOKEN_ALG(JWK_ALG_ES384);
	EXPECT(signed_token(ec384, JWT_ALG_ES384, "e2", ""), &r, TOKEN_OK);
	EXPECT(signed_token(ec256, JWT_ALG_ES256, "e1", ""), &r, TOKEN_ALG_NOT_ALLOWED);
	r.algorithms = TOKEN_ALG(JWK_ALG_RS384);
	EXPECT(signed_token(rsa, JWT_ALG_RS384, "r2", ""), &r, TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r2", ""), &r, TOKEN_ALG_NOT_ALLOWED);
}

static void test_time(void)
{
	struct token_rules r = rules();
	const char *base = "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\"";
	EXPECT(signed_fmt("%s,\"exp\":%lld}", base, NOW - 1), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"exp\":%lld}", base, NOW), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"exp\":%lld}", base, NOW + 1), &r, TOKEN_OK);
	EXPECT(signed_fmt("%s,\"nbf\":%lld,\"exp\":%lld}", base, NOW + 30, NOW + 300), &r,
	       TOKEN_NOT_YET_VALID);
	EXPECT(signed_fmt("%s,\"nbf\":%lld,\"exp\":%lld}", base, NOW, NOW + 300), &r, TOKEN_OK);
	EXPECT(signed_fmt("%s,\"iat\":%lld,\"exp\":%lld}", base, NOW + 30, NOW + 300), &r,
	       TOKEN_NOT_YET_VALID);
	/* reals are NumericDates too */
	EXPECT(signed_fmt("%s,\"exp\":%lld.5}", base, NOW), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"exp\":%lld.5}", base, NOW + 1), &r, TOKEN_OK);
	EXPECT(signed_fmt("%s,\"exp\":1.7e9}", base), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"exp\":1e300}", base), &r, TOKEN_MALFORMED);
	EXPECT(signed_fmt("%s,\"exp\":\"%lld\"}", base, NOW + 300), &r, TOKEN_MALFORMED);
	EXPECT(signed_fmt("%s,\"exp\":%lld,\"nbf\":null}", base, NOW + 300), &r, TOKEN_MALFORMED);
	/* integers at the limits of the type overflow neither comparison nor message */
	EXPECT(signed_fmt("%s,\"exp\":-9223372036854775807}", base), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"exp\":9223372036854775807,\"nbf\":-9223372036854775807}", base), &r,
	       TOKEN_OK);

	/* with a leeway of 60 s */
	r.leeway = 60;
	EXPECT(signed_fmt("%s,\"exp\":%lld}", base, NOW - 59), &r, TOKEN_OK);
	EXPECT(signed_fmt("%s,\"exp\":%lld}", base, NOW - 60), &r, TOKEN_EXPIRED);
	EXPECT(signed_fmt("%s,\"nbf\":%lld,\"exp\":%lld}", base, NOW + 60, NOW + 300), &r,
	       TOKEN_OK);
	EXPECT(signed_fmt("%s,\"nbf\":%lld,\"exp\":%lld}", base, NOW + 61, NOW + 300), &r,
	       TOKEN_NOT_YET_VALID);
	EXPECT(signed_fmt("%s,\"iat\":%lld,\"exp\":%lld}", base, NOW + 60, NOW + 300), &r,
	       TOKEN_OK);
	EXPECT(signed_fmt("%s,\"iat\":%lld,\"exp\":%lld}", base, NOW + 61, NOW + 300), &r,
	       TOKEN_NOT_YET_VALID);
	r.leeway = 0;

	/* no exp: short-lived tokens only, unless allowed */
	EXPECT(signed_fmt("%s,\"iat\":%lld}", base, NOW), &r, TOKEN_EXPIRED);
	char *t = signed_fmt("%s,\"iat\":%lld}", base, NOW);
	char *why = why_of(t, &r);
	free(t);
	CHECK(strstr(why, "no exp") != NULL);
	free(why);
	r.allow_no_exp = true;
	EXPECT(signed_fmt("%s,\"iat\":%lld}", base, NOW), &r, TOKEN_OK);
	struct token_identity id;
	t = signed_fmt("%s,\"iat\":%lld}", base, NOW);
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && id.exp == 0);
	token_identity_clear(&id);
	free(t);
}

static void test_issuer_audience(void)
{
	struct token_rules r = rules();
	const char *tail = "\"sub\":\"alice\",\"exp\":1700000300";
	EXPECT(signed_fmt("{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",%s}", tail), &r,
	       TOKEN_WRONG_ISSUER);
	EXPECT(signed_fmt("{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\",%s}", tail), &r,
	       TOKEN_WRONG_ISSUER);
	EXPECT(signed_fmt("{\"aud\":\"" AUD "\",%s}", tail), &r, TOKEN_WRONG_ISSUER);
	EXPECT(signed_fmt("{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\",%s}", tail), &r,
	       TOKEN_WRONG_ISSUER);
	/* the message names the token by iss, sub and jti */
	char *t = signed_fmt("{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\","
	                     "\"jti\":\"j-9\",%s}",
	                     tail);
	char *why = why_of(t, &r);
	free(t);
	CHECK(strstr(why, "iss \"https://evil.example\"") && strstr(why, "sub \"alice\"") &&
	      strstr(why, "jti \"j-9\""));
	free(why);

	EXPECT(signed_fmt("{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"" AUD "\"],%s}", tail), &r,
	       TOKEN_OK);
	EXPECT(signed_fmt("{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"pgsieve2\"],%s}", tail), &r,
	       TOKEN_WRONG_AUDIENCE);
	EXPECT(signed_fmt("{\"iss\":\"" ISS "\",\"aud\":\"other\",%s}", tail), &r,
	       TOKEN_WRONG_AUDIENCE);
	EXPECT(signed_fmt("{\"iss\":\"" ISS "\",%s}", tail), &r, TOKEN_WRONG_AUDIENCE);
	EXPECT(signed_fmt("{\"iss\":\"" ISS "\",\"aud\":[],%s}", tail), &r, TOKEN_WRONG_AUDIENCE);

	/* rules without issuer or audience refuse everything */
	struct token_rules open = r;
	open.issuer = NULL;
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", ""), &open, TOKEN_WRONG_ISSUER);
	open = r;
	open.audience = NULL;
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", ""), &open, TOKEN_WRONG_AUDIENCE);
}

static void test_scopes(void)
{
	struct token_rules r = rules();
	const char *need[] = {"db:connect", "db:read"};
	r.required_scopes = need;
	r.n_required_scopes = 2;
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":\"openid db:read db:connect\""),
	       &r, TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":\"  db:connect  db:read \""), &r,
	       TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":\"openid db:readx db:connect\""),
	       &r, TOKEN_MISSING_SCOPE);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":\"db:connectdb:read\""), &r,
	       TOKEN_MISSING_SCOPE);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scp\":[\"db:read\",\"db:connect\"]"), &r,
	       TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scp\":[\"db:read\"]"), &r,
	       TOKEN_MISSING_SCOPE);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scp\":\"db:read db:connect\""), &r,
	       TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1",
	                    "\"scope\":\"db:read\",\"scp\":[\"db:connect\"]"),
	       &r, TOKEN_OK);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", ""), &r, TOKEN_MISSING_SCOPE);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":[\"db:read db:connect\"]"), &r,
	       TOKEN_MISSING_SCOPE);
	char *t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"scope\":\"db:connect\"");
	char *why = why_of(t, &r);
	CHECK(strstr(why, "no scope \"db:read\"") != NULL);
	free(why);
	free(t);
	/* no required scopes: none needed */
	r.n_required_scopes = 0;
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", ""), &r, TOKEN_OK);
}

static void test_identity(void)
{
	struct token_rules r = rules();
	struct token_identity id;
	char *t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":\"dba\"");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && id.n_groups == 1 && id.groups &&
	      strcmp(id.groups[0], "dba") == 0);
	token_identity_clear(&id);
	free(t);
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && id.n_groups == 0 && !id.groups);
	token_identity_clear(&id);
	free(t);
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[]");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && id.n_groups == 0);
	token_identity_clear(&id);
	free(t);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":42"), &r, TOKEN_MALFORMED);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"dba\",42]"), &r,
	       TOKEN_MALFORMED);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"dba\",\"a\\nb\"]"), &r,
	       TOKEN_MALFORMED);

	/* another groups claim */
	r.groups_claim = "roles";
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"dba\"],\"roles\":[\"reader\"]");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && id.n_groups == 1 &&
	      strcmp(id.groups[0], "reader") == 0);
	token_identity_clear(&id);
	free(t);
	r.groups_claim = NULL;

	/* the identity from another claim */
	r.user_claim = "email";
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"email\":\"alice@corp.example\"");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK);
	CHECK_STR(id.identity, "alice@corp.example");
	CHECK_STR(id.subject, "alice");
	token_identity_clear(&id);
	free(t);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", ""), &r, TOKEN_NO_IDENTITY);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"email\":\"\""), &r, TOKEN_NO_IDENTITY);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"email\":[\"a@b\"]"), &r,
	       TOKEN_NO_IDENTITY);
	EXPECT(signed_token(rsa, JWT_ALG_RS256, "r1", "\"email\":\"alice\\n@corp.example\""), &r,
	       TOKEN_NO_IDENTITY);
	r.user_claim = NULL;
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS256, "r1",
	                   "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000300}"),
	       &r, TOKEN_NO_IDENTITY);
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS256, "r1",
	                   "{\"iss\":\"" ISS "\",\"aud\":\"" AUD
	                   "\",\"sub\":7,\"exp\":1700000300}"),
	       &r, TOKEN_NO_IDENTITY);
	/* a UTF-8 identity is fine */
	t = fx_sign_key(rsa, JWT_ALG_RS256, "r1",
	                "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"jos\\u00e9\","
	                "\"exp\":1700000300}");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK && strcmp(id.identity, "jos\xc3\xa9") == 0);
	token_identity_clear(&id);
	free(t);

	/* an agent acting for a user (RFC 8693): act is in the claims */
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"act\":{\"sub\":\"agent-7\"}");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK);
	json_t *act = json_object_get(id.claims, "act");
	CHECK(json_is_object(act));
	CHECK_STR(json_string_value(json_object_get(act, "sub")), "agent-7");
	CHECK_STR(id.identity, "alice");
	token_identity_clear(&id);
	free(t);
}

/* A verified identity goes to the ident map as it is: +group lines match its groups. */
static void test_ident_map(void)
{
	struct token_rules r = rules();
	char *err = NULL;
	struct ident_map *m = ident_parse("oidc +dba admin\n"
	                                  "oidc alice reader\n",
	                                  "ident.conf", &err);
	CHECK(m != NULL);
	struct token_identity id;
	char *t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"staff\",\"dba\"]");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK);
	CHECK(ident_allows_groups(m, "oidc", id.identity, id.groups, id.n_groups, "admin"));
	CHECK(ident_allows_groups(m, "oidc", id.identity, id.groups, id.n_groups, "reader"));
	token_identity_clear(&id);
	free(t);
	t = signed_token(rsa, JWT_ALG_RS256, "r1", "\"groups\":[\"staff\"]");
	CHECK(verify_with(t, keys, &r, &id) == TOKEN_OK);
	CHECK(!ident_allows_groups(m, "oidc", id.identity, id.groups, id.n_groups, "admin"));
	token_identity_clear(&id);
	free(t);
	ident_free(m);
	free(err);
}

static void test_attacks(void)
{
	struct token_rules r = rules();
	char *c = claims("");
	char *pub = fx_public_pem(rsa);

	/* alg none, even if the allow-list names it */
	EXPECT(fx_build("{\"alg\":\"none\"}", c, ""), &r, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_build("{\"alg\":\"none\",\"kid\":\"r1\"}", c, "c2ln"), &r, TOKEN_ALG_NOT_ALLOWED);
	struct token_rules lax = r;
	lax.algorithms = ~0u;
	EXPECT(fx_build("{\"alg\":\"none\",\"kid\":\"r1\"}", c, ""), &lax, TOKEN_ALG_NOT_ALLOWED);

	/*
	 * HS256 keyed with the RSA public key's PEM: libjwt itself would
	 * take it if handed that PEM, which is why it never is.
	 */
	char *hs = fx_sign(JWT_ALG_HS256, (const unsigned char *)pub, strlen(pub), "r1", c);
	jwt_t *jwt = NULL;
	CHECK(jwt_decode(&jwt, hs, (const unsigned char *)pub, (int)strlen(pub)) == 0);
	jwt_free(jwt);
	CHECK(verify(hs, &r) == TOKEN_ALG_NOT_ALLOWED);
	lax.algorithms = TOKEN_ALG(JWK_ALG_HS256) | TOKEN_ALG(JWK_ALG_RS256);
	CHECK(verify(hs, &lax) == TOKEN_ALG_NOT_ALLOWED);
	lax.algorithms = ~0u;
	CHECK(verify(hs, &lax) == TOKEN_ALG_NOT_ALLOWED);
	char *why = why_of(hs, &lax);
	CHECK(strstr(why, "HS256 is never accepted") != NULL);
	free(why);
	for (size_t i = 0; i < jwks_count(keys); i++)
		CHECK(!jwk_fits(jwks_key(keys, i), JWK_ALG_HS256));
	free(hs);
	/* the same with the key's PEM as jwks.c wrote it */
	const char *jwks_pem = jwk_pem(jwks_find(keys, "r1"));
	EXPECT(fx_sign(JWT_ALG_HS384, (const unsigned char *)jwks_pem, strlen(jwks_pem), "r1", c),
	       &lax, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_sign(JWT_ALG_HS512, (const unsigned char *)"secret", 6, NULL, c), &lax,
	       TOKEN_ALG_NOT_ALLOWED);

	/* an alg that does not fit the key named */
	EXPECT(fx_sign_key(ec256, JWT_ALG_ES256, "r1", c), &r, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS256, "e1", c), &r, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_sign_key(ec384, JWT_ALG_ES256, "e2", c), &lax, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_sign_key(ec256, JWT_ALG_ES384, "e1", c), &lax, TOKEN_ALG_NOT_ALLOWED);
	/* r1 says RS256 in the JWKS: RS384 with it is refused even where allowed */
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS384, "r1", c), &lax, TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS384, "r2", c), &lax, TOKEN_OK);
	EXPECT(fx_build("{\"alg\":\"PS256\",\"kid\":\"r1\"}", c, "c2ln"), &lax,
	       TOKEN_ALG_NOT_ALLOWED);
	EXPECT(fx_build("{\"kid\":\"r1\"}", c, "c2ln"), &r, TOKEN_MALFORMED);
	EXPECT(fx_build("{\"alg\":256,\"kid\":\"r1\"}", c, "c2ln"), &r, TOKEN_MALFORMED);

	/* tampering */
	char *t = fx_sign_key(rsa, JWT_ALG_RS256, "r1", c);
	char *other = claims("\"groups\":[\"dba\"]");
	char *forged = fx_build("{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}", other,
	                        strrchr(t, '.') + 1);
	CHECK(verify(forged, &r) == TOKEN_BAD_SIGNATURE);
	free(forged);
	free(other);
	char *flipped = xstrdup(t);
	char *last = flipped + strlen(flipped) - 3; /* not the last: its low bits must be 0 */
	*last = *last == 'A' ? 'B' : 'A';
	CHECK(verify(flipped, &r) == TOKEN_BAD_SIGNATURE);
	free(flipped);
	free(t);
	t = fx_sign_key(ec256, JWT_ALG_ES256, "e1", c);
	flipped = xstrdup(t);
	last = strrchr(flipped, '.') + 5;
	*last = *last == 'A' ? 'B' : 'A';
	CHECK(verify(flipped, &r) == TOKEN_BAD_SIGNATURE);
	free(flipped);
	free(t);
	/* signed by a key not in the set, under a kid that is */
	EXPECT(fx_sign_key(stranger, JWT_ALG_RS256, "r1", c), &r, TOKEN_BAD_SIGNATURE);

	/* kids */
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS256, "nope", c), &r, TOKEN_UNKNOWN_KID);
	EXPECT(fx_sign_key(rsa, JWT_ALG_RS256, NULL, c), &r, TOKEN_UNKNOWN_KID);
	EXPECT(fx_build("{\"alg\":\"RS256\",\"kid\":7}", c, "c2ln"), &r, TOKEN_MALFORMED);
	t = fx_sign_key(rsa, JWT_ALG_RS256, "nope\n", c);
	why = why_of(t, &r);
	CHECK(strstr(why, "no key has kid \"nope?\"") != NULL);
	free(why);
	free(t);
	struct token_identity id;
	t = fx_sign_key(rsa, JWT_ALG_RS256, "r1", c);
	CHECK(verify_with(t, NULL, &r, &id) == TOKEN_UNKNOWN_KID);
	free(t);
	/* a set of one key: no kid needed, but a wrong one is still wrong */
	char *one_jwk = fx_jwk(ec256, "only", NULL);
	char *doc = xasprintf("{\"keys\":[%s]}", one_jwk);
	char *err = NULL;
	struct jwks *one = jwks_parse(doc, strlen(doc), &err);
	CHECK(one != NULL);
	t = fx_sign_key(ec256, JWT_ALG_ES256, NULL, c);
	CHECK(one && verify_with(t, one, &r, &id) == TOKEN_OK);
	token_identity_clear(&id);
	free(t);
	t = fx_sign_key(ec256, JWT_ALG_ES256, "e1", c);
	CHECK(one && verify_with(t, one, &r, &id) == TOKEN_UNKNOWN_KID);
	free(t);
	jwks_free(one);
	free(err);
	free(doc);
	free(one_jwk);

	/* header features not understood, with a valid signature */
	char *p = claims("");
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"]}", p), &r,
	       TOKEN_UNSUPPORTED);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"at+jwt\"}", p), &r,
	       TOKEN_UNSUPPORTED);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":1}", p), &r,
	       TOKEN_UNSUPPORTED);
	/* headers naming other keys are ignored: the set decides */
	EXPECT(
	    fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"jku\":\"https://evil\"}", p),
	    &r, TOKEN_OK);
	/* duplicate members: two readers could disagree on which counts */
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"alg\":\"HS256\"}", p), &r,
	       TOKEN_MALFORMED);
	char *dup = xasprintf("{\"sub\":\"admin\",%s", p + 1);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", dup), &r, TOKEN_MALFORMED);
	free(dup);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", "[1]"), &r,
	       TOKEN_MALFORMED);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{\"sub\":"), &r,
	       TOKEN_MALFORMED);
	EXPECT(fx_build_rs256(rsa, "[\"RS256\"]", p), &r, TOKEN_MALFORMED);
	EXPECT(fx_build_rs256(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"} x", p), &r, TOKEN_MALFORMED);
	free(p);

	free(pub);
	free(c);
}

static void test_shape(void)
{
	struct token_rules r = rules();
	char *c = claims("");
	char *t = fx_sign_key(rsa, JWT_ALG_RS256, "r1", c);
	char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
	CHECK(verify(t, &r) == TOKEN_OK);

	/* segments */
	char *two = xstrndup(t, (size_t)(dot2 - t));
	CHECK(verify(two, &r) == TOKEN_MALFORMED);
	char *four = xasprintf("%s.%s", t, dot2 + 1);
	CHECK(verify(four, &r) == TOKEN_MALFORMED);
	char *trailing = xasprintf("%s.", t);
	CHECK(verify(trailing, &r) == TOKEN_MALFORMED);
	char *no_sig = xstrndup(t, (size_t)(dot2 - t) + 1);
	CHECK(verify(no_sig, &r) == TOKEN_MALFORMED);
	char *no_payload = xasprintf("%.*s.%s", (int)(dot1 - t), t, dot2);
	CHECK(verify(no_payload, &r) == TOKEN_MALFORMED);
	CHECK(verify("", &r) == TOKEN_MALFORMED);
	CHECK(verify("..", &r) == TOKEN_MALFORMED);
	CHECK(verify("abc", &r) == TOKEN_MALFORMED);
	char *why = why_of(four, &r);
	CHECK(strstr(why, "4 segments") != NULL);
	free(why);
	free(two);
	free(four);
	free(trailing);
	free(no_sig);
	free(no_payload);

	/* base64url must be exact: no padding, no other alphabet, no whitespace */
	const char *bad[] = {"=", "+", "/", " ", "*", "\n"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *in_header = xasprintf("%.*s%s%s", (int)(dot1 - t), t, bad[i], dot1);
		CHECK(verify(in_header, &r) == TOKEN_MALFORMED);
		char *in_sig = xasprintf("%s%s", t, bad[i]);
		CHECK(verify(in_sig, &r) == TOKEN_MALFORMED);
		free(in_header);
		free(in_sig);
	}
	/* a last character with stray low bits decodes like another: refused */
	char *stray = xstrdup(t);
	char *end = stray + strlen(stray) - 1;
	*end = (char)(*end + 1);
	CHECK(verify(stray, &r) == TOKEN_MALFORMED);
	free(stray);
	/* a NUL inside the length given */
	size_t len = strlen(t);
	char *nul = xstrdup(t);
	nul[len - 5] = '\0';
	struct token_identity id;
	why = NULL;
	CHECK(token_verify(nul, len, keys, &r, &id, &why) == TOKEN_MALFORMED);
	free(why);
	free(nul);

	/* too large: refused unread, whatever it holds */
	char *big_claim = xmalloc(TOKEN_MAX_LEN + 1);
	memset(big_claim, 'x', TOKEN_MAX_LEN);
	big_claim[TOKEN_MAX_LEN] = '\0';
	char *extra = xasprintf("\"pad\":\"%s\"", big_claim);
	char *big = signed_token(rsa, JWT_ALG_RS256, "r1", extra);
	CHECK(strlen(big) > TOKEN_MAX_LEN);
	CHECK(verify(big, &r) == TOKEN_MALFORMED);
	why = why_of(big, &r);
	CHECK(strstr(why, "over the limit") != NULL);
	free(why);
	free(big);
	free(extra);
	/* just under the limit is fine (base64url makes 4 characters of 3 bytes) */
	big_claim[TOKEN_MAX_LEN / 4 * 3 - 1000] = '\0';
	extra = xasprintf("\"pad\":\"%s\"", big_claim);
	big = signed_token(rsa, JWT_ALG_RS256, "r1", extra);
	CHECK(strlen(big) <= TOKEN_MAX_LEN);
	CHECK(verify(big, &r) == TOKEN_OK);
	free(big);
	free(extra);
	free(big_claim);

	free(t);
	free(c);
}

static void test_algorithms(void)
{
	unsigned set = 0;
	char *err = NULL;
	CHECK(token_parse_algorithms("RS256, ES256", &set, &err) && set == TOKEN_ALGS_DEFAULT);
	CHECK(token_parse_algorithms("RS256,ES384 ES512", &set, &err) &&
	      set ==
	          (TOKEN_ALG(JWK_ALG_RS256) | TOKEN_ALG(JWK_ALG_ES384) | TOKEN_ALG(JWK_ALG_ES512)));
	CHECK(token_parse_algorithms(" RS512 ", &set, &err) && set == TOKEN_ALG(JWK_ALG_RS512));
	const char *refused[][2] = {
	    {"RS256, HS256", "HS256 is never accepted"},
	    {"none", "none is never accepted"},
	    {"PS256", "unknown algorithm \"PS256\""},
	    {"rs256", "unknown algorithm \"rs256\""},
	    {"RS256ABCDEFGHIJKLMNOP", "unknown algorithm"},
	    {"", "no algorithm"},
	    {" , ,", "no algorithm"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		set = 123;
		err = NULL;
		CHECK(!token_parse_algorithms(refused[i][0], &set, &err) && set == 123);
		CHECK(err && strstr(err, refused[i][1]));
		if (err && !strstr(err, refused[i][1]))
			fprintf(stderr, "error was: %s\n", err);
		free(err);
	}
	CHECK_STR(token_result_name(TOKEN_EXPIRED), "expired");
	CHECK_STR(token_result_name(TOKEN_ALG_NOT_ALLOWED), "algorithm not allowed");
	CHECK_STR(token_result_name((enum token_result)99), "unknown");
}

int main(void)
{
	rsa = fx_rsa(2048);
	stranger = fx_rsa(2048);
	ec256 = fx_ec("P-256");
	ec384 = fx_ec("P-384");
	char *r1 = fx_jwk(rsa, "r1", "\"use\":\"sig\",\"alg\":\"RS256\"");
	char *r2 = fx_jwk(rsa, "r2", NULL);
	char *e1 = fx_jwk(ec256, "e1", NULL);
	char *e2 = fx_jwk(ec384, "e2", NULL);
	char *doc = xasprintf("{\"keys\":[%s,%s,%s,%s]}", r1, r2, e1, e2);
	char *err = NULL;
	keys = jwks_parse(doc, strlen(doc), &err);
	if (!keys) {
		fprintf(stderr, "fixture JWKS refused: %s\n", err);
		return 1;
	}
	free(doc);
	free(r1);
	free(r2);
	free(e1);
	free(e2);

	test_valid();
	test_time();
	test_issuer_audience();
	test_scopes();
	test_identity();
	test_ident_map();
	test_attacks();
	test_shape();
	test_algorithms();

	jwks_free(keys);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(stranger);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	return unit_summary("test_token");
}
