use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;

use super::*;
use crate::costs::{Figures, TenantDay};

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// A repeatable jitter in −2 %…+2 % for a tenant's day.
fn jitter(tenant: &str, day: NaiveDate, salt: u64) -> Decimal {
    let mut h: u64 = 1469598103934665603 ^ salt;
    for b in tenant.bytes().chain(day.to_string().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    Decimal::new((h % 401) as i64 - 200, 4)
}

/// A tenant day: `calls` calls of 3 minutes each, STT 0.01, LLM 0.05 and
/// TTS 0.02 dollars a minute (each times `llm_factor` for the LLM, and a
/// small repeatable jitter), the total their sum.
fn tenant_day(tenant: &str, day: NaiveDate, calls: i64, llm_factor: Decimal) -> TenantDay {
    let seconds = calls * 180;
    let minutes = Decimal::from(seconds) / Decimal::from(60);
    let cost = |rate: Decimal, salt: u64| {
        crate::money::round(rate * minutes * (Decimal::ONE + jitter(tenant, day, salt)))
    };
    let stt = cost(Decimal::new(1, 2), 1);
    let llm = crate::money::round(cost(Decimal::new(5, 2), 2) * llm_factor);
    let tts = cost(Decimal::new(2, 2), 3);
    TenantDay {
        tenant_id: tenant.to_string(),
        day,
        business_name: Some(format!("name of {tenant}")),
        timezone: "UTC".into(),
        figures: Figures {
            calls,
            completed_calls: calls,
            booked_calls: 0,
            billable_seconds: seconds,
            stt_cost_usd: Some(stt),
            llm_cost_usd: Some(llm),
            tts_cost_usd: Some(tts),
            total_cost_usd: stt + llm + tts,
            calls_missing_cost: 0,
            cost_mismatch_calls: 0,
        },
    }
}

const T1: &str = "00000000-0000-0000-0000-0000000000a1";

fn days(from: &str, n: u64) -> Vec<NaiveDate> {
    let first = date(from);
    (0..n).map(|i| first + Days::new(i)).collect()
}

fn analyse_all(tenant_days: &[TenantDay], from: &str, to: &str, missing: &[NaiveDate]) -> Analysis {
    let period = Period {
        from: date(from),
        to: date(to),
        is_month: false,
    };
    let missing: BTreeSet<NaiveDate> = missing.iter().copied().collect();
    analyse(
        period,
        Rule::default(),
        &Inputs {
            tenant_days,
            missing_days: &missing,
            partial_days: &BTreeSet::new(),
            only: &BTreeSet::new(),
            platform: true,
            read_from: "test".into(),
        },
    )
}

#[test]
fn a_tripled_llm_cost_per_minute_is_found_with_its_exact_excess() {
    let mut rows = Vec::new();
    for day in days("2026-10-01", 50) {
        let factor = if day == date("2026-11-10") || day == date("2026-11-11") {
            Decimal::from(3)
        } else {
            Decimal::ONE
        };
        rows.push(tenant_day(T1, day, 100 + (day.day() as i64 % 7), factor));
    }
    let a = analyse_all(&rows, "2026-11-01", "2026-11-19", &[]);
    let mut lines: Vec<(NaiveDate, Component, Kind)> = a
        .rises
        .iter()
        .map(|l| (l.day, l.component, l.kind))
        .collect();
    // Ranked by excess: whichever day cost more comes first.
    lines.sort_by_key(|l| l.0);
    assert_eq!(
        lines,
        [
            (date("2026-11-10"), Component::Llm, Kind::UnitCost),
            (date("2026-11-11"), Component::Llm, Kind::UnitCost)
        ]
    );
    assert!(a.falls.is_empty(), "{:?}", a.falls);
    // The excess: the day's LLM cost minus the median LLM cost per minute
    // of the 14 days before, at the day's minutes, computed here apart.
    let line = a
        .rises
        .iter()
        .find(|l| l.day == date("2026-11-10"))
        .unwrap();
    let before: Vec<&TenantDay> = rows
        .iter()
        .filter(|t| t.day < date("2026-11-10") && t.day >= date("2026-10-27"))
        .collect();
    assert_eq!(before.len(), 14);
    let mut per_minute: Vec<Decimal> = before
        .iter()
        .map(|t| {
            t.figures.llm_cost_usd.unwrap() * Decimal::from(60)
                / Decimal::from(t.figures.billable_seconds)
        })
        .collect();
    per_minute.sort();
    let median = (per_minute[6] + per_minute[7]) / Decimal::TWO;
    let day = rows.iter().find(|t| t.day == date("2026-11-10")).unwrap();
    let expected = crate::money::round(
        median * Decimal::from(day.figures.billable_seconds) / Decimal::from(60),
    );
    assert_eq!(line.expected_usd, expected);
    assert_eq!(
        line.excess_usd,
        day.figures.llm_cost_usd.unwrap() - expected
    );
    assert_eq!(line.unit, Unit::Minute);
    assert_eq!(line.unit_baseline_days.len(), 14);
    assert_eq!(line.unit_baseline_days[0], date("2026-10-27"));
    assert!(line.unit_ratio.unwrap() > 2.8, "{:?}", line.unit_ratio);
    // The total moved with the LLM: no second line for the same dollars.
    assert!(a.rises.iter().all(|l| l.component != Component::Total));
}

#[test]
fn quiet_weekends_flag_no_monday() {
    // Weekdays 200 calls, weekends 60: calls and costs follow the week.
    let mut rows = Vec::new();
    for day in days("2026-08-01", 120) {
        let weekend = day.weekday().number_from_monday() >= 6;
        let calls = if weekend { 60 } else { 200 } + (day.ordinal() as i64 % 5);
        rows.push(tenant_day(T1, day, calls, Decimal::ONE));
    }
    let a = analyse_all(&rows, "2026-10-01", "2026-11-28", &[]);
    assert!(a.rises.is_empty(), "{:?}", a.rises);
    assert!(a.falls.is_empty(), "{:?}", a.falls);
    assert_eq!(a.tenant_days_assessed, 59);
}

#[test]
fn doubled_calls_are_a_volume_line_worth_the_cost_above_the_like_days() {
    let mut rows = Vec::new();
    for day in days("2026-09-01", 80) {
        let calls = if day == date("2026-11-12") { 400 } else { 200 } + (day.ordinal() as i64 % 3);
        rows.push(tenant_day(T1, day, calls, Decimal::ONE));
    }
    let a = analyse_all(&rows, "2026-11-01", "2026-11-19", &[]);
    assert_eq!(a.rises.len(), 1, "{:?}", a.rises);
    let line = &a.rises[0];
    assert_eq!(
        (line.day, line.kind, line.component),
        (date("2026-11-12"), Kind::Volume, Component::Total)
    );
    let like: Vec<NaiveDate> = [28, 21, 14, 7]
        .iter()
        .map(|n| date("2026-11-12") - Days::new(*n))
        .collect();
    assert_eq!(line.volume_baseline_days, like);
    let mut costs: Vec<Decimal> = like
        .iter()
        .map(|d| {
            rows.iter()
                .find(|t| t.day == *d)
                .unwrap()
                .figures
                .total_cost_usd
        })
        .collect();
    costs.sort();
    let expected = (costs[1] + costs[2]) / Decimal::TWO;
    let day = rows.iter().find(|t| t.day == date("2026-11-12")).unwrap();
    assert_eq!(
        line.excess_usd,
        day.figures.total_cost_usd - crate::money::round(expected)
    );
}

#[test]
fn an_uncovered_day_is_unknown_never_a_fall_and_no_baseline_day() {
    let mut rows = Vec::new();
    for day in days("2026-09-01", 80) {
        // Nothing was rolled up on the missing day: no row at all.
        if day == date("2026-11-05") {
            continue;
        }
        rows.push(tenant_day(T1, day, 150, Decimal::ONE));
    }
    let a = analyse_all(&rows, "2026-11-01", "2026-11-19", &[date("2026-11-05")]);
    assert!(a.falls.is_empty(), "{:?}", a.falls);
    assert!(a.rises.is_empty(), "{:?}", a.rises);
    assert_eq!(a.unknown_days, [date("2026-11-05")]);
    assert_eq!(a.tenant_days_assessed, 18);
    // The same day covered with no calls is a known fall.
    let a = analyse_all(&rows, "2026-11-01", "2026-11-19", &[]);
    assert_eq!(a.falls.len(), 1, "{:?}", a.falls);
    assert_eq!(a.falls[0].kind, Kind::Volume);
}

#[test]
fn a_tenant_with_one_day_of_history_is_not_assessed_and_says_why() {
    let rows = vec![
        tenant_day(T1, date("2026-11-10"), 100, Decimal::ONE),
        tenant_day(T1, date("2026-11-11"), 100, Decimal::from(5)),
    ];
    let a = analyse_all(&rows, "2026-11-10", "2026-11-11", &[]);
    assert!(a.rises.is_empty());
    assert_eq!(a.not_assessed.len(), 1);
    assert_eq!(a.not_assessed[0].days, 2);
    assert!(
        a.not_assessed[0].reason.starts_with("too short a history")
            && a.not_assessed[0]
                .reason
                .ends_with("its calls start on 2026-11-10"),
        "{}",
        a.not_assessed[0].reason
    );
}

#[test]
fn a_tenant_with_a_few_calls_a_day_is_not_assessed() {
    let rows: Vec<TenantDay> = days("2026-10-01", 40)
        .into_iter()
        .map(|d| tenant_day(T1, d, 4, Decimal::ONE))
        .collect();
    let a = analyse_all(&rows, "2026-11-01", "2026-11-09", &[]);
    assert_eq!(a.not_assessed.len(), 1);
    assert!(a.not_assessed[0]
        .reason
        .starts_with("too few calls: a median of 4"));
}

fn tenant(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

#[test]
fn a_provider_price_change_is_one_platform_line_and_a_tenant_beyond_it_keeps_its_own() {
    let mut rows = Vec::new();
    for i in 1..=12 {
        for day in days("2026-09-20", 60) {
            let mut factor = if day >= date("2026-11-10") {
                Decimal::new(15, 1)
            } else {
                Decimal::ONE
            };
            // Tenant 3 also got its own LLM loop that day: ×4 on top.
            if i == 3 && day == date("2026-11-10") {
                factor *= Decimal::from(4);
            }
            rows.push(tenant_day(&tenant(i), day, 100 + i as i64, factor));
        }
    }
    let a = analyse_all(&rows, "2026-11-10", "2026-11-10", &[]);
    let platform: Vec<&Anomaly> = a.rises.iter().filter(|l| l.tenant_id.is_none()).collect();
    assert_eq!(platform.len(), 1, "{:?}", a.rises);
    assert_eq!(platform[0].component, Component::Llm);
    assert_eq!(platform[0].tenants_moved, Some((11, 12)));
    let tenants: Vec<&Anomaly> = a.rises.iter().filter(|l| l.tenant_id.is_some()).collect();
    assert_eq!(tenants.len(), 1, "{:?}", tenants);
    assert_eq!(tenants[0].tenant_id.as_deref(), Some(tenant(3).as_str()));
    assert_eq!(tenants[0].component, Component::Llm);
    let factor = tenants[0].platform_factor.unwrap();
    assert!(
        (factor - Decimal::new(15, 1)).abs() < Decimal::new(5, 2),
        "{factor}"
    );
    // Its excess is what the platform's move does not explain.
    let day = rows
        .iter()
        .find(|t| t.tenant_id == tenant(3) && t.day == date("2026-11-10"))
        .unwrap();
    assert!(tenants[0].excess_usd < day.figures.llm_cost_usd.unwrap() * Decimal::new(8, 1));
}

#[test]
fn refunds_that_make_a_day_negative_are_a_fall_never_an_alarm() {
    let mut rows = Vec::new();
    for day in days("2026-09-20", 60) {
        let mut t = tenant_day(T1, day, 120, Decimal::ONE);
        if day == date("2026-11-12") {
            t.figures.llm_cost_usd = Some(Decimal::new(-5000, 2));
            t.figures.total_cost_usd = t.figures.stt_cost_usd.unwrap()
                + t.figures.tts_cost_usd.unwrap()
                + Decimal::new(-5000, 2);
        }
        rows.push(t);
    }
    let a = analyse_all(&rows, "2026-11-01", "2026-11-18", &[]);
    assert!(a.rises.is_empty(), "{:?}", a.rises);
    assert_eq!(a.falls.len(), 1, "{:?}", a.falls);
    assert_eq!(a.falls[0].component, Component::Llm);
    assert!(a.falls[0].excess_usd < Decimal::from(-50));
}

#[test]
fn the_answer_does_not_depend_on_the_order_rows_arrive_in() {
    let mut rows = Vec::new();
    for i in 1..=8 {
        for day in days("2026-09-20", 60) {
            let factor = if i == 2 && day == date("2026-11-10") {
                Decimal::from(2)
            } else {
                Decimal::ONE
            };
            rows.push(tenant_day(&tenant(i), day, 80 + 3 * i as i64, factor));
        }
    }
    let a = analyse_all(&rows, "2026-11-01", "2026-11-18", &[]);
    rows.reverse();
    let b = analyse_all(&rows, "2026-11-01", "2026-11-18", &[]);
    let key = |a: &Analysis| {
        a.rises
            .iter()
            .map(|l| (l.tenant_id.clone(), l.day, l.component, l.excess_usd))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
    assert_eq!(a.rises.len(), 1);
}

fn analyse_view(tenant_days: &[TenantDay], day: &str, only: &[String], platform: bool) -> Analysis {
    let period = Period {
        from: date(day),
        to: date(day),
        is_month: false,
    };
    let only: BTreeSet<String> = only.iter().cloned().collect();
    analyse(
        period,
        Rule::default(),
        &Inputs {
            tenant_days,
            missing_days: &BTreeSet::new(),
            partial_days: &BTreeSet::new(),
            only: &only,
            platform,
            read_from: "test".into(),
        },
    )
}

/// Twelve tenants whose LLM price rose ×1.5 on 2026-11-10 (tenant 3 ×6),
/// and one tenant `big` times larger whose price stayed.
fn a_price_change(big: i64) -> Vec<TenantDay> {
    let mut rows = Vec::new();
    for i in 1..=13 {
        for day in days("2026-09-20", 60) {
            let mut factor = Decimal::ONE;
            if i <= 12 && day >= date("2026-11-10") {
                factor = Decimal::new(15, 1);
            }
            if i == 3 && day == date("2026-11-10") {
                factor *= Decimal::from(4);
            }
            let calls = if i == 13 { 100 * big } else { 100 + i as i64 };
            rows.push(tenant_day(&tenant(i), day, calls, factor));
        }
    }
    rows
}

#[test]
fn a_customers_page_showed_platform_lines_and_figures() {
    let rows = a_price_change(1);
    let a = analyse_view(&rows, "2026-11-10", &[tenant(3)], false);
    assert!(
        a.rises.iter().all(|l| l.tenant_id.is_some()),
        "{:?}",
        a.rises
    );
    assert!(a.rises.iter().all(|l| l.platform_factor.is_none()));
    assert!(a.rises.iter().all(|l| l.tenants_moved.is_none()));
    // Against its own history alone: the whole ×6 is its anomaly.
    let llm = a
        .rises
        .iter()
        .find(|l| l.component == Component::Llm)
        .unwrap();
    assert!(llm.unit_ratio.unwrap() > 5.5, "{llm:?}");
    assert_eq!(a.tenants_with_calls.len(), 1);
}

#[test]
fn a_move_of_most_tenants_that_no_platform_line_showed_hid_every_tenant() {
    // One tenant 100 times the others' size kept its price: the
    // platform's own cost per minute moved less than the rule's 25 %, so
    // there is no platform line, and each tenant that moved says so.
    let rows = a_price_change(100);
    let a = analyse_view(&rows, "2026-11-10", &[], true);
    assert!(
        a.rises.iter().all(|l| l.tenant_id.is_some()),
        "{:?}",
        a.rises
    );
    let llm_lines = a
        .rises
        .iter()
        .filter(|l| l.component == Component::Llm)
        .count();
    assert_eq!(llm_lines, 12, "{:?}", a.rises);
}

#[test]
fn a_tenant_whose_calls_fell_was_hidden_by_a_platform_rise_of_calls() {
    // Every tenant's calls doubled on 2026-11-12 but tenant 2's, which
    // fell to a tenth: one platform line for the rise, and tenant 2's
    // fall still its own line.
    let mut rows = Vec::new();
    for i in 1..=8 {
        for day in days("2026-09-20", 60) {
            let mut calls = 200 + i as i64;
            if day == date("2026-11-12") {
                calls = if i == 2 { 20 } else { calls * 2 };
            }
            rows.push(tenant_day(&tenant(i), day, calls, Decimal::ONE));
        }
    }
    let a = analyse_view(&rows, "2026-11-12", &[], true);
    let platform: Vec<&Anomaly> = a.rises.iter().filter(|l| l.tenant_id.is_none()).collect();
    assert_eq!(platform.len(), 1, "{:?}", a.rises);
    assert_eq!(platform[0].kind, Kind::Volume);
    assert!(
        a.rises.iter().all(|l| l.tenant_id.is_none()),
        "the tenants that doubled moved with the platform: {:?}",
        a.rises
    );
    assert_eq!(a.falls.len(), 1, "{:?}", a.falls);
    assert_eq!(a.falls[0].tenant_id.as_deref(), Some(tenant(2).as_str()));
    assert_eq!(a.falls[0].kind, Kind::Volume);
}

#[test]
fn a_tenant_that_kept_its_price_was_called_a_rise_after_a_provider_cut() {
    // Twelve tenants' LLM price fell to 0.6 on 2026-11-10; tenant 13 (on
    // another provider) kept its price: no line of its own either way.
    let mut rows = Vec::new();
    for i in 1..=13 {
        for day in days("2026-09-20", 60) {
            let factor = if i <= 12 && day >= date("2026-11-10") {
                Decimal::new(6, 1)
            } else {
                Decimal::ONE
            };
            rows.push(tenant_day(&tenant(i), day, 100 + i as i64, factor));
        }
    }
    let a = analyse_view(&rows, "2026-11-10", &[], true);
    assert!(
        a.falls
            .iter()
            .any(|l| l.tenant_id.is_none() && l.component == Component::Llm),
        "{:?}",
        a.falls
    );
    let thirteen = tenant(13);
    assert!(
        a.rises
            .iter()
            .chain(&a.falls)
            .all(|l| l.tenant_id.as_deref() != Some(thirteen.as_str())),
        "{:?}",
        a.rises
    );
}

#[test]
fn the_median_of_two_of_the_largest_decimals_panicked() {
    assert_eq!(median(vec![Decimal::MAX, Decimal::MAX]), Some(Decimal::MAX));
    assert_eq!(median(vec![Decimal::MIN, Decimal::MIN]), Some(Decimal::MIN));
    assert_eq!(
        median(vec![Decimal::ONE, Decimal::from(2)]),
        Some(Decimal::new(15, 1))
    );
}
