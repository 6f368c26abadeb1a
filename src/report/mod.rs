//! What the user reads: one line on stderr as each file finishes, the tally every
//! worker updates, the live view ([`live`]), the `--report` file ([`records`]), and
//! the summary at the end. Every strategy reports through the
//! one [`Reporter`] of its batch, so the lines and the counts are the same whatever
//! ran the downloads. Each line is written whole under the stderr lock, so lines
//! from concurrent workers never tear.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod live;
pub mod records;

use crate::download::Outcome;
use crate::input::InvalidLine;

/// How much the reporter prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// A line per file, then the summary.
    Normal,
    /// Failures and the summary only.
    Quiet,
    /// Nothing (the caller presents the summary itself, as `demo` does).
    Silent,
}

/// The exit code of a batch stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

#[derive(Default)]
struct Tally {
    saved: u64,
    skipped: u64,
    retries: u64,
    failed: u64,
    invalid_lines: u64,
    bytes: u64,
    latencies: Vec<Duration>,
    failures: BTreeMap<String, FailureGroup>,
}

/// How many URLs failed for one reason, with the first few as examples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureGroup {
    pub reason: String,
    pub count: u64,
    pub examples: Vec<String>,
}

/// Examples kept per failure reason: enough to act on, few enough that 300
/// identical 404s read as one line.
const EXAMPLES_PER_REASON: usize = 3;

/// The shared record of a batch.
pub struct Reporter {
    verbosity: Verbosity,
    started: Instant,
    /// Downloads finished, saved or failed: read without the lock by progress views.
    finished: AtomicU64,
    /// Of those, the failed ones.
    failed: AtomicU64,
    tally: Mutex<Tally>,
    pub live: live::Live,
    /// The bar, while one is drawn: lines are printed above it, never through it.
    display: Mutex<Option<indicatif::MultiProgress>>,
    records: Mutex<Option<records::RecordWriter>>,
    color: bool,
}

/// Whether stderr gets colours: only on a terminal, and never with `NO_COLOR` set.
pub fn stderr_colors() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// The counts of a finished batch.
#[derive(Debug, Clone)]
pub struct Summary {
    pub saved: u64,
    /// Already complete from an earlier run (the manifest said so, the file agreed).
    pub skipped: u64,
    /// Attempts beyond the first, over all files.
    pub retries: u64,
    pub failed: u64,
    pub invalid_lines: u64,
    pub duplicates: u64,
    pub bytes: u64,
    pub wall: Duration,
    /// Each finished download's time, in finishing order.
    pub latencies: Vec<Duration>,
    /// Failures grouped by reason, most frequent first.
    pub failures: Vec<FailureGroup>,
    /// Stopped by Ctrl-C before the list was done.
    pub interrupted: bool,
}

/// Latency percentiles, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of a set of durations (zeros when empty).
    pub fn of(durations: &[Duration]) -> Percentiles {
        let mut seconds: Vec<f64> = durations.iter().map(Duration::as_secs_f64).collect();
        seconds.sort_by(f64::total_cmp);
        let rank = |quantile: f64| -> f64 {
            if seconds.is_empty() {
                return 0.0;
            }
            let index =
                ((quantile * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len()) - 1;
            seconds[index]
        };
        Percentiles {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
        }
    }
}

