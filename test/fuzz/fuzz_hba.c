/*
 * libFuzzer target for the HBA parser (hba.c): hba_parse_buffer() with no
 * path, so @file is refused and no file is ever opened, then hba_match()
 * over a fixed set of requests covering every connection type, both
 * address families, the v4-mapped form, replication and missing names.
 * hba_match() and hba_match_line() must agree: no matching line means
 * reject.
 */
#include "hba.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct req {
	bool is_unix, is_tls;
	const char *addr;
	const char *db, *user;
	bool replication;
};

static const struct req reqs[] = {
    {true, false, NULL, "postgres", "postgres", false},
    {true, false, NULL, "alice", "alice", false},
    {false, false, "127.0.0.1", "app", "alice", false},
    {false, true, "10.1.2.3", "app", "bob", false},
    {false, false, "192.168.255.255", "all", "all", false},
    {false, true, "::1", "replication", "u", false},
    {false, false, "2001:db8::1", "db", "+ops", false},
    {false, false, "::ffff:127.0.0.5", "sameuser", "sameuser", false},
    {false, true, "fe80::1", NULL, "repl", true},
    {true, false, NULL, NULL, "repl", true},
    {false, false, NULL, "db", "u", false}, /* TCP without an address */
    {true, false, NULL, NULL, "u", false},  /* no database, not replication */
    {true, false, NULL, "db", NULL, false}, /* no user */
    {false, false, "0.0.0.0", "", "", false},
};

static struct sockaddr_storage addrs[sizeof(reqs) / sizeof(reqs[0])];

static void setup(void)
{
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct sockaddr_in *in = (struct sockaddr_in *)&addrs[i];
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addrs[i];
		if (!reqs[i].addr)
			continue;
		if (inet_pton(AF_INET, reqs[i].addr, &in->sin_addr) == 1)
			in->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, reqs[i].addr, &in6->sin6_addr) == 1)
			in6->sin6_family = AF_INET6;
		else
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	char *err = NULL;
	struct hba *hba = hba_parse_buffer((const char *)data, size, NULL, &err);
	if (!hba) {
		REQUIRE(err != NULL && strncmp(err, "<buffer>:", 9) == 0);
		free(err);
		return 0;
	}
	REQUIRE(err == NULL);
	size_t rules = hba_rule_count(hba);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		const struct req *r = &reqs[i];
		struct hba_request req = {
		    .is_unix = r->is_unix,
		    .is_tls = r->is_tls,
		    .addr = r->addr ? (const struct sockaddr *)&addrs[i] : NULL,
		    .database = r->db,
		    .user = r->user,
		    .replication = r->replication,
		};
		const char *map = "unset";
		enum auth_type t = hba_match(hba, &req, &map);
		int line = hba_match_line(hba, &req);
		REQUIRE(line >= 0);
		if (line == 0)
			REQUIRE(t == AUTH_TYPE_REJECT && map == NULL);
		if (!r->user || (!r->db && !r->replication))
			REQUIRE(t == AUTH_TYPE_REJECT && line == 0);
		if (map)
			REQUIRE(t == AUTH_TYPE_CERT || t == AUTH_TYPE_PEER);
		if (rules == 0)
			REQUIRE(line == 0);
		/* matching is pure: the same request gives the same answer */
		REQUIRE(hba_match(hba, &req, NULL) == t);
	}
	hba_free(hba);
	return 0;
}
