//! Ad-hoc SQL over one window's tables, on Apache DataFusion: the calls
//! and errors of the window's tenant days, each with its `day`, the
//! tenants, and the summary tables of the same days. Only the contract's
//! columns exist in them (docs/CONTRACT.md §1), so no query can reach
//! transcripts, messages or secrets.
//!
//! A query is checked twice against the allow-list (`guard`): its SQL,
//! then the engine's plan. The columns it reads are taken from its own
//! plan, and only those are read into memory: from the database by one
//! COPY per table over the window's range (`read`), from a snapshot a day
//! at a time through the pipeline `run` uses. The memory they take counts
//! against the query's memory limit, beyond which the engine's operators
//! spill to a private folder or the query fails. The engine answers as
//! Postgres does where the two would differ (`postgres`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::frames::{calls_schema, errors_schema, tenants_schema};
use crate::pipeline::{for_each_chunk, Input, Plan, SourceSpec, Timings};
use crate::selection::TenantSelection;
use crate::summaries::Summaries;
use crate::tables::Table;
use crate::window::Window;

mod arrow;
mod capped;
mod engine;
mod extract;
mod guard;
mod percentile;
mod postgres;
mod read;
mod table;

pub use guard::Checked;
use table::WindowTable;

/// Days the pipeline reads at a time: as `run` (measured on 90 days of 5 M
/// calls: 150 MB peak a day at a time, 300 MB a week at a time).
const CHUNK_DAYS: u32 = 1;

/// The platform tables a query may name, as `query` exposes them.
pub const SOURCE_TABLES: [&str; 3] = ["call_logs", "system_errors", "tenants"];

/// A table's columns as the query sees them.
pub fn table_schema(name: &str) -> Option<Schema> {
    let with_day = |mut schema: Schema| {
        schema.insert("day".into(), DataType::Date);
        schema
    };
    match name {
        "call_logs" => {
            let mut schema = calls_schema();
            // The engine's own flag, not a column of the platform.
            let _ = schema.shift_remove("errored");
            Some(with_day(schema))
        }
        "system_errors" => Some(with_day(errors_schema())),
        "tenants" => Some(tenants_schema()),
        _ => Table::reported()
            .find(|t| t.name() == name)
            .map(|t| t.schema()),
    }
}

/// Every table a query may name.
pub fn table_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SOURCE_TABLES.to_vec();
    names.extend(Table::reported().map(Table::name));
    names
}

/// Parses the query and checks it against the allow-list: a usage error
/// (exit 2) otherwise.
pub fn check(sql: &str) -> Result<Checked> {
    // On a thread of its own with a large stack: a parsed query is a tree
    // that is walked and dropped by recursion.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("callrollup-query-parse".into())
            .stack_size(PLANNING_STACK)
            .spawn_scoped(scope, || no_panic(|| guard::check(sql, &table_names())))
            .map_err(|e| Error::io("cannot start the query's parser", e))?
            .join()
            .unwrap_or_else(|_| {
                Err(Error::usage(
                    "the query's parser stopped on an internal error",
                ))
            })
    })
}

/// The stack of the threads that parse, plan and run a query (virtual
/// memory: only what is used is taken).
const PLANNING_STACK: usize = 64 << 20;

/// A private folder for the engine's spills, removed when dropped.
struct SpillDir(PathBuf);

impl SpillDir {
    fn create() -> Result<SpillDir> {
        let path = std::env::temp_dir().join(format!("callrollup-query-{}", uuid::Uuid::new_v4()));
        // A query stopped mid-computation still removes it.
        crate::signals::remove_on_stop(&path);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| {
            Error::io(
                format!(
                    "cannot create a spill folder in {} (set TMPDIR to a writable folder)",
                    std::env::temp_dir().display()
                ),
                e,
            )
        })?;
        Ok(SpillDir(path))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a query reads.
pub struct QueryInput<'a> {
    pub window: &'a Window,
    pub tenants: &'a TenantSelection,
    pub source: Option<&'a SourceSpec>,
    pub summaries: Option<&'a mut Summaries>,
}

