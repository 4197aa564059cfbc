//! callrollup costs — finance cost reports, exact to the micro-dollar.
//!
//! Usage: `callrollup costs --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Reads the summary tables (or, with `--reports DIR`, the report files
//! `run` wrote), never the raw platform tables, except `--reconcile`,
//! which recomputes the period's totals from the source with the pipeline
//! `run` uses. Without a period it reports the last calendar month.
//! Missing or partial days are listed; `--require-complete` makes them
//! exit 3, as does any reconciliation difference.

use crate::cli::costs::Args;
use chrono::{Datelike, Months, NaiveDate, Utc};

use crate::costs::render::{self, Format};
use crate::costs::Period;
use crate::error::{Error, Result};

/// Tenants the workbook's daily chart draws without --top, and at most.
const CHART_TOP: (usize, usize) = (5, 50);

fn period(args: &Args) -> Result<Period> {
    if let Some(period) = args.period.period()? {
        // A report of ten thousand years would read (and draw) each day.
        crate::window::check_span(period.from, period.to)?;
        return Ok(period);
    }
    // The last calendar month.
    let today = Utc::now().date_naive();
    let this_month =
        NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("a month's first day");
    Period::month(&(this_month - Months::new(1)).format("%Y-%m").to_string())
}

pub fn execute(args: Args) -> Result<()> {
    // Usage errors before any connection.
    period(&args)?;
    args.tenants.selection()?;
    match args.format {
        Format::Parquet => args.output.require_file("parquet")?,
        Format::Xlsx => args.output.require_file("xlsx")?,
        _ => {}
    }
    let mut summaries = args
        .summaries
        .open(&args.connect, &args.schema, "callrollup-costs")?
        .ok_or_else(|| {
            Error::usage("no summary tables: pass --reports DIR, --target-url or --database-url (or set CALLROLLUP_TARGET_URL / DATABASE_URL)")
        })?;
    let source = if args.reconcile {
        Some(args.source.spec(&args.connect)?)
    } else if args.source.source.is_some() {
        return Err(Error::usage(
            "--source is where --reconcile reads the platform's rows; add --reconcile",
        ));
    } else {
        None
    };
    let report = report(&args, &mut summaries, source.as_ref())?;

    // Say what is missing, on stderr, whatever the format.
    let period = report.period;
    if report.rows.len() <= 1 {
        crate::log::info(&format!(
            "no figures for {}..{} in the {}: the report is empty",
            period.from, period.to, report.read_from
        ));
    }
    for note in render::comparison_notes(&report) {
        crate::log::info(&note);
    }
    for tenant in &args.tenants.selection()?.tenants {
        let id = tenant.to_string();
        if !report
            .rows
            .iter()
            .any(|r| r.key.tenant_id.as_deref() == Some(id.as_str()))
        {
            crate::log::info(&format!(
                "tenant {id} has no rows in {}..{}",
                period.from, period.to
            ));
        }
    }
    for problem in report.coverage.problems() {
        crate::log::info(&format!("coverage: {problem}"));
    }

    args.output.write(&bytes(&args, &report)?)?;

    if let Some(r) = &report.reconciliation {
        if !r.differences.is_empty() {
            return Err(Error::Check(render::reconciliation_line(r)));
        }
    }
    if args.require_complete && !report.coverage.is_complete() {
        return Err(Error::Check(format!(
            "--require-complete: {}; run `callrollup run` for those days",
            report.coverage.problems().join("; ")
        )));
    }
    Ok(())
}

/// The report `args` ask for, read from `summaries` (and, with
/// `--reconcile`, recomputed from `source`): what the command and `serve`
/// both show.
pub fn report(
    args: &Args,
    summaries: &mut crate::summaries::Summaries,
    source: Option<&crate::pipeline::SourceSpec>,
) -> Result<crate::costs::Report> {
    let period = period(args)?;
    let tenants = args.tenants.selection()?;
    // Every figure, coverage and restatement line of one state.
    let (mut report, tenant_days) = summaries.snapshot(|summaries| {
        summaries.refuse_unknown_tenants(&tenants, "`callrollup costs` without --tenant")?;
        crate::costs::build(summaries, period, args.by, &tenants)
    })?;
    // The source, after the snapshot: it may take long.
    if let Some(source) = source {
        crate::costs::reconcile(&mut report, &tenant_days, source, &tenants)?;
    }
    if let Some(column) = &args.sort {
        render::check_sort(&report, column)?;
    }
    report.view = crate::costs::View {
        sort: args.sort.clone(),
        top: args.top.map(|n| n as usize),
        wide: args.wide,
    };
    Ok(report)
}

/// The report in `args`' format: the bytes `-o` or stdout get, and what
/// `serve`'s downloads send.
pub fn bytes(args: &Args, report: &crate::costs::Report) -> Result<Vec<u8>> {
    Ok(match args.format {
        Format::Table => render::table(report),
        Format::Csv => render::csv(report)?,
        Format::Json => render::json(report)?,
        Format::Parquet => render::parquet(report)?,
        Format::Xlsx => render::xlsx(
            report,
            args.top
                .map_or(CHART_TOP.0, |n| n as usize)
                .min(CHART_TOP.1),
        )?,
    })
}
