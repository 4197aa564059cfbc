//! The summary tables, declared once. Every list the engine keeps of them
//! — the write-back's column lists and merge keys, the report files' names
//! and sort keys, the ledger's row counts, the metrics, the frames that
//! `costs`, `errors` and `query` read — is derived from `Table::spec`, and
//! per-table values are kept in a `PerTable`, indexed by the table.
//!
//! A new summary table is a variant here with its spec, its rollup
//! function (`rollup::Rollup::table`) and its migration.

use std::ops::{Index, IndexMut};

use polars::prelude::Schema;

use crate::frames::FieldKind;

/// A summary table the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    TenantDaily,
    Outcomes,
    Errors,
    Findings,
}

/// Columns a run adds to a table's rows besides the rollup's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunColumns {
    /// `run_id` after the rollup's columns.
    Trailing,
    /// `run_id, computed_at` after the rollup's columns.
    TrailingWithComputedAt,
    /// `run_id` before the rollup's columns (it leads the findings' key).
    Leading,
    /// None: the rows are keys of stored rows to delete.
    Nothing,
}

/// What the engine knows of one summary table.
#[derive(Debug)]
pub struct TableSpec {
    /// The table's name in the target schema and in report folders.
    pub name: &'static str,
    /// The columns the rollup computes, in table order, with how their
    /// binary COPY fields decode (and so their frame types).
    pub columns: &'static [(&'static str, FieldKind)],
    /// The key a run's rows are matched on to the stored ones (the merge),
    /// `day` included. The findings' primary key leads with `run_id`, but
    /// a finding is the same finding whichever run found it.
    pub key: &'static [&'static str],
    /// The columns a run adds to each row.
    pub run_columns: RunColumns,
    /// Whether `costs`, `errors` and `query` read it as a summary table
    /// (the findings are the run's notes, not figures). Figures are what
    /// a run records in `restatements` when it changes them.
    pub reported: bool,
}

use FieldKind::*;

const TENANT_DAILY: TableSpec = TableSpec {
    name: "tenant_daily",
    columns: &[
        ("tenant_id", DictionaryUuid),
        ("day", Date),
        ("business_name", DictionaryText),
        ("timezone", DictionaryText),
        ("calls", Int8),
        ("completed_calls", Int8),
        ("failed_calls", Int8),
        ("billable_seconds", Int8),
        ("stt_cost_usd", Money),
        ("llm_cost_usd", Money),
        ("tts_cost_usd", Money),
        ("total_cost_usd", Money),
        ("calls_missing_cost", Int8),
        ("cost_mismatch_calls", Int8),
        ("errors", Int8),
        ("critical_errors", Int8),
        ("errored_calls", Int8),
        ("error_rate", Float8),
    ],
    key: &["tenant_id", "day"],
    run_columns: RunColumns::TrailingWithComputedAt,
    reported: true,
};

const OUTCOMES: TableSpec = TableSpec {
    name: "tenant_daily_outcomes",
    columns: &[
        ("tenant_id", DictionaryUuid),
        ("day", Date),
        ("status", DictionaryText),
        ("outcome", DictionaryText),
        ("calls", Int8),
        ("billable_seconds", Int8),
        ("total_cost_usd", Money),
    ],
    key: &["tenant_id", "day", "status", "outcome"],
    run_columns: RunColumns::Trailing,
    reported: true,
};

const ERRORS: TableSpec = TableSpec {
    name: "tenant_daily_errors",
    columns: &[
        ("tenant_id", DictionaryUuid),
        ("day", Date),
        ("error_type", DictionaryText),
        ("severity", DictionaryText),
        ("errors", Int8),
        ("unresolved_errors", Int8),
        ("calls_affected", Int8),
        ("first_seen_at", TimestampTz),
        ("last_seen_at", TimestampTz),
    ],
    key: &["tenant_id", "day", "error_type", "severity"],
    run_columns: RunColumns::Trailing,
    reported: true,
};

