//! callrollup run — roll up a window into the summary tables and reports.
//!
//! Usage: callrollup run [--date D | --from D --to D] [--lookback N] [--allow-partial]
//!                       [--tenant UUID]... [--out DIR] [--dry-run]
//!                       [--database-url URL] [--target-url URL] [--target-schema NAME]
//!
//! In order (DESIGN.md §4): check the source and engine schemas, take the
//! advisory lock, record the run as `running`, extract, compute, stage the
//! report files, write every summary table in one transaction (with
//! reconciliation and the ledger's `succeeded`), then move the files into
//! place. Without dates it processes the last complete day and the
//! `--lookback` days before it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cli::{default_out, parse_tenants, ConnectOpts, SchemaOpts, WindowOpts};
use crate::db::validate_identifier;
use crate::error::{Error, Result};
use crate::ledger;
use crate::money;
use crate::rollup::{self, Rollup};
use crate::shard::Shard;
use crate::sink::{self, files, postgres as pg_sink};
use crate::source::postgres::{PostgresSource, SourceShape};
use crate::source::{snapshot, SourceFrames, SourceTotals, TenantSelection};
use crate::window::Window;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub window: WindowOpts,

    /// Only this tenant (repeatable).
    #[arg(long = "tenant", value_name = "UUID")]
    pub tenants: Vec<String>,

    /// Only the tenants whose tenant_id hashes to shard i of n (0 <= i < n);
    /// n runs with 0/n .. n-1/n together give the unsharded result.
    #[arg(long, value_name = "i/n")]
    pub tenant_shard: Option<String>,

    /// Folder of the Hive-partitioned report files.
    #[arg(long, default_value_os_t = default_out())]
    pub out: PathBuf,

    /// Compute and print the summary; write nothing (no tables, files or ledger row).
    #[arg(long)]
    pub dry_run: bool,

    /// Schema of the platform tables in the source database.
    #[arg(long, default_value = "public")]
    pub source_schema: String,

    /// Read a Parquet snapshot (from `callrollup extract`) instead of Postgres.
    /// Without a database configured, the report files are the only target.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    /// Read and roll up at most this many days at a time: bounds memory
    /// on long windows (each chunk also reads the 26 hours of UTC around
    /// its days that time zones reach into).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_days: u32,

    /// Longest a source query may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub statement_timeout: u64,
}

/// Wall time of each stage (added up over chunks), for the summary.
#[derive(Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn time<T>(&mut self, stage: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        crate::log::info(&format!("{stage}…"));
        let start = Instant::now();
        let out = work();
        let took = start.elapsed();
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += took,
            None => self.0.push((stage, took)),
        }
        out
    }
}

/// Where the rows come from.
enum Input {
    Postgres(Box<PostgresSource>, SourceShape),
    Snapshot(PathBuf),
}

impl Input {
    fn open(args: &Args) -> Result<Input> {
        if let Some(dir) = &args.source {
            // Fail on a missing or malformed manifest before anything else.
            snapshot::read_manifest(dir)?;
            return Ok(Input::Snapshot(dir.clone()));
        }
        let url = args.connect.source()?;
        let source_schema = validate_identifier("--source-schema", &args.source_schema)?;
        let mut source = PostgresSource::connect(&url, &source_schema, args.statement_timeout)?;
        let shape = source.check_schema()?;
        Ok(Input::Postgres(Box::new(source), shape))
    }

    /// The window's frames, proven to hold what the source counts.
    fn extract(
        &mut self,
        window: &Window,
        selection: &TenantSelection,
    ) -> Result<(SourceFrames, SourceTotals)> {
        match self {
            Input::Snapshot(dir) => snapshot::read(dir, window, selection),
            Input::Postgres(source, shape) => {
                source.extract_verified(window.utc_range(), selection, *shape)
            }
        }
    }
}

