/*
 * JWT verification; see token.h.
 *
 * The order is fixed so that nothing from an unverified token reaches
 * libjwt or the log unchecked: size, three segments, the header (alg, crit,
 * typ, kid, the key and whether the alg fits it), then the payload and
 * signature as base64url and JSON, then the signature through libjwt,
 * and only then the claims. The first failure is the result.
 */
#include "token.h"
#include "base64.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

static const char *const result_names[] = {
    [TOKEN_OK] = "ok",
    [TOKEN_MALFORMED] = "malformed",
    [TOKEN_UNSUPPORTED] = "unsupported",
    [TOKEN_ALG_NOT_ALLOWED] = "algorithm not allowed",
    [TOKEN_UNKNOWN_KID] = "unknown kid",
    [TOKEN_BAD_SIGNATURE] = "bad signature",
    [TOKEN_WRONG_ISSUER] = "wrong issuer",
    [TOKEN_WRONG_AUDIENCE] = "wrong audience",
    [TOKEN_EXPIRED] = "expired",
    [TOKEN_NOT_YET_VALID] = "not yet valid",
    [TOKEN_MISSING_SCOPE] = "missing scope",
    [TOKEN_NO_IDENTITY] = "no identity",
};

const char *token_result_name(enum token_result r)
{
	return (size_t)r < ARRAY_SIZE(result_names) ? result_names[r] : "unknown";
}

/* Why none or an HMAC alg can never be allowed; NULL for the others. */
static const char *never_allowed(enum jwk_alg a)
{
	switch (a) {
	case JWK_ALG_NONE:
		return "an unsigned token proves nothing";
	case JWK_ALG_HS256:
	case JWK_ALG_HS384:
	case JWK_ALG_HS512:
		return "an HMAC cannot be verified with a public key";
	default:
		return NULL;
	}
}

bool token_parse_algorithms(const char *list, unsigned *out, char **err)
{
	unsigned set = 0;
	for (const char *p = list + strspn(list, ", \t"); *p; p += strspn(p, ", \t")) {
		size_t len = strcspn(p, ", \t");
		char name[16];
		strlcpy_printable(name, p, len < sizeof(name) ? len + 1 : sizeof(name));
		enum jwk_alg a = len < sizeof(name) ? jwk_alg_from_name(name) : JWK_ALG_UNKNOWN;
		if (never_allowed(a)) {
			*err =
			    xasprintf("algorithm %s is never accepted: %s", name, never_allowed(a));
			return false;
		}
		if (a == JWK_ALG_UNKNOWN) {
			*err = xasprintf("unknown algorithm \"%s\" (pgsieve verifies RS256, RS384, "
			                 "RS512, ES256, ES384 and ES512)",
			                 name);
			return false;
		}
		set |= TOKEN_ALG(a);
		p += len;
	}
	if (!set) {
		*err = xstrdup("no algorithm is allowed");
		return false;
	}
	*out = set;
	return true;
}

/* ---- messages ---- */

/*
 * Sets *why and returns r. With claims (only once the signature has
 * verified), the message ends with the token's iss, sub and jti, so the
 * log can tell which token it was without holding the token.
 */
static enum token_result refuse(char **why, json_t *claims, enum token_result r, const char *fmt,
                                ...) PRINTF_LIKE(4, 5);
static enum token_result refuse(char **why, json_t *claims, enum token_result r, const char *fmt,
                                ...)
{
	/* ctx holds three names with 71 characters of value each */
	char msg[256], ctx[3 * 80 + 2] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	static const char *const names[] = {"iss", "sub", "jti"};
	size_t n = 0;
	for (size_t i = 0; claims && i < ARRAY_SIZE(names); i++) {
		const char *v = json_string_value(json_object_get(claims, names[i]));
		char printable[72];
		if (!v)
			continue;
		strlcpy_printable(printable, v, sizeof(printable));
		n += (size_t)snprintf(ctx + n, sizeof(ctx) - n, "%s%s \"%s\"", n ? ", " : " (",
		                      names[i], printable);
	}
	if (n)
		snprintf(ctx + n, sizeof(ctx) - n, ")");
	*why = xasprintf("%s%s", msg, ctx);
	return r;
}

/* ---- the header ---- */

