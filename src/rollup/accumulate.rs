//! The rollup's state, fed one row at a time: every figure of the summary
//! tables is a count, a sum, a min/max or a smallest id per tenant day (or
//! per tenant-day group), so a row can be added the moment it is decoded
//! and dropped. The frame path (`rollup::rollup`) walks a frame's arrays
//! into it; `run` from a database decodes the COPY stream straight into it
//! (`source::accumulate`), one state per stream, merged at the end. Each
//! chunk of days keeps its own figures, so the chunks' tables come out as
//! the frame path makes them, one chunk at a time, in order.
//!
//! Texts (tenant ids, statuses, outcomes, error types, severities) are
//! interned to small integers as they are first met; the tables are built
//! from the figures and sorted through each text's rank (`ranks`).

use chrono::NaiveDate;
use polars::prelude::*;

use super::calls::CallDays;
use super::errors::ErrorDays;
use super::{Rollup, TenantRules};
use crate::frames::SourceTotals;

/// A call_id's fingerprint: 128 bits of XXH3, so two distinct ids share
/// one with odds of about 2^-128 (calls affected, errored ids).
pub fn fingerprint(call_id: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(call_id)
}

/// Distinct texts (or NULL), each with a slot, owned: the rows they came
/// from are gone by the time the tables are built.
#[derive(Default)]
pub(super) struct Interner {
    by_text: PlHashMap<Box<str>, u32>,
    null: Option<u32>,
    texts: Vec<Option<Box<str>>>,
    /// The texts' bytes (each held twice: as a key and by its slot).
    text_bytes: usize,
}

impl Interner {
    pub fn slot_of(&mut self, text: Option<&str>) -> u32 {
        let next = self.texts.len() as u32;
        let slot = match text {
            None => *self.null.get_or_insert(next),
            Some(text) => match self.by_text.get(text) {
                Some(slot) => *slot,
                None => {
                    self.by_text.insert(text.into(), next);
                    // Held twice (key and slot), each with an allocation's overhead.
                    self.text_bytes += 2 * (text.len() + 16);
                    next
                }
            },
        };
        if slot == next {
            self.texts.push(text.map(Into::into));
        }
        slot
    }

    pub fn text(&self, slot: u32) -> Option<&str> {
        self.texts[slot as usize].as_deref()
    }

    /// Bytes held (an estimate, for the state budget).
    fn bytes(&self) -> usize {
        self.text_bytes + self.by_text.capacity() * 25 + self.texts.capacity() * 16
    }

    /// Each slot's place in the texts' order (NULL first, then by bytes,
    /// as Polars sorts text).
    pub fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.texts.len() as u32).collect();
        order.sort_unstable_by_key(|slot| self.texts[*slot as usize].as_deref());
        let mut rank = vec![0; order.len()];
        for (place, slot) in order.iter().enumerate() {
            rank[*slot as usize] = place as u32;
        }
        rank
    }

    /// Each of `other`'s slots as a slot of this one (interned here).
    fn absorb(&mut self, other: &Interner) -> Vec<u32> {
        other
            .texts
            .iter()
            .map(|t| self.slot_of(t.as_deref()))
            .collect()
    }
}

struct Finding {
    rows: i64,
    example: Option<Box<str>>,
}

/// Rows flagged per (finding kind, tenant slot, day), each with the
/// smallest call_id among them as an example to look at.
#[derive(Default)]
pub(super) struct Findings(PlHashMap<(usize, u32, i32), Finding>);

impl Findings {
    /// A row of `tenant`'s `day` flagged with kind `kind` (an index).
    pub fn add(&mut self, kind: usize, tenant: u32, day: i32, id: Option<&str>) {
        let finding = self.0.entry((kind, tenant, day)).or_insert(Finding {
            rows: 0,
            example: None,
        });
        finding.rows += 1;
        if let Some(id) = id {
            if finding.example.as_deref().is_none_or(|e| id < e) {
                finding.example = Some(id.into());
            }
        }
    }

    /// How many (kind, tenant, day) groups are flagged.
    pub fn groups(&self) -> usize {
        self.0.len()
    }

    /// Adds `other`'s findings, its tenant slots mapped by `tenants`.
    pub fn merge(&mut self, other: Findings, tenants: &[u32]) {
        for ((kind, tenant, day), found) in other.0 {
            let finding = self
                .0
                .entry((kind, tenants[tenant as usize], day))
                .or_insert(Finding {
                    rows: 0,
                    example: None,
                });
            finding.rows += found.rows;
            if let Some(id) = found.example {
                if finding.example.as_deref().is_none_or(|e| &*id < e) {
                    finding.example = Some(id);
                }
            }
        }
    }

