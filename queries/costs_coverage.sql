-- The succeeded runs that covered each day of a period for every tenant
-- (no --tenant filter; a shard run covers its shard), newest first. Which
-- of them decide a day, and whether the day had ended everywhere when the
-- run started, is worked out by the engine. $1, $2: the first and last day.
SELECT d.day::date AS day, r.run_id::text AS run_id, r.tenant_shard, r.started_at,
       r.started_at < (d.day::date + 1) + interval '12 hours' AS partial
FROM generate_series($1::date, $2::date, interval '1 day') AS d(day)
JOIN {schema}.rollup_runs r
  ON r.status = 'succeeded' AND r.tenant_filter IS NULL
 AND d.day::date BETWEEN r.window_from AND r.window_to
ORDER BY 1, r.started_at DESC
