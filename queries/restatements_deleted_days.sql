-- Whether a run deleted a tenant day of the window that the run's tenants
-- may bring back (then rows new to the tables can be restatements too).
-- $1, $2: the window's first and last day; $3: tenant ids, NULL for all.
SELECT EXISTS (
    SELECT 1 FROM {schema}.restatements
    WHERE day BETWEEN $1 AND $2 AND table_name = 'tenant_daily' AND change = 'deleted'
      AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3))
)
