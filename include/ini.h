/*
 * A reader for the INI dialect of pgbouncer.ini, with no knowledge of
 * what the keys mean. It walks the file once and hands every section
 * header and every `key = value` line to a callback, which decides
 * whether it is acceptable; the first refusal stops the walk and becomes
 * an error message of the form "FILE:LINE: message".
 *
 * The dialect, as PgBouncer reads it:
 *   - `[name]` opens a section; the section stays current across
 *     %include boundaries, in both directions, as in PgBouncer.
 *   - `key = value`; key and value are trimmed of blanks. The value is the
 *     rest of the line, verbatim: quotes in it belong to the value (the
 *     connection-string parser, not this one, gives them meaning), and
 *     `;` or `#` after the start of a line are ordinary characters.
 *   - A key may be written in double quotes, with "" standing for one
 *     double quote, so database and user names can contain any character.
 *   - Lines whose first non-blank character is `;` or `#` are comments.
 *   - `%include path` reads another file at that point. A relative path
 *     is resolved against the directory of the including file. Includes
 *     nest at most INI_MAX_DEPTH deep, and a file that includes itself,
 *     directly or not, is an error.
 *
 * Everything is bounded: a line, a file and the sum of all files read for
 * one parse have fixed maximum sizes, so a hostile or broken file costs a
 * known amount of memory. ini_parse_buffer() parses bytes already in
 * memory, which is what a fuzzer drives.
 */
#ifndef PGSIEVE_INI_H
#define PGSIEVE_INI_H

#include <stdbool.h>
#include <stddef.h>
#include "util.h"

#define INI_MAX_LINE    65536              /* bytes in one line, without the newline */
#define INI_MAX_FILE    (16 * 1024 * 1024) /* bytes in one file */
#define INI_MAX_TOTAL   (64 * 1024 * 1024) /* bytes over all files of one parse */
#define INI_MAX_SECTION 256                /* bytes in a section name */
#define INI_MAX_DEPTH   10                 /* nested %include levels below the top file */

/*
 * Called for every section header and every key/value line.
 *   file    the path of the file being read, as opened (includes resolved)
 *   line    1-based line number in that file
 *   section the current section name, or NULL before the first header
 *   key     the key, unquoted; NULL for a section header event
 *   value   the trimmed value; NULL for a section header event
 * On a section header, section is the new section's name.
 * To refuse, return false and optionally set *err to a malloc'd message;
 * the reader prefixes "FILE:LINE: " and frees it.
 */
typedef bool (*ini_callback)(void *arg, const char *file, int line, const char *section,
                             const char *key, const char *value, char **err);

/*
 * Parses the file at path. On failure returns false and sets *err to a
 * malloc'd "FILE:LINE: message" (or "FILE: message" when no line applies).
 * *err is left alone on success.
 */
bool ini_parse(const char *path, ini_callback cb, void *arg, char **err) MUST_CHECK;

/*
 * Parses len bytes at buf as if they were the file called name. Relative
 * %include paths are resolved against the directory part of name.
 */
bool ini_parse_buffer(const char *name, const char *buf, size_t len, ini_callback cb, void *arg,
                      char **err) MUST_CHECK;

#endif
