-- Restatements of tenant_daily's billed figures: a row a run deleted, or
-- updated with different calls, completed calls, billable seconds or
-- costs (a new business name or error count alone is recorded in the
-- history but bills nothing). A deleted row's new figures are 0: the
-- tenant day bills nothing any more. One line per tenant day and run.
-- $1, $2: first and last restated day (NULL: no bound); $3: tenant ids
-- (NULL: every tenant); $4: the run that made them (NULL: any run);
-- $5: restated at or after (NULL: any time).
SELECT r.tenant_id::text AS tenant_id,
       coalesce(r.new_values ->> 'business_name', r.old_values ->> 'business_name') AS business_name,
       r.day,
       (r.old_values ->> 'calls')::bigint AS old_calls,
       coalesce((r.new_values ->> 'calls')::bigint, 0) AS new_calls,
       (r.old_values ->> 'total_cost_usd')::numeric AS old_total_cost_usd,
       coalesce((r.new_values ->> 'total_cost_usd')::numeric, 0) AS new_total_cost_usd,
       (r.old_values ->> 'stt_cost_usd')::numeric AS old_stt_cost_usd,
       coalesce((r.new_values ->> 'stt_cost_usd')::numeric, 0) AS new_stt_cost_usd,
       (r.old_values ->> 'llm_cost_usd')::numeric AS old_llm_cost_usd,
       coalesce((r.new_values ->> 'llm_cost_usd')::numeric, 0) AS new_llm_cost_usd,
       (r.old_values ->> 'tts_cost_usd')::numeric AS old_tts_cost_usd,
       coalesce((r.new_values ->> 'tts_cost_usd')::numeric, 0) AS new_tts_cost_usd,
       r.previous_run_id::text AS previous_run_id,
       r.run_id::text AS run_id,
       r.restated_at
FROM {schema}.restatements r
WHERE r.table_name = 'tenant_daily'
  AND (r.change = 'deleted'
       OR r.changed_columns && ARRAY['calls', 'completed_calls', 'billable_seconds',
                                     'stt_cost_usd', 'llm_cost_usd', 'tts_cost_usd',
                                     'total_cost_usd'])
  AND ($1::date IS NULL OR r.day >= $1)
  AND ($2::date IS NULL OR r.day <= $2)
  AND ($3::uuid[] IS NULL OR r.tenant_id = ANY ($3))
  AND ($4::uuid IS NULL OR r.run_id = $4)
  AND ($5::timestamptz IS NULL OR r.restated_at >= $5)
ORDER BY r.day, r.tenant_id, r.restated_at, r.run_id
