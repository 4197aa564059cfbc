//! `errors --chart FILE.svg|FILE.png`: the period's errors per bucket,
//! stacked by group (the top N, the rest as "other"), spikes marked, dates
//! on the x axis and a legend beside the plot, at 1200×600.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{Analysis, Bucketing};
use crate::error::{Error, Result};

pub const SIZE: (u32, u32) = (1200, 600);
/// Width of the legend panel on the right.
const LEGEND_WIDTH: u32 = 230;
/// Groups shown when --top is not given.
pub const DEFAULT_TOP: usize = 8;

/// Tableau 10: distinct for readers with the common colour-vision
/// deficiencies, and printable.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(255, 187, 120),
];
const OTHER: RGBColor = RGBColor(205, 205, 205);
const SPIKE: RGBColor = RGBColor(214, 39, 40);

/// The font compiled into the binary (assets/fonts/README.md).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are ours and valid; a failure would show as missing text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The chart's image format, from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Svg,
    Png,
}

impl ChartKind {
    pub fn of(path: &Path) -> Result<ChartKind> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(ChartKind::Svg),
            Some("png") => Ok(ChartKind::Png),
            _ => Err(Error::usage(format!(
                "--chart {} must end in .svg or .png",
                path.display()
            ))),
        }
    }
}

/// One stacked layer: a group (or "other") with its period counts.
struct Layer {
    label: String,
    color: RGBColor,
    counts: Vec<i64>,
    /// Per bucket, the count a spike marker shows there: the layer's own,
    /// or on "other" the count of the groups in it that spiked.
    marks: Vec<Option<i64>>,
}

/// The layers drawn, at most the palette's size: every group with a spike
/// in the period (the strongest spikes first, when there are more than
/// colours), then the largest others of the first `top`, then "other" for
/// the rest. A spike is marked on the group that spiked; only the spikes
/// of groups left without a layer are marked on "other", with their
/// groups' count.
fn layers(analysis: &Analysis, top: usize) -> Vec<Layer> {
    let start = analysis.timeline.period_start;
    let length = analysis.timeline.period_len();
    // Groups that spiked first (their markers need a layer; the strongest
    // when there are more than colours), then the largest others of the
    // first `top`; drawn largest first.
    let mut spiked: Vec<&super::Group> = Vec::new();
    for spike in analysis.all_spikes() {
        // Strongest first: a group enters with its strongest spike.
        if spiked.len() < PALETTE.len() && !spiked.iter().any(|g| std::ptr::eq(*g, spike.group)) {
            spiked.push(spike.group);
        }
    }
    let shown = analysis.shown(Some(top));
    let outside_top = spiked
        .iter()
        .filter(|g| !shown.iter().any(|s| std::ptr::eq(s, **g)))
        .count();
    let room = PALETTE
        .len()
        .min(top + outside_top)
        .saturating_sub(spiked.len());
    let mut drawn: Vec<&super::Group> = spiked;
    drawn.extend(shown.iter().filter(|g| g.spike_count() == 0).take(room));
    let position = |g: &super::Group| {
        analysis
            .groups
            .iter()
            .position(|x| std::ptr::eq(x, g))
            .unwrap_or(usize::MAX)
    };
    drawn.sort_by_key(|g| position(g));
    let mut out: Vec<Layer> = drawn
        .iter()
        .enumerate()
        .map(|(i, g)| Layer {
            label: shorten(&match &g.name {
                Some(name) if !name.is_empty() => name.clone(),
                _ => g.key.clone(),
            }),
            color: PALETTE[i % PALETTE.len()],
            counts: g.cells[start..].iter().map(|c| c.errors).collect(),
            marks: g
                .spikes
                .iter()
                .zip(&g.cells[start..])
                .map(|(s, c)| s.then_some(c.errors))
                .collect(),
        })
        .collect();
    let rest: Vec<&super::Group> = analysis
        .groups
        .iter()
        .filter(|g| !drawn.iter().any(|d| std::ptr::eq(*d, *g)))
        .collect();
    if !rest.is_empty() {
        let mut counts = vec![0; length];
        for g in &rest {
            for (i, c) in g.cells[start..].iter().enumerate() {
                counts[i] += c.errors;
            }
        }
        // Spikes of groups with no layer (more than there are colours)
        // are still marked, on "other", with those groups' count.
        let marks = (0..length)
            .map(|i| {
                let spiking: Vec<&&super::Group> = rest.iter().filter(|g| g.spikes[i]).collect();
                (!spiking.is_empty())
                    .then(|| spiking.iter().map(|g| g.cells[start + i].errors).sum())
            })
            .collect();
        out.push(Layer {
            label: format!("other ({} groups)", rest.len()),
            color: OTHER,
            counts,
            marks,
        });
    }
    out
}

