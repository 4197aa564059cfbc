-- Only a run still `running` can fail: once the write transaction marked
-- it `succeeded` and committed, its rows are the billing truth, and a
-- later failure (moving report files) must not contradict the ledger.
UPDATE {schema}.rollup_runs
SET status = 'failed', finished_at = clock_timestamp(), error = $2
WHERE run_id = $1 AND status = 'running'
