"""
The Lua policy pipeline, end to end: scripts see each statement of a
Simple Query and each Parse, and allow, deny or rewrite it; runaway and
broken scripts deny (fail closed) without hurting the pooler; RELOAD
swaps script sets all or nothing; observe mode lets everything through.
"""

import asyncio
import subprocess

import asyncpg
import psycopg
import pytest

from conftest import IS_PGBOUNCER, ROOT

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's policy pipeline")

GUARD = ROOT / "plugins" / "guard_ddl.lua"


def script(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def policy_pooler(pooler, scripts, **settings):
    s = {"policy_scripts": ", ".join(scripts)}
    s.update(settings)
    return pooler(settings=s)


def test_guard_ddl_simple_and_extended(pooler, table):
    p = policy_pooler(pooler, [str(GUARD)])
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="DROP TABLE is not allowed"):
            c.execute(f"drop table {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without a WHERE"):
            c.execute(f"update {table} set v = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without a WHERE"):
            c.execute(f"with d as (delete from {table} returning 1) select count(*) from d")
        # Allowed statements run, in both protocols.
        c.execute(f"insert into {table} values (1), (2)")
        c.execute(f"update {table} set v = 3 where v = 1")
        assert c.execute(f"select count(*) from {table} where v = %s", [3],
                         prepare=True).fetchone()[0] == 1
        # Extended protocol (psycopg with parameters uses Parse/Bind): denied too.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without a WHERE"):
            c.execute(f"delete from {table}", prepare=True)
        assert c.execute("select 1").fetchone()[0] == 1   # the session goes on
    with psycopg.connect(**p.conninfo(), autocommit=True) as c:
        assert c.execute(f"select count(*) from {table}").fetchone()[0] == 2   # nothing lost


def test_denial_inside_a_transaction_aborts_it_like_postgres(pooler, table):
    p = policy_pooler(pooler, [str(GUARD)], pool_mode="transaction")
    with p.connect(autocommit=False) as c:
        c.execute(f"insert into {table} values (7)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(f"truncate {table}")
        # As after any error: the transaction is aborted on the server too.
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("select 1")
        c.rollback()
    with p.connect() as c:
        assert c.execute(f"select count(*) from {table} where v = 7").fetchone()[0] == 0


def test_denial_with_asyncpg_prepared_statements(pooler, table):
    p = policy_pooler(pooler, [str(GUARD)], pool_mode="transaction")

    async def run():
        conn = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                     database="testdb", ssl=False)
        try:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f"alter table {table} add column w int")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch(f"delete from {table} returning v")
            assert await conn.fetchval("select $1::int + 1", 41) == 42
        finally:
            await conn.close()

    asyncio.run(run())


