-- Which platform tables already exist (generate refuses to overwrite them),
-- and whether `generate` created each one (its comment, platform_mark.sql).
SELECT t AS table_name,
       coalesce(obj_description(to_regclass('public.' || t), 'pg_class'), '')
           = 'created by callrollup generate' AS generated
FROM unnest(ARRAY['tenants', 'call_logs', 'system_errors']) AS t
WHERE to_regclass('public.' || t) IS NOT NULL
