/*
 * Client authentication: picks the method (auth_type, or the hba file),
 * finds the user's secret (auth_file, or auth_query through the pool of
 * auth_user), runs the exchange (cleartext, md5, SCRAM-SHA-256), and
 * remembers what a later server login can reuse: a proven cleartext
 * password or the client's SCRAM keys.
 */
#ifndef PGSIEVE_AUTH_H
#define PGSIEVE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct server;

/* Loads auth_file and auth_hba_file for the configuration in force. */
bool auth_load_files(char **err);
void auth_free_files(void);

/* The startup packet is in: decide the method and send the first request. */
void auth_start(struct client *client);
/* A PasswordMessage ('p') arrived during login. */
void auth_handle_password(struct client *client, const uint8_t *body, size_t len);
/* auth_query results (from server.c): secret or NULL if the user was not found. */
void auth_query_result(struct client *client, const char *secret, const char *error);
void auth_free(struct client *client);
/* The auth_query for this client's database (per-database or global). */
const char *auth_query_text(const struct client *client);

#endif
