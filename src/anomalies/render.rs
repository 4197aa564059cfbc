//! `anomalies` for people and programs: a terminal table, CSV, JSON and a
//! workbook, every money figure exact (6 decimals in files, cents on
//! screens), names from the data made printable or formula-guarded.

use chrono::NaiveDate;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use super::{Analysis, Anomaly, Component, Direction, Kind};
use crate::error::Result;
use crate::frames::PLATFORM_NAME;
use crate::output::{Cell, TextCell, TextTable};

/// The same four formats as `changes` (table, csv, json, xlsx): one type.
pub use crate::changes::render::Format;

fn ratio(v: Option<f64>) -> Cell {
    Cell::Decimal(v.and_then(Decimal::from_f64), 4)
}

fn days_text(days: &[NaiveDate]) -> String {
    days.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who a line is about, for people.
pub fn scope_name(a: &Anomaly) -> String {
    match (&a.tenant_id, &a.business_name) {
        (None, _) => PLATFORM_NAME.to_string(),
        (Some(_), Some(name)) => name.clone(),
        (Some(id), None) => id.clone(),
    }
}

/// One line's columns, in every machine format.
pub fn columns(a: &Anomaly) -> Vec<(&'static str, Cell)> {
    let (moved, assessed) = a.tenants_moved.unzip();
    vec![
        (
            "scope",
            Cell::Text(Some(
                if a.tenant_id.is_some() {
                    "tenant"
                } else {
                    "platform"
                }
                .into(),
            )),
        ),
        ("tenant_id", Cell::Text(a.tenant_id.clone())),
        ("business_name", Cell::Text(a.business_name.clone())),
        ("day", Cell::Text(Some(a.day.to_string()))),
        ("component", Cell::Text(Some(a.component.name().into()))),
        ("kind", Cell::Text(Some(a.kind.name().into()))),
        ("excess_usd", Cell::money(Some(a.excess_usd))),
        ("cost_usd", Cell::money(Some(a.cost_usd))),
        ("expected_cost_usd", Cell::money(Some(a.expected_usd))),
        ("unit", Cell::Text(Some(a.unit.name().into()))),
        ("cost_per_unit_usd", Cell::money(a.unit_cost_usd)),
        (
            "baseline_cost_per_unit_usd",
            Cell::money(a.baseline_unit_cost_usd),
        ),
        ("unit_cost_ratio", ratio(a.unit_ratio)),
        ("calls", Cell::Int(Some(a.calls))),
        ("baseline_calls", Cell::Decimal(a.baseline_calls, 1)),
        ("volume_ratio", ratio(a.volume_ratio)),
        (
            "components_moved",
            Cell::Text(Some(
                a.components_moved
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
        ),
        ("platform_factor", Cell::Decimal(a.platform_factor, 4)),
        ("tenants_moved", Cell::Int(moved.map(|n| n as i64))),
        ("tenants_assessed", Cell::Int(assessed.map(|n| n as i64))),
        (
            "unit_baseline_days",
            Cell::Text(Some(days_text(&a.unit_baseline_days))),
        ),
        (
            "volume_baseline_days",
            Cell::Text(Some(days_text(&a.volume_baseline_days))),
        ),
        ("why", Cell::Text(Some(why(a)))),
    ]
}

/// Every line, the rises first: CSV and the JSON arrays.
fn lines(analysis: &Analysis) -> impl Iterator<Item = (&'static str, &Anomaly)> {
    analysis
        .rises
        .iter()
        .map(|a| ("rise", a))
        .chain(analysis.falls.iter().map(|a| ("fall", a)))
}

fn with_direction(direction: &'static str, a: &Anomaly) -> Vec<(&'static str, Cell)> {
    directed(direction, columns(a))
}

/// `row` with a `direction` column after `kind`.
fn directed(
    direction: &'static str,
    mut row: Vec<(&'static str, Cell)>,
) -> Vec<(&'static str, Cell)> {
    row.insert(6, ("direction", Cell::Text(Some(direction.into()))));
    row
}

/// One row per line: rises (ranked by excess) then falls.
pub fn csv(analysis: &Analysis) -> Result<Vec<u8>> {
    let rows: Vec<Vec<(&'static str, Cell)>> = lines(analysis)
        .map(|(direction, a)| with_direction(direction, a))
        .collect();
    let frame = if rows.is_empty() {
        // The header alone: a script reading the file finds its columns.
        let empty = empty_line();
        let mut frame = crate::output::frame_of(&[with_direction("rise", &empty)])?;
        frame = frame.head(Some(0));
        frame
    } else {
        crate::output::frame_of(&rows)?
    };
    crate::output::csv_bytes(&frame, crate::output::MoneyText::Stored)
}

fn empty_line() -> Anomaly {
    Anomaly {
        tenant_id: None,
        business_name: None,
        day: NaiveDate::default(),
        component: Component::Total,
        kind: Kind::UnitCost,
        direction: Direction::Rise,
        excess_usd: Decimal::ZERO,
        cost_usd: Decimal::ZERO,
        expected_usd: Decimal::ZERO,
        unit: super::Unit::Call,
        unit_cost_usd: None,
        baseline_unit_cost_usd: None,
        unit_ratio: None,
        calls: 0,
        baseline_calls: None,
        volume_ratio: None,
        unit_baseline_days: Vec::new(),
        volume_baseline_days: Vec::new(),
        components_moved: Vec::new(),
        platform_factor: None,
        tenants_moved: None,
    }
}

fn json_line(a: &Anomaly) -> serde_json::Value {
    let mut row = crate::output::json_object(columns(a));
    // Lists of days as arrays in JSON.
    for (name, days) in [
        ("unit_baseline_days", &a.unit_baseline_days),
        ("volume_baseline_days", &a.volume_baseline_days),
    ] {
        row[name] = serde_json::json!(days.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    }
    row["components_moved"] = serde_json::json!(a
        .components_moved
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>());
    row
}

/// The analysis as one JSON document: the period, the rule, the rises
/// and falls, the tenants not assessed and the days unknown.
pub fn json(analysis: &Analysis) -> Result<Vec<u8>> {
    let doc = serde_json::json!({
        "format_version": crate::output::JSON_FORMAT_VERSION,
        "from": analysis.period.from.to_string(),
        "to": analysis.period.to.to_string(),
        "read_from": analysis.read_from,
        "rule": rule_json(analysis),
        "tenant_days_assessed": analysis.tenant_days_assessed,
        "unknown_days": analysis.unknown_days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "partial_days": analysis.partial_days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "excess_usd": crate::output::decimal_text(total_excess(&analysis.rises), crate::money::SCALE),
        "rises": analysis.rises.iter().map(json_line).collect::<Vec<_>>(),
        "falls": analysis.falls.iter().map(json_line).collect::<Vec<_>>(),
        "not_assessed": analysis.not_assessed.iter().map(|n| serde_json::json!({
            "tenant_id": n.tenant_id,
            "business_name": n.business_name,
            "days": n.days,
            "first_day": n.first_day.to_string(),
            "last_day": n.last_day.to_string(),
            "reason": n.reason,
        })).collect::<Vec<_>>(),
    });
    let mut out = serde_json::to_vec_pretty(&doc)
        .map_err(|e| crate::error::Error::RunFailed(format!("cannot render JSON: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

fn rule_json(analysis: &Analysis) -> serde_json::Value {
    use super::*;
    serde_json::json!({
        "k": analysis.rule.k,
        "min_excess_usd": crate::output::decimal_text(analysis.rule.min_excess_usd, crate::money::SCALE),
        "unit_baseline_days": UNIT_BASELINE_DAYS,
        "min_unit_baseline_days": MIN_UNIT_BASELINE_DAYS,
        "lookback_days": LOOKBACK_DAYS,
        "volume_baseline_weeks": VOLUME_BASELINE_WEEKS,
        "min_volume_baseline_days": MIN_VOLUME_BASELINE_DAYS,
        "min_calls_a_day": MIN_CALLS_A_DAY,
        "min_unit_change": MIN_UNIT_CHANGE,
        "min_volume_ratio": MIN_VOLUME_RATIO,
        "min_volume_change": MIN_VOLUME_CHANGE,
    })
}

/// What the tenant lines add up to: a tenant day's lines never count the
/// same dollars twice, the platform's lines overlap its tenants' and are
/// left out.
pub fn total_excess(lines: &[Anomaly]) -> Decimal {
    sum(lines
        .iter()
        .filter(|a| a.tenant_id.is_some())
        .map(|a| a.excess_usd))
}

/// A sum that saturates rather than panics (only crafted report files
/// hold amounts that could outgrow a decimal).
fn sum(values: impl Iterator<Item = Decimal>) -> Decimal {
    values.fold(Decimal::ZERO, |total, v| {
        total.checked_add(v).unwrap_or(if v.is_sign_negative() {
            Decimal::MIN
        } else {
            Decimal::MAX
        })
    })
}

/// Why a line was called, for people: the unit cost or the calls beside
/// their baseline's, and the days the baseline came from.
pub fn why(a: &Anomaly) -> String {
    let mut parts = Vec::new();
    if matches!(a.kind, Kind::UnitCost | Kind::Both) {
        if let (Some(cost), Some(base)) = (a.unit_cost_usd, a.baseline_unit_cost_usd) {
            parts.push(format!(
                "{} USD per {} vs a median of {}{}{}",
                crate::money::text(cost, 4),
                match a.unit {
                    super::Unit::Minute => "billable minute",
                    super::Unit::Call => "call",
                },
                crate::money::text(base, 4),
                span(&a.unit_baseline_days),
                a.unit_ratio.map_or(String::new(), |r| format!(", x{r:.2}")),
            ));
        }
        if let Some(x) = a.platform_factor {
            parts.push(format!(
                "beyond the platform's x{}",
                crate::money::text(x, 2)
            ));
        }
    }
    if matches!(a.kind, Kind::Volume | Kind::Both) {
        if let Some(base) = a.baseline_calls {
            parts.push(format!(
                "{} calls vs a median of {}{}{}",
                a.calls,
                base.normalize(),
                like_days(&a.volume_baseline_days),
                a.volume_ratio
                    .map_or(String::new(), |r| format!(", x{r:.2}")),
            ));
        }
        if !a.components_moved.is_empty() {
            parts.push(format!(
                "unit cost moved too: {}",
                a.components_moved
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if let Some((moved, of)) = a.tenants_moved {
        parts.push(format!("{moved} of {of} tenants moved with it"));
    }
    parts.join("; ")
}

/// `over 14 days 2026-11-01..2026-11-14`.
fn span(days: &[NaiveDate]) -> String {
    match (days.first(), days.last()) {
        (Some(first), Some(last)) => {
            format!(" of {} days {first}..{last}", days.len())
        }
        _ => String::new(),
    }
}

/// `on 4 like days (…)`.
fn like_days(days: &[NaiveDate]) -> String {
    if days.is_empty() {
        return String::new();
    }
    format!(
        " of {} like days ({})",
        days.len(),
        days.iter()
            .map(|d| d.format("%m-%d").to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The lines as a table for people (the terminal and the pages).
pub fn text_table(lines: &[Anomaly], from: NaiveDate, to: NaiveDate) -> TextTable {
    let mut table = TextTable::new(&[
        "day",
        "tenant",
        "component",
        "kind",
        "excess USD",
        "cost USD",
        "expected USD",
        "why",
    ]);
    for a in lines {
        table.rows.push(vec![
            TextCell::text(&a.day.to_string()),
            TextCell::text(&scope_name(a)).linked(
                a.tenant_id
                    .as_deref()
                    .and_then(|id| crate::output::tenant_page(id, from, to)),
            ),
            TextCell::text(a.component.name()),
            TextCell::text(a.kind.name()),
            TextCell::number(crate::money::cents_text(a.excess_usd)),
            TextCell::number(crate::money::cents_text(a.cost_usd)),
            TextCell::number(crate::money::cents_text(a.expected_usd)),
            TextCell::text(&why(a)),
        ]);
    }
    table
}

/// The terminal's report: rises, falls, tenants not assessed, unknown days.
pub fn table(analysis: &Analysis, top: Option<usize>) -> Vec<u8> {
    let (from, to) = (analysis.period.from, analysis.period.to);
    let mut out = format!(
        "cost anomalies {from}..{to} ({} tenant days assessed, read from {})\n",
        analysis.tenant_days_assessed, analysis.read_from
    );
    let shown = |lines: &[Anomaly]| lines[..top.unwrap_or(lines.len()).min(lines.len())].to_vec();
    if analysis.rises.is_empty() {
        out.push_str("no cost rose beyond its baseline\n");
    } else {
        let platform = analysis.rises.iter().any(|a| a.tenant_id.is_none());
        out.push_str(&format!(
            "\ncosts that rose: {} line(s); the tenants' lines come to {} USD above their baselines{}\n",
            analysis.rises.len(),
            crate::money::cents_text(total_excess(&analysis.rises)),
            if platform {
                " (the (platform) lines are the same dollars seen across tenants, not added)"
            } else {
                ""
            }
        ));
        out.push_str(&text_table(&shown(&analysis.rises), from, to).terminal());
        out.push('\n');
        if let Some(n) = top.filter(|n| *n < analysis.rises.len()) {
            out.push_str(&format!(
                "({} more: drop --top, or --format csv)\n",
                analysis.rises.len() - n
            ));
        }
    }
    if !analysis.falls.is_empty() {
        out.push_str(&format!(
            "\ncosts that fell (not alarms): {} line(s), {} USD below their baselines\n",
            analysis.falls.len(),
            crate::money::cents_text(total_excess(&analysis.falls).abs())
        ));
        out.push_str(&text_table(&shown(&analysis.falls), from, to).terminal());
        out.push('\n');
    }
    if !analysis.not_assessed.is_empty() {
        out.push_str(&format!(
            "\nnot assessed: {} tenant(s)\n",
            analysis.not_assessed.len()
        ));
        let mut table = TextTable::new(&["tenant", "days", "from", "to", "why"]);
        for n in &analysis.not_assessed {
            table.rows.push(vec![
                TextCell::text(n.business_name.as_deref().unwrap_or(&n.tenant_id)),
                TextCell::number(n.days.to_string()),
                TextCell::text(&n.first_day.to_string()),
                TextCell::text(&n.last_day.to_string()),
                TextCell::text(&n.reason),
            ]);
        }
        out.push_str(&table.terminal());
        out.push('\n');
    }
    for line in unknown_lines(analysis) {
        out.push_str(&format!("\n{line}\n"));
    }
    if !(analysis.rises.is_empty() && analysis.falls.is_empty()) {
        out.push_str("\nDollars are rounded to cents here; CSV, JSON and the workbook hold them to the micro-dollar (excess = cost - expected exactly).\n");
    }
    out.into_bytes()
}

/// The days nothing can be said about, for people: coverage's own
/// lines (not run, not yet ended everywhere, partial), as unknowns.
pub fn unknown_lines(analysis: &Analysis) -> Vec<String> {
    let coverage = crate::summaries::Coverage {
        missing_days: analysis.unknown_days.clone(),
        partial_days: analysis.partial_days.clone(),
        ..Default::default()
    };
    coverage
        .problems()
        .into_iter()
        .map(|problem| format!("unknown, not assessed: {problem}"))
        .collect()
}

/// A workbook: the rises and the falls (each with a TOTAL of the tenant
/// lines that ties out), the platform's lines, the tenants not assessed,
/// and an About sheet with the rule.
pub fn xlsx(analysis: &Analysis) -> Result<Vec<u8>> {
    use crate::output::workbook::{about_lines, write_table, xlsx_error, CENTS};
    let mut book = rust_xlsxwriter::Workbook::new();
    // The lists of baseline days stay in CSV and JSON: the why column
    // names their span, and a printed page a day list wide is unreadable.
    let sheet_columns = |a: &Anomaly| -> Vec<(&'static str, Cell)> {
        columns(a)
            .into_iter()
            .filter(|(name, _)| !name.ends_with("_baseline_days"))
            .collect()
    };
    let tenant_rows = |lines: &[Anomaly]| -> Vec<Vec<(&'static str, Cell)>> {
        let mut rows: Vec<_> = lines
            .iter()
            .filter(|a| a.tenant_id.is_some())
            .map(sheet_columns)
            .collect();
        if !rows.is_empty() {
            let tenant: Vec<&Anomaly> = lines.iter().filter(|a| a.tenant_id.is_some()).collect();
            let sum = |f: fn(&Anomaly) -> Decimal| Some(sum(tenant.iter().map(|a| f(a))));
            let total: Vec<(&'static str, Cell)> = sheet_columns(&empty_line())
                .into_iter()
                .map(|(name, cell)| {
                    let cell = match name {
                        "scope" => Cell::Text(Some("TOTAL".into())),
                        "excess_usd" => Cell::money(sum(|a| a.excess_usd)),
                        "cost_usd" => Cell::money(sum(|a| a.cost_usd)),
                        "expected_cost_usd" => Cell::money(sum(|a| a.expected_usd)),
                        _ => match cell {
                            Cell::Text(_) => Cell::Text(None),
                            Cell::Int(_) => Cell::Int(None),
                            Cell::Bool(_) => Cell::Text(None),
                            Cell::Decimal(_, s) => Cell::Decimal(None, s),
                        },
                    };
                    (name, cell)
                })
                .collect();
            rows.push(total);
        }
        rows
    };
    // A sheet of `rows` (a TOTAL last when `total`), or one line saying
    // why it has none.
    let mut sheet_of =
        |name: &str, rows: &[Vec<(&'static str, Cell)>], total: bool, none: &str| -> Result<()> {
            let sheet = book.add_worksheet();
            sheet.set_name(name).map_err(xlsx_error)?;
            if rows.is_empty() {
                sheet.write_string(0, 0, none).map_err(xlsx_error)?;
                return Ok(());
            }
            write_table(sheet, rows, total.then(|| rows.len() - 1), CENTS)
        };
    for (name, lines) in [("Rises", &analysis.rises), ("Falls", &analysis.falls)] {
        let none = format!("No tenant's cost {}.", name.to_lowercase());
        sheet_of(name, &tenant_rows(lines), true, &none)?;
    }
    let platform: Vec<Vec<(&'static str, Cell)>> = lines(analysis)
        .filter(|(_, a)| a.tenant_id.is_none())
        .map(|(d, a)| directed(d, sheet_columns(a)))
        .collect();
    sheet_of("Platform", &platform, false, "No platform-wide move.")?;
    let not_assessed: Vec<Vec<(&'static str, Cell)>> = analysis
        .not_assessed
        .iter()
        .map(|n| {
            vec![
                ("tenant_id", Cell::Text(Some(n.tenant_id.clone()))),
                ("business_name", Cell::Text(n.business_name.clone())),
                ("days", Cell::Int(Some(n.days as i64))),
                ("reason", Cell::Text(Some(n.reason.clone()))),
            ]
        })
        .collect();
    sheet_of(
        "Not assessed",
        &not_assessed,
        false,
        "Every tenant was assessed.",
    )?;
    let sheet = book.add_worksheet();
    sheet.set_name("About").map_err(xlsx_error)?;
    let mut about = vec![
        format!(
            "Cost anomalies {}..{}, read from {}; {} tenant days assessed.",
            analysis.period.from,
            analysis.period.to,
            analysis.read_from,
            analysis.tenant_days_assessed
        ),
        String::new(),
        about_rule(analysis),
        String::new(),
        "The TOTAL rows add up the tenant lines: a tenant day's lines never count the same dollars twice. The Platform sheet's lines overlap its tenants' and are not in any TOTAL.".into(),
    ];
    about.extend(unknown_lines(analysis));
    about_lines(sheet, &about)?;
    book.save_to_buffer().map_err(xlsx_error)
}

/// The rule in one paragraph, with its constants.
pub fn about_rule(analysis: &Analysis) -> String {
    use super::*;
    format!(
        "A unit cost (per billable minute, or per call where a day has no billable seconds) is an anomaly when it is at least {:.0}% from the median of the previous {UNIT_BASELINE_DAYS} covered days with calls (at least {MIN_UNIT_BASELINE_DAYS}, within {LOOKBACK_DAYS} days) and more than {} robust standard deviations (1.4826 x MAD) from it; calls are an anomaly when they are {MIN_VOLUME_RATIO} times (or 1/{MIN_VOLUME_RATIO} of) the median of the same weekday of the previous {VOLUME_BASELINE_WEEKS} weeks, at least {MIN_VOLUME_CHANGE} calls and {} spreads away. Excess: the day's cost minus the baseline unit cost at the day's volume (unit cost) or minus the baseline days' median cost (volume); lines worth less than {} USD are left out. Tenants with a median of fewer than {MIN_CALLS_A_DAY} calls a day are not assessed.",
        MIN_UNIT_CHANGE * 100.0,
        analysis.rule.k,
        analysis.rule.k,
        crate::money::cents_text(analysis.rule.min_excess_usd),
    )
}
