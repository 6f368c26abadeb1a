//! `grab get`: one run over a list of URLs, as a client of the engine. The input
//! is read on its own thread into the engine's bounded queue (a list of millions
//! is never held in memory), planned against the folder's manifest on the way
//! (complete files skipped, interrupted ones resumed), the chosen strategy drains
//! the queue, and the reporter's tally becomes the summary. Ctrl-C closes the
//! queue and gives the downloads in flight a grace period.
//!
//! - `input`: the URL stream from arguments, files and stdin;
//! - `plan`: each URL against the manifest (skip, resume, force);
//! - `single`: `-O FILE` / `-O -`, one URL to a named file or stdout;
//! - `report`: per-file lines, the tally, the live view, `--report`, the summary.
//!
//! The download itself, the manifest, the lock, names, layout and part files
//! are the leaf layers' ([`crate::http`], [`crate::fs`]).

pub(crate) mod input;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod single;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::console::Console;
use crate::engine::ProgressMode;
use crate::engine::processes::WorkerProgram;
use crate::engine::view::Ticker;
use crate::engine::{self, Interrupt, Queue, Sink, Strategy};
use crate::fs::lock::{self, FolderLock};
use crate::fs::manifest::{Known, Manifest};
use crate::fs::names::FolderNames;
use crate::http::task::HostGate;
use crate::http::{BodySink, Context, Outcome, Settings, Verdict};
use input::Inputs;
use plan::{Planned, Planner};
use report::live::BatchView;
use report::records::ReportFormat;
use report::{Reporter, Summary};

/// Everything `grab get` needs besides its inputs, already validated.
#[derive(Debug, Clone)]
pub struct GetConfig {
    pub settings: Settings,
    pub strategy: Strategy,
    /// Downloads in flight at once.
    pub jobs: usize,
    /// Connections to any one host at once, below `jobs`.
    pub per_host: Option<usize>,
    /// Where lines go, and how many.
    pub console: Console,
    /// The grab executable the `processes` strategy starts as workers.
    pub worker_program: WorkerProgram,
    /// Resume part files an earlier run left (`--continue`).
    pub resume: bool,
    /// Download again what the manifest says is complete (`--force`).
    pub force: bool,
    /// Re-check what is complete with the server's validators (`-N`): a 304
    /// keeps the file, a newer copy replaces it whole.
    pub timestamping: bool,
    /// Raised by Ctrl-C; `None` when nothing can interrupt the run.
    pub interrupt: Option<Interrupt>,
    /// How long downloads in flight may go on after an interrupt.
    pub grace: Duration,
    /// The live view: a bar, heartbeat lines, or nothing.
    pub progress: ProgressMode,
    /// Between heartbeat lines.
    pub heartbeat: Duration,
    /// Where to write one record per URL, and how.
    pub report: Option<(PathBuf, ReportFormat)>,
    /// Share the output folder with other runs that split names among
    /// themselves (`grab queue work`): its lock is taken shared.
    pub shared_folder: bool,
    /// Where bodies go: part files in the folder, or a stream (`-O -`).
    pub body: BodySink,
}

impl GetConfig {
    /// The defaults of `grab get` for a strategy, saving into `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>, strategy: Strategy) -> GetConfig {
        GetConfig {
            settings: Settings::new(output_dir),
            strategy,
            jobs: 16,
            per_host: None,
            console: Console::new(crate::console::Verbosity::Normal),
            worker_program: WorkerProgram::current(),
            resume: false,
            force: false,
            timestamping: false,
            interrupt: None,
            grace: Duration::from_secs(5),
            progress: ProgressMode::None,
            heartbeat: Duration::from_secs(5),
            report: None,
            shared_folder: false,
            body: BodySink::PartFile,
        }
    }
}

/// Where a run's URLs come from: the list (`Inputs`), or a work queue that
/// may also hand over an outcome it decided itself (a file an earlier delivery
/// of the job already committed).
pub trait Source: Send + 'static {
    /// The next job to plan (`Planned::Download`) or outcome to record as is
    /// (`Planned::Skip`); a line that is not a URL; `None` at the end.
    fn next_item(&mut self) -> Option<Result<Planned, input::InvalidLine>>;

    /// URLs dropped as repeats.
    fn duplicates(&self) -> u64 {
        0
    }

    /// Lines read but not acted on since the last call, printed as notices.
    fn take_warnings(&mut self) -> Vec<input::InvalidLine> {
        Vec::new()
    }

    /// What the number of URLs can be counted from ahead of reading, for the
    /// live view's total and an interrupted run's "never started".
    fn estimate(&self) -> Option<input::Estimate> {
        None
    }

    /// Where the jobs it gave go back when a stopped run never started them
    /// (a work queue hands them to other workers); asked once, before the
    /// run reads.
    fn on_unstarted(&self) -> Option<UnstartedHook> {
        None
    }
}

