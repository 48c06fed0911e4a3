"""
Result masking: columns declared with sieve.mask_column are masked in
what the client receives, found through RowDescription's table OID and
attribute number (aliases do not escape it), per role; a result that
cannot be masked is refused, never sent in clear; strict mode denies any
other use of a masked column. The values checked are the ones the client
received. test_masking_bypass.py holds the corpus of evasions.
"""

import asyncio
import os

import asyncpg
import psycopg
import pytest

from conftest import IS_PGBOUNCER

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's masking")

SCRIPT = """
return { init = function()
  sieve.mask_column('public.{t}.email', sieve.mask.email)
  sieve.mask_column('public.{t}.card', sieve.mask.partial{keep_last = 4},
                    {roles = {'trustuser'}})
  sieve.mask_column('public.*.ssn', sieve.mask.redact)
end }
"""


@pytest.fixture
def customers(pg):
    name = f"cust_{os.getpid()}"
    pg.sql(f"DROP TABLE IF EXISTS {name}")
    pg.sql(f"CREATE TABLE {name} (id int, email text, card text, note text)")
    pg.sql(f"INSERT INTO {name} VALUES (1, 'alice@corp.example', '4111111111111111', 'x'),"
           f" (2, 'bob@shop.example', '5500000000000004', NULL), (3, NULL, NULL, 'y')")
    pg.sql(f"GRANT ALL ON {name} TO PUBLIC")
    yield name
    pg.sql(f"DROP TABLE IF EXISTS {name}")
    pg.sql(f"DROP TABLE IF EXISTS {name}_new")


def masked_pooler(pooler, tmp_path, table, **settings):
    s = tmp_path / "mask.lua"
    s.write_text(SCRIPT.replace("{t}", table))
    cfg = {"policy_scripts": str(s)}
    cfg.update(settings)
    return pooler(settings=cfg)


EXPECTED = [(1, "***@corp.example", "***1111"), (2, "***@shop.example", "***0004"),
            (3, None, None)]


def test_simple_protocol_and_aliases(pooler, tmp_path, customers):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect() as c:
        cur = psycopg.ClientCursor(c)   # Query messages
        assert cur.execute(f"select id, email, card from {customers} order by id").fetchall() \
            == EXPECTED
        # An alias is the same column: RowDescription still names its table and attribute.
        assert cur.execute(f"select email as e, note from {customers} where id = 1").fetchone() \
            == ("***@corp.example", "x")
        rows = cur.execute(f"select * from {customers} order by id").fetchall()
        assert [r[1] for r in rows] == ["***@corp.example", "***@shop.example", None]
        # Unmasked columns and other tables pass as they are.
        assert cur.execute(f"select note from {customers} order by id").fetchall() == \
            [("x",), (None,), ("y",)]


def test_extended_protocol_text_and_binary(pooler, tmp_path, customers):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect() as c:
        q = f"select id, email, card from {customers} where id <= %s order by id"
        assert c.execute(q, [3]).fetchall() == EXPECTED
        assert c.execute(q, [3], prepare=True).fetchall() == EXPECTED
        # Binary results: text columns are the same bytes, masked the same way.
        assert c.cursor(binary=True).execute(q, [3]).fetchall() == EXPECTED


def test_scope_by_role(pooler, tmp_path, customers):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect(user="plainuser", password="plainpw") as c:
        # card is masked for trustuser only; email for everyone.
        assert c.execute(f"select email, card from {customers} where id = 1").fetchone() == \
            ("***@corp.example", "4111111111111111")


def test_asyncpg_prepared_statements_are_masked(pooler, tmp_path, customers):
    # asyncpg describes a statement once and executes it without a RowDescription,
    # in binary: the statement's description and the Bind's formats give the plan.
    p = masked_pooler(pooler, tmp_path, customers, pool_mode="transaction")

    async def run():
        conn = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                     database="testdb", ssl=False)
        try:
            stmt = await conn.prepare(f"select id, email, card from {customers} "
                                      f"where id <= $1 order by id")
            for _ in range(3):
                rows = await stmt.fetch(3)
                assert [tuple(r) for r in rows] == EXPECTED
            assert await conn.fetchval(f"select email from {customers} where id = $1", 2) == \
                "***@shop.example"
        finally:
            await conn.close()
    asyncio.run(run())


