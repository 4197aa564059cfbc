//! The cost report's arithmetic without a database: periods, previous
//! periods, grouping, ratios, rounding and coverage.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::summaries::{coverage_from_runs, CoveringRun};

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn tenant_day(tenant: &str, on: &str, calls: i64, total: &str) -> TenantDay {
    TenantDay {
        tenant_id: tenant.into(),
        day: day(on),
        business_name: Some(format!("name of {tenant}")),
        timezone: "UTC".into(),
        figures: Figures {
            calls,
            completed_calls: calls / 2,
            booked_calls: calls / 4,
            billable_seconds: calls * 90,
            stt_cost_usd: Some(d("0.1")),
            llm_cost_usd: Some(d("0.2")),
            tts_cost_usd: Some(d("0.3")),
            total_cost_usd: d(total),
            ..Default::default()
        },
    }
}

fn report_of(period: Period, rows: Vec<CostRow>) -> Report {
    Report {
        period,
        previous_period: previous_range(&period, GroupBy::Tenant),
        by: GroupBy::Tenant,
        rows,
        coverage: Coverage::default(),
        previous_coverage: Coverage::default(),
        reconciliation: None,
        view: View::default(),
        daily: Default::default(),
        read_from: String::new(),
        totals: Figures::default(),
        restated: None,
    }
}

/// March 2026 by tenant, from these tenant days and the previous ones.
fn march_by_tenant(current: Vec<TenantDay>, previous: Vec<TenantDay>) -> (Period, Vec<CostRow>) {
    let period = Period::month("2026-03").unwrap();
    let rows = build_rows(&period, GroupBy::Tenant, &inputs(current, previous));
    (period, rows)
}

fn inputs(current: Vec<TenantDay>, previous: Vec<TenantDay>) -> Inputs {
    Inputs {
        tenant_days: current,
        previous_tenant_days: previous,
        outcome_days: Vec::new(),
        previous_outcome_days: Vec::new(),
        missing_days: Default::default(),
        previous_missing_days: Default::default(),
        zone_unknown: Default::default(),
    }
}

#[test]
fn months_and_their_previous_periods() {
    let march = Period::month("2026-03").unwrap();
    assert_eq!(
        (march.from, march.to),
        (day("2026-03-01"), day("2026-03-31"))
    );
    let feb = march.previous();
    assert_eq!((feb.from, feb.to), (day("2026-02-01"), day("2026-02-28")));
    assert_eq!(
        march.previous_day(day("2026-03-31")),
        None,
        "February has no 31st"
    );
    assert_eq!(
        march.previous_day(day("2026-03-15")),
        Some(day("2026-02-15"))
    );
    let range = Period {
        from: day("2026-03-10"),
        to: day("2026-03-16"),
        is_month: false,
    };
    let before = range.previous();
    assert_eq!(
        (before.from, before.to),
        (day("2026-03-03"), day("2026-03-09"))
    );
    assert_eq!(
        range.previous_day(day("2026-03-10")),
        Some(day("2026-03-03"))
    );
    for bad in ["2026-13", "2026-3", "26-03", "2026/03", "march"] {
        assert!(Period::month(bad).is_err(), "{bad}");
    }
}

#[test]
fn period_over_period_per_tenant_with_change_and_share() {
    let (period, rows) = march_by_tenant(
        vec![
            tenant_day("a", "2026-03-01", 10, "3.000000"),
            tenant_day("a", "2026-03-02", 10, "1.500000"),
            tenant_day("b", "2026-03-01", 4, "0.500000"),
        ],
        vec![
            tenant_day("a", "2026-02-10", 20, "3.000000"),
            tenant_day("c", "2026-02-10", 1, "7.000000"),
        ],
    );
    assert_eq!(
        rows.len(),
        4,
        "a, b, c (billed before, nothing now) and the total"
    );
    let c = &rows[2];
    assert_eq!(c.key.tenant_id.as_deref(), Some("c"));
    assert_eq!(c.current.total_cost_usd, d("0"));
    assert_eq!(c.previous.as_ref().unwrap().total_cost_usd, d("7"));
    let a = &rows[0];
    assert_eq!(a.key.tenant_id.as_deref(), Some("a"));
    assert_eq!(a.current.total_cost_usd, d("4.5"));
    assert_eq!(a.previous.as_ref().unwrap().total_cost_usd, d("3"));
    assert_eq!(
        change_pct(a.current.total_cost_usd, Some(d("3"))),
        Some(d("50.00"))
    );
    assert!(
        rows[1].previous.is_none(),
        "b had nothing before: NULL, not 0"
    );
    let total = rows.last().unwrap();
    assert!(total.key.tenant_id.is_none());
    assert_eq!(total.current.total_cost_usd, d("5.0"));
    assert_eq!(
        total.previous.as_ref().unwrap().total_cost_usd,
        d("10"),
        "the previous total counts every tenant of the previous period"
    );
    assert_eq!(change_pct(d("5"), Some(d("10"))), Some(d("-50.00")));
    assert_eq!(change_pct(d("5"), Some(d("0"))), None);
    assert_eq!(change_pct(d("5"), None), None);
    let report = report_of(period, rows.clone());
    assert_eq!(report.share_of_total_pct(&rows[0]), Some(d("90.00")));
    assert_eq!(ratio(d("4.5"), 20), Some(d("0.225")));
    assert_eq!(
        ratio(d("1"), 3).map(crate::money::round),
        Some(d("0.333333"))
    );
    assert_eq!(ratio(d("1"), 0), None);
}

