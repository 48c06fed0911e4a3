/*
 * hba.c against tables: each match case is one hba file, one request and
 * the method (and map) expected; each error case is a file and the
 * "file:line: words" its error must contain. @file cases read small files
 * written into a temporary directory, so includes are exercised for real.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "hba.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum via { UNIX, TCP, TLS };

struct match_case {
	const char *hba;
	enum via via;
	const char *addr; /* numeric client address, NULL for unix */
	const char *db, *user;
	bool replication;
	enum auth_type expect;
	const char *map; /* expected map= or NULL */
};

#define R    AUTH_TYPE_REJECT
#define T    AUTH_TYPE_TRUST
#define M    AUTH_TYPE_MD5
#define P    AUTH_TYPE_PLAIN
#define S    AUTH_TYPE_SCRAM_SHA_256
#define C    AUTH_TYPE_CERT
#define PEER AUTH_TYPE_PEER

static const struct match_case match_cases[] = {
    /* record types */
    {"local all all trust\n", UNIX, NULL, "db", "u", false, T, NULL},
    {"local all all trust\n", TCP, "127.0.0.1", "db", "u", false, R, NULL},
    {"host all all 0.0.0.0/0 md5\n", UNIX, NULL, "db", "u", false, R, NULL},
    {"host all all 0.0.0.0/0 md5\n", TCP, "10.1.2.3", "db", "u", false, M, NULL},
    {"host all all 0.0.0.0/0 md5\n", TLS, "10.1.2.3", "db", "u", false, M, NULL},
    {"hostssl all all all scram-sha-256\n", TLS, "10.1.2.3", "db", "u", false, S, NULL},
    {"hostssl all all all scram-sha-256\n", TCP, "10.1.2.3", "db", "u", false, R, NULL},
    {"hostnossl all all all password\n", TCP, "10.1.2.3", "db", "u", false, P, NULL},
    {"hostnossl all all all password\n", TLS, "10.1.2.3", "db", "u", false, R, NULL},
    {"hostssl all all all cert\nhostnossl all all all reject\n", TLS, "::1", "d", "u", false, C,
     NULL},
    {"hostssl all all all cert\nhostnossl all all all md5\n", TCP, "::1", "d", "u", false, M, NULL},
    {"hostnossl all all all reject\nhost all all all md5\n", TLS, "1.2.3.4", "d", "u", false, M,
     NULL},
    {"hostnossl all all all reject\nhost all all all md5\n", TCP, "1.2.3.4", "d", "u", false, R,
     NULL},
    /* all methods */
    {"local all all reject\n", UNIX, NULL, "d", "u", false, R, NULL},
    {"local all all peer\n", UNIX, NULL, "d", "u", false, PEER, NULL},
    {"local all all ident\n", UNIX, NULL, "d", "u", false, PEER, NULL},
    {"local all all peer map=ops\n", UNIX, NULL, "d", "u", false, PEER, "ops"},
    {"hostssl all all all cert map=\"cn map\"\n", TLS, "::1", "d", "u", false, C, "cn map"},
    {"local all all password\n", UNIX, NULL, "d", "u", false, P, NULL},
    /* empty file and no match reject */
    {"", UNIX, NULL, "d", "u", false, R, NULL},
    {"# only a comment\n\n   \n", TCP, "127.0.0.1", "d", "u", false, R, NULL},
    {"local d u trust\n", UNIX, NULL, "other", "u", false, R, NULL},
    /* IPv4 CIDR edges */
    {"host all all 192.168.1.7/32 trust\n", TCP, "192.168.1.7", "d", "u", false, T, NULL},
    {"host all all 192.168.1.7/32 trust\n", TCP, "192.168.1.8", "d", "u", false, R, NULL},
    {"host all all 192.168.1.0/24 trust\n", TCP, "192.168.1.255", "d", "u", false, T, NULL},
    {"host all all 192.168.1.0/24 trust\n", TCP, "192.168.2.0", "d", "u", false, R, NULL},
    {"host all all 10.0.0.0/9 trust\n", TCP, "10.127.255.255", "d", "u", false, T, NULL},
    {"host all all 10.0.0.0/9 trust\n", TCP, "10.128.0.0", "d", "u", false, R, NULL},
    {"host all all 0.0.0.0/0 trust\n", TCP, "255.255.255.255", "d", "u", false, T, NULL},
    {"host all all 0.0.0.0/0 trust\n", TCP, "::1", "d", "u", false, R, NULL},
    /* a dual-stack listener reports IPv4 clients as v4-mapped IPv6 */
    {"host all all 127.0.0.0/8 trust\n", TCP, "::ffff:127.0.0.5", "d", "u", false, T, NULL},
    {"host all all 127.0.0.0/8 trust\n", TCP, "::ffff:128.0.0.5", "d", "u", false, R, NULL},
    /* address and mask columns */
    {"host all all 172.16.0.0 255.240.0.0 md5\n", TCP, "172.31.9.9", "d", "u", false, M, NULL},
    {"host all all 172.16.0.0 255.240.0.0 md5\n", TCP, "172.32.0.1", "d", "u", false, R, NULL},
    {"host all all 1.2.3.4 255.255.255.255 md5\n", TCP, "1.2.3.4", "d", "u", false, M, NULL},
    {"host all all fe80:: ffff:: md5\n", TCP, "fe80::99", "d", "u", false, M, NULL},
    {"host all all fe80:: ffff:: md5\n", TCP, "fe81::99", "d", "u", false, R, NULL},
    /* IPv6 CIDR edges */
    {"host all all ::1/128 trust\n", TCP, "::1", "d", "u", false, T, NULL},
    {"host all all ::1/128 trust\n", TCP, "::2", "d", "u", false, R, NULL},
    {"host all all ::/0 trust\n", TCP, "2001:db8::1", "d", "u", false, T, NULL},
    {"host all all ::/0 trust\n", TCP, "10.0.0.1", "d", "u", false, R, NULL},
    {"host all all 2001:db8::/32 trust\n", TCP, "2001:db8:ffff::1", "d", "u", false, T, NULL},
    {"host all all 2001:db8::/32 trust\n", TCP, "2001:db9::1", "d", "u", false, R, NULL},
    {"host all all 2001:db8::/33 trust\n", TCP, "2001:db8:8000::1", "d", "u", false, R, NULL},
    {"host all all 2001:db8::/33 trust\n", TCP, "2001:db8:7fff::1", "d", "u", false, T, NULL},
    {"host all all all trust\n", TCP, "2001:db8::1", "d", "u", false, T, NULL},
    /* database field */
    {"local sameuser all md5\n", UNIX, NULL, "alice", "alice", false, M, NULL},
    {"local sameuser all md5\n", UNIX, NULL, "alice", "bob", false, R, NULL},
    {"local db1,db2 all md5\n", UNIX, NULL, "db2", "u", false, M, NULL},
    {"local db1, db2 all md5\n", UNIX, NULL, "db2", "u", false, M, NULL},
    {"local db1,db2 all md5\n", UNIX, NULL, "db", "u", false, R, NULL},
    {"local Db all md5\n", UNIX, NULL, "db", "u", false, R, NULL},
    {"local replication all trust\n", UNIX, NULL, NULL, "u", true, T, NULL},
    {"local replication all trust\n", UNIX, NULL, "replication", "u", false, R, NULL},
    {"local all all trust\n", UNIX, NULL, "db", "u", true, R, NULL},
    {"local \"replication\" all trust\n", UNIX, NULL, "replication", "u", false, T, NULL},
    {"local \"replication\" all trust\n", UNIX, NULL, NULL, "u", true, R, NULL},
    {"local \"all\" all trust\n", UNIX, NULL, "db", "u", false, R, NULL},
    {"local \"all\" all trust\n", UNIX, NULL, "all", "u", false, T, NULL},
    {"local \"sameuser\" all trust\n", UNIX, NULL, "bob", "bob", false, R, NULL},
    /* user field */
    {"local all alice,bob md5\n", UNIX, NULL, "d", "bob", false, M, NULL},
    {"local all alice,bob md5\n", UNIX, NULL, "d", "carol", false, R, NULL},
    {"local all \"+ops\" md5\n", UNIX, NULL, "d", "+ops", false, M, NULL},
    /* quoting */
    {"local \"my db\" \"the user\" trust\n", UNIX, NULL, "my db", "the user", false, T, NULL},
    {"local \"a,b\" all trust\n", UNIX, NULL, "a,b", "u", false, T, NULL},
    {"local \"a,b\" all trust\n", UNIX, NULL, "a", "u", false, R, NULL},
    {"local \"x#y\" all trust # comment\n", UNIX, NULL, "x#y", "u", false, T, NULL},
    {"local db\"1 2\" all trust\n", UNIX, NULL, "db1 2", "u", false, T, NULL},
    /* comments, blank lines, CRLF, continuation */
    {"# c\n\n\tlocal all all md5 # trailing\r\n", UNIX, NULL, "d", "u", false, M, NULL},
    {"local all \\\nall \\\nmd5\n", UNIX, NULL, "d", "u", false, M, NULL},
    {"local all all md5", UNIX, NULL, "d", "u", false, M, NULL},
    /* first match wins */
    {"local all all reject\nlocal all all trust\n", UNIX, NULL, "d", "u", false, R, NULL},
    {"local d bob reject\nlocal all all trust\n", UNIX, NULL, "d", "bob", false, R, NULL},
    {"local d bob reject\nlocal all all trust\n", UNIX, NULL, "d", "al", false, T, NULL},
    {"host all all 10.0.0.0/8 reject\nhost all all 0.0.0.0/0 md5\n", TCP, "10.9.9.9", "d", "u",
     false, R, NULL},
    {"host all all 10.0.0.0/8 reject\nhost all all 0.0.0.0/0 md5\n", TCP, "11.0.0.0", "d", "u",
     false, M, NULL},
    {"local all all peer map=a\nlocal all all peer map=b\n", UNIX, NULL, "d", "u", false, PEER,
     "a"},
    /* @file, relative to the hba file's directory (see write_includes) */
    {"local @dbs.txt all md5\n", UNIX, NULL, "db1", "u", false, M, NULL},
    {"local @dbs.txt all md5\n", UNIX, NULL, "db 2", "u", false, M, NULL},
    {"local @dbs.txt all md5\n", UNIX, NULL, "db3", "u", false, M, NULL}, /* nested @ */
    {"local @dbs.txt all md5\n", UNIX, NULL, "db4", "u", false, R, NULL},
    {"local @dbs.txt all md5\n", UNIX, NULL, "#x", "u", false, R, NULL},
    {"local all @users.txt,root scram-sha-256\n", UNIX, NULL, "d", "alice", false, S, NULL},
    {"local all @users.txt,root scram-sha-256\n", UNIX, NULL, "d", "root", false, S, NULL},
    {"local all @users.txt,root scram-sha-256\n", UNIX, NULL, "d", "mallory", false, R, NULL},
    {"local all @sub/more.txt md5\n", UNIX, NULL, "d", "erin", false, M, NULL},
    {"local all @empty.txt md5\nlocal all all trust\n", UNIX, NULL, "d", "u", false, T, NULL},
    {"local all \"@users.txt\" md5\n", UNIX, NULL, "d", "alice", false, R, NULL},
    {"local all \"@users.txt\" md5\n", UNIX, NULL, "d", "@users.txt", false, M, NULL},
};

