//! The `processes` strategy of `grab filter`: worker processes of grab itself
//! (the hidden `__filter-worker` subcommand), each fed one job at a time on its
//! stdin and answering with the outcome on its stdout, one JSON line each, as the
//! download workers of `grab get` do. A job is a pair of paths, so nothing else
//! crosses the pipe: the worker reads, filters and writes the image itself. A
//! worker that dies mid-job (crash, out of memory, `kill -9`) is replaced and the
//! job tried once more in the new one before it counts as failed.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use super::{FilterError, Job, Outcome, Reporter, Settings, filter_file};

/// The hidden subcommand a filter worker runs as.
pub const WORKER_SUBCOMMAND: &str = "__filter-worker";

/// A running worker process and its pipes.
struct Worker {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    line: String,
}

impl Worker {
    /// Sends a job and waits for its outcome; `None` when the worker is gone.
    fn filter(&mut self, job: &Job) -> Option<Outcome> {
        let mut exchange = || -> io::Result<Option<Outcome>> {
            serde_json::to_writer(&mut self.input, job)?;
            self.input.write_all(b"\n")?;
            self.input.flush()?;
            self.line.clear();
            if self.output.read_line(&mut self.line)? == 0 {
                return Ok(None);
            }
            serde_json::from_str(&self.line)
                .map(Some)
                .map_err(io::Error::other)
        };
        exchange().ok().flatten()
    }
}

/// Owns one worker slot: starts its process on the first job, feeds it jobs,
/// and replaces it when it dies.
pub(super) struct Supervisor {
    index: usize,
    program: PathBuf,
    settings: String,
    reporter: Arc<Reporter>,
    worker: Option<Worker>,
}

impl Supervisor {
    /// `settings` is the batch's [`Settings`] as JSON, passed to every worker.
    pub(super) fn new(
        index: usize,
        program: PathBuf,
        settings: String,
        reporter: Arc<Reporter>,
    ) -> Supervisor {
        Supervisor {
            index,
            program,
            settings,
            reporter,
            worker: None,
        }
    }

    /// Filters one job in the worker process, timed from here (pipes included).
    pub(super) fn filter(&mut self, job: &Job) -> Outcome {
        let started = Instant::now();
        let path = job.input.display().to_string();
        let mut outcome = match self.attempt(job) {
            Ok(Some(outcome)) => Ok(outcome),
            // A worker crash may be the machine's doing, not the image's: one
            // more try, in a new worker.
            Ok(None) => {
                self.reporter.notice(&format!(
                    "filter worker process-{} died during {path}; retrying in a new worker",
                    self.index
                ));
                match self.attempt(job) {
                    Ok(Some(outcome)) => Ok(outcome),
                    Ok(None) => Err(FilterError::WorkerDied { path }),
                    Err(message) => Err(FilterError::WorkerStart { path, message }),
                }
            }
            Err(message) => Err(FilterError::WorkerStart { path, message }),
        }
        .unwrap_or_else(|error| Outcome {
            job: job.clone(),
            result: Err(error),
            elapsed: Default::default(),
        });
        outcome.elapsed = started.elapsed();
        outcome
    }

    /// One try: `Ok(None)` when the worker died during it (it is then reaped),
    /// `Err` when no worker could be started.
    fn attempt(&mut self, job: &Job) -> Result<Option<Outcome>, String> {
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => self.spawn().map_err(|error| format!("{error:#}"))?,
        };
        match worker.filter(job) {
            Some(outcome) => {
                self.worker = Some(worker);
                Ok(Some(outcome))
            }
            None => {
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                Ok(None)
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<Worker> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_SUBCOMMAND)
            .arg("--settings")
            .arg(&self.settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        Ok(Worker {
            input: BufWriter::new(child.stdin.take().expect("stdin is piped")),
            output: BufReader::new(child.stdout.take().expect("stdout is piped")),
            child,
            line: String::new(),
        })
    }

    /// Closes the worker's stdin, which tells it to exit, and waits for it.
    pub(super) fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            let Worker {
                mut child, input, ..
            } = worker;
            drop(input);
            let _ = child.wait();
        }
    }
}

/// The body of `grab __filter-worker`: filters the jobs the parent sends, one
/// JSON line each, until its stdin closes.
pub fn worker_main(settings_json: &str) -> anyhow::Result<()> {
    let settings: Settings =
        serde_json::from_str(settings_json).context("invalid filter worker settings")?;
    let mut output = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let job: Job = serde_json::from_str(&line?).context("invalid job from the parent")?;
        let outcome = filter_file(&job, &settings);
        serde_json::to_writer(&mut output, &outcome)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}
