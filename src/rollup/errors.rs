//! The errors' share of the rollup, as `calls.rs` is the calls': the
//! `tenant_daily_errors` groups, the per tenant-day error counts that
//! `tenant_daily` joins, and the errors' findings, added one error at a
//! time (`ErrorDays`), and the walk of an errors frame's arrays into them. The Polars plan it
//! replaces (a join on the tenant's text id for its zone, the day as a
//! when/then chain, a group-by on four text keys with a distinct count of
//! call ids, a second group-by for `tenant_daily`, a filter per finding
//! kind) was a fifth of a run's CPU though errors are a tenth of its rows
//! (issue 25).
//!
//! Every definition is docs/CONTRACT.md §2's; `reference.rs` checks the
//! whole rollup against plain loops with chrono-tz.

use polars::prelude::*;
use polars_arrow::array::Array;

use super::accumulate::{
    day_column, fingerprint, sorted_key_columns, Accumulator, ErrorRow, Findings, Interner,
    LabelledKey, Labels,
};
use super::calls::{aligned, flag_arrays, instant_arrays, text_arrays, Slots, TenantDays};
use super::PLATFORM_TENANT;
use crate::frames::utc_micros;

/// Error findings, in the order `ErrorDays::add` checks them.
const KINDS: [&str; 2] = ["invalid_timezone", "unknown_tenant"];

/// The errors' tables of a window.
pub struct ErrorGroups {
    /// `tenant_daily_errors`, sorted by its key (as Polars sorts).
    pub groups: DataFrame,
    /// tenant_id, day, errors, critical_errors: what `tenant_daily` joins.
    pub by_day: DataFrame,
    /// kind, tenant_id, day, rows, example_id (the smallest call_id).
    pub findings: DataFrame,
    /// The window's errors.
    pub errors: i64,
}

struct GroupFigures {
    errors: i64,
    unresolved: i64,
    first_seen: i64,
    last_seen: i64,
}

#[derive(Default)]
struct DayFigures {
    errors: i64,
    critical: i64,
}

/// The errors' figures of one chunk of days.
#[derive(Default)]
pub struct ErrorDays {
    group_index: PlHashMap<LabelledKey, u32>,
    groups: Vec<(LabelledKey, GroupFigures)>,
    /// (group, call_id's fingerprint): a call counts once per group
    /// however many of the group's errors carry it, and whichever stream
    /// read them.
    /// The fingerprint in two halves: 24 bytes an entry, not 32.
    affected: PlHashSet<(u32, u64, u64)>,
    days: PlHashMap<(u32, i32), DayFigures>,
    found: Findings,
    errors: i64,
}

impl ErrorDays {
    /// An error of tenant day `day`, its tenant's rules `zone`.
    pub(super) fn add(&mut self, row: &ErrorRow, day: i32, zone: &TenantDays, labels: &Labels) {
        self.errors += 1;
        let key = (row.tenant, day, row.error_type, row.severity);
        let at = row.at;
        let group = self.group(key, at, at);
        let figures = &mut self.groups[group as usize].1;
        figures.errors += 1;
        // NULL is neither resolved nor unresolved.
        figures.unresolved += i64::from(row.resolved == Some(false));
        figures.first_seen = figures.first_seen.min(at);
        figures.last_seen = figures.last_seen.max(at);
        if let Some((call, _)) = row.call {
            self.affected
                .insert((group, (call >> 64) as u64, call as u64));
        }

        let by_day = self.days.entry((row.tenant, day)).or_default();
        by_day.errors += 1;
        by_day.critical += i64::from(row.severity == labels.critical);

        let flags = [!zone.zone_valid, !zone.known];
        for (kind, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
            self.found
                .add(kind, row.tenant, day, row.call.map(|(_, id)| id));
        }
    }

    /// The index of group `key`, made with its first and last seen.
    fn group(&mut self, key: LabelledKey, first_seen: i64, last_seen: i64) -> u32 {
        let next = self.groups.len() as u32;
        let at = *self.group_index.entry(key).or_insert(next);
        if at == next {
            self.groups.push((
                key,
                GroupFigures {
                    errors: 0,
                    unresolved: 0,
                    first_seen,
                    last_seen,
                },
            ));
        }
        at
    }

    /// Adds another state's figures of the same chunk, its slots mapped
    /// by `tenants` and `labels`.
    pub(super) fn merge(&mut self, other: ErrorDays, tenants: &[u32], labels: &[u32]) {
        let mut group_of = Vec::with_capacity(other.groups.len());
        for ((tenant, day, error_type, severity), theirs) in other.groups {
            let key = (
                tenants[tenant as usize],
                day,
                labels[error_type as usize],
                labels[severity as usize],
            );
            let group = self.group(key, theirs.first_seen, theirs.last_seen);
            group_of.push(group);
            let mine = &mut self.groups[group as usize].1;
            mine.errors += theirs.errors;
            mine.unresolved += theirs.unresolved;
            mine.first_seen = mine.first_seen.min(theirs.first_seen);
            mine.last_seen = mine.last_seen.max(theirs.last_seen);
        }
        for (group, high, low) in other.affected {
            self.affected.insert((group_of[group as usize], high, low));
        }
        for ((tenant, day), theirs) in other.days {
            let mine = self
                .days
                .entry((tenants[tenant as usize], day))
                .or_default();
            mine.errors += theirs.errors;
            mine.critical += theirs.critical;
        }
        self.found.merge(other.found, tenants);
        self.errors += other.errors;
    }

