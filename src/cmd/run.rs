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
use crate::sink::{self, files, postgres as pg_sink};
use crate::source::postgres::PostgresSource;
use crate::source::{SourceFrames, SourceTotals};
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

    /// Folder of the Hive-partitioned report files.
    #[arg(long, default_value_os_t = default_out())]
    pub out: PathBuf,

    /// Compute and print the summary; write nothing (no tables, files or ledger row).
    #[arg(long)]
    pub dry_run: bool,

    /// Schema of the platform tables in the source database.
    #[arg(long, default_value = "public")]
    pub source_schema: String,

    /// Longest a source query may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub statement_timeout: u64,
}

/// Wall time of each stage, for the summary.
#[derive(Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn time<T>(&mut self, stage: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        log(&format!("{stage}…"));
        let start = Instant::now();
        let out = work();
        self.0.push((stage, start.elapsed()));
        out
    }
}

fn log(line: &str) {
    eprintln!("callrollup: {line}");
}

pub fn execute(args: Args) -> Result<()> {
    let started = Instant::now();
    let window = args.window.request().resolve(Utc::now())?;
    let tenants = parse_tenants(&args.tenants)?;
    let schema = args.schema.target_schema()?;
    let source_schema = validate_identifier("--source-schema", &args.source_schema)?;
    let source_url = args.connect.source()?;
    let target_url = args.connect.target()?;
    let mut timings = Timings::default();

    let (mut source, shape, mut target) = timings.time("check schemas", || {
        let mut source =
            PostgresSource::connect(&source_url, &source_schema, args.statement_timeout)?;
        let shape = source.check_schema()?;
        let mut target = target_url.connect("callrollup")?;
        crate::migrate::check_current(&mut target, &schema)?;
        Ok((source, shape, target))
    })?;

    if args.dry_run {
        let (frames, totals) =
            timings.time("extract", || extract(&mut source, &window, &tenants, shape))?;
        let rollup = timings.time("rollup", || {
            Ok(rollup::rollup(&frames, window.from, window.to)?)
        })?;
        print_summary(&Summary {
            run_id: None,
            window: &window,
            rollup: &rollup,
            source: &totals,
            rows: None,
            files: &[],
            out: &args.out,
            timings: &timings,
            total: started.elapsed(),
        });
        return Ok(());
    }

    check_out_dir(&args.out)?;
    // The lock lives on the target connection until the process ends.
    ledger::lock(&mut target, &schema)?;
    let run_id = Uuid::new_v4();
    ledger::start(
        &mut target,
        &schema,
        &ledger::RunStart {
            run_id,
            from: window.from,
            to: window.to,
            partial: window.partial,
            tenants: &tenants,
            arguments: arguments_json(&args, &window),
        },
    )?;
    log(&format!("run {run_id} for {}..{}", window.from, window.to));

    let result = (|| {
        let (frames, totals) =
            timings.time("extract", || extract(&mut source, &window, &tenants, shape))?;
        let rollup = timings.time("rollup", || {
            Ok(rollup::rollup(&frames, window.from, window.to)?)
        })?;
        drop(frames);
        let days: Vec<_> = window.days().collect();
        let staged = timings.time("stage files", || {
            files::stage(
                &args.out,
                &sink::tables(&rollup),
                &days,
                &run_id.simple().to_string(),
            )
        })?;
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
                    tenants: &tenants,
                    source: &totals,
                    expected: &rollup.totals,
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
            print_summary(&Summary {
                run_id: Some(run_id),
                window: &window,
                rollup: &rollup,
                source: &totals,
                rows: Some(rows),
                files: &paths,
                out: &args.out,
                timings: &timings,
                total: started.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            let message = source_url.redact(&target_url.redact(&e.to_string()));
            // The write transaction rolled back; record why. If even that
            // fails, the next run marks this one abandoned.
            let _ = ledger::fail(&mut target, &schema, run_id, &message);
            Err(e)
        }
    }
}

/// Reads the window and proves the frames hold what Postgres counts.
fn extract(
    source: &mut PostgresSource,
    window: &Window,
    tenants: &[Uuid],
    shape: crate::source::postgres::SourceShape,
) -> Result<(SourceFrames, SourceTotals)> {
    let range = window.utc_range();
    let frames = source.extract(range, tenants, shape)?;
    let totals = source.totals(range, tenants)?;
    let extracted = SourceTotals {
        calls: frames.calls.height() as i64,
        errors: frames.errors.height() as i64,
        stt_cost_usd: money::sum(frames.calls.column("stt_cost_usd")?)?,
        llm_cost_usd: money::sum(frames.calls.column("llm_cost_usd")?)?,
        tts_cost_usd: money::sum(frames.calls.column("tts_cost_usd")?)?,
        total_cost_usd: money::sum(frames.calls.column("total_cost_usd")?)?,
    };
    let same = extracted.calls == totals.calls
        && extracted.errors == totals.errors
        && extracted.stt_cost_usd.normalize() == totals.stt_cost_usd.normalize()
        && extracted.llm_cost_usd.normalize() == totals.llm_cost_usd.normalize()
        && extracted.tts_cost_usd.normalize() == totals.tts_cost_usd.normalize()
        && extracted.total_cost_usd.normalize() == totals.total_cost_usd.normalize();
    if !same {
        return Err(Error::Reconciliation(format!(
            "extracted {} calls / {} errors / total {} but Postgres counts {} / {} / {} for the same range; rows changed during extraction or a cost has more than 10 decimals; re-run",
            extracted.calls,
            extracted.errors,
            extracted.total_cost_usd.normalize(),
            totals.calls,
            totals.errors,
            totals.total_cost_usd.normalize()
        )));
    }
    Ok((frames, totals))
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
        "out": args.out.display().to_string(),
        "source_schema": args.source_schema,
    })
    .to_string()
}

struct Summary<'a> {
    run_id: Option<Uuid>,
    window: &'a Window,
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
    out.push_str(&format!("tenants     {tenants}\n"));
    out.push_str(&format!(
        "calls       {} (errored {}, missing cost {}, cost mismatch {}); read {} in the UTC range\n",
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
