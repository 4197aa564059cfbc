//! The nightly run: the shared pipeline plus the write-back, the report
//! files and the ledger, in the order docs/CONTRACT.md §4 gives. Check the
//! source and engine schemas and the time zones, take the advisory lock,
//! record the run as `running`, finish what earlier runs left in the
//! report folder, then chunk by chunk extract, compute, stage the report
//! files and copy the rows into the open write transaction; verify and
//! reconcile, seal the staged files, mark the ledger `succeeded` and
//! commit, then move the files into place.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use super::{process, Input, Plan, SourceSpec, Timings, WindowStats};
use crate::db::DbUrl;
use crate::error::{Error, Result};
use crate::ledger;
use crate::rollup::Rollup;
use crate::selection::TenantSelection;
use crate::shard::Shard;
use crate::sink::{self, files, postgres as pg_sink};
use crate::window::Window;

/// One run, as the command line asked for it.
pub struct RunRequest {
    pub window: Window,
    /// The `--tenant`s and `--tenant-shard` asked for (a snapshot narrows
    /// them to what it holds).
    pub asked: TenantSelection,
    pub source: SourceSpec,
    /// The database of the summary tables; None: the report files are the
    /// target (only with a snapshot source).
    pub target: Option<DbUrl>,
    pub target_schema: String,
    /// The report folder.
    pub out: PathBuf,
    pub chunk_days: u32,
    /// Compute only: no table, file or ledger row.
    pub dry_run: bool,
    /// The run's arguments as JSON for the ledger (no secrets).
    pub arguments: String,
    /// The longest a statement of the target session may run, in seconds.
    pub statement_timeout_secs: u64,
}

/// What a run did, for its summary.
pub struct RunOutcome {
    /// None for a dry run.
    pub run_id: Option<Uuid>,
    /// The tenants it replaced.
    pub selection: TenantSelection,
    pub stats: WindowStats,
    /// What the write changed in each summary table; None when no
    /// table was written (a dry run, a file target).
    pub changes: Option<pg_sink::Changes>,
    /// The report files moved into place.
    pub files: Vec<PathBuf>,
    pub timings: Timings,
}

/// `run`, started again after a transient failure (a connection reset, a
/// serialization failure) up to `retries` times with a growing wait;
/// never after a stop signal, and never once rows went in (those errors
/// are final, see `Error::final_attempt`).
pub fn run_with_retries(request: &RunRequest, retries: u32) -> Result<RunOutcome> {
    let mut attempt = 0;
    loop {
        match run(request) {
            Err(e) if e.is_transient() && attempt < retries && !crate::signals::received() => {
                // Nothing was committed: the attempt rolled back.
                let wait = std::time::Duration::from_millis(500u64 << attempt.min(6));
                attempt += 1;
                crate::log::info(&format!(
                    "transient failure ({e}); starting again in {:.1}s (retry {attempt} of {retries})",
                    wait.as_secs_f64(),
                ));
                std::thread::sleep(wait);
                crate::signals::check()?;
            }
            result => return result,
        }
    }
}

pub fn run(request: &RunRequest) -> Result<RunOutcome> {
    crate::signals::install();
    let schema = request.target_schema.as_str();
    let mut timings = Timings::default();

    let (mut input, mut target) = timings.time("check schemas", || {
        let input = Input::open(&request.source)?;
        let target = match &request.target {
            None => None,
            Some(url) => {
                let mut client = url.connect("callrollup")?;
                client.batch_execute(&crate::sql::render(
                    crate::sql::TARGET_SESSION,
                    &[(
                        "statement_timeout",
                        &request.statement_timeout_secs.to_string(),
                    )],
                ))?;
                crate::migrate::check_current(&mut client, schema)?;
                Some((url, client))
            }
        };
        Ok((input, target))
    })?;
    let selection = input.selection(&request.asked)?;
    // Before anything is written: the database puts every day boundary
    // of the window where the engine does.
    timings.time("check time zones", || {
        input.check_zones(target.as_mut().map(|(_, c)| c), &selection, &request.window)
    })?;
    let run = Context {
        request,
        schema,
        out: request.out.as_path(),
        // A --tenant run merges into each day's files instead of
        // replacing them.
        only_tenants: (!selection.tenants.is_empty()).then(|| selection.tenant_texts()),
        selection,
    };
    if request.dry_run {
        let stats = process(&mut input, &run.plan(), &mut timings, |_, _, _| Ok(()))?;
        return Ok(RunOutcome {
            run_id: None,
            selection: run.selection.clone(),
            stats,
            changes: None,
            files: Vec::new(),
            timings,
        });
    }
    check_out_dir(run.out)?;
    // Held until the files are in place: whole runs alone, shards beside
    // each other (the same rule as the target's lock, for the folder).
    let _folder_lock = sink::layout::FolderLock::take(run.out, run.selection.shard)?;
    match target {
        None => run.to_files(input, timings),
        Some((url, client)) => run.to_database(input, url, client, timings),
    }
}

