//! `processes`: N worker processes of grab itself (`grab __worker TASK`), each
//! owned by one supervisor thread that feeds it one job at a time over its stdin
//! and reads its stdout, one JSON message a line:
//!
//! - parent to worker: `{"job": ...}`, or `{"reply": ...}` to a message;
//! - worker to parent: `{"message": ...}` mid-job (ask for a name, report
//!   progress), then `{"outcome": ...}`.
//!
//! Decisions that must be one for the whole run (which names are taken, how many
//! requests a host gets) stay in the parent: a [`Remote`] answers its workers'
//! messages there. Workers run apart from the terminal's Ctrl-C (it reaches
//! only the parent, which decides how the run stops), die with their parent
//! (each system's way: [`super::system`]), and get their log filter in their
//! environment. A worker that dies mid-job (crash, `kill -9`, out of memory) is
//! replaced and the job given once more to the new one before it counts as lost;
//! a worker that cannot start at all is a distinct outcome.

use std::io::{self, BufRead, BufReader, BufWriter, Stdin, Stdout, Write};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::system::{apart_from_terminal, tie_to_parent, tie_to_this_process};
use super::{Queue, Ran, Sink, Task, Work};
use crate::console::Console;

/// The hidden subcommand a worker runs as: `grab __worker TASK --settings JSON`.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// The worker's name (`process-3`), passed in its environment.
const NAME_VARIABLE: &str = "GRAB_WORKER_NAME";
/// The parent's pid, passed in the worker's environment.
const PARENT_VARIABLE: &str = "GRAB_PARENT_PID";

/// The grab executable that worker processes run, and the log filter they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProgram {
    pub path: PathBuf,
    /// Given to each worker as `RUST_LOG`, so it logs as its parent does.
    pub log_filter: String,
}

impl WorkerProgram {
    /// This executable, logging at `RUST_LOG`'s level or warnings only.
    pub fn current() -> WorkerProgram {
        WorkerProgram {
            path: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("grab")),
            log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string()),
        }
    }
}

/// Why a job has no outcome from a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Its worker died during it, twice (two workers).
    WorkerDied,
    /// No worker process could be started: the message says why.
    WorkerStart(String),
}

/// The message type of a task whose workers never speak mid-job.
#[derive(Debug, Serialize, Deserialize)]
pub enum Nothing {}

