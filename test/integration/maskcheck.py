"""
Helpers for the masking tests that check what a client received, byte for
byte: a raw client that records everything the pooler sent it, in simple
and extended protocol (text or binary results); a recording TCP tap to put
in front of a real driver (psycopg); a detector of clear-text secrets and
of obvious transforms of them; and a pooler shared by a whole module.
"""

import base64
import contextlib
import hashlib
import select
import socket
import struct
import threading
import time

import pytest

from conftest import Pooler, default_auth_users
from helpers import RawConn, message, parse_error_fields, query_message


# ------------------------------------------------------------------ detector

def transforms(value):
    """value and what a query can trivially turn it into: the detector looks
    for all of them."""
    b = value.encode()
    return {
        "clear": b,
        "upper": value.upper().encode(),
        "lower": value.lower().encode(),
        "reversed": value[::-1].encode(),
        "md5": hashlib.md5(b).hexdigest().encode(),
        "sha256": hashlib.sha256(b).hexdigest().encode(),
        "base64": base64.b64encode(b).rstrip(b"="),
        "hex": b.hex().encode(),
    }


class Detector:
    """Finds secrets in received bytes. `values` are whole column values
    (looked for with every transform); `fragments` are distinctive parts of
    them that masking never shows (an email's local part, a card's first
    twelve digits), looked for as they are, upper-cased and reversed."""

    def __init__(self, values, fragments=()):
        self.needles = []
        for v in values:
            for how, n in transforms(v).items():
                self.needles.append((f"{how}({v})", n))
        for f in fragments:
            for how, n in (("part", f), ("part-upper", f.upper()), ("part-reversed", f[::-1])):
                self.needles.append((f"{how}({f})", n.encode()))

    def leaks(self, data):
        """[(what, offset, context)] for every needle found in data."""
        data = bytes(data)
        found = []
        low = data.lower()
        for what, n in self.needles:
            # hex digests and hex dumps are found whatever their case
            hay = low if what.startswith(("md5", "sha256", "hex")) else data
            i = hay.find(n.lower() if hay is low else n)
            if i >= 0:
                ctx = data[max(0, i - 24):i + len(n) + 24]
                found.append((what, i, ctx))
        return found


# ------------------------------------------------------------ recording client

class RecordingConn(RawConn):
    """RawConn that keeps every byte it received from the pooler."""

    def __init__(self, *a, **kw):
        self.received = bytearray()
        super().__init__(*a, **kw)

    def on_chunk(self, chunk):
        self.received += chunk

    def drain(self, timeout=0.2):
        """Records whatever else arrives within timeout (late notices or
        notifications)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk
            self.buf += chunk


def _cstr(s):
    return s.encode() + b"\0"


def parse_msg(sql, name=""):
    return message(b"P", _cstr(name) + _cstr(sql) + struct.pack("!H", 0))


def bind_msg(stmt="", portal="", result_format=0):
    # no parameters; one result format code for every column
    return message(b"B", _cstr(portal) + _cstr(stmt) + struct.pack("!HHHH", 0, 0, 1,
                                                                   result_format))


def describe_msg(kind, name=""):
    return message(b"D", kind + _cstr(name))


def execute_msg(portal="", max_rows=0):
    return message(b"E", _cstr(portal) + struct.pack("!I", max_rows))


def sync_msg():
    return message(b"S")


def close_msg(kind, name=""):
    return message(b"C", kind + _cstr(name))


class Answer:
    """What one statement got back: every message until ReadyForQuery."""

    def __init__(self, sql, msgs):
        self.sql = sql
        self.msgs = msgs
        self.errors = [parse_error_fields(p) for t, p in msgs if t == b"E"]
        self.rows = [p for t, p in msgs if t == b"D"]
        self.copy_data = [p for t, p in msgs if t == b"d"]

    def __repr__(self):
        kinds = "".join(t.decode() for t, _ in self.msgs)
        return f"<{self.sql[:60]!r}: {kinds} errors={self.errors}>"


def read_answer(conn, sql, timeout):
    msgs = []
    while True:
        t, p = conn.read_msg(timeout)
        msgs.append((t, p))
        if t == b"G":   # COPY FROM STDIN: not part of any corpus entry, but never hang
            conn.send(message(b"f", b"no copy in from this client\0"))
        if t == b"Z":
            return Answer(sql, msgs)


def run_simple(conn, sql, timeout=10):
    conn.send(query_message(sql))
    return read_answer(conn, sql, timeout)


def run_extended(conn, sql, binary=False, timeout=10):
    """Parse/Bind/Describe(portal)/Execute/Sync of the unnamed statement, all
    result columns in text or binary."""
    conn.send(parse_msg(sql) + bind_msg(result_format=1 if binary else 0) +
              describe_msg(b"P") + execute_msg() + sync_msg())
    return read_answer(conn, sql, timeout)


def run(conn, sql, mode, timeout=10):
    if mode == "simple":
        return run_simple(conn, sql, timeout)
    if mode == "extended":
        return run_extended(conn, sql, False, timeout)
    if mode == "binary":
        return run_extended(conn, sql, True, timeout)
    raise ValueError(mode)


def raw_connect(pooler, user="trustuser", dbname="testdb", password=None, timeout=10.0):
    c = RecordingConn(pooler.host, pooler.port, timeout=timeout)
    c.startup(user, dbname, password=password)
    return c


# --------------------------------------------------------------- recording tap

class Tap:
    """A TCP relay on 127.0.0.1 in front of host:port for ONE client
    connection; `received` holds every byte the upstream sent the client."""

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.host = "127.0.0.1"
        self.received = bytearray()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(30)
        try:
            cli, _ = self.lsock.accept()
        except OSError:
            return
        up = socket.create_connection(self.upstream, timeout=10)
        socks = [cli, up]
        try:
            while not self._stop:
                r, _, _ = select.select(socks, [], [], 0.2)
                for s in r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    if s is up:
                        self.received += data
                        cli.sendall(data)
                    else:
                        up.sendall(data)
        finally:
            for s in socks:
                with contextlib.suppress(OSError):
                    s.close()

    def close(self):
        self._stop = True
        self.thread.join(5)
        with contextlib.suppress(OSError):
            self.lsock.close()


# --------------------------------------------------------- module-wide pooler

def start_shared_pooler(pg, workdir, name, settings):
    """A pooler that lives as long as a module fixture (the `pooler` factory
    is per test). stop_shared_pooler() does the factory's teardown checks."""
    workdir.mkdir(parents=True, exist_ok=True)
    p = Pooler(pg, workdir, name)
    p.settings = p.default_settings()
    p.write_config(settings=settings, databases=p.default_databases(), users={},
                   auth_users=default_auth_users(), hba=None, extra_ini="")
    p.start()
    return p


def stop_shared_pooler(p):
    died = p.proc is not None and p.proc.poll() is not None and not p.stopped
    p.stop()
    problems = list(p.problems())
    if died:
        problems.insert(0, f"shared pooler died (exit {p.proc.returncode})")
    if problems:
        pytest.fail("\n".join(problems + ["log tail:\n" + p.log_tail()]), pytrace=False)


def proc_status_kb(pid, field):
    """VmRSS / VmHWM (kB) of a process from /proc, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
