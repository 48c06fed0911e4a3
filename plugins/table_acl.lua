-- table_acl.lua: per-role allow-lists of tables and what each may do with
-- them. A role with a list may touch only the tables on it, reading or
-- writing as listed; roles without a list pass. Statements the analysis
-- cannot see into (DO, CALL, EXECUTE) are refused for listed roles.
--
-- Options file:
--   return {
--     roles = {
--       mcp_ro  = { ["public.customers"] = "read", ["public.orders"] = "read" },
--       billing = { ["public.invoices"] = "write", ["public.customers"] = "read" },
--     },
--     default_schema = "public",   -- for tables named without a schema
--   }
-- "write" allows reading too. Names are compared in lower case.

local acl = {}
local default_schema = "public"

return {
  -- The verdict depends on the statement's shape and the role alone.
  verdict_cache = "structure",

  init = function(options)
    default_schema = (options.default_schema or "public"):lower()
    for role, tables in pairs(options.roles or {}) do
      acl[role] = {}
      for name, mode in pairs(tables) do
        if mode ~= "read" and mode ~= "write" then
          return "table_acl.lua: " .. role .. "." .. name .. " must be \"read\" or \"write\""
        end
        acl[role][name:lower()] = mode
      end
    end
  end,

  statement = function(stmt, session)
    local allowed = acl[session.user]
    if not allowed then
      return nil
    end
    if stmt.opaque then
      return sieve.deny(session.user .. " may not run " .. stmt.command .. " (its tables cannot be checked)")
    end
    for _, t in ipairs(stmt.tables) do
      local full = ((t.schema or default_schema) .. "." .. t.name):lower()
      local mode = allowed[full]
      if not mode then
        return sieve.deny(session.user .. " may not use " .. full)
      end
      if t.access == "write" and mode ~= "write" then
        return sieve.deny(session.user .. " may only read " .. full)
      end
    end
  end,
}
