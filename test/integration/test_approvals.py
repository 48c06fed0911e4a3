"""
Human approvals: a policy's sieve.approve() holds the statement (and what
the client pipelined behind it, up to Sync) until an approver answers in
the admin console. Approved, it runs and the client gets its result;
denied, 42501; not answered in approval_timeout, 57014. A held client
outside a transaction holds no server connection. APPROVE id FOR interval
is a just-in-time grant of that statement shape to that principal.
"""

import asyncio
import concurrent.futures
import http.server
import json
import re
import signal
import struct
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest

from conftest import IS_PGBOUNCER, POOLER_BIN, ROOT, default_auth_users, pg_bin
from helpers import (PgError, RawConn, errors_in, message, parse_error_fields, query_message,
                     wait_for)

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's approvals")

PLUGIN = ROOT / "plugins" / "require_approval.lua"
ADMIN = "plainuser"      # admin_users
APPROVER = "appuser"     # approval_users
STATS = "md5user"        # stats_users
CLIENT = "trustuser"     # whose statements are held


def approvals_pooler(pooler, tmp_path, rules=None, settings=None, databases=None, **kw):
    """A pooler whose require_approval.lua holds DELETE (by default) for approval."""
    rules = rules or '{ kinds = { "delete" }, reason = "deletes need a person" }'
    opts = tmp_path / "approval.options.lua"
    opts.write_text(f"return {{ rules = {{ {rules} }} }}\n")
    s = {"policy_scripts": f"{PLUGIN}:{opts}", "admin_users": ADMIN,
         "approval_users": APPROVER, "stats_users": STATS, "pool_mode": "transaction",
         "audit_file": str(tmp_path / "audit.jsonl"), "audit_query_text": "full"}
    s.update(settings or {})
    return pooler(settings=s, databases=databases, **kw)


def console(p, user=ADMIN):
    return p.connect(dbname="pgbouncer", user=user)


def run(conn, sql):
    """One console command over the simple protocol: (columns, rows) or (None, [])."""
    cur = psycopg.ClientCursor(conn)
    cur.execute(sql)
    if cur.description is None:
        return None, []
    cols = [d.name for d in cur.description]
    return cols, [list(r) for r in cur.fetchall()]


def show(conn, what):
    cols, rows = run(conn, f"SHOW {what}")
    return [dict(zip(cols, r)) for r in rows]


def pending(adm, n=1, timeout=10):
    """Waits until n statements are held; returns SHOW APPROVALS's rows."""
    rows = []

    def enough():
        nonlocal rows
        rows = show(adm, "APPROVALS")
        return len(rows) >= n
    wait_for(enough, timeout, what=f"{n} held statements in SHOW APPROVALS")
    return rows


def pool_row(adm, db="testdb", user=CLIENT):
    rows = [r for r in show(adm, "POOLS") if r["database"] == db and r["user"] == user]
    return rows[0] if rows else None


def client_conn(p, notices=None, user=CLIENT, **kw):
    c = p.connect(user=user, **kw)
    if notices is not None:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
    return c


def audit_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def wait_audit(tmp_path, event, n=1, timeout=5):
    got = []

    def enough():
        nonlocal got
        got = [r for r in audit_records(tmp_path) if r.get("event") == event]
        return len(got) >= n
    wait_for(enough, timeout, what=f"{n} audit records {event}")
    return got


@pytest.fixture
def pool_exec():
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        yield ex


# ------------------------------------------------------------------ the basics

def test_held_delete_runs_once_approved(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    notices = []
    c = client_conn(p, notices)
    conns.append(c)
    c.execute(f"insert into {table} values (1), (2), (3)")
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table} where v <= 2").rowcount)
    [row] = pending(adm)
    assert not fut.done()
    assert row["database"] == "testdb" and row["user"] == CLIENT
    assert row["statement"] == f"delete from {table} where v <= 2"
    assert row["reason"] == "deletes need a person"
    assert row["client_addr"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{16}", row["fingerprint"])
    assert row["identity"] is None
    assert int(row["waiting_seconds"]) >= 0 and row["requested_at"].endswith("UTC")
    # The client was told at once why it waits.
    wait_for(lambda: notices, 5, what="the NoticeResponse")
    assert f"held for approval {row['id']}" in notices[0]
    assert "deletes need a person" in notices[0]
    # Nothing ran yet.
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 3
    time.sleep(0.3)
    assert not fut.done()
    run(adm, f"APPROVE {row['id']}")
    assert fut.result(timeout=10) == 2
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1
    assert show(adm, "APPROVALS") == []
    # The session goes on, and the next DELETE asks again.
    assert c.execute("select 1").fetchone()[0] == 1
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table}").rowcount)
    [row2] = pending(adm)
    assert int(row2["id"]) > int(row["id"])
    run(adm, f"approve {row2['id']};")
    assert fut.result(timeout=10) == 1
    # Two statements asked a person (the approved runs are not asked again).
    assert show(adm, "POLICIES")[0]["approvals"] == 2


