//! What a dataset run shows: a live line (samples/s, success rate, shards
//! done), drawn as a bar on a terminal or printed as a heartbeat every few
//! seconds, through the one console; and the summary of the run's stats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Counters, RunStats};
use crate::console::{Console, plural};
use crate::engine::ProgressMode;

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

/// The live view's thread, for as long as the run lasts.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Ticker {
    /// Starts the view `mode` asks for; `None` for no view.
    pub fn start(
        console: Console,
        counters: Arc<Counters>,
        mode: ProgressMode,
        heartbeat: Duration,
    ) -> Option<Ticker> {
        if mode == ProgressMode::None || !console.shows_failures() {
            return None;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let started = Instant::now();
        let thread = thread::spawn(move || {
            let (every, bar) = match mode {
                ProgressMode::Bar => {
                    let display = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                    let bar = display.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
                    );
                    console.attach(display);
                    (Duration::from_millis(200), Some(bar))
                }
                _ => (heartbeat, None),
            };
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let line = live_line(&counters, started.elapsed());
                match &bar {
                    Some(bar) => {
                        bar.set_message(line);
                        bar.tick();
                    }
                    None => console.line(&line),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
                console.detach();
            }
        });
        Some(Ticker { stop, thread })
    }

    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
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
