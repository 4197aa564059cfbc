//! The source stage: the platform tables as Polars frames.

pub mod pgcopy;
pub mod postgres;
pub mod snapshot;

use polars::prelude::*;

/// Which tenants a run covers: the `--tenant`s, a `--tenant-shard`, both,
/// or (when empty) everyone, platform-level rows included.
#[derive(Debug, Clone, Default)]
pub struct TenantSelection {
    pub tenants: Vec<uuid::Uuid>,
    pub shard: Option<crate::shard::Shard>,
}

impl TenantSelection {
    /// `AND …` conditions on a uuid column, for pushing the selection down.
    pub fn sql_filter(&self, column: &str) -> String {
        let mut out = String::new();
        if !self.tenants.is_empty() {
            let list: Vec<String> = self
                .tenants
                .iter()
                .map(|t| format!("'{t}'::uuid"))
                .collect();
            out.push_str(&format!("AND {column} IN ({})", list.join(", ")));
        }
        if let Some(shard) = self.shard {
            out.push_str(&format!(" AND {}", shard.sql_predicate(column)));
        }
        out
    }

    /// The `--tenant` list as a Postgres array parameter (None: no list).
    pub fn tenant_array(&self) -> Option<Vec<uuid::Uuid>> {
        (!self.tenants.is_empty()).then(|| self.tenants.clone())
    }

    /// Everyone, platform-level rows included.
    pub fn is_everyone(&self) -> bool {
        self.tenants.is_empty() && self.shard.is_none()
    }

    /// Whether a tenant's rows (None: platform-level rows) are selected.
    pub fn contains(&self, tenant: Option<&uuid::Uuid>) -> bool {
        let listed = self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.contains(t));
        let text = tenant.map(|t| t.to_string());
        listed && self.shard.is_none_or(|s| s.contains(text.as_deref()))
    }

    /// The selection of a run over a snapshot that holds `self`: what the
    /// command line asks for (`asked`), which must lie inside the
    /// snapshot's selection, or the snapshot's own when nothing is asked.
    /// Replacing any row outside the snapshot's selection would delete
    /// billing rows the snapshot cannot recompute, so that is refused.
    pub fn narrowed_to(&self, asked: &TenantSelection) -> crate::Result<TenantSelection> {
        if asked.is_everyone() {
            return Ok(self.clone());
        }
        let refuse = |why: String| {
            Err(crate::Error::usage(format!(
                "the snapshot holds {}, so it cannot recompute {} ({why}); ask for a subset of the snapshot's selection or extract a snapshot that holds it",
                self.describe(),
                asked.describe()
            )))
        };
        if !self.tenants.is_empty() {
            if asked.tenants.is_empty() {
                return refuse(
                    "a shard of every tenant reaches tenants the snapshot does not hold".into(),
                );
            }
            if let Some(t) = asked.tenants.iter().find(|t| !self.tenants.contains(t)) {
                return refuse(format!("tenant {t} is not in it"));
            }
        }
        if let Some(held) = self.shard {
            match asked.shard {
                Some(s) if s != held => {
                    return refuse(format!("tenant shard {s} is not tenant shard {held}"))
                }
                Some(_) => {}
                None if asked.tenants.is_empty() => unreachable!("asked is not everyone"),
                None => {
                    if let Some(t) = asked.tenants.iter().find(|t| !self.contains(Some(t))) {
                        return refuse(format!("tenant {t} is not in tenant shard {held}"));
                    }
                }
            }
        }
        Ok(TenantSelection {
            tenants: asked.tenants.clone(),
            shard: asked.shard.or(self.shard),
        })
    }

    /// For people and the ledger: `all tenants`, `tenants a, b`, `tenant shard 1/4`, …
    pub fn describe(&self) -> String {
        let tenants = match self.tenants.len() {
            0 => "all tenants (platform rows included)".to_string(),
            1 => format!("tenant {}", self.tenants[0]),
            _ => format!(
                "tenants {}",
                self.tenants
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match (self.tenants.is_empty(), self.shard) {
            (_, None) => tenants,
            (true, Some(s)) => format!("tenant shard {s}"),
            (false, Some(s)) => format!("{tenants} in tenant shard {s}"),
        }
    }

    /// The listed tenants as the text `tenant_id`s of frames and files.
    pub fn tenant_texts(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.to_string()).collect()
    }
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