def test_psql_sees_the_denial(pooler, table):
    p = policy_pooler(pooler, [str(GUARD)])
    out = subprocess.run(["psql", "-X", "-h", p.host, "-p", str(p.port), "-U", "trustuser",
                          "-d", "testdb", "-c", f"drop table {table}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "DROP TABLE is not allowed through this gateway" in out.stderr


def test_rewrite_chains_and_is_analysed_again(pooler, tmp_path):
    a = script(tmp_path, "a.lua", """
return { statement = function(stmt)
  if stmt.sql == 'select 1' then return sieve.rewrite('select 2') end
end }""")
    b = script(tmp_path, "b.lua", """
return { statement = function(stmt)
  if stmt.sql == 'select 2' then return sieve.rewrite('select 3 as rewritten') end
end }""")
    p = policy_pooler(pooler, [a, b])
    with p.connect() as c:
        cur = c.execute("select 1")
        assert cur.fetchone()[0] == 3 and cur.description[0].name == "rewritten"
        assert c.execute("select 1", prepare=True).fetchone()[0] == 3
        assert c.execute("select 5").fetchone()[0] == 5


def test_session_tags_live_as_long_as_the_client(pooler, tmp_path):
    s = script(tmp_path, "count.lua", """
return { statement = function(stmt, session)
  session.tags.n = (session.tags.n or 0) + 1
  if session.tags.n > 3 then return sieve.deny('only three statements per session', '53400') end
end }""")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        for _ in range(3):
            c.execute("select 1")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match="only three"):
            c.execute("select 1")
    with p.connect() as c:     # a new session starts counting again
        c.execute("select 1")


def test_runaway_scripts_are_stopped_and_deny(pooler, tmp_path):
    loop = script(tmp_path, "loop.lua", """
return { statement = function(stmt)
  if stmt.sql:find('loop') then while true do end end
  if stmt.sql:find('hog') then local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1e5) end end
end }""")
    p = policy_pooler(pooler, [loop], policy_max_memory="16777216")
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="could not decide"):
            c.execute("select 'loop'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="could not decide"):
            c.execute("select 'hog'")
        assert c.execute("select 'fine'").fetchone()[0] == "fine"
    p.wait_log(r"instruction budget exceeded")
    p.wait_log(r"memory budget exceeded")
    # policy_on_error = allow lets them through instead.
    q = policy_pooler(pooler, [loop], policy_on_error="allow")
    with q.connect() as c:
        assert c.execute("select 'loop'").fetchone()[0] == "loop"


def test_unparsable_statement_is_denied_as_postgres_words_it(pooler, tmp_path):
    s = script(tmp_path, "none.lua", "return { statement = function() end }")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        with pytest.raises(psycopg.errors.SyntaxError, match="syntax error"):
            c.execute("select 1; selec 2")
        assert c.execute("select 1").fetchone()[0] == 1


def test_observe_mode_logs_and_lets_through(pooler, table):
    p = policy_pooler(pooler, [str(GUARD)], policy_mode="observe")
    with p.connect() as c:
        c.execute(f"insert into {table} values (1)")
        c.execute(f"delete from {table}")         # would be denied
    p.wait_log(r"policy \(observe\): would deny: UPDATE or DELETE without a WHERE")


def test_reload_swaps_scripts_all_or_nothing(pooler, tmp_path):
    s = tmp_path / "v.lua"
    s.write_text("return { statement = function() return sieve.deny('version one') end }")
    p = policy_pooler(pooler, [str(s)])
    with p.connect() as c:
        with pytest.raises(psycopg.Error, match="version one"):
            c.execute("select 1")
    s.write_text("return { statement = function( end }")     # broken
    p.reload()
    p.wait_log(r"reload failed.*v.lua:1:")
    with p.connect() as c:
        with pytest.raises(psycopg.Error, match="version one"):
            c.execute("select 1")
    s.write_text("return { statement = function() return sieve.deny('version two') end }")
    p.reload()
    with p.connect() as c:
        with pytest.raises(psycopg.Error, match="version two"):
            c.execute("select 1")


def test_broken_script_stops_the_start(pooler, tmp_path):
    s = script(tmp_path, "bad.lua", "return 42")
    p = pooler(settings={"policy_scripts": s}, start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "must return a table of phase functions" in p.log()
    p.expect_fatal("must return a table")


def test_session_the_analysis_cannot_read_is_denied(pooler, tmp_path):
    # With standard_conforming_strings off, 'a\' , '; DROP TABLE t; --' is one
    # SELECT to the parser and a DROP to the server: such sessions get nothing.
    s = script(tmp_path, "none.lua", "return { statement = function() end }")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        c.execute("set standard_conforming_strings = off")
        with pytest.raises(psycopg.errors.FeatureNotSupported,
                           match="standard_conforming_strings on"):
            c.execute("select 'a\\' , '; select 1; --'")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute("select 1")
    with p.connect(options="-c client_encoding=SJIS") as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="SJIS"):
            c.execute("select 1")
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


# ------------------------------------------------------------ bundled plugins

PLUGINS = ROOT / "plugins"


def plugin(name, tmp_path, options=None):
    entry = str(PLUGINS / name)
    if options is not None:
        opts = tmp_path / (name + ".options.lua")
        opts.write_text(options)
        entry += ":" + str(opts)
    return entry


def test_readonly_plugin(pooler, tmp_path, table):
    p = policy_pooler(pooler, [plugin("readonly.lua", tmp_path,
                                      "return { roles = { 'trustuser' } }")])
    with p.connect() as c:
        assert c.execute(f"select count(*) from {table}").fetchone()[0] == 0
        c.execute("show work_mem")
        c.execute("set application_name = 'agent'")
        c.execute("begin")
        c.execute("commit")
        for sql in (f"insert into {table} values (1)", f"update {table} set v = 1 where v = 2",
                    "do $$ begin end $$", f"select * from {table} for update",
                    "set role postgres", f"create table {table}_x (v int)",
                    f"explain analyze delete from {table} where v = 1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may only read"):
                c.execute(sql)
    # Another role is not held to it.
    with p.connect(user="plainuser", password="plainpw") as c:
        c.execute(f"insert into {table} values (1)")


def test_readonly_plugin_refuses_bad_options(pooler, tmp_path):
    p = pooler(settings={"policy_scripts": plugin("readonly.lua", tmp_path, "return {}")},
               start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "readonly.lua needs roles" in p.log()
    p.expect_fatal("readonly.lua needs roles")


def test_deny_functions_plugin(pooler, tmp_path):
    p = policy_pooler(pooler, [plugin("deny_functions.lua", tmp_path,
                                      "return { functions = { 'public.my_secret' } }")])
    with p.connect() as c:
        for sql in ("select pg_read_file('/etc/passwd')",
                    "select * from pg_catalog.pg_ls_dir('.')",
                    "select 1 where exists (select lo_export(1, '/tmp/x'))",
                    "select query_to_xml('select 1', true, true, '')",
                    "select public.my_secret()"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not allowed"):
                c.execute(sql)
        assert c.execute("select lower('OK')").fetchone()[0] == "ok"


def test_table_acl_plugin(pooler, tmp_path, table, pg):
    other = table + "_other"
    pg.sql(f"create table {other} (v int)")
    pg.sql(f"grant all on {other} to public")
    try:
        p = policy_pooler(pooler, [plugin("table_acl.lua", tmp_path, f"""
return {{ roles = {{ trustuser = {{ ["public.{table}"] = "write", ["public.{other}"] = "read" }} }} }}
""")])
        with p.connect() as c:
            c.execute(f"insert into {table} select v from {other}")
            c.execute(f"select * from public.{other} join {table} using (v)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may only read"):
                c.execute(f"delete from {other} where v = 1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not use"):
                c.execute("select * from pg_catalog.pg_authid")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not use"):
                c.execute(f"with x as (select * from pg_class) select count(*) from {table}, x")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot be checked"):
                c.execute("do $$ begin end $$")
    finally:
        pg.sql(f"drop table if exists {other}")


def test_row_limit_plugin(pooler, tmp_path, pg):
    p = policy_pooler(pooler, [plugin("row_limit.lua", tmp_path, "return { limit = 5 }")])
    with p.connect() as c:
        assert len(c.execute("select g from generate_series(1, 100) g").fetchall()) == 5
        assert len(c.execute("select g from generate_series(1, 100) g -- a comment").fetchall()) == 5
        # ORDER BY still decides which rows; an explicit LIMIT is kept.
        assert c.execute("select g from generate_series(1, 100) g order by g desc"
                         ).fetchall()[0][0] == 100
        assert len(c.execute("select g from generate_series(1, 100) g limit 7").fetchall()) == 7
        assert len(c.execute("select g from generate_series(1, %s) g", [50]).fetchall()) == 5
        assert c.execute("select count(*) from generate_series(1, 100)").fetchone()[0] == 100


def test_check_flag_compiles_scripts_without_serving(pooler, tmp_path):
    from conftest import POOLER_BIN
    s = tmp_path / "s.lua"
    s.write_text("return { statement = function() end }")
    p = pooler(settings={"policy_scripts": f"{s}, {GUARD}"}, start=False)
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "configuration ok (2 policy scripts)" in out.stdout
    s.write_text("return { statement = function() end end }")
    out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "s.lua:1:" in out.stderr


def test_show_policies_counts(pooler, tmp_path):
    from test_admin import ADMIN, console, show
    from conftest import default_auth_users
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = pooler(settings={"policy_scripts": str(GUARD), "admin_users": ADMIN},
               auth_users=auth)
    with p.connect() as c:
        c.execute("select 1")
        with pytest.raises(psycopg.Error):
            c.execute("drop table nothing_here")
    with console(p) as adm:
        rows = show(adm, "POLICIES")
    assert len(rows) == 1 and rows[0]["script"].endswith("guard_ddl.lua")
    assert int(rows[0]["calls"]) >= 2 and rows[0]["denials"] == "1"
    assert rows[0]["errors"] == "0" and rows[0]["mode"] == "enforce"


def test_connect_and_disconnect_phases(pooler, tmp_path):
    s = script(tmp_path, "sessions.lua", """
return {
  connect = function(session)
    if session.user == 'plainuser' then return sieve.deny('plainuser may not log in here', '28000') end
    session.tags.connected = true
  end,
  statement = function(stmt, session)
    if not session.tags.connected then return sieve.deny('connect did not run') end
  end,
  disconnect = function(session) sieve.log('bye ' .. session.user) end,
}""")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    p.wait_log(r"sessions.lua: bye trustuser")
    with pytest.raises(psycopg.OperationalError, match="plainuser may not log in here"):
        p.connect(user="plainuser", password="plainpw")
    p.expect_fatal("plainuser may not log in here")


def test_fingerprint_is_there_when_a_script_reads_it(pooler, tmp_path):
    s = script(tmp_path, "fp.lua", """
local seen = {}
return { statement = function(stmt)
  local fp = stmt.fingerprint
  if type(fp) ~= 'string' or #fp ~= 16 then return sieve.deny('no fingerprint') end
  if stmt.fingerprint ~= fp then return sieve.deny('fingerprint changed') end
  if seen[fp] and seen[fp] ~= stmt.sql then return sieve.deny('same fingerprint: ' .. fp) end
  seen[fp] = stmt.sql
end }""")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        c.execute("select 1 as a")
        # Statements that differ only in constants share a fingerprint.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="same fingerprint"):
            c.execute("select 2 as a")


BIND_GUARD = """
return { bind = function(stmt, params, session)
  for i = 1, params.n do
    if params[i] == 'forbidden' then
      return sieve.deny('parameter ' .. i .. ' of a ' .. stmt.kind .. ' is forbidden')
    end
  end
  if params.n > 0 and params[1] == nil then
    sieve.log('first parameter is NULL, format ' .. params.formats[1])
  end
end }"""


def test_bind_phase_sees_parameters_and_may_deny(pooler, tmp_path, table):
    p = policy_pooler(pooler, [script(tmp_path, "bind.lua", BIND_GUARD)])
    with p.connect() as c:
        assert c.execute("select %s::text", ["fine"]).fetchone()[0] == "fine"
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="parameter 2 of a select is forbidden"):
            c.execute("select %s::text, %s::text", ["ok", "forbidden"])
        assert c.execute("select %s::int + 1", [41]).fetchone()[0] == 42   # the session goes on
        c.execute("select %s::text", [None])
        p.wait_log(r"bind.lua: first parameter is NULL, format text")
        # The simple protocol has no Bind: the literal is the statement's business.
        assert c.execute("select 'forbidden'").fetchone()[0] == "forbidden"


def test_bind_denial_inside_a_transaction_aborts_it(pooler, tmp_path, table):
    p = policy_pooler(pooler, [script(tmp_path, "bind.lua", BIND_GUARD)],
                      pool_mode="transaction")
    with p.connect(autocommit=False) as c:
        c.execute(f"insert into {table} values (%s)", [5])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="of a insert"):
            c.execute(f"insert into {table} select length(%s)", ["forbidden"])
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("select 1")
        c.rollback()
        assert c.execute(f"select count(*) from {table}").fetchone()[0] == 0
        c.commit()


def test_bind_phase_runs_at_every_execution_of_a_prepared_statement(pooler, tmp_path):
    p = policy_pooler(pooler, [script(tmp_path, "bind.lua", BIND_GUARD)],
                      pool_mode="transaction")

    async def run():
        conn = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                     database="testdb", ssl=False)
        try:
            stmt = await conn.prepare("select $1::text")
            assert await stmt.fetchval("one") == "one"
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError,
                               match="parameter 1 of a select is forbidden"):
                await stmt.fetchval("forbidden")
            assert await stmt.fetchval("two") == "two"
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetchval("select $1::text || 'x'", "forbidden")
            # asyncpg sends integers in binary: the script gets the bytes and the format.
            assert await conn.fetchval("select $1::int", 7) == 7
        finally:
            await conn.close()
    asyncio.run(run())


