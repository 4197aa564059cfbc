-- What the summary tables hold for the window after the write, inside the
-- write transaction: must equal the figures of the extracted rows. One
-- scan of each table's window.
SELECT td.calls, td.errors, td.total_cost_usd, o.outcome_calls, e.error_group_errors
FROM (SELECT coalesce(sum(calls), 0)::bigint          AS calls,
             coalesce(sum(errors), 0)::bigint         AS errors,
             coalesce(sum(total_cost_usd), 0)::numeric AS total_cost_usd
      FROM {schema}.tenant_daily
      WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) td,
     (SELECT coalesce(sum(calls), 0)::bigint AS outcome_calls
      FROM {schema}.tenant_daily_outcomes
      WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) o,
     (SELECT coalesce(sum(errors), 0)::bigint AS error_group_errors
      FROM {schema}.tenant_daily_errors
      WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) e
