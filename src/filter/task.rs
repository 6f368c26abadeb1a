//! The filter as an engine task. One image is one job: [`super::filter_file`] reads,
//! decodes, filters, encodes and writes it, on a thread of this process or in a
//! worker process (`grab __worker filter`). A job is a pair of paths, so nothing
//! else crosses the pipe, and workers never need to ask their parent anything.

use std::time::Duration;

use anyhow::Context as _;

use super::{Failure, FilterError, Job, Memory, Outcome, Reserve, Settings, filter_within};
use crate::engine::budget::{OverBudget, Reservation};
use crate::engine::processes::{Lost, Parent, Remote};
use crate::engine::{Task, Work};

/// The name of the filter task for `grab __worker`.
pub const TASK: &str = "filter";

/// Filters images with one set of settings, wherever the engine runs it. In
/// the parent, `memory` is the run's budget, which it also lends to its
/// workers; in a worker, it is the parent.
#[derive(Debug, Clone)]
pub struct Filtering {
    pub settings: Settings,
    pub memory: Memory,
}

impl Filtering {
    /// The worker's side, from the settings its parent passed as JSON.
    pub fn from_json(
        settings: &str,
        parent: Parent<Reserve, Result<(), OverBudget>>,
    ) -> anyhow::Result<Filtering> {
        Ok(Filtering {
            settings: serde_json::from_str(settings).context("invalid filter worker settings")?,
            memory: Memory::Parent(parent),
        })
    }
}

impl Work for Filtering {
    type Job = Job;
    type Outcome = Outcome;
}

impl Task for Filtering {
    fn run(&self, job: Job, _worker: &str) -> Outcome {
        filter_within(&job, &self.settings, &self.memory)
    }
}

impl Remote for Filtering {
    type Message = Reserve;
    type Reply = Result<(), OverBudget>;
    /// The memory the worker reserved for the job, held until the job is over.
    type Conversation = Option<Reservation>;

    fn worker_task(&self) -> (&'static str, String) {
        let settings =
            serde_json::to_string(&self.settings).expect("filter settings serialise to JSON");
        (TASK, settings)
    }

    fn describe(&self, job: &Job) -> String {
        job.input.display().to_string()
    }

    fn begin(&self, _job: &Job) -> Option<Reservation> {
        None
    }

    fn answer(
        &self,
        message: Reserve,
        conversation: &mut Option<Reservation>,
    ) -> Option<Result<(), OverBudget>> {
        let Memory::Budget(budget) = &self.memory else {
            return Some(Ok(()));
        };
        // A job reserves once; should a worker ask again, the first is given
        // back before the second is waited for.
        conversation.take();
        Some(budget.reserve(message.bytes).map(|reservation| {
            *conversation = Some(reservation);
        }))
    }

    fn end(&self, _conversation: Option<Reservation>, _died: bool) {}

    fn timed(&self, outcome: &mut Outcome, elapsed: Duration) {
        outcome.elapsed = elapsed;
    }

    fn lost(&self, job: Job, lost: Lost) -> Outcome {
        let failure = match lost {
            Lost::WorkerDied => Failure::WorkerDied,
            Lost::WorkerStart(message) => Failure::WorkerStart(message),
        };
        let error = FilterError::new(&job.input, failure);
        Outcome {
            job,
            result: Err(error),
            elapsed: Default::default(),
        }
    }
}
