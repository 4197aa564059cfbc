//! Dates and windows: which tenant-local days a run covers and which UTC
//! range must be read to see every call of those days (docs/CONTRACT.md §2).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::error::{Error, Result};

/// The longest window, in days, that `query` and `errors` read (about ten
/// years; docs/CONTRACT.md §6): a longer one is a usage error, not days
/// allocated one by one.
/// The first and the last day any date here may be (years 0001-9999:
/// `YEARS`); a lookback or a UTC range stops there.
pub const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("a calendar date");
pub const LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a calendar date");

pub const MAX_SPAN_DAYS: i64 = 3660;

/// Refuses a `--from/--to` span longer than [`MAX_SPAN_DAYS`] (exit 2).
pub fn check_span(from: NaiveDate, to: NaiveDate) -> Result<()> {
    let days = (to - from).num_days() + 1;
    if days > MAX_SPAN_DAYS {
        return Err(Error::usage(format!(
            "--from {from} --to {to} spans {days} days; at most {MAX_SPAN_DAYS} days (about ten years) are read at once: narrow the window"
        )));
    }
    Ok(())
}

/// Inclusive range of tenant-local dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// True when the window reaches a day that has not ended everywhere yet.
    pub partial: bool,
}

/// How the user asked for a window.
#[derive(Debug, Clone, Default)]
pub struct WindowRequest {
    pub date: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub lookback: u32,
    pub allow_partial: bool,
}

/// Years a date may have, everywhere: chrono takes −262143 to 262142,
/// and date arithmetic near those ends panics (a `/costs` over year
/// −262143 answered 500).
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

pub fn parse_date(flag: &str, value: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|d| YEARS.contains(&d.year()))
        .filter(|d| d.format("%Y-%m-%d").to_string() == value)
        .ok_or_else(|| {
            Error::usage(format!(
                "{flag} {value:?} is not a calendar date; use YYYY-MM-DD, e.g. 2026-10-31"
            ))
        })
}

/// Days since 1970-01-01 (Polars' and Arrow's `Date`).
pub fn epoch_day(day: NaiveDate) -> i64 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days()
}

/// The date `days` after 1970-01-01.
pub fn day_of_epoch(days: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch") + TimeDelta::days(days)
}

/// The most recent date that has ended in every time zone at `now`:
/// date D is complete at D+1 12:00 UTC (the end of D at UTC−12).
pub fn last_complete_day(now: DateTime<Utc>) -> NaiveDate {
    let shifted = now - TimeDelta::hours(12);
    shifted.date_naive() - Days::new(1)
}

impl WindowRequest {
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Window> {
        let complete = last_complete_day(now);
        let (from, to) = match (&self.date, &self.from, &self.to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Error::usage(
                    "--date cannot be combined with --from/--to; use one or the other",
                ))
            }
            (Some(d), None, None) => {
                let d = parse_date("--date", d)?;
                (d, d)
            }
            (None, Some(f), Some(t)) => (parse_date("--from", f)?, parse_date("--to", t)?),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(Error::usage("--from and --to go together; give both"))
            }
            (None, None, None) => {
                let from = complete
                    .checked_sub_days(Days::new(u64::from(self.lookback)))
                    .ok_or_else(|| Error::usage("--lookback reaches before year 0"))?;
                (from, complete)
            }
        };
        if from > to {
            return Err(Error::usage(format!(
                "--from {from} is after --to {to}; swap them"
            )));
        }
        let partial = to > complete;
        if partial && !self.allow_partial {
            return Err(Error::usage(format!(
                "{to} is not complete yet (it ends everywhere at {} UTC); the last complete day is {complete}; pass --allow-partial to roll up an incomplete day",
                (to + Days::new(1)).and_hms_opt(12, 0, 0).expect("valid time").format("%Y-%m-%d %H:%M")
            )));
        }
        Ok(Window { from, to, partial })
    }
}

impl Window {
    /// `utc_range` in Unix µs.
    pub fn utc_micros(&self) -> (i64, i64) {
        let (from, to) = self.utc_range();
        (from.timestamp_micros(), to.timestamp_micros())
    }

