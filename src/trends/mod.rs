//! Error trends for engineers: which errors are rising, since when, which
//! tenants suffer, whether a spike is new. Pure: the series come in as
//! frames (`read` reads them from the summary tables or the source),
//! the analysis and its rules live here, and `render`/`chart` turn it into
//! tables, files and pictures.

pub mod chart;
pub mod read;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::frames::PLATFORM_TENANT;
use crate::window::{day_of_epoch, epoch_day};

/// How many earlier buckets form a bucket's baseline: the 7 days before
/// a day, or the same hour of the 7 days before an hour (errors follow
/// the working day, so the hours just before a morning hour are no
/// baseline for it).
pub const BASELINE_BUCKETS: usize = 7;
/// Fewer earlier buckets than this and no spike is called.
const MIN_BASELINE_BUCKETS: usize = 3;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_QUARTER_HOUR: i64 = MICROS_PER_HOUR / 4;

/// What one row of the series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    #[value(name = "error_type")]
    ErrorType,
    Severity,
    Tenant,
}

impl By {
    /// The summary-table column that names a group.
    pub fn column(self) -> &'static str {
        match self {
            By::ErrorType => "error_type",
            By::Severity => "severity",
            By::Tenant => "tenant_id",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bucketing {
    Day,
    Hour,
}

/// The rule that calls a bucket a spike (docs/GUIDE.md, `errors`, "Spikes").
#[derive(Debug, Clone, Copy)]
pub struct SpikeRule {
    /// How many robust standard deviations above the baseline's median.
    pub k: f64,
    /// A spike has at least this many errors more than its baseline's median.
    pub min_errors: i64,
}

impl Default for SpikeRule {
    fn default() -> Self {
        SpikeRule {
            k: 4.0,
            min_errors: 10,
        }
    }
}

/// What the baseline of one bucket says: its median and the spread a
/// bucket must exceed `k` times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub median: f64,
    pub spread: f64,
}

/// A spike is at least this many times its baseline's median: a group's
/// floor grows with its size, so a large group's ordinary day-to-day swing
/// is never a spike, whatever its spread says.
pub const SPIKE_MIN_RATIO: f64 = 2.0;

/// How much more than Poisson a group's daily count of errored calls
/// varies (busy and quiet days): measured on `demo`'s tenants and on a
/// second generated platform, a tenant's daily errors vary 1.4–2.0 times
/// their mean (median 1.7), errors per errored call included; with this
/// factor the floor covers the upper quartile (bench/spikes.md).
pub const VOLUME_DISPERSION: f64 = 2.0;

impl SpikeRule {
    /// The baseline of the counts before a bucket (oldest first; only the
    /// last `BASELINE_BUCKETS` count), or None with too few of them.
    /// `burst` is how many errors an errored call logs on average in those
    /// buckets (errors / errored calls, at least 1).
    ///
    /// spread = max(1.4826 × MAD, √(2 × burst × median), 1): the MAD scaled
    /// to a normal standard deviation, but never below the noise of errors
    /// that arrive in bursts from calls whose number itself swings (a
    /// failing call logs several errors, and busy days have more calls):
    /// the design's √median assumed errors arrive one by one, and on
    /// `demo --by tenant` 18 of its 21 spikes were that noise. Never below
    /// one error either, so a baseline of zeros does not spike on a single
    /// error.
    pub fn baseline(earlier: &[i64], burst: f64) -> Option<Baseline> {
        let trailing = &earlier[earlier.len().saturating_sub(BASELINE_BUCKETS)..];
        if trailing.len() < MIN_BASELINE_BUCKETS {
            return None;
        }
        let values: Vec<f64> = trailing.iter().map(|v| *v as f64).collect();
        let median = median_of(values.clone());
        let deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mad = median_of(deviations);
        let noise = (VOLUME_DISPERSION * burst.max(1.0) * median).sqrt();
        let spread = (1.4826 * mad).max(noise).max(1.0);
        Some(Baseline { median, spread })
    }

