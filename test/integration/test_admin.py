"""
The admin console: the virtual database "pgbouncer" (alias "pgsieve" in
pgsieve), its SHOW commands and its process-control commands.

Facts asserted (PgBouncer 1.25, src/admin.c, src/client.c, src/stats.c):
- column names and order of every SHOW command: admin_columns.py;
- errors of the console go out through admin_error() ->
  send_pooler_error(send_ready=true, sqlstate=NULL -> 08P01, fatal=false):
  severity ERROR, SQLSTATE 08P01, and the console connection stays usable;
- "admin access needed": a stats_users member running PAUSE, RESUME, RELOAD,
  SHUTDOWN, SET, SHOW FDS, ...;
- "invalid command '<query>', use SHOW HELP;": an unknown command, or an
  unknown SHOW item;
- RELOAD of a broken file (1.25; 1.18 answered RELOAD regardless):
  SQLSTATE F0000 (psycopg ConfigFileError), "RELOAD failed, see logs for
  additional details";
- a user in neither admin_users nor stats_users connecting to the console:
  client.c disconnects it with "not allowed": FATAL 08P01 (checked against
  PgBouncer 1.18 below, same code path in 1.25);
- SHOW HELP answers with a NOTICE "Console usage" and no result columns.

The console speaks the simple query protocol only. psycopg 3 sends a query
without parameters with PQsendQuery (simple protocol); the tests use a
ClientCursor to make sure of it.
"""

import re
import socket
import subprocess
import threading
import time

import psycopg
import pytest

from admin_columns import COLUMNS, PGSIEVE_EXTRA
from conftest import IS_PGBOUNCER, POOLER_BIN, default_auth_users
from helpers import PgError, wait_for

# The SHOW commands the console implements (the column test runs for each).
IMPLEMENTED = ["VERSION", "CONFIG", "DATABASES", "POOLS", "CLIENTS", "SERVERS", "LISTS",
               "USERS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "TOTALS", "STATE", "MEM",
               "FDS", "SOCKETS", "ACTIVE_SOCKETS", "DNS_HOSTS", "DNS_ZONES", "PEERS",
               "PEER_POOLS"]

ADMIN = "adminuser"
STATS = "statsuser"
ADMIN_SQLSTATE = "08P01"
ADMIN_ACCESS_NEEDED = "admin access needed"
NOT_ALLOWED = "not allowed"
RELOAD_FAILED = "RELOAD failed, see logs for additional details"   # PgBouncer's full text
RELOAD_FAILED_PREFIX = "RELOAD failed"
RELOAD_FAILED_SQLSTATE = "F0000"


def pgbouncer_version():
    """(major, minor) of the PgBouncer under test, or None for pgsieve."""
    if not IS_PGBOUNCER:
        return None
    out = subprocess.run([str(POOLER_BIN), "-V"], capture_output=True, text=True).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


OLD_PGBOUNCER = IS_PGBOUNCER and pgbouncer_version() < (1, 25)


# ------------------------------------------------------------------ helpers

def admin_pooler(pooler, settings=None, databases=None, **kw):
    s = {"admin_users": ADMIN, "stats_users": STATS}
    s.update(settings or {})
    auth = default_auth_users()
    auth[ADMIN] = ""
    auth[STATS] = ""
    return pooler(settings=s, databases=databases, auth_users=auth, **kw)


def console(p, user=ADMIN, dbname="pgbouncer"):
    return p.connect(dbname=dbname, user=user)


def run(conn, sql):
    """Runs one console command with the simple protocol. Returns
    (column names or None, rows as lists of str/None)."""
    cur = psycopg.ClientCursor(conn)
    cur.execute(sql)
    if cur.description is None:
        return None, []
    cols = [d.name for d in cur.description]
    rows = [[None if v is None else str(v) for v in r] for r in cur.fetchall()]
    return cols, rows


def show(conn, what):
    """SHOW what -> list of dicts (values as str/None)."""
    cols, rows = run(conn, f"SHOW {what}")
    return [dict(zip(cols, r)) for r in rows]


