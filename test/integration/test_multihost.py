"""
Multi-host [databases] entries: host= lists, load_balance_hosts and
target_session_attrs.

Two ways of reaching the one test PostgreSQL tell the hosts of a list
apart: 127.0.0.1 (inet_client_addr() is 127.0.0.1) and its unix socket
directory (inet_client_addr() is NULL). A host that refuses is a closed
port on 127.0.0.1 or a directory with no socket in it. For standbys, a
module-scoped fixture builds a real one with pg_basebackup.

pgsieve goes on to the next host of the list when one refuses, times out
or does not fit target_session_attrs; PgBouncer 1.25 does not (its hosts
must all be up), so these tests are for pgsieve only.
"""

import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest

from conftest import IS_PGBOUNCER, PG_BIN
from helpers import PgError, free_port, wait_for

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's host list fail-over")


def client_addr(conn):
    """Which host of the list the server connection behind conn came through."""
    return conn.execute("select inet_client_addr()::text").fetchone()[0]


def in_recovery(conn):
    return conn.execute("select pg_is_in_recovery()").fetchone()[0]


def server_addrs(pg, user="trustuser"):
    """client_addr of every server connection of user on PostgreSQL."""
    rows = pg.sql("select host(client_addr) from pg_stat_activity "
                  "where usename = %s and backend_type = 'client backend'", [user],
                  dbname="postgres")
    return sorted((r[0] or "unix") for r in rows)


@pytest.fixture
def nosock(tmp_path):
    """A unix socket directory with no server in it: connects fail at once."""
    d = tmp_path / "nosock"
    d.mkdir()
    return str(d)


def closed_port():
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    return free_port()


def db(hosts, port, extra=""):
    return f"host={hosts} port={port} dbname=testdb {extra}".strip()


# ------------------------------------------------------------ host lists

@pytest.mark.parametrize("mode", ["round-robin", "disable"])
def test_first_host_refuses(pooler, pg, nosock, conns, mode):
    # The first entry has no server: every new server connection that starts
    # there goes on to the second one, and clients never notice.
    p = pooler(databases={"testdb": db(f"{nosock},127.0.0.1", pg.port,
                                       f"load_balance_hosts={mode}")})
    for _ in range(3):
        c = p.connect()
        conns.append(c)
        assert client_addr(c) == "127.0.0.1/32"
    assert len(pg.backend_pids(usename="trustuser")) == 3
    p.wait_log(r"trying the next host")


def test_port_list_first_port_closed(pooler, pg, conns):
    # One port per host (libpq's rule, an addition to PgBouncer's single
    # port): a closed port first, the server second.
    p = pooler(databases={"testdb": f"host=127.0.0.1,127.0.0.1 port={closed_port()},{pg.port} "
                                    "dbname=testdb load_balance_hosts=disable"})
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    p.wait_log(r"Connection refused; trying the next host")


@pytest.mark.parametrize("mode", ["round-robin", "disable"])
def test_load_balance_hosts_rotation(pooler, pg, conns, mode):
    # Two ways to the same server. Round-robin: each new server connection
    # starts one entry further; disable: always at the first.
    p = pooler(databases={"testdb": db(f"127.0.0.1,{pg.sockdir}", pg.port,
                                       f"load_balance_hosts={mode}")})
    seen = []
    for _ in range(4):
        c = p.connect()
        conns.append(c)
        seen.append(client_addr(c))
    if mode == "round-robin":
        assert seen == ["127.0.0.1/32", None, "127.0.0.1/32", None]
        assert server_addrs(pg) == ["127.0.0.1", "127.0.0.1", "unix", "unix"]
    else:
        assert seen == ["127.0.0.1/32"] * 4
        assert server_addrs(pg) == ["127.0.0.1"] * 4


def test_failed_host_is_skipped_for_server_login_retry(pooler, pg, nosock, conns):
    # A host that just failed goes to the end of the list for the next
    # connections, until server_login_retry has passed: then it is tried again.
    p = pooler(settings={"server_login_retry": "1.5", "default_pool_size": "10"},
               databases={"testdb": db(f"{nosock},127.0.0.1", pg.port)})
    for _ in range(4):
        c = p.connect()
        conns.append(c)
        assert client_addr(c) == "127.0.0.1/32"
    # Round-robin would have started two of the four at the dead host.
    assert len(re.findall(r"trying the next host", p.log())) == 1
    time.sleep(1.7)
    for _ in range(2):
        c = p.connect()
        conns.append(c)
        assert client_addr(c) == "127.0.0.1/32"
    assert len(re.findall(r"trying the next host", p.log())) == 2


