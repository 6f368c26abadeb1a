//! The engine every command runs its work on: jobs in, outcomes out. It knows
//! nothing of HTTP or pixels. A client (`get`, `filter`, the mock of the tests)
//! describes one unit of work as a [`Task`]; the engine keeps N of them running
//! at once in one of four ways and hands each outcome to the client's sink, on
//! the thread that finished it.
//!
//! - the [`Queue`]: bounded, fed by a producer thread, closed by it or by an
//!   [`Interrupt`] (Ctrl-C), after which no worker takes another job;
//! - `threads`: the blocking worker loop, on the calling thread (`sequential`)
//!   or on N scoped threads;
//! - `processes`: N worker processes of grab itself, one supervisor thread each,
//!   one line protocol, workers that die with their parent, a worker that dies
//!   mid-job replaced and its job tried once more;
//! - `asynchronous`: N tasks on single-threaded tokio runtimes, one per core,
//!   for an [`AsyncTask`];
//! - `system`: what differs between systems in running workers (Ctrl-C kept
//!   from them, their tie to the parent);
//! - `mock`: a task whose jobs sleep, fail, ask the parent or kill their worker
//!   on request, so engine tests are deterministic;
//! - `limits`: the open-file limit, raised at start, and the work in flight
//!   it allows;
//! - `view`: the one live view's thread, a bar or a heartbeat, for every
//!   command.

pub(crate) mod asynchronous;
pub(crate) mod budget;
pub(crate) mod limits;
pub(crate) mod mock;
pub(crate) mod processes;
mod system;
pub(crate) mod threads;
pub(crate) mod view;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Named;
pub use asynchronous::run as run_async;
pub use mock::{Die, Mock, MockJob, MockOutcome, TASK as MOCK_TASK};
pub use processes::{WORKER_SUBCOMMAND, WorkerProgram, run as run_processes};
pub use system::WATCH_PIPE_VARIABLE;
pub use threads::{run as run_threads, sequential as run_sequential};

/// How many jobs run at once, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One job after another on the calling thread.
    Sequential,
    /// N OS threads sharing the task.
    Threads,
    /// N worker processes of grab itself, fed over pipes.
    Processes,
    /// N tasks on single-threaded tokio runtimes, one per core.
    Async,
}

named!(Strategy {
    Sequential => "sequential": "one job after another",
    Threads => "threads": "a pool of OS threads",
    Processes => "processes": "worker processes of grab itself, fed over pipes",
    Async => "async": "tasks on an event loop per core, each with its own async client",
});

impl Strategy {
    /// Jobs in flight for `jobs` asked: `sequential` always has one.
    pub fn workers(self, jobs: usize) -> usize {
        match self {
            Strategy::Sequential => 1,
            _ => jobs.max(1),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What a client's work is made of: the job that goes in and the outcome that
/// comes out, however the engine runs it ([`Task`], [`AsyncTask`],
/// `processes::Remote`).
pub trait Work: Send + Sync {
    type Job: Send;
    type Outcome: Send;
}

/// One unit of work, run on whichever thread the strategy gives it (in a worker
/// process, on that process's thread).
pub trait Task: Work {
    /// Runs one job to its outcome. A failure is an outcome, never a panic.
    fn run(&self, job: Self::Job, worker: &str) -> Self::Outcome;
}

/// A task whose jobs wait on I/O without holding a thread.
pub trait AsyncTask: Work<Job: 'static, Outcome: 'static> + 'static {
    fn run(&self, job: Self::Job, worker: &str) -> impl Future<Output = Self::Outcome> + Send;
}

/// Who ran a job and when it left the queue, handed to the sink with its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Ran<'a> {
    /// `main`, `thread-3`, `process-2`, `task-17`.
    pub worker: &'a str,
    pub taken: Instant,
}

/// Where outcomes go, called on the thread that finished the job. It may block
/// (a full downstream queue), which holds that worker back.
pub type Sink<Outcome> = Arc<dyn Fn(Outcome, Ran<'_>) + Send + Sync>;

/// The run's stop, as the engine sees it: Ctrl-C (how many times it was asked
/// to stop), or a halt for a reason that ends the run for every job alike (a
/// full disk). Either stops workers from taking new jobs. While a client
/// watches (see [`Interrupt::watch`]), what a second Ctrl-C means is the
/// client's to decide (`get` finishes its report, then exits); otherwise the
/// second signal exits at once.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<InterruptState>);

#[derive(Debug, Default)]
struct InterruptState {
    count: AtomicUsize,
    watched: AtomicBool,
    /// Why the run halted, the first reason given.
    halt: OnceLock<String>,
}

impl Interrupt {
    /// A flag raised by SIGINT and SIGTERM. The second signal exits at once with
    /// status 130 unless a client watches; the third does in any case, for a run
    /// stuck past its client's own handling.
    ///
    /// signal-hook is the one handler on every system: on Windows, the C
    /// runtime raises SIGINT for Ctrl-C in the console (SIGTERM
    /// never comes there: `taskkill /F` kills outright, as `kill -9` does).
    pub fn on_signals() -> std::io::Result<Interrupt> {
        let interrupt = Interrupt::default();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let state = interrupt.0.clone();
            // SAFETY: the handler only touches atomics and calls `_exit`, all
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    let before = state.count.fetch_add(1, Ordering::SeqCst);
                    if before >= 2 || (before >= 1 && !state.watched.load(Ordering::SeqCst)) {
                        signal_hook::low_level::exit(
                            crate::exit::ExitStatus::Interrupted.code().into(),
                        );
                    }
                })?;
            }
        }
        Ok(interrupt)
    }

    pub fn request(&self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a stop was asked for at all.
    pub fn requested(&self) -> bool {
        self.count() > 0
    }

    /// Stops the run for a reason no job can get past (a full disk): workers
    /// take no new job, as after a first Ctrl-C, but the user did not ask for
    /// it. True for the first reason given, the one kept (and to be told).
    pub fn halt(&self, reason: impl Into<String>) -> bool {
        self.0.halt.set(reason.into()).is_ok()
    }

    /// Why the run halted, if it did.
    pub fn halted(&self) -> Option<&str> {
        self.0.halt.get().map(String::as_str)
    }

    /// Whether workers should take no new job: Ctrl-C, or a halt.
    pub fn stopping(&self) -> bool {
        self.requested() || self.0.halt.get().is_some()
    }

    /// How many times a stop was asked for.
    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Says that a client handles further requests until the guard is dropped.
    pub fn watch(&self) -> Watching {
        self.0.watched.store(true, Ordering::SeqCst);
        Watching(self.clone())
    }
}

