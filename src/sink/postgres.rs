//! The Postgres write-back: in one transaction, the window's rows of every
//! summary table are replaced by binary COPY, the result is reconciled
//! against the extracted rows, and the run is marked `succeeded`. Any
//! failure rolls the whole transaction back: readers see the old rows or
//! the new ones, never a mix.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use postgres::Client;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::pgbinary::{self, Encoded, PgType};
use crate::error::{Error, Result};
use crate::frames::SourceTotals;
use crate::ledger::{self, RowsWritten};
use crate::rollup::Rollup;
use crate::selection::TenantSelection;
use crate::sink;
use crate::sql;

/// What one write-back needs to know about its run.
pub struct WriteBack<'a> {
    pub schema: &'a str,
    pub run_id: Uuid,
    pub computed_at: DateTime<Utc>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub selection: &'a TenantSelection,
}

/// Columns the engine adds to a table besides the rollup's own.
#[derive(Clone, Copy)]
enum EngineColumns {
    /// `run_id` after the rollup's columns.
    Trailing,
    /// `run_id, computed_at` after the rollup's columns.
    TrailingWithComputedAt,
    /// `run_id` before the rollup's columns (it leads the findings' key).
    Leading,
}

/// The columns the engine adds to each summary table, in `sink::tables`
/// order. Findings are history: each run keeps its own (`Leading`), and
/// only the other three are replaced.
const ENGINE_COLUMNS: [EngineColumns; 4] = [
    EngineColumns::TrailingWithComputedAt,
    EngineColumns::Trailing,
    EngineColumns::Trailing,
    EngineColumns::Leading,
];

/// One open write transaction: the window's old rows are deleted when it
/// begins, each chunk's rows are copied in as the chunk is rolled up (so
/// the window never has to be held in memory), and `finish` reconciles,
/// marks the run `succeeded` and commits. Dropped without `finish`, the
/// transaction rolls back and the old rows stay.
pub struct Writer<'c, 'r> {
    tx: postgres::Transaction<'c>,
    run: &'r WriteBack<'r>,
    rows: RowsWritten,
}

impl<'c, 'r> Writer<'c, 'r> {
    pub fn begin(client: &'c mut Client, run: &'r WriteBack<'r>) -> Result<Self> {
        let mut tx = client.transaction()?;
        let tenants = run.selection.tenant_array();
        // Every table, findings included: a re-run replaces the findings of
        // the tenant days it covers, so the table does not grow with every
        // nightly run's lookback (each row keeps the run that found it).
        for table in sink::TABLE_NAMES {
            tx.execute(
                &sql::render(
                    sql::SUMMARY_DELETE_WINDOW,
                    &[
                        ("schema", run.schema),
                        ("table", table),
                        ("shard_filter", &shard_filter(run)),
                    ],
                ),
                &[&run.from, &run.to, &tenants],
            )?;
        }
        Ok(Writer {
            tx,
            run,
            rows: [0; 4],
        })
    }

    /// Copies in one chunk's rows of every summary table.
    pub fn append(&mut self, rollup: &Rollup) -> Result<()> {
        let tables = sink::tables(rollup).into_iter().zip(ENGINE_COLUMNS);
        for (i, ((table, df), extra)) in tables.enumerate() {
            let written = copy_in(&mut self.tx, self.run, table, df, extra)?;
            self.rows[i] = self.rows[i].checked_add(written).ok_or_else(|| {
                Error::RunFailed(format!("{table} has more rows than fit a ledger count"))
            })?;
        }
        Ok(())
    }

    /// Reconciles the tables against `totals` (the window's rows), records
    /// the run as succeeded and commits.
    pub fn finish(mut self, totals: &SourceTotals) -> Result<RowsWritten> {
        reconcile(&mut self.tx, self.run, totals)?;
        ledger::succeed(
            &mut self.tx,
            self.run.schema,
            self.run.run_id,
            totals,
            self.rows,
        )?;
        self.tx.commit()?;
        Ok(self.rows)
    }
}

