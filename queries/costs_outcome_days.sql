-- Calls and cost of each tenant day by status and outcome, from
-- tenant_daily_outcomes, with the tenant's name and zone from tenant_daily.
-- $1, $2: the first and last day; $3: tenant ids, NULL for every tenant.
SELECT o.tenant_id::text AS tenant_id, o.day, d.business_name, d.timezone,
       o.status, o.outcome, o.calls, o.billable_seconds, o.total_cost_usd
FROM {schema}.tenant_daily_outcomes o
JOIN {schema}.tenant_daily d USING (tenant_id, day)
WHERE o.day BETWEEN $1 AND $2
  AND ($3::uuid[] IS NULL OR o.tenant_id = ANY ($3))
ORDER BY o.tenant_id, o.day, o.status, o.outcome
