-- The engine's summary tables (DESIGN.md §3). `{schema}` is the target
-- schema (`--target-schema`, default analytics).

CREATE TABLE {schema}.rollup_runs (
    run_id              uuid PRIMARY KEY,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    status              text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    window_from         date NOT NULL,
    window_to           date NOT NULL,
    partial             boolean NOT NULL,
    tenant_filter       uuid[],
    source_calls        bigint,
    source_errors       bigint,
    source_stt_cost_usd   numeric(20, 6),
    source_llm_cost_usd   numeric(20, 6),
    source_tts_cost_usd   numeric(20, 6),
    source_total_cost_usd numeric(20, 6),
    rows_tenant_daily          integer,
    rows_tenant_daily_outcomes integer,
    rows_tenant_daily_errors   integer,
    rows_data_quality_findings integer,
    engine_version      text NOT NULL,
    arguments           jsonb NOT NULL,
    error               text
);

CREATE INDEX rollup_runs_started_at_idx ON {schema}.rollup_runs (started_at DESC);

CREATE TABLE {schema}.tenant_daily (
    tenant_id           uuid NOT NULL,
    day                 date NOT NULL,
    business_name       text,
    timezone            text NOT NULL,
    calls               bigint NOT NULL,
    completed_calls     bigint NOT NULL,
    failed_calls        bigint NOT NULL,
    billable_seconds    bigint NOT NULL,
    stt_cost_usd        numeric(20, 6) NOT NULL,
    llm_cost_usd        numeric(20, 6) NOT NULL,
    tts_cost_usd        numeric(20, 6) NOT NULL,
    total_cost_usd      numeric(20, 6) NOT NULL,
    calls_missing_cost  bigint NOT NULL,
    cost_mismatch_calls bigint NOT NULL,
    errors              bigint NOT NULL,
    critical_errors     bigint NOT NULL,
    errored_calls       bigint NOT NULL,
    error_rate          double precision,
    run_id              uuid NOT NULL,
    computed_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- Finance and the error reports read by day range first.
CREATE INDEX tenant_daily_day_idx ON {schema}.tenant_daily (day);

CREATE TABLE {schema}.tenant_daily_outcomes (
    tenant_id        uuid NOT NULL,
    day              date NOT NULL,
    status           text NOT NULL,
    outcome          text NOT NULL,
    calls            bigint NOT NULL,
    billable_seconds bigint NOT NULL,
    total_cost_usd   numeric(20, 6) NOT NULL,
    run_id           uuid NOT NULL,
    PRIMARY KEY (tenant_id, day, status, outcome)
);

CREATE INDEX tenant_daily_outcomes_day_idx ON {schema}.tenant_daily_outcomes (day);

CREATE TABLE {schema}.tenant_daily_errors (
    tenant_id         uuid NOT NULL,
    day               date NOT NULL,
    error_type        text NOT NULL,
    severity          text NOT NULL,
    errors            bigint NOT NULL,
    unresolved_errors bigint NOT NULL,
    calls_affected    bigint NOT NULL,
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    run_id            uuid NOT NULL,
    PRIMARY KEY (tenant_id, day, error_type, severity)
);

CREATE INDEX tenant_daily_errors_day_idx ON {schema}.tenant_daily_errors (day);

-- Findings are kept per run (history of what each run saw); the
-- window's latest findings are those of its latest succeeded run.
CREATE TABLE {schema}.data_quality_findings (
    run_id     uuid NOT NULL REFERENCES {schema}.rollup_runs (run_id),
    kind       text NOT NULL,
    tenant_id  uuid NOT NULL,
    day        date NOT NULL,
    rows       bigint NOT NULL,
    example_id text,
    PRIMARY KEY (run_id, kind, tenant_id, day)
);