/// `AND <the shard's hash test>` on tenant_id, or nothing.
fn shard_filter(run: &WriteBack) -> String {
    run.selection
        .shard
        .map(|s| format!("AND {}", s.sql_predicate("tenant_id")))
        .unwrap_or_default()
}

fn reconcile(tx: &mut postgres::Transaction, run: &WriteBack, totals: &SourceTotals) -> Result<()> {
    let tenants = run.selection.tenant_array();
    let row = tx.query_one(
        &sql::render(
            sql::SUMMARY_RECONCILE,
            &[("schema", run.schema), ("shard_filter", &shard_filter(run))],
        ),
        &[&run.from, &run.to, &tenants],
    )?;
    let calls: i64 = row.get("calls");
    let errors: i64 = row.get("errors");
    let total: Decimal = row.get("total_cost_usd");
    let outcome_calls: i64 = row.get("outcome_calls");
    let group_errors: i64 = row.get("error_group_errors");
    let e = totals;
    let mut problems = Vec::new();
    if calls != e.calls || outcome_calls != e.calls {
        problems.push(format!(
            "calls: source {} vs tenant_daily {calls} and tenant_daily_outcomes {outcome_calls}",
            e.calls
        ));
    }
    if errors != e.errors || group_errors != e.errors {
        problems.push(format!(
            "errors: source {} vs tenant_daily {errors} and tenant_daily_errors {group_errors}",
            e.errors
        ));
    }
    if total.normalize() != e.total_cost_usd.normalize() {
        problems.push(format!(
            "total_cost_usd: source {} vs tenant_daily {total} (a cost with more than 6 decimals cannot be stored exactly in numeric(20,6))",
            e.total_cost_usd.normalize()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Reconciliation(problems.join("; ")))
    }
}

/// The Postgres type of a rollup column, from its Polars type (tenant ids
/// are text in frames and uuid in tables).
fn pg_type(column: &Column) -> Result<PgType> {
    Ok(match column.dtype() {
        DataType::String if column.name() == "tenant_id" => PgType::Uuid,
        DataType::String => PgType::Text,
        DataType::Date => PgType::Date,
        DataType::Int64 | DataType::Int32 | DataType::UInt32 => PgType::Int8,
        DataType::Float64 => PgType::Float8,
        DataType::Decimal(_, _) => PgType::Numeric,
        DataType::Datetime(TimeUnit::Microseconds, _) => PgType::TimestampTz,
        other => {
            return Err(Error::RunFailed(format!(
                "internal: column {} has type {other} that the write-back does not handle",
                column.name()
            )))
        }
    })
}

fn copy_in(
    tx: &mut postgres::Transaction,
    run: &WriteBack,
    table: &str,
    df: &DataFrame,
    extra: EngineColumns,
) -> Result<i32> {
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Encoded> = Vec::new();
    let (run_first, run_last, with_computed_at) = match extra {
        EngineColumns::Trailing => (false, true, false),
        EngineColumns::TrailingWithComputedAt => (false, true, true),
        EngineColumns::Leading => (true, false, false),
    };
    if run_first {
        names.push("run_id".into());
        columns.push(Encoded::constant_uuid(run.run_id));
    }
    for column in df.get_columns() {
        let ty = pg_type(column)?;
        names.push(column.name().to_string());
        columns
            .push(Encoded::column(column.as_materialized_series(), ty).map_err(Error::RunFailed)?);
    }
    if run_last {
        names.push("run_id".into());
        columns.push(Encoded::constant_uuid(run.run_id));
    }
    if with_computed_at {
        names.push("computed_at".into());
        columns.push(Encoded::constant_timestamp(run.computed_at));
    }
    let statement = sql::render(
        sql::SUMMARY_COPY_IN,
        &[
            ("schema", run.schema),
            ("table", table),
            ("columns", &names.join(", ")),
        ],
    );
    let mut sink = tx.copy_in(&statement)?;
    pgbinary::write_stream(&columns, df.height(), |bytes| sink.write_all(bytes))
        .map_err(|e| Error::Database(format!("COPY into {table} failed: {e}")))?;
    sink.finish()?;
    i32::try_from(df.height())
        .map_err(|_| Error::RunFailed(format!("{table} has more rows than fit a ledger count")))
}
