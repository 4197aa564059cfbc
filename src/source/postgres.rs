//! Reading the platform tables from PostgreSQL: the schema-drift check, the
//! window's frames through connectorx, and Postgres' own totals.

use chrono::{DateTime, SecondsFormat, Utc};
use connectorx::prelude::{get_arrow, CXQuery, SourceConn};
use polars::prelude::*;
use postgres::Client;

use super::{
    calls_schema, conform, errors_schema, tenants_schema, SourceFrames, SourceTotals,
    TenantSelection,
};
use crate::db::DbUrl;
use crate::error::{Error, Result};
use crate::sql;

/// What the drift check learned about optional columns.
#[derive(Debug, Clone, Copy)]
pub struct SourceShape {
    pub has_duration_seconds: bool,
    /// Every cost column is numeric with at most 6 decimals (or an
    /// integer), so `cost * 10^6` is an exact bigint.
    pub costs_fit_micro_dollars: bool,
}

/// A connection to the platform database: read-only, with a statement timeout.
pub struct PostgresSource {
    url: DbUrl,
    schema: String,
    statement_timeout_secs: u64,
    client: Client,
    /// Errored call_ids logged since the given instant, kept across the
    /// chunks of one run: the earliest chunk reads them once, and any
    /// later chunk's calls are found in that superset.
    errored: Option<(DateTime<Utc>, Series)>,
}

const TEXT: &[&str] = &["text", "character varying", "character", "USER-DEFINED"];
const UUID: &[&str] = &["uuid"];
const NUMERIC: &[&str] = &["numeric", "integer", "bigint", "smallint"];
const TIMESTAMPTZ: &[&str] = &["timestamp with time zone"];
const INTEGER: &[&str] = &["integer", "bigint", "smallint"];
const BOOLEAN: &[&str] = &["boolean"];

/// (table, column, accepted information_schema data types, required)
const COLUMNS: &[(&str, &str, &[&str], bool)] = &[
    ("tenants", "tenant_id", UUID, true),
    ("tenants", "business_name", TEXT, true),
    ("tenants", "timezone", TEXT, true),
    ("tenants", "status", TEXT, true),
    ("call_logs", "call_id", TEXT, true),
    ("call_logs", "tenant_id", UUID, true),
    ("call_logs", "status", TEXT, true),
    ("call_logs", "outcome", TEXT, true),
    ("call_logs", "stt_cost_usd", NUMERIC, true),
    ("call_logs", "llm_cost_usd", NUMERIC, true),
    ("call_logs", "tts_cost_usd", NUMERIC, true),
    ("call_logs", "total_cost_usd", NUMERIC, true),
    ("call_logs", "created_at", TIMESTAMPTZ, true),
    ("call_logs", "duration_seconds", INTEGER, false),
    ("system_errors", "tenant_id", UUID, true),
    ("system_errors", "call_id", TEXT, true),
    ("system_errors", "error_type", TEXT, true),
    ("system_errors", "severity", TEXT, true),
    ("system_errors", "resolved", BOOLEAN, true),
    ("system_errors", "created_at", TIMESTAMPTZ, true),
];

impl PostgresSource {
    pub fn connect(url: &DbUrl, schema: &str, statement_timeout_secs: u64) -> Result<Self> {
        let mut client = url.connect("callrollup-source")?;
        client.batch_execute(&session_setup(statement_timeout_secs).join(";"))?;
        Ok(PostgresSource {
            url: url.clone(),
            schema: schema.to_string(),
            statement_timeout_secs,
            client,
            errored: None,
        })
    }

