//! `callrollup costs`'s arguments (the command itself is `cmd::costs`).

use super::{ConnectOpts, OutputOpts, PeriodOpts, SchemaOpts, SourceOpts, SummaryOpts, TenantOpts};
use crate::costs::render::Format;
use crate::costs::GroupBy;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "A --month is compared with the month before, --from/--to with as many days just before; without either, the report is of the last calendar month."
)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,

    /// `--month M` (compared with the month before) or `--from D --to D`
    /// (compared with as many days before); the last month without either.
    #[command(flatten)]
    pub period: PeriodOpts,

    #[command(flatten)]
    pub tenants: TenantOpts,

    /// One row per tenant, tenant day, tenant month, or tenant status and outcome.
    #[arg(long, value_enum, default_value_t = GroupBy::Tenant)]
    pub by: GroupBy,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Where the report goes (a file is required for parquet and xlsx).
    #[command(flatten)]
    pub output: OutputOpts,

    #[command(flatten)]
    pub summaries: SummaryOpts,

    /// Recompute the period's totals from the source (the database, or
    /// --source DIR) and compare them with the summary: any difference exits 3.
    #[arg(long)]
    pub reconcile: bool,

    /// Where --reconcile reads the platform's rows.
    #[command(flatten)]
    pub source: SourceOpts,

    /// Exit 3 when a day of the period is missing or partial.
    #[arg(long)]
    pub require_complete: bool,

    /// Rank the rows by this column, in every format: numbers largest
    /// first, text A to Z (e.g. total_cost_usd, calls, cost_per_call_usd,
    /// change_total_cost_pct, business_name; any column of the report).
    /// Without it, tenants and outcomes rank by total cost, largest first,
    /// and days and months stay in date order.
    #[arg(long, value_name = "COLUMN")]
    pub sort: Option<String>,

    /// Keep the first N rows (by --sort, else by total_cost_usd), in every
    /// format; the TOTAL row stays the total of all, and the table, the
    /// page and the workbook add the others up in one "Other" line. The workbook's daily
    /// chart draws the top N tenants (default 5, at most 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    /// Every column in the terminal table (the tenant_id, completed calls,
    /// STT/LLM/TTS and the cost per completed call); CSV, JSON, Parquet
    /// and the workbook always have every column.
    #[arg(long)]
    pub wide: bool,
}
