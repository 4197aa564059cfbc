-- Finance figures of each tenant day of a period, from tenant_daily (the
-- source of truth once a run has succeeded), with the day's booked calls
-- (outcome 'booked', any status) from tenant_daily_outcomes, and the calls
-- with a missing cost component or components that do not add up to the
-- total (data_quality_findings missing_cost, cost_mismatch). $1, $2: the
-- first and last day; $3: tenant ids, NULL for every tenant.
SELECT d.tenant_id::text AS tenant_id, d.day, d.business_name, d.timezone,
       d.calls, d.completed_calls, d.billable_seconds,
       d.stt_cost_usd, d.llm_cost_usd, d.tts_cost_usd, d.total_cost_usd,
       d.calls_missing_cost, d.cost_mismatch_calls,
       coalesce(o.booked_calls, 0)::bigint AS booked_calls
FROM {schema}.tenant_daily d
LEFT JOIN (SELECT tenant_id, day, sum(calls) AS booked_calls
           FROM {schema}.tenant_daily_outcomes
           WHERE day BETWEEN $1 AND $2 AND outcome = 'booked'
             AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3))
           GROUP BY tenant_id, day) o USING (tenant_id, day)
WHERE d.day BETWEEN $1 AND $2
  AND ($3::uuid[] IS NULL OR d.tenant_id = ANY ($3))
ORDER BY d.tenant_id, d.day
