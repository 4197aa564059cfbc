//! callrollup runs — the run ledger, newest first.
//!
//! Usage: `callrollup runs --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.

use crate::cli::runs::Args;
use crate::cli::ListFormat;
use crate::error::{Error, Result};
use crate::ledger::{self, RunRow};
use crate::output::{TextCell, TextTable};

pub fn execute(args: Args) -> Result<()> {
    let schema = args.schema.target_schema()?;
    let url = args.connect.target()?;
    let mut client = url.connect_reporting("callrollup-runs")?;
    crate::migrate::check_current(&mut client, &schema)?;
    let runs = ledger::list(&mut client, &schema, i64::from(args.limit))?;
    match args.format {
        ListFormat::Json => {
            let document = serde_json::json!({
                "format_version": crate::output::JSON_FORMAT_VERSION,
                "runs": runs,
            });
            let text = serde_json::to_string_pretty(&document)
                .map_err(|e| Error::RunFailed(format!("cannot render runs as JSON: {e}")))?;
            println!("{text}");
        }
        ListFormat::Table => print!("{}", table(&runs)),
    }
    Ok(())
}

/// The ledger for people (the terminal's table, `serve`'s page).
pub fn text_table(runs: &[RunRow]) -> TextTable {
    let mut table = TextTable::new(&[
        "run_id",
        "started_at",
        "status",
        "window",
        "duration",
        "calls",
        "total_cost_usd",
        "rows",
        "selection",
        "source",
        "gates",
        "error",
    ]);
    for r in runs {
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
        // `--fail-on` gates, as the run was given them.
        let gates: Vec<String> = r.arguments["fail_on"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        table.rows.push(vec![
            TextCell::text(&r.run_id),
            TextCell::text(&r.started_at),
            TextCell::text(&r.status),
            TextCell::text(&window),
            TextCell::number(
                r.duration_seconds
                    .map(|s| format!("{s:.1}s"))
                    .unwrap_or_default(),
            ),
            TextCell::number(r.source_calls.map(|v| v.to_string()).unwrap_or_default()),
            TextCell::number(r.source_total_cost_usd.clone().unwrap_or_default()),
            TextCell::number(written.map(|v| v.to_string()).unwrap_or_default()),
            TextCell::text(&r.selection),
            TextCell::text(r.source.as_deref().unwrap_or_default()),
            TextCell::text(&gates.join(" ")),
            TextCell::text(r.error.as_deref().unwrap_or_default()),
        ]);
    }
    table
}

/// Plain aligned columns, one run a line (easy to grep and cut).
fn table(runs: &[RunRow]) -> String {
    let table = text_table(runs);
    let mut widths: Vec<usize> = table.header.iter().map(|h| h.chars().count()).collect();
    for row in &table.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(table.header.iter().map(String::as_str).collect(), &mut out);
    for row in &table.rows {
        line(row.iter().map(|c| c.text.as_str()).collect(), &mut out);
    }
    if runs.is_empty() {
        out.push_str("(no runs yet)\n");
    }
    out
}