def test_ddl_through_the_pooler_refreshes_the_catalog(pooler, tmp_path, customers):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect() as c:
        assert c.execute(f"select email from {customers} where id = 1").fetchone()[0] == \
            "***@corp.example"
        # A new table with a column the pattern public.*.ssn names.
        c.execute(f"create table {customers}_new (ssn text)")
        c.execute(f"insert into {customers}_new values ('078-05-1120')")
        assert c.execute(f"select ssn from {customers}_new").fetchone()[0] == "***"


def test_no_masking_without_declarations(pooler, tmp_path, customers):
    s = tmp_path / "none.lua"
    s.write_text("return { statement = function() end }")
    p = pooler(settings={"policy_scripts": str(s)})
    with p.connect() as c:
        assert c.execute(f"select email from {customers} where id = 1").fetchone()[0] == \
            "alice@corp.example"


def test_bad_declarations_refuse_the_scripts(pooler, tmp_path):
    s = tmp_path / "bad.lua"
    s.write_text("return { init = function() "
                 "sieve.mask_column('public.t.c', sieve.mask.hash{}) end }")
    p = pooler(settings={"policy_scripts": str(s)}, start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "mask_hash_key" in p.log()
    p.expect_fatal("mask_hash_key")


def test_audit_and_show_policies_count_masks(pooler, tmp_path, customers):
    import json
    from test_admin import ADMIN, console, show
    from conftest import default_auth_users
    s = tmp_path / "mask.lua"
    s.write_text(SCRIPT.replace("{t}", customers))
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = pooler(settings={"policy_scripts": str(s), "admin_users": ADMIN,
                         "audit_file": str(tmp_path / "audit.jsonl"),
                         "audit_query_text": "full"}, auth_users=auth)
    with p.connect() as c:
        c.execute(f"select id, email, card from {customers} order by id").fetchall()
        c.execute(f"select note from {customers}").fetchall()
    with console(p) as adm:
        row = show(adm, "POLICIES")[0]
    assert (row["masks"], row["masked"]) == ("3", "6")   # 3 rows x (email, card)

    def statements():
        path = tmp_path / "audit.jsonl"
        recs = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        return [r for r in recs if r["event"] == "statement"]
    from helpers import wait_for
    recs = wait_for(lambda: len(statements()) >= 2 and statements(), 5, what="two records")
    assert recs[0]["masked"] == {"columns": ["email", "card"], "values": 6}
    assert "masked" not in recs[1]


def test_copy_out_is_refused_where_columns_are_masked(pooler, tmp_path, customers):
    # Strict mode denies it when it is analysed; without, the COPY's rows are refused.
    p = masked_pooler(pooler, tmp_path, customers, mask_strict="0")
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="COPY out"):
            with c.cursor().copy(f"copy {customers} to stdout") as cp:
                for _ in cp:
                    pass
        assert c.execute("select 1").fetchone()[0] == 1   # the session goes on


def test_mask_pii_plugin_per_audience(pooler, tmp_path, customers):
    from conftest import ROOT
    opts = tmp_path / "mask_pii.options.lua"
    opts.write_text(f"""
return {{ rules = {{
  {{ column = "public.{customers}.email", mask = "hash", roles = {{ "plainuser" }} }},
  {{ column = "public.{customers}.email", mask = "partial", keep_first = 2 }},
  {{ column = "public.{customers}.card", mask = "fixed", value = "n/a" }},
}} }}""")
    p = pooler(settings={"policy_scripts": f"{ROOT / 'plugins' / 'mask_pii.lua'}:{opts}",
                         "mask_hash_key": "a key of sixteen bytes or more"})
    q = f"select email, card from {customers} where id <= 2 order by id"
    with p.connect(user="plainuser", password="plainpw") as c:
        agent = c.execute(q).fetchall()
    with p.connect() as c:
        person = c.execute(q).fetchall()
    # The agent's role: stable 16-hex-digit pseudonyms, distinct per value.
    assert all(len(e) == 16 and int(e, 16) >= 0 for e, _ in agent)
    assert agent[0][0] != agent[1][0]
    with p.connect(user="plainuser", password="plainpw") as c:
        assert c.execute(q).fetchall() == agent
    # Everyone else: the first two characters.
    assert [e for e, _ in person] == ["al***", "bo***"]
    assert {card for _, card in agent + person} == {"n/a"}


