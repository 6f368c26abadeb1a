//! The image work as an engine task: a downloaded body in, a finished sample
//! out (its image encoded, or the reason it has none). It runs on the engine's
//! `threads` loop, one thread per core, fed through a bounded queue while
//! downloads are still in flight. In img2dataset's order: the hash to verify
//! first (a mismatch is a failed download), then the image (its boxes
//! blurred), then, for a success, the hash and the EXIF of the bytes as
//! downloaded.

use std::time::Instant;

use super::input::Row;
use super::recipe::{HASH_MISMATCH, HashType, Recipe};
use super::sample::{Sample, Status};
use crate::engine::budget::Reservation;
use crate::engine::{Task, Work};
use crate::image::resize::{ImageSettings, Processed, process_blurring};

/// One body to turn into a sample.
pub struct ImageJob {
    pub row: Row,
    pub key: String,
    pub body: Vec<u8>,
    /// The body's SHA-256, computed as it arrived.
    pub sha256: String,
    pub download_seconds: f64,
    /// The body's bytes in the run's body budget, given back when the job
    /// is dropped, its sample done.
    pub _budget: Reservation,
}

/// Decodes, checks, resizes and encodes with the run's settings.
pub struct Images {
    pub settings: ImageSettings,
    pub recipe: Recipe,
}

impl Work for Images {
    type Job = ImageJob;
    /// The sample and its image bytes (empty when it has none).
    type Outcome = (Sample, Vec<u8>);
}

impl Task for Images {
    fn run(&self, job: ImageJob, _worker: &str) -> (Sample, Vec<u8>) {
        let started = Instant::now();
        let recipe = &self.recipe;
        let failed = |status: Status, error: String, reason: String| {
            let mut sample = Sample::failed(&job.row, job.key.clone(), status, error, reason);
            sample.download_seconds = job.download_seconds;
            sample.process_seconds = started.elapsed().as_secs_f64();
            (sample, Vec::new())
        };
        if recipe.verified(&job.row.saved, &job.body) == Some(false) {
            return failed(
                Status::FailedToDownload,
                HASH_MISMATCH.to_string(),
                HASH_MISMATCH.to_string(),
            );
        }
        // As img2dataset: no image at all in this mode, so no sizes either.
        let image = if recipe.disable_all_reencoding {
            None
        } else {
            let boxes = match recipe.boxes(&job.row.saved) {
                Ok(boxes) => boxes,
                Err(error) => {
                    let reason = "not a list of boxes".to_string();
                    return failed(Status::FailedToResize, error, reason);
                }
            };
            match process_blurring(&job.body, &self.settings, &boxes) {
                Ok(processed) => Some(processed),
                Err(error) => {
                    let reason = error.reason().to_string();
                    return failed(Status::FailedToResize, error.to_string(), reason);
                }
            }
        };
        let hash = recipe.compute_hash.map(|hash| match hash {
            HashType::Sha256 => job.sha256.clone(),
            other => other.digest(&job.body),
        });
        let exif = recipe
            .extract_exif
            .then(|| crate::image::exif::tags_json(&job.body));
        let (bytes, sizes) = match image {
            Some(Processed { bytes, sizes }) => (bytes, Some(sizes)),
            None => (job.body, None),
        };
        let sample = Sample {
            key: job.key,
            url: job.row.url,
            caption: job.row.caption,
            saved: job.row.saved,
            status: Status::Success,
            error_message: None,
            reason: None,
            sizes,
            hash,
            exif,
            download_seconds: job.download_seconds,
            process_seconds: started.elapsed().as_secs_f64(),
        };
        (sample, bytes)
    }
}
