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
const TOKEN_MIN: usize = 32;
/// The least a `--token-file` token must hold by its letters' spread
/// (length × Shannon entropy per character, an estimate below the truth
/// for short random tokens): `openssl rand -hex 32` holds about 240,
/// `-hex 16` about 115, `aaaa…` and `abab…` almost nothing.
const TOKEN_MIN_BITS: f64 = 96.0;

/// An estimate of a token's entropy in bits: its length times the
/// Shannon entropy of its characters' frequencies.
fn entropy_bits(token: &str) -> f64 {
    let mut counts = std::collections::BTreeMap::new();
    for c in token.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = token.chars().count() as f64;
    let per_char: f64 = counts
        .values()
        .map(|k| {
            let p = *k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

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
    if token.len() < TOKEN_MIN || !plain || entropy_bits(&token) < TOKEN_MIN_BITS {
        return Err(Error::usage(format!(
            "--token-file {} must hold a random token of at least {TOKEN_MIN} characters (letters, digits, . _ ~ -) on its first line, e.g. from `openssl rand -hex 32`",
            path.display()
        )));
    }
    Ok(token)
}

/// `--public-url`: an http or https address with no credentials, query
/// or fragment (it is printed, and links are made from it).
fn public_url(text: &str) -> Result<url::Url> {
    let bad = |why: &str| {
        Error::usage(format!(
            "--public-url {:?} {why}; give the address readers open, e.g. https://costs.example.com/",
            crate::text::printable(text)
        ))
    };
    let url = url::Url::parse(text).map_err(|_| bad("is not an address"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("is not an http or https address"));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad("holds credentials, a query or a fragment"));
    }
    // The pages' links and redirects start at the root (`/costs`).
    if url.path() != "/" {
        return Err(bad(
            "has a path: serve at the root of its own address (a host of its own behind the proxy)",
        ));
    }
    Ok(url)
}

pub fn execute(args: Args) -> Result<()> {
    // Usage errors before any folder or database is opened.
    let proxies = crate::serve::Proxies::parse(&args.trusted_proxy)?;
    let public_url = args.public_url.as_deref().map(public_url).transpose()?;
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
        AuthMode::Token => match &args.token_file {
            Some(path) => Auth::Token {
                token: token_from(path)?,
                printed: false,
            },
            None => Auth::Token {
                token: Auth::random_token()?,
                printed: true,
            },
        },
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
        proxies,
        public_url,
        health_listen: args.health_listen.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_entropy_token_is_refused() {
        assert!(entropy_bits(&"a".repeat(64)) < TOKEN_MIN_BITS);
        assert!(entropy_bits(&"ab".repeat(32)) < TOKEN_MIN_BITS);
        // `openssl rand -hex 16`: 128 random bits, estimated lower.
        let hex16: String = crate::serve::Auth::random_token().unwrap()[..32].to_string();
        assert!(entropy_bits(&hex16) >= TOKEN_MIN_BITS, "{hex16}");
        assert!(entropy_bits("a-deployment-secret-0123456789-abcdef") >= TOKEN_MIN_BITS);
        let random = crate::serve::Auth::random_token().unwrap();
        assert_eq!(random.len(), 64);
        assert!(entropy_bits(&random) >= TOKEN_MIN_BITS);
    }

    /// Two UUIDv4s held 244 random bits: digits 12 and 44 were always '4'.
    #[test]
    fn the_random_token_was_two_uuids_of_244_bits() {
        let tokens: Vec<String> = (0..64)
            .map(|_| crate::serve::Auth::random_token().unwrap())
            .collect();
        assert!(tokens.iter().all(|t| t.len() == 64));
        assert!(tokens.iter().any(|t| &t[12..13] != "4"));
        assert!(tokens.iter().any(|t| &t[44..45] != "4"));
    }
}
