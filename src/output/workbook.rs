//! Report tables as workbook sheets that tie out: every cell holds the
//! exact figure (money with its 6 stored decimals) in a format that shows
//! what people read (cents, a percent, Yes/No), one format per column,
//! human headers with units, and a TOTAL row whose additive cells are
//! `SUM` formulas over the cells above, so any sum a person makes in the
//! spreadsheet agrees with it. Printed landscape, one page wide.

use rust_decimal::Decimal;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Worksheet, XlsxError};

use super::{guard_formula, spreadsheet_number, Cell};
use crate::error::{Error, Result};

pub fn xlsx_error(e: XlsxError) -> Error {
    Error::RunFailed(format!("cannot build the workbook: {e}"))
}

/// What a column holds, which decides its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Date,
    Count,
    Minutes,
    Money,
    /// A cost per call (or booking): a money ratio shown to 4 decimals.
    PerCall,
    /// A percent (`_pct`): the cell holds the fraction, shown as `12.34%`.
    Percent,
    /// How many times another figure (`_ratio`, `_factor`): `1.52x`.
    Ratio,
    YesNo,
}

impl Kind {
    /// The kind of column `name` whose cells are like `sample`.
    pub fn of(name: &str, sample: &Cell) -> Kind {
        match (name, sample) {
            ("day" | "first_day" | "last_day", _) => Kind::Date,
            (_, Cell::Bool(_)) => Kind::YesNo,
            ("billable_minutes", _) => Kind::Minutes,
            (n, Cell::Decimal(..)) if n.contains("cost_per_") => Kind::PerCall,
            (n, Cell::Decimal(..)) if n.ends_with("_ratio") || n.ends_with("_factor") => {
                Kind::Ratio
            }
            (n, Cell::Decimal(..)) if n.ends_with("_calls") => Kind::Minutes,
            (n, Cell::Decimal(..)) if n.ends_with("_pct") => Kind::Percent,
            (_, Cell::Decimal(..)) => Kind::Money,
            (_, Cell::Int(_)) => Kind::Count,
            (_, Cell::Text(_)) => Kind::Text,
        }
    }

    /// Whether a TOTAL of the column is the sum of its cells.
    fn adds_up(self) -> bool {
        matches!(self, Kind::Count | Kind::Minutes | Kind::Money)
    }

    fn number_format(self, money: &str) -> Option<String> {
        match self {
            Kind::Date => Some("yyyy-mm-dd".into()),
            Kind::Count => Some("#,##0".into()),
            Kind::Minutes => Some("#,##0.0".into()),
            Kind::Money => Some(money.into()),
            Kind::PerCall => Some("\"$\"#,##0.0000".into()),
            Kind::Percent => Some("0.00%".into()),
            Kind::Ratio => Some("0.00\"x\"".into()),
            Kind::Text | Kind::YesNo => None,
        }
    }
}

/// Money shown in cents; the cell keeps every stored decimal.
pub const CENTS: &str = "\"$\"#,##0.00";
/// Money shown in cents, and the sub-cent digits when there are any (a
/// restatement can be a fraction of a cent).
pub const CENTS_AND_FRACTIONS: &str = "\"$\"#,##0.00####";

