//! The rollup against a small, obviously correct reference: plain Rust
//! loops over random calls and errors, with chrono-tz for the days and
//! rust_decimal for the money, on zones with DST, half- and
//! quarter-hour offsets, the far ends (±12/+14), unknown and missing zones,
//! and tenants missing from `tenants`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone};
use polars::prelude::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{rollup, PLATFORM_TENANT};
use crate::frames::{calls_schema, conform, errors_schema, SourceFrames};

/// Tenants and their declared zones (None: NULL). The last tenant id is
/// never in `tenants`.
const TENANTS: [(&str, Option<&str>); 8] = [
    (
        "00000000-0000-0000-0000-000000000001",
        Some("America/New_York"),
    ),
    (
        "00000000-0000-0000-0000-000000000002",
        Some("Asia/Kathmandu"),
    ),
    (
        "00000000-0000-0000-0000-000000000003",
        Some("Australia/Lord_Howe"),
    ),
    (
        "00000000-0000-0000-0000-000000000004",
        Some("Pacific/Kiritimati"),
    ),
    ("00000000-0000-0000-0000-000000000005", Some("Etc/GMT+12")),
    (
        "00000000-0000-0000-0000-000000000006",
        Some("europe/london"),
    ),
    ("00000000-0000-0000-0000-000000000007", None),
    ("00000000-0000-0000-0000-000000000008", Some("Not/AZone")),
];
const UNKNOWN_TENANT: &str = "00000000-0000-0000-0000-0000000000ff";
const STATUSES: [Option<&str>; 4] = [Some("completed"), Some("failed"), Some("busy"), None];
const OUTCOMES: [Option<&str>; 3] = [Some("booked"), Some("voicemail"), None];
const TYPES: [Option<&str>; 3] = [Some("llm_error"), Some("stt_timeout"), None];
const SEVERITIES: [Option<&str>; 3] = [Some("CRITICAL"), Some("ERROR"), None];
/// 2026-03-06 00:00 UTC: the window spans the US spring change (03-08)
/// and the start of the range the calls fall in.
const START: i64 = 1_772_755_200_000_000;
const HOURS: i64 = 3_600_000_000;

#[derive(Debug, Clone)]
struct Call {
    tenant: usize,
    at: i64,
    status: usize,
    outcome: usize,
    costs: [Option<i64>; 4],
    duration: Option<i64>,
    errored: bool,
}

#[derive(Debug, Clone)]
struct Err {
    tenant: Option<usize>,
    call: Option<usize>,
    kind: usize,
    severity: usize,
    resolved: bool,
    at: i64,
}

fn tenant_id(i: usize) -> &'static str {
    if i < TENANTS.len() {
        TENANTS[i].0
    } else {
        UNKNOWN_TENANT
    }
}

/// The zone a tenant's days follow: its zone when Postgres knows the name
/// (case aside), else UTC; UTC for tenants missing from `tenants`.
fn zone_of(i: usize) -> chrono_tz::Tz {
    TENANTS
        .get(i)
        .and_then(|(_, z)| *z)
        .and_then(|z| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .find(|tz| tz.name().eq_ignore_ascii_case(z))
                .copied()
        })
        .unwrap_or(chrono_tz::UTC)
}

fn day_in(zone: chrono_tz::Tz, at: i64) -> NaiveDate {
    zone.from_utc_datetime(&DateTime::from_timestamp_micros(at).unwrap().naive_utc())
        .date_naive()
}

fn micro_dollars(v: i64) -> Decimal {
    Decimal::new(v, 6)
}

