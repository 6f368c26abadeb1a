//! The image work as an engine task: a downloaded body in, a finished sample
//! out (its image encoded, or the reason it has none). It runs on the engine's
//! `threads` loop, one thread per core, fed through a bounded queue while
//! downloads are still in flight.

use std::time::Instant;

use super::input::Row;
use super::sample::{Sample, Status};
use crate::engine::{Task, Work};
use crate::image::resize::{ImageSettings, process};

/// One body to turn into a sample.
pub struct ImageJob {
    pub row: Row,
    pub key: String,
    pub body: Vec<u8>,
    pub sha256: String,
    pub download_seconds: f64,
}

/// Decodes, checks, resizes and encodes with the run's settings.
pub struct Images {
    pub settings: ImageSettings,
}

impl Work for Images {
    type Job = ImageJob;
    /// The sample and its image bytes (empty when it has none).
    type Outcome = (Sample, Vec<u8>);
}

impl Task for Images {
    fn run(&self, job: ImageJob, _worker: &str) -> (Sample, Vec<u8>) {
        let started = Instant::now();
        let result = process(&job.body, &self.settings);
        let process_seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(image) => {
                let sample = Sample {
                    key: job.key,
                    url: job.row.url,
                    caption: job.row.caption,
                    saved: job.row.saved,
                    status: Status::Success,
                    error_message: None,
                    reason: None,
                    width: Some(image.width),
                    height: Some(image.height),
                    original_width: Some(image.original_width),
                    original_height: Some(image.original_height),
                    sha256: Some(job.sha256),
                    download_seconds: job.download_seconds,
                    process_seconds,
                };
                (sample, image.bytes)
            }
            Err(error) => {
                let mut sample = Sample::failed(
                    &job.row,
                    job.key,
                    Status::FailedToResize,
                    error.to_string(),
                    error.reason().to_string(),
                );
                sample.sha256 = Some(job.sha256);
                sample.download_seconds = job.download_seconds;
                sample.process_seconds = process_seconds;
                (sample, Vec::new())
            }
        }
    }
}
