//! Finance cost reports: a period's figures per tenant (or day, month,
//! outcome) from the summary tables or the report files, exact to the
//! micro-dollar, with the previous period, the coverage of the period by
//! succeeded runs and, on request, a reconciliation against the source.
//! Rendering lives in `render`.

pub mod chart;
pub mod read;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;

use crate::error::Result;
use crate::frames::{PLATFORM_NAME, PLATFORM_TENANT};

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Tenant,
    Day,
    Outcome,
    Month,
}

pub use crate::window::Period;

/// Counts and exact sums of a set of tenant days (or outcome groups, which
/// have no component costs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub calls: i64,
    pub completed_calls: i64,
    pub booked_calls: i64,
    pub billable_seconds: i64,
    pub stt_cost_usd: Option<Decimal>,
    pub llm_cost_usd: Option<Decimal>,
    pub tts_cost_usd: Option<Decimal>,
    pub total_cost_usd: Decimal,
    /// Calls with a missing cost component (`tenant_daily.calls_missing_cost`).
    pub calls_missing_cost: i64,
    /// Calls whose components do not add up to their total
    /// (`tenant_daily.cost_mismatch_calls`).
    pub cost_mismatch_calls: i64,
}

fn add_option(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Figures {
    pub fn add(&mut self, other: &Figures) {
        self.calls += other.calls;
        self.completed_calls += other.completed_calls;
        self.booked_calls += other.booked_calls;
        self.billable_seconds += other.billable_seconds;
        self.stt_cost_usd = add_option(self.stt_cost_usd, other.stt_cost_usd);
        self.llm_cost_usd = add_option(self.llm_cost_usd, other.llm_cost_usd);
        self.tts_cost_usd = add_option(self.tts_cost_usd, other.tts_cost_usd);
        self.total_cost_usd += other.total_cost_usd;
        self.calls_missing_cost += other.calls_missing_cost;
        self.cost_mismatch_calls += other.cost_mismatch_calls;
    }

    /// STT + LLM + TTS, where any component is known.
    pub fn components_usd(&self) -> Option<Decimal> {
        [self.stt_cost_usd, self.llm_cost_usd, self.tts_cost_usd]
            .into_iter()
            .fold(None, add_option)
    }

    /// Billable minutes, exact to 28 digits (rounded where written).
    pub fn billable_minutes(&self) -> Decimal {
        ratio(Decimal::from(self.billable_seconds), 60).unwrap_or_default()
    }
}

/// `value / count`, exact to 28 digits (rounded once, where it is
/// written or shown: 6 decimals in CSV and JSON, 4 on screens); None when
/// count is 0. Rounding it here too would round twice (2.31554996 to
/// 2.315550, then to 2.3156 where one rounding gives 2.3155).
pub fn ratio(value: Decimal, count: i64) -> Option<Decimal> {
    (count != 0).then(|| value / Decimal::from(count))
}

/// The change from `previous` to `current` in %, exact (rounded once
/// where written: 2 decimals in CSV and JSON, 1 on screens); None when
/// there was nothing before.
pub fn change_pct(current: Decimal, previous: Option<Decimal>) -> Option<Decimal> {
    let previous = previous.filter(|p| !p.is_zero())?;
    Some((current - previous) * Decimal::ONE_HUNDRED / previous)
}

/// One tenant day of `tenant_daily` as finance reads it.
#[derive(Debug, Clone)]
pub struct TenantDay {
    pub tenant_id: String,
    pub day: NaiveDate,
    pub business_name: Option<String>,
    pub timezone: String,
    pub figures: Figures,
}

/// One row of `tenant_daily_outcomes` with its tenant's name and zone.
#[derive(Debug, Clone)]
pub struct OutcomeDay {
    pub tenant_id: String,
    pub day: NaiveDate,
    pub business_name: Option<String>,
    pub timezone: String,
    pub status: String,
    pub outcome: String,
    pub figures: Figures,
}

/// What identifies a row; the grand total has no tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub tenant_id: Option<String>,
    pub day: Option<NaiveDate>,
    /// `YYYY-MM`.
    pub month: Option<String>,
    pub status: Option<String>,
    pub outcome: Option<String>,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct CostRow {
    pub key: RowKey,
    pub business_name: Option<String>,
    pub timezone: Option<String>,
    pub current: Figures,
    /// The same figures in the previous period; None when there was nothing.
    pub previous: Option<Figures>,
    /// Whether the change may be shown: every day of the period this row
    /// stands for, and every previous day it is compared with, was
    /// covered. Otherwise the change is NULL (a missing day is not a 0).
    pub comparable: bool,
    /// Some of the row's days were billed on UTC days because the tenant's
    /// time zone was missing or unknown (findings of kind
    /// `invalid_timezone`): shown wherever its costs are.
    pub zone_unknown: bool,
}

impl CostRow {
    /// The grand total: no tenant and no name (the line `--top` adds up
    /// has a name, "Other (N rows)").
    pub fn is_total(&self) -> bool {
        self.key.tenant_id.is_none() && self.business_name.is_none()
    }

    /// The name people see: the tenant's, `(platform)`, or `TOTAL`.
    pub fn display_name(&self) -> String {
        match (&self.key.tenant_id, &self.business_name) {
            // The line of the rows `--top` left out.
            (None, Some(other)) => other.clone(),
            (None, None) => "TOTAL".to_string(),
            (Some(id), _) if id == PLATFORM_TENANT => PLATFORM_NAME.to_string(),
            (Some(_), Some(name)) => name.clone(),
            (Some(id), None) => id.clone(),
        }
    }
}

pub use crate::summaries::Coverage;

/// The summary vs the source for one tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantDifference {
    pub tenant_id: String,
    pub summary_total_cost_usd: String,
    pub source_total_cost_usd: String,
    pub difference_usd: String,
    pub summary_calls: i64,
    pub source_calls: i64,
    pub days: Vec<NaiveDate>,
}

