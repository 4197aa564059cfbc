-- The drift check (`run`): each tenant day's calls, total cost and errors
-- as the source holds them now, for closed days the run did not re-read.
-- Days are the engine's: $1, $2 each tenant and the zone the engine uses
-- for it (its canonical zone, or UTC for an unknown one); a tenant not in
-- the list (a call of an unknown tenant) and a platform-level error use
-- UTC, as in the rollup. $3, $4: the UTC range that holds every instant
-- of the days; $5, $6: the first and last day. Counts and sums only: no
-- row leaves the server.
WITH zones AS (
    SELECT * FROM unnest($1::uuid[], $2::text[]) AS z(tenant_id, zone)
), calls AS (
    SELECT c.tenant_id,
           (c.created_at AT TIME ZONE coalesce(z.zone, 'UTC'))::date AS day,
           count(*) AS calls,
           coalesce(sum(c.total_cost_usd), 0)::numeric AS total_cost_usd
    FROM {schema}.call_logs c
    LEFT JOIN zones z ON z.tenant_id = c.tenant_id
    WHERE c.created_at >= $3 AND c.created_at < $4
    GROUP BY 1, 2
), errors AS (
    SELECT coalesce(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) AS tenant_id,
           (e.created_at AT TIME ZONE coalesce(z.zone, 'UTC'))::date AS day,
           count(*) AS errors
    FROM {schema}.system_errors e
    LEFT JOIN zones z ON z.tenant_id = e.tenant_id
    WHERE e.created_at >= $3 AND e.created_at < $4
    GROUP BY 1, 2
)
SELECT coalesce(c.tenant_id, e.tenant_id)::text AS tenant_id,
       coalesce(c.day, e.day) AS day,
       coalesce(c.calls, 0)::bigint AS calls,
       coalesce(c.total_cost_usd, 0)::numeric AS total_cost_usd,
       coalesce(e.errors, 0)::bigint AS errors
FROM calls c
FULL JOIN errors e ON e.tenant_id = c.tenant_id AND e.day = c.day
WHERE coalesce(c.day, e.day) BETWEEN $5 AND $6
