//! The nightly run: the shared pipeline plus the write-back, the report
//! files and the ledger, in the order docs/CONTRACT.md §4 gives. Check the
//! source and engine schemas and the time zones, take the advisory lock,
//! record the run as `running`, finish what earlier runs left in the
//! report folder, then read the window (in one pass or chunk by chunk)
//! and, as each chunk completes, stage its report files and copy its rows
//! into the open write transaction; verify the rows read against the
//! source's own count and sums, reconcile, seal the staged files, mark the
//! ledger `succeeded` and commit, then move the files into place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
#[derive(Clone)]
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
    /// The one-pass read's budget (`pipeline::Plan::state_limit`), MiB.
    pub state_limit_mib: u32,
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
    /// The drift check after the run (`crate::drift`), set by `run`'s
    /// command.
    pub drift: Option<crate::drift::Check>,
    /// The cost anomalies of the days the run wrote (`crate::anomalies`),
    /// set by `run`'s command.
    pub anomalies: Option<crate::anomalies::Check>,
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

/// One run. A one-pass read that gives way after chunks went into the
/// write transaction (`Error::ReadAgain`: rare, a window of free-text
/// outcomes, or one that met `--statement-timeout`) rolls the attempt
/// back and starts again chunk by chunk, as a new run.
pub fn run(request: &RunRequest) -> Result<RunOutcome> {
    let one_pass = request.state_limit_mib > 0;
    super::read_again(one_pass, request.chunk_days, |chunked| match chunked {
        false => run_once(request),
        true => run_once(&RunRequest {
            state_limit_mib: 0,
            ..request.clone()
        }),
    })
}

fn run_once(request: &RunRequest) -> Result<RunOutcome> {
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
            drift: None,
            anomalies: None,
        });
    }
    check_out_dir(run.out)?;
    // Held until the files are in place: whole runs alone, shards beside
    // each other (the same rule as the target's lock, for the folder).
    let _folder_lock = sink::layout::FolderLock::take(run.out, run.selection.shard)?;
    match target {
        None => run.drive(input, &mut FileTarget, timings),
        Some((url, client)) => run.drive(input, &mut DatabaseTarget::new(url, client), timings),
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
            state_limit: crate::pipeline::mib(self.request.state_limit_mib),
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
            drift: None,
            anomalies: None,
        })
    }

    /// The run itself, whatever its target: `begin`, then chunk by chunk
    /// the report files are staged and the rows handed to the target, then
    /// `commit`; after a failure before the commit, `abort`. The files go
    /// into place only after the commit.
    fn drive(
        &self,
        mut input: Input,
        target: &mut dyn Target,
        mut timings: Timings,
    ) -> Result<RunOutcome> {
        let mut staged = files::StagedFiles::default();
        let run_id = target.begin(self, &input, &mut staged, &mut timings)?;
        crate::log::set_run(Some(&run_id));
        let result = process(
            &mut input,
            &self.plan(),
            &mut timings,
            |part, chunk, timings| {
                self.stage(&mut staged, part, chunk, run_id, timings)?;
                target.append(part, chunk)
            },
        )
        .and_then(|stats| {
            let changes = target.commit(self, run_id, &stats, &mut staged, &mut timings)?;
            Ok((stats, changes))
        });
        match result {
            Ok((stats, changes)) => self.move_into_place(staged, run_id, stats, changes, timings),
            Err(e) => Err(target.abort(self, run_id, e, &mut staged)),
        }
    }
}

/// Where a run's rows go. The driver (`Context::drive`) calls `begin`,
/// `append` for each chunk, then `commit`; `abort` after any failure
/// before the commit is known to have happened.
trait Target {
    /// Before the first chunk: locks, the ledger row, and what earlier
    /// runs left in the report folder; returns the run's id.
    fn begin(
        &mut self,
        run: &Context,
        input: &Input,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
    ) -> Result<Uuid>;

    /// One chunk's rows (its report files are already staged).
    fn append(&mut self, part: &Rollup, chunk: &Window) -> Result<()>;

    /// After the last chunk: writes what remains, seals the staged files
    /// and commits; what the write changed, where the target says.
    fn commit(
        &mut self,
        run: &Context,
        run_id: Uuid,
        stats: &WindowStats,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
    ) -> Result<Option<pg_sink::Changes>>;

    /// Rolls back what the run did and records why; returns the error the
    /// run ends with.
    fn abort(
        &mut self,
        run: &Context,
        run_id: Uuid,
        error: Error,
        staged: &mut files::StagedFiles,
    ) -> Error;
}

