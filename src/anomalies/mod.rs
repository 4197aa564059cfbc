//! Cost anomalies: a tenant day (or the whole platform's day) whose cost
//! per unit or whose volume left its own recent history, with the excess
//! in exact dollars. Pure: tenant days and the days runs covered come in
//! (`crate::costs::read`), the rule lives here, `render` writes it out.
//!
//! The rule (docs/CONTRACT.md "Cost anomalies"), per scope (a tenant, or
//! the platform: every tenant's figures added up) and per component
//! (stt, llm, tts, total):
//!
//! - **Unit cost.** The day's cost per billable minute (per call where a
//!   day of the scope has no billable seconds) against the median and the
//!   median absolute deviation of the same figure on the scope's previous
//!   `UNIT_BASELINE_DAYS` covered days with calls (at most `LOOKBACK_DAYS`
//!   back; at least `MIN_UNIT_BASELINE_DAYS`). A cost per minute does not
//!   follow the week's seasons (a quiet Sunday has fewer minutes, not
//!   cheaper ones), so every day of the week is a baseline day; a day with
//!   fewer minutes than the baseline's median is noisier, and its spread
//!   grows with √(median / day's).
//! - **Volume.** The day's calls against the same weekday of the previous
//!   `VOLUME_BASELINE_WEEKS` weeks (covered ones, at least
//!   `MIN_VOLUME_BASELINE_DAYS`): calls follow the week (quiet weekends),
//!   so a baseline of the days just before would flag every Monday.
//! - An anomaly moves at least `MIN_UNIT_CHANGE` (unit) or
//!   `MIN_VOLUME_RATIO` (volume) from the baseline's median, by more than
//!   `k` robust standard deviations (1.4826 × MAD; for volume never less
//!   than the counting noise √(`VOLUME_DISPERSION` × median)), and is
//!   worth at least `min_excess_usd`.
//!
//! Its size in dollars, exact to the micro-dollar (decimals throughout;
//! ratios shown beside it are floats): for a unit-cost anomaly the day's
//! cost minus what the baseline's median unit cost would have cost at the
//! day's volume; for a volume anomaly (or both at once) the day's cost
//! minus the median cost of its baseline days.
//!
//! A provider's price change moves every tenant at once: when the median
//! of the tenants' unit-cost ratios moves by `MIN_UNIT_CHANGE`, it is one
//! platform line, and a tenant's own line is shown only where it moved
//! beyond the platform's move (its baseline then scaled by that move).

pub mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::costs::TenantDay;
use crate::frames::PLATFORM_TENANT;
use crate::window::Period;

/// How many earlier covered days with calls form a unit-cost baseline.
pub const UNIT_BASELINE_DAYS: usize = 14;
/// Fewer than this and the scope's day is not assessed (too short a history).
pub const MIN_UNIT_BASELINE_DAYS: usize = 7;
/// How far back baseline days are looked for.
pub const LOOKBACK_DAYS: u64 = 56;
/// Like days of a volume baseline: the same weekday of this many weeks before.
pub const VOLUME_BASELINE_WEEKS: u64 = 4;
/// Fewer covered like days than this and the volume is not assessed.
pub const MIN_VOLUME_BASELINE_DAYS: usize = 3;
/// A tenant whose baseline days have a median of fewer calls than this
/// is not assessed: a handful of calls a day makes a cost per unit noise.
pub const MIN_CALLS_A_DAY: i64 = 10;
/// A unit-cost anomaly moves at least this fraction of the baseline's
/// median (up; down, by the same factor: ÷1.25).
pub const MIN_UNIT_CHANGE: f64 = 0.25;
/// A volume anomaly is at least this many times its baseline's median
/// calls (or at most its inverse)...
pub const MIN_VOLUME_RATIO: f64 = 1.75;
/// ...and at least this many calls away from it.
pub const MIN_VOLUME_CHANGE: f64 = 10.0;
/// How much more than Poisson a tenant's daily calls vary: the floor of
/// a volume baseline's spread is √(this × median).
pub const VOLUME_DISPERSION: f64 = 2.0;
/// Platform unit-cost lines need at least this many tenants assessed.
pub const MIN_PLATFORM_TENANTS: usize = 5;

/// The rule's settings people may change (`anomalies --k`, `--min-excess`).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Robust standard deviations a day must be from its baseline's median.
    pub k: f64,
    /// An anomaly is worth at least this many dollars (either way).
    pub min_excess_usd: Decimal,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            k: 5.0,
            min_excess_usd: Decimal::ONE,
        }
    }
}

/// A cost component of `tenant_daily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Stt,
    Llm,
    Tts,
    Total,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Stt,
        Component::Llm,
        Component::Tts,
        Component::Total,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Stt => "stt",
            Component::Llm => "llm",
            Component::Tts => "tts",
            Component::Total => "total",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a unit cost is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Per billable minute: where the day and every baseline day has
    /// billable seconds (a cost that follows the call's length).
    Minute,
    /// Per call: where some of those days had no billable seconds.
    Call,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Call => "call",
        }
    }

    /// The day's volume in this unit, exact (minutes to 28 digits).
    fn volume(self, day: &DayFigures) -> Decimal {
        match self {
            Unit::Minute => Decimal::from(day.billable_seconds) / Decimal::from(60),
            Unit::Call => Decimal::from(day.calls),
        }
    }

    /// The day's cost of `component` per unit; None without volume or cost.
    fn cost(self, day: &DayFigures, component: Component) -> Option<Decimal> {
        let cost = day.cost[component.index()]?;
        match self {
            // cost × 60 / seconds: one division, not a division by a
            // quotient already rounded to 28 digits.
            Unit::Minute if day.billable_seconds > 0 => cost
                .checked_mul(Decimal::from(60))?
                .checked_div(Decimal::from(day.billable_seconds)),
            Unit::Call if day.calls > 0 => cost.checked_div(Decimal::from(day.calls)),
            _ => None,
        }
    }
}

