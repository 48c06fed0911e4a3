"""
TLS on both sides of the pooler.

Towards clients (client_tls_*): SSLRequest answered 'S' and a handshake,
sslmode=require / verify-full from libpq, "SSL required" for clear text
over TCP (never on the unix socket), client certificates (auth_type=cert,
the CN is the user name), the SHOW CLIENTS tls column, hostile bytes
around the handshake, RELOAD of certificates, no SCRAM-SHA-256-PLUS.

Towards PostgreSQL (server_tls_*): the session's PostgreSQL gets ssl=on and
a role that pg_hba admits only over hostssl (module fixture, undone at the
end); pg_stat_ssl says whether the backend really runs TLS. Answers a real
PostgreSQL never gives ('N' under require, bytes behind 'S') come from a
small fake server.

Certificates are made with the openssl command line into a temporary
directory: a CA, a server certificate for 127.0.0.1 and localhost, client
certificates whose CN is a role, and a second CA nobody trusts.
"""

import hashlib
import os
import pathlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import IS_PGBOUNCER, default_auth_users, pg_bin
from helpers import (ConnectionClosed, PgError, RawConn, parse_error_fields, ssl_request,
                     startup_packet, wait_for)
from test_admin import ADMIN, admin_pooler, one, run, show
from test_online_restart import take_over

GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


# ------------------------------------------------------------------ certificates

def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    def __init__(self, d):
        self.dir = pathlib.Path(d)

    def path(self, name):
        return str(self.dir / name)

    def make_ca(self, name, cn):
        openssl(self.dir, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.crt", "-days", "3", "-subj", f"/CN={cn}")

    def make_cert(self, name, ca, cn, san=None):
        openssl(self.dir, "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = self.dir / f"{name}.ext"
        lines = ["basicConstraints = CA:FALSE"]
        if san:
            lines.append(f"subjectAltName = {san}")
        ext.write_text("\n".join(lines) + "\n")
        openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
                "-CAkey", f"{ca}.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "3",
                "-extfile", str(ext))
        # libpq and PostgreSQL refuse keys others can read.
        os.chmod(self.dir / f"{name}.key", 0o600)

    def der(self, name):
        return ssl.PEM_cert_to_DER_cert((self.dir / f"{name}.crt").read_text())


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    c = Certs(tmp_path_factory.mktemp("tls-certs"))
    san = "DNS:localhost,IP:127.0.0.1"
    c.make_ca("ca", "pgsieve test CA")
    c.make_ca("otherca", "untrusted CA")
    c.make_cert("server", "ca", "localhost", san)
    c.make_cert("server2", "ca", "localhost renewed", san)
    c.make_cert("trustuser", "ca", "trustuser")
    c.make_cert("md5user", "ca", "md5user")
    c.make_cert("rogue", "otherca", "trustuser")
    return c


def client_tls(certs, mode="require", **extra):
    s = {"client_tls_sslmode": mode,
         "client_tls_key_file": certs.path("server.key"),
         "client_tls_cert_file": certs.path("server.crt"),
         "client_tls_ca_file": certs.path("ca.crt"),
         "server_tls_sslmode": "disable"}
    s.update(extra)
    return s


def tls_raw(p, cafile=None):
    """A RawConn that did SSLRequest and a TLS handshake (checking the
    pooler's certificate against cafile when given)."""
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"S"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    raw.sock = ctx.wrap_socket(raw.sock)
    return raw


def tls_console(p):
    return p.connect(dbname="pgbouncer", user=ADMIN, sslmode="require")


def os_console(p):
    """The admin console over the unix socket, as the OS user we run as."""
    raw = RawConn(None, None, unix_path=p.unix_path())
    raw.startup("pgbouncer", "pgbouncer")
    return raw


def console_rows(raw, what):
    rows, _, errors, _ = raw.simple_query(f"SHOW {what}")
    assert errors == []
    return rows


TLS_COLUMN = 17   # of SHOW CLIENTS / SERVERS


def psql(p, conninfo, sql):
    return subprocess.run([pg_bin("psql"), "-X", "-At", "-c", sql, conninfo],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PGCONNECT_TIMEOUT="5"))


