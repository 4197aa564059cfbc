//! The calls' share of the rollup: the per tenant-day and per outcome
//! figures, the call findings and the window's call totals, added one call
//! at a time (`CallDays`, inside `accumulate::Accumulator`), and the walk
//! of a calls frame's arrays into them. Calls are nine rows in ten of a
//! run, and doing this with Polars expressions (a join on the tenant's
//! text id, the day arithmetic, two group-bys on text keys, a filter per
//! finding kind) was most of the engine's CPU (issue 25). A frame's text
//! keys are found by the row's 16-byte string view first (the COPY decoder
//! gives every row of a value the same view), by the text itself the first
//! time a view is seen, so two views of one text share a slot.
//!
//! Every definition is docs/CONTRACT.md §2's; `reference.rs` checks the
//! whole rollup against plain loops with chrono-tz and rust_decimal.

use polars::prelude::*;
use polars_arrow::array::{Array, BooleanArray, PrimitiveArray, Utf8ViewArray};

use super::accumulate::{
    day_column, sorted_key_columns, Accumulator, CallRow, Findings, Interner, Labels,
};
use crate::frames::{MONEY_PRECISION, MONEY_SCALE};
use crate::money;

/// The money columns, in the order the figures keep them.
pub const COST_COLUMNS: [&str; 4] = [
    "stt_cost_usd",
    "llm_cost_usd",
    "tts_cost_usd",
    "total_cost_usd",
];
const TOTAL: usize = 3;

/// What a call's tenant contributes: the offsets that place its days, and
/// whether the tenant and its zone are known.
pub struct TenantDays {
    /// Offset (µs) at the rows' first instant, then (instant, offset) of
    /// each change over the rows' span (`timezone::offset_changes`).
    pub first: i64,
    pub changes: Vec<(i64, i64)>,
    pub known: bool,
    pub zone_valid: bool,
}

impl TenantDays {
    /// The tenant day of instant `at` (Unix µs), as days since 1970-01-01.
    pub fn day(&self, at: i64) -> i32 {
        super::timezone::day_number(self.first, &self.changes, at)
    }
}

/// Call findings, in the order `findings` lists the kinds.
const KINDS: [&str; 5] = [
    "invalid_timezone",
    "unknown_tenant",
    "negative_cost",
    "missing_cost",
    "cost_mismatch",
];

/// The calls' tables of a window.
pub struct CallGroups {
    /// tenant_id, day and every call figure of `tenant_daily`.
    pub by_day: DataFrame,
    /// `tenant_daily_outcomes`, sorted by its key (as Polars sorts).
    pub outcomes: DataFrame,
    /// kind, tenant_id, day, rows, example_id (the smallest call_id).
    pub findings: DataFrame,
    pub calls: i64,
    /// The exact sums of the four cost columns, as `COST_COLUMNS`.
    pub costs: [rust_decimal::Decimal; 4],
}

#[derive(Default)]
struct DayFigures {
    calls: i64,
    completed: i64,
    failed: i64,
    seconds: i64,
    costs: [i128; 4],
    missing: i64,
    mismatch: i64,
    errored: i64,
}

#[derive(Default)]
struct OutcomeFigures {
    calls: i64,
    seconds: i64,
    total: i128,
}

impl DayFigures {
    /// Adds `other`'s figures (one call's, or another stream's day).
    fn absorb(&mut self, other: &DayFigures) -> PolarsResult<()> {
        self.calls += other.calls;
        self.completed += other.completed;
        self.failed += other.failed;
        self.seconds = self
            .seconds
            .checked_add(other.seconds)
            .ok_or_else(seconds_overflow)?;
        add_costs(&mut self.costs, &other.costs)?;
        self.missing += other.missing;
        self.mismatch += other.mismatch;
        self.errored += other.errored;
        Ok(())
    }
}

impl OutcomeFigures {
    /// Adds `other`'s figures (one call's, or another stream's group).
    fn absorb(&mut self, other: &OutcomeFigures) -> PolarsResult<()> {
        self.calls += other.calls;
        self.seconds = self
            .seconds
            .checked_add(other.seconds)
            .ok_or_else(seconds_overflow)?;
        self.total = self
            .total
            .checked_add(other.total)
            .ok_or_else(|| cost_overflow(TOTAL))?;
        Ok(())
    }
}

/// Adds `amounts` to `sums`, cost by cost (as `COST_COLUMNS` orders them).
pub(super) fn add_costs(sums: &mut [i128; 4], amounts: &[i128; 4]) -> PolarsResult<()> {
    for (k, (sum, amount)) in sums.iter_mut().zip(amounts).enumerate() {
        *sum = sum.checked_add(*amount).ok_or_else(|| cost_overflow(k))?;
    }
    Ok(())
}

