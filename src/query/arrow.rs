//! Frames across the two Arrow implementations: the pipeline reads into
//! Polars frames, DataFusion computes on arrow-rs record batches. Each
//! column is copied value by value (no FFI, no unsafe), only for the
//! columns a query names, a chunk at a time.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    StringViewBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, Schema as ArrowSchema, SchemaRef, TimeUnit as ArrowUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use polars::prelude::*;

use crate::error::{Error, Result};

/// The time zone of every stored time: the contract's times are UTC.
pub const UTC: &str = "UTC";

/// The arrow-rs type of one of the contract's column types.
fn arrow_type(dtype: &DataType) -> Result<ArrowType> {
    Ok(match dtype {
        // Text as views: tenant ids, statuses and error types repeat, so
        // one copy of each value serves every row (16 bytes a row).
        DataType::String => ArrowType::Utf8View,
        DataType::Decimal(precision, scale) => {
            ArrowType::Decimal128(precision.unwrap_or(38) as u8, scale.unwrap_or(0) as i8)
        }
        DataType::Int64 => ArrowType::Int64,
        DataType::Float64 => ArrowType::Float64,
        DataType::Boolean => ArrowType::Boolean,
        DataType::Date => ArrowType::Date32,
        DataType::Datetime(TimeUnit::Microseconds, _) => {
            ArrowType::Timestamp(ArrowUnit::Microsecond, Some(UTC.into()))
        }
        other => {
            return Err(Error::EngineSchema(format!(
                "query: no Arrow type for the column type {other}"
            )))
        }
    })
}

/// A table's Polars schema as an arrow-rs schema (every column nullable).
pub fn arrow_schema(schema: &Schema) -> Result<SchemaRef> {
    let fields = schema
        .iter()
        .map(|(name, dtype)| Ok(Field::new(name.as_str(), arrow_type(dtype)?, true)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(ArrowSchema::new(fields)))
}

/// One Polars column as an arrow-rs array of `arrow_type`.
fn to_arrow_array(column: &Column, arrow: &ArrowType) -> Result<ArrayRef> {
    let series = column.as_materialized_series();
    Ok(match arrow {
        ArrowType::Utf8View => {
            let values = series.str()?;
            let mut builder =
                StringViewBuilder::with_capacity(values.len()).with_deduplicate_strings();
            for v in values.iter() {
                builder.append_option(v);
            }
            Arc::new(builder.finish())
        }
        ArrowType::Decimal128(precision, scale) => {
            let values = series.decimal()?;
            Arc::new(
                Decimal128Array::from_iter(values.physical().iter())
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| Error::EngineSchema(format!("query: {e}")))?,
            )
        }
        ArrowType::Int64 => Arc::new(Int64Array::from_iter(series.i64()?.iter())),
        ArrowType::Float64 => Arc::new(Float64Array::from_iter(series.f64()?.iter())),
        ArrowType::Boolean => Arc::new(BooleanArray::from_iter(series.bool()?.iter())),
        ArrowType::Date32 => Arc::new(Date32Array::from_iter(series.date()?.physical().iter())),
        ArrowType::Timestamp(ArrowUnit::Microsecond, tz) => Arc::new(
            TimestampMicrosecondArray::from_iter(series.datetime()?.physical().iter())
                .with_timezone_opt(tz.clone()),
        ),
        other => {
            return Err(Error::EngineSchema(format!(
                "query: no conversion to the Arrow type {other}"
            )))
        }
    })
}

/// The columns of `schema` (a projection of the frame's table) taken from
/// `df` as one record batch.
pub fn to_batch(df: &DataFrame, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| to_arrow_array(df.column(field.name())?, field.data_type()))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new()
            .with_row_count(Some(df.height())),
    )
    .map_err(|e| Error::EngineSchema(format!("query: {e}")))
}

/// Why a result column cannot be shown: its type's text would differ from
/// Postgres' (intervals, arrays, structs, binary), so it is refused rather
/// than shown another way.
fn unshowable(name: &str, dtype: &ArrowType) -> Error {
    let hint = match dtype {
        ArrowType::Interval(_) | ArrowType::Duration(_) => {
            "an interval: select extract(epoch FROM …) for its seconds"
        }
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(_, _) => {
            "an array: aggregate it with string_agg(…, ',') instead"
        }
        _ => "of a type `query` does not print: cast it to text or a number",
    };
    Error::usage(format!("result column {name:?} is {hint}"))
}