/// Takes back a job the run read from its source and never started.
pub type UnstartedHook = Arc<dyn Fn(input::Job) + Send + Sync>;

impl Source for Inputs {
    fn next_item(&mut self) -> Option<Result<Planned, input::InvalidLine>> {
        self.next().map(|item| item.map(Planned::Download))
    }

    fn duplicates(&self) -> u64 {
        Inputs::duplicates(self)
    }

    fn take_warnings(&mut self) -> Vec<input::InvalidLine> {
        Inputs::take_warnings(self)
    }

    fn estimate(&self) -> Option<input::Estimate> {
        Inputs::estimate(self)
    }
}

/// Called with every outcome once it is recorded (a saved file is committed
/// and in the manifest by then): the work queue acknowledges its jobs here.
pub type OutcomeHook = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Called with the path of each file as soon as it is saved, or found complete
/// from an earlier run, on the thread that recorded it (`grab get --filter`
/// hands images to its filter pool here; that may block while the pool's queue
/// is full, which holds downloads back).
pub type SavedHook = Arc<dyn Fn(&Path, Arrival) + Send + Sync>;

/// How a file reached a [`SavedHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Saved by this run.
    Saved,
    /// Complete from an earlier run, so not downloaded again.
    AlreadyComplete,
}

/// How far ahead of the workers the input reader may run, per job slot.
const QUEUE_PER_JOB: usize = 2;

/// Downloads everything `inputs` yields. Errors only when the run cannot go on at
/// all (the output folder cannot be made, a strategy cannot start); failed URLs
/// are counted in the summary instead.
pub fn run(config: &GetConfig, inputs: Inputs) -> anyhow::Result<Summary> {
    run_with_hook(config, inputs, None)
}

/// [`run`], calling `on_saved` with the path of each file as soon as it is saved
/// (`grab get --filter` filters there).
pub fn run_with_hook(
    config: &GetConfig,
    inputs: Inputs,
    on_saved: Option<SavedHook>,
) -> anyhow::Result<Summary> {
    run_from(config, inputs, on_saved, None)
}

