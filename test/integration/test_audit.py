"""
The audit log: one JSON object per line for connect, failed login,
statement (with the policy's verdict) and disconnect; the query text
full, normalized or left out; reopened on SIGHUP; SHOW AUDIT.
"""

import json
import time

import psycopg
import pytest

from conftest import IS_PGBOUNCER, ROOT, default_auth_users
from helpers import wait_for
from test_admin import ADMIN, console, show

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's audit log")

GUARD = str(ROOT / "plugins" / "guard_ddl.lua")
HBA = """
host all plainuser 127.0.0.1/32 password
host all all 127.0.0.1/32 trust
"""


def audited(pooler, tmp_path, **settings):
    auth = default_auth_users()
    auth[ADMIN] = ""
    s = {"audit_file": str(tmp_path / "audit.jsonl"), "auth_type": "hba",
         "admin_users": ADMIN}
    s.update(settings)
    return pooler(settings=s, hba=HBA, auth_users=auth)


def records(path, n, timeout=5):
    """The first n records once they are there (the writer is a thread)."""
    got = []

    def enough():
        nonlocal got
        try:
            got = [json.loads(line) for line in path.read_text().splitlines()]
        except FileNotFoundError:
            got = []
        return len(got) >= n
    wait_for(enough, timeout, what=f"{n} audit records in {path}")
    return got


