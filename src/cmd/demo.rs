//! callrollup demo — the whole engine on a generated platform, no database.
//!
//! Usage: `callrollup demo --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Generates a platform (about 200,000 calls over 30 days by default) as a
//! Parquet snapshot, runs the full pipeline on it with the file target,
//! and prints a short tour: the top tenants by cost, the error-rate trend,
//! the injected incident found in the error rollup, and where every file is.

use crate::cli::demo::Args;
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rust_decimal::Decimal;

use crate::error::Result;
use crate::generate::Platform;
use crate::money;
use crate::pipeline::run::RunRequest;
use crate::pipeline::SourceSpec;
use crate::rollup::PLATFORM_TENANT;
use crate::sink::files;
use crate::source::snapshot;
use crate::summaries::Summaries;
use crate::tables::Table;
use crate::window::Window;

pub fn execute(args: Args) -> Result<()> {
    let started = Instant::now();
    // A tour reads better with fewer, larger tenants.
    let mut spec = args.platform.spec(60)?;
    spec.injections = demo_injection(&spec);
    let platform = Platform::new(spec.clone());
    let window = Window {
        from: platform.first_day(),
        to: spec.end,
        partial: false,
    };

    let snapshot_dir = args.out.join("snapshot");
    let reports_dir = args.out.join("reports");
    let frames = platform.frames(&window)?;
    let fingerprint = format!("generated:seed={},demo", spec.seed);
    snapshot::write(
        &snapshot_dir,
        &frames,
        &window,
        &fingerprint,
        &Default::default(),
    )?;
    drop(frames);
    let generated = started.elapsed();

    // The run itself, as `run --source SNAPSHOT --out DIR` does it: the
    // file target, the whole window in one chunk.
    let outcome = crate::pipeline::run::run(&RunRequest {
        window,
        asked: Default::default(),
        source: SourceSpec::Snapshot(snapshot_dir.clone()),
        target: None,
        target_schema: String::new(),
        out: reports_dir.clone(),
        chunk_days: u32::try_from(window.days().count()).unwrap_or(u32::MAX),
        state_limit_mib: crate::pipeline::DEFAULT_STATE_LIMIT_MIB,
        dry_run: false,
        arguments: String::new(),
        statement_timeout_secs: 0,
    })?;
    // The tour reads back what the run wrote, as finance would.
    let mut summaries = Summaries::reports(&reports_dir)?;
    let everyone = Default::default();
    let read = RolledUp {
        totals: outcome.stats.totals.clone(),
        finding_rows: outcome.stats.finding_rows,
        tenant_daily: summaries.table(Table::TenantDaily, window.from, window.to, &everyone)?,
        outcomes: summaries.table(Table::Outcomes, window.from, window.to, &everyone)?,
    };

    print!(
        "{}",
        tour(
            &read,
            &platform,
            &window,
            &snapshot_dir,
            &reports_dir,
            &args.out.join("errors.svg"),
            outcome.files.len()
        )?
    );
    println!(
        "\nGenerated in {:.1}s, rolled up in {:.1}s. Next: point it at your database (see README).",
        generated.as_secs_f64(),
        (started.elapsed() - generated).as_secs_f64()
    );
    Ok(())
}

/// The demo's cost anomaly: the second-largest tenant's LLM cost per
/// call ×3 on two days near the end (with two weeks of history before).
fn demo_injection(spec: &crate::generate::Spec) -> Vec<crate::generate::Injection> {
    if spec.days < 20 || spec.tenants < 2 {
        return Vec::new();
    }
    vec![crate::generate::Injection {
        tenant: Some(1),
        first_day: spec.end - chrono::Days::new(4),
        days: 2,
        change: crate::generate::Change::UnitCost {
            component: 1,
            permille: 3000,
        },
    }]
}

fn decimal_at(df: &DataFrame, column: &str, row: usize) -> Result<Decimal> {
    Ok(money::decimals(df.column(column)?)?[row].unwrap_or_default())
}

fn int_at(df: &DataFrame, column: &str, row: usize) -> Result<i64> {
    Ok(df
        .column(column)?
        .cast(&DataType::Int64)?
        .i64()?
        .get(row)
        .unwrap_or(0))
}

fn str_at(df: &DataFrame, column: &str, row: usize) -> Result<String> {
    Ok(df.column(column)?.str()?.get(row).unwrap_or("").to_string())
}