    /// A spike: at least `min_errors` more than the baseline's median (the
    /// floor is relative to the group: a tenant that usually logs 40
    /// errors a day needs 50), at least `SPIKE_MIN_RATIO` × that median,
    /// and more than `median + k × spread`.
    pub fn is_spike(&self, errors: i64, baseline: Option<Baseline>) -> bool {
        match baseline {
            Some(b) => {
                let errors = errors as f64;
                errors >= b.median + self.min_errors as f64
                    && errors >= SPIKE_MIN_RATIO * b.median
                    && errors > b.median + self.k * b.spread
            }
            None => false,
        }
    }
}

/// Errors per errored call over `cells`, at least 1: for tenants, of the
/// calls the tenant days counted as errored; for error types and
/// severities, of the calls each group's errors name. Errors of no call
/// (the platform's) count as bursts of one.
fn burst(cells: &[&Cell]) -> f64 {
    let errors: i64 = cells.iter().map(|c| c.errors).sum();
    let errored: i64 = cells.iter().map(|c| c.errored_calls).sum();
    let calls = if errored > 0 {
        errored
    } else {
        cells.iter().map(|c| c.calls_affected).sum()
    };
    if calls <= 0 || errors <= calls {
        return 1.0;
    }
    errors as f64 / calls as f64
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The buckets read, oldest first: the lookback (the previous period and
/// the first baselines) and then the period itself. A bucket is a tenant
/// day, or an hour of `zone`'s clock starting at its key (Unix µs), so a
/// day with a DST change has 23 or 25 of them.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub bucketing: Bucketing,
    /// Day buckets: days since 1970-01-01; hour buckets: Unix µs of the start.
    pub keys: Vec<i64>,
    /// Where the period starts in `keys`.
    pub period_start: usize,
    pub zone: Tz,
    /// The period's days (for hours, in `zone`).
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Hour buckets: where the last one ends (Unix µs, exclusive).
    end: i64,
}

/// The start of `zone`'s local hour holding `at` (Unix µs).
fn hour_start(zone: Tz, at: i64) -> i64 {
    let offset = crate::rollup::timezone::offset_at(zone, at.div_euclid(1_000_000)) * 1_000_000;
    (at + offset).div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR - offset
}

/// Local midnight of `day` in `zone`, as Unix µs (the first instant of
/// the day where midnight falls in a DST gap).
fn midnight(zone: Tz, day: NaiveDate) -> i64 {
    let local = day.and_time(NaiveTime::MIN);
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.timestamp_micros()
        }
        chrono::LocalResult::None => {
            // Midnight skipped: the day starts when the clock jumps.
            let utc = zone
                .from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
                .map(|t| t.timestamp_micros())
                .unwrap_or_else(|| local.and_utc().timestamp_micros());
            hour_start(zone, utc)
        }
    }
}

impl Timeline {
    /// Days `from..=to`, after as many days as the period has (at least
    /// the baseline's length) for the previous period.
    pub fn days(from: NaiveDate, to: NaiveDate) -> Timeline {
        let length = (to - from).num_days() as usize + 1;
        // No day before 0001-01-01 (a year 0 is no date to Postgres: the
        // errors of 0001-01-01 failed on "0000-12-25").
        let lookback = length
            .max(BASELINE_BUCKETS)
            .min((from - crate::window::FIRST_DAY).num_days().max(0) as usize);
        let first = from - Days::new(lookback as u64);
        let keys = (epoch_day(first)..=epoch_day(to)).collect();
        Timeline {
            bucketing: Bucketing::Day,
            keys,
            period_start: lookback,
            zone: chrono_tz::UTC,
            from,
            to,
            end: 0,
        }
    }

