//! Thin binary: parse, run, map errors to exit codes (DESIGN.md §4).

use clap::Parser;

fn main() {
    let cli = callrollup::cli::Cli::parse();
    if let Err(e) = callrollup::cmd::dispatch(cli) {
        eprintln!("callrollup: error: {e}");
        std::process::exit(e.exit_code());
    }
}
