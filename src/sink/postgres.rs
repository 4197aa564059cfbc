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
use crate::source::pgcopy::{self, FieldKind};
use crate::sql;
use crate::tables::{PerTable, RunColumns, Table};

/// What one write-back needs to know about its run.
pub struct WriteBack<'a> {
    pub schema: &'a str,
    pub run_id: Uuid,
    pub computed_at: DateTime<Utc>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub selection: &'a TenantSelection,
}

/// Columns that say which run wrote a row, not what the row says: set on
/// every row a run writes, never compared.
const RUN_COLUMNS: [&str; 2] = ["run_id", "computed_at"];

/// What a write changed in one summary table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableChanges {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Of those, the changes to rows of tenant days an earlier run had
    /// written, recorded in `restatements`.
    pub restated: u64,
}

impl TableChanges {
    pub fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// What a write changed, per summary table.
pub type Changes = PerTable<TableChanges>;

/// How one table's window is written.
enum Mode {
    /// The window holds no rows: the run's rows are copied straight in
    /// (the cold write, as fast as a `COPY` can be).
    Copy,
    /// The window holds rows: each chunk's stored rows are read back and
    /// compared with the run's in the engine; only rows that differ or
    /// are new are copied into a temporary table (`staged`), and the keys
    /// of stored rows the run no longer produces into another (`gone`).
    /// The merge then writes just those.
    Merge {
        staged: String,
        gone: String,
        columns: Vec<String>,
        /// What was staged so far: the merge skips a statement with
        /// nothing to do (each one joins the whole window's stored rows).
        staged_rows: Staged,
    },
}

/// Rows staged for one table's merge.
#[derive(Default, Clone, Copy)]
struct Staged {
    /// Rows with a key the window did not hold.
    new: usize,
    /// Rows whose stored row differs.
    differing: usize,
    /// Keys of stored rows to delete.
    gone: usize,
}

impl Staged {
    /// Nothing staged: the window's stored rows are the run's already.
    fn is_empty(&self) -> bool {
        self.new + self.differing + self.gone == 0
    }
}

/// One open write transaction: each chunk's rows are copied in as the
/// chunk is rolled up (so the window never has to be held in memory);
/// `merge` then writes what changed where the window already held rows,
/// and `finish` reconciles, marks the run `succeeded` and commits. Dropped
/// without `finish`, the transaction rolls back and the old rows stay.
pub struct Writer<'c, 'r> {
    tx: postgres::Transaction<'c>,
    run: &'r WriteBack<'r>,
    modes: Vec<(Table, Mode)>,
    rows: RowsWritten,
    changes: Changes,
}

impl<'c, 'r> Writer<'c, 'r> {
    /// Keeps the open transaction from being ended as idle while the
    /// window is still read (a one-pass read hands over its first chunk
    /// only once the whole window is read).
    pub fn keep_alive(&mut self) -> Result<()> {
        self.tx.batch_execute(sql::TARGET_KEEP_ALIVE)?;
        Ok(())
    }