impl Summary {
    /// 0 when every URL was saved, 1 when any failed or any input line was invalid.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            INTERRUPTED_EXIT_CODE
        } else if self.failed == 0 && self.invalid_lines == 0 {
            0
        } else {
            1
        }
    }

    /// `downloaded 9 of 10 files, 1 failed; 1.2 MiB in 0.52 s (2.3 MiB/s)`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "downloaded {} of {} files",
            self.saved,
            self.saved + self.failed
        );
        if self.failed > 0 {
            line += &format!(", {} failed", self.failed);
        }
        if self.skipped > 0 {
            line += &format!(", {} skipped (already complete)", self.skipped);
        }
        if self.retries > 0 {
            line += &format!(
                ", {} retr{}",
                self.retries,
                if self.retries == 1 { "y" } else { "ies" }
            );
        }
        if self.interrupted {
            line += ", interrupted";
        }
        if self.invalid_lines > 0 {
            line += &format!(
                ", {} invalid input line{}",
                self.invalid_lines,
                plural(self.invalid_lines)
            );
        }
        if self.duplicates > 0 {
            line += &format!(
                ", {} duplicate URL{} skipped",
                self.duplicates,
                plural(self.duplicates)
            );
        }
        line += &format!(
            "; {} in {:.2} s ({}/s)",
            human_bytes(self.bytes),
            self.wall.as_secs_f64(),
            human_bytes(self.bytes_per_second() as u64)
        );
        for group in &self.failures {
            line += &format!(
                "\n  {} x {}: {}",
                group.count,
                group.reason,
                group.examples.join(", ")
            );
            if group.count > group.examples.len() as u64 {
                line += ", ...";
            }
        }
        line
    }

    pub fn bytes_per_second(&self) -> f64 {
        let seconds = self.wall.as_secs_f64();
        if seconds > 0.0 {
            self.bytes as f64 / seconds
        } else {
            0.0
        }
    }

    /// The summary as one JSON object (`grab get --json`).
    pub fn to_json(&self, strategy: &str, jobs: usize) -> serde_json::Value {
        serde_json::json!({
            "strategy": strategy,
            "jobs": jobs,
            "saved": self.saved,
            "skipped": self.skipped,
            "failed": self.failed,
            "retries": self.retries,
            "interrupted": self.interrupted,
            "invalid_lines": self.invalid_lines,
            "duplicates": self.duplicates,
            "bytes": self.bytes,
            "wall_seconds": self.wall.as_secs_f64(),
            "bytes_per_second": self.bytes_per_second(),
            "latency_seconds": Percentiles::of(&self.latencies),
            "failures": self.failures,
        })
    }
}

