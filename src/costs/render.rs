//! A cost report as a terminal table, CSV, JSON, Parquet or an Excel
//! workbook. Machine formats keep 6 decimals (JSON as decimal strings);
//! the table and the pages show cents, rounded half away from zero, and
//! state the rounding difference between the rounded lines and the rounded
//! total; the workbook holds exact figures in formats that show cents.

use polars::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{cents, change_pct, ratio, rounding_difference, CostRow, Figures, GroupBy, Report};
use crate::error::{Error, Result};
use crate::output::{decimal_text, guard_formula, Cell as Value_, TextCell, TextTable};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
    Xlsx,
}

fn money(v: Option<Decimal>) -> Value_ {
    Value_::money(v)
}

/// The row's columns, named as the summary tables name them.
fn columns(report: &Report, row: &CostRow) -> Vec<(&'static str, Value_)> {
    let c = &row.current;
    let p = row.previous.as_ref();
    let mut out = vec![
        ("tenant_id", Value_::Text(row.key.tenant_id.clone())),
        (
            "business_name",
            Value_::Text(match row.key.tenant_id {
                None => Some(row.display_name()),
                Some(_) => row.business_name.clone(),
            }),
        ),
        ("timezone", Value_::Text(row.timezone.clone())),
    ];
    match report.by {
        GroupBy::Day => out.push(("day", Value_::Text(row.key.day.map(|d| d.to_string())))),
        GroupBy::Month => {
            // A month cut by the period says which of its days it holds.
            let days = row
                .key
                .month
                .as_deref()
                .and_then(|m| super::month_days(&report.period, m));
            out.extend([
                ("month", Value_::Text(row.key.month.clone())),
                ("first_day", Value_::Text(days.map(|d| d.0.to_string()))),
                ("last_day", Value_::Text(days.map(|d| d.1.to_string()))),
            ]);
        }
        GroupBy::Outcome => {
            out.push(("status", Value_::Text(row.key.status.clone())));
            out.push(("outcome", Value_::Text(row.key.outcome.clone())));
        }
        GroupBy::Tenant => {}
    }
    let components = report.by != GroupBy::Outcome;
    out.extend([
        ("calls", Value_::Int(Some(c.calls))),
        ("completed_calls", Value_::Int(Some(c.completed_calls))),
        ("booked_calls", Value_::Int(Some(c.booked_calls))),
        ("billable_seconds", Value_::Int(Some(c.billable_seconds))),
        ("billable_minutes", money(Some(c.billable_minutes()))),
    ]);
    if components {
        out.extend([
            ("stt_cost_usd", money(c.stt_cost_usd)),
            ("llm_cost_usd", money(c.llm_cost_usd)),
            ("tts_cost_usd", money(c.tts_cost_usd)),
        ]);
    }
    out.extend([
        ("total_cost_usd", money(Some(c.total_cost_usd))),
        ("cost_per_call_usd", money(ratio(c.total_cost_usd, c.calls))),
        (
            "cost_per_completed_call_usd",
            money(ratio(c.total_cost_usd, c.completed_calls)),
        ),
        (
            "cost_per_booking_usd",
            money(ratio(c.total_cost_usd, c.booked_calls)),
        ),
        (
            "share_of_total_pct",
            Value_::Decimal(report.share_of_total_pct(row), 2),
        ),
        ("previous_calls", Value_::Int(p.map(|p| p.calls))),
        (
            "previous_completed_calls",
            Value_::Int(p.map(|p| p.completed_calls)),
        ),
        (
            "previous_billable_seconds",
            Value_::Int(p.map(|p| p.billable_seconds)),
        ),
    ]);
    if components {
        out.extend([
            (
                "previous_stt_cost_usd",
                money(p.and_then(|p| p.stt_cost_usd)),
            ),
            (
                "previous_llm_cost_usd",
                money(p.and_then(|p| p.llm_cost_usd)),
            ),
            (
                "previous_tts_cost_usd",
                money(p.and_then(|p| p.tts_cost_usd)),
            ),
        ]);
    }
    // A change against days no run covered would be a change against 0:
    // none is shown (the row says why in `comparable`).
    let shown = p.filter(|_| row.comparable);
    let previous_total = p.map(|p| p.total_cost_usd);
    let shown_total = shown.map(|p| p.total_cost_usd);
    let shown_calls = shown.map(|p| Decimal::from(p.calls));
    out.extend([
        ("previous_total_cost_usd", money(previous_total)),
        (
            "change_calls",
            Value_::Int(shown.map(|p| c.calls - p.calls)),
        ),
        (
            "change_calls_pct",
            Value_::Decimal(change_pct(Decimal::from(c.calls), shown_calls), 2),
        ),
        (
            "change_total_cost_usd",
            money(shown_total.map(|p| c.total_cost_usd - p)),
        ),
        (
            "change_total_cost_pct",
            Value_::Decimal(change_pct(c.total_cost_usd, shown_total), 2),
        ),
        ("comparable", Value_::Bool(row.comparable)),
        ("zone_unknown", Value_::Bool(row.zone_unknown)),
    ]);
    if components {
        out.extend([
            (
                "calls_missing_cost",
                Value_::Int(Some(c.calls_missing_cost)),
            ),
            (
                "cost_mismatch_calls",
                Value_::Int(Some(c.cost_mismatch_calls)),
            ),
        ]);
    }
    out
}