/* A base64url segment holding a JSON object; NULL if it is anything else. */
static json_t *decode_object(const char *seg, size_t len)
{
	size_t n;
	uint8_t *bytes = base64url_decode(seg, len, &n);
	json_t *obj =
	    bytes ? json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(bytes);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

/* Picks the key for the token's header and checks the alg against it. */
static enum token_result check_header(json_t *header, const struct jwks *keys,
                                      const struct token_rules *rules, const struct jwk **key,
                                      enum jwk_alg *alg_out, char **why)
{
	const char *alg = json_string_value(json_object_get(header, "alg"));
	if (!alg)
		return refuse(why, NULL, TOKEN_MALFORMED, "header has no alg string");
	char name[16];
	strlcpy_printable(name, alg, sizeof(name));
	enum jwk_alg a = jwk_alg_from_name(alg);
	unsigned allowed = rules->algorithms ? rules->algorithms : TOKEN_ALGS_DEFAULT;
	/* Before the allow-list, which cannot make these safe. */
	if (never_allowed(a))
		return refuse(why, NULL, TOKEN_ALG_NOT_ALLOWED, "alg %s is never accepted: %s",
		              name, never_allowed(a));
	if (a == JWK_ALG_UNKNOWN)
		return refuse(why, NULL, TOKEN_ALG_NOT_ALLOWED, "alg \"%s\" is not supported",
		              name);
	if (!(allowed & TOKEN_ALG(a)))
		return refuse(why, NULL, TOKEN_ALG_NOT_ALLOWED,
		              "alg %s is not an allowed algorithm", name);
	if (json_object_get(header, "crit"))
		return refuse(why, NULL, TOKEN_UNSUPPORTED, "crit: no extension is understood");
	json_t *typ = json_object_get(header, "typ");
	if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
		char t[32];
		strlcpy_printable(t, json_is_string(typ) ? json_string_value(typ) : "?", sizeof(t));
		return refuse(why, NULL, TOKEN_UNSUPPORTED,
		              "typ \"%s\" is not supported: libjwt 1.10 verifies only typ JWT", t);
	}
	json_t *kid_json = json_object_get(header, "kid");
	const char *kid = json_string_value(kid_json);
	if (kid_json && !kid)
		return refuse(why, NULL, TOKEN_MALFORMED, "kid is not a string");
	char kid_p[72] = "";
	if (kid)
		strlcpy_printable(kid_p, kid, sizeof(kid_p));
	if (!keys)
		return refuse(why, NULL, TOKEN_UNKNOWN_KID, "no key set is loaded");
	*key = jwks_find(keys, kid);
	if (!*key && kid)
		return refuse(why, NULL, TOKEN_UNKNOWN_KID, "no key has kid \"%s\"", kid_p);
	if (!*key)
		return refuse(why, NULL, TOKEN_UNKNOWN_KID,
		              "token has no kid and the key set has %zu keys", jwks_count(keys));
	if (!jwk_fits(*key, a)) {
		const char *curve = jwk_curve(*key), *key_alg = jwk_alg(*key);
		return refuse(why, NULL, TOKEN_ALG_NOT_ALLOWED,
		              "alg %s does not fit key \"%s\" (%s%s%s%s%s)", name, kid_p,
		              jwk_kty(*key), curve ? " " : "", curve ? curve : "",
		              key_alg ? ", for " : "", key_alg ? key_alg : "");
	}
	*alg_out = a;
	return TOKEN_OK;
}

/*
 * libjwt checks the signature with the key's PEM. It parses the header
 * again; reading the same alg back guards against the two parsers ever
 * disagreeing.
 */
static bool signature_verifies(const char *token, size_t len, const struct jwk *key,
                               enum jwk_alg alg)
{
	char *copy = xstrndup(token, len);
	const char *pem = jwk_pem(key);
	jwt_t *jwt = NULL;
	bool ok = jwt_decode(&jwt, copy, (const unsigned char *)pem, (int)strlen(pem)) == 0 &&
	          jwt_get_alg(jwt) == jwt_str_alg(jwk_alg_name(alg));
	jwt_free(jwt);
	OPENSSL_cleanse(copy, len);
	free(copy);
	ERR_clear_error(); /* libjwt leaves OpenSSL's errors in the queue */
	return ok;
}

/* ---- the claims ---- */

/*
 * A NumericDate claim (RFC 7519 2): an integer or a real, fractions of a
 * second dropped. false if present but not a number of seconds in range.
 */