    /// Bytes held (an estimate).
    pub(super) fn bytes(&self) -> usize {
        self.groups.capacity() * 48
            + self.group_index.capacity() * 20
            + self.affected.capacity() * 25
            + self.days.capacity() * 25
            + self.found.groups() * 96
    }

    pub(super) fn is_empty(&self) -> bool {
        self.errors == 0
    }

    /// Room for as many groups as `other` (the chunk before) holds.
    pub(super) fn reserve_like(&mut self, other: &ErrorDays) {
        self.groups
            .reserve_exact(other.groups.len() + other.groups.len() / 8);
    }

    /// The chunk's tables.
    pub(super) fn into_groups(
        self,
        tenants: &Interner,
        labels: &Interner,
    ) -> PolarsResult<ErrorGroups> {
        let mut calls_affected = vec![0i64; self.groups.len()];
        for (group, ..) in &self.affected {
            calls_affected[*group as usize] += 1;
        }
        let mut groups: Vec<(LabelledKey, (GroupFigures, i64))> = self
            .groups
            .into_iter()
            .zip(calls_affected)
            .map(|((key, figures), affected)| (key, (figures, affected)))
            .collect();
        let counts = |name: &str, values: Vec<i64>| Column::new(name.into(), values);
        let instants = |name: &str, values: Vec<i64>| -> PolarsResult<Column> {
            Int64Chunked::from_vec(name.into(), values)
                .into_series()
                .cast(&utc_micros())
                .map(Column::from)
        };

        let mut group_columns =
            sorted_key_columns(&mut groups, tenants, labels, ["error_type", "severity"])?;
        group_columns.extend([
            counts(
                "errors",
                groups.iter().map(|(_, (f, _))| f.errors).collect(),
            ),
            counts(
                "unresolved_errors",
                groups.iter().map(|(_, (f, _))| f.unresolved).collect(),
            ),
            counts(
                "calls_affected",
                groups.iter().map(|(_, (_, affected))| *affected).collect(),
            ),
            instants(
                "first_seen_at",
                groups.iter().map(|(_, (f, _))| f.first_seen).collect(),
            )?,
            instants(
                "last_seen_at",
                groups.iter().map(|(_, (f, _))| f.last_seen).collect(),
            )?,
        ]);
        let groups = DataFrame::new(group_columns)?;

        let days: Vec<_> = self.days.into_iter().collect();
        let by_day = DataFrame::new(vec![
            Column::new(
                "tenant_id".into(),
                days.iter()
                    .map(|((t, _), _)| tenants.text(*t))
                    .collect::<Vec<_>>(),
            ),
            day_column("day", days.iter().map(|((_, d), _)| *d).collect())?,
            counts("errors", days.iter().map(|(_, f)| f.errors).collect()),
            counts(
                "critical_errors",
                days.iter().map(|(_, f)| f.critical).collect(),
            ),
        ])?;

        let findings = self.found.frame(&KINDS, tenants)?;

        Ok(ErrorGroups {
            groups,
            by_day,
            findings,
            errors: self.errors,
        })
    }
}

/// Adds an errors frame's rows to `state` in one pass over its arrays. An
/// error without a tenant is the platform's.
pub fn walk(errors: &DataFrame, state: &mut Accumulator) -> PolarsResult<()> {
    let errors = aligned(errors);
    let errors = errors.as_ref();
    let (tenant_ids, call_ids) = (
        text_arrays(errors, "tenant_id")?,
        text_arrays(errors, "call_id")?,
    );
    let (types, severities) = (
        text_arrays(errors, "error_type")?,
        text_arrays(errors, "severity")?,
    );
    let resolved = flag_arrays(errors, "resolved")?;
    let created_at = instant_arrays(errors, "created_at")?;

    for batch in 0..created_at.len() {
        let (call_ids, resolved, created_at) =
            (call_ids[batch], resolved[batch], created_at[batch]);
        // Views are only comparable within one array: slots are found per batch.
        let mut tenant_slots = Slots::new(tenant_ids[batch]);
        let mut type_slots = Slots::new(types[batch]);
        let mut severity_slots = Slots::new(severities[batch]);
        for i in 0..created_at.len() {
            // A NULL instant has no day, so it is in no window.
            if !created_at.is_valid(i) {
                continue;
            }
            let tenant =
                tenant_slots.slot(i, |id| state.tenant(Some(id.unwrap_or(PLATFORM_TENANT))));
            let error_type = type_slots.slot(i, |t| state.label(t));
            let severity = severity_slots.slot(i, |t| state.label(t));
            state.add_error(&ErrorRow {
                tenant,
                at: created_at.value(i),
                error_type,
                severity,
                resolved: resolved.is_valid(i).then(|| resolved.value(i)),
                call: call_ids.get(i).map(|id| (fingerprint(id.as_bytes()), id)),
            })?;
        }
    }
    Ok(())
}
