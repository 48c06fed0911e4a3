/*
 * Unit tests for md5.c, scram.c and authfile.c. Expected values are
 * external: RFC 7677's SCRAM-SHA-256 example, md5 digests computed with
 * md5sum, and SCRAM secrets computed with Python's hashlib, e.g.
 *   printf '%s' 'secretuser' | md5sum
 * so a wrong implementation cannot agree with itself here.
 */
#define _POSIX_C_SOURCE 200809L

#include "authfile.h"
#include "md5.h"
#include "scram.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* RFC 7677 section 3 */
#define RFC_NONCE        "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_NONCE
#define RFC_SERVER_FIRST "r=" RFC_NONCE RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=" RFC_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The same credentials in PostgreSQL's secret form (Python hashlib). */
#define RFC_SECRET                                                                                 \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":"                                                                                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
/* "correct horse", salt "0123456789abcdef", 4096 iterations (Python hashlib). */
#define HORSE_SECRET                                                                               \
	"SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=" \
	":"                                                                                        \
	"bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70="
/* "a b", same salt: what "a<U+00A0>b" must SASLprep to. */
#define A_SPACE_B_SECRET                                                                           \
	"SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$6BO7t2vkXQo8diIKuZXGm+tFMiLZX3qhOQBJVDePJg8=" \
	":"                                                                                        \
	"kEj+dIKzhHaByVZNTPoh4XnwDFoBgXutkTH1P8M7PU4="

static bool server_first(struct scram_server *st, const char *msg, char **out)
{
	char *err = NULL;
	bool ok = scram_server_handle_client_first(st, msg, strlen(msg), out, &err);
	free(err);
	return ok;
}

