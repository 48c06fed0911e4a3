-- readonly.lua: the listed roles may only read. A statement passes when
-- it writes no table and is a query, SHOW, EXPLAIN (without ANALYZE of a
-- write), a transaction command or a harmless SET; everything else,
-- including what the analysis cannot see into (DO, CALL, EXECUTE), is
-- refused for those roles.
--
-- Options file (policy_scripts = plugins/readonly.lua:/etc/pgsieve/readonly.options.lua):
--   return { roles = { "mcp_ro", "reporting" } }
--   roles   database roles (session.user) held to reading; the others pass
--   all     true: every role is held to reading

local roles = {}
local everyone = false

-- Settings a reader may change without escaping the rule.
local harmless_settings = {
  application_name = true, statement_timeout = true, lock_timeout = true,
  idle_in_transaction_session_timeout = true, timezone = true, datestyle = true,
  intervalstyle = true, extra_float_digits = true, client_encoding = true,
  search_path = false, -- could point unqualified names somewhere unexpected
}

local read_kinds = { select = true, transaction = true }

return {
  -- The verdict depends on the statement's shape and the role alone.
  verdict_cache = "structure",

  init = function(options)
    for _, role in ipairs(options.roles or {}) do
      roles[role] = true
    end
    everyone = options.all == true
    if not everyone and next(roles) == nil then
      return "readonly.lua needs roles = { ... } or all = true"
    end
  end,

  statement = function(stmt, session)
    if not everyone and not roles[session.user] then
      return nil
    end
    local refuse = sieve.deny(session.user .. " may only read (" .. stmt.command .. ")")
    if stmt.opaque or stmt.writes or stmt.row_locks or stmt.copy_program or stmt.copy_file then
      return refuse
    end
    if stmt.kind == "set" then
      if stmt.setting and harmless_settings[stmt.setting] then
        return nil
      end
      return refuse
    end
    if read_kinds[stmt.kind] then
      if stmt.command == "PREPARE TRANSACTION" or stmt.command == "COMMIT PREPARED" then
        return refuse
      end
      return nil
    end
    if stmt.kind == "utility" and (stmt.command == "SHOW" or stmt.explain) then
      return nil
    end
    if stmt.kind == "copy" then -- COPY ... TO STDOUT writes no table
      return nil
    end
    return refuse
  end,
}
