-- Which platform tables already exist (generate refuses to overwrite them).
SELECT t FROM unnest(ARRAY['tenants', 'call_logs', 'system_errors']) AS t
WHERE to_regclass('public.' || t) IS NOT NULL
