"""
Protocol-level prepared statements under transaction pooling
(max_prepared_statements): real drivers, pgbench -M prepared, and the
protocol corner cases checked message by message.
"""

import asyncio
import re
import struct
import subprocess
import time

import asyncpg
import psycopg
import pytest

from conftest import IS_PGBOUNCER
from helpers import RawConn, message
from test_admin import admin_pooler, console, show

TX = {"pool_mode": "transaction", "default_pool_size": "5"}


def cstr(s):
    return s.encode() + b"\0"


def parse(name, sql, types=()):
    return message(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
                   b"".join(struct.pack("!I", t) for t in types))


def bind(stmt, params=(), portal=""):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        v = str(p).encode()
        body += struct.pack("!I", len(v)) + v
    return message(b"B", body + struct.pack("!H", 0))


def execute(portal=""):
    return message(b"E", cstr(portal) + struct.pack("!I", 0))


def describe_stmt(name):
    return message(b"D", b"S" + cstr(name))


def close_stmt(name):
    return message(b"C", b"S" + cstr(name))


def sync():
    return message(b"S")


def responses(conn, until_ready=1):
    """Message types up to the until_ready-th ReadyForQuery, with DataRow
    values and error SQLSTATEs spelled out: ['1', '2', 'D:7', 'C', 'Z']."""
    out = []
    while until_ready:
        mtype, payload = conn.read_msg()
        t = mtype.decode()
        if t == "D":
            (n,) = struct.unpack("!H", payload[:2])
            (vlen,) = struct.unpack("!i", payload[2:6])
            t += ":" + payload[6:6 + vlen].decode()
        elif t == "E":
            t += ":" + re.search(rb"C([0-9A-Z]{5})\0", payload).group(1).decode()
        elif t in ("S", "N"):
            continue
        out.append(t)
        if t == "Z":
            until_ready -= 1
    return out


def raw(p):
    c = RawConn(p.host, p.port)
    c.startup("trustuser", "testdb")
    return c


pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="checks pgsieve's internals too")


# ------------------------------------------------------------ protocol cases

def test_statement_survives_across_server_connections(pooler, pg):
    p = pooler(settings=dict(TX, default_pool_size="2"))
    a, b = raw(p), raw(p)
    a.send(parse("s1", "select $1::int * 10", [23]) + sync())
    assert responses(a) == ["1", "Z"]
    # Another client takes whichever server; a's statement is prepared on
    # the server it gets next, whatever that is.
    b.send(parse("s1", "select 'b'") + bind("s1") + execute() + sync())
    assert responses(b) == ["1", "2", "D:b", "C", "Z"]
    for i in range(6):
        a.send(bind("s1", [i]) + execute() + sync())
        assert responses(a) == ["2", "D:%d" % (i * 10), "C", "Z"]
    pg.sql("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'trustuser'")
    time.sleep(0.3)
    # The servers are gone: the next use prepares it again, unseen.
    for i in range(3):
        a.send(bind("s1", [i]) + execute() + sync())
        got = responses(a)
        if got[0] == "E:57P01":   # the terminated server's own goodbye, once
            got = responses(a)
        assert got == ["2", "D:%d" % (i * 10), "C", "Z"]


def test_cached_statement_answers_in_pipeline_order(pooler):
    p = pooler(settings=dict(TX, default_pool_size="1"))
    a, b = raw(p), raw(p)
    a.send(parse("x", "select 7") + sync())
    assert responses(a) == ["1", "Z"]
    # b's Parse of the same text is answered by the pooler (the server has
    # it), but only after the slow statement before it has finished.
    b.send(parse("", "select 1 from pg_sleep(0.3)") + bind("") + execute() +
           parse("y", "select 7") + bind("y") + execute() + sync())
    assert responses(b) == ["1", "2", "D:1", "C", "1", "2", "D:7", "C", "Z"]


