"""
PgBouncer settings that limit, time or shape connections per database and
per user, and the few global ones that go with them.

Facts asserted (PgBouncer 1.25, doc/config.md and src/):
- max_db_client_connections (global, and per database in [databases]) and
  max_user_client_connections (global, and per user in [users]) refuse the
  client over the limit with "client connections exceeded
  (max_db_client_connections)" / "(max_user_client_connections)" (client.c);
  0 in an entry means "not set" (database_max_client_connections); admin_users
  on the console are never refused. SQLSTATE 53300 is pgsieve's, as for
  max_client_conn (expected.py).
- [users] pool_size, reserve_pool_size win over the database's and the
  global values (objects.c pool_pool_size, pool_res_pool_size); [users]
  query_timeout, idle_transaction_timeout, transaction_timeout,
  client_idle_timeout override the global ones when set (janitor.c);
  query_wait_timeout per database and per user, 0 = off, -1 = not set;
  server_lifetime per database.
- server_fast_close: in session pooling a server marked by RECONNECT is
  closed at the end of its transaction and its client with it ("database
  configuration changed"); a running transaction is not interrupted.
- query_wait_notify: one NoticeResponse "No server connection available in
  postgres backend, client being queued" to a client queued longer than
  that (1.25).
- scram_iterations: the iteration count of SCRAM secrets the pooler builds
  from plaintext passwords.
- sbuf_loopcnt: reads per socket per event; results stay intact at any value.
"""

import hashlib
import os
import re
import socket
import struct
import threading
import time

import psycopg
import pytest

from conftest import default_auth_users
from helpers import (ConnectionClosed, PgError, errors_in, message, parse_error_fields,
                     query_message, startup_packet, wait_for)
import expected as X

ADMIN = "adminuser"
STATS = "statsuser"


# ------------------------------------------------------------------ helpers

def with_admin(settings=None):
    s = {"admin_users": ADMIN, "stats_users": STATS}
    s.update(settings or {})
    return s


def admin_auth():
    auth = default_auth_users()
    auth[ADMIN] = ""
    auth[STATS] = ""
    return auth


def dbs(pg, testdb="", testdb2=""):
    return {"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb {testdb}".strip(),
            "testdb2": f"host=127.0.0.1 port={pg.port} dbname=testdb2 {testdb2}".strip()}


def refused(p, user, dbname):
    """Logs in with RawConn (trust); returns the PgError it must end with."""
    raw = p.raw()
    try:
        with pytest.raises(PgError) as ei:
            raw.startup(user, dbname)
    finally:
        raw.close()
    return ei.value


def assert_limit(err, text):
    assert (err.fields["S"], err.sqlstate, err.message) == \
        ("FATAL", X.CLIENT_LIMIT_SQLSTATE, text)


