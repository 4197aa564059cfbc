-- The planner's estimate of a table's rows in a UTC range (no rows are
-- read): with query_table_pages.sql, whether `query` splits its read.
EXPLAIN (FORMAT JSON)
SELECT 1
FROM {schema}.{table} r
WHERE r.created_at >= '{from_utc}'::timestamptz
  AND r.created_at <  '{to_utc}'::timestamptz