/// How much a query may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of memory for the tables' columns and the engine's operators.
    pub memory: usize,
    /// Longest the engine may compute.
    pub time: Duration,
}

/// The columns each table's scans read, by index into its schema.
pub type Columns = BTreeMap<&'static str, Vec<usize>>;

/// Every column of every table (the corpus test reads the window once for
/// many queries).
pub fn every_column() -> Columns {
    table_names()
        .into_iter()
        .map(|t| {
            let width = table_schema(t).map(|s| s.len()).unwrap_or(0);
            (t, (0..width).collect())
        })
        .collect()
}

/// A thread pool for the engine and a session with the window's tables.
pub struct Session {
    /// Taken on drop: shut down without waiting for work past its time.
    runtime: Option<tokio::runtime::Runtime>,
    context: SessionContext,
    env: Arc<RuntimeEnv>,
    tables: Vec<&'static str>,
    limits: Limits,
    /// What the held columns take from the memory pool.
    _held: Vec<MemoryReservation>,
    _spill: SpillDir,
}

/// A query's answer: its columns and rows.
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    /// The answer as a Polars frame, for the writers.
    pub fn frame(&self) -> Result<DataFrame> {
        arrow::to_frame(&self.schema, &self.batches)
    }
}

fn engine_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        // Expressions are evaluated by recursion on these threads.
        .thread_stack_size(16 << 20)
        .worker_threads(
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
                .clamp(1, 8),
        )
        .thread_name("callrollup-query")
        .enable_time()
        .build()
        .map_err(|e| Error::io("cannot start the query engine's threads", e))
}

/// The arrow-rs schema of one of the six tables.
fn arrow_schema_of(name: &str) -> Result<SchemaRef> {
    let schema = table_schema(name).expect("a known table");
    arrow::arrow_schema(&schema)
}