def test_mask_pii_plugin_refuses_bad_options(pooler, tmp_path):
    from conftest import ROOT
    opts = tmp_path / "bad.options.lua"
    opts.write_text('return { rules = { { column = "a.b.c", mask = "sparkle" } } }')
    p = pooler(settings={"policy_scripts": f"{ROOT / 'plugins' / 'mask_pii.lua'}:{opts}"},
               start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "unknown mask sparkle" in p.log()
    p.expect_fatal("unknown mask")


# Each reads email (masked for everyone) other than as a plain output column.
STRICT_DENIED = [
    "select upper(email) from {t}",
    "select email || '' from {t}",
    "select email::varchar from {t}",
    "select id from {t} where email like 'alice%'",
    "select id from {t} order by email",
    "select email as e from {t} order by e",
    "select id, email from {t} order by 1",
    "select count(distinct email) from {t}",
    "select c from {t} c",
    "select row_to_json(c) from {t} c",
    "select x from (select email as x from {t}) s",
    "with w as (select email from {t}) select * from w",
    "select email from {t} union select 'x'",
    "select query_to_xml('select email from {t}', true, false, '')",
    "select most_common_vals::text from pg_stats where attname = 'email'",
    "copy {t} to stdout",
]


@pytest.mark.parametrize("query", STRICT_DENIED)
def test_strict_mode_denies_other_uses(pooler, tmp_path, customers, query):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute(query.replace("{t}", customers)).fetchall()
        msg = str(e.value)
        assert "mask_strict" in msg
        assert "alice" not in msg
        if "email" in query and "pg_stats" not in query and "xml" not in query:
            assert f"{customers}.email" in msg
        c.rollback()
        assert c.execute(f"select email from {customers} where id = 1").fetchone()[0] == \
            "***@corp.example"


def test_strict_mode_follows_scopes_and_tables(pooler, tmp_path, customers):
    p = masked_pooler(pooler, tmp_path, customers)
    with p.connect(user="plainuser", password="plainpw") as c:
        # card is masked for trustuser only: plainuser may compute with it.
        assert c.execute(f"select upper(card) from {customers} where id = 1").fetchone() == \
            ("4111111111111111",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="email"):
            c.execute(f"select lower(email) from {customers}")
    with p.connect() as c:
        # Unmasked columns may be used freely; masked ones may be selected.
        assert c.execute(f"select email, upper(note) from {customers} where id = 1 "
                         f"and note = 'x' order by id").fetchone() == \
            ("***@corp.example", "X")
        # A column of the same name in a table no rule names is not masked.
        c.execute("create temp table other_t (email text)")
        c.execute("insert into other_t values ('z@z')")
        assert c.execute("select upper(o.email) from other_t o").fetchone() == ("Z@Z",)
        # Writing a masked column is not reading it.
        c.execute(f"update {customers} set email = 'carol@corp.example' where id = 3")
        assert c.execute(f"select email from {customers} where id = 3").fetchone() == \
            ("***@corp.example",)


def test_strict_mode_off_leaves_expressions_unmasked(pooler, tmp_path, customers):
    # The documented gap of mask_strict = 0: only what RowDescription ties to
    # a table is masked.
    p = masked_pooler(pooler, tmp_path, customers, mask_strict="0")
    with p.connect() as c:
        assert c.execute(f"select email from {customers} where id = 1").fetchone()[0] == \
            "***@corp.example"
        assert c.execute(f"select upper(email) from {customers} where id = 1").fetchone()[0] \
            == "ALICE@CORP.EXAMPLE"


COLUMNS_SCRIPT = """
return {
  columns = function(cols, stmt, session)
    local plan = {}
    for i, c in ipairs(cols) do
      if c.table == 'public.{t}' and c.column == 'note' then plan[i] = sieve.mask.redact end
      if c.column == 'card' then
        plan[i] = function(v, name) return name .. ':' .. v:sub(-2) end
      end
      if c.column == 'id' and c.type == 'int4' then
        plan[i] = function(v) return tostring(tonumber(v) * 100) end
      end
      if c.name == 'bad_int' then plan[i] = function(v) return 'not a number' end end
      if c.name == 'boom' then plan[i] = function(v) error('masker failed') end end
      if c.name == 'email' then plan[i] = function(v) return 'script' end end
    end
    if stmt and stmt.kind ~= 'select' then error('not a select') end
    if cols[1] and cols[1].name == 'explode' then error('no plan') end
    return plan
  end
}
"""


def columns_pooler(pooler, tmp_path, table, with_rules=False, **settings):
    s = tmp_path / "columns.lua"
    s.write_text(COLUMNS_SCRIPT.replace("{t}", table))
    scripts = str(s)
    if with_rules:
        r = tmp_path / "rules.lua"
        r.write_text(SCRIPT.replace("{t}", table))
        scripts = f"{r},{s}"
    cfg = {"policy_scripts": scripts}
    cfg.update(settings)
    return pooler(settings=cfg)


def test_columns_phase_masks_with_builtin_and_lua_maskers(pooler, tmp_path, customers):
    p = columns_pooler(pooler, tmp_path, customers)
    q = f"select id, card, note, email from {customers} order by id"
    want = [(100, "card:11", "***", "script"), (200, "card:04", None, "script"),
            (300, None, "***", None)]
    with p.connect() as c:
        assert psycopg.ClientCursor(c).execute(q).fetchall() == want   # simple protocol
        assert c.execute(q, prepare=True).fetchall() == want            # extended
        # A Lua masker's text that is not a value of the type becomes NULL.
        assert c.execute(f"select id as bad_int from {customers} where id = 1").fetchone() \
            == (None,)
        # A Lua masker writes text: a binary int4 column cannot be masked, and is refused.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="format"):
            c.cursor(binary=True).execute(f"select id from {customers} where id = 1")
        # Binary text columns are their text: masked.
        assert c.cursor(binary=True).execute(
            f"select card from {customers} where id = 2").fetchone() == ("card:04",)


def test_columns_phase_fails_closed(pooler, tmp_path, customers):
    p = columns_pooler(pooler, tmp_path, customers)
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="mask"):
            c.execute(f"select email as boom from {customers} where id = 1").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="masking"):
            c.execute(f"select 1 as explode").fetchall()
        c.rollback()
        assert c.execute("select 41 + 1").fetchone() == (42,)
    assert "masker failed" in p.log() and "no plan" in p.log()


