-- Least-privilege roles for callrollup. Run as a superuser (or the owner of
-- the platform tables) in the platform database, and in the target
-- database when it is another one:
--
--   psql "$PLATFORM_URL" -v ON_ERROR_STOP=1 -f deploy/roles.sql
--
-- callrollup_reader may read exactly the columns of docs/CONTRACT.md §1,
-- column by column: transcripts, summaries, captured data, phone numbers,
-- metadata, error messages, stack traces and contexts stay out of reach
-- even by mistake. callrollup_writer owns the engine's schema (`migrate`
-- creates the summary tables and the ledger in it) and is a member of the
-- reader, so one URL can serve as source and target. callrollup_reporter
-- is for the people's commands (`costs`, `errors`, `query`, `runs`): it
-- reads the engine's schema and nothing else, no platform table at all
-- (their sessions are read-only too). callrollup_sessions is for `serve
-- --auth platform`: three columns of sessions and users. All four log in; give them
-- passwords (ALTER ROLE ... PASSWORD) or certificates as your
-- pg_hba.conf requires. Safe to run again.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_reader') THEN
        CREATE ROLE callrollup_reader LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_writer') THEN
        CREATE ROLE callrollup_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_reporter') THEN
        CREATE ROLE callrollup_reporter LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_sessions') THEN
        CREATE ROLE callrollup_sessions LOGIN;
    END IF;
END
$$;

GRANT callrollup_reader TO callrollup_writer;

-- The platform tables (schema public; change it with --source-schema).
GRANT USAGE ON SCHEMA public TO callrollup_reader;
GRANT SELECT (tenant_id, business_name, timezone, status)
    ON public.tenants TO callrollup_reader;
GRANT SELECT (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
              tts_cost_usd, total_cost_usd, created_at, duration_seconds)
    ON public.call_logs TO callrollup_reader;
GRANT SELECT (tenant_id, call_id, error_type, severity, resolved, created_at)
    ON public.system_errors TO callrollup_reader;

-- `serve --auth platform` (its --database-url): whose session a token is.
-- The hash is only compared (SELECT on it is what a WHERE needs), never
-- returned; e-mails, password hashes, user agents and addresses stay out
-- of reach. Granted where the platform has the tables.
DO $$
BEGIN
    IF to_regclass('public.sessions') IS NOT NULL AND to_regclass('public.users') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA public TO callrollup_sessions;
        GRANT SELECT (session_hash, expires_at, user_id) ON public.sessions TO callrollup_sessions;
        GRANT SELECT (user_id, tenant_id, role) ON public.users TO callrollup_sessions;
    END IF;
END
$$;

-- The engine's schema (--target-schema, default analytics), owned by the writer.
CREATE SCHEMA IF NOT EXISTS analytics AUTHORIZATION callrollup_writer;
ALTER SCHEMA analytics OWNER TO callrollup_writer;

-- The reporting role: SELECT on the engine's schema only, on the tables
-- that exist and on those `migrate` (as the writer) creates later.
GRANT USAGE ON SCHEMA analytics TO callrollup_reporter;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO callrollup_reporter;
ALTER DEFAULT PRIVILEGES FOR ROLE callrollup_writer IN SCHEMA analytics
    GRANT SELECT ON TABLES TO callrollup_reporter;