def connect_soon(p, timeout=3, **kw):
    """Connects, retrying while a client that just left is still counted."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return p.connect(**kw)
        except psycopg.OperationalError as e:
            if "client connections exceeded" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def expect_pooler_error(raw, text, within, at_least=0.0):
    """Reads until the pooler closes; asserts FATAL 08P01 `text` came first,
    no sooner than at_least and within `within` seconds."""
    msgs, closed, secs = raw.read_until_closed(within)
    raw.close()
    assert closed, f"still open after {within}s; got {[m[0] for m in msgs]}"
    errs = errors_in(msgs)
    assert errs, f"closed without an ErrorResponse after {secs:.1f}s"
    assert (errs[-1]["S"], errs[-1]["C"], errs[-1]["M"]) == ("FATAL", X.POOLER_SQLSTATE, text)
    assert secs >= at_least, f"closed too early ({secs:.2f}s)"
    return secs


def logged_in(p, user="trustuser", dbname="testdb"):
    raw = p.raw(timeout=10)
    raw.startup(user, dbname)
    return raw


def console_run(p, sql, user=ADMIN):
    with p.connect(dbname="pgbouncer", user=user) as c:
        cur = psycopg.ClientCursor(c)
        cur.execute(sql)
        if cur.description is None:
            return []
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


# ------------------------------------------------------------ client limits

def test_max_db_client_connections_per_database(pooler, pg, conns):
    p = pooler(databases=dbs(pg, testdb="max_db_client_connections=2"))
    conns += [p.connect(), p.connect(user="scramuser")]
    # The third client of testdb is refused, whoever it is ...
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_DB_CLIENT_CONN)
    assert_limit(refused(p, "md5user", "testdb"), X.MAX_DB_CLIENT_CONN)
    # ... while another database has no limit.
    for _ in range(3):
        c = p.connect(dbname="testdb2")
        conns.append(c)
        c.execute("select 1")
    # One leaves: exactly one more gets in (refusals kept no slot).
    conns.pop(0).close()
    c = connect_soon(p)
    conns.append(c)
    assert c.execute("select 2").fetchone()[0] == 2
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_DB_CLIENT_CONN)
    p.wait_log(r"login refused: max_db_client_connections reached")


def test_max_db_client_connections_global_and_reload(pooler, pg, conns):
    # The global limit counts per database; 0 in an entry means "not set".
    p = pooler(settings={"max_db_client_connections": "1"},
               databases=dbs(pg, testdb2="max_db_client_connections=0"))
    conns += [p.connect(), p.connect(dbname="testdb2")]
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_DB_CLIENT_CONN)
    assert_limit(refused(p, "trustuser", "testdb2"), X.MAX_DB_CLIENT_CONN)
    # A reload raises testdb's limit; connected clients are unaffected.
    p.write_config(databases=dbs(pg, testdb="max_db_client_connections=2"))
    p.reload()
    c = p.connect()
    conns.append(c)
    c.execute("select 1")
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_DB_CLIENT_CONN)
    assert_limit(refused(p, "trustuser", "testdb2"), X.MAX_DB_CLIENT_CONN)


def test_max_user_client_connections_per_user(pooler, pg, conns):
    p = pooler(users={"trustuser": "max_user_client_connections=2"})
    # Counted over all databases.
    conns += [p.connect(), p.connect(dbname="testdb2")]
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_USER_CLIENT_CONN)
    assert_limit(refused(p, "trustuser", "testdb2"), X.MAX_USER_CLIENT_CONN)
    # Other users are not limited.
    for _ in range(3):
        c = p.connect(user="scramuser")
        conns.append(c)
        c.execute("select 1")
    conns.pop(0).close()
    c = connect_soon(p)
    conns.append(c)
    c.execute("select 1")
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_USER_CLIENT_CONN)


def test_max_user_client_connections_global_and_console(pooler, conns):
    p = pooler(settings=with_admin({"max_user_client_connections": "1"}),
               users={"scramuser": "max_user_client_connections=2 pool_mode=session"},
               auth_users=admin_auth())
    conns.append(p.connect())
    assert_limit(refused(p, "trustuser", "testdb"), X.MAX_USER_CLIENT_CONN)
    # An entry raises it for one user.
    conns += [p.connect(user="scramuser"), p.connect(user="scramuser")]
    assert_limit(refused(p, "scramuser", "testdb"), X.MAX_USER_CLIENT_CONN)
    # admin_users always reach the console; stats_users are counted.
    for _ in range(3):
        conns.append(p.connect(dbname="pgbouncer", user=ADMIN))
    conns.append(p.connect(dbname="pgbouncer", user=STATS))
    assert_limit(refused(p, STATS, "pgbouncer"), X.MAX_USER_CLIENT_CONN)
    rows = console_run(p, "SHOW USERS")
    user = {r["name"]: r for r in rows}
    assert user["trustuser"]["max_user_client_connections"] == 1
    assert user["trustuser"]["current_client_connections"] == 1
    assert user["scramuser"]["max_user_client_connections"] == 2


# ------------------------------------------------------ per-user pool sizes

def test_user_pool_size_wins_over_database(pooler, pg, conns):
    p = pooler(settings=with_admin({"default_pool_size": "5", "query_wait_timeout": "1"}),
               databases=dbs(pg, testdb="pool_size=3"),
               users={"trustuser": "pool_size=1"}, auth_users=admin_auth())
    a = p.connect()
    conns.append(a)
    a.execute("select 1")            # session pooling: a keeps its server
    raw = logged_in(p)
    raw.send(query_message("select 1"))
    expect_pooler_error(raw, X.QUERY_WAIT_TIMEOUT, within=4, at_least=0.8)
    assert len(pg.backend_pids(usename="trustuser")) == 1
    # A user without an entry gets the database's pool_size.
    others = [p.connect(user="scramuser") for _ in range(3)]
    conns += others
    assert len({pid_of(c) for c in others}) == 3
    rows = {r["name"]: r for r in console_run(p, "SHOW USERS")}
    assert rows["trustuser"]["pool_size"] == "1"
    assert rows["scramuser"]["pool_size"] is None


def test_user_reserve_pool_size(pooler, pg, conns):
    p = pooler(settings={"default_pool_size": "1", "reserve_pool_size": "0",
                         "reserve_pool_timeout": "0.3", "query_wait_timeout": "2"},
               users={"trustuser": "reserve_pool_size=1"})
    holders = [p.connect(), p.connect(user="scramuser")]
    conns += holders
    for h in holders:
        h.execute("select 1")
    # trustuser may open one reserve connection after reserve_pool_timeout ...
    start = time.monotonic()
    b = p.connect()
    conns.append(b)
    assert b.execute("select 7").fetchone()[0] == 7
    assert time.monotonic() - start >= 0.25
    assert len(pg.backend_pids(usename="trustuser")) == 2
    # ... scramuser, without an entry, has the global reserve of 0.
    raw = logged_in(p, user="scramuser")
    raw.send(query_message("select 1"))
    expect_pooler_error(raw, X.QUERY_WAIT_TIMEOUT, within=5, at_least=1.5)


# ------------------------------------------------------- per-user timeouts

def test_user_query_timeout(pooler, conns):
    p = pooler(users={"trustuser": "query_timeout=0.5"})
    raw = logged_in(p)
    raw.send(query_message("select pg_sleep(5)"))
    expect_pooler_error(raw, X.QUERY_TIMEOUT, within=4, at_least=0.45)
    # Not for another user.
    with p.connect(user="scramuser") as c:
        c.execute("select pg_sleep(1.2)")
    p.assert_serves()


def test_user_query_timeout_overrides_global(pooler):
    p = pooler(settings={"query_timeout": "0.5"}, users={"trustuser": "query_timeout=10"})
    with p.connect() as c:
        c.execute("select pg_sleep(1.2)")
    raw = logged_in(p, user="scramuser")
    raw.send(query_message("select pg_sleep(5)"))
    expect_pooler_error(raw, X.QUERY_TIMEOUT, within=4, at_least=0.45)


def test_user_idle_transaction_timeout(pooler):
    p = pooler(users={"trustuser": "idle_transaction_timeout=0.5"})
    with p.connect(user="scramuser") as c:
        c.execute("begin")
        time.sleep(1.2)
        c.execute("commit")
    raw = logged_in(p)
    raw.simple_query("begin")
    expect_pooler_error(raw, X.IDLE_TRANSACTION_TIMEOUT, within=4, at_least=0.45)


def test_user_transaction_timeout(pooler):
    p = pooler(users={"trustuser": "transaction_timeout=0.8"})
    raw = logged_in(p)
    raw.simple_query("begin")
    start = time.monotonic()
    # Busy all along, so neither idle timeout could fire: only the transaction's age.
    msgs = []
    try:
        while time.monotonic() - start < 5:
            raw.send(query_message("select pg_sleep(0.1)"))
            while True:
                t, payload = raw.read_msg(timeout=3)
                msgs.append((t, payload))
                if t == b"Z":
                    break
    except (ConnectionClosed, OSError):
        pass
    elapsed = time.monotonic() - start
    raw.close()
    errs = errors_in(msgs)
    assert errs, f"no error after {elapsed:.2f}s"
    assert (errs[-1]["S"], errs[-1]["C"], errs[-1]["M"]) == \
        ("FATAL", X.POOLER_SQLSTATE, X.TRANSACTION_TIMEOUT)
    assert 0.7 <= elapsed < 4, f"cut after {elapsed:.2f}s"
    # Another user's transaction may last longer.
    with p.connect(user="scramuser") as c:
        c.execute("begin")
        for _ in range(6):
            c.execute("select pg_sleep(0.2)")
        c.execute("commit")


def test_user_client_idle_timeout(pooler):
    p = pooler(users={"trustuser": "client_idle_timeout=0.5"})
    other = logged_in(p, user="scramuser")
    raw = logged_in(p)
    expect_pooler_error(raw, X.CLIENT_IDLE_TIMEOUT, within=4, at_least=0.45)
    rows, _, errors, _ = other.simple_query("select 5")
    assert rows == [["5"]] and not errors
    other.close()


# ---------------------------------------------- per-database and per-user waits

def test_query_wait_timeout_per_database_and_user(pooler, pg, conns):
    p = pooler(settings={"default_pool_size": "1", "query_wait_timeout": "60"},
               databases=dbs(pg, testdb="query_wait_timeout=0.5"),
               users={"scramuser": "query_wait_timeout=0"})
    holder = p.connect()
    conns.append(holder)
    holder.execute("select 1")
    raw = logged_in(p)
    raw.send(query_message("select 1"))
    expect_pooler_error(raw, X.QUERY_WAIT_TIMEOUT, within=4, at_least=0.45)
    # scramuser switched the wait limit off: it waits as long as it takes.
    sholder = p.connect(user="scramuser")
    sholder.execute("select 1")
    waiter = logged_in(p, user="scramuser")
    waiter.send(query_message("select 6"))
    time.sleep(1.5)
    sholder.close()
    rows = []
    while True:
        t, payload = waiter.read_msg(timeout=5)
        assert t != b"E", payload
        if t == b"D":
            rows.append(payload)
        if t == b"Z":
            break
    assert len(rows) == 1
    waiter.close()


def test_server_lifetime_per_database(pooler, pg):
    p = pooler(settings={"server_lifetime": "3600", "server_idle_timeout": "0"},
               databases=dbs(pg, testdb="server_lifetime=0.5"))
    with p.connect() as a, p.connect(dbname="testdb2") as b:
        pa, pb = pid_of(a), pid_of(b)
    wait_for(lambda: pa not in pg.backend_pids(), 4, what="testdb's server closed")
    time.sleep(0.5)
    assert pb in pg.backend_pids()
    p.wait_log(r"server lifetime over")


# -------------------------------------------------------- server_fast_close

def reconnect(p):
    console_run(p, "RECONNECT")


def test_server_fast_close_ends_the_session(pooler, pg):
    p = pooler(settings=with_admin({"server_fast_close": "1"}), auth_users=admin_auth())
    raw = logged_in(p)
    rows, _, _, _ = raw.simple_query("select pg_backend_pid()")
    pid = int(rows[0][0])
    busy = logged_in(p, user="scramuser")
    busy.simple_query("begin")
    rows, _, _, _ = busy.simple_query("select pg_backend_pid()")
    busy_pid = int(rows[0][0])
    reconnect(p)
    # The idle session: its server and the client are closed together.
    expect_pooler_error(raw, X.CONFIG_CHANGED, within=3)
    wait_for(lambda: pid not in pg.backend_pids(), 3, what="the old server closed")
    # The one in a transaction goes on until the transaction ends.
    time.sleep(0.8)
    rows, _, errors, status = busy.simple_query("select 3")
    assert rows == [["3"]] and not errors and status == b"T"
    assert busy_pid in pg.backend_pids()
    busy.simple_query("commit")
    expect_pooler_error(busy, X.CONFIG_CHANGED, within=3)
    wait_for(lambda: busy_pid not in pg.backend_pids(), 3, what="the busy server closed")
    p.assert_serves()


def test_without_server_fast_close_the_session_keeps_its_server(pooler, pg):
    p = pooler(settings=with_admin({"server_fast_close": "0"}), auth_users=admin_auth())
    with p.connect() as c:
        pid = pid_of(c)
        reconnect(p)
        time.sleep(0.8)
        assert pid_of(c) == pid
    wait_for(lambda: pid not in pg.backend_pids(), 3, what="closed once released")


def test_server_fast_close_in_transaction_pooling_changes_nothing(pooler, pg):
    p = pooler(settings=with_admin({"server_fast_close": "1", "pool_mode": "transaction"}),
               auth_users=admin_auth())
    with p.connect() as c:
        c.execute("begin")
        pid = pid_of(c)
        reconnect(p)
        time.sleep(0.6)
        assert pid_of(c) == pid
        c.execute("commit")
        assert c.execute("select 1").fetchone()[0] == 1


# --------------------------------------------------------- query_wait_notify

def test_query_wait_notify(pooler, conns):
    p = pooler(settings={"default_pool_size": "1", "query_wait_notify": "1",
                         "query_wait_timeout": "20"})
    holder = p.connect()
    conns.append(holder)
    holder.execute("select 1")
    raw = logged_in(p)
    start = time.monotonic()
    raw.send(query_message("select 42"))
    # Nothing before query_wait_notify ...
    with pytest.raises(socket.timeout):
        raw.read_msg(timeout=0.8)
    t, payload = raw.read_msg(timeout=3)
    waited = time.monotonic() - start
    assert t == b"N", (t, payload)
    f = parse_error_fields(payload)
    assert f["S"] == "NOTICE" and f["M"] == X.QUERY_WAIT_NOTICE
    assert 1.0 <= waited < 2.5, f"notice after {waited:.2f}s"
    # ... and only once.
    with pytest.raises(socket.timeout):
        raw.read_msg(timeout=1.5)
    holder.close()
    rows, _, errors, _ = read_result(raw)
    assert rows == [b"42"] and not errors
    raw.close()


def read_result(raw):
    rows, tags, errors = [], [], []
    while True:
        t, payload = raw.read_msg(timeout=5)
        if t == b"D":
            rows.append(payload[6:])
        elif t == b"E":
            errors.append(payload)
        elif t == b"N":
            raise AssertionError("a second notice")
        elif t == b"Z":
            return rows, tags, errors, payload


def test_query_wait_notify_off(pooler, conns):
    p = pooler(settings={"default_pool_size": "1", "query_wait_notify": "0"})
    holder = p.connect()
    conns.append(holder)
    holder.execute("select 1")
    raw = logged_in(p)
    raw.send(query_message("select 42"))
    with pytest.raises(socket.timeout):
        raw.read_msg(timeout=1.5)
    holder.close()
    rows, _, errors, _ = read_result(raw)
    assert rows == [b"42"] and not errors
    raw.close()


# ------------------------------------------------------------ scram_iterations

def scram_server_first(p, user):
    """Starts a SCRAM exchange; returns the server-first-message fields."""
    raw = p.raw()
    try:
        raw.send(startup_packet({"user": user, "database": "testdb"}))
        t, payload = raw.read_msg()
        assert t == b"R" and struct.unpack("!I", payload[:4])[0] == 10, (t, payload)
        assert b"SCRAM-SHA-256" in payload
        first = b"n,,n=,r=" + os.urandom(12).hex().encode()
        raw.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        t, payload = raw.read_msg()
        assert t == b"R" and struct.unpack("!I", payload[:4])[0] == 11, (t, payload)
        return dict(kv.split("=", 1) for kv in payload[4:].decode().split(","))
    finally:
        raw.close()


def test_scram_iterations(pooler, pg):
    auth = default_auth_users()
    auth["scramuser"] = pg.scram_secret("scramuser")        # PostgreSQL's: 4096
    p = pooler(settings={"auth_type": "scram-sha-256", "scram_iterations": "7000"},
               auth_users=auth)
    # Built by the pooler from a plaintext auth_file password: scram_iterations.
    assert scram_server_first(p, "plainuser")["i"] == "7000"
    # An unknown user looks like one whose secret the pooler built.
    assert scram_server_first(p, "nosuchuser")["i"] == "7000"
    # A stored secret keeps its own count.
    assert scram_server_first(p, "scramuser")["i"] == "4096"
    # And a real login works with it.
    with p.connect(user="plainuser", password="plainpw") as c:
        assert c.execute("select current_user").fetchone()[0] == "plainuser"
    with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
        p.connect(user="plainuser", password="wrong")


# ----------------------------------------------------------------- sbuf_loopcnt

@pytest.mark.parametrize("loopcnt", ["1", "0", "5"])
def test_sbuf_loopcnt_moves_large_data_intact(pooler, pg, table, loopcnt):
    p = pooler(settings={"sbuf_loopcnt": loopcnt})
    n = 200_000        # about 10 MB of rows each way
    # Server to client: every row checked.
    with p.connect() as c:
        rows = c.execute("select i, md5(i::text) from generate_series(1, %s) i",
                         [n]).fetchall()
    assert len(rows) == n
    assert all(h == hashlib.md5(str(i).encode()).hexdigest() for i, h in rows)
    big = "x" * (10 * 1024 * 1024)
    with p.connect() as c:
        assert c.execute("select length(%s::text), md5(%s::text)", [big, big]).fetchone() == \
            (len(big), hashlib.md5(big.encode()).hexdigest())
    # Client to server, with a concurrent reader to share the loop with.
    result = {}

    def reader():
        with p.connect(user="scramuser") as r:
            result["sum"] = r.execute(
                "select sum(length(md5(i::text))) from generate_series(1, %s) i",
                [n]).fetchone()[0]

    t = threading.Thread(target=reader)
    t.start()
    with p.connect() as c:
        with c.cursor().copy(f"copy {table} (v) from stdin") as cp:
            for i in range(n):
                cp.write_row((i,))
        assert c.execute(f"select count(*), sum(v) from {table}").fetchone() == \
            (n, n * (n - 1) // 2)
    t.join(30)
    assert result.get("sum") == 32 * n


# ---------------------------------------------------------------- the console

def test_show_databases_and_users_reflect_overrides(pooler, pg):
    p = pooler(settings=with_admin({"max_db_client_connections": "9",
                                    "max_user_client_connections": "8"}),
               databases=dbs(pg, testdb="server_lifetime=42 max_db_client_connections=3"),
               users={"trustuser": "pool_size=2 reserve_pool_size=1 "
                                   "max_user_client_connections=4"},
               auth_users=admin_auth())
    with p.connect():
        dbrows = {r["name"]: r for r in console_run(p, "SHOW DATABASES")}
        users = {r["name"]: r for r in console_run(p, "SHOW USERS")}
    assert dbrows["testdb"]["server_lifetime"] == 42
    assert dbrows["testdb"]["max_client_connections"] == 3
    assert dbrows["testdb"]["current_client_connections"] == 1
    assert dbrows["testdb2"]["server_lifetime"] == 3600
    assert dbrows["testdb2"]["max_client_connections"] == 9
    u = users["trustuser"]
    assert (u["pool_size"], u["reserve_pool_size"]) == ("2", "1")
    assert u["max_user_client_connections"] == 4
    assert users[ADMIN]["max_user_client_connections"] == 8


def test_implemented_settings_do_not_warn(pooler, pg):
    p = pooler(settings={"max_db_client_connections": "10", "max_user_client_connections": "10",
                         "query_wait_notify": "3", "scram_iterations": "5000",
                         "sbuf_loopcnt": "3", "server_fast_close": "1"},
               databases=dbs(pg, testdb="server_lifetime=10 query_wait_timeout=5 "
                                        "max_db_client_connections=5"),
               users={"trustuser": "pool_size=2 reserve_pool_size=1 query_timeout=5 "
                                   "query_wait_timeout=5 idle_transaction_timeout=5 "
                                   "transaction_timeout=5 client_idle_timeout=5 "
                                   "max_user_client_connections=5"})
    p.assert_serves()
    log = p.log()
    assert "not implemented" not in log, log


def test_bad_values_name_file_line_and_setting(pooler, pg):
    p = pooler(users={"trustuser": "query_timeout=soon"}, start=False)
    p.expect_exit = True
    p.expect_fatal(r'trustuser: query_timeout: invalid time "soon"')
    p.start(wait=False)
    assert p.wait_exit(10) not in (None, 0)
    log = p.log()
    assert re.search(r'pgbouncer\.ini:\d+: trustuser: query_timeout: invalid time "soon"', log), log


def test_login_notify_message(pooler):
    p = pooler(settings={"login_notify_message": "maintenance tonight at 22:00"})
    raw = p.raw()
    msgs = raw.startup("trustuser", "testdb")
    notices = [m for t, m in msgs if t == b"N"]
    assert len(notices) == 1 and b"maintenance tonight at 22:00" in notices[0]
    # It comes after the welcome parameters, just before ReadyForQuery.
    assert [t for t, _ in msgs][-2:] == [b"N", b"Z"]
    raw.close()
    plain = pooler()
    assert not [t for t, _ in plain.raw().startup("trustuser", "testdb") if t == b"N"]


def test_pool_idle_timeout_frees_unused_pools_but_keeps_counters(pooler):
    from test_admin import admin_pooler, console, show
    p = admin_pooler(pooler, settings={"pool_idle_timeout": "1"})
    with p.connect() as c:
        c.execute("select 1")
    with console(p) as adm:
        assert [r for r in show(adm, "POOLS") if r["database"] == "testdb"]
        before = int([r for r in show(adm, "STATS")
                      if r["database"] == "testdb"][0]["total_xact_count"])
        assert before >= 1
        wait_for(lambda: not [r for r in show(adm, "POOLS") if r["database"] == "testdb"],
                 5, what="the unused pool to be freed")
        assert not [r for r in show(adm, "SERVERS") if r["database"] == "testdb"]
        after = int([r for r in show(adm, "STATS")
                     if r["database"] == "testdb"][0]["total_xact_count"])
        assert after == before          # counters never go backwards
    p.assert_serves()                   # a new pool is made on demand
