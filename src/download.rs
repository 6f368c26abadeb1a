//! One download, the part every strategy shares: status check, naming, streaming
//! to a `.part` file, size and type limits, length check, commit, manifest, timing,
//! retries, and turning client errors into the reasons users read. The strategies
//! differ only in how they run many of these at once; the blocking (ureq) and async
//! (reqwest) drivers below are thin loops around the same [`Transfer`] and the same
//! retry decision ([`retry_delay`]).

use std::error::Error as StdError;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::input::{Job, Resume};
use crate::manifest::{self, Entry, Manifest};
use crate::naming::{self, NameRegistry};
use crate::output::PartFile;

/// How downloads behave, whatever the strategy. Sent to worker processes as is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub output_dir: PathBuf,
    pub connect_timeout: Duration,
    /// A transfer that receives nothing for this long is abandoned.
    pub idle_timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// The base of the exponential backoff between attempts.
    pub retry_wait: Duration,
    /// Larger responses are abandoned.
    pub max_size: Option<u64>,
    /// MIME patterns a response must match (Content-Type and first bytes); empty
    /// accepts anything.
    pub accept: Vec<String>,
    /// Name files as the server's Content-Disposition suggests.
    pub content_disposition: bool,
}

impl Settings {
    /// The defaults of `grab get`, saving into `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            output_dir: output_dir.into(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            retries: 3,
            retry_wait: Duration::from_secs(1),
            max_size: None,
            accept: Vec::new(),
            content_disposition: false,
        }
    }

    pub fn user_agent() -> String {
        format!("grab/{}", env!("CARGO_PKG_VERSION"))
    }
}

/// The longest exponential backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not an accepted type: {found}")]
    NotAccepted { found: String },
    #[error("the server answered a resumed request with a different range")]
    RangeMismatch,
    #[error("{0}")]
    Network(String),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("worker process died")]
    WorkerDied,
}

impl DownloadError {
    /// The reason without the particulars (sizes, paths), for grouping failures.
    pub fn reason(&self) -> String {
        match self {
            DownloadError::Truncated { .. } => "body cut short".to_string(),
            DownloadError::Write { .. } => "cannot write the file".to_string(),
            DownloadError::NotAccepted { .. } => "not an accepted type".to_string(),
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
            DownloadError::TimedOut { .. }
            | DownloadError::ConnectionRefused
            | DownloadError::ConnectionReset
            | DownloadError::Truncated { .. }
            | DownloadError::RangeMismatch
            | DownloadError::Network(_) => true,
            _ => false,
        }
    }
}

/// How long to wait before attempt `attempts + 1`, or `None` to give up: full-jitter
/// exponential backoff (a random wait up to `retry_wait x 2^(attempts-1)`, capped),
/// but never less than a `Retry-After` the server sent (itself capped).
pub fn retry_delay(settings: &Settings, attempts: u32, error: &DownloadError) -> Option<Duration> {
    if attempts > settings.retries || !error.is_transient() {
        return None;
    }
    let ceiling = settings
        .retry_wait
        .saturating_mul(1 << (attempts - 1).min(16))
        .min(MAX_BACKOFF);
    let jittered = ceiling.mul_f64(fastrand::f64());
    match error {
        DownloadError::Http {
            retry_after: Some(seconds),
            ..
        } => Some(jittered.max(Duration::from_secs(*seconds).min(MAX_RETRY_AFTER))),
        _ => Some(jittered),
    }
}

/// A file saved (or, `skipped`, found complete from an earlier run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub bytes: u64,
    pub status: u16,
    pub content_type: Option<String>,
    pub sha256: String,
    /// Where the body came from, after redirects.
    pub final_url: Option<String>,
    pub skipped: bool,
}

/// The result of one job, as every strategy reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<Saved, DownloadError>,
    pub elapsed: Duration,
    /// Requests made, retries included.
    pub attempts: u32,
    /// From the job's start to the last attempt's response head.
    pub first_byte: Option<Duration>,
    /// Who ran it (`thread-3`, `process-2`, `task-17`), set by the strategy.
    #[serde(default)]
    pub worker: String,
    /// When the strategy took the job, from the batch's start; set by the strategy.
    #[serde(default)]
    pub started_at: Duration,
}

