//! Command-line structure (clap derive), and nothing else: each command's
//! arguments in a file of its own (`cli/<command>.rs`), and the option
//! groups shared across subcommands, flattened in as sqlx-cli does with
//! `ConnectOpts`. `cmd` depends on `cli`, never the reverse; the I/O
//! behind an option group (reading a URL file, opening the summary
//! tables, writing `-o`) is in `cmd/options.rs`.

pub mod anomalies;
pub mod changes;
pub mod costs;
pub mod demo;
pub mod errors;
pub mod extract;
pub mod generate;
pub mod migrate;
pub mod query;
pub mod run;
pub mod runs;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::validate_identifier;
use crate::error::{Error, Result};
use crate::window::WindowRequest;

#[derive(Debug, Parser)]
#[command(
    name = "callrollup",
    version,
    about = "Per-tenant daily cost, outcome and error-rate rollups for the voice-agent platform",
    after_help = "Exit codes: 0 success, 1 run failed (nothing half-written), 2 usage or configuration error, 3 data-quality threshold exceeded, 4 another run holds the lock."
)]
pub struct Cli {
    /// Progress and error lines on stderr: text for people, json for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = crate::log::LogFormat::Text)]
    pub log_format: crate::log::LogFormat,

    /// Also log each stage's start and end, with durations.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Only errors on stderr (no progress lines or bar); the summary still goes to stdout.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn verbosity(&self) -> crate::log::Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => crate::log::Verbosity::Quiet,
            (false, true) => crate::log::Verbosity::Verbose,
            (false, false) => crate::log::Verbosity::Normal,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the engine's schema (summary tables, run ledger).
    Migrate(migrate::Args),
    /// Roll up a window of tenant-local days into the summary tables and reports.
    Run(run::Args),
    /// List the run ledger, newest first.
    Runs(runs::Args),
    /// Finance cost reports from the summary tables or report files.
    Costs(costs::Args),
    /// Cost anomalies: tenant days whose cost per unit or calls left their baseline, in dollars.
    Anomalies(anomalies::Args),
    /// Restatements: billed tenant-day figures a later run changed.
    Changes(changes::Args),
    /// Error trends, spikes and new error types, with charts.
    Errors(errors::Args),
    /// The reports in a browser: costs, tenants, errors, runs (read-only).
    Serve(serve::Args),
    /// Ad-hoc SQL (Postgres' dialect) over a window's calls, errors, tenants and summaries.
    Query(query::Args),
    /// Write a window of the platform as a Parquet snapshot (for --source).
    Extract(extract::Args),
    /// Generate a synthetic platform into a database or a snapshot.
    Generate(generate::Args),
    /// The whole engine on generated data: no database, no set-up.
    Demo(demo::Args),
}

/// Where the platform's tables are: the source database (`generate`
/// writes them there).
#[derive(Debug, Clone, Args)]
pub struct SourceUrlOpts {
    /// Source database (libpq URL), e.g. postgres://reader@db:5432/platform
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Read the source URL from this file (a mounted secret), so that it is
    /// never in the process list or the environment; wins over --database-url.
    #[arg(long, value_name = "FILE", env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
}

/// Where the platform data is read and where the summaries are written.
#[derive(Debug, Clone, Args)]
pub struct ConnectOpts {
    #[command(flatten)]
    pub source_url: SourceUrlOpts,

    /// Target database for the summary tables; defaults to the source.
    #[arg(long, env = "CALLROLLUP_TARGET_URL", hide_env_values = true)]
    pub target_url: Option<String>,

    /// Read the target URL from this file; wins over --target-url.
    #[arg(long, value_name = "FILE", env = "CALLROLLUP_TARGET_URL_FILE")]
    pub target_url_file: Option<PathBuf>,
}

/// How the platform's tables are read in the source database.
#[derive(Debug, Clone, Args)]
pub struct SourceDbOpts {
    /// Schema of the platform tables in the source database.
    #[arg(long, default_value = "public")]
    pub source_schema: String,

    /// Longest a source query may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub statement_timeout: u64,
}

/// Where the platform's rows are read: the source database or a snapshot.
#[derive(Debug, Clone, Args)]
pub struct SourceOpts {
    /// Read the platform's rows from a Parquet snapshot (`callrollup
    /// extract` or `generate`) instead of the source database (for `run`
    /// without a database configured: the report files only).
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    #[command(flatten)]
    pub database: SourceDbOpts,

