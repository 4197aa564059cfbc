//! callrollup run — roll up a window into the summary tables and reports.
//!
//! Usage: callrollup run [--date D | --from D --to D] [--lookback N] [--allow-partial]
//!                       [--tenant UUID]... [--tenant-shard i/n] [--out DIR] [--dry-run]
//!                       [--source DIR] [--source-schema NAME] [--chunk-days N] [--streams N]
//!                       [--database-url URL] [--target-url URL] [--target-schema NAME]
//!
//! In order (docs/CONTRACT.md §4): check the source and engine schemas, take the
//! advisory lock, record the run as `running`, open the write transaction,
//! then chunk by chunk extract, compute, stage the report files and copy
//! the rows in; reconcile, mark the ledger `succeeded` and commit, then
//! move the files into place. Without dates it processes the last complete day and the
//! `--lookback` days before it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
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

    /// Read and roll up at most this many days at a time: memory follows
    /// the chunk, not the window (each chunk also needs the 26 hours of
    /// UTC around its days that time zones reach into; rows shared with
    /// the next chunk are kept, not read again).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_days: u32,

    /// Longest a source query may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub statement_timeout: u64,

    /// Parallel COPY streams reading each chunk from Postgres.
    #[arg(long, default_value_t = crate::source::postgres::DEFAULT_STREAMS,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub streams: u16,
}

/// Wall time of each stage (added up over chunks), for the summary.
#[derive(Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn time<T>(&mut self, stage: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let out = work();
        self.add(stage, start.elapsed());
        out
    }

    fn add(&mut self, stage: &'static str, took: Duration) {
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += took,
            None => self.0.push((stage, took)),
        }
    }
}

/// Where the rows come from.
enum Input {
    Postgres(Box<PostgresSource>, SourceShape),
    Snapshot(PathBuf, Box<snapshot::Manifest>),
}

impl Input {
    fn open(args: &Args) -> Result<Input> {
        if let Some(dir) = &args.source {
            // Fail on a missing or malformed manifest before anything else.
            let manifest = snapshot::read_manifest(dir)?;
            return Ok(Input::Snapshot(dir.clone(), Box::new(manifest)));
        }
        let url = args.connect.source()?;
        let source_schema = validate_identifier("--source-schema", &args.source_schema)?;
        let mut source = PostgresSource::connect(&url, &source_schema, args.statement_timeout)?;
        source.set_streams(usize::from(args.streams));
        let shape = source.check_schema()?;
        Ok(Input::Postgres(Box::new(source), shape))
    }

    /// A chunk's frames, proven to hold what the source counts; `next`
    /// is the chunk that follows, whose overlapping rows are kept.
    fn extract(
        &mut self,
        chunk: &Window,
        next: Option<&Window>,
        selection: &TenantSelection,
    ) -> Result<(SourceFrames, SourceTotals)> {
        match self {
            Input::Snapshot(dir, _) => snapshot::read(dir, chunk, selection),
            Input::Postgres(source, shape) => source.extract(
                chunk.utc_range(),
                selection,
                *shape,
                next.map(|n| n.utc_range().0),
            ),
        }
    }

    /// Starts Postgres' own count and sums of the window's UTC range.
    fn start_verification(&mut self, window: &Window, selection: &TenantSelection) -> Result<()> {
        match self {
            Input::Snapshot(..) => Ok(()),
            Input::Postgres(source, _) => source.start_verification(window.utc_range(), selection),
        }
    }

    /// Proves the rows read are what the source holds for the window's UTC
    /// range (a snapshot was verified as it was read).
    fn verify(&mut self, read: &SourceTotals) -> Result<()> {
        match self {
            Input::Snapshot(..) => Ok(()),
            Input::Postgres(source, _) => source.verify(read),
        }
    }

    /// The tenants the run replaces: what was asked, which a snapshot
    /// must hold (a snapshot's own selection when nothing was asked).
    fn selection(&self, asked: &TenantSelection) -> Result<TenantSelection> {
        match self {
            Input::Snapshot(_, manifest) => manifest.selection()?.narrowed_to(asked),
            Input::Postgres(..) => Ok(asked.clone()),
        }
    }

