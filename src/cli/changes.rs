//! `callrollup changes`'s arguments (the command itself is `cmd::changes`).

use std::path::PathBuf;

use super::{ConnectOpts, OutputOpts, PeriodOpts, SchemaOpts, TenantOpts};
use crate::changes::render::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,

    /// Only restated days of `--month M` or `--from D --to D` (every day
    /// without either).
    #[command(flatten)]
    pub period: PeriodOpts,

    #[command(flatten)]
    pub tenants: TenantOpts,

    /// Only the changes this run made: a run_id from `callrollup runs`, or
    /// `last` for the run that succeeded last (to look at one run; an
    /// alert uses --alert, which misses no night).
    #[arg(long, value_name = "RUN_ID|last")]
    pub run: Option<String>,

    /// Only changes recorded since this day (midnight UTC) or RFC 3339
    /// moment (a run records them moments before its commit).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// The books are closed before this day: show only restatements of
    /// earlier days, and exit 3 when there is any.
    #[arg(long, value_name = "DATE")]
    pub closed_before: Option<String>,

    /// An alert that reports each run's changes once: only runs this alert
    /// has not reported yet, and they are marked reported once the report
    /// is written (in analytics.restatement_alerts), whatever failed on
    /// the nights before. One name per alert (and its filters).
    #[arg(long, value_name = "NAME")]
    pub alert: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Where the report goes (a file is required for xlsx).
    #[command(flatten)]
    pub output: OutputOpts,

    /// Refused: report files carry no restatement history; the target
    /// database is the record.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,
}
