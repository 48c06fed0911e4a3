"""
Masking by type (issue 7): every built-in masker (redact, null, email,
partial, hash, fixed) over text, varchar, int4, numeric, date, uuid, json
and jsonb, with NULLs, empty strings and multibyte text, read by psycopg in
simple protocol, extended protocol with text results, binary results, and
protocol-level prepared statements. The client must parse every masked
value as its column's type (or get NULL), and no clear value, in its text
or binary form, may be in the bytes it received (a recording tap between
psycopg and pgsieve keeps them).
"""

import datetime
import decimal
import re
import struct
import uuid

import psycopg
import pytest

from conftest import IS_PGBOUNCER
from maskcheck import Detector, Tap, start_shared_pooler, stop_shared_pooler

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's masking")

MASKERS = {
    "redact": "sieve.mask.redact",
    "null": "sieve.mask.null",
    "email": "sieve.mask.email",
    "partial": "sieve.mask.partial{keep_first = 2, keep_last = 1}",
    "hash": "sieve.mask.hash{}",
    "fixed": "sieve.mask.fixed('7')",
}
COLS = ["t", "vc", "i", "n", "d", "u", "j", "jb"]
UUID1 = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
UUID4 = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"

# k, t, vc, i, n, d, u, j, jb
ROWS = [
    (1, "alice.types@corp.example", "victor.types@corp.example", 123456789, "98765.4321",
     "1987-06-05", UUID1, '{"ssn": "219-09-9999"}', '{"card": "4929381726354017"}'),
    (2, None, None, None, None, None, None, None, None),
    (3, "", "", 0, "0", "2000-01-01", "00000000-0000-0000-0000-000000000000", '""', '""'),
    (4, "zoë.東京@exämple.org", "Ωmega-ñandú", -42, "-0.5", "1999-12-31", UUID4,
     '"ünïcode"', '{"名前": "秘密"}'),
    # row 1 again: a pseudonym is the same for the same value
    (5, "alice.types@corp.example", "victor.types@corp.example", 123456789, "98765.4321",
     "1987-06-05", UUID1, '{"ssn": "219-09-9999"}', '{"card": "4929381726354017"}'),
]

DETECTOR = Detector(
    values=["alice.types@corp.example", "victor.types@corp.example", "123456789",
            "98765.4321", "1987-06-05", UUID1, UUID4, "219-09-9999", "4929381726354017",
            "zoë.東京@exämple.org", "Ωmega-ñandú", "ünïcode", "秘密", "1999-12-31"],
    fragments=["alice.types", "victor.types", "zoë.東京", "Ωmega"])

# The same values in binary form: int4, date (days since 2000-01-01), uuid,
# numeric's base-10000 digits.
BINARY_NEEDLES = {
    "int4 123456789": struct.pack("!i", 123456789),
    "int4 -42": struct.pack("!i", -42),
    "date 1987-06-05": struct.pack("!i", (datetime.date(1987, 6, 5) -
                                          datetime.date(2000, 1, 1)).days),
    "uuid row 1": uuid.UUID(UUID1).bytes,
    "uuid row 4": uuid.UUID(UUID4).bytes,
    "numeric 98765.4321": struct.pack("!hhh", 9, 8765, 4321),
}

HASH_KEY = "a masking key of more than sixteen bytes"


def table(m):
    return f"bx_ty_{m}"


@pytest.fixture(autouse=True)
def _quiet_postgres():
    """Overrides conftest's: the shared pooler keeps its server connections."""
    yield


@pytest.fixture(scope="module")
def ty_pooler(pg, tmp_path_factory):
    with pg.connect() as conn:
        for m in MASKERS:
            conn.execute(f"DROP TABLE IF EXISTS {table(m)}")
            conn.execute(f"CREATE TABLE {table(m)} (k int, t text, vc varchar(60), i int4, "
                         "n numeric, d date, u uuid, j json, jb jsonb)")
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table(m)} VALUES "
                                "(%s, %s, %s, %s, %s::numeric, %s::date, %s::uuid, %s::json, "
                                "%s::jsonb)", ROWS)
            conn.execute(f"GRANT SELECT ON {table(m)} TO PUBLIC")
    d = tmp_path_factory.mktemp("types")
    lines = ["return { init = function()"]
    for m, ctor in MASKERS.items():
        for col in COLS:
            lines.append(f"  sieve.mask_column('public.{table(m)}.{col}', {ctor})")
    lines.append("end }")
    (d / "mask.lua").write_text("\n".join(lines) + "\n")
    p = start_shared_pooler(pg, d / "pooler", "types",
                            {"policy_scripts": str(d / "mask.lua"),
                             "mask_hash_key": HASH_KEY})
    yield p
    stop_shared_pooler(p)
    with pg.connect() as conn:
        for m in MASKERS:
            conn.execute(f"DROP TABLE IF EXISTS {table(m)}")


MODES = ["simple", "extended", "binary", "prepared-binary"]


