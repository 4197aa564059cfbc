-- `changes --alert NAME`: the runs with restatements the alert has not
-- reported yet (marked after its report is written). $1: the alert.
SELECT DISTINCT r.run_id
FROM {schema}.restatements r
WHERE NOT EXISTS (
    SELECT 1 FROM {schema}.restatement_alerts a
    WHERE a.alert = $1 AND a.run_id = r.run_id)
ORDER BY r.run_id
