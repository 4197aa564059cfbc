-- Marks the platform tables as generated: `generate --replace` drops only
-- tables that carry this mark, never a real platform's.
COMMENT ON TABLE public.tenants IS 'created by callrollup generate';
COMMENT ON TABLE public.call_logs IS 'created by callrollup generate';
COMMENT ON TABLE public.system_errors IS 'created by callrollup generate';
