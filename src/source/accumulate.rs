//! The pipeline's read of a database window straight into the rollup's
//! state (`run`, and `errors`/`costs --reconcile` from a database): binary
//! COPY streams, each field decoded into the row being built and each row
//! added to its tenant day's figures (`rollup::accumulate`) the moment it
//! is complete. No frame, no per-day statements.
//!
//! When `call_logs` is stored in `created_at` order, each stream reads a
//! run of the window's chunks in that order and hands each chunk's tables
//! to the `ChunkSender` as soon as its calls have passed the chunk's end,
//! so the write overlaps the read and only open chunks are held.
//! Otherwise each table is read over the window's whole UTC range in
//! storage order (a sequential scan, in page slices on parallel streams:
//! `PostgresSource::for_each_field`, or an index range when the range is
//! short) and every chunk goes on after the read.
//!
//! The state has a budget: a window whose groups outgrow it (free-text
//! outcomes, every call its own) stops the read. If no chunk had gone on,
//! the caller reads it a chunk of days at a time instead
//! (`pipeline::process`); otherwise `Error::ReadAgain` starts it again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use polars::prelude::{PlHashMap, PolarsError};

use crate::error::{Error, Result};
use crate::frames::{SourceTotals, MONEY_SCALE, PLATFORM_TENANT};
use crate::rollup::accumulate::fingerprint;
use crate::rollup::accumulate::{Accumulator, CallRow, ErrorRow, ReadTotals};
use crate::selection::TenantSelection;
use crate::source::errored::{ErrorTimes, ErrorTimesBuilder, ERROR_LEAD_MICROS};
use crate::source::pgcopy::{self, DecodeError};
use crate::source::postgres::{PostgresSource, SourceShape};
use crate::window::Window;
use chrono::{DateTime, Utc};

/// The columns read, in COPY order: the tenant and the time first, so a
/// row outside the window's tenant days is known before its texts are
/// decoded.
const CALL_FIELDS: [&str; 10] = [
    "tenant_id",
    "created_at",
    "call_id",
    "status",
    "outcome",
    "stt_cost_usd",
    "llm_cost_usd",
    "tts_cost_usd",
    "total_cost_usd",
    "duration_seconds",
];
const ERROR_FIELDS: [&str; 6] = [
    "tenant_id",
    "created_at",
    "call_id",
    "error_type",
    "severity",
    "resolved",
];

/// Rows between two looks at the state's size, or text bytes interned
/// (long free-text outcomes must not run far past the budget unseen).
const BUDGET_CHECK_ROWS: u32 = 1 << 12;
const BUDGET_CHECK_TEXT_BYTES: usize = 1 << 20;

/// One stream's state and the row it is decoding.
struct Stream<'t> {
    state: Accumulator<'t>,
    read: ReadTotals,
    /// The call ids errors carry (for the calls' errored flag), once the
    /// errors are read.
    errored: std::sync::Arc<ErrorTimes>,
    /// While the errors are read from a day before the window's UTC range
    /// (None: the ids are read on their own): the ids found so far, and
    /// the window's UTC range (Unix µs): errors outside it only mark calls.
    collecting: Option<(ErrorTimesBuilder, (i64, i64))>,
    /// A tenant's uuid (as one integer) to its slot in `state`.
    tenant_slots: PlHashMap<u128, u32>,
    /// The row being decoded.
    tenant: u32,
    at: Option<i64>,
    kept: bool,
    /// The row's call_id (kept rows only) and its fingerprint.
    call_id: String,
    has_call_id: bool,
    fingerprint: u128,
    labels: [u32; 2],
    cost: [Option<i128>; 4],
    seconds: Option<i64>,
    resolved: Option<bool>,
    /// Rows since the state's size was last looked at, and the text bytes
    /// interned then.
    since_check: u32,
    text_bytes_checked: usize,
    /// Why this stream stopped (an overflow the rollup found).
    failure: Option<Error>,
    /// Rows of another stream's chunk outside that chunk's UTC range: its
    /// owner never read them (a zone offset beyond −12…+14 hours).
    stray: u64,
    /// The rows this stream counts for the verification (Unix µs,
    /// `[from, to)`): streams whose ranges overlap count each row once.
    counts: (i64, i64),
    /// A stream reading in `created_at` order: the chunks' UTC ranges, its
    /// own chunks and the next to complete, the latest instant seen, and
    /// where complete chunks go.
    in_order: Option<InOrder>,
}

