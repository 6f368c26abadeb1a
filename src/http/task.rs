//! A download as an engine task, for each way the engine runs it: in this
//! process on a blocking client ([`Blocking`]: `sequential`, `threads`), on the
//! async client ([`Asynchronous`]: `async`), or in worker processes
//! ([`InWorkers`], the parent's side; [`worker`], the worker's). Every one runs
//! the same download code with the same [`Context`]; they differ in the client
//! and in where names and progress are decided: a worker asks its parent to
//! reserve a name, so reservation stays one decision under one lock for the run.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::request::Job;
use super::resolve::{Answer, NotResolved, Resolver};
use crate::console::Console;
use crate::engine::processes::{Lost, Parent, Remote, WorkerProgram};
use crate::engine::{self, AsyncTask, Queue, Sink, Strategy, Task, Work};
use crate::fs::manifest::{self, Entry, Known, Manifest};
use crate::fs::names::{NameRegistry, PART_SUFFIX};
use crate::fs::system::{FileIdentity, identity_at};
use crate::http::{
    AsyncClient, BlockingClient, Context, DownloadError, Outcome, ProgressSink, Saved, Settings,
    async_client, blocking_agent, fetch_async, fetch_blocking,
};

/// The name of the download task for `grab __worker`.
pub const TASK: &str = "get";

/// Held while a download talks to its host.
pub type HostPermit = async_lock::SemaphoreGuardArc;

/// `--per-host`: at most `limit` downloads talk to one host (and port) at once.
/// The semaphore waits both ways, so blocking and async workers share it.
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
        self.semaphore_for(&job.url)
    }

    fn semaphore_for(&self, url: &url::Url) -> Arc<async_lock::Semaphore> {
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = crate::lock(&self.hosts);
        hosts
            .entry(host)
            .or_insert_with(|| Arc::new(async_lock::Semaphore::new(self.limit)))
            .clone()
    }

    /// A slot on `url`'s host if it is under its limit now, without waiting:
    /// for the extra connections of a split download, which run only where
    /// there is room.
    pub fn try_enter(&self, url: &url::Url) -> Option<HostPermit> {
        self.semaphore_for(url).try_acquire_arc()
    }

    /// Waits, on a blocking worker, until the job's host is under its limit.
    pub fn enter_blocking(gate: Option<&HostGate>, job: &Job) -> Option<HostPermit> {
        gate.map(|gate| gate.semaphore(job).acquire_arc_blocking())
    }

    /// Waits, on an async worker, until the job's host is under its limit.
    pub async fn enter(gate: Option<&HostGate>, job: &Job) -> Option<HostPermit> {
        match gate {
            Some(gate) => Some(gate.semaphore(job).acquire_arc().await),
            None => None,
        }
    }
}

/// Downloads on this process, sharing one client: a blocking one ([`Blocking`],
/// whose keep-alive pool holds a connection per worker thread) or an async one
/// ([`Asynchronous`]).
pub struct Downloads<Client> {
    pub context: Context,
    pub hosts: Option<Arc<HostGate>>,
    client: Client,
}

/// Downloads on threads (`sequential`, `threads`, and inside a worker process).
pub type Blocking = Downloads<BlockingClient>;

/// Downloads as async tasks.
pub type Asynchronous = Downloads<AsyncClient>;

/// The client a process's downloads share, made for so many at once.
pub trait Connect: Sized {
    fn connect(context: &Context, workers: usize) -> anyhow::Result<Self>;
}

impl Connect for BlockingClient {
    fn connect(context: &Context, workers: usize) -> anyhow::Result<Self> {
        Ok(blocking_agent(
            &context.settings,
            &context.resolver,
            workers,
        ))
    }
}

impl Connect for AsyncClient {
    fn connect(context: &Context, workers: usize) -> anyhow::Result<Self> {
        async_client(&context.settings, &context.resolver, workers)
    }
}

impl<Client: Connect> Downloads<Client> {
    /// For `workers` downloads at once: threads ([`Blocking`]) or tasks
    /// ([`Asynchronous`]).
    pub fn new(
        mut context: Context,
        hosts: Option<Arc<HostGate>>,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let client = Client::connect(&context, workers)?;
        context.hosts = hosts.clone();
        Ok(Downloads {
            context,
            hosts,
            client,
        })
    }
}

impl<Client: Send + Sync> Work for Downloads<Client> {
    type Job = Job;
    type Outcome = Outcome;
}

impl Task for Blocking {
    fn run(&self, job: Job, _worker: &str) -> Outcome {
        let _host = HostGate::enter_blocking(self.hosts.as_deref(), &job);
        fetch_blocking(&self.client, &job, &self.context)
    }
}

