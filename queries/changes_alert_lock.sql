-- `changes --alert NAME`: one alert of a name at a time in a schema (two
-- at once would both report what neither had marked yet). Held by the
-- session until it ends. $1: the engine's schema; $2: the alert.
SELECT pg_try_advisory_lock(hashtext('callrollup:' || $1 || ':changes --alert ' || $2))
