//! Frames as PostgreSQL's binary COPY stream, written column-wise into one
//! byte buffer: no per-row value objects, no per-row strings. The inverse
//! of `source::pgcopy`.

use polars::prelude::*;

/// Days between the Unix epoch and Postgres' 2000-01-01.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;
/// Microseconds between the Unix epoch and Postgres' 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The Postgres type a frame column is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Uuid,
    Text,
    Date,
    Int8,
    Float8,
    Numeric,
    TimestampTz,
}

/// One column's values, borrowed from the frame where possible.
enum Values<'a> {
    Uuid(Vec<Option<[u8; 16]>>),
    Text(Vec<Option<&'a str>>),
    Date(Vec<Option<i32>>),
    Int8(Vec<Option<i64>>),
    Float8(Vec<Option<f64>>),
    /// Unscaled value and scale.
    Numeric(Vec<Option<i128>>, u32),
    TimestampTz(Vec<Option<i64>>),
    /// The same value on every row (run_id, computed_at).
    Constant(Vec<u8>),
}

/// A column ready to encode.
pub struct Encoded<'a> {
    values: Values<'a>,
}

impl<'a> Encoded<'a> {
    /// The same already-encoded field on every row.
    pub fn constant_uuid(id: uuid::Uuid) -> Encoded<'static> {
        Encoded {
            values: Values::Constant(id.as_bytes().to_vec()),
        }
    }

    pub fn constant_timestamp(at: chrono::DateTime<chrono::Utc>) -> Encoded<'static> {
        let micros = at.timestamp_micros() - POSTGRES_EPOCH_MICROS;
        Encoded {
            values: Values::Constant(micros.to_be_bytes().to_vec()),
        }
    }

    /// Prepares `series` to be sent as `ty`; fails on a value that is not
    /// of that type (a tenant_id that is not a UUID).
    pub fn column(series: &'a Series, ty: PgType) -> Result<Encoded<'a>, String> {
        let name = series.name();
        let err = |e: PolarsError| format!("column {name}: {e}");
        let values = match ty {
            PgType::Uuid => {
                let mut out = Vec::with_capacity(series.len());
                for v in series.str().map_err(err)? {
                    out.push(match v {
                        Some(v) => Some(
                            *uuid::Uuid::parse_str(v)
                                .map_err(|_| format!("{name} {v:?} is not a UUID"))?
                                .as_bytes(),
                        ),
                        None => None,
                    });
                }
                Values::Uuid(out)
            }
            PgType::Text => Values::Text(series.str().map_err(err)?.into_iter().collect()),
            PgType::Date => Values::Date(
                series
                    .date()
                    .map_err(err)?
                    .physical()
                    .into_iter()
                    .map(|d| d.map(|d| d - POSTGRES_EPOCH_DAYS))
                    .collect(),
            ),
            PgType::Int8 => {
                let ints = series.cast(&DataType::Int64).map_err(err)?;
                Values::Int8(ints.i64().map_err(err)?.into_iter().collect())
            }
            PgType::Float8 => Values::Float8(series.f64().map_err(err)?.into_iter().collect()),
            PgType::Numeric => {
                let ca = series.decimal().map_err(err)?;
                Values::Numeric(ca.physical().into_iter().collect(), ca.scale() as u32)
            }
            PgType::TimestampTz => Values::TimestampTz(
                series
                    .datetime()
                    .map_err(err)?
                    .physical()
                    .into_iter()
                    .map(|v| v.map(|v| v - POSTGRES_EPOCH_MICROS))
                    .collect(),
            ),
        };
        Ok(Encoded { values })
    }

    /// Appends row `i`'s field (length and bytes).
    fn write_field(&self, i: usize, out: &mut Vec<u8>) {
        fn put(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        fn null(out: &mut Vec<u8>) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        }
        match &self.values {
            Values::Uuid(v) => match &v[i] {
                Some(b) => put(out, b),
                None => null(out),
            },
            Values::Text(v) => match v[i] {
                Some(s) => put(out, s.as_bytes()),
                None => null(out),
            },
            Values::Date(v) => match v[i] {
                Some(d) => put(out, &d.to_be_bytes()),
                None => null(out),
            },
            Values::Int8(v) | Values::TimestampTz(v) => match v[i] {
                Some(x) => put(out, &x.to_be_bytes()),
                None => null(out),
            },
            Values::Float8(v) => match v[i] {
                Some(x) => put(out, &x.to_be_bytes()),
                None => null(out),
            },
            Values::Numeric(v, scale) => match v[i] {
                Some(x) => {
                    let start = out.len();
                    out.extend_from_slice(&0i32.to_be_bytes());
                    numeric_send(x, *scale, out);
                    let len = (out.len() - start - 4) as i32;
                    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
                }
                None => null(out),
            },
            Values::Constant(bytes) => put(out, bytes),
        }
    }
}