/// While alive, a second Ctrl-C is left to the client that watches.
pub struct Watching(Interrupt);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.0.watched.store(false, Ordering::SeqCst);
    }
}

/// How full the queue may get again before a producer that found it full is
/// woken: half of it. Woken at every job taken, a producer thread would cost two
/// thread switches per job (the worker wakes it, it sends one job and sleeps
/// again); woken at half, two per half a queue.
struct Room {
    /// A producer sleeps, or is about to, until the queue is down to `low`.
    waiting: AtomicBool,
    low: usize,
    lock: Mutex<()>,
    emptied: Condvar,
}

/// How long a sleeping producer waits before it looks again on its own: only a
/// queue dropped without [`Queue::close`] needs it.
const RECHECK: Duration = Duration::from_millis(50);

impl Room {
    /// After a worker took a job: wakes the producers once the queue is down to
    /// `low`. Costs an atomic load while no producer sleeps.
    fn taken<Job>(&self, receiver: &async_channel::Receiver<Job>) {
        // Pairs with the fence in `Sender::send_blocking`: either this sees
        // `waiting`, or the producer sees the job gone.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && receiver.len() <= self.low {
            self.wake();
        }
    }

    fn wake(&self) {
        let _lock = crate::lock(&self.lock);
        if self.waiting.swap(false, Ordering::Relaxed) {
            self.emptied.notify_all();
        }
    }
}

/// The producer's end of a [`Queue`].
pub struct Sender<Job> {
    sender: async_channel::Sender<Job>,
    room: Arc<Room>,
}

impl<Job> Clone for Sender<Job> {
    fn clone(&self) -> Self {
        Sender {
            sender: self.sender.clone(),
            room: self.room.clone(),
        }
    }
}

impl<Job> Sender<Job> {
    /// Queues a job, waiting while the queue is full; gives it back once the
    /// queue is closed.
    pub fn send_blocking(&self, mut job: Job) -> Result<(), async_channel::SendError<Job>> {
        loop {
            match self.sender.try_send(job) {
                Ok(()) => return Ok(()),
                Err(async_channel::TrySendError::Closed(back)) => {
                    return Err(async_channel::SendError(back));
                }
                Err(async_channel::TrySendError::Full(back)) => job = back,
            }
            let room = &self.room;
            let lock = crate::lock(&room.lock);
            room.waiting.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.sender.len() > room.low && !self.sender.is_closed() {
                // Woken by `Room::wake` under the lock, so no wake-up is missed.
                drop(room.emptied.wait_timeout(lock, RECHECK));
            }
        }
    }

    /// Queues a job if there is room now.
    pub fn try_send(&self, job: Job) -> Result<(), async_channel::TrySendError<Job>> {
        self.sender.try_send(job)
    }

    /// No more jobs: as [`Queue::close`].
    pub fn close(&self) {
        self.sender.close();
        self.room.wake();
    }
}

/// The bounded queue between a producer and the workers. A worker takes nothing
/// more once the interrupt is raised; a closed queue still yields what it holds.
pub struct Queue<Job> {
    receiver: async_channel::Receiver<Job>,
    interrupt: Interrupt,
    /// Jobs handed to a worker: what an interrupted run's summary tells apart
    /// from those never started.
    taken: Arc<AtomicU64>,
    room: Arc<Room>,
    /// Jobs a worker received after the stop and did not start: never lost,
    /// they come back with [`Queue::leftover`].
    refused: Arc<Mutex<Vec<Job>>>,
}

