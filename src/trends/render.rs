//! `errors` output: a table for people (one line per group, then the
//! spikes and new error types), and one row per group and bucket for
//! machines (json, csv).

use chrono::{DateTime, SecondsFormat};
use polars::prelude::*;
use serde_json::{json, Map, Value};

use super::{Analysis, By, Row};
use crate::error::Result;
use crate::output::{TextCell, TextTable};
use crate::text::printable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn timestamp(micros: Option<i64>) -> Option<String> {
    micros.map(|t| {
        DateTime::from_timestamp_micros(t)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    })
}

/// Error rates are shown as fractions with 6 decimals, as stored.
fn rounded_rate(rate: Option<f64>) -> Option<f64> {
    rate.map(|r| (r * 1e6).round() / 1e6)
}

/// One row's columns, in output order: the bucket, the group's key under
/// its table name, the figures, then the flags.
fn columns(analysis: &Analysis, row: &Row) -> Vec<(&'static str, Value)> {
    let mut out = vec![("bucket", json!(row.bucket))];
    out.push((analysis.by.column(), json!(row.group.key)));
    if analysis.by == By::Tenant {
        out.push(("business_name", json!(row.group.name)));
    }
    out.extend([
        ("errors", json!(row.cell.errors)),
        ("unresolved_errors", json!(row.cell.unresolved_errors)),
        ("calls_affected", json!(row.cell.calls_affected)),
        ("error_rate", json!(rounded_rate(row.error_rate))),
        ("previous_errors", json!(row.previous_errors)),
        ("spike", json!(row.spike)),
        ("new_type", json!(row.group.new_type)),
        ("first_seen_at", json!(timestamp(row.cell.first_seen_at))),
        ("last_seen_at", json!(timestamp(row.cell.last_seen_at))),
        ("trend", json!(row.group.trend.name())),
    ]);
    out
}

/// An array of row objects, one per group and bucket of the period,
/// serialized a row at a time (90 days of 1,000 tenants is 90,000 rows).
pub fn json(analysis: &Analysis, top: Option<usize>) -> Result<Vec<u8>> {
    Ok(crate::output::json_array(analysis.rows(top).iter().map(
        |row| {
            Value::Object(
                columns(analysis, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<_, _>>(),
            )
        },
    )))
}

/// The json rows as a frame, column for column.
pub fn frame(analysis: &Analysis, top: Option<usize>) -> Result<DataFrame> {
    let rows = analysis.rows(top);
    let by = analysis.by;
    let text = |name: &str, f: &dyn Fn(&Row) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let int = |name: &str, f: &dyn Fn(&Row) -> Option<i64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let flag = |name: &str, f: &dyn Fn(&Row) -> bool| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut columns = vec![
        text("bucket", &|r| Some(r.bucket.clone())),
        text(by.column(), &|r| Some(r.group.key.clone())),
    ];
    if by == By::Tenant {
        columns.push(text("business_name", &|r| r.group.name.clone()));
    }
    columns.extend([
        int("errors", &|r| Some(r.cell.errors)),
        int("unresolved_errors", &|r| Some(r.cell.unresolved_errors)),
        int("calls_affected", &|r| Some(r.cell.calls_affected)),
        Column::new(
            "error_rate".into(),
            rows.iter()
                .map(|r| rounded_rate(r.error_rate))
                .collect::<Vec<_>>(),
        ),
        int("previous_errors", &|r| r.previous_errors),
        flag("spike", &|r| r.spike),
        flag("new_type", &|r| r.group.new_type),
        text("first_seen_at", &|r| timestamp(r.cell.first_seen_at)),
        text("last_seen_at", &|r| timestamp(r.cell.last_seen_at)),
        text("trend", &|r| Some(r.group.trend.name().to_string())),
    ]);
    debug_assert_eq!(
        columns
            .iter()
            .map(|c| c.name().as_str())
            .collect::<Vec<_>>(),
        header(analysis)
    );
    Ok(DataFrame::new(columns)?)
}

fn header(analysis: &Analysis) -> Vec<&'static str> {
    let mut out = vec!["bucket", analysis.by.column()];
    if analysis.by == By::Tenant {
        out.push("business_name");
    }
    out.extend([
        "errors",
        "unresolved_errors",
        "calls_affected",
        "error_rate",
        "previous_errors",
        "spike",
        "new_type",
        "first_seen_at",
        "last_seen_at",
        "trend",
    ]);
    out
}

/// The same rows as CSV (the contract's CSV rules).
pub fn csv(analysis: &Analysis, top: Option<usize>) -> Result<Vec<u8>> {
    crate::output::csv_bytes(&frame(analysis, top)?, crate::output::MoneyText::Stored)
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{v:+.0}%")).unwrap_or_default()
}

/// The report's first line: what is counted, over which buckets, read from where.
pub fn heading(analysis: &Analysis) -> String {
    let timeline = &analysis.timeline;
    format!(
        "Errors by {} per {}, {}..{}{} ({} bucket(s)); read from {}",
        analysis.by.column(),
        match timeline.bucketing {
            super::Bucketing::Day => "tenant day",
            super::Bucketing::Hour => "hour",
        },
        timeline.from,
        timeline.to,
        match timeline.bucketing {
            super::Bucketing::Hour => format!(" in {}", timeline.zone.name()),
            super::Bucketing::Day => String::new(),
        },
        timeline.period_len(),
        analysis.read_from,
    )
}

