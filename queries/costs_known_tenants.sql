-- Which of the given tenant ids have any row in tenant_daily, on any day:
-- a --tenant that has none is unknown to the summaries (a typo, or never
-- rolled up). $1: tenant ids.
SELECT t.id::text AS tenant_id
FROM unnest($1::uuid[]) AS t(id)
WHERE EXISTS (SELECT 1 FROM {schema}.tenant_daily d WHERE d.tenant_id = t.id)
ORDER BY 1
