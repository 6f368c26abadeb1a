//! What the user reads: one line on stderr as each file finishes, the tally every
//! worker updates, the live view (`live`), the `--report` file (`records`), and
//! the summary at the end. Every strategy reports through the
//! one [`Reporter`] of its batch, so the lines and the counts are the same whatever
//! ran the downloads. Lines go through the run's [`Console`].

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub(crate) mod live;
pub(crate) mod records;

use crate::console::{Console, Paint, done_of, human_bytes, plural};
use crate::engine::{Percentiles, Strategy};
use crate::exit::ExitStatus;
use crate::get::input::InvalidLine;
use crate::http::{DownloadError, Outcome, Verdict};

#[derive(Default)]
struct Tally {
    saved: u64,
    skipped: u64,
    retries: u64,
    failed: u64,
    invalid_lines: u64,
    bytes: u64,
    resumed: u64,
    latencies: Latencies,
    failures: BTreeMap<String, FailureGroup>,
}

/// Download times, in a histogram of fixed size rather than one entry per
/// URL (a list of millions would hold 16 bytes each): hdrhistogram at three
/// significant digits, so each percentile is within 0.1% of the exact one.
struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // Nanoseconds, up to an hour (256 KiB of counts); it grows past that
        // for a longer time rather than cut it.
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .expect("bounds and three significant digits are allowed");
        histogram.auto(true);
        Latencies(histogram)
    }
}

impl Latencies {
    fn record(&mut self, elapsed: Duration) {
        let nanoseconds = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if self.0.record(nanoseconds).is_err() {
            self.0.saturating_record(nanoseconds);
        }
    }

    /// Nearest-rank percentiles, as [`Percentiles::of`] gives them for the
    /// same times, to within 0.1% (each is its bucket's highest time).
    fn percentiles(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        let seconds = |quantile: f64| self.0.value_at_quantile(quantile) as f64 / 1e9;
        Percentiles {
            p50: seconds(0.50),
            p95: seconds(0.95),
            p99: seconds(0.99),
        }
    }
}

/// How many URLs failed for one reason, with the first few as examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub reason: String,
    pub count: u64,
    pub examples: Vec<String>,
}

/// Examples kept per failure reason: enough to act on, few enough that 300
/// identical 404s read as one line.
const EXAMPLES_PER_REASON: usize = 3;

/// Invalid input lines printed one by one; past them, one line at the end
/// counts the rest (a list of 50,000 bad lines is not 50,000 error lines).
/// `--report` records every one.
pub const INVALID_LINES_SHOWN: u64 = 10;

/// The shared record of a batch.
pub struct Reporter {
    console: Console,
    strategy: Strategy,
    jobs: usize,
    started: Instant,
    /// Downloads finished, saved or failed: read without the lock by progress views.
    finished: AtomicU64,
    /// Of those, the failed ones.
    failed: AtomicU64,
    tally: Mutex<Tally>,
    pub live: live::Live,
    records: Mutex<Option<records::RecordWriter>>,
}

/// The counts of a finished batch: what `--json` prints, what `compare` reads
/// back, and what ends the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub strategy: Strategy,
    /// Downloads in flight at once.
    pub jobs: usize,
    pub saved: u64,
    /// Already complete from an earlier run (the manifest said so, the file agreed).
    pub skipped: u64,
    pub failed: u64,
    /// Attempts beyond the first, over all files.
    pub retries: u64,
    /// Stopped by Ctrl-C before the list was done.
    pub interrupted: bool,
    /// After Ctrl-C: downloads still running when the run stopped, and of
    /// those, the ones that had begun their `.part` file (kept for `-c`).
    #[serde(default)]
    pub stopped_in_flight: u64,
    #[serde(default)]
    pub parts_left: u64,
    /// After Ctrl-C: URLs never started, queued or not yet read; `None` when
    /// the rest of the input (stdin, a pipe) could not be counted.
    #[serde(default)]
    pub never_started: Option<u64>,
    /// Why the run stopped before its list was done, when it was not Ctrl-C:
    /// a full disk (`FOLDER is full (...)`). The counts above after Ctrl-C
    /// (in flight, never started) are this stop's too.
    #[serde(default)]
    pub stopped: Option<String>,
    pub invalid_lines: u64,
    pub duplicates: u64,
    /// Body bytes received in this run, failed and retried attempts included:
    /// the same bytes the live view counts and the `--report` records' `fetched`
    /// add up to. A resumed file counts only what this run fetched of it.
    pub bytes: u64,
    /// Files finished from a part an earlier run left (`-c`).
    #[serde(default)]
    pub resumed: u64,
    pub wall_seconds: f64,
    pub bytes_per_second: f64,
    /// Over the downloads that ran (skipped ones left out).
    pub latency_seconds: Percentiles,
    /// Failures grouped by reason, most frequent first.
    pub failures: Vec<FailureGroup>,
}

