-- Do Postgres and the engine agree on tenant days? $1..$3: probes (zone,
-- instant, the engine's day for it); $4, $5: the zone names tenants
-- declare and whether the engine knows each. Returns the first
-- disagreement: a name one side knows and the other does not (matched as
-- Postgres matches them, case-insensitively against pg_timezone_names), or
-- an instant Postgres' `AT TIME ZONE` puts on another day. No rows: agreed.
WITH names AS MATERIALIZED (
    SELECT DISTINCT lower(name) AS name FROM pg_timezone_names
), declared AS (
    SELECT d.zone, d.engine_knows, EXISTS (SELECT 1 FROM names n WHERE n.name = lower(d.zone)) AS postgres_knows
    FROM unnest($4::text[], $5::bool[]) AS d(zone, engine_knows)
)
(SELECT 'name' AS kind, zone, engine_knows, postgres_knows,
        NULL::timestamptz AS at, NULL::date AS engine_day, NULL::date AS postgres_day
 FROM declared WHERE engine_knows <> postgres_knows
 ORDER BY zone LIMIT 1)
UNION ALL
(SELECT 'boundary', p.zone, true, true, p.at, p.engine_day, (p.at AT TIME ZONE p.zone)::date
 FROM unnest($1::text[], $2::timestamptz[], $3::date[]) AS p(zone, at, engine_day)
 WHERE (p.at AT TIME ZONE p.zone)::date <> p.engine_day
 ORDER BY p.zone, p.at LIMIT 1)
