//! Late rows beyond the lookback. The nightly run re-reads its window (the
//! last complete day and `--lookback` days before it); a call or error
//! that arrives for an older day is never rolled up, and never shows as a
//! restatement. After each whole run against a database, this check
//! compares, for the closed days of the last `DAYS` that the run did not
//! re-read and that a succeeded run covers, each tenant day's calls,
//! total cost and errors in the source with the summary table: counts and
//! sums computed by Postgres on both sides (one aggregate over the
//! days' `created_at` range, served by the source's index; one range read
//! of `tenant_daily`), so it costs a fraction of the run.
//!
//! A drifted day is reported in the run's summary and metrics with the
//! command that re-rolls it (which then records the restatement);
//! `--fail-on drift` makes it exit 3.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::db::DbUrl;
use crate::error::Result;
use crate::sql;
use crate::window::Window;

/// The days looked at, counted back from the last complete day.
pub const DAYS: u64 = 35;

/// One tenant day's figures, as one side holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub calls: i64,
    pub total_cost_usd: Decimal,
    pub errors: i64,
}

/// Whether the check was made after a run, and what it found.
pub type Check = crate::gates::Check<Drift>;

impl crate::gates::Check<Drift> {
    /// The summary's line.
    pub fn line(&self) -> String {
        match self {
            Check::Made(drift) => drift.line(),
            Check::NotMade(why) => format!("not checked: {why}"),
            Check::Failed(why) => format!("not checked: the check failed ({why})"),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct Drift {
    /// The days compared (closed, outside the run's window and the
    /// nightly lookback, covered).
    pub days: Vec<NaiveDate>,
    /// Tenant days whose source figures differ from the summary's: the
    /// tenant, the day, the summary's figures and the source's.
    pub drifted: Vec<(String, NaiveDate, Figures, Figures)>,
    /// The report folder of the run, for the command that re-rolls.
    pub out: std::path::PathBuf,
}

impl Drift {
    /// The days to re-roll, as one `run` command into the run's report
    /// folder (None: nothing drifted).
    pub fn rerun(&self) -> Option<String> {
        let first = self.drifted.iter().map(|d| d.1).min()?;
        let last = self.drifted.iter().map(|d| d.1).max()?;
        Some(format!(
            "callrollup run --from {first} --to {last} --out {}",
            shell_word(&self.out.display().to_string())
        ))
    }

    /// Tenant days drifted.
    pub fn count(&self) -> usize {
        self.drifted.len()
    }

    /// The summary's line.
    pub fn line(&self) -> String {
        let (Some(first), Some(last)) = (self.days.first(), self.days.last()) else {
            return format!("not checked: every closed day of the last {DAYS} is in the window or the nightly lookback, or no run covered it");
        };
        match self.rerun() {
            None => format!(
                "none: the {} closed day(s) of {first}..{last} outside the window and the nightly lookback match the source",
                self.days.len()
            ),
            Some(rerun) => {
                let (tenant, day, was, now) = &self.drifted[0];
                format!(
                    "{} tenant day(s) of {first}..{last} differ from the source (rows added, changed or deleted after they were rolled up, beyond the lookback, or a tenant's zone changed since), the first {day} of tenant {tenant}: calls {} → {}, total {} → {} USD, errors {} → {}; re-roll them: `{rerun}`",
                    self.drifted.len(),
                    was.calls,
                    now.calls,
                    crate::money::format(was.total_cost_usd),
                    crate::money::format(now.total_cost_usd),
                    was.errors,
                    now.errors
                )
            }
        }
    }
}

/// The closed days of the last `DAYS` (ending at the last complete day at
/// `now`) outside `window` and before the nightly run's `lookback` (the
/// next nightly run re-reads those anyway).
pub fn days_to_check(window: &Window, now: DateTime<Utc>, lookback: u32) -> Vec<NaiveDate> {
    let last = crate::window::last_complete_day(now);
    let (Some(first), Some(before_lookback)) = (
        last.checked_sub_days(Days::new(DAYS - 1)),
        last.checked_sub_days(Days::new(u64::from(lookback) + 1)),
    ) else {
        return Vec::new();
    };
    first
        .iter_days()
        .take_while(|d| *d <= before_lookback)
        .filter(|d| *d < window.from || *d > window.to)
        .collect()
}

/// A path as one shell word: bare when it is plain, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Compares `days` of the source at `source` (schema `source_schema`)
/// with the summary table of `target` (schema `target_schema`), on the
/// days a succeeded run covers; `out` is the run's report folder, for the
/// command that re-rolls.
pub fn check(
    source: &DbUrl,
    source_schema: &str,
    target: &DbUrl,
    target_schema: &str,
    days: &[NaiveDate],
    out: &std::path::Path,
) -> Result<Drift> {
    let nothing = || Drift {
        out: out.to_path_buf(),
        ..Drift::default()
    };
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return Ok(nothing());
    };
    let period = crate::window::Period {
        from: first,
        to: last,
        is_month: false,
    };
    let mut summaries = crate::summaries::Summaries::database(
        target,
        target_schema.to_string(),
        "callrollup-drift",
    )?;
    // One state of the summary: its coverage and its figures.
    let (coverage, held) = summaries.snapshot(|summaries| {
        let coverage = summaries.coverage(&period)?;
        let crate::summaries::Summaries::Database { client, schema, .. } = summaries else {
            unreachable!("opened on a database");
        };
        let rows = client.query(
            &sql::render(sql::DRIFT_SUMMARY, &[("schema", schema)]),
            &[&first, &last],
        )?;
        Ok((coverage, figures_of(&rows)?))
    })?;
    drop(summaries);
    let not_covered: BTreeSet<NaiveDate> = coverage
        .missing_days
        .iter()
        .chain(&coverage.partial_days)
        .copied()
        .collect();
    let days: Vec<NaiveDate> = days
        .iter()
        .copied()
        .filter(|d| !not_covered.contains(d))
        .collect();
    // Only the span of the days compared is aggregated: days before the
    // first and after the last covered day (before the engine's first
    // run, say) are never compared, and reading them cost a short run
    // most of its time. A gap inside the span is still read.
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return Ok(nothing());
    };

    let mut client = source.connect_reporting("callrollup-drift")?;
    let tenants = client.query(
        &sql::render(
            sql::TENANTS,
            &[("schema", source_schema), ("tenant_filter", "")],
        ),
        &[],
    )?;
    let mut ids: Vec<uuid::Uuid> = Vec::with_capacity(tenants.len());
    let mut zones: Vec<&str> = Vec::with_capacity(tenants.len());
    for row in &tenants {
        let id: uuid::Uuid = row.get("tenant_id");
        let declared: Option<&str> = row.get("timezone");
        // The rollup's rule: a zone the engine does not know is UTC.
        let zone = declared
            .and_then(crate::rollup::timezone::canonical_zone)
            .unwrap_or("UTC");
        ids.push(id);
        zones.push(zone);
    }
    let (from_utc, to_utc) = Window {
        from: first,
        to: last,
        partial: false,
    }
    .utc_range();
    let rows = client.query(
        &sql::render(sql::DRIFT_SOURCE, &[("schema", source_schema)]),
        &[&ids, &zones, &from_utc, &to_utc, &first, &last],
    )?;
    let source_figures = figures_of(&rows)?;
    Ok(Drift {
        out: out.to_path_buf(),
        ..compare(&days, &held, &source_figures)
    })
}

/// Each tenant day's figures of a query's rows; a value that cannot be
/// read (a NULL, a sum past an exact decimal) fails the check, never the
/// run that has already committed.
fn figures_of(rows: &[postgres::Row]) -> Result<BTreeMap<(String, NaiveDate), Figures>> {
    rows.iter()
        .map(|r| {
            Ok((
                (r.try_get("tenant_id")?, r.try_get("day")?),
                Figures {
                    calls: r.try_get("calls")?,
                    total_cost_usd: r.try_get("total_cost_usd")?,
                    errors: r.try_get("errors")?,
                },
            ))
        })
        .collect()
}

/// The tenant days of `days` whose figures differ (a side without the
/// day holds zeros). Money is compared as stored: 6 decimals, rounded
/// half away from zero.
pub fn compare(
    days: &[NaiveDate],
    held: &BTreeMap<(String, NaiveDate), Figures>,
    source: &BTreeMap<(String, NaiveDate), Figures>,
) -> Drift {
    let wanted: BTreeSet<NaiveDate> = days.iter().copied().collect();
    let keys: BTreeSet<&(String, NaiveDate)> = held
        .keys()
        .chain(source.keys())
        .filter(|(_, day)| wanted.contains(day))
        .collect();
    let stored = |f: Figures| Figures {
        total_cost_usd: crate::money::round_to(f.total_cost_usd, 6).normalize(),
        ..f
    };
    let mut drifted: Vec<(String, NaiveDate, Figures, Figures)> = keys
        .into_iter()
        .filter_map(|key| {
            let was = stored(held.get(key).copied().unwrap_or_default());
            let now = stored(source.get(key).copied().unwrap_or_default());
            (was != now).then(|| (key.0.clone(), key.1, was, now))
        })
        .collect();
    drifted.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Drift {
        days: days.to_vec(),
        drifted,
        out: std::path::PathBuf::from("reports"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn the_days_checked_are_the_closed_ones_before_and_after_the_window() {
        let now: DateTime<Utc> = "2026-12-07T13:00:00Z".parse().unwrap();
        let window = Window {
            from: day("2026-12-03"),
            to: day("2026-12-06"),
            partial: false,
        };
        let days = days_to_check(&window, now, 3);
        assert_eq!(days.len(), 31);
        assert_eq!(days.first(), Some(&day("2026-11-02")));
        assert_eq!(days.last(), Some(&day("2026-12-02")));
        // A re-run of an older period: the days up to the nightly
        // lookback are checked, not those the next nightly run re-reads.
        let october = Window {
            from: day("2026-10-01"),
            to: day("2026-10-31"),
            partial: false,
        };
        assert_eq!(days_to_check(&october, now, 3).len(), 31);
        // A backfill in the middle: the days on both sides.
        let middle = Window {
            from: day("2026-11-18"),
            to: day("2026-11-22"),
            partial: false,
        };
        let days = days_to_check(&middle, now, 3);
        assert_eq!(days.len(), 26);
        assert!(!days.contains(&day("2026-11-20")));
        assert!(!days.contains(&day("2026-12-04")));
    }

    #[test]
    fn a_late_call_and_a_day_missing_on_one_side_are_drift_and_equal_money_is_not() {
        let key = |t: &str, d: &str| (t.to_string(), day(d));
        let figures = |calls, total: &str, errors| Figures {
            calls,
            total_cost_usd: total.parse().unwrap(),
            errors,
        };
        let held = BTreeMap::from([
            (key("a", "2026-11-10"), figures(3, "1.500000", 0)),
            (key("b", "2026-11-10"), figures(1, "0.250000", 2)),
        ]);
        let source = BTreeMap::from([
            // The same money with other trailing zeros: no drift.
            (key("a", "2026-11-10"), figures(3, "1.5", 0)),
            // A late call.
            (key("b", "2026-11-10"), figures(2, "0.75", 2)),
            // A tenant day no run wrote.
            (key("c", "2026-11-11"), figures(0, "0", 1)),
            // Outside the days checked.
            (key("c", "2026-12-05"), figures(9, "9", 9)),
        ]);
        let drift = compare(&[day("2026-11-10"), day("2026-11-11")], &held, &source);
        let drifted: Vec<(&str, NaiveDate)> =
            drift.drifted.iter().map(|d| (d.0.as_str(), d.1)).collect();
        assert_eq!(
            drifted,
            [("b", day("2026-11-10")), ("c", day("2026-11-11"))]
        );
        assert_eq!(
            drift.rerun().as_deref(),
            Some("callrollup run --from 2026-11-10 --to 2026-11-11 --out reports")
        );
        assert_eq!(shell_word("/srv/it's here"), "'/srv/it'\\''s here'");
        assert!(drift.line().contains("2 tenant day(s)"), "{}", drift.line());
    }
}
