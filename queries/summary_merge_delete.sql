-- Merge, step 1: rows of the window the run no longer produces (a tenant
-- day whose calls moved or were deleted, an outcome that no longer occurs).
DELETE FROM {schema}.{table} t
WHERE t.day BETWEEN $1 AND $2
  AND ($3::uuid[] IS NULL OR t.tenant_id = ANY ($3)) {shard_filter}
  AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE {key_match})
