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
    let cell = row.cell;
    out.extend([
        ("read", json!(cell.is_some())),
        ("errors", json!(cell.map(|c| c.errors))),
        (
            "unresolved_errors",
            json!(cell.map(|c| c.unresolved_errors)),
        ),
        ("calls_affected", json!(cell.map(|c| c.calls_affected))),
    ]);
    // Only tenants have calls to rate errors against: the column is
    // there for tenants and absent for error types and severities.
    if analysis.by == By::Tenant {
        out.push(("error_rate", json!(rounded_rate(row.error_rate))));
    }
    out.extend([
        ("previous_errors", json!(row.previous_errors)),
        ("spike", json!(row.spike)),
        ("new_type", json!(row.group.new_type)),
        (
            "first_seen_at",
            json!(timestamp(cell.and_then(|c| c.first_seen_at))),
        ),
        (
            "last_seen_at",
            json!(timestamp(cell.and_then(|c| c.last_seen_at))),
        ),
        ("trend", json!(row.group.trend.name())),
    ]);
    out
}

/// The JSON document's fields before its rows: what a script needs to
/// read them (the format's version, the buckets, which were not read).
fn json_head(analysis: &Analysis) -> Map<String, Value> {
    let timeline = &analysis.timeline;
    let mut head = Map::new();
    head.insert(
        "format_version".into(),
        json!(crate::output::JSON_FORMAT_VERSION),
    );
    head.insert("by".into(), json!(analysis.by));
    head.insert(
        "bucket".into(),
        json!(match timeline.bucketing {
            super::Bucketing::Day => "day",
            super::Bucketing::Hour => "hour",
        }),
    );
    head.insert("from".into(), json!(timeline.from));
    head.insert("to".into(), json!(timeline.to));
    head.insert("timezone".into(), json!(timeline.zone.name()));
    head.insert("unread_buckets".into(), json!(analysis.missing_buckets()));
    head.insert("spike_rule".into(), json!(rule_text(analysis)));
    head
}

