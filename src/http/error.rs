//! What went wrong with one URL, in the words the per-file line prints, and how
//! each client's errors are turned into those words.

use std::error::Error as StdError;
use std::io;

use serde::{Deserialize, Serialize};

use super::Settings;
use super::resolve::NotResolved;
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
    /// The server's certificate failed the check: final, as another attempt
    /// meets the same certificate.
    #[error("the server's certificate is not trusted: {0}")]
    Certificate(String),
    #[error("connection refused")]
    ConnectionRefused,
    /// The proxy the request went to could not be reached: the user fixes
    /// the proxy, not the URL.
    #[error("the proxy {proxy} failed: {failure}")]
    Proxy {
        proxy: String,
        failure: Box<DownloadError>,
    },
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
    /// The disk (or the user's quota) is full: no other file can be written
    /// either, so this error stops the run ([`DownloadError::stops_the_run`]).
    #[error("cannot write {path}: {message}")]
    StorageFull {
        path: String,
        /// The output folder, which the run's message names.
        folder: String,
        message: String,
    },
    /// No file descriptor was left for a moment: a reason to wait for one,
    /// never a failed download unless it lasts (see `OUT_OF_FILES_PATIENCE`).
    #[error("too many open files: {0}")]
    TooManyOpenFiles(String),
    #[error("{algorithm} checksum mismatch: expected {expected}, got {found}")]
    ChecksumMismatch {
        algorithm: String,
        expected: String,
        found: String,
    },
    /// `--compressed`: a body that does not decode, or in an encoding grab
    /// does not know.
    #[error("{0}")]
    Decode(String),
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
            DownloadError::StorageFull { message, .. } => message.clone(),
            DownloadError::NotAccepted { .. } => "not an accepted type".to_string(),
            DownloadError::BadRedirect { .. } => "redirected to an invalid location".to_string(),
            DownloadError::MaxTime { .. } => "took longer than --max-time".to_string(),
            DownloadError::TooSlow { .. } => "slower than --speed-limit".to_string(),
            DownloadError::OptedOut { .. } => "opted out by X-Robots-Tag".to_string(),
            DownloadError::ChecksumMismatch { algorithm, .. } => {
                format!("{algorithm} checksum mismatch")
            }
            DownloadError::Proxy { proxy, failure } => {
                format!("the proxy {proxy} failed: {}", failure.reason())
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
            | DownloadError::TooManyOpenFiles(_)
            | DownloadError::Network(_) => true,
            // A name that does not resolve rarely does a second later; three
            // retries only triple the wait for the error.
            DownloadError::Resolve => false,
            DownloadError::Proxy { failure, .. } => failure.is_transient(),
            _ => false,
        }
    }

    /// Why the whole run must stop, when this error is one that every other
    /// download would meet too: a full disk or quota. `FOLDER is full (no
    /// space left on the device)`.
    pub fn stops_the_run(&self) -> Option<String> {
        match self {
            DownloadError::StorageFull {
                folder, message, ..
            } => Some(format!("{folder} is full ({message})")),
            _ => None,
        }
    }

    /// Whether the failure was on this machine (a file that could not be
    /// written), which another mirror would not change.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            DownloadError::Write { .. } | DownloadError::StorageFull { .. }
        )
    }

    /// A failed write of `path` in the output folder `folder`: a full disk
    /// and a lack of descriptors are told apart from other write errors.
    pub fn writing(path: &std::path::Path, folder: &std::path::Path, error: io::Error) -> Self {
        if let Some(message) = storage_full(&error) {
            return DownloadError::StorageFull {
                path: path.display().to_string(),
                folder: folder.display().to_string(),
                message: message.to_string(),
            };
        }
        if out_of_files(&error) {
            return DownloadError::TooManyOpenFiles(path.display().to_string());
        }
        DownloadError::Write {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }
}

/// How long one download waits in all for a file descriptor (retrying each
/// time one is refused) before it fails: long enough for downloads in flight
/// to finish and give theirs back.
pub const OUT_OF_FILES_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// What a full disk or quota is called in messages, when `error` is one
/// (`ENOSPC`, `EDQUOT`): the class of write error that stops a run, for every
/// command (downloads, dataset spools and shards).
pub fn storage_full(error: &io::Error) -> Option<&'static str> {
    match error.kind() {
        io::ErrorKind::StorageFull => Some("no space left on the device"),
        io::ErrorKind::QuotaExceeded => Some("disk quota exceeded"),
        _ => None,
    }
}

