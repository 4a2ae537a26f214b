//! SVG figures: throughput against threads for each workload, and height, leaf fill and bytes per
//! key against the number of keys. Every figure names the machine's core count, and throughput
//! figures shade the oversubscribed thread counts.

use std::path::Path;

use plotters::prelude::*;

use crate::load::Checkpoint;
use crate::maps::SUBJECT;
use crate::report::short_count;
use crate::suite::Results;

/// Figure size in pixels.
const SIZE: (u32, u32) = (900, 540);

/// Reads one quantity from a checkpoint, if the map reports it.
type Metric = fn(&Checkpoint) -> Option<f64>;

/// One line of a figure.
pub struct Series {
    /// Legend entry (the subject map is drawn in bold black).
    pub name: String,
    /// The map's position in the report, so that a map has the same colour in every figure.
    pub colour: usize,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// Writes every figure into `dir`; returns `(file name, title)` for each.
pub fn write(results: &Results, dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut figures = Vec::new();
    let cores = results.cores;
    for &workload in &results.options.workloads {
        let threads = results.threads_of(workload);
        let series: Vec<Series> = results
            .maps
            .iter()
            .enumerate()
            .map(|(colour, m)| Series {
                name: m.clone(),
                colour,
                points: threads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &t)| {
                        Some((i as f64, results.throughput(workload, m, t)? / 1e6))
                    })
                    .collect(),
            })
            .collect();
        let file = format!("throughput-{}.svg", workload.id());
        let title = format!(
            "{}: throughput vs threads ({} keys, {}) — {cores}-core machine",
            workload.id(),
            short_count(results.options.keys),
            results.options.dist.label()
        );
        // Shade from halfway between the last in-core count and the first oversubscribed one.
        let first_over = threads.iter().position(|&t| t > cores);
        let labels: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
        let y_desc = if workload.counts_pairs() {
            "million pairs/s"
        } else {
            "million ops/s"
        };
        line_chart(
            &dir.join(&file),
            &title,
            &series,
            XAxis::Categories(&labels),
            "threads",
            y_desc,
            first_over.map(|i| i as f64 - 0.5),
        )?;
        figures.push((file, title));
    }
    let shape_figures: [(&str, &str, &str, Metric); 3] = [
        ("height.svg", "tree height vs keys", "levels", |c| {
            c.height.map(|h| h as f64)
        }),
        (
            "leaf-fill.svg",
            "leaf fill vs keys",
            "average leaf fill (%)",
            |c| c.leaf_fill.map(|f| f * 100.0),
        ),
        (
            "bytes-per-key.svg",
            "heap bytes per key vs keys",
            "bytes per key",
            |c| Some(c.bytes_per_key),
        ),
    ];
    for (file, what, y_desc, metric) in shape_figures {
        let series: Vec<Series> = results
            .loads
            .iter()
            .map(|l| Series {
                name: l.map.clone(),
                colour: results.maps.iter().position(|m| *m == l.map).unwrap_or(0),
                points: l
                    .checkpoints
                    .iter()
                    .filter_map(|c| Some(((c.keys as f64).log10(), metric(c)?)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!(
            "{what} ({} keys, loaded with {} threads) — {cores}-core machine",
            results.options.order.name(),
            results.options.load_threads
        );
        line_chart(
            &dir.join(file),
            &title,
            &series,
            XAxis::Log10,
            "keys",
            y_desc,
            None,
        )?;
        figures.push((file.to_string(), title));
    }
    Ok(figures)
}

/// How x values map to labels.
pub enum XAxis<'a> {
    /// x = 0, 1, 2, ... labelled with these strings.
    Categories(&'a [String]),
    /// x = log10 of a count, labelled with the count.
    Log10,
}

/// Draws `series` as a line chart into the SVG file `path`, shading x values from `shade_from` on
/// (oversubscribed thread counts).
pub fn line_chart(
    path: &Path,
    title: &str,
    series: &[Series],
    x_axis: XAxis<'_>,
    x_desc: &str,
    y_desc: &str,
    shade_from: Option<f64>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = match &x_axis {
        XAxis::Categories(labels) => (-0.3, labels.len().max(1) as f64 - 0.7),
        XAxis::Log10 => {
            let lo = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let hi = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            (lo - 0.2, hi.max(lo + 1.0) + 0.2)
        }
    };
    // Headroom for the legend in the upper right corner.
    let y_hi = points().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.35;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
        .map_err(|e| err(&e))?;
    let format_x = |x: &f64| match &x_axis {
        XAxis::Categories(labels) => {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
        XAxis::Log10 => short_count(10f64.powf(*x).round() as usize),
    };
    let x_labels = match &x_axis {
        XAxis::Categories(labels) => labels.len(),
        XAxis::Log10 => 6,
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(x_labels)
        .x_label_formatter(&format_x)
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    if let Some(from) = shade_from {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(from, 0.0), (x_hi, y_hi)],
                BLACK.mix(0.07).filled(),
            )))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                "oversubscribed (threads > cores)",
                (from + 0.05, y_hi * 0.05),
                ("sans-serif", 13),
            )))
            .map_err(|e| err(&e))?;
    }
    // The subject last, so that its line is drawn over the others.
    let order = series
        .iter()
        .filter(|s| s.name != SUBJECT)
        .chain(series.iter().filter(|s| s.name == SUBJECT));
    for s in order {
        let subject = s.name == SUBJECT;
        let color: RGBAColor = if subject {
            BLACK.to_rgba()
        } else {
            Palette99::pick(s.colour).to_rgba()
        };
        let style = color.stroke_width(if subject { 3 } else { 2 });
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
