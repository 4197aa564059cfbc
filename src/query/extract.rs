//! `extract(field FROM x)` and `date_part('field', x)` as Postgres answers
//! them. Postgres 14+ gives `extract` as numeric and `date_part` as double
//! precision, seconds with their fraction; DataFusion 55 gives integers
//! (`extract(hour FROM t) / 6` was integer division, `extract(second …)`
//! lost the fraction, `extract(epoch FROM b - a)` of a difference over
//! 2.1 s lost it too). The guard rewrites both into these functions.
//! Fields of a difference of times other than `epoch` are refused:
//! Postgres splits an interval into days and hours, Arrow does not.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, AsArray, Decimal128Array, Float64Array};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, DurationMicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The functions the guard calls instead of `extract` and `date_part`.
pub const EXTRACT: &str = "__callrollup_extract";
pub const DATE_PART: &str = "__callrollup_date_part";

/// Decimals of the numeric `extract` gives (microseconds).
const SCALE: i8 = 6;
const MICROS: i128 = 1_000_000;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    /// `date_part`: double precision; `extract`: numeric.
    double: bool,
    signature: Signature,
}

pub fn functions() -> Vec<ScalarUDF> {
    [false, true]
        .into_iter()
        .map(|double| {
            ScalarUDF::new_from_impl(Extract {
                double,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

/// A field's value, in microseconds of its unit (so seconds keep their
/// fraction), for a wall-clock time.
fn field_of(field: &str, t: NaiveDateTime, epoch_micros: i128) -> Option<i128> {
    let whole = |v: i64| Some(i128::from(v) * MICROS);
    match field {
        "epoch" => Some(epoch_micros),
        "year" => whole(i64::from(t.year())),
        "isoyear" => whole(i64::from(t.iso_week().year())),
        "quarter" => whole(i64::from((t.month() - 1) / 3 + 1)),
        "month" => whole(i64::from(t.month())),
        "week" => whole(i64::from(t.iso_week().week())),
        "day" => whole(i64::from(t.day())),
        "doy" => whole(i64::from(t.ordinal())),
        "dow" => whole(i64::from(t.weekday().num_days_from_sunday())),
        "isodow" => whole(i64::from(t.weekday().number_from_monday())),
        "hour" => whole(i64::from(t.hour())),
        "minute" => whole(i64::from(t.minute())),
        "second" => Some(i128::from(t.second()) * MICROS + i128::from(t.nanosecond() / 1000)),
        "milliseconds" => {
            Some((i128::from(t.second()) * MICROS + i128::from(t.nanosecond() / 1000)) * 1000)
        }
        "microseconds" => {
            Some((i128::from(t.second()) * MICROS + i128::from(t.nanosecond() / 1000)) * MICROS)
        }
        "decade" => whole(i64::from(t.year().div_euclid(10))),
        "century" => whole(i64::from(if t.year() > 0 {
            (t.year() + 99) / 100
        } else {
            -((99 - (t.year() - 1)) / 100)
        })),
        "millennium" => whole(i64::from(if t.year() > 0 {
            (t.year() + 999) / 1000
        } else {
            -((999 - (t.year() - 1)) / 1000)
        })),
        _ => None,
    }
}

/// The field named by the first argument, lower case.
fn field_name(args: &ScalarFunctionArgs) -> Result<String> {
    match &args.args[0] {
        ColumnarValue::Scalar(s) if !s.is_null() => Ok(s.to_string().to_lowercase()),
        _ => plan_err!("extract: the field must be a constant"),
    }
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        if self.double {
            DATE_PART
        } else {
            EXTRACT
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 {
            return plan_err!("extract takes a field and a time");
        }
        let value = match &args[1] {
            DataType::Timestamp(_, zone) => {
                DataType::Timestamp(TimeUnit::Microsecond, zone.clone())
            }
            DataType::Date32 | DataType::Date64 => DataType::Date32,
            DataType::Duration(_) => DataType::Duration(TimeUnit::Microsecond),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            other => return plan_err!("extract needs a date or a time, not {other}"),
        };
        Ok(vec![DataType::Utf8, value])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(if self.double {
            DataType::Float64
        } else {
            DataType::Decimal128(38, SCALE)
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let field = field_name(&args)?;
        let values = args.args[1].to_array(args.number_rows)?;
        let mut out: Vec<Option<i128>> = Vec::with_capacity(values.len());
        let unknown = || {
            exec_err!(
                "extract: the field {:?} is not one `query` computes (year, quarter, month, week, day, doy, dow, isodow, isoyear, hour, minute, second, milliseconds, microseconds, epoch, decade, century, millennium)",
                crate::text::printable(&field)
            )
        };
        match values.data_type() {
            DataType::Timestamp(_, _) => {
                let times = values.as_primitive::<TimestampMicrosecondType>();
                for i in 0..times.len() {
                    if times.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let micros = times.value(i);
                    // A zoned time is UTC (the session zone); a time
                    // without a zone is its own wall clock.
                    let Some(t) = DateTime::from_timestamp_micros(micros) else {
                        return exec_err!("extract: a time beyond the printable years");
                    };
                    match field_of(&field, t.naive_utc(), i128::from(micros)) {
                        Some(v) => out.push(Some(v)),
                        None => return unknown(),
                    }
                }
            }
            DataType::Date32 => {
                let days = values.as_primitive::<Date32Type>();
                for i in 0..days.len() {
                    if days.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let d = i64::from(days.value(i));
                    let Some(t) = DateTime::from_timestamp(d * 86_400, 0) else {
                        return exec_err!("extract: a date beyond the printable years");
                    };
                    // Postgres refuses time-of-day fields of a date.
                    if matches!(
                        field.as_str(),
                        "hour" | "minute" | "second" | "milliseconds" | "microseconds"
                    ) {
                        return exec_err!(
                            "extract: a date has no {} (cast it to a time first)",
                            field
                        );
                    }
                    match field_of(&field, t.naive_utc(), i128::from(d) * 86_400 * MICROS) {
                        Some(v) => out.push(Some(v)),
                        None => return unknown(),
                    }
                }
            }
            DataType::Duration(_) => {
                if field != "epoch" {
                    return exec_err!(
                        "extract: only epoch of a difference of times is computed (Postgres splits an interval into days and hours first); use extract(epoch FROM …)"
                    );
                }
                let spans = values.as_primitive::<DurationMicrosecondType>();
                for i in 0..spans.len() {
                    out.push(spans.is_valid(i).then(|| i128::from(spans.value(i))));
                }
            }
            other => return exec_err!("extract of {other}"),
        }
        if self.double {
            let floats: Float64Array = out
                .into_iter()
                .map(|v| v.map(|micros| micros as f64 / MICROS as f64))
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(floats)));
        }
        let decimals = Decimal128Array::from(out).with_precision_and_scale(38, SCALE)?;
        Ok(ColumnarValue::Array(Arc::new(decimals)))
    }
}
