"""Cancel requests travel through the pooler to the right backend."""

import asyncio
import os
import signal
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest

from helpers import wait_for


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_with_psycopg(pooler, pg, conns, mode):
    p = pooler(settings={"pool_mode": mode})
    c = p.connect()
    bystander = p.connect()
    conns += [c, bystander]
    timer = threading.Timer(0.5, c.cancel)
    timer.daemon = True
    timer.start()
    start = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled) as ei:
        c.execute("select pg_sleep(10)")
    elapsed = time.monotonic() - start
    timer.join(5)
    assert ei.value.sqlstate == "57014"
    assert elapsed < 3, f"cancel took {elapsed:.1f}s"
    # The same connection is usable afterwards, and so is the other client.
    assert c.execute("select 1").fetchone()[0] == 1
    assert bystander.execute("select 2").fetchone()[0] == 2
    # No backend is still sleeping.
    wait_for(lambda: not [r for r in pg.backends(usename="trustuser") if r[3] == "active"],
             3, what="no active backend")


def test_cancel_with_asyncpg_timeout(pooler, pg):
    p = pooler(settings={"pool_mode": "session"})

    async def run():
        c = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                  database="testdb", ssl=False)
        try:
            start = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await c.fetch("select pg_sleep(10)", timeout=0.5)
            assert time.monotonic() - start < 3
            # asyncpg cancels the query on timeout; the connection stays usable.
            assert await c.fetchval("select 40 + 2") == 42
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_cancel_with_psql_sigint(pooler):
    p = pooler()
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    proc = subprocess.Popen(["psql", "-X", "-h", p.host, "-p", str(p.port), "-U", "trustuser",
                             "-d", "testdb", "-c", "select pg_sleep(10)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)  # psql sends a CancelRequest
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert time.monotonic() - start < 3
    assert "canceling statement due to user request" in err
    p.assert_serves()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_of_a_query_still_waiting_for_a_server(pooler, conns, mode):
    # The only server is busy; the second client's query waits in the pooler.
    # Its cancel is answered there, as PostgreSQL would answer it, and the
    # client goes on once a server is free.
    p = pooler(settings={"pool_mode": mode, "default_pool_size": "1"})
    holder = p.connect()
    conns.append(holder)
    holder.execute("begin")
    holder.execute("select 1")
    waiter = p.connect()
    conns.append(waiter)
    timer = threading.Timer(0.5, waiter.cancel)
    timer.start()
    start = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled, match="canceling statement"):
        waiter.execute("select 'never ran'")
    assert time.monotonic() - start < 3
    timer.join(5)
    p.wait_log(r"still waiting for a server: dropped")
    holder.execute("commit")
    holder.close()
    assert waiter.execute("select 'after'").fetchone()[0] == "after"
