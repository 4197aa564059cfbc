//! callrollup anomalies — tenant days whose cost per unit or whose calls
//! left their own baseline, with the excess in exact dollars.
//!
//! Usage: `callrollup anomalies --help`, from clap alone; docs/USAGE.md
//! holds every command's, and a test fails when it drifts from the parser.
//!
//! Reads the summary tables (or, with `--reports DIR`, the report files
//! `run` wrote), never the platform's tables: the period's tenant days and
//! the 56 days before them that baselines come from. The rule is
//! `crate::anomalies`; days no run covered are unknown, never zeros.

use chrono::{Days, Utc};

use crate::anomalies::render::{self, Format};
use crate::anomalies::Rule;
use crate::cli::anomalies::Args;
use crate::error::{Error, Result};
use crate::window::{last_complete_day, Period};

/// `14d` or `2w` as a number of days (the same lengths `errors --since` takes).
fn last_days(text: &str) -> Result<u64> {
    crate::cmd::errors::length_in_days("--last", text)
}

/// The longest period one `anomalies` looks at: every tenant's days of it
/// and of its baselines are held at once.
const MAX_DAYS: i64 = 366;

fn period(args: &Args) -> Result<Period> {
    if let Some(period) = args.period.period()? {
        crate::window::check_span(period.from, period.to)?;
        if period.days() > MAX_DAYS {
            return Err(Error::usage(format!(
                "{}..{} is {} days: `anomalies` looks at most {MAX_DAYS} at once; split the period",
                period.from,
                period.to,
                period.days()
            )));
        }
        return Ok(period);
    }
    let days = last_days(&args.last)?;
    if days > MAX_DAYS as u64 {
        return Err(Error::usage(format!(
            "--last {}: `anomalies` looks at most {MAX_DAYS} days at once; split the period with --from/--to",
            args.last
        )));
    }
    let to = last_complete_day(Utc::now());
    Ok(Period {
        from: to - Days::new(days - 1),
        to,
        is_month: false,
    })
}

pub fn execute(args: Args) -> Result<()> {
    // Usage errors before any connection.
    let period = period(&args)?;
    let tenants = args.tenants.selection()?;
    if args.format == Format::Xlsx {
        args.output.require_file("xlsx")?;
    }
    let rule = Rule {
        k: args.k,
        min_excess_usd: args.min_excess,
    };
    let mut summaries = args
        .summaries
        .open(&args.connect, &args.schema, "callrollup-anomalies")?
        .ok_or_else(|| {
            Error::usage("no summary tables: pass --reports DIR, --target-url or --database-url (or set CALLROLLUP_TARGET_URL / DATABASE_URL)")
        })?;
    let analysis = crate::anomalies::read(&mut summaries, period, rule, &tenants, true)?;
    for tenant in tenants.tenant_texts() {
        if !analysis.tenants_with_calls.contains(&tenant) {
            crate::log::info(&format!(
                "tenant {tenant} has no calls on a covered day of {}..{}: nothing to assess",
                period.from, period.to
            ));
        }
    }
    // Say what is unknown, on stderr, whatever the format.
    if args.format != Format::Table {
        for line in render::unknown_lines(&analysis) {
            crate::log::info(&line);
        }
    }
    let bytes = match args.format {
        Format::Table => render::table(&analysis, args.top.map(|n| n as usize)),
        Format::Csv => render::csv(&analysis)?,
        Format::Json => render::json(&analysis)?,
        Format::Xlsx => render::xlsx(&analysis)?,
    };
    args.output.write(&bytes)
}
