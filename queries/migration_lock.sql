-- Two `migrate`s on one schema wait for each other.
SELECT pg_advisory_xact_lock(hashtext('callrollup-migrate:' || $1))
