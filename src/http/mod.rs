//! One download, the part every strategy shares, split by concern:
//!
//! - `settings`: how downloads behave, sent to worker processes as is;
//! - `transfer`: one attempt, fed by a client (status check, naming, the
//!   `.part` file, size and type limits, length check, commit, manifest);
//! - `retry`: which failures are retried and after how long, and the attempt
//!   loop both drivers share;
//! - `error`: the reasons users read, from either client's errors;
//! - `outcome`: what a job ended with;
//! - `tls`: which servers are trusted, the same for both clients;
//! - `proxy`: which requests go through which proxy, the same for both;
//! - `resolve`: names to addresses, once per host per TTL, for both;
//! - `logins`: cookies kept through a run, cookie files, `.netrc`;
//! - `pace`: `--limit-rate`, how long to wait after bytes arrive;
//! - `split`: `--split`, one file in ranges over several connections;
//! - `blocking` (ureq) and `asynchronous` (reqwest): the two client drivers,
//!   thin loops around the same transfer and retry decision.

mod asynchronous;
mod blocking;
pub(crate) mod digest;
mod encoding;
pub(crate) mod error;
pub(crate) mod logins;
mod outcome;
mod pace;
pub(crate) mod proxy;
pub(crate) mod request;
pub(crate) mod resolve;
mod retry;
pub(crate) mod settings;
mod split;
pub(crate) mod task;
pub(crate) mod tls;
pub(crate) mod transfer;

use std::sync::Arc;

pub use asynchronous::{AsyncClient, async_client, fetch_async};
pub use blocking::{BlockingClient, blocking_agent, fetch_blocking};
pub use error::DownloadError;
pub use outcome::{Complete, Outcome, Reply, Saved, Verdict};
pub use request::{Algorithm, Checksum, Conditional, Job, Origin, Plan, Resume};
pub use retry::retry_delay;
pub use settings::Settings;
pub use task::EXIT_AFTER_SAVING_VARIABLE;
pub use transfer::{Head, Transfer};

use crate::engine::Interrupt;
use crate::fs::manifest::Manifest;
use crate::fs::names::NameRegistry;

/// A runtime of one worker thread, `name`, that runs what a blocking caller
/// hands over (HTTP/2 connections, name lookups); an error names it as `what`.
fn one_thread_runtime(name: &str, what: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start {what}: {error}"))
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
    /// The output folder (`settings.output_dir`), where parts are made.
    pub folder: Arc<crate::fs::part::Folder>,
    pub names: Arc<dyn NameRegistry>,
    /// Where `started` and `saved` entries go (`None`: no manifest kept).
    pub manifest: Option<Arc<Manifest>>,
    /// Raised on Ctrl-C: no further attempts are started.
    pub interrupt: Interrupt,
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// `--limit-rate`: shared by every transfer of this process.
    pub pace: Option<Arc<pace::Pace>>,
    /// Where bodies go.
    pub body: BodySink,
    /// The cookie jar and `.netrc` credentials, shared by every transfer of
    /// this process (a worker process keeps its own).
    pub logins: Arc<logins::Logins>,
    /// `--per-host`, for the extra connections of a split download (the
    /// engine's task holds each download's own slot).
    pub hosts: Option<Arc<task::HostGate>>,
    /// Names to addresses, with the cache every client of this process
    /// shares (in a worker process: asking the parent).
    pub resolver: Arc<resolve::Resolver>,
}

/// Where a body goes: the caller chooses.
#[derive(Clone, Default)]
pub enum BodySink {
    /// A part file in the output folder, under its final name once whole.
    #[default]
    PartFile,
    /// Memory ([`Saved::body`]): no name, part file or manifest entry
    /// (`grab dataset`, in this process).
    Memory,
    /// Written through as it arrives (`-O -`): nothing on disk. Bytes once
    /// out cannot be taken back, so an attempt that wrote any is the last.
    Stream(Arc<std::sync::Mutex<Box<dyn std::io::Write + Send>>>),
}

impl std::fmt::Debug for BodySink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            BodySink::PartFile => "PartFile",
            BodySink::Memory => "Memory",
            BodySink::Stream(_) => "Stream",
        })
    }
}

impl Context {
    pub fn new(settings: Settings, names: Arc<dyn NameRegistry>) -> Context {
        // The files were read once already by the command's checks (see
        // cli::request): one that fails now has gone since, and the run goes
        // on without it.
        let logins = logins::Logins::open(&settings).unwrap_or_else(|error| {
            tracing::warn!("{error}");
            logins::Logins::default()
        });
        let resolver = resolve::Resolver::shared(&settings.dns_servers);
        Context {
            logins: Arc::new(logins),
            folder: Arc::new(crate::fs::part::Folder::new(settings.output_dir.clone())),
            pace: settings
                .rates
                .total
                .map(|rate| Arc::new(pace::Pace::new(rate))),
            settings: Arc::new(settings),
            names,
            manifest: None,
            interrupt: Interrupt::default(),
            progress: None,
            body: BodySink::PartFile,
            hosts: None,
            resolver,
        }
    }
}
