"""Real clients through the pooler: psql, pgbench, asyncpg."""

import asyncio
import os
import re
import subprocess

import asyncpg
import pytest
import expected as X


def run_client(args, password=None, timeout=120):
    env = dict(os.environ, PGCONNECT_TIMEOUT="5", PGSSLMODE="disable")
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = password
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def psql(host, port, sql, user="trustuser", db="testdb", password=None):
    return run_client(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(host),
                       "-p", str(port), "-U", user, "-d", db, "-c", sql], password)


def pgbench_ok(out, expected):
    """Asserts pgbench processed all transactions without a failure."""
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m, out
    assert int(m.group(1)) == int(m.group(2)) == expected, out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is None or int(failed.group(1)) == 0, out


def test_psql_tcp_and_unix_socket(pooler):
    p = pooler(settings={"auth_type": "scram-sha-256"})
    rc, out, err = psql(p.host, p.port, "select 'via tcp'", user="appuser", password="apppw")
    assert (rc, out.strip()) == (0, "via tcp"), err
    rc, out, err = psql(p.sockdir, p.port, "select 'via unix socket'", user="appuser",
                        password="apppw")
    assert (rc, out.strip()) == (0, "via unix socket"), err
    rc, out, err = psql(p.host, p.port, "select 1", user="appuser", password="bad")
    assert rc != 0 and X.SASL_FAILED in err


def test_psql_script_with_transaction(pooler, table):
    p = pooler(settings={"pool_mode": "transaction"})
    sql = (f"begin; insert into {table} values (1), (2); commit; "
           f"begin; insert into {table} values (3); rollback; "
           f"select string_agg(v::text, ',' order by v) from {table}")
    rc, out, err = psql(p.host, p.port, sql)
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "1,2"
    rc, out, err = psql(p.host, p.port, "select 1/0")
    assert rc != 0 and "division by zero" in err


def test_pgbench_through_pooler(pooler, pg):
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "4",
                         "max_client_conn": "50"},
               databases={"benchdb2": f"host=127.0.0.1 port={pg.port} dbname=benchdb2"})
    base = ["pgbench", "-h", p.host, "-p", str(p.port), "-U", "trustuser"]
    rc, out, err = run_client(base + ["-i", "-q", "-s", "1", "benchdb2"])
    assert rc == 0, err
    assert pg.sql("select count(*) from pgbench_accounts", dbname="benchdb2")[0][0] == 100000
    # Default TPC-B, 4 clients, 50 transactions each.
    rc, out, err = run_client(base + ["-n", "-c", "4", "-t", "50", "benchdb2"])
    assert rc == 0, err
    pgbench_ok(out, 200)
    assert pg.sql("select count(*) from pgbench_history", dbname="benchdb2")[0][0] == 200
    # Select-only.
    rc, out, err = run_client(base + ["-n", "-S", "-c", "4", "-t", "100", "benchdb2"])
    assert rc == 0, err
    pgbench_ok(out, 400)
    # A new connection per transaction.
    rc, out, err = run_client(base + ["-n", "-C", "-c", "4", "-t", "25", "benchdb2"])
    assert rc == 0, err
    pgbench_ok(out, 100)
    assert pg.sql("select count(*) from pgbench_history", dbname="benchdb2")[0][0] == 300


def test_asyncpg_session_mode(pooler, table):
    p = pooler(settings={"pool_mode": "session"})

    async def run():
        c = await asyncpg.connect(host=p.host, port=p.port, user="appuser", password="apppw",
                                  database="testdb", ssl=False)
        try:
            assert await c.fetchval("select $1::int + 1", 41) == 42
            rows = await c.fetch("select g, g * 2 as d from generate_series(1, 3) g")
            assert [(r["g"], r["d"]) for r in rows] == [(1, 2), (2, 4), (3, 6)]
            await c.executemany(f"insert into {table} values ($1)", [(i,) for i in range(50)])
            async with c.transaction():
                await c.execute(f"insert into {table} values (1000)")
            try:
                async with c.transaction():
                    await c.execute(f"insert into {table} values (2000)")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            # Named prepared statements are fine in session mode.
            stmt = await c.prepare(f"select count(*) from {table} where v < $1")
            assert await stmt.fetchval(10) == 10
            return await c.fetchval(f"select count(*) from {table}")
        finally:
            await c.close()

    assert asyncio.run(asyncio.wait_for(run(), 30)) == 51


def test_asyncpg_transaction_mode(pooler, table):
    # Prepared statements in transaction mode are a later milestone:
    # statement_cache_size=0 makes asyncpg use unnamed statements.
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "2"})

    async def worker(i):
        c = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                  database="testdb", ssl=False, statement_cache_size=0)
        try:
            for j in range(10):
                async with c.transaction():
                    await c.execute(f"insert into {table} values ($1)", i * 100 + j)
                    assert await c.fetchval("select $1::text", f"w{i}") == f"w{i}"
            await c.executemany(f"insert into {table} values ($1)", [(-1,), (-2,)])
        finally:
            await c.close()

    async def run():
        await asyncio.gather(*(worker(i) for i in range(6)))
        c = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                  database="testdb", ssl=False, statement_cache_size=0)
        try:
            return await c.fetchval(f"select count(*) from {table}")
        finally:
            await c.close()

    assert asyncio.run(asyncio.wait_for(run(), 40)) == 6 * 12


def test_psycopg_sslmode_prefer_gets_plain_connection(pooler):
    # libpq's default sslmode=prefer sends an SSLRequest first; the pooler
    # answers 'N' (no TLS in this milestone) and the login goes on in clear.
    p = pooler()
    with p.connect(sslmode="prefer") as c:
        assert c.execute("select 1").fetchone()[0] == 1
        assert c.pgconn.ssl_in_use is False
