//! The comparison as pictures: per strategy, a timeline of one run (a lane per
//! worker, a bar per download from its start to its last byte, coloured by
//! outcome, every strategy on one time axis so their lengths compare), the
//! latency distribution as box plots, and the HTML page that holds them with
//! the cost figures, the table and the explanation. Everything is drawn from
//! the runs' own records; the page needs no network and runs no script.
//!
//! Each bar carries `data-strategy`, `data-lane`, `data-start`, `data-end` (in
//! seconds from the start of the child's batch) and `data-outcome`, and each
//! strategy's block `data-wall`, so a reader (or a test) can check the picture
//! against the measurement without looking at pixels.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context as _;

use super::{Comparison, Row, Run, Transfer};
use crate::console::human_bytes;
use crate::escape_markup as escape;

const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 150.0;
const RIGHT_MARGIN: f64 = 30.0;
const PLOT_WIDTH: f64 = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
const HEADING_HEIGHT: f64 = 24.0;
const BLOCK_GAP: f64 = 14.0;
const AXIS_HEIGHT: f64 = 34.0;
const SAVED_COLOUR: &str = "#2f6fdf";
const FAILED_COLOUR: &str = "#d93025";
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// A strategy's pictured run: the counted run whose wall time is nearest its
/// row's median, so the picture shows a typical run, not the best one.
pub fn pictured_run<'a>(comparison: &'a Comparison, row: &Row) -> Option<&'a Run> {
    comparison
        .runs
        .iter()
        .filter(|run| run.contender == row.contender && !run.warmup && !run.transfers.is_empty())
        .min_by(|first, second| {
            let distance = |run: &Run| (run.wall_seconds - row.wall_median).abs();
            distance(first).total_cmp(&distance(second))
        })
}

/// The lanes of a run in reading order: `thread-2` before `thread-10`.
fn lanes(transfers: &[Transfer]) -> Vec<&str> {
    let mut lanes: Vec<&str> = transfers
        .iter()
        .map(|transfer| transfer.lane.as_str())
        .collect();
    let key = |lane: &str| {
        let digits = lane.len() - lane.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (name, number) = lane.split_at(lane.len() - digits);
        (name.to_string(), number.parse::<u64>().unwrap_or(0))
    };
    lanes.sort_by_key(|lane| key(lane));
    lanes.dedup();
    lanes
}

/// A tick step of 1, 2 or 5 times a power of ten, giving about `ticks` ticks.
fn tick_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

fn seconds_label(seconds: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.0} ms", seconds * 1000.0)
    }
}

/// A horizontal axis from 0 to `span` at height `y`, labelled below.
fn axis(svg: &mut String, y: f64, span: f64, label: &str) {
    let step = tick_step(span, 8.0);
    let _ = write!(
        svg,
        "<line x1=\"{LABEL_WIDTH}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#444\"/>",
        LABEL_WIDTH + PLOT_WIDTH
    );
    let mut tick = 0.0;
    while tick <= span * 1.000_001 {
        let x = LABEL_WIDTH + tick / span * PLOT_WIDTH;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" {FONT}>{}</text>",
            y + 4.0,
            y + 16.0,
            seconds_label(tick, step)
        );
        tick += step;
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" {FONT} fill=\"#555\">{}</text>",
        LABEL_WIDTH + PLOT_WIDTH / 2.0,
        y + 30.0,
        escape(label)
    );
}