/// The file target: the reports are the summary tables, and sealing the
/// staged files is the commit.
struct FileTarget;

impl Target for FileTarget {
    fn begin(
        &mut self,
        run: &Context,
        _input: &Input,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
    ) -> Result<Uuid> {
        // The same work as the database target's "report folder" stage.
        let (kept, skipped) = timings.time("report folder", || {
            let kept = recover_reports(run.out, None, run.selection.shard)?;
            Ok((kept, run.check_layout()?))
        })?;
        staged.keep(kept);
        // The files are this target's only output: a --tenant run that
        // cannot write them all is refused.
        if let Some(day) = skipped.first() {
            return Err(Error::usage(format!(
                "--tenant cannot write {day} into {}: it holds no committed report for that day ({}) to keep the other tenants from, so the day's file would hold only the selected tenants; run {day} without --tenant first, or write to another --out",
                run.out.display(),
                run.whose()
            )));
        }
        Ok(Uuid::new_v4())
    }

    fn append(&mut self, _part: &Rollup, _chunk: &Window) -> Result<()> {
        Ok(())
    }

    fn commit(
        &mut self,
        run: &Context,
        run_id: Uuid,
        _stats: &WindowStats,
        staged: &mut files::StagedFiles,
        _timings: &mut Timings,
    ) -> Result<Option<pg_sink::Changes>> {
        crate::fault::pause_point("before_seal");
        // Sealing is this target's commit.
        crate::signals::entering_commit();
        crate::signals::check()?;
        staged.seal(run.out, run_id, files::Decider::Sealed, run.shard_name())?;
        Ok(None)
    }

    fn abort(
        &mut self,
        _run: &Context,
        _run_id: Uuid,
        error: Error,
        staged: &mut files::StagedFiles,
    ) -> Error {
        staged.abort();
        crate::signals::explain(error)
    }
}

/// The database target: the advisory lock and the ledger row, then one
/// write transaction on a thread of its own, so Postgres inserts one
/// chunk while the next is rolled up; the staged files are sealed just
/// before the commit, and the ledger decides what they become.
struct DatabaseTarget<'u> {
    url: &'u DbUrl,
    /// The target connection: it holds the advisory lock until the run
    /// ends; with the writer thread while the transaction is open.
    client: Option<postgres::Client>,
    writer: Option<WriterThread>,
    /// Whether the commit was sent: only then can an error leave Postgres
    /// unsure whether it happened.
    commit_sent: bool,
}

/// The thread that owns the write transaction, and how to talk to it.
struct WriterThread {
    /// Each chunk's rows; closed after the last chunk.
    parts: Option<std::sync::mpsc::SyncSender<(Rollup, NaiveDate, NaiveDate)>>,
    steps: std::sync::mpsc::Sender<WriterStep>,
    replies: std::sync::mpsc::Receiver<Result<WriterReply>>,
    /// The connection back, and the error the appends stopped on.
    handle: std::thread::JoinHandle<(postgres::Client, Result<()>)>,
}

/// What the writer does after the last chunk, one step at a time.
enum WriterStep {
    Merge,
    Reconcile(crate::frames::SourceTotals),
    Commit(crate::frames::SourceTotals),
}

enum WriterReply {
    /// Every chunk is in; the time the writer spent on them.
    Appended(std::time::Duration),
    Done,
    Committed(pg_sink::Changes),
}

impl<'u> DatabaseTarget<'u> {
    fn new(url: &'u DbUrl, client: postgres::Client) -> Self {
        DatabaseTarget {
            url,
            client: Some(client),
            writer: None,
            commit_sent: false,
        }
    }

    fn client(&mut self) -> &mut postgres::Client {
        self.client
            .as_mut()
            .expect("the writer thread has returned the connection")
    }

    /// Records the run as failed with the reason, secrets redacted. Only a
    /// `running` row moves: if even this fails, the next run marks this
    /// one abandoned.
    fn fail(&mut self, run: &Context, run_id: Uuid, e: &Error) {
        let mut message = self.url.redact(&e.to_string());
        if let SourceSpec::Postgres { url, .. } = &run.request.source {
            message = url.redact(&message);
        }
        let _ = ledger::fail(self.client(), run.schema, run_id, &message);
    }

