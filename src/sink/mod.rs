//! The sink stage: report files and the Postgres write-back.

pub mod files;
pub mod pgbinary;
pub mod postgres;

use polars::prelude::DataFrame;

use crate::rollup::Rollup;

/// The summary tables by name, in the order they are written.
pub fn tables(rollup: &Rollup) -> [(&'static str, &DataFrame); 4] {
    [
        ("tenant_daily", &rollup.tenant_daily),
        ("tenant_daily_outcomes", &rollup.outcomes),
        ("tenant_daily_errors", &rollup.errors),
        ("data_quality_findings", &rollup.findings),
    ]
}
