"""
Online restart without dropping clients: SUSPEND, `-R` takeover of the
listening sockets and every connection over the unix socket, and
so_reuseport rolling restarts, under pgbench load.
"""

import pathlib
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import IS_PGBOUNCER
from helpers import startup_packet
from test_admin import admin_pooler, console, one, run, show

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's online restart")

# plainuser proves a password the pooler then holds; everyone else is trusted.
HBA = """
host  all plainuser 127.0.0.1/32 password
local all plainuser              password
host  all all       127.0.0.1/32 trust
local all all                    trust
"""


def bench_db(pg, bench):
    return {bench: f"host=127.0.0.1 port={pg.port} dbname={bench}",
            "testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb"}


def start_successor(pooler, old, args=("-R",)):
    new = pooler(settings=dict(old.settings), databases=dict(old.databases), start=False)
    new.port, new.sockdir = old.port, old.sockdir
    new.auth_path.write_text(old.auth_path.read_text())
    if "auth_hba_file" in old.settings:
        new.hba_path.write_text(old.hba_path.read_text())
        new.write_config(settings={"auth_hba_file": str(new.hba_path)})
    new.start(args=args, wait=False)
    return new


def pgbench(p, dbname, seconds, clients, *extra):
    return subprocess.Popen(
        ["pgbench", "-n", "-T", str(seconds), "-c", str(clients), "-j", "2", *extra,
         "-h", p.host, "-p", str(p.port), "-U", "trustuser", dbname],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def pgbench_ok(proc, timeout=60):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    done = int(_field(out, "number of transactions actually processed"))
    failed = _field(out, "number of failed transactions")
    assert done > 0, out
    assert failed is None or int(failed) == 0, out
    assert "aborted" not in out, out
    return done


def _field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()[0].split("/")[0]
    return None


def take_over(pooler, old):
    new = start_successor(pooler, old)
    new.wait_log(r"online restart: took over", timeout=30)
    old.expect_exit = True
    assert old.wait_exit(15) == 0, old.log_tail()
    return new


# ------------------------------------------------------------------ SUSPEND

def test_suspend_holds_queries_until_resume(pooler):
    p = admin_pooler(pooler)
    with p.connect() as busy, console(p) as c:
        assert busy.execute("select 1").fetchone()[0] == 1
        run(c, "SUSPEND")
        assert one(show(c, "STATE"), key="suspended")["value"] == "yes"
        with pytest.raises(psycopg.Error, match="already suspended"):
            run(c, "PAUSE")
        done = []
        t = threading.Thread(target=lambda: done.append(busy.execute("select 2").fetchone()[0]))
        t.start()
        time.sleep(0.7)
        assert done == [], "a query ran while suspended"
        run(c, "RESUME")
        t.join(5)
        assert done == [2]
        assert one(show(c, "STATE"), key="suspended")["value"] == "no"
    p.assert_serves()


def test_suspend_timeout_closes_connections_that_cannot_stop(pooler):
    # A query in flight travels along (nothing half-read); a client stuck
    # in the middle of its login cannot: suspend_timeout closes it, and
    # the SUSPEND answers anyway.
    p = admin_pooler(pooler, settings={"suspend_timeout": "1", "auth_type": "hba"}, hba=HBA)
    stuck = p.raw()
    stuck.send(startup_packet({"user": "plainuser", "database": "testdb"}))
    assert stuck.read_msg()[0] == b"R"         # password requested, never answered
    with p.connect() as busy, console(p) as c:
        sleeping = threading.Thread(target=busy.execute, args=("select pg_sleep(1.5)",))
        sleeping.start()
        time.sleep(0.2)
        started = time.monotonic()
        run(c, "SUSPEND")
        assert 0.8 < time.monotonic() - started < 4
        mtype, payload = stuck.read_msg()
        assert mtype == b"E" and b"suspend_timeout" in payload
        run(c, "RESUME")
        sleeping.join(5)
        assert busy.execute("select 3").fetchone()[0] == 3
    p.assert_serves()


def test_os_user_console_login_without_password(pooler):
    # "pgbouncer" from our own OS user on the unix socket is an admin; over
    # TCP it is an unknown user like any other.
    p = admin_pooler(pooler)
    with psycopg.connect(host=str(p.sockdir), port=p.port, dbname="pgbouncer",
                         user="pgbouncer", autocommit=True) as c:
        assert run(c, "SHOW VERSION")[0] == ["version"]
        run(c, "PAUSE")
        run(c, "RESUME")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=p.host, port=p.port, dbname="pgbouncer", user="pgbouncer",
                        connect_timeout=5).close()
    p.expect_fatal(r"pgbouncer")


