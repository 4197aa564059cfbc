//! The rollup stage: pure, no I/O. Every column follows docs/CONTRACT.md
//! §2. Calls and errors are added a row at a time to per-chunk figures
//! (`accumulate.rs`), from a COPY decoder or from frames (`calls.rs`,
//! `errors.rs` walk their arrays); Polars joins and sorts the small per
//! tenant-day tables built from them.

pub mod accumulate;
mod calls;
mod errors;
pub mod timezone;

use crate::tables::Table;
use chrono::NaiveDate;
use polars::prelude::*;

use crate::frames::{SourceFrames, SourceTotals, MONEY};
pub use crate::frames::{PLATFORM_NAME, PLATFORM_TENANT};
use timezone::{canonical_zone, local_day, offset_columns, offset_table};

use calls::{CallGroups, TenantDays, COST_COLUMNS};
use errors::ErrorGroups;

/// The four summary tables of one window, sorted by their keys.
#[derive(Clone)]
pub struct Rollup {
    pub tenant_daily: DataFrame,
    pub outcomes: DataFrame,
    pub errors: DataFrame,
    pub findings: DataFrame,
    /// Counts and sums of the window's rows (calls and errors whose tenant
    /// day is in the window), taken from the rows themselves rather than
    /// from the grouped tables: the run's reconciliation figures.
    pub totals: SourceTotals,
}

impl Rollup {
    /// The frame of one summary table.
    pub fn table(&self, table: Table) -> &DataFrame {
        match table {
            Table::TenantDaily => &self.tenant_daily,
            Table::Outcomes => &self.outcomes,
            Table::Errors => &self.errors,
            Table::Findings => &self.findings,
        }
    }
}

/// Computes every summary table for tenant-local days `from..=to`.
pub fn rollup(frames: &SourceFrames, from: NaiveDate, to: NaiveDate) -> PolarsResult<Rollup> {
    let span = utc_span(&[&frames.calls, &frames.errors])?;
    let rules = TenantRules::new(&frames.tenants, span)?;
    let chunk_days = u32::try_from((to - from).num_days() + 1).unwrap_or(1);
    let mut state = accumulate::Accumulator::new(&rules, from, to, chunk_days);
    calls::walk(&frames.calls, &mut state)?;
    errors::walk(&frames.errors, &mut state)?;
    let mut parts = state.into_rollups(Vec::new());
    parts.next().expect("one chunk covers the days from..=to")
}

/// Where each tenant's rows fall: its zone's offsets over a UTC span, and
/// whether the tenant and its zone are known.
pub struct TenantRules {
    zones: TenantZones,
    by_id: PlHashMap<String, TenantDays>,
    /// Rows of tenants missing from `tenants` (or with no tenant) count
    /// on UTC days.
    unknown: TenantDays,
}

impl TenantRules {
    /// The rules of `tenants` for rows created within `span` (Unix µs).
    pub fn new(tenants: &DataFrame, span: (i64, i64)) -> PolarsResult<TenantRules> {
        let zones = tenant_zones(tenants, span)?;
        let by_id = tenant_days(&zones)?;
        Ok(TenantRules {
            zones,
            by_id,
            unknown: TenantDays {
                first: 0,
                changes: Vec::new(),
                known: false,
                zone_valid: true,
            },
        })
    }

    fn find(&self, id: Option<&str>) -> &TenantDays {
        id.and_then(|id| self.by_id.get(id))
            .unwrap_or(&self.unknown)
    }
}

/// A chunk's tables from its calls' and errors' groups.
fn assemble(calls: CallGroups, errors: ErrorGroups, tenants: &DataFrame) -> PolarsResult<Rollup> {
    let tenant_daily = tenant_daily(calls.by_day, errors.by_day, tenants)?;
    let findings = findings(calls.findings, errors.findings)?;
    let [stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd] = calls.costs;
    let totals = SourceTotals {
        calls: calls.calls,
        errors: errors.errors,
        stt_cost_usd,
        llm_cost_usd,
        tts_cost_usd,
        total_cost_usd,
    };
    Ok(Rollup {
        totals,
        tenant_daily,
        outcomes: calls.outcomes,
        errors: errors.groups,
        findings,
    })
}