fn call_strategy() -> impl Strategy<Value = Call> {
    (
        0..TENANTS.len() + 1,
        0..96 * HOURS,
        0..STATUSES.len(),
        0..OUTCOMES.len(),
        prop::array::uniform4(prop::option::weighted(0.9, -50_000i64..5_000_000)),
        prop::option::of(0i64..3600),
        any::<bool>(),
    )
        .prop_map(
            |(tenant, offset, status, outcome, mut costs, duration, errored)| {
                // Most totals are the sum of their parts; some are not.
                if let [Some(a), Some(b), Some(c), Some(_)] = costs {
                    if (a + b + c) % 3 != 0 {
                        costs[3] = Some(a + b + c);
                    }
                }
                Call {
                    tenant,
                    at: START + offset,
                    status,
                    outcome,
                    costs,
                    duration,
                    errored,
                }
            },
        )
}

fn err_strategy(calls: usize) -> impl Strategy<Value = Err> {
    (
        prop::option::weighted(0.85, 0..TENANTS.len() + 1),
        prop::option::of(0..calls.max(1) + 2),
        0..TYPES.len(),
        0..SEVERITIES.len(),
        any::<bool>(),
        0..96 * HOURS,
    )
        .prop_map(
            move |(tenant, call, kind, severity, resolved, offset)| Err {
                tenant,
                call,
                kind,
                severity,
                resolved,
                at: START + offset,
            },
        )
}

fn call_id(i: usize) -> String {
    format!("call-{i:04}")
}

fn frames(calls: &[Call], errors: &[Err]) -> SourceFrames {
    let money = |k: usize| -> Column {
        let ca: Int128Chunked = calls
            .iter()
            .map(|c| c.costs[k].map(|v| i128::from(v) * 10_000))
            .collect();
        ca.into_decimal(Some(38), 10)
            .unwrap()
            .into_series()
            .into_column()
    };
    let calls_df = DataFrame::new(vec![
        Column::new(
            "call_id".into(),
            (0..calls.len()).map(call_id).collect::<Vec<_>>(),
        ),
        Column::new(
            "tenant_id".into(),
            calls
                .iter()
                .map(|c| tenant_id(c.tenant))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            calls.iter().map(|c| STATUSES[c.status]).collect::<Vec<_>>(),
        ),
        Column::new(
            "outcome".into(),
            calls
                .iter()
                .map(|c| OUTCOMES[c.outcome])
                .collect::<Vec<_>>(),
        ),
        money(0).with_name("stt_cost_usd".into()),
        money(1).with_name("llm_cost_usd".into()),
        money(2).with_name("tts_cost_usd".into()),
        money(3).with_name("total_cost_usd".into()),
        Column::new(
            "created_at".into(),
            calls.iter().map(|c| c.at).collect::<Vec<_>>(),
        ),
        Column::new(
            "duration_seconds".into(),
            calls.iter().map(|c| c.duration).collect::<Vec<_>>(),
        ),
        Column::new(
            "errored".into(),
            calls.iter().map(|c| c.errored).collect::<Vec<_>>(),
        ),
    ])
    .unwrap();
    let errors_df = DataFrame::new(vec![
        Column::new(
            "tenant_id".into(),
            errors
                .iter()
                .map(|e| e.tenant.map(tenant_id))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "call_id".into(),
            errors
                .iter()
                .map(|e| e.call.map(call_id))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "error_type".into(),
            errors.iter().map(|e| TYPES[e.kind]).collect::<Vec<_>>(),
        ),
        Column::new(
            "severity".into(),
            errors
                .iter()
                .map(|e| SEVERITIES[e.severity])
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "resolved".into(),
            errors.iter().map(|e| e.resolved).collect::<Vec<_>>(),
        ),
        Column::new(
            "created_at".into(),
            errors.iter().map(|e| e.at).collect::<Vec<_>>(),
        ),
    ])
    .unwrap();
    let tenants = df!(
        "tenant_id" => TENANTS.iter().map(|t| t.0).collect::<Vec<_>>(),
        "business_name" => TENANTS.iter().map(|t| t.0).collect::<Vec<_>>(),
        "timezone" => TENANTS.iter().map(|t| t.1).collect::<Vec<_>>(),
        "status" => vec!["active"; TENANTS.len()],
    )
    .unwrap();
    SourceFrames {
        tenants,
        calls: conform(calls_df, &calls_schema()).unwrap(),
        errors: conform(errors_df, &errors_schema()).unwrap(),
    }
}

