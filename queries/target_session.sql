-- The run's target session: the write transaction's statements run at most
-- --statement-timeout, wait at most a minute for a row or table lock (an
-- analyst's long transaction on the summary tables), and a transaction
-- left idle (a stalled source between chunks) is ended by the server after
-- as long as a statement may run, which rolls it back.
-- JIT is off: the write transaction's statements touch a window's summary
-- rows, and once the merge turns sequential scans off (its planner cost
-- for the staged tables' scans then passes every JIT threshold),
-- Postgres compiled each history, update and reconcile statement with
-- inlining and optimization, 90-335 ms apiece: 0.85 s of the 0.95 s merge
-- of a nightly re-run that restated 3,029 rows (auto_explain, bench/README.md).
SET statement_timeout = '{statement_timeout}s';
SET lock_timeout = '60s';
SET idle_in_transaction_session_timeout = '{statement_timeout}s';
SET jit = off;