def test_columns_phase_plans_are_cached(pooler, tmp_path, customers):
    from test_admin import ADMIN, console, show
    from conftest import default_auth_users
    auth = default_auth_users()
    auth[ADMIN] = ""
    s = tmp_path / "columns.lua"
    s.write_text(COLUMNS_SCRIPT.replace("{t}", customers))
    p = pooler(settings={"policy_scripts": str(s), "admin_users": ADMIN}, auth_users=auth)

    def calls():
        with console(p) as adm:
            return int(show(adm, "POLICIES")[0]["calls"])
    with p.connect() as c:
        for _ in range(5):
            assert c.execute(f"select note from {customers} where id = 1").fetchone() == \
                ("***",)
        assert calls() == 1
        c.execute(f"select note, id from {customers} where id = 1").fetchone()
        assert calls() == 2
    with p.connect(user="plainuser", password="plainpw") as c:
        c.execute(f"select note from {customers} where id = 1").fetchone()
    assert calls() == 3      # the plan is per role


def test_rules_stand_over_the_columns_phase(pooler, tmp_path, customers):
    p = columns_pooler(pooler, tmp_path, customers, with_rules=True)
    with p.connect() as c:
        # email is declared with sieve.mask.email: the script's own masker for it is not used.
        assert c.execute(f"select email, note from {customers} where id = 1").fetchone() == \
            ("***@corp.example", "***")


def test_refusal_in_the_middle_of_a_pipeline_ends_the_connection(pooler, tmp_path, customers,
                                                                  pg):
    # The client would take the INSERT behind a refused result for skipped, as
    # after a server error; the server runs it. Ending the connection rolls the
    # transaction back and says so.
    p = masked_pooler(pooler, tmp_path, customers, max_masked_row_size="4096")
    pg.sql(f"INSERT INTO {customers} VALUES (9, repeat('x', 200000) || '@big.example', "
           f"NULL, NULL)")
    pg.sql(f"CREATE TABLE IF NOT EXISTS {customers}_log (n int)")
    pg.sql(f"GRANT ALL ON {customers}_log TO PUBLIC")
    try:
        c = p.connect(autocommit=True)
        c.execute("begin")
        with pytest.raises(psycopg.OperationalError, match="middle of a pipeline"):
            psycopg.ClientCursor(c).execute(
                f"select email from {customers} where id = 9; "
                f"insert into {customers}_log values (1)")
        c.close()
        from helpers import wait_for
        wait_for(lambda: pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                f"'%{customers}_log%' AND pid <> pg_backend_pid()")[0][0] == 0,
                 10, what="the server connection to end")
        assert pg.sql(f"SELECT count(*) FROM {customers}_log")[0][0] == 0
        # A refusal with nothing behind it keeps the session.
        with p.connect() as c2:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="larger"):
                c2.execute(f"select email from {customers} where id = 9").fetchall()
            assert c2.execute("select 1").fetchone() == (1,)
    finally:
        pg.sql(f"DROP TABLE IF EXISTS {customers}_log")
