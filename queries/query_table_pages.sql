-- How `query` reads one platform table over a UTC range: its pages now,
-- whether the server has TID range scans (PostgreSQL 14), and the rows
-- the planner's statistics give the table (-1: never analyzed). With
-- query_table_range.sql's estimate of the range's rows: a range that
-- covers most of the table is read in slices of its pages on parallel
-- streams, each a TID range scan; a narrow one is one index range.
SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint AS pages,
       current_setting('server_version_num')::int >= 140000            AS tid_range_scans,
       c.reltuples::float8                                             AS table_rows
FROM pg_class c
WHERE c.oid = '{schema}.{table}'::regclass
