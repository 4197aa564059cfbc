-- Whether the ledger holds run $1 (`changes --run`).
SELECT EXISTS (SELECT 1 FROM {schema}.rollup_runs WHERE run_id = $1)
