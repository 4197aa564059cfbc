//! `callrollup runs`'s arguments (the command itself is `cmd::runs`).

use super::{ConnectOpts, ListFormat, SchemaOpts};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// table for people, json for scripts (an object: format_version, runs).
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}