    /// What the run reads, for the ledger (no secrets).
    fn describe(&self) -> Result<String> {
        Ok(match self {
            Input::Postgres(source, _) => source.describe(),
            Input::Snapshot(dir, _) => {
                let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                format!(
                    "snapshot {} ({})",
                    path.display(),
                    snapshot::manifest_digest(dir)?
                )
            }
        })
    }
}

/// What the summary reports about the window, added up over the chunks
/// as each chunk's tables are written and dropped.
#[derive(Default)]
struct WindowStats {
    tenants: HashSet<String>,
    /// The window's rows (tenant days in the window): reconciliation figures.
    totals: SourceTotals,
    /// Distinct rows read from the source.
    read: SourceTotals,
    errored_calls: i64,
    calls_missing_cost: i64,
    cost_mismatch_calls: i64,
    critical_errors: i64,
    finding_rows: i64,
    table_rows: [usize; 4],
}

impl WindowStats {
    fn add(&mut self, part: &Rollup, read: &SourceTotals) -> Result<()> {
        let td = &part.tenant_daily;
        let sum = rollup::sum_i64;
        for id in td.column("tenant_id")?.str()?.into_iter().flatten() {
            if !self.tenants.contains(id) {
                self.tenants.insert(id.to_string());
            }
        }
        self.totals.add(&part.totals);
        self.read.add(read);
        self.errored_calls += sum(td, "errored_calls")?;
        self.calls_missing_cost += sum(td, "calls_missing_cost")?;
        self.cost_mismatch_calls += sum(td, "cost_mismatch_calls")?;
        self.critical_errors += sum(td, "critical_errors")?;
        self.finding_rows += sum(&part.findings, "rows")?;
        for (i, (_, df)) in sink::tables(part).iter().enumerate() {
            self.table_rows[i] += df.height();
        }
        Ok(())
    }
}

/// What a run covers and how it reads it.
#[derive(Clone, Copy)]
struct Plan<'a> {
    window: &'a Window,
    chunk_days: u32,
    selection: &'a TenantSelection,
}

/// Reads, rolls up and hands each chunk to `sink`, which writes it. Long
/// windows go a chunk of days at a time, so memory follows the chunk, not
/// the window: each chunk sees every row of its UTC range (rows shared
/// with the next chunk are kept, not read twice) and yields complete
/// tenant days, so the chunks' tables simply add up.
fn process(
    input: &mut Input,
    plan: &Plan,
    timings: &mut Timings,
    mut sink: impl FnMut(&Rollup, &Window, &mut Timings) -> Result<()>,
) -> Result<WindowStats> {
    let Plan {
        window,
        chunk_days,
        selection,
    } = *plan;
    // A snapshot is read (and verified) whole anyway: one chunk.
    let chunk_days = match input {
        Input::Snapshot(..) => window.day_count() as u32,
        Input::Postgres(..) => chunk_days,
    };
    let chunks = window.chunks(chunk_days);
    input.start_verification(window, selection)?;
    let stats = std::thread::scope(|scope| -> Result<WindowStats> {
        // The next chunk is read while this one is rolled up and written,
        // so Postgres and the decoder work alongside Polars and the
        // write-back. A rendezvous channel: at most one chunk waits.
        let (sender, receiver) = std::sync::mpsc::sync_channel(0);
        let reader_input = &mut *input;
        let chunks = &chunks;
        let reader = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for (i, chunk) in chunks.iter().enumerate() {
                let started = Instant::now();
                let read = reader_input.extract(chunk, chunks.get(i + 1), selection);
                busy += started.elapsed();
                let failed = read.is_err();
                if sender.send(read).is_err() || failed {
                    break;
                }
            }
            busy
        });
        let mut stats = WindowStats::default();
        for chunk in chunks {
            crate::log::info(&format!("chunk {}..{}", chunk.from, chunk.to));
            let waited = Instant::now();
            let received = receiver.recv();
            timings.add("wait for source", waited.elapsed());
            // A closed channel means the reader stopped after sending its error.
            let (frames, read) = received.unwrap_or_else(|_| {
                Err(Error::RunFailed(
                    "internal: the source reader stopped early".into(),
                ))
            })?;
            let part = timings.time("rollup", || {
                Ok(rollup::rollup(&frames, chunk.from, chunk.to)?)
            })?;
            drop(frames);
            part.check_totals().map_err(Error::Reconciliation)?;
            stats.add(&part, &read)?;
            sink(&part, chunk, timings)?;
        }
        drop(receiver);
        let busy = reader.join().expect("the source reader panicked");
        timings.add("extract (overlapped)", busy);
        Ok(stats)
    })?;
    timings.time("verify", || input.verify(&stats.read))?;
    Ok(stats)
}

