"""
Every timeout and limit, with short values (fractional seconds where
PgBouncer accepts them: its time settings are parsed as floating seconds,
and its janitor runs three times a second).

Messages, from PgBouncer 1.25's src/janitor.c (all sent with
send_pooler_error: severity FATAL, SQLSTATE 08P01, then the connection is
closed): "query_wait_timeout", "client_idle_timeout", "client_login_timeout",
"query timeout" (a running query), "idle transaction timeout".
"""

import socket
import threading
import time

import psycopg
import pytest

from helpers import ConnectionClosed, errors_in, free_port, query_message, wait_for
import expected as X


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def expect_pooler_error(raw, message, within, at_least=0.0):
    """Reads until the pooler closes the connection; asserts it sent FATAL
    08P01 `message` first, after at least `at_least` and within `within`
    seconds."""
    msgs, closed, secs = raw.read_until_closed(within)
    raw.close()
    assert closed, f"connection still open after {within}s; got {[m[0] for m in msgs]}"
    errs = errors_in(msgs)
    assert errs, f"closed without an ErrorResponse (after {secs:.1f}s)"
    assert errs[-1]["M"] == message
    assert (errs[-1]["S"], errs[-1]["C"]) == ("FATAL", X.POOLER_SQLSTATE)
    assert secs >= at_least, f"closed too early ({secs:.2f}s)"
    return secs


def test_server_lifetime(pooler, pg, conns):
    p = pooler(settings={"server_lifetime": "0.5", "server_idle_timeout": "0"})
    with p.connect() as a:
        pid1 = pid_of(a)
    # Idle in the pool, then closed because its lifetime is over.
    wait_for(lambda: pid1 not in pg.backend_pids(usename="trustuser"), 4,
             what="server connection closed after server_lifetime")
    with p.connect() as b:
        assert pid_of(b) != pid1


def test_server_lifetime_does_not_cut_a_session(pooler, pg, conns):
    # A server in use is only closed once released.
    p = pooler(settings={"server_lifetime": "0.3"})
    a = p.connect()
    conns.append(a)
    pid1 = pid_of(a)
    time.sleep(1.2)
    assert pid_of(a) == pid1
    a.close()
    wait_for(lambda: pid1 not in pg.backend_pids(usename="trustuser"), 4,
             what="server closed after release")


def test_server_idle_timeout(pooler, pg):
    p = pooler(settings={"server_idle_timeout": "0.5"})
    with p.connect() as a:
        pid1 = pid_of(a)
    # Pooled right after the client left ...
    assert pid1 in pg.backend_pids(usename="trustuser")
    # ... and closed once idle for longer than server_idle_timeout.
    start = time.monotonic()
    wait_for(lambda: pid1 not in pg.backend_pids(usename="trustuser"), 4,
             what="idle server connection closed")
    assert time.monotonic() - start >= 0.2


