"""
An unchanged pgbouncer.ini, as PgBouncer 1.18 accepts it, runs as is: the
kind of file an ops team has today (comments, admin_users, stats_users,
auth_file with SCRAM and md5 secrets, settings the pooler may not implement
yet such as client_tls_sslmode). psql, pgbench and asyncpg run through it.
"""

import asyncio
import os
import subprocess

import asyncpg
import pytest

from helpers import md5_secret
from test_clients import pgbench_ok, psql, run_client

INI = """\
;; pgbouncer.ini used in production since 2022
;; (paths and ports filled in by the test)

[databases]
; the application database
appdb = host=127.0.0.1 port={pgport} dbname=benchdb
reports = host=127.0.0.1 port={pgport} dbname=testdb pool_size=4

[users]

[pgbouncer]
logfile = {logfile}
pidfile = {pidfile}

listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {sockdir}
;unix_socket_mode = 0777

auth_type = {auth_type}
auth_file = {auth_file}
admin_users = postgres, scramuser
stats_users = stats, md5user

pool_mode = transaction
server_reset_query = DISCARD ALL
server_check_query = select 1
server_check_delay = 30
max_client_conn = 200
default_pool_size = 10
min_pool_size = 0
reserve_pool_size = 2
reserve_pool_timeout = 5
max_db_connections = 50
max_user_connections = 50
server_round_robin = 0
ignore_startup_parameters = extra_float_digits

log_connections = 1
log_disconnections = 1
log_pooler_errors = 1
stats_period = 60
verbose = 0

server_lifetime = 3600
server_idle_timeout = 600
server_connect_timeout = 15
server_login_retry = 15
query_timeout = 0
query_wait_timeout = 120
client_idle_timeout = 0
client_login_timeout = 60
autodb_idle_timeout = 3600

client_tls_sslmode = disable
server_tls_sslmode = disable
;client_tls_key_file =
;client_tls_cert_file =

tcp_keepalive = 1
tcp_keepidle = 60
pkt_buf = 4096
sbuf_loopcnt = 5
dns_max_ttl = 15
"""


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_unchanged_pgbouncer_ini(pooler, pg, bench, auth_type):
    p = pooler(start=False)
    p.ini_path.write_text(INI.format(
        pgport=pg.port, port=p.port, sockdir=p.sockdir, logfile=p.logfile,
        pidfile=p.dir / "pgbouncer.pid", auth_type=auth_type, auth_file=p.auth_path))
    p.auth_path.write_text(
        '"scramuser" "{}"\n'.format(pg.scram_secret("scramuser"))
        + '"md5user" "{}"\n'.format(md5_secret("md5user", "md5pw"))
        + '"stats" "statspw"\n')
    p.start()

    # psql, SCRAM user (SCRAM secret in auth_file, pass-through to PG).
    rc, out, err = psql(p.host, p.port, "select current_user, current_database()",
                        user="scramuser", db="appdb", password="scrampw")
    assert (rc, out.strip()) == (0, "scramuser|benchdb"), err
    rc, out, err = psql(p.sockdir, p.port, "select 1", user="scramuser", db="reports",
                        password="scrampw")
    assert (rc, out.strip()) == (0, "1"), err
    if auth_type == "md5":
        rc, out, err = psql(p.host, p.port, "select current_user", user="md5user",
                            db="appdb", password="md5pw")
        assert (rc, out.strip()) == (0, "md5user"), err

    # pgbench TPC-B, 8 clients x 100 transactions, zero failures.
    env_pw = "scrampw"
    rc, out, err = run_client(["pgbench", "-n", "-h", p.host, "-p", str(p.port),
                               "-U", "scramuser", "-c", "8", "-t", "100", "appdb"],
                              password=env_pw, timeout=240)
    assert rc == 0, err
    pgbench_ok(out, 800)

    # asyncpg, no statement cache in transaction mode.
    async def run():
        c = await asyncpg.connect(host=p.host, port=p.port, user="scramuser",
                                  password="scrampw", database="appdb", ssl=False,
                                  statement_cache_size=0)
        try:
            async with c.transaction():
                n = await c.fetchval("select count(*) from pgbench_branches")
            return n, await c.fetchval("select $1::int * 2", 21)
        finally:
            await c.close()

    assert asyncio.run(asyncio.wait_for(run(), 30)) == (1, 42)
    p.assert_serves(dbname="reports", user="scramuser", password="scrampw")