static void test_rfc_client(void)
{
	struct scram_client c;
	char *msg, *final = NULL, *err = NULL;

	scram_client_init_password(&c, "pencil");
	scram_client_set_username(&c, "user");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	msg = scram_client_first_message(&c);
	CHECK_STR(msg, RFC_CLIENT_FIRST);
	free(msg);
	CHECK(scram_client_handle_server_first(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                                       &final, &err));
	CHECK_STR(final, RFC_CLIENT_FINAL);
	CHECK(err == NULL);
	free(final);
	CHECK(
	    scram_client_verify_server_final(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
	CHECK(err == NULL);
	scram_client_reset(&c);

	/* A server that does not know the password: one flipped signature byte. */
	scram_client_init_password(&c, "pencil");
	scram_client_set_username(&c, "user");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	msg = scram_client_first_message(&c);
	free(msg);
	CHECK(scram_client_handle_server_first(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
	                                       &final, &err));
	free(final);
	const char *bad = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=";
	CHECK(!scram_client_verify_server_final(&c, bad, strlen(bad), &err));
	CHECK(err != NULL);
	free(err);
	scram_client_reset(&c);

	/* Username escaping. */
	scram_client_init_password(&c, "x");
	scram_client_set_username(&c, "a,b=c");
	scram_client_set_nonce_for_test(&c, "abc");
	msg = scram_client_first_message(&c);
	CHECK_STR(msg, "n,,n=a=2Cb=3Dc,r=abc");
	free(msg);
	scram_client_reset(&c);
}

static void test_rfc_server(void)
{
	struct scram_secret sec, parsed;
	struct scram_server st = {0};
	struct scram_client c;
	uint8_t salt[16], ck[SCRAM_KEY_LEN];
	char *out = NULL, *err = NULL, *s;

	CHECK(scram_parse_secret(RFC_SECRET, &parsed));
	CHECK(parsed.iterations == 4096 && parsed.salt_len == 16);
	memcpy(salt, parsed.salt, sizeof(salt));
	CHECK(scram_secret_build("pencil", salt, sizeof(salt), 4096, &sec));
	s = scram_secret_format(&sec);
	CHECK_STR(s, RFC_SECRET);
	free(s);
	CHECK(memcmp(&sec, &parsed, sizeof(sec)) == 0);

	CHECK(scram_server_start(&st, &parsed));
	scram_server_set_nonce_for_test(&st, RFC_SERVER_NONCE);
	CHECK(server_first(&st, RFC_CLIENT_FIRST, &out));
	CHECK_STR(out, RFC_SERVER_FIRST);
	free(out);
	CHECK(!scram_server_client_key(&st, ck)); /* not before the proof */
	CHECK(scram_server_handle_client_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
	                                       &out, &err));
	CHECK_STR(out, RFC_SERVER_FINAL);
	CHECK(err == NULL);
	free(out);
	CHECK(scram_server_client_key(&st, ck));
	scram_server_reset(&st);

	/* The recovered ClientKey reproduces the RFC's proof without the password. */
	scram_client_init_keys(&c, ck, parsed.server_key);
	scram_client_set_username(&c, "user");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	s = scram_client_first_message(&c);
	free(s);
	CHECK(scram_client_handle_server_first(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &out,
	                                       &err));
	CHECK_STR(out, RFC_CLIENT_FINAL);
	free(out);
	CHECK(
	    scram_client_verify_server_final(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
	scram_client_reset(&c);

	/* Tampered proof against the RFC exchange. */
	CHECK(scram_server_start(&st, &parsed));
	scram_server_set_nonce_for_test(&st, RFC_SERVER_NONCE);
	CHECK(server_first(&st, RFC_CLIENT_FIRST, &out));
	free(out);
	const char *tampered = "c=biws,r=" RFC_NONCE RFC_SERVER_NONCE
	                       ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=";
	CHECK(!scram_server_handle_client_final(&st, tampered, strlen(tampered), &out, &err));
	CHECK(out == NULL);
	CHECK_STR(err, "password authentication failed");
	free(err);
	CHECK(!scram_server_client_key(&st, ck));
	scram_server_reset(&st);
}

/*
 * Runs a whole exchange; returns true if both sides accept. The server's
 * error, if any, goes to *server_err.
 */
static bool exchange(struct scram_client *c, struct scram_server *st, char **server_err)
{
	char *m1, *m2 = NULL, *m3 = NULL, *m4 = NULL, *err = NULL;
	bool ok = false;
	*server_err = NULL;

	m1 = scram_client_first_message(c);
	if (!m1)
		return false;
	if (!scram_server_handle_client_first(st, m1, strlen(m1), &m2, server_err))
		goto out;
	if (!scram_client_handle_server_first(c, m2, strlen(m2), &m3, &err))
		goto out;
	if (!scram_server_handle_client_final(st, m3, strlen(m3), &m4, server_err))
		goto out;
	if (!scram_client_verify_server_final(c, m4, strlen(m4), &err))
		goto out;
	ok = true;
out:
	free(m1);
	free(m2);
	free(m3);
	free(m4);
	free(err);
	return ok;
}

static void test_exchanges(void)
{
	struct scram_secret sec;
	struct scram_server st = {0};
	struct scram_client c;
	uint8_t ck[SCRAM_KEY_LEN], ck2[SCRAM_KEY_LEN];
	char *err;

	/* Plaintext auth_file entry: a fresh secret with a random salt. */
	scram_secret_from_password("hunter2", SCRAM_DEFAULT_ITERATIONS, &sec);
	CHECK(sec.iterations == 4096 && sec.salt_len == 16);
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_password(&c, "hunter2");
	CHECK(exchange(&c, &st, &err));
	CHECK(err == NULL);
	CHECK(scram_server_client_key(&st, ck));
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* scram_iterations: the count the secret is built with, and advertised. */
	struct scram_secret sec2;
	scram_secret_from_password("hunter2", 1000, &sec2);
	CHECK(sec2.iterations == 1000 && sec2.salt_len == 16);
	CHECK(memcmp(sec2.salt, sec.salt, sec.salt_len) != 0);
	CHECK(scram_server_start(&st, &sec2));
	scram_client_init_password(&c, "hunter2");
	char *first = scram_client_first_message(&c), *sfirst = NULL;
	CHECK(first && server_first(&st, first, &sfirst));
	CHECK(sfirst && strstr(sfirst, ",i=1000") != NULL);
	free(first);
	free(sfirst);
	scram_client_reset(&c);
	scram_server_reset(&st);
	CHECK(scram_server_start(&st, &sec2));
	scram_client_init_password(&c, "hunter2");
	CHECK(exchange(&c, &st, &err));
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* Wrong password. */
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_password(&c, "hunter3");
	CHECK(!exchange(&c, &st, &err));
	CHECK_STR(err, "password authentication failed");
	free(err);
	CHECK(!scram_server_client_key(&st, ck2));
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* Stored secret from auth_file. */
	CHECK(scram_parse_secret(HORSE_SECRET, &sec));
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_password(&c, "correct horse");
	CHECK(exchange(&c, &st, &err));
	CHECK(scram_server_client_key(&st, ck));
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* Pass-through: ClientKey from the client, ServerKey from the secret. */
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_keys(&c, ck, sec.server_key);
	CHECK(exchange(&c, &st, &err));
	CHECK(scram_server_client_key(&st, ck2));
	CHECK(memcmp(ck, ck2, sizeof(ck)) == 0);
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* Pass-through with a wrong ClientKey fails. */
	ck[0] ^= 1;
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_keys(&c, ck, sec.server_key);
	CHECK(!exchange(&c, &st, &err));
	free(err);
	scram_client_reset(&c);
	scram_server_reset(&st);
	ck[0] ^= 1;

	/* Pass-through with a wrong ServerKey: the client refuses the server. */
	uint8_t bad_sk[SCRAM_KEY_LEN];
	memcpy(bad_sk, sec.server_key, sizeof(bad_sk));
	bad_sk[5] ^= 0x80;
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_keys(&c, ck, bad_sk);
	CHECK(!exchange(&c, &st, &err));
	CHECK(err == NULL); /* the server was satisfied; the client was not */
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* Unknown user: same shape, same failure as a wrong password. */
	char *m1, *m2 = NULL;
	CHECK(scram_server_start_unknown_user(&st, "nobody", SCRAM_DEFAULT_ITERATIONS));
	scram_client_init_password(&c, "whatever");
	m1 = scram_client_first_message(&c);
	CHECK(m1 != NULL);
	CHECK(server_first(&st, m1, &m2));
	CHECK(m2 != NULL && strlen(m2) == strlen("r=,s=,i=4096") + 24 + 24 + 24);
	CHECK(m2 != NULL && strstr(m2, ",i=4096") != NULL);
	char *salt1 = m2 && strstr(m2, ",s=") ? xstrndup(strstr(m2, ",s="), 27) : NULL;
	free(m1);
	free(m2);
	scram_client_reset(&c);
	scram_server_reset(&st);

	CHECK(scram_server_start_unknown_user(&st, "nobody", SCRAM_DEFAULT_ITERATIONS));
	scram_client_init_password(&c, "whatever");
	CHECK(!exchange(&c, &st, &err));
	CHECK_STR(err, "password authentication failed");
	free(err);
	CHECK(!scram_server_client_key(&st, ck2));
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* An unknown user advertises the count real users' secrets have. */
	CHECK(scram_server_start_unknown_user(&st, "nobody", 8192));
	scram_client_init_password(&c, "whatever");
	m1 = scram_client_first_message(&c);
	CHECK(server_first(&st, m1, &m2));
	CHECK(m2 && strstr(m2, ",i=8192") != NULL);
	free(m1);
	free(m2);
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* The same unknown name gets the same salt; another name another one. */
	CHECK(scram_server_start_unknown_user(&st, "nobody", SCRAM_DEFAULT_ITERATIONS));
	scram_client_init_password(&c, "x");
	m1 = scram_client_first_message(&c);
	CHECK(server_first(&st, m1, &m2));
	CHECK(salt1 && m2 && strstr(m2, salt1) != NULL);
	free(m1);
	free(m2);
	scram_client_reset(&c);
	scram_server_reset(&st);
	CHECK(scram_server_start_unknown_user(&st, "somebody", SCRAM_DEFAULT_ITERATIONS));
	scram_client_init_password(&c, "x");
	m1 = scram_client_first_message(&c);
	CHECK(server_first(&st, m1, &m2));
	CHECK(salt1 && m2 && strstr(m2, salt1) == NULL);
	free(m1);
	free(m2);
	free(salt1);
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* NULL secret is an unknown user too. */
	CHECK(scram_server_start(&st, NULL));
	scram_client_init_password(&c, "");
	CHECK(!exchange(&c, &st, &err));
	CHECK_STR(err, "password authentication failed");
	free(err);
	scram_client_reset(&c);
	scram_server_reset(&st);

	/* An unusable secret is refused at the start. */
	memset(&sec, 0, sizeof(sec));
	CHECK(!scram_server_start(&st, &sec));
	scram_server_reset(&st);
}

static void test_saslprep(void)
{
	struct scram_secret sec;
	const uint8_t salt[] = "0123456789abcdef";
	char *s;

	/* U+00A0 maps to a space and U+00AD to nothing (RFC 4013). */
	CHECK(scram_secret_build("a\xc2\xa0\xc2\xad"
	                         "b",
	                         salt, 16, 4096, &sec));
	s = scram_secret_format(&sec);
	CHECK_STR(s, A_SPACE_B_SECRET);
	free(s);
	/* Plain ASCII, for reference. */
	CHECK(scram_secret_build("a b", salt, 16, 4096, &sec));
	s = scram_secret_format(&sec);
	CHECK_STR(s, A_SPACE_B_SECRET);
	free(s);
	/* Invalid UTF-8 is used as raw bytes: it still works end to end. */
	struct scram_server st = {0};
	struct scram_client c;
	char *err;
	scram_secret_from_password("\xff\xfe", SCRAM_DEFAULT_ITERATIONS, &sec);
	CHECK(scram_server_start(&st, &sec));
	scram_client_init_password(&c, "\xff\xfe");
	CHECK(exchange(&c, &st, &err));
	scram_client_reset(&c);
	scram_server_reset(&st);
}

/* Feeds one client-final-message after a good client-first. */
static bool server_rejects_final(const char *final, const char *err_part)
{
	struct scram_server st = {0};
	struct scram_secret sec;
	char *out = NULL, *err = NULL;
	bool rejected;

	if (!scram_parse_secret(RFC_SECRET, &sec) || !scram_server_start(&st, &sec))
		return false;
	scram_server_set_nonce_for_test(&st, RFC_SERVER_NONCE);
	if (!server_first(&st, RFC_CLIENT_FIRST, &out))
		return false;
	free(out);
	out = NULL;
	rejected = !scram_server_handle_client_final(&st, final, strlen(final), &out, &err) &&
	           out == NULL && err != NULL && (!err_part || strstr(err, err_part));
	if (err && err_part && !strstr(err, err_part))
		fprintf(stderr, "  unexpected error: %s\n", err);
	free(out);
	free(err);
	scram_server_reset(&st);
	return rejected;
}

static bool server_rejects_first_len(const char *first, size_t len, const char *err_part)
{
	struct scram_server st = {0};
	struct scram_secret sec;
	char *out = NULL, *err = NULL;
	bool rejected;

	scram_secret_from_password("pw", SCRAM_DEFAULT_ITERATIONS, &sec);
	if (!scram_server_start(&st, &sec))
		return false;
	rejected = !scram_server_handle_client_first(&st, first, len, &out, &err) && out == NULL &&
	           err != NULL && (!err_part || strstr(err, err_part));
	if (err && err_part && !strstr(err, err_part))
		fprintf(stderr, "  unexpected error: %s\n", err);
	free(out);
	free(err);
	scram_server_reset(&st);
	return rejected;
}

static bool server_rejects_first(const char *first, const char *err_part)
{
	return server_rejects_first_len(first, strlen(first), err_part);
}

static void test_server_malformed(void)
{
	/* client-first */
	CHECK(server_rejects_first("p=tls-server-end-point,,n=,r=abc", "channel binding"));
	CHECK(server_rejects_first("n,a=someone,n=,r=abc", "authorization identity"));
	CHECK(server_rejects_first("n,,m=ext,n=,r=abc", "mandatory"));
	CHECK(server_rejects_first("n,,r=abc", NULL));        /* missing n= */
	CHECK(server_rejects_first("n,,n=", NULL));           /* missing r= */
	CHECK(server_rejects_first("n,,n=,r=", NULL));        /* empty nonce */
	CHECK(server_rejects_first("n,,n=,r=ab c", NULL));    /* not printable */
	CHECK(server_rejects_first("n,,n=,r=abc,", NULL));    /* trailing comma */
	CHECK(server_rejects_first("n,,n=,r=abc,1=x", NULL)); /* bad extension */
	CHECK(server_rejects_first("x,,n=,r=abc", "GS2"));    /* bad flag */
	CHECK(server_rejects_first("n,n=,r=abc", NULL));      /* short header */
	CHECK(server_rejects_first("n", NULL));
	CHECK(server_rejects_first("", "empty"));
	CHECK(server_rejects_first_len("n,,n=,r=a\0c", 11, "NUL"));
	char *huge = xmalloc(SCRAM_MAX_MESSAGE_LEN + 20);
	memset(huge, 'a', SCRAM_MAX_MESSAGE_LEN + 19);
	memcpy(huge, "n,,n=,r=", 8);
	huge[SCRAM_MAX_MESSAGE_LEN + 19] = '\0';
	CHECK(server_rejects_first(huge, "too long"));
	free(huge);

	/* client-final */
	const char *proof = ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	char buf[512];
	snprintf(buf, sizeof(buf), "c=biws,r=%sWRONG%s", RFC_NONCE, proof);
	CHECK(server_rejects_final(buf, "nonce"));
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s", RFC_NONCE, proof); /* our half missing */
	CHECK(server_rejects_final(buf, "nonce"));
	snprintf(buf, sizeof(buf), "c=eSws,r=%s%s%s", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, "channel binding")); /* "y,," after "n,," */
	snprintf(buf, sizeof(buf), "c=bi!s,r=%s%s%s", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, "c="));
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	         RFC_NONCE, RFC_SERVER_NONCE); /* no padding */
	CHECK(server_rejects_final(buf, "proof"));
	snprintf(buf, sizeof(buf),
	         "c=biws,r=%s%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=", RFC_NONCE,
	         RFC_SERVER_NONCE); /* non-canonical trailing bits */
	CHECK(server_rejects_final(buf, "proof"));
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s,p=AAAA", RFC_NONCE, RFC_SERVER_NONCE);
	CHECK(server_rejects_final(buf, "proof")); /* short proof */
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s", RFC_NONCE, RFC_SERVER_NONCE);
	CHECK(server_rejects_final(buf, NULL)); /* no proof */
	snprintf(buf, sizeof(buf), "r=%s%s%s", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, NULL)); /* no c= */
	snprintf(buf, sizeof(buf), "c=biws%s", proof);
	CHECK(server_rejects_final(buf, NULL)); /* no r= */
	snprintf(buf, sizeof(buf), "r=%s%s,c=biws%s", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, NULL)); /* order */
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s%s,x=1", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, NULL)); /* p= not last */
	/* An extension before p= is allowed, but it changes the AuthMessage. */
	snprintf(buf, sizeof(buf), "c=biws,r=%s%s,x=1%s", RFC_NONCE, RFC_SERVER_NONCE, proof);
	CHECK(server_rejects_final(buf, "password authentication failed"));
	/* The genuine message passes through the same helper's setup. */
	CHECK(!server_rejects_final(RFC_CLIENT_FINAL, NULL));

	/* Out of order calls. */
	struct scram_server st = {0};
	struct scram_secret sec;
	char *out = NULL, *err = NULL;
	CHECK(scram_parse_secret(RFC_SECRET, &sec));
	CHECK(scram_server_start(&st, &sec));
	CHECK(!scram_server_handle_client_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
	                                        &out, &err));
	CHECK(out == NULL && err != NULL);
	free(err);
	scram_server_reset(&st);
	CHECK(!scram_server_handle_client_first(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                        &out, &err)); /* not started */
	free(err);
	scram_server_reset(&st);
}

