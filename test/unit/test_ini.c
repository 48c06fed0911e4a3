/*
 * Unit tests for the INI reader (ini.c) and the configuration loader
 * (config.c). Files are written into a fresh mkdtemp() directory so the
 * tests need no data on disk and leave nothing behind. Warnings go to
 * stderr through log.c; the tests that count them redirect fd 2 into a
 * temporary file for the duration of one load.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"
#include "ini.h"
#include "log.h"
#include "unit.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/pgsieve-test-ini-XXXXXX";

/* Writes a file under tmpdir and returns its path in a static rotation of buffers. */
static const char *put(const char *name, const char *content)
{
	static char paths[8][PATH_MAX];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, PATH_MAX, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
	return path;
}

/* ---- capturing stderr, where log_warning() writes ---- */

static int saved_stderr = -1;
static char capture_path[PATH_MAX];

static void capture_start(void)
{
	snprintf(capture_path, sizeof(capture_path), "%s/stderr.txt", tmpdir);
	int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Returns what was written to stderr since capture_start(); caller frees. */
static char *capture_stop(void)
{
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	FILE *f = fopen(capture_path, "r");
	char *buf = xcalloc(1, 65536);
	size_t n = f ? fread(buf, 1, 65535, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- the INI reader alone ---- */

struct events {
	char text[8192];
	const char *refuse_key; /* refuse this key... */
	const char *refuse_msg; /* ...with this message (NULL: none) */
};

static bool record(void *arg, const char *file, int line, const char *section, const char *key,
                   const char *value, char **err)
{
	struct events *ev = arg;
	size_t used = strlen(ev->text);
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	if (!key)
		snprintf(ev->text + used, sizeof(ev->text) - used, "%s:%d [%s]\n", base, line,
		         section);
	else
		snprintf(ev->text + used, sizeof(ev->text) - used, "%s:%d %s|%s=%s\n", base, line,
		         section ? section : "-", key, value);
	if (ev->refuse_key && key && strcmp(key, ev->refuse_key) == 0) {
		if (ev->refuse_msg)
			*err = xstrdup(ev->refuse_msg);
		return false;
	}
	return true;
}

static bool parse_text(const char *text, struct events *ev, char **err)
{
	memset(ev->text, 0, sizeof(ev->text));
	return ini_parse_buffer("mem.ini", text, strlen(text), record, ev, err);
}

static void test_ini_syntax(void)
{
	struct events ev = {0};
	char *err = NULL;
	const char *text = "\xEF\xBB\xBF; comment\n"
	                   "   # indented comment\n"
	                   "\n"
	                   "top = before any section\n"
	                   "[ one ]\n"
	                   "  a=1\n"
	                   "b   =   two words  \r\n"
	                   "c = semi;colon # and hash\n"
	                   "d =\n"
	                   "\"quoted \"\"name\"\"\" = q\n"
	                   "*=star\n"
	                   "[two]\n"
	                   "x = y=z\n";
	CHECK(parse_text(text, &ev, &err));
	CHECK_STR(ev.text, "mem.ini:4 -|top=before any section\n"
	                   "mem.ini:5 [one]\n"
	                   "mem.ini:6 one|a=1\n"
	                   "mem.ini:7 one|b=two words\n"
	                   "mem.ini:8 one|c=semi;colon # and hash\n"
	                   "mem.ini:9 one|d=\n"
	                   "mem.ini:10 one|quoted \"name\"=q\n"
	                   "mem.ini:11 one|*=star\n"
	                   "mem.ini:12 [two]\n"
	                   "mem.ini:13 two|x=y=z\n");
	CHECK(err == NULL);

	/* No newline at the end of the last line. */
	CHECK(parse_text("[s]\nk = v", &ev, &err));
	CHECK_STR(ev.text, "mem.ini:1 [s]\nmem.ini:2 s|k=v\n");
}

static void expect_ini_error(const char *text, const char *want)
{
	struct events ev = {0};
	char *err = NULL;
	CHECK(!parse_text(text, &ev, &err));
	CHECK_STR(err, want);
	free(err);
}

static void test_ini_errors(void)
{
	expect_ini_error("[s]\njust words\n", "mem.ini:2: expected \"=\" after key");
	expect_ini_error("[s\n", "mem.ini:1: section header without closing \"]\"");
	expect_ini_error("[s] x\n", "mem.ini:1: unexpected text after section header");
	expect_ini_error("[ ]\n", "mem.ini:1: empty section name");
	expect_ini_error("%includ x\n", "mem.ini:1: unknown directive");
	expect_ini_error("%include\n", "mem.ini:1: %include needs a file name");
	expect_ini_error("\"open = 1\n", "mem.ini:1: unterminated quoted key");
	expect_ini_error("\"\" = 1\n", "mem.ini:1: empty key");
	expect_ini_error("= 1\n", "mem.ini:1: expected \"key = value\"");

	struct events ev = {0};
	char *err = NULL;
	const char nul[] = "[s]\nk = a\0b\n";
	CHECK(!ini_parse_buffer("nul.ini", nul, sizeof(nul) - 1, record, &ev, &err));
	CHECK_STR(err, "nul.ini:2: NUL byte in line");
	free(err);

	size_t big = INI_MAX_LINE + 10;
	char *longline = xmalloc(big + 1);
	memset(longline, 'a', big);
	memcpy(longline, "[s]\nk=", 6);
	longline[big] = '\0';
	err = NULL;
	CHECK(!ini_parse_buffer("long.ini", longline, big, record, &ev, &err));
	CHECK_STR(err, "long.ini:2: line longer than 65536 bytes");
	free(err);
	free(longline);

	/* A refusal from the callback is located by the reader. */
	ev.refuse_key = "bad";
	ev.refuse_msg = "bad: no thanks";
	err = NULL;
	CHECK(!parse_text("[s]\nok = 1\n\nbad = 2\nlater = 3\n", &ev, &err));
	CHECK_STR(err, "mem.ini:4: bad: no thanks");
	CHECK(strstr(ev.text, "later") == NULL);
	free(err);
	ev.refuse_msg = NULL;
	err = NULL;
	CHECK(!parse_text("[s]\nbad = 2\n", &ev, &err));
	CHECK_STR(err, "mem.ini:2: rejected");
	free(err);

	err = NULL;
	CHECK(!ini_parse("/nonexistent/pgsieve.ini", record, &ev, &err));
	CHECK_STR(err, "/nonexistent/pgsieve.ini: cannot open \"/nonexistent/pgsieve.ini\": No "
	               "such file or directory");
	free(err);
}

static void test_ini_include(void)
{
	char sub[PATH_MAX];
	snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
	mkdir(sub, 0700);
	put("conf.d/dbs.ini", "[databases]\nfoo = host=a\n%include more/extra.ini\n");
	mkdir(strcat(sub, "/more"), 0700);
	put("conf.d/more/extra.ini", "bar = host=b\n");
	const char *main_path = put("main.ini", "[pgbouncer]\nlisten_port = 1\n"
	                                        "%include conf.d/dbs.ini\n"
	                                        "after = 1\n");

	/* Relative to the including file, not to the working directory. */
	char cwd[PATH_MAX];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir("/") == 0);
	struct events ev = {0};
	char *err = NULL;
	CHECK(ini_parse(main_path, record, &ev, &err));
	CHECK(err == NULL);
	/* The section opened in the include stays current afterwards, as in PgBouncer. */
	CHECK_STR(ev.text, "main.ini:1 [pgbouncer]\n"
	                   "main.ini:2 pgbouncer|listen_port=1\n"
	                   "dbs.ini:1 [databases]\n"
	                   "dbs.ini:2 databases|foo=host=a\n"
	                   "extra.ini:1 databases|bar=host=b\n"
	                   "main.ini:4 databases|after=1\n");
	CHECK(chdir(cwd) == 0);

	/* Absolute include path. */
	char text[PATH_MAX + 64];
	snprintf(text, sizeof(text), "[x]\n%%include %s/conf.d/more/extra.ini\n", tmpdir);
	memset(ev.text, 0, sizeof(ev.text));
	CHECK(ini_parse(put("abs.ini", text), record, &ev, &err));
	CHECK_STR(ev.text, "abs.ini:1 [x]\nextra.ini:1 x|bar=host=b\n");

	/* Loops, direct and indirect. */
	const char *self = put("self.ini", "[x]\n%include self.ini\n");
	err = NULL;
	CHECK(!ini_parse(self, record, &ev, &err));
	CHECK(err && strstr(err, "self.ini:2: %include loop"));
	free(err);
	put("loop-b.ini", "\n%include loop-a.ini\n");
	const char *a = put("loop-a.ini", "[x]\n%include ./loop-b.ini\n");
	err = NULL;
	CHECK(!ini_parse(a, record, &ev, &err));
	CHECK(err && strstr(err, "loop-b.ini:2: %include loop: ") != NULL);
	free(err);

	/* A diamond is not a loop: the same file may be included twice in sequence. */
	put("leaf.ini", "k = v\n");
	memset(ev.text, 0, sizeof(ev.text));
	err = NULL;
	CHECK(ini_parse(put("diamond.ini", "[x]\n%include leaf.ini\n%include leaf.ini\n"), record,
	                &ev, &err));
	CHECK_STR(ev.text, "diamond.ini:1 [x]\nleaf.ini:1 x|k=v\nleaf.ini:1 x|k=v\n");

	/* Depth: a chain of 10 includes is fine, 11 is refused. */
	for (int i = 0; i <= 11; i++) {
		char name[32], body[64];
		snprintf(name, sizeof(name), "chain%d.ini", i);
		if (i == 11)
			snprintf(body, sizeof(body), "end = 1\n");
		else
			snprintf(body, sizeof(body), "%%include chain%d.ini\n", i + 1);
		put(name, body);
	}
	put("chain10.ini", "end = 1\n");
	err = NULL;
	CHECK(ini_parse(put("chain0.ini", "[x]\n%include chain1.ini\n"), record, &ev, &err));
	CHECK(err == NULL);
	put("chain10.ini", "%include chain11.ini\n");
	err = NULL;
	CHECK(!ini_parse(put("chain0.ini", "[x]\n%include chain1.ini\n"), record, &ev, &err));
	CHECK(err && strstr(err, "chain10.ini:1: %include nested deeper than 10 levels"));
	free(err);

	/* A missing include is reported at the including line. */
	err = NULL;
	CHECK(!ini_parse(put("missing.ini", "[x]\n\n%include nope.ini\n"), record, &ev, &err));
	CHECK(err && strstr(err, "missing.ini:3: cannot open \"") &&
	      strstr(err, "nope.ini\": No "
	                  "such file"));
	free(err);

	/* Directories and other non-regular files are refused. */
	err = NULL;
	CHECK(!ini_parse(put("dir.ini", "%include conf.d\n"), record, &ev, &err));
	CHECK(err && strstr(err, "dir.ini:1: \"") && strstr(err, "is not a regular file"));
	free(err);
}

/* ---- the configuration loader ---- */

static struct config *load_text(const char *text, char **err)
{
	*err = NULL;
	return config_load(put("pgbouncer.ini", text), err);
}

static void expect_load_error(const char *text, const char *want)
{
	char *err = NULL;
	struct config *c = load_text(text, &err);
	CHECK(c == NULL);
	if (!err || !strstr(err, want))
		fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", want, err ? err : "(null)");
	CHECK(err && strstr(err, want));
	config_free(c);
	free(err);
}

static void test_defaults(void)
{
	char *err;
	struct config *c = load_text("[pgbouncer]\n", &err);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(c->config_file && c->config_file[0] == '/');
	CHECK(c->config_file && strstr(c->config_file, "/pgbouncer.ini"));
	CHECK(c->listen_addr == NULL);
	CHECK(c->listen_port == 6432);
	CHECK(c->listen_backlog == 128);
	CHECK_STR(c->unix_socket_dir, "/tmp");
	CHECK(c->unix_socket_mode == 0777);
	CHECK(c->unix_socket_group == NULL);
	CHECK(c->logfile == NULL && c->pidfile == NULL && c->user == NULL);
	CHECK(c->pool_mode == POOL_MODE_SESSION);
	CHECK(c->auth_type == AUTH_TYPE_MD5);
	CHECK(c->auth_file == NULL && c->auth_user == NULL && c->auth_hba_file == NULL);
	CHECK(c->auth_query && strstr(c->auth_query, "FROM pg_authid WHERE rolname=$1"));
	CHECK(c->max_client_conn == 100);
	CHECK(c->default_pool_size == 20);
	CHECK(c->min_pool_size == 0 && c->reserve_pool_size == 0);
	CHECK(c->reserve_pool_timeout == 5 * USEC_PER_SEC);
	CHECK(c->max_db_connections == 0 && c->max_user_connections == 0);
	CHECK(c->max_prepared_statements == 200);
	CHECK_STR(c->server_reset_query, "DISCARD ALL");
	CHECK(!c->server_reset_query_always);
	CHECK_STR(c->server_check_query, ""); /* "<empty>": send an empty query */
	CHECK(c->server_check_delay == 30 * USEC_PER_SEC);
	CHECK(c->server_lifetime == 3600 * USEC_PER_SEC);
	CHECK(c->server_idle_timeout == 600 * USEC_PER_SEC);
	CHECK(c->server_connect_timeout == 15 * USEC_PER_SEC);
	CHECK(c->server_login_retry == 15 * USEC_PER_SEC);
	CHECK(c->client_login_timeout == 60 * USEC_PER_SEC);
	CHECK(c->query_timeout == 0 && c->client_idle_timeout == 0);
	CHECK(c->query_wait_timeout == 120 * USEC_PER_SEC);
	CHECK(c->cancel_wait_timeout == 10 * USEC_PER_SEC);
	CHECK(c->autodb_idle_timeout == 3600 * USEC_PER_SEC);
	CHECK(c->suspend_timeout == 10 * USEC_PER_SEC);
	CHECK(c->idle_transaction_timeout == 0 && c->transaction_timeout == 0);
	CHECK(c->dns_max_ttl == 15 * USEC_PER_SEC && c->dns_nxdomain_ttl == 15 * USEC_PER_SEC);
	CHECK(c->dns_zone_check_period == 0);
	CHECK(c->stats_period == 60 * USEC_PER_SEC);
	CHECK(c->log_connections && c->log_disconnections && c->log_pooler_errors && c->log_stats);
	CHECK(!c->syslog && c->verbose == 0);
	CHECK_STR(c->syslog_ident, "pgbouncer");
	CHECK_STR(c->syslog_facility, "daemon");
	CHECK(c->pkt_buf == 4096);
	CHECK(c->max_packet_size == INT_MAX);
	CHECK(c->sbuf_loopcnt == 5);
	CHECK(c->tcp_keepalive == 1 && c->tcp_keepcnt == 0 && c->tcp_user_timeout == 0);
	CHECK_STR(c->track_extra_parameters, "IntervalStyle");
	CHECK_STR(c->ignore_startup_parameters, "");
	CHECK_STR(c->admin_users, "");
	CHECK(!c->so_reuseport && !c->server_round_robin && !c->disable_pqexec);
	CHECK(c->shutdown_wait_timeout == 0);
	CHECK(c->databases == NULL && c->users == NULL && c->unimplemented == NULL);
	config_free(c);
}

static void test_values(void)
{
	char *err;
	struct config *c = load_text("[pgsieve]\n"
	                             "listen_addr = 127.0.0.1, ::1\n"
	                             "listen_port = 7432\n"
	                             "unix_socket_dir =\n"
	                             "unix_socket_mode = 0700\n"
	                             "pool_mode = Transaction\n"
	                             "auth_type = scram-sha-256\n"
	                             "log_connections = 0\n"
	                             "log_stats = off\n"
	                             "syslog = yes\n"
	                             "server_round_robin = 2\n"
	                             "query_timeout = 0.5\n"
	                             "query_wait_timeout = 500ms\n"
	                             "client_idle_timeout = 2min\n"
	                             "server_lifetime = 1h\n"
	                             "autodb_idle_timeout = 1d\n"
	                             "dns_max_ttl = 10us\n"
	                             "server_idle_timeout = 1.5 s\n"
	                             "idle_transaction_timeout = 0.0000019\n"
	                             "server_check_query = select 1\n"
	                             "server_reset_query =\n"
	                             "verbose = 2\n"
	                             "max_client_conn = 0x10\n"
	                             "shutdown_wait_timeout = 30\n",
	                             &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	CHECK_STR(c->listen_addr, "127.0.0.1, ::1");
	CHECK(c->listen_port == 7432);
	CHECK_STR(c->unix_socket_dir, "");
	CHECK(c->unix_socket_mode == 0700);
	CHECK(c->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(c->auth_type == AUTH_TYPE_SCRAM_SHA_256);
	CHECK(!c->log_connections && !c->log_stats && c->syslog && c->server_round_robin);
	CHECK(c->query_timeout == 500000);
	CHECK(c->query_wait_timeout == 500000);
	CHECK(c->client_idle_timeout == 120 * USEC_PER_SEC);
	CHECK(c->server_lifetime == 3600 * USEC_PER_SEC);
	CHECK(c->autodb_idle_timeout == 86400 * USEC_PER_SEC);
	CHECK(c->dns_max_ttl == 10);
	CHECK(c->server_idle_timeout == 1500000);
	CHECK(c->idle_transaction_timeout == 1);
	CHECK_STR(c->server_check_query, "select 1");
	CHECK_STR(c->server_reset_query, "");
	CHECK(c->verbose == 2);
	CHECK(c->max_client_conn == 16);
	CHECK(c->shutdown_wait_timeout == 30 * USEC_PER_SEC);

	char buf[256];
	CHECK_STR(config_show_value(c, "query_timeout", buf, sizeof(buf)), "0.5");
	CHECK_STR(config_show_value(c, "server_lifetime", buf, sizeof(buf)), "3600");
	CHECK_STR(config_show_value(c, "dns_max_ttl", buf, sizeof(buf)), "0.00001");
	CHECK_STR(config_show_value(c, "listen_port", buf, sizeof(buf)), "7432");
	CHECK_STR(config_show_value(c, "pool_mode", buf, sizeof(buf)), "transaction");
	CHECK_STR(config_show_value(c, "auth_type", buf, sizeof(buf)), "scram-sha-256");
	CHECK_STR(config_show_value(c, "log_connections", buf, sizeof(buf)), "0");
	CHECK_STR(config_show_value(c, "syslog", buf, sizeof(buf)), "1");
	CHECK_STR(config_show_value(c, "server_check_query", buf, sizeof(buf)), "select 1");
	CHECK_STR(config_show_value(c, "logfile", buf, sizeof(buf)), "");
	CHECK_STR(config_show_value(c, "conffile", buf, sizeof(buf)), c->config_file);
	CHECK_STR(config_show_value(c, "client_tls_sslmode", buf, sizeof(buf)), "disable");
	CHECK_STR(config_show_value(c, "server_tls_sslmode", buf, sizeof(buf)), "prefer");
	CHECK(config_show_value(c, "no_such_setting", buf, sizeof(buf)) == NULL);
	config_free(c);

	/* The sentinel, the switch-off, and PgBouncer's name for cleartext auth. */
	c = load_text("[pgbouncer]\nserver_check_query =\nauth_type = plain\n", &err);
	CHECK(c && c->server_check_query == NULL && c->auth_type == AUTH_TYPE_PLAIN);
	if (c) {
		CHECK_STR(config_show_value(c, "server_check_query", buf, sizeof(buf)), "");
		CHECK_STR(config_show_value(c, "auth_type", buf, sizeof(buf)), "plain");
		CHECK_STR(config_show_value(c, "server_reset_query", buf, sizeof(buf)),
		          "DISCARD ALL");
	}
	config_free(c);
	c = load_text("[pgbouncer]\nserver_check_query = <empty>\nauth_type = password\n", &err);
	CHECK(c && c->server_check_query && c->server_check_query[0] == '\0');
	CHECK(c && c->auth_type == AUTH_TYPE_PLAIN);
	if (c)
		CHECK_STR(config_show_value(c, "server_check_query", buf, sizeof(buf)), "<empty>");
	config_free(c);
}

static void test_bad_values(void)
{
	expect_load_error("[pgbouncer]\nlisten_port = abc\n",
	                  "pgbouncer.ini:2: listen_port: invalid integer \"abc\"");
	expect_load_error("[pgbouncer]\nlisten_port = 70000\n",
	                  "pgbouncer.ini:2: listen_port: 70000 is out of range (1..65535)");
	expect_load_error("[pgbouncer]\nlisten_port = 0\n", "listen_port: 0 is out of range");
	expect_load_error("[pgbouncer]\n\npool_mode = bogus\n",
	                  "pgbouncer.ini:3: pool_mode: invalid pool mode \"bogus\"");
	expect_load_error("[pgbouncer]\ndefault_pool_size = -3\n",
	                  "pgbouncer.ini:2: default_pool_size: -3 is out of range");
	expect_load_error("[pgbouncer]\nmax_client_conn = 99999999999\n",
	                  "max_client_conn: 99999999999 is out of range");
	expect_load_error("[pgbouncer]\nmax_client_conn =\n",
	                  "max_client_conn: invalid integer \"\"");
	expect_load_error("[pgbouncer]\nlog_stats = maybe\n", "log_stats: invalid boolean");
	expect_load_error("[pgbouncer]\nquery_timeout = -1\n", "query_timeout: invalid time");
	expect_load_error("[pgbouncer]\nquery_timeout = 5 fortnights\n",
	                  "query_timeout: invalid time \"5 fortnights\"");
	expect_load_error("[pgbouncer]\nquery_timeout = .\n", "query_timeout: invalid time");
	expect_load_error("[pgbouncer]\nquery_timeout = 99999999999999999999\n",
	                  "query_timeout: time \"99999999999999999999\" is too large");
	expect_load_error("[pgbouncer]\nstats_period = 0\n", "stats_period: \"0\" is out of range");
	expect_load_error("[pgbouncer]\nauth_type = ldap\n",
	                  "auth_type: auth type \"ldap\" is not supported by pgsieve");
	expect_load_error("[pgbouncer]\nauth_type = kerberos\n", "invalid auth type");
	expect_load_error("[pgbouncer]\nunix_socket_mode = 0778\n", "unix_socket_mode: invalid");
	expect_load_error("[pgbouncer]\npkt_buf = 16\n", "pkt_buf: 16 is out of range");
	expect_load_error("[pgbouncer]\nverbose = 1000\n", "verbose: 1000 is out of range");
	expect_load_error("[pgbouncer]\npeer_id = 20000\n", "peer_id: 20000 is out of range");
	expect_load_error("[pgbouncer]\nclient_tls_sslmode = sometimes\n",
	                  "client_tls_sslmode: invalid TLS mode");
	expect_load_error("[pgbouncer]\nclient_tls_protocols = tlsv1.2,sslv3\n",
	                  "pgbouncer.ini:2: client_tls_protocols: unknown TLS protocol \"sslv3\"");
	expect_load_error("[pgbouncer]\nserver_tls_protocols = ,\n",
	                  "server_tls_protocols: no TLS protocol given");
	expect_load_error("[pgbouncer]\nclient_tls_dheparams = 512\n",
	                  "client_tls_dheparams: invalid DHE parameters \"512\"");

	expect_load_error("[pgbouncer]\nlisten_port = 6432\nno_such_thing = 1\n",
	                  "pgbouncer.ini:3: no_such_thing: unknown setting");
	expect_load_error("[pgbouncer]\nListen_Port = 1\n", "Listen_Port: unknown setting");
	expect_load_error("[pgbouncer]\n[bogus]\nx = 1\n",
	                  "pgbouncer.ini:2: unknown section [bogus]");
	expect_load_error("listen_port = 1\n[pgbouncer]\n",
	                  "pgbouncer.ini:1: listen_port: setting outside of any section");
	expect_load_error("[databases]\nfoo = host=x\n", "pgbouncer.ini: no [pgbouncer] section");
	expect_load_error("", "no [pgbouncer] section");

	char *err = NULL;
	CHECK(config_load("/nonexistent/dir/pgbouncer.ini", &err) == NULL);
	CHECK(err && strstr(err, "cannot open"));
	free(err);
}

static void test_databases(void)
{
	char *err;
	struct config *c = load_text(
	    "[databases]\n"
	    "plain =\n"
	    "main = host=db1.example.com port=5433 dbname=maindb user=app password=s3cret\n"
	    "sock = host=/var/run/postgresql dbname=x\n"
	    "quoted = password='it''s a \\secret' connect_query='SELECT 1; SET x = ''y'''\n"
	    "limits = pool_size=30 min_pool_size=5 reserve_pool=3 max_db_connections=50 "
	    "pool_mode=statement\n"
	    "alias = reserve_pool_size=7 auth_user=authu auth_query='SELECT u, p FROM f($1)' "
	    "auth_dbname=authdb\n"
	    "params = client_encoding=UTF8 datestyle=ISO timezone=UTC application_name=app1\n"
	    "\"odd name\" = dbname=odd\n"
	    "* = host=fallback port=6000\n"
	    "main = host=db2 port=5434\n"
	    "[pgbouncer]\n",
	    &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	const struct db_config *db = config_find_db(c, "plain");
	CHECK(db && db->host == NULL && db->port == 5432 && db->dbname == NULL);
	CHECK(db && db->user == NULL && db->password == NULL && db->connect_query == NULL);
	CHECK(db && db->pool_size == -1 && db->min_pool_size == -1 && db->reserve_pool == -1);
	CHECK(db && db->max_db_connections == -1 && db->pool_mode == POOL_MODE_UNSET);

	/* The later line for "main" replaced the earlier one, keeping its place. */
	db = config_find_db(c, "main");
	CHECK(db && db->port == 5434 && db->dbname == NULL && db->user == NULL);
	if (db)
		CHECK_STR(db->host, "db2");
	CHECK(c->databases && strcmp(c->databases->name, "plain") == 0);
	CHECK(c->databases && c->databases->next && strcmp(c->databases->next->name, "main") == 0);

	db = config_find_db(c, "sock");
	CHECK(db != NULL);
	if (db)
		CHECK_STR(db->host, "/var/run/postgresql");

	db = config_find_db(c, "quoted");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->password, "it's a \\secret");
		CHECK_STR(db->connect_query, "SELECT 1; SET x = 'y'");
	}

	db = config_find_db(c, "limits");
	CHECK(db && db->pool_size == 30 && db->min_pool_size == 5 && db->reserve_pool == 3);
	CHECK(db && db->max_db_connections == 50 && db->pool_mode == POOL_MODE_STATEMENT);
	CHECK(config_pool_size(c, db) == 30);
	CHECK(config_pool_size(c, config_find_db(c, "plain")) == 20);

	db = config_find_db(c, "alias");
	CHECK(db != NULL);
	if (db) {
		CHECK(db->reserve_pool == 7);
		CHECK_STR(db->auth_user, "authu");
		CHECK_STR(db->auth_query, "SELECT u, p FROM f($1)");
		CHECK_STR(db->auth_dbname, "authdb");
	}

	db = config_find_db(c, "params");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->client_encoding, "UTF8");
		CHECK_STR(db->datestyle, "ISO");
		CHECK_STR(db->timezone, "UTC");
		CHECK_STR(db->application_name, "app1");
	}

	db = config_find_db(c, "odd name");
	CHECK(db != NULL);
	if (db)
		CHECK_STR(db->dbname, "odd");

	/* "*" is an ordinary entry to find; lookups of other names do not fall back to it. */
	db = config_find_db(c, "*");
	CHECK(db && db->port == 6000);
	if (db)
		CHECK_STR(db->host, "fallback");
	CHECK(config_find_db(c, "nosuchdb") == NULL);
	CHECK(config_find_db(c, "MAIN") == NULL);
	config_free(c);

	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=x bogus=1\n",
	                  "pgbouncer.ini:3: foo: unknown parameter \"bogus\" in connection string");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=x port=abc\n",
	                  "pgbouncer.ini:3: foo: port: invalid integer \"abc\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = port=0\n",
	                  "foo: port: 0 is out of range");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = pool_size=-1\n",
	                  "foo: pool_size: -1 is out of range");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = pool_mode=sometimes\n",
	                  "foo: pool_mode: invalid pool mode");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = host\n",
	                  "foo: syntax error in connection string near \"host\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = password='open\n",
	                  "foo: unterminated quoted value for \"password\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = password='a'b\n",
	                  "foo: unexpected text after the quoted value of \"password\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = dbname=''\n",
	                  "foo: empty value for \"dbname\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = =x\n", "foo: syntax error");
	expect_load_error("[pgbouncer]\n[databases]\npgbouncer = host=x\n", "is reserved");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = load_balance_hosts=random\n",
	                  "invalid load_balance_hosts");
}

