/*
 * Log lines look like PgBouncer's: "2026-11-25 09:00:00.123 UTC [pid] LOG msg".
 * Writes are small and go to stderr and an O_APPEND file; syslog is the
 * C library's. SIGHUP reopens the file so logrotate can move it.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
bool log_quiet;

static int log_fd = -1;
static bool log_syslog;

static const char *const level_names[] = {
    [LOG_LVL_FATAL] = "FATAL", [LOG_LVL_ERROR] = "ERROR", [LOG_LVL_WARNING] = "WARNING",
    [LOG_LVL_LOG] = "LOG",     [LOG_LVL_DEBUG] = "DEBUG", [LOG_LVL_NOISE] = "NOISE",
};

static const int syslog_levels[] = {
    [LOG_LVL_FATAL] = LOG_CRIT, [LOG_LVL_ERROR] = LOG_ERR,   [LOG_LVL_WARNING] = LOG_WARNING,
    [LOG_LVL_LOG] = LOG_INFO,   [LOG_LVL_DEBUG] = LOG_DEBUG, [LOG_LVL_NOISE] = LOG_DEBUG,
};

static const struct {
	const char *name;
	int value;
} facilities[] = {
    {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"daemon", LOG_DAEMON},
    {"user", LOG_USER},     {"local0", LOG_LOCAL0},     {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},     {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},     {"local7", LOG_LOCAL7},
};

bool log_setup(const char *logfile, bool use_syslog, const char *ident, const char *facility,
               char **err)
{
	int fd = -1;
	if (logfile && *logfile) {
		fd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			*err = xasprintf("cannot open logfile %s: %s", logfile, strerror(errno));
			return false;
		}
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;

	if (log_syslog)
		closelog();
	log_syslog = use_syslog;
	if (use_syslog) {
		int fac = LOG_DAEMON;
		for (size_t i = 0; facility && i < ARRAY_SIZE(facilities); i++)
			if (strcasecmp(facility, facilities[i].name) == 0)
				fac = facilities[i].value;
		openlog(ident && *ident ? ident : "pgsieve", LOG_PID, fac);
	}
	return true;
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (log_syslog)
		closelog();
	log_syslog = false;
}

static void log_write(enum log_level lvl, const char *fmt, va_list ap)
{
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	char line[4300];
	usec_t now = wall_usec();
	time_t secs = (time_t)(now / USEC_PER_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	int n = snprintf(line, sizeof(line), "%s.%03d UTC [%d] %s %s\n", stamp,
	                 (int)(now % USEC_PER_SEC / 1000), (int)getpid(), level_names[lvl], msg);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

	/* A failed log write has nowhere to be reported; ignore it deliberately. */
	if (!log_quiet || lvl == LOG_LVL_FATAL) {
		ssize_t w = write(STDERR_FILENO, line, len);
		(void)w;
	}
	if (log_fd >= 0) {
		ssize_t w = write(log_fd, line, len);
		(void)w;
	}
	if (log_syslog)
		syslog(syslog_levels[lvl], "%s %s", level_names[lvl], msg);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_write(lvl, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(LOG_LVL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}