impl<Job> Clone for Queue<Job> {
    fn clone(&self) -> Self {
        Queue {
            receiver: self.receiver.clone(),
            interrupt: self.interrupt.clone(),
            taken: self.taken.clone(),
            room: self.room.clone(),
            refused: self.refused.clone(),
        }
    }
}

impl<Job> Queue<Job> {
    /// A queue holding at most `capacity` jobs: the producer waits beyond that,
    /// so a list of millions never sits in memory.
    pub fn bounded(capacity: usize, interrupt: Interrupt) -> (Sender<Job>, Queue<Job>) {
        let capacity = capacity.max(1);
        let (sender, receiver) = async_channel::bounded(capacity);
        let room = Arc::new(Room {
            waiting: AtomicBool::new(false),
            low: capacity / 2,
            lock: Mutex::new(()),
            emptied: Condvar::new(),
        });
        (
            Sender {
                sender,
                room: room.clone(),
            },
            Queue {
                receiver,
                interrupt,
                taken: Arc::default(),
                room,
                refused: Arc::default(),
            },
        )
    }

    /// The next job for a blocking worker; `None` when the queue is drained or
    /// the run was interrupted.
    pub fn next_blocking(&self) -> Option<Job> {
        let job = self.receiver.recv_blocking().ok()?;
        self.room.taken(&self.receiver);
        self.handed(job)
    }

    /// The next job for an async worker, as [`Queue::next_blocking`].
    pub async fn next(&self) -> Option<Job> {
        let job = self.receiver.recv().await.ok()?;
        self.room.taken(&self.receiver);
        self.handed(job)
    }

    /// The job, counted as taken, unless the run was stopped meanwhile.
    fn handed(&self, job: Job) -> Option<Job> {
        if self.interrupt.stopping() {
            crate::lock(&self.refused).push(job);
            return None;
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(job)
    }

    /// Jobs handed to workers so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// No more jobs: the producer's sends fail and workers stop once it is empty.
    pub fn close(&self) {
        self.receiver.close();
        self.room.wake();
    }

    /// After a stop: the jobs no worker started (still queued, or refused by
    /// a worker that received them after the stop), taken out of the queue,
    /// for a client that hands them back to where they came from.
    pub fn leftover(&self) -> Vec<Job> {
        let mut jobs = std::mem::take(&mut *crate::lock(&self.refused));
        while let Ok(job) = self.receiver.try_recv() {
            jobs.push(job);
        }
        jobs
    }

    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar and the slowest transfers, redrawn in place (terminals).
    Bar,
    /// A heartbeat line every `--heartbeat` seconds.
    Lines,
    /// Nothing live.
    None,
}

named!(ProgressMode {
    Bar => "bar": "a bar and the slowest transfers, redrawn in place",
    Lines => "lines": "a heartbeat line every --heartbeat seconds",
    None => "none": "nothing live",
});

/// Latency percentiles, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of a set of durations (zeros when empty).
    pub fn of(durations: &[Duration]) -> Percentiles {
        let mut seconds: Vec<f64> = durations.iter().map(Duration::as_secs_f64).collect();
        seconds.sort_by(f64::total_cmp);
        let rank = |quantile: f64| -> f64 {
            if seconds.is_empty() {
                return 0.0;
            }
            let index =
                ((quantile * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len()) - 1;
            seconds[index]
        };
        Percentiles {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_on_a_full_queue_deliver_every_job_once() {
        let (sender, queue) = Queue::bounded(4, Interrupt::default());
        let producers: Vec<_> = (0..3)
            .map(|producer| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for job in 0..200 {
                        sender.send_blocking(producer * 1000 + job).unwrap();
                    }
                })
            })
            .collect();
        drop(sender);
        let mut taken = Vec::new();
        while let Some(job) = queue.next_blocking() {
            taken.push(job);
        }
        for producer in producers {
            producer.join().unwrap();
        }
        taken.sort_unstable();
        let expected: Vec<u32> = (0..3)
            .flat_map(|producer| (0..200).map(move |job| producer * 1000 + job))
            .collect();
        assert_eq!(taken, expected);
    }

    #[test]
    fn closing_the_queue_releases_a_producer_waiting_on_it() {
        let (sender, queue) = Queue::bounded(2, Interrupt::default());
        let producer = std::thread::spawn(move || {
            let mut sent = 0;
            while sender.send_blocking(sent).is_ok() {
                sent += 1;
            }
            sent
        });
        // The producer fills the queue, then waits for room that never comes.
        while queue.receiver.len() < 2 {
            std::thread::yield_now();
        }
        queue.close();
        assert_eq!(producer.join().unwrap(), 2);
        assert_eq!(queue.next_blocking(), Some(0));
    }
}