/// What a stream reading its calls in `created_at` order needs to hand
/// each of its chunks on as soon as no row of it can come any more.
struct InOrder {
    /// Every chunk's UTC range (Unix µs), which its owner reads: an own
    /// chunk is complete once a call at or after its end arrives.
    chunk_ranges: std::sync::Arc<Vec<(i64, i64)>>,
    /// The own chunks, and the next to complete.
    own: std::ops::Range<usize>,
    next: usize,
    latest: i64,
    out: ChunkSender,
}

impl<'t> Stream<'t> {
    fn new(
        state: Accumulator<'t>,
        collecting: Option<(i64, i64)>,
        counts: (i64, i64),
        in_order: Option<InOrder>,
    ) -> Self {
        Stream {
            counts,
            in_order,
            stray: 0,
            state,
            read: ReadTotals::default(),
            errored: Default::default(),
            collecting: collecting.map(|from| (ErrorTimesBuilder::default(), from)),
            tenant_slots: PlHashMap::default(),
            tenant: 0,
            at: None,
            kept: false,
            call_id: String::new(),
            has_call_id: false,
            fingerprint: 0,
            labels: [0; 2],
            cost: [None; 4],
            seconds: None,
            resolved: None,
            since_check: 0,
            text_bytes_checked: 0,
            failure: None,
        }
    }

    /// The slot of a row's tenant (`null_as`: a NULL tenant's id).
    fn tenant(&mut self, raw: Option<&[u8]>, null_as: Option<&str>) -> Result<u32, DecodeError> {
        let Some(raw) = raw else {
            return Ok(self.state.tenant(null_as));
        };
        let id = pgcopy::uuid_u128(raw, "tenant_id")?;
        if let Some(slot) = self.tenant_slots.get(&id) {
            return Ok(*slot);
        }
        let text = uuid::Uuid::from_u128(id).hyphenated().to_string();
        let slot = self.state.tenant(Some(&text));
        self.tenant_slots.insert(id, slot);
        Ok(slot)
    }

    /// Fields that every row has: its tenant, time and call id.
    fn common(
        &mut self,
        i: usize,
        raw: Option<&[u8]>,
        null_tenant: Option<&str>,
    ) -> Result<(), DecodeError> {
        match i {
            0 => self.tenant = self.tenant(raw, null_tenant)?,
            1 => {
                self.at = raw
                    .map(|raw| pgcopy::timestamptz_micros(raw, "created_at"))
                    .transpose()?;
                // A NULL instant has no day, so it is in no window.
                self.kept = self
                    .at
                    .is_some_and(|at| self.state.in_window(self.tenant, at));
                if let (false, Some(at), Some(order)) = (self.kept, self.at, &self.in_order) {
                    // Another stream's row: that stream must read it too.
                    if let Some(chunk) = self.state.window_chunk(self.tenant, at) {
                        let (from, to) = order.chunk_ranges[chunk];
                        if at < from || at >= to {
                            self.stray += 1;
                        }
                    }
                }
            }
            2 => {
                self.call_id.clear();
                self.has_call_id = raw.is_some();
                if let Some(raw) = raw {
                    // An error's id marks calls whatever its day.
                    if self.kept || self.collecting.is_some() {
                        self.fingerprint = fingerprint(raw);
                        self.errored.prefetch(self.fingerprint);
                    }
                    if self.kept {
                        self.call_id.push_str(pgcopy::utf8(raw, "call_id")?);
                    }
                }
            }
            _ => unreachable!("the common fields are the first three"),
        }
        Ok(())
    }

