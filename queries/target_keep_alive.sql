-- The write transaction, waiting for its first chunk while the window is
-- still read in one pass: a statement now and then, so the server's
-- idle_in_transaction_session_timeout (target_session.sql) does not end a
-- transaction that is only waiting for the source.
SELECT 1
