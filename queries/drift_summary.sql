-- The drift check (`run`): each tenant day's calls, total cost and errors
-- as the summary table holds them. $1, $2: the first and last day.
SELECT tenant_id::text AS tenant_id, day, calls, total_cost_usd::numeric AS total_cost_usd, errors
FROM {schema}.tenant_daily
WHERE day BETWEEN $1 AND $2