/// Which figure moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    UnitCost,
    Volume,
    /// The volume and the unit cost at once.
    Both,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::UnitCost => "unit_cost",
            Kind::Volume => "volume",
            Kind::Both => "both",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Rise,
    Fall,
}

/// One scope's figures of one day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayFigures {
    pub calls: i64,
    pub billable_seconds: i64,
    /// stt, llm, tts, total (None: unknown for the day).
    pub cost: [Option<Decimal>; 4],
    /// A sum of the component that outgrew a decimal: unknown for good
    /// (a later day's figure must not start the sum again).
    overflowed: [bool; 4],
}

impl DayFigures {
    fn of(t: &TenantDay) -> DayFigures {
        let f = &t.figures;
        DayFigures {
            calls: f.calls,
            billable_seconds: f.billable_seconds,
            cost: [
                f.stt_cost_usd,
                f.llm_cost_usd,
                f.tts_cost_usd,
                Some(f.total_cost_usd),
            ],
            overflowed: [false; 4],
        }
    }

    fn add(&mut self, other: &DayFigures) {
        self.calls = self.calls.saturating_add(other.calls);
        self.billable_seconds = self.billable_seconds.saturating_add(other.billable_seconds);
        for i in 0..4 {
            if self.overflowed[i] {
                continue;
            }
            self.cost[i] = match (self.cost[i], other.cost[i]) {
                (Some(a), Some(b)) => {
                    let sum = a.checked_add(b);
                    self.overflowed[i] = sum.is_none();
                    sum
                }
                (a, None) => a,
                (None, b) => b,
            };
        }
    }
}

/// One line: a scope's day and component that left its baseline.
#[derive(Debug, Clone)]
pub struct Anomaly {
    /// None: the platform (every tenant added up).
    pub tenant_id: Option<String>,
    pub business_name: Option<String>,
    pub day: NaiveDate,
    pub component: Component,
    pub kind: Kind,
    pub direction: Direction,
    /// The day's cost minus what its baseline says it would have cost,
    /// rounded to the micro-dollar.
    pub excess_usd: Decimal,
    /// The day's cost of the component.
    pub cost_usd: Decimal,
    /// What the baseline says the day would have cost (rounded to the
    /// micro-dollar): `cost_usd - excess_usd`.
    pub expected_usd: Decimal,
    pub unit: Unit,
    /// The day's cost per unit (None: no volume that day).
    pub unit_cost_usd: Option<Decimal>,
    /// The baseline's median cost per unit (scaled by the platform's
    /// move where `platform_factor` is set).
    pub baseline_unit_cost_usd: Option<Decimal>,
    /// unit_cost / baseline unit cost.
    pub unit_ratio: Option<f64>,
    pub calls: i64,
    /// The median calls of the like days (None: volume not assessed).
    pub baseline_calls: Option<Decimal>,
    /// calls / baseline calls.
    pub volume_ratio: Option<f64>,
    /// The days the unit-cost baseline came from, oldest first.
    pub unit_baseline_days: Vec<NaiveDate>,
    /// The like days the volume baseline came from, oldest first.
    pub volume_baseline_days: Vec<NaiveDate>,
    /// Components whose unit cost moved too (a volume line's).
    pub components_moved: Vec<Component>,
    /// A tenant line on a day the platform's unit cost moved: the
    /// platform's move (the median tenant's ratio) its baseline was
    /// scaled by.
    pub platform_factor: Option<Decimal>,
    /// A platform unit-cost line: the tenants whose own move it explains,
    /// and the tenants assessed that day.
    pub tenants_moved: Option<(usize, usize)>,
}

/// A tenant whose days of the period were not assessed, and why.
#[derive(Debug, Clone)]
pub struct NotAssessed {
    pub tenant_id: String,
    pub business_name: Option<String>,
    /// The covered days of the period with calls it was not assessed on,
    /// and the first and last of them.
    pub days: usize,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub reason: String,
}

/// What `anomalies` found over a period.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub period: Period,
    pub rule: Rule,
    /// Costs rose: ranked by excess, largest first.
    pub rises: Vec<Anomaly>,
    /// Costs fell (never an alarm): ranked by excess, most negative first.
    pub falls: Vec<Anomaly>,
    pub not_assessed: Vec<NotAssessed>,
    /// Days of the period no succeeded run covered (unknown, not zero).
    pub unknown_days: Vec<NaiveDate>,
    /// Days rolled up before they had ended everywhere (their figures may
    /// still grow): not assessed, and no baseline day.
    pub partial_days: Vec<NaiveDate>,
    /// Tenant days of the period assessed.
    pub tenant_days_assessed: usize,
    /// The tenants (of `only`, if given) with calls on a known day of the
    /// period.
    pub tenants_with_calls: BTreeSet<String>,
    /// Where the figures were read.
    pub read_from: String,
}

/// The days to read for `period`: its baselines reach `LOOKBACK_DAYS` back.
pub fn read_range(period: &Period) -> Period {
    Period {
        from: period
            .from
            .checked_sub_days(Days::new(LOOKBACK_DAYS))
            .unwrap_or(period.from),
        to: period.to,
        is_month: false,
    }
}

