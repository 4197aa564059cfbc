-- One run's status, to decide what its sealed report files become.
SELECT status FROM {schema}.rollup_runs WHERE run_id = $1
