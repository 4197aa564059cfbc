-- A reporting session (`costs`, `errors`, `query`, `runs`, `serve`): it
-- only reads, so it is read-only; a report never waits long behind a lock
-- (a run's merge, an ALTER TABLE) and never runs away.
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET statement_timeout = '600s';
SET lock_timeout = '30s';
SET idle_in_transaction_session_timeout = '600s';
