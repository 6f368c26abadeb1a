//! `processes`: N worker processes of grab itself (the hidden `__worker`
//! subcommand), each fed one job at a time over its stdin and answering on its
//! stdout, one JSON message a line. The parent owns naming: a worker asks it to
//! reserve a name once the response head arrives, so reservation stays one decision
//! under one lock for the whole batch. One supervisor thread per worker; a worker
//! that dies mid-job (crash, `kill -9`) is replaced, and its job is given once more
//! to the new worker before it counts as failed.

use std::io::{self, BufRead, BufReader, BufWriter, Stdin, Stdout, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Batch, JobQueue, Strategy};
use crate::download::{
    Context, DownloadError, Outcome, ProgressSink, Settings, blocking_agent, fetch_blocking,
};
use crate::input::Job;
use crate::manifest::Manifest;
use crate::naming::{NameRegistry, PART_SUFFIX};

/// The hidden subcommand a worker runs as.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// Messages from the parent to a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToWorker {
    Job { job: Job },
    Reserved { name: String },
    ReserveFailed { message: String },
}

/// Messages from a worker to the parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromWorker {
    Reserve { desired: String },
    Release { name: String },
    Progress { event: ProgressEvent },
    Outcome { outcome: Box<Outcome> },
}

/// A worker's transfer, for the parent's live view.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ProgressEvent {
    Started { label: String, total: Option<u64> },
    Advanced { bytes: u64 },
    Ended,
}

pub struct Processes {
    pub jobs: usize,
    pub worker_program: PathBuf,
}

impl Strategy for Processes {
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()> {
        let settings = serde_json::to_string(&*batch.context.settings)?;
        thread::scope(|scope| -> anyhow::Result<()> {
            for index in 1..=self.jobs {
                let supervisor = Supervisor {
                    index,
                    program: &self.worker_program,
                    settings: &settings,
                    batch,
                    worker: None,
                };
                let queue = queue.clone();
                thread::Builder::new()
                    .name(format!("process-{index}"))
                    .spawn_scoped(scope, move || supervisor.run(queue))?;
            }
            Ok(())
        })
    }
}

/// A running worker process and its pipes.
struct Worker {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Worker {
    fn send(&mut self, message: &ToWorker) -> io::Result<()> {
        serde_json::to_writer(&mut self.input, message)?;
        self.input.write_all(b"\n")?;
        self.input.flush()
    }

    /// The next message, or `None` when the worker has gone (end of its stdout).
    fn receive(&mut self, line: &mut String) -> io::Result<Option<FromWorker>> {
        line.clear();
        if self.output.read_line(line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(line)
            .map(Some)
            .map_err(io::Error::other)
    }
}

/// Owns one worker slot: starts the worker, feeds it jobs, answers its name
/// requests, and replaces it when it dies.
struct Supervisor<'a> {
    index: usize,
    program: &'a PathBuf,
    settings: &'a str,
    batch: &'a Batch,
    worker: Option<Worker>,
}

impl Supervisor<'_> {
    fn run(mut self, queue: JobQueue) {
        while let Some(job) = self.batch.next_blocking(&queue) {
            let _host = self.batch.enter_host_blocking(&job);
            let started = Instant::now();
            let started_at = self.batch.clock();
            let mut outcome = match self.attempt(&job) {
                Some(outcome) => outcome,
                // A worker crash is not the URL's fault: one more try, in a new worker.
                None => {
                    self.batch.reporter.notice(&format!(
                        "worker process-{} died during {}; retrying in a new worker",
                        self.index, job.url
                    ));
                    self.attempt(&job).unwrap_or_else(|| Outcome {
                        job: job.clone(),
                        result: Err(DownloadError::WorkerDied),
                        elapsed: Default::default(),
                        attempts: 2,
                        first_byte: None,
                        worker: String::new(),
                        started_at: Default::default(),
                    })
                }
            };
            // The job's time includes any attempt lost with a dead worker.
            outcome.elapsed = started.elapsed();
            self.batch
                .record_as(outcome, &format!("process-{}", self.index), started_at);
        }
        if let Some(mut worker) = self.worker.take() {
            // Closing its stdin tells the worker to exit.
            drop(worker.input);
            let _ = worker.child.wait();
        }
    }