/// A run's request and what the checks made of it, shared by its paths.
struct Context<'a> {
    request: &'a RunRequest,
    schema: &'a str,
    out: &'a Path,
    selection: TenantSelection,
    /// The tenants a `--tenant` run computes alone.
    only_tenants: Option<Vec<String>>,
}

impl Context<'_> {
    fn plan(&self) -> Plan<'_> {
        Plan {
            window: &self.request.window,
            chunk_days: self.request.chunk_days,
            selection: &self.selection,
        }
    }

    fn shard_name(&self) -> Option<String> {
        self.selection.shard.map(|s| s.to_string())
    }

    /// The committed files a `--tenant` run keeps the other tenants from.
    fn whose(&self) -> String {
        match self.selection.shard {
            Some(shard) => format!("shard {shard}'s file"),
            None => "a whole run's file or every shard's".to_string(),
        }
    }

    /// Before anything is staged, under the lock and once earlier runs'
    /// files are finished: a shard's files beside a whole run's (or another
    /// count's) would count tenants twice, and a --tenant run needs a
    /// committed file to keep the other tenants from. Returns the days
    /// whose files such a run cannot write.
    fn check_layout(&self) -> Result<Vec<NaiveDate>> {
        let days: Vec<NaiveDate> = self.request.window.days().collect();
        if let Some(shard) = self.selection.shard {
            sink::layout::check_shard_may_write(self.out, &days, shard)?;
        }
        if self.only_tenants.is_none() {
            return Ok(Vec::new());
        }
        sink::layout::days_without_other_tenants(self.out, &days, self.selection.shard)
    }

    /// Stages one chunk's report files under temporary names; they are
    /// moved into place only after the run commits.
    fn stage(
        &self,
        staged: &mut files::StagedFiles,
        part: &Rollup,
        chunk: &Window,
        run_id: Uuid,
        timings: &mut Timings,
    ) -> Result<()> {
        let days: Vec<_> = chunk.days().collect();
        let tag = run_id.simple().to_string();
        timings.time("stage files", || {
            staged.add(
                self.out,
                &sink::tables(part),
                &days,
                &tag,
                self.selection.shard,
                self.only_tenants.as_deref(),
            )
        })
    }

    /// After the commit: the staged files go into place.
    fn move_into_place(
        &self,
        staged: files::StagedFiles,
        run_id: Uuid,
        stats: WindowStats,
        changes: Option<pg_sink::Changes>,
        mut timings: Timings,
    ) -> Result<RunOutcome> {
        crate::fault::pause_point("after_commit");
        let files = timings
            .time("move files", || staged.commit())
            .map_err(|e| moves_unfinished(run_id, self.out, e))?;
        Ok(RunOutcome {
            run_id: Some(run_id),
            selection: self.selection.clone(),
            stats,
            changes,
            files,
            timings,
        })
    }

    /// The file target: the reports are the summary tables, and sealing
    /// the staged files is the commit.
    fn to_files(&self, mut input: Input, mut timings: Timings) -> Result<RunOutcome> {
        let mut staged = files::StagedFiles::default();
        staged.keep(recover_reports(self.out, None, self.selection.shard)?);
        // The files are this target's only output: a --tenant run that
        // cannot write them all is refused.
        if let Some(day) = self.check_layout()?.first() {
            return Err(Error::usage(format!(
                "--tenant cannot write {day} into {}: it holds no committed report for that day ({}) to keep the other tenants from, so the day's file would hold only the selected tenants; run {day} without --tenant first, or write to another --out",
                self.out.display(),
                self.whose()
            )));
        }
        let run_id = Uuid::new_v4();
        crate::log::set_run(Some(&run_id));
        let result = process(
            &mut input,
            &self.plan(),
            &mut timings,
            |part, chunk, timings| self.stage(&mut staged, part, chunk, run_id, timings),
        )
        .and_then(|stats| {
            crate::fault::pause_point("before_seal");
            // Sealing is this target's commit.
            crate::signals::entering_commit();
            crate::signals::check()?;
            staged.seal(self.out, run_id, files::Decider::Sealed, self.shard_name())?;
            Ok(stats)
        });
        match result {
            Ok(stats) => self.move_into_place(staged, run_id, stats, None, timings),
            Err(e) => {
                staged.abort();
                Err(crate::signals::explain(e))
            }
        }
    }

    /// The database target: the advisory lock, the ledger row, then the
    /// write transaction beside the staged files (`write_and_commit`).
    fn to_database(
        &self,
        mut input: Input,
        target_url: &DbUrl,
        mut target: postgres::Client,
        mut timings: Timings,
    ) -> Result<RunOutcome> {
        let (window, schema, out) = (&self.request.window, self.schema, self.out);
        // The lock lives on the target connection until the process ends.
        ledger::lock(&mut target, schema, self.selection.shard)?;
        let run_id = Uuid::new_v4();
        ledger::start(
            &mut target,
            schema,
            &ledger::RunStart {
                run_id,
                from: window.from,
                to: window.to,
                partial: window.partial,
                selection: &self.selection,
                arguments: self.request.arguments.clone(),
                source: input.describe()?,
            },
        )?;
        crate::log::set_run(Some(&run_id));
        crate::log::info(&format!(
            "run {run_id} for {}..{} ({})",
            window.from,
            window.to,
            self.selection.describe()
        ));
        let fail = |target: &mut postgres::Client, e: &Error| {
            let mut message = target_url.redact(&e.to_string());
            if let SourceSpec::Postgres { url, .. } = &self.request.source {
                message = url.redact(&message);
            }
            // Only a `running` row moves: if even this fails, the next run
            // marks this one abandoned.
            let _ = ledger::fail(target, schema, run_id, &message);
        };
        let mut staged = files::StagedFiles::default();
        let recovered = recover_reports(out, Some((&mut target, schema)), self.selection.shard)
            .and_then(|kept| self.check_layout().map(|skipped| (kept, skipped)));
        match recovered {
            Ok((kept, skipped)) => {
                staged.keep(kept);
                // The database holds the truth: the rows are written, and
                // the days with no complete report to merge into get no file.
                if let (Some(first), Some(last)) = (skipped.first(), skipped.last()) {
                    crate::log::info(&format!(
                        "no report files for {} day(s) from {first} to {last}: {} holds no committed report of them ({}) to keep the other tenants from; run them without --tenant to write their files",
                        skipped.len(),
                        out.display(),
                        self.whose()
                    ));
                }
                staged.skip_days(skipped);
            }
            Err(e) => {
                fail(&mut target, &e);
                return Err(e);
            }
        }
        // Whether the commit was sent: only then can an error leave
        // Postgres unsure whether it happened.
        let mut commit_sent = false;
        let committed = self.write_and_commit(
            &mut input,
            &mut target,
            run_id,
            &mut staged,
            &mut timings,
            &mut commit_sent,
        );
        match committed {
            Ok((stats, changes)) => {
                self.move_into_place(staged, run_id, stats, Some(changes), timings)
            }
            Err(e) => {
                // A statement a stop signal cancelled failed: the stop is why.
                let e = if commit_sent {
                    e
                } else {
                    crate::signals::explain(e)
                };
                fail(&mut target, &e);
                if staged.is_sealed() && commit_sent {
                    // The commit may have happened before the error: the
                    // ledger tells the next run whether to move or drop them.
                    crate::log::info(&format!(
                        "left run {run_id}'s staged report files for the next run, which moves them if the commit went through and removes them if not"
                    ));
                } else {
                    staged.abort();
                }
                Err(e)
            }
        }
    }

    /// Chunk by chunk, stages the files and copies the rows into the open
    /// write transaction (on a thread of its own, so Postgres inserts one
    /// chunk while the next is rolled up); then merges, reconciles, seals
    /// the staged files and commits. `commit_sent` says whether an error
    /// may have come after the commit went out.
    fn write_and_commit(
        &self,
        input: &mut Input,
        target: &mut postgres::Client,
        run_id: Uuid,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
        commit_sent: &mut bool,
    ) -> Result<(WindowStats, pg_sink::Changes)> {
        let write_back = pg_sink::WriteBack {
            schema: self.schema,
            run_id,
            computed_at: Utc::now(),
            from: self.request.window.from,
            to: self.request.window.to,
            selection: &self.selection,
        };
        std::thread::scope(|scope| {
            // The transaction stays open until every chunk is in.
            let (to_writer, parts) =
                std::sync::mpsc::sync_channel::<(Rollup, NaiveDate, NaiveDate)>(1);
            let write_back = &write_back;
            let writer = scope.spawn(move || {
                let started = Instant::now();
                let mut writer = pg_sink::Writer::begin(target, write_back)?;
                let mut busy = started.elapsed();
                for (part, from, to) in parts {
                    let started = Instant::now();
                    writer.append(&part, from, to)?;
                    busy += started.elapsed();
                }
                Ok::<_, Error>((writer, busy))
            });
            let processed = process(input, &self.plan(), timings, |part, chunk, timings| {
                self.stage(staged, part, chunk, run_id, timings)?;
                // Closed only when the writer stopped on an error, returned below.
                to_writer
                    .send((part.clone(), chunk.from, chunk.to))
                    .map_err(|_| Error::RunFailed("the write-back stopped".into()))
            });
            drop(to_writer);
            let written = writer.join().expect("the write-back thread panicked");
            // The writer's error, if any, is the cause of the other.
            // Once rows went in, a target failure is final: never retried.
            let (mut writer, busy) = written.map_err(Error::final_attempt)?;
            let stats = processed?;
            timings.add("write back (overlapped)", busy);
            // A stop that came between two statements cancelled nothing:
            // the merge is not started for it.
            crate::signals::check()?;
            // Where the window already held rows: only what changed is written.
            timings
                .time("merge", || writer.merge())
                .map_err(Error::final_attempt)?;
            // The sums are checked while a stop can still cancel the check.
            timings
                .time("reconcile", || writer.reconcile(&stats.totals))
                .map_err(Error::final_attempt)?;
            // From here the ledger decides what the staged files become: a
            // kill after the commit leaves them for the next run to move.
            crate::fault::pause_point("before_seal");
            crate::signals::check()?;
            staged.seal(self.out, run_id, files::Decider::Ledger, self.shard_name())?;
            crate::fault::pause_point("before_commit");
            // The last moment a stop can still roll everything back; after
            // it, a signal no longer cancels anything.
            crate::signals::entering_commit();
            crate::signals::check()?;
            *commit_sent = true;
            // A failed commit may have happened: never retried.
            let (_, changes) = timings
                .time("commit", || writer.finish(&stats.totals))
                .map_err(Error::final_attempt)?;
            Ok((stats, changes))
        })
    }
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
/// after its commit), and the staged files of one that never did. A whole
/// run holds the folder alone and finishes every journal; a shard finishes
/// only its own shard's (another shard may be running), and refuses to
/// start while a whole run's committed files are pending: moving them in
/// would replace the shard files its siblings are writing beside. Journals
/// whose run this ledger does not know
/// (another target) are left where they are, and said so; their staged
/// files are returned, for the run to leave alone.
fn recover_reports(
    out: &Path,
    mut ledger: Option<(&mut postgres::Client, &str)>,
    shard: Option<Shard>,
) -> Result<Vec<PathBuf>> {
    let mine = shard.map(|s| s.to_string());
    // Staged files of journals left where they are: not stale.
    let mut kept: Vec<PathBuf> = Vec::new();
    for journal in files::pending(out, shard.is_none())? {
        if shard.is_some() && journal.tenant_shard.is_some() && journal.tenant_shard != mine {
            kept.extend(journal.moves.iter().map(|(tmp, _)| out.join(tmp)));
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
        if shard.is_some() && journal.tenant_shard.is_none() && committed == Some(true) {
            return Err(Error::usage(format!(
                "{} holds the committed report files of whole run {run}, not yet moved into place; a shard run cannot finish them while other shards may be writing: run the window once without --tenant-shard (it finishes them), then the shards",
                out.display()
            )));
        }
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
            None => {
                kept.extend(journal.moves.iter().map(|(tmp, _)| out.join(tmp)));
                crate::log::info(&format!(
                    "left the staged report files of run {run} in {}: its ledger row is not in this target (or it is still running); a run against its target finishes them",
                    out.display()
                ))
            }
        }
    }
    // A whole run holds the folder alone: every other staged temporary was
    // left by a run killed before it sealed, and is removed.
    if shard.is_none() {
        let removed = files::remove_unsealed_temporaries(out, &kept)?;
        if removed > 0 {
            crate::log::info(&format!(
                "removed {removed} staged report file(s) of runs that were killed before their commit"
            ));
        }
    }
    Ok(kept)
}

/// Fails early, before the lock, when reports cannot be written.
pub fn check_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .and_then(|_| {
            // Created anew (never through a planted link), then removed.
            let probe = out.join(format!(
                ".callrollup-write-test-{}",
                Uuid::new_v4().simple()
            ));
            files::create_new(&probe)?;
            std::fs::remove_file(&probe)
        })
        .map_err(|e| {
            Error::usage(format!(
                "--out {} is not writable ({e}); pick a folder you can write",
                out.display()
            ))
        })
}
