-- A summary table's columns in table order: the merge names them all.
SELECT attname::text
FROM pg_attribute
WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
