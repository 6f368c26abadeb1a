//! What the user reads: one line on stderr as each file finishes, the tally every
//! worker updates, and the summary at the end. Every strategy reports through the
//! one [`Reporter`] of its batch, so the lines and the counts are the same whatever
//! ran the downloads. Each line is written whole under the stderr lock, so lines
//! from concurrent workers never tear.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

#[derive(Default)]
struct Tally {
    saved: u64,
    failed: u64,
    invalid_lines: u64,
    bytes: u64,
    latencies: Vec<Duration>,
}

/// The shared record of a batch.
pub struct Reporter {
    verbosity: Verbosity,
    started: Instant,
    /// Downloads finished, saved or failed: read without the lock by progress views.
    finished: AtomicU64,
    tally: Mutex<Tally>,
}

/// The counts of a finished batch.
#[derive(Debug, Clone)]
pub struct Summary {
    pub saved: u64,
    pub failed: u64,
    pub invalid_lines: u64,
    pub duplicates: u64,
    pub bytes: u64,
    pub wall: Duration,
    /// Each finished download's time, in finishing order.
    pub latencies: Vec<Duration>,
}

impl Summary {
    /// 0 when every URL was saved, 1 when any failed or any input line was invalid.
    pub fn exit_code(&self) -> i32 {
        if self.failed == 0 && self.invalid_lines == 0 {
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
        let seconds = self.wall.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.bytes as f64 / seconds
        } else {
            0.0
        };
        line + &format!(
            "; {} in {:.2} s ({}/s)",
            human_bytes(self.bytes),
            seconds,
            human_bytes(rate as u64)
        )
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
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Downloads finished so far.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    fn print(&self, line: &str) {
        // One write of the whole line under the lock: concurrent lines never tear.
        let mut stderr = io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
    }

    /// Records a finished download and prints its line.
    pub fn record(&self, outcome: &Outcome) {
        {
            let mut tally = self
                .tally
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match &outcome.result {
                Ok(saved) => {
                    tally.saved += 1;
                    tally.bytes += saved.bytes;
                }
                Err(_) => tally.failed += 1,
            }
            tally.latencies.push(outcome.elapsed);
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        let seconds = outcome.elapsed.as_secs_f64();
        match (&outcome.result, self.verbosity) {
            (_, Verbosity::Silent) | (Ok(_), Verbosity::Quiet) => {}
            (Ok(saved), Verbosity::Normal) => {
                self.print(&format!(
                    "saved  {}  {}  {seconds:.3} s\n",
                    saved.name,
                    human_bytes(saved.bytes)
                ));
            }
            (Err(error), _) => {
                self.print(&format!(
                    "failed {} ({}): {error}  {seconds:.3} s\n",
                    outcome.job.url, outcome.job.origin
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
        Summary {
            saved: tally.saved,
            failed: tally.failed,
            invalid_lines: tally.invalid_lines,
            duplicates,
            bytes: tally.bytes,
            wall: self.started.elapsed(),
            latencies: tally.latencies.clone(),
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
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(20 * 1024), "20.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn summary_line_and_exit_code() {
        let summary = Summary {
            saved: 9,
            failed: 1,
            invalid_lines: 0,
            duplicates: 0,
            bytes: 2048,
            wall: Duration::from_millis(500),
            latencies: Vec::new(),
        };
        assert!(
            summary
                .line()
                .starts_with("downloaded 9 of 10 files, 1 failed; 2.0 KiB in 0.50 s")
        );
        assert_eq!(summary.exit_code(), 1);
        let clean = Summary {
            failed: 0,
            ..summary
        };
        assert_eq!(clean.exit_code(), 0);
    }
}