static bool client_rejects_first(const char *server_first_msg, const char *err_part)
{
	struct scram_client c;
	char *m, *out = NULL, *err = NULL;
	bool rejected;

	scram_client_init_password(&c, "pencil");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	m = scram_client_first_message(&c);
	free(m);
	rejected = !scram_client_handle_server_first(&c, server_first_msg, strlen(server_first_msg),
	                                             &out, &err) &&
	           out == NULL && err != NULL && (!err_part || strstr(err, err_part));
	if (err && err_part && !strstr(err, err_part))
		fprintf(stderr, "  unexpected error: %s\n", err);
	free(out);
	free(err);
	scram_client_reset(&c);
	return rejected;
}

static void test_client_malformed(void)
{
	const char *salt = ",s=W22ZaJ0SNY7soEsUEjb6gQ==";
	char buf[512];

	snprintf(buf, sizeof(buf), "r=XX%s%s,i=4096", RFC_SERVER_NONCE, salt);
	CHECK(client_rejects_first(buf, "nonce"));
	snprintf(buf, sizeof(buf), "r=%s%s,i=4096", RFC_NONCE, salt); /* nothing added */
	CHECK(client_rejects_first(buf, "nonce"));
	snprintf(buf, sizeof(buf), "r=%sX,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", RFC_NONCE);
	CHECK(client_rejects_first(buf, "salt"));
	snprintf(buf, sizeof(buf), "r=%sX,s=,i=4096", RFC_NONCE);
	CHECK(client_rejects_first(buf, "salt"));
	snprintf(buf, sizeof(buf), "r=%sX%s,i=100000000", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "iteration"));
	snprintf(buf, sizeof(buf), "r=%sX%s,i=99999999999999999999", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "iteration"));
	snprintf(buf, sizeof(buf), "r=%sX%s,i=0", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "iteration"));
	snprintf(buf, sizeof(buf), "r=%sX%s,i=-1", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "iteration"));
	snprintf(buf, sizeof(buf), "r=%sX%s,i=4096x", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "iteration"));
	snprintf(buf, sizeof(buf), "r=%sX%s", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, NULL)); /* no i= */
	snprintf(buf, sizeof(buf), "r=%sX,i=4096%s", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, NULL)); /* order */
	snprintf(buf, sizeof(buf), "m=x,r=%sX%s,i=4096", RFC_NONCE, salt);
	CHECK(client_rejects_first(buf, "mandatory"));
	CHECK(client_rejects_first("e=other-error", NULL));

	/* server-final */
	struct scram_client c;
	char *m, *out = NULL, *err = NULL;
	scram_client_init_password(&c, "pencil");
	scram_client_set_username(&c, "user");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	m = scram_client_first_message(&c);
	free(m);
	CHECK(!scram_client_verify_server_final(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	                                        &err)); /* too early */
	free(err);
	scram_client_reset(&c);

	const char *finals[] = {
	    "e=invalid-proof",
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",   /* no padding */
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,", /* trailing comma */
	    "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",  /* wrong attribute */
	    "v=AAAA",                                          /* wrong length */
	    "",
	};
	for (size_t i = 0; i < ARRAY_SIZE(finals); i++) {
		scram_client_init_password(&c, "pencil");
		scram_client_set_username(&c, "user");
		scram_client_set_nonce_for_test(&c, RFC_NONCE);
		m = scram_client_first_message(&c);
		free(m);
		CHECK(scram_client_handle_server_first(&c, RFC_SERVER_FIRST,
		                                       strlen(RFC_SERVER_FIRST), &out, &err));
		free(out);
		err = NULL;
		CHECK(!scram_client_verify_server_final(&c, finals[i], strlen(finals[i]), &err));
		CHECK(err != NULL);
		if (i == 0)
			CHECK(err && strstr(err, "invalid-proof") != NULL);
		free(err);
		scram_client_reset(&c);
	}

	/* A client used twice without reset refuses. */
	scram_client_init_password(&c, "pencil");
	m = scram_client_first_message(&c);
	CHECK(m != NULL);
	free(m);
	m = scram_client_first_message(&c);
	CHECK(m == NULL);
	scram_client_reset(&c);
}