    pub fn begin(client: &'c mut Client, run: &'r WriteBack<'r>) -> Result<Self> {
        let mut tx = client.transaction()?;
        let tenants = run.selection.tenant_array();
        let shard_filter = shard_filter(run);
        let mut modes = Vec::with_capacity(Table::ALL.len());
        // Every table, findings included: a re-run replaces the findings of
        // the tenant days it covers, so the table does not grow with every
        // nightly run's lookback.
        for spec in Table::ALL {
            let table = spec.name();
            let vars = [
                ("schema", run.schema),
                ("table", table),
                ("shard_filter", shard_filter.as_str()),
            ];
            let has_rows: bool = tx
                .query_one(
                    &sql::render(sql::SUMMARY_WINDOW_HAS_ROWS, &vars),
                    &[&run.from, &run.to, &tenants],
                )?
                .get(0);
            if !has_rows {
                modes.push((spec, Mode::Copy));
                continue;
            }
            let staged = format!("pg_temp.callrollup_staged_{table}");
            let gone = format!("pg_temp.callrollup_gone_{table}");
            tx.batch_execute(&sql::render(
                sql::SUMMARY_STAGE,
                &[
                    ("schema", run.schema),
                    ("table", table),
                    ("staged", &staged),
                    ("gone", &gone),
                    ("key", &spec.key().join(", ")),
                ],
            ))?;
            let relation = format!("{}.{table}", run.schema);
            let columns = tx
                .query(sql::SUMMARY_COLUMNS, &[&relation])?
                .iter()
                .map(|row| row.get(0))
                .collect();
            modes.push((
                spec,
                Mode::Merge {
                    staged,
                    gone,
                    columns,
                    staged_rows: Staged::default(),
                },
            ));
        }
        if modes.iter().any(|(_, m)| matches!(m, Mode::Merge { .. })) {
            tx.batch_execute(sql::SUMMARY_MERGE_SESSION)?;
        }
        Ok(Writer {
            tx,
            run,
            modes,
            rows: RowsWritten::default(),
            changes: Changes::default(),
        })
    }

    /// Copies in one chunk's rows of every summary table: straight into
    /// the table where its window was empty, else only the rows that
    /// differ from the stored rows of the chunk's days `from..=to`.
    pub fn append(&mut self, rollup: &Rollup, from: NaiveDate, to: NaiveDate) -> Result<()> {
        let frames = sink::tables(rollup);
        for (spec, mode) in &mut self.modes {
            let (spec, df) = (*spec, frames[*spec]);
            let (table, extra) = (spec.name(), spec.spec().run_columns);
            match mode {
                Mode::Copy => {
                    let relation = format!("{}.{table}", self.run.schema);
                    let written = copy_in(&mut self.tx, self.run, &relation, df, extra)?;
                    self.changes[spec].inserted += written as u64;
                }
                Mode::Merge {
                    staged,
                    gone,
                    staged_rows,
                    ..
                } => {
                    let stored = stored_rows(&mut self.tx, self.run, spec, df, from, to)?;
                    let changes = sink::compare_rows(df, &stored, spec.key())?;
                    // Most chunks of a re-run change nothing: no COPY then.
                    if changes.differing.height() > 0 {
                        copy_in(&mut self.tx, self.run, staged, &changes.differing, extra)?;
                    }
                    if changes.vanished.height() > 0 {
                        copy_in(
                            &mut self.tx,
                            self.run,
                            gone,
                            &changes.vanished,
                            RunColumns::Nothing,
                        )?;
                    }
                    staged_rows.new += changes.new_rows;
                    staged_rows.differing += changes.differing.height() - changes.new_rows;
                    staged_rows.gone += changes.vanished.height();
                }
            }
            let height = i32::try_from(df.height()).ok();
            self.rows[spec] = height
                .and_then(|h| self.rows[spec].checked_add(h))
                .ok_or_else(|| {
                    Error::RunFailed(format!("{table} has more rows than fit a ledger count"))
                })?;
        }
        Ok(())
    }

    /// Writes what changed into the tables whose window held rows: deletes
    /// the rows the run no longer produces, updates those whose figures
    /// differ and inserts the new ones. Rows that are the same were never
    /// staged, so a re-run over unchanged data writes nothing at all.
    pub fn merge(&mut self) -> Result<()> {
        // The planner needs the staged tables' sizes to pick its joins, the
        // history's as the merge's.
        for (_, mode) in &self.modes {
            if let Mode::Merge {
                staged,
                gone,
                staged_rows,
                ..
            } = mode
            {
                if !staged_rows.is_empty() {
                    self.tx.batch_execute(&sql::render(
                        sql::SUMMARY_MERGE_ANALYZE,
                        &[("staged", staged), ("gone", gone)],
                    ))?;
                }
            }
        }
        self.record_restatements()?;
        for (spec, mode) in &self.modes {
            let Mode::Merge {
                staged,
                gone,
                columns,
                staged_rows,
            } = mode
            else {
                continue;
            };
            let (spec, table) = (*spec, spec.name());
            // Nothing staged, nothing to write (a re-run over unchanged
            // data): each statement would still join the window's rows.
            if staged_rows.is_empty() {
                continue;
            }
            let statements =
                MergeStatements::new(self.run.schema, table, staged, gone, spec.key(), columns);
            let changes = &mut self.changes[spec];
            let window: [&(dyn postgres::types::ToSql + Sync); 2] = [&self.run.from, &self.run.to];
            if staged_rows.gone > 0 {
                changes.deleted = self.tx.execute(&statements.delete, &window)?;
            }
            if staged_rows.differing > 0 {
                changes.updated = self.tx.execute(&statements.update, &window)?;
            }
            if staged_rows.new > 0 {
                changes.inserted = self.tx.execute(&statements.insert, &window)?;
            }
        }
        Ok(())
    }