    /// The UTC range `[from 00:00 at UTC+14, to+1 00:00 at UTC−12)` that holds
    /// every instant whose local date in some zone lies in the window.
    pub fn utc_range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        // Within years 0001-9999, as every date here: Postgres reads
        // neither a year 0 ("0000-12-31T10:00Z" failed the errors of
        // 0001-01-01) nor a year 10000 (those of 9999-12-31), and no row
        // lies outside.
        let calendar_start = FIRST_DAY.and_time(NaiveTime::MIN).and_utc();
        let calendar_end = LAST_DAY
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .expect("a time")
            .and_utc();
        let start = (self.from.and_time(NaiveTime::MIN).and_utc() - TimeDelta::hours(14))
            .max(calendar_start);
        let end = ((self.to + Days::new(1)).and_time(NaiveTime::MIN).and_utc()
            + TimeDelta::hours(12))
        .min(calendar_end);
        (start, end)
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }

    /// The window in consecutive pieces of at most `days` days.
    pub fn chunks(&self, days: u32) -> Vec<Window> {
        let step = u64::from(days.max(1));
        let mut out = Vec::new();
        let mut from = self.from;
        while from <= self.to {
            // A --chunk-days beyond the calendar is the whole window.
            let to = from
                .checked_add_days(Days::new(step - 1))
                .map_or(self.to, |end| end.min(self.to));
            out.push(Window {
                from,
                to,
                partial: self.partial && to == self.to,
            });
            from = to + Days::new(1);
        }
        out
    }

    pub fn day_count(&self) -> usize {
        (self.to - self.from).num_days() as usize + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn day_is_complete_at_noon_utc_the_next_day() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(last_complete_day(at(2026, 11, 26, 11)), d - Days::new(1));
        assert_eq!(last_complete_day(at(2026, 11, 26, 12)), d);
    }

    #[test]
    fn default_window_is_last_complete_day_and_lookback() {
        let req = WindowRequest {
            lookback: 3,
            ..Default::default()
        };
        let w = req.resolve(at(2026, 11, 26, 13)).unwrap();
        assert_eq!(w.from, NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        assert_eq!(w.to, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        assert!(!w.partial);
    }

    #[test]
    fn utc_range_spans_plus_14_to_minus_12() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let w = Window {
            from: d,
            to: d,
            partial: false,
        };
        assert_eq!(w.utc_range(), (at(2026, 3, 7, 10), at(2026, 3, 9, 12)));
    }

    #[test]
    fn chunks_cover_the_window_once_in_order() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
        let w = Window {
            from: d(1),
            to: d(10),
            partial: true,
        };
        let chunks: Vec<_> = w
            .chunks(4)
            .iter()
            .map(|c| (c.from, c.to, c.partial))
            .collect();
        assert_eq!(
            chunks,
            [
                (d(1), d(4), false),
                (d(5), d(8), false),
                (d(9), d(10), true)
            ]
        );
        assert_eq!(w.chunks(30).len(), 1);
    }

    #[test]
    fn bad_dates_are_usage_errors() {
        for (f, t) in [
            ("2026-02-30", "2026-03-01"),
            ("2026-3-1", "2026-03-02"),
            ("2026-03-05", "2026-03-01"),
        ] {
            let req = WindowRequest {
                from: Some(f.into()),
                to: Some(t.into()),
                ..Default::default()
            };
            assert_eq!(
                req.resolve(at(2026, 11, 26, 13)).unwrap_err().exit_code(),
                2
            );
        }
    }

    #[test]
    fn spans_longer_than_the_maximum_are_usage_errors() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert!(check_span(d(2026, 1, 1), d(2026, 1, 1)).is_ok());
        let last = d(2026, 1, 1) + TimeDelta::days(MAX_SPAN_DAYS - 1);
        assert!(check_span(d(2026, 1, 1), last).is_ok());
        let e = check_span(d(2026, 1, 1), last + Days::new(1)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = check_span(d(1, 1, 1), d(9999, 12, 31)).unwrap_err();
        assert!(e.to_string().contains("at most 3660 days"), "{e}");
    }

    #[test]
    fn dates_outside_years_1_to_9999_are_refused_not_a_panic_later() {
        for bad in [
            "-262143-01-01",
            "0000-01-01",
            "+10000-01-01",
            "262142-12-31",
        ] {
            assert!(parse_date("--from", bad).is_err(), "{bad}");
        }
        assert!(parse_date("--from", "0001-01-01").is_ok());
        assert!(parse_date("--to", "9999-12-31").is_ok());
        for bad in ["0000-01", "+999-01", "-262-01"] {
            assert!(Period::month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn incomplete_day_needs_allow_partial() {
        let mut req = WindowRequest {
            date: Some("2026-11-26".into()),
            ..Default::default()
        };
        assert!(req.resolve(at(2026, 11, 26, 13)).is_err());
        req.allow_partial = true;
        assert!(req.resolve(at(2026, 11, 26, 13)).unwrap().partial);
    }
}

/// A report's days: a calendar month or a range of days, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// `--month`: the previous period is the previous calendar month.
    pub is_month: bool,
}

impl Period {
    /// `YYYY-MM` as a period.
    pub fn month(text: &str) -> Result<Period> {
        let bad = || {
            Error::usage(format!(
                "--month {text:?} is not a month; use YYYY-MM, e.g. 2026-10"
            ))
        };
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if y.len() != 4 || m.len() != 2 || !digits(y) || !digits(m) || y == "0000" {
            return Err(bad());
        }
        let from = NaiveDate::from_ymd_opt(
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            1,
        )
        .ok_or_else(bad)?;
        let to = (from + Months::new(1)) - Days::new(1);
        Ok(Period {
            from,
            to,
            is_month: true,
        })
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The period before: the previous calendar month for a month,
    /// otherwise the same number of days just before.
    pub fn previous(&self) -> Period {
        if self.is_month {
            let from = self.from - Months::new(1);
            Period {
                from,
                to: self.from - Days::new(1),
                is_month: true,
            }
        } else {
            let length = Days::new(self.days() as u64);
            Period {
                from: self.from - length,
                to: self.from - Days::new(1),
                is_month: false,
            }
        }
    }

    /// The day of the previous period that stands where `day` stands in
    /// this one: the same day of the previous month (None when that month
    /// is shorter), or `day` minus the period's length.
    pub fn previous_day(&self, day: NaiveDate) -> Option<NaiveDate> {
        if self.is_month {
            day.checked_sub_months(Months::new(1))
                .filter(|d| d.day() == day.day())
        } else {
            Some(day - Days::new(self.days() as u64))
        }
    }

    pub fn each_day(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}
