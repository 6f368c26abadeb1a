//! What the user reads of a filter batch: a line on stderr as each image
//! finishes (with its time), and the summary that counts images processed and
//! failed with the batch's total time. Every strategy reports through the one
//! [`Reporter`] of its batch, and every line goes through the run's [`Console`]
//! (above the download bar, under `grab get --filter`).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Outcome;
use crate::console::{Console, done_of, human_bytes};
use crate::exit::ExitStatus;

#[derive(Default)]
struct Tally {
    processed: u64,
    failed: u64,
    skipped: u64,
    pixels: u64,
    bytes: u64,
}

/// The shared record of a filter batch.
pub struct Reporter {
    console: Console,
    started: Instant,
    tally: Mutex<Tally>,
}

/// The counts of a finished filter batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub processed: u64,
    pub failed: u64,
    /// Not filtered, and rightly so: grab's own outputs, or images whose
    /// filtered copy is there already.
    pub skipped: u64,
    /// Input pixels of the images processed.
    pub pixels: u64,
    /// Bytes written.
    pub bytes: u64,
    pub wall: Duration,
}

impl Summary {
    /// Ok when every image was filtered, Failed when any failed.
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::from_failures(self.failed > 0)
    }

    /// `filtered 19 of 20 images, 1 failed; 36.5 megapixels in 0.52 s (70.2 MP/s), 4.1 MiB written`.
    pub fn line(&self) -> String {
        let mut line = done_of("filtered", self.processed, self.failed, "images");
        if self.skipped > 0 {
            line += &format!(", {} skipped", self.skipped);
        }
        let seconds = self.wall.as_secs_f64();
        let megapixels = self.pixels as f64 / 1e6;
        let rate = if seconds > 0.0 {
            megapixels / seconds
        } else {
            0.0
        };
        line + &format!(
            "; {megapixels:.1} megapixels in {seconds:.2} s ({rate:.1} MP/s), {} written",
            human_bytes(self.bytes)
        )
    }
}

impl Reporter {
    pub fn new(console: Console) -> Reporter {
        Reporter {
            console,
            started: Instant::now(),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Records a finished image and prints its line.
    pub fn record(&self, outcome: &Outcome) {
        {
            let mut tally = crate::lock(&self.tally);
            match &outcome.result {
                Ok(filtered) => {
                    tally.processed += 1;
                    tally.pixels += u64::from(filtered.width) * u64::from(filtered.height);
                    tally.bytes += filtered.bytes;
                }
                Err(_) => tally.failed += 1,
            }
        }
        let seconds = outcome.elapsed.as_secs_f64();
        match &outcome.result {
            Ok(filtered) if self.console.shows_each_item() => {
                let output = outcome.job.output.file_name().unwrap_or_default();
                self.console.line(&format!(
                    "filtered  {} -> {}  {}x{}  {seconds:.3} s",
                    outcome.job.input.display(),
                    output.to_string_lossy(),
                    filtered.width,
                    filtered.height,
                ));
            }
            Err(error) if self.console.shows_failures() => {
                self.console
                    .line(&format!("failed    {error}  {seconds:.3} s"));
            }
            _ => {}
        }
    }

    /// Records an image left alone, `reason` saying why, and prints its line.
    pub fn skip(&self, path: &Path, reason: &str) {
        crate::lock(&self.tally).skipped += 1;
        if self.console.shows_each_item() {
            self.console
                .line(&format!("skipped   {}  {reason}", path.display()));
        }
    }

    /// The counts so far, with the wall time since the batch started.
    pub fn summary(&self) -> Summary {
        let tally = crate::lock(&self.tally);
        Summary {
            processed: tally.processed,
            failed: tally.failed,
            skipped: tally.skipped,
            pixels: tally.pixels,
            bytes: tally.bytes,
            wall: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_and_exit_code() {
        let summary = Summary {
            processed: 19,
            failed: 1,
            skipped: 0,
            pixels: 36_480_000,
            bytes: 4 * 1024 * 1024,
            wall: Duration::from_millis(500),
        };
        assert_eq!(
            summary.line(),
            "filtered 19 of 20 images, 1 failed; 36.5 megapixels in 0.50 s (73.0 MP/s), 4.0 MiB written"
        );
        assert_eq!(summary.exit_status(), ExitStatus::Failed);
        let clean = Summary {
            failed: 0,
            ..summary
        };
        assert_eq!(clean.exit_status(), ExitStatus::Ok);
        assert!(clean.line().starts_with("filtered 19 of 19 images;"));
        let skipping = Summary {
            skipped: 3,
            ..clean
        };
        assert!(
            skipping
                .line()
                .starts_with("filtered 19 of 19 images, 3 skipped;")
        );
    }
}