static void test_parse_secret(void)
{
	struct scram_secret s;
	char *f;

	CHECK(scram_parse_secret(HORSE_SECRET, &s));
	f = scram_secret_format(&s);
	CHECK_STR(f, HORSE_SECRET);
	free(f);

	const char *bad[] = {
	    "",
	    "SCRAM-SHA-256$",
	    "scram-sha-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
	    "tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$0:MDEyMzQ1Njc4OWFiY2RlZg==$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$x:MDEyMzQ1Njc4OWFiY2RlZg==$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$4096:$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI="
	    ":"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
	    "tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0Zy==:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	    "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
	    "tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=x",
	    "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
	    "tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=",
	    "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==:"
	    "tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=$"
	    "bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		bool parsed = scram_parse_secret(bad[i], &s);
		CHECK(!parsed);
		if (parsed)
			fprintf(stderr, "  accepted bad secret #%zu\n", i);
		CHECK(s.iterations == 0);
	}
}

static void test_md5(void)
{
	char out[MD5_PASSWD_LEN + 1];
	const uint8_t salt[4] = {1, 2, 3, 4};
	const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};
	/* printf '%s' 'secretuser' | md5sum */
	const char *stored = "md520eb1b22a92b5c573dc1eb4331fc49ee";
	/* printf '%s\x01\x02\x03\x04' 20eb1b22a92b5c573dc1eb4331fc49ee | md5sum */
	const char *resp = "md5fccef98e4f1cf6cbe96b743fad4e8bd0";
	/* printf '%s\xde\xad\xbe\xef' 20eb1b22a92b5c573dc1eb4331fc49ee | md5sum */
	const char *resp2 = "md590a95cfdc774174cda9be529cdd2ebbf";

	md5_password_hash("secret", "user", out);
	CHECK_STR(out, stored);
	/* printf '%s' 'hunter2bob' | md5sum */
	md5_password_hash("hunter2", "bob", out);
	CHECK_STR(out, "md5a2cc14bcc08bcb211f578153967abd6d");

	md5_salted_response(stored, salt, out);
	CHECK_STR(out, resp);
	md5_salted_response(stored + 3, salt, out);
	CHECK_STR(out, resp);
	md5_salted_response(stored, salt2, out);
	CHECK_STR(out, resp2);
	md5_salted_response("md5nothex", salt, out);
	CHECK_STR(out, "");
	md5_response_for_secret("secret", "user", salt, out);
	CHECK_STR(out, resp);
	md5_response_for_secret(stored, "ignored", salt, out);
	CHECK_STR(out, resp);

	CHECK(md5_check_response("secret", "user", salt, resp));
	CHECK(md5_check_response(stored, "user", salt, resp));
	CHECK(md5_check_response(stored, "user", salt2, resp2));
	CHECK(!md5_check_response(stored, "user", salt2, resp));
	CHECK(!md5_check_response("secret", "other", salt, resp));
	CHECK(!md5_check_response("Secret", "user", salt, resp));
	CHECK(!md5_check_response("secret", "user", salt, "md5fccef98e4f1cf6cbe96b743fad4e8bd"));
	CHECK(!md5_check_response("secret", "user", salt, "md5fccef98e4f1cf6cbe96b743fad4e8bd00"));
	CHECK(!md5_check_response("secret", "user", salt, ""));
	CHECK(!md5_check_response("", "user", salt, resp));

	CHECK(md5_is_hash(stored));
	CHECK(!md5_is_hash("md520EB1B22A92B5C573DC1EB4331FC49EE"));
	CHECK(!md5_is_hash("md520eb1b22a92b5c573dc1eb4331fc49e"));
	CHECK(!md5_is_hash("md520eb1b22a92b5c573dc1eb4331fc49eee"));
	CHECK(!md5_is_hash("xx520eb1b22a92b5c573dc1eb4331fc49ee"));
}