/// Hears about transfers as they run, for the live progress view. In a worker
/// process it forwards to the parent over the pipe.
pub trait ProgressSink: Send + Sync {
    /// A transfer began receiving its body; returns its id.
    fn started(&self, label: &str, total: Option<u64>) -> u64;
    /// `bytes` more arrived.
    fn advanced(&self, id: u64, bytes: u64);
    /// The transfer is over (finished or not).
    fn ended(&self, id: u64);
}

/// What a download needs besides its job.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub names: Arc<dyn NameRegistry>,
    /// Where `started` and `saved` entries go (`None`: no manifest kept).
    pub manifest: Option<Arc<Manifest>>,
    /// Set on Ctrl-C: no further attempts are started.
    pub interrupted: Arc<AtomicBool>,
    pub progress: Option<Arc<dyn ProgressSink>>,
}

impl Context {
    pub fn new(settings: Settings, names: Arc<dyn NameRegistry>) -> Context {
        Context {
            settings: Arc::new(settings),
            names,
            manifest: None,
            interrupted: Arc::new(AtomicBool::new(false)),
            progress: None,
        }
    }
}

/// The parts of a response head a transfer looks at.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub content_range: Option<String>,
    pub content_disposition: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub retry_after: Option<String>,
    pub final_url: Option<String>,
}

impl Head {
    /// Reads the head through a header lookup, the same for both clients.
    pub fn read(
        status: u16,
        final_url: Option<String>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Head {
        Head {
            status,
            content_type: header("content-type"),
            content_length: header("content-length").and_then(|value| value.trim().parse().ok()),
            content_range: header("content-range"),
            content_disposition: header("content-disposition"),
            etag: header("etag"),
            last_modified: header("last-modified"),
            retry_after: header("retry-after"),
            final_url,
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<u64> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(seconds);
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs(),
    )
}

/// `bytes START-END/TOTAL` as (START, TOTAL); TOTAL may be `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// One attempt at a download, fed by a client driver: the head once, then chunks.
pub struct Transfer<'a> {
    job: &'a Job,
    context: &'a Context,
    /// The resume this attempt asks for, if any.
    resume: Option<&'a Resume>,
    /// Reserved name, given back if the transfer is not finished.
    name: Option<String>,
    part: Option<PartFile>,
    expected: Option<u64>,
    hasher: Sha256,
    head: Head,
    /// Whether the first bytes were checked against `--accept`.
    sniffed: bool,
    /// This transfer's id with the progress sink, once the body started.
    progress: Option<u64>,
}

impl<'a> Transfer<'a> {
    pub fn new(job: &'a Job, context: &'a Context, resume: Option<&'a Resume>) -> Self {
        Transfer {
            job,
            context,
            resume,
            name: None,
            part: None,
            expected: None,
            hasher: Sha256::new(),
            head: Head::default(),
            sniffed: false,
            progress: None,
        }
    }

    fn settings(&self) -> &Settings {
        &self.context.settings
    }

    fn directory(&self) -> &Path {
        &self.context.settings.output_dir
    }

    /// Headers this attempt sends: a Range from where the part file ends, valid only
    /// if the file is unchanged (`If-Range`), so a changed file comes back whole.
    pub fn request_headers(&self) -> Vec<(&'static str, String)> {
        match self.resume {
            Some(resume) => vec![
                ("range", format!("bytes={}-", resume.offset)),
                ("if-range", resume.validator.clone()),
            ],
            None => Vec::new(),
        }
    }

