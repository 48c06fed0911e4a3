"""
dns_zone_check_period: a changed SOA serial makes the pooler look the
names of that zone up again, before their TTL runs out.

c-ares (1.18 here) takes no port from resolv.conf, so the DNS server must
be on port 53: fakedns.py runs the pooler and a small DNS server in a
network namespace of their own (`unshare -rn`, no privileges needed).
Clients reach the pooler through its unix socket; the database host
resolves to a loopback address where nothing listens (logins fail, the
answer stays cached), which is all SHOW DNS_HOSTS needs.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import psycopg
import pytest

from helpers import wait_for

FAKEDNS = pathlib.Path(__file__).with_name("fakedns.py")


def can_unshare():
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    r = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                       capture_output=True, timeout=10)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not can_unshare(),
                                reason="needs unprivileged user and network namespaces")


def write_zone(path, serial, addrs):
    path.write_text(json.dumps({"serial": serial, "ttl": 3600,
                                "hosts": {"db1.zone.test": addrs}}))


@pytest.fixture
def zoned(pooler, pg, tmp_path):
    """A pooler in its own network namespace with a DNS server for
    zone.test; returns (pooler, zonefile, admin(sql) -> rows)."""
    zonefile = tmp_path / "zone.json"
    write_zone(zonefile, 100, ["127.0.0.2"])
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    p = pooler(start=False,
               settings={"resolv_conf": str(resolv), "dns_zone_check_period": "0.3",
                         "dns_max_ttl": "3600", "admin_users": "trustuser"},
               databases={"zdb": f"host=db1.zone.test port={pg.port} dbname=testdb"})
    inner = p.launch_command

    def launch(*args):
        return ["unshare", "-rn", sys.executable, str(FAKEDNS), "--uid", str(os.getuid()),
                "--gid", str(os.getgid()), str(zonefile), "--", *inner(*args)]

    p.launch_command = launch
    p.start(wait=False)

    def connect(dbname):
        return psycopg.connect(host=str(p.sockdir), port=p.port, dbname=dbname,
                               user="trustuser", autocommit=True, connect_timeout=5)

    def admin(sql):
        with connect("pgbouncer") as c:
            return c.execute(sql).fetchall()

    wait_for(lambda: os.path.exists(p.unix_path()), 10, what="the pooler's unix socket")
    # A login to zdb makes the pooler resolve db1.zone.test; nothing listens there.
    with pytest.raises(psycopg.OperationalError, match="could not connect to server"):
        connect("zdb")
    return p, zonefile, admin


def addrs_of(admin, host="db1.zone.test"):
    return {r[0]: r[2] for r in admin("SHOW DNS_HOSTS")}.get(host)


def test_serial_change_resolves_again(zoned):
    p, zonefile, admin = zoned
    assert addrs_of(admin) == "127.0.0.2"
    wait_for(lambda: admin("SHOW DNS_ZONES") == [("zone.test", 100, 1)], 5,
             what="zone.test with serial 100 in SHOW DNS_ZONES")
    assert ("dns_zones", 1) in admin("SHOW LISTS")
    # A new address under the same serial goes unnoticed: cached for an hour.
    write_zone(zonefile, 100, ["127.0.0.3"])
    time.sleep(1.2)
    assert addrs_of(admin) == "127.0.0.2"
    # A new serial: the zone's names are looked up again at once.
    write_zone(zonefile, 101, ["127.0.0.3"])
    wait_for(lambda: addrs_of(admin) == "127.0.0.3", 5, what="the new address")
    assert admin("SHOW DNS_ZONES") == [("zone.test", 101, 1)]
    p.wait_log(r"zone zone\.test: serial 100 is now 101")


def test_reload_turns_zone_checks_off(zoned):
    p, zonefile, admin = zoned
    wait_for(lambda: admin("SHOW DNS_ZONES") == [("zone.test", 100, 1)], 5,
             what="zone.test in SHOW DNS_ZONES")
    p.write_config(settings={"dns_zone_check_period": "0"})
    with psycopg.connect(host=str(p.sockdir), port=p.port, dbname="pgbouncer",
                         user="trustuser", autocommit=True) as c:
        c.execute("RELOAD")
    write_zone(zonefile, 102, ["127.0.0.4"])
    time.sleep(1.2)
    assert addrs_of(admin) == "127.0.0.2"
    assert admin("SHOW DNS_ZONES") == [("zone.test", 100, 1)]
