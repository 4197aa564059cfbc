//! The pipeline every command shares: read a window from Postgres or a
//! snapshot, inside one snapshot of the source, and hand each chunk of
//! days' tables to a sink. From a database the window is read in one pass
//! straight into the rollup's figures; a snapshot, and a window whose
//! figures outgrow their limit, are read chunk by chunk into frames and
//! rolled up a chunk at a time. `run` (in `run.rs`) adds
//! the write-back, the report files and the ledger; other commands use
//! `process` with sinks of their own.

pub mod run;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::db::DbUrl;
use crate::error::{Error, Result};
use crate::frames::{SourceFrames, SourceTotals};
use crate::rollup::{self, Rollup};
use crate::selection::TenantSelection;
use crate::sink;
use crate::source::postgres::{is_statement_timeout, PostgresSource, SourceShape};
use crate::source::snapshot;
use crate::window::Window;

/// Where a window's rows are read from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// The platform database: the schema of its tables, the longest a
    /// query may run, and how many COPY streams read each chunk.
    Postgres {
        url: DbUrl,
        schema: String,
        statement_timeout_secs: u64,
        streams: usize,
    },
    /// A Parquet snapshot from `callrollup extract`.
    Snapshot(PathBuf),
}

/// Wall time of each stage (added up over chunks), for the summary.
#[derive(Default)]
pub struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    pub fn time<T>(&mut self, stage: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        crate::log::debug(&format!("{stage}: started"));
        let start = Instant::now();
        let out = work();
        let took = start.elapsed();
        crate::log::debug(&format!(
            "{stage}: {} in {:.3}s",
            if out.is_ok() { "done" } else { "failed" },
            took.as_secs_f64()
        ));
        self.add(stage, took);
        out
    }

    pub fn add(&mut self, stage: &'static str, took: Duration) {
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += took,
            None => self.0.push((stage, took)),
        }
    }

    /// Each stage with its time, in the order the stages first ran.
    pub fn stages(&self) -> &[(&'static str, Duration)] {
        &self.0
    }
}

/// Where the rows come from, opened.
pub enum Input {
    Postgres(Box<PostgresSource>, SourceShape),
    Snapshot(PathBuf, Box<snapshot::Manifest>),
}

