"""
Peering: several pgsieve processes share a port (so_reuseport); a cancel
request lands on any of them and must reach the one holding the query.
"""

import threading
import time

import psycopg
import pytest

from conftest import IS_PGBOUNCER
from test_admin import admin_pooler, one, show

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="needs two poolers on one port")


def peered_pair(pooler):
    """Two processes on one TCP port, each with its own unix socket, which
    is where their peers reach them."""
    a = admin_pooler(pooler, settings={"so_reuseport": "1", "peer_id": "1",
                                       "default_pool_size": "10"}, start=False)
    b = admin_pooler(pooler, settings={"so_reuseport": "1", "peer_id": "2",
                                       "default_pool_size": "10", "listen_port": str(a.port)},
                     start=False)
    b.port = a.port
    peers = (f"[peers]\n1 = host={a.sockdir} port={a.port}\n"
             f"2 = host={b.sockdir} port={a.port}\n")
    for p in (a, b):
        p.write_config(extra_ini=peers)
    a.start()
    b.start(wait=False)
    b.wait_log(r"started, process", timeout=10)
    return a, b


def own_console(p):
    """The console of this very process: its own unix socket, not the shared port."""
    return psycopg.connect(host=str(p.sockdir), port=p.port, dbname="pgbouncer",
                           user="adminuser", autocommit=True)


def test_cancel_requests_reach_the_process_that_holds_the_query(pooler, pg):
    a, b = peered_pair(pooler)
    # 16 connections: the kernel spreads them by source port, so all on one
    # process happens 2 in 65536 runs (with 8 it was 1 in 128).
    conns = [psycopg.connect(**a.conninfo(), autocommit=True) for _ in range(16)]
    try:
        canceled = []

        def sleep_and_expect_cancel(c):
            try:
                c.execute("select pg_sleep(20)")
                canceled.append(False)
            except psycopg.errors.QueryCanceled:
                canceled.append(True)

        threads = [threading.Thread(target=sleep_and_expect_cancel, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        time.sleep(0.5)
        started = time.monotonic()
        for c in conns:
            c.cancel()      # a new TCP connection to the shared port: either process
        for t in threads:
            t.join(10)
        assert canceled == [True] * len(conns)
        assert time.monotonic() - started < 5
        # Both processes served clients, and at least one request had to
        # travel to the other (16 cancels over two processes).
        with own_console(a) as ca:
            a_clients = [r for r in show(ca, "CLIENTS") if r["database"] == "testdb"]
        assert 0 < len(a_clients) < len(conns), "so_reuseport did not spread the clients"
        assert "forwarding cancel request to peer" in a.log() + b.log()
    finally:
        for c in conns:
            c.close()


def test_show_peers_and_peer_pools(pooler):
    a, b = peered_pair(pooler)
    with own_console(a) as c:
        peers = show(c, "PEERS")
        assert [(r["peer_id"], r["host"], r["pool_size"]) for r in peers] == \
            [("1", str(a.sockdir), "10"), ("2", str(b.sockdir), "10")]
        pools = show(c, "PEER_POOLS")
        assert [r["peer_id"] for r in pools] == ["1", "2"]
        assert all(r["cl_waiting_cancel_req"] == "0" for r in pools)


def test_peer_id_is_kept_across_reload_and_keys_still_cancel(pooler):
    a, b = peered_pair(pooler)
    with psycopg.connect(**a.conninfo(), autocommit=True) as c:
        a.write_config(settings={"peer_id": "7"})
        a.reload()
        b.write_config(settings={"peer_id": "9"})
        b.reload()
        t = threading.Timer(0.5, c.cancel)
        t.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(10)")
        t.join()
    with own_console(a) as c:
        assert one(show(c, "CONFIG"), key="peer_id")["value"] == "1"


def test_bad_peers_section_is_refused(pooler):
    p = admin_pooler(pooler, start=False)
    p.write_config(extra_ini="[peers]\n1 = port=6432\n")
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "a peer needs host=" in p.log()
    p.expect_fatal("a peer needs host")
