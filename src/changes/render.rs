//! `callrollup changes` as a terminal table, CSV, JSON or a workbook: one
//! line per tenant day and run, then a TOTAL line (tenant_id empty) with
//! the summed changes. Restatements can be a fraction of a cent, so every
//! format shows money with its 6 stored decimals (JSON as decimal strings).

use rust_decimal::Decimal;
use serde_json::json;

use super::{MoneyOf, Restated, Restatement};
use crate::error::{Error, Result};
use crate::output::{Cell, TextCell, TextTable};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Xlsx,
}

/// What the report shows, and why: the selection in words.
pub struct Report<'a> {
    pub lines: &'a [Restatement],
    /// The filters, as `name: value` lines (the JSON `selection` object,
    /// the table's and the workbook's notes).
    pub selection: Vec<(&'static str, String)>,
}

impl Report<'_> {
    fn restated(&self) -> Restated {
        Restated::of(self.lines)
    }
}

/// One line's columns, named as the contract names them.
fn columns(line: Option<&Restatement>, lines: &[Restatement]) -> Vec<(&'static str, Cell)> {
    let text = |v: Option<String>| Cell::Text(v);
    let mut out = vec![
        ("tenant_id", text(line.map(|l| l.tenant_id.clone()))),
        (
            "business_name",
            text(match line {
                Some(l) => l.business_name.clone(),
                None => Some("TOTAL".into()),
            }),
        ),
        ("day", text(line.map(|l| l.day.to_string()))),
        ("old_calls", Cell::Int(line.map(|l| l.old.calls))),
        ("new_calls", Cell::Int(line.map(|l| l.new.calls))),
    ];
    for ([old, new, changed], column) in MONEY {
        let change = match line {
            Some(l) => l.change(column),
            None => lines.iter().map(|l| l.change(column)).sum(),
        };
        out.extend([
            (old, Cell::money(line.map(|l| column(&l.old)))),
            (new, Cell::money(line.map(|l| column(&l.new)))),
            (changed, Cell::money(Some(change))),
        ]);
    }
    out.extend([
        (
            "previous_run_id",
            text(line.and_then(|l| l.previous_run_id.clone())),
        ),
        ("run_id", text(line.map(|l| l.run_id.clone()))),
        (
            "restated_at",
            text(line.map(|l| {
                l.restated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            })),
        ),
    ]);
    out
}

/// Each money figure: its old, new and change columns, and how to read it.
const MONEY: [([&str; 3], MoneyOf); 4] = [
    (
        [
            "old_total_cost_usd",
            "new_total_cost_usd",
            "change_total_cost_usd",
        ],
        |b| b.total_cost_usd,
    ),
    (
        [
            "old_stt_cost_usd",
            "new_stt_cost_usd",
            "change_stt_cost_usd",
        ],
        |b| b.stt_cost_usd,
    ),
    (
        [
            "old_llm_cost_usd",
            "new_llm_cost_usd",
            "change_llm_cost_usd",
        ],
        |b| b.llm_cost_usd,
    ),
    (
        [
            "old_tts_cost_usd",
            "new_tts_cost_usd",
            "change_tts_cost_usd",
        ],
        |b| b.tts_cost_usd,
    ),
];

/// Every line, then the TOTAL line.
fn rows(report: &Report) -> Vec<Vec<(&'static str, Cell)>> {
    report
        .lines
        .iter()
        .map(Some)
        .chain([None])
        .map(|line| columns(line, report.lines))
        .collect()
}

/// The lines after a table and on the workbook's About sheet.
pub fn notes(report: &Report) -> Vec<String> {
    let restated = report.restated();
    let mut out = Vec::new();
    let selection: Vec<String> = report
        .selection
        .iter()
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    out.push(format!("selection: {}", selection.join(", ")));
    out.push(if restated.restatements == 0 {
        "no billed figure of the selection was restated".to_string()
    } else {
        format!(
            "{} restatement(s) of {} tenant day(s); total_cost_usd changed by {} USD",
            restated.restatements,
            restated.tenant_days,
            signed(restated.change_total_cost_usd)
        )
    });
    out.push("money in USD with its 6 stored decimals; a deleted tenant day's new figures are 0 (it bills nothing any more)".into());
    out
}