def test_known_statement_is_prepared_without_a_server(pooler):
    # The only server is held by a client in a transaction; another client
    # preparing a statement the pooler already knows gets its answer at
    # once (pgbench -M prepared prepares synchronously, one thread for
    # many connections: waiting here would deadlock it).
    p = pooler(settings=dict(TX, default_pool_size="1"))
    holder, other = raw(p), raw(p)
    holder.send(parse("k", "select 42") + sync())
    assert responses(holder) == ["1", "Z"]
    holder.send(message(b"Q", cstr("begin")))
    assert responses(holder) == ["C", "Z"]
    other.send(parse("mine", "select 42") + sync())
    assert responses(other) == ["1", "Z"]
    other.send(close_stmt("mine") + sync())
    assert responses(other) == ["3", "Z"]
    # A statement nobody prepared yet needs a server for its errors: it waits.
    other.send(parse("new", "select 43") + sync())
    with pytest.raises(Exception):
        other.read_msg(timeout=0.5)
    holder.send(message(b"Q", cstr("commit")))
    assert responses(holder) == ["C", "Z"]
    assert responses(other) == ["1", "Z"]


def test_duplicate_name_is_an_error_and_the_pipeline_skips_to_sync(pooler):
    p = pooler(settings=TX)
    c = raw(p)
    c.send(parse("a", "select 1") + bind("a") + execute() +
           parse("a", "select 2") + bind("a") + execute() + sync())
    assert responses(c) == ["1", "2", "D:1", "C", "E:42P05", "Z"]
    c.send(bind("a") + execute() + sync())
    assert responses(c) == ["2", "D:1", "C", "Z"]


def test_failed_parse_does_not_keep_the_name(pooler):
    p = pooler(settings=TX)
    c = raw(p)
    c.send(parse("b", "select no_such_column") + bind("b") + execute() +
           parse("b2", "select 'skipped'") + sync())
    assert responses(c) == ["E:42703", "Z"]
    # Neither b nor the skipped b2 exists: both names are free again.
    c.send(parse("b", "select 3") + parse("b2", "select 4") + bind("b") + execute() +
           bind("b2") + execute() + sync())
    assert responses(c) == ["1", "1", "2", "D:3", "C", "2", "D:4", "C", "Z"]


def test_close_then_reuse_name_and_describe(pooler):
    p = pooler(settings=TX)
    c = raw(p)
    c.send(parse("c", "select $1::text as v", [25]) + describe_stmt("c") + sync())
    assert responses(c) == ["1", "t", "T", "Z"]
    c.send(close_stmt("c") + sync())
    assert responses(c) == ["3", "Z"]
    c.send(bind("c") + sync())
    assert responses(c) == ["E:26000", "Z"]          # gone, as on PostgreSQL
    c.send(parse("c", "select 5") + bind("c") + execute() + sync())
    assert responses(c) == ["1", "2", "D:5", "C", "Z"]


def test_lru_keeps_at_most_max_prepared_statements_per_server(pooler):
    p = admin_pooler(pooler, settings=dict(TX, default_pool_size="1",
                                           max_prepared_statements="2"))
    c = raw(p)
    for i in range(5):
        c.send(parse(f"q{i}", f"select {i}") + sync())
        assert responses(c) == ["1", "Z"]
    for rnd in range(3):
        for i in (4, 0, 2, 1, 3):
            c.send(bind(f"q{i}") + execute() + sync())
            assert responses(c) == ["2", f"D:{i}", "C", "Z"]
    with console(p) as adm:
        servers = show(adm, "SERVERS")
        assert [int(s["prepared_statements"]) for s in servers] == [2]
        clients = [r for r in show(adm, "CLIENTS") if r["database"] == "testdb"]
        assert [int(r["prepared_statements"]) for r in clients] == [5]


def test_discard_all_forgets_statements(pooler):
    p = pooler(settings=TX)
    c = raw(p)
    c.send(parse("d", "select 1") + sync())
    assert responses(c) == ["1", "Z"]
    c.send(message(b"Q", cstr("DISCARD ALL")))
    assert responses(c) == ["C", "Z"]
    c.send(parse("d", "select 2") + bind("d") + execute() + sync())
    assert responses(c) == ["1", "2", "D:2", "C", "Z"]


