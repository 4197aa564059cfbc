-- The report's snapshot ends: it only read, so rolling back loses
-- nothing and also ends a transaction a failed statement aborted.
ROLLBACK;