    /// Starts the thread that opens the write transaction and copies each
    /// chunk's rows in as they come.
    fn start_writer(&mut self, run: &Context, run_id: Uuid) {
        let (parts_in, parts) = std::sync::mpsc::sync_channel::<(Rollup, NaiveDate, NaiveDate)>(1);
        let (steps_in, steps) = std::sync::mpsc::channel::<WriterStep>();
        let (replies_in, replies) = std::sync::mpsc::channel::<Result<WriterReply>>();
        let mut client = self.client.take().expect("one writer per run");
        let (schema, selection) = (run.schema.to_string(), run.selection.clone());
        let (from, to) = (run.request.window.from, run.request.window.to);
        // Well inside the server's idle-in-transaction timeout, which is
        // the statement timeout (queries/target_session.sql).
        let keep_alive = Duration::from_secs_f64(run.request.statement_timeout_secs as f64 / 3.0)
            .clamp(Duration::from_millis(200), Duration::from_secs(60));
        let handle = std::thread::spawn(move || {
            let appended = (|| -> Result<()> {
                let write_back = pg_sink::WriteBack {
                    schema: &schema,
                    run_id,
                    computed_at: Utc::now(),
                    from,
                    to,
                    selection: &selection,
                };
                let started = Instant::now();
                let mut writer = pg_sink::Writer::begin(&mut client, &write_back)?;
                let mut busy = started.elapsed();
                loop {
                    use std::sync::mpsc::RecvTimeoutError;
                    let (part, from, to) = match parts.recv_timeout(keep_alive) {
                        Ok(part) => part,
                        Err(RecvTimeoutError::Timeout) => {
                            writer.keep_alive()?;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let started = Instant::now();
                    writer.append(&part, from, to)?;
                    busy += started.elapsed();
                }
                if replies_in.send(Ok(WriterReply::Appended(busy))).is_err() {
                    return Ok(());
                }
                // Dropping the writer (a closed channel, a failed step)
                // rolls the transaction back.
                while let Ok(step) = steps.recv() {
                    let reply = match step {
                        WriterStep::Merge => writer.merge().map(|()| WriterReply::Done),
                        WriterStep::Reconcile(totals) => {
                            writer.reconcile(&totals).map(|()| WriterReply::Done)
                        }
                        WriterStep::Commit(totals) => {
                            let committed = writer
                                .finish(&totals)
                                .map(|(_, changes)| WriterReply::Committed(changes));
                            let _ = replies_in.send(committed);
                            return Ok(());
                        }
                    };
                    let failed = reply.is_err();
                    if replies_in.send(reply).is_err() || failed {
                        return Ok(());
                    }
                }
                Ok(())
            })();
            (client, appended)
        });
        self.writer = Some(WriterThread {
            parts: Some(parts_in),
            steps: steps_in,
            replies,
            handle,
        });
    }

    /// One step of the writer after the last chunk; a failure once rows
    /// went in is final (never retried).
    fn step(&mut self, step: WriterStep) -> Result<WriterReply> {
        let writer = self.writer.as_mut().expect("the writer runs");
        if writer.steps.send(step).is_err() {
            return Err(self.stop_writer().unwrap_or_else(write_back_stopped));
        }
        match writer.replies.recv() {
            Ok(reply) => reply.map_err(Error::final_attempt),
            Err(_) => Err(self.stop_writer().unwrap_or_else(write_back_stopped)),
        }
    }

    /// Ends the writer thread (an open transaction rolls back) and takes
    /// the connection back; the error its appends stopped on, if any.
    fn stop_writer(&mut self) -> Option<Error> {
        let writer = self.writer.take()?;
        drop(writer.parts);
        drop(writer.steps);
        let (client, appended) = writer
            .handle
            .join()
            .expect("the write-back thread panicked");
        self.client = Some(client);
        // Once rows went in, a target failure is final: never retried.
        appended.err().map(Error::final_attempt)
    }
}

impl Target for DatabaseTarget<'_> {
    fn begin(
        &mut self,
        run: &Context,
        input: &Input,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
    ) -> Result<Uuid> {
        let (window, schema, out) = (&run.request.window, run.schema, run.out);
        let run_id = Uuid::new_v4();
        timings.time("lock and ledger", || {
            // The lock lives on the target connection until the process ends.
            ledger::lock(self.client(), schema, run.selection.shard)?;
            ledger::start(
                self.client(),
                schema,
                &ledger::RunStart {
                    run_id,
                    from: window.from,
                    to: window.to,
                    partial: window.partial,
                    selection: &run.selection,
                    arguments: run.request.arguments.clone(),
                    source: input.describe()?,
                },
            )
        })?;
        crate::log::set_run(Some(&run_id));
        crate::log::info(&format!(
            "run {run_id} for {}..{} ({})",
            window.from,
            window.to,
            run.selection.describe()
        ));
        let recovered = timings.time("report folder", || {
            recover_reports(out, Some((self.client(), schema)), run.selection.shard)
                .and_then(|kept| run.check_layout().map(|skipped| (kept, skipped)))
        });
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
                        run.whose()
                    ));
                }
                staged.skip_days(skipped);
            }
            Err(e) => {
                self.fail(run, run_id, &e);
                return Err(e);
            }
        }
        self.start_writer(run, run_id);
        Ok(run_id)
    }

    fn append(&mut self, part: &Rollup, chunk: &Window) -> Result<()> {
        let writer = self.writer.as_ref().expect("the writer runs");
        // Closed only when the writer stopped on an error, which `abort`
        // reports as the cause.
        writer
            .parts
            .as_ref()
            .expect("chunks come before the commit")
            .send((part.clone(), chunk.from, chunk.to))
            .map_err(|_| write_back_stopped())
    }

    fn commit(
        &mut self,
        run: &Context,
        run_id: Uuid,
        stats: &WindowStats,
        staged: &mut files::StagedFiles,
        timings: &mut Timings,
    ) -> Result<Option<pg_sink::Changes>> {
        // Every chunk is in once the writer says so.
        let writer = self.writer.as_mut().expect("the writer runs");
        drop(writer.parts.take());
        let busy = match writer.replies.recv() {
            Ok(Ok(WriterReply::Appended(busy))) => busy,
            Ok(Err(e)) => return Err(Error::final_attempt(e)),
            _ => return Err(self.stop_writer().unwrap_or_else(write_back_stopped)),
        };
        timings.add("write back (overlapped)", busy);
        // A stop that came between two statements cancelled nothing:
        // the merge is not started for it.
        crate::signals::check()?;
        // Where the window already held rows: only what changed is written.
        timings.time("merge", || self.step(WriterStep::Merge))?;
        // The sums are checked while a stop can still cancel the check.
        timings.time("reconcile", || {
            self.step(WriterStep::Reconcile(stats.totals.clone()))
        })?;
        // From here the ledger decides what the staged files become: a
        // kill after the commit leaves them for the next run to move.
        crate::fault::pause_point("before_seal");
        crate::signals::check()?;
        staged.seal(run.out, run_id, files::Decider::Ledger, run.shard_name())?;
        crate::fault::pause_point("before_commit");
        // The last moment a stop can still roll everything back; after
        // it, a signal no longer cancels anything.
        crate::signals::entering_commit();
        crate::signals::check()?;
        self.commit_sent = true;
        // A failed commit may have happened: never retried.
        let committed = timings.time("commit", || {
            self.step(WriterStep::Commit(stats.totals.clone()))
        })?;
        // The connection comes back (it holds the advisory lock until the
        // run ends).
        let _ = self.stop_writer();
        match committed {
            WriterReply::Committed(changes) => Ok(Some(changes)),
            _ => Err(Error::RunFailed(
                "internal: the commit gave no changes".into(),
            )),
        }
    }

    fn abort(
        &mut self,
        run: &Context,
        run_id: Uuid,
        error: Error,
        staged: &mut files::StagedFiles,
    ) -> Error {
        // The writer's error, if any, is the cause of the other.
        let error = self.stop_writer().unwrap_or(error);
        // A statement a stop signal cancelled failed: the stop is why.
        let error = if self.commit_sent {
            error
        } else {
            crate::signals::explain(error)
        };
        self.fail(run, run_id, &error);
        if staged.is_sealed() && self.commit_sent {
            // The commit may have happened before the error: the ledger
            // tells the next run whether to move or drop them.
            crate::log::info(&format!(
                "left run {run_id}'s staged report files for the next run, which moves them if the commit went through and removes them if not"
            ));
        } else {
            staged.abort();
        }
        // The lock goes with the run now, not when the server notices the
        // connection closed: a run started again at once (`run` after
        // `Error::ReadAgain`) finds it free.
        if let Some(client) = self.client.as_mut() {
            let _ = client.batch_execute(crate::sql::UNLOCK);
        }
        error
    }
}

/// The writer thread ended without saying why (its error, when it has
/// one, is reported instead).
fn write_back_stopped() -> Error {
    Error::RunFailed("the write-back stopped".into())
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
