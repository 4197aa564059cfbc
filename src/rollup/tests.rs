//! The rollup alone: frames built in memory, no database.

use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::Decimal;
use std::str::FromStr;

use super::{rollup, PLATFORM_TENANT};
use crate::frames::{calls_schema, errors_schema, SourceFrames, MONEY};

const NY: &str = "00000000-0000-0000-0000-0000000000a1";
const KTM: &str = "00000000-0000-0000-0000-0000000000a2";
const KIRI: &str = "00000000-0000-0000-0000-0000000000a3";
const MINUS12: &str = "00000000-0000-0000-0000-0000000000a4";
const BOGUS: &str = "00000000-0000-0000-0000-0000000000a5";

fn micros(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn money(values: &[Option<&str>]) -> Column {
    let ca: Int128Chunked = values
        .iter()
        .map(|v| {
            v.map(|v| {
                let mut d = Decimal::from_str(v).unwrap();
                d.rescale(10);
                d.mantissa()
            })
        })
        .collect();
    ca.into_decimal(Some(38), 10)
        .unwrap()
        .into_series()
        .into_column()
}

fn tenants() -> DataFrame {
    df!(
        "tenant_id" => [NY, KTM, KIRI, MINUS12, BOGUS],
        "business_name" => ["NY", "Kathmandu", "Kiritimati", "Baker", "Bogus"],
        "timezone" => [Some("America/New_York"), Some("Asia/Kathmandu"), Some("Pacific/Kiritimati"), Some("Etc/GMT+12"), Some("Not/AZone")],
        "status" => ["active"; 5],
    )
    .unwrap()
}

/// (call_id, tenant, utc time, status, outcome, [stt, llm, tts, total], duration, errored)
type Call<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    [Option<&'a str>; 4],
    Option<i64>,
    bool,
);

fn calls(rows: &[Call]) -> DataFrame {
    let cost = |i: usize| money(&rows.iter().map(|r| r.5[i]).collect::<Vec<_>>());
    let mut df = DataFrame::new(vec![
        Column::new(
            "call_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "tenant_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "outcome".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        cost(0).with_name("stt_cost_usd".into()),
        cost(1).with_name("llm_cost_usd".into()),
        cost(2).with_name("tts_cost_usd".into()),
        cost(3).with_name("total_cost_usd".into()),
        Column::new(
            "created_at".into(),
            rows.iter().map(|r| micros(r.2)).collect::<Vec<_>>(),
        ),
        Column::new(
            "duration_seconds".into(),
            rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        ),
        Column::new(
            "errored".into(),
            rows.iter().map(|r| r.7).collect::<Vec<_>>(),
        ),
    ])
    .unwrap();
    df = crate::frames::conform(df, &calls_schema()).unwrap();
    assert_eq!(df.column("stt_cost_usd").unwrap().dtype(), &MONEY);
    df
}

/// (tenant, call_id, type, severity, resolved, utc time)
type Error<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
    bool,
    &'a str,
);

fn errors(rows: &[Error]) -> DataFrame {
    let df = DataFrame::new(vec![
        Column::new(
            "tenant_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "call_id".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "error_type".into(),
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ),
        Column::new(
            "severity".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "resolved".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        Column::new(
            "created_at".into(),
            rows.iter().map(|r| micros(r.5)).collect::<Vec<_>>(),
        ),
    ])
    .unwrap();
    crate::frames::conform(df, &errors_schema()).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const OK: [Option<&str>; 4] = [Some("0.1"), Some("0.2"), Some("0.000001"), Some("0.300001")];

/// Rows of a frame as `a|b|c` text, for whole-output comparisons.
fn lines(df: &DataFrame, columns: &[&str]) -> Vec<String> {
    (0..df.height())
        .map(|i| {
            columns
                .iter()
                .map(|c| match df.column(c).unwrap().get(i).unwrap() {
                    AnyValue::Null => "∅".to_string(),
                    AnyValue::String(s) => s.to_string(),
                    AnyValue::StringOwned(s) => s.to_string(),
                    AnyValue::Float64(f) => format!("{f:?}"),
                    AnyValue::Decimal(v, scale) => Decimal::from_i128_with_scale(v, scale as u32)
                        .normalize()
                        .to_string(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn days_are_tenant_local_across_dst_and_odd_offsets() {
    let frames = SourceFrames {
        tenants: tenants(),
        calls: calls(&[
            (
                "ny-a",
                NY,
                "2026-03-08 04:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-07 23:59:59 EST
            (
                "ny-b",
                NY,
                "2026-03-08 06:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 01:59:59 EST
            (
                "ny-c",
                NY,
                "2026-03-08 07:00:00",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 03:00 EDT
            (
                "ny-d",
                NY,
                "2026-03-09 03:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 23:59:59 EDT
            (
                "ny-e",
                NY,
                "2026-03-09 04:00:00",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-09 00:00 EDT
            (
                "kt-a",
                KTM,
                "2026-03-08 18:14:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 23:59:59 +05:45
            (
                "kt-b",
                KTM,
                "2026-03-08 18:15:00",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-09 00:00
            (
                "ki-a",
                KIRI,
                "2026-03-07 09:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-07 23:59:59 +14
            (
                "ki-b",
                KIRI,
                "2026-03-07 10:00:00",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 00:00
            (
                "bk-a",
                MINUS12,
                "2026-03-09 11:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-08 23:59:59 -12
            (
                "bk-b",
                MINUS12,
                "2026-03-09 12:00:00",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // 03-09 00:00
            (
                "bo-a",
                BOGUS,
                "2026-03-08 23:59:59",
                "completed",
                None,
                OK,
                Some(1),
                false,
            ), // UTC fallback
        ]),
        errors: errors(&[]),
    };
    let r = rollup(&frames, day("2026-03-08"), day("2026-03-08")).unwrap();
    assert_eq!(
        lines(&r.tenant_daily, &["tenant_id", "day", "timezone", "calls"]),
        [
            format!("{NY}|2026-03-08|America/New_York|3"),
            format!("{KTM}|2026-03-08|Asia/Kathmandu|1"),
            format!("{KIRI}|2026-03-08|Pacific/Kiritimati|1"),
            format!("{MINUS12}|2026-03-08|Etc/GMT+12|1"),
            format!("{BOGUS}|2026-03-08|UTC|1"),
        ]
        .map(|s| s.to_string())
    );
    assert_eq!(
        lines(
            &r.findings,
            &["kind", "tenant_id", "day", "rows", "example_id"]
        ),
        [format!("invalid_timezone|{BOGUS}|2026-03-08|1|bo-a")]
    );
    assert_eq!(r.totals.calls, 7);
}

#[test]
fn money_is_exact_and_cost_problems_are_counted() {
    let frames = SourceFrames {
        tenants: tenants(),
        calls: calls(&[
            // 0.1 + 0.2 is 0.3 exactly: f64 would say 0.30000000000000004.
            (
                "a",
                KTM,
                "2026-03-08 12:00:00",
                "completed",
                Some("booked"),
                OK,
                Some(10),
                true,
            ),
            (
                "b",
                KTM,
                "2026-03-08 12:00:01",
                "completed",
                Some("booked"),
                OK,
                None,
                false,
            ),
            (
                "c",
                KTM,
                "2026-03-08 12:00:02",
                "failed",
                None,
                [None, Some("0.2"), Some("0.3"), Some("0.5")],
                Some(5),
                false,
            ),
            (
                "d",
                KTM,
                "2026-03-08 12:00:03",
                "busy",
                None,
                [Some("0.1"), Some("0.1"), Some("0.1"), Some("0.35")],
                Some(0),
                true,
            ),
            (
                "e",
                KTM,
                "2026-03-08 12:00:04",
                "no-answer",
                None,
                [Some("-0.25"), Some("0"), Some("0"), Some("-0.25")],
                None,
                false,
            ),
            (
                "f",
                KTM,
                "2026-03-08 12:00:05",
                "completed",
                Some("booked"),
                [None, None, None, None],
                None,
                false,
            ),
        ]),
        errors: errors(&[]),
    };
    let r = rollup(&frames, day("2026-03-08"), day("2026-03-08")).unwrap();
    assert_eq!(
        lines(
            &r.tenant_daily,
            &[
                "calls",
                "completed_calls",
                "failed_calls",
                "billable_seconds",
                "stt_cost_usd",
                "llm_cost_usd",
                "tts_cost_usd",
                "total_cost_usd",
                "calls_missing_cost",
                "cost_mismatch_calls",
                "errored_calls",
                "error_rate"
            ]
        ),
        ["6|3|1|15|0.05|0.7|0.400002|1.200002|2|1|2|0.3333333333333333"]
    );
    assert_eq!(
        lines(
            &r.outcomes,
            &[
                "status",
                "outcome",
                "calls",
                "billable_seconds",
                "total_cost_usd"
            ]
        ),
        [
            "busy|unknown|1|0|0.35",
            "completed|booked|3|10|0.600002",
            "failed|unknown|1|5|0.5",
            "no-answer|unknown|1|0|-0.25",
        ]
    );
    assert_eq!(
        lines(&r.findings, &["kind", "rows", "example_id"]),
        ["cost_mismatch|1|d", "missing_cost|2|c", "negative_cost|1|e"]
    );
    assert_eq!(
        r.totals.total_cost_usd,
        Decimal::from_str("1.200002").unwrap()
    );
}

#[test]
fn errors_group_by_type_and_severity_with_platform_and_error_only_days() {
    let frames = SourceFrames {
        tenants: tenants(),
        calls: calls(&[(
            "a",
            NY,
            "2026-03-08 15:00:00",
            "completed",
            None,
            OK,
            Some(1),
            true,
        )]),
        errors: errors(&[
            (
                Some(NY),
                Some("a"),
                "stt_timeout",
                "ERROR",
                false,
                "2026-03-08 15:00:10",
            ),
            (
                Some(NY),
                Some("a"),
                "stt_timeout",
                "ERROR",
                true,
                "2026-03-08 15:00:20",
            ),
            (
                Some(NY),
                Some("ghost"),
                "stt_timeout",
                "ERROR",
                false,
                "2026-03-08 16:00:00",
            ),
            (
                Some(NY),
                None,
                "llm_error",
                "CRITICAL",
                false,
                "2026-03-08 17:00:00",
            ),
            // 03-09 00:30 UTC is still 03-08 in New York.
            (
                Some(NY),
                None,
                "llm_error",
                "CRITICAL",
                false,
                "2026-03-09 00:30:00",
            ),
            // An error-only tenant day.
            (
                Some(KTM),
                Some("x"),
                "tts_error",
                "WARNING",
                false,
                "2026-03-08 10:00:00",
            ),
            // Platform errors use UTC days.
            (
                None,
                None,
                "db_down",
                "CRITICAL",
                false,
                "2026-03-08 23:59:59",
            ),
            (
                None,
                None,
                "db_down",
                "CRITICAL",
                false,
                "2026-03-09 00:00:00",
            ),
        ]),
    };
    let r = rollup(&frames, day("2026-03-08"), day("2026-03-08")).unwrap();
    assert_eq!(
        lines(
            &r.errors,
            &[
                "tenant_id",
                "error_type",
                "severity",
                "errors",
                "unresolved_errors",
                "calls_affected"
            ]
        ),
        [
            format!("{PLATFORM_TENANT}|db_down|CRITICAL|1|1|0"),
            format!("{NY}|llm_error|CRITICAL|2|2|0"),
            format!("{NY}|stt_timeout|ERROR|3|2|2"),
            format!("{KTM}|tts_error|WARNING|1|1|1"),
        ]
    );
    assert_eq!(
        lines(
            &r.tenant_daily,
            &[
                "tenant_id",
                "business_name",
                "calls",
                "errors",
                "critical_errors",
                "errored_calls",
                "error_rate",
                "total_cost_usd"
            ]
        ),
        [
            format!("{PLATFORM_TENANT}|(platform)|0|1|1|0|∅|0"),
            format!("{NY}|NY|1|5|2|1|1.0|0.300001"),
            format!("{KTM}|Kathmandu|0|1|0|0|∅|0"),
        ]
    );
    assert_eq!(r.totals.errors, 7);
}

#[test]
fn empty_frames_give_empty_tables() {
    let frames = SourceFrames {
        tenants: tenants(),
        calls: DataFrame::empty_with_schema(&calls_schema()),
        errors: DataFrame::empty_with_schema(&errors_schema()),
    };
    let r = rollup(&frames, day("2026-03-08"), day("2026-03-10")).unwrap();
    assert_eq!(r.tenant_daily.height(), 0);
    assert_eq!(r.findings.height(), 0);
    assert_eq!(r.totals.total_cost_usd, Decimal::ZERO);
}

/// The rollup state (`accumulate`) interns texts itself: a NULL
/// outcome reported as `unknown` and an outcome that says `unknown` must
/// be one group, as they were when Polars filled the NULL and grouped.
#[test]
fn a_null_outcome_and_an_outcome_named_unknown_are_one_group() {
    let frames = SourceFrames {
        tenants: tenants(),
        calls: calls(&[
            (
                "a",
                NY,
                "2026-03-09 15:00:00",
                "completed",
                None,
                OK,
                Some(5),
                false,
            ),
            (
                "b",
                NY,
                "2026-03-09 16:00:00",
                "completed",
                Some("unknown"),
                OK,
                Some(7),
                false,
            ),
            (
                "c",
                NY,
                "2026-03-09 17:00:00",
                "completed",
                Some("booked"),
                OK,
                None,
                false,
            ),
        ]),
        errors: DataFrame::empty_with_schema(&errors_schema()),
    };
    let r = rollup(&frames, day("2026-03-09"), day("2026-03-09")).unwrap();
    assert_eq!(
        lines(&r.outcomes, &["outcome", "calls", "billable_seconds"]),
        ["booked|1|0", "unknown|2|12"]
    );
}

/// A tenant id twice in `tenants` (a tenant row holding the nil UUID, an
/// edited snapshot) once multiplied every error row of that tenant in
/// the zone join while the one-pass grouping placed each call once; the
/// first row now wins everywhere and the tables add up.
#[test]
fn a_tenant_id_listed_twice_counts_each_row_once() {
    let twice = tenants()
        .vstack(
            &df!(
                "tenant_id" => [NY],
                "business_name" => ["NY again"],
                "timezone" => [Some("Asia/Kathmandu")],
                "status" => ["active"],
            )
            .unwrap(),
        )
        .unwrap();
    let frames = SourceFrames {
        tenants: twice,
        calls: calls(&[(
            "a",
            NY,
            "2026-03-09 15:00:00",
            "completed",
            Some("booked"),
            OK,
            Some(5),
            false,
        )]),
        errors: errors(&[(
            Some(NY),
            Some("a"),
            "llm_error",
            "ERROR",
            false,
            "2026-03-09 15:00:00",
        )]),
    };
    let r = rollup(&frames, day("2026-03-09"), day("2026-03-09")).unwrap();
    r.check_totals().unwrap();
    assert_eq!(
        lines(
            &r.tenant_daily,
            &["business_name", "timezone", "calls", "errors"]
        ),
        ["NY|America/New_York|1|1"]
    );
}
