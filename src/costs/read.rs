//! Where a cost report reads: the summary tables in the target database,
//! or the Hive-partitioned report files that `run` wrote. Never the raw
//! platform tables, except for `--reconcile`, which recomputes the
//! period's totals from the source with the pipeline `run` uses.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::Decimal;

use super::{Figures, OutcomeDay, Period, Reconciliation, TenantDay, TenantDifference};
use crate::error::Result;
use crate::pipeline::{process, Input, Plan, SourceSpec, Timings};
use crate::selection::TenantSelection;
use crate::sql;
use crate::summaries::day_frame;
pub use crate::summaries::Summaries;
use crate::tables::Table;
use crate::window::Window;

fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(crate::frames::strings(df, name)?)
}

fn integers(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Int64)?
        .i64()?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A tenant day of `queries/costs_tenant_days.sql`, or of
/// `queries/anomalies_tenant_days.sql` (which selects zeros for what it
/// does not use: a column that cannot be read fails the report).
fn tenant_day_of(r: &postgres::Row) -> TenantDay {
    TenantDay {
        tenant_id: r.get("tenant_id"),
        day: r.get("day"),
        business_name: r.get("business_name"),
        timezone: r.get("timezone"),
        figures: Figures {
            calls: r.get("calls"),
            completed_calls: r.get("completed_calls"),
            booked_calls: r.get("booked_calls"),
            billable_seconds: r.get("billable_seconds"),
            stt_cost_usd: Some(r.get("stt_cost_usd")),
            llm_cost_usd: Some(r.get("llm_cost_usd")),
            tts_cost_usd: Some(r.get("tts_cost_usd")),
            total_cost_usd: r.get("total_cost_usd"),
            calls_missing_cost: r.get("calls_missing_cost"),
            cost_mismatch_calls: r.get("cost_mismatch_calls"),
        },
    }
}

impl Summaries {
    /// The tenant days of the period billed on UTC days because the
    /// tenant's time zone was missing or unknown (findings of kind
    /// `invalid_timezone`).
    pub fn zone_unknown_days(
        &mut self,
        period: &Period,
        tenants: &TenantSelection,
    ) -> Result<std::collections::BTreeSet<(String, NaiveDate)>> {
        let findings = self.table_columns(
            Table::Findings,
            &Table::Findings.columns()[..3],
            period.from,
            period.to,
            tenants,
        )?;
        let (kinds, ids) = (
            strings(&findings, "kind")?,
            strings(&findings, "tenant_id")?,
        );
        let days = findings.column("day")?.date()?.as_date_iter();
        Ok(kinds
            .into_iter()
            .zip(ids)
            .zip(days)
            .filter(|((kind, _), _)| kind.as_deref() == Some("invalid_timezone"))
            .filter_map(|((_, id), day)| Some((id?, day?)))
            .collect())
    }