/// What `analyse` works from: every tenant's days of `read_range(period)`
/// (all tenants: the platform's lines need them), and the days of that
/// range that are unknown (not covered) or partial.
pub struct Inputs<'a> {
    pub tenant_days: &'a [TenantDay],
    pub missing_days: &'a BTreeSet<NaiveDate>,
    pub partial_days: &'a BTreeSet<NaiveDate>,
    /// Only these tenants' lines; empty: every tenant.
    pub only: &'a BTreeSet<String>,
    /// The platform's lines, and tenants' lines measured beyond the
    /// platform's moves; false: each tenant against its own history
    /// alone (what a customer's page shows: nothing of other tenants).
    pub platform: bool,
    pub read_from: String,
}

/// One scope's days (tenant or platform).
struct Series {
    /// The first day of `days`.
    start: NaiveDate,
    /// Each day from `start` (None: no row).
    days: Vec<Option<DayFigures>>,
    /// The first day with calls: earlier days are before the scope
    /// existed (or before the read), not days of zero calls.
    first: Option<NaiveDate>,
    /// `per_unit`'s cache: each day's, made at its first use.
    per_unit: Vec<std::sync::OnceLock<[[Option<Decimal>; 4]; 2]>>,
}

/// The days that count: covered and not partial.
struct Known {
    start: NaiveDate,
    known: Vec<bool>,
}

impl Known {
    fn new(range: &Period, missing: &BTreeSet<NaiveDate>, partial: &BTreeSet<NaiveDate>) -> Known {
        Known {
            start: range.from,
            known: range
                .each_day()
                .map(|d| !missing.contains(&d) && !partial.contains(&d))
                .collect(),
        }
    }

    fn is_known(&self, day: NaiveDate) -> bool {
        usize::try_from((day - self.start).num_days())
            .ok()
            .and_then(|i| self.known.get(i).copied())
            .unwrap_or(false)
    }
}

fn median_i64(mut values: Vec<i64>) -> Decimal {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => Decimal::ZERO,
        _ if n % 2 == 1 => Decimal::from(values[n / 2]),
        _ => (Decimal::from(values[n / 2 - 1]) + Decimal::from(values[n / 2])) / Decimal::TWO,
    }
}

fn median(mut values: Vec<Decimal>) -> Option<Decimal> {
    values.sort();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        // A sum that outgrows a decimal (crafted report files) halves first.
        _ => {
            let (a, b) = (values[n / 2 - 1], values[n / 2]);
            // Sorted, and a sum that overflows has both of one sign, so
            // b − a does not: a + (b − a) / 2 stays between them.
            Some(
                a.checked_add(b)
                    .map_or_else(|| a + (b - a) / Decimal::TWO, |sum| sum / Decimal::TWO),
            )
        }
    }
}

/// The median (exact) and the robust standard deviation (1.4826 × MAD,
/// a float: it only decides) of `values`.
fn median_and_spread(values: &[Decimal]) -> Option<(Decimal, f64)> {
    let m = median(values.to_vec())?;
    let mf = f(m);
    let mad = median_f64(values.iter().map(|v| (f(*v) - mf).abs()).collect())?;
    Some((m, 1.4826 * mad))
}

fn f(v: Decimal) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

/// A unit-cost baseline of one scope, day and component.
#[derive(Debug, Clone)]
struct UnitBaseline {
    days: Vec<NaiveDate>,
    unit: Unit,
    median: Decimal,
    spread: f64,
    /// The median volume of the baseline days, in `unit`.
    median_volume: Decimal,
}

/// Why a day has no unit-cost baseline.
#[derive(Debug, Clone, Copy)]
enum NoBaseline {
    History,
    FewCalls(Decimal),
}

impl NoBaseline {
    /// For people: why the tenant's days were not assessed (`self`: the
    /// last day's reason; `calls_from`: its first day with calls read).
    fn reason(self, day: NaiveDate, calls_from: Option<NaiveDate>) -> String {
        match self {
            NoBaseline::History => format!(
                "too short a history: a day needs {MIN_UNIT_BASELINE_DAYS} earlier covered days with calls (within {LOOKBACK_DAYS} days), and its calls start on {}",
                calls_from.map_or("no day".to_string(), |d| d.to_string())
            ),
            NoBaseline::FewCalls(m) => format!(
                "too few calls: a median of {} a day before {day}, needs {MIN_CALLS_A_DAY}",
                m.normalize()
            ),
        }
    }
}

impl Series {
    /// The scope's figures of `day`; a day without a row had no calls
    /// and cost nothing (whether the day is known is `Known`'s to say).
    fn day(&self, day: NaiveDate) -> DayFigures {
        let row = usize::try_from((day - self.start).num_days())
            .ok()
            .and_then(|i| self.days.get(i).copied().flatten());
        row.unwrap_or(DayFigures {
            calls: 0,
            billable_seconds: 0,
            cost: [Some(Decimal::ZERO); 4],
            overflowed: [false; 4],
        })
    }

    /// Whether `day` is a known day of the scope's life.
    fn lived(&self, day: NaiveDate) -> bool {
        self.first.is_some_and(|first| day >= first)
    }

    /// Day `i`'s cost per minute and per call of each component, made
    /// once, when a baseline first asks (most days and most tenants are
    /// never asked: too few calls, or days no baseline reaches).
    fn per_unit(&self, i: usize) -> &[[Option<Decimal>; 4]; 2] {
        self.per_unit[i].get_or_init(|| {
            let f = self.days[i].unwrap_or_default();
            [Unit::Minute, Unit::Call].map(|unit| Component::ALL.map(|c| unit.cost(&f, c)))
        })
    }

