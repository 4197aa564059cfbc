-- `generate`, after loading the platform tables: their planner statistics.
ANALYZE tenants, call_logs, system_errors;