/// The columns the query's scans read, from its optimized plan over empty
/// tables; also checks that plan against the allow-list.
pub fn columns_read(checked: &Checked) -> Result<Columns> {
    let spill = SpillDir::create()?;
    let env = engine::runtime(64 << 20, &spill.0)?;
    let context = engine::session(env);
    let names = table_names();
    for name in &names {
        let schema = arrow_schema_of(name)?;
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        let table = WindowTable::new(schema, all, 1)?;
        context
            .register_table(*name, Arc::new(table))
            .map_err(|e| engine_error(e, &names))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::io("cannot start the query engine", e))?;
    let optimized = no_panic(|| {
        let plan = runtime.block_on(logical_plan(&context, checked, &names))?;
        context
            .state()
            .optimize(&plan)
            .map_err(|e| engine_error(e, &names))
    })?;
    let mut columns: Columns = BTreeMap::new();
    use datafusion::common::tree_node::TreeNodeRecursion;
    let _ = optimized.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            // A recursive CTE may be named like a table: only scans of the
            // window's tables count.
            let window_table = table::scan_of(scan) == table::ScanOf::WindowTable;
            let name = names.iter().find(|n| **n == scan.table_name.table());
            if let (true, Some(name)) = (window_table, name) {
                let width = scan.source.schema().fields().len();
                let read = columns.entry(name).or_default();
                match &scan.projection {
                    Some(p) => read.extend(p.iter().copied()),
                    None => read.extend(0..width),
                }
                read.sort_unstable();
                read.dedup();
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    Ok(columns)
}

/// The statement planned and checked against the allow-list.
async fn logical_plan(
    context: &SessionContext,
    checked: &Checked,
    tables: &[&'static str],
) -> Result<LogicalPlan> {
    let state = context.state();
    let plan = state
        .statement_to_plan(checked.statement.clone())
        .await
        .map_err(|e| engine_error(e, tables))?;
    guard::check_plan(&plan, tables)?;
    Ok(plan)
}

impl Session {
    /// Reads `columns` of the window's tables into a new session.
    pub fn open(input: QueryInput, columns: &Columns, limits: Limits) -> Result<Session> {
        let spill = SpillDir::create()?;
        let env = engine::runtime(limits.memory, &spill.0)?;
        let context = engine::session(env.clone());
        let partitions = context.state().config().target_partitions();
        let mut held = Vec::new();
        let names = table_names();
        let mut tables: BTreeMap<&'static str, WindowTable> = BTreeMap::new();
        for name in &names {
            let schema = arrow_schema_of(name)?;
            let read = columns.get(name).cloned().unwrap_or_default();
            tables.insert(name, WindowTable::new(schema, read, partitions)?);
        }
        let wants_source = SOURCE_TABLES.iter().any(|t| columns.contains_key(t));
        if wants_source {
            let spec = input.source.ok_or_else(|| {
                Error::usage(
                    "call_logs, system_errors and tenants are read from the platform: pass --database-url (or DATABASE_URL) or --source DIR",
                )
            })?;
            read_source(
                spec,
                input.window,
                input.tenants,
                columns,
                &mut tables,
                &env,
                &mut held,
                limits,
            )?;
        }
        let summary_tables: Vec<Table> = Table::reported()
            .filter(|t| columns.contains_key(t.name()))
            .collect();
        if !summary_tables.is_empty() {
            let summaries = input.summaries.ok_or_else(|| {
                Error::usage(
                    "the summary tables are read from the target database or report files: pass --database-url / --target-url or --reports DIR",
                )
            })?;
            // The tables of one query are one state of the summary: a run
            // committing between two of them would mix its figures with the
            // ones before it.
            let frames = summaries.snapshot(|summaries| {
                summary_tables
                    .iter()
                    .map(|&table| {
                        summaries.table(table, input.window.from, input.window.to, input.tenants)
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            for (table, df) in summary_tables.iter().zip(frames) {
                let target = tables.get_mut(table.name()).expect("every table");
                hold(target, table.name(), &df, &env, &mut held, limits)?;
            }
        }
        for (name, table) in tables {
            context
                .register_table(name, Arc::new(table))
                .map_err(|e| engine_error(e, &names))?;
        }
        Ok(Session {
            runtime: Some(engine_runtime()?),
            context,
            env,
            tables: names,
            limits,
            _held: held,
            _spill: spill,
        })
    }

    /// Plans and runs the query on a thread of its own, handing back its
    /// schema and then its batches through a channel of two: the caller
    /// waits at most until the time limit, and a query past it is left to
    /// the process's end (its thread holds no lock and writes nothing).
    fn start(&self, checked: &Checked) -> Result<(Deadline, std::sync::mpsc::Receiver<Step>)> {
        let deadline = Deadline(std::time::Instant::now() + self.limits.time);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Step>(2);
        let handle = self
            .runtime
            .as_ref()
            .expect("a session's runtime lives until it drops")
            .handle()
            .clone();
        let context = self.context.clone();
        let checked = checked.clone();
        let tables = self.tables.clone();
        std::thread::Builder::new()
            .name("callrollup-query-run".into())
            .stack_size(PLANNING_STACK)
            .spawn(move || {
                let sent = no_panic(|| {
                    handle.block_on(async {
                        use futures_util::StreamExt;
                        let plan = logical_plan(&context, &checked, &tables).await?;
                        let frame = context
                            .execute_logical_plan(plan)
                            .await
                            .map_err(|e| engine_error(e, &tables))?;
                        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                        if tx.send(Step::Schema(schema)).is_err() {
                            return Ok(());
                        }
                        let mut stream = frame
                            .execute_stream()
                            .await
                            .map_err(|e| engine_error(e, &tables))?;
                        while let Some(batch) = stream.next().await {
                            let batch = batch.map_err(|e| engine_error(e, &tables))?;
                            if tx.send(Step::Batch(batch)).is_err() {
                                return Ok(());
                            }
                        }
                        let _ = tx.send(Step::End);
                        Ok(())
                    })
                });
                if let Err(e) = sent {
                    let _ = tx.send(Step::Failed(e));
                }
            })
            .map_err(|e| Error::io("cannot start the query's thread", e))?;
        Ok((deadline, rx))
    }

    /// The next step of a started query, or the time limit's error.
    fn next(&self, deadline: &Deadline, rx: &std::sync::mpsc::Receiver<Step>) -> Result<Step> {
        let left = deadline
            .0
            .saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Step::Failed(e)) => Err(e),
            Ok(step) => Ok(step),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(self.too_long()),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::usage(
                "the query engine stopped on an internal error; rewrite the query",
            )),
        }
    }

    /// Runs the query within the time limit; the answer whole, counted
    /// against the memory limit.
    pub fn run(&self, checked: &Checked) -> Result<Answer> {
        let (deadline, rx) = self.start(checked)?;
        let Step::Schema(schema) = self.next(&deadline, &rx)? else {
            return Err(Error::usage("the query engine gave no columns"));
        };
        let answer_memory =
            MemoryConsumer::new("the query's answer").register(&self.env.memory_pool);
        let mut batches = Vec::new();
        loop {
            match self.next(&deadline, &rx)? {
                Step::Batch(batch) => {
                    let batch = owning_its_text(batch);
                    answer_memory
                        .try_grow(batch.get_array_memory_size())
                        .map_err(|_| {
                            Error::usage(format!(
                                "the answer takes more than the query's memory limit ({} MiB, --memory-limit): add LIMIT, or write it with --format parquet -o FILE, which is written a batch at a time",
                                self.limits.memory >> 20
                            ))
                        })?;
                    batches.push(batch);
                }
                Step::End => break,
                Step::Schema(_) | Step::Failed(_) => unreachable!("sent once, first; or returned"),
            }
        }
        Ok(Answer { schema, batches })
    }

    /// Runs the query and hands its rows to `each` a batch at a time (the
    /// Parquet writer), within the time limit.
    pub fn for_each_batch(
        &self,
        checked: &Checked,
        mut each: impl FnMut(&SchemaRef, &RecordBatch) -> Result<()>,
    ) -> Result<SchemaRef> {
        let (deadline, rx) = self.start(checked)?;
        let Step::Schema(schema) = self.next(&deadline, &rx)? else {
            return Err(Error::usage("the query engine gave no columns"));
        };
        loop {
            match self.next(&deadline, &rx)? {
                Step::Batch(batch) => each(&schema, &batch)?,
                Step::End => return Ok(schema),
                Step::Schema(_) | Step::Failed(_) => unreachable!("sent once, first; or returned"),
            }
        }
    }

    fn too_long(&self) -> Error {
        Error::usage(format!(
            "the query ran longer than its time limit ({} s, --statement-timeout): narrow the window or --tenant, or raise the limit",
            self.limits.time.as_secs()
        ))
    }
}

/// Writes the query's answer to `file` as Parquet, a batch at a time, with
/// the types the engine gives (exact decimals, dates, UTC times).
pub fn write_parquet(session: &Session, checked: &Checked, file: &mut std::fs::File) -> Result<()> {
    let mut writer: Option<polars::io::parquet::write::BatchedWriter<&mut std::fs::File>> = None;
    let mut file = Some(file);
    let schema = session.for_each_batch(checked, |schema, batch| {
        let df = arrow::to_frame(schema, std::slice::from_ref(batch))?;
        if writer.is_none() {
            let target = file.take().expect("one writer");
            writer = Some(ParquetWriter::new(target).batched(df.schema())?);
        }
        writer.as_mut().expect("made above").write_batch(&df)?;
        Ok(())
    })?;
    match writer {
        Some(w) => {
            w.finish()?;
        }
        None => {
            // No rows: a file with the answer's columns.
            let mut empty = arrow::to_frame(&schema, &[])?;
            ParquetWriter::new(file.take().expect("not used")).finish(&mut empty)?;
        }
    }
    Ok(())
}

impl Drop for Session {
    fn drop(&mut self) {
        // A query past its time may still be running: do not wait for it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// When a query's time is up.
struct Deadline(std::time::Instant);

/// What a query's thread hands back, in order.
enum Step {
    Schema(SchemaRef),
    Batch(RecordBatch),
    End,
    Failed(Error),
}

/// The batch with its text columns holding only the bytes they show: a
/// sort's or a join's output views point into its inputs' whole buffers,
/// which the pool would count again for every batch of the answer (a user
/// had 222,000 sorted rows taking 131 MB refused at 2,048 MiB).
fn owning_its_text(batch: RecordBatch) -> RecordBatch {
    use datafusion::arrow::array::{ArrayRef, AsArray};
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| match column.as_string_view_opt() {
            Some(text) => Arc::new(text.gc()) as ArrayRef,
            None => column.clone(),
        })
        .collect();
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new()
            .with_row_count(Some(batch.num_rows())),
    )
    .unwrap_or(batch)
}

/// Adds a frame's `table` rows to `target`, counting them in the pool.
fn hold(
    target: &mut WindowTable,
    name: &str,
    df: &DataFrame,
    env: &Arc<RuntimeEnv>,
    held: &mut Vec<MemoryReservation>,
    limits: Limits,
) -> Result<()> {
    // Batches of the engine's size, each owning its buffers: DataFusion
    // counts a batch's whole buffers, so slices of one big batch would be
    // counted many times over.
    let reservation = MemoryConsumer::new(format!("{name} columns")).register(&env.memory_pool);
    let mut offset = 0;
    while offset < df.height() {
        let rows = table::BATCH_ROWS.min(df.height() - offset);
        let batch = arrow::to_batch(&df.slice(offset as i64, rows), target.held_schema())?;
        reserve(&reservation, &batch, name, limits)?;
        target.push(batch);
        offset += rows;
    }
    held.push(reservation);
    Ok(())
}

fn reserve(
    reservation: &MemoryReservation,
    batch: &RecordBatch,
    name: &str,
    limits: Limits,
) -> Result<()> {
    reservation
        .try_grow(batch.get_array_memory_size())
        .map_err(|_| {
            Error::usage(format!(
                "the window's {name} columns the query reads take more than its memory limit ({} MiB, --memory-limit): narrow the window or --tenant, select fewer columns, or raise the limit",
                limits.memory >> 20
            ))
        })
}

/// The window's calls and errors, with their days, and the tenants: from
/// the database in one read per table (`read`), from a snapshot through
/// the pipeline's frames.
#[allow(clippy::too_many_arguments)]
fn read_source(
    spec: &SourceSpec,
    window: &Window,
    tenants: &TenantSelection,
    columns: &Columns,
    tables: &mut BTreeMap<&'static str, WindowTable>,
    env: &Arc<RuntimeEnv>,
    held: &mut Vec<MemoryReservation>,
    limits: Limits,
) -> Result<()> {
    let mut input = Input::open(spec)?;
    let selection = input.selection(tenants)?;
    let Input::Postgres(source, shape) = &mut input else {
        return read_frames(&mut input, window, &selection, tables, env, held, limits);
    };
    let tenant_rows = source.tenants(&selection)?;
    let target = tables.get_mut("tenants").expect("a table");
    hold(target, "tenants", &tenant_rows, env, held, limits)?;
    let days = read::TenantDays::new(&tenant_rows, window)?;
    let mut counts = Vec::new();
    for name in ["call_logs", "system_errors"] {
        if !columns.contains_key(name) {
            continue;
        }
        crate::fault::pause_point("query_read");
        crate::signals::check()?;
        let target = tables.get_mut(name).expect("a table");
        let schema = target.held_schema().clone();
        let reservation = MemoryConsumer::new(format!("{name} columns")).register(&env.memory_pool);
        let (rows, streams) = read::read_table(
            source,
            *shape,
            window,
            &selection,
            &days,
            name,
            &schema,
            &mut |batch| {
                // A stop (Ctrl-C) ends a long read between batches.
                crate::signals::check()?;
                reserve(&reservation, &batch, name, limits)?;
                target.push(batch);
                Ok(())
            },
        )?;
        held.push(reservation);
        let streams = match streams {
            1 => "one stream".to_string(),
            n => format!("{n} streams"),
        };
        counts.push(format!("{rows} {name} rows ({streams})"));
    }
    if !counts.is_empty() {
        crate::log::info(&format!(
            "read {}..{}: {}",
            window.from,
            window.to,
            counts.join(" and ")
        ));
    }
    Ok(())
}

/// A snapshot's calls and errors, with their days, and the tenants, read
/// a chunk at a time through the pipeline's frames: only the held columns
/// are kept.
fn read_frames(
    input: &mut Input,
    window: &Window,
    selection: &TenantSelection,
    tables: &mut BTreeMap<&'static str, WindowTable>,
    env: &Arc<RuntimeEnv>,
    held: &mut Vec<MemoryReservation>,
    limits: Limits,
) -> Result<()> {
    let plan = Plan {
        window,
        chunk_days: CHUNK_DAYS,
        state_limit: crate::pipeline::mib(crate::pipeline::DEFAULT_STATE_LIMIT_MIB),
        selection,
    };
    let mut tenants_read = false;
    for_each_chunk(
        input,
        &plan,
        &mut Timings::default(),
        |frames, _, chunk, _| {
            let (calls, errors) = crate::rollup::day_rows(&frames, chunk.from, chunk.to)?;
            if !tenants_read {
                let t = tables.get_mut("tenants").expect("a table");
                hold(t, "tenants", &frames.tenants, env, held, limits)?;
                tenants_read = true;
            }
            drop(frames);
            let c = tables.get_mut("call_logs").expect("a table");
            hold(c, "call_logs", &calls, env, held, limits)?;
            let e = tables.get_mut("system_errors").expect("a table");
            hold(e, "system_errors", &errors, env, held, limits)?;
            Ok(())
        },
    )?;
    Ok(())
}

/// An error in turning the answer into output (a Polars conversion or
/// writer error), as the one-line usage error every other failure of a
/// query is (exit 2), its text shown, never sent, to the terminal.
pub fn as_usage(e: Error) -> Error {
    match e {
        Error::Polars(p) => Error::usage(format!(
            "the answer cannot be written: {}",
            first_line(&p.to_string())
        )),
        other => other,
    }
}

/// Runs `f`, turning a panic inside the engine into a usage error: a query
/// that makes it panic is one it cannot run, not a crash. The panic's own
/// report (a backtrace on stderr) is silenced meanwhile.
fn no_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(report);
    result.unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".into());
        Err(Error::usage(format!(
            "the query engine stopped on an internal error ({}); rewrite the query",
            first_line(&reason)
        )))
    })
}

