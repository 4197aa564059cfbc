-- `changes --alert NAME`: one alert of a name at a time (two at once would
-- both report the runs neither had marked yet). Held by the session until
-- it ends. $1: the alert.
SELECT pg_try_advisory_lock(hashtext('callrollup changes --alert ' || $1))