def test_shared_statement_is_prepared_once_per_server(pooler):
    p = admin_pooler(pooler, settings=dict(TX, default_pool_size="1"))
    conns = [raw(p) for _ in range(4)]
    for i, c in enumerate(conns):
        c.send(parse(f"mine{i}", "select 'same text'") + bind(f"mine{i}") + execute() + sync())
        assert responses(c) == ["1", "2", "D:same text", "C", "Z"]
    with console(p) as adm:
        st = [r for r in show(adm, "STATS") if r["database"] == "testdb"][0]
        assert int(st["total_client_parse_count"]) == 4
        assert int(st["total_server_parse_count"]) == 1
        assert [int(s["prepared_statements"]) for s in show(adm, "SERVERS")] == [1]


# ------------------------------------------------------------ real clients

@pytest.mark.timeout(120)
def test_asyncpg_50_tasks_on_a_pool_of_5(pooler, table):
    p = pooler(settings=TX)

    async def worker(n):
        conn = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                     database="testdb", ssl=False)
        try:
            stmt = await conn.prepare(f"select $1::int + {n % 7}")
            for i in range(20):
                assert await stmt.fetchval(i) == i + n % 7
                assert await conn.fetchval("select $1::text || $2::text", "a", str(i)) == f"a{i}"
                if i % 5 == 0:
                    async with conn.transaction():
                        await conn.execute(f"insert into {table} values ($1)", n)
                        assert await conn.fetchval(
                            f"select count(*) from {table} where v = $1", n) >= 1
                rows = await conn.fetch("select g from generate_series(1, $1::int) g", i % 4 + 1)
                assert [r["g"] for r in rows] == list(range(1, i % 4 + 2))
        finally:
            await conn.close()

    async def main():
        results = await asyncio.gather(*(worker(n) for n in range(50)), return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    errors = asyncio.run(main())
    assert errors == [], errors[:3]
    with psycopg.connect(**p.conninfo(), autocommit=True) as c:
        assert c.execute(f"select count(*) from {table}").fetchone()[0] == 50 * 4


def test_psycopg_prepares_everything_in_transaction_mode(pooler):
    p = pooler(settings=dict(TX, default_pool_size="2"))
    conns = [psycopg.connect(**p.conninfo(), autocommit=True, prepare_threshold=0)
             for _ in range(6)]
    try:
        for i in range(30):
            c = conns[i % len(conns)]
            assert c.execute("select %s::int * 2", [i]).fetchone()[0] == i * 2
            assert c.execute("select %s::text", [str(i)], prepare=True).fetchone()[0] == str(i)
    finally:
        for c in conns:
            c.close()


def pgbench(p, mode, seconds=4, clients=8):
    out = subprocess.run(
        ["pgbench", "-n", "-M", mode, "-T", str(seconds), "-c", str(clients), "-j", "2",
         "-h", p.host, "-p", str(p.port), "-U", "trustuser", "benchdb"],
        capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "aborted" not in text, text
    failed = re.search(r"number of failed transactions: (\d+)", text)
    assert failed is None or int(failed.group(1)) == 0, text
    return int(re.search(r"number of transactions actually processed: (\d+)", text).group(1))


@pytest.mark.parametrize("mode", ["prepared", "extended"])
def test_pgbench_in_transaction_mode(pooler, pg, bench, mode):
    p = admin_pooler(pooler, settings=dict(TX, default_pool_size="2"),
                     databases={bench: f"host=127.0.0.1 port={pg.port} dbname={bench}"})
    done = pgbench(p, mode)
    assert done > 100
    with console(p) as adm:
        st = [r for r in show(adm, "STATS") if r["database"] == bench][0]
        if mode == "prepared":
            # Eight clients prepare the script's statements once each; the
            # two servers need them once each.
            assert int(st["total_server_parse_count"]) <= 2 * 7
            assert int(st["total_client_parse_count"]) >= 8 * 3