    /// Parallel COPY streams reading each chunk from Postgres when a window
    /// is read chunk by chunk; a read in one pass uses one per core (at
    /// most 4), or this many if more.
    #[arg(long, default_value_t = crate::source::postgres::DEFAULT_STREAMS,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub streams: u16,
}

/// A range of days given as `--from D --to D`.
#[derive(Debug, Clone, Args)]
pub struct RangeOpts {
    /// First day (inclusive), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day (inclusive), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
}

impl RangeOpts {
    /// The days, when given; `--from` after `--to` is refused.
    pub fn days(&self) -> Result<Option<(chrono::NaiveDate, chrono::NaiveDate)>> {
        let (Some(from), Some(to)) = (&self.from, &self.to) else {
            return Ok(None);
        };
        let from = crate::window::parse_date("--from", from)?;
        let to = crate::window::parse_date("--to", to)?;
        if from > to {
            return Err(Error::usage(format!(
                "--from {from} is after --to {to}; swap them"
            )));
        }
        Ok(Some((from, to)))
    }
}

/// A report's period: `--month M`, or `--from D --to D`.
#[derive(Debug, Clone, Args)]
pub struct PeriodOpts {
    /// A calendar month (YYYY-MM).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    #[command(flatten)]
    pub range: RangeOpts,
}

impl PeriodOpts {
    /// The period, when one is given.
    pub fn period(&self) -> Result<Option<crate::window::Period>> {
        match (&self.month, self.range.days()?) {
            (Some(month), _) => crate::window::Period::month(month).map(Some),
            (None, Some((from, to))) => Ok(Some(crate::window::Period {
                from,
                to,
                is_month: false,
            })),
            (None, None) => Ok(None),
        }
    }
}

/// Which tenants a report covers.
#[derive(Debug, Clone, Args)]
pub struct TenantOpts {
    /// Only this tenant (repeatable).
    #[arg(long = "tenant", value_name = "UUID")]
    pub tenants: Vec<String>,
}

impl OutputOpts {
    /// Refuses a `--format` that only writes a file when no `-o` is given.
    pub fn require_file(&self, format: &str) -> Result<()> {
        match self.output {
            Some(_) => Ok(()),
            None => Err(Error::usage(format!(
                "--format {format} writes a file: add -o FILE"
            ))),
        }
    }
}

impl TenantOpts {
    pub fn selection(&self) -> Result<crate::selection::TenantSelection> {
        Ok(crate::selection::TenantSelection {
            tenants: parse_tenants(&self.tenants)?,
            shard: None,
        })
    }
}

/// Which tenants a run or an extract covers: `--tenant`s, or a shard of
/// all tenants.
#[derive(Debug, Clone, Args)]
pub struct SelectionOpts {
    #[command(flatten)]
    pub tenants: TenantOpts,

    /// Only the tenants whose tenant_id hashes to shard i of n (0 <= i < n);
    /// n runs with 0/n .. n-1/n together give the unsharded result.
    #[arg(long, value_name = "i/n")]
    pub tenant_shard: Option<String>,
}

impl SelectionOpts {
    pub fn selection(&self) -> Result<crate::selection::TenantSelection> {
        let tenants = self.tenants.selection()?;
        Ok(crate::selection::TenantSelection {
            shard: self
                .tenant_shard
                .as_deref()
                .map(crate::shard::Shard::parse)
                .transpose()?,
            ..tenants
        })
    }
}

/// Where a report reads the summary tables: the report files, or the
/// target database.
#[derive(Debug, Clone, Args)]
pub struct SummaryOpts {
    /// Read the report files `run` wrote under DIR instead of the database.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,
}

/// Where a report goes.
#[derive(Debug, Clone, Args)]
pub struct OutputOpts {
    /// Write here instead of stdout; written whole or not at all.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The engine's own schema in the target database.
#[derive(Debug, Clone, Args)]
pub struct SchemaOpts {
    /// Schema of the summary tables and the run ledger.
    #[arg(long, env = "CALLROLLUP_TARGET_SCHEMA", default_value = "analytics")]
    pub target_schema: String,
}

impl SchemaOpts {
    pub fn target_schema(&self) -> Result<String> {
        validate_identifier("--target-schema", &self.target_schema)
    }
}

/// Which tenant-local days to process.
#[derive(Debug, Clone, Args)]
pub struct WindowOpts {
    /// One tenant-local day (YYYY-MM-DD).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub date: Option<String>,

    /// First day of the window (inclusive), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,

    /// Last day of the window (inclusive), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,

    /// Without dates: how many days before the last complete day to redo,
    /// so that late rows are picked up.
    #[arg(long, default_value_t = 3)]
    pub lookback: u32,

