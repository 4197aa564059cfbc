//! Report files: `DIR/<table>/day=YYYY-MM-DD/<table>.parquet` and `.csv`,
//! one pair per table and window day (empty days too, so that a re-run
//! replaces what an earlier run wrote). All files are first written under
//! temporary names; only when every one is complete are they renamed into
//! place, so a failure leaves the previous reports as they were.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::money;

/// Files written under temporary names, waiting to be renamed into place.
#[derive(Default)]
pub struct StagedFiles {
    moves: Vec<(PathBuf, PathBuf)>,
}

/// Columns that hold money (Decimal), rounded to 6 places in every file.
fn is_money(dtype: &DataType) -> bool {
    matches!(dtype, DataType::Decimal(_, _))
}

/// Writes every table's day files under temporary names next to their
/// final place. `tag` makes the temporary names unique to this run;
/// `suffix` is added to file names (a tenant shard's `-shard-i-of-n`).
pub fn stage(
    out: &Path,
    tables: &[(&str, &DataFrame)],
    days: &[NaiveDate],
    tag: &str,
    suffix: &str,
) -> Result<StagedFiles> {
    let mut staged = StagedFiles::default();
    match staged.add(out, tables, days, tag, suffix) {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.abort();
            Err(e)
        }
    }
}

impl StagedFiles {
    /// Stages the day files of more days (see `stage`); on an error the
    /// caller aborts everything staged so far.
    pub fn add(
        &mut self,
        out: &Path,
        tables: &[(&str, &DataFrame)],
        days: &[NaiveDate],
        tag: &str,
        suffix: &str,
    ) -> Result<()> {
        for (table, df) in tables {
            let file_frame = file_frame(df)?;
            for day in days {
                let dir = out.join(table).join(format!("day={day}"));
                fs::create_dir_all(&dir).map_err(|e| {
                    Error::io(
                        format!("cannot create report folder {}; check --out", dir.display()),
                        e,
                    )
                })?;
                remove_stale_temporaries(&dir, &format!("{table}{suffix}"))?;
                let rows = file_frame
                    .clone()
                    .lazy()
                    .filter(col("day").eq(lit(*day)))
                    .drop(["day"])
                    .collect()?;
                let parquet = dir.join(format!("{table}{suffix}.parquet"));
                let tmp = temp_name(&parquet, tag);
                self.moves.push((tmp.clone(), parquet));
                write_atomic_part(&tmp, |f| {
                    ParquetWriter::new(f).finish(&mut rows.clone())?;
                    Ok(())
                })?;
                let csv = dir.join(format!("{table}{suffix}.csv"));
                let tmp = temp_name(&csv, tag);
                self.moves.push((tmp.clone(), csv));
                let mut text = csv_frame(&rows)?;
                write_atomic_part(&tmp, |f| {
                    CsvWriter::new(f)
                        .include_header(true)
                        .with_quote_style(QuoteStyle::Necessary)
                        .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.6fZ".into()))
                        .finish(&mut text)?;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Renames every staged file into place; returns the final paths.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        let mut done = Vec::with_capacity(self.moves.len());
        for (tmp, path) in &self.moves {
            fs::rename(tmp, path).map_err(|e| {
                Error::io(
                    format!("cannot move report into place at {}", path.display()),
                    e,
                )
            })?;
            done.push(path.clone());
        }
        Ok(done)
    }

    /// Removes the staged files; the previous reports stay untouched.
    pub fn abort(&self) {
        for (tmp, _) in &self.moves {
            let _ = fs::remove_file(tmp);
        }
    }

    pub fn len(&self) -> usize {
        self.moves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

/// Temporary files of `stem` left by a run that was killed before it could
/// clean up. Runs hold the lock (of their shard) while staging, so such a
/// file is stale; other shards' files have other stems and are left alone.
fn remove_stale_temporaries(dir: &Path, stem: &str) -> Result<()> {
    let own = [format!(".{stem}.parquet."), format!(".{stem}.csv.")];
    let entries = fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read report folder {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if own.iter().any(|p| name.starts_with(p.as_str())) && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    path.with_file_name(format!(".{name}.{tag}.tmp"))
}

fn write_atomic_part(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let mut file = File::create(path).map_err(|e| {
        Error::io(
            format!("cannot write report {}; check --out", path.display()),
            e,
        )
    })?;
    write(&mut file)?;
    file.flush()
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write report {}", path.display()), e))
}

/// The table as files hold it: money as Decimal(20,6), rounded.
fn file_frame(df: &DataFrame) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        columns.push(if is_money(c.dtype()) {
            money::to_stored_scale(c)?
        } else {
            c.clone()
        });
    }
    Ok(DataFrame::new(columns)?)
}

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [&str; 6] = ["=", "+", "-", "@", "\t", "\r"];

/// The table as CSV holds it: text cells guarded against formula
/// injection, money as text with 6 decimals, numbers left alone.
pub fn csv_frame(df: &DataFrame) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        let column = match c.dtype() {
            DataType::String => {
                let name = c.name().clone();
                let starts = FORMULA_STARTS
                    .iter()
                    .map(|s| col(name.clone()).str().starts_with(lit(*s)))
                    .reduce(|a, b| a.or(b))
                    .expect("non-empty");
                let guarded = DataFrame::new(vec![c.clone()])?
                    .lazy()
                    .select([when(starts)
                        .then(lit("'") + col(name.clone()))
                        .otherwise(col(name.clone()))
                        .alias(name.clone())])
                    .collect()?;
                guarded.column(&name)?.clone()
            }
            dtype if is_money(dtype) => money::to_text(c)?,
            _ => c.clone(),
        };
        columns.push(column);
    }
    Ok(DataFrame::new(columns)?)
}
