//! How tables reach people as text: CSV with the contract's rules (the
//! formula guard, money as exact decimal text, UTC timestamps) and JSON
//! arrays. The report files, `costs`, `errors` and `query` all write
//! through these.

use std::io::Write;

use polars::prelude::*;
use rust_decimal::Decimal;

use crate::error::Result;
use crate::money;

mod csv;
pub mod workbook;

/// The version of the JSON documents' shape (`format_version`), raised
/// whenever a script reading them would notice a change (CHANGELOG.md).
pub const JSON_FORMAT_VERSION: u32 = 2;

/// One cell of a report's machine formats (CSV, JSON, Parquet, the
/// workbook): reports build their rows as `(column, Cell)` lists, and
/// every format is written from those.
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    /// An exact decimal and the scale it is shown with.
    Decimal(Option<Decimal>, u32),
}

impl Cell {
    /// Money with the stored 6 decimals.
    pub fn money(v: Option<Decimal>) -> Cell {
        Cell::Decimal(v, money::SCALE)
    }

    /// The cell in JSON: exact decimals travel as strings, never as floats.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Cell::Text(v) => json!(v),
            Cell::Int(v) => json!(v),
            Cell::Bool(v) => json!(v),
            Cell::Decimal(v, scale) => json!(v.map(|v| decimal_text(v, *scale))),
        }
    }
}

