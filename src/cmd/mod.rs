//! One module per subcommand.

pub mod anomalies;
pub mod changes;
pub mod costs;
pub mod demo;
pub mod errors;
pub mod extract;
pub mod generate;
pub mod migrate;
pub mod options;
pub mod query;
pub mod run;
pub mod runs;
pub mod serve;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn dispatch(cli: Cli) -> Result<()> {
    // Reports, snapshots, spill folders and metrics hold billing figures:
    // nothing this process creates is readable by other users (folders
    // 0750, files 0640; group access for a reports group).
    // SAFETY: umask only changes the process's file creation mask.
    // Narrowed only: a stricter mask (systemd's UMask=0077) stays.
    unsafe {
        let inherited = libc::umask(0o027);
        libc::umask(inherited | 0o027);
    }
    match cli.command {
        Command::Migrate(args) => migrate::execute(args),
        Command::Costs(args) => stoppable(|| costs::execute(args)),
        Command::Changes(args) => stoppable(|| changes::execute(args)),
        Command::Anomalies(args) => stoppable(|| anomalies::execute(args)),
        Command::Errors(args) => stoppable(|| errors::execute(args)),
        Command::Query(args) => stoppable(|| query::execute(args)),
        Command::Run(args) => run::execute(args),
        Command::Runs(args) => runs::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::Extract(args) => extract::execute(args),
        Command::Generate(args) => generate::execute(args),
        Command::Demo(args) => demo::execute(args),
    }
}

/// A report stopped by SIGINT or SIGTERM: the signal cancels its
/// statements and its reads stop at the next chunk, so it returns through
/// its error path and drops (removes) its spill folder and temporary files
/// instead of dying with them on disk.
fn stoppable(report: impl FnOnce() -> Result<()>) -> Result<()> {
    crate::signals::install_for_report();
    report().map_err(crate::signals::explain_report)
}