struct error_case {
	const char *hba;
	const char *expect; /* substring of the error, after the directory */
};

static const struct error_case error_cases[] = {
    {"local all all trust\nlocal all all\n", "pg_hba.conf:2: end of line before the auth"},
    {"local all\n", "pg_hba.conf:1: end of line before the user field"},
    {"local\n", "pg_hba.conf:1: end of line before the database field"},
    {"hosts all all all md5\n", "pg_hba.conf:1: unknown connection type \"hosts\""},
    {"hostgssenc all all all md5\n", "pg_hba.conf:1: connection type \"hostgssenc\" is not"},
    {"\n\nlocal all all magic\n", "pg_hba.conf:3: unknown authentication method \"magic\""},
    {"host all all all ldap\n", "pg_hba.conf:1: authentication method \"ldap\" is not"},
    {"host all all all ident\n", "pg_hba.conf:1: authentication method \"ident\" is not"},
    {"host all all\n", "pg_hba.conf:1: end of line before the address field"},
    {"host all all 10.0.0.0/8\n", "pg_hba.conf:1: end of line before the authentication"},
    {"host all all 10.0.0.0/33 md5\n", "pg_hba.conf:1: prefix length in \"10.0.0.0/33\""},
    {"host all all ::/129 md5\n", "pg_hba.conf:1: prefix length in \"::/129\" exceeds 128"},
    {"host all all 10.0.0.0/ md5\n", "pg_hba.conf:1: invalid prefix length"},
    {"host all all 10.0.0.0/8x md5\n", "pg_hba.conf:1: invalid prefix length"},
    {"host all all 10.0.0.0/-1 md5\n", "pg_hba.conf:1: invalid prefix length"},
    {"host all all 10.0.0/8 md5\n", "pg_hba.conf:1: invalid address \"10.0.0/8\""},
    {"host all all 10.0.0.1 md5\n", "pg_hba.conf:1: address \"10.0.0.1\" needs a /prefix"},
    {"host all all 10.0.0.1\n", "pg_hba.conf:1: address \"10.0.0.1\" needs a /prefix"},
    {"host all all 10.0.0.1 ffff:: md5\n", "pg_hba.conf:1: address \"10.0.0.1\" and mask"},
    {"host all all db.example.com md5\n", "pg_hba.conf:1: invalid address \"db.example.com\""},
    {"host all all .example.com md5\n", "pg_hba.conf:1: domain suffix"},
    {"host all all samehost md5\n", "pg_hba.conf:1: address keyword \"samehost\" is not"},
    {"host all all samenet md5\n", "pg_hba.conf:1: address keyword \"samenet\" is not"},
    {"host all all 1.2.3.4/32,5.6.7.8/32 md5\n", "pg_hba.conf:1: the address cannot be a list"},
    {"local samerole all md5\n", "pg_hba.conf:1: database keyword \"samerole\" is not"},
    {"local samegroup all md5\n", "pg_hba.conf:1: database keyword \"samegroup\" is not"},
    {"local all +admins md5\n", "pg_hba.conf:1: group membership \"+admins\" is not supported"},
    {"local all /^adm md5\n", "pg_hba.conf:1: regular expression \"/^adm\" is not supported"},
    {"local \"db all all md5\n", "pg_hba.conf:1: unterminated quoted string"},
    {"local db1,,db2 all md5\n", "pg_hba.conf:1: empty element"},
    {"local db1, all md5\n", "pg_hba.conf:1: end of line before the authentication"},
    {"local db1,\n", "pg_hba.conf:1: list ends with a comma"},
    {"local db1, db2 ,db3 all md5\n", "pg_hba.conf:1: empty element"},
    {"local all all#comment\\\n md5\n", "pg_hba.conf:1: end of line before the auth"},
    {"local all all md5 map=x\n",
     "pg_hba.conf:1: map= is only valid with cert, peer, oidc and oauth"},
    {"local all all peer map=x map=y\n", "pg_hba.conf:1: map= given twice"},
    {"local all all peer map=\n", "pg_hba.conf:1: map= needs a value"},
    {"local all all peer clientcert=verify-full\n", "pg_hba.conf:1: option \"clientcert\""},
    {"local all all peer foo\n", "pg_hba.conf:1: option \"foo\" is not of the form"},
    {"host all all all peer\n", "pg_hba.conf:1: peer authentication is only possible on local"},
    {"host all all all cert\n", "pg_hba.conf:1: cert authentication is only possible on hostssl"},
    {"local all all cert\n", "pg_hba.conf:1: cert authentication is only possible on hostssl"},
    {"local all all trust\n# x\nlocal \\\nall all\n", "pg_hba.conf:3: end of line before the"},
    {"local @missing.txt all md5\n", "pg_hba.conf:1: @missing.txt: "},
    {"local @loop.txt all md5\n", "nested more than 8 deep"},
    {"local all @bad.txt md5\n", "bad.txt:2: group membership \"+grp\" is not supported (in "
                                 "@file included from "},
    {"local all @ md5\n", "pg_hba.conf:1: @ without a file name"},
};