    /// A call at `at` arrived: every own chunk that ends at or before it
    /// is complete (the rows come in `created_at` order), so its tables
    /// are built and handed on.
    fn complete_before(&mut self, at: i64) -> Result<(), DecodeError> {
        let Some(order) = &mut self.in_order else {
            return Ok(());
        };
        if at < order.latest {
            self.failure = Some(Error::RunFailed(
                "internal: the calls of an ordered read came out of created_at order; report this as a bug".into(),
            ));
            return Err(DecodeError::Stopped);
        }
        order.latest = at;
        match self.hand_on_ended_by(at) {
            true => Ok(()),
            // The sink stopped; it reports why.
            false => Err(DecodeError::Stopped),
        }
    }

    /// Builds and hands on every own chunk not yet handed on whose UTC
    /// range ends at or before `at`; false when the sink has stopped.
    fn hand_on_ended_by(&mut self, at: i64) -> bool {
        let Some(order) = &mut self.in_order else {
            return true;
        };
        while order.next < order.own.end && at >= order.chunk_ranges[order.next].1 {
            let chunk = order.next;
            order.next += 1;
            let part = self.state.take_rollup(chunk).map_err(Error::from);
            if order.out.send((chunk, part)).is_err() {
                return false;
            }
        }
        true
    }

    /// After the last call: every own chunk not yet handed on.
    fn complete_all(&mut self) -> Result<()> {
        if self.in_order.is_none() {
            return Ok(());
        }
        if self.state.late > 0 || self.stray > 0 {
            return Err(Error::RunFailed(format!(
                "{} row(s) lie outside the UTC range the engine reads for their tenant day (their zone's offset on that date is beyond -12..+14 hours, as local mean times before about 1900 are); the engine reads days within those offsets only, so the window cannot be rolled up exactly",
                self.state.late + self.stray
            )));
        }
        // A stopped sink reports why itself.
        self.hand_on_ended_by(i64::MAX);
        Ok(())
    }

    fn label(&mut self, raw: Option<&[u8]>, column: &'static str) -> Result<u32, DecodeError> {
        Ok(match raw {
            None => self.state.label(None),
            Some(raw) => self.state.label(Some(pgcopy::utf8(raw, column)?)),
        })
    }

    /// Field `i` of a call.
    fn call_field(&mut self, i: usize, raw: Option<&[u8]>) -> Result<(), DecodeError> {
        let column = CALL_FIELDS[i];
        match i {
            0..=2 => {
                self.common(i, raw, None)?;
                // A chunk whose end the call has passed is complete without
                // it (the call is added at its last field, after this).
                if let (1, Some(at)) = (i, self.at) {
                    self.complete_before(at)?;
                }
            }
            3 | 4 if self.kept => self.labels[i - 3] = self.label(raw, column)?,
            3 | 4 => {}
            5..=8 => {
                self.cost[i - 5] = raw
                    .map(|raw| {
                        pgcopy::numeric_to_scaled(raw, MONEY_SCALE)
                            .map_err(|problem| DecodeError::Value { column, problem })
                    })
                    .transpose()?
            }
            _ => {
                self.seconds = raw.map(|raw| pgcopy::bigint(raw, column)).transpose()?;
                self.end_call()?;
            }
        }
        Ok(())
    }

    /// Whether the row being decoded is this stream's to count for the
    /// verification (`counts`).
    fn counted(&self) -> bool {
        self.at
            .is_none_or(|at| (self.counts.0..self.counts.1).contains(&at))
    }

    fn end_call(&mut self) -> Result<(), DecodeError> {
        let count = match self.counted() {
            true => self.read.add_call(&self.cost),
            false => Ok(()),
        };
        let added = count.and_then(|()| {
            let (Some(at), true) = (self.at, self.kept) else {
                return Ok(());
            };
            let call_id = self.has_call_id.then_some(self.call_id.as_str());
            let errored = call_id.is_some() && self.errored.marks_fingerprint(self.fingerprint, at);
            self.state
                .add_call(&CallRow {
                    tenant: self.tenant,
                    at,
                    status: self.labels[0],
                    outcome: self.labels[1],
                    cost: self.cost,
                    seconds: self.seconds,
                    errored,
                    call_id,
                })
                .map(|_| ())
        });
        self.ended(added)
    }

