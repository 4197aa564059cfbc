-- Restatements of tenant_daily's billed figures: a row updated with
-- different calls, completed calls, billable seconds or costs, a row with
-- calls or cost deleted, or a tenant day with calls or cost back after a
-- deletion (a new business name, or error counts alone, are recorded in
-- the history but bill nothing). Absent figures are 0: a deleted tenant
-- day bills nothing any more, one that came back billed nothing before.
-- One line per tenant day and run.
-- $1, $2: first and last restated day (NULL: no bound); $3: tenant ids
-- (NULL: every tenant); $4: the run that made them (NULL: any run);
-- $5: restated at or after (NULL: any time); $6: an alert whose reported
-- restatements are left out (NULL: none).
SELECT r.tenant_id::text AS tenant_id,
       coalesce(r.new_values ->> 'business_name', r.old_values ->> 'business_name') AS business_name,
       r.day,
       coalesce((r.old_values ->> 'calls')::bigint, 0) AS old_calls,
       coalesce((r.new_values ->> 'calls')::bigint, 0) AS new_calls,
       coalesce((r.old_values ->> 'total_cost_usd')::numeric, 0) AS old_total_cost_usd,
       coalesce((r.new_values ->> 'total_cost_usd')::numeric, 0) AS new_total_cost_usd,
       coalesce((r.old_values ->> 'stt_cost_usd')::numeric, 0) AS old_stt_cost_usd,
       coalesce((r.new_values ->> 'stt_cost_usd')::numeric, 0) AS new_stt_cost_usd,
       coalesce((r.old_values ->> 'llm_cost_usd')::numeric, 0) AS old_llm_cost_usd,
       coalesce((r.new_values ->> 'llm_cost_usd')::numeric, 0) AS new_llm_cost_usd,
       coalesce((r.old_values ->> 'tts_cost_usd')::numeric, 0) AS old_tts_cost_usd,
       coalesce((r.new_values ->> 'tts_cost_usd')::numeric, 0) AS new_tts_cost_usd,
       r.previous_run_id::text AS previous_run_id,
       r.run_id::text AS run_id,
       r.restated_at,
       r.restatement_id
FROM {schema}.restatements r
WHERE r.table_name = 'tenant_daily'
  AND CASE r.change
        WHEN 'updated' THEN
            r.changed_columns && ARRAY['calls', 'completed_calls', 'billable_seconds',
                                       'stt_cost_usd', 'llm_cost_usd', 'tts_cost_usd',
                                       'total_cost_usd']
        WHEN 'deleted' THEN
            (r.old_values ->> 'calls')::bigint <> 0
            OR (r.old_values ->> 'total_cost_usd')::numeric <> 0
        ELSE
            (r.new_values ->> 'calls')::bigint <> 0
            OR (r.new_values ->> 'total_cost_usd')::numeric <> 0
      END
  AND ($1::date IS NULL OR r.day >= $1)
  AND ($2::date IS NULL OR r.day <= $2)
  AND ($3::uuid[] IS NULL OR r.tenant_id = ANY ($3))
  AND ($4::uuid IS NULL OR r.run_id = $4)
  AND ($5::timestamptz IS NULL OR r.restated_at >= $5)
  AND ($6::text IS NULL OR NOT EXISTS (
        SELECT 1 FROM {schema}.restatement_alerts a
        WHERE a.alert = $6 AND a.restatement_id = r.restatement_id))
ORDER BY r.day, r.tenant_id, r.restatement_id