pub fn execute(args: Args) -> Result<()> {
    let started = Instant::now();
    let window = args.window.request().resolve(Utc::now())?;
    let selection = TenantSelection {
        tenants: parse_tenants(&args.tenants)?,
        shard: args.tenant_shard.as_deref().map(Shard::parse).transpose()?,
    };
    let file_suffix = selection.shard.map(|s| s.file_suffix()).unwrap_or_default();
    let schema = args.schema.target_schema()?;
    let mut timings = Timings::default();

    let (mut input, target) = timings.time("check schemas", || {
        let input = Input::open(&args)?;
        // With a snapshot and no database configured, the files are the target.
        let configured = args.connect.target_url.is_some() || args.connect.database_url.is_some();
        let target = match (&input, configured) {
            (Input::Snapshot(_), false) => None,
            _ => {
                let url = args.connect.target()?;
                let mut client = url.connect("callrollup")?;
                crate::migrate::check_current(&mut client, &schema)?;
                Some((url, client))
            }
        };
        Ok((input, target))
    })?;

    // Long windows are read and rolled up a chunk of days at a time, so
    // memory follows the chunk, not the window. Each chunk reads the UTC
    // range of its own days and yields complete tenant days, so the
    // chunks' tables simply add up.
    let compute = |input: &mut Input, timings: &mut Timings| -> Result<(Rollup, SourceTotals)> {
        let mut parts = Vec::new();
        let mut read = SourceTotals::default();
        // A snapshot is read (and verified) whole anyway: one chunk.
        let chunk_days = match input {
            Input::Snapshot(_) => window.day_count() as u32,
            Input::Postgres(..) => args.chunk_days,
        };
        for chunk in window.chunks(chunk_days) {
            let (frames, totals) = timings.time("extract", || input.extract(&chunk, &selection))?;
            let part = timings.time("rollup", || {
                Ok(rollup::rollup(&frames, chunk.from, chunk.to)?)
            })?;
            drop(frames);
            part.check_totals().map_err(Error::Reconciliation)?;
            read.add(&totals);
            parts.push(part);
        }
        Ok((Rollup::concat(parts)?, read))
    };
    let summary = |run_id,
                   rollup: &Rollup,
                   totals: &SourceTotals,
                   rows,
                   files: &[PathBuf],
                   timings: &Timings| {
        print_summary(&Summary {
            run_id,
            window: &window,
            selection: &selection,
            rollup,
            source: totals,
            rows,
            files,
            out: &args.out,
            timings,
            total: started.elapsed(),
        })
    };
    let days: Vec<_> = window.days().collect();

    // Report files are staged under temporary names as soon as the
    // rollup is done; they are moved into place only after the tables.
    let compute_and_stage = |input: &mut Input,
                             timings: &mut Timings,
                             run_id: Uuid|
     -> Result<(Rollup, SourceTotals, files::StagedFiles)> {
        let (rollup, totals) = compute(input, timings)?;
        let staged = stage_reports(&args.out, &rollup, &days, run_id, &file_suffix, timings)?;
        Ok((rollup, totals, staged))
    };

    if args.dry_run {
        let (rollup, totals) = compute(&mut input, &mut timings)?;
        summary(None, &rollup, &totals, None, &[], &timings);
        return Ok(());
    }
    check_out_dir(&args.out)?;

    let Some((target_url, mut target)) = target else {
        // File target: the reports are the summary tables.
        let run_id = Uuid::new_v4();
        let (rollup, totals, staged) = compute_and_stage(&mut input, &mut timings, run_id)?;
        let paths = timings.time("move files", || staged.commit())?;
        summary(Some(run_id), &rollup, &totals, None, &paths, &timings);
        return Ok(());
    };

    // The lock lives on the target connection until the process ends.
    ledger::lock(&mut target, &schema, selection.shard)?;
    let run_id = Uuid::new_v4();
    ledger::start(
        &mut target,
        &schema,
        &ledger::RunStart {
            run_id,
            from: window.from,
            to: window.to,
            partial: window.partial,
            selection: &selection,
            arguments: arguments_json(&args, &window),
        },
    )?;
    crate::log::info(&format!("run {run_id} for {}..{}", window.from, window.to));

    let result = (|| {
        let (rollup, totals, staged) = compute_and_stage(&mut input, &mut timings, run_id)?;
        let computed_at: DateTime<Utc> = Utc::now();
        let written = timings.time("write back", || {
            pg_sink::write(
                &mut target,
                &rollup,
                &pg_sink::WriteBack {
                    schema: &schema,
                    run_id,
                    computed_at,
                    from: window.from,
                    to: window.to,
                    selection: &selection,
                    totals: &rollup.totals,
                },
            )
        });
        let rows = match written {
            Ok(rows) => rows,
            Err(e) => {
                staged.abort();
                return Err(e);
            }
        };
        let paths = timings.time("move files", || staged.commit())?;
        Ok((rollup, totals, rows, paths))
    })();

    match result {
        Ok((rollup, totals, rows, paths)) => {
            summary(Some(run_id), &rollup, &totals, Some(rows), &paths, &timings);
            Ok(())
        }
        Err(e) => {
            let mut message = target_url.redact(&e.to_string());
            if let Ok(source_url) = args.connect.source() {
                message = source_url.redact(&message);
            }
            // The write transaction rolled back; record why. If even that
            // fails, the next run marks this one abandoned.
            let _ = ledger::fail(&mut target, &schema, run_id, &message);
            Err(e)
        }
    }
}

/// Writes the report files under temporary names (see `sink::files`).
fn stage_reports(
    out: &Path,
    rollup: &Rollup,
    days: &[chrono::NaiveDate],
    run_id: Uuid,
    file_suffix: &str,
    timings: &mut Timings,
) -> Result<files::StagedFiles> {
    let tag = run_id.simple().to_string();
    timings.time("stage files", || {
        files::stage(out, &sink::tables(rollup), days, &tag, file_suffix)
    })
}

