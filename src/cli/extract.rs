//! `callrollup extract`'s arguments (the command itself is `cmd::extract`).

use std::path::PathBuf;

use super::{ConnectOpts, SelectionOpts, WindowOpts};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub window: WindowOpts,
    #[command(flatten)]
    pub selection: SelectionOpts,
    /// Folder of the snapshot (an earlier snapshot there is replaced
    /// atomically; any other non-empty folder is refused).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Schema of the platform tables in the source database.
    #[arg(long, default_value = "public")]
    pub source_schema: String,
    /// Longest a source query may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub statement_timeout: u64,
}