    /// The hours of `zone`'s days `from..=to`, up to the hour holding
    /// `now` (later hours have not happened), after the previous period.
    pub fn hours(zone: Tz, from: NaiveDate, to: NaiveDate, now: DateTime<Utc>) -> Result<Timeline> {
        let start = midnight(zone, from);
        let end = midnight(zone, to + Days::new(1))
            .min(hour_start(zone, now.timestamp_micros()) + MICROS_PER_HOUR);
        if end <= start {
            return Err(Error::usage(format!(
                "{from} has not started yet in {}; pick days up to today",
                zone.name()
            )));
        }
        let period = Self::hour_keys(zone, start, end);
        // A day's worth more than a week: the baseline of the first hour.
        let lookback = period.len().max((BASELINE_BUCKETS + 1) * 24);
        // Far enough back for `lookback` hours whatever DST does.
        let before = Self::hour_keys(zone, start - (lookback as i64 + 3) * MICROS_PER_HOUR, start);
        let before = &before[before.len().saturating_sub(lookback)..];
        let mut keys = before.to_vec();
        keys.extend(&period);
        Ok(Timeline {
            bucketing: Bucketing::Hour,
            period_start: before.len(),
            keys,
            zone,
            from,
            to,
            end,
        })
    }

    /// Every local-hour start in `[start, end)`, found by looking at each
    /// quarter hour: zones move their clocks at quarter hours at the finest.
    fn hour_keys(zone: Tz, start: i64, end: i64) -> Vec<i64> {
        let mut keys: Vec<i64> = Vec::new();
        let mut at = start;
        while at < end {
            let key = hour_start(zone, at).max(start);
            if keys.last() != Some(&key) {
                keys.push(key);
            }
            at += MICROS_PER_QUARTER_HOUR;
        }
        keys
    }

    /// Where bucket `index` starts on `zone`'s clock.
    fn local(&self, index: usize) -> DateTime<Tz> {
        DateTime::from_timestamp_micros(self.keys[index])
            .unwrap_or_default()
            .with_timezone(&self.zone)
    }

    /// The Unix µs range the hour buckets cover.
    pub fn utc_span(&self) -> (i64, i64) {
        (self.keys[0], self.end)
    }

    /// The first day read (lookback included), in the days buckets use.
    pub fn first_day(&self) -> NaiveDate {
        match self.bucketing {
            Bucketing::Day => day_of_epoch(self.keys[0]),
            Bucketing::Hour => self.local(0).date_naive(),
        }
    }

    pub fn period_len(&self) -> usize {
        self.keys.len() - self.period_start
    }

    /// The buckets that form bucket `index`'s baseline, oldest first: the
    /// days before it, or the same local hour on the days before it (an
    /// hour that did not exist that day, in a DST gap, is skipped).
    pub fn baseline_of(&self, index: usize) -> Vec<usize> {
        match self.bucketing {
            Bucketing::Day => (index.saturating_sub(BASELINE_BUCKETS)..index).collect(),
            Bucketing::Hour => {
                let local = |i: usize| self.local(i).naive_local();
                let wanted = local(index);
                let mut out: Vec<usize> = (1..=BASELINE_BUCKETS as u64)
                    .filter_map(|k| {
                        let day = wanted.checked_sub_days(Days::new(k))?;
                        // The same hour one day back is within 23..25 buckets.
                        let near = index.checked_sub(24 * k as usize)?;
                        (near.saturating_sub(2)..(near + 3).min(index)).find(|j| local(*j) == day)
                    })
                    .collect();
                out.reverse();
                out
            }
        }
    }

    /// Which bucket holds key or instant `at`, if any.
    pub fn index_of(&self, at: i64) -> Option<usize> {
        match self.bucketing {
            Bucketing::Day => self.keys.binary_search(&at).ok(),
            Bucketing::Hour => {
                let (start, end) = self.utc_span();
                if at < start || at >= end {
                    return None;
                }
                Some(self.keys.partition_point(|k| *k <= at) - 1)
            }
        }
    }

