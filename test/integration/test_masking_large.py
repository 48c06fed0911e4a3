"""
Masking of large results (issue 7): a million masked rows stream through
pgsieve with flat memory, also while the client does not read; a 50 MB row
is masked end to end; a row over max_masked_row_size ends its query with
42501 and the session goes on. Memory is pgsieve's own, read from
/proc/<pid>/status (VmRSS sampled during the stream, VmHWM at the end);
values are checked on the bytes the client received.
"""

import os
import socket
import threading
import time

import pytest

from conftest import IS_PGBOUNCER, VALGRIND
from helpers import query_message, startup_packet
from maskcheck import Detector, proc_status_kb, raw_connect, run_extended, run_simple

# ASan's quarantine and valgrind keep freed memory: RSS says nothing there.
MEASURES_MEMORY = not VALGRIND and "ASAN_OPTIONS" not in os.environ

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's masking")

EMAIL = "dora.bigsecret@bigcorp.example"
CARD = "4532015112830366"
MASKED_EMAIL = b"***@bigcorp.example"
MASKED_CARD = b"***0366"
ROWS = 1_000_000
# The 50 MB value: md5 digests of 1..N, then a domain (the email masker keeps it).
HUGE_N = 50 * 1024 * 1024 // 32
HUGE_PREFIX = "c4ca4238a0b923820dcc509a6f75849b"   # md5('1'), how the value starts
RSS_BOUND_KB = 32 * 1024

SCRIPT = """
return { init = function()
  sieve.mask_column('public.bx_one.email', sieve.mask.email)
  sieve.mask_column('public.bx_one.card', sieve.mask.partial{keep_last = 4})
  sieve.mask_column('public.bx_huge.email', sieve.mask.email)
end }
"""

DETECTOR = Detector([EMAIL, CARD], ["dora.bigsecret", CARD[:12], HUGE_PREFIX])


@pytest.fixture(scope="module")
def big_data(pg):
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS bx_one, bx_huge")
        conn.execute("CREATE TABLE bx_one (email text, card text)")
        conn.execute("INSERT INTO bx_one VALUES (%s, %s)", [EMAIL, CARD])
        conn.execute("CREATE TABLE bx_huge (id int, email text)")
        conn.execute("INSERT INTO bx_huge SELECT 1, string_agg(md5(g::text), '' ORDER BY g) "
                     "|| '@bigcorp.example' FROM generate_series(1, %s) g", [HUGE_N])
        conn.execute("GRANT SELECT ON bx_one, bx_huge TO PUBLIC")
        size = conn.execute("SELECT length(email) FROM bx_huge").fetchone()[0]
        assert size > 50 * 1024 * 1024
    yield
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS bx_one, bx_huge")


def masked_pooler(pooler, tmp_path, **settings):
    (tmp_path / "mask.lua").write_text(SCRIPT)
    cfg = {"policy_scripts": str(tmp_path / "mask.lua")}
    cfg.update(settings)
    return pooler(settings=cfg)


class RssSampler:
    """Samples a process's VmRSS every few milliseconds in a thread."""

    def __init__(self, pid, interval=0.01):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = proc_status_kb(self.pid, "VmRSS")
            if v:
                self.peak = max(self.peak, v)
                self.samples += 1
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)


def login(p):
    s = socket.create_connection((p.host, p.port), timeout=30)
    s.sendall(startup_packet({"user": "trustuser", "database": "testdb"}))
    buf = b""
    while b"Z\x00\x00\x00\x05" not in buf:
        chunk = s.recv(65536)
        assert chunk, "closed during login"
        buf += chunk
    return s


def stream_rows(s, secrets, marker):
    """Reads one query's answer as it comes, keeping nothing but counts.
    Returns (data rows, rows with the marker, errors, secrets seen)."""
    buf = bytearray()
    pos = 0
    rows = marked = 0
    errors = []
    seen = set()
    tail = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise AssertionError("connection closed mid-result")
        window = tail + chunk
        for sec in secrets:
            if sec in window:
                seen.add(sec)
        tail = chunk[-64:]
        buf += chunk
        n = len(buf)
        while n - pos >= 5:
            ln = int.from_bytes(buf[pos + 1:pos + 5], "big")
            if n - pos < 1 + ln:
                break
            t = buf[pos]
            if t == 0x44:   # D
                rows += 1
                if buf.find(marker, pos + 5, pos + 1 + ln) >= 0:
                    marked += 1
            elif t == 0x45:  # E
                errors.append(bytes(buf[pos + 5:pos + 1 + ln]))
            elif t == 0x5A:  # Z
                return rows, marked, errors, seen
            pos += 1 + ln
        del buf[:pos]
        pos = 0


