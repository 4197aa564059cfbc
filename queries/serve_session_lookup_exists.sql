-- Whether deploy/roles.sql made the session lookup function in the
-- platform's schema. $1: the schema's name.
SELECT EXISTS (
    SELECT 1
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = 'callrollup_session'
)