    /// Stops with the first missing or mistyped column (DESIGN.md §1).
    pub fn check_schema(&mut self) -> Result<SourceShape> {
        let rows = self.client.query(sql::SOURCE_COLUMNS, &[&self.schema])?;
        let mut has_duration_seconds = false;
        let mut costs_fit_micro_dollars = true;
        for (table, column, accepted, required) in COLUMNS {
            let found = found_row(&rows, table, column);
            let problem = match found {
                None => Some(format!(
                    "column {column} is missing (or not visible to this role)"
                )),
                Some(r) if !r.get::<_, bool>("can_select") => {
                    Some(format!("column {column} is not readable by this role"))
                }
                Some(r) => {
                    let ty: String = r.get("data_type");
                    (!accepted.contains(&ty.as_str())).then(|| {
                        format!(
                            "column {column} has type {ty}, expected {}",
                            accepted.join(" or ")
                        )
                    })
                }
            };
            match problem {
                Some(problem) if *required => {
                    return Err(Error::SchemaDrift {
                        table: format!("{}.{table}", self.schema),
                        problem,
                    })
                }
                Some(_) => {}
                None if *column == "duration_seconds" => has_duration_seconds = true,
                None if column.ends_with("_cost_usd") => {
                    let scale = found_row(&rows, table, column)
                        .and_then(|r| r.get::<_, Option<i32>>("numeric_scale"));
                    // Unconstrained numeric reports no scale: keep exact decimals.
                    costs_fit_micro_dollars &= matches!(scale, Some(0..=6));
                }
                None => {}
            }
        }
        Ok(SourceShape {
            has_duration_seconds,
            costs_fit_micro_dollars,
        })
    }

    /// Postgres' own count and sums over the UTC range.
    pub fn totals(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
    ) -> Result<SourceTotals> {
        let (from_utc, to_utc) = (timestamp_literal(range.0), timestamp_literal(range.1));
        let text = sql::render(
            sql::SOURCE_TOTALS,
            &[
                ("schema", &self.schema),
                ("from_utc", &from_utc),
                ("to_utc", &to_utc),
                ("tenant_filter_calls", &selection.sql_filter("c.tenant_id")),
                ("tenant_filter_errors", &selection.sql_filter("e.tenant_id")),
            ],
        );
        let row = self.client.query_one(&text, &[])?;
        Ok(SourceTotals {
            calls: row.get("calls"),
            errors: row.get("errors"),
            stt_cost_usd: row.get("stt"),
            llm_cost_usd: row.get("llm"),
            tts_cost_usd: row.get("tts"),
            total_cost_usd: row.get("total"),
        })
    }

    /// Reads the window's frames with connectorx.
    pub fn extract(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
    ) -> Result<SourceFrames> {
        let (from_utc, to_utc) = (timestamp_literal(range.0), timestamp_literal(range.1));
        let duration = if shape.has_duration_seconds {
            "c.duration_seconds::bigint"
        } else {
            "NULL::bigint"
        };
        let cost = |column: &str| {
            if shape.costs_fit_micro_dollars {
                format!("(c.{column} * 1000000)::bigint")
            } else {
                format!("c.{column}::numeric")
            }
        };
        let costs = [
            "stt_cost_usd",
            "llm_cost_usd",
            "tts_cost_usd",
            "total_cost_usd",
        ]
        .map(cost);
        let tenants_sql = sql::render(
            sql::TENANTS,
            &[
                ("schema", &self.schema),
                ("tenant_filter", &selection.sql_filter("t.tenant_id")),
            ],
        );
        let calls_sql = sql::render(
            sql::CALL_LOGS,
            &[
                ("schema", &self.schema),
                ("from_utc", &from_utc),
                ("to_utc", &to_utc),
                ("duration_seconds", duration),
                ("stt_cost_usd", &costs[0]),
                ("llm_cost_usd", &costs[1]),
                ("tts_cost_usd", &costs[2]),
                ("total_cost_usd", &costs[3]),
                ("tenant_filter", &selection.sql_filter("c.tenant_id")),
            ],
        );
        let errors_sql = sql::render(
            sql::SYSTEM_ERRORS,
            &[
                ("schema", &self.schema),
                ("from_utc", &from_utc),
                ("to_utc", &to_utc),
                ("tenant_filter", &selection.sql_filter("e.tenant_id")),
            ],
        );
        let errored_ids = self.errored_since(range.0)?;
        let mut calls = self.read(&calls_sql)?;
        if shape.costs_fit_micro_dollars && calls.width() > 0 {
            for name in [
                "stt_cost_usd",
                "llm_cost_usd",
                "tts_cost_usd",
                "total_cost_usd",
            ] {
                let exact = crate::money::from_micro_dollars(calls.column(name)?)?;
                calls.with_column(exact)?;
            }
        }
        let calls = if calls.width() == 0 {
            calls
        } else {
            calls
                .lazy()
                .with_column(
                    col("call_id")
                        .is_in(lit(errored_ids).implode(), false)
                        .alias("errored"),
                )
                .collect()?
        };
        Ok(SourceFrames {
            tenants: conform(self.read(&tenants_sql)?, &tenants_schema())?,
            calls: conform(calls, &calls_schema())?,
            errors: conform(self.read(&errors_sql)?, &errors_schema())?,
        })
    }

