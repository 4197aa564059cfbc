-- Runs left `running` while we hold the lock died midway (killed, crashed,
-- lost their connection): none of their writes were committed. A shard
-- run ($1 = its shard) only marks its own shard's runs; an unsharded run
-- holds the schema lock exclusively, so every `running` row is dead.
UPDATE {schema}.rollup_runs
SET status = 'failed', finished_at = clock_timestamp(),
    error = 'abandoned: the process stopped before finishing; nothing it computed was committed'
WHERE status = 'running'
  AND ($1::text IS NULL OR tenant_shard = $1)
