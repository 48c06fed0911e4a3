"""
The pooler under trouble: a PostgreSQL restart under load, a client that
vanishes mid-transaction, connection limits, unknown databases, reloads
(good and broken), signals, and daemon mode.

Facts asserted (PgBouncer 1.25, sent with send_pooler_error: FATAL 08P01):
- "no more connections allowed (max_client_conn)" (client.c)
- "no such database: X", reported after authentication (client.c,
  finish_client_login; PgBouncer >= 1.17)
"""

import os
import signal
import socket
import subprocess
import threading
import time

import psycopg
import pytest

from helpers import PgError, query_message, wait_for
import expected as X


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


# ----------------------------------------------------------------- trouble

def test_postgres_restart_under_load(pooler, pg):
    p = pooler(settings={"pool_mode": "session", "default_pool_size": "12",
                         "server_login_retry": "0.2", "query_wait_timeout": "5"})
    stop = threading.Event()
    restarted_at = [None]
    stats = [{"ok": 0, "err": 0, "ok_after": 0} for _ in range(10)]

    def client(i):
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = p.connect(connect_timeout=3)
                conn.execute("select 1")
                stats[i]["ok"] += 1
                if restarted_at[0] is not None:
                    stats[i]["ok_after"] += 1
            except psycopg.Error:
                stats[i]["err"] += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(10)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        assert all(s["ok"] > 0 for s in stats), "clients did not run before the restart"
        pg.restart("fast")
        restarted_at[0] = time.monotonic()
        # Every client gets through again within a few seconds.
        wait_for(lambda: all(s["ok_after"] > 0 for s in stats), 10,
                 what="all clients served after the restart")
    finally:
        stop.set()
        deadline = time.monotonic() + 8
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert sum(s["err"] for s in stats) > 0, "the restart went unnoticed?"
    p.assert_serves()


def test_client_vanishes_mid_transaction(pooler, pg, table):
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "1"})
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    _, _, errors, status = raw.simple_query(f"begin; insert into {table} values (42)")
    assert errors == [] and status == b"T"
    assert pg.sql(f"select count(*) from {table}")[0][0] == 0
    raw.abort()                                   # gone, no Terminate, RST
    with p.connect(connect_timeout=5) as b:
        # The only pooled server must not carry A's open transaction.
        assert b.execute(f"select count(*) from {table} where v = 42").fetchone()[0] == 0
        assert b.execute("select now() = statement_timestamp()").fetchone()[0] is True
        b.execute(f"insert into {table} values (7)")
    assert pg.sql(f"select array_agg(v) from {table}")[0][0] == [7]
    wait_for(lambda: not [r for r in pg.backends(usename="trustuser")
                          if r[3] and r[3].startswith("idle in transaction")], 3,
             what="no backend left idle in transaction")


def test_max_client_conn(pooler, conns):
    p = pooler(settings={"max_client_conn": "3"})
    for _ in range(3):
        c = p.connect()
        c.execute("select 1")
        conns.append(c)
    raw = p.raw()
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "testdb")
    raw.close()
    # PgBouncer's text; 53300 as PostgreSQL says it (see expected.py).
    assert ei.value.message == X.MAX_CLIENT_CONN
    assert ei.value.sqlstate == X.MAX_CLIENT_CONN_SQLSTATE
    assert ei.value.fields["S"] == "FATAL"
    conns.pop().close()
    p.assert_serves()


def test_unknown_database(pooler):
    p = pooler()
    raw = p.raw()
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "nosuchdb")
    raw.close()
    # PgBouncer's text, after authentication; 3D000 (see expected.py).
    assert ei.value.message == X.NO_SUCH_DATABASE.format("nosuchdb")
    assert ei.value.sqlstate == X.NO_SUCH_DATABASE_SQLSTATE
    assert ei.value.fields["S"] == "FATAL"
    p.assert_serves()