/// A frame whose columns' chunks line up, as they come: a chunk's frame
/// is the rows carried from the previous chunk stacked on the new read,
/// and walking those pieces as they are saves copying every column into
/// one array for each chunk (8 % of a 90-day run's CPU). Columns whose
/// chunks do not line up are made one chunk first.
pub(super) fn aligned(df: &DataFrame) -> std::borrow::Cow<'_, DataFrame> {
    // Every column's chunk lengths compared in full (Polars'
    // `should_rechunk` passes over scalar columns).
    let lengths =
        |c: &Column| -> Vec<usize> { c.as_materialized_series().chunk_lengths().collect() };
    let mut columns = df.get_columns().iter();
    let first = columns.next().map(lengths);
    if columns.all(|c| Some(lengths(c)) == first) {
        std::borrow::Cow::Borrowed(df)
    } else {
        let mut whole = df.clone();
        whole.as_single_chunk();
        std::borrow::Cow::Owned(whole)
    }
}

/// A text column's arrays, chunk by chunk.
pub(super) fn text_arrays<'a>(
    df: &'a DataFrame,
    name: &str,
) -> PolarsResult<Vec<&'a Utf8ViewArray>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .str()?
        .downcast_iter()
        .collect())
}

/// A UTC instant column's arrays (Unix µs), chunk by chunk.
pub(super) fn instant_arrays<'a>(
    df: &'a DataFrame,
    name: &str,
) -> PolarsResult<Vec<&'a PrimitiveArray<i64>>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .datetime()?
        .physical()
        .downcast_iter()
        .collect())
}

/// A boolean column's arrays, chunk by chunk.
pub(super) fn flag_arrays<'a>(
    df: &'a DataFrame,
    name: &str,
) -> PolarsResult<Vec<&'a BooleanArray>> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .bool()?
        .downcast_iter()
        .collect())
}

fn money_arrays<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<Vec<&'a PrimitiveArray<i128>>> {
    let ca = df.column(name)?.as_materialized_series().decimal()?;
    polars_ensure!(
        ca.scale() == MONEY_SCALE as usize,
        ComputeError: "column {name}: money must have scale {MONEY_SCALE}"
    );
    Ok(ca.physical().downcast_iter().collect())
}

/// One text column's rows mapped to slots of an interner, by the row's
/// 16-byte string view first (the COPY decoder gives every row of a value
/// the same view), by the text itself the first time a view is seen.
pub(super) struct Slots<'a> {
    array: &'a Utf8ViewArray,
    by_view: PlHashMap<u128, u32>,
}

impl<'a> Slots<'a> {
    pub(super) fn new(array: &'a Utf8ViewArray) -> Self {
        Slots {
            array,
            by_view: PlHashMap::new(),
        }
    }

    /// Row `i`'s slot: `intern` gives a text's (None: a NULL row).
    #[inline]
    pub(super) fn slot(&mut self, i: usize, intern: impl FnOnce(Option<&'a str>) -> u32) -> u32 {
        if !self.array.is_valid(i) {
            return intern(None);
        }
        let view = self.array.views()[i].as_u128();
        if let Some(slot) = self.by_view.get(&view) {
            return *slot;
        }
        let slot = intern(Some(self.array.value(i)));
        self.by_view.insert(view, slot);
        slot
    }
}

/// The calls' figures of one chunk of days.
#[derive(Default)]
pub struct CallDays {
    day_index: PlHashMap<(u32, i32), usize>,
    days: Vec<((u32, i32), DayFigures)>,
    /// By the day group's index: a 12-byte key, however many distinct
    /// outcome texts a day holds (they are free text); the key's place in
    /// `outcome_figures`. The figures live in a vector sized from the
    /// chunk before (`reserve_like`): a hash table's power-of-two slack
    /// on 16 bytes an entry, not on 48.
    outcomes: PlHashMap<(u32, u32, u32), u32>,
    outcome_figures: Vec<OutcomeFigures>,
    found: Findings,
    calls: i64,
    sums: [i128; 4],
}

fn seconds_overflow() -> PolarsError {
    polars_err!(ComputeError:
        "column duration_seconds: the sum exceeds a 64-bit count of seconds; check the source rows of this column"
    )
}

fn cost_overflow(k: usize) -> PolarsError {
    money::overflow(COST_COLUMNS[k])
}

impl CallDays {
    /// A call of tenant day `day`, its tenant's rules `zone`.
    pub(super) fn add(
        &mut self,
        row: &CallRow,
        day: i32,
        zone: &TenantDays,
        labels: &Labels,
    ) -> PolarsResult<()> {
        let cost = row.cost;
        let missing = cost.iter().any(Option::is_none);
        let negative = cost.iter().any(|c| c.is_some_and(|c| c < 0));
        let mismatch = match cost {
            // Three amounts that overflow cannot equal a fourth that did not.
            [Some(stt), Some(llm), Some(tts), Some(total)] => stt
                .checked_add(llm)
                .and_then(|s| s.checked_add(tts))
                .is_none_or(|components| components != total),
            _ => false,
        };
        let seconds = row.seconds.unwrap_or(0);
        // A missing amount adds nothing (and is counted as missing).
        let amounts = cost.map(|c| c.unwrap_or(0));

        self.calls += 1;
        let at_day = self.day(row.tenant, day);
        self.days[at_day].1.absorb(&DayFigures {
            calls: 1,
            completed: i64::from(row.status == labels.completed),
            failed: i64::from(row.status == labels.failed),
            seconds,
            costs: amounts,
            missing: i64::from(missing),
            mismatch: i64::from(mismatch),
            errored: i64::from(row.errored),
        })?;
        add_costs(&mut self.sums, &amounts)?;
        let at = self.outcome((at_day as u32, row.status, row.outcome));
        self.outcome_figures[at as usize].absorb(&OutcomeFigures {
            calls: 1,
            seconds,
            total: amounts[TOTAL],
        })?;

        let flags = [!zone.zone_valid, !zone.known, negative, missing, mismatch];
        if flags.iter().any(|f| *f) {
            for (kind, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
                self.found.add(kind, row.tenant, day, row.call_id);
            }
        }
        Ok(())
    }