@pytest.mark.timeout(180)
def test_million_masked_rows_stream_with_flat_memory(pooler, tmp_path, big_data):
    p = masked_pooler(pooler, tmp_path)
    # Warm up: a masked result has been planned once, buffers exist.
    warm = raw_connect(p)
    ans = run_simple(warm, "SELECT g, o.email, o.card FROM generate_series(1, 1000) g, bx_one o")
    warm.close()
    assert len(ans.rows) == 1000 and not ans.errors
    time.sleep(0.2)
    base = proc_status_kb(p.pid, "VmRSS")

    s = login(p)
    secrets = [EMAIL.encode(), CARD.encode(), b"dora.bigsecret"]
    with RssSampler(p.pid) as sampler:
        s.sendall(query_message(
            f"SELECT g, o.email, o.card FROM generate_series(1, {ROWS}) g CROSS JOIN bx_one o"))
        # The client does not read for a while: pgsieve must stop reading the
        # server rather than queue masked rows without bound.
        time.sleep(2.0)
        stalled_peak = sampler.peak
        t0 = time.monotonic()
        rows, marked, errors, seen = stream_rows(s, secrets, MASKED_EMAIL)
        secs = time.monotonic() - t0
    s.close()
    hwm = proc_status_kb(p.pid, "VmHWM")
    report = (f"baseline VmRSS {base} kB, peak sampled VmRSS {sampler.peak} kB "
              f"(+{sampler.peak - base} kB; +{stalled_peak - base} kB while the client "
              f"did not read), VmHWM {hwm} kB, {sampler.samples} samples, "
              f"{rows} rows read in {secs:.1f}s")
    print(report)
    assert not errors, f"{errors[:2]}; {report}"
    assert not seen, f"clear values reached the client: {seen}; {report}"
    assert rows == ROWS and marked == ROWS, report
    if MEASURES_MEMORY:
        assert sampler.peak - base < RSS_BOUND_KB, report
        assert hwm - base < RSS_BOUND_KB, report


def huge_answer(conn, mode):
    q = "SELECT id, email FROM bx_huge"
    if mode == "simple":
        return run_simple(conn, q, timeout=60)
    return run_extended(conn, q, binary=(mode == "binary"), timeout=60)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["simple", "extended", "binary"])
def test_fifty_megabyte_row_is_masked(pooler, tmp_path, big_data, mode):
    p = masked_pooler(pooler, tmp_path)
    conn = raw_connect(p, timeout=60)
    try:
        base = proc_status_kb(p.pid, "VmRSS")
        ans = huge_answer(conn, mode)
        hwm = proc_status_kb(p.pid, "VmHWM")
        print(f"50 MB row ({mode}): baseline VmRSS {base} kB, VmHWM {hwm} kB")
        assert not ans.errors, ans
        assert len(ans.rows) == 1
        row = bytes(ans.rows[0])
        # two columns: id, then the masked email, nothing of the value itself
        assert row.endswith(b"\x00\x00\x00" + bytes([len(MASKED_EMAIL)]) + MASKED_EMAIL), row
        assert len(conn.received) < 64 * 1024, len(conn.received)
        assert not DETECTOR.leaks(conn.received)
        again = run_simple(conn, "SELECT email FROM bx_one")
        assert not again.errors and MASKED_EMAIL in bytes(again.rows[0])
    finally:
        conn.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["simple", "extended"])
def test_row_over_max_masked_row_size_ends_the_query(pooler, tmp_path, big_data, mode):
    p = masked_pooler(pooler, tmp_path, max_masked_row_size=str(10 * 1024 * 1024))
    conn = raw_connect(p, timeout=60)
    try:
        base = proc_status_kb(p.pid, "VmRSS")
        ans = huge_answer(conn, mode)
        hwm = proc_status_kb(p.pid, "VmHWM")
        print(f"refused 50 MB row ({mode}): baseline VmRSS {base} kB, VmHWM {hwm} kB")
        assert [e.get("C") for e in ans.errors] == ["42501"], ans
        assert "max_masked_row_size" in ans.errors[0].get("M", ""), ans
        assert not ans.rows
        assert not DETECTOR.leaks(conn.received)
        assert len(conn.received) < 64 * 1024
        # The refused row is dropped as it comes, never held whole.
        if MEASURES_MEMORY:
            assert hwm - base < RSS_BOUND_KB, f"VmHWM {hwm} kB, baseline {base} kB"
        # The same session goes on: a plain query, then a masked one.
        ok = run_simple(conn, "SELECT 41 + 1")
        assert not ok.errors and bytes(ok.rows[0]).endswith(b"42"), ok
        again = run(conn, mode, "SELECT email, card FROM bx_one")
        assert not again.errors and MASKED_EMAIL in bytes(again.rows[0]) and \
            MASKED_CARD in bytes(again.rows[0]), again
        # and a small row of the huge table's kind is still masked
        small = run(conn, mode, "SELECT id, email FROM bx_huge WHERE false")
        assert not small.errors and not small.rows
    finally:
        conn.close()
    assert not DETECTOR.leaks(conn.received)


def run(conn, mode, sql):
    return run_simple(conn, sql) if mode == "simple" else run_extended(conn, sql)