    /// A bucket as people and files name it: the date, or the hour's start
    /// in RFC 3339 with the zone's offset (`Z` for UTC).
    pub fn label(&self, index: usize) -> String {
        let key = self.keys[index];
        match self.bucketing {
            Bucketing::Day => day_of_epoch(key).to_string(),
            Bucketing::Hour => self.local(index).to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    /// A short label for chart axes.
    pub fn short_label(&self, index: usize) -> String {
        let key = self.keys[index];
        match self.bucketing {
            Bucketing::Day => day_of_epoch(key).format("%b %d").to_string(),
            Bucketing::Hour => self.local(index).format("%b %d %H:%M").to_string(),
        }
    }
}

/// One group's figures in one bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub errors: i64,
    pub unresolved_errors: i64,
    pub calls_affected: i64,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    /// For tenants: the bucket's calls and errored calls.
    pub calls: i64,
    pub errored_calls: i64,
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        self.errors += other.errors;
        self.unresolved_errors += other.unresolved_errors;
        self.calls_affected += other.calls_affected;
        self.calls += other.calls;
        self.errored_calls += other.errored_calls;
        self.first_seen_at = min_some(self.first_seen_at, other.first_seen_at);
        self.last_seen_at = max_some(self.last_seen_at, other.last_seen_at);
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The series as read: error groups per bucket and tenant
/// (`tenant_daily_errors` with a `bucket` key instead of `day`) and, per
/// bucket and tenant, calls and errored calls.
pub struct Counts {
    /// bucket (i64 key), tenant_id, error_type, severity, errors,
    /// unresolved_errors, calls_affected, first_seen_at, last_seen_at.
    pub errors: DataFrame,
    /// bucket, tenant_id, calls, errored_calls.
    pub calls: DataFrame,
    /// Tenant names, for `--by tenant`.
    pub names: BTreeMap<String, String>,
    /// Bucket keys nothing could be read for (days not rolled up, with no
    /// source): unknown, not zero.
    pub missing: Vec<i64>,
}

/// Which way a group went against the previous period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// No errors in the previous period (nor in the baselines before it).
    New,
    Rising,
    Steady,
    Falling,
    /// Errors before, none in the period.
    Gone,
    /// Part of the previous period could not be read.
    Unknown,
}

impl Trend {
    /// Rising or falling means at least 25 % and 5 errors of change.
    fn of(errors: i64, previous: Option<i64>, seen_before: bool) -> Trend {
        let Some(previous) = previous else {
            return Trend::Unknown;
        };
        let change = errors - previous;
        match () {
            _ if errors > 0 && !seen_before => Trend::New,
            _ if errors == 0 && previous > 0 => Trend::Gone,
            _ if change.abs() < 5 || (change.abs() as f64) < 0.25 * previous as f64 => {
                Trend::Steady
            }
            _ if change > 0 => Trend::Rising,
            _ => Trend::Falling,
        }
    }

    pub fn marker(self) -> &'static str {
        match self {
            Trend::New => "★ new",
            Trend::Rising => "▲ rising",
            Trend::Steady => "▬ steady",
            Trend::Falling => "▼ falling",
            Trend::Gone => "○ gone",
            Trend::Unknown => "? unknown",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Trend::New => "new",
            Trend::Rising => "rising",
            Trend::Steady => "steady",
            Trend::Falling => "falling",
            Trend::Gone => "gone",
            Trend::Unknown => "unknown",
        }
    }
}

/// One group over the whole timeline, with what the period says about it.
#[derive(Debug, Clone)]
pub struct Group {
    /// The value of the `--by` column (`tenant_id` for tenants).
    pub key: String,
    /// For tenants: the business name.
    pub name: Option<String>,
    /// One cell per bucket of the timeline.
    pub cells: Vec<Cell>,
    /// The period's cells added up.
    pub total: Cell,
    /// The previous period's errors (the same number of buckets before);
    /// None when part of it could not be read.
    pub previous_errors: Option<i64>,
    /// Every bucket of the period was read: otherwise `total` is a lower
    /// bound, and neither a change nor a trend is told.
    pub period_complete: bool,
    pub trend: Trend,
    /// Spike flags for the period's buckets.
    pub spikes: Vec<bool>,
    /// Each period bucket's baseline (None with too little history).
    pub baselines: Vec<Option<Baseline>>,
    /// An error type first seen inside the period (`--by error_type`).
    pub new_type: bool,
}

impl Group {
    /// errored calls / calls over the period, for tenants with calls.
    pub fn error_rate(&self) -> Option<f64> {
        rate(&self.total)
    }

    pub fn change_pct(&self) -> Option<f64> {
        self.previous_errors
            .filter(|p| *p > 0 && self.period_complete)
            .map(|p| (self.total.errors - p) as f64 * 100.0 / p as f64)
    }

