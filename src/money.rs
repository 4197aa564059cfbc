//! Exact money. Costs stay Polars Decimals (i128 with a scale) from the
//! source to the sinks; these helpers move them into `rust_decimal` for
//! Postgres and text, and round to the stored scale of 6 the way Postgres
//! rounds numeric (half away from zero). Polars' own Decimal cast truncates
//! and turns overflow into NULL, so it is never used to rescale money.

use polars::prelude::*;
use rust_decimal::Decimal;

/// Stored scale of every money column: numeric(20,6).
pub const SCALE: u32 = 6;

/// The values of a Decimal column as `rust_decimal`s.
pub fn decimals(column: &Column) -> PolarsResult<Vec<Option<Decimal>>> {
    let ca = column.as_materialized_series().decimal()?;
    let scale = ca.scale() as u32;
    Ok(ca
        .physical()
        .into_iter()
        .map(|v| v.map(|v| Decimal::from_i128_with_scale(v, scale)))
        .collect())
}

/// The exact sum of a Decimal column (NULLs add nothing).
pub fn sum(column: &Column) -> PolarsResult<Decimal> {
    let ca = column.as_materialized_series().decimal()?;
    let scale = ca.scale() as u32;
    // Array by array over the set values: no Option per row.
    let total: i128 = ca
        .physical()
        .downcast_iter()
        .map(|array| match array.validity() {
            None => array.values().iter().sum::<i128>(),
            Some(_) => array.non_null_values_iter().sum::<i128>(),
        })
        .sum();
    Ok(Decimal::from_i128_with_scale(total, scale))
}

/// Rounds half away from zero to 6 places, as Postgres stores numeric(20,6).
pub fn round(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(SCALE, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// Text with exactly 6 decimals, e.g. `12.500000`.
pub fn format(value: Decimal) -> String {
    let mut v = round(value);
    v.rescale(SCALE);
    v.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn rounds_half_away_from_zero_like_postgres() {
        assert_eq!(format(Decimal::from_str("0.0000005").unwrap()), "0.000001");
        assert_eq!(
            format(Decimal::from_str("-0.0000005").unwrap()),
            "-0.000001"
        );
        assert_eq!(format(Decimal::from_str("12.5").unwrap()), "12.500000");
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
