//! The filter as an engine task. One image is one job: [`filter_file`] reads,
//! decodes, filters, encodes and writes it, on a thread of this process or in a
//! worker process (`grab __worker filter`). A job is a pair of paths, so nothing
//! else crosses the pipe, and workers never need to ask their parent anything.

use std::time::Duration;

use anyhow::Context as _;

use super::{FilterError, Job, Outcome, Settings, filter_file};
use crate::engine::processes::{Lost, Nothing, Remote};
use crate::engine::{Task, Work};

/// The name of the filter task for `grab __worker`.
pub const TASK: &str = "filter";

/// Filters images with one set of settings, wherever the engine runs it.
#[derive(Debug, Clone)]
pub struct Filtering {
    pub settings: Settings,
}

impl Filtering {
    /// The worker's side, from the settings its parent passed as JSON.
    pub fn from_json(settings: &str) -> anyhow::Result<Filtering> {
        Ok(Filtering {
            settings: serde_json::from_str(settings).context("invalid filter worker settings")?,
        })
    }
}

impl Work for Filtering {
    type Job = Job;
    type Outcome = Outcome;
}

impl Task for Filtering {
    fn run(&self, job: Job, _worker: &str) -> Outcome {
        filter_file(&job, &self.settings)
    }
}

impl Remote for Filtering {
    type Message = Nothing;
    type Reply = Nothing;
    type Conversation = ();

    fn worker_task(&self) -> (&'static str, String) {
        let settings =
            serde_json::to_string(&self.settings).expect("filter settings serialise to JSON");
        (TASK, settings)
    }

    fn describe(&self, job: &Job) -> String {
        job.input.display().to_string()
    }

    fn begin(&self, _job: &Job) {}

    fn answer(&self, message: Nothing, _conversation: &mut ()) -> Option<Nothing> {
        match message {}
    }

    fn end(&self, _conversation: (), _died: bool) {}

    fn timed(&self, outcome: &mut Outcome, elapsed: Duration) {
        outcome.elapsed = elapsed;
    }

    fn lost(&self, job: Job, lost: Lost) -> Outcome {
        let path = job.input.display().to_string();
        let error = match lost {
            Lost::WorkerDied => FilterError::WorkerDied { path },
            Lost::WorkerStart(message) => FilterError::WorkerStart { path, message },
        };
        Outcome {
            job,
            result: Err(error),
            elapsed: Default::default(),
        }
    }
}
