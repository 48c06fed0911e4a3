"""Column names, in wire order, of every admin console SHOW command of
PgBouncer 1.25: the compatibility contract monitoring tools rely on.

Sources (read with the search tool's read_file on pgbouncer/pgbouncer):
  - doc/usage.md (versions 0feef5a5 and 020c442c, both with the 1.24/1.25
    columns: reserve_pool_size, server_lifetime, load_balance_hosts,
    max_client_connections, current_client_connections);
  - src/admin.c (version 00882b8e): the RowDescription each command sends;
  - src/stats.c (version d28d3c06): SHOW STATS / STATS_TOTALS /
    STATS_AVERAGES / TOTALS.

Where usage.md and the source disagree, the WIRE (source) order and names
are used, because that is what a client sees; each such case is noted.
usage.md documents the columns of STATS in a different order from the wire,
calls the first PEER_POOLS column "database" (the wire says "peer_id"),
says LISTS is "in columns (not rows)" (the wire sends rows list/items), and
documents only 8 of the FDS columns.

Not in 1.25: total_client_connect_count / avg_client_connect_count (d28d3c06)
come from pgbouncer PR #1412, opened the day 1.25.0 was released and closed
unmerged in favour of #1457 (2026, "client_login_count"); both are left out.
"""

# HELP sends a NoticeResponse ("Console usage") and an empty command result:
# no RowDescription at all.  (src/admin.c admin_show_help)
HELP_HAS_NO_COLUMNS = True

# Shared by CLIENTS and SERVERS: src/admin.c socket_header(debug=false),
# SKF_STD "ssssssisiTTiiississii"; usage.md SHOW SERVERS / SHOW CLIENTS lists
# the same 21 names in the same order.
_SOCKET_STD = [
    "type", "user", "database", "replication", "state",
    "addr", "port", "local_addr", "local_port",
    "connect_time", "request_time",
    "wait", "wait_us", "close_needed",
    "ptr", "link", "remote_pid", "tls",
    "application_name",
    "prepared_statements", "id",
]

# SOCKETS and ACTIVE_SOCKETS: socket_header(debug=true), SKF_DBG: the 21 above
# plus 7 debug columns.  usage.md only says "low-level information".
_SOCKET_DBG = _SOCKET_STD + [
    "recv_pos", "pkt_pos", "pkt_remain",
    "send_pos", "send_remain",
    "pkt_avail", "send_avail",
]

_STATS_TOTALS = [
    "server_assignment_count",
    "xact_count", "query_count",
    "bytes_received", "bytes_sent",
    "xact_time", "query_time",
    "wait_time", "client_parse_count",
    "server_parse_count", "bind_count",
]