def one(rows, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one row matching {match}, got {found} in {rows}"
    return found[0]


def stats_row(conn, db):
    return one(show(conn, "STATS"), database=db)


def config_value(conn, key):
    return one(show(conn, "CONFIG"), key=key)


def assert_console_error(excinfo, text, sqlstate=ADMIN_SQLSTATE):
    e = excinfo.value
    assert text in (e.diag.message_primary or ""), e.diag.message_primary
    assert e.sqlstate == sqlstate, (e.sqlstate, e.diag.message_primary)


# ------------------------------------------------------------- the columns

@pytest.mark.parametrize("command", IMPLEMENTED)
def test_show_columns(pooler, command):
    if OLD_PGBOUNCER:
        pytest.skip(f"PgBouncer {pgbouncer_version()} predates the 1.25 column lists")
    p = admin_pooler(pooler)
    with console(p) as c:
        cols, _ = run(c, f"SHOW {command}")
    extra = [] if IS_PGBOUNCER else PGSIEVE_EXTRA.get(command, [])
    assert cols == COLUMNS[command] + extra


def test_show_help_is_a_notice(pooler):
    p = admin_pooler(pooler)
    notices = []
    with console(p) as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        cols, rows = run(c, "SHOW HELP")
        assert cols is None and rows == []
        assert notices == ["Console usage"]
        # still usable
        assert run(c, "SHOW VERSION")[0] == ["version"]


def test_show_version(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        cols, rows = run(c, "SHOW VERSION")
    assert cols == ["version"]
    assert len(rows) == 1 and len(rows[0]) == 1
    version = rows[0][0]
    if IS_PGBOUNCER:
        assert version.startswith("PgBouncer "), version
    else:
        assert version.startswith("pgsieve "), version
        assert "PgBouncer 1.25 compatible" in version, version


def test_case_and_trailing_semicolon(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        reference, _ = run(c, "SHOW POOLS")
        for q in ("show pools;", "Show Pools ;", "  SHOW POOLS  ", "sHoW pOoLs;  "):
            cols, rows = run(c, q)
            assert cols == reference, q
        for q in ("show version;", "Show Version ;", "  SHOW VERSION  "):
            cols, rows = run(c, q)
            assert cols == ["version"] and len(rows) == 1, q


def test_console_listed_as_database_and_pool(pooler):
    """PgBouncer's console is a real database and pool: SHOW DATABASES and
    SHOW POOLS list it (name "pgbouncer"), with the console client counted."""
    p = admin_pooler(pooler)
    with console(p) as c:
        one(show(c, "DATABASES"), name="pgbouncer")
        # PgBouncer's console pool has the fixed user "pgbouncer" and
        # pool_mode statement, whoever logs in (checked against 1.18).
        row = one(show(c, "POOLS"), database="pgbouncer", user="pgbouncer")
        assert (row["cl_active"], row["pool_mode"]) == ("1", "statement"), row


@pytest.mark.skipif(IS_PGBOUNCER, reason="the 'pgsieve' alias is pgsieve's own")
def test_pgsieve_alias_database(pooler):
    p = admin_pooler(pooler)
    with console(p, dbname="pgsieve") as c:
        cols, rows = run(c, "SHOW VERSION")
        assert cols == ["version"] and rows[0][0].startswith("pgsieve ")


# ------------------------------------------------------------------ content

def test_show_databases(pooler, pg):
    p = admin_pooler(pooler, settings={"default_pool_size": "7"}, databases={
        "testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb pool_size=3",
        "aliasdb": f"host=127.0.0.1 port={pg.port} dbname=testdb2",
    })
    with console(p) as c:
        rows = show(c, "DATABASES")
    t = one(rows, name="testdb")
    assert (t["host"], t["port"], t["database"], t["pool_size"]) == \
        ("127.0.0.1", str(pg.port), "testdb", "3")
    a = one(rows, name="aliasdb")
    assert (a["host"], a["port"], a["database"], a["pool_size"]) == \
        ("127.0.0.1", str(pg.port), "testdb2", "7")
    assert a["force_user"] is None
    assert a["paused"] == "0" and a["disabled"] == "0"
    # PgBouncer lists its own console as database "pgbouncer" too.
    one(rows, name="pgbouncer")


def test_show_pools_session_counts(pooler, conns):
    p = admin_pooler(pooler, settings={"pool_mode": "session"})
    for _ in range(2):
        conns.append(p.connect())
        conns[-1].execute("select 1")
    with console(p) as c:
        row = one(show(c, "POOLS"), database="testdb", user="trustuser")
        assert (row["cl_active"], row["cl_waiting"], row["sv_active"], row["sv_idle"]) == \
            ("2", "0", "2", "0"), row
        assert row["pool_mode"] == "session"
        conns.pop().close()

        def released():
            r = one(show(c, "POOLS"), database="testdb", user="trustuser")
            return r if r["cl_active"] == "1" and r["sv_active"] == "1" and \
                int(r["sv_idle"]) + int(r["sv_used"]) == 1 else None
        wait_for(released, 5, what="one client and one server released in SHOW POOLS")


def test_show_stats_counts_transactions(pooler):
    n = 20
    p = admin_pooler(pooler, settings={"pool_mode": "transaction"})
    with p.connect() as client, console(p) as c:
        client.execute("select 1")          # the pool exists and has a server
        before = stats_row(c, "testdb")
        for _ in range(n):
            client.execute("select 1")
        after = wait_for(lambda: (lambda r: r if int(r["total_xact_count"]) >=
                                  int(before["total_xact_count"]) + n else None)(
                                      stats_row(c, "testdb")),
                         5, what="total_xact_count to grow")
    assert int(after["total_xact_count"]) - int(before["total_xact_count"]) == n
    assert int(after["total_query_count"]) - int(before["total_query_count"]) == n
    assert int(after["total_received"]) > int(before["total_received"])
    assert int(after["total_sent"]) > int(before["total_sent"])


def test_show_config(pooler):
    p = admin_pooler(pooler, settings={"default_pool_size": "7", "max_client_conn": "77"})
    with console(p) as c:
        cols, _ = run(c, "SHOW CONFIG")
        assert cols[:4] == ["key", "value", "default", "changeable"]
        dps = config_value(c, "default_pool_size")
        assert (dps["value"], dps["default"], dps["changeable"]) == ("7", "20", "yes")
        assert config_value(c, "max_client_conn")["value"] == "77"
        assert config_value(c, "listen_port")["changeable"] == "no"


def test_show_clients_and_servers(pooler, pg):
    p = admin_pooler(pooler, settings={"pool_mode": "session"})
    with p.connect(application_name="show-me") as client, console(p) as c:
        backend_pid = client.execute("select pg_backend_pid()").fetchone()[0]
        clients = show(c, "CLIENTS")
        cl = one(clients, database="testdb", user="trustuser")
        assert cl["type"] == "C" and cl["state"] == "active"
        assert cl["addr"] == "127.0.0.1" and cl["application_name"] == "show-me"
        me = one(clients, database="pgbouncer", user=ADMIN)
        assert me["type"] == "C"

        sv = one(show(c, "SERVERS"), database="testdb", user="trustuser")
        assert sv["type"] == "S" and sv["state"] == "active"
        assert (sv["addr"], sv["port"]) == ("127.0.0.1", str(pg.port))
        assert sv["remote_pid"] == str(backend_pid)
        # the client and its server point at each other
        assert cl["link"] == sv["ptr"] and sv["link"] == cl["ptr"]


# ------------------------------------------------------------ process control

def test_pause_and_resume(pooler):
    p = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "4"})
    stop = threading.Event()
    counts = [0] * 4
    errors = []

    def loop(i):
        try:
            with p.connect(connect_timeout=10) as conn:
                while not stop.is_set():
                    conn.execute("select 1")
                    counts[i] += 1
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    blocked = {}
    try:
        wait_for(lambda: all(counts), 5, what="all clients running")
        with console(p) as c:
            run(c, "PAUSE")
            # PAUSE returned: no server connection left in use
            servers = [r for r in show(c, "SERVERS") if r["database"] == "testdb"]
            assert not [r for r in servers if r["state"] == "active"], servers
            assert one(show(c, "DATABASES"), name="testdb")["paused"] == "0"  # global pause
            snap = list(counts)
            time.sleep(1)
            assert counts == snap, "queries ran while paused"

            def paused_query():
                with p.connect(connect_timeout=10) as conn:
                    blocked["result"] = conn.execute("select 42").fetchone()[0]
                    blocked["at"] = time.monotonic()
            t = threading.Thread(target=paused_query, daemon=True)
            t.start()
            time.sleep(1)
            assert "result" not in blocked, "a query finished during PAUSE"
            resumed_at = time.monotonic()
            run(c, "RESUME")
            t.join(10)
            assert blocked.get("result") == 42
            assert blocked["at"] >= resumed_at
            wait_for(lambda: all(counts[i] > snap[i] for i in range(4)), 5,
                     what="every client running again after RESUME")
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert errors == []


def test_reload_applies_changes(pooler, pg):
    p = admin_pooler(pooler, settings={"default_pool_size": "7"})
    with console(p) as c:
        assert config_value(c, "default_pool_size")["value"] == "7"
        dbs = dict(p.databases)
        dbs["newdb"] = f"host=127.0.0.1 port={pg.port} dbname=testdb2"
        p.write_config(settings={"default_pool_size": "9"}, databases=dbs)
        cols, _ = run(c, "RELOAD")
        assert cols is None
        assert config_value(c, "default_pool_size")["value"] == "9"
        assert one(show(c, "DATABASES"), name="newdb")["database"] == "testdb2"
        assert one(show(c, "DATABASES"), name="testdb")["pool_size"] == "9"
    with p.connect(dbname="newdb") as conn:
        assert conn.execute("select current_database()").fetchone()[0] == "testdb2"


@pytest.mark.skipif(OLD_PGBOUNCER, reason="PgBouncer < 1.25 answered RELOAD even when it failed")
def test_reload_of_a_broken_file_fails(pooler):
    p = admin_pooler(pooler, settings={"default_pool_size": "7"})
    with console(p) as c:
        p.write_config(settings={"default_pool_size": "not-a-number"})
        with pytest.raises(psycopg.Error) as ei:
            run(c, "RELOAD")
        # PgBouncer: "RELOAD failed, see logs for additional details"; alerts
        # match the prefix, the rest may say more.
        assert_console_error(ei, RELOAD_FAILED_PREFIX, RELOAD_FAILED_SQLSTATE)
        assert ei.value.diag.message_primary.startswith(RELOAD_FAILED_PREFIX)
        # the old configuration stays, and the console is still usable
        assert config_value(c, "default_pool_size")["value"] == "7"
    p.assert_serves()


def test_shutdown(pooler):
    p = admin_pooler(pooler)
    p.expect_exit = True
    c = console(p)
    try:
        # PgBouncer does not answer SHUTDOWN: the connection closes on exit.
        # An implementation that answers it first is fine too.
        try:
            run(c, "SHUTDOWN")
        except psycopg.OperationalError:
            pass
    finally:
        c.close()
    assert p.wait_exit(5) is not None, "the pooler did not exit after SHUTDOWN"
    with pytest.raises(OSError):
        socket.create_connection((p.host, p.port), timeout=1).close()


# ---------------------------------------------------------------- access

@pytest.mark.parametrize("command", ["PAUSE", "RESUME", "RELOAD", "SHUTDOWN", "SUSPEND",
                                     "KILL testdb", "SHOW FDS", "SET default_pool_size = 3"])
def test_stats_user_cannot_control(pooler, command):
    p = admin_pooler(pooler)
    with console(p, user=STATS) as c:
        assert run(c, "SHOW POOLS")[0]  # SHOW works
        with pytest.raises(psycopg.Error) as ei:
            run(c, command)
        assert_console_error(ei, ADMIN_ACCESS_NEEDED)
        # nothing happened, and the console connection is still usable
        assert run(c, "SHOW VERSION")[0] == ["version"]
        if command.startswith("SET"):
            assert config_value(c, "default_pool_size")["value"] == "5"
    assert p.alive()
    p.assert_serves()


def test_stats_user_can_show(pooler):
    p = admin_pooler(pooler)
    with console(p, user=STATS) as c:
        for what in ("STATS", "POOLS", "DATABASES", "CLIENTS", "SERVERS", "CONFIG", "LISTS"):
            cols, _ = run(c, f"SHOW {what}")
            assert cols, what


def test_other_user_cannot_connect(pooler):
    p = admin_pooler(pooler)
    with pytest.raises(psycopg.OperationalError) as ei:
        console(p, user="trustuser")
    assert NOT_ALLOWED in str(ei.value)
    # exact fields on the wire
    raw = p.raw()
    try:
        with pytest.raises(PgError) as pe:
            raw.startup("trustuser", "pgbouncer")
        assert pe.value.fields.get("S") == "FATAL"
        assert pe.value.sqlstate == ADMIN_SQLSTATE
        assert pe.value.message == NOT_ALLOWED
    finally:
        raw.close()
    p.assert_serves()


def test_unknown_command_keeps_console_usable(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        for q in ("FROBNICATE", "SHOW NONSENSE", "SELECT * FROM pg_class"):
            with pytest.raises(psycopg.Error) as ei:
                run(c, q)
            assert_console_error(ei, "invalid command")
            assert q in ei.value.diag.message_primary
            assert run(c, "SHOW VERSION")[0] == ["version"]
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# ------------------------------------------- RECONNECT, KILL, DISABLE, SET

def backend_pid(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def test_reconnect_replaces_server_connections(pooler):
    p = admin_pooler(pooler, settings={"default_pool_size": "1"})
    with p.connect() as a:
        before = backend_pid(a)
    with console(p) as c:
        run(c, "RECONNECT testdb")
        # The idle server is closed at once: WAIT_CLOSE has nothing to wait for.
        run(c, "WAIT_CLOSE testdb")
    with p.connect() as b:
        assert backend_pid(b) != before


def test_wait_close_waits_for_a_busy_server(pooler):
    p = admin_pooler(pooler, settings={"default_pool_size": "1"})
    busy = p.connect()
    busy.execute("begin")
    old = backend_pid(busy)
    with console(p) as c:
        run(c, "RECONNECT")
        done = threading.Event()

        def wait():
            with console(p) as w:
                run(w, "WAIT_CLOSE")
            done.set()

        t = threading.Thread(target=wait, daemon=True)
        t.start()
        time.sleep(0.7)
        assert not done.is_set()       # the busy server is still open
        busy.execute("commit")         # released: closed, since it was marked
        busy.close()
        assert done.wait(5)
        t.join(5)
    with p.connect() as b:
        assert backend_pid(b) != old


def test_kill_drops_clients_and_pauses_until_resume(pooler):
    p = admin_pooler(pooler)
    victim = p.connect()
    victim.execute("select 1")
    with console(p) as c:
        run(c, "KILL testdb")
        with pytest.raises(psycopg.OperationalError):
            victim.execute("select 1")
        assert one(show(c, "DATABASES"), name="testdb")["paused"] == "1"
        run(c, "RESUME testdb")
    p.assert_serves()


def test_kill_client(pooler):
    p = admin_pooler(pooler)
    victim = p.connect(application_name="victim")
    victim.execute("select 1")
    with console(p) as c:
        row = one(show(c, "CLIENTS"), application_name="victim")
        run(c, f"KILL_CLIENT {row['id']}")
        with pytest.raises(psycopg.OperationalError, match="client killed by admin"):
            victim.execute("select 1")
        with pytest.raises(psycopg.Error) as ei:
            run(c, "KILL_CLIENT 999999")
        assert_console_error(ei, "no client with id 999999")
    p.assert_serves()


def test_disable_refuses_new_clients_until_enable(pooler):
    p = admin_pooler(pooler)
    kept = p.connect()
    kept.execute("select 1")
    with console(p) as c:
        run(c, "DISABLE testdb")
        assert one(show(c, "DATABASES"), name="testdb")["disabled"] == "1"
        with pytest.raises(psycopg.OperationalError, match='database "testdb" is disabled'):
            p.connect()
        assert kept.execute("select 2").fetchone()[0] == 2   # connected clients go on
        run(c, "ENABLE testdb")
    p.assert_serves()


def test_set_changes_a_reloadable_setting(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        run(c, "SET default_pool_size = 7")
        assert config_value(c, "default_pool_size")["value"] == "7"
        run(c, "set server_reset_query to 'DISCARD ALL'")
        assert config_value(c, "server_reset_query")["value"] == "DISCARD ALL"
        with pytest.raises(psycopg.Error) as ei:
            run(c, "SET listen_port = 1")
        assert_console_error(ei, "cannot be changed at run time")
        with pytest.raises(psycopg.Error) as ei:
            run(c, "SET default_pool_size = many")
        assert_console_error(ei, "default_pool_size")
        assert config_value(c, "default_pool_size")["value"] == "7"
    p.assert_serves()


# ------------------------------------------------------------- under load

def start_pgbench(p, dbname, seconds, clients=4):
    """pgbench -S through the pooler in the background; returns the process."""
    return subprocess.Popen(
        ["pgbench", "-n", "-S", "-T", str(seconds), "-c", str(clients), "-h", p.host,
         "-p", str(p.port), "-U", "trustuser", dbname],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def pgbench_result(proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert done and int(done.group(1)) > 0, out
    assert failed is None or int(failed.group(1)) == 0, out
    return int(done.group(1))


def test_pause_resume_under_pgbench_load(pooler, pg, bench):
    p = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "2"},
                     databases={bench: f"host=127.0.0.1 port={pg.port} dbname={bench}"})
    load = start_pgbench(p, bench, seconds=5)
    time.sleep(1)
    with console(p) as c:
        run(c, "PAUSE")      # answers once the two servers are released
        assert one(show(c, "POOLS"), database=bench)["sv_active"] == "0"
        before = stats_row(c, bench)["total_xact_count"]
        time.sleep(1)
        # Paused: the clients wait, nothing runs.
        assert stats_row(c, bench)["total_xact_count"] == before
        assert int(one(show(c, "POOLS"), database=bench)["cl_waiting"]) > 0
        run(c, "RESUME")
    pgbench_result(load, timeout=30)


def test_reload_under_load_adds_removes_and_resizes(pooler, pg, bench):
    dbs = {bench: f"host=127.0.0.1 port={pg.port} dbname={bench}",
           "gone": f"host=127.0.0.1 port={pg.port} dbname=testdb"}
    p = admin_pooler(pooler, settings={"pool_mode": "transaction", "default_pool_size": "2"},
                     databases=dbs)
    with p.connect(dbname="gone") as g:
        g.execute("select 1")
    load = start_pgbench(p, bench, seconds=4)
    time.sleep(1)
    new_dbs = {bench: f"host=127.0.0.1 port={pg.port} dbname={bench} pool_size=3",
               "fresh": f"host=127.0.0.1 port={pg.port} dbname=testdb2"}
    p.write_config(settings={"admin_users": ADMIN, "stats_users": STATS,
                             "pool_mode": "transaction", "default_pool_size": "2"},
                   databases=new_dbs, auth_users=dict(default_auth_users(), **{ADMIN: "", STATS: ""}))
    with console(p) as c:
        run(c, "RELOAD")
        names = {r["name"]: r for r in show(c, "DATABASES")}
        assert "fresh" in names and "gone" not in names
        assert names[bench]["pool_size"] == "3"
    with p.connect(dbname="fresh") as f:
        assert f.execute("select current_database()").fetchone()[0] == "testdb2"
    pgbench_result(load, timeout=30)
    # The removed database's idle server is closed.
    wait_for(lambda: not pg.backends(datname="testdb", usename="trustuser"), 5,
             what="server of the removed database closed")


def test_set_conffile_makes_reload_read_another_file(pooler, tmp_path):
    p = admin_pooler(pooler)
    other = tmp_path / "other.ini"
    other.write_text(p.ini_path.read_text().replace("default_pool_size = 5",
                                                    "default_pool_size = 9"))
    with console(p) as c:
        with pytest.raises(psycopg.Error, match="conffile: cannot read"):
            run(c, "SET conffile = '/nonexistent/x.ini'")
        run(c, f"SET conffile = '{other}'")
        assert config_value(c, "conffile")["value"] == str(other)
        run(c, "RELOAD")
        assert config_value(c, "default_pool_size")["value"] == "9"
