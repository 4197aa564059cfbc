//! `callrollup errors`'s arguments (the command itself is `cmd::errors`).

use std::path::PathBuf;

use super::{ConnectOpts, OutputOpts, RangeOpts, SchemaOpts, SourceOpts, SummaryOpts, TenantOpts};
use crate::trends::render::Format;
use crate::trends::{Bucketing, By, SpikeRule};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,

    /// The period: the last N days (`14d`) or weeks (`2w`), ending with
    /// the last complete day (today, for hourly buckets).
    #[arg(long, default_value = "14d", conflicts_with_all = ["from", "to"])]
    pub since: String,
    #[command(flatten)]
    pub range: RangeOpts,

    #[command(flatten)]
    pub tenants: TenantOpts,

    /// What a group is.
    #[arg(long, value_enum, default_value_t = By::ErrorType)]
    pub by: By,

    /// Tenant days (from the summary tables) or hours (from the source).
    #[arg(long, value_enum, default_value_t = Bucketing::Day)]
    pub bucket: Bucketing,

    /// The clock hourly buckets follow (an IANA zone); UTC by default.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,

    /// How many groups to show (table 10, chart 8; json and csv: all).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub top: Option<u16>,

    /// A spike is more than K spreads above the trailing median.
    #[arg(long, default_value_t = SpikeRule::default().k)]
    pub spike_k: f64,

    /// A spike has at least N errors more than its baseline's median (and
    /// at least twice that median).
    #[arg(long, default_value_t = SpikeRule::default().min_errors)]
    pub spike_min: i64,

    /// Draw the series into an SVG or PNG file (1200×600).
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    #[command(flatten)]
    pub output: OutputOpts,

    #[command(flatten)]
    pub summaries: SummaryOpts,

    /// Where days not rolled up, and hourly buckets, are read.
    #[command(flatten)]
    pub source: SourceOpts,
}
