-- The figures `anomalies` compares, of every tenant day of a period (its
-- baselines included): calls, billable seconds and the four costs, with
-- the name the day was billed under. No outcome join and no finding
-- counts, and in no order (`anomalies` sorts nothing by tenant; sorting
-- uuid text spilled to disk): a nightly run reads these back after it
-- commits, and a dashboard at each view. $1, $2: the first and last day.
SELECT tenant_id::text AS tenant_id, day, business_name,
       calls, billable_seconds,
       stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd
FROM {schema}.tenant_daily
WHERE day BETWEEN $1 AND $2
