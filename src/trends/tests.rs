//! The rules of `errors` on crafted series: no database, no files.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use polars::prelude::*;

use super::*;

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// A daily timeline whose period is the last `period` of `counts`' days,
/// with one group per (error_type, counts) series.
fn daily(period_from: &str, period_to: &str, series: &[(&str, &[i64])]) -> (Counts, Timeline) {
    let timeline = Timeline::days(day(period_from), day(period_to));
    let mut buckets = Vec::new();
    let mut types = Vec::new();
    let mut errors = Vec::new();
    for (error_type, counts) in series {
        assert_eq!(counts.len(), timeline.keys.len(), "one count per bucket");
        for (key, n) in timeline.keys.iter().zip(counts.iter()) {
            if *n > 0 {
                buckets.push(*key);
                types.push(error_type.to_string());
                errors.push(*n);
            }
        }
    }
    let n = buckets.len();
    let errors = df!(
        "bucket" => buckets,
        "tenant_id" => vec!["t1"; n],
        "error_type" => types,
        "severity" => vec!["ERROR"; n],
        "errors" => errors.clone(),
        "unresolved_errors" => errors.iter().map(|e| e / 2).collect::<Vec<_>>(),
        "calls_affected" => errors,
        "first_seen_at" => vec![Some(0i64); n],
        "last_seen_at" => vec![Some(0i64); n],
    )
    .unwrap();
    let calls = df!(
        "bucket" => Vec::<i64>::new(),
        "tenant_id" => Vec::<String>::new(),
        "calls" => Vec::<i64>::new(),
        "errored_calls" => Vec::<i64>::new(),
    )
    .unwrap();
    (
        Counts {
            errors,
            calls,
            names: BTreeMap::new(),
            missing: Vec::new(),
        },
        timeline,
    )
}

fn group<'a>(analysis: &'a Analysis, key: &str) -> &'a Group {
    analysis.groups.iter().find(|g| g.key == key).unwrap()
}

#[test]
fn a_burst_far_above_a_steady_baseline_is_a_spike() {
    // Period of 7 days after a lookback of 7.
    let counts: &[i64] = &[10, 11, 9, 10, 12, 10, 11, 10, 9, 11, 60, 10, 12, 11];
    let (series, timeline) = daily("2026-03-08", "2026-03-14", &[("llm_error", counts)]);
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    let g = group(&analysis, "llm_error");
    assert_eq!(g.spikes, [false, false, false, true, false, false, false]);
    let spikes = analysis.spikes(None);
    assert_eq!(spikes.len(), 1);
    assert_eq!(analysis.timeline.label(spikes[0].bucket), "2026-03-11");
    assert_eq!(spikes[0].baseline.median, 10.0);
}

#[test]
fn a_flat_series_raises_nothing() {
    let flat = [250i64; 14];
    let (series, timeline) = daily("2026-03-08", "2026-03-14", &[("stt_timeout", &flat)]);
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    let g = group(&analysis, "stt_timeout");
    assert!(g.spikes.iter().all(|s| !s));
    assert_eq!(g.trend, Trend::Steady);
    assert!(!g.new_type);
    assert!(analysis.new_types.is_empty());
}

#[test]
fn ordinary_poisson_jitter_is_not_a_spike() {
    // Within √median of a median of 100: noise, not an incident.
    let counts: &[i64] = &[
        100, 92, 108, 97, 103, 95, 110, 104, 91, 112, 99, 130, 96, 101,
    ];
    let (series, timeline) = daily("2026-03-08", "2026-03-14", &[("tts_error", counts)]);
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    assert!(group(&analysis, "tts_error").spikes.iter().all(|s| !s));
}

#[test]
fn the_minimum_count_is_respected() {
    // From nothing to 8: far above a zero baseline, but under --spike-min 10.
    let counts: &[i64] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0];
    let (series, timeline) = daily("2026-03-08", "2026-03-14", &[("webhook_failed", counts)]);
    let quiet = analyse(
        &series,
        timeline.clone(),
        By::ErrorType,
        SpikeRule::default(),
    )
    .unwrap();
    assert!(quiet.spikes(None).is_empty());
    let lower = SpikeRule {
        min_errors: 8,
        ..SpikeRule::default()
    };
    let loud = analyse(&series, timeline, By::ErrorType, lower).unwrap();
    assert_eq!(loud.spikes(None).len(), 1);
}