    /// Allow days that have not ended everywhere yet.
    #[arg(long)]
    pub allow_partial: bool,
}

impl WindowOpts {
    pub fn request(&self) -> WindowRequest {
        WindowRequest {
            date: self.date.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            lookback: self.lookback,
            allow_partial: self.allow_partial,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

/// Parses `--tenant` values as UUIDs, sorted and without repeats.
pub fn parse_tenants(values: &[String]) -> Result<Vec<uuid::Uuid>> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let id = uuid::Uuid::parse_str(v).map_err(|_| {
            Error::usage(format!(
                "--tenant {v:?} is not a UUID; use the tenant_id, e.g. 3f0c2a9e-8d1b-4c7e-9a51-2b6d0e4f7a10"
            ))
        })?;
        out.push(id);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A clap usage error as the engine's one error line: clap's message, its
/// tip and the valid values, then which `--help` to read (the subcommand's,
/// when `args` name one). Help and version are no errors: main prints
/// them as clap does.
pub fn usage_line(
    error: &clap::Error,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> String {
    let text = error.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    let mut listing = false;
    for raw in text.lines() {
        let line = raw.trim();
        if listing && !raw.starts_with(' ') {
            listing = false;
        }
        // Usage and clap's own pointer to --help: said below.
        if line.starts_with("Usage: ") {
            break;
        }
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        // A line clap ends with ':' introduces the indented ones below it
        // (the missing arguments): they are its list, not new clauses.
        match parts.last_mut() {
            Some(last) if listing => {
                last.push_str(if last.ends_with(':') { " " } else { ", " });
                last.push_str(line);
            }
            _ => {
                listing = line.ends_with(':');
                parts.push(line.to_string());
            }
        }
    }
    let cli = <Cli as clap::CommandFactory>::command();
    let subcommand = args.into_iter().skip(1).find_map(|a| {
        let a = a.to_string_lossy().into_owned();
        cli.get_subcommands()
            .any(|s| s.get_name() == a)
            .then_some(a)
    });
    let command = match subcommand {
        Some(name) => format!("callrollup {name}"),
        None => "callrollup".to_string(),
    };
    format!("{}; see `{command} --help`", parts.join("; "))
}

/// `--log-format` as given on a command line clap refused: the error line
/// is still written the way the caller asked.
pub fn log_format_in(args: impl IntoIterator<Item = std::ffi::OsString>) -> crate::log::LogFormat {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut format = crate::log::LogFormat::Text;
    for (i, arg) in args.iter().enumerate() {
        if arg == "--" {
            break;
        }
        let value = match arg.strip_prefix("--log-format") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(v) = value {
            format = crate::log::LogFormat::from_str(v, true).unwrap_or(format);
        }
    }
    format
}

/// Default report folder.
pub fn default_out() -> PathBuf {
    PathBuf::from("reports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_command_lines_keep_their_log_format() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        use crate::log::LogFormat::{Json, Text};
        assert_eq!(log_format_in(args(&["callrollup", "run", "--nope"])), Text);
        assert_eq!(
            log_format_in(args(&[
                "callrollup",
                "--log-format",
                "json",
                "run",
                "--nope"
            ])),
            Json
        );
        assert_eq!(
            log_format_in(args(&["callrollup", "run", "--log-format=JSON"])),
            Json
        );
        assert_eq!(
            log_format_in(args(&["callrollup", "--log-format", "xml"])),
            Text
        );
    }

    #[test]
    fn a_clap_error_is_one_line_that_names_the_help_to_read() {
        let argv = ["callrollup", "costs", "--by", "week"];
        let e = <Cli as Parser>::try_parse_from(argv).unwrap_err();
        let line = usage_line(&e, argv.iter().map(std::ffi::OsString::from));
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("invalid value 'week' for '--by <BY>'"),
            "{line}"
        );
        assert!(line.ends_with("; see `callrollup costs --help`"), "{line}");
    }

    /// Clap lists missing arguments on lines of their own under a line
    /// ending in ':'; joined as clauses they read "provided:; --to".
    #[test]
    fn a_missing_argument_line_had_a_stray_semicolon_after_its_colon() {
        let argv = ["callrollup", "costs", "--from", "2026-01-01"];
        let e = <Cli as Parser>::try_parse_from(argv).unwrap_err();
        let line = usage_line(&e, argv.iter().map(std::ffi::OsString::from));
        assert!(!line.contains(":;"), "{line}");
        assert!(
            line.starts_with("the following required arguments were not provided: --to"),
            "{line}"
        );
    }
}
