//! callrollup run — roll up a window into the summary tables and reports.
//!
//! Usage: `callrollup run --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Without dates it processes the last complete day and the `--lookback`
//! days before it. The work is `pipeline::run` (docs/CONTRACT.md §4);
//! this file turns the parsed arguments (`cli::run`) into its request,
//! runs the drift check beside it, applies the `--fail-on` gates and
//! prints the one-screen summary.

use crate::cli::run::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::error::Result;
use crate::money;
use crate::pipeline::run::{RunOutcome, RunRequest};
use crate::pipeline::{SourceSpec, Timings, WindowStats};
use crate::sink::postgres::TableChanges;
use crate::window::Window;

pub fn execute(args: Args) -> Result<()> {
    let started = Instant::now();
    let mut outcome = None;
    let result = execute_run(&args, started, &mut outcome);
    if let Some(path) = &args.metrics_file {
        let exit_code = result.as_ref().err().map_or(0, |e| e.exit_code());
        let metrics = crate::metrics::RunMetrics {
            finished_at: Utc::now().timestamp_micros() as f64 / 1e6,
            exit_code,
            duration_seconds: started.elapsed().as_secs_f64(),
            outcome: outcome.as_ref(),
        };
        if let Err(e) = crate::metrics::write(path, &metrics) {
            // The run's own error says more; a metrics failure alone fails the run.
            if result.is_ok() {
                return Err(e);
            }
            crate::log::info(&format!("could not write --metrics-file: {e}"));
        }
    }
    result
}

