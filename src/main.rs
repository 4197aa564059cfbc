//! Thin binary: parse, run, map errors to exit codes (DESIGN.md §4).

use clap::Parser;

fn main() {
    let cli = callrollup::cli::Cli::parse();
    callrollup::log::init(cli.log_format);
    if let Err(e) = callrollup::cmd::dispatch(cli) {
        callrollup::log::error(&e.to_string(), e.exit_code());
        std::process::exit(e.exit_code());
    }
}
