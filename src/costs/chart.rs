//! The daily cost of a report's top tenants as an SVG line chart (what
//! `serve` shows on its pages; the workbook draws the same series with
//! Excel's own chart). A day no run covered is a gap, never a 0.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::Report;
use crate::error::{Error, Result};
use crate::trends::chart::{register_font, shorten, PALETTE};

pub const SIZE: (u32, u32) = (1000, 420);
/// The calls' bars: a light grey-blue that the cost line stands out on.
const CALLS_BAR: RGBColor = RGBColor(0xc9, 0xd6, 0xe3);
const LEGEND_WIDTH: u32 = 230;

/// Tenant days to mark as cost anomalies (tenant id, day).
pub type Marks = std::collections::BTreeSet<(String, NaiveDate)>;

/// The colour of a cost anomaly's mark.
const ANOMALY: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// The `top` tenants by period cost: their ids, display names and days.
fn ranked(report: &Report, top: usize) -> Vec<(String, String, &BTreeMap<NaiveDate, Decimal>)> {
    let mut ranked: Vec<(&String, Decimal, &BTreeMap<NaiveDate, Decimal>)> = report
        .daily
        .iter()
        .map(|(id, days)| (id, days.values().copied().sum(), days))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(top);
    ranked
        .into_iter()
        .map(|(id, _, days)| {
            let name = report
                .rows
                .iter()
                .find(|r| r.key.tenant_id.as_deref() == Some(id.as_str()))
                .map(|r| r.display_name())
                .unwrap_or_else(|| id.clone());
            (id.clone(), shorten(&name), days)
        })
        .collect()
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::RunFailed(format!("cannot draw the chart: {e}"))
}

/// The chart as SVG text, with `marks` (cost anomalies) circled on the
/// lines of the tenants drawn.
pub fn daily_svg(report: &Report, top: usize, marks: &Marks) -> Result<String> {
    draw(report, top, None, marks)
}

/// One tenant's chart: its daily cost as a line and its calls as bars on
/// a second axis, from a report of that tenant `--by day`.
pub fn tenant_svg(report: &Report, marks: &Marks) -> Result<String> {
    let calls: BTreeMap<NaiveDate, i64> = report
        .rows
        .iter()
        .filter_map(|r| Some((r.key.day?, r.current.calls)))
        .collect();
    draw(report, 1, Some(&calls), marks)
}

fn draw(
    report: &Report,
    top: usize,
    calls: Option<&BTreeMap<NaiveDate, i64>>,
    marks: &Marks,
) -> Result<String> {
    register_font();
    let days: Vec<NaiveDate> = report.period.each_day().collect();
    let series = ranked(report, top);
    // A day no run covered is left out of the line (a gap).
    let missing: std::collections::BTreeSet<&NaiveDate> =
        report.coverage.missing_days.iter().collect();
    let covered = |day: &NaiveDate| !missing.contains(day);
    let dollars = |v: Decimal| v.to_f64().unwrap_or_default();
    let highest = series
        .iter()
        .flat_map(|(_, _, d)| d.values().copied())
        .max()
        .map(dollars)
        .unwrap_or(0.0)
        .max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let length = days.len().max(1);
        let most_calls = calls
            .and_then(|c| c.values().copied().max())
            .unwrap_or(0)
            .max(1) as f64;
        let x_range = -0.5f64..(length as f64 - 0.5).max(0.5);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                match (series.len(), calls.is_some()) {
                    (_, true) => format!(
                        "Daily cost and calls, {} to {}",
                        report.period.from, report.period.to
                    ),
                    (1, _) => format!("Daily cost, {} to {}", report.period.from, report.period.to),
                    (n, _) => format!(
                        "Daily cost, top {n} tenants, {} to {}",
                        report.period.from, report.period.to
                    ),
                },
                ("sans-serif", 20).into_font(),
            )
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(if calls.is_some() { 60 } else { 0 })
            .build_cartesian_2d(x_range.clone(), 0f64..highest * 1.1)
            .map_err(chart_error)?
            // Calls, when drawn, on their own axis at the right.
            .set_secondary_coord(x_range, 0f64..most_calls * 1.1);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(length.min(12))
            .x_label_formatter(&|x| {
                days.get(x.round().max(0.0) as usize)
                    .map(|d| d.format("%m-%d").to_string())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| format!("${y:.0}"))
            .x_desc("tenant day")
            .y_desc("USD")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(chart_error)?;
        if let Some(calls) = calls {
            chart
                .configure_secondary_axes()
                .y_desc("calls")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 14))
                .draw()
                .map_err(chart_error)?;
            // A bar per covered day, behind the cost line.
            chart
                .draw_secondary_series(days.iter().enumerate().filter(|(_, d)| covered(d)).map(
                    |(x, day)| {
                        let n = calls.get(day).copied().unwrap_or(0) as f64;
                        Rectangle::new(
                            [(x as f64 - 0.35, 0.0), (x as f64 + 0.35, n)],
                            CALLS_BAR.filled(),
                        )
                    },
                ))
                .map_err(chart_error)?;
        }
        let mut marked = 0;
        for (i, (id, _, by_day)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // One line per run of covered days.
            let mut run: Vec<(f64, f64)> = Vec::new();
            let mut runs = Vec::new();
            for (x, day) in days.iter().enumerate() {
                if covered(day) {
                    let v = by_day.get(day).copied().unwrap_or_default();
                    run.push((x as f64, dollars(v)));
                } else if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
            runs.push(run);
            for points in runs.into_iter().filter(|r| !r.is_empty()) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        points,
                        color.stroke_width(2),
                    )))
                    .map_err(chart_error)?;
            }
            // A cost anomaly: a red ring on the line's point of that day.
            let rings: Vec<(f64, f64)> = days
                .iter()
                .enumerate()
                .filter(|(_, day)| covered(day) && marks.contains(&(id.clone(), **day)))
                .map(|(x, day)| {
                    (
                        x as f64,
                        dollars(by_day.get(day).copied().unwrap_or_default()),
                    )
                })
                .collect();
            marked += rings.len();
            chart
                .draw_series(
                    rings
                        .into_iter()
                        .map(|p| Circle::new(p, 7, ANOMALY.stroke_width(3))),
                )
                .map_err(chart_error)?;
        }
        let text = ("sans-serif", 14).into_font();
        legend
            .draw(&Text::new("Tenants (period total)", (8, 34), text.clone()))
            .map_err(chart_error)?;
        let mut entries: Vec<(RGBColor, String)> = series
            .iter()
            .enumerate()
            .map(|(i, (_, name, by_day))| {
                let total: Decimal = by_day.values().copied().sum();
                (
                    PALETTE[i % PALETTE.len()],
                    format!("{name} ({})", crate::output::decimal_text(total, 2)),
                )
            })
            .collect();
        if let Some(calls) = calls {
            let total: i64 = calls.values().sum();
            entries.push((CALLS_BAR, format!("calls ({total})")));
        }
        if marked > 0 {
            entries.push((ANOMALY, format!("cost anomaly ({marked})")));
        }
        for (i, (color, label)) in entries.into_iter().enumerate() {
            let y = 60 + 22 * i as i32;
            legend
                .draw(&Rectangle::new([(8, y), (24, y + 12)], color.filled()))
                .map_err(chart_error)?;
            legend
                .draw(&Text::new(label, (30, y), text.clone()))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
