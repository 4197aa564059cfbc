//! `callrollup run`'s arguments (the command itself is `cmd::run`).

use std::path::PathBuf;

use super::{default_out, ConnectOpts, SchemaOpts, SelectionOpts, SourceOpts, WindowOpts};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub window: WindowOpts,
    #[command(flatten)]
    pub source: SourceOpts,

    #[command(flatten)]
    pub selection: SelectionOpts,

    /// Folder of the Hive-partitioned report files.
    #[arg(long, default_value_os_t = default_out())]
    pub out: PathBuf,

    /// Compute and print the summary; write nothing (no tables, files or ledger row).
    #[arg(long)]
    pub dry_run: bool,

    /// Days per chunk: the report files and the write-back go a chunk at a
    /// time. A window read from a database in one pass keeps only its
    /// tenant-day figures; one whose figures outgrow --state-limit (and a
    /// snapshot) is read this many days at a time, so memory follows the
    /// chunk (each chunk also needs the 26 hours of UTC around its days
    /// that time zones reach into; rows shared with the next chunk are
    /// kept, not read again).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_days: u32,

    /// The most memory (MiB) the one-pass read's tenant-day figures may
    /// take; a window that needs more (free-text outcomes, say) is read
    /// --chunk-days at a time instead (started again from nothing if
    /// chunks were already written). 0 always reads chunk by chunk.
    #[arg(long, value_name = "MIB", default_value_t = crate::pipeline::DEFAULT_STATE_LIMIT_MIB)]
    pub state_limit: u32,

    /// Exit 3 (after writing) when the window's findings of KIND exceed N
    /// rows (0 without >N); repeatable. Kinds: invalid_timezone,
    /// unknown_tenant, negative_cost, missing_cost, cost_mismatch; drift
    /// (tenant days of the closed days before the window that differ from
    /// the source); and cost_anomaly (lines of `callrollup anomalies` whose
    /// cost rose, in the days the run wrote).
    #[arg(long = "fail-on", value_name = "KIND[>N]")]
    pub fail_on: Vec<String>,

    /// Write the run's metrics here in Prometheus' text format (for
    /// node_exporter's textfile collector), after every run, failed ones too.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Start again this many times after a transient failure (a lost or
    /// refused connection, a server restart, a serialization failure) that
    /// struck before the commit, waiting 0.5 s, 1 s, 2 s, ... in between.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}
