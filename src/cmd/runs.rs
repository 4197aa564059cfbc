//! callrollup runs — the run ledger, newest first.
//!
//! Usage: `callrollup runs --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.

use crate::cli::runs::Args;
use crate::cli::ListFormat;
use crate::error::{Error, Result};
use crate::ledger::{self, RunRow};

pub fn execute(args: Args) -> Result<()> {
    let schema = args.schema.target_schema()?;
    let url = args.connect.target()?;
    let mut client = url.connect_reporting("callrollup-runs")?;
    crate::migrate::check_current(&mut client, &schema)?;
    let runs = ledger::list(&mut client, &schema, i64::from(args.limit))?;
    match args.format {
        ListFormat::Json => {
            let text = serde_json::to_string_pretty(&runs)
                .map_err(|e| Error::RunFailed(format!("cannot render runs as JSON: {e}")))?;
            println!("{text}");
        }
        ListFormat::Table => print!("{}", table(&runs)),
    }
    Ok(())
}

fn table(runs: &[RunRow]) -> String {
    let header = [
        "run_id",
        "started_at",
        "status",
        "window",
        "calls",
        "total_cost_usd",
        "rows",
        "selection",
        "source",
        "error",
    ];
    let rows: Vec<[String; 10]> = runs
        .iter()
        .map(|r| {
            let window = if r.partial {
                format!("{}..{} (partial)", r.window_from, r.window_to)
            } else {
                format!("{}..{}", r.window_from, r.window_to)
            };
            let written: Option<i64> = [
                r.rows_tenant_daily,
                r.rows_tenant_daily_outcomes,
                r.rows_tenant_daily_errors,
                r.rows_data_quality_findings,
            ]
            .iter()
            .map(|v| v.map(i64::from))
            .sum();
            [
                r.run_id.clone(),
                r.started_at.clone(),
                r.status.clone(),
                window,
                r.source_calls.map(|v| v.to_string()).unwrap_or_default(),
                r.source_total_cost_usd.clone().unwrap_or_default(),
                written.map(|v| v.to_string()).unwrap_or_default(),
                r.selection.clone(),
                r.source.clone().unwrap_or_default(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    if runs.is_empty() {
        out.push_str("(no runs yet)\n");
    }
    out
}
