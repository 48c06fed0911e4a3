-- deny_functions.lua: refuses statements that call functions reading the
-- server's files, running programs, reaching other servers, or running
-- SQL handed to them as text (which the analysis cannot look into).
--
-- Options file (optional):
--   return { functions = { "my_schema.risky" }, only = false }
--   functions  more names to refuse: "name" matches in any schema,
--              "schema.name" only there
--   only       true: refuse just the listed ones, not the built-in list

local builtin = {
  "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
  "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
  "lo_import", "lo_export", "lo_from_bytea",
  "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
  "query_to_xml", "query_to_xml_and_xmlschema", "cursor_to_xml", "table_to_xml",
  "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
  "set_config", "pg_promote", "pg_switch_wal", "pg_create_restore_point",
}

local any_schema, exact = {}, {}

local function add(name)
  name = name:lower()
  if name:find(".", 1, true) then
    exact[name] = true
  else
    any_schema[name] = true
  end
end

return {
  -- The verdict depends on the statement's shape and the role alone.
  verdict_cache = "structure",

  init = function(options)
    if options.only ~= true then
      for _, f in ipairs(builtin) do add(f) end
    end
    for _, f in ipairs(options.functions or {}) do add(f) end
  end,

  statement = function(stmt)
    for _, qualified in ipairs(stmt.functions) do
      local q = qualified:lower()
      local name = q:match("([^.]+)$")
      if exact[q] or any_schema[name] then
        return sieve.deny("function " .. qualified .. " is not allowed through this gateway")
      end
    end
  end,
}
