-- Columns of the platform tables that this role can see, for the
-- schema-drift check. Parameter $1: the source schema.
SELECT c.table_name::text  AS table_name,
       c.column_name::text AS column_name,
       c.data_type::text   AS data_type,
       c.numeric_scale::int AS numeric_scale,
       has_column_privilege(
           format('%I.%I', c.table_schema, c.table_name), c.column_name::text, 'SELECT'
       ) AS can_select
FROM information_schema.columns c
WHERE c.table_schema = $1
  AND c.table_name IN ('tenants', 'call_logs', 'system_errors')
