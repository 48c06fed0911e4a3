/*
 * auth_hba_file: which authentication method a connection must use, chosen
 * by the first line of a pg_hba.conf-style file that matches the
 * connection's transport, address, database and user.
 *
 * The file is parsed once into an immutable rule list; matching does no
 * I/O and no allocation, so it can run for every login inside the loop.
 * A reload builds a new struct hba and swaps it in only if the whole file
 * (and every @file it names) parsed: one bad line rejects the file, the
 * old rules stay in force, and the error names file:line. Anything the
 * PostgreSQL format allows but pgsieve cannot honour (+group, samerole,
 * samehost, host names, regular expressions, unknown methods or options)
 * is such an error rather than a line quietly skipped, because a skipped
 * "reject" line would let a connection fall through to a laxer rule.
 */
#ifndef PGSIEVE_HBA_H
#define PGSIEVE_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "util.h"

/* Longest line (after joining backslash continuations), in bytes. */
#define HBA_MAX_LINE 8192
/* Largest file read, the main one or an @file. */
#define HBA_MAX_FILE_SIZE (4 * 1024 * 1024)
/* @file includes per load, counted over all nesting levels. */
#define HBA_MAX_INCLUDES 64
/* How deep @file may include @file. */
#define HBA_MAX_INCLUDE_DEPTH 8

struct hba;

/* What hba_match looks at; nothing here is kept after the call. */
struct hba_request {
	bool is_unix;                /* arrived on the unix socket: only "local" lines apply */
	bool is_tls;                 /* TLS is up: hostssl lines apply, hostnossl lines do not */
	const struct sockaddr *addr; /* client address, NULL for unix sockets */
	const char *database;        /* database name from the startup packet */
	const char *user;            /* user name from the startup packet */
	bool replication;            /* replication connection: only "replication" matches */
};

/*
 * Reads and parses the file at path. @file names inside it are taken
 * relative to the directory of the file that names them. Returns NULL and
 * sets *err (to free) to "file:line: message" on any error.
 */
struct hba *hba_load(const char *path, char **err) MUST_CHECK;

/*
 * Same, from a buffer (tests, fuzzing). path names the buffer in error
 * messages and anchors relative @file names; with path NULL the buffer is
 * called "<buffer>" and @file is refused, so a fuzzer never opens files.
 * The buffer need not be NUL-terminated; NUL bytes inside are an error.
 */
struct hba *hba_parse_buffer(const char *buf, size_t len, const char *path, char **err) MUST_CHECK;

/*
 * Returns the method of the first line matching req, or AUTH_TYPE_REJECT
 * when none does, and when hba, req or req->user is NULL, or database is
 * NULL on a request that is not for replication.
 * *map_out (if map_out is not NULL) is set to that line's map= value or
 * NULL; it points into hba and lives as long as it does.
 */
enum auth_type hba_match(const struct hba *hba, const struct hba_request *req,
                         const char **map_out);

/* Line number (in the main file) of the rule hba_match would pick; 0 if none. */
int hba_match_line(const struct hba *hba, const struct hba_request *req);

/* Number of rules loaded (comment and blank lines are not rules). */
size_t hba_rule_count(const struct hba *hba);

void hba_free(struct hba *hba);

#endif