    /// `tenant_daily` rows of the period, with each day's booked calls.
    pub fn tenant_days(
        &mut self,
        period: &Period,
        tenants: &TenantSelection,
    ) -> Result<Vec<TenantDay>> {
        match self {
            Summaries::Database { client, schema, .. } => {
                // Streamed: a year of 1,000 tenants is 365,000 rows, and
                // holding them all as driver rows first doubled the memory.
                let tenants = tenants.tenant_array();
                let params: [&(dyn postgres::types::ToSql + Sync); 3] =
                    [&period.from, &period.to, &tenants];
                let rows = client.query_raw(
                    &sql::render(sql::COSTS_TENANT_DAYS, &[("schema", schema)]),
                    params,
                )?;
                use postgres::fallible_iterator::FallibleIterator;
                Ok(rows.map(|r| Ok(tenant_day_of(&r))).collect()?)
            }
            Summaries::Reports(dir) => {
                let mut out = Vec::new();
                for day in period.each_day() {
                    let Some(df) = day_frame(dir, Table::TenantDaily, day, tenants)? else {
                        continue;
                    };
                    if df.height() == 0 {
                        continue;
                    }
                    let booked = booked_on(dir, day, tenants)?;
                    let money = |name: &str| -> Result<Vec<Option<Decimal>>> {
                        Ok(crate::money::decimals(df.column(name)?)?)
                    };
                    let (stt, llm, tts, total) = (
                        money("stt_cost_usd")?,
                        money("llm_cost_usd")?,
                        money("tts_cost_usd")?,
                        money("total_cost_usd")?,
                    );
                    let (calls, completed, seconds) = (
                        integers(&df, "calls")?,
                        integers(&df, "completed_calls")?,
                        integers(&df, "billable_seconds")?,
                    );
                    let (missing_cost, mismatch) = (
                        integers(&df, "calls_missing_cost")?,
                        integers(&df, "cost_mismatch_calls")?,
                    );
                    let (ids, names, zones) = (
                        strings(&df, "tenant_id")?,
                        strings(&df, "business_name")?,
                        strings(&df, "timezone")?,
                    );
                    for i in 0..df.height() {
                        let tenant_id = ids[i].clone().unwrap_or_default();
                        let booked_calls = booked.get(&tenant_id).copied().unwrap_or(0);
                        out.push(TenantDay {
                            tenant_id,
                            day,
                            business_name: names[i].clone(),
                            timezone: zones[i].clone().unwrap_or_else(|| "UTC".into()),
                            figures: Figures {
                                calls: calls[i],
                                completed_calls: completed[i],
                                booked_calls,
                                billable_seconds: seconds[i],
                                stt_cost_usd: stt[i],
                                llm_cost_usd: llm[i],
                                tts_cost_usd: tts[i],
                                total_cost_usd: total[i].unwrap_or_default(),
                                calls_missing_cost: missing_cost[i],
                                cost_mismatch_calls: mismatch[i],
                            },
                        });
                    }
                }
                out.sort_by(|a, b| (&a.tenant_id, a.day).cmp(&(&b.tenant_id, b.day)));
                Ok(out)
            }
        }
    }

    /// Every tenant's calls, billable seconds and costs of each day of the
    /// period (what `anomalies` compares): from the database without the
    /// outcome join and finding counts `tenant_days` adds (a nightly run
    /// reads these back after its commit); from report files as
    /// `tenant_days` reads them.
    /// Names only from `named_from` on (the days whose name is shown).
    pub fn tenant_day_costs(
        &mut self,
        period: &Period,
        named_from: NaiveDate,
    ) -> Result<Vec<TenantDay>> {
        let Summaries::Database { client, schema, .. } = self else {
            return self.tenant_days(period, &TenantSelection::default());
        };
        let params: [&(dyn postgres::types::ToSql + Sync); 3] =
            [&period.from, &period.to, &named_from];
        let rows = client.query_raw(
            &sql::render(sql::ANOMALIES_TENANT_DAYS, &[("schema", schema)]),
            params,
        )?;
        use postgres::fallible_iterator::FallibleIterator;
        Ok(rows.map(|r| Ok(tenant_day_of(&r))).collect()?)
    }

    /// `tenant_daily_outcomes` rows of the period.
    pub fn outcome_days(
        &mut self,
        period: &Period,
        tenants: &TenantSelection,
    ) -> Result<Vec<OutcomeDay>> {
        match self {
            Summaries::Database { client, schema, .. } => {
                let rows = client.query(
                    &sql::render(sql::COSTS_OUTCOME_DAYS, &[("schema", schema)]),
                    &[&period.from, &period.to, &tenants.tenant_array()],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let status: String = r.get("status");
                        let outcome: String = r.get("outcome");
                        let calls: i64 = r.get("calls");
                        OutcomeDay {
                            tenant_id: r.get("tenant_id"),
                            day: r.get("day"),
                            business_name: r.get("business_name"),
                            timezone: r.get("timezone"),
                            figures: outcome_figures(
                                &status,
                                &outcome,
                                calls,
                                r.get("billable_seconds"),
                                r.get("total_cost_usd"),
                            ),
                            status,
                            outcome,
                        }
                    })
                    .collect())
            }
            Summaries::Reports(dir) => outcome_days_from_files(dir, period, tenants),
        }
    }
}