#[test]
fn by_day_and_by_month_compare_matching_days() {
    let period = Period {
        from: day("2026-03-30"),
        to: day("2026-04-02"),
        is_month: false,
    };
    let current = vec![
        tenant_day("a", "2026-03-30", 1, "1"),
        tenant_day("a", "2026-04-02", 1, "2"),
    ];
    let previous = vec![
        tenant_day("a", "2026-03-26", 1, "10"),
        tenant_day("a", "2026-03-29", 1, "20"),
    ];
    let rows = build_rows(&period, GroupBy::Day, &inputs(current.clone(), previous));
    let on = |text: &str| rows.iter().find(|r| r.key.day == Some(day(text))).unwrap();
    // Four days before each day.
    assert_eq!(
        on("2026-03-30").previous.as_ref().unwrap().total_cost_usd,
        d("10")
    );
    assert_eq!(
        on("2026-04-02").previous.as_ref().unwrap().total_cost_usd,
        d("20")
    );

    // By month: every grouping compares with the same previous period
    // (the 4 days before), each day with its matching day; a month cut by
    // the period is labelled with its days.
    let by_month_previous = vec![
        tenant_day("a", "2026-03-26", 1, "5"),
        tenant_day("a", "2026-03-29", 1, "7"),
        tenant_day("a", "2026-03-15", 1, "100"),
    ];
    let range = previous_range(&period, GroupBy::Month);
    assert_eq!(range, previous_range(&period, GroupBy::Tenant));
    assert_eq!(
        (range.from, range.to),
        (day("2026-03-26"), day("2026-03-29"))
    );
    let rows = build_rows(&period, GroupBy::Month, &inputs(current, by_month_previous));
    let month = |m: &str| {
        rows.iter()
            .find(|r| r.key.month.as_deref() == Some(m))
            .unwrap()
    };
    assert_eq!(month("2026-03").current.total_cost_usd, d("1"));
    assert_eq!(
        month("2026-03").previous.as_ref().unwrap().total_cost_usd,
        d("5")
    );
    assert_eq!(
        month("2026-04").previous.as_ref().unwrap().total_cost_usd,
        d("7")
    );
    assert_eq!(
        rows.last()
            .unwrap()
            .previous
            .as_ref()
            .unwrap()
            .total_cost_usd,
        d("12")
    );
    assert_eq!(month_label(&period, "2026-03"), "2026-03-30..2026-03-31");
    assert_eq!(month_label(&period, "2026-04"), "2026-04-01..2026-04-02");
    let march = Period::month("2026-03").unwrap();
    assert_eq!(month_label(&march, "2026-03"), "2026-03");
}