    fn index(&self, day: NaiveDate) -> Option<usize> {
        usize::try_from((day - self.start).num_days())
            .ok()
            .filter(|i| *i < self.days.len())
    }

    /// The unit-cost baselines of `day`, per component: the previous
    /// `UNIT_BASELINE_DAYS` known days with calls (a component whose cost
    /// is unknown on some of them uses the others, at least
    /// `MIN_UNIT_BASELINE_DAYS`); or why the day has none.
    fn unit_baselines(
        &self,
        day: NaiveDate,
        known: &Known,
    ) -> Result<[Option<UnitBaseline>; 4], NoBaseline> {
        let mut days = Vec::with_capacity(UNIT_BASELINE_DAYS);
        for back in 1..=LOOKBACK_DAYS {
            let Some(d) = day.checked_sub_days(Days::new(back)) else {
                break;
            };
            if !self.lived(d) || days.len() == UNIT_BASELINE_DAYS {
                break;
            }
            if known.is_known(d) && self.day(d).calls > 0 {
                days.push(d);
            }
        }
        days.reverse();
        if days.len() < MIN_UNIT_BASELINE_DAYS {
            return Err(NoBaseline::History);
        }
        let figures: Vec<DayFigures> = days.iter().map(|d| self.day(*d)).collect();
        let median_calls = median_i64(figures.iter().map(|f| f.calls).collect());
        if median_calls < Decimal::from(MIN_CALLS_A_DAY) {
            return Err(NoBaseline::FewCalls(median_calls));
        }
        let unit = if self.day(day).billable_seconds > 0
            && figures.iter().all(|f| f.billable_seconds > 0)
        {
            Unit::Minute
        } else {
            Unit::Call
        };
        let median_volume = match unit {
            Unit::Minute => {
                median_i64(figures.iter().map(|f| f.billable_seconds).collect()) / Decimal::from(60)
            }
            Unit::Call => median_calls,
        };
        let slot = usize::from(unit == Unit::Call);
        let mut out: [Option<UnitBaseline>; 4] = Default::default();
        for c in Component::ALL {
            let (kept, costs): (Vec<NaiveDate>, Vec<Decimal>) = days
                .iter()
                .filter_map(|d| Some((*d, self.per_unit(self.index(*d)?)[slot][c.index()]?)))
                .unzip();
            if kept.len() < MIN_UNIT_BASELINE_DAYS {
                continue;
            }
            if let Some((median, spread)) = median_and_spread(&costs) {
                out[c.index()] = Some(UnitBaseline {
                    days: kept,
                    unit,
                    median,
                    spread,
                    median_volume,
                });
            }
        }
        Ok(out)
    }

    /// The like days (same weekday, earlier weeks) of a volume baseline:
    /// their median calls, the spread, and their median cost per component.
    fn volume_baseline(&self, day: NaiveDate, known: &Known) -> Option<VolumeBaseline> {
        let days: Vec<NaiveDate> = (1..=VOLUME_BASELINE_WEEKS)
            .rev()
            .filter_map(|w| day.checked_sub_days(Days::new(7 * w)))
            .filter(|d| self.lived(*d) && known.is_known(*d))
            .collect();
        if days.len() < MIN_VOLUME_BASELINE_DAYS {
            return None;
        }
        let calls: Vec<Decimal> = days
            .iter()
            .map(|d| Decimal::from(self.day(*d).calls))
            .collect();
        let (median_calls, mad_spread) = median_and_spread(&calls)?;
        let noise = (VOLUME_DISPERSION * f(median_calls)).sqrt();
        let mut median_cost = [None; 4];
        for c in Component::ALL {
            let costs: Option<Vec<Decimal>> = days
                .iter()
                .map(|d| {
                    let figures = self.day(*d);
                    // A like day without calls cost nothing.
                    if figures.calls == 0 {
                        Some(figures.cost[c.index()].unwrap_or_default())
                    } else {
                        figures.cost[c.index()]
                    }
                })
                .collect();
            median_cost[c.index()] = costs.and_then(median);
        }
        Some(VolumeBaseline {
            days,
            median_calls,
            spread: mad_spread.max(noise).max(1.0),
            median_cost,
        })
    }
}

#[derive(Debug, Clone)]
struct VolumeBaseline {
    days: Vec<NaiveDate>,
    median_calls: Decimal,
    spread: f64,
    median_cost: [Option<Decimal>; 4],
}

impl VolumeBaseline {
    /// The day's calls over the baseline's median (None: a median of 0).
    fn ratio(&self, calls: i64) -> Option<f64> {
        (!self.median_calls.is_zero()).then(|| calls as f64 / f(self.median_calls))
    }

    fn direction(&self, calls: i64, rule: &Rule) -> Option<Direction> {
        let (v, m) = (calls as f64, f(self.median_calls));
        let change = v - m;
        let beyond = change.abs() > rule.k * self.spread && change.abs() >= MIN_VOLUME_CHANGE;
        if beyond && change > 0.0 && v >= MIN_VOLUME_RATIO * m {
            Some(Direction::Rise)
        } else if beyond && change < 0.0 && v * MIN_VOLUME_RATIO <= m {
            Some(Direction::Fall)
        } else {
            None
        }
    }
}

/// The unit-cost test of one scope's day and component.
#[derive(Debug, Clone)]
struct UnitTest {
    baseline: UnitBaseline,
    /// The day's unit cost (None: no volume).
    cost: Option<Decimal>,
}