    pub fn spike_count(&self) -> usize {
        self.spikes.iter().filter(|s| **s).count()
    }
}

pub(crate) fn rate(cell: &Cell) -> Option<f64> {
    (cell.calls > 0).then(|| cell.errored_calls as f64 / cell.calls as f64)
}

/// An error type whose first error of the timeline lies inside the period.
#[derive(Debug, Clone)]
pub struct NewType {
    pub error_type: String,
    pub first_seen_at: Option<i64>,
    pub errors: i64,
}

/// Everything `errors` reports.
pub struct Analysis {
    pub by: By,
    pub timeline: Timeline,
    pub rule: SpikeRule,
    /// Every group with errors in the timeline, most errors in the period first.
    pub groups: Vec<Group>,
    pub new_types: Vec<NewType>,
    /// Days nothing could be read for (not rolled up, no source).
    pub missing_days: Vec<NaiveDate>,
    /// Per timeline bucket: nothing could be read for it.
    pub missing: Vec<bool>,
    /// Where the figures were read, for people.
    pub read_from: String,
}

/// Reads the i64 values of a column (nulls as None), whatever its integer
/// or temporal type.
fn i64_values(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    let column = df.column(name)?.to_physical_repr();
    let column = column.cast(&DataType::Int64)?;
    Ok(column.i64()?.into_iter().collect())
}

fn text_values(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(crate::frames::strings(df, name)?)
}

