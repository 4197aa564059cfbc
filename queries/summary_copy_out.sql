-- One summary table's rows for a range of days (and, when given, only some
-- tenants), as `costs`, `errors` and `query` read them: the engine's
-- figures, without the ledger's run_id and computed_at.
SELECT {columns}
FROM {schema}.{table}
WHERE day BETWEEN '{from}' AND '{to}' {tenant_filter}
