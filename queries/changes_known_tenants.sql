-- Which of the tenant ids $1 any restatement names (a tenant whose every
-- tenant day was deleted is still known).
SELECT DISTINCT tenant_id::text AS tenant_id
FROM {schema}.restatements
WHERE tenant_id = ANY ($1)