def test_missing_server_database_error_is_forwarded(pooler, pg):
    # Through "*" the pooler accepts any name; PostgreSQL then refuses the
    # login with FATAL 3D000, which PgBouncer >= 1.19 forwards with its
    # SQLSTATE (kill_pool_logins_server_error; the npgsql issue #778 case).
    p = pooler(databases={"*": f"host=127.0.0.1 port={pg.port}"})
    raw = p.raw()
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "no_such_db_on_server")
    raw.close()
    assert ei.value.message == 'database "no_such_db_on_server" does not exist'
    assert ei.value.sqlstate == "3D000"
    p.assert_serves()


# ------------------------------------------------------------------ reload

def test_reload_changes_database_and_pool_size(pooler, pg, conns):
    dbs = {"reloaddb": f"host=127.0.0.1 port={pg.port} dbname=testdb"}
    p = pooler(settings={"default_pool_size": "1", "query_wait_timeout": "2"}, databases=dbs)
    a = p.connect(dbname="reloaddb")
    conns.append(a)
    assert a.execute("select current_database()").fetchone()[0] == "testdb"
    # Pool of 1 held by A: a second client would wait.
    p.write_config(settings={"default_pool_size": "2"},
                   databases={"reloaddb": f"host=127.0.0.1 port={pg.port} dbname=testdb2"})
    p.reload()
    start = time.monotonic()
    b = p.connect(dbname="reloaddb")
    conns.append(b)
    assert b.execute("select current_database()").fetchone()[0] == "testdb2"
    assert time.monotonic() - start < 2
    # The existing client keeps working.
    assert a.execute("select 1").fetchone()[0] == 1


