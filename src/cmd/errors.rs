//! callrollup errors — error trends, spikes and new error types.
//!
//! Usage: `callrollup errors --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Daily buckets are tenant days, read from the summary tables (the target
//! database, or `--reports DIR`); days no run has rolled up yet are
//! computed from the source (the database, or `--source DIR`) with the
//! pipeline `run` uses. Hourly buckets are read from the source, in UTC or
//! `--timezone`. Error messages, stack traces and contexts are never read.

use crate::cli::errors::Args;

use chrono::{Days, NaiveDate, Utc};

use crate::error::{Error, Result};
use crate::trends::render::{self, Format};
use crate::trends::{analyse, chart, read, Bucketing, SpikeRule, Timeline};
use crate::window::last_complete_day;

/// `14d` or `2w` as a number of days.
fn since_days(text: &str) -> Result<u64> {
    length_in_days("--since", text)
}

/// `flag`'s `14d` or `2w` as a number of days (1 day to 10 years).
pub fn length_in_days(flag: &str, text: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "{flag} {text:?} is not a length; use days or weeks, e.g. 14d or 2w"
        ))
    };
    // Split at the last character, not the last byte: `1é` is not a
    // length, and splitting inside the `é` panicked.
    let last = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(last);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let days = match unit {
        "d" => n,
        "w" => n.checked_mul(7).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if days == 0 || days > 3660 {
        return Err(Error::usage(format!(
            "{flag} {text}: pick between 1 day and 10 years"
        )));
    }
    Ok(days)
}

fn period(args: &Args, today: NaiveDate) -> Result<(NaiveDate, NaiveDate)> {
    match args.range.days()? {
        Some((from, to)) => {
            crate::window::check_span(from, to)?;
            Ok((from, to))
        }
        _ => {
            let days = since_days(&args.since)?;
            Ok((today - Days::new(days - 1), today))
        }
    }
}

pub fn execute(args: Args) -> Result<()> {
    // Usage errors before any connection or folder is opened.
    args.tenants.selection()?;
    period(&args, last_complete_day(Utc::now()))?;
    let chart_kind = args
        .chart
        .as_deref()
        .map(chart::ChartKind::of)
        .transpose()?;
    let source = args.source.spec_if_any(&args.connect)?;
    let mut summaries = match args.bucket {
        Bucketing::Day => {
            check_bucket(&args)?;
            args.summaries
                .open(&args.connect, &args.schema, "callrollup-errors")?
        }
        Bucketing::Hour => None,
    };
    let analysis = analysis(&args, summaries.as_mut(), source.as_ref())?;
    if !analysis.missing_days.is_empty() && args.format != Format::Table {
        crate::log::info(&format!(
            "{} day(s) not rolled up and no source to read them from: run `callrollup run` for them, or pass --source DIR",
            analysis.missing_days.len()
        ));
    }

    let top = args.top.map(usize::from);
    let bytes = match args.format {
        Format::Table => render::table(&analysis, top.unwrap_or(10)),
        Format::Csv => render::csv(&analysis, top)?,
        Format::Json => render::json(&analysis, top)?,
    };
    if let (Some(path), Some(kind)) = (&args.chart, chart_kind) {
        let picture = chart::render(&analysis, top.unwrap_or(chart::DEFAULT_TOP), kind)?;
        crate::sink::files::write_whole(path, &picture)?;
        crate::log::info(&format!("chart written to {}", path.display()));
    }
    args.output.write(&bytes)
}

/// Refuses a `--timezone` with daily buckets (they are tenant days).
fn check_bucket(args: &Args) -> Result<()> {
    if args.bucket == Bucketing::Day && args.timezone.is_some() {
        return Err(Error::usage(
            "--timezone sets the clock of hourly buckets; daily buckets are each tenant's own days (add --bucket hour)",
        ));
    }
    Ok(())
}

/// The trends `args` ask for: daily buckets from `summaries` (days not
/// rolled up from `source`), hourly buckets from `source`. What the
/// command and `serve` both show.
pub fn analysis(
    args: &Args,
    summaries: Option<&mut crate::summaries::Summaries>,
    source: Option<&crate::pipeline::SourceSpec>,
) -> Result<crate::trends::Analysis> {
    let rule = SpikeRule {
        k: args.spike_k,
        min_errors: args.spike_min,
    };
    if !(rule.k.is_finite() && rule.k > 0.0) || rule.min_errors < 1 {
        return Err(Error::usage(
            "--spike-k must be a positive number and --spike-min at least 1",
        ));
    }
    check_bucket(args)?;
    let tenants = args.tenants.selection()?;
    let now = Utc::now();
    let (timeline, read) = match args.bucket {
        Bucketing::Day => {
            let (from, to) = period(args, last_complete_day(now))?;
            let timeline = Timeline::days(from, to);
            if summaries.is_none() && source.is_none() {
                return Err(Error::usage(
                    "nothing to read: pass --database-url (or DATABASE_URL), --reports DIR or --source DIR",
                ));
            }
            let read = match summaries {
                // The summary tables' days and coverage of one state.
                Some(summaries) => summaries.snapshot(|summaries| {
                    summaries
                        .refuse_unknown_tenants(&tenants, "`callrollup errors --by tenant`")?;
                    read::daily(Some(summaries), source, &timeline, &tenants, args.by)
                })?,
                None => read::daily(None, source, &timeline, &tenants, args.by)?,
            };
            (timeline, read)
        }
        Bucketing::Hour => {
            let zone_name = args.timezone.as_deref().unwrap_or("UTC");
            let zone = crate::rollup::timezone::canonical_zone(zone_name)
                .map(crate::rollup::timezone::rules_of)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--timezone {zone_name:?} is not a time zone; use an IANA name such as America/Chicago"
                    ))
                })?;
            let today = now.with_timezone(&zone).date_naive();
            let (from, to) = period(args, today)?;
            let timeline = Timeline::hours(zone, from, to, now)?;
            let Some(spec) = source else {
                return Err(Error::usage(
                    "--bucket hour reads the platform's rows: pass --database-url (or DATABASE_URL) or --source DIR",
                ));
            };
            let read = read::hourly(spec, &timeline, &tenants)?;
            (timeline, read)
        }
    };
    let mut analysis = analyse(&read.series, timeline, args.by, rule)?;
    analysis.read_from = read.read_from;
    Ok(analysis)
}
