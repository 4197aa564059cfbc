//! Restatements: the billed figures of tenant days that a later run
//! changed after an earlier one had written them. Every run records its
//! changes to stored summary rows in `restatements`, in its own write
//! transaction (`sink::postgres`); this module reads the `tenant_daily`
//! ones back for `callrollup changes` and for the footer of `costs`.
//! The database is the record: report files carry no history.

pub mod render;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::selection::TenantSelection;
use crate::sql;
use crate::summaries::Summaries;

/// A tenant day's billed figures, before or after a restatement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    pub calls: i64,
    pub total_cost_usd: Decimal,
    pub stt_cost_usd: Decimal,
    pub llm_cost_usd: Decimal,
    pub tts_cost_usd: Decimal,
}

/// One run's change to one tenant day's billed figures. A deleted row's
/// new figures are 0: the day bills nothing any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restatement {
    pub tenant_id: String,
    pub business_name: Option<String>,
    pub day: NaiveDate,
    pub old: Billed,
    pub new: Billed,
    /// The run that wrote the old figures.
    pub previous_run_id: Option<String>,
    /// The run that replaced them.
    pub run_id: String,
    pub restated_at: DateTime<Utc>,
    /// Its row in `restatements` (what `changes --alert` marks reported).
    pub id: i64,
}

impl Restatement {
    /// `new - old` of one money column.
    pub fn change(&self, column: MoneyOf) -> Decimal {
        column(&self.new) - column(&self.old)
    }
}

/// Which restatements to read; every bound is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Restated days on or after.
    pub from: Option<NaiveDate>,
    /// Restated days on or before.
    pub to: Option<NaiveDate>,
    pub tenants: TenantSelection,
    /// Only the changes this run made.
    pub run: Option<Uuid>,
    /// Only changes recorded at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Only changes of runs this alert has not reported (`--alert`).
    pub unreported_by: Option<String>,
}

impl Filter {
    /// Narrows the days to those before `day` (closed books): false when
    /// no day is left (the period starts on or after it).
    pub fn before(&mut self, day: NaiveDate) -> bool {
        let Some(last) = day.pred_opt() else {
            return false;
        };
        self.to = Some(self.to.map_or(last, |to| to.min(last)));
        self.from.is_none_or(|from| from <= last)
    }
}

/// Reads one money figure of a tenant day.
pub type MoneyOf = fn(&Billed) -> Decimal;

/// What the restatements of a period add up to, for `costs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restated {
    /// Tenant days restated at least once after their first run.
    pub tenant_days: usize,
    /// Lines (tenant day and run).
    pub restatements: usize,
    /// The summed change of total_cost_usd: today's figure minus the one
    /// first written.
    pub change_total_cost_usd: Decimal,
}

impl Restated {
    pub fn of(lines: &[Restatement]) -> Restated {
        let days: BTreeSet<(&str, NaiveDate)> = lines
            .iter()
            .map(|r| (r.tenant_id.as_str(), r.day))
            .collect();
        Restated {
            tenant_days: days.len(),
            restatements: lines.len(),
            change_total_cost_usd: lines.iter().map(|r| r.change(|b| b.total_cost_usd)).sum(),
        }
    }
}

impl Summaries {
    /// The `tenant_daily` restatements `filter` selects, by day, tenant
    /// and time; an error for report files, which carry no history.
    pub fn restatements(&mut self, filter: &Filter) -> Result<Vec<Restatement>> {
        let (client, schema) = self.history()?;
        if let Some(run) = filter.run {
            let known: bool = client
                .query_one(
                    &sql::render(sql::CHANGES_RUN_EXISTS, &[("schema", schema)]),
                    &[&run],
                )?
                .get(0);
            if !known {
                return Err(Error::usage(format!(
                    "--run {run}: no such run in the ledger of schema {schema}; `callrollup runs` lists them"
                )));
            }
        }
        let tenants = filter.tenants.tenant_array();
        let rows = client.query(
            &sql::render(sql::CHANGES_TENANT_DAILY, &[("schema", schema)]),
            &[
                &filter.from,
                &filter.to,
                &tenants,
                &filter.run,
                &filter.since,
                &filter.unreported_by,
            ],
        )?;
        let billed = |r: &postgres::Row, side: &str| Billed {
            calls: r.get(format!("{side}_calls").as_str()),
            total_cost_usd: r.get(format!("{side}_total_cost_usd").as_str()),
            stt_cost_usd: r.get(format!("{side}_stt_cost_usd").as_str()),
            llm_cost_usd: r.get(format!("{side}_llm_cost_usd").as_str()),
            tts_cost_usd: r.get(format!("{side}_tts_cost_usd").as_str()),
        };
        Ok(rows
            .iter()
            .map(|r| Restatement {
                tenant_id: r.get("tenant_id"),
                business_name: r.get("business_name"),
                day: r.get("day"),
                old: billed(r, "old"),
                new: billed(r, "new"),
                previous_run_id: r.get("previous_run_id"),
                run_id: r.get("run_id"),
                restated_at: r.get("restated_at"),
                id: r.get("restatement_id"),
            })
            .collect())
    }