def test_all_hosts_fail(pooler, pg, nosock):
    p = pooler(databases={"testdb": db(f"{nosock},127.0.0.1", closed_port())})
    raw = p.raw(timeout=10)
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "testdb")
    raw.close()
    msg = ei.value.fields["M"]
    assert ei.value.fields["S"] == "FATAL"
    assert "could not connect to server" in msg
    assert 'all 2 hosts of database "testdb" failed' in msg


def test_connect_timeout_moves_to_next_host(pooler, pg, conns):
    # A host that accepts TCP and never answers: server_connect_timeout
    # counts per host, and the next one is tried.
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    try:
        p = pooler(settings={"server_connect_timeout": "1"},
                   databases={"testdb": f"host=127.0.0.1,127.0.0.1 "
                                        f"port={hole.getsockname()[1]},{pg.port} "
                                        "dbname=testdb load_balance_hosts=disable"})
        start = time.monotonic()
        with p.connect(connect_timeout=10) as c:
            assert c.execute("select 1").fetchone()[0] == 1
        assert time.monotonic() - start >= 0.8
        p.wait_log(r"server connect timeout; trying the next host")
    finally:
        hole.close()


def test_show_databases_and_servers(pooler, pg, nosock, conns):
    p = pooler(settings={"admin_users": "trustuser"},
               databases={"testdb": db(f"{nosock},127.0.0.1", pg.port,
                                       "load_balance_hosts=disable"),
                          "single": db("127.0.0.1", pg.port),
                          "rr": db("a,b", pg.port)})
    c = p.connect()
    conns.append(c)
    with p.connect(dbname="pgbouncer") as admin:
        cur = admin.execute("SHOW DATABASES")
        cols = [d.name for d in cur.description]
        rows = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
        assert rows["testdb"]["host"] == f"{nosock},127.0.0.1"
        assert rows["testdb"]["load_balance_hosts"] == "disable"
        assert rows["rr"]["load_balance_hosts"] == "round-robin"
        assert rows["single"]["load_balance_hosts"] is None
        cur = admin.execute("SHOW POOLS")
        cols = [d.name for d in cur.description]
        pools = [dict(zip(cols, r)) for r in cur.fetchall()]
        assert [x["load_balance_hosts"] for x in pools if x["database"] == "testdb"] == \
            ["disable"]
        # A server shows the host it is connected to, not the whole list.
        cur = admin.execute("SHOW SERVERS")
        cols = [d.name for d in cur.description]
        servers = [dict(zip(cols, r)) for r in cur.fetchall()]
        assert [(s["addr"], s["port"]) for s in servers] == [("127.0.0.1", pg.port)]


def test_reload_changes_host_list(pooler, pg, nosock, conns):
    p = pooler(databases={"testdb": db("127.0.0.1", pg.port)})
    with p.connect() as c:
        assert client_addr(c) == "127.0.0.1/32"
    p.write_config(databases={"testdb": db(f"{nosock},{pg.sockdir}", pg.port)})
    p.reload()
    with p.connect() as c:
        assert client_addr(c) is None


# --------------------------------------------------- target_session_attrs
#
# The test PostgreSQL is a primary: read-write, primary and any accept it,
# standby and read-only do not, prefer-standby takes it when no standby is
# found.

@pytest.mark.parametrize("attrs", ["any", "read-write", "primary", "prefer-standby"])
def test_primary_accepted(pooler, pg, nosock, attrs):
    p = pooler(databases={"testdb": db(f"{nosock},127.0.0.1", pg.port,
                                       f"target_session_attrs={attrs}")})
    with p.connect() as c:
        assert in_recovery(c) is False
    p.assert_serves()
    if attrs == "prefer-standby":
        p.wait_log(r"server is not in hot standby mode; trying the next host")