/// The spikes of the last 14 days by error type, from the report files,
/// and the chart of them written to `chart_path`.
fn incident(reports_dir: &Path, window: &Window, chart_path: &Path) -> Result<String> {
    use crate::trends::{analyse, chart, read, By, SpikeRule, Timeline};
    let from = (window.to - chrono::Days::new(13)).max(window.from);
    let timeline = Timeline::days(from, window.to);
    let mut summaries = crate::summaries::Summaries::reports(reports_dir)?;
    let read = read::daily(
        Some(&mut summaries),
        None,
        &timeline,
        &Default::default(),
        By::ErrorType,
    )?;
    let analysis = analyse(&read.series, timeline, By::ErrorType, SpikeRule::default())?;
    let picture = chart::render(&analysis, chart::DEFAULT_TOP, chart::ChartKind::Svg)?;
    files::write_whole(chart_path, &picture)?;
    let mut out = String::new();
    let spikes = analysis.spikes(None);
    match spikes.first() {
        Some(spike) => out.push_str(&format!(
            "\nIncident found: {} {} errors on {}, usually about {:.0} a day ({} spike(s) in the last {} days)\n",
            spike.errors,
            spike.group.key,
            analysis.timeline.label(spike.bucket),
            spike.baseline.median,
            spikes.len(),
            analysis.timeline.period_len()
        )),
        None => out.push_str("\nNo error spike stands out.\n"),
    }
    out.push_str(&format!(
        "  chart     {} (errors by type per day, spikes marked)\n",
        chart_path.display()
    ));
    Ok(out)
}

/// The cost anomalies of the second half of the window (the period the
/// tour's `costs` line shows), from the report files, and what was
/// injected.
fn cost_anomalies(reports_dir: &Path, window: &Window, platform: &Platform) -> Result<String> {
    let half = (window.day_count() / 2).max(1) as u64;
    let from = window.to - chrono::Days::new(half - 1);
    let period = crate::window::Period {
        from,
        to: window.to,
        is_month: false,
    };
    let mut summaries = Summaries::reports(reports_dir)?;
    let analysis = crate::anomalies::read(
        &mut summaries,
        period,
        crate::anomalies::Rule::default(),
        &Default::default(),
        true,
    )?;
    let mut out = String::new();
    if analysis.rises.is_empty() {
        out.push_str("\nNo cost anomaly stands out.\n");
    } else {
        out.push_str(&format!(
                "\nCost anomalies: {} line(s) in the last {} days, {} USD above their baselines; the largest:\n",
                analysis.rises.len(),
                period.days(),
                money::cents_text(crate::anomalies::render::total_excess(&analysis.rises))
            ));
        for a in analysis.rises.iter().take(3) {
            out.push_str(&format!(
                "  {} {} {} {}: +{} USD ({})\n",
                a.day,
                crate::text::printable(&crate::anomalies::render::scope_name(a)),
                a.component.name(),
                a.kind.name(),
                money::cents_text(a.excess_usd),
                crate::anomalies::render::why(a)
            ));
        }
    }
    for injection in &platform.spec.injections {
        let (kind, component, factor) = injection.describe();
        let tenant = injection.tenant.map_or("every tenant".to_string(), |t| {
            platform.tenants[t].business_name.clone()
        });
        out.push_str(&format!(
            "  (injected: {component} {kind} x{factor} for {tenant} on {}..{})\n",
            injection.first_day,
            injection.last_day()
        ));
    }
    out.push_str(&format!(
        "  all       callrollup anomalies --reports {} --from {from} --to {}\n",
        reports_dir.display(),
        window.to
    ));
    Ok(out)
}

/// What the tour shows of the run: its totals and two of its tables.
struct RolledUp {
    totals: crate::frames::SourceTotals,
    /// Rows the data-quality findings flag.
    finding_rows: i64,
    tenant_daily: DataFrame,
    outcomes: DataFrame,
}

