//! Tenant-local days. A call's day is the date of its `created_at` in its
//! tenant's IANA zone; a NULL, empty or unknown zone falls back to UTC.

use polars::prelude::*;

/// The canonical IANA name for `name`, matched case-insensitively as
/// PostgreSQL's `AT TIME ZONE` does, or None when it is not a zone.
pub fn canonical_zone(name: &str) -> Option<&'static str> {
    // Built once: every chunk looks up every tenant's zone.
    static BY_LOWER_CASE: std::sync::OnceLock<PlHashMap<String, &'static str>> =
        std::sync::OnceLock::new();
    let zones = BY_LOWER_CASE.get_or_init(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| (tz.name().to_ascii_lowercase(), tz.name()))
            .collect()
    });
    zones.get(&name.to_ascii_lowercase()).copied()
}

/// Zone names that are also PostgreSQL time-zone abbreviations (its
/// default `timezone_abbreviations` set), with the fixed offset Postgres
/// gives them: `AT TIME ZONE` reads an abbreviation before a zone name, so
/// `'CET'` is always UTC+1 there, never Central European summer time as
/// tzdata's CET zone is. The contract defines a tenant day by Postgres'
/// `AT TIME ZONE`, so the engine does the same (found by the day-boundary
/// check: CET, EET, MET and WET disagreed on every DST change). EST, MST
/// and HST are fixed in tzdata too; GMT, UCT, UTC and Zulu are UTC.
const POSTGRES_ABBREVIATIONS: [(&str, chrono_tz::Tz); 7] = [
    ("CET", chrono_tz::Etc::GMTMinus1),
    ("EET", chrono_tz::Etc::GMTMinus2),
    ("MET", chrono_tz::Etc::GMTMinus1),
    ("WET", chrono_tz::Etc::UTC),
    ("EST", chrono_tz::Etc::GMTPlus5),
    ("MST", chrono_tz::Etc::GMTPlus7),
    ("HST", chrono_tz::Etc::GMTPlus10),
];

/// The rules the engine applies for a canonical zone name: tzdata's, or a
/// Postgres abbreviation's fixed offset.
pub fn rules_of(zone: &str) -> chrono_tz::Tz {
    POSTGRES_ABBREVIATIONS
        .iter()
        .find(|(name, _)| *name == zone)
        .map(|(_, tz)| *tz)
        .unwrap_or_else(|| zone.parse().unwrap_or(chrono_tz::UTC))
}

const MICROS_PER_SECOND: i64 = 1_000_000;

/// UTC offset of `tz` at Unix second `secs`, in seconds.
pub fn offset_at(tz: chrono_tz::Tz, secs: i64) -> i64 {
    use chrono::{Offset, TimeZone};
    let at = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&at).fix().local_minus_utc())
}

/// A zone's offset at a span's start and each change inside it as (the
/// instant it takes effect, the new offset), all in µs.
pub type ZoneOffsets = (i64, Vec<(i64, i64)>);