    fn spawn(&self) -> anyhow::Result<Worker> {
        let mut child = Command::new(self.program)
            // Its own process group: a Ctrl-C at the terminal reaches only the
            // parent, which decides how the batch stops.
            .process_group(0)
            .arg(WORKER_SUBCOMMAND)
            .arg("--settings")
            .arg(self.settings)
            .env("GRAB_WORKER_INDEX", self.index.to_string())
            .env(PARENT_VARIABLE, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start worker process {}", self.program.display()))?;
        let input = BufWriter::new(child.stdin.take().expect("stdin is piped"));
        let output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Worker {
            child,
            input,
            output,
        })
    }

    /// One try at a job; `None` when the worker died during it (the names it held
    /// for the job are given back and its part files removed).
    fn attempt(&mut self, job: &Job) -> Option<Outcome> {
        let worker = match self.worker.take() {
            Some(worker) => worker,
            None => match self.spawn() {
                Ok(worker) => worker,
                Err(error) => {
                    return Some(Outcome {
                        job: job.clone(),
                        result: Err(DownloadError::Network(format!("{error:#}"))),
                        elapsed: Default::default(),
                        attempts: 0,
                        first_byte: None,
                        worker: String::new(),
                        started_at: Default::default(),
                    });
                }
            },
        };
        let mut worker = worker;
        let mut held_names: Vec<String> = Vec::new();
        // The worker's transfer in the parent's live view.
        let mut transfer: Option<u64> = None;
        let names = &self.batch.context.names;
        let mut line = String::new();
        let mut conversation = || -> io::Result<Option<Outcome>> {
            worker.send(&ToWorker::Job { job: job.clone() })?;
            loop {
                match worker.receive(&mut line)? {
                    None => return Ok(None),
                    Some(FromWorker::Reserve { desired }) => {
                        let reply = match names.reserve(&desired) {
                            Ok(name) => {
                                held_names.push(name.clone());
                                ToWorker::Reserved { name }
                            }
                            Err(error) => ToWorker::ReserveFailed {
                                message: error.to_string(),
                            },
                        };
                        worker.send(&reply)?;
                    }
                    Some(FromWorker::Release { name }) => {
                        held_names.retain(|held| *held != name);
                        names.release(&name);
                    }
                    Some(FromWorker::Progress { event }) => {
                        let sink = &self.batch.reporter;
                        match event {
                            ProgressEvent::Started { label, total } => {
                                if let Some(id) = transfer.replace(sink.started(&label, total)) {
                                    sink.ended(id);
                                }
                            }
                            ProgressEvent::Advanced { bytes } => {
                                if let Some(id) = transfer {
                                    sink.advanced(id, bytes);
                                }
                            }
                            ProgressEvent::Ended => {
                                if let Some(id) = transfer.take() {
                                    sink.ended(id);
                                }
                            }
                        }
                    }
                    Some(FromWorker::Outcome { outcome }) => return Ok(Some(*outcome)),
                }
            }
        };
        let result = conversation();
        if let Some(id) = transfer {
            self.batch.reporter.ended(id);
        }
        match result {
            Ok(Some(outcome)) => {
                self.worker = Some(worker);
                Some(outcome)
            }
            Ok(None) | Err(_) => {
                // Whatever the dead worker was writing is junk now: remove its part
                // files and give its names back.
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                let directory = &self.batch.context.settings.output_dir;
                for name in held_names {
                    let _ = std::fs::remove_file(directory.join(format!("{name}{PART_SUFFIX}")));
                    names.release(&name);
                }
                None
            }
        }
    }
}

/// The parent's pid, passed to each worker.
const PARENT_VARIABLE: &str = "GRAB_PARENT_PID";

/// A worker must not outlive its parent: after a `kill -9` of the parent it would
/// go on writing a part file that a `--continue` run is about to resume. The kernel
/// kills it when the parent (the supervisor thread that started it) goes; a parent
/// already gone before this call is caught by comparing the pid.
fn die_with_parent() -> anyhow::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .context("cannot tie the worker to its parent")?;
    let expected = std::env::var(PARENT_VARIABLE)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok());
    if expected.is_some_and(|pid| nix::unistd::getppid().as_raw() != pid) {
        anyhow::bail!("the parent is gone");
    }
    Ok(())
}

