//! The errors' share of the rollup in one pass over the frame's arrays,
//! as `calls.rs` does for the calls: each error's tenant day, the
//! `tenant_daily_errors` groups, the per tenant-day error counts that
//! `tenant_daily` joins, and the errors' findings. The Polars plan it
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

use super::calls::{
    aligned, day_column, flag_arrays, instant_arrays, sorted_key_columns, text_arrays, Findings,
    Interner, LabelledKey, Placement, Slots, TenantDays,
};
use super::PLATFORM_TENANT;
use crate::frames::utc_micros;

/// Error findings, in the order `group` checks them.
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
    calls_affected: i64,
    first_seen: i64,
    last_seen: i64,
}

#[derive(Default)]
struct DayFigures {
    errors: i64,
    critical: i64,
}

/// Groups the errors of tenant days `from..=to` (days since 1970-01-01).
/// An error without a tenant is the platform's; `tenants` finds a tenant
/// by its id, and `unknown` places the errors of tenants missing from it.
pub fn group<'t>(
    errors: &DataFrame,
    tenants: impl Fn(&str) -> Option<&'t TenantDays>,
    unknown: &'t TenantDays,
    from: i32,
    to: i32,
) -> PolarsResult<ErrorGroups> {
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

    let mut placement = Placement::new(tenants, unknown);
    let mut labels = Interner::default();
    let critical = labels.slot_of(Some("CRITICAL"));

    let mut group_index: PlHashMap<LabelledKey, usize> = PlHashMap::new();
    let mut groups: Vec<(LabelledKey, GroupFigures)> = Vec::new();
    // (group, call_id): a call counts once per group however many of the
    // group's errors carry it.
    let mut affected: PlHashSet<(usize, &str)> = PlHashSet::new();
    let mut day_index: PlHashMap<(u32, i32), DayFigures> = PlHashMap::new();
    let mut found = Findings::default();
    let mut in_window = 0i64;

    for batch in 0..created_at.len() {
        let (call_ids, resolved, created_at) =
            (call_ids[batch], resolved[batch], created_at[batch]);
        // Views are only comparable within one array: slots are found per batch.
        let mut tenant_slots = Slots::new(
            tenant_ids[batch],
            &mut placement.tenants,
            Some(PLATFORM_TENANT),
        );
        let mut type_slots = Slots::new(types[batch], &mut labels, Some("unknown"));
        let mut severity_slots = Slots::new(severities[batch], &mut labels, Some("unknown"));
        for i in 0..created_at.len() {
            // A NULL instant has no day, so it is in no window.
            if !created_at.is_valid(i) {
                continue;
            }
            let at = created_at.value(i);
            let (tenant, zone, day) = placement.place(&mut tenant_slots, i, at);
            if day < from || day > to {
                continue;
            }
            let error_type = type_slots.slot(i, &mut labels);
            let severity = severity_slots.slot(i, &mut labels);
            in_window += 1;

            let key = (tenant, day, error_type, severity);
            let next = groups.len();
            let at_group = *group_index.entry(key).or_insert(next);
            if at_group == next {
                groups.push((
                    key,
                    GroupFigures {
                        errors: 0,
                        unresolved: 0,
                        calls_affected: 0,
                        first_seen: at,
                        last_seen: at,
                    },
                ));
            }
            let figures = &mut groups[at_group].1;
            figures.errors += 1;
            // NULL is neither resolved nor unresolved.
            figures.unresolved += i64::from(resolved.is_valid(i) && !resolved.value(i));
            figures.first_seen = figures.first_seen.min(at);
            figures.last_seen = figures.last_seen.max(at);
            let call_id = call_ids.get(i);
            if let Some(id) = call_id {
                figures.calls_affected += i64::from(affected.insert((at_group, id)));
            }

            let by_day = day_index.entry((tenant, day)).or_default();
            by_day.errors += 1;
            by_day.critical += i64::from(severity == critical);

            let flags = [!zone.zone_valid, !zone.known];
            for (kind, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
                found.add(kind, tenant, day, call_id);
            }
        }
    }
    let tenant_texts = &placement.tenants;
    let tenant_text = |slot: u32| tenant_texts.texts[slot as usize];
    let counts = |name: &str, values: Vec<i64>| Column::new(name.into(), values);
    let instants = |name: &str, values: Vec<i64>| -> PolarsResult<Column> {
        Int64Chunked::from_vec(name.into(), values)
            .into_series()
            .cast(&utc_micros())
            .map(Column::from)
    };

    let mut group_columns = sorted_key_columns(
        &mut groups,
        tenant_texts,
        &labels,
        ["error_type", "severity"],
    )?;
    group_columns.extend([
        counts("errors", groups.iter().map(|(_, f)| f.errors).collect()),
        counts(
            "unresolved_errors",
            groups.iter().map(|(_, f)| f.unresolved).collect(),
        ),
        counts(
            "calls_affected",
            groups.iter().map(|(_, f)| f.calls_affected).collect(),
        ),
        instants(
            "first_seen_at",
            groups.iter().map(|(_, f)| f.first_seen).collect(),
        )?,
        instants(
            "last_seen_at",
            groups.iter().map(|(_, f)| f.last_seen).collect(),
        )?,
    ]);
    let groups = DataFrame::new(group_columns)?;

    let days: Vec<_> = day_index.into_iter().collect();
    let by_day = DataFrame::new(vec![
        Column::new(
            "tenant_id".into(),
            days.iter()
                .map(|((t, _), _)| tenant_text(*t))
                .collect::<Vec<_>>(),
        ),
        day_column("day", days.iter().map(|((_, d), _)| *d).collect())?,
        counts("errors", days.iter().map(|(_, f)| f.errors).collect()),
        counts(
            "critical_errors",
            days.iter().map(|(_, f)| f.critical).collect(),
        ),
    ])?;

    let findings = found.frame(&KINDS, tenant_text)?;

    Ok(ErrorGroups {
        groups,
        by_day,
        findings,
        errors: in_window,
    })
}
