//! What went wrong with one URL, in the words the per-file line prints, and how
//! each client's errors are turned into those words.

use std::error::Error as StdError;
use std::io;

use serde::{Deserialize, Serialize};

use super::Settings;
use super::transfer::parse_retry_after;

/// What went wrong with one URL, in the words the per-file line prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DownloadError {
    #[error("HTTP {status} {reason}")]
    Http {
        status: u16,
        reason: String,
        /// Seconds the server asked us to wait (`Retry-After`).
        retry_after: Option<u64>,
    },
    #[error("timed out after {seconds} s")]
    TimedOut { seconds: u64 },
    #[error("took longer than --max-time ({} s)", seconds(*millis))]
    MaxTime { millis: u64 },
    #[error("slower than --speed-limit ({limit} bytes/s) for {} s", seconds(*millis))]
    TooSlow { limit: u64, millis: u64 },
    #[error("cannot load the trusted certificates: {0}")]
    Trust(String),
    #[error("connection refused")]
    ConnectionRefused,
    #[error("connection reset")]
    ConnectionReset,
    #[error("body cut short: {received} of {expected} bytes")]
    Truncated { received: u64, expected: u64 },
    #[error("could not resolve host")]
    Resolve,
    #[error("too many redirects (a loop, or more than 10)")]
    TooManyRedirects,
    #[error("redirected to a {scheme}: URL, which grab does not fetch")]
    RedirectScheme { scheme: String },
    #[error("redirected to an invalid location: {location}")]
    BadRedirect { location: String },
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not an accepted type: {found}")]
    NotAccepted { found: String },
    #[error("opted out by X-Robots-Tag: {directive}")]
    OptedOut { directive: String },
    #[error("the server answered a resumed request with a different range")]
    RangeMismatch,
    #[error("{0}")]
    Network(String),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("{algorithm} checksum mismatch: expected {expected}, got {found}")]
    ChecksumMismatch {
        algorithm: String,
        expected: String,
        found: String,
    },
    /// `-N`: the server's copy is the one already complete (a 304); an
    /// outcome, turned into a skip, never a failure.
    #[error("not modified")]
    NotModified,
    /// The reader of the stream the body went to (`-O -`) went away.
    #[error("the output was closed before the download ended")]
    OutputClosed,
    #[error("worker process died")]
    WorkerDied,
    #[error("no worker process: {0}")]
    WorkerStart(String),
}

/// Milliseconds as seconds, without trailing zeros: `2`, `0.5`.
fn seconds(millis: u64) -> String {
    (millis as f64 / 1000.0).to_string()
}

impl DownloadError {
    /// The reason without the particulars (sizes, paths), for grouping failures.
    pub fn reason(&self) -> String {
        match self {
            DownloadError::Truncated { .. } => "body cut short".to_string(),
            DownloadError::Write { .. } => "cannot write the file".to_string(),
            DownloadError::NotAccepted { .. } => "not an accepted type".to_string(),
            DownloadError::BadRedirect { .. } => "redirected to an invalid location".to_string(),
            DownloadError::MaxTime { .. } => "took longer than --max-time".to_string(),
            DownloadError::TooSlow { .. } => "slower than --speed-limit".to_string(),
            DownloadError::OptedOut { .. } => "opted out by X-Robots-Tag".to_string(),
            DownloadError::ChecksumMismatch { algorithm, .. } => {
                format!("{algorithm} checksum mismatch")
            }
            other => other.to_string(),
        }
    }

    /// Whether another attempt may succeed: network faults and the statuses that
    /// mean "not now". Everything else (other 4xx, limits, local errors) is final.
    pub fn is_transient(&self) -> bool {
        match self {
            DownloadError::Http { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            // As curl's --retry: a transfer cut for time or speed may go
            // better on the next attempt, which resumes it.
            DownloadError::TimedOut { .. }
            | DownloadError::MaxTime { .. }
            | DownloadError::TooSlow { .. }
            | DownloadError::ConnectionRefused
            | DownloadError::ConnectionReset
            | DownloadError::Truncated { .. }
            | DownloadError::RangeMismatch
            | DownloadError::Network(_) => true,
            // A name that does not resolve rarely does a second later; three
            // retries only triple the wait for the error.
            DownloadError::Resolve => false,
            _ => false,
        }
    }
}

pub(super) fn http_error(status: u16, retry_after: Option<&str>) -> DownloadError {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("")
        .to_string();
    DownloadError::Http {
        status,
        reason,
        retry_after: retry_after.and_then(parse_retry_after),
    }
}

/// Reasons from an I/O error kind, where the kind says enough.
pub(super) fn from_io_kind(kind: io::ErrorKind, settings: &Settings) -> Option<DownloadError> {
    use io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => DownloadError::ConnectionRefused,
        ConnectionReset | ConnectionAborted | BrokenPipe => DownloadError::ConnectionReset,
        TimedOut | WouldBlock => DownloadError::TimedOut {
            seconds: settings.read_timeout().as_secs(),
        },
        _ => return None,
    })
}

/// How the standard library words a failed name lookup (getaddrinfo's
/// error), which both clients' resolvers pass on.
const LOOKUP_FAILED: &str = "failed to lookup address information";

/// [`DownloadError::Resolve`] when a failed name lookup is in an error's
/// chain of sources.
pub(super) fn resolve_failure(error: &(dyn StdError + 'static)) -> Option<DownloadError> {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.to_string().starts_with(LOOKUP_FAILED) {
            return Some(DownloadError::Resolve);
        }
        current = error.source();
    }
    None
}

/// The first I/O error kind in an error's chain of sources.
pub(super) fn io_kind_in_chain(error: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            return Some(io_error.kind());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn a_failed_name_lookup_anywhere_in_the_chain_is_resolve() {
        #[derive(Debug, thiserror::Error)]
        #[error("dns error")]
        struct Connect(#[source] io::Error);
        let lookup =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(
            resolve_failure(&Connect(lookup)),
            Some(DownloadError::Resolve)
        );
        assert_eq!(resolve_failure(&Connect(io::Error::other("reset"))), None);
    }

    pub fn http(status: u16, retry_after: Option<u64>) -> DownloadError {
        DownloadError::Http {
            status,
            reason: String::new(),
            retry_after,
        }
    }

    #[test]
    fn transient_and_permanent() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(http(status, None).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 501] {
            assert!(!http(status, None).is_transient(), "{status}");
        }
        assert!(DownloadError::ConnectionReset.is_transient());
        assert!(
            DownloadError::Truncated {
                received: 1,
                expected: 2
            }
            .is_transient()
        );
        assert!(!DownloadError::TooLarge { limit: 1 }.is_transient());
        assert!(!DownloadError::Resolve.is_transient());
        assert!(
            !DownloadError::NotAccepted {
                found: "text/html".into()
            }
            .is_transient()
        );
    }
}