/// tenant_daily's counts and sums per (tenant, day), by plain loops.
fn reference_tenant_daily(
    calls: &[Call],
    errors: &[Err],
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, NaiveDate), Vec<String>> {
    #[derive(Default)]
    struct Day {
        calls: i64,
        completed: i64,
        failed: i64,
        seconds: i64,
        costs: [Decimal; 4],
        missing: i64,
        mismatch: i64,
        errors: i64,
        critical: i64,
        errored: i64,
    }
    let mut days: BTreeMap<(String, NaiveDate), Day> = BTreeMap::new();
    for c in calls {
        let day = day_in(zone_of(c.tenant), c.at);
        if day < from || day > to {
            continue;
        }
        let d = days
            .entry((tenant_id(c.tenant).to_string(), day))
            .or_default();
        d.calls += 1;
        d.completed += i64::from(STATUSES[c.status] == Some("completed"));
        d.failed += i64::from(STATUSES[c.status] == Some("failed"));
        d.seconds += c.duration.unwrap_or(0);
        for k in 0..4 {
            d.costs[k] += c.costs[k].map(micro_dollars).unwrap_or_default();
        }
        d.missing += i64::from(c.costs.iter().any(Option::is_none));
        if let [Some(a), Some(b), Some(t), Some(total)] = c.costs {
            d.mismatch += i64::from(a + b + t != total);
        }
        d.errored += i64::from(c.errored);
    }
    for e in errors {
        let (tenant, zone) = match e.tenant {
            Some(t) => (tenant_id(t).to_string(), zone_of(t)),
            None => (PLATFORM_TENANT.to_string(), chrono_tz::UTC),
        };
        let day = day_in(zone, e.at);
        if day < from || day > to {
            continue;
        }
        let d = days.entry((tenant, day)).or_default();
        d.errors += 1;
        d.critical += i64::from(SEVERITIES[e.severity] == Some("CRITICAL"));
    }
    days.into_iter()
        .map(|(k, d)| {
            let mut v = vec![
                d.calls.to_string(),
                d.completed.to_string(),
                d.failed.to_string(),
                d.seconds.to_string(),
            ];
            v.extend(d.costs.iter().map(|c| c.normalize().to_string()));
            v.extend(
                [d.missing, d.mismatch, d.errors, d.critical, d.errored].map(|n| n.to_string()),
            );
            (k, v)
        })
        .collect()
}

/// (tenant, day, error_type, severity)
type ErrorKey = (String, NaiveDate, String, String);
/// errors, unresolved errors, distinct call ids
type ErrorGroup = (i64, i64, std::collections::BTreeSet<usize>);