# ------------------------------------------------------------------ towards clients

def test_psql_sslmode_require_runs_over_tls(pooler, certs):
    p = pooler(settings=client_tls(certs, "require"))
    out = psql(p, f"host=127.0.0.1 port={p.port} dbname=testdb user=trustuser sslmode=require",
               "select 40 + 2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"
    with p.connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 1").fetchone()[0] == 1
        admin = os_console(p)
        rows = console_rows(admin, "CLIENTS")
        admin.close()
    tcp = [r for r in rows if r[5] == "127.0.0.1"]
    unix = [r for r in rows if r[5] == "unix"]
    assert len(tcp) == 1 and len(unix) == 1, rows
    # PgBouncer's form: protocol/cipher/key exchange.
    assert tcp[0][TLS_COLUMN].startswith("TLSv1."), tcp[0]
    assert len(tcp[0][TLS_COLUMN].split("/")) == 3, tcp[0]
    assert unix[0][TLS_COLUMN] == "", unix[0]
    p.wait_log(r"login attempt: db=testdb user=trustuser tls=TLSv1\.\d/")


def test_verify_full_against_the_test_ca(pooler, certs):
    p = pooler(settings=client_tls(certs, "prefer"))
    for host in ("127.0.0.1", "localhost"):
        with p.connect(sslmode="verify-full", sslrootcert=certs.path("ca.crt"), host=host) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("select 'verified'").fetchone()[0] == "verified"
    out = psql(p, f"host=127.0.0.1 port={p.port} dbname=testdb user=trustuser "
                  f"sslmode=verify-full sslrootcert={certs.path('ca.crt')}", "select 7")
    assert out.returncode == 0 and out.stdout.strip() == "7", out.stderr
    # prefer still lets clear text in.
    with p.connect(sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use


def test_verify_full_fails_against_another_ca(pooler, certs):
    p = pooler(settings=client_tls(certs, "require"))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        p.connect(sslmode="verify-full", sslrootcert=certs.path("otherca.crt"))
    p.wait_log(r"TLS handshake failed")
    with p.connect(sslmode="require") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_require_refuses_clear_text_tcp_but_not_unix(pooler, certs):
    p = pooler(settings=client_tls(certs, "require"))
    raw = p.raw()
    with pytest.raises(PgError) as e:
        raw.startup("trustuser", "testdb")
    raw.close()
    assert e.value.fields["S"] == "FATAL"
    assert e.value.sqlstate in ("28000", "08P01")
    assert e.value.message == "SSL required"
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        p.connect(sslmode="disable")
    # The unix socket is local: never offered TLS, never asked for it.
    with p.connect(host=str(p.sockdir), sslmode="prefer") as c:
        assert not c.pgconn.ssl_in_use
        assert c.execute("select 'unix'").fetchone()[0] == "unix"
    raw = RawConn(None, None, unix_path=p.unix_path())
    raw.send(ssl_request())
    assert raw.read_byte() == b"N"
    raw.close()


def test_gssenc_request_is_always_declined(pooler, certs):
    p = pooler(settings=client_tls(certs, "require"))
    raw = p.raw()
    raw.send(GSSENC_REQUEST)
    assert raw.read_byte() == b"N"
    raw.close()


def test_disable_answers_n(pooler, certs):
    p = pooler(settings=client_tls(certs, "disable"))
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"N"
    raw.startup("trustuser", "testdb")
    raw.close()


# ------------------------------------------------------------------ client certificates

def cert_kw(certs, name):
    if name is None:
        return {"sslcert": "/nonexistent/no.crt", "sslkey": "/nonexistent/no.key"}
    return {"sslcert": certs.path(f"{name}.crt"), "sslkey": certs.path(f"{name}.key")}


def test_cert_auth_logs_in_by_common_name(pooler, certs):
    # No password anywhere: the auth_file entry is empty.
    auth = default_auth_users()
    auth["trustuser"] = ""
    p = pooler(settings=client_tls(certs, "require", auth_type="cert"), auth_users=auth)
    with p.connect(sslmode="require", **cert_kw(certs, "trustuser")) as c:
        assert c.execute("select current_user").fetchone()[0] == "trustuser"


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_cert_auth_refuses_other_name_or_no_certificate(pooler, certs, mode):
    p = pooler(settings=client_tls(certs, mode, auth_type="cert"))
    with pytest.raises(psycopg.OperationalError,
                       match='certificate authentication failed for user "trustuser"'):
        p.connect(sslmode="require", **cert_kw(certs, "md5user"))
    if mode == "require":
        with pytest.raises(psycopg.OperationalError, match="no valid client certificate"):
            p.connect(sslmode="require", **cert_kw(certs, None))
    else:
        # verify-full demands a certificate already in the handshake.
        with pytest.raises(psycopg.OperationalError):
            p.connect(sslmode="require", **cert_kw(certs, None))
    # A certificate from a CA the pooler does not trust fails the handshake.
    with pytest.raises(psycopg.OperationalError):
        p.connect(sslmode="require", **cert_kw(certs, "rogue"))
    p.wait_log(r"TLS handshake failed")
    with p.connect(sslmode="require", **cert_kw(certs, "trustuser")) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_cert_auth_needs_tls(pooler, certs):
    p = pooler(settings=client_tls(certs, "allow", auth_type="cert"))
    with pytest.raises(psycopg.OperationalError, match="TLS connection required"):
        p.connect(sslmode="disable")


def test_hba_cert_only_on_hostssl(pooler, certs):
    hba = "hostssl all all 127.0.0.1/32 cert\nhost all all 127.0.0.1/32 reject\n"
    p = pooler(settings=client_tls(certs, "prefer", auth_type="hba"), hba=hba)
    with p.connect(sslmode="require", **cert_kw(certs, "trustuser")) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError, match="login rejected"):
        p.connect(sslmode="disable")


# ------------------------------------------------------------------ hostile bytes

def test_garbage_instead_of_a_handshake_is_closed(pooler, certs):
    p = pooler(settings=client_tls(certs, "require"))
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"S"
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
    closed, data, secs = raw.wait_closed(5)
    raw.close()
    assert closed and secs < 3, (closed, secs)
    p.wait_log(r"TLS handshake failed")
    assert p.alive()
    with p.connect(sslmode="require") as c:
        assert c.execute("select 'still here'").fetchone()[0] == "still here"


def test_plaintext_behind_ssl_request_is_refused(pooler, certs):
    # CVE-2021-23214: bytes sent with the SSLRequest, before any answer,
    # would otherwise be read as if they had come through TLS.
    p = pooler(settings=client_tls(certs, "prefer"))
    raw = p.raw()
    raw.send(ssl_request() + startup_packet({"user": "trustuser", "database": "testdb"}))
    closed, data, _ = raw.wait_closed(5)
    raw.close()
    assert closed
    assert not data.startswith(b"S"), data
    assert data[:1] == b"E", data
    fields = parse_error_fields(data[5:])
    assert "unencrypted data after SSL request" in fields["M"]
    assert fields["C"] == "08P01"


def test_tls_client_that_vanishes_mid_handshake(pooler, certs):
    p = pooler(settings=client_tls(certs, "require", client_login_timeout="1"))
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"S"
    raw.send(b"\x16\x03\x01\x00")     # the start of a ClientHello, then nothing
    closed, _, secs = raw.wait_closed(5)
    raw.close()
    assert closed and secs < 4, (closed, secs)
    with p.connect(sslmode="require") as c:
        assert c.execute("select 1").fetchone()[0] == 1


# ------------------------------------------------------------------ SCRAM over TLS

def test_scram_over_tls_without_channel_binding(pooler, certs):
    p = pooler(settings=client_tls(certs, "require", auth_type="scram-sha-256"))
    raw = tls_raw(p, cafile=certs.path("ca.crt"))
    raw.send(startup_packet({"user": "scramuser", "database": "testdb"}))
    mtype, payload = raw.read_msg()
    raw.close()
    assert mtype == b"R"
    assert struct.unpack("!I", payload[:4])[0] == 10      # AuthenticationSASL
    mechanisms = [m for m in payload[4:].split(b"\0") if m]
    assert mechanisms == [b"SCRAM-SHA-256"]
    with p.connect(user="scramuser", password="scrampw", sslmode="require",
                   channel_binding="prefer") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select current_user").fetchone()[0] == "scramuser"
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        p.connect(user="scramuser", password="scrampw", sslmode="require",
                  channel_binding="require")


# ------------------------------------------------------------------ reload

def peer_cert(p, certs):
    raw = tls_raw(p, cafile=certs.path("ca.crt"))
    der = raw.sock.getpeercert(binary_form=True)
    raw.close()
    return der


def test_reload_picks_up_new_certificate_and_keeps_old_on_error(pooler, certs, tmp_path):
    key, crt = tmp_path / "live.key", tmp_path / "live.crt"
    shutil.copy(certs.path("server.key"), key)
    shutil.copy(certs.path("server.crt"), crt)
    os.chmod(key, 0o600)
    p = admin_pooler(pooler, settings=client_tls(certs, "require",
                                                 client_tls_key_file=str(key),
                                                 client_tls_cert_file=str(crt)))
    assert peer_cert(p, certs) == certs.der("server")
    before = p.connect(sslmode="require")
    shutil.copy(certs.path("server2.key"), key)
    shutil.copy(certs.path("server2.crt"), crt)
    p.reload()
    assert peer_cert(p, certs) == certs.der("server2")
    # A session made before the reload keeps going on its old context.
    assert before.execute("select 'old session'").fetchone()[0] == "old session"
    before.close()

    unreadable = tmp_path / "unreadable.key"
    shutil.copy(certs.path("server.key"), unreadable)
    os.chmod(unreadable, 0)
    p.write_config(settings={"client_tls_key_file": str(unreadable)})
    since = p.log_size()
    p.reload()
    p.wait_log(r"reload failed, keeping the running configuration: .*pgbouncer\.ini:\d+: "
               r"client_tls_key_file: cannot read .*unreadable\.key", since=since)
    with tls_console(p) as c:
        with pytest.raises(psycopg.Error, match="client_tls_key_file: cannot read"):
            run(c, "RELOAD")
        assert one(show(c, "CONFIG"), key="client_tls_key_file")["value"] == str(key)
    assert peer_cert(p, certs) == certs.der("server2")
    with p.connect(sslmode="require") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_console_set_rebuilds_tls_all_or_nothing(pooler, certs):
    p = admin_pooler(pooler, settings=client_tls(certs, "require"))
    with tls_console(p) as c:
        with pytest.raises(psycopg.Error, match="client_tls_ciphers: no usable cipher"):
            run(c, "SET client_tls_ciphers = 'NO-SUCH-CIPHER'")
        assert one(show(c, "CONFIG"), key="client_tls_ciphers")["value"] == "default"
        run(c, "SET client_tls_sslmode = 'disable'")
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"N"
    raw.close()


@pytest.mark.parametrize("setting,value,message", [
    ("client_tls_key_file", "/nonexistent/key.pem", "cannot read /nonexistent/key.pem"),
    ("client_tls_protocols", "tlsv1.9", "unknown TLS protocol"),
    ("client_tls_ca_file", "", "needs client_tls_ca_file"),
])
def test_bad_tls_settings_stop_the_start(pooler, certs, setting, value, message):
    p = pooler(settings=client_tls(certs, "verify-full", **{setting: value}), wait=False)
    p.expect_exit = True
    p.expect_fatal(setting)
    assert p.wait_exit(10) not in (None, 0)
    log = p.log()
    assert message in log, log
    assert f"{setting}:" in log or "client_tls_sslmode:" in log, log
    assert "pgbouncer.ini:" in log, log


# ------------------------------------------------------------------ online restart

@pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's online restart")
def test_online_restart_drops_tls_clients_keeps_plain_ones(pooler, certs):
    p = admin_pooler(pooler, settings=client_tls(certs, "prefer"))
    plain = p.connect(sslmode="disable")
    secure = p.connect(sslmode="require")
    assert plain.execute("select 1").fetchone()[0] == 1
    assert secure.execute("select 1").fetchone()[0] == 1
    new = take_over(pooler, p)
    p.wait_log(r"not handed over: TLS connection")
    assert plain.execute("select 'moved'").fetchone()[0] == "moved"
    with pytest.raises(psycopg.OperationalError):
        secure.execute("select 1")
    plain.close()
    secure.close()
    with new.connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use


# ------------------------------------------------------------------ towards servers

SSL_ONLY = "sslonly"
HBA_SSL_ONLY = (f"hostssl all {SSL_ONLY} 127.0.0.1/32 trust\n"
                f"host    all {SSL_ONLY} 127.0.0.1/32 reject\n")


@pytest.fixture(scope="module")
def pg_ssl(pg, certs):
    """ssl = on for the session's PostgreSQL, and a role that pg_hba only
    admits over hostssl. Undone at the end of the module."""
    hba = pg.datadir / "pg_hba.conf"
    original = hba.read_text()
    pg.sql(f"ALTER SYSTEM SET ssl_cert_file = '{certs.path('server.crt')}'", dbname="postgres")
    pg.sql(f"ALTER SYSTEM SET ssl_key_file = '{certs.path('server.key')}'", dbname="postgres")
    pg.sql("ALTER SYSTEM SET ssl = on", dbname="postgres")
    if not pg.sql("select 1 from pg_roles where rolname = %s", [SSL_ONLY], dbname="postgres"):
        pg.sql(f"CREATE ROLE {SSL_ONLY} LOGIN", dbname="postgres")
    hba.write_text(HBA_SSL_ONLY + original)
    pg.sql("select pg_reload_conf()", dbname="postgres")
    wait_for(lambda: pg.sql("show ssl", dbname="postgres")[0][0] == "on", 10,
             what="ssl = on in PostgreSQL")
    try:
        yield pg
    finally:
        hba.write_text(original)
        for name in ("ssl", "ssl_cert_file", "ssl_key_file"):
            pg.sql(f"ALTER SYSTEM RESET {name}", dbname="postgres")
        pg.sql("select pg_reload_conf()", dbname="postgres")
        wait_for(lambda: pg.sql("show ssl", dbname="postgres")[0][0] == "off", 10,
                 what="ssl = off in PostgreSQL")


def server_tls(certs, mode, ca="ca"):
    s = {"server_tls_sslmode": mode}
    if ca:
        s["server_tls_ca_file"] = certs.path(f"{ca}.crt")
    return s


def ssl_only_auth():
    auth = default_auth_users()
    auth[SSL_ONLY] = ""
    return auth


def backend_ssl(c):
    return c.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()").fetchone()


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full", "prefer"])
def test_server_connection_runs_over_tls(pooler, certs, pg_ssl, mode):
    p = pooler(settings=server_tls(certs, mode), auth_users=ssl_only_auth())
    with p.connect(user=SSL_ONLY) as c:
        on, version = backend_ssl(c)
        assert on is True and version.startswith("TLSv1."), (on, version)
        admin = os_console(p)
        rows = console_rows(admin, "SERVERS")
        admin.close()
    assert len(rows) == 1 and rows[0][TLS_COLUMN].startswith("TLSv1."), rows


def test_server_verify_full_by_host_name(pooler, certs, pg_ssl):
    # A name goes out as SNI and must match the certificate's DNS name.
    p = pooler(settings=server_tls(certs, "verify-full"), auth_users=ssl_only_auth(),
               databases={"testdb": f"host=localhost port={pg_ssl.port} dbname=testdb"})
    with p.connect(user=SSL_ONLY) as c:
        assert backend_ssl(c)[0] is True


def test_server_tls_disable_cannot_reach_hostssl_role(pooler, certs, pg_ssl):
    # Shows the fixture bites: without TLS the role is turned away.
    p = pooler(settings=server_tls(certs, "disable", ca=None), auth_users=ssl_only_auth())
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects"):
        p.connect(user=SSL_ONLY)


def test_server_verify_full_fails_against_another_ca(pooler, certs, pg_ssl):
    p = pooler(settings=server_tls(certs, "verify-full", ca="otherca"))
    with pytest.raises(psycopg.OperationalError):
        p.connect()
    p.wait_log(r"TLS handshake with the server failed: certificate verification failed")
    assert not pg_ssl.backends(usename="trustuser")


class FakeServer:
    """Accepts one connection at a time, reads the SSLRequest, answers with
    `answer`, then records what the pooler sends next."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(3)
                try:
                    request = conn.recv(8)
                    conn.sendall(self.answer)
                    rest = conn.recv(1024)
                except OSError:
                    continue
                self.received.append((request, rest))

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("answer,mode,message", [
    (b"N", "require", "server refused TLS, which server_tls_sslmode = require requires"),
    (b"S" + b"injected", "require", "unencrypted data after its answer"),
    (b"X", "prefer", "invalid answer to the TLS request"),
])
def test_server_tls_answers_that_fail_the_login(pooler, certs, answer, mode, message):
    fake = FakeServer(answer)
    try:
        p = pooler(settings=server_tls(certs, mode, ca=None),
                   databases={"fakedb": f"host=127.0.0.1 port={fake.port} dbname=fakedb"})
        with pytest.raises(psycopg.OperationalError):
            p.connect(dbname="fakedb")
        p.wait_log(message)
        wait_for(lambda: fake.received, 5, what="the fake server's record")
        assert fake.received[0][0] == ssl_request()
        # Nothing after the refusal: no startup packet in clear text.
        assert all(rest == b"" for _, rest in fake.received), fake.received
    finally:
        fake.close()


def test_server_prefer_goes_on_in_clear_text_after_n(pooler, certs):
    fake = FakeServer(b"N")
    try:
        p = pooler(settings=server_tls(certs, "prefer", ca=None),
                   databases={"fakedb": f"host=127.0.0.1 port={fake.port} dbname=fakedb"})
        with pytest.raises(psycopg.OperationalError):
            p.connect(dbname="fakedb")
        wait_for(lambda: fake.received, 5, what="a connection at the fake server")
        request, rest = fake.received[0]
        assert request == ssl_request()
        assert rest[4:8] == struct.pack("!I", 3 << 16), rest    # a v3 startup packet
        assert b"user\0trustuser\0" in rest
    finally:
        fake.close()


def test_no_tls_request_to_unix_socket_servers(pooler, certs, pg_ssl):
    p = pooler(settings=server_tls(certs, "require"),
               databases={"testdb": f"host={pg_ssl.sockdir} port={pg_ssl.port} dbname=testdb"})
    with p.connect() as c:
        on, _ = backend_ssl(c)
        assert on is False


def test_large_data_both_ways_over_tls_on_both_sides(pooler, certs, pg_ssl, table):
    # Megabytes each way through two TLS legs: partial writes, full
    # socket buffers and back-pressure all happen inside the TLS layer.
    settings = client_tls(certs, "require", **server_tls(certs, "verify-full"))
    p = pooler(settings=settings)
    rows = 20000
    line = "x" * 200
    with p.connect(sslmode="require") as c:
        with c.cursor().copy(f"COPY {table} (v) FROM STDIN") as cp:
            for i in range(rows):
                cp.write_row((i,))
        got = c.execute(f"select count(*), sum(v) from {table}").fetchone()
        assert got == (rows, rows * (rows - 1) // 2)
        big = c.execute("select string_agg(%s || g::text, ',') from generate_series(1, %s) g",
                        (line, rows)).fetchone()[0]
        want = ",".join(f"{line}{g}" for g in range(1, rows + 1))
        assert hashlib.sha256(big.encode()).digest() == hashlib.sha256(want.encode()).digest()
        assert backend_ssl(c)[0] is True
        echoed = c.execute("select length(%s)", (want,)).fetchone()[0]
        assert echoed == len(want)