    /// The response head: an error status or a refused type ends the transfer
    /// before any byte is written; otherwise the name is settled and the `.part`
    /// opened (appended to, when the server agreed to resume).
    pub fn head(&mut self, head: Head) -> Result<(), DownloadError> {
        if !(200..300).contains(&head.status) {
            return Err(http_error(head.status, head.retry_after.as_deref()));
        }
        let resumed_from = match (self.resume, head.status) {
            (Some(resume), 206) => {
                match head.content_range.as_deref().and_then(parse_content_range) {
                    Some((start, _)) if start == resume.offset => Some(resume.offset),
                    _ => return Err(DownloadError::RangeMismatch),
                }
            }
            (None, 206) => return Err(DownloadError::RangeMismatch),
            _ => None,
        };
        self.expected = match resumed_from {
            Some(offset) => {
                let total = head
                    .content_range
                    .as_deref()
                    .and_then(parse_content_range)
                    .and_then(|(_, total)| total);
                total.or(head.content_length.map(|length| offset + length))
            }
            None => head.content_length,
        };
        let settings = self.settings();
        if let (Some(limit), Some(expected)) = (settings.max_size, self.expected)
            && expected > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        if let Some(content_type) = head.content_type.as_deref()
            && !settings.accept.is_empty()
            && !naming::content_type_matches(content_type, &settings.accept)
        {
            return Err(DownloadError::NotAccepted {
                found: content_type.to_string(),
            });
        }
        let (name, part) = match &self.job.plan {
            Some(plan) => {
                // The batch claimed this name for the job: its own part file, reused.
                self.name = Some(plan.name.clone());
                let part =
                    PartFile::reopen(self.directory(), &plan.name, resumed_from.unwrap_or(0))
                        .map_err(|error| {
                            self.write_error(
                                &format!("{}{}", plan.name, naming::PART_SUFFIX),
                                error,
                            )
                        })?;
                (
                    plan.name.clone(),
                    if plan.replace { part.replacing() } else { part },
                )
            }
            None => {
                let suggested = if settings.content_disposition {
                    head.content_disposition
                        .as_deref()
                        .and_then(naming::disposition_filename)
                } else {
                    None
                };
                let desired = naming::desired_name_with(
                    &self.job.url,
                    self.job.name.as_deref(),
                    suggested.as_deref(),
                    head.content_type.as_deref(),
                );
                let name = self
                    .context
                    .names
                    .reserve(&desired)
                    .map_err(|error| self.write_error(&desired, error))?;
                self.name = Some(name.clone());
                let part = PartFile::create(self.directory(), &name).map_err(|error| {
                    self.write_error(&format!("{name}{}", naming::PART_SUFFIX), error)
                })?;
                (name, part)
            }
        };
        if let Some(offset) = resumed_from {
            // The hash covers the whole file: read back the bytes kept.
            File::open(part.part_path())
                .and_then(|kept| manifest::hash_reader(kept.take(offset), &mut self.hasher))
                .map_err(|error| self.write_error(&name, error))?;
            self.sniffed = true;
        }
        if let Some(manifest) = &self.context.manifest {
            let entry = Entry::Started {
                url: self.job.url.to_string(),
                name: name.clone(),
                etag: head.etag.clone(),
                last_modified: head.last_modified.clone(),
            };
            manifest
                .append(&entry)
                .map_err(|error| self.write_error(manifest::MANIFEST_NAME, error))?;
        }
        if let Some(sink) = &self.context.progress {
            let id = sink.started(&name, self.expected);
            if let Some(offset) = resumed_from {
                sink.advanced(id, offset);
            }
            self.progress = Some(id);
        }
        tracing::debug!(url = %self.job.url, name, status = head.status, length = ?self.expected, "response");
        self.part = Some(part);
        self.head = head;
        Ok(())
    }

    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        if !self.sniffed && !bytes.is_empty() {
            self.sniffed = true;
            self.check_first_bytes(bytes)?;
        }
        let limit = self.settings().max_size;
        let part = self.part.as_mut().expect("head() comes before the body");
        if let Err(error) = part.write(bytes) {
            let path = part.part_path().display().to_string();
            return Err(DownloadError::Write {
                path,
                message: error.to_string(),
            });
        }
        self.hasher.update(bytes);
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.advanced(id, bytes.len() as u64);
        }
        if let Some(limit) = limit
            && part.written() > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        Ok(())
    }

    /// With `--accept`, the first bytes must not contradict it: a page of HTML
    /// served as `image/jpeg` is refused, and so is a body of unknown type that
    /// came without a Content-Type.
    fn check_first_bytes(&self, bytes: &[u8]) -> Result<(), DownloadError> {
        let accept = &self.settings().accept;
        if accept.is_empty() {
            return Ok(());
        }
        match naming::sniff(bytes) {
            Some(found) if !naming::content_type_matches(found, accept) => {
                Err(DownloadError::NotAccepted {
                    found: format!("{found} (by its first bytes)"),
                })
            }
            None if self.head.content_type.is_none() => Err(DownloadError::NotAccepted {
                found: "unknown (no Content-Type, unrecognised bytes)".to_string(),
            }),
            _ => Ok(()),
        }
    }

    pub fn received(&self) -> u64 {
        self.part.as_ref().map_or(0, PartFile::written)
    }

    /// The reason for a body that ended in an error: a short body is reported as
    /// such when the error itself says nothing more useful.
    pub fn body_error(&self, error: DownloadError) -> DownloadError {
        match (error, self.expected) {
            (DownloadError::Network(_), Some(expected)) if self.received() < expected => {
                DownloadError::Truncated {
                    received: self.received(),
                    expected,
                }
            }
            (error, _) => error,
        }
    }

    /// The body ended cleanly: check its length against what the head announced,
    /// move it to its final name and record it.
    pub fn finish(mut self) -> Result<Saved, DownloadError> {
        if !self.sniffed {
            self.check_first_bytes(&[])?;
        }
        let part = self.part.take().expect("head() comes before finish()");
        let received = part.written();
        if let Some(expected) = self.expected
            && received != expected
        {
            return Err(DownloadError::Truncated { received, expected });
        }
        let name = self.name.clone().expect("head() settled a name");
        part.commit()
            .map_err(|error| self.write_error(&name, error))?;
        // The name now belongs to the file on disk; keep it reserved.
        self.name = None;
        let sha256 = manifest::hex(&std::mem::take(&mut self.hasher).finalize());
        if let Some(manifest) = &self.context.manifest {
            let time = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let entry = Entry::Saved {
                url: self.job.url.to_string(),
                name: name.clone(),
                size: received,
                sha256: sha256.clone(),
                time,
            };
            manifest
                .append(&entry)
                .map_err(|error| self.write_error(manifest::MANIFEST_NAME, error))?;
        }
        Ok(Saved {
            name,
            bytes: received,
            status: self.head.status,
            content_type: self.head.content_type.take(),
            sha256,
            final_url: self.head.final_url.take(),
            skipped: false,
        })
    }

    fn write_error(&self, name: &str, error: io::Error) -> DownloadError {
        DownloadError::Write {
            path: self.directory().join(name).display().to_string(),
            message: error.to_string(),
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.ended(id);
        }
        // The part file removes itself; the name goes back for other jobs.
        self.part.take();
        if let Some(name) = self.name.take() {
            self.context.names.release(&name);
        }
    }
}