static char tmpdir[] = "/tmp/test_hba.XXXXXX";

static void write_file(const char *name, const char *content)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
	free(path);
}

static void write_includes(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(2);
	}
	char *sub = xasprintf("%s/sub", tmpdir);
	mkdir(sub, 0700);
	free(sub);
	write_file("dbs.txt", "# databases\ndb1, \"db 2\"\n@dbs3.txt \"#x\"z\n");
	write_file("dbs3.txt", "db3\n");
	write_file("users.txt", "alice bob\ncarol,dave # the rest\n");
	write_file("sub/more.txt", "@deeper.txt\n"); /* relative to sub/ */
	write_file("sub/deeper.txt", "erin\n");
	write_file("empty.txt", "");
	write_file("loop.txt", "@loop.txt\n");
	write_file("bad.txt", "ok\n+grp\n");
}

static void remove_includes(void)
{
	static const char *const names[] = {"dbs.txt",      "dbs3.txt",       "users.txt",
	                                    "sub/more.txt", "sub/deeper.txt", "empty.txt",
	                                    "loop.txt",     "bad.txt",        "pg_hba.conf"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *path = xasprintf("%s/%s", tmpdir, names[i]);
		unlink(path);
		free(path);
	}
	char *sub = xasprintf("%s/sub", tmpdir);
	rmdir(sub);
	free(sub);
	rmdir(tmpdir);
}