/// The columns `--sort` accepts for `report`'s grouping.
pub fn sort_columns(report: &Report) -> Vec<&'static str> {
    report
        .rows
        .last()
        .map(|row| columns(report, row).into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default()
}

/// Refuses a `--sort` column the report does not have.
pub fn check_sort(report: &Report, column: &str) -> Result<()> {
    let allowed = sort_columns(report);
    if allowed.contains(&column) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--sort {column:?} is not a column of `costs --by {}`; use one of: {}",
        by_name(report.by),
        allowed.join(", ")
    )))
}

fn by_name(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Tenant => "tenant",
        GroupBy::Day => "day",
        GroupBy::Outcome => "outcome",
        GroupBy::Month => "month",
    }
}

/// How one cell ranks under `--sort`: numbers largest first, text A to Z,
/// empty cells last.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Number(std::cmp::Reverse<Decimal>),
    Text(String),
    Empty,
}

fn rank(value: Value_) -> Rank {
    match value {
        Value_::Int(Some(v)) => Rank::Number(std::cmp::Reverse(Decimal::from(v))),
        Value_::Decimal(Some(v), _) => Rank::Number(std::cmp::Reverse(v)),
        Value_::Bool(v) => Rank::Number(std::cmp::Reverse(Decimal::from(u8::from(v)))),
        Value_::Text(Some(v)) => Rank::Text(v),
        _ => Rank::Empty,
    }
}

/// The rows shown, in order: ranked by `--sort` (or, with `--top` alone,
/// by total cost), the first `--top`, then the TOTAL of every row.
pub fn visible_rows(report: &Report) -> Vec<&CostRow> {
    let total = report.total();
    let mut lines: Vec<&CostRow> = report
        .rows
        .iter()
        .filter(|r| r.key.tenant_id.is_some())
        .collect();
    if let Some(column) = sort_column(report) {
        let key = |row: &CostRow| {
            columns(report, row)
                .into_iter()
                .find(|(n, _)| *n == column)
                .map(|(_, v)| rank(v))
                .unwrap_or(Rank::Empty)
        };
        // Stable: ties keep the key order.
        lines.sort_by_cached_key(|r| key(r));
    } else {
        // Days and months in date order, each date's rows by money.
        lines.sort_by(|a, b| {
            (a.key.day, &a.key.month)
                .cmp(&(b.key.day, &b.key.month))
                .then(b.current.total_cost_usd.cmp(&a.current.total_cost_usd))
        });
    }
    if let Some(top) = report.view.top {
        lines.truncate(top);
    }
    lines.extend(total);
    lines
}

/// How many rows `--top` left out.
fn hidden_rows(report: &Report) -> usize {
    let all = report
        .rows
        .iter()
        .filter(|r| r.key.tenant_id.is_some())
        .count();
    report.view.top.map_or(0, |top| all.saturating_sub(top))
}

/// The report as a frame: money as Decimal(38,6), percentages as
/// Decimal(38,2), counts as Int64, text as String.
pub fn frame(report: &Report) -> Result<DataFrame> {
    let table: Vec<Vec<(&'static str, Value_)>> = visible_rows(report)
        .into_iter()
        .map(|r| columns(report, r))
        .collect();
    crate::output::frame_of(&table)
}

/// CSV as the contract says: header, RFC 4180, UTF-8, the formula guard
/// on every text cell, money with 6 decimals, numbers untouched.
pub fn csv(report: &Report) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_csv(report, &mut out)?;
    Ok(out)
}

/// Rows of a report made into one frame at a time when written as CSV.
const CSV_ROWS_AT_ONCE: usize = 2_000;

/// `csv`, written to `out` as it is made (`serve` streams it): the rows go
/// through a frame `CSV_ROWS_AT_ONCE` at a time, so the memory is the
/// report's and one slice's (the whole frame of a 40,000-line report and
/// its cells took about 100 MB), and the bytes are the whole frame's.
pub fn write_csv(report: &Report, out: &mut dyn std::io::Write) -> Result<()> {
    let rows = visible_rows(report);
    if rows.len() <= CSV_ROWS_AT_ONCE {
        return crate::output::write_csv(out, &frame(report)?, crate::output::MoneyText::Stored);
    }
    for (i, slice) in rows.chunks(CSV_ROWS_AT_ONCE).enumerate() {
        let table: Vec<Vec<(&'static str, Value_)>> =
            slice.iter().map(|r| columns(report, r)).collect();
        let mut bytes = Vec::new();
        crate::output::write_csv(
            &mut bytes,
            &crate::output::frame_of(&table)?,
            crate::output::MoneyText::Stored,
        )?;
        // Every slice is written with the header; the first keeps it (a
        // header is one line: the names are plain column names).
        let body = if i == 0 {
            &bytes[..]
        } else {
            let end = bytes.iter().position(|b| *b == b'\n').map_or(0, |n| n + 1);
            &bytes[end..]
        };
        out.write_all(body)
            .map_err(|e| Error::io("cannot write the report", e))?;
    }
    Ok(())
}

pub fn parquet(report: &Report) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out).finish(&mut frame(report)?)?;
    Ok(out)
}

