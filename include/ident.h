/*
 * User name maps (auth_ident_file), in PostgreSQL's pg_ident.conf format:
 * one "MAPNAME SYSTEM-NAME ROLE" per line. An hba line's map= names the
 * map that decides which outside identity (the OS user of a peer login,
 * a certificate's CN) may log in as which role.
 *
 * SYSTEM-NAME is matched exactly, or, written "/regex", as a POSIX
 * extended regular expression (anchor it yourself: ^...$), and then ROLE
 * may contain \1 for its first parenthesised group. Written "+group", it
 * matches any identity that has that group (an OIDC token's groups claim);
 * such a line's ROLE is literal, since there is no match to substitute,
 * and "+group" in double quotes is an exact name, as in PostgreSQL.
 * Pure: no I/O beyond reading the file, so it is unit-tested alone.
 */
#ifndef PGSIEVE_IDENT_H
#define PGSIEVE_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct ident_map;

/* NULL and *err (naming the file and line) if the file is unusable. */
struct ident_map *ident_load(const char *path, char **err) MUST_CHECK;
/* The same from text, for tests; name stands for the file in messages. */
struct ident_map *ident_parse(const char *text, const char *name, char **err) MUST_CHECK;
void ident_free(struct ident_map *map);

/* Does the map called map_name let identity `who` log in as `role`? */
bool ident_allows(const struct ident_map *map, const char *map_name, const char *who,
                  const char *role);
/* The same for an identity that also has groups: +group lines can match. */
bool ident_allows_groups(const struct ident_map *map, const char *map_name, const char *who,
                         const char *const *groups, size_t n_groups, const char *role);

#endif