    /// kind (named by `kinds`), tenant_id, day, rows, example_id.
    pub fn frame(self, kinds: &[&str], tenants: &Interner) -> PolarsResult<DataFrame> {
        let found: Vec<_> = self.0.into_iter().collect();
        DataFrame::new(vec![
            Column::new(
                "kind".into(),
                found
                    .iter()
                    .map(|((k, ..), _)| kinds[*k])
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "tenant_id".into(),
                found
                    .iter()
                    .map(|((_, t, _), _)| tenants.text(*t))
                    .collect::<Vec<_>>(),
            ),
            day_column("day", found.iter().map(|((.., d), _)| *d).collect())?,
            Column::new(
                "rows".into(),
                found.iter().map(|(_, f)| f.rows).collect::<Vec<_>>(),
            ),
            Column::new(
                "example_id".into(),
                found
                    .iter()
                    .map(|(_, f)| f.example.as_deref())
                    .collect::<Vec<_>>(),
            ),
        ])
    }
}

/// A `Date` column from days since 1970-01-01.
pub(super) fn day_column(name: &str, values: Vec<i32>) -> PolarsResult<Column> {
    Int32Chunked::from_vec(name.into(), values)
        .into_series()
        .cast(&DataType::Date)
        .map(Column::from)
}

/// (tenant slot, day, label slot, label slot).
pub(super) type LabelledKey = (u32, i32, u32, u32);

/// A table keyed by (tenant, day, label, label) slots, as its rows come
/// out of the state: sorted by the key as Polars sorts text (bytes, NULL
/// first) through each text's rank, a sort of integers rather than of
/// strings; returns the key columns, tenant_id, day and the two labels
/// named, in that order.
pub(super) fn sorted_key_columns<T>(
    rows: &mut [(LabelledKey, T)],
    tenants: &Interner,
    labels: &Interner,
    label_names: [&str; 2],
) -> PolarsResult<Vec<Column>> {
    let (tenant_rank, label_rank) = (tenants.ranks(), labels.ranks());
    rows.sort_unstable_by_key(|((t, d, a, b), _)| {
        (
            tenant_rank[*t as usize],
            *d,
            label_rank[*a as usize],
            label_rank[*b as usize],
        )
    });
    Ok(vec![
        Column::new(
            "tenant_id".into(),
            rows.iter()
                .map(|((t, ..), _)| tenants.text(*t))
                .collect::<Vec<_>>(),
        ),
        day_column("day", rows.iter().map(|((_, d, ..), _)| *d).collect())?,
        Column::new(
            label_names[0].into(),
            rows.iter()
                .map(|((_, _, a, _), _)| labels.text(*a))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            label_names[1].into(),
            rows.iter()
                .map(|((.., b), _)| labels.text(*b))
                .collect::<Vec<_>>(),
        ),
    ])
}

/// A call as the rollup takes it: texts as slots of the state's interners
/// (`Accumulator::tenant`, `Accumulator::label`), `status`/`outcome` NULL
/// already as "unknown".
pub struct CallRow<'r> {
    pub tenant: u32,
    /// `created_at`, Unix µs.
    pub at: i64,
    pub status: u32,
    pub outcome: u32,
    pub cost: [Option<i128>; 4],
    pub seconds: Option<i64>,
    pub errored: bool,
    pub call_id: Option<&'r str>,
}

/// An error as the rollup takes it (a NULL tenant already the platform's,
/// a NULL type or severity already "unknown").
pub struct ErrorRow<'r> {
    pub tenant: u32,
    pub at: i64,
    pub error_type: u32,
    pub severity: u32,
    pub resolved: Option<bool>,
    /// The call_id's fingerprint (`fingerprint`), and the
    /// id itself for a finding's example.
    pub call: Option<(u128, &'r str)>,
}

/// The labels the figures single out, as slots of the labels' interner.
#[derive(Clone, Copy)]
pub(super) struct Labels {
    pub completed: u32,
    pub failed: u32,
    pub critical: u32,
    pub unknown: u32,
}

/// A chunk's figures.
#[derive(Default)]
struct ChunkFigures {
    calls: CallDays,
    errors: ErrorDays,
}

/// The state of a window's rollup: figures per chunk of days.
pub struct Accumulator<'t> {
    rules: &'t TenantRules,
    tenants: Interner,
    /// Each tenant slot's day rules.
    tenant_rules: Vec<&'t super::calls::TenantDays>,
    labels: Interner,
    known: Labels,
    first_day: i32,
    last_day: i32,
    chunk_days: i32,
    chunks: Vec<ChunkFigures>,
    /// The chunks whose rows this state keeps (a stream of a read in
    /// `created_at` order owns a run of them; by default, all).
    own: std::ops::Range<usize>,
    /// Own chunks before this one are complete and their tables built: a
    /// row for one of them is a fault, counted in `late`.
    open_from: usize,
    pub late: u64,
}

