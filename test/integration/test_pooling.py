"""Pool modes: session, transaction, statement."""

import threading
import time

import psycopg
import pytest

from helpers import errors_in, query_message
import expected as X


def backend_pid(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def test_session_mode_keeps_backend_and_shares_after_disconnect(pooler, pg, conns):
    p = pooler(settings={"pool_mode": "session", "default_pool_size": "5"})
    a = p.connect()
    conns.append(a)
    pid_a = backend_pid(a)
    # Same backend for the whole session, across transactions.
    with a.transaction():
        assert backend_pid(a) == pid_a
    a.execute("set application_name = 'kept'")
    assert backend_pid(a) == pid_a
    assert a.execute("show application_name").fetchone()[0] == "kept"

    # A concurrent client gets another backend.
    b = p.connect()
    conns.append(b)
    pid_b = backend_pid(b)
    assert pid_b != pid_a
    assert {pid_a, pid_b} <= pg.backend_pids(usename="trustuser", datname="testdb")

    # After A leaves, its server connection is reused by the next client:
    # that is the pooling.
    a.close()
    time.sleep(0.3)   # the released server runs its reset query, then idles
    c = p.connect()
    conns.append(c)
    assert backend_pid(c) == pid_a
    # ... and the server reset ran: A's SET is gone.
    assert c.execute("show application_name").fetchone()[0] != "kept"


def test_transaction_mode_50_clients_over_pool_of_5(pooler, pg, table):
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "5",
                         "max_client_conn": "100"})
    nclients, ntx = 50, 8
    pids, errors = set(), []
    lock = threading.Lock()
    barrier = threading.Barrier(nclients + 1, timeout=30)
    stop = threading.Event()
    max_seen = [0]

    def monitor():
        while not stop.is_set():
            n = len(pg.backends(usename="appuser", datname="testdb"))
            max_seen[0] = max(max_seen[0], n)
            time.sleep(0.02)

    def client(i):
        try:
            conn = p.connect(user="appuser", password="apppw", autocommit=False)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"connect {i}: {e}")
            barrier.abort()
            return
        try:
            barrier.wait()
            for j in range(ntx):
                with conn.transaction():
                    pid = backend_pid(conn)
                    conn.execute(f"insert into {table} values (%s)", [i * 100 + j])
                    # The same backend for the whole transaction.
                    assert backend_pid(conn) == pid
                with lock:
                    pids.add(pid)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"client {i}: {e!r}")
        finally:
            conn.close()

    # Daemon threads and one deadline: a hung pooler must fail the test,
    # not hang the run.
    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    deadline = time.monotonic() + 40
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    stop.set()
    mon.join(5)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert errors == []
    assert 1 <= len(pids) <= 5, f"distinct backend pids: {sorted(pids)}"
    assert max_seen[0] <= 5, f"pg_stat_activity showed {max_seen[0]} backends for appuser"
    count = pg.sql(f"select count(*), count(distinct v) from {table}")[0]
    assert count == (nclients * ntx, nclients * ntx)


def test_transaction_mode_switches_backends_between_transactions(pooler, pg, conns):
    # Two clients, pool of 1: both run on the same single backend.
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "1"})
    a, b = p.connect(), p.connect()
    conns += [a, b]
    pid_a, pid_b = backend_pid(a), backend_pid(b)
    assert pid_a == pid_b
    assert len(pg.backends(usename="trustuser", datname="testdb")) == 1


def test_statement_mode_refuses_transaction_block(pooler, conns):
    p = pooler(settings={"pool_mode": "statement"})
    # Single statements work.
    c = p.connect()
    conns.append(c)
    cur = c.execute("select 1; select 2")
    assert cur.nextset() and cur.fetchone()[0] == 2
    assert c.execute("select 3").fetchone()[0] == 3

    # PgBouncer (server.c, handle_server_work): ReadyForQuery with status
    # 'T' in statement mode -> disconnect_server(..., "transaction blocks
    # not allowed in statement pooling mode"); the client gets it as a FATAL
    # with the default SQLSTATE 08P01 and is closed.
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    raw.send(query_message("BEGIN"))
    msgs, closed, _ = raw.read_until_closed(5)
    raw.close()
    assert closed
    errs = errors_in(msgs)
    assert errs, f"no ErrorResponse, got {[m[0] for m in msgs]}"
    assert errs[-1]["M"] == X.STATEMENT_MODE_TX
    assert errs[-1]["C"] == X.POOLER_SQLSTATE
    assert errs[-1]["S"] == "FATAL"

    # A driver-level transaction fails the same way.
    d = p.connect(autocommit=False)
    conns.append(d)
    with pytest.raises(psycopg.OperationalError,
                       match="transaction blocks not allowed in statement pooling mode"):
        d.execute("select 1")
        d.commit()
    p.expect_fatal(r"statement pooling")
    p.assert_serves()


def test_pool_mode_per_user_and_per_database(pooler, pg, conns):
    # A [databases] pool_mode and a [users] pool_mode override the global one.
    p = pooler(settings={"pool_mode": "session"},
               databases={
                   "testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb",
                   "stmtdb": f"host=127.0.0.1 port={pg.port} dbname=testdb pool_mode=statement",
               },
               users={"appuser": "pool_mode=statement"})
    p.expect_fatal(r"statement pooling")
    ok = p.connect(autocommit=False)
    conns.append(ok)
    with ok.transaction():
        ok.execute("select 1")
    for dbname, user, pw in (("stmtdb", "trustuser", None), ("testdb", "appuser", "apppw")):
        c = p.connect(dbname=dbname, user=user, password=pw, autocommit=False)
        conns.append(c)
        with pytest.raises(psycopg.OperationalError, match="statement pooling mode"):
            c.execute("select 1")
            c.commit()
    p.assert_serves()
