-- guard_ddl.lua: refuses what changes or destroys the schema or its
-- privileges (DROP, TRUNCATE, ALTER, GRANT, REVOKE, CREATE/ALTER/DROP
-- ROLE) and UPDATE or DELETE that would touch every row (no WHERE, also
-- inside a CTE).
--
-- Options, from an options file named after the script:
--   policy_scripts = plugins/guard_ddl.lua:/etc/pgsieve/guard_ddl.options.lua
-- where the options file returns a table, e.g.
--   return { allow_roles = { "migrator" }, allow_unfiltered = false }
--   allow_roles       database roles (session.user) that this script lets through
--   allow_unfiltered  true: UPDATE/DELETE without WHERE are not refused

local allow_roles = {}
local allow_unfiltered = false

local function refused_command(cmd)
  if cmd == "TRUNCATE TABLE" or cmd == "GRANT" or cmd == "REVOKE" then
    return true
  end
  if cmd:sub(1, 5) == "DROP " or cmd:sub(1, 6) == "ALTER " then
    return true
  end
  return cmd == "CREATE ROLE" or cmd == "CREATE USER" or cmd == "CREATE GROUP"
end

return {
  -- The verdict depends on the statement's shape and the role alone.
  verdict_cache = "structure",

  init = function(options)
    for _, role in ipairs(options.allow_roles or {}) do
      allow_roles[role] = true
    end
    allow_unfiltered = options.allow_unfiltered == true
  end,

  statement = function(stmt, session)
    if allow_roles[session.user] then
      return nil
    end
    if refused_command(stmt.command) then
      return sieve.deny(stmt.command .. " is not allowed through this gateway")
    end
    if stmt.unfiltered_write and not allow_unfiltered then
      return sieve.deny("UPDATE or DELETE without a WHERE clause is not allowed through this gateway")
    end
  end,
}
