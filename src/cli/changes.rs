//! `callrollup changes`'s arguments (the command itself is `cmd::changes`).

use super::{ConnectOpts, OutputOpts, PeriodOpts, SchemaOpts, SummaryOpts, TenantOpts};
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

    /// Only the changes this run made (a run_id from `callrollup runs`).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,

    /// Only changes recorded since this day (midnight UTC) or RFC 3339
    /// moment: what a daily alert has not reported yet.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// The books are closed before this day: show only restatements of
    /// earlier days, and exit 3 when there is any.
    #[arg(long, value_name = "DATE")]
    pub closed_before: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Where the report goes (a file is required for xlsx).
    #[command(flatten)]
    pub output: OutputOpts,

    /// Refused: report files carry no history (the database is the record).
    #[command(flatten)]
    pub summaries: SummaryOpts,
}