fn http_error(status: u16, retry_after: Option<&str>) -> DownloadError {
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
fn from_io_kind(kind: io::ErrorKind, settings: &Settings) -> Option<DownloadError> {
    use io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => DownloadError::ConnectionRefused,
        ConnectionReset | ConnectionAborted | BrokenPipe => DownloadError::ConnectionReset,
        TimedOut | WouldBlock => DownloadError::TimedOut {
            seconds: settings.idle_timeout.as_secs(),
        },
        _ => return None,
    })
}

/// The first I/O error kind in an error's chain of sources.
fn io_kind_in_chain(error: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            return Some(io_error.kind());
        }
        current = error.source();
    }
    None
}

/// The attempt loop both drivers share, as a state machine so the blocking one can
/// sleep on its thread and the async one on the timer.
struct Attempts<'a> {
    job: &'a Job,
    context: &'a Context,
    started: Instant,
    made: u32,
    first_byte: Option<Duration>,
}

impl<'a> Attempts<'a> {
    fn new(job: &'a Job, context: &'a Context) -> Self {
        Attempts {
            job,
            context,
            started: Instant::now(),
            made: 0,
            first_byte: None,
        }
    }

    /// The resume the next attempt asks for: only the first one resumes; a retry
    /// starts the file over.
    fn next_resume(&mut self) -> Option<&'a Resume> {
        self.made += 1;
        if self.made == 1 {
            self.job.plan.as_ref().and_then(|plan| plan.resume.as_ref())
        } else {
            None
        }
    }

    /// After an attempt: the outcome, or how long to wait before the next one.
    fn after(&self, result: Result<Saved, DownloadError>) -> Result<Outcome, Duration> {
        if let Err(error) = &result
            && !self.context.interrupted.load(Ordering::Relaxed)
            && let Some(wait) = retry_delay(&self.context.settings, self.made, error)
        {
            tracing::debug!(url = %self.job.url, attempt = self.made, %error, wait_ms = wait.as_millis() as u64, "retrying");
            return Err(wait);
        }
        match &result {
            Ok(saved) => {
                tracing::debug!(url = %self.job.url, name = saved.name, bytes = saved.bytes, attempts = self.made, "saved")
            }
            Err(error) => {
                tracing::debug!(url = %self.job.url, %error, attempts = self.made, "failed")
            }
        }
        Ok(Outcome {
            job: self.job.clone(),
            result,
            elapsed: self.started.elapsed(),
            attempts: self.made,
            first_byte: self.first_byte,
            worker: String::new(),
            started_at: Duration::ZERO,
        })
    }

    /// Notes when a response head arrived.
    fn head_arrived(&mut self) {
        self.first_byte = Some(self.started.elapsed());
    }
}

