UPDATE {schema}.rollup_runs
SET status = 'succeeded', finished_at = clock_timestamp(),
    source_calls = $2, source_errors = $3,
    source_stt_cost_usd = $4, source_llm_cost_usd = $5,
    source_tts_cost_usd = $6, source_total_cost_usd = $7,
    rows_tenant_daily = $8, rows_tenant_daily_outcomes = $9,
    rows_tenant_daily_errors = $10, rows_data_quality_findings = $11
WHERE run_id = $1
