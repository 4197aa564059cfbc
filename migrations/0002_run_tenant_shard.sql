-- Runs of one tenant shard (`--tenant-shard i/n`) record which one, so
-- that a shard only ever marks its own dead runs as abandoned.
ALTER TABLE {schema}.rollup_runs ADD COLUMN tenant_shard text;