/// A column's header for people: `total_cost_usd` is "Total cost (USD)",
/// `change_calls_pct` "Change calls (%)".
pub fn header(name: &str) -> String {
    let fixed = match name {
        "tenant_id" => Some("Tenant ID"),
        "business_name" => Some("Tenant"),
        "timezone" => Some("Time zone"),
        "comparable" => Some("Comparable with the previous period"),
        "zone_unknown" => Some("Zone unknown (billed on UTC days)"),
        "calls_missing_cost" => Some("Calls missing a cost"),
        "cost_mismatch_calls" => Some("Calls whose costs do not add up"),
        "share_of_total_pct" => Some("Share of total (%)"),
        "previous_run_id" => Some("Previous run ID"),
        "run_id" => Some("Run ID"),
        "restated_at" => Some("Restated at (UTC)"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return fixed.to_string();
    }
    let mut words: Vec<String> = Vec::new();
    let mut unit = None;
    for word in name.split('_') {
        match word {
            "usd" => unit = Some("(USD)"),
            "pct" => unit = Some("(%)"),
            "stt" | "llm" | "tts" => words.push(word.to_uppercase()),
            w => words.push(w.to_string()),
        }
    }
    let mut text = words.join(" ");
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    if let Some(unit) = unit {
        text.push(' ');
        text.push_str(unit);
    }
    text
}

/// The formats of one sheet, made once.
struct Formats {
    header: Format,
    plain: Vec<Format>,
    bold: Vec<Format>,
}

/// Writes `rows` (each a list of named cells, every row the same
/// columns) on `sheet` from row 0: a wrapped header, the lines, and, when
/// `total` is the index of a row, that row in bold with `SUM` formulas
/// where the column adds up to it.
pub fn write_table(
    sheet: &mut Worksheet,
    rows: &[Vec<(&'static str, Cell)>],
    total: Option<usize>,
    money_format: &str,
) -> Result<()> {
    let e = xlsx_error;
    let Some(first) = rows.first().filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let kinds: Vec<Kind> = first.iter().map(|(n, c)| Kind::of(n, c)).collect();
    let formats = Formats {
        header: Format::new().set_bold().set_text_wrap(),
        plain: kinds
            .iter()
            .map(|k| match k.number_format(money_format) {
                Some(f) => Format::new().set_num_format(f),
                None => Format::new(),
            })
            .collect(),
        bold: kinds
            .iter()
            .map(|k| match k.number_format(money_format) {
                Some(f) => Format::new().set_num_format(f).set_bold(),
                None => Format::new().set_bold(),
            })
            .collect(),
    };
    // Widths from what people read, not from the headers (they wrap).
    let mut widths: Vec<usize> = first
        .iter()
        .map(|(n, _)| {
            header(n)
                .split(' ')
                .map(|w| w.chars().count())
                .max()
                .unwrap_or(4)
        })
        .collect();
    for (col, (name, _)) in first.iter().enumerate() {
        sheet
            .write_string_with_format(0, col as u16, header(name), &formats.header)
            .map_err(e)?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = (i + 1) as u32;
        let is_total = total == Some(i);
        for (col, (_, cell)) in row.iter().enumerate() {
            let c = col as u16;
            let kind = kinds[col];
            let format = if is_total {
                &formats.bold[col]
            } else {
                &formats.plain[col]
            };
            let shown = match cell {
                Cell::Text(None) | Cell::Int(None) | Cell::Decimal(None, _) => {
                    continue;
                }
                Cell::Text(Some(text)) if kind == Kind::Date => {
                    let date = ExcelDateTime::parse_from_str(text).map_err(e)?;
                    sheet
                        .write_datetime_with_format(r, c, &date, format)
                        .map_err(e)?;
                    10
                }
                Cell::Text(Some(text)) => {
                    let text = guard_formula(text);
                    sheet
                        .write_string_with_format(r, c, &text, format)
                        .map_err(e)?;
                    text.chars().count()
                }
                Cell::Bool(v) => {
                    let text = if *v { "Yes" } else { "No" };
                    sheet
                        .write_string_with_format(r, c, text, format)
                        .map_err(e)?;
                    3
                }
                Cell::Int(Some(v)) => {
                    let value = Decimal::from(*v);
                    write_number(sheet, r, c, value, kind, is_total, rows, col, total, format)?;
                    grouped_len(value, 0)
                }
                Cell::Decimal(Some(v), _) => {
                    let value = if kind == Kind::Percent {
                        v / Decimal::ONE_HUNDRED
                    } else {
                        *v
                    };
                    write_number(sheet, r, c, value, kind, is_total, rows, col, total, format)?;
                    match kind {
                        Kind::Percent => 8,
                        Kind::PerCall => grouped_len(*v, 4) + 1,
                        Kind::Minutes => grouped_len(*v, 1),
                        _ => grouped_len(*v, 2) + 1,
                    }
                }
            };
            widths[col] = widths[col].max(shown);
        }
    }
    let mut header_lines = 1;
    for (col, width) in widths.iter().enumerate() {
        let width = (*width as f64 + 2.0).min(60.0);
        sheet.set_column_width(col as u16, width).map_err(e)?;
        // Bold text and the cell's padding: a character less per line.
        header_lines = header_lines.max(wrapped_lines(
            &header(first[col].0),
            (width as usize).saturating_sub(1),
        ));
    }
    // Rows do not grow to wrapped text in every reader (LibreOffice cut
    // the first line of three-line headers when printing).
    sheet
        .set_row_height(0, 15.0 * header_lines as f64 + 3.0)
        .map_err(e)?;
    let last_line = rows.len() - usize::from(total.is_some());
    sheet.set_freeze_panes(1, 0).map_err(e)?;
    sheet
        .autofilter(0, 0, last_line as u32, (first.len() - 1) as u16)
        .map_err(e)?;
    print_wide(sheet)?;
    sheet.set_repeat_rows(0, 0).map_err(e)?;
    Ok(())
}

/// Printed (or exported to PDF) landscape and one page wide, however many
/// pages long.
pub fn print_wide(sheet: &mut Worksheet) -> Result<()> {
    sheet.set_landscape().set_print_fit_to_pages(1, 0);
    Ok(())
}

/// How many lines `text` wraps to at `width` characters, word by word.
fn wrapped_lines(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let (mut lines, mut used) = (1, 0);
    for word in text.split(' ') {
        let len = word.chars().count();
        if used > 0 && used + 1 + len > width {
            lines += 1;
            used = len;
        } else {
            used += len + usize::from(used > 0);
        }
    }
    lines
}

/// The characters `value` takes with `decimals` and thousands separators.
fn grouped_len(value: Decimal, decimals: u32) -> usize {
    let text = crate::money::text(value, decimals);
    let digits = text
        .trim_start_matches('-')
        .split('.')
        .next()
        .map_or(1, str::len);
    text.len() + (digits.saturating_sub(1)) / 3
}

/// A number cell; in the TOTAL row of a column that adds up, a `SUM` of
/// the cells above (its cached result the exact sum) when that sum is the
/// total's own figure, else the figure itself (a TOTAL that also counts
/// what no line shows, such as previous-period days without a line).
#[allow(clippy::too_many_arguments)]
fn write_number(
    sheet: &mut Worksheet,
    r: u32,
    c: u16,
    value: Decimal,
    kind: Kind,
    is_total: bool,
    rows: &[Vec<(&'static str, Cell)>],
    col: usize,
    total: Option<usize>,
    format: &Format,
) -> Result<()> {
    let e = xlsx_error;
    if is_total && kind.adds_up() && r > 1 {
        let above: Decimal = rows[..total.unwrap_or(0)]
            .iter()
            .filter_map(|row| match &row[col].1 {
                Cell::Int(v) => v.map(Decimal::from),
                Cell::Decimal(v, _) => *v,
                _ => None,
            })
            .sum();
        // Equal to the figure, or within what 28-digit quotients (minutes)
        // lose: the SUM shows the same.
        if (above - value).abs() <= Decimal::new(1, 12) {
            let range = rust_xlsxwriter::utility::cell_range(1, c, r - 1, c);
            let formula = Formula::new(format!("=SUM({range})"))
                .set_result(spreadsheet_number(value)?.to_string());
            sheet
                .write_formula_with_format(r, c, formula, format)
                .map_err(e)?;
            return Ok(());
        }
    }
    sheet
        .write_number_with_format(r, c, spreadsheet_number(value)?, format)
        .map_err(e)?;
    Ok(())
}

/// Lines of text on an About sheet, wrapped at the column's width; an
/// empty line separates sections.
pub fn about_lines(sheet: &mut Worksheet, lines: &[String]) -> Result<()> {
    let e = xlsx_error;
    let wrap = Format::new()
        .set_text_wrap()
        .set_align(rust_xlsxwriter::FormatAlign::Top);
    sheet.set_column_width(0, 90).map_err(e)?;
    for (r, line) in lines.iter().enumerate() {
        sheet
            .write_string_with_format(r as u32, 0, guard_formula(line), &wrap)
            .map_err(e)?;
        // Rows do not grow to wrapped text on their own in every reader.
        let rows_of_text = (line.chars().count() / 80 + 1) as f64;
        sheet
            .set_row_height(r as u32, 15.0 * rows_of_text)
            .map_err(e)?;
    }
    sheet.set_landscape().set_print_fit_to_pages(1, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_say_what_and_in_which_unit() {
        assert_eq!(header("total_cost_usd"), "Total cost (USD)");
        assert_eq!(
            header("cost_per_completed_call_usd"),
            "Cost per completed call (USD)"
        );
        assert_eq!(header("change_total_cost_pct"), "Change total cost (%)");
        assert_eq!(header("previous_llm_cost_usd"), "Previous LLM cost (USD)");
        assert_eq!(header("billable_minutes"), "Billable minutes");
        assert_eq!(header("old_stt_cost_usd"), "Old STT cost (USD)");
    }

    #[test]
    fn headers_wrap_word_by_word() {
        assert_eq!(wrapped_lines("Previous STT cost (USD)", 10), 3);
        assert_eq!(wrapped_lines("Calls", 10), 1);
    }

    #[test]
    fn widths_count_thousands_separators() {
        assert_eq!(grouped_len(Decimal::new(1254701, 2), 2), "12,547.01".len());
        assert_eq!(grouped_len(Decimal::new(-5, 0), 2), "-5.00".len());
    }
}
