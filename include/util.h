/*
 * Small helpers every module uses: allocation that cannot return NULL,
 * bounded string copies, time in microseconds, constant-time comparison.
 * Nothing here knows about the pooler.
 */
#ifndef PGSIEVE_UTIL_H
#define PGSIEVE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define MUST_CHECK                     __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a)              __attribute__((format(printf, f, a)))
#define ARRAY_SIZE(a)                  (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

/* Microseconds; durations in the configuration are kept in this unit. */
typedef int64_t usec_t;
#define USEC_PER_SEC 1000000LL

/* Out of memory is fatal for the process: these never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Frees *pp and clears it, so a stale pointer cannot be used twice. */
#define FREE_AND_NULL(p)                                                                           \
	do {                                                                                       \
		free(p);                                                                           \
		(p) = NULL;                                                                        \
	} while (0)

/* Copies at most size-1 bytes and always terminates; returns strlen(src). */
size_t strlcpy_s(char *dst, const char *src, size_t size);
/*
 * The same for text from outside (a token's claims, a key's id) bound for
 * a log line: bytes other than printable ASCII become '?', so no newline
 * or escape sequence gets into the log.
 */
size_t strlcpy_printable(char *dst, const char *src, size_t size);

/*
 * The whole of a regular file of at most max bytes, malloc'd with a NUL
 * after it (*len_out bytes before that). NULL and *err ("PATH: reason")
 * if it cannot be opened or read, is not a regular file, or is larger.
 */
char *read_file(const char *path, size_t max, size_t *len_out, char **err) MUST_CHECK;

/* Compares two byte strings without leaking where they differ. */
bool secure_equal(const void *a, const void *b, size_t n);
/* Same for NUL-terminated secrets of possibly different length. */
bool secure_streq(const char *a, const char *b);

/* Lower-case hex of n bytes, NUL-terminated, malloc'd. */
char *hex_encode(const uint8_t *p, size_t n);
/* The value of one hex digit, or -1. */
int hex_digit(char c);
/* Decodes n hex characters into n/2 bytes; false on anything else. */
bool hex_decode(const char *s, size_t n, uint8_t *out);

/* Monotonic clock; cached per loop iteration by the caller if needed. */
usec_t now_usec(void);
/* Wall clock, for log lines and records meant for people. */
usec_t wall_usec(void);

#endif