/// Whether the process (or the system) ran out of file descriptors
/// (`EMFILE`, `ENFILE`).
pub fn out_of_files(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            error.raw_os_error(),
            Some(nix::libc::EMFILE | nix::libc::ENFILE)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// [`DownloadError::TooManyOpenFiles`] when an error's chain holds
/// [`out_of_files`]; clients that keep only the message say it in words.
pub(super) fn out_of_files_in_chain(error: &(dyn StdError + 'static)) -> Option<DownloadError> {
    let mut current = Some(error);
    while let Some(error) = current {
        let io_error = error.downcast_ref::<io::Error>();
        if io_error.is_some_and(out_of_files) || error.to_string().contains("Too many open files") {
            return Some(DownloadError::TooManyOpenFiles(error.to_string()));
        }
        current = error.source();
    }
    None
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
            seconds: settings.timeouts.read().as_secs(),
        },
        _ => return None,
    })
}

/// How the standard library words a failed name lookup (getaddrinfo's
/// error), which both clients' resolvers pass on.
const LOOKUP_FAILED: &str = "failed to lookup address information";

/// [`DownloadError::Resolve`] when a failed name lookup is in an error's
/// chain of sources: grab's resolver's (which ureq carries inside an
/// `io::Error`), or getaddrinfo's.
pub(super) fn resolve_failure(error: &(dyn StdError + 'static)) -> Option<DownloadError> {
    let mut current = Some(error);
    while let Some(error) = current {
        let carried = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<NotResolved>());
        if carried || error.is::<NotResolved>() || error.to_string().starts_with(LOOKUP_FAILED) {
            tracing::debug!(%error, "name lookup failed");
            return Some(DownloadError::Resolve);
        }
        current = error.source();
    }
    None
}

/// [`DownloadError::Certificate`] when a refused server certificate is in an
/// error's chain of sources (rustls's error, which both clients carry, on
/// its own or inside `io::Error`s, which hyper nests two deep).
pub(super) fn certificate_failure(error: &(dyn StdError + 'static)) -> Option<DownloadError> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(rustls::Error::InvalidCertificate(reason)) = rustls_error_in(error) {
            return Some(DownloadError::Certificate(certificate_words(reason)));
        }
        current = error.source();
    }
    None
}

/// `error` as rustls's, or the rustls error an `io::Error` (or one inside
/// it) carries: `io::Error::source` skips the error it carries.
fn rustls_error_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = error.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    let carried: &'a (dyn StdError + 'static) = error.downcast_ref::<io::Error>()?.get_ref()?;
    rustls_error_in(carried)
}

/// Why a certificate was refused, in words, with what to do where there is
/// something to do.
pub(super) fn certificate_words(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError::*;
    match reason {
        UnknownIssuer => {
            "its issuer is not among the trusted roots (--cacert adds one; -k skips the check)"
                .into()
        }
        NotValidForName | NotValidForNameContext { .. } => "it is for another host name".into(),
        Expired | ExpiredContext { .. } => "it has expired".into(),
        NotValidYet | NotValidYetContext { .. } => "it is not valid yet".into(),
        Revoked => "it was revoked".into(),
        BadSignature => "its signature does not verify".into(),
        // webpki refuses a CA certificate served as the server's own, which
        // is how `openssl req -x509` makes a self-signed one by default.
        other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "it is a CA certificate (basicConstraints CA:TRUE) served as the server's own; \
             make the server's with CA:FALSE, or use -k"
                .into()
        }
        other => format!("{other:?}"),
    }
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

    #[test]
    fn a_full_disk_stops_the_run_and_a_lack_of_descriptors_is_waited_out() {
        let folder = std::path::Path::new("/data/out");
        let path = folder.join("a.bin.part");
        let full =
            DownloadError::writing(&path, folder, io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(
            full.stops_the_run().as_deref(),
            Some("/data/out is full (no space left on the device)")
        );
        assert!(!full.is_transient() && full.is_local());
        let quota =
            DownloadError::writing(&path, folder, io::Error::from(io::ErrorKind::QuotaExceeded));
        assert!(quota.stops_the_run().unwrap().contains("quota"));
        let denied = DownloadError::writing(
            &path,
            folder,
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(denied.stops_the_run(), None);
        assert!(matches!(denied, DownloadError::Write { .. }));
        #[cfg(unix)]
        {
            let emfile = io::Error::from_raw_os_error(nix::libc::EMFILE);
            let error = DownloadError::writing(&path, folder, emfile);
            assert!(
                matches!(error, DownloadError::TooManyOpenFiles(_)),
                "{error:?}"
            );
            assert!(error.is_transient() && error.stops_the_run().is_none());
            #[derive(Debug, thiserror::Error)]
            #[error("connect failed")]
            struct Connect(#[source] io::Error);
            let socket = Connect(io::Error::from_raw_os_error(nix::libc::EMFILE));
            assert!(out_of_files_in_chain(&socket).is_some());
            assert!(out_of_files_in_chain(&Connect(io::Error::other("reset"))).is_none());
        }
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
