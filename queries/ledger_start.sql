INSERT INTO {schema}.rollup_runs
    (run_id, started_at, status, window_from, window_to, partial, tenant_filter,
     engine_version, arguments, tenant_shard, source)
VALUES ($1, clock_timestamp(), 'running', $2, $3, $4, $5, $6, CAST($7::text AS jsonb), $8, $9)
