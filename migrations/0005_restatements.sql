-- Restatements: every change a run makes to a summary row that an earlier
-- succeeded run wrote, recorded in the same transaction as the write-back
-- (a run that rolls back leaves none). One row per changed key and run:
--   updated   the stored row's figures differ from the run's;
--   deleted   the run no longer produces the row (new_values is NULL: the
--             row is gone; `callrollup changes` shows its figures as 0);
--   inserted  a row new to a tenant day an earlier run had written: an
--             outcome or error row beside an earlier run's tenant_daily
--             row, or a tenant day back after a run deleted it
--             (old_values is NULL). A tenant day no run wrote before is no
--             restatement.
-- `row_key` is the rest of the row's key beyond tenant_id and day
-- ({} for tenant_daily); `old_values` and `new_values` hold every figure
-- of the row (money as exact JSON numbers), `changed_columns` the ones that
-- differ. Findings are a run's notes, not figures: they are not recorded.
-- It grows by one row per changed key per run; docs/CONTRACT.md (§3,
-- restatements) gives the purge that keeps it bounded.
-- `restatement_id` orders the changes of one key; `restated_at` is when
-- the run recorded them, moments before its commit.
CREATE TABLE {schema}.restatements (
    restatement_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          uuid NOT NULL REFERENCES {schema}.rollup_runs (run_id),
    table_name      text NOT NULL CHECK (table_name IN
                        ('tenant_daily', 'tenant_daily_outcomes', 'tenant_daily_errors')),
    tenant_id       uuid NOT NULL,
    day             date NOT NULL,
    row_key         jsonb NOT NULL,
    change          text NOT NULL CHECK (change IN ('inserted', 'updated', 'deleted')),
    changed_columns text[] NOT NULL,
    old_values      jsonb,
    new_values      jsonb,
    previous_run_id uuid,
    restated_at     timestamptz NOT NULL,
    CHECK ((change = 'inserted') = (old_values IS NULL)),
    CHECK ((change = 'deleted') = (new_values IS NULL))
);

-- `changes` and `costs` select by the restated day, `changes --run` by run.
CREATE INDEX restatements_day_idx ON {schema}.restatements (day, tenant_id);
-- `changes --tenant` over every day, and whether a tenant ever had any.
CREATE INDEX restatements_tenant_idx ON {schema}.restatements (tenant_id);
CREATE INDEX restatements_run_idx ON {schema}.restatements (run_id);
CREATE INDEX restatements_restated_at_idx ON {schema}.restatements (restated_at);
