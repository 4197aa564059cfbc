-- Runs left `running` while we hold the lock died midway (killed, crashed,
-- lost their connection): none of their writes were committed.
UPDATE {schema}.rollup_runs
SET status = 'failed', finished_at = now(),
    error = 'abandoned: the process stopped before finishing; nothing it computed was committed'
WHERE status = 'running'
