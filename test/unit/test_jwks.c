/*
 * jwks.c: key sets built from freshly generated RSA and EC keys; which
 * keys are kept, which are skipped and why, lookup by kid, the fit of an
 * alg to a key, the whole-document errors and the reference count.
 */
#include "jwks.h"
#include "jwt_fixture.h"
#include "unit.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static EVP_PKEY *rsa, *ec256, *ec384;

/* A set from the members of "keys", joined by commas. */
static struct jwks *parse(const char *keys, char **err)
{
	char *doc = xasprintf("{\"keys\":[%s]}", keys);
	*err = NULL;
	struct jwks *set = jwks_parse(doc, strlen(doc), err);
	free(doc);
	return set;
}

static bool skipped_has(const struct jwks *set, const char *want)
{
	for (size_t i = 0; i < jwks_skipped_count(set); i++)
		if (strstr(jwks_skipped(set, i), want))
			return true;
	fprintf(stderr, "no skipped reason has: %s\n", want);
	return false;
}

static void test_usable(void)
{
	char *r = fx_jwk(rsa, "r1", "\"use\":\"sig\",\"alg\":\"RS256\"");
	char *e1 = fx_jwk(ec256, "e1", "\"key_ops\":[\"verify\"]");
	char *e2 = fx_jwk(ec384, "e2", NULL);
	char *keys = xasprintf("%s,%s,%s", r, e1, e2);
	char *err;
	struct jwks *set = parse(keys, &err);
	CHECK(set != NULL && err == NULL);
	if (!set) {
		fprintf(stderr, "error: %s\n", err);
		free(err);
		goto out;
	}
	CHECK(jwks_count(set) == 3);
	CHECK(jwks_skipped_count(set) == 0);

	const struct jwk *k = jwks_find(set, "r1");
	CHECK(k && k == jwks_key(set, 0));
	if (k) {
		char *pem = fx_public_pem(rsa);
		CHECK_STR(jwk_kid(k), "r1");
		CHECK(jwk_type(k) == JWK_RSA);
		CHECK_STR(jwk_kty(k), "RSA");
		CHECK_STR(jwk_alg(k), "RS256");
		CHECK(jwk_curve(k) == NULL);
		CHECK(jwk_bits(k) == 2048);
		CHECK_STR(jwk_pem(k), pem);
		CHECK(EVP_PKEY_eq(jwk_pkey(k), rsa) == 1);
		CHECK(jwk_fits(k, JWK_ALG_RS256));
		CHECK(!jwk_fits(k, JWK_ALG_RS384)); /* the key says RS256 */
		CHECK(!jwk_fits(k, JWK_ALG_ES256));
		CHECK(!jwk_fits(k, JWK_ALG_HS256));
		CHECK(!jwk_fits(k, JWK_ALG_NONE));
		free(pem);
	}
	k = jwks_find(set, "e1");
	CHECK(k && k == jwks_key(set, 1));
	if (k) {
		char *pem = fx_public_pem(ec256);
		CHECK(jwk_type(k) == JWK_EC);
		CHECK_STR(jwk_kty(k), "EC");
		CHECK_STR(jwk_curve(k), "P-256");
		CHECK(jwk_alg(k) == NULL);
		CHECK(jwk_bits(k) == 256);
		CHECK_STR(jwk_pem(k), pem);
		CHECK(EVP_PKEY_eq(jwk_pkey(k), ec256) == 1);
		CHECK(jwk_fits(k, JWK_ALG_ES256));
		CHECK(!jwk_fits(k, JWK_ALG_ES384));
		CHECK(!jwk_fits(k, JWK_ALG_RS256));
		free(pem);
	}
	k = jwks_find(set, "e2");
	CHECK(k && jwk_fits(k, JWK_ALG_ES384) && !jwk_fits(k, JWK_ALG_ES256));
	CHECK(k && jwk_bits(k) == 384 && EVP_PKEY_eq(jwk_pkey(k), ec384) == 1);
	CHECK(jwks_find(set, "nope") == NULL);
	CHECK(jwks_find(set, "") == NULL);
	CHECK(jwks_find(set, NULL) == NULL); /* three keys: no guessing */
	CHECK(jwks_key(set, 3) == NULL);
	jwks_free(set);

	/* One key: a token without kid means it, with or without a kid on the key. */
	set = parse(e2, &err);
	CHECK(set && jwks_find(set, NULL) == jwks_key(set, 0));
	jwks_free(set);
	char *nokid = fx_jwk(ec256, NULL, NULL);
	set = parse(nokid, &err);
	CHECK(set && jwks_find(set, NULL) && jwk_kid(jwks_find(set, NULL)) == NULL);
	CHECK(set && jwks_find(set, "e1") == NULL);
	jwks_free(set);
	free(nokid);
out:
	free(keys);
	free(r);
	free(e1);
	free(e2);
}