// ---- the blocking driver (ureq), for `sequential`, `threads` and worker processes ----

/// A blocking client for downloads, keeping up to `pool` connections alive so
/// `pool` threads can each reuse one.
pub fn blocking_agent(settings: &Settings, pool: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(settings.connect_timeout))
        .timeout_per_read(Some(settings.idle_timeout))
        .timeout_per_write(Some(settings.idle_timeout))
        .max_idle_connections(pool.max(1))
        .max_idle_connections_per_host(pool.max(1))
        .max_redirects(10)
        .user_agent(Settings::user_agent())
        .build()
        .into()
}

fn from_ureq(error: &ureq::Error, settings: &Settings) -> DownloadError {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect) => DownloadError::TimedOut {
            seconds: settings.connect_timeout.as_secs(),
        },
        ureq::Error::Timeout(_) => DownloadError::TimedOut {
            seconds: settings.idle_timeout.as_secs(),
        },
        ureq::Error::HostNotFound => DownloadError::Resolve,
        ureq::Error::TooManyRedirects => DownloadError::TooManyRedirects,
        ureq::Error::Io(io_error) => from_io(io_error, settings),
        other => io_kind_in_chain(other)
            .and_then(|kind| from_io_kind(kind, settings))
            .unwrap_or_else(|| DownloadError::Network(other.to_string())),
    }
}

fn from_io(error: &io::Error, settings: &Settings) -> DownloadError {
    // ureq hands its own errors through `Read` wrapped in io::Error.
    if let Some(inner) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return from_ureq(inner, settings);
    }
    from_io_kind(error.kind(), settings)
        .unwrap_or_else(|| DownloadError::Network(error.to_string()))
}

fn attempt_blocking(
    agent: &ureq::Agent,
    job: &Job,
    context: &Context,
    resume: Option<&Resume>,
    attempts: &mut Attempts,
) -> Result<Saved, DownloadError> {
    use ureq::ResponseExt;
    let settings = &context.settings;
    let mut transfer = Transfer::new(job, context, resume);
    let mut request = agent.get(job.url.as_str());
    for (name, value) in transfer.request_headers() {
        request = request.header(name, value);
    }
    let response = request
        .call()
        .map_err(|error| from_ureq(&error, settings))?;
    attempts.head_arrived();
    let final_url = Some(response.get_uri().to_string());
    let head = Head::read(response.status().as_u16(), final_url, |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    transfer.head(head)?;
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => transfer.chunk(&buffer[..count])?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(transfer.body_error(from_io(&error, settings))),
        }
    }
    transfer.finish()
}