    /// Records in `restatements` every change the merge is about to make
    /// to rows of tenant days earlier runs wrote: first, while every table
    /// still holds those rows (an outcome row new to a tenant day is told
    /// apart by the day's tenant_daily row, which the merge may replace).
    /// Part of the write transaction: a run that rolls back leaves no
    /// history.
    fn record_restatements(&mut self) -> Result<()> {
        let daily_held_rows = self
            .modes
            .iter()
            .any(|(t, m)| *t == Table::TenantDaily && matches!(m, Mode::Merge { .. }));
        // A tenant day an earlier run deleted may come back: then a row new
        // to the tables is a restatement too (one index probe to know).
        let tenants = self.run.selection.tenant_array();
        let days_deleted_before: bool = self
            .tx
            .query_one(
                &sql::render(
                    sql::RESTATEMENTS_DELETED_DAYS,
                    &[("schema", self.run.schema)],
                ),
                &[&self.run.from, &self.run.to, &tenants],
            )?
            .get(0);
        let params: [&(dyn postgres::types::ToSql + Sync); 3] =
            [&self.run.from, &self.run.to, &self.run.run_id];
        for (spec, mode) in &self.modes {
            let spec = *spec;
            if !spec.keeps_history() {
                continue;
            }
            // Rows new to the tables belong to a tenant day written before
            // only beside an earlier tenant_daily row, or after a deletion.
            let new_rows_may_restate =
                days_deleted_before || (daily_held_rows && spec != Table::TenantDaily);
            let (staged, gone, staged_rows) = match mode {
                Mode::Merge {
                    staged,
                    gone,
                    staged_rows,
                    ..
                } => (staged.as_str(), gone.as_str(), *staged_rows),
                Mode::Copy => ("", "", Staged::default()),
            };
            let history = HistoryStatements::new(self.run.schema, spec, staged, gone);
            let mut statements = Vec::new();
            match mode {
                Mode::Copy if new_rows_may_restate => statements.push(&history.copied),
                Mode::Copy => {}
                Mode::Merge { .. } => {
                    if staged_rows.gone > 0 {
                        statements.push(&history.deleted);
                    }
                    if staged_rows.differing > 0 {
                        statements.push(&history.updated);
                    }
                    if staged_rows.new > 0 && new_rows_may_restate {
                        statements.push(&history.inserted);
                    }
                }
            }
            for statement in statements {
                self.changes[spec].restated += self.tx.execute(statement, &params)?;
            }
        }
        Ok(())
    }

    /// Checks the summary tables as this transaction sees them against the
    /// source's totals; a stop can still cancel it (it runs before the
    /// run enters its commit).
    pub fn reconcile(&mut self, totals: &SourceTotals) -> Result<()> {
        reconcile(&mut self.tx, self.run, totals)
    }

