-- Whether a schema exists (whoever owns it).
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
