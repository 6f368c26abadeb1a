//! The concurrency strategies: one module each, behind the one [`Strategy`] trait.
//! A strategy takes jobs from the batch's bounded queue and hands each outcome to the
//! batch's reporter; how it keeps N downloads in flight is all that differs. Naming,
//! writing, timing and reporting live in shared code they all call.

use std::path::PathBuf;
use std::sync::Arc;

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

/// What every job of a batch shares: settings, names, and the reporter.
#[derive(Clone)]
pub struct Batch {
    pub context: Context,
    pub reporter: Arc<Reporter>,
}

impl Batch {
    /// Every outcome goes through here, whatever the strategy.
    pub fn record(&self, outcome: &crate::download::Outcome) {
        self.reporter.record(outcome);
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
