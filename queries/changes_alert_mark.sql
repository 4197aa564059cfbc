-- `changes --alert NAME`, once its report is written: these restatements
-- are reported. $1: the alert; $2: their restatement_id.
INSERT INTO {schema}.restatement_alerts (alert, restatement_id)
SELECT $1, restatement_id FROM unnest($2::bigint[]) AS restatement_id
ON CONFLICT DO NOTHING
