//! Where an error trend reads: daily buckets from the summary tables (the
//! target database or `--reports DIR`), with the days no run has rolled up
//! yet computed from the source; hourly buckets from the source, through
//! the pipeline `run` uses. Error messages, stack traces and contexts are
//! never read: the source's columns are the contract's (§1).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use polars::prelude::*;

use super::{By, Counts, Timeline};
use crate::error::Result;
use crate::frames::PLATFORM_TENANT;
use crate::pipeline::{for_each_chunk, process, Input, Plan, SourceSpec, Timings};
use crate::selection::TenantSelection;
use crate::summaries::Summaries;
use crate::tables::Table;
use crate::window::Period;
use crate::window::{epoch_day, Window};

/// Days the pipeline reads from the source at a time: as `run`, so memory
/// follows a day of rows.
const CHUNK_DAYS: u32 = 1;

/// The error groups' columns as `analyse` reads them, `bucket` first.
fn error_columns() -> [Expr; 8] {
    [
        col("tenant_id"),
        col("error_type"),
        col("severity"),
        col("errors"),
        col("unresolved_errors"),
        col("calls_affected"),
        col("first_seen_at"),
        col("last_seen_at"),
    ]
}

/// A `day` column as a bucket key (days since 1970-01-01).
fn day_bucket() -> Expr {
    col("day")
        .cast(DataType::Int32)
        .cast(DataType::Int64)
        .alias("bucket")
}

fn select_errors(rows: LazyFrame) -> LazyFrame {
    let mut columns = vec![day_bucket()];
    columns.extend(error_columns());
    rows.select(columns)
}

fn select_calls(tenant_daily: LazyFrame) -> LazyFrame {
    tenant_daily.select([
        day_bucket(),
        col("tenant_id"),
        col("calls"),
        col("errored_calls"),
    ])
}

fn names_of(df: &DataFrame, names: &mut BTreeMap<String, String>) -> Result<()> {
    let ids = df.column("tenant_id")?.str()?;
    let given = df.column("business_name")?.str()?;
    for (id, name) in ids.into_iter().zip(given) {
        if let (Some(id), Some(name)) = (id, name) {
            names.insert(id.to_string(), name.to_string());
        }
    }
    Ok(())
}

fn day_in(days: &[NaiveDate]) -> Expr {
    let days: Vec<i32> = days.iter().map(|d| epoch_day(*d) as i32).collect();
    col("day")
        .cast(DataType::Int32)
        .is_in(lit(Series::new("days".into(), days)).implode(), false)
}

/// The series, and what it was read from.
pub struct Read {
    pub series: Counts,
    pub read_from: String,
}

/// What `--by tenant` reads of `tenant_daily`: the error rate's calls
/// and the tenants' names. Other groupings read none of it.
const TENANT_CALLS: [&str; 5] = [
    "tenant_id",
    "day",
    "business_name",
    "calls",
    "errored_calls",
];

