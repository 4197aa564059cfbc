-- Whether a table already holds rows in the run's window (and, with
-- --tenant or --tenant-shard, for those tenants): if not, the run copies
-- its rows straight in; if so, it merges them and writes only what changed.
SELECT EXISTS (
    SELECT 1 FROM {schema}.{table}
    WHERE day BETWEEN $1 AND $2
      AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}
)