    /// Reads the range and proves the frames hold what Postgres itself
    /// counts and sums for the same range.
    pub fn extract_verified(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
    ) -> Result<(SourceFrames, SourceTotals)> {
        let frames = self.extract(range, selection, shape)?;
        let totals = self.totals(range, selection)?;
        let extracted = SourceTotals::of(&frames.calls, &frames.errors)?;
        if !extracted.matches(&totals) {
            return Err(Error::Reconciliation(format!(
                "extracted {} calls / {} errors / total {} but Postgres counts {} / {} / {} for the same range; rows changed during extraction or a cost has more than 10 decimals; re-run",
                extracted.calls,
                extracted.errors,
                extracted.total_cost_usd.normalize(),
                totals.calls,
                totals.errors,
                totals.total_cost_usd.normalize()
            )));
        }
        Ok((frames, totals))
    }

    /// Names the source without secrets: a hash of server, port,
    /// database, version and schema.
    pub fn fingerprint(&mut self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let row = self.client.query_one(sql::SOURCE_FINGERPRINT, &[])?;
        let text = format!(
            "{}:{}/{} {} schema={}",
            row.get::<_, String>("host"),
            row.get::<_, i32>("port"),
            row.get::<_, String>("database"),
            row.get::<_, String>("version"),
            self.schema
        );
        let digest = Sha256::digest(text.as_bytes());
        Ok(format!(
            "postgres:{}",
            digest
                .iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    /// The call_ids that errors carry, logged from a day before `since` on.
    fn errored_since(&mut self, since: DateTime<Utc>) -> Result<Series> {
        if let Some((cached_since, ids)) = &self.errored {
            if *cached_since <= since {
                return Ok(ids.clone());
            }
        }
        let text = sql::render(
            sql::ERRORED_CALLS,
            &[
                ("schema", &self.schema),
                ("from_utc", &timestamp_literal(since)),
            ],
        );
        let df = self.read(&text)?;
        let ids = if df.width() == 0 {
            Series::new_empty("call_id".into(), &DataType::String)
        } else {
            df.column("call_id")?.as_materialized_series().clone()
        };
        self.errored = Some((since, ids.clone()));
        Ok(ids)
    }

    fn read(&self, query: &str) -> Result<DataFrame> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::Database(self.url.redact(&e.to_string()).replace('\n', " "))
        };
        let source =
            SourceConn::try_from(self.url.for_connectorx().as_str()).map_err(|e| fail(&e))?;
        let setup = session_setup(self.statement_timeout_secs);
        let queries = [CXQuery::from(query)];
        let destination = get_arrow(&source, None, &queries, Some(&setup)).map_err(|e| fail(&e))?;
        // An empty result has no record batches, and connectorx cannot
        // concatenate zero frames; `conform` turns that into an empty frame.
        match destination.polars() {
            Ok(df) => Ok(df),
            Err(e) if e.to_string().contains("empty") => Ok(DataFrame::empty()),
            Err(e) => Err(fail(&e)),
        }
    }
}

fn found_row<'a>(
    rows: &'a [postgres::Row],
    table: &str,
    column: &str,
) -> Option<&'a postgres::Row> {
    rows.iter().find(|r| {
        r.get::<_, String>("table_name") == table && r.get::<_, String>("column_name") == column
    })
}

/// The source session never writes and never runs away.
fn session_setup(statement_timeout_secs: u64) -> Vec<String> {
    vec![
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY".to_string(),
        format!("SET statement_timeout = '{statement_timeout_secs}s'"),
    ]
}

fn timestamp_literal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