@pytest.mark.parametrize("attrs", ["standby", "read-only"])
def test_primary_refused(pooler, pg, attrs):
    p = pooler(databases={"testdb": db(f"127.0.0.1,{pg.sockdir}", pg.port,
                                       f"target_session_attrs={attrs}")})
    raw = p.raw(timeout=10)
    with pytest.raises(PgError) as ei:
        raw.startup("trustuser", "testdb")
    raw.close()
    msg = ei.value.fields["M"]
    assert ei.value.fields["S"] == "FATAL"
    assert f'no host of database "testdb" fits target_session_attrs={attrs}' in msg
    reason = ("server is not in hot standby mode" if attrs == "standby"
              else "session is not read-only")
    assert reason in msg
    # Both hosts were logged in to and let go again.
    assert len(re.findall(reason + r"; trying the next host", p.log())) == 1
    wait_for(lambda: not pg.backend_pids(usename="trustuser"), 5,
             what="the refused server connections closed")


def test_prefer_standby_remembers_there_is_none(pooler, pg, conns):
    # Having found no standby, the next connections go straight to any
    # server for server_login_retry, instead of logging in twice each time.
    p = pooler(settings={"server_login_retry": "5"},
               databases={"testdb": db("127.0.0.1", pg.port,
                                       "target_session_attrs=prefer-standby")})
    for _ in range(3):
        c = p.connect()
        conns.append(c)
        assert in_recovery(c) is False
    assert len(re.findall(r"server is not in hot standby mode", p.log())) == 1


