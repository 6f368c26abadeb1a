//! What a dataset run shows: a live line (samples/s, success rate, shards
//! done), drawn by the engine's one ticker as a bar on a terminal or a
//! heartbeat every few seconds; and the summary of the run's stats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{Counters, RunStats};
use crate::console::{Console, plural};
use crate::engine::view::View;

/// `1200 samples, 310.5/s, 97.1% ok, 3 shards done, table read`.
pub fn live_line(counters: &Counters, elapsed: Duration) -> String {
    let samples = counters.samples.load(Ordering::Relaxed);
    let successes = counters.successes.load(Ordering::Relaxed);
    let shards = counters.shards.load(Ordering::Relaxed);
    let rate = samples as f64 / elapsed.as_secs_f64().max(0.001);
    let success = if samples > 0 {
        format!("{:.1}% ok", 100.0 * successes as f64 / samples as f64)
    } else {
        "no sample yet".to_string()
    };
    let table = if counters.input_done.load(Ordering::Relaxed) {
        "table read".to_string()
    } else {
        format!("{} rows read", counters.rows.load(Ordering::Relaxed))
    };
    format!(
        "{samples} samples, {rate:.1}/s, {success}, {shards} shard{} done, {table}",
        plural(shards)
    )
}

/// What a dataset run shows live: [`live_line`], as a spinner's message or a
/// heartbeat line.
pub struct DatasetView {
    console: Console,
    counters: Arc<Counters>,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl DatasetView {
    pub fn new(console: Console, counters: Arc<Counters>) -> DatasetView {
        DatasetView {
            console,
            counters,
            started: Instant::now(),
            bar: None,
        }
    }
}

impl View for DatasetView {
    fn console(&self) -> &Console {
        &self.console
    }

    fn heartbeat(&mut self) -> String {
        live_line(&self.counters, self.started.elapsed())
    }

    fn add_bars(&mut self, display: &MultiProgress) {
        let bar = display.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        self.bar = Some(bar);
    }

    fn draw(&mut self) {
        let line = live_line(&self.counters, self.started.elapsed());
        if let Some(bar) = &self.bar {
            bar.set_message(line);
            bar.tick();
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The human summary of a run, several lines.
pub fn summary(run: &RunStats) -> String {
    let stats = &run.stats;
    let mut lines = vec![format!(
        "{} samples in {} shard{}: {} saved, {} failed to download, {} failed to resize, {} opted out",
        stats.count,
        run.shards,
        plural(run.shards),
        stats.successes,
        stats.failed_to_download,
        stats.failed_to_resize,
        stats.opted_out
    )];
    lines.push(format!(
        "this run: {} samples fetched in {:.1} s ({:.1}/s), {} shard{} written, {} reused, {} samples reused",
        run.samples_fetched,
        run.elapsed_seconds,
        run.samples_per_second,
        run.shards_written,
        plural(run.shards_written),
        run.shards_reused,
        run.samples_reused
    ));
    let mut failures: Vec<_> = stats.failures.iter().collect();
    failures.sort_by(|left, right| right.1.cmp(left.1).then(left.0.cmp(right.0)));
    for (reason, count) in failures.into_iter().take(10) {
        lines.push(format!("  {count:>8}  {reason}"));
    }
    for error in &run.errors {
        lines.push(format!("error: {error}"));
    }
    if run.interrupted {
        lines.push(
            "interrupted: finished samples are kept; run again to finish the shards".to_string(),
        );
    }
    lines.join("\n")
}