/// tenant_daily_errors per (tenant, day, type, severity): errors,
/// unresolved, distinct non-NULL call ids.
fn reference_errors(
    errors: &[Err],
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<ErrorKey, ErrorGroup> {
    let mut out: BTreeMap<ErrorKey, ErrorGroup> = BTreeMap::new();
    for e in errors {
        let (tenant, zone) = match e.tenant {
            Some(t) => (tenant_id(t).to_string(), zone_of(t)),
            None => (PLATFORM_TENANT.to_string(), chrono_tz::UTC),
        };
        let day = day_in(zone, e.at);
        if day < from || day > to {
            continue;
        }
        let key = (
            tenant,
            day,
            TYPES[e.kind].unwrap_or("unknown").to_string(),
            SEVERITIES[e.severity].unwrap_or("unknown").to_string(),
        );
        let g = out.entry(key).or_default();
        g.0 += 1;
        g.1 += i64::from(!e.resolved);
        if let Some(c) = e.call {
            g.2.insert(c);
        }
    }
    out
}

/// The same frames as two pieces stacked at `split` (a share of the
/// rows), each with buffers of its own, as two reads have: the same text
/// then has different views in the two pieces. With `misaligned`, one
/// column of each frame is split at another row, so that its chunks do
/// not line up with the others'.
fn stacked(frames: &SourceFrames, split: f64, misaligned: bool) -> SourceFrames {
    let pieces = |df: &DataFrame, odd: &str| {
        let at = (df.height() as f64 * split) as usize;
        let piece = |from: usize, to: usize| -> DataFrame {
            let columns = df
                .get_columns()
                .iter()
                .map(|c| {
                    let c = c.slice(from as i64, to - from);
                    match c.str() {
                        // New views into a new buffer.
                        Ok(text) => StringChunked::from_iter(text)
                            .with_name(c.name().clone())
                            .into_column(),
                        Err(_) => c.rechunk(),
                    }
                })
                .collect();
            DataFrame::new(columns).unwrap()
        };
        let mut stacked = piece(0, at);
        stacked.vstack_mut(&piece(at, df.height())).unwrap();
        if misaligned {
            let other = at / 2;
            let mut column = df.column(odd).unwrap().slice(0, other);
            column
                .append(&df.column(odd).unwrap().slice(other as i64, df.height()))
                .unwrap();
            stacked.with_column(column).unwrap();
        }
        stacked
    };
    SourceFrames {
        tenants: frames.tenants.clone(),
        calls: pieces(&frames.calls, "duration_seconds"),
        errors: pieces(&frames.errors, "resolved"),
    }
}

fn text(v: AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Decimal(v, scale) => Decimal::from_i128_with_scale(v, scale as u32)
            .normalize()
            .to_string(),
        other => other.to_string(),
    }
}

