//! The frames that flow from the source stage into the rollup: their
//! columns and types, the money type, the platform tenant, and the
//! counts and sums that reconcile one stage against the next. Both stages
//! use this module; neither imports the other.

use polars::prelude::*;

/// `tenant_id` of platform-level errors in tables and files.
pub const PLATFORM_TENANT: &str = "00000000-0000-0000-0000-000000000000";
/// The platform's name in human-facing output.
pub const PLATFORM_NAME: &str = "(platform)";

/// What a column of the COPY stream holds and how it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `text`, mostly distinct values (call ids).
    Text,
    /// `text` with few distinct values: one dictionary entry per value.
    DictionaryText,
    /// `uuid`, as lower-case hyphenated text through a dictionary.
    DictionaryUuid,
    /// `numeric`, as Decimal(38,10), exactly.
    Money,
    /// `bigint`.
    Int8,
    /// `timestamptz`, as UTC microseconds.
    TimestampTz,
    /// `boolean`.
    Bool,
    /// `date`, as days since 1970-01-01 (the summary tables' `day`).
    Date,
    /// `double precision` (the summary tables' `error_rate`).
    Float8,
}

impl FieldKind {
    /// The frame type a column of this kind has.
    pub fn dtype(self) -> DataType {
        match self {
            FieldKind::Text | FieldKind::DictionaryText | FieldKind::DictionaryUuid => {
                DataType::String
            }
            FieldKind::Money => MONEY,
            FieldKind::Int8 => DataType::Int64,
            FieldKind::TimestampTz => utc_micros(),
            FieldKind::Bool => DataType::Boolean,
            FieldKind::Date => DataType::Date,
            FieldKind::Float8 => DataType::Float64,
        }
    }

    /// The `information_schema` data types a source column of this kind
    /// may have (the schema-drift check, docs/CONTRACT.md §1).
    pub fn source_types(self) -> &'static [&'static str] {
        match self {
            FieldKind::Text | FieldKind::DictionaryText => {
                &["text", "character varying", "character", "USER-DEFINED"]
            }
            FieldKind::DictionaryUuid => &["uuid"],
            FieldKind::Money => &["numeric", "integer", "bigint", "smallint"],
            FieldKind::Int8 => &["integer", "bigint", "smallint"],
            FieldKind::TimestampTz => &["timestamp with time zone"],
            FieldKind::Bool => &["boolean"],
            FieldKind::Date => &["date"],
            FieldKind::Float8 => &["double precision"],
        }
    }
}

/// The source tables' columns the engine reads, declared once, in the
/// order `queries/<table>.sql` selects them (a test checks it): the COPY
/// decoder, the schema-drift check and the frames' schemas derive from
/// these. docs/CONTRACT.md §1 lists them for people.
pub const SOURCE_TABLES: [(&str, &[(&str, FieldKind)]); 3] = [
    ("tenants", TENANT_COLUMNS),
    ("call_logs", CALL_COLUMNS),
    ("system_errors", ERROR_COLUMNS),
];

pub const TENANT_COLUMNS: &[(&str, FieldKind)] = &[
    ("tenant_id", FieldKind::DictionaryUuid),
    ("business_name", FieldKind::Text),
    ("timezone", FieldKind::Text),
    ("status", FieldKind::Text),
];

pub const CALL_COLUMNS: &[(&str, FieldKind)] = &[
    ("call_id", FieldKind::Text),
    ("tenant_id", FieldKind::DictionaryUuid),
    ("status", FieldKind::DictionaryText),
    ("outcome", FieldKind::DictionaryText),
    ("stt_cost_usd", FieldKind::Money),
    ("llm_cost_usd", FieldKind::Money),
    ("tts_cost_usd", FieldKind::Money),
    ("total_cost_usd", FieldKind::Money),
    ("created_at", FieldKind::TimestampTz),
    ("duration_seconds", FieldKind::Int8),
];

pub const ERROR_COLUMNS: &[(&str, FieldKind)] = &[
    ("tenant_id", FieldKind::DictionaryUuid),
    ("call_id", FieldKind::Text),
    ("error_type", FieldKind::DictionaryText),
    ("severity", FieldKind::DictionaryText),
    ("resolved", FieldKind::Bool),
    ("created_at", FieldKind::TimestampTz),
];

/// Source columns a platform may lack: without `duration_seconds`,
/// billable seconds are 0 (docs/CONTRACT.md §1).
pub const OPTIONAL_SOURCE_COLUMNS: [(&str, &str); 1] = [("call_logs", "duration_seconds")];

/// A frame schema of declared columns.
pub fn schema_of(columns: &[(&str, FieldKind)]) -> Schema {
    Schema::from_iter(
        columns
            .iter()
            .map(|(name, kind)| Field::new((*name).into(), kind.dtype())),
    )
}

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

/// Money columns hold this many decimals (the COPY decoder refuses a
/// source value with more rather than round it).
pub const MONEY_SCALE: u32 = 10;

/// Digits a money column holds (Polars' widest decimal).
pub const MONEY_PRECISION: usize = 38;

/// Money in the engine: Decimal(38,10), exact to 10 places.
pub const MONEY: DataType = DataType::Decimal(Some(MONEY_PRECISION), Some(MONEY_SCALE as usize));

pub fn tenants_schema() -> Schema {
    schema_of(TENANT_COLUMNS)
}

/// The calls as the rollup reads them: the declared columns and the
/// engine's own `errored` flag (docs/CONTRACT.md §2).
pub fn calls_schema() -> Schema {
    let mut schema = schema_of(CALL_COLUMNS);
    schema.insert("errored".into(), DataType::Boolean);
    schema
}

pub fn errors_schema() -> Schema {
    schema_of(ERROR_COLUMNS)
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

#[cfg(test)]
mod declared_columns {
    use super::*;

    /// The `AS` names of a query's select list, in order.
    fn selected(query: &str) -> Vec<String> {
        let select = query
            .split_once("SELECT")
            .and_then(|(_, rest)| rest.split_once("FROM"))
            .map(|(list, _)| list)
            .expect("a SELECT ... FROM query");
        select
            .split(" AS ")
            .skip(1)
            .map(|after| {
                after
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_source_queries_select_the_declared_columns_in_order() {
        for (table, query) in [
            ("tenants", crate::sql::TENANTS),
            ("call_logs", crate::sql::CALL_LOGS),
            ("system_errors", crate::sql::SYSTEM_ERRORS),
        ] {
            let declared: Vec<&str> = SOURCE_TABLES
                .iter()
                .find(|(t, _)| *t == table)
                .map(|(_, columns)| columns.iter().map(|(name, _)| *name).collect())
                .unwrap();
            assert_eq!(selected(query), declared, "queries/{table}.sql");
        }
    }
}