/// One line per group shown (the first `top`).
pub fn text_table(analysis: &Analysis, top: usize) -> TextTable {
    let mut header = vec![analysis.by.column()];
    if analysis.by == By::Tenant {
        header.push("tenant");
    }
    header.extend([
        "errors",
        "unresolved",
        "calls affected",
        "error rate",
        "first seen (UTC)",
        "last seen (UTC)",
        "previous",
        "change",
        "trend",
        "spikes",
    ]);
    let mut table = TextTable::new(&header);
    let right = TextCell::number;
    for group in analysis.shown(Some(top)) {
        let mut cells = vec![TextCell::text(&group.key)];
        if let Some(name) = &group.name {
            cells.push(TextCell::text(name));
        }
        cells.extend([
            right(group.total.errors.to_string()),
            right(group.total.unresolved_errors.to_string()),
            right(group.total.calls_affected.to_string()),
            right(
                group
                    .error_rate()
                    .map(|r| format!("{:.2}%", r * 100.0))
                    .unwrap_or_default(),
            ),
            TextCell::text(&seen(group.total.first_seen_at)),
            TextCell::text(&seen(group.total.last_seen_at)),
            right(
                group
                    .previous_errors
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into()),
            ),
            right(percent(group.change_pct())),
            TextCell::text(group.trend.marker()),
            right(match group.spike_count() {
                0 => String::new(),
                n => n.to_string(),
            }),
        ]);
        table.rows.push(cells);
    }
    table
}

/// What follows the table: groups not shown, the spikes (every group's),
/// the new error types, and buckets no source holds.
pub fn after_table(analysis: &Analysis, top: usize) -> String {
    let timeline = &analysis.timeline;
    let mut out = String::new();
    if !analysis.groups.is_empty() && analysis.groups.len() > top {
        out.push_str(&format!(
            "({} more group(s) not shown; --top N shows more)\n",
            analysis.groups.len() - top
        ));
    }
    // Every group's spikes: the largest may sit in a group below --top.
    let spikes = analysis.all_spikes();
    let hidden = spikes.len() - analysis.spikes(Some(top)).len();
    if spikes.is_empty() {
        out.push_str(&format!(
            "\nNo spikes (a bucket above the median of its trailing 7 buckets + {} × spread, with at least {} errors).\n",
            analysis.rule.k, analysis.rule.min_errors
        ));
    } else {
        out.push_str(&format!(
            "\nSpikes ({}{}):\n",
            spikes.len(),
            match hidden {
                0 => String::new(),
                n => format!(", {n} in groups not shown above"),
            }
        ));
        for spike in spikes.iter().take(20) {
            let who = match &spike.group.name {
                Some(name) if !name.is_empty() => {
                    format!("{} ({})", printable(&spike.group.key), printable(name))
                }
                _ => printable(&spike.group.key).into_owned(),
            };
            out.push_str(&format!(
                "  {}  {who}: {} errors, usually {:.0} (spread {:.1})\n",
                timeline.label(spike.bucket),
                spike.errors,
                spike.baseline.median,
                spike.baseline.spread
            ));
        }
        if spikes.len() > 20 {
            out.push_str(&format!("  … and {} more\n", spikes.len() - 20));
        }
    }
    if !analysis.new_types.is_empty() {
        out.push_str("\nNew error types (none in the previous period):\n");
        for t in &analysis.new_types {
            out.push_str(&format!(
                "  {}: {} errors, first seen {}\n",
                printable(&t.error_type),
                t.errors,
                seen(t.first_seen_at)
            ));
        }
    }
    let missing_hours = match timeline.bucketing {
        super::Bucketing::Hour => analysis.missing_buckets(),
        super::Bucketing::Day => Vec::new(),
    };
    if let (Some(first), Some(last)) = (missing_hours.first(), missing_hours.last()) {
        out.push_str(&format!(
            "\nNot read: {} hour(s) from {first} to {last} lie outside what the source holds; their errors are unknown, not 0, and figures that need them say ? (pass a --source that holds them)\n",
            missing_hours.len()
        ));
    }
    if !analysis.missing_days.is_empty() {
        out.push_str(&format!(
            "\nNot read (no run rolled them up and no source holds them): {}; run `callrollup run` for them, or pass a --source that holds them. Figures that need them say ?\n",
            analysis
                .missing_days
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// For people: the heading, one line per group, the spikes, the new
/// error types.
pub fn table(analysis: &Analysis, top: usize) -> Vec<u8> {
    let mut out = format!("{}\n", heading(analysis));
    if analysis.groups.is_empty() {
        out.push_str("No errors in the period.\n");
    } else {
        out.push_str(&format!("{}\n", text_table(analysis, top).terminal()));
    }
    out.push_str(&after_table(analysis, top));
    out.into_bytes()
}

/// A UTC moment (microseconds) to the minute, or empty.
fn seen(t: Option<i64>) -> String {
    t.map(|t| {
        DateTime::from_timestamp_micros(t)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_default()
}
