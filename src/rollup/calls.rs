//! The calls' share of the rollup in one pass over the frame's arrays:
//! each call's tenant day, the per tenant-day and per outcome figures,
//! the call findings and the window's call totals, with no intermediate
//! frame. Calls are nine rows in ten of a run, and doing this with Polars
//! expressions (a join on the tenant's text id, the day arithmetic, two
//! group-bys on text keys, a filter per finding kind) was most of the
//! engine's CPU (issue 25). Text keys are interned to small integers as
//! they are met: by the row's 16-byte string view first (the COPY decoder
//! gives every row of a value the same view), by the text itself the
//! first time a view is seen, so two views of one text share a slot.
//!
//! Every definition is docs/CONTRACT.md §2's; `reference.rs` checks the
//! whole rollup against plain loops with chrono-tz and rust_decimal.

use polars::prelude::*;
use polars_arrow::array::{Array, BooleanArray, PrimitiveArray, Utf8ViewArray};

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

struct Finding<'a> {
    rows: i64,
    example: Option<&'a str>,
}

/// Rows flagged per (finding kind, tenant slot, day), each with the
/// smallest call_id among them as an example to look at.
#[derive(Default)]
pub(super) struct Findings<'a>(PlHashMap<(usize, u32, i32), Finding<'a>>);

impl<'a> Findings<'a> {
    /// A row of `tenant`'s `day` flagged with kind `kind` (an index).
    pub(super) fn add(&mut self, kind: usize, tenant: u32, day: i32, id: Option<&'a str>) {
        let finding = self.0.entry((kind, tenant, day)).or_insert(Finding {
            rows: 0,
            example: None,
        });
        finding.rows += 1;
        if let Some(id) = id {
            if finding.example.is_none_or(|e| id < e) {
                finding.example = Some(id);
            }
        }
    }

    /// kind (named by `kinds`), tenant_id, day, rows, example_id.
    pub(super) fn frame<'s>(
        self,
        kinds: &[&str],
        tenant_text: impl Fn(u32) -> Option<&'s str>,
    ) -> PolarsResult<DataFrame> {
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
                    .map(|((_, t, _), _)| tenant_text(*t))
                    .collect::<Vec<_>>(),
            ),
            day_column("day", found.iter().map(|((.., d), _)| *d).collect())?,
            Column::new(
                "rows".into(),
                found.iter().map(|(_, f)| f.rows).collect::<Vec<_>>(),
            ),
            Column::new(
                "example_id".into(),
                found.iter().map(|(_, f)| f.example).collect::<Vec<_>>(),
            ),
        ])
    }
}

/// Where rows go: each tenant text's slot (`tenants`) and its day rules,
/// looked up once per slot; tenants missing from the lookup count on
/// `unknown`'s days.
pub(super) struct Placement<'a, 't, F> {
    pub(super) tenants: Interner<'a>,
    rules: Vec<Option<&'t TenantDays>>,
    find: F,
    unknown: &'t TenantDays,
}

impl<'a, 't, F: Fn(&str) -> Option<&'t TenantDays>> Placement<'a, 't, F> {
    pub(super) fn new(find: F, unknown: &'t TenantDays) -> Self {
        Placement {
            tenants: Interner::default(),
            rules: Vec::new(),
            find,
            unknown,
        }
    }

    /// Row `i` of `slots`' tenant column at instant `at` (Unix µs): its
    /// tenant's slot, that tenant's day rules and the row's tenant day.
    #[inline]
    pub(super) fn place(
        &mut self,
        slots: &mut Slots<'a>,
        i: usize,
        at: i64,
    ) -> (u32, &'t TenantDays, i32) {
        let tenant = slots.slot(i, &mut self.tenants) as usize;
        while self.rules.len() <= tenant {
            let id = self.tenants.texts[self.rules.len()];
            self.rules.push(id.and_then(&self.find));
        }
        let zone = self.rules[tenant].unwrap_or(self.unknown);
        (tenant as u32, zone, zone.day(at))
    }
}

/// Distinct texts of some columns, each with a slot.
#[derive(Default)]
pub(super) struct Interner<'a> {
    by_text: PlHashMap<Option<&'a str>, u32>,
    pub(super) texts: Vec<Option<&'a str>>,
}