/// Reads one money column of a row's figures.
type MoneyOf = fn(&Figures) -> Option<Decimal>;

/// The rounding statement of each money column whose rounded lines do not
/// add up to its rounded total (the total column always).
fn rounding(report: &Report) -> Vec<(&'static str, Decimal, Decimal, Decimal)> {
    let mut out = Vec::new();
    let columns: [(&'static str, MoneyOf); 4] = [
        ("total_cost_usd", |f| Some(f.total_cost_usd)),
        ("stt_cost_usd", |f| f.stt_cost_usd),
        ("llm_cost_usd", |f| f.llm_cost_usd),
        ("tts_cost_usd", |f| f.tts_cost_usd),
    ];
    for (name, column) in columns {
        if let Some((lines, total)) = rounding_difference(report, column) {
            if name == "total_cost_usd" || lines != total {
                let exact = report
                    .total()
                    .and_then(|t| column(&t.current))
                    .unwrap_or_default();
                out.push((name, lines, total, exact));
            }
        }
    }
    out
}

pub fn json(report: &Report) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_json(report, &mut out)?;
    Ok(out)
}

/// `json`, written to `out` a row at a time: the rows are never held as
/// one document (a 200-day report by day held hundreds of MB of values,
/// four at once took `serve` past its memory). The bytes are those of
/// `serde_json::to_vec_pretty` of the whole document.
pub fn write_json(report: &Report, out: &mut dyn std::io::Write) -> Result<()> {
    let rounding: Vec<Value> = rounding(report)
        .into_iter()
        .map(|(column, lines, total, exact)| {
            json!({
                "column": column,
                "rounded_lines_usd": decimal_text(lines, 2),
                "rounded_total_usd": decimal_text(total, 2),
                "difference_usd": decimal_text(total - lines, 2),
                "exact_total_usd": crate::money::format(exact),
            })
        })
        .collect();
    let outcome_totals: Vec<Value> = outcome_total_rows(report)
        .into_iter()
        .map(crate::output::json_object)
        .collect();
    let document = json!({
        "format_version": crate::output::JSON_FORMAT_VERSION,
        "period": {"from": report.period.from, "to": report.period.to},
        "previous_period": {"from": report.previous_period.from, "to": report.previous_period.to},
        "previous_period_complete": report.previous_complete(),
        "by": report.by,
        "read_from": report.read_from,
        "sort": sort_column(report),
        "top": report.view.top,
        "rows_left_out": hidden_rows(report),
        // Written in its place by `Document`, a row at a time.
        "rows": Value::Null,
        "outcome_totals": (!outcome_totals.is_empty()).then_some(outcome_totals),
        "coverage": {
            "complete": report.coverage.is_complete(),
            "missing_days": report.coverage.missing_days,
            "partial_days": report.coverage.partial_days,
            "runs": report.coverage.runs,
            "source": report.coverage.source,
            "days": report.period.days(),
            "days_covered": report.coverage.days_covered(&report.period),
        },
        "previous_coverage": {
            "complete": report.previous_complete(),
            "missing_days": report.previous_coverage.missing_days,
            "days": report.previous_period.days(),
            "days_covered": report.previous_coverage.days_covered(&report.previous_period),
        },
        "data_quality": {
            "calls_missing_cost": report.totals.calls_missing_cost,
            "cost_mismatch_calls": report.totals.cost_mismatch_calls,
            "components_cost_usd": report.totals.components_usd().map(crate::money::format),
            "total_cost_usd": crate::money::format(report.totals.total_cost_usd),
            "findings": "data_quality_findings kinds missing_cost and cost_mismatch",
        },
        "notes": comparison_notes(report),
        "restatements": report.restated.map(|r| json!({
            "tenant_days": r.tenant_days,
            "restatements": r.restatements,
            "change_total_cost_usd": crate::money::format(r.change_total_cost_usd),
        })),
        "reconciliation": report.reconciliation,
        "rounding": rounding,
    });
    let Value::Object(fields) = document else {
        unreachable!("a JSON object");
    };
    let document = Document {
        fields,
        rows: LazyRows {
            report,
            rows: visible_rows(report),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &document)
        .map_err(|e| Error::RunFailed(format!("cannot write the report as JSON: {e}")))?;
    out.write_all(b"\n")
        .map_err(|e| Error::io("cannot write the report", e))
}

/// The JSON document with its `rows` serialized in their place, one at a
/// time, by serde's own pretty printer.
struct Document<'a> {
    fields: serde_json::Map<String, Value>,
    rows: LazyRows<'a>,
}

impl serde::Serialize for Document<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            if name == "rows" {
                map.serialize_entry(name, &self.rows)?;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// A report's rows, each made a JSON object only as it is written.
struct LazyRows<'a> {
    report: &'a Report,
    rows: Vec<&'a CostRow>,
}