/// The first line of an engine message, at most 300 characters, with
/// control characters shown rather than sent (a query's names are in it).
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no reason given");
    let mut line = crate::text::printable(line.trim_end_matches(';')).into_owned();
    if line.chars().count() > 300 {
        line = line.chars().take(300).collect::<String>() + "…";
    }
    line
}

/// The engine's error as one line that says what to do: an unknown column
/// lists the tables' columns; the rest names the construct.
fn engine_error(e: DataFusionError, tables: &[&'static str]) -> Error {
    let root = e.find_root();
    if let DataFusionError::SchemaError(err, _) = root {
        if let datafusion::common::SchemaError::FieldNotFound { field, .. } = err.as_ref() {
            let name = field.name.clone();
            let known = tables
                .iter()
                .filter_map(|t| table_schema(t))
                .any(|s| s.contains(&name));
            if !known {
                let columns: Vec<String> = tables
                    .iter()
                    .filter_map(|t| {
                        table_schema(t).map(|s| {
                            let names: Vec<&str> = s.iter_names().map(|n| n.as_str()).collect();
                            format!("{t}({})", names.join(", "))
                        })
                    })
                    .collect();
                return Error::usage(format!(
                    "the query names a column that does not exist ({name:?}); only the contract's columns are extracted: {}",
                    columns.join("; ")
                ));
            }
        }
    }
    if let DataFusionError::ResourcesExhausted(_) = root {
        return Error::usage(
            "the query needs more memory than its limit (--memory-limit) even spilling to disk: narrow the window or --tenant, or raise the limit",
        );
    }
    if let DataFusionError::SQL(..) = root {
        return Error::usage(format!(
            "SQL syntax error: {}",
            first_line(&root.to_string())
        ));
    }
    let message = root.to_string();
    let message = message
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("This feature is not implemented: ")
        .trim_start_matches("Execution error: ")
        .trim_start_matches("Arrow error: ");
    if message.contains("Varchar with length") {
        return Error::usage(
            "query refused: VARCHAR(n) truncates to n characters in Postgres and not in the engine: cast to text, or use left(x, n)",
        );
    }
    if message.contains("Physical plan does not support logical expression") {
        return Error::usage(
            "the query engine does not run EXISTS, IN (subquery) or a correlated subquery inside SELECT or CASE: move it to WHERE, or LEFT JOIN a grouped subquery",
        );
    }
    let what = match root {
        DataFusionError::NotImplemented(_) => "the query engine cannot run this yet",
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            "the query cannot be planned"
        }
        _ => "the query failed",
    };
    Error::usage(format!("{what}: {}", first_line(message)))
}

