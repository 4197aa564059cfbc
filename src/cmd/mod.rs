//! One module per subcommand.

pub mod costs;
pub mod demo;
pub mod errors;
pub mod extract;
pub mod generate;
pub mod migrate;
pub mod query;
pub mod run;
pub mod runs;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Migrate(args) => migrate::execute(args),
        Command::Costs(args) => costs::execute(args),
        Command::Errors(args) => errors::execute(args),
        Command::Query(args) => query::execute(args),
        Command::Run(args) => run::execute(args),
        Command::Runs(args) => runs::execute(args),
        Command::Extract(args) => extract::execute(args),
        Command::Generate(args) => generate::execute(args),
        Command::Demo(args) => demo::execute(args),
    }
}