/// The parent's side of a task run in worker processes.
pub trait Remote:
    Work<Job: Serialize + DeserializeOwned, Outcome: Serialize + DeserializeOwned>
{
    /// What a worker says mid-job.
    type Message: Serialize + DeserializeOwned;
    /// The parent's answer to a message that asks.
    type Reply: Serialize + DeserializeOwned;
    /// What the parent holds for one attempt at a job (names reserved for it,
    /// a host permit, its line in the live view).
    type Conversation;

    /// The task a worker runs (`grab __worker TASK`), and its settings as JSON.
    fn worker_task(&self) -> (&'static str, String);

    /// How a notice names the job (its URL, its path).
    fn describe(&self, job: &Self::Job) -> String;

    /// An attempt is about to be sent to a worker; may wait (a per-host limit).
    fn begin(&self, job: &Self::Job) -> Self::Conversation;

    /// A message from the worker during the attempt; `Some` is sent back.
    fn answer(
        &self,
        message: Self::Message,
        conversation: &mut Self::Conversation,
    ) -> Option<Self::Reply>;

    /// The attempt's worker died (it has been killed and reaped, so nothing it
    /// held is still being written): the job's outcome if the worker finished
    /// the job's work before it died, with only the report lost (a file already
    /// committed must not be fetched again under a second name). `None` retries
    /// the job. Called before [`Remote::end`], and may take from the
    /// conversation what it recovers.
    fn recover(
        &self,
        _job: &Self::Job,
        _conversation: &mut Self::Conversation,
    ) -> Option<Self::Outcome> {
        None
    }

    /// The attempt is over: `died` when its worker died during it (and has been
    /// killed and reaped, so nothing it held is still being written).
    fn end(&self, conversation: Self::Conversation, died: bool);

    /// The outcome of a job no worker could finish.
    fn lost(&self, job: Self::Job, lost: Lost) -> Self::Outcome;

    /// Sets the job's time as the parent saw it: from when it was taken, pipes
    /// and any attempt lost with a dead worker included.
    fn timed(&self, outcome: &mut Self::Outcome, elapsed: Duration);
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Down<Job, Reply> {
    Job(Job),
    Reply(Reply),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Up<Outcome, Message> {
    Message(Message),
    Outcome(Outcome),
}

/// Runs `workers` supervisors (`process-1` ... `process-N`) until the queue is
/// drained or interrupted, then closes every worker's stdin and waits for it.
/// Workers start with their supervisor's first job, so a start failure is that
/// job's outcome. Errors only when a supervisor thread cannot start.
pub fn run<R: Remote>(
    remote: &R,
    program: &WorkerProgram,
    workers: usize,
    queue: &Queue<R::Job>,
    sink: &Sink<R::Outcome>,
    console: &Console,
) -> io::Result<()> {
    let (task, settings) = remote.worker_task();
    thread::scope(|scope| {
        for index in 1..=workers.max(1) {
            let supervisor = Supervisor {
                name: format!("process-{index}"),
                remote,
                program,
                task,
                settings: &settings,
                console,
                worker: None,
            };
            thread::Builder::new()
                .name(supervisor.name.clone())
                .spawn_scoped(scope, move || supervisor.run(queue, sink))?;
        }
        Ok(())
    })
}

/// A running worker process and its pipes.
struct Worker {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    line: String,
}

impl Worker {
    fn send(&mut self, line: &str) -> io::Result<()> {
        self.input.write_all(line.as_bytes())?;
        self.input.write_all(b"\n")?;
        self.input.flush()
    }

    /// The next message, or `None` when the worker has gone (end of its stdout).
    fn receive<T: DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        self.line.clear();
        if self.output.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&self.line)
            .map(Some)
            .map_err(io::Error::other)
    }

    /// Sends a job and answers the worker's messages until its outcome; `None`
    /// when the worker is gone or spoke out of turn.
    fn converse<R: Remote>(
        &mut self,
        job: &str,
        remote: &R,
        conversation: &mut R::Conversation,
    ) -> io::Result<Option<R::Outcome>> {
        self.send(job)?;
        loop {
            match self.receive::<Up<R::Outcome, R::Message>>()? {
                None => return Ok(None),
                Some(Up::Outcome(outcome)) => return Ok(Some(outcome)),
                Some(Up::Message(message)) => {
                    if let Some(reply) = remote.answer(message, conversation) {
                        let line = serde_json::to_string(&Down::<Nothing, _>::Reply(reply))?;
                        self.send(&line)?;
                    }
                }
            }
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closing its stdin tells the worker to exit.
    fn stop(self) {
        let Worker {
            mut child, input, ..
        } = self;
        drop(input);
        let _ = child.wait();
    }
}

/// Owns one worker slot: starts the worker, feeds it jobs, has the remote answer
/// its messages, and replaces it when it dies.
struct Supervisor<'a, R: Remote> {
    name: String,
    remote: &'a R,
    program: &'a WorkerProgram,
    task: &'static str,
    settings: &'a str,
    console: &'a Console,
    worker: Option<Worker>,
}

impl<R: Remote> Supervisor<'_, R> {
    fn run(mut self, queue: &Queue<R::Job>, sink: &Sink<R::Outcome>) {
        while let Some(job) = queue.next_blocking() {
            let taken = Instant::now();
            let mut outcome = self.job(job);
            self.remote.timed(&mut outcome, taken.elapsed());
            sink(
                outcome,
                Ran {
                    worker: &self.name,
                    taken,
                },
            );
        }
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
    }

    fn job(&mut self, job: R::Job) -> R::Outcome {
        let line = match serde_json::to_string(&Down::<_, Nothing>::Job(&job)) {
            Ok(line) => line,
            Err(error) => return self.remote.lost(job, Lost::WorkerStart(error.to_string())),
        };
        let lost = match self.attempt(&job, &line) {
            Ok(outcome) => return outcome,
            // A worker's death is not the job's fault: one more try, in a new one.
            Err(Lost::WorkerDied) => {
                self.console.notice(&format!(
                    "worker {} died during {}; retrying in a new worker",
                    self.name,
                    self.remote.describe(&job)
                ));
                match self.attempt(&job, &line) {
                    Ok(outcome) => return outcome,
                    Err(lost) => lost,
                }
            }
            Err(lost) => lost,
        };
        self.remote.lost(job, lost)
    }

    fn attempt(&mut self, job: &R::Job, line: &str) -> Result<R::Outcome, Lost> {
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => self
                .spawn()
                .map_err(|error| Lost::WorkerStart(format!("{error:#}")))?,
        };
        let mut conversation = self.remote.begin(job);
        match worker.converse(line, self.remote, &mut conversation) {
            Ok(Some(outcome)) => {
                self.remote.end(conversation, false);
                self.worker = Some(worker);
                Ok(outcome)
            }
            Ok(None) | Err(_) => {
                worker.kill();
                let recovered = self.remote.recover(job, &mut conversation);
                self.remote.end(conversation, true);
                let outcome = recovered.ok_or(Lost::WorkerDied)?;
                self.console.notice(&format!(
                    "worker {} died after finishing {}; kept what it had saved",
                    self.name,
                    self.remote.describe(job)
                ));
                Ok(outcome)
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<Worker> {
        let program = &self.program.path;
        let mut command = Command::new(program);
        let mut child = apart_from_terminal(&mut command)
            .arg(WORKER_SUBCOMMAND)
            .arg(self.task)
            .arg("--settings")
            .arg(self.settings)
            .env("RUST_LOG", &self.program.log_filter)
            .env(NAME_VARIABLE, &self.name)
            .env(PARENT_VARIABLE, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start worker process {}", program.display()))?;
        if let Err(error) = tie_to_this_process(&child) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow::Error::new(error).context("cannot tie a worker process to grab"));
        }
        Ok(Worker {
            input: BufWriter::new(child.stdin.take().expect("stdin is piped")),
            output: BufReader::new(child.stdout.take().expect("stdout is piped")),
            child,
            line: String::new(),
        })
    }
}

/// The worker's end of the pipes.
struct Pipe {
    input: Input,
    output: Mutex<Stdout>,
    /// Held from a question to its answer, so two threads of a worker (a
    /// split download's connections) asking at once each get their own.
    asking: Mutex<()>,
}

/// Where the worker's lines from its parent are read.
enum Input {
    /// Here, on the job's thread, as they are needed.
    Direct(Mutex<BufReader<Stdin>>),
    /// By a watcher thread that ends the process when the pipe closes mid-job.
    Watched(Watched),
}

impl Pipe {
    fn send<T: Serialize>(&self, message: &T) -> io::Result<()> {
        let line = crate::json_line(message)?;
        let mut output = crate::lock(&self.output);
        output.write_all(&line)?;
        output.flush()
    }

    fn receive<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        let line = match &self.input {
            Input::Direct(input) => {
                let mut line = String::new();
                if crate::lock(input).read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                line
            }
            Input::Watched(watched) => match watched.receive()? {
                Some(line) => line,
                None => return Ok(None),
            },
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(io::Error::other)
    }

    /// The job's outcome is about to go: a closed pipe from now on is the
    /// parent's "no more jobs".
    fn job_done(&self) {
        if let Input::Watched(watched) = &self.input {
            watched.job_done();
        }
    }
}

/// Lines read from the parent by a watcher thread. The pipe closing while a
/// job runs means the parent is gone (the parent closes it only between
/// jobs): the watcher then calls `gone`, which ends the process, so the job
/// writes nothing more.
struct Watched {
    lines: Mutex<Receiver<io::Result<String>>>,
    /// Whether a job is running: set by the watcher as it hands over a line,
    /// cleared by the job's thread before its outcome goes.
    busy: Arc<Mutex<bool>>,
}

impl Watched {
    fn start(
        input: impl BufRead + Send + 'static,
        gone: impl FnOnce() + Send + 'static,
    ) -> Watched {
        let (sender, lines) = mpsc::channel();
        let busy = Arc::new(Mutex::new(false));
        let watcher_busy = busy.clone();
        thread::spawn(move || {
            let mut input = input;
            loop {
                let mut line = String::new();
                let read = input.read_line(&mut line);
                let mut busy = crate::lock(&watcher_busy);
                match read {
                    Ok(0) if *busy => {
                        drop(busy);
                        gone();
                        return;
                    }
                    // Closed between jobs: `receive` answers `None`.
                    Ok(0) => return,
                    Ok(_) => {
                        *busy = true;
                        if sender.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return;
                    }
                }
            }
        });
        Watched {
            lines: Mutex::new(lines),
            busy,
        }
    }

    /// The next line, or `None` once the pipe closed between jobs.
    fn receive(&self) -> io::Result<Option<String>> {
        match crate::lock(&self.lines).recv() {
            Ok(line) => line.map(Some),
            Err(mpsc::RecvError) => Ok(None),
        }
    }

    fn job_done(&self) {
        *crate::lock(&self.busy) = false;
    }
}

/// How a task running in a worker process talks to its parent mid-job.
pub struct Parent<Message, Reply> {
    pipe: Arc<Pipe>,
    types: PhantomData<fn(Message) -> Reply>,
}

impl<Message, Reply> Clone for Parent<Message, Reply> {
    fn clone(&self) -> Self {
        Parent {
            pipe: self.pipe.clone(),
            types: PhantomData,
        }
    }
}

impl<Message: Serialize, Reply: DeserializeOwned> Parent<Message, Reply> {
    /// Says something that needs no answer.
    pub fn tell(&self, message: Message) -> io::Result<()> {
        self.pipe.send(&Up::<Nothing, _>::Message(message))
    }

    /// Asks and waits for the parent's answer.
    pub fn ask(&self, message: Message) -> io::Result<Reply> {
        let _turn = crate::lock(&self.pipe.asking);
        self.tell(message)?;
        match self.pipe.receive::<Down<Nothing, Reply>>()? {
            Some(Down::Reply(reply)) => Ok(reply),
            Some(Down::Job(never)) => match never {},
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the parent closed the pipe",
            )),
        }
    }
}