/// A result value as JSON: exact decimals as strings, dates and times as
/// ISO 8601 text.
fn json_value(value: AnyValue) -> Result<serde_json::Value> {
    use serde_json::Value;
    Ok(match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::Int8(v) => v.into(),
        AnyValue::Int16(v) => v.into(),
        AnyValue::Int32(v) => v.into(),
        AnyValue::Int64(v) => v.into(),
        AnyValue::UInt8(v) => v.into(),
        AnyValue::UInt16(v) => v.into(),
        AnyValue::UInt32(v) => v.into(),
        AnyValue::UInt64(v) => v.into(),
        AnyValue::Float32(v) => serde_json::Number::from_f64(f64::from(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Float64(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        other => match text_value(other)? {
            Some(text) => Value::String(text),
            None => Value::Null,
        },
    })
}

/// A decimal's exact text from its integer and scale, with at least 6
/// decimals (more only when it has them), as `money::exact_text` writes
/// it, for every scale Polars holds (rust_decimal stops at 28).
fn decimal_text(value: i128, scale: usize) -> String {
    let digits = value.unsigned_abs().to_string();
    let (whole, fraction) = if digits.len() > scale {
        let (w, f) = digits.split_at(digits.len() - scale);
        (w.to_string(), f.to_string())
    } else {
        ("0".to_string(), format!("{digits:0>scale$}"))
    };
    let mut fraction = fraction.trim_end_matches('0').to_string();
    while fraction.len() < crate::money::SCALE as usize {
        fraction.push('0');
    }
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// A date as `YYYY-MM-DD`; a date beyond the years chrono can print
/// (±262,142) is a usage error, never a panic.
fn date_text(days: i64) -> Result<String> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
    let date = if days >= 0 {
        epoch.checked_add_days(chrono::Days::new(days as u64))
    } else {
        epoch.checked_sub_days(chrono::Days::new(days.unsigned_abs()))
    };
    date.map(|d| d.to_string()).ok_or_else(out_of_range)
}

/// A time as UTC RFC 3339 with microseconds, or (a time without a zone,
/// as Postgres' `timestamp`) the same text without the offset; one beyond
/// chrono's years is a usage error, never a panic or 1970.
fn datetime_text(value: i64, unit: TimeUnit, utc: bool) -> Result<String> {
    let micros = match unit {
        TimeUnit::Nanoseconds => Some(value.div_euclid(1000)),
        TimeUnit::Microseconds => Some(value),
        TimeUnit::Milliseconds => value.checked_mul(1000),
    };
    micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| {
            if utc {
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            } else {
                t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
            }
        })
        .ok_or_else(out_of_range)
}

fn out_of_range() -> Error {
    Error::usage(
        "a date or time in the result is outside the years that can be printed (about ±262,000); filter or convert it in the query",
    )
}

/// A result value as text: exact decimals, ISO 8601 dates and UTC times.
fn text_value(value: AnyValue) -> Result<Option<String>> {
    Ok(Some(match value {
        AnyValue::Null => return Ok(None),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Decimal(v, scale) => decimal_text(v, scale),
        AnyValue::Date(days) => date_text(i64::from(days))?,
        AnyValue::Datetime(v, unit, zone) => datetime_text(v, unit, zone.is_some())?,
        AnyValue::DatetimeOwned(v, unit, zone) => datetime_text(v, unit, zone.is_some())?,
        other => other.to_string(),
    }))
}

/// An array of row objects named by the query's columns.
pub fn json(df: &DataFrame) -> Result<Vec<u8>> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    // Converted first, so a value that cannot be printed fails before any
    // output.
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        let values = row
            .0
            .into_iter()
            .map(json_value)
            .collect::<Result<Vec<_>>>()?;
        rows.push(serde_json::Value::Object(
            names.iter().cloned().zip(values).collect(),
        ));
    }
    Ok(crate::output::json_array(rows.into_iter()))
}