/// Groups the series by `by`, cell per bucket, and applies the rules.
pub fn analyse(series: &Counts, timeline: Timeline, by: By, rule: SpikeRule) -> Result<Analysis> {
    let width = timeline.keys.len();
    let mut cells: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    let errors = &series.errors;
    let (buckets, keys) = (
        i64_values(errors, "bucket")?,
        text_values(errors, by.column())?,
    );
    let (counts, unresolved, affected) = (
        i64_values(errors, "errors")?,
        i64_values(errors, "unresolved_errors")?,
        i64_values(errors, "calls_affected")?,
    );
    let (first, last) = (
        i64_values(errors, "first_seen_at")?,
        i64_values(errors, "last_seen_at")?,
    );
    let types = text_values(errors, "error_type")?;
    // Error types: cells of the whole timeline, for new-type detection.
    let mut type_cells: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    for i in 0..errors.height() {
        let Some(index) = buckets[i].and_then(|b| timeline.index_of(b)) else {
            continue;
        };
        let cell = Cell {
            errors: counts[i].unwrap_or(0),
            unresolved_errors: unresolved[i].unwrap_or(0),
            calls_affected: affected[i].unwrap_or(0),
            first_seen_at: first[i],
            last_seen_at: last[i],
            calls: 0,
            errored_calls: 0,
        };
        let key = keys[i].clone().unwrap_or_else(|| "unknown".into());
        cells
            .entry(key)
            .or_insert_with(|| vec![Cell::default(); width])[index]
            .add(&cell);
        let error_type = types[i].clone().unwrap_or_else(|| "unknown".into());
        type_cells
            .entry(error_type)
            .or_insert_with(|| vec![Cell::default(); width])[index]
            .add(&cell);
    }
    if by == By::Tenant {
        let calls = &series.calls;
        let (buckets, tenants) = (
            i64_values(calls, "bucket")?,
            text_values(calls, "tenant_id")?,
        );
        let (counts, errored) = (
            i64_values(calls, "calls")?,
            i64_values(calls, "errored_calls")?,
        );
        for i in 0..calls.height() {
            let (Some(index), Some(tenant)) =
                (buckets[i].and_then(|b| timeline.index_of(b)), &tenants[i])
            else {
                continue;
            };
            // Only tenants with errors are groups.
            if let Some(row) = cells.get_mut(tenant) {
                row[index].calls += counts[i].unwrap_or(0);
                row[index].errored_calls += errored[i].unwrap_or(0);
            }
        }
    }

    let start = timeline.period_start;
    let length = timeline.period_len();
    let mut missing = vec![false; width];
    for key in &series.missing {
        if let Some(i) = timeline.index_of(*key) {
            missing[i] = true;
        }
    }
    // What was found in a bucket that could not be wholly read (an hour
    // the snapshot holds only part of) is not its count: it counts for
    // nothing, in totals, baselines and the chart alike, and the bucket
    // is unknown.
    for (i, _) in missing.iter().enumerate().filter(|(_, m)| **m) {
        for row in cells.values_mut().chain(type_cells.values_mut()) {
            row[i] = Cell::default();
        }
    }
    // A group seen only in such buckets is no group.
    cells.retain(|_, row| row.iter().any(|c| c.errors > 0));
    type_cells.retain(|_, row| row.iter().any(|c| c.errors > 0));
    // The previous period is unknown where the calendar has none (before
    // 0001-01-01: the lookback is shorter).
    let previous_known = start
        .checked_sub(length)
        .is_some_and(|first| !missing[first..start].iter().any(|m| *m));
    let period_complete = !missing[start..].iter().any(|m| *m);
    let baseline_buckets: Vec<Vec<usize>> =
        (start..width).map(|i| timeline.baseline_of(i)).collect();
    // New: nothing in a wholly read lookback (the previous period and the
    // baselines before it): an unread bucket may have held the errors.
    let lookback_known = !missing[..start].iter().any(|m| *m);
    let is_new = |series: &[Cell]| {
        let before: i64 = series[..start].iter().map(|c| c.errors).sum();
        let during: i64 = series[start..].iter().map(|c| c.errors).sum();
        lookback_known && before == 0 && during > 0
    };
    let mut groups: Vec<Group> = cells
        .into_iter()
        .map(|(key, cells)| {
            let mut total = Cell::default();
            for cell in &cells[start..] {
                total.add(cell);
            }
            let previous_errors =
                previous_known.then(|| cells[start - length..start].iter().map(|c| c.errors).sum());
            // Not known to be unseen is not new.
            let seen_before = !lookback_known || cells[..start].iter().any(|c| c.errors > 0);
            // Buckets that could not be read are left out of baselines.
            let baselines: Vec<Option<Baseline>> = (start..cells.len())
                .map(|i| {
                    let read: Vec<&Cell> = baseline_buckets[i - start]
                        .iter()
                        .filter(|j| !missing[**j])
                        .map(|j| &cells[*j])
                        .collect();
                    let earlier: Vec<i64> = read.iter().map(|c| c.errors).collect();
                    SpikeRule::baseline(&earlier, burst(&read))
                })
                .collect();
            let spikes = (start..cells.len())
                .zip(&baselines)
                .map(|(i, b)| !missing[i] && rule.is_spike(cells[i].errors, *b))
                .collect();
            let new_type = by == By::ErrorType && is_new(&cells);
            Group {
                name: match by {
                    By::Tenant => Some(
                        series
                            .names
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| tenant_name(&key)),
                    ),
                    _ => None,
                },
                trend: if period_complete {
                    Trend::of(total.errors, previous_errors, seen_before)
                } else {
                    Trend::Unknown
                },
                period_complete,
                key,
                cells,
                total,
                previous_errors,
                spikes,
                baselines,
                new_type,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.total
            .errors
            .cmp(&a.total.errors)
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut new_types: Vec<NewType> = type_cells
        .into_iter()
        .filter(|(_, cells)| is_new(cells))
        .map(|(error_type, cells)| {
            let mut total = Cell::default();
            for cell in &cells[start..] {
                total.add(cell);
            }
            NewType {
                error_type,
                first_seen_at: total.first_seen_at,
                errors: total.errors,
            }
        })
        .collect();
    new_types.sort_by_key(|t| std::cmp::Reverse(t.errors));
    let missing_days = series
        .missing
        .iter()
        .filter(|_| timeline.bucketing == Bucketing::Day)
        .map(|d| day_of_epoch(*d))
        .collect();
    Ok(Analysis {
        by,
        timeline,
        rule,
        groups,
        new_types,
        missing_days,
        missing,
        read_from: String::new(),
    })
}

/// Platform rows carry the nil UUID; people read `(platform)`.
fn tenant_name(tenant_id: &str) -> String {
    if tenant_id == PLATFORM_TENANT {
        crate::frames::PLATFORM_NAME.to_string()
    } else {
        String::new()
    }
}

/// A spike, for people: which group, which bucket, how far above what.
pub struct Spike<'a> {
    pub group: &'a Group,
    /// Index into the timeline.
    pub bucket: usize,
    pub errors: i64,
    pub baseline: Baseline,
}

impl Analysis {
    /// Whether any bucket of the period could be read.
    pub fn period_read(&self) -> bool {
        self.missing[self.timeline.period_start..]
            .iter()
            .any(|m| !*m)
    }

    /// The groups shown: the first `top` (all when None).
    pub fn shown(&self, top: Option<usize>) -> &[Group] {
        let n = top.unwrap_or(self.groups.len()).min(self.groups.len());
        &self.groups[..n]
    }

    /// Every spike of the shown groups, largest excess first.
    pub fn spikes(&self, top: Option<usize>) -> Vec<Spike<'_>> {
        spikes_of(self.shown(top), self.timeline.period_start)
    }

    /// Every spike of every group, largest excess first: a group below
    /// `--top` may hold the largest one.
    pub fn all_spikes(&self) -> Vec<Spike<'_>> {
        spikes_of(&self.groups, self.timeline.period_start)
    }

    /// Period buckets nothing could be read for, as people name them.
    pub fn missing_buckets(&self) -> Vec<String> {
        let start = self.timeline.period_start;
        (start..self.timeline.keys.len())
            .filter(|i| self.missing[*i])
            .map(|i| self.timeline.label(i))
            .collect()
    }
}