/// A row of named cells as a JSON object (`Cell::json` each).
pub fn json_object(row: Vec<(&'static str, Cell)>) -> serde_json::Value {
    serde_json::Value::Object(
        row.into_iter()
            .map(|(name, cell)| (name.to_string(), cell.json()))
            .collect(),
    )
}

/// A decimal as a spreadsheet number (a float: what a cell holds); an
/// error rather than a silent 0 if it has none.
pub fn spreadsheet_number(v: Decimal) -> Result<f64> {
    use rust_decimal::prelude::ToPrimitive;
    v.to_f64().ok_or_else(|| {
        crate::error::Error::RunFailed(format!("{v} cannot be written as a spreadsheet number"))
    })
}

/// A decimal with exactly `scale` decimals, rounded half away from zero
/// (`money::text`: the one rule).
pub fn decimal_text(v: Decimal, scale: u32) -> String {
    money::text(v, scale)
}

/// Rows of `(column, Cell)` as a frame, columns named and typed after the
/// first row: money as Decimal(38, scale), counts as Int64, text as String.
pub fn frame_of(table: &[Vec<(&'static str, Cell)>]) -> Result<DataFrame> {
    let Some(first) = table.first() else {
        return Ok(DataFrame::empty());
    };
    let mut out = Vec::with_capacity(first.len());
    for (i, (name, sample)) in first.iter().enumerate() {
        let column = match sample {
            Cell::Text(_) => Column::new(
                (*name).into(),
                table
                    .iter()
                    .map(|r| match &r[i].1 {
                        Cell::Text(v) => v.clone(),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Cell::Int(_) => Column::new(
                (*name).into(),
                table
                    .iter()
                    .map(|r| match &r[i].1 {
                        Cell::Int(v) => *v,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Cell::Bool(_) => Column::new(
                (*name).into(),
                table
                    .iter()
                    .map(|r| match &r[i].1 {
                        Cell::Bool(v) => Some(*v),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Cell::Decimal(_, scale) => {
                let values: Int128Chunked = table
                    .iter()
                    .map(|r| match &r[i].1 {
                        Cell::Decimal(v, _) => v.map(|v| {
                            let mut v = money::round_to(v, *scale);
                            v.rescale(*scale);
                            v.mantissa()
                        }),
                        _ => None,
                    })
                    .collect();
                values
                    .into_decimal(Some(38), *scale as usize)?
                    .into_series()
                    .with_name((*name).into())
                    .into_column()
            }
        };
        out.push(column);
    }
    Ok(DataFrame::new(out)?)
}

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [&str; 6] = ["=", "+", "-", "@", "\t", "\r"];

/// Whether a spreadsheet would read a text cell starting so as a formula.
fn reads_as_formula(text: &[u8]) -> bool {
    FORMULA_STARTS
        .iter()
        .any(|s| text.starts_with(s.as_bytes()))
}

/// How CSV writes a UTC instant.
const INSTANT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// A text cell as spreadsheets must get it: a leading `'` when it would
/// otherwise be read as a formula (the same guard `csv_frame` applies).
pub fn guard_formula(text: &str) -> String {
    if reads_as_formula(text.as_bytes()) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// How CSV writes money: the stored 6 decimals (reports), or every digit
/// the value has (`query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyText {
    Stored,
    Exact,
}

/// The table as CSV holds it: text cells guarded against formula
/// injection, money as text with 6 decimals, numbers left alone.
pub fn csv_frame(df: &DataFrame) -> Result<DataFrame> {
    csv_frame_with(df, MoneyText::Stored)
}

fn csv_frame_with(df: &DataFrame, money_text: MoneyText) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        let column = match c.dtype() {
            DataType::String => {
                let name = c.name().clone();
                let starts = FORMULA_STARTS
                    .iter()
                    .map(|s| col(name.clone()).str().starts_with(lit(*s)))
                    .reduce(|a, b| a.or(b))
                    .expect("non-empty");
                let guarded = DataFrame::new(vec![c.clone()])?
                    .lazy()
                    .select([when(starts)
                        .then(lit("'") + col(name.clone()))
                        .otherwise(col(name.clone()))
                        .alias(name.clone())])
                    .collect()?;
                guarded.column(&name)?.clone()
            }
            dtype if money::is_money(dtype) => match money_text {
                MoneyText::Stored => money::to_text(c)?,
                MoneyText::Exact => money::to_exact_text(c)?,
            },
            _ => c.clone(),
        };
        columns.push(column);
    }
    Ok(DataFrame::new(columns)?)
}

/// A JSON array, pretty-printed, serialized an element at a time: a long
/// report's rows are never all held as JSON values at once.
pub fn json_array(rows: impl Iterator<Item = serde_json::Value>) -> Vec<u8> {
    use serde::Serializer as _;
    let mut out = Vec::new();
    serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::new())
        .collect_seq(rows)
        .expect("JSON values serialize");
    out.push(b'\n');
    out
}

/// A frame as CSV bytes as the contract says: header, RFC 4180 quoting,
/// UTF-8, the formula guard on text cells, money with 6 decimals.
pub fn csv_bytes(df: &DataFrame, money_text: MoneyText) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_csv(&mut out, df, money_text)?;
    Ok(out)
}

/// Writes a frame as CSV: the guard, the money text, UTC timestamps as
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn write_csv(mut out: impl Write, df: &DataFrame, money_text: MoneyText) -> Result<()> {
    if csv::write(&mut out, df, money_text)? {
        return Ok(());
    }
    write_csv_with_polars(out, df, money_text)
}

/// `write_csv` through Polars' writer: the types `csv::write` does not
/// know, and its oracle in tests.
fn write_csv_with_polars(out: impl Write, df: &DataFrame, money_text: MoneyText) -> Result<()> {
    let mut text = csv_frame_with(df, money_text)?;
    CsvWriter::new(out)
        .include_header(true)
        .with_quote_style(QuoteStyle::Necessary)
        .with_datetime_format(Some(INSTANT_FORMAT.into()))
        .finish(&mut text)?;
    Ok(())
}

/// The page of a tenant over `from..=to` on `serve`, for a link: only for
/// a real tenant id (a UUID, not the platform's nil one), so no text of a
/// report folder's can turn a link into another path or query.
pub fn tenant_page(
    tenant_id: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Option<String> {
    let id = uuid::Uuid::parse_str(tenant_id)
        .ok()
        .filter(|id| !id.is_nil())?;
    Some(format!("/tenants/{id}?from={from}&to={to}"))
}

/// A table for people: the terminal's aligned table and `serve`'s HTML
/// table are both drawn from it, so they show the same cells.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<TextCell>>,
    /// Which rows are totals (the page draws them bold; no other row is).
    pub total_rows: Vec<usize>,
}

/// One cell: text already made printable (no control character of the
/// data's), and whether it is a number (right-aligned).
#[derive(Debug, Clone)]
pub struct TextCell {
    pub text: String,
    pub number: bool,
    /// A page of `serve` this cell links to (a tenant's page); the
    /// terminal shows the text alone.
    pub link: Option<String>,
}

impl TextCell {
    /// Text from the data: control characters shown as U+FFFD.
    pub fn text(value: &str) -> TextCell {
        TextCell {
            text: crate::text::printable(value).into_owned(),
            number: false,
            link: None,
        }
    }

    /// A number (or a figure made of digits), right-aligned.
    pub fn number(text: String) -> TextCell {
        TextCell {
            text,
            number: true,
            link: None,
        }
    }

    /// The cell linking to `href` on the pages.
    pub fn linked(mut self, href: Option<String>) -> TextCell {
        self.link = href;
        self
    }
}

impl TextTable {
    pub fn new(header: &[&str]) -> TextTable {
        TextTable {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            total_rows: Vec::new(),
        }
    }

    /// Adds a total row (drawn bold on the pages).
    pub fn push_total(&mut self, cells: Vec<TextCell>) {
        self.total_rows.push(self.rows.len());
        self.rows.push(cells);
    }

    pub fn is_total(&self, row: usize) -> bool {
        self.total_rows.contains(&row)
    }

    /// Aligned, with Unicode borders, never wrapped (a terminal scrolls).
    pub fn terminal(&self) -> String {
        use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, CellAlignment, ContentArrangement};
        let mut table = comfy_table::Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.header.iter().map(Cell::new));
        for row in &self.rows {
            table.add_row(row.iter().map(|c| {
                let cell = Cell::new(&c.text);
                if c.number {
                    cell.set_alignment(CellAlignment::Right)
                } else {
                    cell
                }
            }));
        }
        table.to_string()
    }
}