def test_denied_statement_gets_42501_with_the_reason(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    c.execute(f"insert into {table} values (1)")
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    run(adm, f"DENY {row['id']} not during business hours")
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        fut.result(timeout=10)
    msg = str(e.value)
    assert "not during business hours" in msg and f"approval {row['id']}" in msg
    assert ADMIN in msg
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1
    assert c.execute("select 2").fetchone()[0] == 2     # the session goes on
    # A quoted reason, and DENY without one.
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    run(adm, f"DENY {row['id']} 'it''s Friday'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="it's Friday"):
        fut.result(timeout=10)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    run(adm, f"DENY {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="denied by"):
        fut.result(timeout=10)
    # Answering twice, or an id that never was: a clean error.
    with pytest.raises(psycopg.errors.UndefinedObject, match="no statement waits"):
        run(adm, f"APPROVE {row['id']}")
    with pytest.raises(psycopg.errors.SyntaxError):
        run(adm, "APPROVE banana")
    with pytest.raises(psycopg.errors.SyntaxError):
        run(adm, "APPROVE 1 FOREVER")
    with pytest.raises(psycopg.Error, match="interval|time"):
        run(adm, "APPROVE 1 FOR soon")
    with pytest.raises(psycopg.Error, match="at most 30 days"):
        run(adm, "APPROVE 1 FOR 31 days")
    with pytest.raises(psycopg.Error, match="at most 30 days|too large|invalid"):
        run(adm, "APPROVE 1 FOR 99999999999999999999d")


def test_timeout_gives_57014_with_reason_and_id(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path, settings={"approval_timeout": "1"})
    c = client_conn(p)
    conns.append(c)
    c.execute(f"insert into {table} values (1)")
    start = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:
        c.execute(f"delete from {table}")
    took = time.monotonic() - start
    assert 0.9 < took < 5
    assert re.search(r"approval \d+", str(e.value)) and "deletes need a person" in str(e.value)
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1
    assert c.execute("select 3").fetchone()[0] == 3
    adm = console(p)
    conns.append(adm)
    assert show(adm, "APPROVALS") == []
    [rec] = wait_audit(tmp_path, "approval_timeout")
    assert rec["reason"] == "deletes need a person" and rec["seconds"] >= 0.9


def test_client_disconnect_while_held_is_cleaned_up(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path)
    adm = console(p)
    conns.append(adm)
    raw = RawConn(p.host, p.port)
    raw.startup(CLIENT, "testdb")
    raw.send(query_message(f"delete from {table}"))
    t, payload = raw.read_msg()
    assert t == b"N" and "held for approval" in parse_error_fields(payload)["M"]
    [row] = pending(adm)
    raw.abort()
    wait_for(lambda: show(adm, "APPROVALS") == [], 5, what="the approval to go")
    with pytest.raises(psycopg.errors.UndefinedObject):
        run(adm, f"APPROVE {row['id']}")
    [rec] = wait_audit(tmp_path, "approval_withdrawn")
    assert rec["approval"] == int(row["id"]) and rec["reason"] == "client disconnected"
    p.assert_serves()


def test_cancel_request_while_held(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    pending(adm)
    c.cancel()
    with pytest.raises(psycopg.errors.QueryCanceled):
        fut.result(timeout=10)
    assert show(adm, "APPROVALS") == []
    assert c.execute("select 4").fetchone()[0] == 4


def test_drivers_with_prepared_statements(pooler, tmp_path, table, conns):
    """asyncpg prepares named statements (Parse, Describe, Sync, then Bind,
    Execute): the Parse is what is held; the rest follows once approved."""
    p = approvals_pooler(pooler, tmp_path)
    p.pg.sql(f"insert into {table} select generate_series(1, 5)")
    adm = console(p)
    conns.append(adm)

    async def answer(verb):
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, pending, adm)
        await loop.run_in_executor(None, run, adm, f"{verb} {rows[0]['id']}")

    async def go():
        conn = await asyncpg.connect(host=p.host, port=p.port, user=CLIENT, database="testdb",
                                     ssl=False)
        try:
            task = asyncio.ensure_future(conn.execute(f"delete from {table} where v = $1", 1))
            await answer("APPROVE")
            assert await task == "DELETE 1"
            task = asyncio.ensure_future(conn.fetchval(
                f"with d as (delete from {table} where v < $1 returning 1) "
                f"select count(*) from d", 4))
            await answer("DENY")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await task
            assert await conn.fetchval("select $1::int + 1", 41) == 42
        finally:
            await conn.close()
    asyncio.run(go())
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 4


def test_observe_mode_only_logs_the_hold(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path, settings={"policy_mode": "observe"})
    c = client_conn(p)
    conns.append(c)
    c.execute(f"insert into {table} values (1)")
    assert c.execute(f"delete from {table}").rowcount == 1
    p.wait_log(r"policy \(observe\): would hold for approval: deletes need a person")
    with console(p) as adm:
        assert show(adm, "APPROVALS") == []


# ------------------------------------------------------------------ grants

def test_jit_grant_lets_the_same_shape_through_until_it_expires(pooler, tmp_path, table,
                                                                pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    notices = []
    c = client_conn(p, notices)
    conns.append(c)
    c.execute(f"insert into {table} select generate_series(1, 10)")
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table} where v = 1").rowcount)
    [row] = pending(adm)
    run(adm, f"APPROVE {row['id']} FOR 3 seconds")
    assert fut.result(timeout=10) == 1
    [g] = show(adm, "GRANTS")
    assert g["principal"] == CLIENT and g["database"] == "testdb"
    assert g["fingerprint"] == row["fingerprint"] and g["granted_by"] == ADMIN
    assert g["approval"] == row["id"] and g["uses"] == 0
    # Same shape, other constants: runs at once, no notice, no approval.
    n = len(notices)
    assert c.execute(f"delete from {table} where v = 2").rowcount == 1
    assert c.execute(f"delete from {table} where v = 3").rowcount == 1
    assert show(adm, "APPROVALS") == []
    assert len(notices) == n
    [g] = show(adm, "GRANTS")
    assert g["uses"] == 2
    # Another shape is not covered.
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table} where v > 8").rowcount)
    [other] = pending(adm)
    run(adm, f"DENY {other['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    # Another user is not covered either.
    c2 = client_conn(p, user="scramuser", password="scrampw")
    conns.append(c2)
    fut = pool_exec.submit(lambda: c2.execute(f"delete from {table} where v = 4").rowcount)
    [other] = pending(adm)
    assert other["user"] == "scramuser"
    run(adm, f"DENY {other['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    # Expired: approval again.
    time.sleep(3.2)
    assert show(adm, "GRANTS") == []
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table} where v = 5").rowcount)
    [again] = pending(adm)
    run(adm, f"APPROVE {again['id']}")
    assert fut.result(timeout=10) == 1
    assert wait_audit(tmp_path, "grant_used")[0]["grant"] == int(g["id"])
    wait_audit(tmp_path, "grant_created")


def test_revoke_grant(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 1")
    [row] = pending(adm)
    run(adm, f"APPROVE {row['id']} FOR 10min")
    fut.result(timeout=10)
    [g] = show(adm, "GRANTS")
    c.execute(f"delete from {table} where v = 2")       # covered
    run(adm, f"REVOKE GRANT {g['id']}")
    assert show(adm, "GRANTS") == []
    with pytest.raises(psycopg.errors.UndefinedObject):
        run(adm, f"REVOKE GRANT {g['id']}")
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 3")
    [row] = pending(adm)                                   # held again
    run(adm, f"DENY {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    [rec] = wait_audit(tmp_path, "grant_revoked")
    assert rec["approver"] == ADMIN and rec["grant"] == int(g["id"])


# ------------------------------------------------------------------ protocol

def parse_msg(sql, name=b""):
    return message(b"P", name + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind_msg(stmt=b""):
    return message(b"B", b"\0" + stmt + b"\0" + struct.pack("!HHH", 0, 0, 0))


def execute_msg():
    return message(b"E", b"\0" + struct.pack("!I", 0))


def read_until_ready(raw, timeout=10):
    msgs = []
    while True:
        t, payload = raw.read_msg(timeout)
        msgs.append((t, payload))
        if t == b"Z":
            return msgs


def test_pipelined_extended_batch_is_held_as_one_unit(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path)
    p.pg.sql(f"insert into {table} values (1), (2)")
    adm = console(p)
    conns.append(adm)
    raw = RawConn(p.host, p.port)
    raw.startup(CLIENT, "testdb")
    batch = (parse_msg(f"insert into {table} values (10)") + bind_msg() + execute_msg()
             + parse_msg(f"delete from {table} where v = 1") + bind_msg() + execute_msg()
             + parse_msg(f"select count(*) from {table}") + bind_msg() + execute_msg()
             + message(b"S"))
    raw.send(batch)
    # What came before the held Parse went ahead; the rest waits, together.
    [row] = pending(adm)
    assert row["statement"] == f"delete from {table} where v = 1"
    got = []
    with pytest.raises(Exception):
        while True:
            got.append(raw.read_msg(timeout=0.5))
    types = [t for t, _ in got]
    assert b"N" in types and b"Z" not in types and b"D" not in types
    assert pool_row(adm)["sv_active"] == 1     # mid-pipeline: the server stays
    run(adm, f"APPROVE {row['id']}")
    msgs = read_until_ready(raw)
    types = [t for t, _ in msgs]
    assert b"E" not in types
    tags = [pl.rstrip(b"\0").decode() for t, pl in msgs if t == b"C"]
    assert tags == ["INSERT 0 1", "DELETE 1", "SELECT 1"]
    [count] = [pl for t, pl in msgs if t == b"D"]
    assert count.endswith(b"2")                 # 1, 2, 10 minus 1
    assert msgs[-1] == (b"Z", b"I")
    # Denied: the error in its place, the rest skipped up to Sync.
    raw.send(parse_msg(f"delete from {table}") + bind_msg() + execute_msg()
             + parse_msg("select 42") + bind_msg() + execute_msg() + message(b"S"))
    [row] = pending(adm)
    run(adm, f"DENY {row['id']} no")
    msgs = read_until_ready(raw)
    errs = errors_in(msgs)
    assert [e["C"] for e in errs] == ["42501"]
    assert not [t for t, _ in msgs if t in (b"1", b"2", b"C", b"D")]
    assert msgs[-1] == (b"Z", b"I")
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 2
    # The connection is still in step.
    rows, tags, errs, status = raw.simple_query("select 7")
    assert rows == [["7"]] and not errs and status == b"I"
    raw.close()


def test_simple_query_with_several_statements_is_held_whole(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path)
    p.pg.sql(f"insert into {table} values (1), (2)")
    adm = console(p)
    conns.append(adm)
    raw = RawConn(p.host, p.port)
    raw.startup(CLIENT, "testdb")
    raw.send(query_message(f"select 5; delete from {table} where v = 2; select 6"))
    [row] = pending(adm)
    assert raw.read_msg()[0] == b"N"
    with pytest.raises(OSError):
        raw.read_msg(timeout=0.5)   # nothing else while held
    run(adm, f"APPROVE {row['id']}")
    msgs = read_until_ready(raw)
    tags = [pl.rstrip(b"\0").decode() for t, pl in msgs if t == b"C"]
    assert tags == ["SELECT 1", "DELETE 1", "SELECT 1"]
    # Timed out / denied: ErrorResponse then ReadyForQuery, nothing of it ran.
    raw.send(query_message(f"select 5; delete from {table}"))
    [row] = pending(adm)
    run(adm, f"DENY {row['id']}")
    msgs = read_until_ready(raw)
    assert [t for t, _ in msgs if t != b"N"] == [b"E", b"Z"]
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1
    raw.close()


def test_outside_a_transaction_the_held_client_has_no_server(pooler, tmp_path, table,
                                                             pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    c.execute(f"insert into {table} values (1)")
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table}").rowcount)
    pending(adm)
    assert pool_row(adm)["sv_active"] == 0
    assert not [s for s in show(adm, "SERVERS") if s["state"] == "active"]
    # The idle server serves others meanwhile.
    with client_conn(p) as other:
        assert other.execute(f"select count(*) from {table}").fetchone()[0] == 1
    run(adm, f"APPROVE {show(adm, 'APPROVALS')[0]['id']}")
    assert fut.result(timeout=10) == 1


def test_first_statement_with_strict_masking_holds_no_server(pooler, tmp_path, table,
                                                            pool_exec, conns):
    # Strict masking links a server to read the catalog before it checks a
    # database's first statement; a hold gives that server back.
    mask = tmp_path / "mask.lua"
    mask.write_text("return { init = function() "
                    "sieve.mask_column('public.nosuch.secret', sieve.mask.redact) end }")
    opts = tmp_path / "approval.options.lua"
    opts.write_text('return { rules = { { kinds = { "delete" }, reason = "deletes" } } }\n')
    p = approvals_pooler(pooler, tmp_path, settings={
        "policy_scripts": f"{PLUGIN}:{opts},{mask}"})
    adm = console(p)
    conns.append(adm)
    c = client_conn(p)
    conns.append(c)
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table}").rowcount)
    pending(adm)
    assert pool_row(adm)["sv_active"] == 0
    run(adm, f"APPROVE {show(adm, 'APPROVALS')[0]['id']}")
    assert fut.result(timeout=10) == 0


def test_inside_a_transaction_the_server_stays_linked(pooler, tmp_path, table, pool_exec,
                                                      conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p, autocommit=False)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    c.execute(f"insert into {table} values (1), (2)")          # opens the transaction
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table} where v = 1").rowcount)
    pending(adm)
    assert pool_row(adm)["sv_active"] == 1
    [srv] = [s for s in show(adm, "SERVERS") if s["state"] == "active"]
    assert srv["database"] == "testdb"
    run(adm, f"APPROVE {show(adm, 'APPROVALS')[0]['id']}")
    assert fut.result(timeout=10) == 1
    c.commit()
    assert p.pg.sql(f"select array_agg(v) from {table}")[0][0] == [2]
    # Denied inside a transaction: the transaction is aborted, as after any error.
    c.execute(f"insert into {table} values (3)")
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    run(adm, f"DENY {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        c.execute("select 1")
    c.rollback()
    assert p.pg.sql(f"select array_agg(v) from {table}")[0][0] == [2]


# ------------------------------------------------------------------ who may answer

def test_approval_users_may_only_answer(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    appr = console(p, user=APPROVER)
    conns.append(appr)
    for cmd in ("SHOW POOLS", "SHOW CLIENTS", "SHOW CONFIG", "RELOAD", "PAUSE", "SHUTDOWN",
                "SET approval_timeout = 10", "KILL testdb"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval_users may only"):
            run(appr, cmd)
    assert show(appr, "APPROVALS") == [] and show(appr, "GRANTS") == []
    # A stats user sees statistics, not held statements, and may not answer.
    st = console(p, user=STATS)
    conns.append(st)
    show(st, "POOLS")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="approval access"):
        show(st, "APPROVALS")
    c = client_conn(p)
    conns.append(c)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(appr)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run(st, f"APPROVE {row['id']}")
    run(appr, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    assert p.alive()


def test_no_one_approves_their_own_statement(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    # The admin's own database session: its DELETE is held like anyone's.
    c = client_conn(p, user=ADMIN, password="plainpw")
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(lambda: c.execute(f"delete from {table}").rowcount)
    [row] = pending(adm)
    assert row["user"] == ADMIN
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="your own statement"):
        run(adm, f"APPROVE {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="your own statement"):
        run(adm, f"APPROVE {row['id']} FOR 1h")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="your own statement"):
        run(adm, f"DENY {row['id']}")
    assert len(show(adm, "APPROVALS")) == 1 and not fut.done()
    appr = console(p, user=APPROVER)
    conns.append(appr)
    run(appr, f"APPROVE {row['id']}")
    assert fut.result(timeout=10) == 0


def test_rule_approvers_restrict_who_answers(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path, rules=(
        '{ kinds = { "delete" }, approvers = { "appuser" }, reason = "dba only" }'))
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    assert row["approvers"] == "appuser"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not among its approvers"):
        run(adm, f"APPROVE {row['id']}")
    appr = console(p, user=APPROVER)
    conns.append(appr)
    run(appr, f"APPROVE {row['id']}")
    fut.result(timeout=10)


def test_token_identities_groups_and_grants(pooler, tmp_path, table, pool_exec, conns):
    """With token logins, the identity is whom a statement belongs to: it
    is shown, compared against the approver, and what a grant is for."""
    oidc = pytest.importorskip("test_oidc")
    keys = oidc.Keys()
    keys.add_rsa("rsa-1")
    (tmp_path / "jwks.json").write_text(keys.jwks())
    (tmp_path / "ident.conf").write_text(oidc.IDENT)
    auth = default_auth_users()
    auth["bot-7"] = ""
    hba = ("host testdb appuser 127.0.0.1/32 oidc\n"
           "host all all 127.0.0.1/32 trust\n")
    p = approvals_pooler(
        pooler, tmp_path, rules='{ kinds = { "delete" }, groups = { "agents" } }',
        settings={"auth_type": "hba", "oidc_issuer": oidc.ISSUER,
                  "oidc_audience": oidc.AUDIENCE, "oidc_jwks_file": str(tmp_path / "jwks.json"),
                  "auth_ident_file": str(tmp_path / "ident.conf"), "oidc_ident_map": "tokens",
                  "oidc_allow_insecure_transport": "1", "approval_users": "appuser, bot-7"},
        hba=hba, auth_users=auth)

    def agent(sub, groups):
        c = psycopg.connect(host=p.host, port=p.port, dbname="testdb", user="appuser",
                            password=keys.token("rsa-1", sub=sub, groups=groups),
                            autocommit=True, sslmode="disable", prepare_threshold=None)
        conns.append(c)
        return c

    p.pg.sql(f"insert into {table} select generate_series(1, 10)")
    adm = console(p)
    conns.append(adm)
    bot = agent("bot-7", ["agents"])
    fut = pool_exec.submit(lambda: bot.execute(f"delete from {table} where v = 1").rowcount)
    [row] = pending(adm)
    assert row["identity"] == "bot-7" and row["user"] == "appuser"
    # The bot's own console login may not answer for it.
    own = console(p, user="bot-7")
    conns.append(own)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="your own statement"):
        run(own, f"APPROVE {row['id']}")
    run(adm, f"APPROVE {row['id']} FOR 1h")
    assert fut.result(timeout=10) == 1
    [g] = show(adm, "GRANTS")
    assert g["principal"] == "bot-7"
    assert bot.execute(f"delete from {table} where v = 2").rowcount == 1   # granted
    # Another identity with the same role is not covered by bot-7's grant.
    other = agent("bot-8", ["agents"])
    fut = pool_exec.submit(lambda: other.execute(f"delete from {table} where v = 3").rowcount)
    [row] = pending(adm)
    assert row["identity"] == "bot-8"
    run(adm, f"DENY {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    # Outside the group the rule does not apply.
    assert agent("bot-9", ["people"]).execute(
        f"delete from {table} where v = 4").rowcount == 1
    [used] = wait_audit(tmp_path, "grant_used")
    assert used["identity"] == "bot-7" and used["principal"] == "bot-7"


# ------------------------------------------------------------------ webhook

class Hook(http.server.BaseHTTPRequestHandler):
    bodies = []
    statuses = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.bodies.append((self.headers.get("Content-Type"), json.loads(body)))
        status = Hook.statuses.pop(0) if Hook.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    Hook.bodies = []
    Hook.statuses = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_webhook_announces_each_request_and_retries(pooler, tmp_path, table, pool_exec,
                                                    conns, hook_server):
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/approvals"
    Hook.statuses = [500]          # the first attempt fails: it is sent again
    p = approvals_pooler(pooler, tmp_path, settings={"approval_webhook_url": url})
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 9")
    [row] = pending(adm)
    wait_for(lambda: len(Hook.bodies) >= 2, 10, what="the webhook, twice")
    ctype, body = Hook.bodies[1]
    assert ctype == "application/json"
    assert Hook.bodies[0][1] == body
    assert body["id"] == int(row["id"]) and body["database"] == "testdb"
    assert body["user"] == CLIENT and body["client_addr"] == "127.0.0.1"
    assert body["statement"] == f"delete from {table} where v = 9"
    assert body["reason"] == "deletes need a person"
    assert body["fingerprint"] == row["fingerprint"]
    assert body["requested_at"] < body["expires_at"]
    assert "identity" not in body or body["identity"] is None
    run(adm, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    time.sleep(1.5)
    assert len(Hook.bodies) == 2     # one success ends it


def test_webhook_over_https_with_its_own_ca(pooler, tmp_path, table, pool_exec, conns,
                                           hook_server):
    import ssl
    from helpers import loopback_tls_certs
    ca, crt, key = loopback_tls_certs(tmp_path / "tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    hook_server.socket = ctx.wrap_socket(hook_server.socket, server_side=True)
    url = f"https://127.0.0.1:{hook_server.server_address[1]}/approvals"
    Hook.statuses = []
    p = approvals_pooler(pooler, tmp_path, settings={"approval_webhook_url": url,
                                                     "approval_webhook_ca_file": ca})
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 7")
    [row] = pending(adm)
    wait_for(lambda: len(Hook.bodies) >= 1, 10, what="the webhook over HTTPS")
    assert Hook.bodies[0][1]["id"] == int(row["id"])
    run(adm, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    # Without the CA the certificate is not trusted: nothing arrives, the hold goes on.
    Hook.bodies = []
    p2 = approvals_pooler(pooler, tmp_path, settings={"approval_webhook_url": url})
    c2 = client_conn(p2)
    conns.append(c2)
    adm2 = console(p2)
    conns.append(adm2)
    fut = pool_exec.submit(c2.execute, f"delete from {table} where v = 8")
    [row] = pending(adm2)
    wait_for(lambda: "certificate" in p2.log(), 10, what="the refused certificate logged")
    assert Hook.bodies == []
    run(adm2, f"APPROVE {row['id']}")
    fut.result(timeout=10)


def test_unreachable_webhook_never_delays_the_hold(pooler, tmp_path, table, pool_exec, conns):
    # A port nothing listens on (connection refused), retried in the background.
    from helpers import free_port
    p = approvals_pooler(pooler, tmp_path, settings={
        "approval_webhook_url": f"http://127.0.0.1:{free_port()}/x"})
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    run(adm, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    p.assert_serves()


# ------------------------------------------------------------------ lifecycle

def test_reload_keeps_holds_and_shutdown_fails_them(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path)
    adm = console(p)
    conns.append(adm)
    raws = []
    for _ in range(2):
        raw = RawConn(p.host, p.port)
        raw.startup(CLIENT, "testdb")
        raw.send(query_message(f"delete from {table}"))
        assert raw.read_msg()[0] == b"N"
        raws.append(raw)
    rows = pending(adm, 2)
    p.reload()
    assert [r["id"] for r in show(adm, "APPROVALS")] == [r["id"] for r in rows]
    run(adm, f"APPROVE {rows[0]['id']}")
    msgs = read_until_ready(raws[0])
    assert [t for t, _ in msgs] == [b"C", b"Z"]
    # Shutdown: the hold left fails with a clear error, the client is let go.
    adm.close()
    p.expect_fatal("cancelled: pgsieve is shutting down")
    p.expect_exit = True
    p.signal(signal.SIGTERM)
    msgs, closed, _ = raws[1].read_until_closed(5)
    [err] = errors_in(msgs)
    assert err["C"] == "57P01" and err["S"] == "FATAL"
    assert f"approval {rows[1]['id']} cancelled: pgsieve is shutting down" in err["M"]
    assert closed
    raws[0].close()
    assert p.wait_exit(5) is not None
    wait_audit(tmp_path, "approval_cancelled")


def test_answer_applies_after_a_reload_dropped_the_scripts(pooler, tmp_path, table, pool_exec,
                                                          conns):
    """A denial must hold even when no script (and no audit) is left to
    look at the statement again."""
    p = approvals_pooler(pooler, tmp_path, settings={"audit_file": None})
    c = client_conn(p)
    conns.append(c)
    c.execute(f"insert into {table} values (1)")
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table}")
    [row] = pending(adm)
    p.write_config(settings={"policy_scripts": None})
    p.reload()
    run(adm, f"DENY {row['id']}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1
    assert c.execute(f"delete from {table}").rowcount == 1    # no policy: runs


def test_suspend_for_online_restart_fails_holds(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path)
    adm = console(p)
    conns.append(adm)
    raw = RawConn(p.host, p.port)
    raw.startup(CLIENT, "testdb")
    raw.send(query_message(f"delete from {table}"))
    assert raw.read_msg()[0] == b"N"
    [row] = pending(adm)
    p.expect_fatal("cancelled: pgsieve is restarting")
    run(adm, "SUSPEND")
    msgs, closed, _ = raw.read_until_closed(5)
    [err] = errors_in(msgs)
    assert err["C"] == "57P01"
    assert err["M"] == f"approval {row['id']} cancelled: pgsieve is restarting"
    assert closed
    run(adm, "RESUME")
    assert show(adm, "APPROVALS") == []
    p.assert_serves()


def test_approval_timeout_must_be_below_idle_transaction_timeout(pooler, tmp_path):
    p = approvals_pooler(pooler, tmp_path, start=False,
                         settings={"approval_timeout": "60", "idle_transaction_timeout": "30"})
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0
    assert "approval_timeout" in out.stderr and "idle_transaction_timeout" in out.stderr
    assert str(p.ini_path) in out.stderr
    # The same for a user's own idle_transaction_timeout.
    p.write_config(settings={"idle_transaction_timeout": None},
                   users={CLIENT: "idle_transaction_timeout=30"})
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0 and f"user {CLIENT} in [users]" in out.stderr
    p.write_config(settings={"idle_transaction_timeout": "30"}, users={})
    # Left at its default, it gives way: an unchanged pgbouncer.ini still loads.
    p.write_config(settings={"approval_timeout": None})
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    # And so does SET on the console.
    p.start()
    with console(p) as adm:
        with pytest.raises(psycopg.Error, match="must be below"):
            run(adm, "SET approval_timeout = 45")
        run(adm, "SET approval_timeout = 10")
        with pytest.raises(psycopg.Error, match="must be below"):
            run(adm, "SET idle_transaction_timeout = 5")


@pytest.mark.parametrize("where", ["global", "user"])
def test_default_timeout_gives_way_to_a_shorter_idle_transaction_timeout(pooler, tmp_path,
                                                                         table, conns, where):
    if where == "global":
        p = approvals_pooler(pooler, tmp_path, settings={"idle_transaction_timeout": "2"})
    else:
        p = approvals_pooler(pooler, tmp_path, users={CLIENT: "idle_transaction_timeout=2"})
    c = client_conn(p, autocommit=False)
    conns.append(c)
    c.execute("select 1")
    start = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled, match="approval"):
        c.execute(f"delete from {table}")
    assert time.monotonic() - start < 2      # half of it: before the other timeout
    c.rollback()


def test_audit_records_requests_and_answers(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 1")
    [row] = pending(adm)
    run(adm, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    fut = pool_exec.submit(c.execute, f"delete from {table} where v = 2")
    [row2] = pending(adm)
    run(adm, f"DENY {row2['id']} nope")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        fut.result(timeout=10)
    req = wait_audit(tmp_path, "approval_request", 2)
    assert req[0]["approval"] == int(row["id"]) and req[0]["user"] == CLIENT
    assert req[0]["query"] == f"delete from {table} where v = 1"
    assert req[0]["reason"] == "deletes need a person"
    assert req[0]["script"].endswith("require_approval.lua")
    assert req[0]["session"] and req[0]["fingerprint"] == row["fingerprint"]
    [ok] = wait_audit(tmp_path, "approval_approved")
    assert ok["approver"] == ADMIN and ok["approval"] == int(row["id"])
    [no] = wait_audit(tmp_path, "approval_denied")
    assert no["approver"] == ADMIN and no["reason"] == "nope"
    # The approved DELETE ran and is recorded as a statement; the denied one as refused.
    stmts = wait_audit(tmp_path, "statement", 2)
    ran = [r for r in stmts if r.get("query") == f"delete from {table} where v = 1"]
    assert ran and ran[0]["result"] == "ok"
    refused = [r for r in stmts if r.get("query") == f"delete from {table} where v = 2"]
    assert refused and refused[0]["verdict"] == "deny" and refused[0]["phase"] == "approval"


def test_plugin_rules_match_tables_roles_and_kinds(pooler, tmp_path, table, pool_exec, conns):
    p = approvals_pooler(pooler, tmp_path, rules=(
        f'{{ tables = {{ "public.{table}" }}, access = "write", roles = {{ "trustuser" }} }}'))
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    c.execute(f"select * from {table}")                    # a read: not matched
    c.execute("create temp table if not exists scratch (v int)")
    fut = pool_exec.submit(c.execute, f"insert into {table} values (1)")
    [row] = pending(adm)
    assert "INSERT needs approval" in row["reason"]
    run(adm, f"APPROVE {row['id']}")
    fut.result(timeout=10)
    # Another role: not matched.
    with client_conn(p, user="scramuser", password="scrampw") as c2:
        c2.execute(f"insert into {table} values (2)")


def test_plugin_kinds_see_through_ctes_and_opaque_statements(pooler, tmp_path, table, pool_exec,
                                                             conns):
    p = approvals_pooler(pooler, tmp_path)
    c = client_conn(p)
    conns.append(c)
    adm = console(p)
    conns.append(adm)
    c.execute(f"insert into {table} values (1)")
    c.execute(f"update {table} set v = 2")                 # not a delete: runs
    for sql in (f"with d as (delete from {table} returning 1) select count(*) from d",
                f"do $$ begin delete from {table}; end $$"):
        fut = pool_exec.submit(c.execute, sql)
        [row] = pending(adm)
        assert row["statement"] == sql
        run(adm, f"DENY {row['id']}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            fut.result(timeout=10)
    assert p.pg.sql(f"select count(*) from {table}")[0][0] == 1


def test_broken_plugin_options_are_refused(pooler, tmp_path):
    p = approvals_pooler(pooler, tmp_path, start=False, rules='{ access = "sometimes" }')
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0 and "access must be" in out.stderr


# ------------------------------------------------------------------ at scale

def test_approval_max_pending_refuses_the_next_with_53300(pooler, tmp_path, table, conns):
    p = approvals_pooler(pooler, tmp_path, settings={"approval_max_pending": "2"})
    adm = console(p)
    conns.append(adm)
    raws = []
    for _ in range(2):
        raw = RawConn(p.host, p.port)
        raw.startup(CLIENT, "testdb")
        raw.send(query_message(f"delete from {table}"))
        assert raw.read_msg()[0] == b"N"
        raws.append(raw)
    pending(adm, 2)
    c = client_conn(p)
    conns.append(c)
    with pytest.raises(psycopg.errors.TooManyConnections, match="approval_max_pending"):
        c.execute(f"delete from {table}")
    assert c.execute("select 8").fetchone()[0] == 8
    assert len(show(adm, "APPROVALS")) == 2
    for raw in raws:
        raw.close()
    wait_for(lambda: show(adm, "APPROVALS") == [], 5, what="the holds to go")


def test_200_held_clients_while_pgbench_runs(pooler, tmp_path, table, bench, conns):
    p = approvals_pooler(pooler, tmp_path, start=False,
                         settings={"max_client_conn": "400", "default_pool_size": "4"})
    p.databases["benchdb"] = f"host=127.0.0.1 port={p.pg.port} dbname=benchdb"
    p.write_config()
    p.start()
    adm = console(p)
    conns.append(adm)
    raws = []
    try:
        for i in range(200):
            raw = RawConn(p.host, p.port, timeout=20)
            raw.startup(CLIENT, "testdb")
            raw.send(query_message(f"delete from {table} where v = {i}"))
            raws.append(raw)
        for raw in raws:
            t, payload = raw.read_msg()
            assert t == b"N", parse_error_fields(payload)
        rows = pending(adm, 200)
        assert len(rows) == 200
        assert pool_row(adm)["sv_active"] == 0          # none of them holds a server
        out = subprocess.run(
            [pg_bin("pgbench"), "-h", p.host, "-p", str(p.port), "-U", CLIENT, "-c", "8",
             "-j", "2", "-T", "5", "-n", "benchdb"],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        done = int(re.search(r"number of transactions actually processed: (\d+)",
                             out.stdout).group(1))
        assert done > 100
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        assert failed is None or int(failed.group(1)) == 0
        assert len(show(adm, "APPROVALS")) == 200       # still held, all of them
        for i, r in enumerate(rows):
            run(adm, f"{'APPROVE' if i % 2 == 0 else 'DENY'} {r['id']}")
        by_id = {int(r["id"]): r for r in rows}
        assert len(by_id) == 200
        for i, raw in enumerate(raws):
            msgs = read_until_ready(raw, timeout=20)
            kinds = [t for t, _ in msgs if t != b"N"]
            assert kinds in ([b"C", b"Z"], [b"E", b"Z"])
        assert show(adm, "APPROVALS") == []
    finally:
        for raw in raws:
            raw.close()