    /// Field `i` of an error.
    fn error_field(&mut self, i: usize, raw: Option<&[u8]>) -> Result<(), DecodeError> {
        let column = ERROR_FIELDS[i];
        match i {
            // An error without a tenant is the platform's.
            0..=2 => self.common(i, raw, Some(PLATFORM_TENANT))?,
            3 | 4 if self.kept => self.labels[i - 3] = self.label(raw, column)?,
            3 | 4 => {}
            _ => {
                self.resolved = raw.map(|raw| pgcopy::boolean(raw, column)).transpose()?;
                self.end_error()?;
            }
        }
        Ok(())
    }

    fn end_error(&mut self) -> Result<(), DecodeError> {
        if let (Some((ids, range)), Some(at)) = (&mut self.collecting, self.at) {
            if self.has_call_id {
                ids.insert(self.fingerprint, at);
            }
            // Outside the range: only a call's errored flag needs it.
            if at < range.0 || at >= range.1 {
                return Ok(());
            }
        }
        if self.counted() {
            self.read.errors += 1;
        }
        let added = match (self.at, self.kept) {
            (Some(at), true) => {
                let call = self
                    .has_call_id
                    .then_some((self.fingerprint, self.call_id.as_str()));
                self.state
                    .add_error(&ErrorRow {
                        tenant: self.tenant,
                        at,
                        error_type: self.labels[0],
                        severity: self.labels[1],
                        resolved: self.resolved,
                        call,
                    })
                    .map(|_| ())
            }
            _ => Ok(()),
        };
        self.ended(added)
    }

    /// After a row: a failure of the rollup stops the stream (and keeps
    /// why), and now and then the state's size is looked at.
    fn ended(&mut self, added: std::result::Result<(), PolarsError>) -> Result<(), DecodeError> {
        if let Err(e) = added {
            self.failure = Some(e.into());
            return Err(DecodeError::Stopped);
        }
        self.since_check += 1;
        Ok(())
    }

    /// Whether every stream's state together has outgrown `budget` bytes
    /// (looked at every `BUDGET_CHECK_ROWS` rows or
    /// `BUDGET_CHECK_TEXT_BYTES` of new text); `sizes` holds each stream's
    /// last size, this one's at `me`.
    fn outgrew_budget(&mut self, budget: usize, sizes: &[AtomicUsize], me: usize) -> bool {
        let text_bytes = self.state.text_bytes();
        if self.since_check < BUDGET_CHECK_ROWS
            && text_bytes - self.text_bytes_checked < BUDGET_CHECK_TEXT_BYTES
        {
            return false;
        }
        self.since_check = 0;
        self.text_bytes_checked = text_bytes;
        sizes[me].store(self.bytes(), Relaxed);
        let handed = self
            .in_order
            .as_ref()
            .is_some_and(|order| order.next > order.own.start);
        sizes.iter().map(|s| s.load(Relaxed)).sum::<usize>() > budget
            || (handed && crate::fault::fail_point("state_limit_after_a_chunk"))
    }

    /// Bytes this stream holds: its figures and the error ids found.
    fn bytes(&self) -> usize {
        let ids = self.collecting.as_ref().map_or(0, |(ids, _)| ids.bytes());
        self.state.bytes() + ids
    }
}

/// Where a one-pass read hands each chunk's tables, by the chunk's index
/// in `Window::chunks`: in `created_at` order as each chunk completes,
/// otherwise all after the read, in order.
pub type ChunkSender = std::sync::mpsc::SyncSender<(usize, Result<crate::rollup::Rollup>)>;

