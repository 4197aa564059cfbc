-- The figures `anomalies` compares, of every tenant day of a period (its
-- baselines included): calls, billable seconds and the four costs, with
-- the name the day was billed under. No outcome join and no finding
-- counts, and in no order (`anomalies` sorts nothing by tenant; sorting
-- uuid text spilled to disk): a nightly run reads these back after it
-- commits, and a dashboard at each view. The name only of the days from
-- $3 on (the period's: it names the tenant); the baseline days' would be
-- read to be thrown away. $1, $2: the first and last day.
SELECT tenant_id::text AS tenant_id, day,
       CASE WHEN day >= $3 THEN business_name END AS business_name,
       calls, billable_seconds,
       stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd
FROM {schema}.tenant_daily
WHERE day BETWEEN $1 AND $2