impl Summary {
    /// Ok when every URL was saved (or already complete), Failed when any failed
    /// or any input line was invalid, Interrupted when Ctrl-C left some of the
    /// list undone. A Ctrl-C after which every download still finished lost
    /// nothing: the status is the run's own.
    pub fn exit_status(&self) -> ExitStatus {
        if self.stopped.is_some() {
            ExitStatus::Failed
        } else if self.interrupted && self.left_undone() {
            ExitStatus::Interrupted
        } else {
            ExitStatus::from_failures(self.failed > 0 || self.invalid_lines > 0)
        }
    }

    /// Whether the run stopped because the reader of its output (`-O -`) went
    /// away: then nothing is left to say, as curl and cat say nothing.
    pub fn output_closed(&self) -> bool {
        let closed = DownloadError::OutputClosed.reason();
        self.failures.iter().any(|group| group.reason == closed)
    }

    /// After Ctrl-C: whether any URL was stopped in flight or never started
    /// (or the rest of the input was never read).
    fn left_undone(&self) -> bool {
        self.stopped_in_flight > 0 || self.never_started != Some(0)
    }

    /// `downloaded 9 of 10 files, 1 failed; 1.2 MiB in 0.52 s (2.3 MiB/s)`.
    pub fn line(&self) -> String {
        let nothing_to_do = self.saved == 0
            && self.failed == 0
            && self.skipped > 0
            && self.invalid_lines == 0
            && !self.interrupted
            && self.stopped.is_none();
        let mut line = match nothing_to_do {
            true => format!("nothing to download: {} already complete", self.skipped),
            false => done_of("downloaded", self.saved, self.failed, "files"),
        };
        if self.resumed > 0 {
            line += &format!(", {} resumed", self.resumed);
        }
        if self.skipped > 0 && !nothing_to_do {
            line += &format!(", {} skipped (already complete)", self.skipped);
        }
        if self.retries > 0 {
            line += &format!(
                ", {} retr{}",
                self.retries,
                if self.retries == 1 { "y" } else { "ies" }
            );
        }
        if let Some(reason) = &self.stopped {
            line += &format!(", stopped because {reason}");
        }
        if self.interrupted && !self.left_undone() && self.stopped.is_none() {
            line += ", interrupted after the last download began: nothing left undone";
        } else if self.interrupted || self.stopped.is_some() {
            if self.interrupted {
                line += ", interrupted";
            }
            let mut left = Vec::new();
            if self.stopped_in_flight > 0 {
                left.push(format!(
                    "{} stopped in flight ({} left as .part: resume with -c)",
                    self.stopped_in_flight, self.parts_left
                ));
            }
            match self.never_started {
                Some(0) => {}
                Some(count) => left.push(format!("{count} never started")),
                None => left.push("the rest of the input never read".to_string()),
            }
            if !left.is_empty() {
                line += &format!(": {}", left.join(", "));
            }
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
            self.wall_seconds,
            human_bytes(self.bytes_per_second as u64)
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
}

/// `  (3 attempts)` when a download took more than one.
fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!("  ({attempts} attempts)")
    } else {
        String::new()
    }
}

