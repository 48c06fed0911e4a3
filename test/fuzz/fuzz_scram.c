/*
 * libFuzzer target for SCRAM-SHA-256 (scram.c), both directions, on the
 * RFC 7677 example credentials so that valid exchanges are reachable:
 *
 *   byte 0 picks a mode; the rest is two messages separated by the first
 *   NUL byte (the second may be absent).
 *   0  server, known user:   client-first, client-final
 *   1  server, unknown user: client-first, client-final (must never pass)
 *   2  client, pass-through keys: server-first, server-final
 *   3  client, password:     server-first, server-final
 *   4  scram_parse_secret on the whole rest, and a format/parse round trip
 *
 * Mode 3 runs PBKDF2 with the iteration count of the fuzzed message; to
 * keep executions fast it falls back to mode 2 beyond 9999 iterations.
 */
#include "scram.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define RFC_NONCE        "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SECRET                                                                                 \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_NONCE
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=" RFC_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static struct scram_secret secret;
static uint8_t client_key[SCRAM_KEY_LEN];

/* The RFC exchange once, to learn the ClientKey for pass-through mode. */
static void setup(void)
{
	struct scram_server st;
	char *first = NULL, *final = NULL, *err = NULL;
	memset(&st, 0, sizeof(st));
	REQUIRE(scram_parse_secret(RFC_SECRET, &secret));
	REQUIRE(scram_server_start(&st, &secret));
	scram_server_set_nonce_for_test(&st, RFC_SERVER_NONCE);
	REQUIRE(scram_server_handle_client_first(&st, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                         &first, &err));
	REQUIRE(scram_server_handle_client_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
	                                         &final, &err));
	REQUIRE(scram_server_client_key(&st, client_key));
	free(first);
	free(final);
	scram_server_reset(&st);
}

static void run_server(bool known, const char *m1, size_t n1, const char *m2, size_t n2)
{
	struct scram_server st;
	char *out = NULL, *err = NULL;
	memset(&st, 0, sizeof(st));
	if (known)
		REQUIRE(scram_server_start(&st, &secret));
	else
		REQUIRE(scram_server_start_unknown_user(&st, "fuzz", SCRAM_DEFAULT_ITERATIONS));
	scram_server_set_nonce_for_test(&st, RFC_SERVER_NONCE);
	bool ok = scram_server_handle_client_first(&st, m1, n1, &out, &err);
	REQUIRE(ok ? out != NULL : out == NULL);
	free(out);
	free(err);
	out = err = NULL;
	if (m2) {
		/* Also after a failed first step: the state machine must refuse. */
		bool fin = scram_server_handle_client_final(&st, m2, n2, &out, &err);
		uint8_t key[SCRAM_KEY_LEN];
		REQUIRE(!fin || ok);
		REQUIRE(!fin || known); /* an unknown user never logs in */
		REQUIRE(fin == scram_server_client_key(&st, key));
		if (fin)
			REQUIRE(out != NULL && memcmp(key, client_key, SCRAM_KEY_LEN) == 0);
		free(out);
		free(err);
	}
	scram_server_reset(&st);
}

static bool cheap_iterations(const char *m, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if (m[i] == 'i' && m[i + 1] == '=' && (i == 0 || m[i - 1] == ',')) {
			size_t digits = 0;
			for (size_t j = i + 2; j < n && m[j] >= '0' && m[j] <= '9'; j++)
				digits++;
			if (digits > 4)
				return false;
		}
	}
	return true;
}

static void run_client(bool keys, const char *m1, size_t n1, const char *m2, size_t n2)
{
	struct scram_client c;
	char *out = NULL, *err = NULL;
	memset(&c, 0, sizeof(c));
	if (keys)
		scram_client_init_keys(&c, client_key, secret.server_key);
	else
		scram_client_init_password(&c, "pencil");
	scram_client_set_username(&c, "user");
	scram_client_set_nonce_for_test(&c, RFC_NONCE);
	char *first = scram_client_first_message(&c);
	REQUIRE(first != NULL);
	free(first);
	bool ok = scram_client_handle_server_first(&c, m1, n1, &out, &err);
	REQUIRE(ok ? out != NULL : out == NULL);
	free(out);
	free(err);
	err = NULL;
	if (m2) {
		bool fin = scram_client_verify_server_final(&c, m2, n2, &err);
		REQUIRE(!fin || ok);
		free(err);
	}
	scram_client_reset(&c);
}

static void run_secret(const char *m, size_t n)
{
	char *s = xstrndup(m, n);
	struct scram_secret a, b;
	if (scram_parse_secret(s, &a)) {
		char *text = scram_secret_format(&a);
		REQUIRE(scram_parse_secret(text, &b));
		REQUIRE(a.iterations == b.iterations && a.salt_len == b.salt_len &&
		        memcmp(a.salt, b.salt, a.salt_len) == 0 &&
		        memcmp(a.stored_key, b.stored_key, SCRAM_KEY_LEN) == 0 &&
		        memcmp(a.server_key, b.server_key, SCRAM_KEY_LEN) == 0);
		/* strict parsing: the canonical text is the only spelling */
		REQUIRE(strcmp(text, s) == 0);
		free(text);
	} else {
		REQUIRE(a.iterations == 0);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	int mode = data[0] % 5;
	const char *m1 = (const char *)data + 1, *m2 = NULL;
	size_t n1 = size - 1, n2 = 0;
	const char *sep = memchr(m1, '\0', n1);
	if (sep) {
		m2 = sep + 1;
		n2 = n1 - (size_t)(m2 - m1);
		n1 = (size_t)(sep - m1);
	}
	switch (mode) {
	case 0:
	case 1:
		run_server(mode == 0, m1, n1, m2, n2);
		break;
	case 2:
	case 3:
		run_client(mode == 2 || !cheap_iterations(m1, n1), m1, n1, m2, n2);
		break;
	default:
		run_secret((const char *)data + 1, size - 1);
		break;
	}
	return 0;
}
