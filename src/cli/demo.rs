//! `callrollup demo`'s arguments (the command itself is `cmd::demo`).

use std::path::PathBuf;

use super::generate::PlatformOpts;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the snapshot and the reports.
    #[arg(long, default_value = "callrollup-demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub platform: PlatformOpts,
}