impl<'a> Interner<'a> {
    pub(super) fn slot_of(&mut self, text: Option<&'a str>) -> u32 {
        let next = self.texts.len() as u32;
        *self.by_text.entry(text).or_insert_with(|| {
            self.texts.push(text);
            next
        })
    }
}

impl Interner<'_> {
    /// Each slot's place in the texts' order (NULL first, then by bytes).
    pub(super) fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.texts.len() as u32).collect();
        order.sort_unstable_by_key(|slot| self.texts[*slot as usize]);
        let mut rank = vec![0; order.len()];
        for (place, slot) in order.iter().enumerate() {
            rank[*slot as usize] = place as u32;
        }
        rank
    }
}

/// One text column's rows mapped to slots of an `Interner`.
pub(super) struct Slots<'a> {
    array: &'a Utf8ViewArray,
    by_view: PlHashMap<u128, u32>,
    /// The slot of a NULL row.
    null: u32,
}

impl<'a> Slots<'a> {
    pub(super) fn new(
        array: &'a Utf8ViewArray,
        interner: &mut Interner<'a>,
        null_as: Option<&'a str>,
    ) -> Self {
        Slots {
            array,
            by_view: PlHashMap::new(),
            null: interner.slot_of(null_as),
        }
    }

    #[inline]
    pub(super) fn slot(&mut self, i: usize, interner: &mut Interner<'a>) -> u32 {
        if !self.array.is_valid(i) {
            return self.null;
        }
        let view = self.array.views()[i].as_u128();
        if let Some(slot) = self.by_view.get(&view) {
            return *slot;
        }
        let slot = interner.slot_of(Some(self.array.value(i)));
        self.by_view.insert(view, slot);
        slot
    }
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
/// out of a pass: sorted by the key as Polars sorts text (bytes, NULL
/// first) through each text's rank, a sort of integers rather than of
/// strings; returns the key columns, tenant_id, day and the two labels
/// named, in that order.
pub(super) fn sorted_key_columns<'a, T>(
    rows: &mut [(LabelledKey, T)],
    tenants: &Interner<'a>,
    labels: &Interner<'a>,
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
    let text =
        |interner: &Interner<'a>, slot: u32| -> Option<&'a str> { interner.texts[slot as usize] };
    Ok(vec![
        Column::new(
            "tenant_id".into(),
            rows.iter()
                .map(|((t, ..), _)| text(tenants, *t))
                .collect::<Vec<_>>(),
        ),
        day_column("day", rows.iter().map(|((_, d, ..), _)| *d).collect())?,
        Column::new(
            label_names[0].into(),
            rows.iter()
                .map(|((_, _, a, _), _)| text(labels, *a))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            label_names[1].into(),
            rows.iter()
                .map(|((.., b), _)| text(labels, *b))
                .collect::<Vec<_>>(),
        ),
    ])
}

fn money_arrays<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<Vec<&'a PrimitiveArray<i128>>> {
    let ca = df.column(name)?.as_materialized_series().decimal()?;
    polars_ensure!(
        ca.scale() == MONEY_SCALE as usize,
        ComputeError: "column {name}: money must have scale {MONEY_SCALE}"
    );
    Ok(ca.physical().downcast_iter().collect())
}

