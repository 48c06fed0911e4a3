-- mask_pii.lua: sensitive columns are masked in what clients read, with a
-- masker per audience: an AI agent's role gets stable pseudonyms, a human
-- support role sees the last digits, everyone else the redacted value.
-- Rules apply in the order given: for each column, the first rule whose
-- scope fits the session wins, so put the narrow ones first.
--
-- Options file (policy_scripts = plugins/mask_pii.lua:/etc/pgsieve/mask_pii.options.lua):
--   return {
--     rules = {
--       { column = "public.customers.email", mask = "hash", roles = { "mcp_ro" } },
--       { column = "public.customers.email", mask = "partial", keep_first = 2,
--         groups = { "support" } },
--       { column = "public.customers.email", mask = "email" },
--       { column = "public.*.ssn", mask = "redact" },
--     },
--   }
--   column   schema.table.column; '*' matches any run of characters in a part
--   mask     redact | null | email | partial | hash | fixed
--   keep_first, keep_last   for partial
--   value    for fixed
--   key      for hash (default: mask_hash_key from the INI file, better kept there)
--   roles, groups   who the rule is for (database roles, token identity
--                   groups); neither: everyone

local function masker(rule)
  local m = rule.mask
  if m == "redact" or m == "null" or m == "email" then
    return sieve.mask[m]
  elseif m == "partial" then
    return sieve.mask.partial{ keep_first = rule.keep_first or 0, keep_last = rule.keep_last or 0 }
  elseif m == "hash" then
    return sieve.mask.hash{ key = rule.key }
  elseif m == "fixed" then
    if type(rule.value) ~= "string" then
      return nil, "fixed needs value = \"...\""
    end
    return sieve.mask.fixed(rule.value)
  end
  return nil, "unknown mask " .. tostring(m)
end

return {
  init = function(options)
    local rules = options.rules
    if type(rules) ~= "table" or #rules == 0 then
      return "mask_pii.lua needs rules = { { column = ..., mask = ... }, ... }"
    end
    for i, rule in ipairs(rules) do
      if type(rule.column) ~= "string" then
        return "mask_pii.lua: rule " .. i .. " needs column = \"schema.table.column\""
      end
      local m, why = masker(rule)
      if not m then
        return "mask_pii.lua: rule " .. i .. ": " .. why
      end
      local scope = nil
      if rule.roles or rule.groups then
        scope = { roles = rule.roles, groups = rule.groups }
      end
      sieve.mask_column(rule.column, m, scope)
    end
  end,
}
