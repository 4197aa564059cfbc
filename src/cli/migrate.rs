//! `callrollup migrate`'s arguments (the command itself is `cmd::migrate`).

use super::{ConnectOpts, SchemaOpts};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
}
