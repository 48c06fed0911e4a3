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
