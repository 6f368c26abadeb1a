//! The concurrency strategies: one module each, behind the one [`Strategy`] trait.
//! A strategy takes jobs from the batch's bounded queue and hands each outcome to the
//! batch's reporter; how it keeps N downloads in flight is all that differs. Naming,
//! writing, timing and reporting live in shared code they all call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::download::Context;
use crate::input::Job;
use crate::report::Reporter;

mod asynchronous;
mod processes;
mod sequential;
mod threads;

pub use asynchronous::Async;
pub use processes::{Processes, WORKER_SUBCOMMAND, worker_main};
pub use sequential::Sequential;
pub use threads::Threads;

/// The jobs of a batch, fed by the input reader as the strategy takes them.
pub type JobQueue = async_channel::Receiver<Job>;

/// Called with the path of each file as soon as it is saved, on the thread that
/// recorded it (`grab get --filter` hands images to its filter pool here; that
/// may block while the pool's queue is full, which holds downloads back).
pub type SavedHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// What every job of a batch shares: settings, names, the reporter, what to do
/// with each saved file, and the per-host limit.
#[derive(Clone)]
pub struct Batch {
    pub context: Context,
    pub reporter: Arc<Reporter>,
    pub on_saved: Option<SavedHook>,
    pub hosts: Option<Arc<HostGate>>,
}

impl Batch {
    /// Every outcome goes through here, whatever the strategy (the parent records
    /// the outcomes of worker processes).
    pub fn record(&self, outcome: &crate::download::Outcome) {
        self.reporter.record(outcome);
        if let (Some(on_saved), Ok(saved)) = (&self.on_saved, &outcome.result)
            && !saved.skipped
        {
            on_saved(&self.context.settings.output_dir.join(&saved.name));
        }
    }

    /// Records an outcome with who ran it and when the job was taken.
    pub fn record_as(
        &self,
        mut outcome: crate::download::Outcome,
        worker: &str,
        started_at: std::time::Duration,
    ) {
        outcome.worker = worker.to_string();
        outcome.started_at = started_at;
        self.record(&outcome);
    }

    /// Time since the batch started.
    pub fn clock(&self) -> std::time::Duration {
        self.reporter.elapsed()
    }

    fn interrupted(&self) -> bool {
        self.context.interrupted.load(Ordering::Relaxed)
    }

    /// The next job for a blocking worker; `None` when the queue is drained or the
    /// batch was interrupted (a closed queue still yields what it holds).
    pub fn next_blocking(&self, queue: &JobQueue) -> Option<Job> {
        let job = queue.recv_blocking().ok()?;
        (!self.interrupted()).then_some(job)
    }

    /// The next job for an async worker, as [`Batch::next_blocking`].
    pub async fn next(&self, queue: &JobQueue) -> Option<Job> {
        let job = queue.recv().await.ok()?;
        (!self.interrupted()).then_some(job)
    }

    /// Waits, on a blocking worker, until the job's host is under its limit.
    pub fn enter_host_blocking(&self, job: &Job) -> Option<HostPermit> {
        self.hosts
            .as_ref()
            .map(|hosts| hosts.semaphore(job).acquire_arc_blocking())
    }

    /// Waits, on an async worker, until the job's host is under its limit.
    pub async fn enter_host(&self, job: &Job) -> Option<HostPermit> {
        match &self.hosts {
            Some(hosts) => Some(hosts.semaphore(job).acquire_arc().await),
            None => None,
        }
    }
}

/// Held while a download talks to its host.
pub type HostPermit = async_lock::SemaphoreGuardArc;

/// `--per-host`: at most `limit` downloads talk to one host (and port) at once. The
/// semaphore waits both ways, so the blocking and async strategies share it.
pub struct HostGate {
    limit: usize,
    hosts: Mutex<HashMap<String, Arc<async_lock::Semaphore>>>,
}

impl HostGate {
    pub fn new(limit: usize) -> HostGate {
        HostGate {
            limit: limit.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, job: &Job) -> Arc<async_lock::Semaphore> {
        let host = format!(
            "{}:{}",
            job.url.host_str().unwrap_or(""),
            job.url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        hosts
            .entry(host)
            .or_insert_with(|| Arc::new(async_lock::Semaphore::new(self.limit)))
            .clone()
    }
}

/// A way of running a batch's downloads.
pub trait Strategy {
    /// Downloads every job the queue yields, recording each outcome, and returns
    /// when the queue is closed and drained. A failed job never ends the run; an
    /// error here means the strategy itself could not run.
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()>;
}

/// The strategies a user can choose.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// One download after another.
    Sequential,
    /// A pool of OS threads sharing one blocking client.
    Threads,
    /// Worker processes of grab itself, fed over pipes.
    Processes,
    /// Tasks on one tokio runtime sharing one async client.
    Async,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 4] = [
        StrategyKind::Sequential,
        StrategyKind::Threads,
        StrategyKind::Processes,
        StrategyKind::Async,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Sequential => "sequential",
            StrategyKind::Threads => "threads",
            StrategyKind::Processes => "processes",
            StrategyKind::Async => "async",
        }
    }

    /// The strategy with `jobs` downloads in flight (`sequential` always has one).
    /// `worker_program` is the grab executable that `processes` starts.
    pub fn build(self, jobs: usize, worker_program: PathBuf) -> Box<dyn Strategy> {
        let jobs = jobs.max(1);
        match self {
            StrategyKind::Sequential => Box::new(Sequential),
            StrategyKind::Threads => Box::new(Threads { jobs }),
            StrategyKind::Processes => Box::new(Processes {
                jobs,
                worker_program,
            }),
            StrategyKind::Async => Box::new(Async { jobs }),
        }
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}
