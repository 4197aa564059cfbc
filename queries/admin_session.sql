-- `migrate`'s session: DDL on the engine's schema waits at most a minute
-- for a lock (a run holding the summary tables) instead of queueing every
-- later reader behind it, and never runs away.
SET statement_timeout = '3600s';
SET lock_timeout = '60s';
SET idle_in_transaction_session_timeout = '3600s';
