-- The figures `anomalies` compares, of every tenant day of a period (its
-- baselines included): calls, billable seconds and the four costs, with
-- the name the day was billed under; the columns of costs_tenant_days.sql
-- it does not use are zeros (one row mapper reads both). No outcome join and no finding
-- counts, and in no order (`anomalies` sorts nothing by tenant; sorting
-- uuid text spilled to disk): a nightly run reads these back after it
-- commits, and a dashboard at each view. The name only of the days from
-- $3 on (the period's: it names the tenant); the baseline days' would be
-- read to be thrown away. $1, $2: the first and last day.
SELECT tenant_id::text AS tenant_id, day,
       CASE WHEN day >= $3 THEN business_name END AS business_name,
       ''::text AS timezone,
       calls, billable_seconds,
       0::bigint AS completed_calls, 0::bigint AS booked_calls,
       0::bigint AS calls_missing_cost, 0::bigint AS cost_mismatch_calls,
       stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd
FROM {schema}.tenant_daily
WHERE day BETWEEN $1 AND $2