/// The outcome of `--reconcile`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reconciliation {
    pub tenants_checked: usize,
    pub differences: Vec<TenantDifference>,
}

/// A whole report, ready to render.
#[derive(Debug, Clone)]
pub struct Report {
    pub period: Period,
    pub previous_period: Period,
    pub by: GroupBy,
    /// The rows, sorted; the grand total is last.
    pub rows: Vec<CostRow>,
    pub coverage: Coverage,
    /// How succeeded runs covered the previous period (its changes are
    /// only shown where it was covered).
    pub previous_coverage: Coverage,
    pub reconciliation: Option<Reconciliation>,
    /// Which rows are shown, and in which order (`--sort`, `--top`).
    pub view: View,
    /// Daily total cost per tenant (for charts), by tenant id.
    pub daily: BTreeMap<String, BTreeMap<NaiveDate, Decimal>>,
    /// Where the figures were read: the target database or a folder.
    pub read_from: String,
    /// The period's tenant days added up, whatever the grouping: the
    /// components, the total, and the calls with missing or mismatched
    /// costs behind them.
    pub totals: Figures,
    /// The period's tenant days that runs restated after their first run,
    /// and by how much (None from report files: they carry no history).
    pub restated: Option<crate::changes::Restated>,
}

/// `--sort COLUMN` and `--top N`: the rows shown, ranked and trimmed. The
/// TOTAL row is always the total of every row, shown or not.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// A column of the report (numbers largest first, text A to Z).
    pub sort: Option<String>,
    /// Keep the first N rows (by `sort`, else by total_cost_usd).
    pub top: Option<usize>,
    /// `--wide`: every column in the terminal table.
    pub wide: bool,
}

impl Report {
    /// Whether the previous period was covered on every day.
    pub fn previous_complete(&self) -> bool {
        self.previous_coverage.missing_days.is_empty()
    }

    /// The grand total: the last row (looked up once per rendered row, so
    /// never a scan: a scan made `--by day` over 1,000 tenants quadratic).
    pub fn total(&self) -> Option<&CostRow> {
        self.rows.last().filter(|r| r.key.tenant_id.is_none())
    }

    /// Share of the period's total cost in %, exact (a percent, as every
    /// `_pct` figure is; rounded once where written).
    pub fn share_of_total_pct(&self, row: &CostRow) -> Option<Decimal> {
        let total = self.total()?.current.total_cost_usd;
        (!total.is_zero()).then(|| row.current.total_cost_usd * Decimal::ONE_HUNDRED / total)
    }
}

/// The figures of the period and the previous one, grouped `by`.
pub struct Inputs {
    pub tenant_days: Vec<TenantDay>,
    pub previous_tenant_days: Vec<TenantDay>,
    pub outcome_days: Vec<OutcomeDay>,
    pub previous_outcome_days: Vec<OutcomeDay>,
    /// Days of the period no succeeded run covered.
    pub missing_days: BTreeSet<NaiveDate>,
    /// Days of the previous period no succeeded run covered.
    pub previous_missing_days: BTreeSet<NaiveDate>,
    /// Tenant days billed on UTC days because the tenant's time zone was
    /// missing or unknown.
    pub zone_unknown: BTreeSet<(String, NaiveDate)>,
}

