//! The Postgres write-back: in one transaction, the window's rows of every
//! summary table are replaced by binary COPY, the result is reconciled
//! against the extracted rows, and the run is marked `succeeded`. Any
//! failure rolls the whole transaction back: readers see the old rows or
//! the new ones, never a mix.

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Client;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ledger::{self, RowsWritten};
use crate::money;
use crate::rollup::Rollup;
use crate::source::{SourceTotals, TenantSelection};
use crate::sql;

/// What one write-back needs to know about its run.
pub struct WriteBack<'a> {
    pub schema: &'a str,
    pub run_id: Uuid,
    pub computed_at: DateTime<Utc>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub selection: &'a TenantSelection,
    /// The window's rows: what the tables must add up to, and what the
    /// ledger records.
    pub totals: &'a SourceTotals,
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

pub fn write(client: &mut Client, rollup: &Rollup, run: &WriteBack) -> Result<RowsWritten> {
    let mut tx = client.transaction()?;
    let tenants = run.selection.tenant_array();
    let mut rows: RowsWritten = [0; 4];
    let tables = [
        (
            "tenant_daily",
            &rollup.tenant_daily,
            EngineColumns::TrailingWithComputedAt,
        ),
        (
            "tenant_daily_outcomes",
            &rollup.outcomes,
            EngineColumns::Trailing,
        ),
        (
            "tenant_daily_errors",
            &rollup.errors,
            EngineColumns::Trailing,
        ),
    ];
    for (i, (table, df, extra)) in tables.into_iter().enumerate() {
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
        rows[i] = copy_in(&mut tx, run, table, df, extra)?;
    }
    // Findings are history: each run keeps its own, nothing is replaced.
    rows[3] = copy_in(
        &mut tx,
        run,
        "data_quality_findings",
        &rollup.findings,
        EngineColumns::Leading,
    )?;

    reconcile(&mut tx, run)?;
    ledger::succeed(&mut tx, run.schema, run.run_id, run.totals, rows)?;
    tx.commit()?;
    Ok(rows)
}

/// `AND <the shard's hash test>` on tenant_id, or nothing.
fn shard_filter(run: &WriteBack) -> String {
    run.selection
        .shard
        .map(|s| format!("AND {}", s.sql_predicate("tenant_id")))
        .unwrap_or_default()
}

fn reconcile(tx: &mut postgres::Transaction, run: &WriteBack) -> Result<()> {
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
    let e = run.totals;
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

/// One column of a frame as values the postgres crate can send.
enum Cells {
    Uuid(Vec<Option<Uuid>>),
    Text(Vec<Option<String>>),
    Date(Vec<Option<NaiveDate>>),
    Int(Vec<Option<i64>>),
    Money(Vec<Option<Decimal>>),
    Float(Vec<Option<f64>>),
    Timestamp(Vec<Option<DateTime<Utc>>>),
}

impl Cells {
    fn from_column(column: &Column) -> Result<(Cells, Type)> {
        let s = column.as_materialized_series();
        let name = column.name().as_str();
        Ok(match s.dtype() {
            DataType::String if name == "tenant_id" => {
                let mut out = Vec::with_capacity(s.len());
                for v in s.str()? {
                    out.push(match v {
                        Some(v) => Some(Uuid::parse_str(v).map_err(|_| {
                            Error::RunFailed(format!("tenant_id {v:?} in the source is not a UUID"))
                        })?),
                        None => None,
                    });
                }
                (Cells::Uuid(out), Type::UUID)
            }
            DataType::String => (
                Cells::Text(
                    s.str()?
                        .into_iter()
                        .map(|v| v.map(str::to_string))
                        .collect(),
                ),
                Type::TEXT,
            ),
            DataType::Date => (
                Cells::Date(
                    s.date()?
                        .physical()
                        .into_iter()
                        .map(|d| d.map(epoch_day))
                        .collect(),
                ),
                Type::DATE,
            ),
            DataType::Int64 | DataType::Int32 | DataType::UInt32 => (
                Cells::Int(s.cast(&DataType::Int64)?.i64()?.into_iter().collect()),
                Type::INT8,
            ),
            DataType::Float64 => (Cells::Float(s.f64()?.into_iter().collect()), Type::FLOAT8),
            DataType::Decimal(_, _) => (Cells::Money(money::decimals(column)?), Type::NUMERIC),
            DataType::Datetime(TimeUnit::Microseconds, _) => (
                Cells::Timestamp(
                    s.datetime()?
                        .physical()
                        .into_iter()
                        .map(|v| v.and_then(DateTime::from_timestamp_micros))
                        .collect(),
                ),
                Type::TIMESTAMPTZ,
            ),
            other => {
                return Err(Error::RunFailed(format!(
                    "internal: column {name} has type {other} that the write-back does not handle"
                )))
            }
        })
    }

    fn get(&self, row: usize) -> &(dyn ToSql + Sync) {
        match self {
            Cells::Uuid(v) => &v[row],
            Cells::Text(v) => &v[row],
            Cells::Date(v) => &v[row],
            Cells::Int(v) => &v[row],
            Cells::Money(v) => &v[row],
            Cells::Float(v) => &v[row],
            Cells::Timestamp(v) => &v[row],
        }
    }
}

fn copy_in(
    tx: &mut postgres::Transaction,
    run: &WriteBack,
    table: &str,
    df: &DataFrame,
    extra: EngineColumns,
) -> Result<i32> {
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<Type> = Vec::new();
    let mut cells: Vec<Cells> = Vec::new();
    for column in df.get_columns() {
        let (c, t) = Cells::from_column(column)?;
        names.push(column.name().to_string());
        types.push(t);
        cells.push(c);
    }
    let (run_first, run_last, with_computed_at) = match extra {
        EngineColumns::Trailing => (false, true, false),
        EngineColumns::TrailingWithComputedAt => (false, true, true),
        EngineColumns::Leading => (true, false, false),
    };
    if run_first {
        names.insert(0, "run_id".into());
        types.insert(0, Type::UUID);
    }
    if run_last {
        names.push("run_id".into());
        types.push(Type::UUID);
    }
    if with_computed_at {
        names.push("computed_at".into());
        types.push(Type::TIMESTAMPTZ);
    }
    let statement = sql::render(
        sql::SUMMARY_COPY_IN,
        &[
            ("schema", run.schema),
            ("table", table),
            ("columns", &names.join(", ")),
        ],
    );
    let sink = tx.copy_in(&statement)?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(types.len());
    for i in 0..df.height() {
        row.clear();
        if run_first {
            row.push(&run.run_id);
        }
        row.extend(cells.iter().map(|c| c.get(i)));
        if run_last {
            row.push(&run.run_id);
        }
        if with_computed_at {
            row.push(&run.computed_at);
        }
        writer.write(&row)?;
    }
    writer.finish()?;
    i32::try_from(df.height())
        .map_err(|_| Error::RunFailed(format!("{table} has more rows than fit a ledger count")))
}

fn epoch_day(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::TimeDelta::days(i64::from(days))
}