/// Legend text fits its panel.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 24;
    // No control character reaches the picture (nor the SVG's XML).
    let text = crate::text::printable(text);
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// Where the x axis gets a date: about a dozen evenly spaced days, or
/// the local midnights of the hours (every few days on long periods).
fn ticks(timeline: &super::Timeline) -> Vec<(usize, String)> {
    let start = timeline.period_start;
    let length = timeline.period_len();
    let candidates: Vec<usize> = match timeline.bucketing {
        Bucketing::Day => (0..length).collect(),
        Bucketing::Hour => (0..length)
            .filter(|i| timeline.short_label(start + i).ends_with("00:00"))
            .collect(),
    };
    let step = candidates.len().div_ceil(12).max(1);
    candidates
        .into_iter()
        .step_by(step)
        .map(|i| {
            let label = timeline.short_label(start + i);
            (i, label.trim_end_matches(" 00:00").to_string())
        })
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    analysis: &Analysis,
    top: usize,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let timeline = &analysis.timeline;
    let layers = layers(analysis, top);
    let most_marks = (0..timeline.period_len())
        .map(|i| layers.iter().filter(|l| l.marks[i].is_some()).count())
        .max()
        .unwrap_or(0)
        .max(1);
    let length = timeline.period_len();
    let totals: Vec<i64> = (0..length)
        .map(|i| layers.iter().map(|l| l.counts[i]).sum())
        .collect();
    // At least 10 on the axis: whole numbers, none repeated.
    let highest = totals.iter().copied().max().unwrap_or(0).max(10) as f64;

    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let unit = match timeline.bucketing {
        Bucketing::Day => "tenant day".to_string(),
        Bucketing::Hour => format!("hour ({})", timeline.zone.name()),
    };
    let title = format!(
        "Errors by {} per {unit}, {} to {}",
        analysis.by.column(),
        timeline.from,
        timeline.to
    );
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22).into_font())
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        // Bucket i's bar is centred on x = i, under its label.
        // Room above the tallest bar for the markers stacked there (about
        // 4 % of the plot's height each).
        .build_cartesian_2d(
            -0.5f64..length as f64 - 0.5,
            0f64..highest * (1.1 + 0.045 * most_marks as f64),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        // Dates are drawn below at chosen buckets (see `ticks`).
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc(match timeline.bucketing {
            Bucketing::Day => "tenant day",
            Bucketing::Hour => "hour starting (ticks at midnight)",
        })
        .y_desc("errors")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    let tick_text =
        ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ));
    for (i, text) in ticks(timeline) {
        let (x, y) = chart.backend_coord(&(i as f64, 0.0));
        plot.draw(&PathElement::new(vec![(x, y), (x, y + 5)], BLACK))?;
        plot.draw(&Text::new(text, (x, y + 8), tick_text.clone()))?;
    }

    // Bars, stacked from the largest group up.
    let mut base = vec![0i64; length];
    let gap = if length > 60 { 0.0 } else { 0.15 };
    for layer in &layers {
        chart.draw_series((0..length).filter(|i| layer.counts[*i] > 0).map(|i| {
            let (y0, y1) = (base[i] as f64, (base[i] + layer.counts[i]) as f64);
            Rectangle::new(
                [(i as f64 - 0.5 + gap, y0), (i as f64 + 0.5 - gap, y1)],
                layer.color.filled(),
            )
        }))?;
        for (b, c) in base.iter_mut().zip(&layer.counts) {
            *b += c;
        }
    }
    // Buckets nothing could be read for: no bar, a "?" (unknown, not 0).
    let unknown = ("sans-serif", 16)
        .into_font()
        .color(&RGBColor(90, 90, 90))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Bottom,
        ));
    for i in (0..length).filter(|i| analysis.missing[timeline.period_start + i]) {
        chart.draw_series(std::iter::once(Text::new(
            "?".to_string(),
            (i as f64, highest * 0.02),
            unknown.clone(),
        )))?;
    }
    // Spikes: a red marker on top of the layer that spiked (not over the
    // stack), with that layer's count where there is room; markers of one
    // bucket are stacked so their labels never overlap.
    let roomy = length <= 60;
    const MARKER_HEIGHT: i32 = 18;
    let mut tops = vec![0i64; length];
    let mut segment_tops: Vec<Vec<i64>> = Vec::with_capacity(layers.len());
    for layer in &layers {
        for (t, c) in tops.iter_mut().zip(&layer.counts) {
            *t += c;
        }
        segment_tops.push(tops.clone());
    }
    let mut lowest_free: Vec<Option<i32>> = vec![None; length];
    let marker =
        ("sans-serif", 16)
            .into_font()
            .color(&SPIKE)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ));
    for (layer, segment_top) in layers.iter().zip(&segment_tops) {
        for (i, count) in layer.marks.iter().enumerate() {
            let Some(count) = count else {
                continue;
            };
            let (x, mut y) = chart.backend_coord(&(i as f64, segment_top[i] as f64));
            y -= 2;
            // Above the marker drawn before in this bucket, if it is in the way.
            if let Some(free) = lowest_free[i] {
                y = y.min(free);
            }
            lowest_free[i] = Some(y - MARKER_HEIGHT);
            let label = if roomy {
                format!("▼{count}")
            } else {
                "▼".to_string()
            };
            // A white card behind the label: it sits on coloured bars.
            let half = (label.chars().count() as i32 * 9) / 2 + 2;
            plot.draw(&Rectangle::new(
                [(x - half, y - MARKER_HEIGHT + 1), (x + half, y)],
                WHITE.mix(0.85).filled(),
            ))?;
            plot.draw(&Text::new(label, (x, y), marker.clone()))?;
        }
    }

    // The legend, beside the plot so it never hides a bar.
    let text = ("sans-serif", 15).into_font();
    let mut y = 60;
    legend.draw(&Text::new(
        "Groups (period total)",
        (8, y - 26),
        text.clone(),
    ))?;
    for layer in &layers {
        legend.draw(&Rectangle::new(
            [(8, y), (24, y + 14)],
            layer.color.filled(),
        ))?;
        let total: i64 = layer.counts.iter().sum();
        // Nothing read is no total of 0.
        let total = if analysis.period_read() {
            total.to_string()
        } else {
            "?".to_string()
        };
        legend.draw(&Text::new(
            format!("{} ({total})", layer.label),
            (32, y),
            text.clone(),
        ))?;
        y += 24;
    }
    y += 10;
    legend.draw(&Text::new("▼ spike (errors)", (8, y), text.color(&SPIKE)))?;
    root.present()?;
    Ok(())
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::RunFailed(format!("cannot draw the chart: {e}"))
}

/// The chart as the bytes of an SVG or PNG file.
pub fn render(analysis: &Analysis, top: usize, kind: ChartKind) -> Result<Vec<u8>> {
    register_font();
    match kind {
        ChartKind::Svg => {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
                analysis,
                top,
            )
            .map_err(chart_error)?;
            Ok(svg.into_bytes())
        }
        ChartKind::Png => {
            let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
            draw(
                BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area(),
                analysis,
                top,
            )
            .map_err(chart_error)?;
            let image = image::RgbImage::from_raw(SIZE.0, SIZE.1, pixels)
                .ok_or_else(|| chart_error("the pixel buffer has the wrong size"))?;
            let mut out = std::io::Cursor::new(Vec::new());
            image
                .write_to(&mut out, image::ImageOutputFormat::Png)
                .map_err(chart_error)?;
            Ok(out.into_inner())
        }
    }
}
