-- `changes --run last`: the run that succeeded last.
SELECT run_id FROM {schema}.rollup_runs
WHERE status = 'succeeded'
ORDER BY finished_at DESC, run_id
LIMIT 1
