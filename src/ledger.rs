//! The run ledger (`rollup_runs`) and the advisory lock that keeps one run
//! per target schema.

use crate::tables::Table;
use chrono::{DateTime, NaiveDate, Utc};
use postgres::{Client, Transaction};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::frames::SourceTotals;
use crate::selection::TenantSelection;
use crate::shard::Shard;
use crate::sql;

/// Takes the run lock on its own connection; the lock lives as long as it.
/// A shard run shares the schema lock with the other shards and holds its
/// own shard's lock; an unsharded run holds the schema lock alone.
pub fn lock(client: &mut Client, schema: &str, shard: Option<Shard>) -> Result<()> {
    let got: bool = match shard {
        None => client.query_one(sql::LOCK, &[&schema])?.get(0),
        Some(s) => client
            .query_one(sql::LOCK_SHARD, &[&schema, &s.to_string()])?
            .get(0),
    };
    if got {
        Ok(())
    } else {
        Err(Error::Locked {
            what: match shard {
                None => format!("schema {schema}"),
                Some(s) => format!("schema {schema} (tenant shard {s})"),
            },
        })
    }
}

pub struct RunStart<'a> {
    pub run_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub partial: bool,
    pub selection: &'a TenantSelection,
    pub arguments: String,
    /// What the run reads, without secrets (see migration 0003).
    pub source: String,
}

/// Marks runs that died midway, then records this one as `running`.
/// Called only while holding the lock, so no other run is in flight.
pub fn start(client: &mut Client, schema: &str, run: &RunStart) -> Result<()> {
    let shard = run.selection.shard.map(|s| s.to_string());
    client.execute(
        &sql::render(sql::LEDGER_ABANDON, &[("schema", schema)]),
        &[&shard],
    )?;
    let tenants = run.selection.tenant_array();
    client.execute(
        &sql::render(sql::LEDGER_START, &[("schema", schema)]),
        &[
            &run.run_id,
            &run.from,
            &run.to,
            &run.partial,
            &tenants,
            &crate::ENGINE_VERSION,
            &run.arguments,
            &shard,
            &run.source,
        ],
    )?;
    Ok(())
}

/// A run's status (`running`, `succeeded`, `failed`), None when this
/// ledger has no such run.
pub fn status(client: &mut Client, schema: &str, run_id: Uuid) -> Result<Option<String>> {
    Ok(client
        .query_opt(
            &sql::render(sql::LEDGER_STATUS, &[("schema", schema)]),
            &[&run_id],
        )?
        .map(|r| r.get(0)))
}

pub fn fail(client: &mut Client, schema: &str, run_id: Uuid, error: &str) -> Result<()> {
    let statement = sql::render(sql::LEDGER_FAIL, &[("schema", schema)]);
    // A stop's cancel request is delivered asynchronously: one that
    // arrives after the statement it was meant for cancels this one
    // (SQLSTATE 57014). It is sent once, so a second try gets through.
    let mut attempt = 0;
    loop {
        match client.execute(&statement, &[&run_id, &error]) {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < 2 && e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Rows written per summary table.
pub type RowsWritten = crate::tables::PerTable<i32>;

pub fn succeed(
    tx: &mut Transaction,
    schema: &str,
    run_id: Uuid,
    source: &SourceTotals,
    rows: RowsWritten,
) -> Result<()> {
    tx.execute(
        &sql::render(sql::LEDGER_SUCCEED, &[("schema", schema)]),
        &[
            &run_id,
            &source.calls,
            &source.errors,
            &source.stt_cost_usd,
            &source.llm_cost_usd,
            &source.tts_cost_usd,
            &source.total_cost_usd,
            &rows[Table::TenantDaily],
            &rows[Table::Outcomes],
            &rows[Table::Errors],
            &rows[Table::Findings],
        ],
    )?;
    Ok(())
}

/// One ledger row as `runs` shows it.
#[derive(Debug, serde::Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// From start to finish, for finished runs.
    pub duration_seconds: Option<f64>,
    pub status: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    pub partial: bool,
    pub source_calls: Option<i64>,
    pub source_errors: Option<i64>,
    pub source_total_cost_usd: Option<String>,
    pub rows_tenant_daily: Option<i32>,
    pub rows_tenant_daily_outcomes: Option<i32>,
    pub rows_tenant_daily_errors: Option<i32>,
    pub rows_data_quality_findings: Option<i32>,
    pub engine_version: String,
    pub arguments: serde_json::Value,
    pub error: Option<String>,
    /// What the run read (None for runs recorded before migration 0003).
    pub source: Option<String>,
    /// Which tenants it replaced.
    pub selection: String,
}

pub fn list(client: &mut Client, schema: &str, limit: i64) -> Result<Vec<RunRow>> {
    let rows = client.query(
        &sql::render(sql::LEDGER_LIST, &[("schema", schema)]),
        &[&limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| RunRow {
            run_id: r.get("run_id"),
            started_at: timestamp(r.get("started_at")),
            finished_at: r
                .get::<_, Option<DateTime<Utc>>>("finished_at")
                .map(timestamp),
            duration_seconds: r.get::<_, Option<DateTime<Utc>>>("finished_at").map(|end| {
                let start: DateTime<Utc> = r.get("started_at");
                (end - start).num_milliseconds() as f64 / 1000.0
            }),
            status: r.get("status"),
            window_from: r.get("window_from"),
            window_to: r.get("window_to"),
            partial: r.get("partial"),
            source_calls: r.get("source_calls"),
            source_errors: r.get("source_errors"),
            source_total_cost_usd: r
                .get::<_, Option<Decimal>>("source_total_cost_usd")
                .map(crate::money::format),
            rows_tenant_daily: r.get("rows_tenant_daily"),
            rows_tenant_daily_outcomes: r.get("rows_tenant_daily_outcomes"),
            rows_tenant_daily_errors: r.get("rows_tenant_daily_errors"),
            rows_data_quality_findings: r.get("rows_data_quality_findings"),
            engine_version: r.get("engine_version"),
            arguments: serde_json::from_str(r.get::<_, &str>("arguments")).unwrap_or_default(),
            error: r.get("error"),
            source: r.get("source"),
            selection: TenantSelection {
                tenants: r
                    .get::<_, Option<Vec<Uuid>>>("tenant_filter")
                    .unwrap_or_default(),
                shard: r
                    .get::<_, Option<String>>("tenant_shard")
                    .and_then(|s| Shard::parse(&s).ok()),
            }
            .describe(),
        })
        .collect())
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