/// An outcome group's figures: completed calls are those of status
/// `completed`, booked ones those of outcome `booked`.
fn outcome_figures(
    status: &str,
    outcome: &str,
    calls: i64,
    billable_seconds: i64,
    total: Decimal,
) -> Figures {
    Figures {
        calls,
        completed_calls: if status == "completed" { calls } else { 0 },
        booked_calls: if outcome == "booked" { calls } else { 0 },
        billable_seconds,
        stt_cost_usd: None,
        llm_cost_usd: None,
        tts_cost_usd: None,
        total_cost_usd: total,
        calls_missing_cost: 0,
        cost_mismatch_calls: 0,
    }
}

/// Booked calls (outcome `booked`, any status) per tenant on one day,
/// from the day's outcome files alone.
fn booked_on(
    dir: &Path,
    day: NaiveDate,
    tenants: &TenantSelection,
) -> Result<BTreeMap<String, i64>> {
    let mut booked = BTreeMap::new();
    let Some(outcomes) = day_frame(dir, Table::Outcomes, day, tenants)? else {
        return Ok(booked);
    };
    if outcomes.height() == 0 {
        return Ok(booked);
    }
    let (ids, results) = (
        strings(&outcomes, "tenant_id")?,
        strings(&outcomes, "outcome")?,
    );
    let calls = integers(&outcomes, "calls")?;
    for i in 0..outcomes.height() {
        if results[i].as_deref() == Some("booked") {
            *booked
                .entry(ids[i].clone().unwrap_or_default())
                .or_default() += calls[i];
        }
    }
    Ok(booked)
}

fn outcome_days_from_files(
    dir: &Path,
    period: &Period,
    tenants: &TenantSelection,
) -> Result<Vec<OutcomeDay>> {
    let mut out = Vec::new();
    for day in period.each_day() {
        let Some(outcomes) = day_frame(dir, Table::Outcomes, day, tenants)? else {
            continue;
        };
        if outcomes.height() == 0 {
            continue;
        }
        // Names and zones come from the day's tenant_daily file.
        let mut described: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
        if let Some(td) = day_frame(dir, Table::TenantDaily, day, tenants)? {
            if td.height() > 0 {
                let (ids, names, zones) = (
                    strings(&td, "tenant_id")?,
                    strings(&td, "business_name")?,
                    strings(&td, "timezone")?,
                );
                for i in 0..td.height() {
                    described.insert(
                        ids[i].clone().unwrap_or_default(),
                        (
                            names[i].clone(),
                            zones[i].clone().unwrap_or_else(|| "UTC".into()),
                        ),
                    );
                }
            }
        }
        let (ids, statuses, results) = (
            strings(&outcomes, "tenant_id")?,
            strings(&outcomes, "status")?,
            strings(&outcomes, "outcome")?,
        );
        let (calls, seconds) = (
            integers(&outcomes, "calls")?,
            integers(&outcomes, "billable_seconds")?,
        );
        let totals = crate::money::decimals(outcomes.column("total_cost_usd")?)?;
        for i in 0..outcomes.height() {
            let tenant_id = ids[i].clone().unwrap_or_default();
            let (business_name, timezone) = described
                .get(&tenant_id)
                .cloned()
                .unwrap_or((None, "UTC".into()));
            let (status, outcome) = (
                statuses[i].clone().unwrap_or_default(),
                results[i].clone().unwrap_or_default(),
            );
            out.push(OutcomeDay {
                figures: outcome_figures(
                    &status,
                    &outcome,
                    calls[i],
                    seconds[i],
                    totals[i].unwrap_or_default(),
                ),
                tenant_id,
                day,
                business_name,
                timezone,
                status,
                outcome,
            });
        }
    }
    Ok(out)
}