/// Fails early, before the lock, when reports cannot be written.
fn check_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .and_then(|_| {
            let probe = out.join(format!(".callrollup-write-test-{}", std::process::id()));
            std::fs::write(&probe, b"")?;
            std::fs::remove_file(&probe)
        })
        .map_err(|e| {
            Error::usage(format!(
                "--out {} is not writable ({e}); pick a folder you can write",
                out.display()
            ))
        })
}

/// The run's arguments for the ledger: no URLs, so no secrets.
fn arguments_json(args: &Args, window: &Window) -> String {
    serde_json::json!({
        "date": args.window.date,
        "from": window.from.to_string(),
        "to": window.to.to_string(),
        "lookback": args.window.lookback,
        "allow_partial": args.window.allow_partial,
        "tenants": args.tenants,
        "tenant_shard": args.tenant_shard,
        "out": args.out.display().to_string(),
        "source_schema": args.source_schema,
    })
    .to_string()
}

struct Summary<'a> {
    run_id: Option<Uuid>,
    window: &'a Window,
    selection: &'a TenantSelection,
    rollup: &'a Rollup,
    source: &'a SourceTotals,
    rows: Option<ledger::RowsWritten>,
    files: &'a [PathBuf],
    out: &'a Path,
    timings: &'a Timings,
    total: Duration,
}

fn print_summary(s: &Summary) {
    print!("{}", render_summary(s));
}

fn render_summary(s: &Summary) -> String {
    let r = s.rollup;
    let td = &r.tenant_daily;
    let sum_of = |name: &str| -> i64 {
        td.column(name)
            .ok()
            .and_then(|c| c.as_materialized_series().sum::<i64>().ok())
            .unwrap_or(0)
    };
    let tenants = td
        .column("tenant_id")
        .ok()
        .and_then(|c| c.as_materialized_series().n_unique().ok())
        .unwrap_or(0);
    let findings = r
        .findings
        .column("rows")
        .ok()
        .and_then(|c| c.as_materialized_series().sum::<i64>().ok())
        .unwrap_or(0);
    let mut out = String::new();
    let status = match s.run_id {
        Some(id) => format!("run {id} succeeded"),
        None => "dry run: nothing was written".to_string(),
    };
    out.push_str(&format!("{status}\n"));
    out.push_str(&format!(
        "window      {}..{} ({} days{})\n",
        s.window.from,
        s.window.to,
        s.window.day_count(),
        if s.window.partial { ", partial" } else { "" }
    ));
    let only = match (s.selection.tenants.len(), s.selection.shard) {
        (0, None) => String::new(),
        (0, Some(shard)) => format!(" (tenant shard {shard})"),
        (n, None) => format!(" (--tenant: {n} selected)"),
        (n, Some(shard)) => format!(" (--tenant: {n} selected, tenant shard {shard})"),
    };
    out.push_str(&format!("tenants     {tenants}{only}\n"));
    out.push_str(&format!(
        "calls       {} (errored {}, missing cost {}, cost mismatch {}); {} rows read\n",
        r.totals.calls,
        sum_of("errored_calls"),
        sum_of("calls_missing_cost"),
        sum_of("cost_mismatch_calls"),
        s.source.calls
    ));
    out.push_str(&format!(
        "total cost  {} USD\n",
        money::format(r.totals.total_cost_usd)
    ));
    out.push_str(&format!(
        "errors      {} (critical {})\n",
        r.totals.errors,
        sum_of("critical_errors")
    ));
    out.push_str(&format!(
        "findings    {findings} rows in {} tenant days\n",
        r.findings.height()
    ));
    let names = [
        "tenant_daily",
        "tenant_daily_outcomes",
        "tenant_daily_errors",
        "data_quality_findings",
    ];
    let rows: Vec<String> = match s.rows {
        Some(rows) => names
            .iter()
            .zip(rows)
            .map(|(n, c)| format!("{n} {c}"))
            .collect(),
        None => sink::tables(r)
            .iter()
            .map(|(n, df)| format!("{n} {} (not written)", df.height()))
            .collect(),
    };
    out.push_str(&format!("rows        {}\n", rows.join(", ")));
    out.push_str(&format!(
        "files       {} under {}\n",
        s.files.len(),
        s.out.display()
    ));
    let stages: Vec<String> = s
        .timings
        .0
        .iter()
        .map(|(n, d)| format!("{n} {:.2}s", d.as_secs_f64()))
        .collect();
    out.push_str(&format!(
        "time        {}; total {:.2}s\n",
        stages.join(", "),
        s.total.as_secs_f64()
    ));
    out
}