static void test_host_lists(void)
{
	char *err;
	struct config *c = load_text(
	    "[databases]\n"
	    "one = host=db1 port=6000\n"
	    "plain =\n"
	    "list = host=10.0.0.1,db2,/var/run/pg port=5433 load_balance_hosts=disable "
	    "target_session_attrs=read-write\n"
	    "ports = host='a, b ,,c' port=5001,5002,5003 target_session_attrs=prefer-standby\n"
	    "modes = host=a,b load_balance_hosts=ROUND-ROBIN target_session_attrs=Standby\n"
	    "[pgbouncer]\n",
	    &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	char host[256];
	int port = 0;
	const struct db_config *db = config_find_db(c, "one");
	CHECK(db && db->host_count == 1 && db->ports == NULL);
	CHECK(db && db->load_balance_hosts == LB_ROUND_ROBIN &&
	      db->target_session_attrs == TSA_ANY);
	CHECK(db && config_db_host(db, 0, host, sizeof(host), &port) && port == 6000);
	CHECK_STR(host, "db1");
	CHECK(db && !config_db_host(db, 1, host, sizeof(host), &port));

	/* No host: one entry, the default socket directory (""). */
	db = config_find_db(c, "plain");
	CHECK(db && db->host_count == 1 && config_db_host(db, 0, host, sizeof(host), &port));
	CHECK(port == 5432 && host[0] == '\0');

	db = config_find_db(c, "list");
	CHECK(db && db->host_count == 3 && db->port == 5433 && db->ports == NULL);
	CHECK(db && db->load_balance_hosts == LB_DISABLE);
	CHECK(db && db->target_session_attrs == TSA_READ_WRITE);
	CHECK(db && config_db_host(db, 1, host, sizeof(host), &port) && port == 5433);
	CHECK_STR(host, "db2");
	CHECK(db && config_db_host(db, 2, host, sizeof(host), &port) && port == 5433);
	CHECK_STR(host, "/var/run/pg");
	if (db)
		CHECK_STR(db->host, "10.0.0.1,db2,/var/run/pg"); /* kept as written, for SHOW */

	/* Spaces around entries go, empty entries are skipped (as PgBouncer); one port each. */
	db = config_find_db(c, "ports");
	CHECK(db && db->host_count == 3 && db->port == 5001);
	CHECK(db && db->target_session_attrs == TSA_PREFER_STANDBY);
	CHECK(db && config_db_host(db, 0, host, sizeof(host), &port) && port == 5001);
	CHECK_STR(host, "a");
	CHECK(db && config_db_host(db, 1, host, sizeof(host), &port) && port == 5002);
	CHECK_STR(host, "b");
	CHECK(db && config_db_host(db, 2, host, sizeof(host), &port) && port == 5003);
	CHECK_STR(host, "c");

	db = config_find_db(c, "modes");
	CHECK(db && db->load_balance_hosts == LB_ROUND_ROBIN);
	CHECK(db && db->target_session_attrs == TSA_STANDBY);
	CHECK_STR(config_load_balance_name(LB_DISABLE), "disable");
	CHECK_STR(config_session_attrs_name(TSA_PREFER_STANDBY), "prefer-standby");
	config_free(c);

	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=a,b port=1,2,3\n",
	                  "foo: port: 3 ports for 2 hosts");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = port=1,2\n",
	                  "foo: port: 2 ports for 1 host ");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=a,b port=1,x\n",
	                  "foo: port: invalid integer \"x\"");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=a,b port=1,70000\n",
	                  "foo: port: 70000 is out of range");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = host=,,\n", "foo: host: no host in");
	expect_load_error(
	    "[pgbouncer]\n[databases]\nfoo = "
	    "host=a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a\n",
	    "foo: host: 33 hosts, at most 32 are allowed");
	expect_load_error("[pgbouncer]\n[databases]\nfoo = target_session_attrs=master\n",
	                  "invalid target_session_attrs \"master\"");
}

