-- The window's errors, without message, stack trace or context.
-- The page range: as in call_logs.sql. The upper bound on created_at is
-- left out when `run` reads the errors whose call ids mark calls errored
-- (every error logged from a day before the window on, as
-- errored_calls.sql reads them).
SELECT e.tenant_id        AS tenant_id,
       e.call_id::text    AS call_id,
       e.error_type::text AS error_type,
       e.severity::text   AS severity,
       e.resolved         AS resolved,
       e.created_at       AS created_at
FROM {schema}.system_errors e
WHERE e.created_at >= '{from_utc}'::timestamptz
  {until}
  {tenant_filter}
  {page_range}
