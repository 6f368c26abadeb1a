//! The comparison's outputs: the table printed on the terminal, and the Markdown
//! and JSON exports (the JSON also carries every run's raw figures).

use std::fs;
use std::path::Path;

use anyhow::Context as _;

use super::{Comparison, Row};
use crate::console::human_bytes;

const HEADINGS: [&str; 11] = [
    "strategy",
    "time (min-max)",
    "files/s",
    "MB/s",
    "p50",
    "p95",
    "p99",
    "CPU",
    "memory",
    "failed/run",
    "ratio",
];

fn milliseconds(seconds: f64) -> String {
    format!("{:.0} ms", seconds * 1000.0)
}

/// A row's cells, in the order of [`HEADINGS`].
fn cells(row: &Row) -> [String; 11] {
    let latency = |pick: fn(&crate::engine::Percentiles) -> f64| {
        row.latency_seconds
            .as_ref()
            .map_or("-".to_string(), |latency| milliseconds(pick(latency)))
    };
    [
        row.contender.clone(),
        format!(
            "{:.2} s ({:.2}-{:.2})",
            row.wall_median, row.wall_min, row.wall_max
        ),
        format!("{:.1}", row.files_per_second),
        format!("{:.1}", row.megabytes_per_second),
        latency(|latency| latency.p50),
        latency(|latency| latency.p95),
        latency(|latency| latency.p99),
        format!("{:.2} s", row.cpu_seconds),
        human_bytes(row.peak_memory_bytes),
        format!("{}", row.failed_per_run),
        format!("{:.2}x", row.ratio),
    ]
}

/// The table for the terminal: aligned columns, best first.
pub fn table(comparison: &Comparison) -> String {
    let rows: Vec<[String; 11]> = comparison.rows.iter().map(cells).collect();
    let mut widths = HEADINGS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // The name left-aligned, the figures right-aligned.
            if index == 0 {
                text += &format!("{cell:<width$}");
            } else {
                text += &format!("  {cell:>width$}");
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(&HEADINGS.map(str::to_string));
    for row in &rows {
        text += &line(row);
    }
    text
}

/// A sentence on what was compared.
pub fn caption(comparison: &Comparison) -> String {
    let config = &comparison.config;
    let mut text = format!(
        "{} URLs, {} at a time; median of {} runs after {} warm-up{}, tools interleaved",
        comparison.urls,
        config.jobs,
        config.repeat,
        config.warmup,
        if config.warmup == 1 { "" } else { "s" }
    );
    if !comparison.missing_peers.is_empty() {
        text += &format!("; not found: {}", comparison.missing_peers.join(", "));
    }
    text
}

/// The table as Markdown.
pub fn markdown(comparison: &Comparison) -> String {
    let mut text = format!(
        "{}\n\n| {} |\n|{}\n",
        caption(comparison),
        HEADINGS.join(" | "),
        "---|".repeat(HEADINGS.len())
    );
    for row in &comparison.rows {
        text += &format!("| {} |\n", cells(row).join(" | "));
    }
    text
}

pub fn write_markdown(comparison: &Comparison, path: &Path) -> anyhow::Result<()> {
    fs::write(path, markdown(comparison))
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_json(comparison: &Comparison, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(comparison)?;
    fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
