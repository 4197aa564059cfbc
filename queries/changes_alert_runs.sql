-- `changes --alert NAME`: the runs whose restatements the alert looked at
-- and has not reported yet (marked after its report is written). $1: the
-- alert; $2..$6: the selection, as in changes_tenant_daily.sql (first and
-- last restated day, tenants, run, restated since; NULL: no bound).
SELECT DISTINCT r.run_id
FROM {schema}.restatements r
WHERE NOT EXISTS (
        SELECT 1 FROM {schema}.restatement_alerts a
        WHERE a.alert = $1 AND a.run_id = r.run_id)
  AND ($2::date IS NULL OR r.day >= $2)
  AND ($3::date IS NULL OR r.day <= $3)
  AND ($4::uuid[] IS NULL OR r.tenant_id = ANY ($4))
  AND ($5::uuid IS NULL OR r.run_id = $5)
  AND ($6::timestamptz IS NULL OR r.restated_at >= $6)
ORDER BY r.run_id
