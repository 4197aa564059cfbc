-- A run that failed gives its advisory locks back at once (lock.sql,
-- lock_shard.sql), rather than when the server notices its connection
-- closed: a run started again at once finds them free.
SELECT pg_advisory_unlock_all()
