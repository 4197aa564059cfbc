//! `run --metrics-file PATH`: the run in Prometheus' text format, for
//! node_exporter's textfile collector. Written whole (a temporary sibling,
//! then a rename) after every run, failed ones too, so an alert such as
//! `time() - callrollup_last_success_timestamp_seconds > 26*3600` fires
//! when the nightly run stops succeeding. A failed run keeps the last
//! success time of the file it replaces.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::pipeline::run::RunOutcome;

const LAST_SUCCESS: &str = "callrollup_last_success_timestamp_seconds";

/// What one run reports.
pub struct RunMetrics<'a> {
    /// When it finished (Unix seconds).
    pub finished_at: f64,
    pub exit_code: i32,
    pub duration_seconds: f64,
    /// The run's figures, when it got that far.
    pub outcome: Option<&'a RunOutcome>,
}

/// The last success time recorded in an earlier metrics file, if any.
fn previous_success(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(LAST_SUCCESS)?.trim().parse().ok())
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn one(value: f64) -> Vec<(String, f64)> {
    vec![(String::new(), value)]
}

fn label(name: &str, value: &str) -> String {
    labels(&[(name, value)])
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// The text of the metrics file.
pub fn render(run: &RunMetrics, previous_success: Option<f64>) -> String {
    let mut out = String::new();
    let succeeded = run.exit_code == 0 || run.exit_code == 3;
    let last_success = if succeeded {
        Some(run.finished_at)
    } else {
        previous_success
    };
    gauge(
        &mut out,
        "callrollup_last_run_timestamp_seconds",
        "When the last run finished.",
        &one(run.finished_at),
    );
    gauge(
        &mut out,
        "callrollup_last_run_success",
        "1 when the last run wrote its window (exit 0, or 3 for a tripped quality gate), else 0.",
        &one(if succeeded { 1.0 } else { 0.0 }),
    );
    gauge(
        &mut out,
        "callrollup_last_run_exit_code",
        "The exit code of the last run (docs/CONTRACT.md §7).",
        &one(f64::from(run.exit_code)),
    );
    if let Some(at) = last_success {
        gauge(
            &mut out,
            LAST_SUCCESS,
            "When a run last wrote its window.",
            &one(at),
        );
    }
    gauge(
        &mut out,
        "callrollup_last_run_duration_seconds",
        "Wall time of the last run.",
        &one(run.duration_seconds),
    );
    let Some(outcome) = run.outcome else {
        return out;
    };
    gauge(
        &mut out,
        "callrollup_last_run_stage_seconds",
        "Wall time of each stage of the last run (overlapped stages ran alongside others).",
        &outcome
            .timings
            .stages()
            .iter()
            .map(|(stage, took)| (label("stage", stage), took.as_secs_f64()))
            .collect::<Vec<_>>(),
    );
    let stats = &outcome.stats;
    gauge(
        &mut out,
        "callrollup_last_run_rows_read",
        "Source rows the last run read, per table.",
        &[
            (label("table", "call_logs"), stats.read.calls as f64),
            (label("table", "system_errors"), stats.read.errors as f64),
        ],
    );
    gauge(
        &mut out,
        "callrollup_last_run_rows_written",
        "Rows the last run wrote, per summary table (0 for a dry run).",
        &stats
            .table_rows
            .iter()
            .map(|(table, rows)| {
                let table = table.name();
                let written = if outcome.changes.is_some() || !outcome.files.is_empty() {
                    *rows as f64
                } else {
                    0.0
                };
                (label("table", table), written)
            })
            .collect::<Vec<_>>(),
    );
    if let Some(changes) = &outcome.changes {
        let mut samples = Vec::new();
        for (table, c) in changes.iter() {
            let table = table.name();
            for (change, n) in [
                ("inserted", c.inserted),
                ("updated", c.updated),
                ("deleted", c.deleted),
            ] {
                samples.push((labels(&[("table", table), ("change", change)]), n as f64));
            }
        }
        gauge(
            &mut out,
            "callrollup_last_run_rows_changed",
            "Summary-table rows the last run inserted, updated or deleted (rows whose figures were already right are not written).",
            &samples,
        );
    }
    gauge(
        &mut out,
        "callrollup_last_run_tenants",
        "Tenants in the last run's window.",
        &one(stats.tenants.len() as f64),
    );
    gauge(
        &mut out,
        "callrollup_last_run_calls",
        "Calls in the last run's window.",
        &one(stats.totals.calls as f64),
    );
    gauge(
        &mut out,
        "callrollup_last_run_total_cost_usd",
        "Total cost of the last run's window (a float for dashboards; the tables hold the exact figure).",
        &one(
            rust_decimal::prelude::ToPrimitive::to_f64(&stats.totals.total_cost_usd)
                .unwrap_or(f64::NAN),
        ),
    );
    gauge(
        &mut out,
        "callrollup_last_run_findings_rows",
        "Rows flagged by each data-quality finding kind in the last run.",
        &crate::gates::KINDS
            .iter()
            .map(|kind| {
                let rows = stats.findings_by_kind.get(*kind).copied().unwrap_or(0);
                (label("kind", kind), rows as f64)
            })
            .collect::<Vec<_>>(),
    );
    if let Some(crate::anomalies::Check::Made(found)) = &outcome.anomalies {
        gauge(
            &mut out,
            "callrollup_last_run_cost_anomalies",
            "Cost anomaly lines in the days the last run wrote: rises (alarms) and falls.",
            &[
                (label("direction", "rise"), found.rises.len() as f64),
                (label("direction", "fall"), found.falls.len() as f64),
            ],
        );
        gauge(
            &mut out,
            "callrollup_last_run_cost_anomaly_excess_usd",
            "Dollars the tenants' cost rises in the last run's days came to above their baselines (a float for dashboards; `callrollup anomalies` has the exact figure).",
            &one(
                rust_decimal::prelude::ToPrimitive::to_f64(
                    &crate::anomalies::render::total_excess(&found.rises),
                )
                .unwrap_or(f64::NAN),
            ),
        );
    }
    if let Some(crate::drift::Check::Made(drift)) = &outcome.drift {
        gauge(
            &mut out,
            "callrollup_last_run_drift_tenant_days",
            "Tenant days of the closed days before the last run's window whose source figures differ from the summary (late rows beyond the lookback).",
            &one(drift.count() as f64),
        );
    }
    out
}

/// Writes the metrics file whole, keeping the last success time of the
/// file it replaces.
pub fn write(path: &Path, run: &RunMetrics) -> Result<()> {
    let text = render(run, previous_success(path));
    crate::sink::files::write_whole(path, text.as_bytes())
}