/// Daily buckets: the summary tables where a run vouches for the day,
/// the source for the days none does yet (or every day, without tables).
/// Grouped `by` tenant, each tenant day's calls and names are read too
/// (the error rates and the labels).
pub fn daily(
    summaries: Option<&mut Summaries>,
    source: Option<&SourceSpec>,
    timeline: &Timeline,
    tenants: &TenantSelection,
    by: By,
) -> Result<Read> {
    let with_calls = by == By::Tenant;
    let (from, to) = (timeline.first_day(), timeline.to);
    let mut names = BTreeMap::new();
    let mut error_parts = Vec::new();
    let mut call_parts = Vec::new();
    let mut read_from = Vec::new();
    let to_read: Vec<NaiveDate> = match summaries {
        Some(summaries) => {
            let coverage = summaries.coverage(&Period {
                from,
                to,
                is_month: false,
            })?;
            // Days no run covered, and days whose run started before they
            // ended: the source has more of them.
            let stale: BTreeSet<NaiveDate> = coverage
                .missing_days
                .iter()
                .chain(&coverage.partial_days)
                .copied()
                .collect();
            let stale: Vec<NaiveDate> = if source.is_some() {
                stale.into_iter().collect()
            } else {
                // Nothing better to read: keep what the tables have.
                coverage.missing_days.clone()
            };
            let errors = summaries.table(Table::Errors, from, to, tenants)?;
            let fresh = day_in(&stale).not();
            error_parts.push(select_errors(errors.lazy().filter(fresh.clone())));
            if with_calls {
                let tenant_daily = summaries.table_columns(
                    Table::TenantDaily,
                    &Table::TenantDaily.columns_named(&TENANT_CALLS),
                    from,
                    to,
                    tenants,
                )?;
                names_of(&tenant_daily, &mut names)?;
                call_parts.push(select_calls(tenant_daily.lazy().filter(fresh)));
            }
            read_from.push(summaries.describe());
            stale
        }
        None => from.iter_days().take_while(|d| *d <= to).collect(),
    };
    let mut missing_days = to_read.clone();
    if let Some(spec) = source {
        let mut input = Input::open(spec)?;
        // A snapshot holds only its own days; the others stay missing.
        let held = |d: &NaiveDate| input.days_held().is_none_or(|(a, b)| a <= *d && *d <= b);
        let (readable, unreadable): (Vec<NaiveDate>, Vec<NaiveDate>) =
            to_read.iter().partition(|d| held(d));
        missing_days = unreadable;
        if let (Some(first), Some(last)) = (readable.first(), readable.last()) {
            let selection = input.selection(tenants)?;
            let window = Window {
                from: *first,
                to: *last,
                partial: true,
            };
            let plan = Plan {
                window: &window,
                chunk_days: CHUNK_DAYS,
                state_limit: crate::pipeline::mib(crate::pipeline::DEFAULT_STATE_LIMIT_MIB),
                selection: &selection,
            };
            let wanted = day_in(&readable);
            let kept = (error_parts.len(), call_parts.len());
            crate::pipeline::with_read_again(&plan, |plan| {
                // A second attempt starts from what the summaries gave.
                error_parts.truncate(kept.0);
                call_parts.truncate(kept.1);
                process(&mut input, plan, &mut Timings::default(), |part, _, _| {
                    names_of(&part.tenant_daily, &mut names)?;
                    error_parts.push(select_errors(
                        part.errors.clone().lazy().filter(wanted.clone()),
                    ));
                    call_parts.push(select_calls(
                        part.tenant_daily.clone().lazy().filter(wanted.clone()),
                    ));
                    Ok(())
                })
            })?;
            read_from.push(format!(
                "{} for {} day(s) not rolled up",
                input.describe()?,
                readable.len()
            ));
        }
    }
    Ok(Read {
        series: Counts {
            errors: gather(error_parts, error_schema())?,
            calls: gather(call_parts, calls_schema())?,
            names,
            missing: missing_days.iter().map(|d| epoch_day(*d)).collect(),
        },
        read_from: read_from.join(" and "),
    })
}

fn error_schema() -> Schema {
    let mut schema = Table::Errors.schema();
    let _ = schema.shift_remove("day");
    schema
        .insert_at_index(0, "bucket".into(), DataType::Int64)
        .expect("index 0 exists");
    schema
}

fn calls_schema() -> Schema {
    Schema::from_iter([
        Field::new("bucket".into(), DataType::Int64),
        Field::new("tenant_id".into(), DataType::String),
        Field::new("calls".into(), DataType::Int64),
        Field::new("errored_calls".into(), DataType::Int64),
    ])
}

fn gather(parts: Vec<LazyFrame>, schema: Schema) -> Result<DataFrame> {
    if parts.is_empty() {
        return Ok(DataFrame::empty_with_schema(&schema));
    }
    Ok(concat(parts, UnionArgs::default())?.collect()?)
}

