-- Replaces a window: removes the rows of the window's days (and, with
-- --tenant or --tenant-shard, only those tenants) before the new rows are
-- copied in.
DELETE FROM {schema}.{table}
WHERE day BETWEEN $1 AND $2
  AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}