impl serde::Serialize for LazyRows<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.rows
                .iter()
                .map(|row| crate::output::json_object(columns(self.report, row))),
        )
    }
}

/// Cents for people: `1234.57`, or empty (`money::text`'s rule).
fn cents_text(v: Option<Decimal>) -> String {
    v.map(crate::money::cents_text).unwrap_or_default()
}

/// Decimals a cost per call is shown with in the table and the workbook:
/// cents cannot tell apart tenants whose calls cost 0.0123 and 0.0149.
pub const PER_CALL_DECIMALS: u32 = 4;

fn per_call_text(v: Option<Decimal>) -> String {
    v.map(|v| crate::money::text(v, PER_CALL_DECIMALS))
        .unwrap_or_default()
}

/// The period's name for people: `2026-12`, or `2026-12-01..2026-12-15`.
fn period_label(period: &super::Period) -> String {
    if period.is_month {
        period.from.format("%Y-%m").to_string()
    } else {
        format!("{}..{}", period.from, period.to)
    }
}

/// The `--sort` column in effect: tenants and outcome groups rank by
/// total cost, largest first, unless `--sort` says otherwise; days and
/// months stay in date order (unless `--sort` or `--top` ranks them).
fn sort_column(report: &Report) -> Option<&str> {
    let by_money = matches!(report.by, GroupBy::Tenant | GroupBy::Outcome);
    report
        .view
        .sort
        .as_deref()
        .or((report.view.top.is_some() || by_money).then_some("total_cost_usd"))
}

/// The lines `--top` left out, added up as one "other" line: the
/// people's formats (table, page, workbook) show it, so the lines shown
/// add up to the TOTAL.
fn other_row(report: &Report, visible: &[&CostRow]) -> Option<CostRow> {
    let shown: std::collections::HashSet<*const CostRow> =
        visible.iter().map(|r| *r as *const CostRow).collect();
    let hidden: Vec<&CostRow> = report
        .rows
        .iter()
        .filter(|r| r.key.tenant_id.is_some())
        .filter(|r| !shown.contains(&(*r as *const CostRow)))
        .collect();
    if hidden.is_empty() {
        return None;
    }
    let mut current = Figures::default();
    let mut previous: Option<Figures> = None;
    for row in &hidden {
        current.add(&row.current);
        if let Some(p) = &row.previous {
            previous.get_or_insert_with(Figures::default).add(p);
        }
    }
    Some(CostRow {
        key: super::RowKey::default(),
        business_name: Some(format!("Other ({} rows)", hidden.len())),
        timezone: None,
        current,
        previous,
        comparable: hidden.iter().all(|r| r.comparable),
        zone_unknown: hidden.iter().any(|r| r.zone_unknown),
    })
}

/// The rows people see, in order: the lines shown, the "other" line for
/// those `--top` left out, then the TOTAL.
pub fn people_rows(report: &Report) -> Vec<std::borrow::Cow<'_, CostRow>> {
    use std::borrow::Cow;
    let visible = visible_rows(report);
    let other = other_row(report, &visible);
    let mut rows: Vec<Cow<CostRow>> = visible
        .into_iter()
        .filter(|r| !r.is_total())
        .map(Cow::Borrowed)
        .collect();
    rows.extend(other.map(Cow::Owned));
    rows.extend(report.total().map(Cow::Borrowed));
    rows
}

/// What the comparison with the previous period can and cannot say: an
/// empty period, days of either period no run covered (no change is
/// shown against them: a missing day is not a 0).
pub fn comparison_notes(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let (period, previous) = (&report.period, &report.previous_period);
    let covered = report.coverage.days_covered(period);
    let lines = report.rows.iter().any(|r| r.key.tenant_id.is_some());
    let where_rows = match report.by {
        GroupBy::Day | GroupBy::Month => " where a row compares with a day not covered",
        GroupBy::Tenant | GroupBy::Outcome => "",
    };
    if !lines {
        if covered == 0 {
            out.push(format!(
                "no rolled-up days in {}: run `callrollup run --from {} --to {}` to roll them up, or point --reports / --target-url at the summaries that hold them; no change shown",
                period_label(period),
                period.from,
                period.to
            ));
        } else {
            out.push(format!(
                "no figures in {} for the tenants asked for; no change shown",
                period_label(period)
            ));
        }
        return out;
    }
    if covered < period.days() {
        out.push(format!(
            "period incomplete: {covered} of {} days covered; no change shown{where_rows}",
            period.days()
        ));
    }
    if !report.previous_complete() {
        out.push(format!(
            "previous period {}..{} incomplete: {} of {} days covered; no change shown{where_rows}",
            previous.from,
            previous.to,
            report.previous_coverage.days_covered(previous),
            previous.days()
        ));
    }
    out
}