    /// Marks the run succeeded and commits: call `reconcile` first.
    pub fn finish(mut self, totals: &SourceTotals) -> Result<(RowsWritten, Changes)> {
        ledger::succeed(
            &mut self.tx,
            self.run.schema,
            self.run.run_id,
            totals,
            self.rows,
        )?;
        self.tx.commit()?;
        Ok((self.rows, self.changes))
    }
}

/// The three statements that merge one staged table into its summary
/// table, with the table's columns filled in.
struct MergeStatements {
    delete: String,
    update: String,
    insert: String,
}

impl MergeStatements {
    fn new(
        schema: &str,
        table: &str,
        staged: &str,
        gone: &str,
        key: &[&str],
        columns: &[String],
    ) -> Self {
        let list = |prefix: &str, names: &[&str]| {
            names
                .iter()
                .map(|c| format!("{prefix}{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all: Vec<&str> = columns.iter().map(String::as_str).collect();
        let assigned: Vec<&str> = all.iter().copied().filter(|c| !key.contains(c)).collect();
        let compared: Vec<&str> = assigned
            .iter()
            .copied()
            .filter(|c| !RUN_COLUMNS.contains(c))
            .collect();
        let key_match = key_match(key);
        // ROW(...) so that a table with one compared column still compares
        // a row, not a parenthesised value.
        let vars = [
            ("schema", schema),
            ("table", table),
            ("staged", staged),
            ("gone", gone),
            ("key_match", key_match.as_str()),
            ("columns", &list("", &all)),
            ("staged_columns", &list("s.", &all)),
            ("assigned", &list("", &assigned)),
            (
                "staged_assigned",
                &format!("ROW({})", list("s.", &assigned)),
            ),
            (
                "compared_target",
                &format!("ROW({})", list("t.", &compared)),
            ),
            (
                "compared_staged",
                &format!("ROW({})", list("s.", &compared)),
            ),
        ];
        MergeStatements {
            delete: sql::render(sql::SUMMARY_MERGE_DELETE, &vars),
            update: sql::render(sql::SUMMARY_MERGE_UPDATE, &vars),
            insert: sql::render(sql::SUMMARY_MERGE_INSERT, &vars),
        }
    }
}

/// The statements that record one table's restatements, with its columns
/// filled in: its figures (the columns beyond the key that a run computes)
/// as JSON objects of the stored row (`t`) and of the run's (`s`).
struct HistoryStatements {
    updated: String,
    deleted: String,
    inserted: String,
    copied: String,
}

impl HistoryStatements {
    fn new(schema: &str, spec: Table, staged: &str, gone: &str) -> Self {
        let key = spec.key();
        let figures: Vec<&str> = spec
            .columns()
            .iter()
            .map(|(name, _)| *name)
            .filter(|c| !key.contains(c))
            .collect();
        let object = |prefix: &str, names: &[&str]| {
            let pairs: Vec<String> = names
                .iter()
                .map(|c| format!("'{c}', {prefix}{c}"))
                .collect();
            format!("jsonb_build_object({})", pairs.join(", "))
        };
        let rest_of_key: Vec<&str> = key
            .iter()
            .copied()
            .filter(|c| !matches!(*c, "tenant_id" | "day"))
            .collect();
        let names = |names: &[&str]| {
            let quoted: Vec<String> = names.iter().map(|c| format!("'{c}'")).collect();
            format!("ARRAY[{}]::text[]", quoted.join(", "))
        };
        let changed: Vec<String> = figures
            .iter()
            .map(|c| format!("CASE WHEN t.{c} IS DISTINCT FROM s.{c} THEN '{c}' END"))
            .collect();
        let row = |prefix: &str| {
            let cells: Vec<String> = figures.iter().map(|c| format!("{prefix}{c}")).collect();
            format!("ROW({})", cells.join(", "))
        };
        let key_match = key_match(key);
        let earlier_run = |row: &str| {
            sql::render(
                sql::RESTATEMENTS_EARLIER_RUN,
                &[("schema", schema), ("row", row)],
            )
        };
        let vars = [
            ("earlier_run_of_staged", &earlier_run("s") as &str),
            ("earlier_run_of_target", &earlier_run("t")),
            ("schema", schema),
            ("table", spec.name()),
            ("staged", staged),
            ("gone", gone),
            ("key_match", key_match.as_str()),
            ("target_row_key", &object("t.", &rest_of_key)),
            ("staged_row_key", &object("s.", &rest_of_key)),
            ("target_values", &object("t.", &figures)),
            ("staged_values", &object("s.", &figures)),
            ("all_compared", &names(&figures)),
            (
                "changed_columns",
                &format!("array_remove(ARRAY[{}]::text[], NULL)", changed.join(", ")),
            ),
            ("compared_target", &row("t.")),
            ("compared_staged", &row("s.")),
        ];
        HistoryStatements {
            updated: sql::render(sql::RESTATEMENTS_UPDATED, &vars),
            deleted: sql::render(sql::RESTATEMENTS_DELETED, &vars),
            inserted: sql::render(sql::RESTATEMENTS_INSERTED, &vars),
            copied: sql::render(sql::RESTATEMENTS_COPIED, &vars),
        }
    }
}

/// The stored row `t` and the run's row `s` have the same key.
fn key_match(key: &[&str]) -> String {
    key.iter()
        .map(|c| format!("t.{c} = s.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
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

/// The stored rows of one summary table for days `from..=to` and the
/// run's tenants, read back inside the write transaction in the run's
/// frame's schema (`like`), to compare with the run's rows.
fn stored_rows(
    tx: &mut postgres::Transaction,
    run: &WriteBack,
    spec: Table,
    like: &DataFrame,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<DataFrame> {
    let (table, columns) = (spec.name(), spec.columns());
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    if names != like.get_column_names_str() {
        return Err(Error::RunFailed(format!(
            "internal: {table}'s rollup columns are not the ones read back"
        )));
    }
    let stored = read_days(tx, run.schema, table, columns, (from, to), run.selection)?;
    Ok(crate::frames::conform(stored, like.schema())?)
}

/// Copies a frame's rows into `relation` (a summary table or its staged
/// copy), returning how many.
fn copy_in(
    tx: &mut postgres::Transaction,
    run: &WriteBack,
    relation: &str,
    df: &DataFrame,
    extra: RunColumns,
) -> Result<i32> {
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Encoded> = Vec::new();
    let (run_first, run_last, with_computed_at) = match extra {
        RunColumns::Trailing => (false, true, false),
        RunColumns::TrailingWithComputedAt => (false, true, true),
        RunColumns::Leading => (true, false, false),
        RunColumns::Nothing => (false, false, false),
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
        &[("relation", relation), ("columns", &names.join(", "))],
    );
    let table = relation;
    let mut sink = tx.copy_in(&statement)?;
    pgbinary::write_stream(&columns, df.height(), |bytes| sink.write_all(bytes))
        .map_err(|e| Error::Database(format!("COPY into {table} failed: {e}")))?;
    sink.finish()?;
    i32::try_from(df.height())
        .map_err(|_| Error::RunFailed(format!("{table} has more rows than fit a ledger count")))
}

/// One summary table's `columns` for days `from..=to` and the selected
/// tenants, as stored, through a binary COPY: what reports read, and what
/// a run reads back to compare with its own rows.
pub fn read_days(
    client: &mut impl postgres::GenericClient,
    schema: &str,
    table: &str,
    columns: &[(&'static str, FieldKind)],
    (from, to): (NaiveDate, NaiveDate),
    tenants: &TenantSelection,
) -> Result<DataFrame> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    // Only engine-built values are spliced in: a validated schema,
    // formatted dates, parsed UUIDs and a shard's hash test.
    let query = sql::render(
        sql::SUMMARY_COPY_OUT,
        &[
            ("columns", &names.join(", ")),
            ("schema", schema),
            ("table", table),
            ("from", &from.to_string()),
            ("to", &to.to_string()),
            ("tenant_filter", &tenants.sql_filter("tenant_id")),
        ],
    );
    let statement = sql::render(sql::COPY_OUT, &[("query", &query)]);
    let stream = client.copy_out(&statement)?;
    pgcopy::read_frame(stream, columns)
        .map_err(|e| Error::RunFailed(format!("cannot read {table}: {e}")))
}
