-- The run's target session: the write transaction's statements run at most
-- --statement-timeout, wait at most a minute for a row or table lock (an
-- analyst's long transaction on the summary tables), and a transaction
-- left idle (a stalled source between chunks) is ended by the server after
-- as long as a statement may run, which rolls it back.
SET statement_timeout = '{statement_timeout}s';
SET lock_timeout = '60s';
SET idle_in_transaction_session_timeout = '{statement_timeout}s';
