//! The summary tables as the reporting commands (`costs`, `errors`,
//! `query`) read them: from the target database, or from the
//! Hive-partitioned report files `run` wrote (the embedded default). Both
//! give the same frames, column for column, so a report does not depend on
//! where it was read.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;
use postgres::Client;

use crate::error::{Error, Result};
use crate::selection::{tenant_id_in, TenantSelection};
use crate::sink::layout::DayFolder;
use crate::source::pgcopy::{self, Kind};
use crate::sql;
use crate::tables::Table;

/// The summary tables of a target schema, or a report folder.
pub enum Summaries {
    Database { client: Box<Client>, schema: String },
    Reports(PathBuf),
}

/// The rows of one table's committed files for one day (the whole run's,
/// or every shard's), keeping only `tenants` when given; None when the day
/// has no committed file. A folder that breaks the layout's rule (a whole
/// run's file beside shard files, two shard counts) or whose files share
/// a key fails: a figure is never counted twice.
pub fn day_frame(
    dir: &Path,
    table: Table,
    day: NaiveDate,
    tenants: &TenantSelection,
) -> Result<Option<DataFrame>> {
    let Some(folder) = DayFolder::read(dir, table, day)? else {
        return Ok(None);
    };
    let files = folder.parquet_files();
    if files.is_empty() {
        return Ok(None);
    }
    folder.check_one_truth()?;
    let mut frame: Option<DataFrame> = None;
    for path in &files {
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::usage(format!(
                "cannot read report file {} ({e}); re-run `callrollup run` for {day}",
                path.display()
            ))
        };
        let file = crate::sink::files::open_report(path).map_err(|e| unreadable(&e))?;
        let df = ParquetReader::new(file)
            .finish()
            .map_err(|e| unreadable(&e))?;
        frame = Some(match frame {
            Some(mut f) => {
                f.vstack_mut(&df).map_err(|e| unreadable(&e))?;
                f
            }
            None => df,
        });
    }
    let df = frame.expect("at least one file");
    check_unique_keys(&df, table, &files)?;
    if tenants.tenants.is_empty() {
        return Ok(Some(df));
    }
    Ok(Some(
        df.lazy()
            .filter(tenant_id_in(&tenants.tenant_texts()))
            .collect()?,
    ))
}

/// Fails, naming the files, when two rows of a day's files share the
/// table's key: whatever put them there, a sum over them would double.
fn check_unique_keys(df: &DataFrame, table: Table, files: &[&Path]) -> Result<()> {
    let keys = table.file_key();
    let names = |df: &DataFrame| -> Vec<String> {
        df.get_column_names_str()
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !names(df).iter().any(|n| n == k))
        .collect();
    let listed = files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !missing.is_empty() {
        return Err(Error::RunFailed(format!(
            "report files {listed} lack the key column(s) {}; re-run `callrollup run` for those days",
            missing.join(", ")
        )));
    }
    let duplicated = df.select(keys.iter().copied())?.is_duplicated()?;
    let twice = duplicated.sum().unwrap_or(0);
    if twice > 0 {
        return Err(Error::RunFailed(format!(
            "report files {listed} hold {twice} rows whose key ({}) appears more than once: a figure would be counted twice; re-run the day into this folder without --tenant-shard, or move the stray files away",
            keys.join(", ")
        )));
    }
    Ok(())
}

impl Summaries {
    /// A report folder must hold `run`'s reports.
    pub fn reports(dir: &Path) -> Result<Summaries> {
        if !dir.join(Table::TenantDaily.name()).is_dir() {
            return Err(Error::usage(format!(
                "--reports {} holds no reports (no tenant_daily folder); point it at the --out folder of `callrollup run`",
                dir.display()
            )));
        }
        Ok(Summaries::Reports(dir.to_path_buf()))
    }

    /// The summary tables of the target database, whose engine schema
    /// must be current (a report needs `run` to have filled them).
    pub fn database(
        url: &crate::db::DbUrl,
        schema: String,
        application: &str,
    ) -> Result<Summaries> {
        let mut client = url.connect_reporting(application)?;
        crate::migrate::check_current(&mut client, &schema).map_err(|e| match e {
            Error::EngineSchema(m) => Error::EngineSchema(format!(
                "{m}; then `callrollup run` to fill the summary tables (or pass --reports DIR)"
            )),
            e => e,
        })?;
        Ok(Summaries::Database {
            client: Box::new(client),
            schema,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Summaries::Database { schema, .. } => format!("summary tables in schema {schema}"),
            Summaries::Reports(dir) => format!("report files under {}", dir.display()),
        }
    }

    /// One table's rows for days `from..=to` (and only `tenants`, when
    /// given), sorted by key, in `table.schema()`.
    pub fn table(
        &mut self,
        table: Table,
        from: NaiveDate,
        to: NaiveDate,
        tenants: &TenantSelection,
    ) -> Result<DataFrame> {
        let schema = table.schema();
        let frame = match self {
            Summaries::Database {
                client,
                schema: target,
            } => read_days(
                client.as_mut(),
                target,
                table.name(),
                table.columns(),
                (from, to),
                tenants,
            )?,
            Summaries::Reports(dir) => {
                let mut parts = Vec::new();
                for day in from.iter_days().take_while(|d| *d <= to) {
                    let Some(df) = day_frame(dir, table, day, tenants)? else {
                        continue;
                    };
                    if df.height() == 0 {
                        continue;
                    }
                    let columns: Vec<Expr> = schema
                        .iter()
                        .map(|(name, dtype)| {
                            if name == "day" {
                                lit(day).alias("day")
                            } else {
                                col(name.clone()).strict_cast(dtype.clone())
                            }
                        })
                        .collect();
                    parts.push(df.lazy().select(columns));
                }
                if parts.is_empty() {
                    DataFrame::empty_with_schema(&schema)
                } else {
                    concat(parts, UnionArgs::default())?.collect()?
                }
            }
        };
        Ok(crate::frames::conform(frame, &schema)?
            .sort(table.key().to_vec(), Default::default())?)
    }
}

/// One summary table's `columns` for days `from..=to` and the selected
/// tenants, as stored, through a binary COPY: what reports read, and what
/// a run reads back to compare with its own rows.
pub fn read_days(
    client: &mut impl postgres::GenericClient,
    schema: &str,
    table: &str,
    columns: &'static [(&'static str, Kind)],
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