static bool numeric_date(json_t *claims, const char *name, long long *out, bool *present)
{
	json_t *v = json_object_get(claims, name);
	*present = v != NULL;
	*out = 0;
	if (!v || json_is_integer(v)) {
		*out = v ? json_integer_value(v) : 0;
		return true;
	}
	/* 1e15 s is thirty million years: anything past it is not a date. */
	if (json_is_real(v) && json_real_value(v) > -1e15 && json_real_value(v) < 1e15) {
		*out = (long long)json_real_value(v);
		return true;
	}
	return false;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* aud is a string or an array of strings (RFC 7519 4.1.3). */
static bool has_audience(json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	for (size_t i = 0; i < json_array_size(aud); i++) {
		const char *s = json_string_value(json_array_get(aud, i));
		if (s && strcmp(s, want) == 0)
			return true;
	}
	return false;
}

/*
 * Scopes come as "scope", a space-separated string (RFC 8693 4.2), or as
 * "scp", an array (Okta) or also a string (Microsoft Entra); either counts.
 */
static bool has_scope(json_t *claims, const char *want)
{
	static const char *const names[] = {"scope", "scp"};
	size_t want_len = strlen(want);
	for (size_t i = 0; want_len && i < ARRAY_SIZE(names); i++) {
		json_t *v = json_object_get(claims, names[i]);
		for (const char *p = json_string_value(v); p && *p;) {
			p += strspn(p, " ");
			size_t len = strcspn(p, " ");
			if (len == want_len && memcmp(p, want, len) == 0)
				return true;
			p += len;
		}
		for (size_t j = 0; j < json_array_size(v); j++) {
			const char *s = json_string_value(json_array_get(v, j));
			if (s && strcmp(s, want) == 0)
				return true;
		}
	}
	return false;
}

/* The groups claim as an array of strings in *out; false if it has another shape. */
static bool read_groups(json_t *claims, const char *name, struct token_identity *out)
{
	json_t *g = json_object_get(claims, name);
	if (!g)
		return true;
	if (json_is_string(g)) {
		out->groups = xmalloc(sizeof(*out->groups));
		out->groups[out->n_groups++] = json_string_value(g);
		return !has_control(json_string_value(g));
	}
	if (!json_is_array(g))
		return false;
	out->groups = xcalloc(json_array_size(g) + 1, sizeof(*out->groups));
	for (size_t i = 0; i < json_array_size(g); i++) {
		const char *s = json_string_value(json_array_get(g, i));
		if (!s || has_control(s))
			return false;
		out->groups[out->n_groups++] = s;
	}
	return true;
}

static enum token_result check_claims(json_t *c, const struct token_rules *rules,
                                      struct token_identity *out, char **why)
{
	const char *iss = json_string_value(json_object_get(c, "iss"));
	if (!rules->issuer)
		return refuse(why, c, TOKEN_WRONG_ISSUER, "no issuer is configured");
	if (!iss || strcmp(iss, rules->issuer) != 0)
		return refuse(why, c, TOKEN_WRONG_ISSUER, "%s",
		              iss ? "iss is not the issuer" : "no iss");
	json_t *aud = json_object_get(c, "aud");
	if (!rules->audience)
		return refuse(why, c, TOKEN_WRONG_AUDIENCE, "no audience is configured");
	if (!has_audience(aud, rules->audience)) {
		char want[72];
		strlcpy_printable(want, rules->audience, sizeof(want));
		return refuse(why, c, TOKEN_WRONG_AUDIENCE, "aud %s \"%s\"",
		              aud ? "does not include" : "is missing, so not", want);
	}

	long long exp, nbf, iat, now = (long long)rules->now, leeway = rules->leeway;
	bool has_exp, has_nbf, has_iat;
	if (!numeric_date(c, "exp", &exp, &has_exp) || !numeric_date(c, "nbf", &nbf, &has_nbf) ||
	    !numeric_date(c, "iat", &iat, &has_iat))
		return refuse(why, c, TOKEN_MALFORMED,
		              "exp, nbf or iat is not a number of seconds");
	if (!has_exp && !rules->allow_no_exp)
		return refuse(why, c, TOKEN_EXPIRED,
		              "no exp: only tokens that expire are accepted");
	/* The dates are printed, not subtracted: a hostile one could overflow. */
	if (has_exp && exp <= now - leeway)
		return refuse(why, c, TOKEN_EXPIRED, "exp %lld is past (now %lld, leeway %lld s)",
		              exp, now, leeway);
	if (has_nbf && nbf > now + leeway)
		return refuse(why, c, TOKEN_NOT_YET_VALID,
		              "nbf %lld is ahead (now %lld, leeway %lld s)", nbf, now, leeway);
	if (has_iat && iat > now + leeway)
		return refuse(why, c, TOKEN_NOT_YET_VALID,
		              "iat %lld is ahead (now %lld, leeway %lld s)", iat, now, leeway);

	for (size_t i = 0; i < rules->n_required_scopes; i++) {
		if (!has_scope(c, rules->required_scopes[i])) {
			char want[72];
			strlcpy_printable(want, rules->required_scopes[i], sizeof(want));
			return refuse(why, c, TOKEN_MISSING_SCOPE, "no scope \"%s\"", want);
		}
	}

	const char *user_claim = rules->user_claim ? rules->user_claim : "sub";
	const char *identity = json_string_value(json_object_get(c, user_claim));
	if (!identity || !*identity || has_control(identity)) {
		char name[72];
		strlcpy_printable(name, user_claim, sizeof(name));
		return refuse(why, c, TOKEN_NO_IDENTITY,
		              "claim %s is missing, empty, not a string or not printable", name);
	}
	const char *groups_claim = rules->groups_claim ? rules->groups_claim : "groups";
	if (!read_groups(c, groups_claim, out)) {
		char name[72];
		strlcpy_printable(name, groups_claim, sizeof(name));
		return refuse(why, c, TOKEN_MALFORMED,
		              "claim %s is not a string or an array of printable strings", name);
	}
	out->identity = identity;
	out->issuer = iss;
	out->subject = json_string_value(json_object_get(c, "sub"));
	out->jti = json_string_value(json_object_get(c, "jti"));
	out->exp = (time_t)exp;
	return TOKEN_OK;
}

/* ---- all of it ---- */

enum token_result token_verify(const char *token, size_t len, const struct jwks *keys,
                               const struct token_rules *rules, struct token_identity *out,
                               char **why)
{
	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (len > TOKEN_MAX_LEN)
		return refuse(why, NULL, TOKEN_MALFORMED,
		              "token of %zu bytes, over the limit of %d", len, TOKEN_MAX_LEN);
	const char *seg[3];
	size_t seg_len[3], n = 0;
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i < len && token[i] != '.')
			continue;
		if (n < 3) {
			seg[n] = token + start;
			seg_len[n] = i - start;
		}
		n++;
		start = i + 1;
	}
	if (n != 3)
		return refuse(why, NULL, TOKEN_MALFORMED, "%zu segments, not 3", n);

	json_t *header = decode_object(seg[0], seg_len[0]);
	if (!header)
		return refuse(why, NULL, TOKEN_MALFORMED,
		              "header is not base64url of a JSON object");
	const struct jwk *key = NULL;
	enum jwk_alg alg = JWK_ALG_UNKNOWN;
	enum token_result r = check_header(header, keys, rules, &key, &alg, why);
	json_decref(header);
	if (r != TOKEN_OK)
		return r;

	size_t sig_len;
	uint8_t *sig = base64url_decode(seg[2], seg_len[2], &sig_len);
	bool sig_ok = sig && sig_len > 0;
	free(sig);
	if (!sig_ok)
		return refuse(why, NULL, TOKEN_MALFORMED, "signature is empty or not base64url");
	json_t *claims = decode_object(seg[1], seg_len[1]);
	if (!claims)
		return refuse(why, NULL, TOKEN_MALFORMED,
		              "payload is not base64url of a JSON object");
	if (!signature_verifies(token, len, key, alg)) {
		json_decref(claims);
		char kid[72];
		strlcpy_printable(kid, jwk_kid(key) ? jwk_kid(key) : "", sizeof(kid));
		return refuse(why, NULL, TOKEN_BAD_SIGNATURE,
		              "signature does not verify with key \"%s\"", kid);
	}
	out->claims = claims;
	r = check_claims(claims, rules, out, why);
	if (r != TOKEN_OK)
		token_identity_clear(out);
	return r;
}

void token_identity_clear(struct token_identity *id)
{
	free(id->groups);
	json_decref(id->claims);
	memset(id, 0, sizeof(*id));
}
