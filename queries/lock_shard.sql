-- A shard run: shares the schema lock with the other shards (an unsharded
-- run, which takes it exclusively, excludes them all) and holds its own
-- shard's lock exclusively. $1 schema, $2 shard as i/n.
SELECT pg_try_advisory_lock_shared(hashtext('callrollup:' || $1))
   AND pg_try_advisory_lock(hashtext('callrollup:' || $1 || ':shard:' || $2))
