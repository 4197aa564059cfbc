-- One run at a time per target schema: a session-level advisory lock,
-- released when the run's connection closes (even if the process dies).
SELECT pg_try_advisory_lock(hashtext('callrollup:' || $1))
