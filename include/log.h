/*
 * Logging to stderr, a log file and syslog, with PgBouncer's levels.
 * Connection-aware macros (in client.h / server.h) prefix the connection's
 * identity. Debug lines cost one comparison when verbose is off.
 */
#ifndef PGSIEVE_LOG_H
#define PGSIEVE_LOG_H

#include <stdbool.h>
#include "util.h"

enum log_level {
	LOG_LVL_FATAL,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_LOG,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE,
};

/* 0 = LOG and above; each -v or verbose=N adds one level of detail. */
extern int log_verbose;
/* -q: nothing on stderr. */
extern bool log_quiet;

/* Opens (or reopens, for rotation) the log file and syslog. */
bool log_setup(const char *logfile, bool use_syslog, const char *ident, const char *facility,
               char **err) MUST_CHECK;
void log_close(void);

void log_msg(enum log_level lvl, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Logs and exits(1). */
_Noreturn void die(const char *fmt, ...) PRINTF_LIKE(1, 2);

#define log_enabled(lvl) ((int)(lvl) <= (int)LOG_LVL_LOG + log_verbose)
#define log_error(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_LOG, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_DEBUG))                                                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)
#define log_noise(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_NOISE))                                                    \
			log_msg(LOG_LVL_NOISE, __VA_ARGS__);                                       \
	} while (0)

#endif