/// The timelines alone, one block per strategy that has a pictured run, all
/// on one time axis: a self-contained SVG document.
pub fn timelines_svg(comparison: &Comparison) -> String {
    let pictured: Vec<(&Row, &Run)> = comparison
        .rows
        .iter()
        .filter_map(|row| Some((row, pictured_run(comparison, row)?)))
        .collect();
    let span = pictured
        .iter()
        .flat_map(|(_, run)| {
            std::iter::once(run.wall_seconds).chain(run.transfers.iter().map(|t| t.end))
        })
        .fold(0.0, f64::max)
        .max(0.001);
    let x_of = |seconds: f64| LABEL_WIDTH + seconds.max(0.0) / span * PLOT_WIDTH;
    let mut body = String::new();
    let mut y = 8.0;
    for (row, run) in &pictured {
        let lanes = lanes(&run.transfers);
        // Many lanes get thinner, so sixty-four threads still fit on a slide.
        let lane_height = (280.0 / lanes.len() as f64).clamp(3.0, 16.0);
        let bar_height = (lane_height - 2.0).max(2.0);
        let _ = write!(
            body,
            "<g class=\"strategy\" data-strategy=\"{name}\" data-wall=\"{wall}\" data-lanes=\"{count}\">\
             <text x=\"4\" y=\"{text_y}\" {FONT} font-weight=\"bold\">{name}</text>\
             <text x=\"{LABEL_WIDTH}\" y=\"{text_y}\" {FONT} fill=\"#555\">run {round}: {wall:.3} s wall, \
             {count} lane{plural}, {saved} saved, {failed} failed</text>",
            name = escape(&row.contender),
            wall = run.wall_seconds,
            count = lanes.len(),
            plural = if lanes.len() == 1 { "" } else { "s" },
            text_y = y + 15.0,
            round = run.round + 1,
            saved = run.saved,
            failed = run.failed,
        );
        y += HEADING_HEIGHT;
        let top = y;
        for (index, lane) in lanes.iter().enumerate() {
            let lane_y = top + index as f64 * lane_height;
            if index % 2 == 0 {
                let _ = write!(
                    body,
                    "<rect x=\"{LABEL_WIDTH}\" y=\"{lane_y:.1}\" width=\"{PLOT_WIDTH}\" height=\"{lane_height:.1}\" fill=\"#f1f3f5\"/>"
                );
            }
            if lane_height >= 10.0 {
                let _ = write!(
                    body,
                    "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-family=\"sans-serif\" font-size=\"{:.0}\" fill=\"#555\">{}</text>",
                    LABEL_WIDTH - 6.0,
                    lane_y + lane_height - 3.0,
                    (lane_height - 3.0).min(11.0),
                    escape(lane)
                );
            }
        }
        for transfer in &run.transfers {
            let index = lanes
                .iter()
                .position(|lane| *lane == transfer.lane)
                .unwrap_or(0);
            let x = x_of(transfer.start);
            let width = (x_of(transfer.end) - x).max(1.0);
            let (outcome, colour) = if transfer.saved {
                ("saved", SAVED_COLOUR)
            } else {
                ("failed", FAILED_COLOUR)
            };
            let _ = write!(
                body,
                "<rect class=\"bar\" data-strategy=\"{strategy}\" data-lane=\"{lane}\" data-start=\"{start}\" \
                 data-end=\"{end}\" data-outcome=\"{outcome}\" x=\"{x:.2}\" y=\"{bar_y:.1}\" width=\"{width:.2}\" \
                 height=\"{bar_height:.1}\" fill=\"{colour}\" stroke=\"#fff\" stroke-width=\"0.5\">\
                 <title>{url}\n{size}, {milliseconds:.1} ms ({outcome}, {lane})</title></rect>",
                strategy = escape(&row.contender),
                lane = escape(&transfer.lane),
                start = transfer.start,
                end = transfer.end,
                bar_y = top + index as f64 * lane_height + 1.0,
                url = escape(&transfer.url),
                size = human_bytes(transfer.bytes),
                milliseconds = (transfer.end - transfer.start) * 1000.0,
            );
        }
        let bottom = top + lanes.len() as f64 * lane_height;
        let wall_x = x_of(run.wall_seconds);
        let _ = write!(
            body,
            "<line x1=\"{wall_x:.2}\" y1=\"{top:.1}\" x2=\"{wall_x:.2}\" y2=\"{bottom:.1}\" stroke=\"#222\" \
             stroke-dasharray=\"3 2\"><title>wall time {:.3} s</title></line></g>",
            run.wall_seconds
        );
        y = bottom + BLOCK_GAP;
    }
    axis(
        &mut body,
        y,
        span,
        "time since the run's batch started (dashed: the run's wall time)",
    );
    let height = y + AXIS_HEIGHT + 6.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timelines\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
    );
    if pictured.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{LABEL_WIDTH}\" y=\"20\" {FONT}>no run recorded its downloads</text>"
        );
    }
    svg += &body;
    svg += "</svg>\n";
    svg
}

