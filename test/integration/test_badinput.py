"""
Hostile or broken input on raw sockets. After each case the pooler must
still serve a normal client, and must not have grown a huge allocation.

Where the pooler answers with an ErrorResponse, it is PgBouncer's: FATAL
08P01 (send_pooler_error's default SQLSTATE).
"""

import random
import socket
import struct
import time

import pytest

import expected as X
from helpers import (RawConn, cancel_request, errors_in, parse_error_fields, proc_rss_kb,
                     ssl_request, startup_packet)


@pytest.fixture
def p(pooler):
    return pooler(settings={"client_login_timeout": "2", "pool_mode": "transaction"})


def assert_closed_with_optional_error(raw, within=5):
    """The pooler closes the connection; if it sent bytes first they must be
    a well-formed ErrorResponse (FATAL/ERROR, SQLSTATE 08P01)."""
    closed, data, secs = raw.wait_closed(within)
    raw.close()
    assert closed, f"connection still open after {within}s"
    if data:
        assert data[:1] == b"E", f"unexpected reply {data[:40]!r}"
        (ln,) = struct.unpack("!I", data[1:5])
        fields = parse_error_fields(data[5:1 + ln])
        assert fields.get("C") == X.POOLER_SQLSTATE, fields
        assert fields.get("S") in ("FATAL", "ERROR"), fields
        return fields
    return None


def still_serves(p):
    p.assert_serves()
    assert p.alive()


def test_startup_length_below_8(p):
    raw = p.raw()
    raw.send(struct.pack("!I", 4) + b"\x00\x03\x00\x00")
    assert_closed_with_optional_error(raw)
    still_serves(p)


def test_startup_protocol_1_0(p):
    raw = p.raw()
    raw.send(startup_packet({"user": "trustuser", "database": "testdb"}, version=1 << 16))
    assert_closed_with_optional_error(raw)
    still_serves(p)


def test_startup_protocol_2_0_is_refused(p):
    raw = p.raw()
    raw.send(startup_packet({"user": "trustuser", "database": "testdb"}, version=2 << 16))
    assert_closed_with_optional_error(raw)
    still_serves(p)


def test_startup_length_over_10000(p):
    rss0 = proc_rss_kb(p.pid)
    raw = p.raw()
    body = struct.pack("!I", 3 << 16) + b"user\0" + b"x" * 20000 + b"\0\0"
    try:
        raw.send(struct.pack("!I", len(body) + 4) + body)
    except OSError:
        pass
    assert_closed_with_optional_error(raw, within=6)
    still_serves(p)
    assert proc_rss_kb(p.pid) - rss0 < 50_000


def test_huge_declared_startup_length(p):
    rss0 = proc_rss_kb(p.pid)
    raw = p.raw()
    raw.send(struct.pack("!II", 0x7FFFFFFF, 3 << 16) + b"user\0trustuser\0")
    assert_closed_with_optional_error(raw, within=6)
    still_serves(p)
    assert proc_rss_kb(p.pid) - rss0 < 50_000


def test_absurd_message_length_after_login(p):
    rss0 = proc_rss_kb(p.pid)
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    raw.send(b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"select 1")
    msgs, closed, _ = raw.read_until_closed(6)
    raw.close()
    assert closed, "connection left open after a 2 GB message header"
    for e in errors_in(msgs):
        assert e["S"] in ("FATAL", "ERROR")
    assert proc_rss_kb(p.pid) - rss0 < 50_000, "pooler allocated for the declared length"
    still_serves(p)


def test_startup_one_byte_per_second(p):
    raw = p.raw()
    pkt = startup_packet({"user": "trustuser", "database": "testdb"})
    start = time.monotonic()
    closed = False
    for b in pkt:
        try:
            raw.send(bytes([b]))
        except OSError:
            closed = True
            break
        raw.sock.settimeout(0.5)
        try:
            data = raw.sock.recv(4096)
            if not data:
                closed = True
                break
            # An ErrorResponse (client_login_timeout) before the close.
            assert data[:1] == b"E" and b"client_login_timeout" in data, data
            rest = raw.wait_closed(3)
            closed = rest[0]
            break
        except socket.timeout:
            pass
        if time.monotonic() - start > 8:
            break
    elapsed = time.monotonic() - start
    raw.close()
    assert closed, "slow startup was not cut off by client_login_timeout"
    assert 1.5 <= elapsed < 6, f"cut off after {elapsed:.1f}s with client_login_timeout=2"
    still_serves(p)


def test_random_bytes_after_login(p):
    rnd = random.Random(20261125)
    raw = p.raw()
    raw.startup("trustuser", "testdb")
    junk = bytes([0x01]) + bytes(rnd.getrandbits(8) for _ in range(300))
    try:
        raw.send(junk)
    except OSError:
        pass
    msgs, closed, _ = raw.read_until_closed(5)
    raw.close()
    assert closed
    errs = errors_in(msgs)
    # PgBouncer: "unknown pkt" FATAL 08P01.
    if errs:
        assert errs[-1]["C"] == X.POOLER_SQLSTATE
    still_serves(p)


def test_random_bytes_instead_of_startup(p):
    rnd = random.Random(7)
    for _ in range(5):
        raw = p.raw()
        try:
            raw.send(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200))))
        except OSError:
            pass
        raw.wait_closed(4)
        raw.close()
    still_serves(p)


def test_ssl_request_answered_n_then_startup(p):
    raw = p.raw()
    raw.send(ssl_request())
    assert raw.read_byte() == b"N"
    raw.startup("trustuser", "testdb")
    rows, _, errors, _ = raw.simple_query("select 'plain after N'")
    raw.close()
    assert errors == [] and rows == [["plain after N"]]


def test_bogus_cancel_request_closed_silently(p):
    raw = p.raw()
    raw.send(cancel_request(12345, 67890))
    closed, data, _ = raw.wait_closed(3)
    raw.close()
    assert closed
    assert data == b"", f"reply to a bogus cancel: {data!r}"
    still_serves(p)


def test_cancel_request_with_wrong_length(p):
    raw = p.raw()
    raw.send(struct.pack("!II", 12, 80877102) + b"\x00\x00\x00\x01")
    closed, _, _ = raw.wait_closed(3)
    raw.close()
    assert closed
    still_serves(p)


def test_password_message_before_startup(p):
    raw = p.raw()
    raw.send(b"p" + struct.pack("!I", 9) + b"secret\0")
    assert_closed_with_optional_error(raw)
    still_serves(p)


def test_many_half_open_connections(p):
    socks = []
    try:
        for _ in range(30):
            s = socket.create_connection((p.host, p.port), timeout=3)
            s.send(b"\x00\x00")
            socks.append(s)
        still_serves(p)
    finally:
        for s in socks:
            s.close()
    still_serves(p)


def test_unix_socket_login(p):
    raw = RawConn(None, None, unix_path=p.unix_path())
    raw.startup("trustuser", "testdb")
    rows, _, errors, _ = raw.simple_query("select 5")
    raw.close()
    assert rows == [["5"]] and errors == []
