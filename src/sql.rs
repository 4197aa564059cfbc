//! The SQL the engine runs lives in `queries/` and `migrations/`; this module
//! embeds it and fills its `{placeholders}`. Only values the engine built
//! itself (validated identifiers, formatted timestamps, parsed UUIDs) are
//! spliced in, never raw user text.

pub const SOURCE_COLUMNS: &str = include_str!("../queries/source_columns.sql");
pub const TENANTS: &str = include_str!("../queries/tenants.sql");
pub const CALL_LOGS: &str = include_str!("../queries/call_logs.sql");
pub const ERRORED_CALLS: &str = include_str!("../queries/errored_calls.sql");
pub const SYSTEM_ERRORS: &str = include_str!("../queries/system_errors.sql");
pub const QUERY_ROWS: &str = include_str!("../queries/query_rows.sql");
pub const QUERY_TABLE_PAGES: &str = include_str!("../queries/query_table_pages.sql");
pub const QUERY_TABLE_RANGE: &str = include_str!("../queries/query_table_range.sql");
pub const SOURCE_FINGERPRINT: &str = include_str!("../queries/source_fingerprint.sql");
pub const SOURCE_TOTALS: &str = include_str!("../queries/source_totals.sql");
pub const COPY_OUT: &str = include_str!("../queries/copy_out.sql");
pub const SOURCE_SESSION: &str = include_str!("../queries/source_session.sql");
pub const TARGET_SESSION: &str = include_str!("../queries/target_session.sql");
pub const TARGET_KEEP_ALIVE: &str = include_str!("../queries/target_keep_alive.sql");
pub const SERVE_STATEMENT_LIMIT: &str = include_str!("../queries/serve_statement_limit.sql");
pub const REPORT_SESSION: &str = include_str!("../queries/report_session.sql");
pub const REPORT_SNAPSHOT_BEGIN: &str = include_str!("../queries/report_snapshot_begin.sql");
pub const REPORT_SNAPSHOT_END: &str = include_str!("../queries/report_snapshot_end.sql");
pub const ADMIN_SESSION: &str = include_str!("../queries/admin_session.sql");
pub const CONNECTION_CHECK: &str = include_str!("../queries/connection_check.sql");
pub const SOURCE_READER_SESSION: &str = include_str!("../queries/source_reader_session.sql");
pub const SOURCE_READER_IN_ORDER: &str = include_str!("../queries/source_reader_in_order.sql");
pub const SOURCE_READER_ANY_ORDER: &str = include_str!("../queries/source_reader_any_order.sql");
pub const SOURCE_CREATED_AT_CORRELATION: &str =
    include_str!("../queries/source_created_at_correlation.sql");
pub const SOURCE_VERIFY_SESSION: &str = include_str!("../queries/source_verify_session.sql");
pub const SOURCE_SNAPSHOT_EXPORT: &str = include_str!("../queries/source_snapshot_export.sql");
pub const SOURCE_SNAPSHOT_ID: &str = include_str!("../queries/source_snapshot_id.sql");
pub const SOURCE_SNAPSHOT_JOIN: &str = include_str!("../queries/source_snapshot_join.sql");
pub const MIGRATION_LEDGER: &str = include_str!("../queries/migration_ledger.sql");
pub const MIGRATION_LOCK: &str = include_str!("../queries/migration_lock.sql");
pub const MIGRATION_RECORD: &str = include_str!("../queries/migration_record.sql");
pub const MIGRATIONS_APPLIED: &str = include_str!("../queries/migrations_applied.sql");
pub const SCHEMA_EXISTS: &str = include_str!("../queries/schema_exists.sql");
pub const NAMESPACE_EXISTS: &str = include_str!("../queries/namespace_exists.sql");
pub const SCHEMA_CREATE: &str = include_str!("../queries/schema_create.sql");
pub const SUMMARY_COPY_IN: &str = include_str!("../queries/summary_copy_in.sql");
pub const SUMMARY_WINDOW_HAS_ROWS: &str = include_str!("../queries/summary_window_has_rows.sql");
pub const SUMMARY_COLUMNS: &str = include_str!("../queries/summary_columns.sql");
pub const SUMMARY_STAGE: &str = include_str!("../queries/summary_stage.sql");
pub const SUMMARY_MERGE_SESSION: &str = include_str!("../queries/summary_merge_session.sql");
pub const SUMMARY_MERGE_ANALYZE: &str = include_str!("../queries/summary_merge_analyze.sql");
pub const SUMMARY_MERGE_DELETE: &str = include_str!("../queries/summary_merge_delete.sql");
pub const SUMMARY_MERGE_UPDATE: &str = include_str!("../queries/summary_merge_update.sql");
pub const SUMMARY_MERGE_INSERT: &str = include_str!("../queries/summary_merge_insert.sql");
pub const RESTATEMENTS_UPDATED: &str = include_str!("../queries/restatements_updated.sql");
pub const RESTATEMENTS_DELETED: &str = include_str!("../queries/restatements_deleted.sql");
pub const RESTATEMENTS_INSERTED: &str = include_str!("../queries/restatements_inserted.sql");
pub const RESTATEMENTS_COPIED: &str = include_str!("../queries/restatements_copied.sql");
pub const RESTATEMENTS_EARLIER_RUN: &str = include_str!("../queries/restatements_earlier_run.sql");
pub const RESTATEMENTS_DELETED_DAYS: &str =
    include_str!("../queries/restatements_deleted_days.sql");
