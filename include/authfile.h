/*
 * PgBouncer's auth_file: one user per line, `"user" "secret" ...`, with
 * double-quoted fields ("" inside quotes is a quote), further fields
 * ignored, and lines starting with ';' or '#' as comments. The secret is a
 * plaintext password, an md5 hash or a SCRAM-SHA-256 secret;
 * secret_kind_of() tells which, the same way for every caller.
 *
 * Entries are kept sorted for O(log n) lookups, since one happens per
 * login. A file is loaded whole or not at all, so a reload can keep the
 * previous one when the new file is broken.
 */
#ifndef PGSIEVE_AUTHFILE_H
#define PGSIEVE_AUTHFILE_H

#include <stddef.h>
#include "util.h"

/* Longest accepted line, in bytes, without its newline. */
#define AUTHFILE_MAX_LINE 8192

struct authfile;

enum secret_kind {
	SECRET_PLAIN, /* a password, possibly "" */
	SECRET_MD5,   /* "md5" + 32 lowercase hex digits */
	SECRET_SCRAM, /* parses as a SCRAM-SHA-256 secret */
};

/*
 * Reads and parses the whole file. On failure returns NULL with *err
 * (malloc'd) naming the file, and the line for a malformed one. When a
 * user appears twice, the later line wins, as in PgBouncer.
 */
struct authfile *authfile_load(const char *path, char **err) MUST_CHECK;

/* The secret for user, or NULL; valid until authfile_free(). */
const char *authfile_lookup(const struct authfile *af, const char *user);

/* Number of distinct users. */
size_t authfile_count(const struct authfile *af);

/* Wipes the secrets and frees; NULL is fine. */
void authfile_free(struct authfile *af);

enum secret_kind secret_kind_of(const char *secret);

#endif