fn tour(
    r: &RolledUp,
    platform: &Platform,
    window: &Window,
    snapshot_dir: &Path,
    reports_dir: &Path,
    chart_path: &Path,
    files_written: usize,
) -> Result<String> {
    let mut out = String::new();
    out.push_str(&format!(
        "callrollup demo: {} tenants, {} calls and {} errors from {} to {}\n",
        platform.tenants.len(),
        r.totals.calls,
        r.totals.errors,
        window.from,
        window.to
    ));
    out.push_str(&format!(
        "Total billed: {} USD\n\n",
        money::cents_text(r.totals.total_cost_usd)
    ));

    // Top tenants by cost, with cost per call and per booked appointment.
    let booked = r
        .outcomes
        .clone()
        .lazy()
        .filter(col("outcome").eq(lit("booked")))
        .group_by([col("tenant_id")])
        .agg([col("calls").sum().alias("booked")]);
    let top = r
        .tenant_daily
        .clone()
        .lazy()
        .filter(col("tenant_id").neq(lit(PLATFORM_TENANT)))
        .group_by([col("tenant_id")])
        .agg([
            col("business_name").first(),
            col("calls").sum(),
            col("total_cost_usd").sum(),
            col("errored_calls").sum(),
        ])
        .join(
            booked,
            [col("tenant_id")],
            [col("tenant_id")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            ["total_cost_usd"],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .limit(5)
        .collect()?;
    out.push_str("Top tenants by cost\n");
    out.push_str(&format!(
        "  {:<28} {:>8} {:>14} {:>10} {:>12}\n",
        "tenant", "calls", "cost USD", "per call", "per booking"
    ));
    for i in 0..top.height() {
        let calls = int_at(&top, "calls", i)?;
        let booked = int_at(&top, "booked", i)?;
        let cost = decimal_at(&top, "total_cost_usd", i)?;
        let per = |n: i64| {
            if n > 0 {
                money::text(cost / Decimal::from(n), 4)
            } else {
                "-".to_string()
            }
        };
        out.push_str(&format!(
            "  {:<28} {:>8} {:>14} {:>10} {:>12}\n",
            str_at(&top, "business_name", i)?,
            calls,
            money::cents_text(cost),
            per(calls),
            per(booked)
        ));
    }

    // The platform's error rate, day by day.
    let trend = r
        .tenant_daily
        .clone()
        .lazy()
        .group_by([col("day")])
        .agg([col("calls").sum(), col("errored_calls").sum()])
        .sort(["day"], Default::default())
        .collect()?;
    let rates: Vec<f64> = (0..trend.height())
        .map(|i| {
            let calls = int_at(&trend, "calls", i).unwrap_or(0);
            let errored = int_at(&trend, "errored_calls", i).unwrap_or(0);
            if calls > 0 {
                errored as f64 / calls as f64
            } else {
                0.0
            }
        })
        .collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let bars = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let spark: String = rates
        .iter()
        .map(|r| {
            let x = if hi > lo { (r - lo) / (hi - lo) } else { 0.0 };
            bars[((x * 7.0).round() as usize).min(7)]
        })
        .collect();
    out.push_str(&format!(
        "\nError rate (errored calls / calls), {} days: {spark}  {:.2}%..{:.2}%, last {:.2}%\n",
        rates.len(),
        lo.max(0.0) * 100.0,
        hi.max(0.0) * 100.0,
        rates.last().copied().unwrap_or(0.0) * 100.0
    ));

    // The incident, as `callrollup errors` finds it: spikes over the last
    // two weeks, against each day's trailing baseline, with a chart.
    out.push_str(&incident(reports_dir, window, chart_path)?);
    out.push_str(&format!(
        "  (injected: {} for {} tenants on {})\n",
        crate::generate::INCIDENT_ERROR_TYPE,
        platform.incident_tenants.len(),
        platform.incident_day
    ));

    // The cost anomaly, as `callrollup anomalies` finds it.
    out.push_str(&cost_anomalies(reports_dir, window, platform)?);

    let findings = r.finding_rows;
    out.push_str(&format!(
        "\nData quality: {findings} rows flagged (missing or mismatched costs, tenants without a time zone); see data_quality_findings\n"
    ));
    out.push_str(&format!(
        "\nFiles\n  snapshot  {}/{{tenants,call_logs,system_errors}}.parquet, manifest.json\n  reports   {}/<table>/day=YYYY-MM-DD/<table>.parquet and .csv ({files_written} files)\n  tables    tenant_daily, tenant_daily_outcomes, tenant_daily_errors, data_quality_findings\n",
        snapshot_dir.display(),
        reports_dir.display()
    ));
    out.push_str(&format!(
        "  try       python -c \"import polars as pl; print(pl.scan_parquet('{}/tenant_daily/**/*.parquet', hive_partitioning=True).collect())\"\n",
        reports_dir.display()
    ));
    // The second half of the window: its previous period (the first half)
    // is rolled up too, so the report compares like with like.
    let half = (window.day_count() / 2).max(1) as u64;
    let costs_from = window.to - chrono::Days::new(half - 1);
    out.push_str(&format!(
        "\nFinance\n  costs     callrollup costs --reports {} --from {} --to {}\n            (against the {half} days before; add --format xlsx -o costs.xlsx for a workbook, --by day|month|outcome)\n",
        reports_dir.display(),
        costs_from,
        window.to
    ));
    out.push_str(&format!(
        "\nEngineers\n  errors    callrollup errors --reports {r} --source {s} --from {half_from} --to {to} --by tenant\n            (against the {half} days before, rolled up too; --bucket hour --timezone ZONE for hours, --chart errors.png)\n  query     callrollup query \"SELECT error_type, count(*) AS n FROM system_errors GROUP BY error_type\" --source {s} --from {from} --to {to}\n",
        r = reports_dir.display(),
        s = snapshot_dir.display(),
        half_from = costs_from,
        from = window.from,
        to = window.to
    ));
    out.push_str(&format!(
        "\nIn a browser
  serve     callrollup serve --reports {r} --source {s}
            (open the link it prints: costs, tenants, errors and runs pages; Ctrl-C stops it)
",
        r = reports_dir.display(),
        s = snapshot_dir.display(),
    ));
    Ok(out)
}
