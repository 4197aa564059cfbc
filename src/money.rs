//! Exact money. Costs stay Polars Decimals (i128 with a scale) from the
//! source to the sinks; these helpers move them into `rust_decimal` for
//! Postgres and text, and round to the stored scale of 6 the way Postgres
//! rounds numeric (half away from zero). Polars' own Decimal cast truncates
//! and turns overflow into NULL, so it is never used to rescale money.

use polars::prelude::*;
use rust_decimal::Decimal;

/// Stored scale of every money column: numeric(20,6).
pub const SCALE: u32 = 6;

/// An amount of `column` as a `rust_decimal` (a 96-bit mantissa, about
/// 28 digits): a larger one is an error naming the column, never a panic
/// and never a rounded amount.
pub(crate) fn to_decimal(value: i128, scale: u32, column: &str) -> PolarsResult<Decimal> {
    Decimal::try_from_i128_with_scale(value, scale).map_err(|_| {
        polars_err!(ComputeError:
            "column {column}: the amount {value}e-{scale} has more digits than an exact amount can hold (28); check the source rows of this column"
        )
    })
}

pub(crate) fn overflow(column: &str) -> PolarsError {
    polars_err!(ComputeError:
        "column {column}: the sum exceeds 38 digits and cannot be exact; check the source rows of this column"
    )
}

/// The values of a Decimal column as `rust_decimal`s.
pub fn decimals(column: &Column) -> PolarsResult<Vec<Option<Decimal>>> {
    let ca = column.as_materialized_series().decimal()?;
    let scale = ca.scale() as u32;
    ca.physical()
        .into_iter()
        .map(|v| v.map(|v| to_decimal(v, scale, column.name())).transpose())
        .collect()
}

/// The exact sum of a Decimal column (NULLs add nothing); a sum beyond
/// what an exact amount can hold is an error naming the column.
pub fn sum(column: &Column) -> PolarsResult<Decimal> {
    let ca = column.as_materialized_series().decimal()?;
    let scale = ca.scale() as u32;
    let add = |total: i128, v: &i128| total.checked_add(*v).ok_or_else(|| overflow(column.name()));
    // Array by array over the set values: no Option per row.
    let mut total: i128 = 0;
    for array in ca.physical().downcast_iter() {
        total = match array.validity() {
            None => array.values().iter().try_fold(total, add)?,
            Some(_) => array
                .non_null_values_iter()
                .try_fold(total, |t, v| add(t, &v))?,
        };
    }
    to_decimal(total, scale, column.name())
}

/// Rounds half away from zero to 6 places, as Postgres stores numeric(20,6).
pub fn round(value: Decimal) -> Decimal {
    round_to(value, SCALE)
}

/// Rounds half away from zero to `decimals` places: the one rounding
/// rule of every figure the engine rounds, stored or shown. It is how
/// Postgres rounds numeric and how Excel and LibreOffice display a cell
/// (a cell holding 0.125 in a `0.00` format shows 0.13), so a screen, a
/// page and a workbook show the same cents for the same amount.
pub fn round_to(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(
        decimals,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    )
}

/// An amount as people read it: exactly `decimals` places, rounded
/// half away from zero (`round_to`), e.g. `12547.02` for 12547.018428.
/// Every screen, page and note formats money through this.
pub fn text(value: Decimal, decimals: u32) -> String {
    let mut v = round_to(value, decimals);
    v.rescale(decimals);
    v.to_string()
}

/// Cents for people: `text(value, 2)`.
pub fn cents_text(value: Decimal) -> String {
    text(value, 2)
}

/// Text with exactly 6 decimals, e.g. `12.500000`.
pub fn format(value: Decimal) -> String {
    let mut v = round(value);
    v.rescale(SCALE);
    v.to_string()
}

/// Text of the exact value with at least 6 decimals (more only when the
/// value has them), e.g. `12.500000`, `0.0000012500`... as `0.00000125`.
pub fn exact_text(value: Decimal) -> String {
    let mut v = value.normalize();
    if v.scale() < SCALE {
        v.rescale(SCALE);
    }
    v.to_string()
}

/// A Decimal column as exact text (`exact_text`), for `query` output.
pub fn to_exact_text(column: &Column) -> PolarsResult<Column> {
    let values: StringChunked = decimals(column)?
        .into_iter()
        .map(|v| v.map(exact_text))
        .collect();
    Ok(values.with_name(column.name().clone()).into_column())
}

