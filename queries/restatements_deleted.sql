-- History, before the merge writes anything: the stored rows the run no
-- longer produces (the rows the merge's DELETE will remove), with the
-- figures they had. $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', t.tenant_id, t.day, {target_row_key}, 'deleted', {all_compared},
       {target_values}, NULL, t.run_id, clock_timestamp()
FROM {schema}.{table} t
JOIN {gone} s ON {key_match}
WHERE t.day BETWEEN $1 AND $2
