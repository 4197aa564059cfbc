-- History, before the merge writes anything: the stored rows whose figures
-- the run changes (the same rows the merge's UPDATE will touch), with
-- their old and new figures and the run that wrote the old ones.
-- $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', t.tenant_id, t.day, {target_row_key}, 'updated', {changed_columns},
       {target_values}, {staged_values}, t.run_id, clock_timestamp()
FROM {schema}.{table} t
JOIN {staged} s ON {key_match}
WHERE t.day BETWEEN $1 AND $2
  AND ({compared_target}) IS DISTINCT FROM ({compared_staged})
