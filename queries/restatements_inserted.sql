-- History, before the merge writes anything: rows new to a tenant day an
-- earlier run had written (queries/restatements_earlier_run.sql), which
-- the merge's INSERT will add. A tenant day new to the tables is no
-- restatement. $1, $2: the window's first and last day; $3: this run.
INSERT INTO {schema}.restatements
    (run_id, table_name, tenant_id, day, row_key, change, changed_columns,
     old_values, new_values, previous_run_id, restated_at)
SELECT $3, '{table}', s.tenant_id, s.day, {staged_row_key}, 'inserted', {all_compared},
       NULL, {staged_values}, earlier.run_id, clock_timestamp()
FROM {staged} s
CROSS JOIN LATERAL ({earlier_run_of_staged}) earlier
WHERE s.day BETWEEN $1 AND $2
  AND NOT EXISTS (
    SELECT 1 FROM {schema}.{table} t
    WHERE {key_match} AND t.day BETWEEN $1 AND $2
)