/// An object: the document's head (`json_head`), then `rows`, one
/// object per group and bucket of the period, serialized a row at a time
/// (90 days of 1,000 tenants is 90,000 rows).
pub fn json(analysis: &Analysis, top: Option<usize>) -> Result<Vec<u8>> {
    let head = serde_json::to_string_pretty(&Value::Object(json_head(analysis)))
        .map_err(|e| crate::error::Error::RunFailed(format!("cannot render JSON: {e}")))?;
    // `{ …head…, "rows": [ … ] }`: the head without its closing brace.
    let mut out = head
        .strip_suffix('}')
        .unwrap_or(&head)
        .trim_end()
        .to_string()
        .into_bytes();
    out.extend_from_slice(b",\n  \"rows\": ");
    out.extend(crate::output::json_array(analysis.rows(top).iter().map(
        |row| {
            Value::Object(
                columns(analysis, row)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<_, _>>(),
            )
        },
    )));
    out.pop();
    out.extend_from_slice(b"\n}\n");
    Ok(out)
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
    let flag = |name: &str, f: &dyn Fn(&Row) -> Option<bool>| {
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
        flag("read", &|r| Some(r.cell.is_some())),
        int("errors", &|r| r.cell.map(|c| c.errors)),
        int("unresolved_errors", &|r| {
            r.cell.map(|c| c.unresolved_errors)
        }),
        int("calls_affected", &|r| r.cell.map(|c| c.calls_affected)),
    ]);
    if by == By::Tenant {
        columns.push(Column::new(
            "error_rate".into(),
            rows.iter()
                .map(|r| rounded_rate(r.error_rate))
                .collect::<Vec<_>>(),
        ));
    }
    columns.extend([
        int("previous_errors", &|r| r.previous_errors),
        flag("spike", &|r| r.spike),
        flag("new_type", &|r| Some(r.group.new_type)),
        text("first_seen_at", &|r| {
            timestamp(r.cell.and_then(|c| c.first_seen_at))
        }),
        text("last_seen_at", &|r| {
            timestamp(r.cell.and_then(|c| c.last_seen_at))
        }),
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
    out.extend(["read", "errors", "unresolved_errors", "calls_affected"]);
    if analysis.by == By::Tenant {
        out.push("error_rate");
    }
    out.extend([
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

/// What an analysis without groups says: no errors, where everything was
/// read; otherwise no errors in what was read, and how much was not.
pub fn no_errors_text(analysis: &Analysis) -> String {
    let start = analysis.timeline.period_start;
    let unread = analysis.missing[start..].iter().filter(|m| **m).count();
    match unread {
        0 => "No errors in the period.".to_string(),
        n => format!(
            "No errors in the {} bucket(s) read; {n} not read (unknown, not 0).",
            analysis.timeline.period_len() - n
        ),
    }
}

/// The spike rule as applied, for people.
pub fn rule_text(analysis: &Analysis) -> String {
    let rule = &analysis.rule;
    let baseline = match analysis.timeline.bucketing {
        super::Bucketing::Day => format!("the {} days before it", super::BASELINE_BUCKETS),
        super::Bucketing::Hour => format!(
            "the same hour on the {} days before",
            super::BASELINE_BUCKETS
        ),
    };
    format!(
        "a spike is a bucket with more errors than the median of {baseline} + {} × spread, at least {} errors more than that median and at least {} times it",
        rule.k,
        rule.min_errors,
        super::SPIKE_MIN_RATIO
    )
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

/// How much of the period was read: counts over part of it are a lower
/// bound (`≥12`), over none of it unknown (`?`), never 0.
fn count_text(analysis: &Analysis, value: i64) -> String {
    let start = analysis.timeline.period_start;
    let read = analysis.missing[start..].iter().filter(|m| !**m).count();
    // Read buckets only: what an unread one held counts for nothing.
    match read {
        0 => "?".into(),
        n if n < analysis.timeline.period_len() => format!("≥{value}"),
        _ => value.to_string(),
    }
}

/// The page of a tenant (`serve`), for a tenant group.
fn tenant_link(analysis: &Analysis, key: &str) -> Option<String> {
    (analysis.by == By::Tenant)
        .then(|| crate::output::tenant_page(key, analysis.timeline.from, analysis.timeline.to))
        .flatten()
}

/// One line per group shown (the first `top`), then a TOTAL line of every
/// group. Times are in the view's zone (UTC for day buckets, the
/// `--timezone` of hour buckets).
pub fn text_table(analysis: &Analysis, top: usize) -> TextTable {
    let zone = analysis.timeline.zone;
    let first_seen = format!("first seen ({})", zone.name());
    let last_seen = format!("last seen ({})", zone.name());
    let tenants = analysis.by == By::Tenant;
    let mut header = vec![analysis.by.column()];
    if tenants {
        header.push("tenant");
    }
    header.extend(["errors", "unresolved", "calls affected"]);
    if tenants {
        header.push("error rate");
    }
    header.extend([
        first_seen.as_str(),
        last_seen.as_str(),
        "previous",
        "change",
        "trend",
        "spikes",
    ]);
    let mut table = TextTable::new(&header);
    let right = TextCell::number;
    let count = |v: i64| right(count_text(analysis, v));
    // Unknown when nothing was read; empty for a group without calls
    // (the platform's errors).
    let anything_read = analysis.period_read();
    let rate_text = |cell: &super::Cell| match (anything_read, super::rate(cell)) {
        (false, _) => "?".to_string(),
        (true, Some(r)) => format!("{:.2}%", r * 100.0),
        (true, None) => String::new(),
    };
    for group in analysis.shown(Some(top)) {
        let mut cells = vec![TextCell::text(&group.key).linked(tenant_link(analysis, &group.key))];
        if let Some(name) = &group.name {
            cells.push(TextCell::text(name).linked(tenant_link(analysis, &group.key)));
        }
        cells.extend([
            count(group.total.errors),
            count(group.total.unresolved_errors),
            count(group.total.calls_affected),
        ]);
        if tenants {
            cells.push(right(rate_text(&group.total)));
        }
        cells.extend([
            TextCell::text(&seen(group.total.first_seen_at, zone)),
            TextCell::text(&seen(group.total.last_seen_at, zone)),
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
    // Every group, shown or not.
    let mut all = super::Cell::default();
    let mut previous = Some(0i64);
    for group in &analysis.groups {
        all.add(&group.total);
        previous = previous.zip(group.previous_errors).map(|(a, b)| a + b);
    }
    let mut total = vec![TextCell::text("TOTAL")];
    if tenants {
        total.push(TextCell::text(""));
    }
    total.extend([
        count(all.errors),
        count(all.unresolved_errors),
        count(all.calls_affected),
    ]);
    if tenants {
        total.push(right(rate_text(&all)));
    }
    let change = previous
        .filter(|p| *p > 0 && analysis.groups.iter().all(|g| g.period_complete))
        .map(|p| (all.errors - p) as f64 * 100.0 / p as f64);
    total.extend([
        TextCell::text(&seen(all.first_seen_at, zone)),
        TextCell::text(&seen(all.last_seen_at, zone)),
        right(
            previous
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
        ),
        right(percent(change)),
        TextCell::text(""),
        right(match analysis.all_spikes().len() {
            0 => String::new(),
            n => n.to_string(),
        }),
    ]);
    table.push_total(total);
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
    if !analysis.period_read() {
        out.push_str("\nNo spike could be looked for: nothing of the period could be read.\n");
    } else if spikes.is_empty() {
        out.push_str(&format!("\nNo spikes ({}).\n", rule_text(analysis)));
    } else {
        out.push_str(&format!(
            "\nSpikes ({}{}), in time order ({}):\n",
            spikes.len(),
            match hidden {
                0 => String::new(),
                n => format!(", {n} in groups not shown above"),
            },
            rule_text(analysis)
        ));
        // The 20 strongest, listed in time order.
        let mut listed: Vec<&super::Spike> = spikes.iter().take(20).collect();
        listed.sort_by(|a, b| a.bucket.cmp(&b.bucket).then(a.group.key.cmp(&b.group.key)));
        for spike in listed {
            let who = match &spike.group.name {
                Some(name) if !name.is_empty() => {
                    format!("{} ({})", printable(&spike.group.key), printable(name))
                }
                _ => printable(&spike.group.key).into_owned(),
            };
            out.push_str(&format!(
                "  {}  {who}: {} errors, usually {:.0} (spread {:.1}; {:.1} spreads above)\n",
                timeline.label(spike.bucket),
                spike.errors,
                spike.baseline.median,
                spike.baseline.spread,
                spike.strength()
            ));
        }
        if spikes.len() > 20 {
            out.push_str(&format!(
                "  … and {} weaker ones (--format csv lists every bucket)\n",
                spikes.len() - 20
            ));
        }
    }
    if !analysis.new_types.is_empty() {
        out.push_str("\nNew error types (none in the previous period):\n");
        for t in &analysis.new_types {
            out.push_str(&format!(
                "  {}: {} errors, first seen {}\n",
                printable(&t.error_type),
                t.errors,
                seen(t.first_seen_at, timeline.zone)
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
        out.push_str(&format!("{}\n", no_errors_text(analysis)));
    } else {
        out.push_str(&format!("{}\n", text_table(analysis, top).terminal()));
    }
    out.push_str(&after_table(analysis, top));
    out.into_bytes()
}

/// A moment (Unix microseconds) on `zone`'s clock, to the minute, or empty.
fn seen(t: Option<i64>, zone: chrono_tz::Tz) -> String {
    t.map(|t| {
        DateTime::from_timestamp_micros(t)
            .unwrap_or_default()
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_default()
}
