-- How closely a platform table's rows follow created_at on its pages (the
-- planner's statistics from the last ANALYZE; a table with inheritance
-- children or partitions has a row for the whole tree, preferred), when a
-- plain btree index leads with created_at (a BRIN, hash or partial index
-- cannot give rows in that order): near 1, a read in created_at order
-- through that index visits the pages in storage order. No row: never
-- analyzed, or no such index (a read in that order would sort the range).
SELECT s.correlation
FROM pg_stats s
WHERE s.schemaname = $1
  AND s.tablename = $2
  AND s.attname = 'created_at'
  AND EXISTS (
      SELECT 1
      FROM pg_index i
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
      WHERE n.nspname = $1
        AND t.relname = $2
        AND a.attname = 'created_at'
        AND am.amname = 'btree'
        AND i.indpred IS NULL
        AND i.indisvalid
  )
ORDER BY s.inherited DESC
LIMIT 1
