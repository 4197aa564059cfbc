//! The sink stage: report files and the Postgres write-back.

pub mod files;
pub mod pgbinary;
pub mod postgres;

use polars::prelude::DataFrame;

use crate::rollup::Rollup;

/// The summary tables, in the order they are written.
pub const TABLE_NAMES: [&str; 4] = [
    "tenant_daily",
    "tenant_daily_outcomes",
    "tenant_daily_errors",
    "data_quality_findings",
];

/// Each summary table's key without `day` (which lives in a report
/// file's path): the order rows are sorted in within a day's file.
pub const FILE_KEYS: [&[&str]; 4] = [
    &["tenant_id"],
    &["tenant_id", "status", "outcome"],
    &["tenant_id", "error_type", "severity"],
    &["kind", "tenant_id"],
];

/// The summary tables by name, in the order they are written.
pub fn tables(rollup: &Rollup) -> [(&'static str, &DataFrame); 4] {
    let frames = [
        &rollup.tenant_daily,
        &rollup.outcomes,
        &rollup.errors,
        &rollup.findings,
    ];
    std::array::from_fn(|i| (TABLE_NAMES[i], frames[i]))
}
