"""
Helpers shared by the integration tests: a minimal PostgreSQL v3 wire client
over a raw socket (to send what real drivers never send and to read the exact
ErrorResponse a pooler answers), free-port selection, and small polling
utilities. Nothing here knows about pgsieve or PgBouncer specifically.
"""

import hashlib
import os
import random
import socket
import struct
import time

PROTO_V3 = 3 << 16
SSL_REQUEST_CODE = 80877103
CANCEL_REQUEST_CODE = 80877102

# Ports below the kernel's ephemeral range (32768-60999): a fixed port in
# that range can be taken at any moment by an outgoing connection.
_PORT_LOW, _PORT_HIGH = 12000, 32000
_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that is free right now and was not handed out
    before in this process. Bind-checked (SO_REUSEADDR off)."""
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(500):
        port = rnd.randint(_PORT_LOW, _PORT_HIGH)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found below 32768")


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value; returns that value.
    Raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def md5_secret(user, password):
    """The auth_file / pg_authid form of an MD5 password."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


# ---------------------------------------------------------------- wire format

def startup_packet(params, version=PROTO_V3):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)


def message(mtype, payload=b""):
    return mtype + struct.pack("!I", len(payload) + 4) + payload


def query_message(sql):
    return message(b"Q", sql.encode() + b"\0")


def password_message(pw):
    return message(b"p", pw.encode() + b"\0")


def terminate_message():
    return message(b"X")


def parse_error_fields(payload):
    """ErrorResponse/NoticeResponse body -> {'S': 'FATAL', 'C': '08P01', ...}"""
    fields = {}
    pos = 0
    while pos < len(payload) and payload[pos] != 0:
        code = chr(payload[pos])
        end = payload.index(b"\0", pos + 1)
        fields[code] = payload[pos + 1:end].decode(errors="replace")
        pos = end + 1
    return fields


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A PostgreSQL protocol connection on a plain socket. Reads return
    (type, payload) tuples; every read is bounded by a timeout."""

    def __init__(self, host, port, timeout=5.0, unix_path=None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.backend_key = None
        self.params = {}
        self.last_status = None

    # -- low level
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"timed out reading {n} bytes (have {len(self.buf)})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(self.buf)} buffered bytes")
            self.on_chunk(chunk)
            self.buf += chunk

    def on_chunk(self, chunk):
        """Every chunk read from the socket, for subclasses that keep them."""

    def read_byte(self, timeout=None):
        self._fill(1, timeout or self.timeout)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self, timeout=None):
        t = timeout or self.timeout
        self._fill(5, t)
        mtype = self.buf[:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 64 * 1024 * 1024:
            raise AssertionError(f"peer sent absurd message length {length} for type {mtype!r}")
        self._fill(1 + length, t)
        payload = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return mtype, payload

    def read_until_closed(self, timeout):
        """Reads messages until EOF. Returns (messages, closed, seconds)."""
        start = time.monotonic()
        msgs = []
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                return msgs, False, time.monotonic() - start
            try:
                msgs.append(self.read_msg(timeout=left))
            except ConnectionClosed:
                return msgs, True, time.monotonic() - start
            except socket.timeout:
                return msgs, False, time.monotonic() - start
            except OSError:
                return msgs, True, time.monotonic() - start

    def wait_closed(self, timeout):
        """Waits for EOF, discarding any bytes. Returns (closed, raw bytes, secs)."""
        start = time.monotonic()
        data = self.buf
        self.buf = b""
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                return False, data, time.monotonic() - start
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, data, time.monotonic() - start
            except OSError:
                return True, data, time.monotonic() - start
            if not chunk:
                return True, data, time.monotonic() - start
            data += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST (SO_LINGER 0): a client that vanishes."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- protocol level
    def startup(self, user, database, password=None, extra=None):
        """Sends a v3 StartupMessage and completes cleartext/MD5 auth (or
        trust). Returns the list of messages up to ReadyForQuery. Raises
        PgError on an ErrorResponse."""
        params = {"user": user, "database": database}
        params.update(extra or {})
        self.send(startup_packet(params))
        msgs = []
        while True:
            mtype, payload = self.read_msg()
            msgs.append((mtype, payload))
            if mtype == b"E":
                raise PgError(parse_error_fields(payload))
            if mtype == b"R":
                (code,) = struct.unpack("!I", payload[:4])
                if code == 0:
                    continue
                if code == 3:
                    self.send(password_message(password or ""))
                elif code == 5:
                    salt = payload[4:8]
                    inner = hashlib.md5(((password or "") + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(password_message("md5" + outer))
                else:
                    raise AssertionError(f"RawConn does not do auth method {code}")
            elif mtype == b"K":
                self.backend_key = struct.unpack("!II", payload[:8])
            elif mtype == b"S":
                k, v, _ = payload.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif mtype == b"Z":
                self.last_status = payload[:1]
                return msgs

    def simple_query(self, sql, timeout=None):
        """Runs a simple query. Returns (rows, tags, errors, status)."""
        self.send(query_message(sql))
        rows, tags, errors = [], [], []
        while True:
            mtype, payload = self.read_msg(timeout)
            if mtype == b"D":
                (n,) = struct.unpack("!H", payload[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", payload[pos:pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif mtype == b"C":
                tags.append(payload.rstrip(b"\0").decode())
            elif mtype == b"E":
                errors.append(parse_error_fields(payload))
            elif mtype == b"S":
                k, v, _ = payload.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif mtype == b"Z":
                self.last_status = payload[:1]
                return rows, tags, errors, payload[:1]


class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S')} {fields.get('C')}: {fields.get('M')}")

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M")


def errors_in(msgs):
    """The parsed ErrorResponses among (type, payload) messages."""
    return [parse_error_fields(p) for t, p in msgs if t == b"E"]


def proc_rss_kb(pid):
    """Resident set size of a process in kB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loopback_tls_certs(d):
    """A throwaway CA and a server certificate for 127.0.0.1 under directory d:
    (ca, cert, key) paths."""
    import subprocess
    d.mkdir(parents=True, exist_ok=True)

    def run(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test ca")
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf")
    return str(d / "ca.crt"), str(d / "srv.crt"), str(d / "srv.key")