/// Refuses (exit 2) what the CSV writer cannot print exactly: decimals
/// beyond 28 digits or 28 decimals, dates and times beyond chrono's years.
fn check_csv_printable(df: &DataFrame) -> Result<()> {
    for c in df.get_columns() {
        let series = c.as_materialized_series();
        match c.dtype() {
            DataType::Decimal(_, _) if crate::money::decimals(c).is_err() => {
                return Err(Error::usage(format!(
                    "column {:?}: a value has more than 28 digits or 28 decimals, more than CSV prints exactly; use --format json or parquet, or round it in the query",
                    c.name().as_str()
                )));
            }
            DataType::Date => {
                let days = series.date()?.physical();
                for v in [days.min(), days.max()].into_iter().flatten() {
                    date_text(i64::from(v))?;
                }
            }
            DataType::Datetime(unit, zone) => {
                let values = series.datetime()?.physical();
                for v in [values.min(), values.max()].into_iter().flatten() {
                    datetime_text(v, *unit, zone.is_some())?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// CSV with the contract's rules, money with every digit it has.
pub fn csv(df: &DataFrame) -> Result<Vec<u8>> {
    check_csv_printable(df)?;
    crate::output::csv_bytes(df, crate::output::MoneyText::Exact)
}

/// For people: an aligned table and the row count.
pub fn table(df: &DataFrame) -> Result<Vec<u8>> {
    use comfy_table::presets::UTF8_BORDERS_ONLY;
    use comfy_table::{ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            df.get_column_names()
                .iter()
                .map(|n| crate::text::printable(n.as_str()).into_owned()),
        );
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        // Stored text (business names, error types) reaches a terminal:
        // control characters are shown, never sent.
        let cells = row
            .0
            .into_iter()
            .map(|v| {
                text_value(v)
                    .map(Option::unwrap_or_default)
                    .map(|t| crate::text::printable(&t).into_owned())
            })
            .collect::<Result<Vec<_>>>()?;
        table.add_row(cells);
    }
    Ok(format!("{table}\n({} row(s))\n", df.height()).into_bytes())
}