impl UnitTest {
    /// The day's unit cost over the baseline's median, exact to 28 digits.
    fn ratio(&self) -> Option<Decimal> {
        let m = self.baseline.median;
        if m.is_zero() {
            return None;
        }
        self.cost?.checked_div(m)
    }

    /// The baseline's median scaled by the platform's move, if any.
    fn median_times(&self, factor: Option<Decimal>) -> Option<Decimal> {
        match factor {
            Some(x) => self.baseline.median.checked_mul(x),
            None => Some(self.baseline.median),
        }
    }

    /// Which way the day moved beyond the rule against the baseline's
    /// median scaled by `factor` (the platform's move).
    fn direction(
        &self,
        day: &DayFigures,
        factor: Option<Decimal>,
        rule: &Rule,
    ) -> Option<Direction> {
        let cost = f(self.cost?);
        let m = f(self.median_times(factor)?);
        let factor = factor.map_or(1.0, f);
        let volume = f(self.baseline.unit.volume(day));
        let median_volume = f(self.baseline.median_volume);
        // A day with fewer units than its baseline's usual is noisier.
        let noise = if volume > 0.0 && volume < median_volume {
            (median_volume / volume).sqrt()
        } else {
            1.0
        };
        let spread = self.baseline.spread * factor * noise;
        let change = cost - m;
        if change.abs() <= rule.k * spread {
            return None;
        }
        if change > 0.0 && change >= MIN_UNIT_CHANGE * m.abs() {
            Some(Direction::Rise)
        } else if change < 0.0 && -change * (1.0 + MIN_UNIT_CHANGE) >= MIN_UNIT_CHANGE * m.abs() {
            Some(Direction::Fall)
        } else {
            None
        }
    }
}

fn series_calls(series: &Series, day: NaiveDate) -> i64 {
    series.day(day).calls
}

