-- Every source session: it never writes and never runs away. JIT is off:
-- the engine's queries are plain range scans, and compiling them cost
-- about 5 ms per query (0.3-0.5 s over the 91 chunk queries of a 90-day run).
-- A reader waits at most a minute for a lock (an ALTER TABLE in progress),
-- and a session left idle in its transaction (the snapshot's, between
-- chunks) is ended by the server after as long as a statement may run.
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET statement_timeout = '{statement_timeout}s';
SET lock_timeout = '60s';
SET idle_in_transaction_session_timeout = '{statement_timeout}s';
SET jit = off;