pub const SUMMARY_RECONCILE: &str = include_str!("../queries/summary_reconcile.sql");
pub const LOCK: &str = include_str!("../queries/lock.sql");
pub const UNLOCK: &str = include_str!("../queries/unlock.sql");
pub const LOCK_SHARD: &str = include_str!("../queries/lock_shard.sql");
pub const SHARD_PREDICATE: &str = include_str!("../queries/shard_predicate.sql");
pub const LEDGER_ABANDON: &str = include_str!("../queries/ledger_abandon.sql");
pub const CHANGES_TENANT_DAILY: &str = include_str!("../queries/changes_tenant_daily.sql");
pub const CHANGES_RUN_EXISTS: &str = include_str!("../queries/changes_run_exists.sql");
pub const CHANGES_ALERT_LOCK: &str = include_str!("../queries/changes_alert_lock.sql");
pub const CHANGES_ALERT_MARK: &str = include_str!("../queries/changes_alert_mark.sql");
pub const CHANGES_LAST_RUN: &str = include_str!("../queries/changes_last_run.sql");
pub const CHANGES_KNOWN_TENANTS: &str = include_str!("../queries/changes_known_tenants.sql");
pub const DRIFT_SOURCE: &str = include_str!("../queries/drift_source.sql");
pub const DRIFT_SUMMARY: &str = include_str!("../queries/drift_summary.sql");
pub const SERVE_SESSION: &str = include_str!("../queries/serve_session.sql");
pub const SERVE_SESSION_LOOKUP: &str = include_str!("../queries/serve_session_lookup.sql");
pub const SERVE_SESSION_LOOKUP_EXISTS: &str =
    include_str!("../queries/serve_session_lookup_exists.sql");
pub const COSTS_TENANT_DAYS: &str = include_str!("../queries/costs_tenant_days.sql");
pub const ANOMALIES_TENANT_DAYS: &str = include_str!("../queries/anomalies_tenant_days.sql");
pub const COSTS_OUTCOME_DAYS: &str = include_str!("../queries/costs_outcome_days.sql");
pub const COSTS_COVERAGE: &str = include_str!("../queries/costs_coverage.sql");
pub const COSTS_KNOWN_TENANTS: &str = include_str!("../queries/costs_known_tenants.sql");
pub const SUMMARY_COPY_OUT: &str = include_str!("../queries/summary_copy_out.sql");
pub const ZONE_DAY_BOUNDARIES: &str = include_str!("../queries/zone_day_boundaries.sql");
pub const LEDGER_STATUS: &str = include_str!("../queries/ledger_status.sql");
pub const LEDGER_START: &str = include_str!("../queries/ledger_start.sql");
pub const LEDGER_FAIL: &str = include_str!("../queries/ledger_fail.sql");
pub const LEDGER_SUCCEED: &str = include_str!("../queries/ledger_succeed.sql");
pub const LEDGER_LIST: &str = include_str!("../queries/ledger_list.sql");

/// A migration file: its version (from the name), name and text.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub text: &'static str,
}

/// The platform tables (the test fixture), for `callrollup generate`.
pub const PLATFORM_SCHEMA: &str = include_str!("../tests/fixtures/platform_schema.sql");
pub const PLATFORM_ANALYZE: &str = include_str!("../queries/platform_analyze.sql");
pub const PLATFORM_INDEXES: &str = include_str!("../tests/fixtures/platform_indexes.sql");
pub const PLATFORM_TABLES_PRESENT: &str = include_str!("../queries/platform_tables_present.sql");
pub const PLATFORM_DROP: &str = include_str!("../queries/platform_drop.sql");
pub const PLATFORM_MARK: &str = include_str!("../queries/platform_mark.sql");
pub const PLATFORM_COPY_TENANTS: &str = include_str!("../queries/platform_copy_tenants.sql");
pub const PLATFORM_COPY_CALLS: &str = include_str!("../queries/platform_copy_calls.sql");
pub const PLATFORM_COPY_ERRORS: &str = include_str!("../queries/platform_copy_errors.sql");

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_summary_tables.sql",
        text: include_str!("../migrations/0001_summary_tables.sql"),
    },
    Migration {
        version: 2,
        name: "0002_run_tenant_shard.sql",
        text: include_str!("../migrations/0002_run_tenant_shard.sql"),
    },
    Migration {
        version: 3,
        name: "0003_run_source.sql",
        text: include_str!("../migrations/0003_run_source.sql"),
    },
    Migration {
        version: 4,
        name: "0004_findings_day_index.sql",
        text: include_str!("../migrations/0004_findings_day_index.sql"),
    },
    Migration {
        version: 5,
        name: "0005_restatements.sql",
        text: include_str!("../migrations/0005_restatements.sql"),
    },
    Migration {
        version: 6,
        name: "0006_history_append_only.sql",
        text: include_str!("../migrations/0006_history_append_only.sql"),
    },
];

/// Replaces each `{name}` with its value.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    debug_assert!(
        !out.contains("{schema}"),
        "unfilled placeholder in SQL template"
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn render_fills_every_placeholder() {
        let sql = super::render(
            super::TENANTS,
            &[("schema", "public"), ("tenant_filter", "")],
        );
        assert!(!sql.contains('{'));
    }

    #[test]
    fn migration_versions_match_file_names() {
        for m in super::MIGRATIONS {
            assert_eq!(m.name[..4].parse::<i32>().unwrap(), m.version);
        }
    }
}
