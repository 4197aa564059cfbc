-- Postgres' own count and sums over the extracted UTC range, to prove the
-- extraction lost nothing (reconciliation, docs/CONTRACT.md §4). One scan of the
-- calls (count and sums together) and one of the errors.
SELECT c.calls,
       (SELECT count(*) FROM {schema}.system_errors e
         WHERE e.created_at >= '{from_utc}'::timestamptz AND e.created_at < '{to_utc}'::timestamptz {tenant_filter_errors}) AS errors,
       c.stt, c.llm, c.tts, c.total
FROM (SELECT count(*) AS calls,
             coalesce(sum(c.stt_cost_usd), 0)::numeric AS stt,
             coalesce(sum(c.llm_cost_usd), 0)::numeric AS llm,
             coalesce(sum(c.tts_cost_usd), 0)::numeric AS tts,
             coalesce(sum(c.total_cost_usd), 0)::numeric AS total
      FROM {schema}.call_logs c
      WHERE c.created_at >= '{from_utc}'::timestamptz AND c.created_at < '{to_utc}'::timestamptz {tenant_filter_calls}) c
