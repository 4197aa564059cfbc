-- Every source session: it never writes and never runs away. JIT is off:
-- the engine's queries are plain range scans, and compiling them cost
-- about 5 ms per query (0.3-0.5 s over the 91 chunk queries of a 90-day run).
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET statement_timeout = '{statement_timeout}s';
SET jit = off;