/// The offsets of `zone` over the UTC span `[from, to]` (Unix µs): the
/// offset at `from`, then each change inside the span as (the instant it
/// takes effect, the new offset), all in µs. Found by probing every hour
/// and bisecting to the second: zones change offset at whole minutes and
/// never twice within an hour.
pub fn offset_changes(zone: &str, from: i64, to: i64) -> ZoneOffsets {
    let tz = rules_of(zone);
    let start = from.div_euclid(MICROS_PER_SECOND);
    let end = to.div_euclid(MICROS_PER_SECOND) + 1;
    let first = offset_at(tz, start);
    let mut changes = Vec::new();
    let (mut probe, mut offset) = (start, first);
    while probe < end {
        let next = (probe + 3600).min(end);
        let next_offset = offset_at(tz, next);
        if next_offset != offset {
            // The first second in (probe, next] with the new offset.
            let (mut lo, mut hi) = (probe, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push((hi * MICROS_PER_SECOND, next_offset * MICROS_PER_SECOND));
        }
        probe = next;
        offset = next_offset;
    }
    (first * MICROS_PER_SECOND, changes)
}

/// One row per zone: `zone`, `offset_0` (µs at the span's start) and, for
/// each change j = 1..=k, `change_j` (the instant) and `offset_j`; null
/// where a zone has fewer changes, from each zone's `offset_changes`.
/// Returns the table and k.
pub fn offset_table(zones: &[(&str, ZoneOffsets)]) -> PolarsResult<(DataFrame, usize)> {
    let found: Vec<&ZoneOffsets> = zones.iter().map(|(_, offsets)| offsets).collect();
    let k = found.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let mut columns = vec![
        Column::new(
            "zone".into(),
            zones.iter().map(|(zone, _)| *zone).collect::<Vec<_>>(),
        ),
        Column::new(
            "offset_0".into(),
            found.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        ),
    ];
    for j in 0..k {
        let at: Vec<Option<i64>> = found.iter().map(|(_, c)| c.get(j).map(|x| x.0)).collect();
        let offset: Vec<Option<i64>> = found.iter().map(|(_, c)| c.get(j).map(|x| x.1)).collect();
        columns.push(Column::new(format!("change_{}", j + 1).into(), at));
        columns.push(Column::new(format!("offset_{}", j + 1).into(), offset));
    }
    Ok((DataFrame::new(columns)?, k))
}

/// The local date of UTC timestamp column `ts`, given the offset columns
/// of `offset_table` (k changes) joined onto each row: the offset in force
/// at the row's instant, added, floored to whole days. Plain arithmetic
/// on every row, no per-row time-zone lookup and no copy per zone.
pub fn local_day(ts: &str, k: usize) -> Expr {
    let at = col(ts).cast(DataType::Int64);
    let mut offset = col("offset_0");
    for j in 1..=k {
        let change = col(format!("change_{j}"));
        offset = when(change.clone().is_not_null().and(at.clone().gt_eq(change)))
            .then(col(format!("offset_{j}")))
            .otherwise(offset);
    }
    // Local wall-clock time as a zone-less datetime; its date is the day.
    (at + offset)
        .cast(DataType::Datetime(TimeUnit::Microseconds, None))
        .dt()
        .date()
        .alias("day")
}

/// The day `local_day` gives instant `at` (Unix µs), from a zone's offset
/// at the span's start and its changes (`offset_changes`): the same
/// arithmetic, one instant at a time.
pub fn day_of(first: i64, changes: &[(i64, i64)], at: i64) -> chrono::NaiveDate {
    let days = i64::from(day_number(first, changes, at));
    chrono::DateTime::from_timestamp(days * 86_400, 0)
        .unwrap_or_default()
        .date_naive()
}

/// `day_of` as days since 1970-01-01 (a Polars `Date`).
#[inline]
pub fn day_number(first: i64, changes: &[(i64, i64)], at: i64) -> i32 {
    let offset = changes
        .iter()
        .rev()
        .find(|(change, _)| at >= *change)
        .map_or(first, |(_, offset)| *offset);
    // Saturating: ±infinity arrive as the ends of i64 (pgcopy) and land on
    // days far outside any window instead of overflowing.
    at.saturating_add(offset)
        .div_euclid(86_400 * MICROS_PER_SECOND) as i32
}

/// An instant and the day the engine puts it on in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayProbe {
    pub zone: &'static str,
    /// Unix µs.
    pub at: i64,
    pub day: chrono::NaiveDate,
}

