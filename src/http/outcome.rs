//! What one download ended with, as every strategy reports it: saved, skipped
//! (found complete from an earlier run, nothing fetched) or failed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DownloadError;
use crate::http::request::Job;

/// A file this run saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// What the response said of the body: `None` for a file found
    /// committed after its worker process died, before it could report it.
    pub reply: Option<Reply>,
    /// The body itself, when the context kept it in memory (never sent between
    /// processes: a worker process saves to a file). Boxed, so an outcome
    /// stays small where no body is kept.
    #[serde(skip)]
    pub body: Option<Box<Body>>,
    /// Bytes an earlier run had written that this file kept (`-c`): the file
    /// was resumed, and only `bytes - resumed_from` were fetched for it.
    #[serde(default)]
    pub resumed_from: Option<u64>,
}

impl Saved {
    /// A file found committed (in the manifest, whole on disk) whose response
    /// was never reported: a worker process died after its rename, or a queue
    /// job came back after its file was saved. Nothing of the response is known.
    pub fn found(name: String, bytes: u64, sha256: String) -> Saved {
        Saved {
            name,
            bytes,
            sha256,
            reply: None,
            body: None,
            resumed_from: None,
        }
    }
}

/// What a response said of the body it brought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    /// Where the body came from, after redirects.
    pub final_url: Option<String>,
}

/// A body kept in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body(pub Vec<u8>);

/// A file an earlier run saved, still whole on disk: not fetched again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complete {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// How a job ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Saved(Saved),
    Skipped(Complete),
    Failed(DownloadError),
}

/// The result of one job, as every strategy reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub job: Job,
    pub verdict: Verdict,
    pub elapsed: Duration,
    /// Requests made, retries included.
    pub attempts: u32,
    /// From the job's start to the last attempt's response head.
    pub first_byte: Option<Duration>,
    /// Who ran it (`thread-3`, `process-2`, `task-17`), set by the batch.
    #[serde(default)]
    pub worker: String,
    /// When a worker took the job, from the batch's start; set by the batch.
    #[serde(default)]
    pub started_at: Duration,
    /// Body bytes received for this job in this run, over all its attempts
    /// (kept or not): the same bytes the live view counts as they arrive.
    #[serde(default)]
    pub fetched: u64,
}

impl Outcome {
    fn new(job: Job, verdict: Verdict, attempts: u32) -> Outcome {
        Outcome {
            job,
            verdict,
            elapsed: Duration::ZERO,
            attempts,
            first_byte: None,
            worker: String::new(),
            started_at: Duration::ZERO,
            fetched: 0,
        }
    }

    /// A job whose file an earlier run completed.
    pub fn skipped(job: Job, complete: Complete) -> Outcome {
        Outcome::new(job, Verdict::Skipped(complete), 0)
    }

    /// A job whose file was saved, as found on disk rather than reported by
    /// the download (its worker died between committing and reporting).
    pub fn recovered(job: Job, saved: Saved, attempts: u32) -> Outcome {
        Outcome::new(job, Verdict::Saved(saved), attempts)
    }

    /// A job that failed after `attempts` requests (0: none could be made).
    pub fn failed(job: Job, error: DownloadError, attempts: u32) -> Outcome {
        Outcome::new(job, Verdict::Failed(error), attempts)
    }

    /// The file this job saved, if it did.
    pub fn saved(&self) -> Option<&Saved> {
        match &self.verdict {
            Verdict::Saved(saved) => Some(saved),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<&DownloadError> {
        match &self.verdict {
            Verdict::Failed(error) => Some(error),
            _ => None,
        }
    }
}
