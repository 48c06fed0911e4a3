-- require_approval.lua: statements that match a rule are held until a
-- person approves them in the admin console (APPROVE id, DENY id), see
-- the README's Approvals section. Statements no rule matches pass.
--
-- Options file (policy_scripts = plugins/require_approval.lua:/etc/pgsieve/approval.options.lua):
--   return {
--     rules = {
--       { kinds = { "delete", "update" }, tables = { "public.orders" },
--         reason = "writes to orders need a second pair of eyes" },
--       { kinds = { "ddl" }, roles = { "migrator" }, approvers = { "dba_on_call" } },
--       { tables = { "hr.*" }, groups = { "agents" }, ttl = 120 },
--     },
--     default_schema = "public",
--   }
-- A rule matches when every condition it has holds (a rule without any
-- matches every statement); the first matching rule decides:
--   kinds       stmt.kind (select, insert, update, delete, merge, ddl, copy,
--               call, do, utility, ...) or the command tag ("DROP TABLE").
--               A rule naming a write (insert, update, delete, merge) also
--               matches a SELECT that writes through a WITH clause and every
--               statement whose effect the analysis cannot see (DO, CALL,
--               EXECUTE: stmt.opaque), so that wrapping does not evade it. A
--               write inside the WITH of another kind of write counts as
--               that kind: rules that must catch every write to a table
--               should name the table (tables, access = "write").
--   tables      "schema.table" or "schema.*"; some table the statement
--               touches must be listed (unqualified names are taken to be
--               in default_schema)
--   access      "write": only tables the statement writes count
--   roles       database roles (session.user)
--   identities  token identities (session.identity.name)
--   groups      token groups (session.identity.groups)
--   unfiltered  true: only UPDATE/DELETE without WHERE
--   reason      what the approver and the client are told
--   approvers   console users (or identities) who may answer; default: any
--               admin_users or approval_users member
--   ttl         seconds to wait, at most approval_timeout

local write_kinds = { insert = true, update = true, delete = true, merge = true }
local rules = {}
local default_schema = "public"

local function set_of(list, what, i)
  if list == nil then
    return nil
  end
  if type(list) ~= "table" then
    error(("rule %d: %s must be a list"):format(i, what))
  end
  local set = {}
  for _, v in ipairs(list) do
    set[v] = true
  end
  return set
end

local function table_matches(rule, stmt)
  for _, t in ipairs(stmt.tables or {}) do
    if rule.access == nil or t.access == rule.access then
      local schema = t.schema or default_schema
      if rule.tables[schema .. "." .. t.name] or rule.tables[schema .. ".*"] then
        return true
      end
    end
  end
  return false
end

local function in_groups(set, session)
  local id = session.identity
  if not id or not id.groups then
    return false
  end
  for _, g in ipairs(id.groups) do
    if set[g] then
      return true
    end
  end
  return false
end

local function kind_matches(rule, stmt)
  if rule.kinds[stmt.kind] or rule.kinds[stmt.command] then
    return true
  end
  -- Writes the top level does not show: a data-modifying CTE under a SELECT, or opaque code.
  return rule.writes and (stmt.opaque or (stmt.kind == "select" and stmt.writes))
end

local function matches(rule, stmt, session)
  if rule.kinds and not kind_matches(rule, stmt) then
    return false
  end
  if rule.tables and not table_matches(rule, stmt) then
    return false
  end
  if rule.roles and not rule.roles[session.user] then
    return false
  end
  if rule.identities and not (session.identity and rule.identities[session.identity.name]) then
    return false
  end
  if rule.groups and not in_groups(rule.groups, session) then
    return false
  end
  if rule.unfiltered and not stmt.unfiltered_write then
    return false
  end
  return true
end

return {
  -- No verdict_cache: the answer depends on the token's identity and groups.

  init = function(options)
    if type(options.rules) ~= "table" or #options.rules == 0 then
      return "require_approval.lua needs rules = { { ... }, ... }"
    end
    default_schema = options.default_schema or default_schema
    for i, r in ipairs(options.rules) do
      if r.access ~= nil and r.access ~= "write" and r.access ~= "read" then
        return ("rule %d: access must be \"read\" or \"write\""):format(i)
      end
      if r.ttl ~= nil and (type(r.ttl) ~= "number" or r.ttl < 1) then
        return ("rule %d: ttl must be a number of seconds"):format(i)
      end
      local kinds = set_of(r.kinds, "kinds", i)
      local writes = false
      for k in pairs(kinds or {}) do
        writes = writes or write_kinds[k] == true
      end
      rules[i] = {
        kinds = kinds,
        writes = writes,
        tables = set_of(r.tables, "tables", i),
        roles = set_of(r.roles, "roles", i),
        identities = set_of(r.identities, "identities", i),
        groups = set_of(r.groups, "groups", i),
        access = r.access,
        unfiltered = r.unfiltered == true,
        reason = r.reason,
        approvers = r.approvers,
        ttl = r.ttl,
      }
    end
  end,

  statement = function(stmt, session)
    for i, rule in ipairs(rules) do
      if matches(rule, stmt, session) then
        local reason = rule.reason or ("%s needs approval (rule %d of require_approval.lua)"):format(stmt.command, i)
        return sieve.approve(reason, { ttl = rule.ttl and math.floor(rule.ttl), approvers = rule.approvers })
      end
    end
  end,
}
