-- Merge, step 2: rows whose figures changed. A row whose figures are the
-- same is not touched (it keeps the run_id and computed_at of the run that
-- last changed it), so a re-run over unchanged data writes nothing.
UPDATE {schema}.{table} t
SET ({assigned}) = {staged_assigned}
FROM {staged} s
WHERE {key_match}
  AND t.day BETWEEN $1 AND $2
  AND ({compared_target}) IS DISTINCT FROM ({compared_staged})
