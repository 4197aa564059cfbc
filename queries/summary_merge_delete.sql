-- Merge, step 1: rows of the window the run no longer produces (a tenant
-- day whose calls moved or were deleted, an outcome that no longer occurs):
-- the engine found them by reading the window's rows back.
DELETE FROM {schema}.{table} t
USING {gone} s
WHERE {key_match} AND t.day BETWEEN $1 AND $2
