-- History, before the merge writes anything: outcome or error rows new to
-- a tenant day an earlier run had already written (its tenant_daily row is
-- an earlier run's: a tenant day new to the tables is no restatement).
-- previous_run_id is the run whose tenant_daily row the day had.
-- $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', s.tenant_id, s.day, {staged_row_key}, 'inserted', {all_compared},
       NULL, {staged_values}, d.run_id, now()
FROM {staged} s
JOIN {schema}.tenant_daily d
  ON d.tenant_id = s.tenant_id AND d.day = s.day AND d.run_id <> $3
WHERE s.day BETWEEN $1 AND $2
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.{table} t
    WHERE {key_match} AND t.day BETWEEN $1 AND $2
)