#[test]
fn spike_k_moves_the_threshold() {
    let counts: &[i64] = &[20, 21, 19, 20, 22, 20, 21, 20, 19, 21, 50, 20, 22, 21];
    let (series, timeline) = daily("2026-03-08", "2026-03-14", &[("llm_error", counts)]);
    // Spread is √(2 × 20) ≈ 6.32: 50 is 4.7 spreads above 20.
    let at = |k: f64| {
        analyse(
            &series,
            timeline.clone(),
            By::ErrorType,
            SpikeRule { k, min_errors: 10 },
        )
        .unwrap()
        .spikes(None)
        .len()
    };
    assert_eq!(at(4.0), 1);
    assert_eq!(at(5.0), 0);
}

#[test]
fn a_type_first_seen_inside_the_period_is_new() {
    let old: &[i64] = &[5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5];
    let fresh: &[i64] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0, 2, 1];
    let (series, timeline) = daily(
        "2026-03-08",
        "2026-03-14",
        &[("stt_timeout", old), ("tls_handshake", fresh)],
    );
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    assert!(group(&analysis, "tls_handshake").new_type);
    assert_eq!(group(&analysis, "tls_handshake").trend, Trend::New);
    assert!(!group(&analysis, "stt_timeout").new_type);
    let new: Vec<&str> = analysis
        .new_types
        .iter()
        .map(|t| t.error_type.as_str())
        .collect();
    assert_eq!(new, ["tls_handshake"]);
    assert_eq!(analysis.new_types[0].errors, 10);
    // Every row of the new type says so.
    assert!(analysis
        .rows(None)
        .iter()
        .filter(|r| r.group.key == "tls_handshake")
        .all(|r| r.group.new_type));
}

