//! `callrollup anomalies`'s arguments (the command itself is `cmd::anomalies`).

use super::{ConnectOpts, OutputOpts, PeriodOpts, SchemaOpts, SummaryOpts, TenantOpts};
use crate::anomalies::render::Format;
use crate::anomalies::Rule;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each day is compared with its own baseline: the unit cost (per billable minute, or per call) with the previous 14 covered days, the calls with the same weekday of the previous 4 weeks. Rises are ranked by their excess in dollars; falls are listed apart and are never alarms. docs/CONTRACT.md \"Cost anomalies\" gives the rule."
)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,

    /// The period: the last N days (`14d`) or weeks (`2w`), ending with
    /// the last complete day.
    #[arg(long, default_value = "14d", conflicts_with_all = ["month", "from", "to"])]
    pub last: String,

    /// `--month M` or `--from D --to D` instead of --last.
    #[command(flatten)]
    pub period: PeriodOpts,

    #[command(flatten)]
    pub tenants: TenantOpts,

    /// A day is an anomaly when it is more than K robust standard
    /// deviations from its baseline's median (and 25% or more away for a
    /// unit cost, 1.75 times for calls).
    #[arg(long, default_value_t = Rule::default().k, value_parser = positive, allow_negative_numbers = true)]
    pub k: f64,

    /// Lines worth less than this many dollars (either way) are left out.
    #[arg(long, value_name = "USD", default_value = "1", value_parser = dollars, allow_negative_numbers = true)]
    pub min_excess: rust_decimal::Decimal,

    /// How many rises and falls the table shows (CSV, JSON and the
    /// workbook: all).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Where the report goes (a file is required for xlsx).
    #[command(flatten)]
    pub output: OutputOpts,

    #[command(flatten)]
    pub summaries: SummaryOpts,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(k) if k.is_finite() && k > 0.0 => Ok(k),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn dollars(text: &str) -> Result<rust_decimal::Decimal, String> {
    match text.parse::<rust_decimal::Decimal>() {
        Ok(usd) if !usd.is_sign_negative() => Ok(usd),
        _ => Err(format!(
            "{text:?} is not an amount of dollars, 0 or more (e.g. 1 or 0.50)"
        )),
    }
}