/// The five figures of a box plot: minimum, quartiles, maximum.
fn five_numbers(values: &mut [f64]) -> Option<[f64; 5]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |fraction: f64| {
        let position = fraction * (values.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        values[low] + (values[high] - values[low]) * (position - low as f64)
    };
    Some([at(0.0), at(0.25), at(0.5), at(0.75), at(1.0)])
}

/// Per strategy, a box plot of every counted download's time, on one axis.
pub fn latency_svg(comparison: &Comparison) -> String {
    let boxes: Vec<(&str, [f64; 5], usize)> = comparison
        .rows
        .iter()
        .filter_map(|row| {
            let mut latencies: Vec<f64> = comparison
                .runs
                .iter()
                .filter(|run| run.contender == row.contender && !run.warmup)
                .flat_map(|run| &run.transfers)
                .map(|transfer| transfer.end - transfer.start)
                .collect();
            let count = latencies.len();
            Some((row.contender.as_str(), five_numbers(&mut latencies)?, count))
        })
        .collect();
    let span = boxes
        .iter()
        .map(|(_, figures, _)| figures[4])
        .fold(0.0, f64::max)
        .max(0.001);
    let x_of = |seconds: f64| LABEL_WIDTH + seconds / span * PLOT_WIDTH;
    let row_height = 30.0;
    let mut body = String::new();
    for (index, (name, [low, first, middle, third, high], count)) in boxes.iter().enumerate() {
        let center = 10.0 + index as f64 * row_height + row_height / 2.0;
        let _ = write!(
            body,
            "<g class=\"latency\" data-strategy=\"{name}\" data-count=\"{count}\" data-median=\"{middle}\">\
             <title>{name}: {count} downloads; min {:.1} ms, quartiles {:.1} / {:.1} / {:.1} ms, max {:.1} ms</title>\
             <text x=\"4\" y=\"{:.1}\" {FONT} font-weight=\"bold\">{name}</text>\
             <line x1=\"{:.2}\" y1=\"{center}\" x2=\"{:.2}\" y2=\"{center}\" stroke=\"#444\"/>\
             <rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"16\" fill=\"#cfe0fb\" stroke=\"#2f6fdf\"/>\
             <line x1=\"{:.2}\" y1=\"{:.1}\" x2=\"{:.2}\" y2=\"{:.1}\" stroke=\"#1a3f80\" stroke-width=\"2\"/></g>",
            low * 1000.0,
            first * 1000.0,
            middle * 1000.0,
            third * 1000.0,
            high * 1000.0,
            center + 4.0,
            x_of(*low),
            x_of(*high),
            x_of(*first),
            center - 8.0,
            (x_of(*third) - x_of(*first)).max(1.0),
            x_of(*middle),
            center - 8.0,
            x_of(*middle),
            center + 8.0,
            name = escape(name),
        );
    }
    let axis_y = 10.0 + boxes.len() as f64 * row_height + 4.0;
    axis(
        &mut body,
        axis_y,
        span,
        "time per download, every counted run (box: quartiles; line: median; whiskers: min and max)",
    );
    let height = axis_y + AXIS_HEIGHT + 6.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"latencies\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH} {height:.0}\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>{body}</svg>\n"
    )
}

