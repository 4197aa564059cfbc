UPDATE {schema}.rollup_runs
SET status = 'failed', finished_at = now(), error = $2
WHERE run_id = $1
