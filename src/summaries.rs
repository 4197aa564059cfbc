//! The summary tables as the reporting commands (`costs`, `errors`,
//! `query`) read them: from the target database, or from the
//! Hive-partitioned report files `run` wrote (the embedded default). Both
//! give the same frames, column for column, so a report does not depend on
//! where it was read.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use postgres::Client;

use crate::error::{Error, Result};
use crate::frames::FieldKind;
use crate::selection::{tenant_id_in, TenantSelection};
use crate::sink::layout::DayFolder;
use crate::sql;
use crate::tables::Table;
use crate::window::Period;

/// The summary tables of a target schema, or a report folder.
pub enum Summaries {
    Database {
        client: Box<Client>,
        schema: String,
        /// Inside `snapshot`: the reads share one transaction.
        in_snapshot: bool,
    },
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
    // A web request's work stops between days once it is not wanted.
    crate::deadline::check()?;
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
            in_snapshot: false,
        })
    }

    /// Runs `read` in one `REPEATABLE READ READ ONLY` transaction
    /// (queries/report_snapshot_begin.sql), so a report made of several
    /// statements sees one state of the tables: a run committing between
    /// two of them made a page or a CSV that mixed old figures with the
    /// new coverage and restatement lines. Nested calls join the
    /// outermost; the transaction is ended either way (it only read), so
    /// the session goes back to a pool clean. Report files: `read` as is.
    pub fn snapshot<T>(&mut self, read: impl FnOnce(&mut Summaries) -> Result<T>) -> Result<T> {
        let Summaries::Database {
            client,
            in_snapshot,
            ..
        } = self
        else {
            return read(self);
        };
        if *in_snapshot {
            return read(self);
        }
        client.batch_execute(crate::sql::REPORT_SNAPSHOT_BEGIN)?;
        *in_snapshot = true;
        let out = read(self);
        let Summaries::Database {
            client,
            in_snapshot,
            ..
        } = self
        else {
            unreachable!("a database stays a database");
        };
        // Only an ended transaction leaves the snapshot: a session whose
        // ROLLBACK failed stays marked, and a pool drops it (serve's Lease).
        if client
            .batch_execute(crate::sql::REPORT_SNAPSHOT_END)
            .is_ok()
        {
            *in_snapshot = false;
        }
        // What was read is the report, whatever its ending said.
        out
    }

    /// Whether a snapshot is still open on this session (its end failed):
    /// such a session is not reused.
    pub fn in_snapshot(&self) -> bool {
        matches!(
            self,
            Summaries::Database {
                in_snapshot: true,
                ..
            }
        )
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
        self.table_columns(table, table.columns(), from, to, tenants)
    }

    /// Some of a table's columns (a page that needs a few of its figures
    /// reads only those), sorted by the key columns among them.
    pub fn table_columns(
        &mut self,
        table: Table,
        columns: &[(&'static str, FieldKind)],
        from: NaiveDate,
        to: NaiveDate,
        tenants: &TenantSelection,
    ) -> Result<DataFrame> {
        let schema = crate::frames::schema_of(columns);
        let frame = match self {
            Summaries::Database {
                client,
                schema: target,
                ..
            } => crate::sink::postgres::read_days(
                client.as_mut(),
                target,
                table.name(),
                columns,
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
        let key: Vec<&str> = table
            .key()
            .iter()
            .copied()
            .filter(|k| schema.contains(k))
            .collect();
        Ok(crate::frames::conform(frame, &schema)?.sort(key, Default::default())?)
    }
}

/// Days of the period and how succeeded runs covered them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Coverage {
    /// Days no succeeded run covered for every tenant.
    pub missing_days: Vec<NaiveDate>,
    /// Days whose latest covering run started before the day had ended
    /// everywhere (`--allow-partial`): their figures may still grow.
    pub partial_days: Vec<NaiveDate>,
    /// The runs the figures come from (empty for report files).
    pub runs: Vec<String>,
    /// Where coverage was read: `rollup_runs`, or the report folders.
    pub source: String,
}

impl Coverage {
    /// How many days of `period` were covered (partial days count: they
    /// have figures, flagged separately).
    pub fn days_covered(&self, period: &Period) -> i64 {
        period.days() - self.missing_days.len() as i64
    }

    pub fn is_complete(&self) -> bool {
        self.missing_days.is_empty() && self.partial_days.is_empty()
    }

    /// For people: one line per problem, or none.
    pub fn problems(&self) -> Vec<String> {
        let list = |days: &[NaiveDate]| {
            days.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = Vec::new();
        // A day that has not ended everywhere yet cannot have been rolled
        // up: it is not yet ended, not a run that is missing.
        let complete = crate::window::last_complete_day(chrono::Utc::now());
        let (missing, not_ended): (Vec<NaiveDate>, Vec<NaiveDate>) =
            self.missing_days.iter().partition(|d| **d <= complete);
        if !missing.is_empty() {
            out.push(format!(
                "{} day(s) not covered by a succeeded run: {}",
                missing.len(),
                list(&missing)
            ));
        }
        if !not_ended.is_empty() {
            out.push(format!(
                "{} day(s) not yet ended everywhere, so not rolled up yet: {}",
                not_ended.len(),
                list(&not_ended)
            ));
        }
        if !self.partial_days.is_empty() {
            out.push(format!(
                "{} day(s) rolled up before they had ended everywhere (partial): {}",
                self.partial_days.len(),
                list(&self.partial_days)
            ));
        }
        out
    }
}

impl Summaries {
    /// Refuses (exit 2) `--tenant` ids the summary tables have never held:
    /// a typo, not an empty report. `lister` names what lists the known
    /// tenants.
    pub fn refuse_unknown_tenants(
        &mut self,
        tenants: &TenantSelection,
        lister: &str,
    ) -> Result<()> {
        let unknown = self.unknown_tenants(tenants)?;
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::usage(format!(
            "unknown --tenant {}: not in the summary tables ({}) on any day; check the tenant_id ({lister} lists them)",
            unknown.join(", "),
            self.describe()
        )))
    }

    /// The `--tenant` ids that are not in the summary tables on any day
    /// (`tenant_daily`): unknown, a typo or never rolled up.
    pub fn unknown_tenants(&mut self, tenants: &TenantSelection) -> Result<Vec<String>> {
        let wanted = tenants.tenant_texts();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let known: std::collections::BTreeSet<String> = match self {
            Summaries::Database { client, schema, .. } => client
                .query(
                    &sql::render(sql::COSTS_KNOWN_TENANTS, &[("schema", schema)]),
                    &[&tenants.tenants],
                )?
                .iter()
                .map(|r| r.get("tenant_id"))
                .collect(),
            Summaries::Reports(dir) => known_in_files(dir, &wanted)?,
        };
        Ok(wanted.into_iter().filter(|t| !known.contains(t)).collect())
    }

    /// Which days of the period succeeded runs covered for every tenant.
    pub fn coverage(&mut self, period: &Period) -> Result<Coverage> {
        match self {
            Summaries::Database { client, schema, .. } => {
                let rows = client.query(
                    &sql::render(sql::COSTS_COVERAGE, &[("schema", schema)]),
                    &[&period.from, &period.to],
                )?;
                let runs: Vec<CoveringRun> = rows
                    .iter()
                    .map(|r| CoveringRun {
                        day: r.get("day"),
                        run_id: r.get("run_id"),
                        tenant_shard: r.get("tenant_shard"),
                        started_at: r.get("started_at"),
                        partial: r.get("partial"),
                    })
                    .collect();
                Ok(coverage_from_runs(period, &runs))
            }
            Summaries::Reports(dir) => Ok(Coverage {
                // Covered: a committed whole run's file, or every shard's
                // of one count; an empty or staged-only folder is not.
                missing_days: period
                    .each_day()
                    .map(|d| Ok((d, DayFolder::read(dir, Table::TenantDaily, d)?)))
                    .filter_map(|r: Result<_>| match r {
                        Ok((d, folder)) => {
                            (!folder.is_some_and(|f| f.is_covered())).then_some(Ok(d))
                        }
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<_>>()?,
                partial_days: Vec::new(),
                runs: Vec::new(),
                source: "the file target keeps no ledger of runs".into(),
            }),
        }
    }
}

/// Which of `wanted` appear in any day's committed `tenant_daily` report
/// files (the layout's names only; only the `tenant_id` column is read).
fn known_in_files(dir: &Path, wanted: &[String]) -> Result<std::collections::BTreeSet<String>> {
    let mut known = std::collections::BTreeSet::new();
    let Ok(days) = std::fs::read_dir(dir.join(Table::TenantDaily.name())) else {
        return Ok(known);
    };
    for day in days.flatten() {
        let Some(day) = day
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("day="))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let Some(folder) = crate::sink::layout::DayFolder::read(dir, Table::TenantDaily, day)?
        else {
            continue;
        };
        for path in folder.parquet_files() {
            let unreadable = |e: &dyn std::fmt::Display| {
                crate::error::Error::usage(format!(
                    "cannot read report file {} ({e}); re-run `callrollup run` for that day",
                    path.display()
                ))
            };
            let df = ParquetReader::new(
                crate::sink::files::open_report(path).map_err(|e| unreadable(&e))?,
            )
            .with_columns(Some(vec!["tenant_id".into()]))
            .finish()
            .map_err(|e| unreadable(&e))?;
            for id in crate::frames::strings(&df, "tenant_id")?
                .into_iter()
                .flatten()
            {
                if wanted.contains(&id) {
                    known.insert(id);
                }
            }
        }
        if known.len() == wanted.len() {
            break;
        }
    }
    Ok(known)
}

/// A succeeded run that covered a day for every tenant of its shard.
pub struct CoveringRun {
    pub day: NaiveDate,
    pub run_id: String,
    pub tenant_shard: Option<String>,
    pub started_at: DateTime<Utc>,
    /// The day had not ended everywhere when the run started.
    pub partial: bool,
}

/// A day is covered by its latest whole run, or by the latest run of every
/// shard of some `n`; it is partial when a run that decides it started
/// before the day had ended everywhere. `runs` is newest first per day.
pub fn coverage_from_runs(period: &Period, runs: &[CoveringRun]) -> Coverage {
    let mut coverage = Coverage {
        source: "rollup_runs".into(),
        ..Default::default()
    };
    let mut used = std::collections::BTreeSet::new();
    for day in period.each_day() {
        let of_day: Vec<&CoveringRun> = runs.iter().filter(|r| r.day == day).collect();
        let whole = of_day.iter().find(|r| r.tenant_shard.is_none());
        // For each shard count n: the latest run of each shard i/n.
        let mut shards: BTreeMap<u32, BTreeMap<u32, &CoveringRun>> = BTreeMap::new();
        for r in &of_day {
            if let Some(shard) = r
                .tenant_shard
                .as_deref()
                .and_then(|s| crate::shard::Shard::parse(s).ok())
            {
                shards
                    .entry(shard.count)
                    .or_default()
                    .entry(shard.index)
                    .or_insert(r);
            }
        }
        let complete_shards = shards
            .iter()
            .filter(|(n, by_index)| (0..**n).all(|i| by_index.contains_key(&i)))
            .map(|(_, by_index)| by_index)
            .max_by_key(|by_index| by_index.values().map(|r| r.started_at).min());
        // The newer of a whole run and a complete set of shards decides.
        let deciding: Option<Vec<&CoveringRun>> = match (whole, complete_shards) {
            (Some(w), Some(s)) if s.values().map(|r| r.started_at).min() > Some(w.started_at) => {
                Some(s.values().copied().collect())
            }
            (Some(w), _) => Some(vec![*w]),
            (None, Some(s)) => Some(s.values().copied().collect()),
            (None, None) => None,
        };
        match deciding {
            None => coverage.missing_days.push(day),
            Some(runs) => {
                if runs.iter().any(|r| r.partial) {
                    coverage.partial_days.push(day);
                }
                for r in runs {
                    used.insert(r.run_id.clone());
                }
            }
        }
    }
    coverage.runs = used.into_iter().collect();
    coverage
}