    /// Takes the lock of `alert` for this session, or says another alert
    /// of that name is running (exit 4).
    pub fn lock_alert(&mut self, alert: &str) -> Result<()> {
        let (client, schema) = self.history()?;
        let taken: bool = client
            .query_one(sql::CHANGES_ALERT_LOCK, &[&schema, &alert])?
            .get(0);
        if !taken {
            return Err(Error::Locked {
                what: format!("changes --alert {alert}"),
            });
        }
        Ok(())
    }

    /// Records that `alert` reported the restatements `ids` (after its
    /// report was written), in a transaction of its own: the reporting
    /// session is otherwise read-only.
    pub fn mark_reported(&mut self, alert: &str, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (client, schema) = self.history()?;
        let marked = (|| {
            let mut tx = client.build_transaction().read_only(false).start()?;
            tx.execute(
                &sql::render(sql::CHANGES_ALERT_MARK, &[("schema", schema)]),
                &[&alert, &ids],
            )?;
            tx.commit()
        })();
        marked.map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
                Error::Database(format!(
                    "this role may not record the alert's marks in {schema}.restatement_alerts: run `changes --alert` as a role that may (deploy/roles.sql: callrollup_alerts)"
                ))
            } else {
                e.into()
            }
        })
    }

    /// The run that succeeded last (`changes --run last`), if any.
    pub fn last_succeeded_run(&mut self) -> Result<Option<Uuid>> {
        let (client, schema) = self.history()?;
        Ok(client
            .query_opt(
                &sql::render(sql::CHANGES_LAST_RUN, &[("schema", schema)]),
                &[],
            )?
            .map(|r| r.get(0)))
    }

    /// Which of `tenants` any restatement names.
    pub fn restated_tenants(&mut self, tenants: &[Uuid]) -> Result<BTreeSet<String>> {
        let (client, schema) = self.history()?;
        Ok(client
            .query(
                &sql::render(sql::CHANGES_KNOWN_TENANTS, &[("schema", schema)]),
                &[&tenants],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// The database that holds the history; an error for report files.
    fn history(&mut self) -> Result<(&mut postgres::Client, &str)> {
        match self {
            Summaries::Database { client, schema, .. } => Ok((client, schema)),
            Summaries::Reports(dir) => Err(Error::usage(format!(
                "report files carry no restatement history ({} holds figures, not their changes): the target database is the record; drop --reports and point --target-url at it",
                dir.display()
            ))),
        }
    }

    /// What the period's restatements of `tenants` add up to; None for
    /// report files (no history).
    pub fn restated(
        &mut self,
        period: &crate::window::Period,
        tenants: &TenantSelection,
    ) -> Result<Option<Restated>> {
        if matches!(self, Summaries::Reports(_)) {
            return Ok(None);
        }
        let lines = self.restatements(&Filter {
            from: Some(period.from),
            to: Some(period.to),
            tenants: tenants.clone(),
            ..Filter::default()
        })?;
        Ok(Some(Restated::of(&lines)))
    }
}

/// `--since`: a day (midnight UTC) or an RFC 3339 moment.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment.with_timezone(&Utc));
    }
    if let Ok(day) = crate::window::parse_date("--since", text) {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(Error::usage(format!(
        "--since {text:?} is neither a day nor a moment; use YYYY-MM-DD (midnight UTC) or RFC 3339, e.g. 2026-12-01T06:00:00Z"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tenant: &str, day: &str, old: &str, new: &str) -> Restatement {
        let money = |v: &str| v.parse::<Decimal>().unwrap();
        Restatement {
            tenant_id: tenant.into(),
            business_name: None,
            day: day.parse().unwrap(),
            old: Billed {
                total_cost_usd: money(old),
                ..Billed::default()
            },
            new: Billed {
                total_cost_usd: money(new),
                ..Billed::default()
            },
            previous_run_id: None,
            run_id: "r".into(),
            restated_at: Utc::now(),
            id: 0,
        }
    }

    #[test]
    fn a_tenant_day_restated_twice_counts_once_and_its_changes_add_up() {
        let lines = [
            line("a", "2026-03-08", "1.000000", "1.500000"),
            line("a", "2026-03-08", "1.500000", "1.250000"),
            line("b", "2026-03-08", "2.000000", "0"),
        ];
        let restated = Restated::of(&lines);
        assert_eq!(restated.tenant_days, 2);
        assert_eq!(restated.restatements, 3);
        assert_eq!(restated.change_total_cost_usd, "-1.75".parse().unwrap());
    }

    #[test]
    fn closed_books_narrow_the_days_and_an_open_period_leaves_none() {
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        let mut all = Filter::default();
        assert!(all.before(day("2026-11-01")));
        assert_eq!(all.to, Some(day("2026-10-31")));
        let mut november = Filter {
            from: Some(day("2026-11-01")),
            to: Some(day("2026-11-30")),
            ..Filter::default()
        };
        assert!(!november.before(day("2026-11-01")));
        let mut october = Filter {
            from: Some(day("2026-10-01")),
            to: Some(day("2026-10-31")),
            ..Filter::default()
        };
        assert!(october.before(day("2026-10-15")));
        assert_eq!(october.to, Some(day("2026-10-14")));
    }

    #[test]
    fn since_takes_a_day_or_a_moment() {
        assert_eq!(
            parse_since("2026-12-01").unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-01T06:30:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T05:30:00+00:00"
        );
        assert!(parse_since("yesterday").is_err());
    }
}