/// A change with its sign: `+0.500000`, `-1.250000`, `0.000000`.
pub fn signed(v: Decimal) -> String {
    let text = crate::money::format(v);
    if v > Decimal::ZERO {
        format!("+{text}")
    } else {
        text
    }
}

/// CSV: header, RFC 4180, the formula guard on every text cell, money with
/// 6 decimals.
pub fn csv(report: &Report) -> Result<Vec<u8>> {
    crate::output::csv_bytes(
        &crate::output::frame_of(&rows(report))?,
        crate::output::MoneyText::Stored,
    )
}

pub fn json(report: &Report) -> Result<Vec<u8>> {
    let restated = report.restated();
    let rows: Vec<serde_json::Value> = rows(report)
        .into_iter()
        .map(crate::output::json_object)
        .collect();
    let selection: serde_json::Map<String, serde_json::Value> = report
        .selection
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    let document = json!({
        "format_version": crate::output::JSON_FORMAT_VERSION,
        "selection": selection,
        "restatements": restated.restatements,
        "tenant_days": restated.tenant_days,
        "change_total_cost_usd": crate::money::format(restated.change_total_cost_usd),
        "rows": rows,
    });
    let mut out = serde_json::to_vec_pretty(&document)
        .map_err(|e| Error::RunFailed(format!("cannot render the changes as JSON: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// An aligned table for a terminal.
pub fn table(report: &Report) -> Vec<u8> {
    let mut table = TextTable::new(&[
        "tenant",
        "tenant_id",
        "day",
        "calls",
        "total",
        "change",
        "STT change",
        "LLM change",
        "TTS change",
        "previous run",
        "run",
        "restated at",
    ]);
    let money = crate::money::format;
    let changes = |change: &dyn Fn(MoneyOf) -> Decimal| {
        MONEY
            .iter()
            .map(|(_, column)| TextCell::number(signed(change(*column))))
            .collect::<Vec<_>>()
    };
    for line in report.lines {
        // Names come from the data: no control character reaches the terminal.
        let mut cells = vec![
            TextCell::text(line.business_name.as_deref().unwrap_or_default()),
            TextCell::text(&line.tenant_id),
            TextCell::text(&line.day.to_string()),
            TextCell::number(format!("{} → {}", line.old.calls, line.new.calls)),
            TextCell::number(format!(
                "{} → {}",
                money(line.old.total_cost_usd),
                money(line.new.total_cost_usd)
            )),
        ];
        cells.extend(changes(&|column| line.change(column)));
        cells.extend([
            TextCell::text(line.previous_run_id.as_deref().unwrap_or_default()),
            TextCell::text(&line.run_id),
            TextCell::text(&line.restated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        ]);
        table.rows.push(cells);
    }
    let mut total = vec![TextCell::text("TOTAL")];
    total.extend((0..4).map(|_| TextCell::text("")));
    total.extend(changes(&|column| {
        report.lines.iter().map(|l| l.change(column)).sum()
    }));
    table.push_total(total);
    let mut out = format!("{}\n", table.terminal());
    for line in notes(report) {
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// A workbook that ties out: the Changes sheet (human headers with units,
/// days as dates, money exact in a format that shows cents and any
/// sub-cent digits, the TOTAL line in bold with `SUM`s of the changes
/// above, frozen header, autofilter, printed landscape a page wide) and
/// an About sheet with the selection.
pub fn xlsx(report: &Report) -> Result<Vec<u8>> {
    use crate::output::workbook::{about_lines, write_table, xlsx_error, CENTS_AND_FRACTIONS};
    let e = xlsx_error;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Changes").map_err(e)?;
    let rows = rows(report);
    write_table(sheet, &rows, Some(rows.len() - 1), CENTS_AND_FRACTIONS)?;
    let about = workbook.add_worksheet();
    about.set_name("About").map_err(e)?;
    let mut lines = notes(report);
    lines.push("cells hold the exact figures (6 decimals) and show cents, and sub-cent digits where a change has them; the TOTAL line adds up the changes above it".into());
    about_lines(about, &lines)?;
    workbook.save_to_buffer().map_err(e)
}
