//! What one download asks for: the URL, where it came from (for messages),
//! the name the input gave, and what an earlier run left to resume or replace.
//! Every command that downloads (`get`, `dataset`, the queue) builds these;
//! none of it knows which command did.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// Where a URL came from, for messages: `urls.txt:12`, `<stdin>:3`, `argument 2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source == ARGUMENT_SOURCE {
            write!(formatter, "argument {}", self.line)
        } else {
            write!(formatter, "{}:{}", self.source, self.line)
        }
    }
}

/// The source name of URLs given as arguments.
pub const ARGUMENT_SOURCE: &str = "<argument>";

/// One URL to download.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub url: Url,
    /// The file name the input asked for, if any (still to be sanitised).
    pub name: Option<String>,
    pub origin: Origin,
    /// Set by the batch when an earlier run left this URL's file or part file.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// Its place, in input order, among the batch's new downloads sharing its
    /// base name (see [`crate::fs::names::NameRegistry::reserve`]); set by the planner.
    #[serde(default)]
    pub rank: Option<u64>,
    /// When the batch queued it, from the batch's start.
    #[serde(default)]
    pub queued_at: std::time::Duration,
}

/// What the batch decided from the manifest for a URL seen before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The name, already claimed for this job.
    pub name: String,
    /// Continue the part file from where it ends.
    pub resume: Option<Resume>,
    /// Replace the finished file at the name (`--force`).
    pub replace: bool,
}

/// Where a part file ends, and the validator that proves the server's file has not
/// changed since (ETag, else Last-Modified) for `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub offset: u64,
    pub validator: String,
}
