//! callrollup serve — the reports in a browser, read-only.
//!
//! Usage: `callrollup serve --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Reads the summary tables and the ledger of the target database (with a
//! read-only session), or `--reports DIR`; the platform's tables only for
//! error days not rolled up (`--source DIR`) and, with `--auth platform`,
//! the sessions of the platform database. Serves until SIGTERM, then
//! answers the requests in flight and exits 0.

use std::time::Duration;

use crate::cli::serve::{Args, AuthMode};
use crate::error::{Error, Result};
use crate::serve::{Auth, Config, Reads};

/// Shortest token `--token-file` may hold.
const TOKEN_MIN: usize = 16;

fn token_from(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read --token-file {} ({e}); point it at a file holding the token",
            path.display()
        ))
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    // Characters that travel as they are in a link, a cookie and a header.
    let plain = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'));
    if token.len() < TOKEN_MIN || !plain {
        return Err(Error::usage(format!(
            "--token-file {} must hold a token of at least {TOKEN_MIN} characters (letters, digits, . _ ~ -) on its first line, e.g. from `openssl rand -hex 32`",
            path.display()
        )));
    }
    Ok(token)
}

pub fn execute(args: Args) -> Result<()> {
    let reads = match &args.summaries.reports {
        Some(dir) => {
            // Refused now, not at the first request.
            crate::summaries::Summaries::reports(dir)?;
            Reads::Reports(dir.clone())
        }
        None if args.connect.has_target() => {
            let url = args.connect.target()?;
            let schema = args.schema.target_schema()?;
            // The database answers and its engine schema is current.
            crate::summaries::Summaries::database(&url, schema.clone(), "callrollup-serve")?;
            Reads::Database { url, schema }
        }
        None => {
            return Err(Error::usage(
                "nothing to serve: pass --reports DIR, --target-url or --database-url (or set CALLROLLUP_TARGET_URL / DATABASE_URL)",
            ))
        }
    };
    let auth = match args.auth {
        AuthMode::Token => Auth::Token(match &args.token_file {
            Some(path) => token_from(path)?,
            None => Auth::random_token(),
        }),
        AuthMode::Platform => {
            if args.token_file.is_some() {
                return Err(Error::usage(
                    "--token-file is for --auth token; --auth platform reads the platform's sessions",
                ));
            }
            let url = args.connect.source().map_err(|_| {
                Error::usage("--auth platform reads the platform's sessions: pass --database-url (or set DATABASE_URL)")
            })?;
            let schema =
                crate::db::validate_identifier("--sessions-schema", &args.sessions_schema)?;
            Auth::Platform { url, schema }
        }
    };
    crate::serve::serve(Config {
        listen: args.listen.clone(),
        reads,
        source: args
            .source
            .clone()
            .map(crate::pipeline::SourceSpec::Snapshot),
        auth,
        max_requests: usize::from(args.max_requests),
        timeout: Duration::from_secs(args.request_timeout),
    })
}
