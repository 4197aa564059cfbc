//! callrollup changes — billed figures that changed after they were written.
//!
//! Usage: `callrollup changes --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Lists the restatements of `tenant_daily` that runs recorded (one line
//! per tenant day and run, old and new figures, the change, which run
//! wrote the old figures and which replaced them) from the target
//! database: report files carry no history. `--closed-before DATE` keeps
//! the restatements of days before DATE and exits 3 when there is any, so
//! a cron job can alert finance when closed books changed.

use crate::changes::render::{self, Format, Report};
use crate::changes::Filter;
use crate::cli::changes::Args;
use crate::error::{Error, Result};

/// `--run`: none, a run_id, or the run that succeeded last.
enum RunChoice {
    Any,
    Id(uuid::Uuid),
    Last,
}

pub fn execute(args: Args) -> Result<()> {
    let period = args.period.period()?;
    let tenants = args.tenants.selection()?;
    // `--run last` is looked up once connected.
    let run = match args.run.as_deref() {
        None => RunChoice::Any,
        Some("last") => RunChoice::Last,
        Some(r) => RunChoice::Id(uuid::Uuid::parse_str(r).map_err(|_| {
            Error::usage(format!(
                "--run {r:?} is not a run_id; `callrollup runs` lists them (or use --run last)"
            ))
        })?),
    };
    let since = args
        .since
        .as_deref()
        .map(crate::changes::parse_since)
        .transpose()?;
    let closed_before = args
        .closed_before
        .as_deref()
        .map(|d| crate::window::parse_date("--closed-before", d))
        .transpose()?;
    let alert = args.alert.as_deref().map(alert_name).transpose()?;
    if alert.is_some() && matches!(run, RunChoice::Last) {
        return Err(Error::usage(
            "--alert reports every change it has not reported yet; drop --run last (it would pass over the nights whose alert failed)",
        ));
    }
    if args.format == Format::Xlsx {
        args.output.require_file("xlsx")?;
    }
    if args.reports.is_some() {
        return Err(Error::usage(
            "report files carry no restatement history: the target database is the record; drop --reports and pass --target-url (or set CALLROLLUP_TARGET_URL / DATABASE_URL)",
        ));
    }
    let mut summaries = crate::summaries::Summaries::database(
        &args.connect.target()?,
        args.schema.target_schema()?,
        "callrollup-changes",
    )?;
    if let Some(alert) = &alert {
        summaries.lock_alert(alert)?;
    }
    // "The last run" and its lines read in one state of the history.
    summaries
        .snapshot(|summaries| {
            let run = match run {
                RunChoice::Any => None,
                RunChoice::Id(id) => Some(id),
                RunChoice::Last => Some(summaries.last_succeeded_run()?.ok_or_else(|| {
                    Error::usage(
                        "--run last: no run has succeeded yet; `callrollup runs` lists them",
                    )
                })?),
            };

            let mut filter = Filter {
                from: period.map(|p| p.from),
                to: period.map(|p| p.to),
                tenants: tenants.clone(),
                run,
                since,
                unreported_by: alert.clone(),
            };
            let mut selection: Vec<(&'static str, String)> = Vec::new();
            match period {
                Some(p) => selection.push(("days", format!("{}..{}", p.from, p.to))),
                None => selection.push(("days", "every day".into())),
            }
            if !tenants.tenants.is_empty() {
                selection.push(("tenants", tenants.tenant_texts().join(" ")));
            }
            if let Some(run) = run {
                selection.push(("run", run.to_string()));
            }
            if let Some(alert) = &alert {
                selection.push(("not yet reported by alert", alert.clone()));
            }
            if let Some(since) = since {
                selection.push((
                    "restated since",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ));
            }
            let lines = match closed_before {
                Some(day) => {
                    selection.push(("closed before", day.to_string()));
                    if filter.before(day) {
                        summaries.restatements(&filter)?
                    } else {
                        Vec::new()
                    }
                }
                None => summaries.restatements(&filter)?,
            };
            // A --tenant with no line may be a typo: refused when neither the
            // history nor the summary tables ever held it.
            let quiet: Vec<uuid::Uuid> = tenants
                .tenants
                .iter()
                .copied()
                .filter(|t| !lines.iter().any(|l| l.tenant_id == t.to_string()))
                .collect();
            if !quiet.is_empty() {
                let restated = summaries.restated_tenants(&quiet)?;
                let never = crate::selection::TenantSelection {
                    tenants: quiet
                        .into_iter()
                        .filter(|t| !restated.contains(&t.to_string()))
                        .collect(),
                    shard: None,
                };
                summaries.refuse_unknown_tenants(&never, "`callrollup costs` without --tenant")?;
            }
            Ok((lines, selection))
        })
        .and_then(|(lines, selection)| {
            // The alert marks the lines it reported, once the report is
            // out: a report that could not be written reports them again.
            let reported: Vec<i64> = lines.iter().map(|l| l.id).collect();
            write(&args, closed_before, lines, selection, || match &alert {
                Some(alert) => summaries.mark_reported(alert, &reported),
                None => Ok(()),
            })
        })
}

/// `--alert NAME`: printable, at most 64 characters.
fn alert_name(name: &str) -> Result<String> {
    let fine =
        !name.is_empty() && name.chars().count() <= 64 && name.chars().all(|c| !c.is_control());
    if !fine {
        return Err(Error::usage(format!(
            "--alert {:?}: name the alert in 1 to 64 printable characters, e.g. closed-books",
            crate::text::printable(name)
        )));
    }
    Ok(name.to_string())
}

/// The report of `lines` in `args`' format, and the closed-books check.
fn write(
    args: &Args,
    closed_before: Option<chrono::NaiveDate>,
    lines: Vec<crate::changes::Restatement>,
    selection: Vec<(&'static str, String)>,
    written: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let report = Report {
        lines: &lines,
        selection,
    };
    let bytes = match args.format {
        Format::Table => render::table(&report),
        Format::Csv => render::csv(&report)?,
        Format::Json => render::json(&report)?,
        Format::Xlsx => render::xlsx(&report)?,
    };
    args.output.write(&bytes)?;
    let marked = written();

    if let (Some(day), Some(first)) = (closed_before, lines.first()) {
        // Closed books changed: that is the exit code a cron job acts on,
        // whatever became of the marks (unmarked lines come again).
        if let Err(e) = &marked {
            crate::log::info(&format!(
                "the alert's marks were not recorded, so the next alert reports these lines again: {e}"
            ));
        }
        let restated = crate::changes::Restated::of(&lines);
        return Err(Error::Check(format!(
            "--closed-before {day}: {} restatement(s) changed {} tenant day(s) of closed books, the first {} of tenant {}; total_cost_usd changed by {} USD; tell finance (the report lists them)",
            restated.restatements,
            restated.tenant_days,
            first.day,
            first.tenant_id,
            render::signed(restated.change_total_cost_usd)
        )));
    }
    marked
}