COLUMNS = {
    # src/stats.c admin_database_stats (wire order; usage.md "SHOW STATS"
    # documents the same 23 names with total_server_assignment_count third
    # and avg_server_assignment_count third among avg_*).
    "STATS": [
        "database",
        "total_server_assignment_count",
        "total_xact_count", "total_query_count",
        "total_received", "total_sent",
        "total_xact_time", "total_query_time",
        "total_wait_time", "total_client_parse_count",
        "total_server_parse_count", "total_bind_count",
        "avg_server_assignment_count",
        "avg_xact_count", "avg_query_count",
        "avg_recv", "avg_sent",
        "avg_xact_time", "avg_query_time",
        "avg_wait_time", "avg_client_parse_count",
        "avg_server_parse_count", "avg_bind_count",
    ],
    # src/stats.c admin_database_stats_totals (usage.md: "subset of SHOW
    # STATS showing the total values", names without the total_ prefix).
    "STATS_TOTALS": ["database"] + _STATS_TOTALS,
    # src/stats.c admin_database_stats_averages: same names as STATS_TOTALS
    # except that the three prepared-statement columns keep an avg_ prefix.
    "STATS_AVERAGES": [
        "database",
        "server_assignment_count",
        "xact_count", "query_count",
        "bytes_received", "bytes_sent",
        "xact_time", "query_time",
        "wait_time", "avg_client_parse_count",
        "avg_server_parse_count", "avg_bind_count",
    ],
    # src/stats.c show_stat_totals: one row per figure (total_xact_count,
    # avg_query_time, ...), columns name/value.  usage.md: "Like SHOW STATS
    # but aggregated across all databases".
    "TOTALS": ["name", "value"],
    # usage.md SHOW SERVERS; src/admin.c socket_header
    "SERVERS": list(_SOCKET_STD),
    # usage.md SHOW CLIENTS; src/admin.c socket_header
    "CLIENTS": list(_SOCKET_STD),
    # usage.md SHOW POOLS; src/admin.c admin_show_pools "ssiiiiiiiiiiiiiss"
    "POOLS": [
        "database", "user",
        "cl_active", "cl_waiting",
        "cl_active_cancel_req", "cl_waiting_cancel_req",
        "sv_active", "sv_active_cancel", "sv_being_canceled",
        "sv_idle", "sv_used", "sv_tested", "sv_login",
        "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts",
    ],
    # src/admin.c admin_show_lists: RowDescription "list", "items"; one row
    # per list (databases, users, peers, pools, peer_pools, free_clients,
    # used_clients, login_clients, free_servers, used_servers, dns_names,
    # dns_zones, dns_queries, dns_pending).
    "LISTS": ["list", "items"],
    # usage.md SHOW USERS; src/admin.c admin_show_users "ssssiiii"
    "USERS": [
        "name", "pool_size", "reserve_pool_size", "pool_mode",
        "max_user_connections", "current_connections",
        "max_user_client_connections", "current_client_connections",
    ],
    # usage.md SHOW DATABASES; src/admin.c admin_show_databases
    # "ssissiiiissiiiiii"
    "DATABASES": [
        "name", "host", "port", "database", "force_user",
        "pool_size", "min_pool_size", "reserve_pool_size",
        "server_lifetime", "pool_mode", "load_balance_hosts",
        "max_connections", "current_connections",
        "max_client_connections", "current_client_connections",
        "paused", "disabled",
    ],
    # src/admin.c admin_show_fds "issssiqisssssbb" (usage.md documents only
    # fd..link; the wire adds the session-parameter, password and SCRAM key
    # columns used by online restart).  The two scram_* columns are the
    # newest: unsure they are in 1.25.0 rather than only in master.
    "FDS": [
        "fd", "task", "user", "database", "addr", "port", "cancel", "link",
        "client_encoding", "std_strings", "datestyle", "timezone",
        "password", "scram_client_key", "scram_server_key",
    ],
    # src/admin.c admin_show_sockets
    "SOCKETS": list(_SOCKET_DBG),
    # src/admin.c admin_show_active_sockets
    "ACTIVE_SOCKETS": list(_SOCKET_DBG),
    # usage.md SHOW CONFIG; src/admin.c admin_show_config "ssss"
    "CONFIG": ["key", "value", "default", "changeable"],
    # src/admin.c admin_show_mem "siiii" (usage.md: "subject to change")
    "MEM": ["name", "size", "used", "free", "memtotal"],
    # usage.md SHOW DNS_HOSTS; src/admin.c admin_show_dns_hosts "sqs"
    "DNS_HOSTS": ["hostname", "ttl", "addrs"],
    # usage.md SHOW DNS_ZONES; src/admin.c admin_show_dns_zones "sqi"
    "DNS_ZONES": ["zonename", "serial", "count"],
    # src/admin.c admin_show_version: one row, PACKAGE_STRING
    "VERSION": ["version"],
    # src/admin.c admin_show_state: rows active/paused/suspended = yes/no
    "STATE": ["key", "value"],
    # usage.md SHOW PEERS; src/admin.c admin_show_peers "isii"
    "PEERS": ["peer_id", "host", "port", "pool_size"],
    # src/admin.c admin_show_peer_pools "iiiii" (usage.md names the first
    # column "database"; the wire says "peer_id")
    "PEER_POOLS": [
        "peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req",
        "sv_active_cancel", "sv_login",
    ],
}


# Columns pgsieve adds after PgBouncer's, never between them.
PGSIEVE_EXTRA = {
    # What online restart (-R) carries across besides PgBouncer's columns.
    "FDS": ["backend_pid", "tx_status", "expect_ready", "params", "welcome", "pending",
            "prepared"],
    # Who logged in with a token (auth_type oidc / oauth); NULL otherwise.
    "CLIENTS": ["identity"],
}