/// [`run_with_hook`] over any [`Source`], calling `on_outcome` with every
/// outcome once it is recorded. With `config.shared_folder` the folder's lock
/// is taken shared: runs that split their names elsewhere (queue workers) work
/// side by side, and no `grab get` runs there meanwhile.
pub fn run_from<S: Source>(
    config: &GetConfig,
    mut inputs: S,
    on_saved: Option<SavedHook>,
    on_outcome: Option<OutcomeHook>,
) -> anyhow::Result<Summary> {
    let directory = &config.settings.output_dir;
    crate::fs::create_folder(directory, "output folder")?;
    let take = match config.shared_folder {
        true => FolderLock::share,
        false => FolderLock::take,
    };
    let lock = take(directory)
        .with_context(|| format!("cannot take the output folder {}", directory.display()))?;
    let known = Known::load(directory)
        .with_context(|| format!("cannot read the manifest in {}", directory.display()))?;
    if let [first, ..] = known.refused() {
        config.console.notice(&format!(
            "ignored {} manifest entr{} whose names are not safe file names (such as {first:?})",
            known.refused().len(),
            if known.refused().len() == 1 {
                "y"
            } else {
                "ies"
            },
        ));
    }
    let manifest = Manifest::open(directory)
        .with_context(|| format!("cannot write the manifest in {}", directory.display()))?;
    let (workers, capped) = engine::limits::cap_workers(config.strategy.workers(config.jobs), 0);
    if let Some(note) = capped {
        config.console.notice(&note);
    }
    let reporter = Arc::new(Reporter::new(
        config.console.clone(),
        config.strategy,
        workers,
    ));
    if let Some((path, format)) = &config.report {
        reporter
            .write_records(path, *format)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let interrupt = config.interrupt.clone().unwrap_or_default();
    let names = Arc::new(match config.shared_folder {
        false => FolderNames::listed(directory),
        true => FolderNames::new(directory),
    });
    let context = Context {
        manifest: Some(Arc::new(manifest)),
        interrupt: interrupt.clone(),
        progress: Some(reporter.clone()),
        body: config.body.clone(),
        ..Context::new(config.settings.clone(), names.clone())
    };
    let logins = context.logins.clone();
    let hosts = config.per_host.map(|limit| Arc::new(HostGate::new(limit)));
    let record = recorder(&reporter, on_saved, on_outcome, directory);
    let (sender, queue) = Queue::bounded(workers * QUEUE_PER_JOB, interrupt.clone());
    let mut planner = Planner {
        known,
        directory: directory.clone(),
        names,
        resume: config.resume,
        force: config.force,
        timestamping: config.timestamping,
        layout: config.settings.layout.clone(),
        ranks: Default::default(),
        stale_parts: AtomicU64::new(0),
        first_stale_part: Default::default(),
    };
    // Counts the list ahead of the reader (which runs only a queue's length
    // ahead of the downloads), so the view shows the true total from the start.
    let stop_counting = Arc::new(AtomicBool::new(false));
    let counter = inputs.estimate().and_then(|estimate| {
        let (reporter, stop) = (reporter.clone(), stop_counting.clone());
        thread::Builder::new()
            .name("count".to_string())
            .spawn(move || {
                if let Some(count) = estimate.count(&stop) {
                    reporter.live.expected.store(count, Ordering::Relaxed);
                    reporter.live.expected_known.store(true, Ordering::Relaxed);
                }
            })
            .ok()
    });
    let unstarted = inputs.on_unstarted();
    let reader = {
        let (reporter, record) = (reporter.clone(), record.clone());
        let unstarted = unstarted.clone();
        thread::Builder::new()
            .name("input".to_string())
            .spawn(move || {
                let live = &reporter.live;
                while let Some(item) = inputs.next_item() {
                    let planned = item.map(|planned| match planned {
                        Planned::Download(job) => planner.plan(job),
                        decided => decided,
                    });
                    live.duplicates
                        .store(inputs.duplicates(), Ordering::Relaxed);
                    if let Some(notice) = planner.take_stale_notice() {
                        reporter.console().notice(&notice);
                    }
                    match planned {
                        Ok(planned) => match planned {
                            Planned::Download(mut job) => {
                                job.queued_at = reporter.elapsed();
                                live.queued.fetch_add(1, Ordering::Relaxed);
                                live.read.fetch_add(1, Ordering::Relaxed);
                                if let Err(refused) = sender.send_blocking(job) {
                                    if let Some(unstarted) = &unstarted {
                                        unstarted(refused.into_inner());
                                    }
                                    // Stopped: the list's total stays the
                                    // estimate, not what was read.
                                    return (inputs.duplicates(), stale(&planner));
                                }
                            }
                            Planned::Skip(outcome) => {
                                live.read.fetch_add(1, Ordering::Relaxed);
                                record(outcome, "input");
                            }
                        },
                        Err(invalid) => {
                            live.invalid.fetch_add(1, Ordering::Relaxed);
                            reporter.invalid(&invalid);
                        }
                    }
                    for warning in inputs.take_warnings() {
                        reporter.console().notice(&warning.to_string());
                    }
                }
                live.input_done.store(true, Ordering::Relaxed);
                (inputs.duplicates(), stale(&planner))
            })?
    };
    // Shared with the watchdog, which ends the view before its summary so the
    // bar never comes back under it.
    let ticker = Arc::new(Mutex::new(Ticker::start(
        BatchView::new(reporter.clone()),
        config.progress,
        config.heartbeat,
    )));
    // Dropped when the strategy returns, which wakes the watchdog at once.
    let (finished, finished_seen) = mpsc::channel::<()>();
    // Whichever comes first: the strategy's end, or the watchdog giving up on it.
    let (ending_sender, ending) = mpsc::channel::<Ending>();
    let watchdog = config.interrupt.as_ref().map(|_| {
        let (queue, reporter, grace) = (queue.clone(), reporter.clone(), config.grace);
        let (ticker, ending_sender) = (ticker.clone(), ending_sender.clone());
        thread::spawn(move || {
            if let Some(summary) =
                watch_for_interrupt(&queue, &reporter, &ticker, &finished_seen, grace)
            {
                let _ = ending_sender.send(Ending::Abandoned(Box::new(summary)));
            }
        })
    });
    let started = reporter.started();
    let sink: Sink<Outcome> = Arc::new(move |mut outcome: Outcome, ran: engine::Ran| {
        outcome.started_at = ran.taken.saturating_duration_since(started);
        record(outcome, ran.worker);
    });
    // On a thread of its own, so that a run whose downloads outlast the grace
    // period can still return its summary: the caller exits, and the
    // downloads still in flight end with the process. The folder's lock
    // stays with them until then.
    let strategy = {
        let (strategy, queue, sink) = (config.strategy, queue.clone(), sink.clone());
        let (program, console) = (config.worker_program.clone(), config.console.clone());
        thread::Builder::new()
            .name("strategy".to_string())
            .spawn(move || {
                let result = crate::http::task::run(
                    strategy, context, hosts, workers, &queue, &sink, &program, &console,
                );
                let _ = ending_sender.send(Ending::Finished(result, lock));
            })
            .context("cannot start the strategy's thread")?
    };
    let (result, _lock) = match ending.recv() {
        Ok(Ending::Finished(result, lock)) => (result, lock),
        Ok(Ending::Abandoned(summary)) => {
            hand_back(&queue, unstarted.as_ref());
            stop_counting.store(true, Ordering::Relaxed);
            if !config.shared_folder {
                // The lock is held until the process exits; its file goes now,
                // as the lock's drop would have removed it.
                let _ = fs::remove_file(directory.join(lock::LOCK_NAME));
            }
            if let Some(line) = reporter.invalid_lines_not_shown() {
                reporter.console().error(&line);
            }
            reporter
                .finish_records(&summary)
                .context("cannot finish the report")?;
            return Ok(*summary);
        }
        Err(_) => {
            let _ = strategy.join();
            anyhow::bail!("the {} strategy panicked", config.strategy);
        }
    };
    let _ = strategy.join();
    // The view ends with the run: no thread outlives it, and the bar is cleared
    // before the summary.
    end_view(&ticker);
    stop_counting.store(true, Ordering::Relaxed);
    if let Some(counter) = counter {
        let _ = counter.join();
    }
    // A strategy that could not start leaves the reader waiting on a full queue.
    queue.close();
    // Still watched meanwhile: after Ctrl-C, a reader stuck on a terminal's stdin
    // is cut off by the grace period or a second Ctrl-C.
    let duplicates = reader.join();
    hand_back(&queue, unstarted.as_ref());
    drop(finished);
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    let (duplicates, stale_parts) =
        duplicates.map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    if stale_parts > 0 {
        config.console.notice(&format!(
            "started over {stale_parts} unfinished .part file{} from an earlier run: \
             -c (--continue) resumes them instead",
            crate::console::plural(stale_parts),
        ));
    }
    result.with_context(|| format!("the {} strategy failed", config.strategy))?;
    if let Some(path) = &config.settings.cookies.save {
        logins
            .save(path, config.settings.cookies.keep_session)
            .with_context(|| format!("cannot save the cookies to {}", path.display()))?;
    }
    let mut summary = reporter.summary(duplicates);
    if interrupt.stopping() {
        account_for_the_stop(&mut summary, &reporter, queue.taken());
        summary.interrupted = interrupt.requested();
        summary.stopped = interrupt.halted().map(str::to_string);
    }
    if let Some(line) = reporter.invalid_lines_not_shown() {
        reporter.console().error(&line);
    }
    reporter
        .finish_records(&summary)
        .context("cannot finish the report")?;
    Ok(summary)
}

/// Gives the jobs no worker started back to their source, if it takes them.
fn hand_back(queue: &Queue<input::Job>, unstarted: Option<&UnstartedHook>) {
    if let Some(unstarted) = unstarted {
        for job in queue.leftover() {
            unstarted(job);
        }
    }
}

/// Parts an earlier run left that this one does not resume.
fn stale(planner: &Planner) -> u64 {
    planner.stale_parts.load(Ordering::Relaxed)
}

/// Ends the live view (clearing the bar), once, whoever gets here first.
fn end_view(ticker: &Mutex<Option<Ticker>>) {
    if let Some(ticker) = crate::lock(ticker).take() {
        ticker.stop();
    }
}

/// What an interrupted run left of its list: downloads running at the stop
/// (and the `.part` files they had begun), and URLs never started, whether
/// queued or not yet read (unknown when the rest of stdin was never read).
fn account_for_the_stop(summary: &mut Summary, reporter: &Reporter, taken: u64) {
    let live = &reporter.live;
    summary.interrupted = true;
    summary.stopped_in_flight = taken.saturating_sub(summary.saved + summary.failed);
    summary.parts_left = (live.in_flight() as u64).min(summary.stopped_in_flight);
    // Bytes of the files stopped mid-way arrived too (and sit in their parts):
    // a stop that leaves them unfinished still counts every byte received.
    if live.bytes() > summary.bytes {
        summary.bytes = live.bytes();
        if summary.wall_seconds > 0.0 {
            summary.bytes_per_second = summary.bytes as f64 / summary.wall_seconds;
        }
    }
    let waiting = live.queued.load(Ordering::Relaxed).saturating_sub(taken);
    summary.never_started = match live.total() {
        (total, true) => Some(waiting + total.saturating_sub(live.read.load(Ordering::Relaxed))),
        (_, false) => None,
    };
}

/// Records an outcome with the name of the worker that ran it.
type Record = Arc<dyn Fn(Outcome, &str) + Send + Sync>;

/// Every outcome goes through here, whatever the strategy: the worker's name is
/// set, the reporter records it, and a saved file goes to the hook.
fn recorder(
    reporter: &Arc<Reporter>,
    on_saved: Option<SavedHook>,
    on_outcome: Option<OutcomeHook>,
    directory: &Path,
) -> Record {
    let (reporter, directory) = (reporter.clone(), directory.to_path_buf());
    Arc::new(move |mut outcome: Outcome, worker: &str| {
        outcome.worker = worker.to_string();
        reporter.record(&outcome);
        if let Some(on_saved) = &on_saved {
            match &outcome.verdict {
                Verdict::Saved(saved) => on_saved(&directory.join(&saved.name), Arrival::Saved),
                Verdict::Skipped(complete) => {
                    on_saved(&directory.join(&complete.name), Arrival::AlreadyComplete)
                }
                Verdict::Failed(_) => {}
            }
        }
        if let Some(on_outcome) = &on_outcome {
            on_outcome(&outcome);
        }
    })
}

/// On Ctrl-C: close the queue (no new downloads start; the input reader stops),
/// and let the downloads in flight finish for `grace`. If they have not by then,
/// or at a second Ctrl-C, return the summary of that moment: the run gives up
/// on them. `None` when the run ended first. Part files stay for `--continue`; no final name
/// ever holds a partial file, since only a complete file is moved there.
fn watch_for_interrupt(
    queue: &Queue<input::Job>,
    reporter: &Reporter,
    ticker: &Mutex<Option<Ticker>>,
    finished: &mpsc::Receiver<()>,
    grace: Duration,
) -> Option<Summary> {
    let interrupt = queue.interrupt();
    let _watching = interrupt.watch();
    let over =
        |wait: Duration| !matches!(finished.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
    while !interrupt.requested() {
        if over(Duration::from_millis(50)) {
            return None;
        }
    }
    queue.close();
    reporter.console().notice(&format!(
        "interrupted: no new downloads; those in flight get {} s to finish (Ctrl-C again to stop at once)",
        grace.as_secs_f64()
    ));
    let deadline = Instant::now() + grace;
    let why = loop {
        if over(Duration::from_millis(20)) {
            return None;
        }
        if interrupt.count() >= 2 {
            break "stopping at the second Ctrl-C";
        }
        if Instant::now() >= deadline {
            break "grace period over: stopping";
        }
    };
    end_view(ticker);
    let mut summary = reporter.summary(0);
    account_for_the_stop(&mut summary, reporter, queue.taken());
    reporter.console().notice(&format!(
        "{why}; unfinished files stay as .part for --continue"
    ));
    Some(summary)
}

/// How a run's strategy ended, as the run's own thread hears of it.
enum Ending {
    /// Every download returned; the folder's lock comes back with the result.
    Finished(anyhow::Result<()>, FolderLock),
    /// The watchdog gave up on the downloads in flight (grace period over, or
    /// a second Ctrl-C), with the summary of that moment.
    Abandoned(Box<Summary>),
}