fn execute_run(args: &Args, started: Instant, outcome_out: &mut Option<RunOutcome>) -> Result<()> {
    let gates = args
        .fail_on
        .iter()
        .map(|g| crate::gates::Gate::parse(g))
        .collect::<Result<Vec<_>>>()?;
    let window = args.window.request().resolve(Utc::now())?;
    let asked = args.selection.selection()?;
    let source = args.source.spec(&args.connect)?;
    // With a snapshot and no database configured, the files are the target.
    let configured = args.connect.has_target();
    let target = match (&source, configured) {
        (SourceSpec::Snapshot(_), false) => None,
        _ => Some(args.connect.target()?),
    };
    let request = RunRequest {
        window,
        asked,
        source,
        target,
        target_schema: args.schema.target_schema()?,
        out: args.out.clone(),
        chunk_days: args.chunk_days,
        state_limit_mib: args.state_limit,
        dry_run: args.dry_run,
        arguments: arguments_json(args, &window),
        statement_timeout_secs: args.source.database.statement_timeout,
    };
    // The drift check reads only days the run does not write, so it runs
    // beside the run on connections of its own (its aggregate is most of
    // a nightly run's time otherwise); it counts only after a run that
    // succeeded.
    let drift = drift(&request, args.window.lookback);
    let outcome = outcome_out.insert(crate::pipeline::run::run_with_retries(
        &request,
        args.retries,
    )?);
    // The cost anomalies of the days written, read back while the drift
    // check (if any) finishes: the run's summary waits for both.
    let waiting = Instant::now();
    let (check, (anomalies, looked)) = std::thread::scope(|scope| {
        let looking = scope.spawn(|| {
            let started = Instant::now();
            (cost_anomalies(&request), started.elapsed())
        });
        let check = drift.finish();
        let anomalies = looking.join().unwrap_or_else(|_| {
            (
                crate::anomalies::Check::Failed(
                    "the cost anomalies check stopped on an internal error; report this as a bug"
                        .into(),
                ),
                Duration::ZERO,
            )
        });
        (check, anomalies)
    });
    if matches!(check, crate::drift::Check::Made(_)) {
        outcome
            .timings
            .add("drift check (overlapped)", waiting.elapsed());
    }
    outcome.drift = Some(check);
    if anomalies.made().is_some() {
        outcome.timings.add("cost anomalies (overlapped)", looked);
    }
    outcome.anomalies = Some(anomalies);
    let mut counts = outcome.stats.findings_by_kind.clone();
    if let Some(crate::drift::Check::Made(drift)) = &outcome.drift {
        counts.insert(crate::gates::DRIFT.to_string(), drift.count() as i64);
    }
    if let Some(crate::anomalies::Check::Made(found)) = &outcome.anomalies {
        counts.insert(
            crate::gates::COST_ANOMALY.to_string(),
            found.rises.len() as i64,
        );
    }
    let (gate_lines, mut tripped) = crate::gates::check(&gates, &counts);
    // A gate cannot pass on a check that failed.
    let failed = [
        (
            crate::gates::DRIFT,
            "the drift check",
            match &outcome.drift {
                Some(crate::drift::Check::Failed(why)) => Some(why),
                _ => None,
            },
        ),
        (
            crate::gates::COST_ANOMALY,
            "the cost anomalies check",
            match &outcome.anomalies {
                Some(crate::anomalies::Check::Failed(why)) => Some(why),
                _ => None,
            },
        ),
    ];
    for (kind, check, why) in failed {
        if let Some(why) = why {
            if tripped.is_none() && gates.iter().any(|g| g.kind == kind) {
                tripped = Some(crate::error::Error::Check(format!(
                    "--fail-on {kind}: {check} failed ({why}); the run's data is written"
                )));
            }
        }
    }
    print!(
        "{}",
        render_summary(&Summary {
            outcome,
            window: &window,
            out: &args.out,
            total: started.elapsed(),
            gates: &gate_lines,
        })
    );
    match tripped {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The drift check of a whole run from a database into a database
/// (`crate::drift`), started now on a thread of its own; not made for a
/// dry run, a snapshot source (nothing arrives late in it), a file
/// target, or a `--tenant` or shard run (the whole nightly run checks
/// every tenant). `lookback`: the nightly run's, whose days the next
/// nightly run re-reads anyway.
fn drift(request: &RunRequest, lookback: u32) -> DriftCheck {
    if request.dry_run {
        return DriftCheck::NotMade("a dry run writes nothing to compare");
    }
    let SourceSpec::Postgres { url, schema, .. } = &request.source else {
        return DriftCheck::NotMade("the source is a snapshot, where nothing arrives late");
    };
    let Some(target) = &request.target else {
        return DriftCheck::NotMade("report files alone are no record to compare with");
    };
    if !request.asked.tenants.is_empty() || request.asked.shard.is_some() {
        return DriftCheck::NotMade(
            "a --tenant or shard run; the whole nightly run checks every tenant",
        );
    }
    let days = crate::drift::days_to_check(&request.window, Utc::now(), lookback);
    let (source, source_schema) = (url.clone(), schema.clone());
    let (target, target_schema) = (target.clone(), request.target_schema.clone());
    let out = request.out.clone();
    DriftCheck::Running(std::thread::spawn(move || {
        crate::drift::check(
            &source,
            &source_schema,
            &target,
            &target_schema,
            &days,
            &out,
        )
    }))
}

/// The longest window whose anomalies a run looks for after its commit.
const MAX_ANOMALY_DAYS: usize = 92;

/// The cost anomalies of the days the run wrote, read back from what it
/// wrote (the target's summary tables, or its report folder); not looked
/// for after a dry run or a `--tenant` or shard run (the other tenants'
/// figures of those days may be older, and the platform's lines need
/// them all).
fn cost_anomalies(request: &RunRequest) -> crate::anomalies::Check {
    use crate::anomalies::Check;
    if request.dry_run {
        return Check::NotMade("a dry run writes nothing");
    }
    if !request.asked.tenants.is_empty() || request.asked.shard.is_some() {
        return Check::NotMade(
            "a --tenant or shard run; the whole nightly run looks at every tenant",
        );
    }
    if request.window.day_count() > MAX_ANOMALY_DAYS {
        return Check::NotMade(
            "a window of more than 92 days (a backfill); `callrollup anomalies` looks at any part of it",
        );
    }
    let found = (|| {
        let mut summaries = match &request.target {
            Some(url) => crate::summaries::Summaries::database(
                url,
                request.target_schema.clone(),
                "callrollup-run-anomalies",
            )?,
            None => crate::summaries::Summaries::reports(&request.out)?,
        };
        let period = crate::window::Period {
            from: request.window.from,
            to: request.window.to,
            is_month: false,
        };
        crate::anomalies::read(
            &mut summaries,
            period,
            crate::anomalies::Rule::default(),
            &Default::default(),
            true,
        )
    })();
    match found {
        Ok(analysis) => Check::Made(analysis),
        Err(e) => {
            crate::log::info(&format!("the cost anomalies check failed: {e}"));
            Check::Failed(e.to_string())
        }
    }
}

/// The summary's lines of the cost anomalies: how many rose and by how
/// much, the largest one line each, and the command that lists them all.
fn anomalies_lines(
    check: &crate::anomalies::Check,
    window: &Window,
    out: &Path,
    database: bool,
) -> String {
    use crate::anomalies::render::{scope_name, total_excess, why};
    const SHOWN: usize = 5;
    let found = match check {
        crate::anomalies::Check::Made(found) => found,
        crate::anomalies::Check::NotMade(why) => {
            return format!("anomalies   not looked for: {why}\n")
        }
        crate::anomalies::Check::Failed(why) => {
            return format!("anomalies   not looked for: the check failed ({why})\n")
        }
    };
    let command = if database {
        format!(
            "callrollup anomalies --from {} --to {}",
            window.from, window.to
        )
    } else {
        format!(
            "callrollup anomalies --reports {} --from {} --to {}",
            crate::drift::shell_word(&out.display().to_string()),
            window.from,
            window.to
        )
    };
    if found.rises.is_empty() {
        return format!(
            "anomalies   none: no cost rose beyond its baseline in {} tenant days ({} fell; `{command}`)\n",
            found.tenant_days_assessed,
            found.falls.len()
        );
    }
    let mut text = format!(
        "anomalies   {} cost rise(s), {} USD above their baselines; `{command}` lists them all\n",
        found.rises.len(),
        crate::money::cents_text(total_excess(&found.rises))
    );
    for a in found.rises.iter().take(SHOWN) {
        text.push_str(&format!(
            "            {} {} {} {} +{} USD ({})\n",
            a.day,
            crate::text::printable(&scope_name(a)),
            a.component.name(),
            a.kind.name(),
            crate::money::cents_text(a.excess_usd),
            why(a)
        ));
    }
    if found.rises.len() > SHOWN {
        text.push_str(&format!(
            "            and {} more\n",
            found.rises.len() - SHOWN
        ));
    }
    text
}

/// The drift check beside the run.
enum DriftCheck {
    NotMade(&'static str),
    Running(std::thread::JoinHandle<Result<crate::drift::Drift>>),
}

impl DriftCheck {
    /// What it found, once the run succeeded.
    fn finish(self) -> crate::drift::Check {
        use crate::drift::Check;
        let found = match self {
            DriftCheck::NotMade(why) => return Check::NotMade(why),
            DriftCheck::Running(check) => check.join().unwrap_or_else(|_| {
                Err(crate::error::Error::RunFailed(
                    "the drift check stopped on an internal error; report this as a bug".into(),
                ))
            }),
        };
        match found {
            Ok(drift) => Check::Made(drift),
            Err(e) => {
                crate::log::info(&format!("the drift check failed: {e}"));
                Check::Failed(e.to_string())
            }
        }
    }
}

/// The run's arguments for the ledger: no URLs, so no secrets.
fn arguments_json(args: &Args, window: &Window) -> String {
    serde_json::json!({
        "date": args.window.date,
        "from": window.from.to_string(),
        "to": window.to.to_string(),
        "lookback": args.window.lookback,
        "allow_partial": args.window.allow_partial,
        "tenants": args.selection.tenants.tenants,
        "tenant_shard": args.selection.tenant_shard,
        "fail_on": args.fail_on,
        "out": args.out.display().to_string(),
        "source_schema": args.source.database.source_schema,
    })
    .to_string()
}

struct Summary<'a> {
    outcome: &'a RunOutcome,
    window: &'a Window,
    out: &'a Path,
    total: Duration,
    /// One line per `--fail-on`.
    gates: &'a [String],
}

fn render_summary(s: &Summary) -> String {
    let st: &WindowStats = &s.outcome.stats;
    let selection = &s.outcome.selection;
    let timings: &Timings = &s.outcome.timings;
    let files: &[PathBuf] = &s.outcome.files;
    let run_id: Option<Uuid> = s.outcome.run_id;
    let tenants = st.tenants.len();
    let mut out = String::new();
    let status = match run_id {
        Some(id) => format!("run {id} succeeded"),
        None => "dry run: nothing was written".to_string(),
    };
    out.push_str(&format!("{status}\n"));
    out.push_str(&format!(
        "window      {}..{} ({} days{})\n",
        s.window.from,
        s.window.to,
        s.window.day_count(),
        if s.window.partial { ", partial" } else { "" }
    ));
    let only = match (selection.tenants.len(), selection.shard) {
        (0, None) => String::new(),
        (0, Some(shard)) => format!(" (tenant shard {shard})"),
        (n, None) => format!(" (--tenant: {n} selected)"),
        (n, Some(shard)) => format!(" (--tenant: {n} selected, tenant shard {shard})"),
    };
    out.push_str(&format!("tenants     {tenants}{only}\n"));
    out.push_str(&format!(
        "calls       {} (errored {}, missing cost {}, cost mismatch {}); {} rows read\n",
        st.totals.calls,
        st.errored_calls,
        st.calls_missing_cost,
        st.cost_mismatch_calls,
        st.read.calls
    ));
    out.push_str(&format!(
        "total cost  {} USD\n",
        money::format(st.totals.total_cost_usd)
    ));
    out.push_str(&format!(
        "errors      {} (critical {})\n",
        st.totals.errors, st.critical_errors
    ));
    out.push_str(&format!(
        "findings    {} rows in {} tenant days\n",
        st.finding_rows,
        st.table_rows[crate::tables::Table::Findings]
    ));
    if let Some(check) = &s.outcome.drift {
        out.push_str(&format!("drift       {}\n", check.line()));
    }
    if let Some(check) = &s.outcome.anomalies {
        out.push_str(&anomalies_lines(
            check,
            s.window,
            s.out,
            s.outcome.changes.is_some(),
        ));
    }
    if !s.gates.is_empty() {
        out.push_str(&format!("gates       {}\n", s.gates.join("; ")));
    }
    let rows: Vec<String> = st
        .table_rows
        .iter()
        .map(|(table, c)| (table.name(), c))
        .map(|(n, c)| {
            if s.outcome.changes.is_some() {
                format!("{n} {c}")
            } else {
                format!("{n} {c} (not written)")
            }
        })
        .collect();
    out.push_str(&format!("rows        {}\n", rows.join(", ")));
    if let Some(changes) = &s.outcome.changes {
        let sum = |f: fn(&TableChanges) -> u64| changes.values().map(f).sum::<u64>();
        let (inserted, updated, deleted) =
            (sum(|c| c.inserted), sum(|c| c.updated), sum(|c| c.deleted));
        let written = inserted + updated + deleted;
        let note = if written == 0 {
            "; the tables already held these figures".to_string()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "written     {written} rows ({inserted} inserted, {updated} updated, {deleted} deleted){note}\n"
        ));
        let restated: Vec<String> = changes
            .iter()
            .filter(|(_, c)| c.restated > 0)
            .map(|(table, c)| format!("{} {}", table.name(), c.restated))
            .collect();
        if !restated.is_empty() {
            let run = s.outcome.run_id.map(|r| r.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "restated    {} (rows of tenant days earlier runs wrote, recorded in restatements); `callrollup changes --run {run}` lists the billed ones\n",
                restated.join(", ")
            ));
        }
    } else if s.outcome.run_id.is_some() {
        out.push_str("history     none: report files carry no restatement history (the database is the record)\n");
    }
    out.push_str(&format!(
        "files       {} under {}\n",
        files.len(),
        s.out.display()
    ));
    let stages: Vec<String> = timings
        .stages()
        .iter()
        .map(|(n, d)| format!("{n} {:.2}s", d.as_secs_f64()))
        .collect();
    out.push_str(&format!(
        "time        {}; total {:.2}s\n",
        stages.join(", "),
        s.total.as_secs_f64()
    ));
    out
}