static void test_users(void)
{
	char *err;
	struct config *c = load_text("[pgbouncer]\npool_mode = transaction\n"
	                             "[databases]\nsess = pool_mode=session\nany =\n"
	                             "[users]\n"
	                             "alice = pool_mode=statement max_user_connections=10\n"
	                             "bob = max_user_connections=3\n"
	                             "carol =\n",
	                             &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	const struct user_config *alice = config_find_user(c, "alice");
	const struct user_config *bob = config_find_user(c, "bob");
	const struct user_config *carol = config_find_user(c, "carol");
	CHECK(alice && alice->pool_mode == POOL_MODE_STATEMENT &&
	      alice->max_user_connections == 10);
	CHECK(bob && bob->pool_mode == POOL_MODE_UNSET && bob->max_user_connections == 3);
	CHECK(carol && carol->max_user_connections == -1);
	CHECK(config_find_user(c, "dave") == NULL);

	const struct db_config *sess = config_find_db(c, "sess"), *any = config_find_db(c, "any");
	CHECK(config_pool_mode(c, sess, alice) == POOL_MODE_STATEMENT);
	CHECK(config_pool_mode(c, sess, bob) == POOL_MODE_SESSION);
	CHECK(config_pool_mode(c, any, bob) == POOL_MODE_TRANSACTION);
	CHECK(config_pool_mode(c, NULL, NULL) == POOL_MODE_TRANSACTION);
	config_free(c);

	expect_load_error("[pgbouncer]\n[users]\nalice = pool_size=abc\n",
	                  "pgbouncer.ini:3: alice: pool_size: invalid integer");
	expect_load_error("[pgbouncer]\n[users]\nalice = host=x\n",
	                  "alice: unknown parameter \"host\" in connection string");
}

/* Per-database and per-user overrides, and which value wins. */
static void test_entry_overrides(void)
{
	char *err;
	struct config *c = load_text(
	    "[pgbouncer]\n"
	    "default_pool_size = 20\nreserve_pool_size = 2\nserver_lifetime = 100\n"
	    "query_wait_timeout = 120\nquery_timeout = 9\nclient_idle_timeout = 8\n"
	    "max_db_client_connections = 50\nmax_user_client_connections = 40\n"
	    "query_wait_notify = 1.5\nscram_iterations = 10000\nsbuf_loopcnt = 0\n"
	    "server_fast_close = 1\n"
	    "[databases]\n"
	    "tuned = pool_size=7 reserve_pool=3 server_lifetime=30 query_wait_timeout=4 "
	    "max_db_client_connections=6\n"
	    "plain =\n"
	    "unset = query_wait_timeout=-1 max_db_client_connections=0 server_lifetime=0\n"
	    "nowait = query_wait_timeout=0\n"
	    "[users]\n"
	    "alice = pool_size=3 reserve_pool_size=1 max_user_client_connections=2 "
	    "query_timeout=500ms idle_transaction_timeout=2 transaction_timeout=3 "
	    "client_idle_timeout=1min query_wait_timeout=0\n"
	    "bob = query_wait_timeout=-1 query_timeout=0\n",
	    &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	CHECK(c->max_db_client_connections == 50 && c->max_user_client_connections == 40);
	CHECK(c->query_wait_notify == 1500000 && c->scram_iterations == 10000);
	CHECK(c->sbuf_loopcnt == 0 && c->server_fast_close);

	const struct db_config *tuned = config_find_db(c, "tuned"),
	                       *plain = config_find_db(c, "plain");
	const struct db_config *unset = config_find_db(c, "unset"),
	                       *nowait = config_find_db(c, "nowait");
	const struct user_config *alice = config_find_user(c, "alice"),
	                         *bob = config_find_user(c, "bob");
	CHECK(tuned && plain && unset && nowait && alice && bob);
	if (!tuned || !plain || !unset || !nowait || !alice || !bob) {
		config_free(c);
		return;
	}
	CHECK(tuned->server_lifetime == 30 * USEC_PER_SEC);
	CHECK(tuned->query_wait_timeout == 4 * USEC_PER_SEC);
	CHECK(tuned->max_db_client_connections == 6);
	CHECK(plain->server_lifetime == 0 && plain->query_wait_timeout == -1);
	CHECK(plain->max_db_client_connections == -1);
	CHECK(alice->pool_size == 3 && alice->reserve_pool_size == 1);
	CHECK(alice->max_user_client_connections == 2);
	CHECK(alice->query_timeout == 500000);
	CHECK(alice->idle_transaction_timeout == 2 * USEC_PER_SEC);
	CHECK(alice->transaction_timeout == 3 * USEC_PER_SEC);
	CHECK(alice->client_idle_timeout == 60 * USEC_PER_SEC);
	CHECK(alice->query_wait_timeout == 0);
	CHECK(bob->pool_size == -1 && bob->reserve_pool_size == -1);
	CHECK(bob->query_wait_timeout == -1 && bob->query_timeout == 0);

	/* user > database > global */
	CHECK(config_pool_size_for(c, tuned, alice) == 3);
	CHECK(config_pool_size_for(c, tuned, bob) == 7);
	CHECK(config_pool_size_for(c, plain, NULL) == 20);
	CHECK(config_reserve_pool_size(c, tuned, alice) == 1);
	CHECK(config_reserve_pool_size(c, tuned, bob) == 3);
	CHECK(config_reserve_pool_size(c, plain, bob) == 2);
	CHECK(config_query_wait_timeout(c, tuned, alice) == 0); /* the user switched it off */
	CHECK(config_query_wait_timeout(c, tuned, bob) == 4 * USEC_PER_SEC);
	CHECK(config_query_wait_timeout(c, nowait, NULL) == 0);
	CHECK(config_query_wait_timeout(c, unset, bob) == 120 * USEC_PER_SEC);
	/* As in PgBouncer, 0 in an entry is "not set" for these. */
	CHECK(config_server_lifetime(c, tuned) == 30 * USEC_PER_SEC);
	CHECK(config_server_lifetime(c, unset) == 100 * USEC_PER_SEC);
	CHECK(config_max_db_client_connections(c, tuned) == 6);
	CHECK(config_max_db_client_connections(c, unset) == 50);
	CHECK(config_max_db_client_connections(c, NULL) == 50);
	CHECK(config_max_user_client_connections(c, alice) == 2);
	CHECK(config_max_user_client_connections(c, bob) == 40);
	CHECK(config_user_time(alice->query_timeout, c->query_timeout) == 500000);
	CHECK(config_user_time(bob->query_timeout, c->query_timeout) == 9 * USEC_PER_SEC);
	CHECK(config_user_time(alice->client_idle_timeout, c->client_idle_timeout) ==
	      60 * USEC_PER_SEC);

	char buf[256];
	CHECK_STR(config_show_value(c, "query_wait_notify", buf, sizeof(buf)), "1.5");
	CHECK_STR(config_show_value(c, "scram_iterations", buf, sizeof(buf)), "10000");
	CHECK_STR(config_show_value(c, "max_db_client_connections", buf, sizeof(buf)), "50");
	config_free(c);

	expect_load_error("[pgbouncer]\n[users]\nalice = query_timeout=soon\n",
	                  "pgbouncer.ini:3: alice: query_timeout: invalid time \"soon\"");
	expect_load_error("[pgbouncer]\n[users]\nalice = query_wait_timeout=-2\n",
	                  "alice: query_wait_timeout: invalid time \"-2\"");
	expect_load_error("[pgbouncer]\n[users]\nalice = max_user_client_connections=-1\n",
	                  "alice: max_user_client_connections: -1 is out of range");
	expect_load_error("[pgbouncer]\n[databases]\nd = server_lifetime=-1\n",
	                  "pgbouncer.ini:3: d: server_lifetime: invalid time \"-1\"");
	expect_load_error("[pgbouncer]\n[databases]\nd = max_db_client_connections=x\n",
	                  "d: max_db_client_connections: invalid integer \"x\"");
	expect_load_error("[pgbouncer]\nscram_iterations = 0\n",
	                  "pgbouncer.ini:2: scram_iterations: 0 is out of range");
	expect_load_error("[pgbouncer]\nsbuf_loopcnt = -1\n", "sbuf_loopcnt: -1 is out of range");
	expect_load_error("[pgbouncer]\nquery_wait_notify = later\n",
	                  "query_wait_notify: invalid time \"later\"");
}

static void test_not_implemented(void)
{
	put("tls.ini",
	    "login_notify_message = hello\njob_name = 2\nconffile = /etc/pgsieve/next.ini\n"
	    "dns_zone_check_period = 5\n");
	capture_start();
	char *err;
	struct config *c =
	    load_text("[pgbouncer]\n"
	              "listen_port = 6000\n"
	              "login_notify_message = hi\n"
	              "job_name = 1\n"
	              "auth_ldap_options = x\n"
	              "%include tls.ini\n"
	              "[databases]\n"
	              "a = host=x load_balance_hosts=disable target_session_attrs=any\n"
	              "b = load_balance_hosts=round-robin\n"
	              "[users]\n"
	              "u = pool_size=5 client_idle_timeout=10\n"
	              "[peers]\n"
	              "1 = host=/tmp/pgb1\n"
	              "2 = host=/tmp/pgb2 port=6433\n",
	              &err);
	char *log = capture_stop();
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		free(log);
		return;
	}
	CHECK(c->listen_port == 6000);
	CHECK(count(log, "WARNING") == 1);
	CHECK(count(log, "setting \"auth_ldap_options\" is accepted but not implemented yet; "
	                 "it has no effect") == 1);
	CHECK(count(log, "pgbouncer.ini:5: setting \"auth_ldap_options\"") == 1);
	/* conffile names the file the next RELOAD reads, as in PgBouncer. */
	CHECK(count(log, "conffile") == 0);
	CHECK(c->config_file && strcmp(c->config_file, "/etc/pgsieve/next.ini") == 0);
	CHECK(count(log, "dns_zone_check_period") == 0);
	CHECK(c->dns_zone_check_period == 5 * USEC_PER_SEC);
	/* Implemented, or meaningful on Windows only as in PgBouncer: no warning. */
	CHECK(count(log, "login_notify_message") == 0);
	CHECK(count(log, "job_name") == 0);
	/* Host list settings work now: nothing to say about them. */
	CHECK(count(log, "load_balance_hosts") == 0);
	CHECK(count(log, "target_session_attrs") == 0);
	/* Implemented [users] parameters and [peers] say nothing. */
	CHECK(count(log, "parameter \"pool_size\"") == 0);
	CHECK(count(log, "parameter \"client_idle_timeout\"") == 0);
	CHECK(count(log, "[peers]") == 0);
	CHECK(c->peers && c->peers->id == 1 && strcmp(c->peers->host, "/tmp/pgb1") == 0 &&
	      c->peers->port == 6432 && c->peers->pool_size == -1);
	CHECK(c->peers && c->peers->next && c->peers->next->port == 6433 && !c->peers->next->next);
	CHECK(config_find_peer(c, 2) && !config_find_peer(c, 3));

	/* SHOW CONFIG shows what the file said last, not the default. */
	char buf[256];
	CHECK_STR(config_show_value(c, "login_notify_message", buf, sizeof(buf)), "hello");
	CHECK_STR(config_show_value(c, "job_name", buf, sizeof(buf)), "2");
	CHECK_STR(config_show_value(c, "auth_ldap_options", buf, sizeof(buf)), "x");
	CHECK_STR(config_show_value(c, "client_tls_ciphers", buf, sizeof(buf)), "default");
	config_free(c);
	free(log);

	/* A second load warns again: once per setting per load. */
	capture_start();
	c = load_text("[pgbouncer]\nauth_ldap_options = 1\n", &err);
	log = capture_stop();
	CHECK(c != NULL);
	CHECK(count(log, "setting \"auth_ldap_options\"") == 1);
	config_free(c);
	free(log);

	expect_load_error("[pgbouncer]\n[peers]\nx = host=a\n", "x: peer id must be a number");
	expect_load_error("[pgbouncer]\n[peers]\n1 = host=a\n1 = host=b\n",
	                  "1: peer 1 is listed twice");
	expect_load_error("[pgbouncer]\n[peers]\n1 = port=5\n", "1: a peer needs host=");
	expect_load_error("[pgbouncer]\n[peers]\n1 = host=a user=b\n",
	                  "unknown parameter \"user\"");
}

/* A configuration as a PgBouncer 1.18 installation would have it. */
static void test_realistic(void)
{
	put("userlist.txt", "\"app\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n");
	const char *text = ";; pgbouncer configuration\n"
	                   "[databases]\n"
	                   "appdb = host=10.0.0.5 port=5432 dbname=app_production\n"
	                   "reports = host=10.0.0.6 dbname=reports pool_size=5 pool_mode=session\n"
	                   "analytics = host=/var/run/postgresql dbname=analytics user=analyst "
	                   "password='p@ss word'\n"
	                   "* = host=10.0.0.5\n"
	                   "\n"
	                   "[users]\n"
	                   "batch = pool_mode=session\n"
	                   "\n"
	                   "[pgbouncer]\n"
	                   "logfile = /var/log/pgbouncer/pgbouncer.log\n"
	                   "pidfile = /var/run/pgbouncer/pgbouncer.pid\n"
	                   "listen_addr = *\n"
	                   "listen_port = 6432\n"
	                   "unix_socket_dir = /var/run/postgresql\n"
	                   "auth_type = scram-sha-256\n"
	                   "auth_file = /etc/pgbouncer/userlist.txt\n"
	                   "admin_users = postgres, admin\n"
	                   "stats_users = stats,monitor\n"
	                   "pool_mode = transaction\n"
	                   "server_reset_query = DISCARD ALL\n"
	                   "ignore_startup_parameters = extra_float_digits\n"
	                   "max_client_conn = 1000\n"
	                   "default_pool_size = 25\n"
	                   "min_pool_size = 2\n"
	                   "reserve_pool_size = 5\n"
	                   "reserve_pool_timeout = 3\n"
	                   "max_db_connections = 100\n"
	                   "server_lifetime = 3600\n"
	                   "server_idle_timeout = 600\n"
	                   "server_connect_timeout = 15\n"
	                   "server_login_retry = 15\n"
	                   "query_wait_timeout = 120\n"
	                   "client_login_timeout = 60\n"
	                   "autodb_idle_timeout = 3600\n"
	                   "dns_max_ttl = 15\n"
	                   "log_connections = 1\n"
	                   "log_disconnections = 1\n"
	                   "log_pooler_errors = 1\n"
	                   "stats_period = 60\n"
	                   "tcp_keepalive = 1\n"
	                   "tcp_keepidle = 60\n"
	                   "tcp_keepintvl = 10\n"
	                   "tcp_keepcnt = 6\n"
	                   "pkt_buf = 8192\n"
	                   "max_packet_size = 2147483647\n"
	                   "server_check_delay = 30\n"
	                   "server_check_query = select 1\n"
	                   "application_name_add_host = 1\n";
	char *err;
	struct config *c = load_text(text, &err);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	CHECK(c->auth_type == AUTH_TYPE_SCRAM_SHA_256);
	CHECK_STR(c->auth_file, "/etc/pgbouncer/userlist.txt");
	CHECK(c->pool_mode == POOL_MODE_TRANSACTION);
	CHECK_STR(c->listen_addr, "*");
	CHECK_STR(c->unix_socket_dir, "/var/run/postgresql");
	CHECK_STR(c->logfile, "/var/log/pgbouncer/pgbouncer.log");
	CHECK(c->max_client_conn == 1000 && c->default_pool_size == 25 && c->min_pool_size == 2);
	CHECK(c->reserve_pool_timeout == 3 * USEC_PER_SEC);
	CHECK(c->tcp_keepidle == 60 && c->tcp_keepintvl == 10 && c->tcp_keepcnt == 6);
	CHECK(c->pkt_buf == 8192 && c->application_name_add_host);
	CHECK(config_list_contains(c->admin_users, "admin"));
	CHECK(config_list_contains(c->admin_users, "postgres"));
	CHECK(!config_list_contains(c->admin_users, "stats"));
	CHECK(config_list_contains(c->stats_users, "monitor"));
	CHECK(config_list_contains(c->ignore_startup_parameters, "extra_float_digits"));

	int n = 0;
	for (const struct db_config *db = c->databases; db; db = db->next)
		n++;
	CHECK(n == 4);
	const struct db_config *db = config_find_db(c, "reports");
	CHECK(db && db->pool_size == 5 && config_pool_mode(c, db, NULL) == POOL_MODE_SESSION);
	db = config_find_db(c, "appdb");
	CHECK(db && config_pool_mode(c, db, NULL) == POOL_MODE_TRANSACTION);
	CHECK(db && config_pool_mode(c, db, config_find_user(c, "batch")) == POOL_MODE_SESSION);
	db = config_find_db(c, "analytics");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->password, "p@ss word");
		CHECK_STR(db->user, "analyst");
	}
	CHECK(config_find_db(c, "*") != NULL);
	config_free(c);
}

