SELECT run_id::text AS run_id, started_at, finished_at, status, window_from, window_to,
       partial, source_calls, source_errors, source_total_cost_usd,
       rows_tenant_daily, rows_tenant_daily_outcomes, rows_tenant_daily_errors,
       rows_data_quality_findings, engine_version, arguments::text AS arguments, error,
       source, tenant_filter, tenant_shard
FROM {schema}.rollup_runs
ORDER BY started_at DESC, run_id
LIMIT $1
