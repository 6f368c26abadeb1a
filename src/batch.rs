//! Running one `grab get` batch: the input is read on its own thread into a bounded
//! queue (so a list of millions is never held in memory), checked against the
//! folder's manifest on the way (complete files skipped, interrupted ones planned
//! for resuming), the chosen strategy drains the queue, and the reporter's tally
//! becomes the summary. Ctrl-C closes the queue and gives the downloads in flight a
//! grace period.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::download::{Context, Outcome, Saved, Settings};
use crate::input::{Inputs, Job, Plan, Resume};
use crate::manifest::{self, Entry, Known, Manifest};
use crate::naming::{FolderNames, NameRegistry, PART_SUFFIX};
use crate::report::live::{ProgressMode, Ticker};
use crate::report::records::ReportFormat;
use crate::report::{Reporter, Summary, Verbosity};
use crate::strategy::{Batch, HostGate, SavedHook, StrategyKind};

/// Everything `grab get` needs besides its inputs, already validated.
#[derive(Debug, Clone)]
pub struct GetConfig {
    pub settings: Settings,
    pub strategy: StrategyKind,
    /// Downloads in flight at once.
    pub jobs: usize,
    /// Connections to any one host at once, below `jobs`.
    pub per_host: Option<usize>,
    pub verbosity: Verbosity,
    /// The grab executable the `processes` strategy starts as workers.
    pub worker_program: PathBuf,
    /// Print the summary as one JSON object on stdout instead of the human line.
    pub json_summary: bool,
    /// Resume part files an earlier run left (`--continue`).
    pub resume: bool,
    /// Download again what the manifest says is complete (`--force`).
    pub force: bool,
    /// Set by a signal handler on Ctrl-C; `None` when nothing can interrupt.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// How long downloads in flight may go on after an interrupt.
    pub grace: Duration,
    /// The live view: a bar, heartbeat lines, or nothing.
    pub progress: ProgressMode,
    /// Between heartbeat lines.
    pub heartbeat: Duration,
    /// Where to write one record per URL, and how.
    pub report: Option<(PathBuf, ReportFormat)>,
}

impl GetConfig {
    /// The defaults of `grab get` for a strategy, saving into `output_dir`.
    pub fn new(
        output_dir: impl Into<PathBuf>,
        strategy: StrategyKind,
        worker_program: PathBuf,
    ) -> GetConfig {
        GetConfig {
            settings: Settings::new(output_dir),
            strategy,
            jobs: 16,
            per_host: None,
            verbosity: Verbosity::Normal,
            worker_program,
            json_summary: false,
            resume: false,
            force: false,
            interrupt: None,
            grace: Duration::from_secs(5),
            progress: ProgressMode::None,
            heartbeat: Duration::from_secs(5),
            report: None,
        }
    }
}

/// How far ahead of the workers the input reader may run, per job slot.
const QUEUE_PER_JOB: usize = 2;

/// Downloads everything `inputs` yields. Errors only when the batch cannot run at
/// all (the output folder cannot be made, a strategy cannot start); failed URLs are
/// counted in the summary instead.
pub fn run(config: &GetConfig, inputs: Inputs) -> anyhow::Result<Summary> {
    run_with_hook(config, inputs, None)
}

