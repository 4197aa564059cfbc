-- The window's calls: only the columns docs/CONTRACT.md §1 lists, over the UTC
-- range that covers the window's tenant-local days (the created_at index
-- serves a short range). Whether a call is errored comes from the errors
-- (system_errors.sql read from a day before, or errored_calls.sql). The
-- page range is empty for a chunk-by-chunk read; a one-pass read and
-- `query` read a large range in slices of the table's pages on parallel
-- streams (query_table_pages.sql).
-- Read through binary COPY (copy_out.sql), so each column arrives in the
-- type the decoder expects: uuid, text, numeric, timestamptz, bigint.
SELECT c.call_id::text          AS call_id,
       c.tenant_id              AS tenant_id,
       c.status::text           AS status,
       c.outcome::text          AS outcome,
       c.stt_cost_usd::numeric  AS stt_cost_usd,
       c.llm_cost_usd::numeric  AS llm_cost_usd,
       c.tts_cost_usd::numeric  AS tts_cost_usd,
       c.total_cost_usd::numeric AS total_cost_usd,
       c.created_at             AS created_at,
       {duration_seconds}       AS duration_seconds
FROM {schema}.call_logs c
WHERE c.created_at >= '{from_utc}'::timestamptz
  AND c.created_at <  '{to_utc}'::timestamptz
  {tenant_filter}
  {page_range}