fn median_f64(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Rounds to the micro-dollar, half away from zero (`money::round`).
fn micro(v: Decimal) -> Decimal {
    crate::money::round(v)
}

/// The platform's unit-cost move of one day and component: the median of
/// the assessed tenants' ratios, when it is a move.
#[derive(Debug, Clone, Copy)]
struct PlatformMove {
    factor: Decimal,
    direction: Direction,
    tenants: usize,
}

/// Every tenant's (and the platform's) anomalies of `inputs`' period.
pub fn analyse(period: Period, rule: Rule, inputs: &Inputs) -> Analysis {
    // Each tenant's series and its latest day's name; the platform's sum.
    let range = read_range(&period);
    let known = Known::new(&range, inputs.missing_days, inputs.partial_days);
    let length = usize::try_from((range.to - range.from).num_days() + 1).unwrap_or(0);
    // Each series holds the days from its first row to its last (a
    // tenant of a few days costs a few days, whatever the range).
    let empty = |first: usize, last: usize| {
        let length = last + 1 - first;
        Series {
            start: range.from + Days::new(first as u64),
            days: vec![None; length],
            first: None,
            per_unit: (0..length).map(|_| std::sync::OnceLock::new()).collect(),
        }
    };
    // The platform row holds errors without a tenant: no calls, no cost.
    let index_of = |t: &TenantDay| {
        usize::try_from((t.day - range.from).num_days())
            .ok()
            .filter(|i| *i < length && t.tenant_id != PLATFORM_TENANT)
    };
    let mut spans: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for t in inputs.tenant_days {
        if let Some(i) = index_of(t) {
            let span = spans.entry(t.tenant_id.as_str()).or_insert((i, i));
            *span = (span.0.min(i), span.1.max(i));
        }
    }
    // The name of the latest day that had one.
    type Named = Option<(NaiveDate, String)>;
    let mut tenants: BTreeMap<&str, (Series, Named)> = spans
        .iter()
        .map(|(id, (first, last))| (*id, (empty(*first, *last), None)))
        .collect();
    let mut platform = empty(0, length.saturating_sub(1));
    for t in inputs.tenant_days {
        let Some(i) = index_of(t) else {
            continue;
        };
        let figures = DayFigures::of(t);
        let Some((series, name)) = tenants.get_mut(t.tenant_id.as_str()) else {
            continue;
        };
        if let Some(new) = &t.business_name {
            if name.as_ref().is_none_or(|(day, _)| *day <= t.day) {
                *name = Some((t.day, new.clone()));
            }
        }
        if figures.calls > 0 {
            series.first = Some(series.first.map_or(t.day, |f| f.min(t.day)));
            platform.first = Some(platform.first.map_or(t.day, |f| f.min(t.day)));
        }
        series.days[i - spans[t.tenant_id.as_str()].0] = Some(figures);
        platform.days[i]
            .get_or_insert_with(DayFigures::default)
            .add(&figures);
    }
    let tenants: BTreeMap<&str, (Series, Option<String>)> = tenants
        .into_iter()
        .map(|(id, (series, name))| (id, (series, name.map(|(_, n)| n))))
        .collect();

    let mut rises = Vec::new();
    let mut falls = Vec::new();
    // Per tenant: the days not assessed, the first and last of them, and
    // why the last was.
    type Skipped = (usize, NaiveDate, NaiveDate, NoBaseline);
    let mut not_assessed: BTreeMap<&str, Skipped> = BTreeMap::new();
    let mut assessed = 0;
    // The tenants (of `only`) with calls on a known day of the period.
    let mut with_calls: BTreeSet<&str> = BTreeSet::new();
    for day in period.each_day() {
        if !known.is_known(day) {
            continue;
        }
        // Every tenant's unit tests of the day, for the platform's move.
        let mut tests: BTreeMap<&str, [Option<UnitTest>; 4]> = BTreeMap::new();
        let mut volumes: BTreeMap<&str, VolumeBaseline> = BTreeMap::new();
        for (id, (series, _)) in &tenants {
            let figures = series.day(day);
            if !series.lived(day) {
                continue;
            }
            if figures.calls > 0 && (inputs.only.is_empty() || inputs.only.contains(*id)) {
                with_calls.insert(id);
            }
            let baselines = match series.unit_baselines(day, &known) {
                Ok(baselines) => baselines,
                Err(why) => {
                    if figures.calls > 0 {
                        let entry = not_assessed.entry(id).or_insert((0, day, day, why));
                        *entry = (entry.0 + 1, entry.1, day, why);
                    }
                    continue;
                }
            };
            assessed += usize::from(inputs.only.is_empty() || inputs.only.contains(*id));
            let per_component: [Option<UnitTest>; 4] = Component::ALL.map(|c| {
                let baseline = baselines[c.index()].clone()?;
                Some(UnitTest {
                    cost: baseline.unit.cost(&figures, c),
                    baseline,
                })
            });
            tests.insert(id, per_component);
            if let Some(v) = series.volume_baseline(day, &known) {
                volumes.insert(id, v);
            }
        }
        // The platform's move per component: the median tenant's ratio
        // (none for a view of one tenant's own: `Inputs::platform`).
        let mut moves: [Option<PlatformMove>; 4] = [None; 4];
        for c in Component::ALL.into_iter().filter(|_| inputs.platform) {
            let ratios: Vec<Decimal> = tests
                .values()
                .filter_map(|t| t[c.index()].as_ref()?.ratio())
                .collect();
            let n = ratios.len();
            if n < MIN_PLATFORM_TENANTS {
                continue;
            }
            let Some(factor) = median(ratios) else {
                continue;
            };
            let direction = if f(factor) >= 1.0 + MIN_UNIT_CHANGE {
                Direction::Rise
            } else if f(factor) * (1.0 + MIN_UNIT_CHANGE) <= 1.0 {
                Direction::Fall
            } else {
                continue;
            };
            moves[c.index()] = Some(PlatformMove {
                factor,
                direction,
                tenants: n,
            });
        }

        // The platform's calls move when the median tenant's do.
        let volume_move = {
            let ratios: Vec<f64> = volumes
                .iter()
                .filter_map(|(id, v)| v.ratio(series_calls(&tenants[id].0, day)))
                .collect();
            median_f64(ratios)
                .filter(|_| inputs.platform && volumes.len() >= MIN_PLATFORM_TENANTS)
                .filter(|m| *m >= MIN_VOLUME_RATIO || *m * MIN_VOLUME_RATIO <= 1.0)
        };

        // The platform's own lines; the moves its kept lines show are the
        // ones a tenant's line may be folded into (a move without a line
        // hides nothing).
        let mut kept_moves: [Option<PlatformMove>; 4] = [None; 4];
        let mut kept_volume: Option<(f64, Direction)> = None;
        if inputs.platform && platform.lived(day) {
            if let Ok(baselines) = platform.unit_baselines(day, &known) {
                let figures = platform.day(day);
                let mut unit: [Option<(UnitTest, Direction)>; 4] = Default::default();
                for c in Component::ALL {
                    let Some(m) = moves[c.index()] else { continue };
                    let Some(baseline) = baselines[c.index()].clone() else {
                        continue;
                    };
                    let test = UnitTest {
                        cost: baseline.unit.cost(&figures, c),
                        baseline,
                    };
                    if test.direction(&figures, None, &rule) == Some(m.direction) {
                        unit[c.index()] = Some((test, m.direction));
                    }
                }
                // A platform volume line only when calls moved across
                // tenants (the median tenant's ratio), not when one large
                // tenant moved the sum.
                let volume = platform
                    .volume_baseline(day, &known)
                    .filter(|_| volume_move.is_some());
                let mut lines = lines_of(day, &figures, &unit, volume.as_ref(), None, &rule);
                for line in &mut lines {
                    if line.kind != Kind::Volume {
                        let m = moves[line.component.index()];
                        let moved = tests
                            .values()
                            .filter(|t| {
                                t[line.component.index()]
                                    .as_ref()
                                    .is_some_and(|t| folded(t, m))
                            })
                            .count();
                        line.tenants_moved = m.map(|m| (moved, m.tenants));
                    }
                }
                for line in lines {
                    if keep(&line, &rule) {
                        if line.kind == Kind::UnitCost {
                            kept_moves[line.component.index()] = moves[line.component.index()];
                        } else {
                            kept_volume = volume_move.map(|factor| (factor, line.direction));
                            for c in &line.components_moved {
                                kept_moves[c.index()] = moves[c.index()];
                            }
                        }
                    }
                    push(line, &mut rises, &mut falls);
                }
                // The platform's total has no line of its own when a
                // component's line said its dollars: it moved with it.
                let total = Component::Total.index();
                if let Some(m) = moves[total] {
                    if kept_moves
                        .iter()
                        .flatten()
                        .any(|k| k.direction == m.direction)
                    {
                        kept_moves[total] = Some(m);
                    }
                }
            }
        }

        // Each tenant's lines.
        for (id, per_component) in &tests {
            let volume = volumes.get(id).filter(|v| {
                // Moved with the platform's calls, the same way: the
                // platform's line says it.
                !kept_volume.is_some_and(|(factor, direction)| {
                    v.ratio(series_calls(&tenants[id].0, day))
                        .is_some_and(|r| match direction {
                            Direction::Rise => {
                                r >= MIN_VOLUME_RATIO && r <= factor * MIN_VOLUME_RATIO
                            }
                            Direction::Fall => {
                                r * MIN_VOLUME_RATIO <= 1.0 && r * MIN_VOLUME_RATIO >= factor
                            }
                        })
                })
            });
            if !(inputs.only.is_empty() || inputs.only.contains(*id)) {
                continue;
            }
            let (series, name) = &tenants[id];
            let figures = series.day(day);
            let mut unit: [Option<(UnitTest, Direction)>; 4] = Default::default();
            let mut factors: [Option<Decimal>; 4] = [None; 4];
            for c in Component::ALL {
                let Some(test) = per_component[c.index()].clone() else {
                    continue;
                };
                let m = kept_moves[c.index()];
                // Moved with the platform: the platform's line says it.
                if folded(&test, m) {
                    continue;
                }
                // Measured beyond the platform's move only when it moved
                // that way past the rule too; a tenant that kept its price
                // (another provider) is measured against its own history.
                let factor = m
                    .filter(|m| moved_past_the_rule(&test, m.direction))
                    .map(|m| m.factor);
                if let Some(direction) = test.direction(&figures, factor, &rule) {
                    factors[c.index()] = factor;
                    unit[c.index()] = Some((test, direction));
                }
            }
            for mut line in lines_of(day, &figures, &unit, volume, Some(&factors), &rule) {
                line.tenant_id = Some(id.to_string());
                line.business_name.clone_from(name);
                push(line, &mut rises, &mut falls);
            }
        }
    }
    let names: BTreeMap<&str, (&Option<String>, Option<NaiveDate>)> = tenants
        .iter()
        .map(|(id, (series, name))| (*id, (name, series.first)))
        .collect();
    rises.sort_by(|a, b| {
        b.excess_usd
            .cmp(&a.excess_usd)
            .then(a.day.cmp(&b.day))
            .then(a.tenant_id.cmp(&b.tenant_id))
            .then(a.component.cmp(&b.component))
    });
    falls.sort_by(|a, b| {
        a.excess_usd
            .cmp(&b.excess_usd)
            .then(a.day.cmp(&b.day))
            .then(a.tenant_id.cmp(&b.tenant_id))
            .then(a.component.cmp(&b.component))
    });
    let only = |id: &str| inputs.only.is_empty() || inputs.only.contains(id);
    Analysis {
        period,
        rule,
        rises: rises.into_iter().filter(|a| keep(a, &rule)).collect(),
        falls: falls.into_iter().filter(|a| keep(a, &rule)).collect(),
        tenants_with_calls: with_calls.into_iter().map(str::to_string).collect(),
        not_assessed: by_name(
            not_assessed
                .into_iter()
                .filter(|(id, _)| only(id))
                .map(|(id, (days, first_day, last_day, why))| {
                    let (name, calls_from) = names.get(id).copied().unwrap_or((&None, None));
                    NotAssessed {
                        tenant_id: id.to_string(),
                        business_name: name.clone(),
                        days,
                        first_day,
                        last_day,
                        reason: why.reason(last_day, calls_from),
                    }
                })
                .collect(),
        ),
        unknown_days: period
            .each_day()
            .filter(|d| inputs.missing_days.contains(d))
            .collect(),
        partial_days: period
            .each_day()
            .filter(|d| inputs.partial_days.contains(d))
            .collect(),
        tenant_days_assessed: assessed,
        read_from: inputs.read_from.clone(),
    }
}

/// The tenants not assessed in the order people look them up: by name.
fn by_name(mut tenants: Vec<NotAssessed>) -> Vec<NotAssessed> {
    tenants.sort_by(|a, b| (&a.business_name, &a.tenant_id).cmp(&(&b.business_name, &b.tenant_id)));
    tenants
}

/// Whether a tenant's unit cost moved `direction` by the rule's change
/// at least (×1.25 up, ÷1.25 down).
fn moved_past_the_rule(test: &UnitTest, direction: Direction) -> bool {
    test.ratio().map(f).is_some_and(|ratio| match direction {
        Direction::Rise => ratio >= 1.0 + MIN_UNIT_CHANGE,
        Direction::Fall => ratio * (1.0 + MIN_UNIT_CHANGE) <= 1.0,
    })
}

/// Whether a tenant's unit test moved with the platform's move `m`: the
/// same way, and by no more than the rule's change beyond it.
fn folded(test: &UnitTest, m: Option<PlatformMove>) -> bool {
    let (Some(m), Some(ratio)) = (m, test.ratio()) else {
        return false;
    };
    let (ratio, factor) = (f(ratio), f(m.factor));
    moved_past_the_rule(test, m.direction)
        && match m.direction {
            Direction::Rise => ratio <= factor * (1.0 + MIN_UNIT_CHANGE),
            Direction::Fall => ratio * (1.0 + MIN_UNIT_CHANGE) >= factor,
        }
}

/// Whether a line is worth its dollars: at least the rule's excess, in
/// its direction.
fn keep(a: &Anomaly, rule: &Rule) -> bool {
    match a.direction {
        Direction::Rise => a.excess_usd >= rule.min_excess_usd,
        Direction::Fall => -a.excess_usd >= rule.min_excess_usd,
    }
}

fn push(line: Anomaly, rises: &mut Vec<Anomaly>, falls: &mut Vec<Anomaly>) {
    match line.direction {
        Direction::Rise => rises.push(line),
        Direction::Fall => falls.push(line),
    }
}

/// The lines of one scope's day: a volume move is one `total` line (of
/// kind `both` when unit costs moved the same way too); otherwise one
/// line per component whose unit cost moved, and a `total` line only
/// when no component moved its way (never the same dollars twice).
fn lines_of(
    day: NaiveDate,
    figures: &DayFigures,
    unit: &[Option<(UnitTest, Direction)>; 4],
    volume: Option<&VolumeBaseline>,
    factors: Option<&[Option<Decimal>; 4]>,
    rule: &Rule,
) -> Vec<Anomaly> {
    let line = |c: Component, kind: Kind, direction: Direction, expected: Option<Decimal>| {
        let cost = figures.cost[c.index()]?;
        let expected = micro(expected?);
        let test = unit[c.index()].as_ref().map(|(t, _)| t);
        let factor = factors.and_then(|f| f[c.index()]);
        Some(Anomaly {
            tenant_id: None,
            business_name: None,
            day,
            component: c,
            kind,
            direction,
            excess_usd: cost.checked_sub(expected)?,
            cost_usd: cost,
            expected_usd: expected,
            unit: test.map_or(Unit::Call, |t| t.baseline.unit),
            unit_cost_usd: test.and_then(|t| t.cost),
            baseline_unit_cost_usd: test.and_then(|t| t.median_times(factor)),
            unit_ratio: test.and_then(|t| {
                let m = t.median_times(factor)?;
                let cost = t.cost?;
                (!m.is_zero()).then(|| f(cost) / f(m))
            }),
            calls: figures.calls,
            baseline_calls: volume.map(|v| v.median_calls),
            volume_ratio: volume.and_then(|v| {
                (!v.median_calls.is_zero()).then(|| figures.calls as f64 / f(v.median_calls))
            }),
            unit_baseline_days: test.map(|t| t.baseline.days.clone()).unwrap_or_default(),
            volume_baseline_days: volume.map(|v| v.days.clone()).unwrap_or_default(),
            components_moved: Vec::new(),
            platform_factor: factor,
            tenants_moved: None,
        })
    };
    // The baseline's unit cost (scaled by the platform's move) at the
    // day's volume: m × seconds / 60, the product first, one division.
    let unit_line = |c: Component, test: &UnitTest, direction: Direction| {
        let m = test.median_times(factors.and_then(|f| f[c.index()]));
        let expected = m.and_then(|m| match test.baseline.unit {
            Unit::Minute => m
                .checked_mul(Decimal::from(figures.billable_seconds))?
                .checked_div(Decimal::from(60)),
            Unit::Call => m.checked_mul(Decimal::from(figures.calls)),
        });
        line(c, Kind::UnitCost, direction, expected)
    };
    let mut out = Vec::new();
    let volume_move = volume.and_then(|v| Some((v, v.direction(figures.calls, rule)?)));
    if let Some((v, direction)) = volume_move {
        let moved: Vec<Component> = Component::ALL
            .into_iter()
            .filter(|c| {
                unit[c.index()]
                    .as_ref()
                    .is_some_and(|(_, d)| *d == direction)
            })
            .collect();
        let kind = if moved.is_empty() {
            Kind::Volume
        } else {
            Kind::Both
        };
        let total = Component::Total;
        if let Some(mut l) = line(total, kind, direction, v.median_cost[total.index()]) {
            l.components_moved = moved;
            out.push(l);
        }
        // Unit costs that moved the other way are lines of their own.
        for c in [Component::Stt, Component::Llm, Component::Tts] {
            if let Some((t, d)) = &unit[c.index()] {
                if *d != direction {
                    out.extend(unit_line(c, t, *d));
                }
            }
        }
        return out;
    }
    for c in [Component::Stt, Component::Llm, Component::Tts] {
        if let Some((t, d)) = &unit[c.index()] {
            out.extend(unit_line(c, t, *d));
        }
    }
    if let Some((t, d)) = &unit[Component::Total.index()] {
        if !out.iter().any(|l| l.direction == *d) {
            out.extend(unit_line(Component::Total, t, *d));
        }
    }
    out
}

/// Whether the anomalies of a run's days were looked for, and what was found.
pub type Check = crate::gates::Check<Analysis>;

/// The anomalies of `period` from `summaries` (the target database or a
/// report folder), in one snapshot: every tenant's days of the period and
/// of its baselines, and which of those days succeeded runs covered.
/// `only`: the tenants whose lines are wanted (the platform's always).
pub fn read(
    summaries: &mut crate::summaries::Summaries,
    period: Period,
    rule: Rule,
    only: &crate::selection::TenantSelection,
    platform: bool,
) -> crate::error::Result<Analysis> {
    let range = read_range(&period);
    let (tenant_days, coverage) = summaries.snapshot(|summaries| {
        summaries.refuse_unknown_tenants(only, "`callrollup costs`")?;
        Ok((
            summaries.tenant_day_costs(&range, period.from)?,
            summaries.coverage(&range)?,
        ))
    })?;
    let missing: BTreeSet<NaiveDate> = coverage.missing_days.iter().copied().collect();
    let partial: BTreeSet<NaiveDate> = coverage.partial_days.iter().copied().collect();
    let only: BTreeSet<String> = only.tenant_texts().into_iter().collect();
    Ok(analyse(
        period,
        rule,
        &Inputs {
            tenant_days: &tenant_days,
            missing_days: &missing,
            partial_days: &partial,
            only: &only,
            platform,
            read_from: summaries.describe(),
        },
    ))
}