def test_show_fds_lists_without_secrets(pooler):
    p = admin_pooler(pooler, settings={"auth_type": "hba"}, hba=HBA)
    with p.connect(user="plainuser", password="plainpw") as cl, console(p) as c:
        cl.execute("select 1")
        rows = show(c, "FDS")
        tasks = sorted(r["task"] for r in rows)
        assert tasks.count("pooler") == 2          # TCP and the unix socket
        assert "client" in tasks and "server" in tasks
        # Secrets and buffered bytes only ever go to a takeover.
        assert all(r["password"] is None and r["pending"] is None for r in rows)
        srv = one(rows, task="server")
        assert int(srv["backend_pid"]) > 0 and srv["tx_status"] == "I"


# --------------------------------------------------------------- -R takeover

def test_takeover_without_running_process_starts_normally(pooler):
    p = pooler(args=("-R",))
    p.wait_log(r"nothing listens on .*starting normally")
    p.assert_serves()


def test_takeover_keeps_sessions_transactions_and_cancel_keys(pooler, table):
    old = admin_pooler(pooler, settings={"auth_type": "hba"}, hba=HBA)
    cl = psycopg.connect(**old.conninfo(user="plainuser", password="plainpw"), autocommit=True,
                         prepare_threshold=None)
    cl.execute("set application_name = 'kept-across'")
    cl.execute("create temp table session_state (v int)")
    cl.execute("begin")
    cl.execute(f"insert into {table} values (7)")
    backend = cl.execute("select pg_backend_pid()").fetchone()[0]

    new = take_over(pooler, old)

    # Same server session: same backend, transaction still open, temp table there.
    assert cl.execute("select pg_backend_pid()").fetchone()[0] == backend
    cl.execute("insert into session_state values (1)")
    cl.execute("commit")
    assert cl.execute(f"select count(*) from {table} where v = 7").fetchone()[0] == 1
    assert cl.execute("show application_name").fetchone()[0] == "kept-across"
    # The cancel key the client got from the old process works on the new one.
    t = threading.Timer(0.5, cl.cancel)
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        cl.execute("select pg_sleep(10)")
    t.join()
    assert cl.execute("select 5").fetchone()[0] == 5
    cl.close()
    # The new process logs in new clients with the password the old one had seen.
    new.assert_serves(user="plainuser", password="plainpw")
    with psycopg.connect(host=str(new.sockdir), port=new.port, dbname="testdb",
                         user="plainuser", password="plainpw", autocommit=True) as u:
        assert u.execute("select 6").fetchone()[0] == 6
    assert pathlib.Path(new.unix_path()).exists()


@pytest.mark.timeout(90)
def test_takeover_under_pgbench_load_session_mode(pooler, pg, bench):
    old = admin_pooler(pooler, settings={"default_pool_size": "10"},
                       databases=bench_db(pg, bench))
    load = pgbench(old, bench, 8, 6)
    time.sleep(2)
    new = take_over(pooler, old)
    with console(new) as c:
        pool = one(show(c, "POOLS"), database=bench)
        assert int(pool["cl_active"]) == 6, pool        # every pgbench client came along
    done = pgbench_ok(load)
    with console(new) as c:
        assert int(one(show(c, "STATS"), database=bench)["total_xact_count"]) > 0
    assert done > 100
    new.assert_serves()