/// Hourly buckets, from the source: every call and error whose instant
/// lies in the timeline's hours, whatever its tenant day.
pub fn hourly(spec: &SourceSpec, timeline: &Timeline, tenants: &TenantSelection) -> Result<Read> {
    // An instant's tenant day is at most two days from its day in the
    // timeline's zone (UTC−12 against UTC+14).
    let window = Window {
        from: (timeline.first_day() - Days::new(2)).max(crate::window::FIRST_DAY),
        to: (timeline.to + Days::new(2)).min(crate::window::LAST_DAY),
        partial: true,
    };
    let mut input = Input::open(spec)?;
    let missing = hours_not_held(timeline, input.days_held());
    // A snapshot is read only over the days it holds.
    let window = match input.days_held() {
        Some((first, last)) => Window {
            from: window.from.max(first),
            to: window.to.min(last),
            partial: true,
        },
        None => window,
    };
    if window.from > window.to {
        return Err(crate::error::Error::usage(format!(
            "the snapshot holds none of {}..{}; pick days it holds",
            timeline.first_day(),
            timeline.to
        )));
    }
    let selection = input.selection(tenants)?;
    let plan = Plan {
        window: &window,
        chunk_days: CHUNK_DAYS,
        state_limit: crate::pipeline::mib(crate::pipeline::DEFAULT_STATE_LIMIT_MIB),
        selection: &selection,
    };
    let mut names = BTreeMap::new();
    let mut error_parts = Vec::new();
    let mut call_parts = Vec::new();
    let bucket_of = |df: &DataFrame| -> Result<Column> {
        let at = df.column("created_at")?.datetime()?.physical().clone();
        let keys: Int64Chunked = at
            .into_iter()
            .map(|t| {
                t.and_then(|t| timeline.index_of(t))
                    .map(|i| timeline.keys[i])
            })
            .collect();
        Ok(keys.with_name("bucket".into()).into_column())
    };
    for_each_chunk(
        &mut input,
        &plan,
        &mut Timings::default(),
        |frames, _, chunk, _| {
            names_of(&frames.tenants, &mut names)?;
            let (calls, errors) = crate::rollup::day_rows(&frames, chunk.from, chunk.to)?;
            drop(frames);
            let mut errors = errors;
            errors.with_column(bucket_of(&errors)?)?;
            // Grouped as tenant_daily_errors is, per tenant day: a chunk's
            // groups add up with the next chunk's.
            error_parts.push(
                errors
                    .lazy()
                    .filter(col("bucket").is_not_null())
                    .with_columns([
                        col("tenant_id").fill_null(lit(PLATFORM_TENANT)),
                        col("error_type").fill_null(lit("unknown")),
                        col("severity").fill_null(lit("unknown")),
                    ])
                    .group_by([
                        col("bucket"),
                        col("tenant_id"),
                        col("day"),
                        col("error_type"),
                        col("severity"),
                    ])
                    .agg(crate::rollup::error_group_figures())
                    .collect()?
                    .lazy(),
            );
            let mut calls = calls.select(["tenant_id", "created_at", "errored"])?;
            calls.with_column(bucket_of(&calls)?)?;
            call_parts.push(
                calls
                    .lazy()
                    .filter(col("bucket").is_not_null())
                    .group_by([col("bucket"), col("tenant_id")])
                    .agg([
                        len().cast(DataType::Int64).alias("calls"),
                        col("errored")
                            .cast(DataType::Int64)
                            .sum()
                            .alias("errored_calls"),
                    ])
                    .collect()?
                    .lazy(),
            );
            Ok(())
        },
    )?;
    let errors = if error_parts.is_empty() {
        DataFrame::empty_with_schema(&error_schema())
    } else {
        concat(error_parts, UnionArgs::default())?
            .group_by([
                col("bucket"),
                col("tenant_id"),
                col("error_type"),
                col("severity"),
            ])
            .agg([
                col("errors").sum(),
                col("unresolved_errors").sum(),
                col("calls_affected").sum(),
                col("first_seen_at").min(),
                col("last_seen_at").max(),
            ])
            .select({
                let mut columns = vec![col("bucket")];
                columns.extend(error_columns());
                columns
            })
            .collect()?
    };
    let calls = if call_parts.is_empty() {
        DataFrame::empty_with_schema(&calls_schema())
    } else {
        concat(call_parts, UnionArgs::default())?
            .group_by([col("bucket"), col("tenant_id")])
            .agg([col("calls").sum(), col("errored_calls").sum()])
            .collect()?
    };
    Ok(Read {
        series: Counts {
            errors,
            calls,
            names,
            missing,
        },
        read_from: input.describe()?,
    })
}

/// The hour buckets a snapshot holding tenant days `first..=last` cannot
/// vouch for: an instant belongs to a tenant day between its UTC date 12
/// hours earlier (UTC−12) and 14 hours later (UTC+14), so only hours whose
/// every instant falls on held days in all of them are known. Their
/// errors are unknown, not 0. A database holds every hour.
fn hours_not_held(timeline: &Timeline, held: Option<(NaiveDate, NaiveDate)>) -> Vec<i64> {
    let Some((first, last)) = held else {
        return Vec::new();
    };
    const HOUR: i64 = 3_600_000_000;
    let midnight = |day: NaiveDate| epoch_day(day) * 24 * HOUR;
    let (known_from, known_to) = (midnight(first) + 12 * HOUR, midnight(last) + 10 * HOUR);
    let (_, end) = timeline.utc_span();
    timeline
        .keys
        .iter()
        .enumerate()
        .filter(|(i, key)| {
            let next = timeline.keys.get(i + 1).copied().unwrap_or(end);
            **key < known_from || next > known_to
        })
        .map(|(_, key)| *key)
        .collect()
}