impl Spike<'_> {
    /// How far above its baseline, in spreads.
    pub fn strength(&self) -> f64 {
        (self.errors as f64 - self.baseline.median) / self.baseline.spread
    }
}

/// The spikes of `groups`, largest excess (in spreads) first.
fn spikes_of(groups: &[Group], start: usize) -> Vec<Spike<'_>> {
    let mut out: Vec<Spike> = groups
        .iter()
        .flat_map(|g| {
            g.spikes
                .iter()
                .enumerate()
                .filter(|(_, s)| **s)
                .map(move |(i, _)| Spike {
                    group: g,
                    bucket: start + i,
                    errors: g.cells[start + i].errors,
                    baseline: g.baselines[i].expect("a spike has a baseline"),
                })
        })
        .collect();
    out.sort_by(|a, b| b.strength().total_cmp(&a.strength()));
    out
}

impl Analysis {
    /// The rows of the json and csv outputs: one per shown group and
    /// period bucket, oldest bucket first within a group. A bucket nothing
    /// could be read for is a row too, its figures unknown (`cell` None,
    /// null in the outputs): never left out, never a 0.
    pub fn rows(&self, top: Option<usize>) -> Vec<Row<'_>> {
        let start = self.timeline.period_start;
        let length = self.timeline.period_len();
        let mut out = Vec::new();
        for group in self.shown(top) {
            for i in 0..length {
                let index = start + i;
                let cell = (!self.missing[index]).then(|| &group.cells[index]);
                out.push(Row {
                    bucket: self.timeline.label(index),
                    group,
                    cell,
                    error_rate: cell.and_then(rate),
                    // The lookback holds one period, but where the
                    // calendar starts (0001-01-01).
                    previous_errors: index
                        .checked_sub(length)
                        .filter(|&earlier| !self.missing[earlier])
                        .map(|earlier| group.cells[earlier].errors),
                    spike: cell.map(|_| group.spikes[i]),
                });
            }
        }
        out
    }
}

/// One group in one bucket of the period.
pub struct Row<'a> {
    pub bucket: String,
    pub group: &'a Group,
    /// None: the bucket could not be read (unknown, not 0).
    pub cell: Option<&'a Cell>,
    pub error_rate: Option<f64>,
    /// The same group's errors one period earlier (None: not read).
    pub previous_errors: Option<i64>,
    /// None: not read.
    pub spike: Option<bool>,
}