impl AsyncTask for Asynchronous {
    async fn run(&self, job: Job, _worker: &str) -> Outcome {
        let _host = HostGate::enter(self.hosts.as_deref(), &job).await;
        fetch_async(&self.client, &job, &self.context).await
    }
}

/// Runs queued downloads to their outcomes with `strategy`, `workers` at once:
/// the one dispatch `grab get` and `grab dataset` share. A download that finds
/// the disk full halts the run (the queue's [`engine::Interrupt::halt`]): no
/// other download starts, and one error line says which folder is full.
/// Errors only when the strategy cannot start (a client, a thread, a worker
/// program).
#[allow(clippy::too_many_arguments)]
pub fn run(
    strategy: Strategy,
    context: Context,
    hosts: Option<Arc<HostGate>>,
    workers: usize,
    queue: &Queue<Job>,
    sink: &Sink<Outcome>,
    program: &WorkerProgram,
    console: &Console,
) -> anyhow::Result<()> {
    let sink: &Sink<Outcome> = &{
        let (sink, interrupt, console) = (sink.clone(), queue.interrupt().clone(), console.clone());
        Arc::new(move |outcome: Outcome, ran: engine::Ran| {
            if let Some(reason) = outcome.error().and_then(DownloadError::stops_the_run) {
                halt(&interrupt, &console, &reason);
            }
            sink(outcome, ran)
        }) as Sink<Outcome>
    };
    match strategy {
        Strategy::Sequential => Blocking::new(context, hosts, 1)
            .map(|task| engine::threads::sequential(&task, queue, sink)),
        Strategy::Threads => Blocking::new(context, hosts, workers).and_then(|task| {
            engine::threads::run(&task, workers, queue, sink).map_err(anyhow::Error::from)
        }),
        Strategy::Processes => engine::processes::run(
            &InWorkers {
                context,
                hosts,
                workers,
            },
            program,
            workers,
            queue,
            sink,
            console,
        )
        .map_err(anyhow::Error::from),
        Strategy::Async => Asynchronous::new(context, hosts, workers)
            .and_then(|task| engine::asynchronous::run(Arc::new(task), workers, queue, sink)),
    }
}

/// Stops the run for `reason` (a full disk), saying so once: the first
/// caller's reason is the one kept and printed.
pub fn halt(interrupt: &engine::Interrupt, console: &Console, reason: &str) {
    if interrupt.halt(reason) {
        console.error(&format!(
            "{reason}: stopping, no new downloads start; what is complete stays, \
             and running again once there is room resumes the rest"
        ));
    }
}

/// What a download worker says to its parent mid-job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Asks for the desired name or its first free alternative.
    Reserve {
        desired: String,
        #[serde(default)]
        rank: Option<u64>,
    },
    /// Gives back a name whose download failed.
    Release {
        name: String,
    },
    Progress {
        event: ProgressEvent,
    },
    /// Asks for a host's addresses: the parent's resolver answers for every
    /// worker, so the run asks the name servers once per host, not once per
    /// worker.
    Resolve {
        host: String,
    },
}

/// The parent's answer to [`Message::Reserve`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Reserved { name: String },
    ReserveFailed { message: String },
    Resolved { answer: Answer },
}

/// A worker's transfer, for the parent's live view.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProgressEvent {
    Started { label: String, total: Option<u64> },
    Advanced { bytes: u64 },
    Ended,
}

/// The parent's side of downloads in worker processes: it owns the names and
/// the per-host limit, and shows the workers' transfers in its live view.
pub struct InWorkers {
    /// The parent's context: its names, its progress view.
    pub context: Context,
    pub hosts: Option<Arc<HostGate>>,
    /// How many worker processes share `--limit-rate`.
    pub workers: usize,
}

/// What the parent holds for one attempt in a worker.
#[derive(Default)]
pub struct Held {
    /// Kept until the attempt ends: the host's slot is this job's meanwhile.
    _host: Option<HostPermit>,
    names: Vec<String>,
    transfer: Option<u64>,
    /// The file at the job's planned name before the attempt (`--force`
    /// replaces it): after a worker dies, a file there is the attempt's only if
    /// it is another file.
    planned_before: Option<FileIdentity>,
}

impl Work for InWorkers {
    type Job = Job;
    type Outcome = Outcome;
}

impl Remote for InWorkers {
    type Message = Message;
    type Reply = Reply;
    type Conversation = Held;

    fn worker_task(&self) -> (&'static str, String) {
        // Each worker paces itself: with a share of the total, the run as a
        // whole never passes it (a lone transfer then gets only its share).
        let mut settings = (*self.context.settings).clone();
        settings.rates.total = settings
            .rates
            .total
            .map(|rate| (rate / self.workers.max(1) as u64).max(1));
        let settings = serde_json::to_string(&settings).expect("settings serialise to JSON");
        (TASK, settings)
    }

