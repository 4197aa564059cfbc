-- `changes --alert NAME`, once its report is written: these runs'
-- restatements are reported. $1: the alert; $2: the runs.
INSERT INTO {schema}.restatement_alerts (alert, run_id)
SELECT $1, run_id FROM unnest($2::uuid[]) AS run_id
ON CONFLICT DO NOTHING