/// Downloads one job with a blocking client, retrying transient failures.
pub fn fetch_blocking(agent: &ureq::Agent, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let resume = attempts.next_resume();
        let result = attempt_blocking(agent, job, context, resume, &mut attempts);
        match attempts.after(result) {
            Ok(outcome) => return outcome,
            Err(wait) => std::thread::sleep(wait),
        }
    }
}

// ---- the async driver (reqwest), for `async` ----

/// The async client, keeping up to `pool` idle connections per host.
pub fn async_client(settings: &Settings, pool: usize) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; use the same ring-based one
    // ureq uses, so one TLS stack is compiled. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(pool.max(1))
        .redirect(reqwest::redirect::Policy::limited(10))
        .user_agent(Settings::user_agent())
        .build()
}

fn from_reqwest(error: &reqwest::Error, settings: &Settings) -> DownloadError {
    if error.is_timeout() {
        let seconds = if error.is_connect() {
            settings.connect_timeout
        } else {
            settings.idle_timeout
        };
        return DownloadError::TimedOut {
            seconds: seconds.as_secs(),
        };
    }
    if error.is_redirect() {
        return DownloadError::TooManyRedirects;
    }
    if let Some(reason) = io_kind_in_chain(error).and_then(|kind| from_io_kind(kind, settings)) {
        return reason;
    }
    // The top-level message is generic ("error sending request"); the innermost
    // source says what happened.
    let mut innermost: &dyn StdError = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    DownloadError::Network(innermost.to_string())
}

async fn attempt_async(
    client: &reqwest::Client,
    job: &Job,
    context: &Context,
    resume: Option<&Resume>,
    attempts: &mut Attempts<'_>,
) -> Result<Saved, DownloadError> {
    let settings = &context.settings;
    let mut transfer = Transfer::new(job, context, resume);
    let mut request = client.get(job.url.clone());
    for (name, value) in transfer.request_headers() {
        request = request.header(name, value);
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| from_reqwest(&error, settings))?;
    attempts.head_arrived();
    let final_url = Some(response.url().to_string());
    let headers = response.headers();
    let head = Head::read(response.status().as_u16(), final_url, |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    transfer.head(head)?;
    loop {
        // Writes go straight to the file: they land in the page cache in microseconds,
        // and a round-trip through tokio's blocking pool for each chunk costs more.
        match response.chunk().await {
            Ok(Some(bytes)) => transfer.chunk(&bytes)?,
            Ok(None) => break,
            Err(error) => return Err(transfer.body_error(from_reqwest(&error, settings))),
        }
    }
    transfer.finish()
}

/// Downloads one job with the async client, retrying transient failures.
pub async fn fetch_async(client: &reqwest::Client, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let resume = attempts.next_resume();
        let result = attempt_async(client, job, context, resume, &mut attempts).await;
        match attempts.after(result) {
            Ok(outcome) => return outcome,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, retry_after: Option<u64>) -> DownloadError {
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
        assert!(
            !DownloadError::NotAccepted {
                found: "text/html".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let mut settings = Settings::new("/tmp");
        settings.retries = 3;
        settings.retry_wait = Duration::from_millis(100);
        for attempts in 1..=3 {
            let wait = retry_delay(&settings, attempts, &DownloadError::ConnectionReset).unwrap();
            assert!(
                wait <= Duration::from_millis(100 << (attempts - 1)),
                "{attempts}: {wait:?}"
            );
        }
        assert_eq!(
            retry_delay(&settings, 4, &DownloadError::ConnectionReset),
            None
        );
        assert_eq!(retry_delay(&settings, 1, &http(404, None)), None);
        let wait = retry_delay(&settings, 1, &http(503, Some(2))).unwrap();
        assert!(wait >= Duration::from_secs(2));
        let wait = retry_delay(&settings, 1, &http(503, Some(100_000))).unwrap();
        assert_eq!(wait, MAX_RETRY_AFTER);
        settings.retry_wait = Duration::from_secs(3600);
        assert!(retry_delay(&settings, 3, &DownloadError::ConnectionReset).unwrap() <= MAX_BACKOFF);
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_retry_after("7"), Some(7));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
