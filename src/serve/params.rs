//! A page's query parameters as the command's own arguments: `?month=
//! 2026-03&by=day` is `costs --month=2026-03 --by=day`, parsed by the same
//! clap parser, so a page accepts exactly what the command accepts and says
//! why it refuses in the same words. Only the parameters a page lists are
//! taken (never a file, a URL, a database or a format from the request);
//! each value is passed as `--name=value`, so it can never become a flag.

use axum::http::StatusCode;

use super::Refusal;
use crate::cli::{Cli, Command};

/// Parameters a page may take, besides `token` (read by authentication).
pub const COSTS: &[&str] = &["month", "from", "to", "by", "tenant", "sort", "top"];
pub const ERRORS: &[&str] = &[
    "since",
    "from",
    "to",
    "by",
    "bucket",
    "timezone",
    "tenant",
    "top",
    "spike-k",
    "spike-min",
];
pub const TENANT: &[&str] = &["month", "from", "to"];

/// The query's pairs, those `allowed` only, empty values dropped (an
/// empty form field means "not given").
pub fn pairs(query: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "token" {
            continue;
        }
        if !allowed.contains(&name.as_ref()) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown parameter {:?}; this page takes {}",
                    crate::text::printable(&name),
                    allowed.join(", ")
                ),
            ));
        }
        if !value.is_empty() {
            out.push((name.into_owned(), value.into_owned()));
        }
    }
    Ok(out)
}

/// `callrollup <command> --name=value …` parsed by the CLI's parser.
fn command(command: &str, pairs: &[(String, String)], extra: &[&str]) -> Result<Command, Refusal> {
    let mut argv = vec!["callrollup".to_string(), command.to_string()];
    argv.extend(
        pairs
            .iter()
            .map(|(name, value)| format!("--{name}={value}")),
    );
    argv.extend(extra.iter().map(|s| s.to_string()));
    match <Cli as clap::Parser>::try_parse_from(&argv) {
        Ok(cli) => Ok(cli.command),
        Err(e) => {
            let text = e.render().to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("bad parameters")
                .trim_start_matches("error: ")
                .replace("--", "");
            Err(Refusal::new(StatusCode::BAD_REQUEST, line))
        }
    }
}

/// `costs` with the page's parameters (and `extra`, e.g. a format).
pub fn costs(
    pairs: &[(String, String)],
    extra: &[&str],
) -> Result<crate::cli::costs::Args, Refusal> {
    match command("costs", pairs, extra)? {
        Command::Costs(args) => Ok(args),
        _ => unreachable!("parsed as costs"),
    }
}

/// `errors` with the page's parameters.
pub fn errors(
    pairs: &[(String, String)],
    extra: &[&str],
) -> Result<crate::cli::errors::Args, Refusal> {
    match command("errors", pairs, extra)? {
        Command::Errors(args) => Ok(args),
        _ => unreachable!("parsed as errors"),
    }
}

/// A parameter's value as given, or empty (what a form field shows).
pub fn value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The query again, as links carry it (no token: the cookie carries it).
pub fn link_query(pairs: &[(String, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_never_becomes_a_flag() {
        let pairs = pairs(Some("month=--reports%3D%2Fetc&by=day"), COSTS).unwrap();
        let args = costs(&pairs, &[]).unwrap();
        assert!(args.summaries.reports.is_none());
        assert_eq!(args.period.month.as_deref(), Some("--reports=/etc"));
        let pairs = super::pairs(Some("month=2026-03&by=day"), COSTS).unwrap();
        let args = costs(&pairs, &["--format=csv"]).unwrap();
        assert!(args.summaries.reports.is_none());
        assert_eq!(args.period.month.as_deref(), Some("2026-03"));
    }

    #[test]
    fn only_a_pages_parameters_are_taken() {
        let refused = pairs(Some("month=2026-03&output=/tmp/x"), COSTS).unwrap_err();
        assert!(refused.reason.contains("unknown parameter \"output\""));
        assert_eq!(pairs(Some("token=abc&month="), COSTS).unwrap(), []);
    }
}
