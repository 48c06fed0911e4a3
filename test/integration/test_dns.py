"""
Database hosts given by name are resolved with c-ares in the event loop.

A resolv.conf of the test's own (resolv_conf setting) points at 127.0.0.1,
where nothing answers DNS: names from /etc/hosts resolve, anything else
fails at once instead of waiting on a resolver the sandbox cannot reach.
"""

import pytest

from helpers import PgError


def local_resolver(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return str(resolv)


def test_server_host_by_name(pooler, pg, tmp_path):
    # "localhost" may resolve to ::1 first while PostgreSQL listens on
    # 127.0.0.1 only: the pooler must go on to the next address.
    p = pooler(settings={"resolv_conf": local_resolver(tmp_path)},
               databases={"testdb": f"host=localhost port={pg.port} dbname=testdb"})
    with p.connect() as c:
        assert c.execute("select inet_server_addr()::text").fetchone()[0] == "127.0.0.1/32"
    p.assert_serves()


def test_unresolvable_host(pooler, pg, tmp_path):
    p = pooler(settings={"resolv_conf": local_resolver(tmp_path), "server_login_retry": "1"},
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb",
                          "nowhere": f"host=no-such-host.invalid port={pg.port} dbname=testdb"})
    raw = p.raw(timeout=10)
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "nowhere")
    raw.close()
    assert ei.value.fields["S"] == "FATAL"
    assert 'could not resolve host "no-such-host.invalid"' in ei.value.message
    p.wait_log(r"could not resolve host", timeout=3)
    # Other databases are not affected.
    p.assert_serves()
