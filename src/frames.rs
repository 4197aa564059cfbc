//! The frames that flow from the source stage into the rollup: their
//! columns and types, the money type, the platform tenant, and the
//! counts and sums that reconcile one stage against the next. Both stages
//! use this module; neither imports the other.

use polars::prelude::*;

/// `tenant_id` of platform-level errors in tables and files.
pub const PLATFORM_TENANT: &str = "00000000-0000-0000-0000-000000000000";
/// The platform's name in human-facing output.
pub const PLATFORM_NAME: &str = "(platform)";

/// What the rollup reads: the frames of one window.
pub struct SourceFrames {
    pub tenants: DataFrame,
    pub calls: DataFrame,
    pub errors: DataFrame,
}

/// Counts and cost sums of a set of source rows: Postgres' own figures for
/// an extracted UTC range, or the rows of a window's tenant days.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceTotals {
    pub calls: i64,
    pub errors: i64,
    pub stt_cost_usd: rust_decimal::Decimal,
    pub llm_cost_usd: rust_decimal::Decimal,
    pub tts_cost_usd: rust_decimal::Decimal,
    pub total_cost_usd: rust_decimal::Decimal,
}

impl SourceTotals {
    /// The count and exact cost sums of a calls frame and an errors frame.
    pub fn of(calls: &DataFrame, errors: &DataFrame) -> PolarsResult<SourceTotals> {
        let sum = |name: &str| -> PolarsResult<rust_decimal::Decimal> {
            crate::money::sum(calls.column(name)?)
        };
        Ok(SourceTotals {
            calls: calls.height() as i64,
            errors: errors.height() as i64,
            stt_cost_usd: sum("stt_cost_usd")?,
            llm_cost_usd: sum("llm_cost_usd")?,
            tts_cost_usd: sum("tts_cost_usd")?,
            total_cost_usd: sum("total_cost_usd")?,
        })
    }

    /// Same counts and the same sums (whatever their scale).
    pub fn matches(&self, other: &SourceTotals) -> bool {
        self.calls == other.calls
            && self.errors == other.errors
            && self.stt_cost_usd == other.stt_cost_usd
            && self.llm_cost_usd == other.llm_cost_usd
            && self.tts_cost_usd == other.tts_cost_usd
            && self.total_cost_usd == other.total_cost_usd
    }

    pub fn add(&mut self, other: &SourceTotals) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.stt_cost_usd += other.stt_cost_usd;
        self.llm_cost_usd += other.llm_cost_usd;
        self.tts_cost_usd += other.tts_cost_usd;
        self.total_cost_usd += other.total_cost_usd;
    }
}

/// Money in the engine: Decimal(38,10), exact to 10 places (the COPY
/// decoder refuses a source value with more).
pub const MONEY: DataType = DataType::Decimal(Some(38), Some(10));

pub fn tenants_schema() -> Schema {
    Schema::from_iter([
        Field::new("tenant_id".into(), DataType::String),
        Field::new("business_name".into(), DataType::String),
        Field::new("timezone".into(), DataType::String),
        Field::new("status".into(), DataType::String),
    ])
}

pub fn calls_schema() -> Schema {
    Schema::from_iter([
        Field::new("call_id".into(), DataType::String),
        Field::new("tenant_id".into(), DataType::String),
        Field::new("status".into(), DataType::String),
        Field::new("outcome".into(), DataType::String),
        Field::new("stt_cost_usd".into(), MONEY),
        Field::new("llm_cost_usd".into(), MONEY),
        Field::new("tts_cost_usd".into(), MONEY),
        Field::new("total_cost_usd".into(), MONEY),
        Field::new("created_at".into(), utc_micros()),
        Field::new("duration_seconds".into(), DataType::Int64),
        Field::new("errored".into(), DataType::Boolean),
    ])
}

pub fn errors_schema() -> Schema {
    Schema::from_iter([
        Field::new("tenant_id".into(), DataType::String),
        Field::new("call_id".into(), DataType::String),
        Field::new("error_type".into(), DataType::String),
        Field::new("severity".into(), DataType::String),
        Field::new("resolved".into(), DataType::Boolean),
        Field::new("created_at".into(), utc_micros()),
    ])
}

pub fn utc_micros() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// Casts a frame to the expected schema, column by column and in order, so
/// that every later stage sees the same types whatever the driver chose.
pub fn conform(df: DataFrame, schema: &Schema) -> PolarsResult<DataFrame> {
    if df.height() == 0 && df.width() == 0 {
        return Ok(DataFrame::empty_with_schema(schema));
    }
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(name, dtype)| col(name.clone()).strict_cast(dtype.clone()))
        .collect();
    df.lazy().select(exprs).collect()
}

/// A text column's values, owned (NULL as None).
pub fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    Ok(df
        .column(name)?
        .str()?
        .into_iter()
        .map(|v| v.map(str::to_string))
        .collect())
}