/// [`run`], calling `on_saved` with the path of each file as soon as it is saved
/// (`grab get --filter` filters there, see [`crate::filter::while_downloading`]).
pub fn run_with_hook(
    config: &GetConfig,
    mut inputs: Inputs,
    on_saved: Option<SavedHook>,
) -> anyhow::Result<Summary> {
    let directory = &config.settings.output_dir;
    fs::create_dir_all(directory)
        .with_context(|| format!("cannot create output folder {}", directory.display()))?;
    let known = Known::load(directory)
        .with_context(|| format!("cannot read the manifest in {}", directory.display()))?;
    let manifest = Manifest::open(directory)
        .with_context(|| format!("cannot write the manifest in {}", directory.display()))?;
    let jobs = if config.strategy == StrategyKind::Sequential {
        1
    } else {
        config.jobs.max(1)
    };
    let reporter = Arc::new(Reporter::new(config.verbosity));
    if let Some((path, format)) = &config.report {
        reporter
            .write_records(path, *format)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let interrupted = config.interrupt.clone().unwrap_or_default();
    let names: Arc<FolderNames> = Arc::new(FolderNames::new(directory));
    let batch = Batch {
        context: Context {
            settings: Arc::new(config.settings.clone()),
            names: names.clone(),
            manifest: Some(Arc::new(manifest)),
            interrupted: interrupted.clone(),
            progress: Some(reporter.clone()),
        },
        reporter: reporter.clone(),
        on_saved,
        hosts: config.per_host.map(|limit| Arc::new(HostGate::new(limit))),
    };
    let (sender, queue) = async_channel::bounded(jobs * QUEUE_PER_JOB);
    let planner = Planner {
        known,
        directory: directory.clone(),
        names,
        resume: config.resume,
        force: config.force,
    };
    let reader_batch = batch.clone();
    let reader = thread::Builder::new()
        .name("input".to_string())
        .spawn(move || {
            for item in inputs.by_ref() {
                match item {
                    Ok(job) => match planner.plan(job) {
                        Planned::Download(mut job) => {
                            job.queued_at = reader_batch.reporter.elapsed();
                            reader_batch
                                .reporter
                                .live
                                .queued
                                .fetch_add(1, Ordering::Relaxed);
                            if sender.send_blocking(job).is_err() {
                                break;
                            }
                        }
                        Planned::Skip(outcome) => reader_batch.record(&outcome),
                    },
                    Err(invalid) => reader_batch.reporter.invalid(&invalid),
                }
            }
            reader_batch
                .reporter
                .live
                .input_done
                .store(true, Ordering::Relaxed);
            inputs.duplicates()
        })?;
    let finished = Arc::new(AtomicBool::new(false));
    let watchdog = config.interrupt.as_ref().map(|_| {
        let (queue, batch, finished, grace) =
            (queue.clone(), batch.clone(), finished.clone(), config.grace);
        let (strategy, json) = (config.strategy, config.json_summary);
        thread::spawn(move || {
            watch_for_interrupt(&queue, &batch, &finished, grace, strategy, jobs, json)
        })
    });
    let ticker = Ticker::start(reporter.clone(), config.progress, config.heartbeat);
    let strategy = config.strategy.build(jobs, config.worker_program.clone());
    let result = strategy.run(queue, &batch);
    finished.store(true, Ordering::Relaxed);
    // The view ends with the batch: no thread outlives it, and the bar is cleared
    // before the summary.
    if let Some(ticker) = ticker {
        ticker.stop();
    }
    let duplicates = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    if let Some(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    result.with_context(|| format!("the {} strategy failed", config.strategy))?;
    let mut summary = reporter.summary(duplicates);
    summary.interrupted = interrupted.load(Ordering::Relaxed);
    print_summary(
        &summary,
        &reporter,
        config.strategy,
        jobs,
        config.json_summary,
    );
    reporter
        .finish_records(&summary.to_json(config.strategy.name(), jobs))
        .context("cannot finish the report")?;
    Ok(summary)
}

fn print_summary(
    summary: &Summary,
    reporter: &Reporter,
    strategy: StrategyKind,
    jobs: usize,
    json: bool,
) {
    if json {
        println!("{}", summary.to_json(strategy.name(), jobs));
    } else {
        reporter.print_summary(summary);
    }
}

/// On Ctrl-C: close the queue (no new downloads start; the input reader stops),
/// let the downloads in flight finish for `grace`, and if they have not, print the
/// summary and exit. Part files stay for `--continue`; no final name ever holds a
/// partial file, since only a complete file is moved there.
fn watch_for_interrupt(
    queue: &async_channel::Receiver<Job>,
    batch: &Batch,
    finished: &AtomicBool,
    grace: Duration,
    strategy: StrategyKind,
    jobs: usize,
    json: bool,
) {
    let interrupted = &batch.context.interrupted;
    while !interrupted.load(Ordering::Relaxed) {
        if finished.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    queue.close();
    batch.reporter.notice(&format!(
        "interrupted: no new downloads; those in flight get {} s to finish (Ctrl-C again to stop at once)",
        grace.as_secs_f64()
    ));
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if finished.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut summary = batch.reporter.summary(0);
    summary.interrupted = true;
    batch
        .reporter
        .notice("grace period over: stopping; unfinished files stay as .part for --continue");
    print_summary(&summary, &batch.reporter, strategy, jobs, json);
    std::process::exit(crate::report::INTERRUPTED_EXIT_CODE);
}

/// Decides, from the manifest of earlier runs, what to do with each URL.
struct Planner {
    known: Known,
    directory: PathBuf,
    names: Arc<FolderNames>,
    resume: bool,
    force: bool,
}

enum Planned {
    Download(Job),
    Skip(Outcome),
}

impl Planner {
    fn plan(&self, mut job: Job) -> Planned {
        let Some(entry) = self.known.get(job.url.as_str()) else {
            return Planned::Download(job);
        };
        match entry {
            Entry::Saved {
                name, size, sha256, ..
            } => {
                let path = self.directory.join(name);
                if !path
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.is_file())
                {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                if self.force {
                    job.plan = Some(Plan {
                        name: name.clone(),
                        resume: None,
                        replace: true,
                    });
                    return Planned::Download(job);
                }
                match file_matches(&path, *size, sha256) {
                    true => Planned::Skip(Outcome {
                        job,
                        result: Ok(Saved {
                            name: name.clone(),
                            bytes: *size,
                            status: 0,
                            content_type: None,
                            sha256: sha256.clone(),
                            final_url: None,
                            skipped: true,
                        }),
                        elapsed: Duration::ZERO,
                        attempts: 0,
                        first_byte: None,
                        worker: "input".to_string(),
                        started_at: Duration::ZERO,
                    }),
                    // Changed on disk since: keep it, download the URL afresh.
                    false => Planned::Download(job),
                }
            }
            Entry::Started {
                name,
                etag,
                last_modified,
                ..
            } if self.resume => {
                let part = self.directory.join(format!("{name}{PART_SUFFIX}"));
                let Ok(metadata) = part.symlink_metadata() else {
                    return Planned::Download(job);
                };
                if !metadata.is_file() || self.directory.join(name).symlink_metadata().is_ok() {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                // Without a validator the server's file cannot be proven unchanged:
                // start the part over rather than splice onto it.
                let resume = etag
                    .clone()
                    .or_else(|| last_modified.clone())
                    .map(|validator| Resume {
                        offset: metadata.len(),
                        validator,
                    });
                job.plan = Some(Plan {
                    name: name.clone(),
                    resume,
                    replace: false,
                });
                Planned::Download(job)
            }
            Entry::Started { .. } => Planned::Download(job),
        }
    }
}

/// Whether a file still has the recorded size and SHA-256.
fn file_matches(path: &Path, size: u64, sha256: &str) -> bool {
    path.metadata().is_ok_and(|metadata| metadata.len() == size)
        && manifest::sha256_of_file(path).is_ok_and(|actual| actual == sha256)
}