static void test_skipped(void)
{
	EVP_PKEY *small = fx_rsa(1024);
	char *good = fx_jwk(rsa, "good", NULL);
	char *oct = xstrdup("{\"kid\":\"hmac\",\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}");
	char *enc = fx_jwk(rsa, "enc", "\"use\":\"enc\"");
	char *tiny = fx_jwk(small, "small", NULL);
	char *bad_n =
	    xstrdup("{\"kid\":\"badn\",\"kty\":\"RSA\",\"n\":\"ab+c/d==\",\"e\":\"AQAB\"}");
	char *no_e = xstrdup("{\"kid\":\"noe\",\"kty\":\"RSA\",\"n\":\"AQAB\"}");
	char *okp = xstrdup("{\"kid\":\"ed\",\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}");
	char *k1 = fx_jwk(ec256, "k1", NULL);
	/* the same point on a curve of another name */
	char *secp = xstrdup(k1);
	memcpy(strstr(secp, "P-256"), "P-999", 5);
	char *priv = fx_jwk(ec256, "priv", "\"d\":\"AAAA\"");
	char *ops = fx_jwk(rsa, "ops", "\"key_ops\":[\"encrypt\"]");
	char *pss = fx_jwk(rsa, "pss", "\"alg\":\"PS256\"");
	char *mismatch = fx_jwk(rsa, "mm", "\"alg\":\"ES256\"");
	char *hs = fx_jwk(rsa, "hs", "\"alg\":\"HS256\"");
	char *dup = fx_jwk(ec384, "good", NULL);
	/* P-256 coordinates that are not a point on the curve */
	char *off = xstrdup("{\"kid\":\"off\",\"kty\":\"EC\",\"crv\":\"P-256\","
	                    "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	                    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
	char *short_x = xstrdup("{\"kid\":\"short\",\"kty\":\"EC\",\"crv\":\"P-256\","
	                        "\"x\":\"AQAB\",\"y\":\"AQAB\"}");
	/* a real modulus with the public exponent 1 */
	char *e_one = fx_jwk(rsa, "e1", NULL);
	memcpy(strstr(e_one, "\"e\":\"AQAB\""), "\"e\":\"AQ\"  ", 10);
	char *keys =
	    xasprintf("%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"
	              "42,{\"kid\":7,\"kty\":\"EC\"},{\"kid\":\"nokty\"},{\"kty\":\"RSA\"},%s",
	              good, oct, enc, tiny, bad_n, no_e, okp, secp, priv, ops, pss, mismatch, hs,
	              dup, off, short_x, e_one);
	char *err;
	struct jwks *set = parse(keys, &err);
	CHECK(set != NULL);
	if (set) {
		CHECK(jwks_count(set) == 1);
		CHECK(jwks_find(set, "good") && jwk_type(jwks_find(set, "good")) == JWK_RSA);
		CHECK(jwks_skipped_count(set) == 20);
		CHECK(
		    skipped_has(set, "key 1 (kid \"hmac\"): symmetric (oct) keys are never used"));
		CHECK(skipped_has(set, "key 2 (kid \"enc\"): use \"enc\" is not for signatures"));
		CHECK(skipped_has(set, "key 3 (kid \"small\"): RSA key of 1024 bits, under 2048"));
		CHECK(skipped_has(set, "(kid \"badn\"): n is not base64url"));
		CHECK(skipped_has(set, "(kid \"noe\"): e is missing or not a string"));
		CHECK(skipped_has(set, "(kid \"ed\"): kty \"OKP\" is not supported"));
		CHECK(skipped_has(set, "(kid \"k1\"): curve P-999 is not supported"));
		CHECK(skipped_has(set, "(kid \"priv\"): has private key member d"));
		CHECK(skipped_has(set, "(kid \"ops\"): key_ops does not include verify"));
		CHECK(skipped_has(set, "(kid \"pss\"): alg \"PS256\" is not one pgsieve verifies"));
		CHECK(skipped_has(set, "(kid \"mm\"): alg \"ES256\" is not one pgsieve verifies"));
		CHECK(skipped_has(set, "(kid \"hs\"): alg \"HS256\" is not one pgsieve verifies"));
		CHECK(skipped_has(set, "key 13 (kid \"good\"): another key has the same kid"));
		CHECK(skipped_has(set, "(kid \"off\"): OpenSSL cannot build a P-256 key"));
		CHECK(skipped_has(set, "(kid \"short\"): x and y must be 32 bytes each for P-256"));
		CHECK(skipped_has(set, "key 16: not a JSON object"));
		CHECK(skipped_has(set, "key 17: kid is not a string"));
		CHECK(skipped_has(set, "key 18 (kid \"nokty\"): no kty"));
		CHECK(skipped_has(set, "key 19: n is missing or not a string"));
		CHECK(
		    skipped_has(set, "key 20 (kid \"e1\"): OpenSSL's public key check refuses it"));
		CHECK(jwks_skipped(set, 20) == NULL);
		/* the first of two keys with one kid is kept */
		CHECK(jwks_find(set, "good") == jwks_key(set, 0));
	}
	jwks_free(set);
	free(err);

	/* without the good key, nothing is usable: an error listing every reason */
	char *bad = xasprintf("%s,%s,%s", oct, enc, tiny);
	set = parse(bad, &err);
	CHECK(set == NULL);
	CHECK(err && strstr(err, "JWKS has no usable key (key 0 (kid \"hmac\"): symmetric"));
	CHECK(err && strstr(err, "; key 2 (kid \"small\"): RSA key of 1024 bits"));
	free(err);
	free(bad);

	/* a kid with a newline is made printable in the reason */
	char *nl = xstrdup("{\"kid\":\"a\\nb\",\"kty\":\"oct\"}");
	char *both = xasprintf("%s,%s", nl, good);
	set = parse(both, &err);
	CHECK(set && skipped_has(set, "key 0 (kid \"a?b\"): symmetric"));
	jwks_free(set);
	free(both);
	free(nl);

	EVP_PKEY_free(small);
	char *all[] = {good, oct, enc,      tiny, bad_n, no_e, okp,     k1,    secp, priv,
	               ops,  pss, mismatch, hs,   dup,   off,  short_x, e_one, keys};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		free(all[i]);
}

static void check_doc_error(const char *doc, size_t len, const char *want)
{
	char *err = NULL;
	struct jwks *set = jwks_parse(doc, len, &err);
	CHECK(set == NULL);
	CHECK(err && strstr(err, want));
	if (err && !strstr(err, want))
		fprintf(stderr, "error was: %s\n", err);
	free(err);
	jwks_free(set);
}

static void test_document_errors(void)
{
	check_doc_error("", 0, "JWKS is not JSON");
	check_doc_error("{\"keys\":[", 9, "JWKS is not JSON");
	check_doc_error("{}", 2, "JWKS has no \"keys\" array");
	check_doc_error("[]", 2, "JWKS has no \"keys\" array");
	check_doc_error("{\"keys\":{}}", 11, "JWKS has no \"keys\" array");
	check_doc_error("{\"keys\":[]}", 11, "JWKS has no usable key");
	check_doc_error("{\"keys\":[],\"keys\":[]}", 21, "JWKS is not JSON");
	/* the length given counts, not a NUL */
	check_doc_error("{\"keys\":[]}garbage", 11, "JWKS has no usable key");

	char *many = xstrdup("{\"keys\":[");
	for (int i = 0; i <= JWKS_MAX_KEYS; i++) {
		char *more = xasprintf("%s%s{}", many, i ? "," : "");
		free(many);
		many = more;
	}
	char *doc = xasprintf("%s]}", many);
	check_doc_error(doc, strlen(doc), "JWKS has 101 keys, more than 100");
	free(doc);
	free(many);

	size_t big = JWKS_MAX_BYTES + 1;
	char *huge = xmalloc(big);
	memset(huge, ' ', big);
	check_doc_error(huge, big, "larger than");
	free(huge);
}

static void test_refcount(void)
{
	char *e = fx_jwk(ec256, "e1", NULL);
	char *err;
	struct jwks *set = parse(e, &err);
	CHECK(set != NULL);
	if (!set) {
		free(err);
		free(e);
		return;
	}
	/* a verification holds the set while a refresh drops it */
	struct jwks *held = jwks_ref(set);
	CHECK(held == set);
	const struct jwk *k = jwks_find(held, "e1");
	jwks_free(set);
	/* still there: valgrind would see a use after free here */
	CHECK(k && strncmp(jwk_pem(k), "-----BEGIN PUBLIC KEY-----", 26) == 0);
	CHECK(jwks_count(held) == 1);
	jwks_free(held);
	jwks_free(NULL);
	free(e);
}

static void test_alg_names(void)
{
	CHECK(jwk_alg_from_name("RS256") == JWK_ALG_RS256);
	CHECK(jwk_alg_from_name("ES512") == JWK_ALG_ES512);
	CHECK(jwk_alg_from_name("none") == JWK_ALG_NONE);
	CHECK(jwk_alg_from_name("HS384") == JWK_ALG_HS384);
	CHECK(jwk_alg_from_name("rs256") == JWK_ALG_UNKNOWN); /* case-sensitive */
	CHECK(jwk_alg_from_name("PS256") == JWK_ALG_UNKNOWN);
	CHECK(jwk_alg_from_name("unknown") == JWK_ALG_UNKNOWN);
	CHECK_STR(jwk_alg_name(JWK_ALG_ES384), "ES384");
	CHECK_STR(jwk_alg_name((enum jwk_alg)99), "unknown");
}

int main(void)
{
	rsa = fx_rsa(2048);
	ec256 = fx_ec("P-256");
	ec384 = fx_ec("P-384");
	test_usable();
	test_skipped();
	test_document_errors();
	test_refcount();
	test_alg_names();
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	return unit_summary("test_jwks");
}