/// Groups the calls of tenant days `from..=to` (days since 1970-01-01).
/// `tenants` finds a call's tenant by its id; `unknown` places the calls
/// of tenants missing from it (UTC days).
pub fn group<'t>(
    calls: &DataFrame,
    tenants: impl Fn(&str) -> Option<&'t TenantDays>,
    unknown: &'t TenantDays,
    from: i32,
    to: i32,
) -> PolarsResult<CallGroups> {
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

    let mut placement = Placement::new(tenants, unknown);
    let mut labels = Interner::default();
    let completed = labels.slot_of(Some("completed"));
    let failed = labels.slot_of(Some("failed"));

    let mut day_index: PlHashMap<(u32, i32), usize> = PlHashMap::new();
    let mut days: Vec<((u32, i32), DayFigures)> = Vec::new();
    let mut outcome_index: PlHashMap<(u32, u32, u32), OutcomeFigures> = PlHashMap::new();
    let mut found = Findings::default();
    let mut calls_in_window = 0i64;
    let mut sums = [0i128; 4];
    let overflow = |k: usize| money::overflow(COST_COLUMNS[k]);
    let seconds_overflow = || {
        polars_err!(ComputeError:
            "column duration_seconds: the sum exceeds a 64-bit count of seconds; check the source rows of this column"
        )
    };

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
        let mut tenant_slots = Slots::new(tenant_ids[batch], &mut placement.tenants, None);
        let mut status_slots = Slots::new(statuses[batch], &mut labels, Some("unknown"));
        let mut outcome_slots = Slots::new(outcomes[batch], &mut labels, Some("unknown"));
        for i in 0..created_at.len() {
            // A NULL instant has no day, so it is in no window.
            if !created_at.is_valid(i) {
                continue;
            }
            let (tenant, zone, day) = placement.place(&mut tenant_slots, i, created_at.value(i));
            if day < from || day > to {
                continue;
            }
            let status = status_slots.slot(i, &mut labels);
            let outcome = outcome_slots.slot(i, &mut labels);
            let mut cost = [None; 4];
            for (k, array) in cost_arrays.iter().enumerate() {
                if array.is_valid(i) {
                    cost[k] = Some(array.value(i));
                }
            }
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
            let seconds = if duration.is_valid(i) {
                duration.value(i)
            } else {
                0
            };
            let is_errored = errored.is_valid(i) && errored.value(i);

            calls_in_window += 1;
            let next = days.len();
            let at_day = *day_index.entry((tenant, day)).or_insert(next);
            if at_day == next {
                days.push(((tenant, day), DayFigures::default()));
            }
            let figures = &mut days[at_day].1;
            figures.calls += 1;
            figures.completed += i64::from(status == completed);
            figures.failed += i64::from(status == failed);
            figures.seconds = figures
                .seconds
                .checked_add(seconds)
                .ok_or_else(seconds_overflow)?;
            for (k, c) in cost.iter().enumerate() {
                if let Some(c) = c {
                    sums[k] = sums[k].checked_add(*c).ok_or_else(|| overflow(k))?;
                    figures.costs[k] = figures.costs[k]
                        .checked_add(*c)
                        .ok_or_else(|| overflow(k))?;
                }
            }
            figures.missing += i64::from(missing);
            figures.mismatch += i64::from(mismatch);
            figures.errored += i64::from(is_errored);

            // By the day group's index: a 12-byte key, however many distinct
            // outcome texts a day holds (they are free text).
            let by_outcome = outcome_index
                .entry((at_day as u32, status, outcome))
                .or_default();
            by_outcome.calls += 1;
            by_outcome.seconds = by_outcome
                .seconds
                .checked_add(seconds)
                .ok_or_else(seconds_overflow)?;
            if let Some(total) = cost[TOTAL] {
                by_outcome.total = by_outcome
                    .total
                    .checked_add(total)
                    .ok_or_else(|| overflow(TOTAL))?;
            }

            let flags = [!zone.zone_valid, !zone.known, negative, missing, mismatch];
            if flags.iter().any(|f| *f) {
                let id = ids.get(i);
                for (kind, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
                    found.add(kind, tenant, day, id);
                }
            }
        }
    }
    let tenant_texts = &placement.tenants;
    let tenant_text = |slot: u32| tenant_texts.texts[slot as usize];
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
                .map(|((t, _), _)| tenant_text(*t))
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

    let mut outcome_rows: Vec<_> = outcome_index
        .iter()
        .map(|((at_day, s, o), f)| {
            let (t, d) = days[*at_day as usize].0;
            ((t, d, *s, *o), f)
        })
        .collect();
    let mut outcome_columns = sorted_key_columns(
        &mut outcome_rows,
        tenant_texts,
        &labels,
        ["status", "outcome"],
    )?;
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

    let findings = found.frame(&KINDS, tenant_text)?;

    let mut costs = [rust_decimal::Decimal::ZERO; 4];
    for (k, sum) in sums.iter().enumerate() {
        costs[k] = money::to_decimal(*sum, MONEY_SCALE, COST_COLUMNS[k])?;
    }
    Ok(CallGroups {
        by_day: DataFrame::new(by_day)?,
        outcomes,
        findings,
        calls: calls_in_window,
        costs,
    })
}