    /// Adds another state's figures of the same chunk, its slots mapped
    /// by `tenants` and `labels`.
    pub(super) fn merge(
        &mut self,
        other: CallDays,
        tenants: &[u32],
        labels: &[u32],
    ) -> PolarsResult<()> {
        let mut day_of = Vec::with_capacity(other.days.len());
        for ((tenant, day), theirs) in &other.days {
            let at_day = self.day(tenants[*tenant as usize], *day);
            day_of.push(at_day as u32);
            self.days[at_day].1.absorb(theirs)?;
        }
        for ((at_day, status, outcome), at) in other.outcomes {
            let mine = self.outcome((
                day_of[at_day as usize],
                labels[status as usize],
                labels[outcome as usize],
            ));
            self.outcome_figures[mine as usize].absorb(&other.outcome_figures[at as usize])?;
        }
        self.found.merge(other.found, tenants);
        self.calls += other.calls;
        add_costs(&mut self.sums, &other.sums)
    }

    /// The index of `tenant`'s `day` in `days`, made empty if new.
    fn day(&mut self, tenant: u32, day: i32) -> usize {
        let next = self.days.len();
        let at = *self.day_index.entry((tenant, day)).or_insert(next);
        if at == next {
            self.days.push(((tenant, day), DayFigures::default()));
        }
        at
    }

    /// The index of an outcome group in `outcome_figures`, made empty if new.
    fn outcome(&mut self, key: (u32, u32, u32)) -> u32 {
        let next = self.outcome_figures.len() as u32;
        let at = *self.outcomes.entry(key).or_insert(next);
        if at == next {
            self.outcome_figures.push(OutcomeFigures::default());
        }
        at
    }

    /// Bytes held (an estimate).
    pub(super) fn bytes(&self) -> usize {
        self.days.capacity() * 112
            + self.day_index.capacity() * 16
            + self.outcomes.capacity() * 17
            + self.outcome_figures.capacity() * 32
            + self.found.groups() * 96
    }

    pub(super) fn is_empty(&self) -> bool {
        self.calls == 0
    }

    /// Room for as many groups as `other` (the chunk before) holds.
    pub(super) fn reserve_like(&mut self, other: &CallDays) {
        let room = |n: usize| n + n / 8;
        self.days.reserve_exact(room(other.days.len()));
        self.outcome_figures
            .reserve_exact(room(other.outcome_figures.len()));
    }

