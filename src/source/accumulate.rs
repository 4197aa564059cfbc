//! The pipeline's read of a database window straight into the rollup's
//! state (`run`, and `errors`/`costs --reconcile` from a database): one
//! binary COPY per table over the window's whole UTC range, each field
//! decoded into the row being built and each row added to its tenant
//! day's figures (`rollup::accumulate`) the moment it is complete. No
//! frame, no per-day statements: Postgres reads a range that covers most
//! of a table in storage order (a sequential scan, in page slices on
//! parallel streams: `PostgresSource::for_each_field`) and a short range
//! through its index, and memory follows the number of tenant-day groups,
//! not of rows.
//!
//! The state has a budget: a window whose groups outgrow it (free-text
//! outcomes, every call its own) stops the read, and the run reads it a
//! chunk of days at a time instead (`pipeline::process`). Nothing has been
//! written by then.

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
}

impl<'t> Stream<'t> {
    fn new(state: Accumulator<'t>, collecting: Option<(i64, i64)>) -> Self {
        Stream {
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
            0..=2 => self.common(i, raw, None)?,
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

    fn end_call(&mut self) -> Result<(), DecodeError> {
        let added = self.read.add_call(&self.cost).and_then(|()| {
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
        self.read.errors += 1;
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
        sizes.iter().map(|s| s.load(Relaxed)).sum::<usize>() > budget
    }

    /// Bytes this stream holds: its figures and the error ids found.
    fn bytes(&self) -> usize {
        let ids = self.collecting.as_ref().map_or(0, |(ids, _)| ids.bytes());
        self.state.bytes() + ids
    }
}

/// A window read in one pass: the first stream's state, the other
/// streams' (`Accumulator::into_rollups` merges them chunk by chunk), the
/// totals of every row read, and how many streams read.
pub type OnePass<'t> = (Accumulator<'t>, Vec<Accumulator<'t>>, SourceTotals, usize);

/// The window's states and the totals of every row read, or None when the
/// state outgrew `budget` bytes (the caller reads chunk by chunk then).
#[allow(clippy::too_many_arguments)]
pub fn read_into_figures<'t>(
    source: &mut PostgresSource,
    shape: SourceShape,
    window: &Window,
    chunk_days: u32,
    selection: &TenantSelection,
    rules: &'t crate::rollup::TenantRules,
    budget: usize,
) -> Result<Option<OnePass<'t>>> {
    let range = window.utc_range();
    let streams = source.read_streams();
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
        let range = (from, chrono::DateTime::<chrono::Utc>::MAX_UTC);
        (range, Some(window.utc_micros()))
    } else {
        (range, None)
    };
    let mut states: Vec<Stream> = (0..streams)
        .map(|_| {
            Stream::new(
                Accumulator::new(rules, window.from, window.to, chunk_days),
                collecting,
            )
        })
        .collect();
    if collecting.is_none() {
        let errored = source.errored_ids(range.0)?;
        for stream in &mut states {
            stream.errored = errored.clone();
        }
    }
    let over_budget = AtomicBool::new(false);
    let sizes: Vec<AtomicUsize> = (0..streams).map(|_| AtomicUsize::new(0)).collect();
    let mut used = 1;
    for (table, fields, read_range) in [
        ("system_errors", &ERROR_FIELDS[..], errors_range),
        ("call_logs", &CALL_FIELDS[..], range),
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
        let decoded = source.for_each_field(table, fields, read_range, selection, shape, each);
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
        "one-pass figures: about {} MiB (--state-limit {} MiB)",
        figures >> 20,
        budget >> 20
    ));
    let mut read = ReadTotals::default();
    let mut others: Vec<Accumulator> = Vec::new();
    for stream in states {
        read.merge(&stream.read)?;
        others.push(stream.state);
    }
    let state = others.remove(0);
    Ok(Some((state, others, read.totals()?, used)))
}
