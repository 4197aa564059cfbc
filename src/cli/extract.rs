//! `callrollup extract`'s arguments (the command itself is `cmd::extract`).

use std::path::PathBuf;

use super::{ConnectOpts, SelectionOpts, SourceDbOpts, WindowOpts};

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
    #[command(flatten)]
    pub database: SourceDbOpts,
}