static char *write_temp(const char *content)
{
	char *path = xstrdup("/tmp/test_scram_authfile_XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		free(path);
		return NULL;
	}
	fputs(content, f);
	fclose(f);
	return path;
}

/* Loads content; returns the error (malloc'd) or NULL with *out set. */
static char *load(const char *content, struct authfile **out)
{
	char *err = NULL;
	char *path = write_temp(content);
	*out = NULL;
	if (!path)
		return xstrdup("cannot create temp file");
	*out = authfile_load(path, &err);
	unlink(path);
	if (err) {
		char *with_path = strstr(err, path) ? err : NULL;
		if (!with_path) {
			char *e = xasprintf("%s (path missing)", err);
			free(err);
			err = e;
		}
	}
	free(path);
	return err;
}

static void test_authfile(void)
{
	struct authfile *af;
	char *err;

	err = load("; a comment\n"
	           "# another comment\n"
	           "\n"
	           "   \n"
	           "\"alice\" \"plain pw\"\n"
	           "\"bob\"\t\"md520eb1b22a92b5c573dc1eb4331fc49ee\" \"extra\" fields\r\n"
	           "\"carol\" \"" HORSE_SECRET "\"\n"
	           "  \"quo\"\"te\"   \"pa\"\"ss\"\n"
	           "\"dave\" \"\"\n"
	           "\"erin\" \"first\"\n"
	           "\"erin\" \"second\"\n"
	           "\"frank\" \"no newline at end\"",
	           &af);
	CHECK(err == NULL);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	CHECK(af != NULL);
	CHECK(authfile_count(af) == 7);
	CHECK_STR(authfile_lookup(af, "alice"), "plain pw");
	CHECK_STR(authfile_lookup(af, "bob"), "md520eb1b22a92b5c573dc1eb4331fc49ee");
	CHECK_STR(authfile_lookup(af, "carol"), HORSE_SECRET);
	CHECK_STR(authfile_lookup(af, "quo\"te"), "pa\"ss");
	CHECK_STR(authfile_lookup(af, "dave"), "");
	CHECK_STR(authfile_lookup(af, "erin"), "second");
	CHECK_STR(authfile_lookup(af, "frank"), "no newline at end");
	CHECK(authfile_lookup(af, "mallory") == NULL);
	CHECK(authfile_lookup(af, "") == NULL);
	CHECK(authfile_lookup(af, "alic") == NULL);

	CHECK(secret_kind_of(authfile_lookup(af, "alice")) == SECRET_PLAIN);
	CHECK(secret_kind_of(authfile_lookup(af, "bob")) == SECRET_MD5);
	CHECK(secret_kind_of(authfile_lookup(af, "carol")) == SECRET_SCRAM);
	CHECK(secret_kind_of(authfile_lookup(af, "dave")) == SECRET_PLAIN);
	authfile_free(af);

	CHECK(secret_kind_of("md520EB1B22A92B5C573DC1EB4331FC49EE") == SECRET_PLAIN);
	CHECK(secret_kind_of("md5") == SECRET_PLAIN);
	CHECK(secret_kind_of("SCRAM-SHA-256$4096:abc") == SECRET_PLAIN);
	CHECK(secret_kind_of(RFC_SECRET) == SECRET_SCRAM);

	/* Malformed lines name the file and the line. */
	const struct {
		const char *content;
		const char *expect;
	} bad[] = {
	    {"\"ok\" \"pw\"\n\"eve\" nopw\n", "line 2: expected a double-quoted password"},
	    {"\"ok\" \"pw\"\n\n\"eve\" \"unterminated\n", "line 3: unterminated"},
	    {"eve \"pw\"\n", "line 1: expected a double-quoted user name"},
	    {"\"eve\"\n", "line 1: missing password field"},
	    {"\"eve\"\"pw\"\n", "line 1: missing password field"}, /* one field: eve"pw */
	    {"\"eve\"x \"pw\"\n", "line 1: expected a space"},
	    {"\"eve\" \"pw\"x\n", "line 1: expected a space"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = load(bad[i].content, &af);
		CHECK(af == NULL);
		CHECK(err && strstr(err, bad[i].expect) != NULL);
		if (err && !strstr(err, bad[i].expect))
			fprintf(stderr, "  case %zu: %s\n", i, err);
		free(err);
		authfile_free(af);
	}

	/* Over-long line. */
	char *big = xmalloc(AUTHFILE_MAX_LINE + 64);
	memset(big, 'x', AUTHFILE_MAX_LINE + 32);
	memcpy(big, "\"u\" \"", 5);
	strcpy(big + AUTHFILE_MAX_LINE + 32, "\"\n");
	err = load(big, &af);
	CHECK(af == NULL && err && strstr(err, "line 1: line longer") != NULL);
	free(err);
	free(big);

	/* Missing file. */
	af = authfile_load("/nonexistent/pgsieve/userlist.txt", &err);
	CHECK(af == NULL && err && strstr(err, "/nonexistent/pgsieve/userlist.txt") != NULL);
	free(err);

	/* Many users: sorted lookups. */
	size_t n = 2000, cap = n * 40, o = 0;
	char *many = xmalloc(cap);
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(many + o, cap - o, "\"user%zu\" \"pw%zu\"\n", (i * 7919) % n,
		                      i);
	err = load(many, &af);
	CHECK(err == NULL && af && authfile_count(af) == n);
	free(err);
	bool all = af != NULL;
	for (size_t i = 0; i < n && af; i++) {
		char u[32], p[32];
		snprintf(u, sizeof(u), "user%zu", (i * 7919) % n);
		snprintf(p, sizeof(p), "pw%zu", i);
		const char *got = authfile_lookup(af, u);
		if (!got || strcmp(got, p) != 0)
			all = false;
	}
	CHECK(all);
	authfile_free(af);
	free(many);
}

int main(void)
{
	test_rfc_client();
	test_rfc_server();
	test_exchanges();
	test_saslprep();
	test_server_malformed();
	test_client_malformed();
	test_parse_secret();
	test_md5();
	test_authfile();
	return unit_summary("test_scram");
}