def test_bind_phase_may_only_allow_or_deny(pooler, tmp_path):
    s = script(tmp_path, "badbind.lua",
               "return { bind = function() return sieve.rewrite('select 2') end }")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="the policy could not decide"):
            c.execute("select %s::int", [1])
        assert c.execute("select 1").fetchone()[0] == 1
    p.wait_log(r"badbind.lua: bind: bind\(\) may only allow or deny")


def test_complete_phase_sees_each_result(pooler, tmp_path, table):
    s = script(tmp_path, "complete.lua", """
return { complete = function(result, stmt, session)
  sieve.log(string.format('done %s %s rows=%d status=%s sqlstate=%s ms=%s',
    stmt.kind, tostring(result.command), result.rows, result.status,
    tostring(result.sqlstate), type(result.duration_ms)))
end }""")
    p = policy_pooler(pooler, [s])
    with p.connect() as c:
        c.execute("select generate_series(1, 3)")
        p.wait_log(r"done select SELECT rows=3 status=ok sqlstate=nil ms=number")
        c.execute(f"insert into {table} values (1), (2); update {table} set v = 5 where v = 1")
        p.wait_log(r"done insert INSERT rows=2 status=ok")
        p.wait_log(r"done update UPDATE rows=1 status=ok")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1 / 0")
        p.wait_log(r"done select nil rows=0 status=error sqlstate=22012")
        assert c.execute(f"select v from {table} where v = %s", [5]).fetchone()[0] == 5
        p.wait_log(r"done select SELECT rows=1 status=ok sqlstate=nil")