def test_every_event_field_by_field(pooler, tmp_path, table):
    p = audited(pooler, tmp_path, policy_scripts=GUARD)
    with p.connect(application_name="agent-7") as c:
        c.execute(f"insert into {table} values (42)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(f"delete from {table}")
        c.execute("select %s::int", [5])
    with pytest.raises(psycopg.OperationalError):
        p.connect(user="plainuser", password="wrong")
    log = tmp_path / "audit.jsonl"
    recs = records(log, 6)
    events = [r["event"] for r in recs]
    assert events[:5] == ["connect", "statement", "statement", "statement", "disconnect"], events
    conn, ins, dele, sel, disc = recs[:5]
    for r in recs[:5]:
        assert r["session"] == conn["session"] and r["user"] == "trustuser"
        assert r["application_name"] == "agent-7"
        assert r["database"] == "testdb" and r["client_addr"] == "127.0.0.1"
        assert r["time"].endswith("Z") and "T" in r["time"]
    assert ins["verdict"] == "allow" and ins["protocol"] == "simple"
    assert ins["query"] == f"insert into {table} values ($1)"     # normalized: no 42
    assert len(ins["fingerprint"]) == 16
    assert dele["verdict"] == "deny" and dele["sqlstate"] == "42501"
    assert dele["script"].endswith("guard_ddl.lua")
    assert sel["protocol"] == "extended" and sel["verdict"] == "allow"
    assert isinstance(disc["seconds"], int)
    failed = [r for r in recs if r["event"] == "login_failed"]
    assert failed and failed[0]["user"] == "plainuser"
    assert failed[0]["reason"] == "password authentication failed"
    assert "wrong" not in log.read_text()                         # never a password


@pytest.mark.parametrize("mode", ["full", "none"])
def test_query_text_modes(pooler, tmp_path, mode):
    p = audited(pooler, tmp_path, audit_query_text=mode)
    with p.connect() as c:
        c.execute("select 'secret-value'")
    st = [r for r in records(tmp_path / "audit.jsonl", 3) if r["event"] == "statement"][0]
    if mode == "full":
        assert st["query"] == "select 'secret-value'"
    else:
        assert "query" not in st and "secret-value" not in (tmp_path / "audit.jsonl").read_text()


def test_reopened_on_sighup_and_show_audit(pooler, tmp_path):
    p = audited(pooler, tmp_path)
    log = tmp_path / "audit.jsonl"
    with p.connect() as c:
        c.execute("select 1")
    records(log, 3)
    log.rename(tmp_path / "audit.jsonl.1")          # logrotate
    p.reload()
    with p.connect() as c:
        c.execute("select 2")
    assert [r["event"] for r in records(log, 3)][:3] == ["connect", "statement", "disconnect"]
    with console(p) as adm:
        row = show(adm, "AUDIT")[0]
    assert row["file"] == str(log) and row["query_text"] == "normalized"
    assert int(row["written"]) >= 6 and row["lost"] == "0"


def test_unwritable_audit_file_stops_the_start(pooler, tmp_path):
    p = pooler(settings={"audit_file": "/nonexistent/dir/audit.jsonl"}, start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "audit_file /nonexistent/dir/audit.jsonl" in p.log()
    p.expect_fatal("audit_file")


def statements(path, n):
    return [r for r in records(path, n) if r["event"] == "statement"]


def test_statement_records_carry_what_came_of_it(pooler, tmp_path, table):
    p = audited(pooler, tmp_path, policy_scripts=GUARD, audit_query_text="full")
    log = tmp_path / "audit.jsonl"
    with p.connect(user="trustuser") as c:
        c.execute("select generate_series(1, 5)")
        c.execute(f"insert into {table} values (1), (2); update {table} set v = 3 where v = 1")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1 / 0")
        for i in range(3):   # one Parse, three executions: three records
            c.execute(f"select v from {table} where v = %s", [i], prepare=True)
    st = statements(log, 8)
    sel, multi, div = st[0], st[1], st[2]
    assert (sel["result"], sel["command"], sel["rows"]) == ("ok", "SELECT", 5)
    assert isinstance(sel["duration_ms"], float) and 0 <= sel["duration_ms"] < 10000
    assert "sqlstate" not in sel
    # A Query of two statements is one record: rows add up, the last tag names it.
    assert (multi["result"], multi["command"], multi["rows"]) == ("ok", "UPDATE", 3)
    assert (div["result"], div["sqlstate"]) == ("error", "22012")
    assert div["verdict"] == "allow"
    prepared = [r for r in st if r["protocol"] == "extended"]
    assert [r["rows"] for r in prepared] == [0, 0, 1]   # the table holds 2 and 3
    assert all(r["query"] == f"select v from {table} where v = $1" for r in prepared)


def test_pipeline_error_marks_the_executes_skipped(pooler, tmp_path):
    from test_prepared import bind, execute, parse, raw, responses, sync
    p = audited(pooler, tmp_path, audit_query_text="full")
    c = raw(p)
    c.send(parse("", "select 1 / 0") + bind("") + execute() +
           parse("", "select 2") + bind("") + execute() + sync())
    responses(c)
    c.close()
    st = statements(tmp_path / "audit.jsonl", 4)
    # PostgreSQL skips to Sync after an error: the second Execute did not run.
    assert [(r["query"], r["result"]) for r in st] == [("select 1 / 0", "error"),
                                                       ("select 2", "not_run")]
    assert st[0]["sqlstate"] == "22012" and st[1]["rows"] == 0
    # Named statements executed in a later pipeline are recorded by what they run.
    c = raw(p)
    c.send(parse("a", "select 1 / 0") + parse("b", "select 2") + sync())
    responses(c)
    c.send(bind("b") + execute() + bind("a", portal="p") + execute("p") +
           bind("b") + execute() + sync())
    responses(c)
    c.close()
    st = statements(tmp_path / "audit.jsonl", 9)
    tail = [(r["query"], r["result"]) for r in st[2:]]
    assert tail == [("select 2", "ok"), ("select 1 / 0", "error"), ("select 2", "not_run")], tail


def test_rewritten_statement_is_recorded_with_both_texts(pooler, tmp_path):
    s = tmp_path / "rw.lua"
    s.write_text("return { statement = function(stmt)\n"
                 "  if stmt.sql == 'select 1' then return sieve.rewrite('select 2') end\n"
                 "end }")
    p = audited(pooler, tmp_path, policy_scripts=str(s), audit_query_text="full")
    with p.connect(user="trustuser") as c:
        assert c.execute("select 1").fetchone()[0] == 2
    st = statements(tmp_path / "audit.jsonl", 3)[0]
    assert (st["verdict"], st["query"], st["rewritten"]) == ("rewrite", "select 1", "select 2")
    assert st["script"] == str(s) and st["rows"] == 1