/// Recomputes the period's per-tenant-day calls and total cost from the
/// source, with the pipeline `run` uses, and compares them with the
/// summary's (to the stored 6 decimals): any difference is listed with
/// its tenant and days.
pub fn reconcile(
    source: &SourceSpec,
    period: &Period,
    selection: &TenantSelection,
    summary: &[TenantDay],
) -> Result<Reconciliation> {
    let window = Window {
        from: period.from,
        to: period.to,
        partial: false,
    };
    let mut input = Input::open(source)?;
    let selection = input.selection(selection)?;
    let plan = Plan {
        window: &window,
        chunk_days: 1,
        state_limit: crate::pipeline::mib(crate::pipeline::DEFAULT_STATE_LIMIT_MIB),
        selection: &selection,
    };
    let mut recomputed: BTreeMap<(String, NaiveDate), (i64, Decimal)> = BTreeMap::new();
    // A tenant day's figures replace any an earlier attempt gave.
    crate::pipeline::with_read_again(&plan, |plan| {
        process(&mut input, plan, &mut Timings::default(), |part, _, _| {
            let td = &part.tenant_daily;
            let ids = strings(td, "tenant_id")?;
            let days = td.column("day")?.date()?.as_date_iter().collect::<Vec<_>>();
            let calls = integers(td, "calls")?;
            let totals = crate::money::decimals(td.column("total_cost_usd")?)?;
            for i in 0..td.height() {
                if let (Some(id), Some(day)) = (&ids[i], days[i]) {
                    recomputed.insert(
                        (id.clone(), day),
                        (calls[i], crate::money::round(totals[i].unwrap_or_default())),
                    );
                }
            }
            Ok(())
        })
    })?;
    let mut stored: BTreeMap<(String, NaiveDate), (i64, Decimal)> = BTreeMap::new();
    // A key the summary holds twice is never overwritten silently: its
    // rows add up, and the doubled figure shows as a difference.
    for t in summary {
        let entry = stored.entry((t.tenant_id.clone(), t.day)).or_default();
        entry.0 += t.figures.calls;
        entry.1 += t.figures.total_cost_usd;
    }
    // Per tenant: the sums on both sides and the days that differ.
    /// One tenant's sums on both sides, exact, and the days that differ.
    #[derive(Default)]
    struct Sides {
        summary_calls: i64,
        source_calls: i64,
        summary_total: Decimal,
        source_total: Decimal,
        days: Vec<NaiveDate>,
    }
    let mut by_tenant: BTreeMap<&str, Sides> = BTreeMap::new();
    let keys: std::collections::BTreeSet<&(String, NaiveDate)> =
        recomputed.keys().chain(stored.keys()).collect();
    for key in keys {
        let (source_calls, source_total) = recomputed.get(key).copied().unwrap_or_default();
        let (summary_calls, summary_total) = stored.get(key).copied().unwrap_or_default();
        let sides = by_tenant.entry(key.0.as_str()).or_default();
        sides.summary_calls += summary_calls;
        sides.source_calls += source_calls;
        sides.summary_total += summary_total;
        sides.source_total += source_total;
        if source_calls != summary_calls || source_total != summary_total {
            sides.days.push(key.1);
        }
    }
    let tenants_checked = by_tenant.len();
    let differences = by_tenant
        .into_iter()
        .filter(|(_, sides)| !sides.days.is_empty())
        .map(|(tenant_id, sides)| TenantDifference {
            tenant_id: tenant_id.to_string(),
            summary_total_cost_usd: crate::money::format(sides.summary_total),
            source_total_cost_usd: crate::money::format(sides.source_total),
            difference_usd: crate::money::format(sides.summary_total - sides.source_total),
            summary_calls: sides.summary_calls,
            source_calls: sides.source_calls,
            days: sides.days,
        })
        .collect();
    Ok(Reconciliation {
        tenants_checked,
        differences,
    })
}
