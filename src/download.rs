//! One download, the part every strategy shares: status check, naming, streaming
//! to a `.part` file, length check, commit, timing, and turning client errors into
//! the reasons users read. The strategies differ only in how they run many of these
//! at once; the blocking (ureq) and async (reqwest) drivers below are thin loops
//! around the same [`Transfer`].

use std::error::Error as StdError;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::input::Job;
use crate::naming::{self, NameRegistry};
use crate::output::PartFile;

/// How downloads behave, whatever the strategy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub output_dir: PathBuf,
    pub connect_timeout: Duration,
    /// A transfer that receives nothing for this long is abandoned.
    pub idle_timeout: Duration,
}

impl Settings {
    pub fn user_agent() -> String {
        format!("grab/{}", env!("CARGO_PKG_VERSION"))
    }
}

/// What went wrong with one URL, in the words the per-file line prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DownloadError {
    #[error("HTTP {status} {reason}")]
    Http { status: u16, reason: String },
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
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("{0}")]
    Network(String),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("worker process died")]
    WorkerDied,
}

/// A file saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub bytes: u64,
    pub status: u16,
    pub content_type: Option<String>,
}

/// The result of one job, as every strategy reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<Saved, DownloadError>,
    pub elapsed: Duration,
}

/// What a download needs besides its job: the settings and the batch's names.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub names: Arc<dyn NameRegistry>,
}

/// One download in progress, fed by a client driver: the head once, then chunks.
pub struct Transfer<'a> {
    job: &'a Job,
    context: &'a Context,
    /// Reserved name, given back if the transfer is not finished.
    name: Option<String>,
    part: Option<PartFile>,
    expected: Option<u64>,
    status: u16,
    content_type: Option<String>,
}

impl<'a> Transfer<'a> {
    pub fn new(job: &'a Job, context: &'a Context) -> Self {
        Transfer {
            job,
            context,
            name: None,
            part: None,
            expected: None,
            status: 0,
            content_type: None,
        }
    }

    fn directory(&self) -> &Path {
        &self.context.settings.output_dir
    }

    /// The response head: an error status ends the transfer before any byte is
    /// written; otherwise the name is chosen and reserved and the `.part` opened.
    pub fn head(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        content_length: Option<u64>,
    ) -> Result<(), DownloadError> {
        if !(200..300).contains(&status) {
            return Err(http_error(status));
        }
        self.status = status;
        self.expected = content_length;
        self.content_type = content_type.map(str::to_string);
        let desired = naming::desired_name(&self.job.url, self.job.name.as_deref(), content_type);
        let name = self
            .context
            .names
            .reserve(&desired)
            .map_err(|error| self.write_error(&desired, error))?;
        self.name = Some(name.clone());
        let part = PartFile::create(self.directory(), &name)
            .map_err(|error| self.write_error(&format!("{name}{}", naming::PART_SUFFIX), error))?;
        self.part = Some(part);
        Ok(())
    }

    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        let part = self.part.as_mut().expect("head() comes before the body");
        if let Err(error) = part.write(bytes) {
            let path = part.part_path().display().to_string();
            return Err(DownloadError::Write {
                path,
                message: error.to_string(),
            });
        }
        Ok(())
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

    /// The body ended cleanly: check its length against Content-Length and move it
    /// to its final name.
    pub fn finish(mut self) -> Result<Saved, DownloadError> {
        let part = self.part.take().expect("head() comes before finish()");
        let received = part.written();
        if let Some(expected) = self.expected
            && received != expected
        {
            return Err(DownloadError::Truncated { received, expected });
        }
        let name = self.name.clone().expect("head() reserved a name");
        part.commit()
            .map_err(|error| self.write_error(&name, error))?;
        // The name now belongs to the file on disk; keep it reserved.
        self.name = None;
        Ok(Saved {
            name,
            bytes: received,
            status: self.status,
            content_type: self.content_type.take(),
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
        // The part file removes itself; the name goes back for other jobs.
        self.part.take();
        if let Some(name) = self.name.take() {
            self.context.names.release(&name);
        }
    }
}

fn http_error(status: u16) -> DownloadError {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("")
        .to_string();
    DownloadError::Http { status, reason }
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

/// Times a download and wraps it as an outcome.
fn timed(job: &Job, run: impl FnOnce() -> Result<Saved, DownloadError>) -> Outcome {
    let started = Instant::now();
    let result = run();
    Outcome {
        job: job.clone(),
        result,
        elapsed: started.elapsed(),
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

/// Downloads one job with a blocking client.
pub fn fetch_blocking(agent: &ureq::Agent, job: &Job, context: &Context) -> Outcome {
    timed(job, || {
        let settings = &context.settings;
        let response = agent
            .get(job.url.as_str())
            .call()
            .map_err(|error| from_ureq(&error, settings))?;
        let mut transfer = Transfer::new(job, context);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let content_length = header("content-length").and_then(|value| value.trim().parse().ok());
        let content_type = header("content-type").map(str::to_string);
        transfer.head(
            response.status().as_u16(),
            content_type.as_deref(),
            content_length,
        )?;
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
    })
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

/// Downloads one job with the async client.
pub async fn fetch_async(client: &reqwest::Client, job: &Job, context: &Context) -> Outcome {
    let started = Instant::now();
    let result = fetch_async_inner(client, job, context).await;
    Outcome {
        job: job.clone(),
        result,
        elapsed: started.elapsed(),
    }
}

async fn fetch_async_inner(
    client: &reqwest::Client,
    job: &Job,
    context: &Context,
) -> Result<Saved, DownloadError> {
    let settings = &context.settings;
    let mut response = client
        .get(job.url.clone())
        .send()
        .await
        .map_err(|error| from_reqwest(&error, settings))?;
    let mut transfer = Transfer::new(job, context);
    let headers = response.headers();
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    // The header itself, as the blocking driver reads it, so both check the same.
    let content_length = headers
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    transfer.head(
        response.status().as_u16(),
        content_type.as_deref(),
        content_length,
    )?;
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
