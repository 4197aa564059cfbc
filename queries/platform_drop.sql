DROP TABLE IF EXISTS public.system_errors, public.call_logs, public.tenants CASCADE