/// A Decimal column as numeric(20,6) values: Decimal(20,6), rounded.
pub fn to_stored_scale(column: &Column) -> PolarsResult<Column> {
    let values: Int128Chunked = decimals(column)?
        .into_iter()
        .map(|v| {
            v.map(|v| {
                let mut r = round(v);
                r.rescale(SCALE);
                r.mantissa()
            })
        })
        .collect();
    Ok(values
        .into_decimal(Some(20), SCALE as usize)?
        .into_series()
        .with_name(column.name().clone())
        .into_column())
}

/// A Decimal column as text with 6 decimals, for CSV.
pub fn to_text(column: &Column) -> PolarsResult<Column> {
    let values: StringChunked = decimals(column)?
        .into_iter()
        .map(|v| v.map(format))
        .collect();
    Ok(values.with_name(column.name().clone()).into_column())
}

/// Whether a column holds money (a Decimal): files round it to 6 places,
/// CSV writes it as exact decimal text.
pub fn is_money(dtype: &DataType) -> bool {
    matches!(dtype, DataType::Decimal(_, _))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn exact_text_keeps_every_digit_and_at_least_six() {
        let text = |s: &str| exact_text(Decimal::from_str(s).unwrap());
        assert_eq!(text("12.5"), "12.500000");
        assert_eq!(text("0.0000012500"), "0.00000125");
        assert_eq!(text("-3"), "-3.000000");
        assert_eq!(text("1234567.1234567891"), "1234567.1234567891");
    }

    /// The demo's first screen showed 12547.01 for 12547.018428 (Rust's
    /// `{:.2}` of a Decimal truncates) while `costs` said 12547.02; and
    /// the tables rounded half-even while the workbook's cells display
    /// half away from zero. One rule now: x.xx5 goes up, -x.xx5 down.
    #[test]
    fn money_for_people_was_truncated_or_rounded_half_even() {
        let text = |s: &str, d| super::text(Decimal::from_str(s).unwrap(), d);
        assert_eq!(text("12547.018428", 2), "12547.02");
        assert_eq!(text("0.125", 2), "0.13");
        assert_eq!(text("0.135", 2), "0.14");
        assert_eq!(text("2.005", 2), "2.01");
        assert_eq!(text("-2.005", 2), "-2.01");
        assert_eq!(text("-0.004", 2), "0.00");
        assert_eq!(text("1.00005", 4), "1.0001");
        assert_eq!(text("7", 2), "7.00");
        assert_eq!(
            cents_text(Decimal::from_str("87528.035").unwrap()),
            "87528.04"
        );
    }

    #[test]
    fn rounds_half_away_from_zero_like_postgres() {
        assert_eq!(format(Decimal::from_str("0.0000005").unwrap()), "0.000001");
        assert_eq!(
            format(Decimal::from_str("-0.0000005").unwrap()),
            "-0.000001"
        );
        assert_eq!(format(Decimal::from_str("12.5").unwrap()), "12.500000");
    }

    fn money_column(values: &[Option<i128>]) -> Column {
        Int128Chunked::from_iter(values.iter().copied())
            .into_decimal(Some(38), 10)
            .unwrap()
            .into_series()
            .with_name("total_cost_usd".into())
            .into_column()
    }

    #[test]
    fn amounts_beyond_96_bits_are_errors_naming_the_column_not_panics() {
        let huge = money_column(&[Some(1i128 << 100)]);
        let e = decimals(&huge).unwrap_err().to_string();
        assert!(e.contains("total_cost_usd"), "{e}");
        let e = sum(&huge).unwrap_err().to_string();
        assert!(e.contains("total_cost_usd"), "{e}");
        // Each value fits an i128, their sum does not: checked, not wrapped.
        let widest = 10i128.pow(38) - 1;
        let near_max = money_column(&[Some(widest), Some(widest)]);
        let e = sum(&near_max).unwrap_err().to_string();
        assert!(e.contains("exceeds 38 digits"), "{e}");
        assert!(to_stored_scale(&huge).is_err());
    }

    #[test]
    fn sums_are_exact() {
        let s = Series::new("x".into(), [Some(1i128), Some(2), None])
            .i128()
            .unwrap()
            .clone()
            .into_decimal(Some(38), 10)
            .unwrap()
            .into_series()
            .into_column();
        assert_eq!(sum(&s).unwrap(), Decimal::from_str("0.0000000003").unwrap());
    }
}
