/*
 * pgsieve: a PostgreSQL connection pooler and policy gateway, started
 * like PgBouncer: `pgsieve [-d] [-R] [-q] [-v] [-u user] config.ini`.
 */
#include "audit.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "oidc.h"
#include "policy.h"
#include "pooler.h"
#include "takeover.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

static void usage(FILE *out)
{
	fprintf(out, "pgsieve is a PostgreSQL connection pooler and policy gateway.\n\n"
	             "Usage:\n"
	             "  pgsieve [OPTION]... CONFIG_FILE\n\n"
	             "Options:\n"
	             "  -d, --daemon         run in the background (needs logfile or syslog)\n"
	             "  -R, --reboot         take over connections from a running pgsieve\n"
	             "  -q, --quiet          write nothing to stderr\n"
	             "  -v, --verbose        log more; repeat for even more\n"
	             "  -u, --user=USERNAME  run as this user (needed when started as root)\n"
	             "  -V, --version        print the version and exit\n"
	             "  -h, --help           print this help and exit\n"
	             "      --check          check the configuration, auth files and policy\n"
	             "                       scripts, then exit (0 if all is well)\n");
}

static bool write_pidfile(const char *path, char **err)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		/* A pidfile whose process is gone is stale; a live one means we would run twice. */
		FILE *f = fopen(path, "r");
		long pid = 0;
		if (f) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			*err = xasprintf("pidfile %s exists and process %ld is running", path, pid);
			return false;
		}
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	if (fd < 0) {
		*err = xasprintf("cannot write pidfile %s: %s", path, strerror(errno));
		return false;
	}
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	bool ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	if (!ok)
		*err = xasprintf("cannot write pidfile %s", path);
	return ok;
}

static void drop_privileges(const char *user)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw)
		die("could not find user \"%s\" to switch to", user);
	if (getuid() == pw->pw_uid)
		return;
	if (setgid(pw->pw_gid) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		die("could not switch to user \"%s\": %s", user, strerror(errno));
	if (setuid(0) == 0)
		die("could not drop root privileges");
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork failed: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		die("setsid failed: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork failed: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	log_quiet = true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"daemon", no_argument, NULL, 'd'},
	    {"reboot", no_argument, NULL, 'R'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"user", required_argument, NULL, 'u'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"check", no_argument, NULL, 'C'},
	    {NULL, 0, NULL, 0},
	};
	bool daemon = false, takeover = false, check = false;
	int verbose = 0;
	const char *run_as = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "dRqvu:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			daemon = true;
			break;
		case 'R':
			takeover = true;
			break;
		case 'q':
			log_quiet = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'u':
			run_as = optarg;
			break;
		case 'V':
			printf("pgsieve %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'C':
			check = true;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "pgsieve: exactly one configuration file is needed\n\n");
		usage(stderr);
		return 1;
	}
	log_verbose = verbose;
	char *err = NULL;
	cf = config_load(argv[optind], &err);
	if (!cf)
		die("%s", err);
	if (cf->verbose > log_verbose)
		log_verbose = cf->verbose;
	if (check) {
		/* What a start or RELOAD would read and compile, without serving anything. */
		if (!auth_load_files(&err) || !policy_configure(&err) || !oidc_check(&err))
			die("%s", err);
		printf("%s: configuration ok (%d policy script%s)\n", argv[optind],
		       policy_script_count(), policy_script_count() == 1 ? "" : "s");
		policy_shutdown();
		auth_free_files();
		config_free(cf);
		return 0;
	}
	const char *user = run_as ? run_as : (cf->user && *cf->user ? cf->user : NULL);
	if (geteuid() == 0 && !user)
		die("pgsieve should not run as root: use -u USER or user= in the configuration");
	if (daemon && !(cf->logfile && *cf->logfile) && !cf->syslog)
		die("-d needs a logfile or syslog: nothing would be logged in the background");

	if (user)
		drop_privileges(user);
	if (!log_setup(cf->logfile, cf->syslog, cf->syslog_ident, cf->syslog_facility, &err))
		die("%s", err);
	if (!auth_load_files(&err))
		die("%s", err);
	if (!policy_configure(&err))
		die("%s", err);
	if (!audit_configure(&err))
		die("%s", err);
	struct tls_contexts *tls = tls_load(cf, &err);
	if (!tls)
		die("%s", err);
	tls_install(tls);
	if (!pooler_init(&err))
		die("%s", err);
	if (!oidc_configure(&err))
		die("%s", err);
	if (takeover) {
		struct takeover *t;
		if (!takeover_fetch(&t, &err))
			die("%s", err);
		if (t)
			takeover_adopt(t);
	}
	if (!pooler_listen(&err))
		die("%s", err);
	if (daemon) {
		daemonize();
		/* libevent's epoll does not survive fork: start the loop's backend again. */
		if (event_reinit(pooler_base) != 0)
			die("event_reinit failed after daemonizing");
	}
	/* Threads only now: a daemon's fork leaves them behind. */
	if (!audit_start(&err))
		die("%s", err);
	if (cf->pidfile && *cf->pidfile && !write_pidfile(cf->pidfile, &err))
		die("%s", err);

	log_info("pgsieve %s started, process %d", PACKAGE_VERSION, (int)getpid());
	pooler_run();
	log_info("shutting down");
	if (cf->pidfile && *cf->pidfile)
		unlink(cf->pidfile);
	pooler_cleanup();
	config_free(cf);
	cf = NULL;
	log_close();
	return 0;
}
