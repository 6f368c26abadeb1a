//! A task that does nothing real, so the engine can be tested deterministically
//! with every strategy: each job says how long to sleep, whether to fail, what to
//! ask the parent, and whether to kill the process running it (once, by leaving
//! a marker file, or every time). Its worker-process side runs as
//! `grab __worker mock`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::processes::{Lost, Parent, Remote};
use super::{AsyncTask, Task, Work};

/// The name of the mock task for `grab __worker`.
pub const TASK: &str = "mock";

/// What a mock job does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockJob {
    pub id: u64,
    pub sleep_ms: u64,
    /// End in a failure outcome.
    pub fail: bool,
    /// Ask the parent to answer this text (it answers it in upper case).
    pub ask: Option<String>,
    /// Whether the job kills the process running it.
    pub die: Die,
}

/// When a mock job kills the process running it, as `kill -9` would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Die {
    #[default]
    Never,
    /// Unless this file exists, which it creates first: the first attempt
    /// dies, the second succeeds.
    Once(PathBuf),
    Always,
}

/// What a mock job gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockOutcome {
    pub id: u64,
    /// The process that ran it.
    pub pid: u32,
    /// The id, or with `ask` the parent's answer; `Err` for a failure or a lost job.
    pub result: Result<String, String>,
}

/// The mock task: in-process (`sequential`, `threads`, `async`), as the parent of
/// worker processes (counting what the engine asked of it), and inside a worker
/// (with its way to the parent).
#[derive(Default)]
pub struct Mock {
    /// Attempts sent to worker processes.
    pub begun: AtomicUsize,
    /// Of those, attempts whose worker died.
    pub died: AtomicUsize,
    /// Inside a worker process: the pipe to the parent that answers `ask`.
    pub parent: Option<Parent<String, String>>,
}

fn answer(question: &str) -> String {
    question.to_uppercase()
}

/// Runs a job in this process; `ask` is the way to the parent, if any.
fn perform(job: MockJob, ask: impl FnOnce(String) -> Result<String, String>) -> MockOutcome {
    match &job.die {
        Die::Once(marker) if !marker.exists() => {
            let _ = std::fs::write(marker, b"");
            die();
        }
        Die::Always => die(),
        _ => {}
    }
    let result = if job.fail {
        Err(format!("job {} failed as asked", job.id))
    } else {
        match job.ask {
            Some(question) => ask(question),
            None => Ok(job.id.to_string()),
        }
    };
    MockOutcome {
        id: job.id,
        pid: std::process::id(),
        result,
    }
}

/// As `kill -9` would: no outcome, no cleanup.
fn die() -> ! {
    super::system::die_now()
}

impl Work for Mock {
    type Job = MockJob;
    type Outcome = MockOutcome;
}

impl Task for Mock {
    fn run(&self, job: MockJob, _worker: &str) -> MockOutcome {
        std::thread::sleep(Duration::from_millis(job.sleep_ms));
        perform(job, |question| match &self.parent {
            Some(parent) => parent.ask(question).map_err(|error| error.to_string()),
            // In-process, the parent is here.
            None => Ok(answer(&question)),
        })
    }
}

impl AsyncTask for Mock {
    async fn run(&self, job: MockJob, _worker: &str) -> MockOutcome {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
        perform(job, |question| Ok(answer(&question)))
    }
}

impl Remote for Mock {
    type Message = String;
    type Reply = String;
    type Conversation = ();

    fn worker_task(&self) -> (&'static str, String) {
        (TASK, "{}".to_string())
    }

    fn describe(&self, job: &MockJob) -> String {
        format!("mock job {}", job.id)
    }

    fn begin(&self, _job: &MockJob) {
        self.begun.fetch_add(1, Ordering::SeqCst);
    }

    fn answer(&self, question: String, _conversation: &mut ()) -> Option<String> {
        Some(answer(&question))
    }

    fn end(&self, _conversation: (), died: bool) {
        if died {
            self.died.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn timed(&self, _outcome: &mut MockOutcome, _elapsed: Duration) {}

    fn lost(&self, job: MockJob, lost: Lost) -> MockOutcome {
        MockOutcome {
            id: job.id,
            pid: 0,
            result: Err(match lost {
                Lost::WorkerDied => "worker died".to_string(),
                Lost::WorkerStart(message) => format!("no worker: {message}"),
            }),
        }
    }
}
