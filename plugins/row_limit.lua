-- row_limit.lua: a SELECT without LIMIT gets one, so that a client (an AI
-- agent) cannot pull a whole table by accident. Only plain, single
-- SELECT statements are rewritten; anything else passes untouched.
--
-- Options file (optional):
--   return { limit = 1000, roles = { "mcp_ro" } }
--   limit  rows at most (default 1000)
--   roles  only these roles (default: everyone)

local limit = 1000
local roles = nil

local function has_limit(sql)
  -- Outside strings and comments a LIMIT or FETCH FIRST ends the query; a
  -- cheap textual check errs on the side of adding none.
  local s = sql:lower()
  return s:find("%f[%w]limit%f[%W]") or s:find("%f[%w]fetch%s+first%f[%W]")
      or s:find("%f[%w]fetch%s+next%f[%W]")
end

return {
  -- The rewrite keeps the statement's literals: cached per exact text.
  verdict_cache = "text",

  init = function(options)
    limit = tonumber(options.limit or 1000)
    if not limit or limit < 1 then
      return "row_limit.lua: limit must be a positive number"
    end
    if options.roles then
      roles = {}
      for _, r in ipairs(options.roles) do roles[r] = true end
    end
  end,

  statement = function(stmt, session)
    if roles and not roles[session.user] then
      return nil
    end
    if stmt.kind ~= "select" or stmt.command ~= "SELECT" or stmt.multi or stmt.explain
        or stmt.row_locks or has_limit(stmt.sql) then
      return nil
    end
    -- On a line of its own: the text may end in a -- comment.
    local sql = stmt.sql:gsub("[%s;]+$", "")
    return sieve.rewrite(sql .. "\nLIMIT " .. math.floor(limit))
  end,
}