class Blackhole:
    """A listening socket that never accepts nor answers: the TCP handshake
    completes (kernel backlog) and then nothing happens."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)

    def close(self):
        self.sock.close()


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.close()


def test_server_connect_timeout(pooler, pg, blackhole):
    p = pooler(settings={"server_connect_timeout": "1", "server_login_retry": "0.5",
                         "query_wait_timeout": "3"},
               databases={"hole": f"host=127.0.0.1 port={blackhole.port} dbname=x",
                          "testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb"})
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        p.connect(dbname="hole", connect_timeout=10)
    elapsed = time.monotonic() - start
    # It waited for the server connect timeout, then gave up: no hang.
    # PgBouncer 1.18 keeps the client until query_wait_timeout (3 s here);
    # 1.22+ fails it as soon as no server connection can be made.
    assert 0.9 <= elapsed < 5, f"gave up after {elapsed:.1f}s"
    p.wait_log(r"connect timeout", timeout=2)
    p.assert_serves()


def test_server_login_retry(pooler, pg):
    # retryuser's real password is not the one in [databases]: the first
    # login fails; within server_login_retry no new attempt is made; after
    # the password is fixed and the retry delay passed, logins work.
    p = pooler(settings={"server_login_retry": "2", "query_wait_timeout": "10"},
               databases={"retrydb": f"host=127.0.0.1 port={pg.port} dbname=testdb "
                                     "user=retryuser password=right-one"})
    pg.sql("alter role retryuser password 'not-the-right-one'", dbname="postgres")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        p.connect(dbname="retrydb")
    failed_at = time.monotonic()
    pg.sql("alter role retryuser password 'right-one'", dbname="postgres")
    # Still inside the retry window: the pooler does not try again yet, so
    # this client cannot get a server before the window ends.
    start = time.monotonic()
    try:
        with p.connect(dbname="retrydb", connect_timeout=10) as c:
            c.execute("select 1")
        got_in = time.monotonic()
        assert got_in - failed_at >= 1.5, \
            f"logged in {got_in - failed_at:.1f}s after a failure with server_login_retry=2"
    except psycopg.OperationalError as e:
        # PgBouncer fails fast: "server login has been failing, ..."
        assert "server login has been failing" in str(e)
        assert time.monotonic() - start < 1.5
        time.sleep(max(0, 2.3 - (time.monotonic() - failed_at)))
        with p.connect(dbname="retrydb", connect_timeout=10) as c:
            assert c.execute("select current_user").fetchone()[0] == "retryuser"
    pg.sql("alter role retryuser password 'not-the-right-one'", dbname="postgres")


def test_query_timeout(pooler, pg):
    p = pooler(settings={"query_timeout": "1"})
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    raw.send(query_message("select pg_sleep(3)"))
    secs = expect_pooler_error(raw, X.QUERY_TIMEOUT, within=5, at_least=0.8)
    assert secs < 4
    # The pooler recovers: new clients get a (new) server.
    p.assert_serves()
    with p.connect() as c:
        assert c.execute("select pg_sleep(0.2), 1").fetchone()[1] == 1


def test_query_wait_timeout(pooler, conns):
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "1",
                         "query_wait_timeout": "1"})
    holder = p.connect()
    conns.append(holder)
    holder.execute("begin")
    holder.execute("select 1")            # holds the only server
    raw = p.raw()
    raw.startup("trustuser", "testdb")    # login works: welcome is cached
    raw.send(query_message("select 1"))
    expect_pooler_error(raw, X.QUERY_WAIT_TIMEOUT, within=5, at_least=0.8)
    # The holder is unaffected.
    assert holder.execute("select 2").fetchone()[0] == 2
    holder.execute("commit")
    p.assert_serves()


def test_client_idle_timeout(pooler):
    # Applies to clients that hold no server: in session mode a client keeps
    # its server, so use transaction mode (PgBouncer pool_client_maint skips
    # linked clients).
    p = pooler(settings={"client_idle_timeout": "1", "pool_mode": "transaction"})
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    rows, _, errors, _ = raw.simple_query("select 1")
    assert errors == []
    expect_pooler_error(raw, X.CLIENT_IDLE_TIMEOUT, within=5, at_least=0.8)
    # A busy client is not idle.
    c = p.connect()
    try:
        for _ in range(6):
            c.execute("select 1")
            time.sleep(0.3)
    finally:
        c.close()


def test_client_login_timeout(pooler):
    p = pooler(settings={"client_login_timeout": "1"})
    raw = p.raw()
    # Sends nothing at all.
    closed, data, secs = raw.wait_closed(5)
    raw.close()
    assert closed, "silent client was not closed"
    assert 0.8 <= secs < 4, f"closed after {secs:.2f}s"
    if data:
        # PgBouncer sends FATAL "client_login_timeout" before closing.
        assert data[:1] == b"E" and b"client_login_timeout" in data
    p.assert_serves()


def test_idle_transaction_timeout(pooler, pg):
    p = pooler(settings={"idle_transaction_timeout": "1"})
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    _, _, errors, status = raw.simple_query("begin; select 1")
    assert errors == [] and status == b"T"
    expect_pooler_error(raw, X.IDLE_TRANSACTION_TIMEOUT, within=5, at_least=0.8)
    # The server connection that was idle in transaction is gone too.
    wait_for(lambda: not [r for r in pg.backends(usename="trustuser")
                          if r[3] == "idle in transaction"], 3,
             what="no idle-in-transaction backend")
    p.assert_serves()


def test_autodb_idle_timeout(pooler, pg):
    # A database reached through "*" is registered on first use and dropped
    # once it had neither clients nor servers for autodb_idle_timeout.
    # PgBouncer logs: "dropping database 'testdb2' as it does not exist
    # anymore or inactive auto-database".
    p = pooler(settings={"autodb_idle_timeout": "1", "server_idle_timeout": "0.5"},
               databases={"*": f"host=127.0.0.1 port={pg.port}"})
    with p.connect(dbname="testdb2") as c:
        pid1 = pid_of(c)
        assert c.execute("select current_database()").fetchone()[0] == "testdb2"
    assert pid1 in pg.backend_pids(datname="testdb2")
    wait_for(lambda: pid1 not in pg.backend_pids(datname="testdb2"), 4,
             what="auto-database server closed")
    p.wait_log(r"(?i)(drop|remov|inactive|expir)\S*.*testdb2|testdb2.*(drop|remov|inactive|expir)",
               timeout=5)
    # And it can be registered again.
    p.assert_serves(dbname="testdb2")


def test_reserve_pool(pooler, conns):
    p = pooler(settings={"default_pool_size": "1", "reserve_pool_size": "1",
                         "reserve_pool_timeout": "0.5", "query_wait_timeout": "10"})
    a = p.connect()
    conns.append(a)
    pid_a = pid_of(a)                    # the whole pool, held in session mode
    start = time.monotonic()
    b = p.connect(connect_timeout=8)
    conns.append(b)
    pid_b = pid_of(b)                    # served from the reserve pool
    elapsed = time.monotonic() - start
    assert pid_b != pid_a
    assert 0.4 <= elapsed < 4, f"reserve connection after {elapsed:.2f}s"
    # The reserve is 1: a third client has to wait.
    result = {}

    def third():
        try:
            with p.connect(connect_timeout=8) as c:
                result["pid"] = pid_of(c)
        except Exception as e:  # noqa: BLE001
            result["err"] = e

    t = threading.Thread(target=third, daemon=True)
    t.start()
    time.sleep(1.5)
    assert "pid" not in result, "a third server connection was opened past the reserve"
    b.close()
    t.join(8)
    assert result.get("pid") == pid_b


def test_max_db_connections(pooler, pg, conns):
    # The limit is per database, across users.
    p = pooler(settings={"max_db_connections": "2", "default_pool_size": "5",
                         "query_wait_timeout": "1", "pool_mode": "transaction"})
    a = p.connect(user="trustuser")
    b = p.connect(user="appuser", password="apppw")
    conns += [a, b]
    a.execute("begin")
    pid_of(a)
    b.execute("begin")
    pid_of(b)
    assert len(pg.backend_pids(datname="testdb")) == 2
    c = p.connect(user="trustuser")      # login is fine (welcome cached) ...
    conns.append(c)
    with pytest.raises(psycopg.OperationalError, match=X.QUERY_WAIT_TIMEOUT):
        c.execute("select 1")            # ... but no third server
    assert len(pg.backend_pids(datname="testdb")) <= 2
    a.execute("commit")
    b.execute("commit")
    p.assert_serves()


def test_max_user_connections(pooler, pg, conns):
    # The limit is per user, across databases.
    p = pooler(settings={"max_user_connections": "2", "default_pool_size": "5",
                         "query_wait_timeout": "1", "pool_mode": "transaction"})
    a = p.connect(dbname="testdb")
    b = p.connect(dbname="testdb2")
    conns += [a, b]
    a.execute("begin")
    pid_of(a)
    b.execute("begin")
    pid_of(b)
    c = p.connect(dbname="testdb")
    conns.append(c)
    with pytest.raises(psycopg.OperationalError, match=X.QUERY_WAIT_TIMEOUT):
        c.execute("select 1")
    assert len(pg.backends(usename="trustuser")) == 2
    # Another user is not limited by trustuser's count.
    p.assert_serves(user="appuser", password="apppw")
    a.execute("commit")
    b.execute("commit")


def test_min_pool_size(pooler, pg, conns):
    p = pooler(settings={"min_pool_size": "3", "default_pool_size": "5"})
    # While the pool has a client, the pooler opens connections in the
    # background up to min_pool_size.
    c = p.connect(user="appuser", password="apppw")
    conns.append(c)
    pid_of(c)
    wait_for(lambda: len(pg.backends(usename="appuser", datname="testdb")) >= 3, 5,
             what="min_pool_size connections")
    time.sleep(0.7)
    assert len(pg.backends(usename="appuser", datname="testdb")) == 3
    # Not closed by server_idle_timeout below min_pool_size.


def test_min_pool_size_forced_user_without_clients(pooler, pg):
    # PgBouncer >= 1.24 fills min_pool_size of a database with a forced user
    # even before any client came.
    pooler(settings={"min_pool_size": "2", "default_pool_size": "5"},
           databases={"minpool": f"host=127.0.0.1 port={pg.port} dbname=testdb2 user=appuser "
                                 "password=apppw"})
    wait_for(lambda: len(pg.backends(usename="appuser", datname="testdb2")) >= 2, 5,
             what="min_pool_size connections without clients")


@pytest.mark.parametrize("reset_query", ["DISCARD ALL", ""])
def test_server_reset_query(pooler, pg, reset_query):
    p = pooler(settings={"default_pool_size": "1", "server_reset_query": reset_query})
    with p.connect() as a:
        pid1 = pid_of(a)
        a.execute("create temp table leak (x int)")
        a.execute("set myapp.secret = 'from A'")
        a.execute("set work_mem = '7777kB'")
    with p.connect() as b:
        assert pid_of(b) == pid1              # the same backend, pool of 1
        temp = b.execute("select count(*) from pg_class where relname = 'leak' "
                         "and relpersistence = 't'").fetchone()[0]
        secret = b.execute("select current_setting('myapp.secret', true)").fetchone()[0]
        work_mem = b.execute("show work_mem").fetchone()[0]
    if reset_query:
        assert temp == 0 and secret in (None, "") and work_mem != "7777kB"
    else:
        # Control: without a reset query, A's state is visible to B.
        assert temp == 1 and secret == "from A"


@pytest.mark.parametrize("delay,checked", [("0.2", True), ("30", False)])
def test_server_check_query(pooler, pg, table, delay, checked):
    # A server idle for longer than server_check_delay is checked with
    # server_check_query before a client gets it. (PgBouncer only drops the
    # server if the check breaks the connection; an ErrorResponse from the
    # check does not count.) A check query with a visible side effect shows
    # whether it ran.
    p = pooler(settings={"default_pool_size": "1", "server_check_delay": delay,
                         "server_check_query": f"insert into {table} values (1)"})
    with p.connect() as a:
        pid1 = pid_of(a)
    time.sleep(1.0)
    with p.connect() as b:
        assert pid_of(b) == pid1
    n = pg.sql(f"select count(*) from {table}")[0][0]
    assert (n >= 1) == checked, f"{n} check queries ran"


@pytest.mark.parametrize("round_robin", [True, False])
def test_server_round_robin(pooler, round_robin):
    p = pooler(settings={"server_round_robin": "1" if round_robin else "0",
                         "default_pool_size": "2"})
    a, b = p.connect(), p.connect()
    pid_of(a), pid_of(b)
    a.close()
    b.close()
    seen = []
    for _ in range(4):
        # Let the released server finish its reset query and go idle.
        time.sleep(0.3)
        with p.connect() as c:
            seen.append(pid_of(c))
    if round_robin:
        # FIFO over the idle servers: both are used in turn.
        assert len(set(seen)) == 2, seen
        assert seen[0] != seen[1] and seen[0] == seen[2]
    else:
        # LIFO: the most recently used server is reused.
        assert len(set(seen)) == 1, seen