impl<'t> Accumulator<'t> {
    /// A state for tenant days `from..=to` in chunks of `chunk_days` days
    /// (as `Window::chunks` cuts them).
    pub fn new(rules: &'t TenantRules, from: NaiveDate, to: NaiveDate, chunk_days: u32) -> Self {
        let (first_day, last_day) = (super::day_number(from), super::day_number(to));
        let chunk_days = chunk_days.clamp(1, i32::MAX as u32) as i32;
        let chunks = ((last_day - first_day).max(0) / chunk_days + 1) as usize;
        let mut labels = Interner::default();
        let known = Labels {
            completed: labels.slot_of(Some("completed")),
            failed: labels.slot_of(Some("failed")),
            critical: labels.slot_of(Some("CRITICAL")),
            unknown: labels.slot_of(Some("unknown")),
        };
        Accumulator {
            rules,
            tenants: Interner::default(),
            tenant_rules: Vec::new(),
            labels,
            known,
            first_day,
            last_day,
            chunk_days,
            chunks: (0..chunks).map(|_| ChunkFigures::default()).collect(),
            own: 0..chunks,
            open_from: 0,
            late: 0,
        }
    }

    /// How many chunks the window has.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Keeps only rows of chunks `own` (a sub-range of the window's).
    pub fn owning(mut self, own: std::ops::Range<usize>) -> Self {
        self.open_from = own.start;
        self.own = own;
        self
    }

    /// Chunk `chunk`'s tables, built from this state alone, once no row of
    /// its days can come any more; its figures are dropped. Chunks must be
    /// taken in order; a row for a taken chunk is a fault afterwards.
    pub fn take_rollup(&mut self, chunk: usize) -> PolarsResult<Rollup> {
        debug_assert!(self.own.contains(&chunk) && chunk >= self.open_from);
        self.open_from = chunk + 1;
        let figures = std::mem::take(&mut self.chunks[chunk]);
        let calls = figures.calls.into_groups(&self.tenants, &self.labels)?;
        let errors = figures.errors.into_groups(&self.tenants, &self.labels)?;
        super::assemble(calls, errors, &self.rules.zones.frame)
    }

    /// The slot of a tenant id (None: a NULL tenant).
    pub fn tenant(&mut self, id: Option<&str>) -> u32 {
        let slot = self.tenants.slot_of(id);
        if slot as usize == self.tenant_rules.len() {
            self.tenant_rules.push(self.rules.find(id));
        }
        slot
    }

    /// The slot of a label text; NULL is "unknown".
    pub fn label(&mut self, text: Option<&str>) -> u32 {
        match text {
            None => self.known.unknown,
            Some(text) => self.labels.slot_of(Some(text)),
        }
    }

    /// The tenant day of a row of tenant slot `tenant` at `at` (Unix µs),
    /// and the chunk it falls in (None: outside the window).
    #[inline]
    fn place(&self, tenant: u32, at: i64) -> (i32, Option<usize>) {
        let day = self.tenant_rules[tenant as usize].day(at);
        let chunk = self
            .chunk_of_day(day)
            .filter(|chunk| self.own.contains(chunk));
        (day, chunk)
    }

    /// The chunk of the window a tenant day falls in (None: outside it).
    #[inline]
    fn chunk_of_day(&self, day: i32) -> Option<usize> {
        (self.first_day..=self.last_day)
            .contains(&day)
            .then(|| ((day - self.first_day) / self.chunk_days) as usize)
    }

    /// The chunk of the window a row of tenant slot `tenant` at `at` (Unix
    /// µs) belongs to, whichever state owns it (None: outside the window).
    pub fn window_chunk(&self, tenant: u32, at: i64) -> Option<usize> {
        self.chunk_of_day(self.tenant_rules[tenant as usize].day(at))
    }

    /// Whether a row of tenant slot `tenant` at `at` (Unix µs) has its
    /// tenant day in the window.
    #[inline]
    pub fn in_window(&self, tenant: u32, at: i64) -> bool {
        self.place(tenant, at).1.is_some()
    }

    /// The figures of the chunk a row of tenant slot `tenant` at `at`
    /// falls in (None: outside the window), with the row's day and its
    /// tenant's rules. `presize` gives a chunk room like the one before's
    /// (it is called with both; it leaves a chunk already begun alone).
    fn chunk_of(
        &mut self,
        tenant: u32,
        at: i64,
        presize: impl FnOnce(&mut ChunkFigures, &ChunkFigures),
    ) -> Option<(&mut ChunkFigures, i32, &'t super::calls::TenantDays)> {
        let (day, chunk) = self.place(tenant, at);
        let chunk = chunk?;
        if chunk < self.open_from {
            self.late += 1;
            return None;
        }
        let zone = self.tenant_rules[tenant as usize];
        let (before, this) = self.chunks.split_at_mut(chunk);
        if let Some(before) = before.last() {
            presize(&mut this[0], before);
        }
        Some((&mut this[0], day, zone))
    }