/// Where the engine puts the day boundaries of `zone` over the UTC span
/// `[from, to)` (Unix µs): for every day that starts in the span, its
/// first microsecond and the one before, and the same around every offset
/// change. Checking these against the database proves both put every row
/// of the span on the same day.
pub fn day_probes(zone: &'static str, from: i64, to: i64) -> Vec<DayProbe> {
    let (first, changes) = offset_changes(zone, from, to);
    let day = |at: i64| day_of(first, &changes, at);
    let mut instants: Vec<i64> = changes.iter().map(|(at, _)| *at).collect();
    let (first_day, last_day) = (day(from), day(to - 1));
    for d in first_day.iter_days().skip(1).take_while(|d| *d <= last_day) {
        // The first second whose day is d or later (days only move
        // forward here except across a backward change, probed anyway).
        let midnight = d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        let (mut lo, mut hi) = (midnight - 15 * 3600, midnight + 13 * 3600);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if day(mid * MICROS_PER_SECOND) >= d {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        instants.push(hi * MICROS_PER_SECOND);
    }
    instants.sort_unstable();
    instants.dedup();
    instants
        .into_iter()
        .filter(|at| *at > from && *at < to)
        .flat_map(|at| [at - 1, at])
        .map(|at| DayProbe {
            zone,
            at,
            day: day(at),
        })
        .collect()
}

/// The helper columns `local_day` reads, to drop afterwards.
pub fn offset_columns(k: usize) -> Vec<String> {
    let mut names = vec!["offset_0".to_string()];
    for j in 1..=k {
        names.push(format!("change_{j}"));
        names.push(format!("offset_{j}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_match_case_insensitively_and_reject_junk() {
        assert_eq!(canonical_zone("america/new_york"), Some("America/New_York"));
        assert_eq!(canonical_zone("Asia/Kathmandu"), Some("Asia/Kathmandu"));
        assert_eq!(canonical_zone("Mars/Olympus_Mons"), None);
        assert_eq!(canonical_zone(""), None);
    }

    fn micros(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn offset_changes_are_found_to_the_second() {
        // New York springs forward at 2026-03-08 07:00 UTC (02:00 EST).
        let (first, changes) = offset_changes(
            "America/New_York",
            micros("2026-03-07T00:00:00Z"),
            micros("2026-03-10T00:00:00Z"),
        );
        assert_eq!(first, -5 * 3600 * 1_000_000);
        assert_eq!(
            changes,
            [(micros("2026-03-08T07:00:00Z"), -4 * 3600 * 1_000_000)]
        );
        // Adelaide (+10:30 → +09:30) on 2026-04-05 at 03:00 local = 16:30 UTC the day before.
        let (first, changes) = offset_changes(
            "Australia/Adelaide",
            micros("2026-04-03T00:00:00Z"),
            micros("2026-04-06T00:00:00Z"),
        );
        assert_eq!(first, 37_800 * 1_000_000);
        assert_eq!(
            changes,
            [(micros("2026-04-04T16:30:00Z"), 34_200 * 1_000_000)]
        );
        // Kathmandu moved from +05:30 to +05:45 in 1986 and never since.
        let (first, changes) = offset_changes(
            "Asia/Kathmandu",
            micros("1985-06-01T00:00:00Z"),
            micros("2026-12-31T00:00:00Z"),
        );
        assert_eq!(first, 19_800 * 1_000_000);
        assert_eq!(
            changes,
            [(micros("1985-12-31T18:30:00Z"), 20_700 * 1_000_000)]
        );
    }

    #[test]
    fn day_probes_straddle_each_boundary_and_change() {
        let from = micros("2026-03-07T00:00:00Z");
        let to = micros("2026-03-10T00:00:00Z");
        let probes = day_probes("America/New_York", from, to);
        let at = |text: &str| probes.iter().find(|p| p.at == micros(text)).map(|p| p.day);
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        // Midnight EST on the 8th is 05:00 UTC; on the 9th (EDT) 04:00 UTC.
        assert_eq!(at("2026-03-08T05:00:00Z"), Some(day(8)));
        assert_eq!(at("2026-03-09T04:00:00Z"), Some(day(9)));
        assert!(probes
            .iter()
            .any(|p| p.at == micros("2026-03-08T04:59:59.999999Z") && p.day == day(7)));
        // The change itself, 07:00 UTC.
        assert_eq!(at("2026-03-08T07:00:00Z"), Some(day(8)));
        assert!(probes.iter().all(|p| p.at > from && p.at < to));
    }

    #[test]
    fn local_day_follows_the_offset_in_force() {
        let (from, to) = (
            micros("2026-03-07T00:00:00Z"),
            micros("2026-03-10T00:00:00Z"),
        );
        let zones = ["America/New_York", "UTC"].map(|z| (z, offset_changes(z, from, to)));
        let (table, k) = offset_table(&zones).unwrap();
        assert_eq!(k, 1);
        let rows = df!(
            "zone" => ["America/New_York", "America/New_York", "America/New_York", "UTC"],
            "at" => [
                micros("2026-03-08T04:59:59Z"), // 23:59:59 EST on the 7th
                micros("2026-03-08T05:00:00Z"), // 00:00 EST on the 8th
                micros("2026-03-09T03:59:59Z"), // 23:59:59 EDT on the 8th
                micros("2026-03-08T23:59:59Z"),
            ],
        )
        .unwrap();
        let days = rows
            .lazy()
            .join(
                table.lazy(),
                [col("zone")],
                [col("zone")],
                JoinArgs::new(JoinType::Left),
            )
            .select([local_day("at", k)])
            .collect()
            .unwrap();
        let days: Vec<_> = days
            .column("day")
            .unwrap()
            .date()
            .unwrap()
            .physical()
            .into_iter()
            .collect();
        let day = |d: u32| {
            Some(
                (chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
                    - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days() as i32,
            )
        };
        assert_eq!(days, [day(7), day(8), day(8), day(8)]);
    }
}