#[test]
fn change_against_the_previous_period_of_the_same_length() {
    // Period 2026-03-08..03-14 (7 days); previous 03-01..03-07.
    let rising: &[i64] = &[10, 10, 10, 10, 10, 10, 10, 20, 20, 20, 20, 20, 20, 20];
    let falling: &[i64] = &[30, 30, 30, 30, 30, 30, 30, 10, 10, 10, 10, 10, 10, 10];
    let gone: &[i64] = &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let (series, timeline) = daily(
        "2026-03-08",
        "2026-03-14",
        &[("a", rising), ("b", falling), ("c", gone)],
    );
    assert_eq!(timeline.label(0), "2026-03-01");
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    let a = group(&analysis, "a");
    assert_eq!((a.total.errors, a.previous_errors), (140, Some(70)));
    assert_eq!(a.change_pct(), Some(100.0));
    assert_eq!(a.trend, Trend::Rising);
    let b = group(&analysis, "b");
    assert_eq!((b.total.errors, b.previous_errors), (70, Some(210)));
    assert!((b.change_pct().unwrap() + 66.666).abs() < 0.01);
    assert_eq!(b.trend, Trend::Falling);
    assert_eq!(group(&analysis, "c").trend, Trend::Gone);
    // Each row compares with the same place one period earlier.
    let rows = analysis.rows(None);
    let first_a = rows.iter().find(|r| r.group.key == "a").unwrap();
    assert_eq!(first_a.bucket, "2026-03-08");
    assert_eq!(
        (first_a.cell.unwrap().errors, first_a.previous_errors),
        (20, Some(10))
    );
    // Groups come most errors first.
    let order: Vec<&str> = analysis.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn days_that_could_not_be_read_are_unknown_not_zero() {
    let counts: &[i64] = &[10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10];
    let (mut series, timeline) = daily("2026-03-08", "2026-03-14", &[("a", counts)]);
    // 2026-03-02 (previous period) and 2026-03-10 (period) were not read.
    series.missing = vec![timeline.keys[1], timeline.keys[9]];
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    let a = group(&analysis, "a");
    assert_eq!(a.previous_errors, None);
    assert_eq!(a.trend, Trend::Unknown);
    assert_eq!(
        analysis.missing_days,
        [day("2026-03-02"), day("2026-03-10")]
    );
    // Every bucket is a row; the unread one says so, its counts unknown.
    let rows = analysis.rows(None);
    assert_eq!(rows.len(), 7);
    let unread: Vec<&str> = rows
        .iter()
        .filter(|r| r.cell.is_none())
        .map(|r| r.bucket.as_str())
        .collect();
    assert_eq!(unread, ["2026-03-10"]);
    assert!(rows
        .iter()
        .filter(|r| r.cell.is_none())
        .all(|r| r.spike.is_none()));
}

/// `errors --format json` over buckets no source holds answered `[]`,
/// and the table showed every group with 0 errors: a script read "no
/// errors" where the engine knew nothing.
#[test]
fn unread_buckets_were_left_out_of_json_and_shown_as_zero() {
    let counts: &[i64] = &[10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10];
    let (mut series, timeline) = daily("2026-03-08", "2026-03-14", &[("a", counts)]);
    // Nothing of the period could be read.
    series.missing = timeline.keys[timeline.period_start..].to_vec();
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&render::json(&analysis, None).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{json}");
    for row in rows {
        assert_eq!(row["read"], false, "{row}");
        assert!(row["errors"].is_null(), "{row}");
        assert!(row["calls_affected"].is_null(), "{row}");
    }
    assert_eq!(json["unread_buckets"].as_array().unwrap().len(), 7);
    let csv = String::from_utf8(render::csv(&analysis, None).unwrap()).unwrap();
    let line = csv.lines().nth(1).unwrap();
    assert!(line.starts_with("2026-03-08,a,false,,,"), "{csv}");
    let table = render::text_table(&analysis, 10);
    assert_eq!(table.rows[0][1].text, "?", "{:?}", table.rows[0]);
    assert!(table.is_total(1));
    assert_eq!(table.rows[1][1].text, "?");
}

fn chicago() -> chrono_tz::Tz {
    chrono_tz::America::Chicago
}

fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

#[test]
fn the_spring_forward_day_has_23_hours_and_the_fall_back_day_25() {
    let spring = Timeline::hours(
        chicago(),
        day("2026-03-08"),
        day("2026-03-08"),
        far_future(),
    )
    .unwrap();
    assert_eq!(spring.period_len(), 23);
    let labels: Vec<String> = (spring.period_start..spring.keys.len())
        .map(|i| spring.label(i))
        .collect();
    assert_eq!(labels[0], "2026-03-08T00:00:00-06:00");
    assert_eq!(labels[1], "2026-03-08T01:00:00-06:00");
    // 02:00 does not exist: 01:00 CST is followed by 03:00 CDT.
    assert_eq!(labels[2], "2026-03-08T03:00:00-05:00");
    assert_eq!(labels[22], "2026-03-08T23:00:00-05:00");

    let fall = Timeline::hours(
        chicago(),
        day("2026-11-01"),
        day("2026-11-01"),
        far_future(),
    )
    .unwrap();
    assert_eq!(fall.period_len(), 25);
    let labels: Vec<String> = (fall.period_start..fall.keys.len())
        .map(|i| fall.label(i))
        .collect();
    // 01:00 happens twice, once in each offset: two buckets.
    assert_eq!(labels[1], "2026-11-01T01:00:00-05:00");
    assert_eq!(labels[2], "2026-11-01T01:00:00-06:00");
    assert_eq!(labels[24], "2026-11-01T23:00:00-06:00");
    // An instant in each of the two 01:00 hours lands in its own bucket.
    let first = Utc
        .with_ymd_and_hms(2026, 11, 1, 6, 30, 0)
        .unwrap()
        .timestamp_micros();
    let second = Utc
        .with_ymd_and_hms(2026, 11, 1, 7, 30, 0)
        .unwrap()
        .timestamp_micros();
    assert_eq!(fall.index_of(first), Some(fall.period_start + 1));
    assert_eq!(fall.index_of(second), Some(fall.period_start + 2));
    // The day after midnight is not in the timeline.
    let after = Utc
        .with_ymd_and_hms(2026, 11, 2, 6, 0, 0)
        .unwrap()
        .timestamp_micros();
    assert_eq!(fall.index_of(after), None);
}

#[test]
fn utc_hours_and_half_hour_zones_bucket_on_their_own_clock() {
    let utc = Timeline::hours(
        chrono_tz::UTC,
        day("2026-03-08"),
        day("2026-03-08"),
        far_future(),
    )
    .unwrap();
    assert_eq!(utc.period_len(), 24);
    assert_eq!(utc.label(utc.period_start), "2026-03-08T00:00:00Z");
    let kolkata = Timeline::hours(
        chrono_tz::Asia::Kolkata,
        day("2026-03-08"),
        day("2026-03-08"),
        far_future(),
    )
    .unwrap();
    assert_eq!(
        kolkata.label(kolkata.period_start + 1),
        "2026-03-08T01:00:00+05:30"
    );
    // 19:45 UTC on the 7th is 01:15 on the 8th in Kolkata: the 01:00 bucket.
    let at = Utc
        .with_ymd_and_hms(2026, 3, 7, 19, 45, 0)
        .unwrap()
        .timestamp_micros();
    assert_eq!(kolkata.index_of(at), Some(kolkata.period_start + 1));
}

#[test]
fn hours_after_now_are_not_in_the_period() {
    let now = Utc.with_ymd_and_hms(2026, 3, 8, 15, 20, 0).unwrap();
    let today = Timeline::hours(chrono_tz::UTC, day("2026-03-08"), day("2026-03-08"), now).unwrap();
    // 00:00 through 15:00.
    assert_eq!(today.period_len(), 16);
}

#[test]
fn an_hour_is_compared_with_the_same_hour_on_the_days_before() {
    let timeline = Timeline::hours(
        chicago(),
        day("2026-03-09"),
        day("2026-03-09"),
        far_future(),
    )
    .unwrap();
    // 10:00 on the 9th: its baseline is 10:00 on the 2nd..8th, across the
    // spring-forward day (the 8th has 23 hours).
    let ten = (timeline.period_start..timeline.keys.len())
        .find(|i| timeline.label(*i) == "2026-03-09T10:00:00-05:00")
        .unwrap();
    let baseline: Vec<String> = timeline
        .baseline_of(ten)
        .into_iter()
        .map(|i| timeline.label(i))
        .collect();
    assert_eq!(baseline.len(), 7);
    assert_eq!(baseline[0], "2026-03-02T10:00:00-06:00");
    assert_eq!(baseline[6], "2026-03-08T10:00:00-05:00");
}

#[test]
fn the_baseline_is_robust_to_one_outlier() {
    let b = SpikeRule::baseline(&[10, 10, 10, 500, 10, 10, 10], 1.0).unwrap();
    assert_eq!(b.median, 10.0);
    // The MAD is 0: the spread falls back to the noise floor √(2 × 10).
    assert!((b.spread - 20f64.sqrt()).abs() < 1e-9);
    assert!(SpikeRule::baseline(&[1, 2], 1.0).is_none());
    // Errors in bursts of 1.5 per failing call: a wider floor.
    let bursty = SpikeRule::baseline(&[10, 10, 10, 10, 10, 10, 10], 1.5).unwrap();
    assert!((bursty.spread - 30f64.sqrt()).abs() < 1e-9);
}

/// `errors --by tenant` on demo flagged 21 tenant days, 18 of them noise:
/// a small tenant's usual 2 errors a day jumping to 10 (the old floor), or
/// a steady tenant's bursty day. A spike now needs `--spike-min` errors
/// more than the median, twice the median, and the burst-aware spread.
#[test]
fn small_tenants_noise_was_called_a_spike() {
    let rule = SpikeRule::default();
    // Usually 2 a day, 11 today: 9 more than usual, under --spike-min 10.
    let small = SpikeRule::baseline(&[2, 1, 3, 2, 0, 2, 4], 1.0);
    assert!(!rule.is_spike(11, small));
    // Usually 8, 22 on a busy day of bursty calls (1.4 errors a call).
    let steady = SpikeRule::baseline(&[9, 9, 5, 5, 7, 8, 10], 1.4);
    assert!(!rule.is_spike(22, steady));
    // The incident: 116 where 8 is usual.
    assert!(rule.is_spike(116, steady));
    // Large groups: 2 × the median at least.
    let large = SpikeRule::baseline(&[400, 400, 400, 400, 400, 400, 400], 1.0);
    assert!(!rule.is_spike(520, large));
    assert!(rule.is_spike(800, large));
}

/// A type seen only in a bucket that could not be read (an hour the
/// snapshot held part of) was zeroed with the bucket, and then called new.
#[test]
fn a_type_seen_only_in_an_unread_bucket_was_called_new() {
    // Three days: the lookback (7 days) reaches before the previous
    // period (3 days), and its second day was not read.
    let counts: &[i64] = &[0, 5, 0, 0, 0, 0, 0, 7, 7, 7];
    let (mut series, timeline) = daily("2026-03-12", "2026-03-14", &[("tls_handshake", counts)]);
    series.missing = vec![timeline.keys[1]];
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    assert!(analysis.new_types.is_empty());
    let group = group(&analysis, "tls_handshake");
    assert!(!group.new_type);
    assert_ne!(group.trend, Trend::New);
    assert_eq!(group.total.errors, 21);
}

#[test]
fn no_errors_in_a_partly_read_period_says_what_was_not_read() {
    let counts: &[i64] = &[0; 14];
    let (mut series, timeline) = daily("2026-03-08", "2026-03-14", &[("x", counts)]);
    series.missing = vec![timeline.keys[10], timeline.keys[11]];
    let analysis = analyse(&series, timeline, By::ErrorType, SpikeRule::default()).unwrap();
    assert_eq!(
        render::no_errors_text(&analysis),
        "No errors in the 5 bucket(s) read; 2 not read (unknown, not 0)."
    );
}