static void test_helpers(void)
{
	CHECK(config_list_contains("a,b, c ,  d", "c"));
	CHECK(config_list_contains("a b\td", "d"));
	CHECK(config_list_contains("admin", "admin"));
	CHECK(!config_list_contains("administrator", "admin"));
	CHECK(!config_list_contains("admin2,xadmin", "admin"));
	CHECK(!config_list_contains("", "admin"));
	CHECK(!config_list_contains(NULL, "admin"));
	CHECK(!config_list_contains("a,,b", ""));

	CHECK_STR(config_pool_mode_name(POOL_MODE_SESSION), "session");
	CHECK_STR(config_pool_mode_name(POOL_MODE_TRANSACTION), "transaction");
	CHECK_STR(config_pool_mode_name(POOL_MODE_STATEMENT), "statement");
	const char *auth[] = {"trust", "any", "password", "md5",   "scram-sha-256",
	                      "cert",  "hba", "peer",     "reject"};
	for (int t = AUTH_TYPE_TRUST; t <= AUTH_TYPE_REJECT; t++)
		CHECK_STR(config_auth_type_name((enum auth_type)t), auth[t]);
}

/* Every setting PgBouncer 1.25 documents must be known, and the table must stay sorted. */
static void test_settings_table(void)
{
	static const char *const pgbouncer_names[] = {
	    "admin_users",
	    "application_name_add_host",
	    "auth_dbname",
	    "auth_file",
	    "auth_hba_file",
	    "auth_ident_file",
	    "auth_ldap_options",
	    "auth_query",
	    "auth_type",
	    "auth_user",
	    "autodb_idle_timeout",
	    "cancel_wait_timeout",
	    "client_idle_timeout",
	    "client_login_timeout",
	    "client_tls13_ciphers",
	    "client_tls_ca_file",
	    "client_tls_cert_file",
	    "client_tls_ciphers",
	    "client_tls_dheparams",
	    "client_tls_ecdhcurve",
	    "client_tls_key_file",
	    "client_tls_protocols",
	    "client_tls_sslmode",
	    "conffile",
	    "default_pool_size",
	    "disable_pqexec",
	    "dns_max_ttl",
	    "dns_nxdomain_ttl",
	    "dns_zone_check_period",
	    "idle_transaction_timeout",
	    "ignore_startup_parameters",
	    "job_name",
	    "listen_addr",
	    "listen_backlog",
	    "listen_port",
	    "log_connections",
	    "log_disconnections",
	    "log_pooler_errors",
	    "log_stats",
	    "logfile",
	    "max_client_conn",
	    "max_db_client_connections",
	    "max_db_connections",
	    "max_packet_size",
	    "max_prepared_statements",
	    "max_user_client_connections",
	    "max_user_connections",
	    "min_pool_size",
	    "peer_id",
	    "pidfile",
	    "pkt_buf",
	    "pool_mode",
	    "query_timeout",
	    "query_wait_timeout",
	    "reserve_pool_size",
	    "reserve_pool_timeout",
	    "resolv_conf",
	    "sbuf_loopcnt",
	    "scram_iterations",
	    "server_check_delay",
	    "server_check_query",
	    "server_connect_timeout",
	    "server_fast_close",
	    "server_idle_timeout",
	    "server_lifetime",
	    "server_login_retry",
	    "server_reset_query",
	    "server_reset_query_always",
	    "server_round_robin",
	    "server_tls13_ciphers",
	    "server_tls_ca_file",
	    "server_tls_cert_file",
	    "server_tls_ciphers",
	    "server_tls_key_file",
	    "server_tls_protocols",
	    "server_tls_sslmode",
	    "service_name",
	    "so_reuseport",
	    "stats_period",
	    "stats_users",
	    "suspend_timeout",
	    "syslog",
	    "syslog_facility",
	    "syslog_ident",
	    "tcp_defer_accept",
	    "tcp_keepalive",
	    "tcp_keepcnt",
	    "tcp_keepidle",
	    "tcp_keepintvl",
	    "tcp_socket_buffer",
	    "tcp_user_timeout",
	    "track_extra_parameters",
	    "transaction_timeout",
	    "unix_socket_dir",
	    "unix_socket_group",
	    "unix_socket_mode",
	    "user",
	    "verbose",
	    "query_wait_notify",
	    "login_notify_message",
	    "pool_idle_timeout",
	};
	char *err;
	struct config *c = load_text("[pgbouncer]\n", &err);
	CHECK(c != NULL);
	if (!c)
		return;
	char buf[256];
	for (size_t i = 0; i < ARRAY_SIZE(pgbouncer_names); i++) {
		const char *v = config_show_value(c, pgbouncer_names[i], buf, sizeof(buf));
		if (!v)
			fprintf(stderr, "  setting %s is missing\n", pgbouncer_names[i]);
		CHECK(v != NULL);
	}

	struct config_setting_info prev = {0}, cur;
	size_t n = 0;
	bool sorted = true;
	while (config_setting_at(n, &cur)) {
		if (prev.name && strcmp(prev.name, cur.name) >= 0) {
			fprintf(stderr, "  %s sorts after %s\n", prev.name, cur.name);
			sorted = false;
		}
		/* Each row loads and shows; implemented defaults round-trip through SHOW. */
		CHECK(config_show_value(c, cur.name, buf, sizeof(buf)) != NULL);
		prev = cur;
		n++;
	}
	CHECK(sorted);
	CHECK(n >= ARRAY_SIZE(pgbouncer_names));
	CHECK(!config_setting_at(n, &cur));

	CHECK(config_setting_at(0, &cur) && strcmp(cur.name, "admin_users") == 0);
	for (size_t i = 0; config_setting_at(i, &cur); i++) {
		if (strcmp(cur.name, "listen_port") == 0)
			CHECK(!cur.reloadable && cur.implemented &&
			      strcmp(cur.default_value, "6432") == 0);
		if (strcmp(cur.name, "default_pool_size") == 0)
			CHECK(cur.reloadable && cur.implemented);
		if (strcmp(cur.name, "client_tls_sslmode") == 0)
			CHECK(cur.reloadable && cur.implemented);
		if (strcmp(cur.name, "peer_id") == 0)
			CHECK(cur.implemented && !cur.reloadable);
	}
	config_free(c);
}