const FINDINGS: TableSpec = TableSpec {
    name: "data_quality_findings",
    columns: &[
        ("kind", DictionaryText),
        ("tenant_id", DictionaryUuid),
        ("day", Date),
        ("rows", Int8),
        ("example_id", Text),
    ],
    key: &["kind", "tenant_id", "day"],
    run_columns: RunColumns::Leading,
    reported: false,
};

impl Table {
    /// Every summary table, in the order a run writes them.
    pub const ALL: [Table; 4] = [
        Table::TenantDaily,
        Table::Outcomes,
        Table::Errors,
        Table::Findings,
    ];

    pub fn spec(self) -> &'static TableSpec {
        match self {
            Table::TenantDaily => &TENANT_DAILY,
            Table::Outcomes => &OUTCOMES,
            Table::Errors => &ERRORS,
            Table::Findings => &FINDINGS,
        }
    }

    /// The tables reports read as figures.
    pub fn reported() -> impl Iterator<Item = Table> {
        Table::ALL.into_iter().filter(|t| t.spec().reported)
    }

    /// Whether a run records its changes to this table's stored rows in
    /// `restatements`: the figures do, the findings (a run's notes) not.
    pub fn keeps_history(self) -> bool {
        self.spec().reported
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The table of a name, if it is one of the engine's.
    pub fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Every column the rollup computes, with how its COPY field decodes.
    pub fn columns(self) -> &'static [(&'static str, FieldKind)] {
        self.spec().columns
    }

    /// The columns named, in the table's order, with their kinds (a
    /// reader that needs a few of a table's figures reads only those).
    pub fn columns_named(self, names: &[&str]) -> Vec<(&'static str, FieldKind)> {
        debug_assert!(
            names
                .iter()
                .all(|n| self.columns().iter().any(|(c, _)| c == n)),
            "{names:?} are not all columns of {}",
            self.name()
        );
        self.columns()
            .iter()
            .filter(|(name, _)| names.contains(name))
            .copied()
            .collect()
    }

    /// The merge key, `day` included.
    pub fn key(self) -> &'static [&'static str] {
        self.spec().key
    }

    /// The key within one day's report file (`day` lives in its path):
    /// the order its rows are sorted in, and what must be unique in it.
    pub fn file_key(self) -> Vec<&'static str> {
        self.key().iter().copied().filter(|c| *c != "day").collect()
    }

    /// The frame's schema: what both the database and the files give.
    pub fn schema(self) -> Schema {
        crate::frames::schema_of(self.columns())
    }

    fn position(self) -> usize {
        Table::ALL
            .iter()
            .position(|t| *t == self)
            .expect("every table is in ALL")
    }
}

/// One value for each summary table, indexed by the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerTable<T>([T; 4]);

impl<T> PerTable<T> {
    /// The values `value` gives each table.
    pub fn from_fn(mut value: impl FnMut(Table) -> T) -> PerTable<T> {
        PerTable(Table::ALL.map(&mut value))
    }

    /// Each table with its value, in `Table::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &T)> {
        Table::ALL.into_iter().zip(self.0.iter())
    }

    /// The values in `Table::ALL` order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}

impl<T> Index<Table> for PerTable<T> {
    type Output = T;
    fn index(&self, table: Table) -> &T {
        &self.0[table.position()]
    }
}

impl<T> IndexMut<Table> for PerTable<T> {
    fn index_mut(&mut self, table: Table) -> &mut T {
        &mut self.0[table.position()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_named_keep_the_tables_kinds_and_order() {
        assert_eq!(
            Table::TenantDaily.columns_named(&["calls", "tenant_id", "day"]),
            [
                ("tenant_id", DictionaryUuid),
                ("day", Date),
                ("calls", Int8)
            ]
        );
    }

    #[test]
    fn every_key_column_is_a_column_and_names_are_unique() {
        for table in Table::ALL {
            for key in table.key() {
                assert!(
                    table.columns().iter().any(|(c, _)| c == key),
                    "{}: key {key} is not a column",
                    table.name()
                );
            }
            assert!(table.key().contains(&"day"), "{}", table.name());
            assert_eq!(Table::named(table.name()), Some(table));
        }
        assert_eq!(Table::reported().count(), 3);
    }
}