    /// Adds a call; false when its tenant day is outside the window.
    pub fn add_call(&mut self, row: &CallRow) -> PolarsResult<bool> {
        let known = self.known;
        let presize = |this: &mut ChunkFigures, before: &ChunkFigures| {
            if this.calls.is_empty() {
                this.calls.reserve_like(&before.calls);
            }
        };
        let Some((chunk, day, zone)) = self.chunk_of(row.tenant, row.at, presize) else {
            return Ok(false);
        };
        chunk.calls.add(row, day, zone, &known)?;
        Ok(true)
    }

    /// Adds an error; false when its tenant day is outside the window.
    pub fn add_error(&mut self, row: &ErrorRow) -> PolarsResult<bool> {
        let known = self.known;
        let presize = |this: &mut ChunkFigures, before: &ChunkFigures| {
            if this.errors.is_empty() {
                this.errors.reserve_like(&before.errors);
            }
        };
        let Some((chunk, day, zone)) = self.chunk_of(row.tenant, row.at, presize) else {
            return Ok(false);
        };
        chunk.errors.add(row, day, zone, &known);
        Ok(true)
    }

    /// Bytes the state holds (an estimate from its entries, for the
    /// state budget of a read).
    pub fn bytes(&self) -> usize {
        let figures: usize = self
            .chunks
            .iter()
            .map(|c| c.calls.bytes() + c.errors.bytes())
            .sum();
        figures + self.tenants.bytes() + self.labels.bytes()
    }

    /// Bytes of text interned so far (cheap: a stream looks at its size
    /// sooner when texts pour in).
    pub fn text_bytes(&self) -> usize {
        self.tenants.text_bytes + self.labels.text_bytes
    }

    /// Each chunk's tables, in order, with the figures of `others` (other
    /// streams' states of the same window and chunks) added. A chunk's
    /// figures are merged and dropped as its tables are built, so the
    /// states never exist twice over.
    pub fn into_rollups(
        mut self,
        others: Vec<Accumulator<'t>>,
    ) -> impl Iterator<Item = PolarsResult<Rollup>> + 't {
        // Each other state's tenant and label slots as this one's.
        let maps: Vec<(Vec<u32>, Vec<u32>)> = others
            .iter()
            .map(|other| {
                let tenants = other
                    .tenants
                    .texts
                    .iter()
                    .map(|t| self.tenant(t.as_deref()))
                    .collect();
                (tenants, self.labels.absorb(&other.labels))
            })
            .collect();
        let mut others: Vec<_> = others
            .into_iter()
            .map(|other| other.chunks.into_iter())
            .collect();
        let Accumulator {
            rules,
            tenants,
            labels,
            chunks,
            ..
        } = self;
        chunks.into_iter().map(move |mut chunk| {
            for (other, (tenant_map, label_map)) in others.iter_mut().zip(&maps) {
                let theirs = other.next().expect("states of the same chunks");
                chunk.calls.merge(theirs.calls, tenant_map, label_map)?;
                chunk.errors.merge(theirs.errors, tenant_map, label_map);
            }
            let calls = chunk.calls.into_groups(&tenants, &labels)?;
            let errors = chunk.errors.into_groups(&tenants, &labels)?;
            super::assemble(calls, errors, &rules.zones.frame)
        })
    }
}

/// The counts and sums of rows read (whatever their day): what Postgres'
/// own count and sums of the same range must equal (`verify`).
#[derive(Default, Clone, Copy)]
pub struct ReadTotals {
    pub calls: i64,
    pub errors: i64,
    pub costs: [i128; 4],
}

impl ReadTotals {
    pub fn add_call(&mut self, cost: &[Option<i128>; 4]) -> PolarsResult<()> {
        self.calls += 1;
        super::calls::add_costs(&mut self.costs, &cost.map(|c| c.unwrap_or(0)))
    }

    pub fn merge(&mut self, other: &ReadTotals) -> PolarsResult<()> {
        self.calls += other.calls;
        self.errors += other.errors;
        super::calls::add_costs(&mut self.costs, &other.costs)
    }

    pub fn totals(&self) -> PolarsResult<SourceTotals> {
        let money = |k: usize| {
            crate::money::to_decimal(
                self.costs[k],
                crate::frames::MONEY_SCALE,
                super::calls::COST_COLUMNS[k],
            )
        };
        Ok(SourceTotals {
            calls: self.calls,
            errors: self.errors,
            stt_cost_usd: money(0)?,
            llm_cost_usd: money(1)?,
            tts_cost_usd: money(2)?,
            total_cost_usd: money(3)?,
        })
    }
}