impl Reporter {
    /// The reporter of a run of `strategy` with `jobs` in flight.
    pub fn new(console: Console, strategy: Strategy, jobs: usize) -> Reporter {
        Reporter {
            console,
            strategy,
            jobs,
            started: Instant::now(),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tally: Mutex::new(Tally::default()),
            live: live::Live::default(),
            records: Mutex::new(None),
        }
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Writes a record of every outcome to `path` from now on.
    pub fn write_records(
        &self,
        path: &std::path::Path,
        format: records::ReportFormat,
    ) -> io::Result<()> {
        let writer = records::RecordWriter::create(path, format)?;
        *crate::lock(&self.records) = Some(writer);
        Ok(())
    }

    /// Closes the report file, if any, with the summary; records that come after
    /// are not written.
    pub fn finish_records(&self, summary: &Summary) -> io::Result<()> {
        match crate::lock(&self.records).take() {
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

    /// When the batch started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since the batch started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records a finished download and prints its line.
    pub fn record(&self, outcome: &Outcome) {
        {
            let mut tally = crate::lock(&self.tally);
            tally.retries += u64::from(outcome.attempts.saturating_sub(1));
            tally.bytes += outcome.fetched;
            match &outcome.verdict {
                Verdict::Skipped(_) => tally.skipped += 1,
                Verdict::Saved(saved) => {
                    tally.saved += 1;
                    tally.resumed += u64::from(saved.resumed_from.is_some());
                }
                Verdict::Failed(error) => {
                    tally.failed += 1;
                    let reason = crate::redact::text(&error.reason()).into_owned();
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
                        group
                            .examples
                            .push(crate::redact::url(&outcome.job.url).into_owned());
                    }
                }
            }
            if !matches!(outcome.verdict, Verdict::Skipped(_)) {
                tally.latencies.record(outcome.elapsed);
            }
        }
        if outcome.error().is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        if let Some(writer) = crate::lock(&self.records).as_mut()
            && let Err(error) = writer.write(&records::Record::of(outcome))
        {
            tracing::warn!("cannot write the report: {error}");
        }
        let console = &self.console;
        let seconds = outcome.elapsed.as_secs_f64();
        match &outcome.verdict {
            Verdict::Skipped(complete) if console.shows_each_item() => {
                console.line(&format!(
                    "{} {}  already complete",
                    console.paint("skipped", Paint::Dim),
                    complete.name
                ));
            }
            Verdict::Saved(saved) if console.shows_each_item() => {
                let resumed = match saved.resumed_from {
                    Some(offset) => format!(
                        "  (resumed at {}: {} fetched)",
                        human_bytes(offset),
                        human_bytes(outcome.fetched)
                    ),
                    None => String::new(),
                };
                console.line(&format!(
                    "{}  {}  {}  {seconds:.3} s{}{resumed}",
                    console.paint("saved", Paint::Green),
                    saved.name,
                    human_bytes(saved.bytes),
                    attempts_note(outcome.attempts)
                ));
            }
            // The run's one message about a full disk stands for every
            // download it failed; a reader that went away (`-O - | head`)
            // wants nothing more said.
            Verdict::Failed(error) if error.stops_the_run().is_some() => {}
            Verdict::Failed(error)
                if console.shows_failures() && *error != DownloadError::OutputClosed =>
            {
                console.line(&format!(
                    "{} {} ({}): {error}  {seconds:.3} s{}",
                    console.paint("failed", Paint::Red),
                    outcome.job.url,
                    outcome.job.origin,
                    attempts_note(outcome.attempts)
                ));
            }
            _ => {}
        }
    }

    /// Records an input line that is not a URL we can download: in the
    /// report, and on the console while fewer than [`INVALID_LINES_SHOWN`]
    /// were printed.
    pub fn invalid(&self, line: &InvalidLine) {
        let count = {
            let mut tally = crate::lock(&self.tally);
            tally.invalid_lines += 1;
            tally.invalid_lines
        };
        if let Some(writer) = crate::lock(&self.records).as_mut()
            && let Err(error) = writer.write(&records::Record::invalid(line))
        {
            tracing::warn!("cannot write the report: {error}");
        }
        if count <= INVALID_LINES_SHOWN {
            self.console.error(&line.to_string());
        }
    }

    /// The line that counts the invalid input lines not printed, if any: to
    /// come before the summary, while the report is still open.
    pub fn invalid_lines_not_shown(&self) -> Option<String> {
        let hidden = crate::lock(&self.tally)
            .invalid_lines
            .checked_sub(INVALID_LINES_SHOWN)
            .filter(|&hidden| hidden > 0)?;
        let listed = match crate::lock(&self.records).is_some() {
            true => "the --report file lists every one",
            false => "--report FILE lists every one",
        };
        Some(format!(
            "{hidden} more invalid input line{} not shown ({listed})",
            plural(hidden)
        ))
    }

    /// The counts so far, with the wall time since the batch started.
    pub fn summary(&self, duplicates: u64) -> Summary {
        let tally = crate::lock(&self.tally);
        let mut failures: Vec<FailureGroup> = tally.failures.values().cloned().collect();
        failures.sort_by_key(|group| std::cmp::Reverse(group.count));
        let wall_seconds = self.started.elapsed().as_secs_f64();
        Summary {
            strategy: self.strategy,
            jobs: self.jobs,
            saved: tally.saved,
            skipped: tally.skipped,
            failed: tally.failed,
            retries: tally.retries,
            interrupted: false,
            stopped_in_flight: 0,
            parts_left: 0,
            never_started: None,
            stopped: None,
            invalid_lines: tally.invalid_lines,
            duplicates,
            bytes: tally.bytes,
            resumed: tally.resumed,
            wall_seconds,
            bytes_per_second: if wall_seconds > 0.0 {
                tally.bytes as f64 / wall_seconds
            } else {
                0.0
            },
            latency_seconds: tally.latencies.percentiles(),
            failures,
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
    fn the_histogram_gives_the_exact_percentiles_within_a_thousandth() {
        // Times from 50 microseconds to some 9 seconds, spread unevenly.
        let durations: Vec<Duration> = (0..20_000u64)
            .map(|index| Duration::from_nanos(50_000 + (index * index * 7919) % 9_000_000_000))
            .collect();
        let mut latencies = Latencies::default();
        for duration in &durations {
            latencies.record(*duration);
        }
        let exact = Percentiles::of(&durations);
        let estimated = latencies.percentiles();
        for (exact, estimated) in [
            (exact.p50, estimated.p50),
            (exact.p95, estimated.p95),
            (exact.p99, estimated.p99),
        ] {
            assert!(
                (estimated - exact).abs() <= exact / 1000.0,
                "{estimated} against {exact}"
            );
        }
        assert_eq!(Latencies::default().percentiles(), Percentiles::default());
        let mut one = Latencies::default();
        one.record(Duration::from_secs(2));
        assert!((one.percentiles().p99 - 2.0).abs() <= 0.002);
    }

    /// The summary's line begins with `start`, and its run exits with `status`.
    fn assert_summary(summary: &Summary, start: &str, status: ExitStatus) {
        let line = summary.line();
        assert!(line.starts_with(start), "{line}");
        assert_eq!(summary.exit_status(), status);
    }

    #[test]
    fn summary_line_and_exit_code() {
        let summary = Summary {
            strategy: Strategy::Async,
            jobs: 16,
            saved: 9,
            skipped: 0,
            retries: 0,
            interrupted: false,
            stopped_in_flight: 0,
            parts_left: 0,
            never_started: None,
            stopped: None,
            failed: 1,
            invalid_lines: 0,
            duplicates: 0,
            bytes: 2048,
            resumed: 0,
            wall_seconds: 0.5,
            bytes_per_second: 4096.0,
            latency_seconds: Percentiles::default(),
            failures: vec![FailureGroup {
                reason: "HTTP 404 Not Found".to_string(),
                count: 1,
                examples: vec!["http://h/x".to_string()],
            }],
        };
        assert_summary(
            &summary,
            "downloaded 9 of 10 files, 1 failed; 2.0 KiB in 0.50 s",
            ExitStatus::Failed,
        );
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
        assert_eq!(clean.exit_status(), ExitStatus::Ok);
        let json = serde_json::to_string(&clean).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), clean);
        let stopped = Summary {
            interrupted: true,
            stopped_in_flight: 2,
            parts_left: 1,
            never_started: Some(30),
            ..clean.clone()
        };
        assert_summary(
            &stopped,
            "downloaded 9 of 9 files, interrupted: 2 stopped in flight \
             (1 left as .part: resume with -c), 30 never started;",
            ExitStatus::Interrupted,
        );
        // Ctrl-C came, but every download finished in the grace period.
        let finished = Summary {
            stopped_in_flight: 0,
            parts_left: 0,
            never_started: Some(0),
            ..stopped.clone()
        };
        assert_summary(
            &finished,
            "downloaded 9 of 9 files, interrupted after the last download began: nothing left undone;",
            ExitStatus::Ok,
        );
        let full = Summary {
            interrupted: false,
            stopped_in_flight: 0,
            parts_left: 0,
            never_started: Some(12),
            stopped: Some("/data is full (no space left on the device)".to_string()),
            ..finished.clone()
        };
        assert_summary(
            &full,
            "downloaded 9 of 9 files, stopped because /data is full (no space left on the device): 12 never started;",
            ExitStatus::Failed,
        );
        let failed = Summary {
            failed: 1,
            ..finished
        };
        assert_eq!(failed.exit_status(), ExitStatus::Failed);
        let unread = Summary {
            stopped_in_flight: 0,
            never_started: None,
            ..stopped
        };
        assert!(
            unread
                .line()
                .contains("interrupted: the rest of the input never read;")
        );
    }
}