pub fn execute(args: Args) -> Result<()> {
    let started = Instant::now();
    let window = args.window.request().resolve(Utc::now())?;
    let asked = TenantSelection {
        tenants: parse_tenants(&args.tenants)?,
        shard: args.tenant_shard.as_deref().map(Shard::parse).transpose()?,
    };
    let schema = args.schema.target_schema()?;
    let mut timings = Timings::default();

    let (mut input, mut target) = timings.time("check schemas", || {
        let input = Input::open(&args)?;
        // With a snapshot and no database configured, the files are the target.
        let configured = args.connect.target_url.is_some() || args.connect.database_url.is_some();
        let target = match (&input, configured) {
            (Input::Snapshot(..), false) => None,
            _ => {
                let url = args.connect.target()?;
                let mut client = url.connect("callrollup")?;
                crate::migrate::check_current(&mut client, &schema)?;
                Some((url, client))
            }
        };
        Ok((input, target))
    })?;
    let selection = input.selection(&asked)?;
    // Before anything is written: the database puts every day boundary
    // of the window where the engine does (the file-only target has no
    // database to ask).
    timings.time("check time zones", || match (&mut input, &mut target) {
        (Input::Postgres(source, _), _) => source.check_zones(&selection, &window),
        (Input::Snapshot(dir, manifest), Some((_, client))) => {
            let tenants = snapshot::read_tenants(dir, manifest)?;
            let declared: Vec<Option<&str>> =
                tenants.column("timezone")?.str()?.into_iter().collect();
            crate::zone_check::check(client, &declared, &window)
        }
        (Input::Snapshot(..), None) => Ok(()),
    })?;
    let file_suffix = selection.shard.map(|s| s.file_suffix()).unwrap_or_default();
    let shard_name = selection.shard.map(|s| s.to_string());
    // A --tenant run merges into each day's files instead of replacing them.
    let only_tenants = (!selection.tenants.is_empty()).then(|| selection.tenant_texts());

    let summary =
        |run_id, stats: &WindowStats, written: bool, files: &[PathBuf], timings: &Timings| {
            print_summary(&Summary {
                run_id,
                window: &window,
                selection: &selection,
                stats,
                written,
                files,
                out: &args.out,
                timings,
                total: started.elapsed(),
            })
        };

    // After the commit: the staged files go into place, then the summary.
    let move_into_place = |staged: files::StagedFiles,
                           run_id: Uuid,
                           stats: WindowStats,
                           written: bool,
                           mut timings: Timings| {
        crate::fault::pause_point("after_commit");
        let paths = timings
            .time("move files", || staged.commit())
            .map_err(|e| moves_unfinished(run_id, &args.out, e))?;
        summary(Some(run_id), &stats, written, &paths, &timings);
        Ok(())
    };

    let plan = Plan {
        window: &window,
        chunk_days: args.chunk_days,
        selection: &selection,
    };
    if args.dry_run {
        let stats = process(&mut input, &plan, &mut timings, |_, _, _| Ok(()))?;
        summary(None, &stats, false, &[], &timings);
        return Ok(());
    }
    check_out_dir(&args.out)?;

    // Report files are staged under temporary names chunk by chunk; they
    // are moved into place only after the tables have been committed.
    let mut staged = files::StagedFiles::default();
    let stage = |staged: &mut files::StagedFiles,
                 part: &Rollup,
                 chunk: &Window,
                 run_id: Uuid,
                 timings: &mut Timings| {
        let days: Vec<_> = chunk.days().collect();
        let tag = run_id.simple().to_string();
        timings.time("stage files", || {
            staged.add(
                &args.out,
                &sink::tables(part),
                &days,
                &tag,
                &file_suffix,
                only_tenants.as_deref(),
            )
        })
    };

    let Some((target_url, mut target)) = target else {
        // File target: the reports are the summary tables; sealing the
        // staged files is the commit.
        recover_reports(&args.out, None, selection.shard)?;
        let run_id = Uuid::new_v4();
        let result = process(&mut input, &plan, &mut timings, |part, chunk, timings| {
            stage(&mut staged, part, chunk, run_id, timings)
        })
        .and_then(|stats| {
            staged.seal(
                &args.out,
                run_id,
                files::Decider::Sealed,
                shard_name.clone(),
            )?;
            Ok(stats)
        });
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                staged.abort();
                return Err(e);
            }
        };
        return move_into_place(staged, run_id, stats, false, timings);
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
            source: input.describe()?,
        },
    )?;
    crate::log::info(&format!(
        "run {run_id} for {}..{} ({})",
        window.from,
        window.to,
        selection.describe()
    ));
    let fail = |target: &mut postgres::Client, e: &Error| {
        let mut message = target_url.redact(&e.to_string());
        if let Ok(source_url) = args.connect.source() {
            message = source_url.redact(&message);
        }
        // Only a `running` row moves: if even this fails, the next run
        // marks this one abandoned.
        let _ = ledger::fail(target, &schema, run_id, &message);
    };
    if let Err(e) = recover_reports(&args.out, Some((&mut target, &schema)), selection.shard) {
        fail(&mut target, &e);
        return Err(e);
    }

    let write_back = pg_sink::WriteBack {
        schema: &schema,
        run_id,
        computed_at: Utc::now(),
        from: window.from,
        to: window.to,
        selection: &selection,
    };
    let committed = std::thread::scope(|scope| -> Result<WindowStats> {
        // Each chunk's rows are copied in on a thread of their own, so
        // Postgres inserts one chunk while the next is rolled up; the
        // transaction stays open until every chunk is in.
        let (to_writer, parts) = std::sync::mpsc::sync_channel::<Rollup>(1);
        let (target, write_back) = (&mut target, &write_back);
        let writer = scope.spawn(move || {
            let started = Instant::now();
            let mut writer = pg_sink::Writer::begin(target, write_back)?;
            let mut busy = started.elapsed();
            for part in parts {
                let started = Instant::now();
                writer.append(&part)?;
                busy += started.elapsed();
            }
            Ok::<_, Error>((writer, busy))
        });
        let processed = process(&mut input, &plan, &mut timings, |part, chunk, timings| {
            stage(&mut staged, part, chunk, run_id, timings)?;
            // Closed only when the writer stopped on an error, returned below.
            to_writer
                .send(part.clone())
                .map_err(|_| Error::RunFailed("the write-back stopped".into()))
        });
        drop(to_writer);
        let written = writer.join().expect("the write-back thread panicked");
        // The writer's error, if any, is the cause of the other.
        let (writer, busy) = written?;
        let stats = processed?;
        timings.add("write back (overlapped)", busy);
        // From here the ledger decides what the staged files become: a
        // kill after the commit leaves them for the next run to move.
        staged.seal(
            &args.out,
            run_id,
            files::Decider::Ledger,
            shard_name.clone(),
        )?;
        crate::fault::pause_point("before_commit");
        timings.time("commit", || writer.finish(&stats.totals))?;
        Ok(stats)
    });
    let stats = match committed {
        Ok(stats) => stats,
        Err(e) => {
            fail(&mut target, &e);
            if staged.is_sealed() {
                // The commit may have happened before the error: the
                // ledger tells the next run whether to move or drop them.
                crate::log::info(&format!(
                    "left run {run_id}'s staged report files for the next run, which moves them if the commit went through and removes them if not"
                ));
            } else {
                staged.abort();
            }
            return Err(e);
        }
    };
    move_into_place(staged, run_id, stats, true, timings)
}