static bool fill_addr(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

static void test_match_cases(void)
{
	char *path = xasprintf("%s/pg_hba.conf", tmpdir);
	for (size_t i = 0; i < ARRAY_SIZE(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		char *err = NULL;
		struct hba *hba = hba_parse_buffer(c->hba, strlen(c->hba), path, &err);
		if (!hba) {
			unit_failed++;
			fprintf(stderr, "match case %zu: parse failed: %s\n", i, err);
			free(err);
			continue;
		}
		struct sockaddr_storage ss;
		struct hba_request req = {
		    .is_unix = c->via == UNIX,
		    .is_tls = c->via == TLS,
		    .addr = NULL,
		    .database = c->db,
		    .user = c->user,
		    .replication = c->replication,
		};
		if (c->addr) {
			CHECK(fill_addr(c->addr, &ss));
			req.addr = (const struct sockaddr *)&ss;
		}
		const char *map = "unset";
		enum auth_type got = hba_match(hba, &req, &map);
		bool map_ok = c->map ? (map && strcmp(map, c->map) == 0) : map == NULL;
		if (got == c->expect && map_ok) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr,
			        "match case %zu: got method %d map %s, want %d map %s\n  %s", i,
			        (int)got, map ? map : "(null)", (int)c->expect,
			        c->map ? c->map : "(null)", c->hba);
		}
		hba_free(hba);
	}
	free(path);
}