#[test]
fn cents_round_half_away_from_zero_and_the_difference_is_stated() {
    assert_eq!(cents(d("0.125")), d("0.13"));
    assert_eq!(cents(d("0.135")), d("0.14"));
    assert_eq!(cents(d("-0.125")), d("-0.13"));
    assert_eq!(cents(d("2.675000")), d("2.68"));
    let (period, rows) = march_by_tenant(
        vec![
            tenant_day("a", "2026-03-01", 1, "0.125"),
            tenant_day("b", "2026-03-01", 1, "0.125"),
            tenant_day("c", "2026-03-01", 1, "0.125"),
        ],
        Vec::new(),
    );
    let report = report_of(period, rows);
    // Lines 0.13 × 3 = 0.39; the total 0.375 rounds to 0.38.
    assert_eq!(
        rounding_difference(&report, |f| Some(f.total_cost_usd)),
        Some((d("0.39"), d("0.38")))
    );
    let notes = render::notes(&report).join("\n");
    assert!(
        notes.contains("lines add up to 0.39, the rounded total is 0.38 (difference -0.01; exact total 0.375000)"),
        "{notes}"
    );
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn coverage_needs_a_whole_run_or_every_shard_and_knows_partial_days() {
    let period = Period {
        from: day("2026-03-01"),
        to: day("2026-03-04"),
        is_month: false,
    };
    let run = |on: &str, id: &str, shard: Option<&str>, partial: bool| CoveringRun {
        day: day(on),
        run_id: id.into(),
        tenant_shard: shard.map(str::to_string),
        started_at: at("2026-03-10T02:00:00Z"),
        partial,
    };
    let runs = vec![
        run("2026-03-01", "whole", None, false),
        // Day 2: both shards of 2; day 3: only one of them; day 4: partial.
        run("2026-03-02", "s0", Some("0/2"), false),
        run("2026-03-02", "s1", Some("1/2"), false),
        run("2026-03-03", "s0", Some("0/2"), false),
        run("2026-03-04", "late", None, true),
    ];
    let coverage = coverage_from_runs(&period, &runs);
    assert_eq!(coverage.missing_days, [day("2026-03-03")]);
    assert_eq!(coverage.partial_days, [day("2026-03-04")]);
    assert_eq!(coverage.runs, ["late", "s0", "s1", "whole"]);
    assert!(!coverage.is_complete());
    assert_eq!(coverage.problems().len(), 2);
}

/// `--month` of the current month listed the days after today as "not
/// covered by a succeeded run": they have not ended yet.
#[test]
fn days_after_today_were_listed_as_not_covered_by_a_run() {
    let today = Utc::now().date_naive();
    let coverage = Coverage {
        missing_days: vec![
            today - chrono::Days::new(30),
            today,
            today + chrono::Days::new(3),
        ],
        ..Default::default()
    };
    let problems = coverage.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("1 day(s) not covered by a succeeded run"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("2 day(s) not yet ended everywhere"),
        "{problems:?}"
    );
}

#[test]
fn no_change_is_computed_against_days_no_run_covered() {
    let period = Period {
        from: day("2026-03-10"),
        to: day("2026-03-12"),
        is_month: false,
    };
    let current = vec![
        tenant_day("a", "2026-03-10", 10, "10"),
        tenant_day("a", "2026-03-12", 10, "10"),
    ];
    // The previous days are 03-07..09; only the 7th has figures, the 9th
    // no run covered.
    let previous = vec![tenant_day("a", "2026-03-07", 10, "100")];
    let mut inputs = inputs(current, previous);
    inputs.previous_missing_days = [day("2026-03-09")].into();
    let rows = build_rows(&period, GroupBy::Tenant, &inputs);
    assert!(
        rows.iter().all(|r| !r.comparable),
        "the whole previous period counts"
    );
    assert_eq!(
        rows[0].previous.as_ref().unwrap().total_cost_usd,
        d("100"),
        "what was read is still there"
    );
    // By day: the 10th compares with the 7th (covered), the 12th with the
    // 9th (not covered).
    let rows = build_rows(&period, GroupBy::Day, &inputs);
    let on = |text: &str| rows.iter().find(|r| r.key.day == Some(day(text))).unwrap();
    assert!(on("2026-03-10").comparable);
    assert!(!on("2026-03-12").comparable);
    assert!(!rows.last().unwrap().comparable, "the total spans the 9th");
}

#[test]
fn zero_cost_platform_rows_are_no_lines_of_a_cost_report() {
    let platform = crate::frames::PLATFORM_TENANT;
    let mut empty = tenant_day(platform, "2026-03-01", 0, "0");
    empty.figures = Figures::default();
    let mut costly = tenant_day(platform, "2026-03-02", 0, "0.5");
    costly.figures.calls = 0;
    let mut inputs = inputs(
        vec![empty, costly, tenant_day("a", "2026-03-01", 1, "1")],
        Vec::new(),
    );
    leave_out_empty_platform_rows(&mut inputs);
    assert_eq!(
        inputs.tenant_days.len(),
        2,
        "a platform row with a cost stays"
    );
    assert!(inputs
        .tenant_days
        .iter()
        .all(|t| t.day != day("2026-03-01") || t.tenant_id == "a"));
}

#[test]
fn the_streamed_json_is_the_whole_documents_pretty_bytes() {
    // `write_json` writes the rows one at a time; the bytes must be what
    // serde_json gives the whole document, with rows and without.
    let (period, rows) = march_by_tenant(
        vec![
            tenant_day("a", "2026-03-01", 10, "3.000000"),
            tenant_day("b\n\"quoted\"", "2026-03-01", 4, "0.500000"),
        ],
        vec![tenant_day("a", "2026-02-10", 20, "3.000000")],
    );
    for report in [report_of(period, rows), report_of(period, Vec::new())] {
        let streamed = render::json(&report).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&streamed).unwrap();
        let mut whole = serde_json::to_vec_pretty(&parsed).unwrap();
        whole.push(b'\n');
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(whole).unwrap()
        );
        assert!(parsed["rows"].is_array());
    }
}

#[test]
fn the_csv_written_in_slices_is_the_whole_frames_bytes() {
    // More lines than one slice: the header once, every line, the TOTAL,
    // byte for byte what the whole frame gives.
    let days: Vec<TenantDay> = (0..4_500)
        .map(|i| {
            let mut day = tenant_day(&format!("t{i:05}"), "2026-03-02", i % 7, "0.125000");
            if i % 3 == 0 {
                day.business_name = None;
            }
            day
        })
        .collect();
    let (period, rows) = march_by_tenant(days, Vec::new());
    let report = report_of(period, rows);
    let whole = crate::output::csv_bytes(
        &render::frame(&report).unwrap(),
        crate::output::MoneyText::Stored,
    )
    .unwrap();
    let sliced = render::csv(&report).unwrap();
    assert_eq!(
        String::from_utf8(sliced).unwrap(),
        String::from_utf8(whole).unwrap()
    );
}