/// A committed run whose report files could not all be moved: its rows
/// are billed and the ledger says so; the next run finishes the moves.
fn moves_unfinished(run_id: Uuid, out: &Path, e: Error) -> Error {
    Error::RunFailed(format!(
        "run {run_id} is committed, but its report files could not all be moved into place under {} ({e}); the next run into that folder finishes the moves, whatever its window",
        out.display()
    ))
}

/// Finishes what earlier runs left in the report folder before this run
/// touches it: the renames of a run that committed (a kill or a failure
/// after its commit), and the staged files of one that never did. A shard
/// finishes only its own shard's (and unsharded runs') files: another
/// shard may be running. Journals whose run this ledger does not know
/// (another target) are left where they are, and said so.
fn recover_reports(
    out: &Path,
    mut ledger: Option<(&mut postgres::Client, &str)>,
    shard: Option<Shard>,
) -> Result<()> {
    let mine = shard.map(|s| s.to_string());
    for journal in files::pending(out)? {
        if journal.tenant_shard.is_some() && journal.tenant_shard != mine {
            continue;
        }
        let committed = match (journal.decider, ledger.as_mut()) {
            (files::Decider::Sealed, _) => Some(true),
            (files::Decider::Ledger, Some((client, schema))) => {
                match ledger::status(client, schema, journal.run_id)?.as_deref() {
                    Some("succeeded") => Some(true),
                    Some("failed") => Some(false),
                    _ => None,
                }
            }
            (files::Decider::Ledger, None) => None,
        };
        let run = journal.run_id;
        match committed {
            Some(true) => {
                let moved = journal.roll_forward(out)?;
                crate::log::info(&format!(
                    "run {run} committed but stopped before its report files were all in place: moved its last {moved} files into {} first",
                    out.display()
                ));
            }
            Some(false) => {
                journal.roll_back(out)?;
                crate::log::info(&format!(
                    "removed the staged report files of run {run}, which never committed"
                ));
            }
            None => crate::log::info(&format!(
                "left the staged report files of run {run} in {}: its ledger row is not in this target (or it is still running); a run against its target finishes them",
                out.display()
            )),
        }
    }
    Ok(())
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
    stats: &'a WindowStats,
    /// Whether the summary tables were written (the Postgres target).
    written: bool,
    files: &'a [PathBuf],
    out: &'a Path,
    timings: &'a Timings,
    total: Duration,
}

fn print_summary(s: &Summary) {
    print!("{}", render_summary(s));
}

fn render_summary(s: &Summary) -> String {
    let st = s.stats;
    let tenants = st.tenants.len();
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
        st.totals.calls,
        st.errored_calls,
        st.calls_missing_cost,
        st.cost_mismatch_calls,
        st.read.calls
    ));
    out.push_str(&format!(
        "total cost  {} USD\n",
        money::format(st.totals.total_cost_usd)
    ));
    out.push_str(&format!(
        "errors      {} (critical {})\n",
        st.totals.errors, st.critical_errors
    ));
    out.push_str(&format!(
        "findings    {} rows in {} tenant days\n",
        st.finding_rows, st.table_rows[3]
    ));
    let rows: Vec<String> = sink::TABLE_NAMES
        .iter()
        .zip(st.table_rows)
        .map(|(n, c)| {
            if s.written {
                format!("{n} {c}")
            } else {
                format!("{n} {c} (not written)")
            }
        })
        .collect();
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
