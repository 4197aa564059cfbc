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
const LEGEND_WIDTH: u32 = 230;

/// The `top` tenants by period cost, with their display names and days.
fn ranked(report: &Report, top: usize) -> Vec<(String, &BTreeMap<NaiveDate, Decimal>)> {
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
            (shorten(&name), days)
        })
        .collect()
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::RunFailed(format!("cannot draw the chart: {e}"))
}

/// The chart as SVG text.
pub fn daily_svg(report: &Report, top: usize) -> Result<String> {
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
        .flat_map(|(_, d)| d.values().copied())
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
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                match series.len() {
                    1 => format!("Daily cost, {} to {}", report.period.from, report.period.to),
                    n => format!(
                        "Daily cost, top {n} tenants, {} to {}",
                        report.period.from, report.period.to
                    ),
                },
                ("sans-serif", 20).into_font(),
            )
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..(length - 1).max(1) as f64, 0f64..highest * 1.1)
            .map_err(chart_error)?;
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
        for (i, (_, by_day)) in series.iter().enumerate() {
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
        }
        let text = ("sans-serif", 14).into_font();
        legend
            .draw(&Text::new("Tenants (period total)", (8, 34), text.clone()))
            .map_err(chart_error)?;
        for (i, (name, by_day)) in series.iter().enumerate() {
            let y = 60 + 22 * i as i32;
            legend
                .draw(&Rectangle::new(
                    [(8, y), (24, y + 12)],
                    PALETTE[i % PALETTE.len()].filled(),
                ))
                .map_err(chart_error)?;
            let total: Decimal = by_day.values().copied().sum();
            legend
                .draw(&Text::new(
                    format!("{name} ({})", crate::output::decimal_text(total, 2)),
                    (30, y),
                    text.clone(),
                ))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