def test_verdict_cache_asks_each_script_once_per_statement(pooler, tmp_path):
    from test_admin import ADMIN, console, show
    from conftest import default_auth_users
    s = script(tmp_path, "cached.lua", """
return {
  verdict_cache = "text",
  statement = function(stmt, session)
    sieve.log('asked for ' .. stmt.sql .. ' by ' .. session.user)
    if stmt.sql:find('secret') then return sieve.deny('no secrets') end
  end,
}""")
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = pooler(settings={"policy_scripts": s, "admin_users": ADMIN}, auth_users=auth)
    with p.connect() as c:
        for _ in range(3):
            assert c.execute("select 1").fetchone()[0] == 1
        for _ in range(2):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no secrets"):
                c.execute("select 'secret'")
    # Another role is asked about afresh: the verdict may depend on the user.
    with p.connect(user="plainuser", password="plainpw") as c:
        c.execute("select 1")
    with console(p) as adm:
        row = show(adm, "POLICIES")[0]
    assert (row["calls"], row["cached"], row["denials"]) == ("3", "3", "2")
    log = p.log()
    assert log.count("asked for select 1 by trustuser") == 1
    assert log.count("asked for select 'secret' by trustuser") == 1
    assert log.count("asked for select 1 by plainuser") == 1


def test_verdict_cache_declaration_is_checked(pooler, tmp_path):
    s = script(tmp_path, "badcache.lua",
               "return { verdict_cache = 'always', statement = function() end }")
    p = pooler(settings={"policy_scripts": s}, start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert 'badcache.lua: verdict_cache must be "text" or "structure"' in p.log()
    p.expect_fatal("verdict_cache must be")


# Each bundled plugin, one statement it refuses and one it lets through, in
# the eyes of each kind of client: psql, psycopg simple and extended, asyncpg.
PLUGIN_CASES = {
    "guard_ddl.lua": (None, "drop table {t}", "DROP TABLE is not allowed",
                      "select count(*) from {t}"),
    "readonly.lua": ("return { roles = { 'trustuser' } }", "delete from {t} where v = 1",
                     "may only read", "select count(*) from {t}"),
    "table_acl.lua": ("return { roles = { trustuser = { ['public.{t}'] = 'read' } } }",
                      "select count(*) from pg_catalog.pg_authid", "may not use",
                      "select count(*) from {t}"),
    "deny_functions.lua": ("return {}", "select pg_read_file('/etc/hostname')",
                           "is not allowed", "select count(*) from {t}"),
    "row_limit.lua": ("return { limit = 3 }", None, None,
                      "select g from generate_series(1, 10) g"),
}


@pytest.mark.parametrize("name", sorted(PLUGIN_CASES))
@pytest.mark.parametrize("client", ["psql", "simple", "extended", "asyncpg"])
def test_bundled_plugins_with_every_client(pooler, tmp_path, table, name, client):
    options, denied, message, allowed = PLUGIN_CASES[name]
    opts = options.replace("{t}", table) if options else None
    p = policy_pooler(pooler, [plugin(name, tmp_path, opts)])
    denied = denied and denied.format(t=table)
    allowed = allowed.format(t=table)
    rows_allowed = 3 if name == "row_limit.lua" else 1   # row_limit cuts 10 rows to 3
    if client == "psql":
        def psql(sql):
            return subprocess.run(["psql", "-X", "-At", "-h", p.host, "-p", str(p.port),
                                   "-U", "trustuser", "-d", "testdb", "-c", sql],
                                  capture_output=True, text=True, timeout=30)
        if denied:
            out = psql(denied)
            assert out.returncode != 0 and message in out.stderr, out.stderr
        out = psql(allowed)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.split()) == rows_allowed
    elif client in ("simple", "extended"):
        with p.connect() as c:
            if client == "simple":
                run = psycopg.ClientCursor(c).execute   # binds client-side: Query messages
            else:
                def run(sql):
                    return c.execute(sql, prepare=True)
            if denied:
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
                    run(denied)
            assert len(run(allowed).fetchall()) == rows_allowed
    else:
        async def go():
            conn = await asyncpg.connect(host=p.host, port=p.port, user="trustuser",
                                         database="testdb", ssl=False)
            try:
                if denied:
                    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError,
                                       match=message):
                        await conn.fetch(denied)
                assert len(await conn.fetch(allowed)) == rows_allowed
            finally:
                await conn.close()
        asyncio.run(go())


def test_structure_verdict_cache_serves_statements_differing_in_literals(pooler, tmp_path):
    from test_admin import ADMIN, console, show
    from conftest import default_auth_users
    s = script(tmp_path, "shape.lua", """
return {
  verdict_cache = "structure",
  statement = function(stmt, session)
    sieve.log('asked for ' .. stmt.sql)
    for _, t in ipairs(stmt.tables) do
      if t.name == 'pg_authid' then return sieve.deny('not pg_authid') end
    end
  end,
}""")
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = pooler(settings={"policy_scripts": s, "admin_users": ADMIN}, auth_users=auth)
    with p.connect() as c:
        cur = psycopg.ClientCursor(c)   # the simple protocol, literals inline
        for i in range(5):
            assert cur.execute(f"select oid from pg_class where oid = {1000 + i * 7}") \
                .fetchall() is not None
        # Another structure is another question, and is denied.
        for i in range(3):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not pg_authid"):
                cur.execute(f"select rolname from pg_authid where oid = {10 + i}")
    with console(p) as adm:
        row = show(adm, "POLICIES")[0]
    assert (row["calls"], row["cached"], row["denials"]) == ("2", "6", "3")
    assert p.log().count("asked for select oid from pg_class") == 1
