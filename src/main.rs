//! Thin binary: parse, run, map errors to exit codes (docs/CONTRACT.md §7).

use clap::error::ErrorKind;
use clap::Parser;

/// Bounded memory needs glibc's allocator to give memory back: at most
/// two arenas (one per core) instead of one per thread, and column
/// buffers of 1 MB or more in their own mappings, returned when freed
/// rather than kept in a fragmented heap. Measured on a 90-day run of
/// 5 million calls: 174 MB peak RSS by default, 145 MB with these.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it runs before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() {
    tune_allocator();
    let cli = match callrollup::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version print as clap prints them (exit 0; a bare
        // `callrollup` shows the help on stderr, exit 2).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        // Any other argument error is the engine's one line, exit 2.
        Err(e) => {
            callrollup::log::init(
                callrollup::cli::log_format_in(std::env::args_os()),
                callrollup::log::Verbosity::Normal,
            );
            callrollup::log::error(&callrollup::cli::usage_line(&e, std::env::args_os()), 2);
            std::process::exit(2);
        }
    };
    callrollup::log::init(cli.log_format, cli.verbosity());
    if let Err(e) = callrollup::cmd::dispatch(cli) {
        callrollup::log::error(&e.to_string(), e.exit_code());
        std::process::exit(e.exit_code());
    }
}