/// Wall time, CPU time and peak memory side by side, each as a bar scaled to
/// the largest of its column.
fn costs_table(comparison: &Comparison) -> String {
    let largest = |field: fn(&Row) -> f64| {
        comparison
            .rows
            .iter()
            .map(field)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
    };
    let wall = largest(|row| row.wall_median);
    let cpu = largest(|row| row.cpu_seconds);
    let memory = largest(|row| row.peak_memory_bytes as f64);
    let meter = |value: f64, largest: f64, text: String| {
        format!(
            "<td><div class=\"meter\"><span style=\"width:{:.1}%\"></span></div>{text}</td>",
            value / largest * 100.0
        )
    };
    let mut html = String::from(
        "<table class=\"costs\"><tr><th>strategy</th><th>wall time (median)</th><th>CPU time</th>\
         <th>peak memory</th></tr>\n",
    );
    for row in &comparison.rows {
        html += &format!(
            "<tr><th>{}</th>{}{}{}</tr>\n",
            escape(&row.contender),
            meter(row.wall_median, wall, format!("{:.3} s", row.wall_median)),
            meter(row.cpu_seconds, cpu, format!("{:.3} s", row.cpu_seconds)),
            meter(
                row.peak_memory_bytes as f64,
                memory,
                human_bytes(row.peak_memory_bytes)
            ),
        );
    }
    html + "</table>\n"
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em}\
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:13px}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
table.costs{border-collapse:collapse}table.costs td,table.costs th{padding:4px 12px;text-align:left}\
.meter{display:inline-block;width:160px;height:10px;background:#eee;margin-right:8px}\
.meter span{display:block;height:10px;background:#2f6fdf}";

/// The whole page: timelines, latencies, costs, the table and, for `grab
/// demo`, the explanation.
pub fn html(comparison: &Comparison, explanation: Option<&str>) -> String {
    let caption = super::export::caption(comparison);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>grab: how each strategy downloads</title><style>{STYLE}</style></head><body>\n\
         <h1>How each strategy downloads</h1>\n<p>{}</p>\n\
         <h2>Timelines</h2>\n<p>One typical run of each strategy (the counted run nearest its median): \
         a lane per worker (thread, worker process or async task; for curl -Z, a connection), a bar per \
         download from its request to its last byte, on one time axis. Hover a bar for its URL, size and time.\
         <span class=\"legend\"><span style=\"background:{SAVED_COLOUR}\"></span>saved\
         <span style=\"background:{FAILED_COLOUR}\"></span>failed</span></p>\n",
        escape(&caption)
    );
    page += &timelines_svg(comparison);
    page += "<h2>Time per download</h2>\n";
    page += &latency_svg(comparison);
    page += "<h2>What it cost</h2>\n";
    page += &costs_table(comparison);
    page += &format!(
        "<h2>The table</h2>\n<pre>{}</pre>\n",
        escape(&super::export::table(comparison))
    );
    if let Some(explanation) = explanation {
        page += &format!(
            "<h2>Why</h2>\n<p class=\"explanation\">{}</p>\n",
            escape(explanation)
        );
    }
    page + "</body></html>\n"
}

pub fn write_svg(comparison: &Comparison, path: &Path) -> anyhow::Result<()> {
    fs::write(path, timelines_svg(comparison))
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_html(
    comparison: &Comparison,
    explanation: Option<&str>,
    path: &Path,
) -> anyhow::Result<()> {
    fs::write(path, html(comparison, explanation))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(lane: &str) -> Transfer {
        Transfer {
            url: "http://h/a?b=1&c=<2>".to_string(),
            lane: lane.to_string(),
            start: 0.0,
            end: 0.1,
            bytes: 10,
            saved: true,
        }
    }

    #[test]
    fn lanes_sort_by_their_number() {
        let transfers = ["thread-10", "thread-2", "thread-1", "thread-2"].map(transfer);
        assert_eq!(lanes(&transfers), ["thread-1", "thread-2", "thread-10"]);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1.0, 8.0), 0.2);
        assert_eq!(tick_step(0.35, 8.0), 0.05);
        assert_eq!(tick_step(30.0, 8.0), 5.0);
    }

    #[test]
    fn quartiles_interpolate() {
        assert_eq!(
            five_numbers(&mut [4.0, 1.0, 3.0, 2.0, 5.0]),
            Some([1.0, 2.0, 3.0, 4.0, 5.0])
        );
        assert_eq!(five_numbers(&mut []), None);
    }
}
