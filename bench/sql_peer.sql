-- The same job as `callrollup run`, in plain SQL inside Postgres (issue 25's
-- "same job in plain SQL" peer): the contract's three summary tables on
-- tenant-local days (docs/CONTRACT.md §2), written into :schema's tables in
-- one transaction (the window's rows deleted, then inserted).
--
--   psql URL -X -v ON_ERROR_STOP=1 -v schema=sql_peer -v from=D1 -v to=D2 -f bench/sql_peer.sql
--
-- Like bench/duckdb_peer.py it is written from the contract, not from the
-- engine, and bench/run.sh checks that its tables equal the engine's.
BEGIN;
SET LOCAL work_mem = '256MB';
CREATE TEMP TABLE zones ON COMMIT DROP AS
SELECT t.tenant_id, t.business_name,
       coalesce((SELECT n.name FROM pg_timezone_names n
                 WHERE t.timezone <> '' AND lower(n.name) = lower(t.timezone)
                 ORDER BY n.name LIMIT 1), 'UTC') AS zone
FROM tenants t
UNION ALL
SELECT '00000000-0000-0000-0000-000000000000', '(platform)', 'UTC';
CREATE TEMP TABLE calls ON COMMIT DROP AS
WITH errored AS (
    SELECT call_id, max(created_at) AS last_logged_at FROM system_errors
    WHERE call_id IS NOT NULL
      AND created_at >= (:'from'::date)::timestamp AT TIME ZONE 'UTC' - interval '14 hours' - interval '1 day'
    GROUP BY call_id
)
SELECT c.tenant_id, coalesce(c.status, 'unknown') AS status, coalesce(c.outcome, 'unknown') AS outcome,
       c.stt_cost_usd, c.llm_cost_usd, c.tts_cost_usd, c.total_cost_usd, c.duration_seconds,
       (c.created_at AT TIME ZONE coalesce(z.zone, 'UTC'))::date AS day,
       coalesce(e.last_logged_at >= c.created_at - interval '24 hours', false) AS errored
FROM call_logs c
LEFT JOIN zones z ON z.tenant_id = c.tenant_id
LEFT JOIN errored e ON e.call_id = c.call_id
WHERE c.created_at >= (:'from'::date)::timestamp AT TIME ZONE 'UTC' - interval '14 hours'
  AND c.created_at < (:'to'::date + 1)::timestamp AT TIME ZONE 'UTC' + interval '12 hours';
DELETE FROM calls WHERE day NOT BETWEEN :'from' AND :'to';
CREATE TEMP TABLE errors ON COMMIT DROP AS
SELECT coalesce(e.tenant_id, '00000000-0000-0000-0000-000000000000') AS tenant_id,
       coalesce(e.error_type, 'unknown') AS error_type, coalesce(e.severity, 'unknown') AS severity,
       e.resolved, e.call_id, e.created_at,
       (e.created_at AT TIME ZONE coalesce(z.zone, 'UTC'))::date AS day
FROM system_errors e
LEFT JOIN zones z ON z.tenant_id = coalesce(e.tenant_id, '00000000-0000-0000-0000-000000000000')
WHERE e.created_at >= (:'from'::date)::timestamp AT TIME ZONE 'UTC' - interval '14 hours'
  AND e.created_at < (:'to'::date + 1)::timestamp AT TIME ZONE 'UTC' + interval '12 hours';
DELETE FROM errors WHERE day NOT BETWEEN :'from' AND :'to';

DELETE FROM :"schema".tenant_daily WHERE day BETWEEN :'from' AND :'to';
DELETE FROM :"schema".tenant_daily_outcomes WHERE day BETWEEN :'from' AND :'to';
DELETE FROM :"schema".tenant_daily_errors WHERE day BETWEEN :'from' AND :'to';
INSERT INTO :"schema".tenant_daily
WITH c AS (
    SELECT tenant_id, day, count(*) AS calls,
           count(*) FILTER (WHERE status = 'completed') AS completed_calls,
           count(*) FILTER (WHERE status = 'failed') AS failed_calls,
           coalesce(sum(duration_seconds), 0) AS billable_seconds,
           coalesce(sum(stt_cost_usd), 0) AS stt, coalesce(sum(llm_cost_usd), 0) AS llm,
           coalesce(sum(tts_cost_usd), 0) AS tts, coalesce(sum(total_cost_usd), 0) AS total,
           count(*) FILTER (WHERE stt_cost_usd IS NULL OR llm_cost_usd IS NULL
                            OR tts_cost_usd IS NULL OR total_cost_usd IS NULL) AS missing,
           count(*) FILTER (WHERE total_cost_usd <> stt_cost_usd + llm_cost_usd + tts_cost_usd) AS mismatch,
           count(*) FILTER (WHERE errored) AS errored_calls
    FROM calls GROUP BY 1, 2
), e AS (
    SELECT tenant_id, day, count(*) AS errors,
           count(*) FILTER (WHERE severity = 'CRITICAL') AS critical_errors
    FROM errors GROUP BY 1, 2
)
SELECT tenant_id, day, z.business_name, coalesce(z.zone, 'UTC'),
       coalesce(c.calls, 0), coalesce(c.completed_calls, 0), coalesce(c.failed_calls, 0),
       coalesce(c.billable_seconds, 0), coalesce(c.stt, 0), coalesce(c.llm, 0),
       coalesce(c.tts, 0), coalesce(c.total, 0), coalesce(c.missing, 0), coalesce(c.mismatch, 0),
       coalesce(e.errors, 0), coalesce(e.critical_errors, 0), coalesce(c.errored_calls, 0),
       CASE WHEN c.calls > 0 THEN c.errored_calls::float8 / c.calls END,
       gen_random_uuid(), now()
FROM c FULL JOIN e USING (tenant_id, day) LEFT JOIN zones z USING (tenant_id);
INSERT INTO :"schema".tenant_daily_outcomes
SELECT tenant_id, day, status, outcome, count(*), coalesce(sum(duration_seconds), 0),
       coalesce(sum(total_cost_usd), 0), gen_random_uuid()
FROM calls GROUP BY 1, 2, 3, 4;
INSERT INTO :"schema".tenant_daily_errors
SELECT tenant_id, day, error_type, severity, count(*), count(*) FILTER (WHERE resolved = false),
       count(DISTINCT call_id), min(created_at), max(created_at), gen_random_uuid()
FROM errors GROUP BY 1, 2, 3, 4;
COMMIT;
