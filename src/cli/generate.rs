//! `callrollup generate`'s arguments (the command itself is `cmd::generate`).

use std::path::PathBuf;

use super::SourceUrlOpts;

#[derive(Debug, Clone, clap::Args)]
pub struct PlatformOpts {
    /// Number of tenants [default: 200; demo: 60].
    #[arg(long)]
    pub tenants: Option<usize>,
    /// Number of calls over all days.
    #[arg(long, default_value_t = 200_000)]
    pub calls: usize,
    /// Number of days, ending at --end.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Last day generated (default: the last complete day).
    #[arg(long)]
    pub end: Option<String>,
    /// Length of each call's transcript (never read by the engine).
    #[arg(long, default_value_t = 200)]
    pub transcript_bytes: usize,
    /// Length of each call's summary (never read by the engine; default: a
    /// short sentence). With a long transcript it makes the wide rows of a
    /// platform that keeps whole conversations.
    #[arg(long)]
    pub summary_bytes: Option<usize>,
    /// Tenants' time zones to draw from (default: 17 built-in; at most 47,
    /// adding odd offsets and both hemispheres' DST).
    #[arg(long)]
    pub zones: Option<usize>,
    /// Call statuses (default 5; more are made up as status_NN).
    #[arg(long)]
    pub statuses: Option<usize>,
    /// Outcomes of completed calls (default 6; more as outcome_NN).
    #[arg(long)]
    pub outcomes: Option<usize>,
    /// Error types (default 5; more as error_type_NN).
    #[arg(long)]
    pub error_types: Option<usize>,
    /// Weekly seasons: weekdays get 1.2 times a day's calls, weekends half.
    #[arg(long)]
    pub quiet_weekends: bool,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database to create the platform tables in.
    #[command(flatten)]
    pub database: SourceUrlOpts,
    /// Write a Parquet snapshot here instead of loading a database (a
    /// database URL, from the command line or the environment, is then
    /// not used).
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
    /// Drop and regenerate existing platform tables.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub platform: PlatformOpts,
    /// Put a seeded set of cost anomalies into the data (tenants' unit
    /// costs ×1.5 to ×3 for one to three days, doubled calls, and one
    /// provider price change) and write what was put where into FILE
    /// (CSV), to measure `callrollup anomalies` against.
    #[arg(long, value_name = "FILE")]
    pub inject_anomalies: Option<PathBuf>,
}