/// A result column as a Polars column, values unchanged.
fn to_polars_column(name: &str, array: &dyn Array) -> Result<Column> {
    let name = PlSmallStr::from(name);
    macro_rules! primitive {
        ($arrow:ty, $polars:ty) => {{
            let values = array.as_primitive::<$arrow>();
            Column::new(name, values.iter().collect::<Vec<Option<$polars>>>())
        }};
    }
    macro_rules! widened {
        ($arrow:ty) => {{
            let values = array.as_primitive::<$arrow>();
            Column::new(
                name,
                values.iter().map(|v| v.map(i32::from)).collect::<Vec<_>>(),
            )
        }};
    }
    let datetime =
        |values: Vec<Option<i64>>, unit: TimeUnit, tz: &Option<Arc<str>>| -> Result<Column> {
            let tz = match tz {
                Some(zone) => Some(
                    TimeZone::opt_try_new(Some(PlSmallStr::from(zone.as_ref())))?
                        .unwrap_or(TimeZone::UTC),
                ),
                None => None,
            };
            Ok(
                Int64Chunked::from_iter_options(name.clone(), values.into_iter())
                    .into_datetime(unit, tz)
                    .into_column(),
            )
        };
    Ok(match array.data_type() {
        ArrowType::Null => Column::full_null(name, array.len(), &DataType::Null),
        ArrowType::Boolean => Column::new(name, array.as_boolean().iter().collect::<Vec<_>>()),
        ArrowType::Int8 => primitive!(Int8Type, i8),
        ArrowType::Int16 => primitive!(Int16Type, i16),
        ArrowType::Int32 => primitive!(Int32Type, i32),
        ArrowType::Int64 => primitive!(Int64Type, i64),
        // Polars is built without 8- and 16-bit unsigned columns.
        ArrowType::UInt8 => widened!(UInt8Type),
        ArrowType::UInt16 => widened!(UInt16Type),
        ArrowType::UInt32 => primitive!(UInt32Type, u32),
        ArrowType::UInt64 => primitive!(UInt64Type, u64),
        ArrowType::Float32 => primitive!(Float32Type, f32),
        ArrowType::Float64 => primitive!(Float64Type, f64),
        ArrowType::Utf8 => Column::new(name, array.as_string::<i32>().iter().collect::<Vec<_>>()),
        ArrowType::LargeUtf8 => {
            Column::new(name, array.as_string::<i64>().iter().collect::<Vec<_>>())
        }
        ArrowType::Utf8View => Column::new(name, array.as_string_view().iter().collect::<Vec<_>>()),
        ArrowType::Decimal128(precision, scale) => {
            let values = array.as_primitive::<Decimal128Type>();
            if *scale < 0 {
                return Err(unshowable(name.as_str(), array.data_type()));
            }
            Int128Chunked::from_iter_options(name.clone(), values.iter())
                .into_decimal(Some(*precision as usize), *scale as usize)?
                .into_column()
        }
        ArrowType::Date32 => {
            Int32Chunked::from_iter_options(name.clone(), array.as_primitive::<Date32Type>().iter())
                .into_date()
                .into_column()
        }
        ArrowType::Timestamp(unit, tz) => {
            // Seconds and milliseconds become microseconds, which the
            // writers print; nanoseconds stay as they are.
            let (values, polars_unit): (Vec<Option<i64>>, TimeUnit) = match unit {
                ArrowUnit::Second => (
                    array
                        .as_primitive::<TimestampSecondType>()
                        .iter()
                        .map(|v| v.and_then(|s| s.checked_mul(1_000_000)))
                        .collect(),
                    TimeUnit::Microseconds,
                ),
                ArrowUnit::Millisecond => (
                    array
                        .as_primitive::<TimestampMillisecondType>()
                        .iter()
                        .collect(),
                    TimeUnit::Milliseconds,
                ),
                ArrowUnit::Microsecond => (
                    array
                        .as_primitive::<TimestampMicrosecondType>()
                        .iter()
                        .collect(),
                    TimeUnit::Microseconds,
                ),
                ArrowUnit::Nanosecond => (
                    array
                        .as_primitive::<TimestampNanosecondType>()
                        .iter()
                        .collect(),
                    TimeUnit::Nanoseconds,
                ),
            };
            datetime(values, polars_unit, tz)?
        }
        other => return Err(unshowable(name.as_str(), other)),
    })
}

/// Record batches of one schema as one Polars frame, for the writers.
pub fn to_frame(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let mut column: Option<Column> = None;
        for batch in batches {
            let part = to_polars_column(field.name(), batch.column(i).as_ref())?;
            match column.as_mut() {
                Some(c) => {
                    c.append(&part)?;
                }
                None => column = Some(part),
            }
        }
        let column = match column {
            Some(c) => c,
            None => to_polars_column(
                field.name(),
                datafusion::arrow::array::new_empty_array(field.data_type()).as_ref(),
            )?,
        };
        columns.push(column);
    }
    // Two result columns of one name (`SELECT a.x, b.x`) cannot be a frame:
    // say so rather than rename one silently.
    DataFrame::new(columns).map_err(|e| match e {
        PolarsError::Duplicate(_) => {
            Error::usage("two result columns have the same name: give them different names with AS")
        }
        other => other.into(),
    })
}