fn date_of(v: AnyValue) -> NaiveDate {
    match v {
        AnyValue::Date(d) => {
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::TimeDelta::days(i64::from(d))
        }
        other => panic!("not a date: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_rollup_equals_the_reference(
        (calls, errors) in prop::collection::vec(call_strategy(), 0..120)
            .prop_flat_map(|calls| {
                let n = calls.len();
                (Just(calls), prop::collection::vec(err_strategy(n), 0..60))
            }),
        first in 0u64..3,
        length in 0u64..3,
        split in 0.0f64..1.0,
        misaligned in any::<bool>(),
    ) {
        let from = NaiveDate::from_ymd_opt(2026, 3, 6).unwrap() + chrono::Days::new(first);
        let to = from + chrono::Days::new(length);
        let whole = frames(&calls, &errors);
        let r = rollup(&whole, from, to).unwrap();
        // A chunk's frames come stacked from pieces (the rows carried from
        // the previous chunk, then the new read): walked piece by piece,
        // they give the same tables to the byte.
        let stacked = rollup(&stacked(&whole, split, misaligned), from, to).unwrap();
        for (a, b) in [
            (&r.tenant_daily, &stacked.tenant_daily),
            (&r.outcomes, &stacked.outcomes),
            (&r.errors, &stacked.errors),
            (&r.findings, &stacked.findings),
        ] {
            prop_assert!(a.equals_missing(b), "stacked frames differ:\n{a}\n{b}");
        }

        let td = &r.tenant_daily;
        let columns = [
            "calls", "completed_calls", "failed_calls", "billable_seconds",
            "stt_cost_usd", "llm_cost_usd", "tts_cost_usd", "total_cost_usd",
            "calls_missing_cost", "cost_mismatch_calls", "errors", "critical_errors", "errored_calls",
        ];
        let mut engine = BTreeMap::new();
        for i in 0..td.height() {
            let key = (
                text(td.column("tenant_id").unwrap().get(i).unwrap()),
                date_of(td.column("day").unwrap().get(i).unwrap()),
            );
            let values: Vec<String> = columns
                .iter()
                .map(|c| text(td.column(c).unwrap().get(i).unwrap()))
                .collect();
            engine.insert(key, values);
        }
        prop_assert_eq!(engine, reference_tenant_daily(&calls, &errors, from, to));

        let e = &r.errors;
        let mut engine = BTreeMap::new();
        for i in 0..e.height() {
            let get = |c: &str| text(e.column(c).unwrap().get(i).unwrap());
            engine.insert(
                (get("tenant_id"), date_of(e.column("day").unwrap().get(i).unwrap()), get("error_type"), get("severity")),
                (get("errors"), get("unresolved_errors"), get("calls_affected")),
            );
        }
        let want: BTreeMap<_, _> = reference_errors(&errors, from, to)
            .into_iter()
            .map(|(k, (n, u, c))| (k, (n.to_string(), u.to_string(), c.len().to_string())))
            .collect();
        prop_assert_eq!(engine, want);
    }
}

/// `frame`'s rows in the order `order` gives (indices into it).
fn reordered(frame: &DataFrame, order: &[usize]) -> DataFrame {
    let idx = IdxCa::from_vec("idx".into(), order.iter().map(|i| *i as IdxSize).collect());
    frame.take(&idx).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The one-pass read's state (`accumulate`): rows in any order, over
    /// any number of streams whose states are merged, in chunks of any
    /// length, give each chunk the tables the frame path gives that
    /// chunk's days (which the test above checks against the reference),
    /// to the byte: smallest ids, first and last seen and calls affected
    /// across streams included.
    #[test]
    fn the_one_pass_state_equals_the_frame_path_chunk_by_chunk(
        (calls, errors) in prop::collection::vec(call_strategy(), 0..120)
            .prop_flat_map(|calls| {
                let n = calls.len();
                (Just(calls), prop::collection::vec(err_strategy(n), 0..60))
            }),
        first in 0u64..3,
        length in 0u64..4,
        chunk_days in 1u32..4,
        streams in 1usize..4,
        seed in any::<u64>(),
    ) {
        let from = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap() + chrono::Days::new(first);
        let to = from + chrono::Days::new(length);
        let whole = frames(&calls, &errors);
        let (lo, hi) = (START - 48 * HOURS, START + 144 * HOURS);
        let rules = super::TenantRules::new(&whole.tenants, (lo, hi)).unwrap();
        // Each stream gets a shuffled share of the rows.
        let mut rng = seed;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as usize
        };
        let mut shares = vec![(Vec::new(), Vec::new()); streams];
        for i in 0..calls.len() {
            let s = next() % streams;
            shares[s].0.push(i);
        }
        for i in 0..errors.len() {
            let s = next() % streams;
            shares[s].1.push(i);
        }
        let mut states = Vec::new();
        for (mut call_rows, mut error_rows) in shares {
            for rows in [&mut call_rows, &mut error_rows] {
                for k in (1..rows.len()).rev() {
                    rows.swap(k, next() % (k + 1));
                }
            }
            let mut state = super::accumulate::Accumulator::new(&rules, from, to, chunk_days);
            super::calls::walk(&reordered(&whole.calls, &call_rows), &mut state).unwrap();
            super::errors::walk(&reordered(&whole.errors, &error_rows), &mut state).unwrap();
            states.push(state);
        }
        let window = crate::window::Window { from, to, partial: false };
        let chunks = window.chunks(chunk_days);
        let first = states.remove(0);
        let parts: Vec<_> = first.into_rollups(states).collect();
        prop_assert_eq!(parts.len(), chunks.len());
        for (part, chunk) in parts.into_iter().zip(&chunks) {
            let part = part.unwrap();
            let want = rollup(&whole, chunk.from, chunk.to).unwrap();
            for (a, b) in [
                (&part.tenant_daily, &want.tenant_daily),
                (&part.outcomes, &want.outcomes),
                (&part.errors, &want.errors),
                (&part.findings, &want.findings),
            ] {
                prop_assert!(a.equals_missing(b), "chunk {}..{} differs:\n{a}\n{b}", chunk.from, chunk.to);
            }
            prop_assert!(part.totals.matches(&want.totals));
        }
    }
}
