-- What the summary tables hold for the window after the write, inside the
-- write transaction: must equal the figures of the extracted rows.
SELECT (SELECT coalesce(sum(calls), 0)::bigint FROM {schema}.tenant_daily
         WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) AS calls,
       (SELECT coalesce(sum(errors), 0)::bigint FROM {schema}.tenant_daily
         WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) AS errors,
       (SELECT coalesce(sum(total_cost_usd), 0)::numeric FROM {schema}.tenant_daily
         WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) AS total_cost_usd,
       (SELECT coalesce(sum(calls), 0)::bigint FROM {schema}.tenant_daily_outcomes
         WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) AS outcome_calls,
       (SELECT coalesce(sum(errors), 0)::bigint FROM {schema}.tenant_daily_errors
         WHERE day BETWEEN $1 AND $2 AND ($3::uuid[] IS NULL OR tenant_id = ANY ($3)) {shard_filter}) AS error_group_errors
