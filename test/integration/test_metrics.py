"""
The Prometheus endpoint (metrics_listen, pgsieve's own setting): the
output parses as the Prometheus text format, and its counters move with
the traffic the test sends.
"""

import re
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import IS_PGBOUNCER, POOLER_BIN
from helpers import free_port

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="metrics_listen is pgsieve's own")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse(text):
    """Checks the text format and returns {(name, frozenset(labels)): value}."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge"), line
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, labels, value = m.groups()
        assert name in types, f"sample before its TYPE: {line}"
        if types[name] == "counter":
            assert name.endswith("_total"), name
        pairs = []
        if labels:
            rest = labels
            while rest:
                lm = LABEL.match(rest)
                assert lm, f"bad labels in {line!r}"
                pairs.append((lm.group(1), lm.group(2)))
                rest = rest[lm.end():]
        samples[(name, frozenset(pairs))] = float(value)
    return samples


def test_metrics_endpoint(pooler):
    port = free_port()
    p = pooler(settings={"metrics_listen": f"127.0.0.1:{port}", "pool_mode": "transaction"})
    with p.connect() as c:
        c.execute("select 1")
    before = parse(scrape(port))
    key = ("pgsieve_transactions_total", frozenset({("database", "testdb")}))
    assert before[("pgsieve_up", frozenset())] == 1
    with p.connect() as c:
        for _ in range(25):
            c.execute("select 1")
        held = p.connect()
        held.execute("begin")
        held.execute("select 1")
        after = parse(scrape(port))
        servers = after[("pgsieve_pool_servers", frozenset({("database", "testdb"),
                                                            ("user", "trustuser"),
                                                            ("state", "active")}))]
        assert servers == 1            # the open transaction holds one
        held.execute("commit")
        held.close()
    assert after[key] - before[key] == 25
    assert after[("pgsieve_client_connections", frozenset())] == 2   # c and held
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    assert ei.value.code == 404
    p.assert_serves()


def test_bad_metrics_listen_is_refused(pooler):
    p = pooler(start=False)
    p.write_config(settings={"metrics_listen": "nonsense"})
    r = subprocess.run([str(POOLER_BIN), str(p.ini_path)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0
    assert "metrics_listen = nonsense: expected host:port" in r.stderr
