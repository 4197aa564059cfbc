-- Least-privilege roles for callrollup. Run as a superuser (or the owner of
-- the platform tables) in the platform database, and in the target
-- database when it is another one:
--
--   psql "$PLATFORM_URL" -v ON_ERROR_STOP=1 -f deploy/roles.sql
--
-- Six roles, each for one job:
--
--   callrollup_owner     runs `callrollup migrate`: owns the engine's schema
--                        (analytics) and every table in it. Used at deploy
--                        time only, never by the nightly job.
--   callrollup_writer    the nightly `run`: reads the platform's columns of
--                        docs/CONTRACT.md §1 (as a member of the reader),
--                        writes the summary tables and the ledger, and may
--                        only INSERT into and SELECT from the restatement
--                        history (the trigger of migration 0006 refuses its
--                        UPDATE, DELETE and TRUNCATE there whatever the
--                        grants say). It cannot create, alter or drop
--                        anything.
--   callrollup_reader    the platform's columns of docs/CONTRACT.md §1,
--                        column by column: transcripts, summaries, captured
--                        data, phone numbers, metadata, error messages,
--                        stack traces and contexts stay out of reach even by
--                        mistake (`extract`, or `run --database-url` with
--                        the writer as --target-url).
--   callrollup_reporter  the people's commands (`costs`, `errors`, `query`,
--                        `runs`, `changes`, `serve`): reads the engine's
--                        schema and nothing else, no platform table at all
--                        (their sessions are read-only too).
--   callrollup_alerts    the closed-books alert (`changes --alert`): reads
--                        the engine's schema and adds the alert's marks
--                        (analytics.restatement_alerts); kept apart from
--                        the reporter, so a credential `serve` holds cannot
--                        mark changes reported and hide them.
--   callrollup_sessions  `serve --auth platform`: may call one function,
--                        callrollup_session(hash), which returns the one
--                        session with that hash (its user, role, tenant and
--                        end) or nothing: it cannot list sessions, hashes or
--                        users.
--
-- All six log in; give them passwords (ALTER ROLE ... PASSWORD) or
-- certificates as your pg_hba.conf requires. Safe to run again, before or
-- after `migrate`, and on a schema an earlier version of this file gave
-- to the writer (it moves to the owner).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_owner') THEN
        CREATE ROLE callrollup_owner LOGIN;
    END IF;
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
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_alerts') THEN
        CREATE ROLE callrollup_alerts LOGIN;
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

-- `serve --auth platform` (its --database-url): whose session a token is,
-- through one function that takes one hash and returns at most one row.
-- It runs with its owner's rights (whoever runs this file), with its own
-- search_path, and only callrollup_sessions may call it. Made where the
-- platform has the tables.
DO $$
BEGIN
    IF to_regclass('public.sessions') IS NOT NULL AND to_regclass('public.users') IS NOT NULL THEN
        -- An earlier version of this file granted columns of the tables.
        REVOKE SELECT (session_hash, expires_at, user_id) ON public.sessions FROM callrollup_sessions;
        REVOKE SELECT (user_id, tenant_id, role) ON public.users FROM callrollup_sessions;
        CREATE OR REPLACE FUNCTION public.callrollup_session(hash text)
        RETURNS TABLE (user_id uuid, role text, tenant_id uuid, expires_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS 'SELECT u.user_id, u.role::text, u.tenant_id, s.expires_at
            FROM public.sessions s
            JOIN public.users u ON u.user_id = s.user_id
            WHERE s.session_hash = $1 AND s.expires_at > now()
            LIMIT 1';
        REVOKE ALL ON FUNCTION public.callrollup_session(text) FROM PUBLIC;
        GRANT USAGE ON SCHEMA public TO callrollup_sessions;
        GRANT EXECUTE ON FUNCTION public.callrollup_session(text) TO callrollup_sessions;
    END IF;
END
$$;

-- The engine's schema (--target-schema, default analytics), owned by the
-- owner; what a schema of an earlier version held moves to it.
CREATE SCHEMA IF NOT EXISTS analytics AUTHORIZATION callrollup_owner;
ALTER SCHEMA analytics OWNER TO callrollup_owner;
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.relname, c.relkind FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE analytics.%I OWNER TO callrollup_owner', t.relname);
    END LOOP;
    FOR t IN SELECT p.oid::regprocedure AS f FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'analytics'
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO callrollup_owner', t.f);
    END LOOP;
END
$$;

-- The writer: what a run needs on the tables there are and on those
-- `migrate` (as the owner) creates later. The history is append-only
-- (the trigger of migration 0006); its UPDATE and DELETE are revoked here
-- too where the table exists.
GRANT USAGE ON SCHEMA analytics TO callrollup_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA analytics TO callrollup_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA analytics TO callrollup_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE callrollup_owner IN SCHEMA analytics
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO callrollup_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE callrollup_owner IN SCHEMA analytics
    GRANT USAGE, SELECT ON SEQUENCES TO callrollup_writer;
DO $$
BEGIN
    IF to_regclass('analytics.restatements') IS NOT NULL THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON analytics.restatements FROM callrollup_writer;
    END IF;
END
$$;

-- The reporting role: SELECT on the engine's schema only. The alert's
-- role: the same, and INSERT on the alerts' marks (migration 0006 grants
-- it when it creates the table after this file ran).
GRANT USAGE ON SCHEMA analytics TO callrollup_reporter, callrollup_alerts;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO callrollup_reporter, callrollup_alerts;
ALTER DEFAULT PRIVILEGES FOR ROLE callrollup_owner IN SCHEMA analytics
    GRANT SELECT ON TABLES TO callrollup_reporter, callrollup_alerts;
DO $$
BEGIN
    IF to_regclass('analytics.restatement_alerts') IS NOT NULL THEN
        GRANT INSERT ON analytics.restatement_alerts TO callrollup_alerts;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON analytics.restatement_alerts FROM callrollup_reporter;
        REVOKE ALL ON analytics.restatement_alerts FROM callrollup_writer;
    END IF;
END
$$;
