/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, in both
 * directions: scram_server_* when a client logs into the pooler,
 * scram_client_* when the pooler logs into PostgreSQL.
 *
 * The pooler never offers SCRAM-SHA-256-PLUS, so channel binding is refused
 * ("p=") and only the "n,," / "y,," GS2 headers are accepted. The user name
 * in client-first-message is ignored, as PostgreSQL does (libpq sends "n=").
 *
 * Pass-through: once a client has proven itself, the server side recovers
 * its ClientKey (ClientProof XOR ClientSignature). With that key and the
 * ServerKey of the stored secret, the client side can log into a
 * PostgreSQL server holding the same secret without knowing the password.
 *
 * The state structs are public only so callers can embed them; their
 * fields are private. Zero a struct (or reset it) before its first use.
 * Every message from the peer is treated as hostile: lengths are bounded,
 * attributes must come in order, base64 must be canonical, and every
 * failure is an error message, never an assertion.
 */
#ifndef PGSIEVE_SCRAM_H
#define PGSIEVE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define SCRAM_KEY_LEN            32  /* SHA-256 output */
#define SCRAM_MAX_SALT_LEN       256 /* decoded bytes; PostgreSQL uses 16 */
#define SCRAM_DEFAULT_SALT_LEN   16
#define SCRAM_DEFAULT_ITERATIONS 4096
/* A server may not make the pooler run PBKDF2 for longer than this. */
#define SCRAM_MAX_CLIENT_ITERATIONS 10000000
/* Any single SCRAM message from the peer; real ones are under 300 bytes. */
#define SCRAM_MAX_MESSAGE_LEN 4096

/* A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" secret. */
struct scram_secret {
	int iterations; /* 0 marks an unusable secret */
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Strict parse of PostgreSQL's secret format; false leaves *out zeroed. */
bool scram_parse_secret(const char *secret, struct scram_secret *out) MUST_CHECK;

/*
 * Builds a secret for a plaintext password with a random salt and the
 * given iteration count (scram_iterations). If the random generator or the
 * KDF fails, out->iterations is 0 and scram_server_start() refuses the
 * secret: failure is closed.
 */
void scram_secret_from_password(const char *password, int iterations, struct scram_secret *out);

/* Same with a given salt and iteration count (tests, tools). */
bool scram_secret_build(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out) MUST_CHECK;

/* PostgreSQL's text form of a secret; malloc'd. */
char *scram_secret_format(const struct scram_secret *secret);

/* ---- Server side: a client authenticating to the pooler ---- */

enum scram_server_state {
	SCRAM_SERVER_IDLE = 0,
	SCRAM_SERVER_STARTED,
	SCRAM_SERVER_FIRST_SENT,
	SCRAM_SERVER_DONE,
	SCRAM_SERVER_FAILED,
};

struct scram_server {
	enum scram_server_state state;
	bool mock;            /* unknown user: run the exchange, then fail */
	bool have_client_key; /* set only after a verified proof */
	char cbind_flag;      /* 'n' or 'y', from the GS2 header */
	struct scram_secret secret;
	char *client_first_bare;
	char *server_first;
	char *nonce;             /* client nonce followed by ours */
	char *test_server_nonce; /* scram_server_set_nonce_for_test() */
	uint8_t client_key[SCRAM_KEY_LEN];
};

/*
 * Starts an exchange against a secret. NULL means the user is unknown: a
 * mock secret stands in so the exchange looks the same to the client, and
 * the final step fails like a wrong password. Returns false (nothing to
 * free) if the secret is unusable or the random generator fails.
 */
bool scram_server_start(struct scram_server *st, const struct scram_secret *secret) MUST_CHECK;

/*
 * Unknown user, with the mock salt derived from the name and a per-process
 * random key: the same name gets the same salt on every attempt and two
 * names get different salts, as real users would. iterations is what a
 * real user's secret built by the pooler would advertise, so that the
 * count does not tell unknown users apart either.
 */
bool scram_server_start_unknown_user(struct scram_server *st, const char *user,
                                     int iterations) MUST_CHECK;

/* Replaces the random server nonce (tests reproducing RFC 7677). */
void scram_server_set_nonce_for_test(struct scram_server *st, const char *server_nonce);

/* Parses SASLInitialResponse data; *server_first_out is malloc'd. */
bool scram_server_handle_client_first(struct scram_server *st, const char *msg, size_t len,
                                      char **server_first_out, char **err) MUST_CHECK;

/*
 * Parses SASLResponse data and verifies the proof in constant time. On
 * success *server_final_out ("v=...") is malloc'd and the ClientKey is kept.
 * A wrong password and an unknown user fail with the same message.
 */
bool scram_server_handle_client_final(struct scram_server *st, const char *msg, size_t len,
                                      char **server_final_out, char **err) MUST_CHECK;

/* The ClientKey proven by the client; false before a successful exchange. */
bool scram_server_client_key(const struct scram_server *st,
                             uint8_t client_key[SCRAM_KEY_LEN]) MUST_CHECK;

/* Frees and wipes everything; the struct is then as if zeroed. */
void scram_server_reset(struct scram_server *st);

/* ---- Client side: the pooler authenticating to PostgreSQL ---- */

enum scram_client_state {
	SCRAM_CLIENT_IDLE = 0,
	SCRAM_CLIENT_READY,
	SCRAM_CLIENT_FIRST_SENT,
	SCRAM_CLIENT_FINAL_SENT,
	SCRAM_CLIENT_DONE,
	SCRAM_CLIENT_FAILED,
};

struct scram_client {
	enum scram_client_state state;
	bool use_keys; /* pass-through: keys given, no password */
	char *password;
	char *username; /* escaped saslname; NULL sends "n=" */
	char *client_nonce;
	char *client_first_bare;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN]; /* what "v=" must carry */
};

/*
 * Both initialisers overwrite *c without freeing: reset a used struct
 * first. The password is SASLprep'd when keys are derived: ASCII passwords
 * are used as they are (PostgreSQL's fast path); non-ASCII spaces and
 * "mapped to nothing" characters are mapped per RFC 4013, and if anything
 * non-ASCII remains the raw bytes are used. That matches PostgreSQL for
 * passwords already in NFKC; otherwise store a SCRAM secret instead.
 */
void scram_client_init_password(struct scram_client *c, const char *password);
/*
 * Pass-through: log in with ClientKey and ServerKey alone. Works when the
 * server's secret equals ours; its salt and iterations are then not used.
 */
void scram_client_init_keys(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                            const uint8_t server_key[SCRAM_KEY_LEN]);

/* PostgreSQL ignores it; for RFC vectors and other servers. Escapes , and =. */
void scram_client_set_username(struct scram_client *c, const char *user);
/* Replaces the random client nonce (tests reproducing RFC 7677). */
void scram_client_set_nonce_for_test(struct scram_client *c, const char *nonce);

/*
 * "n,,n=,r=<nonce>", malloc'd. NULL if called out of order or the random
 * generator fails.
 */
char *scram_client_first_message(struct scram_client *c) MUST_CHECK;

/* Checks server-first-message and builds client-final-message (malloc'd). */
bool scram_client_handle_server_first(struct scram_client *c, const char *msg, size_t len,
                                      char **client_final_out, char **err) MUST_CHECK;

/* Checks "v=" in constant time; "e=" is reported as the server's error. */
bool scram_client_verify_server_final(struct scram_client *c, const char *msg, size_t len,
                                      char **err) MUST_CHECK;

/* Frees and wipes everything; the struct is then as if zeroed. */
void scram_client_reset(struct scram_client *c);

#endif