/// `date` as days since 1970-01-01 (a Polars `Date`).
fn day_number(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days() as i32
}

/// Each tenant's day rules by its id (the platform's row included), from
/// the zone offsets `tenant_zones` worked out.
fn tenant_days(zones: &TenantZones) -> PolarsResult<PlHashMap<String, TenantDays>> {
    let tenants = &zones.frame;
    let ids = tenants.column("tenant_id")?.str()?;
    let zone = tenants.column("zone")?.str()?;
    let valid = tenants.column("zone_valid")?.bool()?;
    let mut days = PlHashMap::new();
    for ((id, zone), valid) in ids.into_iter().zip(zone).zip(valid) {
        let (Some(id), Some(zone)) = (id, zone) else {
            continue;
        };
        let (first, changes) = zones
            .offsets
            .get(zone)
            .cloned()
            .expect("tenant_zones works out every zone its frame names");
        // Ids are unique here (`tenant_zones`).
        days.entry(id.to_string()).or_insert(TenantDays {
            first,
            changes,
            known: true,
            zone_valid: valid.unwrap_or(true),
        });
    }
    Ok(days)
}

/// The figures of a group of errors (docs/CONTRACT.md §2, error groups):
/// `errors`, `unresolved_errors`, `calls_affected`, first and last seen.
pub fn error_group_figures() -> [Expr; 5] {
    [
        len().cast(DataType::Int64).alias("errors"),
        col("resolved")
            .eq(lit(false))
            .cast(DataType::Int64)
            .sum()
            .alias("unresolved_errors"),
        col("call_id")
            .drop_nulls()
            .n_unique()
            .cast(DataType::Int64)
            .alias("calls_affected"),
        col("created_at").min().alias("first_seen_at"),
        col("created_at").max().alias("last_seen_at"),
    ]
}

/// The rows of tenant days `from..=to` as read, each with its tenant-local
/// `day` (docs/CONTRACT.md §2): calls and errors, with no value filled
/// in or changed. `errors --bucket hour` and `query` start from these.
pub fn day_rows(
    frames: &SourceFrames,
    from: NaiveDate,
    to: NaiveDate,
) -> PolarsResult<(DataFrame, DataFrame)> {
    let span = utc_span(&[&frames.calls, &frames.errors])?;
    let tenants = tenant_zones(&frames.tenants, span)?;
    let keep = |rows: &DataFrame| -> PolarsResult<DataFrame> {
        let mut columns: Vec<Expr> = rows
            .get_column_names()
            .into_iter()
            .map(|c| col(c.clone()))
            .collect();
        columns.push(col("day"));
        with_tenant_day(rows.clone().lazy(), &tenants)
            .filter(in_window(from, to))
            .select(columns)
            .collect()
    };
    Ok((keep(&frames.calls)?, keep(&frames.errors)?))
}