static void test_error_cases(void)
{
	char *path = xasprintf("%s/pg_hba.conf", tmpdir);
	for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		char *err = NULL;
		struct hba *hba = hba_parse_buffer(c->hba, strlen(c->hba), path, &err);
		if (!hba && err && strstr(err, c->expect)) {
			unit_passed++;
		} else {
			unit_failed++;
			fprintf(stderr, "error case %zu: %s\n  want \"%s\", got \"%s\"\n", i,
			        c->hba, c->expect, err ? err : "(no error)");
		}
		hba_free(hba);
		free(err);
	}
	free(path);
}

static void test_limits_and_load(void)
{
	char *err = NULL;
	/* A buffer without a path refuses @file: a fuzzer must never open files. */
	const char *inc = "local @dbs.txt all md5\n";
	struct hba *hba = hba_parse_buffer(inc, strlen(inc), NULL, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "<buffer>:1: @file includes are not allowed"));
	FREE_AND_NULL(err);

	/* NUL bytes are refused rather than silently ending the line. */
	const char nul[] = "local all all trust\nlocal a\0b all trust\n";
	hba = hba_parse_buffer(nul, sizeof(nul) - 1, NULL, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "<buffer>:2: NUL byte"));
	FREE_AND_NULL(err);

	/* Line length is bounded, continuations included. */
	size_t n = HBA_MAX_LINE + 10;
	char *big = xmalloc(n + 1);
	memset(big, 'a', n);
	memcpy(big, "local ", 6);
	big[n] = '\0';
	hba = hba_parse_buffer(big, n, NULL, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "<buffer>:1: line longer than"));
	FREE_AND_NULL(err);
	free(big);

	/* The longest allowed line still parses. */
	char *ok = xmalloc(HBA_MAX_LINE + 1);
	memset(ok, ' ', HBA_MAX_LINE);
	memcpy(ok, "local all all trust", 19);
	hba = hba_parse_buffer(ok, HBA_MAX_LINE, NULL, &err);
	CHECK(hba != NULL && hba_rule_count(hba) == 1);
	hba_free(hba);
	free(ok);

	/* Too many includes overall (each one is small and legal). */
	char *many = xstrdup("local all ");
	for (int i = 0; i <= HBA_MAX_INCLUDES; i++) {
		char *next = xasprintf("%s%s@users.txt", many, i ? "," : "");
		free(many);
		many = next;
	}
	char *line = xasprintf("%s md5\n", many);
	char *path = xasprintf("%s/pg_hba.conf", tmpdir);
	hba = hba_parse_buffer(line, strlen(line), path, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "more than 64 @file includes"));
	FREE_AND_NULL(err);
	free(line);
	free(many);

	/* hba_load from disk, and line numbers through hba_match_line. */
	write_file("pg_hba.conf", "# header\nlocal all all peer\n\nhost all all ::1/128 md5\n");
	hba = hba_load(path, &err);
	CHECK(hba != NULL);
	CHECK(err == NULL);
	CHECK(hba_rule_count(hba) == 2);
	struct sockaddr_storage ss;
	CHECK(fill_addr("::1", &ss));
	struct hba_request req = {.addr = (struct sockaddr *)&ss, .database = "d", .user = "u"};
	CHECK(hba_match(hba, &req, NULL) == AUTH_TYPE_MD5);
	CHECK(hba_match_line(hba, &req) == 4);
	req.is_unix = true;
	req.addr = NULL;
	CHECK(hba_match_line(hba, &req) == 2);
	/* A request missing its names matches nothing. */
	req.user = NULL;
	const char *map = "unset";
	CHECK(hba_match(hba, &req, &map) == AUTH_TYPE_REJECT && map == NULL);
	CHECK(hba_match(NULL, &req, NULL) == AUTH_TYPE_REJECT);
	hba_free(hba);

	/* A host line with an address never matches a request without one. */
	const char *twolines = "host all all 0.0.0.0/0 trust\nhost all all all md5\n";
	hba = hba_parse_buffer(twolines, strlen(twolines), NULL, &err);
	CHECK(hba != NULL);
	struct hba_request noaddr = {.database = "d", .user = "u"};
	CHECK(hba_match(hba, &noaddr, NULL) == AUTH_TYPE_MD5);
	hba_free(hba);

	char *missing = xasprintf("%s/nope.conf", tmpdir);
	hba = hba_load(missing, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "nope.conf: cannot open"));
	FREE_AND_NULL(err);
	free(missing);

	hba = hba_load(tmpdir, &err);
	CHECK(hba == NULL);
	CHECK(err && strstr(err, "not a regular file"));
	FREE_AND_NULL(err);
	free(path);
}

int main(void)
{
	write_includes();
	test_match_cases();
	test_error_cases();
	test_limits_and_load();
	remove_includes();
	return unit_summary("test_hba");
}