    /// The chunk's tables.
    pub(super) fn into_groups(
        self,
        tenants: &Interner,
        labels: &Interner,
    ) -> PolarsResult<CallGroups> {
        let days = self.days;
        let money_column = |name: &str, values: Vec<i128>| -> Column {
            Int128Chunked::from_vec(name.into(), values)
                .into_decimal_unchecked(Some(MONEY_PRECISION), MONEY_SCALE as usize)
                .into_series()
                .into_column()
        };
        let counts = |name: &str, values: Vec<i64>| Column::new(name.into(), values);

        let mut by_day = vec![
            Column::new(
                "tenant_id".into(),
                days.iter()
                    .map(|((t, _), _)| tenants.text(*t))
                    .collect::<Vec<_>>(),
            ),
            day_column("day", days.iter().map(|((_, d), _)| *d).collect())?,
            counts("calls", days.iter().map(|(_, f)| f.calls).collect()),
            counts(
                "completed_calls",
                days.iter().map(|(_, f)| f.completed).collect(),
            ),
            counts("failed_calls", days.iter().map(|(_, f)| f.failed).collect()),
            counts(
                "billable_seconds",
                days.iter().map(|(_, f)| f.seconds).collect(),
            ),
        ];
        for (k, name) in COST_COLUMNS.iter().enumerate() {
            by_day.push(money_column(
                name,
                days.iter().map(|(_, f)| f.costs[k]).collect(),
            ));
        }
        by_day.extend([
            counts(
                "calls_missing_cost",
                days.iter().map(|(_, f)| f.missing).collect(),
            ),
            counts(
                "cost_mismatch_calls",
                days.iter().map(|(_, f)| f.mismatch).collect(),
            ),
            counts(
                "errored_calls",
                days.iter().map(|(_, f)| f.errored).collect(),
            ),
        ]);

        let figures = &self.outcome_figures;
        let mut outcome_rows: Vec<_> = self
            .outcomes
            .iter()
            .map(|((at_day, s, o), at)| {
                let (t, d) = days[*at_day as usize].0;
                ((t, d, *s, *o), &figures[*at as usize])
            })
            .collect();
        let mut outcome_columns =
            sorted_key_columns(&mut outcome_rows, tenants, labels, ["status", "outcome"])?;
        outcome_columns.extend([
            counts("calls", outcome_rows.iter().map(|(_, f)| f.calls).collect()),
            counts(
                "billable_seconds",
                outcome_rows.iter().map(|(_, f)| f.seconds).collect(),
            ),
            money_column(
                "total_cost_usd",
                outcome_rows.iter().map(|(_, f)| f.total).collect(),
            ),
        ]);
        let outcomes = DataFrame::new(outcome_columns)?;

        let findings = self.found.frame(&KINDS, tenants)?;

        let mut costs = [rust_decimal::Decimal::ZERO; 4];
        for (k, sum) in self.sums.iter().enumerate() {
            costs[k] = money::to_decimal(*sum, MONEY_SCALE, COST_COLUMNS[k])?;
        }
        Ok(CallGroups {
            by_day: DataFrame::new(by_day)?,
            outcomes,
            findings,
            calls: self.calls,
            costs,
        })
    }
}

/// Adds a calls frame's rows to `state` in one pass over its arrays.
pub fn walk(calls: &DataFrame, state: &mut Accumulator) -> PolarsResult<()> {
    let calls = aligned(calls);
    let calls = calls.as_ref();
    let ids = text_arrays(calls, "call_id")?;
    let tenant_ids = text_arrays(calls, "tenant_id")?;
    let (statuses, outcomes) = (
        text_arrays(calls, "status")?,
        text_arrays(calls, "outcome")?,
    );
    let costs: Vec<Vec<&PrimitiveArray<i128>>> = COST_COLUMNS
        .iter()
        .map(|c| money_arrays(calls, c))
        .collect::<PolarsResult<_>>()?;
    let created_at = instant_arrays(calls, "created_at")?;
    let duration: Vec<&PrimitiveArray<i64>> = calls
        .column("duration_seconds")?
        .as_materialized_series()
        .i64()?
        .downcast_iter()
        .collect();
    let errored = flag_arrays(calls, "errored")?;

    for batch in 0..created_at.len() {
        let (ids, created_at, duration, errored) = (
            ids[batch],
            created_at[batch],
            duration[batch],
            errored[batch],
        );
        let cost_arrays = [
            costs[0][batch],
            costs[1][batch],
            costs[2][batch],
            costs[3][batch],
        ];
        // Views are only comparable within one array: slots are found per batch.
        let mut tenant_slots = Slots::new(tenant_ids[batch]);
        let mut status_slots = Slots::new(statuses[batch]);
        let mut outcome_slots = Slots::new(outcomes[batch]);
        for i in 0..created_at.len() {
            // A NULL instant has no day, so it is in no window.
            if !created_at.is_valid(i) {
                continue;
            }
            let tenant = tenant_slots.slot(i, |id| state.tenant(id));
            let status = status_slots.slot(i, |t| state.label(t));
            let outcome = outcome_slots.slot(i, |t| state.label(t));
            let mut cost = [None; 4];
            for (k, array) in cost_arrays.iter().enumerate() {
                if array.is_valid(i) {
                    cost[k] = Some(array.value(i));
                }
            }
            state.add_call(&CallRow {
                tenant,
                at: created_at.value(i),
                status,
                outcome,
                cost,
                seconds: duration.is_valid(i).then(|| duration.value(i)),
                errored: errored.is_valid(i) && errored.value(i),
                call_id: ids.get(i),
            })?;
        }
    }
    Ok(())
}