/// The calls with missing or mismatched costs behind the total.
pub fn data_quality_line(report: &Report) -> String {
    let t = &report.totals;
    let components = t
        .components_usd()
        .map(|c| decimal_text(cents(c), 2))
        .unwrap_or_else(|| "none".into());
    let total = decimal_text(cents(t.total_cost_usd), 2);
    if t.calls_missing_cost == 0 && t.cost_mismatch_calls == 0 {
        return format!(
            "data quality: no call with a missing or mismatched cost component (STT + LLM + TTS = {components}, total {total})"
        );
    }
    format!(
        "data quality: behind the total, {} call(s) had a missing cost component (calls_missing_cost) and {} call(s) had components that do not add up to their total (cost_mismatch_calls): STT + LLM + TTS = {components} vs total {total}, which counts each call's recorded total_cost_usd; see data_quality_findings, kinds missing_cost and cost_mismatch, for the tenant days",
        t.calls_missing_cost, t.cost_mismatch_calls
    )
}

/// Which rows are shown, when `--sort` or `--top` chose them.
pub fn view_line(report: &Report) -> Option<String> {
    if report.view.sort.is_none() && report.view.top.is_none() {
        return None;
    }
    let column = sort_column(report)?;
    let all = report
        .rows
        .iter()
        .filter(|r| r.key.tenant_id.is_some())
        .count();
    Some(match report.view.top {
        Some(top) if top < all => format!(
            "rows: the top {top} of {all} by {column}; the other {} are added up in one line (the CSV and JSON leave them out), the TOTAL is of all {all}",
            all - top
        ),
        _ => format!("rows: sorted by {column}"),
    })
}

/// Lines after a table or on the workbook's about sheet.
pub fn notes(report: &Report) -> Vec<String> {
    let previous = report.previous_period;
    let mut out = vec![
        format!(
            "period {}..{} ({} days), compared with {}..{}; read from {}",
            report.period.from,
            report.period.to,
            report.period.days(),
            previous.from,
            previous.to,
            report.read_from
        ),
        format!("money in USD, shown in cents rounded half away from zero (costs per call to {PER_CALL_DECIMALS} decimals); every sum is exact before rounding"),
    ];
    if report.by == GroupBy::Outcome {
        out.push("per booking: a row's cost / its booked calls (on a booked row the cost of one booked call; on the TOTAL the cost of every call per booking); the outcomes across tenants follow the table".into());
    }
    out.extend(zone_unknown_line(report));
    out.extend(comparison_notes(report));
    out.extend(view_line(report));
    // The columns the table shows: the components with --wide only.
    let shown = |column: &str| column == "total_cost_usd" || report.view.wide;
    for (column, lines, total, exact) in rounding(report).into_iter().filter(|(c, ..)| shown(c)) {
        out.push(format!(
            "rounding: the {column} lines add up to {}, the rounded total is {} (difference {}; exact total {})",
            decimal_text(lines, 2),
            decimal_text(total, 2),
            decimal_text(total - lines, 2),
            crate::money::format(exact)
        ));
    }
    out.push(data_quality_line(report));
    out.extend(restated_line(report));
    let problems = report.coverage.problems();
    if problems.is_empty() {
        out.push(
            if report.coverage.runs.is_empty() && report.coverage.source != "rollup_runs" {
                // Report files: a folder per day is all there is to go by.
                format!(
                    "coverage: every day covered, by its report folder ({})",
                    report.coverage.source
                )
            } else {
                format!(
                    "coverage: every day covered by a succeeded run ({})",
                    report.coverage.source
                )
            },
        );
    }
    for p in problems {
        out.push(format!("coverage: {p}"));
    }
    if let Some(r) = &report.reconciliation {
        out.push(reconciliation_line(r));
    }
    out
}

/// Whether runs changed the period's figures after first writing them:
/// only said when they did (report files carry no history).
pub fn restated_line(report: &Report) -> Option<String> {
    let r = report.restated.filter(|r| r.tenant_days > 0)?;
    Some(format!(
        "restated: {} tenant day(s) of the period changed after their first run ({} restatement(s)), total_cost_usd by {} USD in all; `callrollup changes --from {} --to {}` (with the same --tenant) lists them",
        r.tenant_days,
        r.restatements,
        crate::changes::render::signed(r.change_total_cost_usd),
        report.period.from,
        report.period.to
    ))
}