/// Writes `rows` rows of `columns` as a complete binary COPY stream,
/// handing the buffer to `flush` whenever it passes about 1 MB.
pub fn write_stream(
    columns: &[Encoded],
    rows: usize,
    mut flush: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    const FLUSH_AT: usize = 1 << 20;
    let mut out = Vec::with_capacity(FLUSH_AT + 4096);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let fields = (columns.len() as i16).to_be_bytes();
    for i in 0..rows {
        out.extend_from_slice(&fields);
        for c in columns {
            c.write_field(i, &mut out);
        }
        if out.len() >= FLUSH_AT {
            flush(&out)?;
            out.clear();
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    flush(&out)
}

/// `value · 10^-scale` in Postgres' numeric send format: ndigits, weight,
/// sign, dscale, then base-10000 digits with the decimal point between
/// digit groups.
pub fn numeric_send(value: i128, scale: u32, out: &mut Vec<u8>) {
    let negative = value < 0;
    let magnitude = value.unsigned_abs();
    // Align the fraction to whole groups of 4 decimal digits.
    let groups_after_point = scale.div_ceil(4);
    // Saturates only beyond 10^35, where reconciliation fails the run.
    let aligned = magnitude.saturating_mul(10u128.pow(groups_after_point * 4 - scale));
    let mut digits: Vec<u16> = Vec::with_capacity(12);
    let mut rest = aligned;
    while rest > 0 {
        digits.push((rest % 10_000) as u16);
        rest /= 10_000;
    }
    // digits are least significant first; the lowest `groups_after_point`
    // are the fraction.
    let mut weight = digits.len() as i32 - groups_after_point as i32 - 1;
    // Trailing zero groups (of the fraction or the integer) carry nothing.
    let trailing = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..trailing);
    digits.reverse();
    if digits.is_empty() {
        weight = 0;
    }
    out.extend_from_slice(&(digits.len() as u16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    let sign: u16 = if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pgcopy::numeric_to_scaled;

    #[test]
    fn numerics_round_trip_through_the_send_format() {
        for (value, scale) in [
            (0i128, 10u32),
            (1, 10),
            (-1, 10),
            (123_456_780_000, 10),
            (-10_000, 10),
            (123_456_789 * 10i128.pow(10), 10),
            (10i128.pow(30), 10),
            (5, 6),
            (-999_999_999_999, 6),
            (12_500, 3),
        ] {
            let mut out = Vec::new();
            numeric_send(value, scale, &mut out);
            let back = numeric_to_scaled(&out, 10).unwrap();
            assert_eq!(
                back,
                value * 10i128.pow(10 - scale),
                "{value} at scale {scale}"
            );
        }
    }

    #[test]
    fn the_send_format_matches_postgres_for_known_values() {
        // 12.5 at scale 6: one digit 12, one 5000; weight 0; dscale 6.
        let mut out = Vec::new();
        numeric_send(12_500_000, 6, &mut out);
        assert_eq!(out, [0, 2, 0, 0, 0, 0, 0, 6, 0, 12, 0x13, 0x88]);
        // 10000 at scale 0: one digit 1 at weight 1.
        let mut out = Vec::new();
        numeric_send(10_000, 0, &mut out);
        assert_eq!(out, [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
    }
}