def test_read_only_session_on_primary(pooler, pg, conns):
    # default_transaction_read_only=on makes a primary read-only but still a
    # primary: read-only and primary accept it, read-write does not.
    pg.sql("ALTER ROLE trustuser IN DATABASE testdb2 SET default_transaction_read_only = on",
           dbname="postgres")
    try:
        p = pooler(databases={
            "ro": f"host=127.0.0.1 port={pg.port} dbname=testdb2 target_session_attrs=read-only",
            "prim": f"host=127.0.0.1 port={pg.port} dbname=testdb2 target_session_attrs=primary",
            "rw": f"host=127.0.0.1 port={pg.port} dbname=testdb2 "
                  "target_session_attrs=read-write"})
        for name in ("ro", "prim"):
            with p.connect(dbname=name) as c:
                assert c.execute("show transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.OperationalError, match="session is read-only"):
            p.connect(dbname="rw")
    finally:
        pg.sql("ALTER ROLE trustuser IN DATABASE testdb2 RESET default_transaction_read_only",
               dbname="postgres")


def test_auth_error_does_not_try_other_hosts(pooler, pg):
    # A wrong password would be as wrong on the next host: it ends the login.
    p = pooler(databases={"testdb": f"host=127.0.0.1,{pg.sockdir} port={pg.port} "
                                    "dbname=testdb user=scramuser password=wrong "
                                    "load_balance_hosts=disable"})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        p.connect()
    assert "trying the next host" not in p.log()


# ------------------------------------------------------- a real standby

@pytest.fixture(scope="module")
def standby(pg):
    """A hot standby of the test PostgreSQL (pg_basebackup -R), on its own
    port and socket directory. The primary's pg_hba.conf gets a local
    replication line for the copy, and is restored afterwards."""
    from conftest import Postgres
    hba = pg.datadir / "pg_hba.conf"
    saved = hba.read_text()
    hba.write_text("local replication all trust\n" + saved)
    pg.sql("select pg_reload_conf()", dbname="postgres")
    sb = Postgres(tempfile.mkdtemp(prefix="pgsieve-standby-"))
    try:
        sb.sockdir.mkdir(parents=True)
        subprocess.run([str(PG_BIN / "pg_basebackup"), "-R", "-D", str(sb.datadir),
                        "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres",
                        "-X", "stream", "-c", "fast", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        with open(sb.datadir / "postgresql.conf", "a") as f:
            f.write(f"\nport = {sb.port}\nunix_socket_directories = '{sb.sockdir}'\n"
                    "hot_standby = on\n")
        sb.start()
        wait_for(lambda: sb.sql("select pg_is_in_recovery()", dbname="postgres")[0][0], 30,
                 what="the standby in recovery")
        yield sb
    finally:
        sb.stop("immediate")
        shutil.rmtree(sb.base, ignore_errors=True)
        hba.write_text(saved)
        pg.sql("select pg_reload_conf()", dbname="postgres")


def pair(first, second, extra):
    """An entry over two servers given by (host, port)."""
    return (f"host={first[0]},{second[0]} port={first[1]},{second[1]} dbname=testdb "
            f"{extra}")


@pytest.mark.parametrize("attrs", ["standby", "read-only", "prefer-standby"])
def test_standby_picked(pooler, pg, standby, conns, attrs):
    primary, replica = ("127.0.0.1", pg.port), ("127.0.0.1", standby.port)
    p = pooler(databases={"testdb": pair(primary, replica,
                                         f"target_session_attrs={attrs}")})
    for _ in range(3):  # round-robin starts every other one at the primary
        c = p.connect()
        conns.append(c)
        assert in_recovery(c) is True
    assert not pg.backend_pids(usename="trustuser")
    assert len(standby.backend_pids(usename="trustuser")) == 3


@pytest.mark.parametrize("attrs", ["primary", "read-write"])
def test_primary_picked_over_standby(pooler, pg, standby, conns, attrs):
    primary, replica = ("127.0.0.1", pg.port), ("127.0.0.1", standby.port)
    p = pooler(databases={"testdb": pair(replica, primary,
                                         f"target_session_attrs={attrs} "
                                         "load_balance_hosts=disable")})
    for _ in range(2):
        c = p.connect()
        conns.append(c)
        assert in_recovery(c) is False
    assert not standby.backend_pids(usename="trustuser")
    p.wait_log(r"server is in hot standby mode; trying the next host")


def test_any_takes_the_standby_first(pooler, pg, standby):
    # Without target_session_attrs the first host that answers is taken.
    p = pooler(databases={"testdb": pair(("127.0.0.1", standby.port), ("127.0.0.1", pg.port),
                                         "load_balance_hosts=disable")})
    with p.connect() as c:
        assert in_recovery(c) is True


# ------------------------------------- servers that do not report their state

class HidingProxy:
    """A TCP proxy to a PostgreSQL server that drops the in_hot_standby and
    default_transaction_read_only ParameterStatus messages of the login, as
    servers before PostgreSQL 14 never send them; it keeps what its clients
    sent. Needs server_tls_sslmode = disable (it reads the server's stream
    as messages from the first byte)."""

    HIDE = (b"in_hot_standby\0", b"default_transaction_read_only\0")

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.sent = bytearray()
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.socks += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client, upstream):
        try:
            while data := client.recv(65536):
                with self.lock:
                    self.sent += data
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def _down(self, upstream, client):
        buf, login = b"", True
        try:
            while data := upstream.recv(65536):
                if not login:
                    client.sendall(data)
                    continue
                buf += data
                out = b""
                while len(buf) >= 5:
                    length = int.from_bytes(buf[1:5], "big")
                    if len(buf) < 1 + length:
                        break
                    msg, buf = buf[:1 + length], buf[1 + length:]
                    if msg[:1] == b"S" and msg[5:].startswith(self.HIDE):
                        continue
                    out += msg
                    if msg[:1] == b"Z":
                        login = False
                        out += buf
                        buf = b""
                        break
                client.sendall(out)
        except OSError:
            pass
        finally:
            client.close()

    def close(self):
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.mark.parametrize("attrs", ["standby", "read-write"])
def test_state_queried_when_not_reported(pooler, pg, standby, attrs):
    # No in_hot_standby at login: the pooler asks with a query instead.
    to_primary, to_standby = HidingProxy(pg.port), HidingProxy(standby.port)
    try:
        p = pooler(settings={"server_tls_sslmode": "disable"},
                   databases={"testdb": pair(("127.0.0.1", to_primary.port),
                                             ("127.0.0.1", to_standby.port),
                                             f"target_session_attrs={attrs} "
                                             "load_balance_hosts=disable")})
        with p.connect() as c:
            assert in_recovery(c) is (attrs == "standby")
        # Asked on the first host; on the second too when the first did not fit.
        assert b"pg_is_in_recovery()" in to_primary.sent
        assert (b"pg_is_in_recovery()" in to_standby.sent) is (attrs == "standby")
    finally:
        to_primary.close()
        to_standby.close()
