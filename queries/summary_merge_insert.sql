-- Merge, step 3: rows the window did not hold yet (a new day, a new
-- outcome or error type).
INSERT INTO {schema}.{table} ({columns})
SELECT {staged_columns}
FROM {staged} s
WHERE NOT EXISTS (
    SELECT 1 FROM {schema}.{table} t
    WHERE {key_match} AND t.day BETWEEN $1 AND $2
)