/// A window read in one pass.
pub struct OnePass {
    /// Every row read, counted once.
    pub totals: SourceTotals,
    /// How many streams read the calls.
    pub streams: usize,
    /// Whether they read in `created_at` order (each chunk handed on as
    /// it completed) rather than in storage order (all after the read).
    pub in_order: bool,
}

/// Days a stream of a read in `created_at` order should have at least: a
/// stream reads the 26 hours of rows around its first and last chunks'
/// edges that its neighbours read too (each is counted and kept by one).
const DAYS_A_STREAM: usize = 7;

/// How each stream reads: the chunks it owns, its UTC ranges of calls and
/// of errors, and the rows it counts.
struct StreamPlan {
    own: std::ops::Range<usize>,
    calls: (DateTime<Utc>, DateTime<Utc>),
    errors: (DateTime<Utc>, DateTime<Utc>),
    counts: (i64, i64),
}

/// The window's chunks, cut into `streams` runs of about equal days,
/// each with the UTC ranges that hold every row of its tenant days
/// (`Window::utc_range`); the first stream's errors start `lead` before
/// the window's range and the last one's has no end when the errors'
/// ids are collected (`errors_range`).
fn stream_plans(
    chunks: &[Window],
    streams: usize,
    errors_range: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<StreamPlan> {
    let micros = |t: DateTime<Utc>| t.timestamp_micros();
    let n = chunks.len();
    let streams = streams.clamp(1, n.max(1));
    let cuts: Vec<usize> = (0..=streams).map(|k| n * k / streams).collect();
    (0..streams)
        .map(|k| {
            let (first, last) = (&chunks[cuts[k]], &chunks[cuts[k + 1] - 1]);
            let calls = Window {
                from: first.from,
                to: last.to,
                partial: false,
            }
            .utc_range();
            // Each row's count goes to the stream whose part of the
            // timeline it lies in: cut at its first day's UTC midnight.
            let count_from = match k {
                0 => i64::MIN,
                _ => micros(first.from.and_time(chrono::NaiveTime::MIN).and_utc()),
            };
            let count_to = match k + 1 < streams {
                true => micros(
                    chunks[cuts[k + 1]]
                        .from
                        .and_time(chrono::NaiveTime::MIN)
                        .and_utc(),
                ),
                false => i64::MAX,
            };
            let errors = (
                if k == 0 { errors_range.0 } else { calls.0 },
                if k + 1 == streams {
                    errors_range.1
                } else {
                    calls.1
                },
            );
            StreamPlan {
                own: cuts[k]..cuts[k + 1],
                calls,
                errors,
                counts: (count_from, count_to),
            }
        })
        .collect()
}

/// Reads the window in one pass into its figures and hands each chunk's
/// tables to `out`; the totals of every row read, or None when the state
/// outgrew `budget` bytes (the caller reads chunk by chunk then).
///
/// A table stored in `created_at` order (an append-only one) is read in
/// that order, on one stream per core for a long window, each stream
/// owning a run of the window's chunks: a chunk is complete, and goes to
/// `out`, once its stream's calls have passed the end of its UTC range,
/// so the write of early days overlaps the read of later ones. Otherwise
/// (a tenant selection, rows not in `created_at` order) the read is in
/// storage order and every chunk goes to `out` after it.
#[allow(clippy::too_many_arguments)]
pub fn read_into_figures(
    source: &mut PostgresSource,
    shape: SourceShape,
    window: &Window,
    chunk_days: u32,
    selection: &TenantSelection,
    rules: &crate::rollup::TenantRules,
    budget: usize,
    out: ChunkSender,
) -> Result<Option<OnePass>> {
    let range = window.utc_range();
    // A call is errored by an error carrying its id logged up to a day
    // before it (docs/CONTRACT.md §2), so the errors are read first, from
    // a day before the range: they give the calls' flags and their own
    // figures in one read. A selection's errors are not all of them (an
    // error of the platform or another tenant may carry a selected
    // tenant's call id): its ids are read on their own, whatever the
    // tenant (`errored_ids`).
    let lead = chrono::Duration::microseconds(ERROR_LEAD_MICROS);
    // Postgres has no year 0: a window on the calendar's first day reads
    // its ids on their own (`errored_ids` subtracts the day in SQL).
    let first_instant = crate::window::FIRST_DAY
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let reaches_year_0 = range
        .0
        .checked_sub_signed(lead)
        .is_none_or(|from| from < first_instant);
    let (errors_range, collecting) = if selection.is_everyone() && !reaches_year_0 {
        let from = range.0 - lead;
        // An error logged after the range marks a call in it too.
        let range = (from, DateTime::<Utc>::MAX_UTC);
        (range, Some(window.utc_micros()))
    } else {
        (range, None)
    };
    let chunks = window.chunks(chunk_days);
    // A selection's rows lie all over the table: its own index serves,
    // in whatever order.
    let in_order = selection.is_everyone() && source.stored_in_created_at_order("call_logs")?;
    let plans = match in_order {
        true => {
            let streams = source
                .read_streams()
                .min(window.day_count() / DAYS_A_STREAM)
                .max(1);
            stream_plans(&chunks, streams, errors_range)
        }
        false => (0..source.read_streams())
            .map(|_| StreamPlan {
                own: 0..chunks.len(),
                calls: range,
                errors: errors_range,
                counts: (i64::MIN, i64::MAX),
            })
            .collect(),
    };
    let chunk_ranges = std::sync::Arc::new(chunks.iter().map(Window::utc_micros).collect());
    let mut states: Vec<Stream> = plans
        .iter()
        .map(|plan| {
            let order = in_order.then(|| InOrder {
                chunk_ranges: std::sync::Arc::clone(&chunk_ranges),
                own: plan.own.clone(),
                next: plan.own.start,
                latest: i64::MIN,
                out: out.clone(),
            });
            let state = Accumulator::new(rules, window.from, window.to, chunk_days)
                .owning(plan.own.clone());
            Stream::new(state, collecting, plan.counts, order)
        })
        .collect();
    if collecting.is_none() {
        let errored = source.errored_ids(range.0)?;
        for stream in &mut states {
            stream.errored = errored.clone();
        }
    }
    let over_budget = AtomicBool::new(false);
    let sizes: Vec<AtomicUsize> = (0..states.len()).map(|_| AtomicUsize::new(0)).collect();
    let mut used = 1;
    for (table, fields) in [
        ("system_errors", &ERROR_FIELDS[..]),
        ("call_logs", &CALL_FIELDS[..]),
    ] {
        if table == "call_logs" {
            crate::fault::pause_point("source_read");
            if collecting.is_some() {
                let mut ids = ErrorTimesBuilder::default();
                for stream in &mut states {
                    if let Some((found, _)) = stream.collecting.take() {
                        ids.absorb(found);
                    }
                }
                let errored = std::sync::Arc::new(ids.finish());
                for stream in &mut states {
                    stream.errored = errored.clone();
                }
            }
        }
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let each: Vec<_> = states
            .iter_mut()
            .enumerate()
            .map(|(me, stream)| {
                let (over_budget, failure, sizes) = (&over_budget, &failure, &sizes);
                let last = fields.len() - 1;
                move |i: usize, raw: Option<&[u8]>| {
                    let decoded = if table == "call_logs" {
                        stream.call_field(i, raw)
                    } else {
                        stream.error_field(i, raw)
                    };
                    if let Err(DecodeError::Stopped) = decoded {
                        if let (Some(e), Ok(mut failure)) = (stream.failure.take(), failure.lock())
                        {
                            failure.get_or_insert(e);
                        }
                    }
                    decoded?;
                    if i == last && stream.outgrew_budget(budget, sizes, me) {
                        over_budget.store(true, Relaxed);
                        return Err(DecodeError::Stopped);
                    }
                    Ok(())
                }
            })
            .collect();
        let decoded = match (in_order, table) {
            (true, "call_logs") => {
                let ranges: Vec<_> = plans.iter().map(|p| p.calls).collect();
                source.for_each_field_by_range(table, fields, &ranges, selection, shape, true, each)
            }
            (true, _) => {
                let ranges: Vec<_> = plans.iter().map(|p| p.errors).collect();
                source
                    .for_each_field_by_range(table, fields, &ranges, selection, shape, false, each)
            }
            (false, "call_logs") => {
                source.for_each_field(table, fields, range, selection, shape, each)
            }
            (false, _) => {
                source.for_each_field(table, fields, errors_range, selection, shape, each)
            }
        };
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        used = used.max(decoded.or_else(|e| match over_budget.load(Relaxed) {
            true => Ok(0),
            false => Err(e),
        })?);
        // The last rows since the last look too.
        if over_budget.load(Relaxed) || states.iter().map(Stream::bytes).sum::<usize>() > budget {
            return Ok(None);
        }
    }
    let figures: usize = states.iter().map(|s| s.state.bytes()).sum();
    crate::log::debug(&format!(
        "one-pass figures: about {} MiB at the end of the read (--state-limit {} MiB)",
        figures >> 20,
        budget >> 20
    ));
    let mut read = ReadTotals::default();
    for stream in &states {
        read.merge(&stream.read)?;
    }
    if in_order {
        for stream in &mut states {
            stream.complete_all()?;
        }
    } else {
        let mut others: Vec<Accumulator> = states.into_iter().map(|s| s.state).collect();
        let state = others.remove(0);
        for (i, part) in state.into_rollups(others).enumerate() {
            if out.send((i, part.map_err(Error::from))).is_err() {
                break;
            }
        }
    }
    Ok(Some(OnePass {
        totals: read.totals()?,
        streams: used,
        in_order,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn window(from: &str, to: &str) -> Window {
        Window {
            from: from.parse::<NaiveDate>().unwrap(),
            to: to.parse::<NaiveDate>().unwrap(),
            partial: false,
        }
    }

    #[test]
    fn streams_own_every_chunk_once_read_all_their_rows_and_count_each_row_once() {
        let whole = window("2026-01-01", "2026-03-31");
        let errors = (
            whole.utc_range().0 - chrono::Duration::days(1),
            DateTime::<Utc>::MAX_UTC,
        );
        for (chunk_days, streams) in [(1, 1), (1, 2), (1, 3), (5, 2), (7, 4), (30, 2), (91, 3)] {
            let chunks = whole.chunks(chunk_days);
            let plans = stream_plans(&chunks, streams, errors);
            assert!(plans.len() <= streams && !plans.is_empty());
            // The chunks, each owned once, in order.
            let owned: Vec<usize> = plans.iter().flat_map(|p| p.own.clone()).collect();
            assert_eq!(owned, (0..chunks.len()).collect::<Vec<_>>());
            let micros = |t: DateTime<Utc>| t.timestamp_micros();
            for (k, plan) in plans.iter().enumerate() {
                // Every row of an own chunk's tenant days is in the read.
                for chunk in &chunks[plan.own.clone()] {
                    let (from, to) = chunk.utc_range();
                    assert!(plan.calls.0 <= from && to <= plan.calls.1);
                    assert!(plan.errors.0 <= from && to <= plan.errors.1);
                }
                // The rows counted lie inside the read, and the counted
                // parts meet end to end.
                let (a, b) = plan.counts;
                assert!(a == i64::MIN || micros(plan.calls.0) <= a);
                assert!(b == i64::MAX || b <= micros(plan.calls.1));
                match plans.get(k + 1) {
                    Some(next) => assert_eq!(b, next.counts.0),
                    None => assert_eq!(b, i64::MAX),
                }
            }
            assert_eq!(plans[0].counts.0, i64::MIN);
            assert_eq!(plans[0].errors.0, errors.0);
            assert_eq!(plans.last().unwrap().errors.1, errors.1);
        }
    }
}
