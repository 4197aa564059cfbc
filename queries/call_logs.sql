-- The window's calls: only the columns DESIGN.md §1 marks, over the UTC
-- range that covers the window's tenant-local days (served by the
-- created_at index). Whether a call is errored comes from errored_calls.sql.
-- Costs come as exact micro-dollar bigints when every cost column has at
-- most 6 decimals (decoding Postgres numerics was a tenth of the run's
-- CPU), as numeric otherwise.
SELECT c.call_id::text      AS call_id,
       c.tenant_id::text    AS tenant_id,
       c.status::text       AS status,
       c.outcome::text      AS outcome,
       {stt_cost_usd}   AS stt_cost_usd,
       {llm_cost_usd}   AS llm_cost_usd,
       {tts_cost_usd}   AS tts_cost_usd,
       {total_cost_usd} AS total_cost_usd,
       c.created_at         AS created_at,
       {duration_seconds}   AS duration_seconds
FROM {schema}.call_logs c
WHERE c.created_at >= '{from_utc}'::timestamptz
  AND c.created_at <  '{to_utc}'::timestamptz
  {tenant_filter}
