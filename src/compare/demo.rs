//! `grab demo`: the comparison of the four strategies on a gallery served
//! in-process (`cli::compare` serves it), with a short explanation under the
//! table.

use std::path::PathBuf;
use std::time::Duration;

use crate::compare::{Comparison, within_noise};

/// The gallery to serve: how many images, and the latency of each.
#[derive(Debug, Clone, Copy)]
pub struct GallerySpec {
    pub count: usize,
    pub delay: Duration,
}

impl Default for GallerySpec {
    fn default() -> Self {
        GallerySpec {
            count: 50,
            delay: Duration::from_millis(50),
        }
    }
}

/// What `grab demo` runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub gallery: GallerySpec,
    pub jobs: usize,
    pub repeat: usize,
    pub grab_program: PathBuf,
}

/// Why the strategies rank as they do, with this run's figures.
pub fn explanation(config: &DemoConfig, comparison: &Comparison) -> String {
    let count = config.gallery.count;
    let delay = config.gallery.delay.as_secs_f64();
    let waves = count.div_ceil(config.jobs.max(1));
    let row = |name: &str| comparison.rows.iter().find(|row| row.contender == name);
    let measured =
        |name: &str| row(name).map_or("-".to_string(), |row| format!("{:.2} s", row.wall_median));
    let mut text = format!(
        "Why this order: each image waits {:.0} ms for the server and needs almost no CPU, so the \
         time is set by how many requests are in flight. sequential has one: {count} x {:.0} ms = \
         {:.2} s at least (measured {}). The others keep {} in flight: {waves} waves of {:.0} ms = \
         {:.2} s at least, and differ only in overhead. async multiplexes every connection on an \
         event loop per core; threads give each download an OS thread; processes also start {} \
         copies of grab and pass every job over a pipe",
        delay * 1000.0,
        delay * 1000.0,
        count as f64 * delay,
        measured("sequential"),
        config.jobs,
        delay * 1000.0,
        waves as f64 * delay,
        config.jobs,
    );
    if let (Some(processes), Some(threads)) = (row("processes"), row("threads")) {
        text += &format!(
            ", which shows in the CPU ({:.2} s against {:.2} s for threads) and memory columns",
            processes.cpu_seconds, threads.cpu_seconds
        );
    }
    text += ".";
    // Adjacent places the runs cannot tell apart are said to be so, not ranked.
    for pair in comparison.rows.windows(2) {
        if within_noise(&pair[0], &pair[1]) {
            text += &format!(
                " {} and {} are within noise of each other ({:.2} s and {:.2} s, runs from \
                 {:.2} to {:.2} s): this run does not tell which is faster.",
                pair[0].contender,
                pair[1].contender,
                pair[0].wall_median,
                pair[1].wall_median,
                pair[0].wall_min.min(pair[1].wall_min),
                pair[0].wall_max.max(pair[1].wall_max),
            );
        }
    }
    text += " On CPU-heavy work (grab filter) the ranking changes: only threads and processes use every core.";
    wrap(&text, 88)
}

/// Breaks text into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut lines = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines += &line;
            lines.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    lines + &line + "\n"
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc\n");
        assert_eq!(wrap("a  b", 10), "a b\n");
    }
}