/// `  (3 attempts)` when a download took more than one.
fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!("  ({attempts} attempts)")
    } else {
        String::new()
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// `20.0 KiB`, `1.5 MiB`: binary units, one decimal.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl Reporter {
    pub fn new(verbosity: Verbosity) -> Reporter {
        Reporter {
            verbosity,
            started: Instant::now(),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tally: Mutex::new(Tally::default()),
            live: live::Live::default(),
            display: Mutex::new(None),
            records: Mutex::new(None),
            color: stderr_colors(),
        }
    }

    /// Writes a record of every outcome to `path` from now on.
    pub fn write_records(
        &self,
        path: &std::path::Path,
        format: records::ReportFormat,
    ) -> io::Result<()> {
        let writer = records::RecordWriter::create(path, format)?;
        *self
            .records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(writer);
        Ok(())
    }

    /// Closes the report file, if any, with the summary.
    pub fn finish_records(&self, summary: &serde_json::Value) -> io::Result<()> {
        match self
            .records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            Some(writer) => writer.finish(summary),
            None => Ok(()),
        }
    }

    /// (finished, failed) so far, without the lock.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.finished.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Time since the batch started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn attach(&self, display: indicatif::MultiProgress) {
        *self
            .display
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(display);
    }

    fn detach(&self) {
        self.display
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
    }

    fn print(&self, line: &str) {
        let display = self
            .display
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let write = || {
            // One write of the whole line under the lock: concurrent lines never tear.
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(line.as_bytes());
        };
        match display {
            // The bar steps aside for the line and is redrawn under it.
            Some(display) => display.suspend(write),
            None => write(),
        }
    }

    /// `text` in a colour, when colours are on.
    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Records a finished download and prints its line.
    pub fn record(&self, outcome: &Outcome) {
        {
            let mut tally = self
                .tally
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            tally.retries += u64::from(outcome.attempts.saturating_sub(1));
            match &outcome.result {
                Ok(saved) if saved.skipped => tally.skipped += 1,
                Ok(saved) => {
                    tally.saved += 1;
                    tally.bytes += saved.bytes;
                }
                Err(error) => {
                    tally.failed += 1;
                    let reason = error.reason();
                    let group =
                        tally
                            .failures
                            .entry(reason.clone())
                            .or_insert_with(|| FailureGroup {
                                reason,
                                ..FailureGroup::default()
                            });
                    group.count += 1;
                    if group.examples.len() < EXAMPLES_PER_REASON {
                        group.examples.push(outcome.job.url.to_string());
                    }
                }
            }
            if !matches!(&outcome.result, Ok(saved) if saved.skipped) {
                tally.latencies.push(outcome.elapsed);
            }
        }
        if outcome.result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        if let Some(writer) = self
            .records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_mut()
            && let Err(error) = writer.write(&records::Record::of(outcome))
        {
            tracing::warn!("cannot write the report: {error}");
        }
        let seconds = outcome.elapsed.as_secs_f64();
        match (&outcome.result, self.verbosity) {
            (_, Verbosity::Silent) | (Ok(_), Verbosity::Quiet) => {}
            (Ok(saved), Verbosity::Normal) if saved.skipped => {
                self.print(&format!(
                    "{} {}  already complete\n",
                    self.paint("skipped", "2"),
                    saved.name
                ));
            }
            (Ok(saved), Verbosity::Normal) => {
                self.print(&format!(
                    "{}  {}  {}  {seconds:.3} s{}\n",
                    self.paint("saved", "32"),
                    saved.name,
                    human_bytes(saved.bytes),
                    attempts_note(outcome.attempts)
                ));
            }
            (Err(error), _) => {
                self.print(&format!(
                    "{} {} ({}): {error}  {seconds:.3} s{}\n",
                    self.paint("failed", "31"),
                    outcome.job.url,
                    outcome.job.origin,
                    attempts_note(outcome.attempts)
                ));
            }
        }
    }

    /// A diagnostic that is neither a file's outcome nor the summary.
    pub fn notice(&self, message: &str) {
        if self.verbosity != Verbosity::Silent {
            self.print(&format!("note: {message}\n"));
        }
    }

    /// Records an input line that is not a URL we can download.
    pub fn invalid(&self, line: &InvalidLine) {
        self.tally
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .invalid_lines += 1;
        if self.verbosity != Verbosity::Silent {
            self.print(&format!("error: {line}\n"));
        }
    }

    /// The counts so far, with the wall time since the batch started.
    pub fn summary(&self, duplicates: u64) -> Summary {
        let tally = self
            .tally
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut failures: Vec<FailureGroup> = tally.failures.values().cloned().collect();
        failures.sort_by_key(|group| std::cmp::Reverse(group.count));
        Summary {
            saved: tally.saved,
            skipped: tally.skipped,
            retries: tally.retries,
            failed: tally.failed,
            invalid_lines: tally.invalid_lines,
            duplicates,
            bytes: tally.bytes,
            wall: self.started.elapsed(),
            latencies: tally.latencies.clone(),
            failures,
            interrupted: false,
        }
    }

    /// Prints the summary line, unless silent.
    pub fn print_summary(&self, summary: &Summary) {
        if self.verbosity != Verbosity::Silent {
            self.print(&format!("{}\n", summary.line()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let durations: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let percentiles = Percentiles::of(&durations);
        assert_eq!(
            (percentiles.p50, percentiles.p95, percentiles.p99),
            (0.05, 0.095, 0.099)
        );
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        assert_eq!(Percentiles::of(&[Duration::from_secs(2)]).p99, 2.0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(20 * 1024), "20.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn summary_line_and_exit_code() {
        let summary = Summary {
            saved: 9,
            skipped: 0,
            retries: 0,
            interrupted: false,
            failed: 1,
            invalid_lines: 0,
            duplicates: 0,
            bytes: 2048,
            wall: Duration::from_millis(500),
            latencies: Vec::new(),
            failures: vec![FailureGroup {
                reason: "HTTP 404 Not Found".to_string(),
                count: 1,
                examples: vec!["http://h/x".to_string()],
            }],
        };
        assert!(
            summary
                .line()
                .starts_with("downloaded 9 of 10 files, 1 failed; 2.0 KiB in 0.50 s")
        );
        assert_eq!(summary.exit_code(), 1);
        assert!(
            summary
                .line()
                .ends_with("\n  1 x HTTP 404 Not Found: http://h/x"),
            "{}",
            summary.line()
        );
        let clean = Summary {
            failed: 0,
            ..summary
        };
        assert_eq!(clean.exit_code(), 0);
    }
}