@pytest.mark.timeout(90)
def test_takeover_under_pgbench_load_transaction_mode_with_waiting_clients(pooler, pg, bench):
    # More clients than servers: some wait with a query read but not yet
    # sent when the restart comes, and must carry it across.
    old = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "2"},
                       databases=bench_db(pg, bench))
    load = pgbench(old, bench, 8, 8)
    time.sleep(2)
    new = take_over(pooler, old)
    pgbench_ok(load)
    new.assert_serves()


@pytest.mark.timeout(120)
def test_takeover_twice_in_a_row(pooler, pg, bench):
    old = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "4"},
                       databases=bench_db(pg, bench))
    load = pgbench(old, bench, 10, 4)
    time.sleep(2)
    mid = take_over(pooler, old)
    time.sleep(2)
    take_over(pooler, mid)
    pgbench_ok(load)


def test_takeover_refused_when_old_process_is_paused(pooler):
    old = admin_pooler(pooler)
    with console(old) as c:
        run(c, "PAUSE")
        new = start_successor(pooler, old)
        new.expect_exit = True
        new.expect_fatal(r"online restart failed: SUSPEND: already suspended/paused")
        assert new.wait_exit(20) not in (None, 0)
        assert "already suspended/paused" in new.log()
        run(c, "RESUME")
    old.assert_serves()


# -------------------------------------------------------------- so_reuseport

def migrate_req_enabled():
    try:
        return pathlib.Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip() == "1"
    except OSError:
        return False


@pytest.mark.timeout(90)
@pytest.mark.skipif(not migrate_req_enabled(),
                    reason="needs net.ipv4.tcp_migrate_req=1: without it the kernel resets "
                           "connections queued on the listener that closes (test/run-tests.sh "
                           "sets it)")
def test_so_reuseport_restart_under_pgbench_load_reconnecting_clients(pooler, pg, bench):
    # Session mode, clients that connect per transaction (-C): start a
    # second process on the same port, SIGINT the first; no transaction fails.
    old = admin_pooler(pooler, settings={"so_reuseport": "1", "default_pool_size": "10"},
                       databases=bench_db(pg, bench))
    load = pgbench(old, bench, 8, 4, "-C", "-S")
    time.sleep(2)
    new = start_successor(pooler, old, args=())
    new.wait_log(r"started, process", timeout=10)
    time.sleep(1)
    old.expect_exit = True
    old.signal(signal.SIGINT)
    assert old.wait_exit(15) == 0
    pgbench_ok(load)
    with console(new) as c:
        assert int(one(show(c, "STATS"), database=bench)["total_xact_count"]) > 0


def test_takeover_keeps_prepared_statements_in_transaction_mode(pooler):
    from test_prepared import bind, execute, parse, raw, responses, sync
    old = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "1"})
    c = raw(old)
    c.send(parse("kept", "select $1::int + 100", [23]) + bind("kept", [1]) + execute() + sync())
    assert responses(c) == ["1", "2", "D:101", "C", "Z"]
    new = take_over(pooler, old)
    c.send(bind("kept", [2]) + execute() + sync())
    assert responses(c) == ["2", "D:102", "C", "Z"]
    with console(new) as adm:
        # The server's cache came along: nothing had to be prepared again.
        assert [int(s["prepared_statements"]) for s in show(adm, "SERVERS")] == [1]
        st = one(show(adm, "STATS"), database="testdb")
        assert int(st["total_server_parse_count"]) == 0
        assert [int(r["prepared_statements"]) for r in show(adm, "CLIENTS")
                if r["database"] == "testdb"] == [1]


@pytest.mark.timeout(90)
def test_takeover_under_pgbench_prepared_transaction_mode(pooler, pg, bench):
    old = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "3"},
                       databases=bench_db(pg, bench))
    load = pgbench(old, bench, 8, 6, "-M", "prepared")
    time.sleep(2)
    take_over(pooler, old)
    pgbench_ok(load)
