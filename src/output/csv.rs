//! CSV written straight from a frame's arrays, a row at a time into one
//! buffer, with exactly the bytes Polars' `CsvWriter` gives the same frame
//! after `csv_frame_with` (header, `QuoteStyle::Necessary`, the formula
//! guard, money text, `YYYY-MM-DDTHH:MM:SS.ffffffZ`).
//!
//! Why not Polars' writer: the report files are one CSV per table and day
//! (720 on a 90-day window), and for each one the formula guard ran a lazy
//! query per text column and money became a text column through
//! `rust_decimal` first; the CSV encoders were about a tenth of the
//! engine's instructions (callgrind, bench/HISTORY.md). Types this writer
//! does not know (lists, times, other time zones, ...) still go through
//! Polars (`super::write_csv`), which is also the oracle the property test
//! compares this writer with.

use std::io::Write;

use polars::prelude::*;
use polars_arrow::array::{Array, BooleanArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::temporal_conversions::{timestamp_us_to_datetime_opt, EPOCH_DAYS_FROM_CE};

use super::{reads_as_formula, MoneyText, INSTANT_FORMAT};
use crate::error::Result;
use crate::money;

/// Bytes gathered before each write to the output.
const FLUSH_BYTES: usize = 1 << 20;

/// One column's values, as this writer reads them.
enum Cells<'a> {
    Null,
    Text(&'a Utf8ViewArray),
    Int(&'a PrimitiveArray<i64>),
    UInt(&'a PrimitiveArray<u64>),
    Float64(&'a PrimitiveArray<f64>),
    Float32(&'a PrimitiveArray<f32>),
    Bool(&'a BooleanArray),
    /// Days since 1970-01-01, and the column's name.
    Date(&'a PrimitiveArray<i32>, &'a str),
    /// A UTC instant in microseconds, and the column's name.
    Instant(&'a PrimitiveArray<i64>, &'a str),
    Money {
        values: &'a PrimitiveArray<i128>,
        scale: u32,
        name: &'a str,
    },
}

/// Writes `df` as CSV when every column is of a type this writer knows;
/// `Ok(false)` (nothing written) when one is not.
pub(super) fn write(out: &mut dyn Write, df: &DataFrame, money_text: MoneyText) -> Result<bool> {
    let Some(series) = prepared(df)? else {
        return Ok(false);
    };
    let Some(cells) = series
        .iter()
        .map(|s| cells_of(s, df.height()))
        .collect::<Option<Vec<Cells>>>()
    else {
        return Ok(false);
    };
    let mut buf = Vec::with_capacity(FLUSH_BYTES + 4096);
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        text_cell(&mut buf, s.name().as_bytes());
    }
    buf.push(b'\n');
    // A frame without columns is its (empty) header alone, as in Polars.
    let rows = if cells.is_empty() { 0 } else { df.height() };
    for row in 0..rows {
        for (i, column) in cells.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            cell(&mut buf, column, row, money_text)?;
        }
        buf.push(b'\n');
        if buf.len() >= FLUSH_BYTES {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(io)?;
    Ok(true)
}

fn io(e: std::io::Error) -> crate::error::Error {
    PolarsError::from(e).into()
}

/// The frame's columns as single arrays, integers widened to 64 bits;
/// `None` when a column's type is not one this writer knows.
fn prepared(df: &DataFrame) -> Result<Option<Vec<Series>>> {
    let mut series = Vec::with_capacity(df.width());
    for column in df.get_columns() {
        let s = column.as_materialized_series();
        let s = match s.dtype() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => s.cast(&DataType::Int64)?,
            DataType::Datetime(TimeUnit::Microseconds, zone)
                if zone.as_ref().is_none_or(|z| *z == TimeZone::UTC) =>
            {
                s.clone()
            }
            DataType::Null
            | DataType::String
            | DataType::Int64
            | DataType::UInt64
            | DataType::Float64
            | DataType::Float32
            | DataType::Boolean
            | DataType::Date
            | DataType::Decimal(_, Some(_)) => s.clone(),
            _ => return Ok(None),
        };
        series.push(s.rechunk());
    }
    Ok(Some(series))
}

/// `None` when the column's array is not what its type promises (then
/// Polars writes the frame, rather than this writer leaving cells empty).
fn cells_of(s: &Series, rows: usize) -> Option<Cells<'_>> {
    fn one<T: 'static>(chunks: &[Box<dyn Array>]) -> Option<&T> {
        chunks.first().and_then(|a| a.as_any().downcast_ref::<T>())
    }
    let chunks = s.chunks();
    let cells = match s.dtype() {
        DataType::Null => Some(Cells::Null),
        DataType::String => one(chunks).map(Cells::Text),
        DataType::Int64 => one(chunks).map(Cells::Int),
        DataType::UInt64 => one(chunks).map(Cells::UInt),
        DataType::Float64 => one(chunks).map(Cells::Float64),
        DataType::Float32 => one(chunks).map(Cells::Float32),
        DataType::Boolean => one(chunks).map(Cells::Bool),
        DataType::Date => one(chunks).map(|a| Cells::Date(a, s.name().as_str())),
        DataType::Datetime(_, _) => one(chunks).map(|a| Cells::Instant(a, s.name().as_str())),
        DataType::Decimal(_, Some(scale)) => one(chunks).map(|values| Cells::Money {
            values,
            scale: *scale as u32,
            name: s.name().as_str(),
        }),
        _ => None,
    };
    match cells {
        // An empty column may have no chunk at all: no row will ask.
        None if rows == 0 => Some(Cells::Null),
        cells => cells,
    }
}

fn cell(buf: &mut Vec<u8>, column: &Cells, row: usize, money_text: MoneyText) -> Result<()> {
    macro_rules! valid {
        ($array:expr) => {{
            let array = $array;
            if !array.is_valid(row) {
                return Ok(());
            }
            array.value(row)
        }};
    }
    match column {
        Cells::Null => {}
        Cells::Text(a) => {
            let text = valid!(a).as_bytes();
            if reads_as_formula(text) {
                let mut guarded = Vec::with_capacity(text.len() + 1);
                guarded.push(b'\'');
                guarded.extend_from_slice(text);
                text_cell(buf, &guarded);
            } else {
                text_cell(buf, text);
            }
        }
        Cells::Int(a) => buf.extend_from_slice(itoa::Buffer::new().format(valid!(a)).as_bytes()),
        Cells::UInt(a) => buf.extend_from_slice(itoa::Buffer::new().format(valid!(a)).as_bytes()),
        Cells::Float64(a) => buf.extend_from_slice(ryu::Buffer::new().format(valid!(a)).as_bytes()),
        Cells::Float32(a) => buf.extend_from_slice(ryu::Buffer::new().format(valid!(a)).as_bytes()),
        Cells::Bool(a) => buf.extend_from_slice(if valid!(a) { b"true" } else { b"false" }),
        Cells::Date(a, name) => {
            use chrono::Datelike;
            let days = valid!(a);
            // Polars' `date32_to_date_opt` overflows its addition near i32::MAX.
            let date = days
                .checked_add(EPOCH_DAYS_FROM_CE)
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| out_of_range(name, days))?;
            if (0..=9999).contains(&date.year()) {
                iso_date(buf, date);
            } else {
                // chrono's sign and width beyond four digits.
                write!(buf, "{date}").map_err(io)?;
            }
        }
        Cells::Instant(a, name) => {
            use chrono::{Datelike, Timelike};
            let micros = valid!(a);
            let at =
                timestamp_us_to_datetime_opt(micros).ok_or_else(|| out_of_range(name, micros))?;
            if (0..=9999).contains(&at.year()) {
                iso_date(buf, at.date());
                buf.push(b'T');
                two_digits(buf, at.hour());
                buf.push(b':');
                two_digits(buf, at.minute());
                buf.push(b':');
                two_digits(buf, at.second());
                buf.push(b'.');
                six_digits(buf, at.nanosecond() / 1_000);
                buf.push(b'Z');
            } else {
                write!(buf, "{}", at.format(INSTANT_FORMAT)).map_err(io)?;
            }
        }
        Cells::Money {
            values,
            scale,
            name,
        } => {
            let value = valid!(values);
            // At the stored scale both texts are the amount's own digits
            // (the exact text of a 6-decimal amount has 6 decimals); any
            // other scale rounds or trims through `money`, as before.
            if *scale == money::SCALE && value.unsigned_abs() < 1 << 96 {
                six_decimals(buf, value);
            } else {
                let amount = money::to_decimal(value, *scale, name)?;
                buf.extend_from_slice(
                    match money_text {
                        MoneyText::Stored => money::format(amount),
                        MoneyText::Exact => money::exact_text(amount),
                    }
                    .as_bytes(),
                );
            }
        }
    }
    Ok(())
}

/// A date or instant chrono cannot hold (Polars' writer panicked on it).
fn out_of_range(column: &str, value: impl std::fmt::Display) -> crate::error::Error {
    polars_err!(ComputeError:
        "column {column}: {value} is beyond the dates a report can show; check the source rows of this column"
    )
    .into()
}

/// A text cell as `QuoteStyle::Necessary` writes it: `""` when empty,
/// quoted when it holds a comma, a line feed, a carriage return or a
/// quote, with quotes doubled.
fn text_cell(buf: &mut Vec<u8>, text: &[u8]) {
    if text.is_empty() {
        buf.extend_from_slice(b"\"\"");
        return;
    }
    if memchr::memchr3(b',', b'\n', b'\r', text).is_none() && memchr::memchr(b'"', text).is_none() {
        buf.extend_from_slice(text);
        return;
    }
    buf.push(b'"');
    for &b in text {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

/// An amount in millionths as `[-]units.dddddd`.
fn six_decimals(buf: &mut Vec<u8>, value: i128) {
    if value < 0 {
        buf.push(b'-');
    }
    let magnitude = value.unsigned_abs();
    buf.extend_from_slice(itoa::Buffer::new().format(magnitude / 1_000_000).as_bytes());
    buf.push(b'.');
    six_digits(buf, (magnitude % 1_000_000) as u32);
}

/// `YYYY-MM-DD` of a date in years 0 to 9999.
fn iso_date(buf: &mut Vec<u8>, date: chrono::NaiveDate) {
    use chrono::Datelike;
    four_digits(buf, date.year() as u32);
    buf.push(b'-');
    two_digits(buf, date.month());
    buf.push(b'-');
    two_digits(buf, date.day());
}

/// The six digits of n below 1,000,000, leading zeros kept.
fn six_digits(buf: &mut Vec<u8>, n: u32) {
    for power in [100_000, 10_000, 1_000, 100, 10, 1] {
        buf.push(b'0' + (n / power % 10) as u8);
    }
}

fn two_digits(buf: &mut Vec<u8>, n: u32) {
    buf.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

fn four_digits(buf: &mut Vec<u8>, n: u32) {
    two_digits(buf, n / 100);
    two_digits(buf, n % 100);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What Polars' writer gives the same frame: the oracle.
    fn by_polars(df: &DataFrame, money_text: MoneyText) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        super::super::write_csv_with_polars(&mut out, df, money_text)?;
        Ok(out)
    }

    fn by_writer(df: &DataFrame, money_text: MoneyText) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        assert!(write(&mut out, df, money_text)?, "a type the writer knows");
        Ok(out)
    }

    /// Both writers' bytes for both money texts, which must be equal.
    fn same_as_polars(df: &DataFrame) {
        for money_text in [MoneyText::Stored, MoneyText::Exact] {
            let ours = by_writer(df, money_text).unwrap();
            let theirs = by_polars(df, money_text).unwrap();
            assert!(
                ours == theirs,
                "{}\nagainst Polars'\n{}\nfor {df:?}",
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            );
        }
    }

    fn money(name: &str, values: Vec<Option<i128>>, scale: usize) -> Column {
        Int128Chunked::from_iter(values)
            .into_decimal(Some(38), scale)
            .unwrap()
            .into_series()
            .with_name(name.into())
            .into_column()
    }

    #[test]
    fn a_report_frame_is_written_as_polars_writes_it() {
        let df = DataFrame::new(vec![
            Column::new(
                "tenant".into(),
                [
                    Some("a,b"),
                    Some("=cmd"),
                    None,
                    Some(""),
                    Some("say \"hi\""),
                    Some("-1"),
                ],
            ),
            Column::new(
                "calls".into(),
                [
                    Some(1i64),
                    None,
                    Some(-3),
                    Some(0),
                    Some(i64::MAX),
                    Some(i64::MIN),
                ],
            ),
            Column::new(
                "rate".into(),
                [
                    Some(0.1f64),
                    Some(f64::NAN),
                    None,
                    Some(-0.0),
                    Some(1e300),
                    Some(f64::INFINITY),
                ],
            ),
            Column::new(
                "ok".into(),
                [
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(true),
                    Some(false),
                ],
            ),
            money(
                "cost",
                vec![
                    Some(12_500_000),
                    Some(-1),
                    None,
                    Some(0),
                    Some(123_456_789_012_345),
                    Some(-999_999),
                ],
                6,
            ),
            money(
                "exact",
                vec![
                    Some(125),
                    Some(-5),
                    None,
                    Some(0),
                    Some(10_000_000_000),
                    Some(-15),
                ],
                10,
            ),
        ])
        .unwrap();
        same_as_polars(&df);
    }

    #[test]
    fn an_amount_past_96_bits_is_refused_both_ways() {
        for scale in [6, 10] {
            let df = DataFrame::new(vec![money("cost", vec![Some(1i128 << 96)], scale)]).unwrap();
            for money_text in [MoneyText::Stored, MoneyText::Exact] {
                let ours = by_writer(&df, money_text).unwrap_err().to_string();
                let theirs = by_polars(&df, money_text).unwrap_err().to_string();
                assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn a_long_frame_is_written_across_flushes() {
        let rows = 20_000;
        let text: Vec<String> = (0..rows).map(|i| format!("{i:>60}")).collect();
        let df = DataFrame::new(vec![
            Column::new("text".into(), text),
            Column::new("n".into(), (0..rows as i64).collect::<Vec<_>>()),
        ])
        .unwrap();
        assert!(by_writer(&df, MoneyText::Stored).unwrap().len() > FLUSH_BYTES);
        same_as_polars(&df);
    }

    #[test]
    fn a_date_or_instant_chrono_cannot_hold_is_an_error_naming_its_column() {
        let day = Int32Chunked::from_iter([Some(i32::MAX)])
            .into_date()
            .into_series();
        let at = Int64Chunked::from_iter([Some(i64::MAX)])
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_series();
        for (name, series) in [("day", day), ("at", at)] {
            let df = DataFrame::new(vec![series.with_name(name.into()).into_column()]).unwrap();
            let e = by_writer(&df, MoneyText::Stored).unwrap_err().to_string();
            assert!(e.contains(&format!("column {name}")), "{e}");
        }
    }

    #[test]
    fn an_unknown_type_goes_to_polars() {
        let df = DataFrame::new(vec![Column::new("n".into(), [Some(1i128)])]).unwrap();
        assert!(!write(&mut Vec::new(), &df, MoneyText::Stored).unwrap());
    }

    #[test]
    fn an_empty_frame_is_its_header() {
        let df = DataFrame::new(vec![
            Column::new("a b".into(), Vec::<Option<&str>>::new()),
            money("cost", vec![], 6),
        ])
        .unwrap();
        same_as_polars(&df);
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::weighted(
            0.9,
            prop::collection::vec(
                prop::sample::select(vec![
                    "a", "Z", "0", " ", ",", "\"", "\n", "\r", "=", "+", "-", "@", "\t", "é", "€",
                    "'",
                ]),
                0..6,
            )
            .prop_map(|parts| parts.concat()),
        )
    }

    fn rows() -> impl Strategy<Value = Vec<RowValues>> {
        prop::collection::vec(row(), 0..12)
    }

    type RowValues = (
        Option<String>,
        (
            Option<i32>,
            Option<i64>,
            Option<u64>,
            Option<i8>,
            Option<u32>,
        ),
        (Option<f64>, Option<f32>, Option<bool>),
        (Option<i32>, Option<i64>),
        (Option<i128>, Option<i128>),
    );

    fn row() -> impl Strategy<Value = RowValues> {
        let float = prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(-0.0),
            (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 1000.0),
        ];
        // Up to what an exact amount holds (96 bits; beyond is an error,
        // `an_amount_past_96_bits_is_refused_both_ways`).
        let amount = prop_oneof![
            -10_000_000_000i128..10_000_000_000,
            -(1i128 << 96) + 1..(1i128 << 96),
        ];
        (
            text(),
            (
                prop::option::of(any::<i32>()),
                prop::option::of(any::<i64>()),
                prop::option::of(any::<u64>()),
                prop::option::of(any::<i8>()),
                prop::option::of(any::<u32>()),
            ),
            (
                prop::option::of(float),
                prop::option::of(any::<f32>()),
                prop::option::of(any::<bool>()),
            ),
            (
                // Days and microseconds reaching past years 0 and 9999.
                prop::option::of(-800_000i32..3_000_000),
                prop::option::of(-70_000_000_000_000_000i64..260_000_000_000_000_000),
            ),
            (prop::option::of(amount.clone()), prop::option::of(amount)),
        )
    }

    /// A column of one of a row's values.
    fn of<T>(rows: &[RowValues], name: &str, value: impl Fn(&RowValues) -> T) -> Column
    where
        Series: NamedFrom<Vec<T>, [T]>,
    {
        Column::new(name.into(), rows.iter().map(value).collect::<Vec<_>>())
    }

    fn frame(rows: &[RowValues]) -> DataFrame {
        let column = |name: &str, values: Vec<Option<String>>| Column::new(name.into(), values);
        let instants = Int64Chunked::from_iter(rows.iter().map(|r| r.3 .1))
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_series()
            .with_name("at".into())
            .into_column();
        let naive = Int64Chunked::from_iter(rows.iter().map(|r| r.3 .1))
            .into_datetime(TimeUnit::Microseconds, None)
            .into_series()
            .with_name("naive".into())
            .into_column();
        let dates = Int32Chunked::from_iter(rows.iter().map(|r| r.3 .0))
            .into_date()
            .into_series()
            .with_name("day".into())
            .into_column();
        DataFrame::new(vec![
            column("text", rows.iter().map(|r| r.0.clone()).collect()),
            of(rows, "i32", |r| r.1 .0),
            of(rows, "i64", |r| r.1 .1),
            of(rows, "u64", |r| r.1 .2),
            of(rows, "i8", |r| r.1 .3),
            of(rows, "u32", |r| r.1 .4),
            of(rows, "f64", |r| r.2 .0),
            of(rows, "f32", |r| r.2 .1),
            of(rows, "bool", |r| r.2 .2),
            dates,
            instants,
            naive,
            money("stored", rows.iter().map(|r| r.4 .0).collect(), 6),
            money("scaled", rows.iter().map(|r| r.4 .1).collect(), 10),
            Column::full_null("nothing".into(), rows.len(), &DataType::Null),
        ])
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_frame_is_written_as_polars_writes_it(rows in rows()) {
            let df = frame(&rows);
            same_as_polars(&df);
            // Arrays that start at an offset, and columns of two chunks.
            same_as_polars(&df.slice(1, rows.len()));
            let mut stacked = df.clone();
            stacked.vstack_mut(&df.slice(1, rows.len())).unwrap();
            same_as_polars(&stacked);
        }

        #[test]
        fn a_column_name_is_quoted_as_polars_quotes_it(name in text()) {
            let name = name.unwrap_or_default();
            let df = DataFrame::new(vec![Column::new(name.as_str().into(), [Some(1i64)])]).unwrap();
            same_as_polars(&df);
        }
    }
}