def test_reload_broken_file_keeps_old_config(pooler, pg, conns):
    dbs = {"reloaddb": f"host=127.0.0.1 port={pg.port} dbname=testdb"}
    p = pooler(settings={"default_pool_size": "3"}, databases=dbs)
    p.assert_serves(dbname="reloaddb")
    good = p.ini_path.read_text()
    # Change the database (before the broken line), then break the file.
    text = good.replace("dbname=testdb", "dbname=testdb2")
    lines = text.splitlines()
    lines.append("this line is not a setting")
    broken_line = len(lines)
    p.ini_path.write_text("\n".join(lines) + "\n")
    before = p.log_size()
    p.reload()
    # The error names the file and the line.
    p.wait_log(rf"pgbouncer\.ini:{broken_line}\b", timeout=3, since=before)
    assert p.alive()
    # The old configuration is still in force, whole.
    with p.connect(dbname="reloaddb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "testdb"
    # A fixed file is picked up by the next reload.
    p.ini_path.write_text(text)
    p.reload()
    with p.connect(dbname="reloaddb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "testdb2"


def test_include_directive(pooler, pg):
    p = pooler(start=False)
    extra = p.dir / "extra.ini"
    extra.write_text(f"[databases]\nincdb = host=127.0.0.1 port={pg.port} dbname=testdb2\n")
    p.ini_path.write_text(f"%include {extra}\n" + p.ini_path.read_text())
    p.start()
    with p.connect(dbname="incdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "testdb2"


# ----------------------------------------------------------------- signals

def test_sigusr1_pause_sigusr2_resume(pooler, conns):
    p = pooler(settings={"pool_mode": "transaction"})
    c = p.connect()
    conns.append(c)
    c.execute("select 1")
    p.signal(signal.SIGUSR1)
    time.sleep(0.5)
    done = threading.Event()
    result = {}

    def query():
        try:
            result["v"] = c.execute("select 42").fetchone()[0]
        except Exception as e:  # noqa: BLE001
            result["err"] = e
        done.set()

    t = threading.Thread(target=query, daemon=True)
    t.start()
    assert not done.wait(1.5), f"query ran while paused: {result}"
    p.signal(signal.SIGUSR2)
    assert done.wait(3), "query did not complete after resume"
    assert result.get("v") == 42


def test_sigterm_waits_for_clients(pooler, conns):
    # PgBouncer >= 1.23: SIGTERM stops accepting and exits once all clients
    # are gone.
    p = pooler(settings={"pool_mode": "session"})
    p.expect_exit = True
    c = p.connect()
    c.execute("select 1")
    p.signal(signal.SIGTERM)
    time.sleep(1)
    assert p.alive(), "exited with a client still connected"
    assert c.execute("select 2").fetchone()[0] == 2
    c.close()
    assert p.wait_exit(5) is not None, "did not exit after the last client left"


def test_second_sigterm_exits_at_once(pooler, conns):
    p = pooler()
    p.expect_exit = True
    c = p.connect()
    conns.append(c)
    c.execute("select 1")
    p.signal(signal.SIGTERM)
    time.sleep(0.3)
    p.signal(signal.SIGTERM)
    assert p.wait_exit(3) is not None


def test_sigint_waits_for_servers(pooler, conns):
    # SIGINT: exit once every server connection is released; in session
    # mode a connected client holds its server.
    p = pooler(settings={"pool_mode": "session"})
    p.expect_exit = True
    c = p.connect()
    conns.append(c)
    c.execute("select 1")
    p.signal(signal.SIGINT)
    time.sleep(1)
    assert p.alive(), "exited while a server was in use"
    c.close()
    assert p.wait_exit(5) is not None, "did not exit after the server was released"


def test_sigquit_exits_immediately(pooler, conns):
    p = pooler(settings={"pool_mode": "session"})
    p.expect_exit = True
    c = p.connect()
    conns.append(c)
    c.execute("begin")
    c.execute("select 1")
    start = time.monotonic()
    p.signal(signal.SIGQUIT)
    assert p.wait_exit(3) is not None
    assert time.monotonic() - start < 3


def test_daemonize_with_pidfile(pooler):
    p = pooler(start=False)
    pidfile = p.dir / "pooler.pid"
    audit = p.dir / "audit.jsonl"
    p.write_config(settings={"pidfile": str(pidfile), "logfile": str(p.logfile),
                             "audit_file": str(audit)})
    launcher = subprocess.run(p.command("-d"), capture_output=True, text=True, timeout=10,
                              env=p.env(), cwd=str(p.dir))
    daemon_pid = None
    try:
        assert launcher.returncode == 0, launcher.stdout + launcher.stderr
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5,
                 what="pidfile written")
        daemon_pid = int(pidfile.read_text().strip())
        os.kill(daemon_pid, 0)                         # it runs
        wait_for(lambda: _accepts(p.host, p.port), 5, what="daemon listening")
        p.assert_serves()
        # The audit writer is a thread: it must be started after the fork.
        wait_for(lambda: audit.exists() and '"event":"disconnect"' in audit.read_text(), 5,
                 what="audit records written by the daemon")
        os.kill(daemon_pid, signal.SIGTERM)
        wait_for(lambda: not _alive(daemon_pid), 5, what="daemon exit")
        wait_for(lambda: not pidfile.exists(), 3, what="pidfile removed on exit")
        daemon_pid = None
        assert "FATAL" not in p.logfile.read_text()
    finally:
        if daemon_pid and _alive(daemon_pid):
            os.kill(daemon_pid, signal.SIGKILL)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running; the daemon's parent is init, so just check state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _accepts(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_so_reuseport_rolling_restart(pooler, pg):
    # Two processes on one port (TCP and the unix socket); SIGINT to the
    # old one: it exits once its servers are released, the new one keeps
    # serving on both, and the old one does not remove the new one's
    # socket file on its way out.
    old = pooler(settings={"so_reuseport": "1"})
    new = pooler(settings={"so_reuseport": "1", "listen_port": str(old.port),
                           "unix_socket_dir": str(old.sockdir)}, wait=False)
    new.wait_log(r"started, process", timeout=10)
    with old.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    old.expect_exit = True
    old.signal(signal.SIGINT)
    assert old.wait_exit(10) == 0
    for _ in range(5):
        with old.connect() as c:           # same port: only the new process is left
            assert c.execute("select 2").fetchone()[0] == 2
    with psycopg.connect(host=str(old.sockdir), port=old.port, dbname="testdb",
                         user="trustuser", autocommit=True) as c:
        assert c.execute("select 3").fetchone()[0] == 3