def fetch(p, m, mode):
    """{column: [values by row, as psycopg parsed them] or ("refused", message)},
    and the bytes pgsieve sent. One query per column, so that a column the
    masker cannot write in binary refuses its own statement only."""
    tap = Tap(p.host, p.port)
    out = {}
    try:
        with psycopg.connect(host=tap.host, port=tap.port, dbname="testdb", user="trustuser",
                             sslmode="disable", connect_timeout=5, autocommit=True,
                             prepare_threshold=None) as conn:
            for col in COLS:
                q = f"SELECT k, {col} FROM {table(m)} ORDER BY k"
                try:
                    if mode == "simple":
                        rows = psycopg.ClientCursor(conn).execute(q).fetchall()
                    elif mode == "extended":
                        rows = conn.cursor().execute(q).fetchall()
                    elif mode == "binary":
                        rows = conn.cursor(binary=True).execute(q).fetchall()
                    else:
                        cur = conn.cursor(binary=True)
                        cur.execute(q, prepare=True).fetchall()
                        rows = cur.execute(q, prepare=True).fetchall()
                except psycopg.errors.InsufficientPrivilege as e:
                    out[col] = ("refused", e.diag.message_primary)
                    continue
                assert [r[0] for r in rows] == [r[0] for r in ROWS]
                out[col] = [r[1] for r in rows]
            # all columns at once, as an application would read them
            if mode in ("simple", "extended"):
                cur = psycopg.ClientCursor(conn) if mode == "simple" else conn.cursor()
                rows = cur.execute(f"SELECT {', '.join(COLS)} FROM {table(m)} "
                                   "ORDER BY k").fetchall()
                assert rows == [tuple(out[c][i] for c in COLS) for i in range(len(ROWS))]
            assert conn.execute("SELECT 'still-serving'").fetchone()[0] == "still-serving"
    finally:
        tap.close()
    return out, bytes(tap.received)


# Binary numeric has no encoder among the maskers (mask.h): where a masker
# would give a value (hash: int8's integer, fixed: 7) the statement is refused.
BINARY_REFUSED = {("hash", "n"), ("fixed", "n")}


HEX16 = re.compile(r"^[0-9a-f]{16}$")


def expected(m, col, value):
    """What the client reads for `value` (the row's clear value, as text)
    under masker m in column col; a callable checks it instead."""
    if value is None or m == "null":
        return None
    text_like = col in ("t", "vc")
    if m == "redact":
        return "***" if text_like or col in ("j", "jb") else None
    if m in ("email", "partial"):
        if col in ("j", "jb"):
            return "***"
        if not text_like:
            return None
        if value == "":
            return ""
        if m == "email":
            return "***" + value[value.rindex("@"):] if "@" in value else "***"
        return value[:2] + "***" + value[-1:] if len(value) > 3 else "***"
    if m == "fixed":
        return {"t": "7", "vc": "7", "i": 7, "n": decimal.Decimal(7), "d": None, "u": None,
                "j": 7, "jb": 7}[col]
    if m == "hash":
        if col in ("t", "vc", "j", "jb"):
            return lambda v: isinstance(v, str) and HEX16.match(v)
        if col == "i":
            return lambda v: isinstance(v, int)
        if col == "n":
            return lambda v: isinstance(v, decimal.Decimal) and v == v.to_integral_value()
        if col == "u":
            return lambda v: isinstance(v, uuid.UUID) and v.version == 8
        return None   # dates: NULL
    raise AssertionError(m)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m", list(MASKERS))
def test_masker_by_type(ty_pooler, m, mode):
    got, received = fetch(ty_pooler, m, mode)
    leaks = DETECTOR.leaks(received)
    assert not leaks, f"{m}/{mode}: clear values received: {leaks[:5]}"
    if "binary" in mode:
        found = [what for what, needle in BINARY_NEEDLES.items() if needle in received]
        assert not found, f"{m}/{mode}: binary clear values received: {found}"
    problems = []
    for col in COLS:
        refusable = "binary" in mode and (m, col) in BINARY_REFUSED
        if isinstance(got[col], tuple):
            if not refusable:
                problems.append(f"{col}: refused: {got[col][1]}")
            continue
        if refusable:
            problems.append(f"{col}: answered in binary; mask.h says it cannot be: {got[col]}")
            continue
        for clear, v in zip(ROWS, got[col]):
            want = expected(m, col, clear[1 + COLS.index(col)])
            ok = want(v) if callable(want) else v == want
            if not ok:
                problems.append(f"row {clear[0]} {col}: clear {clear[1 + COLS.index(col)]!r} "
                                f"-> {v!r}, expected "
                                f"{'a valid pseudonym' if callable(want) else repr(want)}")
    if m == "hash":
        # stable: the same value, the same pseudonym; different values differ
        for col in ("t", "vc", "i", "n", "u", "j", "jb"):
            if isinstance(got[col], list) and got[col][0] != got[col][4]:
                problems.append(f"hash of row 1 and row 5 differ in {col}")
        if got["t"][0] == got["t"][3]:
            problems.append("hash: two different texts got one pseudonym")
    assert not problems, f"{m}/{mode}:\n" + "\n".join(problems)


@pytest.mark.parametrize("m", ["hash", "partial", "email", "fixed"])
def test_text_and_binary_results_agree(ty_pooler, m):
    """A value's masked form does not depend on the protocol or the result
    format: hash pseudonyms join across drivers that read text and binary."""
    simple, _ = fetch(ty_pooler, m, "simple")
    text, _ = fetch(ty_pooler, m, "extended")
    binary, _ = fetch(ty_pooler, m, "binary")
    for col in COLS:
        assert simple[col] == text[col], col
        if not isinstance(binary[col], tuple):
            assert binary[col] == text[col], col


@pytest.mark.parametrize("mode", ["simple", "binary"])
def test_control_clear_values_are_seen_without_masking(ty_pooler, pooler, tmp_path, mode):
    """The detector and the binary needles find the values when nothing masks
    them, and psycopg reads them back as inserted."""
    (tmp_path / "none.lua").write_text("return { statement = function() end }")
    p = pooler(settings={"policy_scripts": str(tmp_path / "none.lua")})
    got, received = fetch(p, "redact", mode)
    assert got["t"][0] == ROWS[0][1] and got["i"][0] == ROWS[0][3]
    assert got["u"][3] == uuid.UUID(UUID4) and got["jb"][3] == {"名前": "秘密"}
    assert DETECTOR.leaks(received)
    if mode == "binary":
        assert all(n in received for n in BINARY_NEEDLES.values())