fn month_of(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// The days of the period a month row stands for: the month's days inside
/// the period (fewer than the month's when the period starts or ends
/// inside it).
pub fn month_days(period: &Period, month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let mut days = period.each_day().filter(|d| month_of(*d) == month);
    let first = days.next()?;
    Some((first, days.last().unwrap_or(first)))
}

/// A month row's name for people: `2026-11` when the period holds the
/// whole month, else its days, `2026-11-21..2026-11-30`.
pub fn month_label(period: &Period, month: &str) -> String {
    match month_days(period, month) {
        Some((first, last))
            if first.day() != 1
                || last.checked_add_days(Days::new(1)).map(|d| d.day()) != Some(1) =>
        {
            format!("{first}..{last}")
        }
        _ => month.to_string(),
    }
}

/// The days whose figures are "the previous period" of a report: the
/// period before (`Period::previous`) in every grouping, so a month row,
/// a day row and a tenant row of the same period compare with the same
/// days (each day with `Period::previous_day`).
pub fn previous_range(period: &Period, _by: GroupBy) -> Period {
    period.previous()
}

/// Groups the period's figures into rows, each with its previous-period
/// figures, and a grand total.
pub fn build_rows(period: &Period, by: GroupBy, inputs: &Inputs) -> Vec<CostRow> {
    // Current figures per row key, with the row's days (for the previous
    // period's matching days).
    struct Acc {
        business_name: Option<String>,
        timezone: Option<String>,
        figures: Figures,
        days: BTreeSet<NaiveDate>,
    }
    let mut rows: BTreeMap<RowKey, Acc> = BTreeMap::new();
    let mut add = |key: RowKey, name: &Option<String>, tz: &str, day: NaiveDate, f: &Figures| {
        let acc = rows.entry(key).or_insert_with(|| Acc {
            business_name: None,
            timezone: None,
            figures: Figures::default(),
            days: BTreeSet::new(),
        });
        // The latest day's name and zone describe the tenant.
        acc.business_name = name.clone().or(acc.business_name.take());
        acc.timezone = Some(tz.to_string());
        acc.figures.add(f);
        acc.days.insert(day);
    };
    let tenant_key = |t: &TenantDay| -> RowKey {
        RowKey {
            tenant_id: Some(t.tenant_id.clone()),
            day: (by == GroupBy::Day).then_some(t.day),
            month: (by == GroupBy::Month).then(|| month_of(t.day)),
            ..Default::default()
        }
    };
    let outcome_key = |o: &OutcomeDay| -> RowKey {
        RowKey {
            tenant_id: Some(o.tenant_id.clone()),
            status: Some(o.status.clone()),
            outcome: Some(o.outcome.clone()),
            ..Default::default()
        }
    };
    if by == GroupBy::Outcome {
        for o in &inputs.outcome_days {
            add(
                outcome_key(o),
                &o.business_name,
                &o.timezone,
                o.day,
                &o.figures,
            );
        }
    } else {
        for t in &inputs.tenant_days {
            add(
                tenant_key(t),
                &t.business_name,
                &t.timezone,
                t.day,
                &t.figures,
            );
        }
    }

    // Previous figures: per key, per day of the previous period.
    let mut previous_by_day: BTreeMap<(RowKey, NaiveDate), Figures> = BTreeMap::new();
    let strip = |mut key: RowKey| {
        key.day = None;
        key.month = None;
        key
    };
    // Who the previous period's keys are, for rows with nothing now.
    let mut previous_names: BTreeMap<RowKey, (Option<String>, String)> = BTreeMap::new();
    if by == GroupBy::Outcome {
        for o in &inputs.previous_outcome_days {
            previous_by_day
                .entry((outcome_key(o), o.day))
                .or_default()
                .add(&o.figures);
            previous_names.insert(
                outcome_key(o),
                (o.business_name.clone(), o.timezone.clone()),
            );
        }
    } else {
        for t in &inputs.previous_tenant_days {
            previous_by_day
                .entry((strip(tenant_key(t)), t.day))
                .or_default()
                .add(&t.figures);
            previous_names.insert(
                strip(tenant_key(t)),
                (t.business_name.clone(), t.timezone.clone()),
            );
        }
    }
    // A tenant (or outcome group) billed in the previous period and not
    // in this one is a row too, with nothing this period: its fall is part
    // of the change, and a previous-period column adds up to its TOTAL.
    // Only when every day of the period was covered: otherwise its 0 could
    // be a day nobody rolled up, and an unknown is never shown as a 0.
    if matches!(by, GroupBy::Tenant | GroupBy::Outcome) && inputs.missing_days.is_empty() {
        for (key, (name, zone)) in previous_names {
            rows.entry(key).or_insert_with(|| Acc {
                business_name: name,
                timezone: Some(zone),
                figures: Figures::default(),
                days: BTreeSet::new(),
            });
        }
    }
    let previous_period = previous_range(period, by);
    // The days of the period a row stands for, and the previous days it
    // is compared with: the whole periods for tenant and outcome rows, the
    // day and its matching day for a day, the month's days and the same
    // days of the month before for a month.
    let days_of = |key: &RowKey, days: &BTreeSet<NaiveDate>| -> (Vec<NaiveDate>, Vec<NaiveDate>) {
        match by {
            GroupBy::Tenant | GroupBy::Outcome => (
                period.each_day().collect(),
                previous_period.each_day().collect(),
            ),
            GroupBy::Day => (
                days.iter().copied().collect(),
                days.iter()
                    .filter_map(|d| period.previous_day(*d))
                    .collect(),
            ),
            GroupBy::Month => {
                let month = key.month.clone().unwrap_or_default();
                let current: Vec<NaiveDate> = period
                    .each_day()
                    .filter(|d| month_of(*d) == month)
                    .collect();
                let previous = current
                    .iter()
                    .filter_map(|d| period.previous_day(*d))
                    .collect();
                (current, previous)
            }
        }
    };
    let comparable = |current: &[NaiveDate], previous: &[NaiveDate]| {
        !current.iter().any(|d| inputs.missing_days.contains(d))
            && !previous
                .iter()
                .any(|d| inputs.previous_missing_days.contains(d))
    };
    let previous_of = |key: &RowKey, wanted: &[NaiveDate]| -> Option<Figures> {
        let base = strip(key.clone());
        let mut sum: Option<Figures> = None;
        for d in wanted {
            if let Some(f) = previous_by_day.get(&(base.clone(), *d)) {
                sum.get_or_insert_with(Figures::default).add(f);
            }
        }
        sum
    };

    let mut out: Vec<CostRow> = rows
        .iter()
        .map(|(key, acc)| {
            let (current_days, previous_days) = days_of(key, &acc.days);
            CostRow {
                key: key.clone(),
                business_name: acc.business_name.clone(),
                timezone: acc.timezone.clone(),
                current: acc.figures.clone(),
                previous: previous_of(key, &previous_days),
                comparable: comparable(&current_days, &previous_days),
                // The row's own days: a day row only when that day was.
                zone_unknown: key.tenant_id.as_ref().is_some_and(|id| {
                    acc.days
                        .iter()
                        .any(|d| inputs.zone_unknown.contains(&(id.clone(), *d)))
                }),
            }
        })
        .collect();

    let mut total = Figures::default();
    for row in &out {
        total.add(&row.current);
    }
    let mut previous_total: Option<Figures> = None;
    for ((_, day), f) in &previous_by_day {
        if *day >= previous_period.from && *day <= previous_period.to {
            previous_total.get_or_insert_with(Figures::default).add(f);
        }
    }
    let total_comparable = comparable(
        &period.each_day().collect::<Vec<_>>(),
        &previous_period.each_day().collect::<Vec<_>>(),
    );
    out.push(CostRow {
        key: RowKey::default(),
        business_name: None,
        timezone: None,
        current: total,
        previous: previous_total,
        comparable: total_comparable,
        // The TOTAL is no tenant: its lines say which were.
        zone_unknown: false,
    });
    out
}

/// Daily total cost per tenant, for charts.
pub fn daily_costs(tenant_days: &[TenantDay]) -> BTreeMap<String, BTreeMap<NaiveDate, Decimal>> {
    let mut out: BTreeMap<String, BTreeMap<NaiveDate, Decimal>> = BTreeMap::new();
    for t in tenant_days {
        *out.entry(t.tenant_id.clone())
            .or_default()
            .entry(t.day)
            .or_default() += t.figures.total_cost_usd;
    }
    out
}

/// Rounds to cents for people, half away from zero (`money::round_to`).
pub fn cents(value: Decimal) -> Decimal {
    crate::money::round_to(value, 2)
}

/// The difference between the sum of the rounded lines and the rounded
/// total of a money column: what a reader adding up the lines on a screen
/// or a page finds (a workbook's cells hold exact figures and tie out).
pub fn rounding_difference(
    report: &Report,
    column: impl Fn(&Figures) -> Option<Decimal>,
) -> Option<(Decimal, Decimal)> {
    let total = column(&report.total()?.current)?;
    // The lines people see: those shown, and the one `--top` adds up.
    let lines: Decimal = render::people_rows(report)
        .iter()
        .filter(|r| !r.is_total())
        .filter_map(|r| column(&r.current))
        .map(cents)
        .sum();
    Some((lines, cents(total)))
}

/// Everything a report needs from `summaries`, read and computed: the
/// period's figures and the previous period's, coverage, restatements;
/// and the period's tenant days, for `reconcile` (done apart: it reads the
/// source, which may take long, and a report's snapshot must not sit idle
/// in its transaction that long).
pub fn build(
    summaries: &mut read::Summaries,
    period: Period,
    by: GroupBy,
    tenants: &crate::selection::TenantSelection,
) -> Result<(Report, Vec<TenantDay>)> {
    let previous = previous_range(&period, by);
    let outcomes = by == GroupBy::Outcome;
    let tenant_days = summaries.tenant_days(&period, tenants)?;
    // Tests commit a run here: the rest must still be of the same state.
    crate::fault::pause_point("report_between_reads");
    let coverage = summaries.coverage(&period)?;
    let restated = summaries.restated(&period, tenants)?;
    let previous_coverage = summaries.coverage(&previous)?;
    let mut inputs = Inputs {
        previous_tenant_days: if outcomes {
            Vec::new()
        } else {
            summaries.tenant_days(&previous, tenants)?
        },
        outcome_days: if outcomes {
            summaries.outcome_days(&period, tenants)?
        } else {
            Vec::new()
        },
        previous_outcome_days: if outcomes {
            summaries.outcome_days(&previous, tenants)?
        } else {
            Vec::new()
        },
        tenant_days,
        missing_days: coverage.missing_days.iter().copied().collect(),
        previous_missing_days: previous_coverage.missing_days.iter().copied().collect(),
        zone_unknown: summaries.zone_unknown_days(&period, tenants)?,
    };
    leave_out_empty_platform_rows(&mut inputs);
    let mut totals = Figures::default();
    for t in &inputs.tenant_days {
        totals.add(&t.figures);
    }
    let report = Report {
        period,
        previous_period: previous,
        by,
        rows: build_rows(&period, by, &inputs),
        coverage,
        previous_coverage,
        reconciliation: None,
        view: View::default(),
        daily: daily_costs(&inputs.tenant_days),
        read_from: summaries.describe(),
        totals,
        restated,
    };
    Ok((report, inputs.tenant_days))
}

/// Recomputes the period's totals from `source` and compares them with
/// the report's tenant days (`build`'s second answer).
pub fn reconcile(
    report: &mut Report,
    tenant_days: &[TenantDay],
    source: &crate::pipeline::SourceSpec,
    tenants: &crate::selection::TenantSelection,
) -> Result<()> {
    report.reconciliation = Some(read::reconcile(
        source,
        &report.period,
        tenants,
        tenant_days,
    )?);
    Ok(())
}

/// Whether figures are a platform row (errors without a tenant) that
/// costs nothing: such rows fill the summary tables for `errors`, but are
/// no line of a cost report.
fn is_empty_platform(tenant_id: &str, f: &Figures) -> bool {
    tenant_id == PLATFORM_TENANT
        && f.calls == 0
        && f.total_cost_usd.is_zero()
        && [f.stt_cost_usd, f.llm_cost_usd, f.tts_cost_usd]
            .iter()
            .all(|c| c.is_none_or(|c| c.is_zero()))
}

/// Leaves zero-cost platform rows out of a cost report's inputs.
pub fn leave_out_empty_platform_rows(inputs: &mut Inputs) {
    for days in [&mut inputs.tenant_days, &mut inputs.previous_tenant_days] {
        days.retain(|t| !is_empty_platform(&t.tenant_id, &t.figures));
    }
    for days in [&mut inputs.outcome_days, &mut inputs.previous_outcome_days] {
        days.retain(|o| !is_empty_platform(&o.tenant_id, &o.figures));
    }
}

#[cfg(test)]
mod tests;