/// The body of `grab __worker TASK`: builds the worker's side of the task with
/// `make` (given its line to the parent) and runs the jobs the parent sends until
/// its stdin closes. `orphaned` is called, from the thread watching the pipe,
/// when the parent is gone mid-job on a system with no kernel tie (macOS): it
/// must end the process at once, as the tie would have; ending a process is
/// the binary's call, not the library's.
pub fn serve<R, T>(
    orphaned: fn(),
    make: impl FnOnce(Parent<R::Message, R::Reply>) -> anyhow::Result<T>,
) -> anyhow::Result<()>
where
    R: Remote,
    T: Task<Job = R::Job, Outcome = R::Outcome>,
{
    let parent = std::env::var(PARENT_VARIABLE)
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok());
    let input = match tie_to_parent(parent)? {
        true => Input::Watched(Watched::start(BufReader::new(io::stdin()), orphaned)),
        false => Input::Direct(Mutex::new(BufReader::new(io::stdin()))),
    };
    let pipe = Arc::new(Pipe {
        input,
        output: Mutex::new(io::stdout()),
        asking: Mutex::new(()),
    });
    let task = make(Parent {
        pipe: pipe.clone(),
        types: PhantomData,
    })?;
    let name = std::env::var(NAME_VARIABLE).unwrap_or_else(|_| "process".to_string());
    let _span = tracing::debug_span!("worker", name = %name).entered();
    while let Some(message) = pipe.receive::<Down<R::Job, Nothing>>()? {
        match message {
            Down::Job(job) => {
                let outcome = task.run(job, &name);
                pipe.job_done();
                pipe.send(&Up::<_, Nothing>::Outcome(outcome))?;
            }
            Down::Reply(never) => match never {},
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Watched` over a fresh pipe, and how to see whether `gone` was called.
    fn watched() -> (Watched, io::PipeWriter, Receiver<()>) {
        let (reader, writer) = io::pipe().unwrap();
        let (called, gone) = mpsc::channel();
        let watched = Watched::start(BufReader::new(reader), move || {
            let _ = called.send(());
        });
        (watched, writer, gone)
    }

    /// Writes `line` into the pipe and sees `watched` hand it on.
    fn pass(watched: &Watched, writer: &mut io::PipeWriter, line: &str) {
        writer.write_all(line.as_bytes()).unwrap();
        assert_eq!(watched.receive().unwrap().as_deref(), Some(line));
    }

    #[test]
    fn a_watched_pipe_that_closes_mid_job_means_the_parent_is_gone() {
        let (watched, mut writer, gone) = watched();
        pass(&watched, &mut writer, "job one\n");
        watched.job_done();
        pass(&watched, &mut writer, "job two\n");
        drop(writer);
        assert_eq!(gone.recv(), Ok(()), "gone is called mid-job");
    }

    #[test]
    fn a_watched_pipe_that_closes_between_jobs_ends_the_lines() {
        let (watched, mut writer, gone) = watched();
        pass(&watched, &mut writer, "job\n");
        watched.job_done();
        drop(writer);
        assert_eq!(watched.receive().unwrap(), None);
        // The watcher ended without calling it: its sender is dropped unused.
        assert_eq!(gone.recv(), Err(mpsc::RecvError));
    }
}
