//! The sink stage: report files and the Postgres write-back.

pub mod files;
pub mod layout;
pub mod pgbinary;
pub mod postgres;

use polars::prelude::*;

use crate::rollup::Rollup;
use crate::tables::PerTable;

/// Each summary table's frame of a rollup, by table.
pub fn tables(rollup: &Rollup) -> PerTable<&DataFrame> {
    PerTable::from_fn(|table| rollup.table(table))
}

/// How a run's rows of some days differ from the rows stored for them.
pub struct RowChanges {
    /// The run's rows that are new or differ in any column but the key.
    pub differing: DataFrame,
    /// How many of `differing` have no stored row with their key.
    pub new_rows: usize,
    /// The keys of stored rows the run no longer produces.
    pub vanished: DataFrame,
}

/// Compares a run's rows of some days with the rows stored for the same
/// days, matched on `key` (nulls equal to nulls, decimals and floats by
/// value). Pure, so the write-back only sends Postgres what changed.
pub fn compare_rows(run: &DataFrame, stored: &DataFrame, key: &[&str]) -> PolarsResult<RowChanges> {
    const STORED: &str = "__stored";
    let suffixed = |name: &str| format!("{name}{STORED}");
    let keys: Vec<Expr> = key.iter().map(|c| col(*c)).collect();
    let compared: Vec<String> = run
        .get_column_names_str()
        .into_iter()
        .filter(|c| !key.contains(c))
        .map(str::to_string)
        .collect();
    let mut stored_columns = keys.clone();
    stored_columns.extend(compared.iter().map(|c| col(c.as_str()).alias(suffixed(c))));
    stored_columns.push(lit(true).alias(STORED));
    let differs = compared
        .iter()
        .map(|c| col(c.as_str()).neq_missing(col(suffixed(c))))
        .fold(col(STORED).is_null(), |a, b| a.or(b));
    let mut run_columns: Vec<Expr> = run.get_column_names_str().into_iter().map(col).collect();
    run_columns.push(col(STORED));
    let mut differing = run
        .clone()
        .lazy()
        .join(
            stored.clone().lazy().select(stored_columns),
            keys.clone(),
            keys.clone(),
            JoinArgs::new(JoinType::Left),
        )
        .filter(differs)
        .select(run_columns)
        .collect()?;
    let mut run_keys = keys.clone();
    run_keys.push(lit(true).alias(STORED));
    let vanished = stored
        .clone()
        .lazy()
        .select(keys.clone())
        .join(
            run.clone().lazy().select(run_keys),
            keys.clone(),
            keys.clone(),
            JoinArgs::new(JoinType::Left),
        )
        .filter(col(STORED).is_null())
        .select(keys)
        .collect()?;
    let new_rows = differing.column(STORED)?.null_count();
    differing.drop_in_place(STORED)?;
    Ok(RowChanges {
        differing,
        new_rows,
        vanished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rows: &[(&str, i32, Option<&str>, Option<f64>)]) -> DataFrame {
        df!(
            "tenant_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "day" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "business_name" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "error_rate" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn compare_rows_keeps_new_and_differing_rows_and_finds_vanished_keys() {
        let stored = frame(&[
            ("a", 1, Some("A"), Some(0.25)),
            ("a", 2, None, None),
            ("b", 1, Some("B"), Some(0.5)),
            ("c", 1, Some("C"), None),
        ]);
        let run = frame(&[
            // Unchanged, nulls included: not written.
            ("a", 1, Some("A"), Some(0.25)),
            ("a", 2, None, None),
            // A figure changed, and a null became a value.
            ("b", 1, Some("B"), Some(0.75)),
            ("c", 1, Some("C"), Some(0.0)),
            // New.
            ("d", 1, None, Some(1.0)),
        ]);
        let changes = compare_rows(&run, &stored, &["tenant_id", "day"]).unwrap();
        assert_eq!(changes.new_rows, 1);
        let (differing, vanished) = (changes.differing, changes.vanished);
        let differing = differing.sort(["tenant_id"], Default::default()).unwrap();
        assert_eq!(
            differing,
            frame(&[
                ("b", 1, Some("B"), Some(0.75)),
                ("c", 1, Some("C"), Some(0.0)),
                ("d", 1, None, Some(1.0)),
            ])
        );
        assert_eq!(vanished.height(), 0);

        // Rows the run no longer produces: their keys, nothing else.
        let RowChanges {
            differing,
            vanished,
            ..
        } = compare_rows(
            &frame(&[("a", 1, Some("A"), Some(0.25))]),
            &stored,
            &["tenant_id", "day"],
        )
        .unwrap();
        assert_eq!(differing.height(), 0);
        let vanished = vanished
            .sort(["tenant_id", "day"], Default::default())
            .unwrap();
        assert_eq!(
            vanished,
            df!("tenant_id" => ["a", "b", "c"], "day" => [2, 1, 1]).unwrap()
        );
    }

    #[test]
    fn compare_rows_compares_money_exactly() {
        let money = |v: &[i128]| {
            Int128Chunked::from_slice("total_cost_usd".into(), v)
                .into_decimal_unchecked(Some(38), 10)
                .into_column()
        };
        let keyed = |v: &[i128]| {
            DataFrame::new(vec![Column::new("tenant_id".into(), ["a", "b"]), money(v)]).unwrap()
        };
        // One ten-billionth of a dollar apart.
        let differing = compare_rows(&keyed(&[10, 20]), &keyed(&[10, 21]), &["tenant_id"])
            .unwrap()
            .differing;
        assert_eq!(
            differing.column("tenant_id").unwrap().str().unwrap().get(0),
            Some("b")
        );
        assert_eq!(differing.height(), 1);
    }
}
