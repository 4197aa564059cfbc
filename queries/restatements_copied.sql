-- History, before the merge writes anything, for a table whose window held
-- no rows (this run's rows were copied straight in): the copied rows of
-- tenant days an earlier run had written (queries/restatements_earlier_run.sql).
-- $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', t.tenant_id, t.day, {target_row_key}, 'inserted', {all_compared},
       NULL, {target_values}, earlier.run_id, clock_timestamp()
FROM {schema}.{table} t
CROSS JOIN LATERAL ({earlier_run_of_target}) earlier
WHERE t.day BETWEEN $1 AND $2 AND t.run_id = $3