/// The first and last `created_at` (Unix µs) over some frames.
fn utc_span(frames: &[&DataFrame]) -> PolarsResult<(i64, i64)> {
    let mut span: Option<(i64, i64)> = None;
    for df in frames {
        let at = df
            .column("created_at")?
            .as_materialized_series()
            .datetime()?;
        if let (Some(lo), Some(hi)) = (at.physical().min(), at.physical().max()) {
            span = Some(match span {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
    Ok(span.unwrap_or((0, 0)))
}

/// The tenants with the zone that defines their days.
struct TenantZones {
    /// tenant_id, business_name, zone (the one used), zone_valid, and the
    /// zone's offsets over the rows' span (see `timezone::offset_table`);
    /// plus the platform's own row.
    frame: DataFrame,
    /// How many offset changes the offset columns describe.
    changes: usize,
    /// Each zone's offsets over the span, by name (`frame`'s source).
    offsets: PlHashMap<String, timezone::ZoneOffsets>,
}

/// Tenants are few, so a per-tenant lookup is fine.
fn tenant_zones(tenants: &DataFrame, span: (i64, i64)) -> PolarsResult<TenantZones> {
    let declared = tenants.column("timezone")?.str()?;
    let zone: StringChunked = declared
        .into_iter()
        .map(|z| Some(z.and_then(canonical_zone).unwrap_or("UTC")))
        .collect();
    let zone_valid: BooleanChunked = declared
        .into_iter()
        .map(|z| Some(z.and_then(canonical_zone).is_some()))
        .collect();
    let mut zones: Vec<&str> = zone.into_iter().flatten().collect();
    zones.push("UTC");
    zones.sort_unstable();
    zones.dedup();
    let found: Vec<(&str, timezone::ZoneOffsets)> = zones
        .into_iter()
        .map(|z| (z, timezone::offset_changes(z, span.0, span.1)))
        .collect();
    let (offsets, changes) = offset_table(&found)?;
    let known = DataFrame::new(vec![
        tenants.column("tenant_id")?.clone(),
        tenants.column("business_name")?.clone(),
        zone.clone().with_name("zone".into()).into_column(),
        zone_valid.with_name("zone_valid".into()).into_column(),
    ])?;
    let platform = df!(
        "tenant_id" => [PLATFORM_TENANT],
        "business_name" => [PLATFORM_NAME],
        "zone" => ["UTC"],
        "zone_valid" => [true],
    )?;
    // One row per id, the first kept: a duplicate (a tenant row holding
    // the nil UUID, an edited snapshot) would otherwise multiply every
    // error row the join below meets, while the calls are placed once.
    let frame = known
        .vstack(&platform)?
        .lazy()
        .unique_stable(Some(vec!["tenant_id".into()]), UniqueKeepStrategy::First)
        .join(
            offsets.lazy(),
            [col("zone")],
            [col("zone")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()?;
    let offsets = found
        .into_iter()
        .map(|(zone, offsets)| (zone.to_string(), offsets))
        .collect();
    Ok(TenantZones {
        frame,
        changes,
        offsets,
    })
}

/// Joins each row to its tenant's zone and adds its local `day`; rows of
/// tenants missing from `tenants` use UTC and are marked
/// `tenant_known = false`.
fn with_tenant_day(rows: LazyFrame, tenants: &TenantZones) -> LazyFrame {
    let helpers = offset_columns(tenants.changes);
    let mut wanted = vec![col("tenant_id"), col("zone"), col("zone_valid")];
    wanted.extend(helpers.iter().map(|c| col(c.as_str())));
    rows.join(
        tenants.frame.clone().lazy().select(wanted),
        [col("tenant_id")],
        [col("tenant_id")],
        JoinArgs::new(JoinType::Left),
    )
    .with_columns([
        col("zone").is_not_null().alias("tenant_known"),
        col("zone").fill_null(lit("UTC")),
        col("zone_valid").fill_null(lit(true)),
        // An unknown tenant's rows count in UTC: offset 0, no changes.
        col("offset_0").fill_null(lit(0i64)),
    ])
    .with_column(local_day("created_at", tenants.changes))
    .drop(helpers.iter().map(|c| col(c.as_str())).collect::<Vec<_>>())
}

fn in_window(from: NaiveDate, to: NaiveDate) -> Expr {
    col("day").gt_eq(lit(from)).and(col("day").lt_eq(lit(to)))
}

/// `tenant_daily`: the calls' figures per tenant day, joined with the
/// errors' counts (a day may have only one of the two), the tenant's name
/// and zone, and the error rate.
fn tenant_daily(
    by_calls: DataFrame,
    by_errors: DataFrame,
    tenants: &DataFrame,
) -> PolarsResult<DataFrame> {
    let by_calls = by_calls.lazy();
    let by_errors = by_errors.lazy();

    let counts = [
        "calls",
        "completed_calls",
        "failed_calls",
        "billable_seconds",
        "calls_missing_cost",
        "cost_mismatch_calls",
        "errors",
        "critical_errors",
        "errored_calls",
    ];
    let mut fills: Vec<Expr> = counts
        .iter()
        .map(|c| col(*c).fill_null(lit(0i64)))
        .collect();
    fills.extend(
        COST_COLUMNS
            .iter()
            .map(|c| col(*c).fill_null(lit(0).cast(MONEY))),
    );

    let names = tenants.clone().lazy().select([
        col("tenant_id"),
        col("business_name"),
        col("zone").alias("timezone"),
    ]);
    by_calls
        .join(
            by_errors,
            [col("tenant_id"), col("day")],
            [col("tenant_id"), col("day")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_columns(fills)
        .join(
            names,
            [col("tenant_id")],
            [col("tenant_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            col("timezone").fill_null(lit("UTC")),
            when(col("calls").gt(lit(0i64)))
                .then(
                    col("errored_calls").cast(DataType::Float64)
                        / col("calls").cast(DataType::Float64),
                )
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("error_rate"),
        ])
        .select([
            col("tenant_id"),
            col("day"),
            col("business_name"),
            col("timezone"),
            col("calls"),
            col("completed_calls"),
            col("failed_calls"),
            col("billable_seconds"),
            col("stt_cost_usd"),
            col("llm_cost_usd"),
            col("tts_cost_usd"),
            col("total_cost_usd"),
            col("calls_missing_cost"),
            col("cost_mismatch_calls"),
            col("errors"),
            col("critical_errors"),
            col("errored_calls"),
            col("error_rate"),
        ])
        .sort(["tenant_id", "day"], Default::default())
        .collect()
}

/// Data-quality findings per kind and tenant day: how many rows, and the
/// smallest call_id among them as an example to look at; the calls' and
/// the errors' come counted (`CallDays`, `ErrorDays`) and a kind
/// both have adds up here.
fn findings(of_calls: DataFrame, of_errors: DataFrame) -> PolarsResult<DataFrame> {
    let smallest_example = col("example_id")
        .drop_nulls()
        .sort(Default::default())
        .first();
    concat([of_calls.lazy(), of_errors.lazy()], UnionArgs::default())?
        .group_by([col("kind"), col("tenant_id"), col("day")])
        .agg([col("rows").sum(), smallest_example])
        .sort(["kind", "tenant_id", "day"], Default::default())
        .collect()
}

/// The sum of an integer column of a summary table (0 when empty).
pub fn sum_i64(df: &DataFrame, name: &str) -> PolarsResult<i64> {
    Ok(df
        .column(name)?
        .as_materialized_series()
        .sum::<i64>()
        .unwrap_or(0))
}

impl Rollup {
    /// The grouped tables must add up to the rows they came from; a
    /// mismatch is a bug, and no file or table may be written then.
    pub fn check_totals(&self) -> Result<(), String> {
        let sum_i64 = |df: &DataFrame, name: &str| sum_i64(df, name).unwrap_or(0);
        let td = &self.tenant_daily;
        let total = crate::money::sum(td.column("total_cost_usd").map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let figures = [
            (
                "tenant_daily calls",
                sum_i64(td, "calls"),
                self.totals.calls,
            ),
            (
                "tenant_daily_outcomes calls",
                sum_i64(&self.outcomes, "calls"),
                self.totals.calls,
            ),
            (
                "tenant_daily errors",
                sum_i64(td, "errors"),
                self.totals.errors,
            ),
            (
                "tenant_daily_errors errors",
                sum_i64(&self.errors, "errors"),
                self.totals.errors,
            ),
        ];
        for (what, got, want) in figures {
            if got != want {
                return Err(format!("{what} add up to {got}, the rows to {want}"));
            }
        }
        if total != self.totals.total_cost_usd {
            return Err(format!(
                "tenant_daily total_cost_usd adds up to {total}, the rows to {}",
                self.totals.total_cost_usd
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
