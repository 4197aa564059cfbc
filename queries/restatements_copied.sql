-- History, before the merge writes anything, for an outcome or error table
-- whose window held no rows (its rows were copied straight in) while
-- tenant_daily's did: the copied rows of tenant days an earlier run had
-- already written. $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', t.tenant_id, t.day, {target_row_key}, 'inserted', {all_compared},
       NULL, {target_values}, d.run_id, now()
FROM {schema}.{table} t
JOIN {schema}.tenant_daily d
  ON d.tenant_id = t.tenant_id AND d.day = t.day AND d.run_id <> $3
WHERE t.day BETWEEN $1 AND $2 AND t.run_id = $3