impl Input {
    /// Connects (and checks the source's columns), or reads a
    /// snapshot's manifest: a missing or malformed one fails here.
    pub fn open(spec: &SourceSpec) -> Result<Input> {
        match spec {
            SourceSpec::Snapshot(dir) => {
                let manifest = snapshot::read_manifest(dir)?;
                Ok(Input::Snapshot(dir.clone(), Box::new(manifest)))
            }
            SourceSpec::Postgres {
                url,
                schema,
                statement_timeout_secs,
                streams,
            } => {
                let mut source = PostgresSource::connect(url, schema, *statement_timeout_secs)?;
                source.set_streams(*streams);
                let shape = source.check_schema()?;
                Ok(Input::Postgres(Box::new(source), shape))
            }
        }
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

    /// The whole window's frames in one read, proven to hold what the
    /// source counts: what `extract` writes as a snapshot.
    pub fn read_window(
        &mut self,
        window: &Window,
        selection: &TenantSelection,
    ) -> Result<(SourceFrames, SourceTotals)> {
        self.start_verification(window, selection)?;
        let (frames, totals) = self.extract(window, None, selection)?;
        self.verify(&totals)?;
        Ok((frames, totals))
    }

    /// What identifies the source's data, for a snapshot's manifest: the
    /// database's fingerprint, or the snapshot's own.
    pub fn fingerprint(&mut self) -> Result<String> {
        match self {
            Input::Postgres(source, _) => source.fingerprint(),
            Input::Snapshot(_, manifest) => Ok(manifest.source_fingerprint.clone()),
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
    pub fn selection(&self, asked: &TenantSelection) -> Result<TenantSelection> {
        match self {
            Input::Snapshot(_, manifest) => manifest.selection()?.narrowed_to(asked),
            Input::Postgres(..) => Ok(asked.clone()),
        }
    }

    /// Checks that the database puts every day boundary of the window
    /// where the engine does (the source's, or `target` for a snapshot;
    /// with neither there is no database to ask).
    pub fn check_zones(
        &mut self,
        target: Option<&mut postgres::Client>,
        selection: &TenantSelection,
        window: &Window,
    ) -> Result<()> {
        match (self, target) {
            (Input::Postgres(source, _), _) => source.check_zones(selection, window),
            (Input::Snapshot(dir, manifest), Some(client)) => {
                let tenants = snapshot::read_tenants(dir, manifest)?;
                let declared: Vec<Option<&str>> =
                    tenants.column("timezone")?.str()?.into_iter().collect();
                crate::zone_check::check(client, &declared, window)
            }
            (Input::Snapshot(..), None) => Ok(()),
        }
    }

    /// The days a snapshot holds (None: a database holds every day).
    pub fn days_held(&self) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        match self {
            Input::Snapshot(_, manifest) => Some((manifest.window_from, manifest.window_to)),
            Input::Postgres(..) => None,
        }
    }

    /// What the run reads, for the ledger (no secrets).
    pub fn describe(&self) -> Result<String> {
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
pub struct WindowStats {
    pub tenants: HashSet<String>,
    /// The window's rows (tenant days in the window): reconciliation figures.
    pub totals: SourceTotals,
    /// Distinct rows read from the source.
    pub read: SourceTotals,
    pub errored_calls: i64,
    pub calls_missing_cost: i64,
    pub cost_mismatch_calls: i64,
    pub critical_errors: i64,
    pub finding_rows: i64,
    /// Rows flagged per finding kind (for `--fail-on`).
    pub findings_by_kind: std::collections::BTreeMap<String, i64>,
    pub table_rows: crate::tables::PerTable<usize>,
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
        let kinds = part.findings.column("kind")?.str()?;
        let rows = part.findings.column("rows")?.i64()?;
        for (kind, n) in kinds.into_iter().zip(rows) {
            if let (Some(kind), Some(n)) = (kind, n) {
                *self.findings_by_kind.entry(kind.to_string()).or_default() += n;
            }
        }
        for (table, df) in sink::tables(part).iter() {
            self.table_rows[table] += df.height();
        }
        Ok(())
    }
}

/// What a run covers and how it reads it.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    pub window: &'a Window,
    pub chunk_days: u32,
    /// The most bytes a one-pass read's state may hold (an estimate from
    /// its entries); beyond it the window is read chunk by chunk.
    pub state_limit: usize,
    pub selection: &'a TenantSelection,
}

/// Reads, rolls up and hands each chunk to `sink`, which writes it. From a
/// database the whole window is read in one pass straight into the
/// rollup's state (`source::accumulate`), whose chunks' tables go to
/// `sink` as the read completes them, in no fixed order (a read that gives
/// way after that is `Error::ReadAgain`); a window whose state outgrows
/// its budget, and a
/// snapshot, go a chunk of days at a time, so memory follows the chunk,
/// not the window: each chunk sees every row of its UTC range (rows shared
/// with the next chunk are kept, not read twice) and yields complete
/// tenant days, so the chunks' tables simply add up.
pub fn process(
    input: &mut Input,
    plan: &Plan,
    timings: &mut Timings,
    mut sink: impl FnMut(&Rollup, &Window, &mut Timings) -> Result<()>,
) -> Result<WindowStats> {
    let mut stats = WindowStats::default();
    if let Some(stats) = process_in_one_pass(input, plan, timings, &mut sink)? {
        return Ok(stats);
    }
    for_each_chunk(input, plan, timings, |frames, read, chunk, timings| {
        let part = timings.time("rollup", || {
            Ok(rollup::rollup(&frames, chunk.from, chunk.to)?)
        })?;
        drop(frames);
        emit(&mut stats, part, read, chunk, timings, &mut sink)
    })?;
    Ok(stats)
}

/// `attempt` with `plan`, then once more chunk by chunk when a one-pass
/// read gave way after chunks had gone to its sink (`Error::ReadAgain`);
/// `attempt` starts from nothing each time.
pub fn with_read_again<T>(plan: &Plan, mut attempt: impl FnMut(&Plan) -> Result<T>) -> Result<T> {
    read_again(plan.state_limit > 0, plan.chunk_days, |chunked| {
        attempt(&Plan {
            state_limit: if chunked { 0 } else { plan.state_limit },
            ..*plan
        })
    })
}

/// `attempt(false)`, then `attempt(true)` (chunk by chunk, from nothing)
/// when a one-pass read (`one_pass`) gave way after chunks had gone on.
pub fn read_again<T>(
    one_pass: bool,
    chunk_days: u32,
    mut attempt: impl FnMut(bool) -> Result<T>,
) -> Result<T> {
    match attempt(false) {
        Err(Error::ReadAgain(why)) if one_pass => {
            crate::log::info(&format!(
                "{why}: starting again from nothing, reading the window {chunk_days} day(s) at a time"
            ));
            attempt(true)
        }
        other => other,
    }
}

/// The one-pass read's budget by default (MiB): read in storage order, the
/// 5 M-call bench window's 1.2 M summary rows took about 110 and the whole
/// process peaked at 197 MiB (bench/HISTORY.md; read in `created_at` order
/// it peaks at 133-137 MiB); a larger budget would let a larger window
/// past the 200 MiB the engine keeps to.
pub const DEFAULT_STATE_LIMIT_MIB: u32 = 120;

/// `mib` MiB in bytes.
pub fn mib(mib: u32) -> usize {
    usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20)
}

/// `process` for a database window in one pass; None when the source is
/// a snapshot, the limit is 0, or the read outgrew the limit or met the
/// statement timeout before any chunk went to `sink` (the caller reads
/// chunk by chunk then); `Error::ReadAgain` when it gave way after.
/// Chunks go to `sink` as the read completes them (`source::accumulate`),
/// not always in the window's order; the rows read are verified after the
/// last, before anything is committed.
fn process_in_one_pass(
    input: &mut Input,
    plan: &Plan,
    timings: &mut Timings,
    sink: &mut impl FnMut(&Rollup, &Window, &mut Timings) -> Result<()>,
) -> Result<Option<WindowStats>> {
    let Input::Postgres(source, shape) = input else {
        return Ok(None);
    };
    let Plan {
        window,
        chunk_days,
        state_limit,
        selection,
    } = *plan;
    if state_limit == 0 {
        return Ok(None);
    }
    let rules = rollup::TenantRules::new(&source.tenants(selection)?, window.utc_micros())?;
    source.start_verification(window.utc_range(), selection)?;
    let chunks = window.chunks(chunk_days);
    let shape = *shape;
    let started = Instant::now();
    // The read runs on its own thread (with its streams); this one stages
    // and writes each chunk as it comes. A few chunks may wait, no more.
    let (sender, receiver) = std::sync::mpsc::sync_channel(4);
    let (read, stats, handed) = std::thread::scope(|scope| {
        let source = &mut **source;
        let rules = &rules;
        let reader = scope.spawn(move || {
            crate::source::accumulate::read_into_figures(
                source,
                shape,
                window,
                chunk_days,
                selection,
                rules,
                state_limit,
                sender,
            )
        });
        let mut stats = WindowStats::default();
        let mut handed = 0;
        let mut failed = None;
        // Before the first chunk is taken: the write transaction waits.
        crate::fault::pause_point("one_pass_read");
        for (i, part) in receiver.iter() {
            if handed > 0 {
                crate::fault::pause_point("between_chunks");
            }
            let emitted = crate::signals::check().and(part).and_then(|part| {
                emit(
                    &mut stats,
                    part,
                    &Default::default(),
                    &chunks[i],
                    timings,
                    sink,
                )
            });
            if let Err(e) = emitted {
                failed = Some(e);
                break;
            }
            handed += 1;
        }
        // A reader still sending stops at its next chunk.
        drop(receiver);
        let read = reader.join().unwrap_or_else(|_| {
            Err(Error::RunFailed(
                "the one-pass reader stopped on an internal error; report this as a bug".into(),
            ))
        });
        match failed {
            Some(e) => Err(e),
            None => Ok((read, stats, handed)),
        }
    })?;
    timings.add("read", started.elapsed());
    let gave_way = |why: String| {
        if handed > 0 {
            return Err(Error::ReadAgain(why));
        }
        crate::log::info(&format!("{why}: reading it {chunk_days} day(s) at a time"));
        Ok(None)
    };
    let crate::source::accumulate::OnePass {
        totals: read,
        streams,
        in_order,
    } = match read {
        Ok(Some(read)) => read,
        Ok(None) => {
            source.close_readers();
            return gave_way(format!(
                "the window's tenant-day figures outgrew the one-pass limit of {} MiB (run --state-limit)",
                state_limit >> 20
            ));
        }
        // Shorter statements may each finish within the timeout.
        Err(Error::Database(message)) if is_statement_timeout(&message) => {
            source.close_readers();
            return gave_way("reading the window in one pass met --statement-timeout".to_string());
        }
        Err(e) => return Err(e),
    };
    if handed != chunks.len() {
        return Err(Error::RunFailed(format!(
            "internal: a one-pass read handed on {handed} of the window's {} chunks; report this as a bug",
            chunks.len()
        )));
    }
    crate::log::info(&format!(
        "read {}..{} in one pass on {streams} stream(s), {}: {} calls and {} errors",
        window.from,
        window.to,
        match in_order {
            true => "in created_at order",
            false => "in storage order",
        },
        read.calls,
        read.errors
    ));
    let mut stats = stats;
    stats.read.add(&read);
    timings.time("verify", || source.verify(&read))?;
    Ok(Some(stats))
}

/// Checks a chunk's tables, counts them and hands them to `sink`.
fn emit(
    stats: &mut WindowStats,
    part: Rollup,
    read: &SourceTotals,
    chunk: &Window,
    timings: &mut Timings,
    sink: &mut impl FnMut(&Rollup, &Window, &mut Timings) -> Result<()>,
) -> Result<()> {
    part.check_totals().map_err(Error::Reconciliation)?;
    stats.add(&part, read)?;
    crate::log::debug(&format!(
        "rollup of {}..{}: {} tenant_daily, {} tenant_daily_outcomes, {} tenant_daily_errors, {} data_quality_findings rows",
        chunk.from,
        chunk.to,
        part.tenant_daily.height(),
        part.outcomes.height(),
        part.errors.height(),
        part.findings.height()
    ));
    sink(&part, chunk, timings)
}

/// Reads the window chunk by chunk and hands each chunk's frames (every
/// row of the chunk's UTC range; `rollup::day_rows` keeps the chunk's
/// tenant days) to `each`, then proves that what was read is what the
/// source holds. The next chunk is read while `each` works on this one.
pub fn for_each_chunk(
    input: &mut Input,
    plan: &Plan,
    timings: &mut Timings,
    mut each: impl FnMut(SourceFrames, &SourceTotals, &Window, &mut Timings) -> Result<()>,
) -> Result<SourceTotals> {
    let Plan {
        window,
        chunk_days,
        selection,
        ..
    } = *plan;
    // A snapshot is read (and verified) whole anyway: one chunk.
    let chunk_days = match input {
        Input::Snapshot(..) => window.day_count() as u32,
        Input::Postgres(..) => chunk_days,
    };
    let chunks = window.chunks(chunk_days);
    input.start_verification(window, selection)?;
    let read_total = std::thread::scope(|scope| -> Result<SourceTotals> {
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
        let mut read_total = SourceTotals::default();
        let progress = crate::log::Progress::start(window.day_count() as u64);
        let started = Instant::now();
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                crate::fault::pause_point("between_chunks");
            }
            crate::signals::check()?;
            let waited = Instant::now();
            let received = receiver.recv();
            timings.add("wait for source", waited.elapsed());
            // A closed channel means the reader stopped after sending its error.
            let (frames, read) = received.unwrap_or_else(|_| {
                Err(Error::RunFailed(
                    "internal: the source reader stopped early".into(),
                ))
            })?;
            read_total.add(&read);
            let line = format!(
                "chunk {}..{}: {} calls and {} errors read",
                chunk.from, chunk.to, read.calls, read.errors
            );
            // One line per chunk is for -v: a log (stderr not a
            // terminal) gets one line for the stage, after the loop.
            crate::log::debug(&line);
            each(frames, &read, chunk, timings)?;
            progress.advance(
                chunk.day_count() as u64,
                (read_total.calls + read_total.errors) as u64,
                started.elapsed(),
            );
        }
        if !progress.is_drawn() {
            crate::log::info(&format!(
                "read {}..{} in {} chunk(s): {} calls and {} errors",
                window.from,
                window.to,
                chunks.len(),
                read_total.calls,
                read_total.errors
            ));
        }
        drop(progress);
        drop(receiver);
        let busy = reader.join().expect("the source reader panicked");
        timings.add("extract (overlapped)", busy);
        Ok(read_total)
    })?;
    timings.time("verify", || input.verify(&read_total))?;
    Ok(read_total)
}