/// The worker's end of the pipes.
struct Pipe {
    input: Mutex<BufReader<Stdin>>,
    output: Mutex<Stdout>,
}

impl Pipe {
    fn send(&self, message: &FromWorker) -> io::Result<()> {
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        output.write_all(&line)?;
        output.flush()
    }

    fn receive(&self) -> io::Result<Option<ToWorker>> {
        let mut line = String::new();
        let mut input = self
            .input
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(io::Error::other)
    }
}

/// Progress, as a worker reports it: to the parent, at most every 100 ms while a
/// body streams, so the pipe carries a few messages per second, not one per chunk.
struct ParentProgress {
    pipe: Arc<Pipe>,
    pending: Mutex<(u64, Instant)>,
}

const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl ParentProgress {
    fn flush(&self, pending: &mut (u64, Instant)) {
        if pending.0 > 0 {
            let _ = self.pipe.send(&FromWorker::Progress {
                event: ProgressEvent::Advanced { bytes: pending.0 },
            });
        }
        *pending = (0, Instant::now());
    }
}

impl crate::download::ProgressSink for ParentProgress {
    fn started(&self, label: &str, total: Option<u64>) -> u64 {
        *self
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = (0, Instant::now());
        let _ = self.pipe.send(&FromWorker::Progress {
            event: ProgressEvent::Started {
                label: label.to_string(),
                total,
            },
        });
        0
    }

    fn advanced(&self, _id: u64, bytes: u64) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        pending.0 += bytes;
        if pending.1.elapsed() >= PROGRESS_EVERY {
            self.flush(&mut pending);
        }
    }

    fn ended(&self, _id: u64) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.flush(&mut pending);
        let _ = self.pipe.send(&FromWorker::Progress {
            event: ProgressEvent::Ended,
        });
    }
}

/// Names, as a worker sees them: every reservation is the parent's decision.
struct ParentNames(Arc<Pipe>);

impl NameRegistry for ParentNames {
    fn reserve(&self, desired: &str) -> io::Result<String> {
        self.0.send(&FromWorker::Reserve {
            desired: desired.to_string(),
        })?;
        match self.0.receive()? {
            Some(ToWorker::Reserved { name }) => Ok(name),
            Some(ToWorker::ReserveFailed { message }) => Err(io::Error::other(message)),
            other => Err(io::Error::other(format!(
                "unexpected answer from the parent: {other:?}"
            ))),
        }
    }

    fn release(&self, name: &str) {
        let _ = self.0.send(&FromWorker::Release {
            name: name.to_string(),
        });
    }

    fn claim(&self, _name: &str) {
        // Claims are made by the parent's planner, before a job is handed out.
    }
}

/// The body of `grab __worker`: downloads the jobs the parent sends until its
/// stdin closes.
pub fn worker_main(settings_json: &str) -> anyhow::Result<()> {
    die_with_parent()?;
    let settings: Settings =
        serde_json::from_str(settings_json).context("invalid worker settings")?;
    let pipe = Arc::new(Pipe {
        input: Mutex::new(BufReader::new(io::stdin())),
        output: Mutex::new(io::stdout()),
    });
    let agent = blocking_agent(&settings, 1);
    let manifest = Manifest::open(&settings.output_dir).context("cannot open the manifest")?;
    let mut context = Context::new(settings, Arc::new(ParentNames(pipe.clone())));
    // Each worker appends its own entries; whole lines on an O_APPEND file never mix.
    context.manifest = Some(Arc::new(manifest));
    context.progress = Some(Arc::new(ParentProgress {
        pipe: pipe.clone(),
        pending: Mutex::new((0, Instant::now())),
    }));
    let index = std::env::var("GRAB_WORKER_INDEX").unwrap_or_default();
    let _span = tracing::debug_span!("worker", name = %format!("process-{index}")).entered();
    while let Some(message) = pipe.receive()? {
        match message {
            ToWorker::Job { job } => {
                let outcome = fetch_blocking(&agent, &job, &context);
                pipe.send(&FromWorker::Outcome {
                    outcome: Box::new(outcome),
                })?;
            }
            other => anyhow::bail!("worker expected a job, got {other:?}"),
        }
    }
    Ok(())
}
