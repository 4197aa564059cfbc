-- What a run read: `postgres://user@host:5432/db (schema public)` with no
-- password, or `snapshot /path (sha256:… of its manifest)`, so `runs`
-- tells a snapshot run from a database run. `tenant_filter` and
-- `tenant_shard` already record which tenants it replaced.
ALTER TABLE {schema}.rollup_runs ADD COLUMN source text;
