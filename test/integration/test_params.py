"""
Server parameter tracking: each client keeps its own application_name,
TimeZone, DateStyle and client_encoding although, with transaction pooling
and a pool of one, all clients share one backend. The pooler must re-apply a
client's values when the backend switches clients, and the ParameterStatus
values the driver saw must stay the client's.
"""

import asyncio

import asyncpg
import pytest
import expected as X

TRACKED = ("application_name", "TimeZone", "DateStyle", "client_encoding")


def show(conn, name):
    return conn.execute(f"show {name}").fetchone()[0]


def test_params_follow_client_across_backend_switches(pooler, pg, conns):
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "1"})
    a = p.connect(application_name="appA", client_encoding="LATIN1")
    b = p.connect(application_name="appB", client_encoding="UTF8")
    conns += [a, b]
    a.execute("set TimeZone = 'Europe/Paris'")
    b.execute("set TimeZone = 'Asia/Tokyo'")
    a.execute("set DateStyle = 'SQL, DMY'")
    b.execute("set DateStyle = 'German, DMY'")
    want = {
        a: {"application_name": "appA", "TimeZone": "Europe/Paris", "DateStyle": "SQL, DMY",
            "client_encoding": "LATIN1"},
        b: {"application_name": "appB", "TimeZone": "Asia/Tokyo", "DateStyle": "German, DMY",
            "client_encoding": "UTF8"},
    }
    pids = set()
    for _ in range(3):
        for c in (a, b):
            pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
            for name in TRACKED:
                assert show(c, name) == want[c][name], f"SHOW {name}"
                assert c.info.parameter_status(name) == want[c][name], f"ParameterStatus {name}"
    # One backend served both: the values were really re-applied.
    assert len(pids) == 1
    # The server sees the current client's application_name.
    assert a.execute("select application_name from pg_stat_activity "
                     "where pid = pg_backend_pid()").fetchone()[0] == "appA"

    # A change by one client does not leak to the other.
    a.execute("set application_name = 'appA2'")
    assert show(b, "application_name") == "appB"
    assert show(a, "application_name") == "appA2"
    assert a.info.parameter_status("application_name") == "appA2"
    assert b.info.parameter_status("application_name") == "appB"


def test_params_from_startup_packet(pooler):
    # asyncpg sends server_settings as startup parameters.
    p = pooler(settings={"pool_mode": "transaction", "default_pool_size": "1"})

    async def run():
        kw = dict(host=p.host, port=p.port, user="trustuser", database="testdb",
                  ssl=False, statement_cache_size=0)
        a = await asyncpg.connect(server_settings={"application_name": "startA",
                                                   "TimeZone": "America/New_York",
                                                   "DateStyle": "Postgres, MDY"}, **kw)
        b = await asyncpg.connect(server_settings={"application_name": "startB",
                                                   "TimeZone": "Australia/Sydney",
                                                   "DateStyle": "ISO, YMD"}, **kw)
        try:
            out = []
            for _ in range(3):
                for c in (a, b):
                    out.append((await c.fetchval("show application_name"),
                                await c.fetchval("show timezone"),
                                await c.fetchval("show datestyle"),
                                await c.fetchval("select pg_backend_pid()")))
            assert a.get_settings().application_name == "startA"
            assert b.get_settings().TimeZone == "Australia/Sydney"
            return out
        finally:
            await a.close()
            await b.close()

    out = asyncio.run(asyncio.wait_for(run(), 30))
    assert out[0::2] == [(a, tz, ds, out[0][3]) for a, tz, ds in
                         [("startA", "America/New_York", "Postgres, MDY")] * 3]
    assert out[1::2] == [(a, tz, ds, out[0][3]) for a, tz, ds in
                         [("startB", "Australia/Sydney", "ISO, YMD")] * 3]


def test_unsupported_startup_parameter_is_refused(pooler):
    # PgBouncer: "unsupported startup parameter: %s" unless the name is in
    # ignore_startup_parameters.
    from helpers import PgError
    p = pooler(settings={"ignore_startup_parameters": "extra_float_digits"})
    raw = p.raw()
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "testdb", extra={"work_mem": "64MB"})
    raw.close()
    assert ei.value.message == X.UNSUPPORTED_STARTUP_PARAM.format("work_mem")
    assert ei.value.sqlstate == X.POOLER_SQLSTATE
    # An ignored one is accepted.
    raw = p.raw()
    raw.startup("trustuser", "testdb", extra={"extra_float_digits": "3"})
    rows, _, errors, _ = raw.simple_query("select 1")
    raw.close()
    assert errors == [] and rows == [["1"]]