pub fn reconciliation_line(r: &super::Reconciliation) -> String {
    if r.differences.is_empty() {
        return format!(
            "reconciliation: the summary equals the source for all {} tenants, to the micro-dollar",
            r.tenants_checked
        );
    }
    let each: Vec<String> = r
        .differences
        .iter()
        .map(|d| {
            format!(
                "{} (summary {} vs source {}, difference {}; days {})",
                d.tenant_id,
                d.summary_total_cost_usd,
                d.source_total_cost_usd,
                d.difference_usd,
                d.days
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    format!(
        "reconciliation: {} of {} tenants differ from the source: {}",
        r.differences.len(),
        r.tenants_checked,
        each.join("; ")
    )
}

/// Marks a tenant billed on UTC days (its zone missing or unknown).
pub const ZONE_UNKNOWN_MARK: &str = "†";

/// The line that explains `ZONE_UNKNOWN_MARK`, when a row carries it.
pub fn zone_unknown_line(report: &Report) -> Option<String> {
    people_rows(report).iter().any(|r| r.zone_unknown).then(|| {
        format!(
            "{ZONE_UNKNOWN_MARK} zone missing or unknown: the tenant's calls were billed on UTC days (zone_unknown; data_quality_findings kind invalid_timezone); fix its time zone and re-run those days"
        )
    })
}

/// The page of a tenant's costs over the report's period (`serve`).
fn tenant_link(report: &Report, row: &CostRow) -> Option<String> {
    crate::output::tenant_page(
        row.key.tenant_id.as_deref()?,
        report.period.from,
        report.period.to,
    )
}

/// The report's rows for people (the terminal table, `serve`'s page):
/// money in cents, costs per call to 4 decimals, shares and changes in %.
/// By default a readable set of columns; `wide` adds the tenant_id, the
/// completed calls, the cost components and the cost per completed call.
pub fn text_table(report: &Report, wide: bool) -> TextTable {
    let mut header: Vec<&str> = vec!["tenant"];
    if wide {
        header.push("tenant_id");
    }
    header.push("zone");
    match report.by {
        GroupBy::Day => header.push("day"),
        GroupBy::Month => header.push("month"),
        GroupBy::Outcome => header.extend(["status", "outcome"]),
        GroupBy::Tenant => {}
    }
    header.push("calls");
    if wide {
        header.push("completed");
    }
    header.push("billable min");
    let components = wide && report.by != GroupBy::Outcome;
    if components {
        header.extend(["STT", "LLM", "TTS"]);
    }
    header.extend(["total", "per call"]);
    if wide {
        header.push("per completed");
    }
    header.extend(["per booking", "share", "previous total", "change"]);
    let mut table = TextTable::new(&header);
    let number = TextCell::number;
    for row in people_rows(report) {
        let row = row.as_ref();
        let c = &row.current;
        // Names, zones, statuses and outcomes come from the data: no
        // control character of theirs reaches the terminal.
        let text = TextCell::text;
        let mut name = row.display_name();
        if row.zone_unknown {
            name.push_str(ZONE_UNKNOWN_MARK);
        }
        let mut cells = vec![text(&name).linked(tenant_link(report, row))];
        if wide {
            cells.push(text(row.key.tenant_id.as_deref().unwrap_or_default()));
        }
        cells.push(text(row.timezone.as_deref().unwrap_or_default()));
        match report.by {
            GroupBy::Day => cells.push(text(
                &row.key.day.map(|d| d.to_string()).unwrap_or_default(),
            )),
            GroupBy::Month => cells.push(text(
                &row.key
                    .month
                    .as_deref()
                    .map(|m| super::month_label(&report.period, m))
                    .unwrap_or_default(),
            )),
            GroupBy::Outcome => {
                cells.push(text(row.key.status.as_deref().unwrap_or_default()));
                cells.push(text(row.key.outcome.as_deref().unwrap_or_default()));
            }
            GroupBy::Tenant => {}
        }
        cells.push(number(c.calls.to_string()));
        if wide {
            cells.push(number(c.completed_calls.to_string()));
        }
        cells.push(number(decimal_text(c.billable_minutes(), 1)));
        if components {
            cells.extend([
                number(cents_text(c.stt_cost_usd)),
                number(cents_text(c.llm_cost_usd)),
                number(cents_text(c.tts_cost_usd)),
            ]);
        }
        let previous = row.previous.as_ref().map(|p| p.total_cost_usd);
        let change = previous.filter(|_| row.comparable);
        cells.extend([
            number(cents_text(Some(c.total_cost_usd))),
            number(per_call_text(ratio(c.total_cost_usd, c.calls))),
        ]);
        if wide {
            cells.push(number(per_call_text(ratio(
                c.total_cost_usd,
                c.completed_calls,
            ))));
        }
        cells.extend([
            number(per_call_text(ratio(c.total_cost_usd, c.booked_calls))),
            number(
                report
                    .share_of_total_pct(row)
                    .map(|s| format!("{}%", decimal_text(s, 1)))
                    .unwrap_or_default(),
            ),
            number(cents_text(previous)),
            number(match (previous, row.comparable) {
                (Some(_), false) => "n/a".to_string(),
                _ => change_pct(c.total_cost_usd, change)
                    .map(|p| format!("{}%", decimal_text(p, 1)))
                    .unwrap_or_default(),
            }),
        ]);
        if row.is_total() {
            table.push_total(cells);
        } else {
            table.rows.push(cells);
        }
    }
    table
}

/// `--by outcome`: each outcome added up across tenants, largest cost
/// first (the rows are per tenant and outcome).
pub fn outcome_totals(report: &Report) -> Vec<((String, String), Figures)> {
    if report.by != GroupBy::Outcome {
        return Vec::new();
    }
    let mut sums: std::collections::BTreeMap<(String, String), Figures> = Default::default();
    for row in report.rows.iter().filter(|r| r.key.tenant_id.is_some()) {
        let key = (
            row.key.status.clone().unwrap_or_default(),
            row.key.outcome.clone().unwrap_or_default(),
        );
        sums.entry(key).or_default().add(&row.current);
    }
    let mut out: Vec<_> = sums.into_iter().collect();
    out.sort_by_key(|o| std::cmp::Reverse(o.1.total_cost_usd));
    out
}

/// The outcome totals for people.
pub fn outcome_totals_table(report: &Report) -> Option<TextTable> {
    let totals = outcome_totals(report);
    if totals.is_empty() {
        return None;
    }
    let mut table = TextTable::new(&[
        "status",
        "outcome",
        "calls",
        "billable min",
        "total",
        "per call",
        "share",
    ]);
    let all = report.total().map(|t| t.current.total_cost_usd);
    for ((status, outcome), f) in totals {
        table.rows.push(vec![
            TextCell::text(&status),
            TextCell::text(&outcome),
            TextCell::number(f.calls.to_string()),
            TextCell::number(decimal_text(f.billable_minutes(), 1)),
            TextCell::number(cents_text(Some(f.total_cost_usd))),
            TextCell::number(per_call_text(ratio(f.total_cost_usd, f.calls))),
            TextCell::number(
                all.filter(|a| !a.is_zero())
                    .map(|a| {
                        format!(
                            "{}%",
                            decimal_text(f.total_cost_usd * Decimal::ONE_HUNDRED / a, 1)
                        )
                    })
                    .unwrap_or_default(),
            ),
        ]);
    }
    Some(table)
}

/// An aligned table for a terminal, then the notes.
pub fn table(report: &Report) -> Vec<u8> {
    let mut out = format!("{}\n", text_table(report, report.view.wide).terminal());
    if let Some(outcomes) = outcome_totals_table(report) {
        out.push_str(&format!(
            "\nEach outcome across tenants\n{}\n",
            outcomes.terminal()
        ));
    }
    for line in notes(report) {
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// The About sheet's line on the Daily sheet: which days are blank.
pub fn daily_sheet_line(report: &Report) -> String {
    let missing = report.coverage.missing_days.len();
    if missing == 0 {
        "Daily sheet: every day of the period is covered; a tenant without calls on a day shows 0.00".into()
    } else {
        format!(
            "Daily sheet: the {missing} day(s) no succeeded run covered are left blank and the chart shows gaps there, not 0.00 (a covered day without calls shows 0.00)"
        )
    }
}

/// `--by outcome`'s totals across tenants as named cells, and their
/// TOTAL: the JSON array and the workbook's sheet.
fn outcome_total_rows(report: &Report) -> Vec<Vec<(&'static str, Value_)>> {
    let all = report.total().map(|t| t.current.total_cost_usd);
    let share = |cost: Decimal| {
        all.filter(|a| !a.is_zero())
            .map(|a| cost * Decimal::ONE_HUNDRED / a)
    };
    let line = |status: Option<String>, outcome: Option<String>, f: &Figures| {
        vec![
            ("status", Value_::Text(status)),
            ("outcome", Value_::Text(outcome)),
            ("calls", Value_::Int(Some(f.calls))),
            ("booked_calls", Value_::Int(Some(f.booked_calls))),
            ("billable_minutes", money(Some(f.billable_minutes()))),
            ("total_cost_usd", money(Some(f.total_cost_usd))),
            ("cost_per_call_usd", money(ratio(f.total_cost_usd, f.calls))),
            (
                "share_of_total_pct",
                Value_::Decimal(share(f.total_cost_usd), 2),
            ),
        ]
    };
    let totals = outcome_totals(report);
    if totals.is_empty() {
        return Vec::new();
    }
    let mut all_outcomes = Figures::default();
    let mut out: Vec<_> = totals
        .iter()
        .map(|((status, outcome), f)| {
            all_outcomes.add(f);
            line(Some(status.clone()), Some(outcome.clone()), f)
        })
        .collect();
    out.push(line(Some("TOTAL".into()), None, &all_outcomes));
    out
}

/// An Excel workbook that ties out: the Costs sheet (every figure exact in
/// a format that shows cents, human headers, Yes/No, the lines `--top`
/// left out added up in one line, a TOTAL row of `SUM`s), for `--by
/// outcome` each outcome across tenants, a Daily sheet with a native chart
/// of the top tenants' daily cost, and an About sheet (period, runs,
/// coverage, reconciliation, rounding). Printed landscape, a page wide.
pub fn xlsx(report: &Report, top: usize) -> Result<Vec<u8>> {
    use crate::output::workbook::{self, about_lines, write_table, CENTS};
    use rust_xlsxwriter::{
        Chart, ChartEmptyCells, ChartType, DocProperties, ExcelDateTime, Format as XFormat,
        Workbook,
    };
    let e = workbook::xlsx_error;
    let mut book = Workbook::new();
    // Created "on" the period's last day, not now: the same report is the
    // same bytes, from `costs` or from `serve`'s download.
    let created = ExcelDateTime::parse_from_str(&report.period.to.to_string()).map_err(e)?;
    book.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let bold = XFormat::new().set_bold();
    let money_format = XFormat::new().set_num_format(CENTS);
    let date_format = XFormat::new().set_num_format("yyyy-mm-dd");

    let sheet = book.add_worksheet();
    sheet.set_name("Costs").map_err(e)?;
    let shown = people_rows(report);
    let rows: Vec<Vec<(&'static str, Value_)>> = shown.iter().map(|r| columns(report, r)).collect();
    let total = shown.iter().position(|r| r.is_total());
    write_table(sheet, &rows, total, CENTS)?;

    let outcomes = outcome_total_rows(report);
    if !outcomes.is_empty() {
        let sheet = book.add_worksheet();
        sheet.set_name("Outcome totals").map_err(e)?;
        write_table(sheet, &outcomes, Some(outcomes.len() - 1), CENTS)?;
    }

    // Daily cost of the top tenants, with a native line chart.
    let mut ranked: Vec<(&String, Decimal)> = report
        .daily
        .iter()
        .map(|(id, days)| (id, days.values().copied().sum()))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(top);
    let name_of = |id: &str| {
        report
            .rows
            .iter()
            .find(|r| r.key.tenant_id.as_deref() == Some(id))
            .map(|r| r.display_name())
            .unwrap_or_else(|| id.to_string())
    };
    let daily = book.add_worksheet();
    daily.set_name("Daily").map_err(e)?;
    daily
        .write_string_with_format(0, 0, "Day", &bold)
        .map_err(e)?;
    let days: Vec<chrono::NaiveDate> = report.period.each_day().collect();
    for (i, day) in days.iter().enumerate() {
        let date = ExcelDateTime::parse_from_str(&day.to_string()).map_err(e)?;
        daily
            .write_datetime_with_format((i + 1) as u32, 0, &date, &date_format)
            .map_err(e)?;
    }
    for (j, (id, _)) in ranked.iter().enumerate() {
        let col = (j + 1) as u16;
        daily
            .write_string_with_format(0, col, guard_formula(&name_of(id)), &bold)
            .map_err(e)?;
        for (i, day) in days.iter().enumerate() {
            // A day no run covered is left blank (a gap in the chart),
            // never drawn as 0.00; a covered day without a row cost nothing.
            if report.coverage.missing_days.contains(day) {
                continue;
            }
            let v = report.daily[*id].get(day).copied().unwrap_or_default();
            daily
                .write_number_with_format(
                    (i + 1) as u32,
                    col,
                    crate::output::spreadsheet_number(v)?,
                    &money_format,
                )
                .map_err(e)?;
        }
    }
    daily.set_freeze_panes(1, 1).map_err(e)?;
    daily.autofit();
    // Printed (or exported to PDF) as one landscape page: the days and the
    // whole chart together, not a chart cut in three.
    daily.set_landscape().set_print_fit_to_pages(1, 1);
    if !ranked.is_empty() && !days.is_empty() {
        let mut chart = Chart::new(ChartType::Line);
        chart
            .title()
            .set_name(&format!("Daily cost, top {} tenants", ranked.len()));
        // A date axis with a date format: Excel, LibreOffice and Google
        // Sheets show dates, not their serial numbers.
        chart
            .x_axis()
            .set_name("day")
            .set_date_axis(true)
            .set_num_format("yyyy-mm-dd");
        chart.y_axis().set_name("USD").set_num_format("\"$\"#,##0");
        // Blank (uncovered) days are gaps, not zeros.
        chart.show_empty_cells_as(ChartEmptyCells::Gaps);
        let n = days.len() as u32;
        for j in 0..ranked.len() {
            let col = (j + 1) as u16;
            chart
                .add_series()
                .set_name(("Daily", 0, col))
                .set_categories(("Daily", 1, 0, n, 0))
                .set_values(("Daily", 1, col, n, col));
        }
        chart.set_width(960).set_height(480);
        daily
            .insert_chart(1, (ranked.len() + 2) as u16, &chart)
            .map_err(e)?;
    }

    // What the figures are and where they come from.
    let about = book.add_worksheet();
    about.set_name("About").map_err(e)?;
    let mut lines = notes(report);
    lines.push("cells hold the exact figures (money to the micro-dollar) and show cents; the TOTAL row adds up the cells above it, so any sum made in the sheet ties out with it".into());
    lines.push(daily_sheet_line(report));
    lines.push(String::new());
    if report.coverage.runs.is_empty() {
        lines.push(format!(
            "runs: none listed (read from {}, which keeps no ledger)",
            report.read_from
        ));
    } else {
        lines.push("runs the figures come from:".into());
        lines.extend(report.coverage.runs.iter().cloned());
    }
    if !report.coverage.missing_days.is_empty() || !report.coverage.partial_days.is_empty() {
        lines.push(String::new());
        lines.push("days missing or partial:".into());
        lines.extend(
            report
                .coverage
                .missing_days
                .iter()
                .map(|d| format!("{d} missing")),
        );
        lines.extend(
            report
                .coverage
                .partial_days
                .iter()
                .map(|d| format!("{d} partial")),
        );
    }
    about_lines(about, &lines)?;
    book.save_to_buffer().map_err(e)
}