    fn describe(&self, job: &Job) -> String {
        job.url.to_string()
    }

    fn begin(&self, job: &Job) -> Held {
        let directory = &self.context.settings.output_dir;
        Held {
            _host: HostGate::enter_blocking(self.hosts.as_deref(), job),
            planned_before: job
                .plan
                .as_ref()
                .and_then(|plan| identity_at(&directory.join(&plan.name))),
            ..Held::default()
        }
    }

    /// A worker commits a file (renames its part to its name) before it records
    /// it in the manifest and reports it: killed in between, it leaves a whole
    /// file that a retry must not fetch again under `NAME-1`. The file is the
    /// attempt's when it sits at a name reserved for the attempt (free on disk
    /// when reserved) or is a new file at the planned name. Its manifest entry
    /// is written here if the worker died before writing it.
    fn recover(&self, job: &Job, held: &mut Held) -> Option<Outcome> {
        let directory = &self.context.settings.output_dir;
        let planned = job.plan.as_ref().map(|plan| plan.name.as_str());
        let name = held
            .names
            .iter()
            .map(String::as_str)
            .chain(planned)
            .find(|&name| {
                let now = identity_at(&directory.join(name));
                now.is_some() && (Some(name) != planned || now != held.planned_before)
            })?
            .to_string();
        let path = directory.join(&name);
        let size = std::fs::symlink_metadata(&path).ok()?.len();
        // Hashed whole, whatever the manifest says: a fresh download records
        // nothing before its only write, so an entry with this name and size
        // may be an earlier run's, for other bytes.
        let sha256 = manifest::sha256_of_file(&path).ok()?;
        let recorded = Known::load(directory).ok().is_some_and(|known| {
            matches!(known.get(job.url.as_str()), Some(Entry::Saved {
                name: saved,
                size: saved_size,
                sha256: saved_sha256,
                ..
            }) if *saved == name && *saved_size == size && *saved_sha256 == sha256)
        });
        if !recorded && let Some(manifest) = &self.context.manifest {
            let _ = manifest.append(&Entry::saved(&job.url, &name, size, &sha256));
        }
        // The name now belongs to the file on disk: not released with the rest.
        held.names.retain(|kept| *kept != name);
        let saved = Saved::found(name, size, sha256);
        Some(Outcome::recovered(job.clone(), saved, 1))
    }

    fn answer(&self, message: Message, held: &mut Held) -> Option<Reply> {
        let names = &self.context.names;
        match message {
            Message::Reserve { desired, rank } => Some(match names.reserve(&desired, rank) {
                Ok(name) => {
                    held.names.push(name.clone());
                    Reply::Reserved { name }
                }
                Err(error) => Reply::ReserveFailed {
                    message: error.to_string(),
                },
            }),
            Message::Resolve { host } => Some(Reply::Resolved {
                answer: self.context.resolver.answer_blocking(&host),
            }),
            Message::Release { name } => {
                held.names.retain(|kept| *kept != name);
                names.release(&name);
                None
            }
            Message::Progress { event } => {
                if let Some(sink) = &self.context.progress {
                    match event {
                        ProgressEvent::Started { label, total } => {
                            if let Some(id) = held.transfer.replace(sink.started(&label, total)) {
                                sink.ended(id);
                            }
                        }
                        ProgressEvent::Advanced { bytes } => {
                            if let Some(id) = held.transfer {
                                sink.advanced(id, bytes);
                            }
                        }
                        ProgressEvent::Ended => {
                            if let Some(id) = held.transfer.take() {
                                sink.ended(id);
                            }
                        }
                    }
                }
                None
            }
        }
    }

    fn end(&self, held: Held, died: bool) {
        if let (Some(sink), Some(id)) = (&self.context.progress, held.transfer) {
            sink.ended(id);
        }
        if died {
            // Whatever the dead worker was writing is junk now (it has been
            // reaped): remove its part files and give its names back.
            let directory = &self.context.settings.output_dir;
            for name in held.names {
                let _ = std::fs::remove_file(directory.join(format!("{name}{PART_SUFFIX}")));
                self.context.names.release(&name);
            }
        }
    }

    fn lost(&self, job: Job, lost: Lost) -> Outcome {
        let (error, attempts) = match lost {
            Lost::WorkerDied => (DownloadError::WorkerDied, 2),
            Lost::WorkerStart(message) => (DownloadError::WorkerStart(message), 0),
        };
        Outcome::failed(job, error, attempts)
    }

    fn timed(&self, outcome: &mut Outcome, elapsed: Duration) {
        outcome.elapsed = elapsed;
    }
}