/* The global is defined by config.c and starts out empty. */
static void test_tls_settings(void)
{
	char *err = NULL;
	struct config *c = load_text("[pgbouncer]\n"
	                             "client_tls_sslmode = Verify-Full\n"
	                             "client_tls_key_file = /k.pem\n"
	                             "server_tls_sslmode = require\n"
	                             "server_tls_protocols = tlsv1.3\n",
	                             &err);
	CHECK(c != NULL);
	if (!c) {
		free(err);
		return;
	}
	CHECK(c->client_tls_sslmode == TLS_MODE_VERIFY_FULL);
	CHECK(c->server_tls_sslmode == TLS_MODE_REQUIRE);
	CHECK_STR(c->client_tls_key_file, "/k.pem");
	CHECK(c->client_tls_cert_file == NULL);
	CHECK(c->client_tls13_ciphers == NULL);
	CHECK_STR(c->client_tls_protocols, "secure");
	char buf[256];
	CHECK_STR(config_show_value(c, "client_tls_sslmode", buf, sizeof(buf)), "verify-full");
	CHECK_STR(config_show_value(c, "server_tls_protocols", buf, sizeof(buf)), "tlsv1.3");
	/* Later checks (tls.c) name the line a file setting came from. */
	CHECK(strstr(config_origin(c, "client_tls_key_file"), "/pgbouncer.ini:3") != NULL);
	CHECK(strstr(config_origin(c, "client_tls_cert_file"), "pgbouncer.ini") != NULL);
	/* SET on the console stores the mode too, and names itself as the origin. */
	CHECK(config_set(c, "server_tls_sslmode", "verify-ca", &err));
	CHECK(c->server_tls_sslmode == TLS_MODE_VERIFY_CA);
	CHECK_STR(config_origin(c, "server_tls_sslmode"), "SET on the console");
	CHECK(!config_set(c, "server_tls_sslmode", "always", &err));
	free(err);
	CHECK(c->server_tls_sslmode == TLS_MODE_VERIFY_CA);
	config_free(c);

	unsigned bits = 0;
	char *why = NULL;
	CHECK(config_tls_protocols("secure", &bits, &why) &&
	      bits == (CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3));
	CHECK(config_tls_protocols("TLSv1.0, tlsv1.2", &bits, &why) &&
	      bits == (CONFIG_TLS_V1_0 | CONFIG_TLS_V1_2));
	CHECK(config_tls_protocols("legacy", &bits, &why) && bits == 0x0f);
	CHECK(!config_tls_protocols("tlsv1.4", &bits, &why));
	free(why);
}

static void test_global(void)
{
	CHECK(cf == NULL);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_global();
	test_ini_syntax();
	test_ini_errors();
	test_ini_include();
	test_defaults();
	test_values();
	test_bad_values();
	test_databases();
	test_host_lists();
	test_users();
	test_entry_overrides();
	test_not_implemented();
	test_realistic();
	test_helpers();
	test_settings_table();
	test_tls_settings();

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_summary("test_ini");
}