/// Progress, as a worker reports it: to the parent, at most every 100 ms while a
/// body streams, so the pipe carries a few messages per second, not one per chunk.
struct ParentProgress {
    parent: Parent<Message, Reply>,
    pending: Mutex<(u64, Instant)>,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl ParentProgress {
    fn flush(&self, pending: &mut (u64, Instant)) {
        if pending.0 > 0 {
            let _ = self.parent.tell(Message::Progress {
                event: ProgressEvent::Advanced { bytes: pending.0 },
            });
        }
        *pending = (0, Instant::now());
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, (u64, Instant)> {
        crate::lock(&self.pending)
    }
}

impl ProgressSink for ParentProgress {
    fn started(&self, label: &str, total: Option<u64>) -> u64 {
        *self.pending() = (0, Instant::now());
        let _ = self.parent.tell(Message::Progress {
            event: ProgressEvent::Started {
                label: label.to_string(),
                total,
            },
        });
        0
    }

    fn advanced(&self, _id: u64, bytes: u64) {
        let mut pending = self.pending();
        pending.0 += bytes;
        if pending.1.elapsed() >= PROGRESS_EVERY {
            self.flush(&mut pending);
        }
    }

    fn ended(&self, _id: u64) {
        let mut pending = self.pending();
        self.flush(&mut pending);
        let _ = self.parent.tell(Message::Progress {
            event: ProgressEvent::Ended,
        });
    }
}

/// Names, as a worker sees them: every reservation is the parent's decision.
struct ParentNames(Parent<Message, Reply>);

impl NameRegistry for ParentNames {
    fn reserve(&self, desired: &str, rank: Option<u64>) -> io::Result<String> {
        match self.0.ask(Message::Reserve {
            desired: desired.to_string(),
            rank,
        })? {
            Reply::Reserved { name } => Ok(name),
            Reply::ReserveFailed { message } => Err(io::Error::other(message)),
            Reply::Resolved { .. } => Err(io::Error::other("the parent answered something else")),
        }
    }

    fn release(&self, name: &str) {
        let _ = self.0.tell(Message::Release {
            name: name.to_string(),
        });
    }

    fn claim(&self, _name: &str) {
        // Claims are made by the parent's planner, before a job is handed out.
    }
}

/// A host's addresses, as the parent's resolver gives them.
fn ask_parent(parent: &Parent<Message, Reply>, host: &str) -> Answer {
    let failed = |reason: String| Answer {
        addresses: Err(NotResolved {
            host: host.to_string(),
            reason,
        }),
        valid_for: std::time::Duration::ZERO,
    };
    match parent.ask(Message::Resolve {
        host: host.to_string(),
    }) {
        Ok(Reply::Resolved { answer }) => answer,
        Ok(_) => failed("the parent answered something else".to_string()),
        Err(error) => failed(format!("cannot ask the parent: {error}")),
    }
}

/// Set in a worker's environment, makes it die right after it commits a file,
/// before it reports it: the moment a kill costs most. Only tests set it; it
/// stands in for a `kill -9` that no test could time to the instruction.
pub const EXIT_AFTER_SAVING_VARIABLE: &str = "GRAB_TEST_WORKER_EXIT_AFTER_SAVING";

/// A download worker process's task.
pub struct InWorker {
    downloads: Blocking,
    exit_after_saving: bool,
}

impl Work for InWorker {
    type Job = Job;
    type Outcome = Outcome;
}

impl Task for InWorker {
    fn run(&self, job: Job, worker: &str) -> Outcome {
        let outcome = self.downloads.run(job, worker);
        if self.exit_after_saving && outcome.saved().is_some() {
            // A crash, as a kill would be: no exit status to report, nothing
            // flushed or dropped.
            std::process::abort();
        }
        outcome
    }
}

/// The worker's side: downloads on a blocking client of its own, with names and
/// progress going through the parent, and its own appends to the manifest
/// (whole lines on an `O_APPEND` file never mix).
pub fn worker(settings: &str, parent: Parent<Message, Reply>) -> anyhow::Result<InWorker> {
    let settings: Settings =
        serde_json::from_str(settings).context("invalid download worker settings")?;
    let manifest = Manifest::open(&settings.output_dir).context("cannot open the manifest")?;
    let mut context = Context::new(settings, Arc::new(ParentNames(parent.clone())));
    context.manifest = Some(Arc::new(manifest));
    let asking = parent.clone();
    context.resolver = Arc::new(Resolver::through(Arc::new(move |host: &str| {
        ask_parent(&asking, host)
    })));
    context.progress = Some(Arc::new(ParentProgress {
        parent,
        pending: Mutex::new((0, Instant::now())),
    }));
    Ok(InWorker {
        downloads: Blocking::new(context, None, 1)?,
        exit_after_saving: std::env::var_os(EXIT_AFTER_SAVING_VARIABLE).is_some(),
    })
}
