//! `grab dataset`: an image dataset from a table of URLs, img2dataset's job.
//!
//! The table is read as a stream on its own thread; each row gets its key from
//! its place in the table. Rows of shards already complete are skipped, rows
//! whose sample an earlier run spooled are reused, the rest go to the engine's
//! bounded download queue (any strategy, `--per-host`, bodies kept in memory;
//! worker processes hand theirs over as files). Each body goes on to the image
//! pool, a second engine client on one thread per core behind its own bounded
//! queue, so a slow pool holds downloads back instead of filling memory; and
//! the bodies held at once (downloading, queued, being processed) stay within
//! a byte budget, which the reader waits on before it queues a row. Every
//! finished sample is appended to its shard's spool, a log of records each
//! with its checksum (`fs/spool.rs`: no file per sample); once all of
//! a shard's rows are done, the shard is written from its spool in key
//! order, a record read back at a time, and renamed into place. So resume is
//! per sample (a record torn by a kill is cut off and its sample fetched
//! again), a kill never leaves a partial shard under a final name, and a
//! resumed run's shards are the same bytes as an uninterrupted run's.
//!
//! The output is a `Store`: a local folder, or a bucket prefix whose shards
//! are built in a local cache folder and uploaded whole, stats last. Every
//! file at the output's top level goes through it.
//!
//! - `input`: the table, txt/csv/tsv/jsonl/JSON array/parquet, as rows;
//! - `column`: the types saved columns keep;
//! - `settings`: the settings kept with the output, `--incremental-mode`;
//! - `retry`: `--retry-failed`, complete shards rewritten with their failed
//!   samples fetched again;
//! - `tables`: tables in a bucket, downloaded to the local cache first;
//! - `recipe`: img2dataset's per-sample options: hashes computed and
//!   verified, boxes blurred, EXIF, bytes kept as downloaded;
//! - `task`: that pipeline as an engine task (the pixels' work is the
//!   image layer's: [`crate::image`]);
//! - `sample`: a finished sample, and its record in the spool;
//! - `shard`: keys, shard names, stats, writing a shard;
//! - `table`: a shard's parquet file;
//! - `progress`: the live view and the summary.

mod column;
pub(crate) mod input;
pub(crate) mod progress;
pub(crate) mod recipe;
mod retry;
mod sample;
pub(crate) mod settings;
pub(crate) mod shard;
mod table;
pub(crate) mod tables;
mod task;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::console::Console;
use crate::engine::ProgressMode;
use crate::engine::budget::{Budget, Reservation};
use crate::engine::processes::WorkerProgram;
use crate::engine::{self, Interrupt, Queue, Sender, Sink, Strategy};
use crate::fs::lock::FolderLock;
use crate::fs::names::FolderNames;
use crate::fs::spool::Spool;
use crate::fs::store::Store;
use crate::http::task::{self as download_task, HostGate};
use crate::http::{BodySink, Context, DownloadError, Outcome, Settings, Verdict};
use crate::http::{Job, Origin};
use crate::partition::Shard;
use input::{Columns, InputFormat, Row, Rows, Table};
use recipe::Recipe;
use sample::{Sample, Status};
pub use shard::{Keys, SHARD_DIGITS};
use shard::{Layout, OutputFormat, Stats};
use task::{ImageJob, Images};

/// Everything `grab dataset` needs besides its rows, already validated.
#[derive(Debug, Clone)]
pub struct DatasetConfig {
    /// Where shards go: a folder, or a bucket prefix.
    pub output: Store,
    pub output_format: OutputFormat,
    pub samples_per_shard: u64,
    pub columns: Columns,
    /// Digits of shard names (img2dataset's `oom_shard_count`).
    pub shard_digits: usize,
    pub image: crate::image::resize::ImageSettings,
    /// Hashes, boxes, EXIF, reencoding: what each sample gets beside its image.
    pub recipe: Recipe,
    /// How downloads behave; their `output_dir` is set by the run (worker
    /// processes save into the work folder).
    pub download: Settings,
    pub strategy: Strategy,
    /// Downloads in flight at once.
    pub jobs: usize,
    pub per_host: Option<usize>,
    /// Threads decoding, resizing and encoding.
    pub image_workers: usize,
    /// Bytes the downloaded bodies waiting for the image threads may hold
    /// together (`--memory-limit`); `None`: 16 MiB per image thread, at
    /// least 32 MiB.
    pub memory_limit: Option<u64>,
    pub console: Console,
    pub worker_program: WorkerProgram,
    pub interrupt: Option<Interrupt>,
    pub progress: ProgressMode,
    pub heartbeat: Duration,
    /// Which of the table's output shards this run builds.
    pub shards: Shards,
    /// Other runs (queue workers) build other shards in the same folder at
    /// the same time: the folder's lock is taken shared, and this run leaves
    /// the work folder to them, removing only its own downloads.
    pub shared_folder: bool,
    /// What to do with a folder holding an earlier dataset; none given:
    /// incremental, and a folder without a settings record is refused.
    pub incremental_mode: Option<settings::IncrementalMode>,
    /// Fetch the failed samples of complete shards again and rewrite them.
    pub retry_failed: bool,
}

/// Which of a table's output shards a run builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shards {
    /// Every one.
    #[default]
    All,
    /// `--shard K/N`: those whose number is K modulo N, so keys and shard
    /// numbers stay those of the whole table and N runs never write the
    /// same shard.
    Part(Shard),
    /// This one only (a queue job): rows are read up to its end, and no
    /// further.
    One(u64),
}

impl DatasetConfig {
    /// img2dataset's defaults where it has them, writing into the folder
    /// `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>) -> DatasetConfig {
        DatasetConfig::in_store(Store::Folder(output_dir.into()))
    }

    /// img2dataset's defaults, writing into `output`.
    pub fn in_store(output: Store) -> DatasetConfig {
        DatasetConfig {
            download: Settings::new(output.local_folder().join(shard::WORK_FOLDER)),
            output,
            output_format: OutputFormat::Files,
            samples_per_shard: 10_000,
            columns: Columns::default(),
            shard_digits: shard::SHARD_DIGITS,
            image: crate::image::resize::ImageSettings::default(),
            recipe: Recipe::default(),
            strategy: Strategy::Async,
            jobs: 64,
            per_host: None,
            image_workers: std::thread::available_parallelism().map_or(1, |count| count.get()),
            memory_limit: None,
            console: Console::silent(),
            worker_program: WorkerProgram::current(),
            interrupt: None,
            progress: ProgressMode::None,
            heartbeat: Duration::from_secs(5),
            shards: Shards::All,
            shared_folder: false,
            incremental_mode: None,
            retry_failed: false,
        }
    }

    /// Where this configuration's files go (saved columns' types from their values).
    pub fn layout(&self) -> Layout {
        self.layout_for(&[])
    }

    /// Where this configuration's files go, for a table whose saved
    /// columns have `saved_types`.
    pub fn layout_for(&self, saved_types: &[column::ColumnType]) -> Layout {
        let undeclared = std::iter::repeat(&column::ColumnType::FromJson);
        Layout {
            work: self.output.local_folder().join(shard::WORK_FOLDER),
            output: self.output.clone(),
            output_format: self.output_format,
            encode_format: self.image.encode_format,
            keys: Keys::new(self.samples_per_shard, self.shard_digits),
            // The saved columns come first among those read (read_columns),
            // so the table's types for the columns read fit them in order.
            saved_columns: self
                .recipe
                .saved_columns(&self.columns.save)
                .into_iter()
                .zip(saved_types.iter().chain(undeclared).cloned())
                .collect(),
            fields: self.recipe.fields(),
            captions: self.columns.caption.is_some(),
        }
    }

    /// The columns to read from the table: those asked for, and those the
    /// recipe needs (boxes, hashes to verify).
    pub fn read_columns(&self) -> Columns {
        Columns {
            save: self.recipe.read_columns(&self.columns.save),
            ..self.columns.clone()
        }
    }
}

/// What a run did: the sum of every complete shard's stats in the output
/// folder (this run's, earlier runs', other workers'), and how this run went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunStats {
    #[serde(flatten)]
    pub stats: Stats,
    /// Complete shards in the output folder.
    pub shards: u64,
    /// Written by this run.
    pub shards_written: u64,
    /// Found complete, from an earlier run.
    pub shards_reused: u64,
    /// Samples an earlier run had finished in an unfinished shard.
    pub samples_reused: u64,
    /// Samples this run downloaded or tried to.
    pub samples_fetched: u64,
    pub elapsed_seconds: f64,
    /// Samples this run finished per second.
    pub samples_per_second: f64,
    /// Shards that could not be written, input that could not be read.
    pub errors: Vec<String>,
    pub interrupted: bool,
}

/// Live counters, read by the progress view.
#[derive(Default)]
pub struct Counters {
    pub samples: AtomicU64,
    pub successes: AtomicU64,
    pub shards: AtomicU64,
    /// Rows read so far, and whether the table is read to its end.
    pub rows: AtomicU64,
    pub input_done: AtomicBool,
}

/// Shards still open: how many rows each has (once the reader passed its end)
/// and how many of them are done.
struct Tracker {
    layout: Layout,
    open: Mutex<BTreeMap<u64, Open>>,
    stats: Mutex<Stats>,
    errors: Mutex<Vec<String>>,
    counters: Arc<Counters>,
    shards_written: AtomicU64,
    console: Console,
    /// The run's stop: a full disk halts it.
    interrupt: Interrupt,
    /// `--retry-failed`: complete shards with failed samples are retried.
    retry: bool,
    /// Complete shards whose failed samples this run fetches again: written
    /// by rewriting them, not from a spool alone.
    rewriting: Mutex<std::collections::BTreeSet<u64>>,
    /// The spool of each open shard, opened when the reader reaches the
    /// shard and taken out to write it. One log per shard behind this lock,
    /// not one per image thread: an append holds it for one write of a few
    /// dozen kilobytes to the page cache, next to milliseconds of decoding
    /// per sample, and one log keeps a resume to one file per shard.
    spools: Mutex<HashMap<u64, Spool>>,
}

#[derive(Default)]
struct Open {
    rows: Option<u64>,
    done: u64,
}

impl Tracker {
    /// `count` more samples of `shard` are spooled.
    fn done(&self, shard: u64, count: u64) {
        let finished = {
            let mut open = crate::lock(&self.open);
            let state = open.entry(shard).or_default();
            state.done += count;
            Self::take_if_finished(&mut open, shard)
        };
        if let Some(rows) = finished {
            self.write(shard, rows);
        }
    }

    /// The reader passed the end of `shard`, which has `rows` rows.
    fn closed(&self, shard: u64, rows: u64) {
        let finished = {
            let mut open = crate::lock(&self.open);
            open.entry(shard).or_default().rows = Some(rows);
            Self::take_if_finished(&mut open, shard)
        };
        if let Some(rows) = finished {
            self.write(shard, rows);
        }
    }

    fn take_if_finished(open: &mut BTreeMap<u64, Open>, shard: u64) -> Option<u64> {
        let state = open.get(&shard)?;
        let rows = state.rows.filter(|&rows| rows == state.done)?;
        open.remove(&shard);
        Some(rows)
    }

    fn write(&self, shard: u64, rows: u64) {
        let rewrite = crate::lock(&self.rewriting).remove(&shard);
        // Every sample of the shard is in: nothing appends to its spool again.
        let Some(spool) = crate::lock(&self.spools).remove(&shard) else {
            self.error(format!(
                "shard {}: its spool is not open",
                self.layout.keys.shard_name(shard)
            ));
            return;
        };
        let written = match rewrite {
            true => retry::rewrite_shard(&self.layout, shard, &spool),
            false => self.layout.write_shard(shard, rows, &spool),
        };
        match written {
            Ok(stats) => {
                let folder = spool.folder().to_path_buf();
                if let Err(error) = spool.remove() {
                    // The shard is complete: a later run skips it, and its
                    // last spool goes with the work folder.
                    tracing::warn!("cannot remove {}: {error}", folder.display());
                }
                crate::lock(&self.stats).add(&stats);
                self.shards_written.fetch_add(1, Ordering::Relaxed);
                self.counters.shards.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                let full = error.chain().find_map(|cause| {
                    cause
                        .downcast_ref::<std::io::Error>()
                        .and_then(crate::http::error::storage_full)
                });
                match full {
                    // Left unwritten, its samples spooled: a run with room writes it.
                    Some(message) => self.full(message),
                    None => self.error(format!(
                        "shard {}: {error:#}",
                        self.layout.keys.shard_name(shard)
                    )),
                }
            }
        }
    }

    /// The disk is full: the run stops, said once for every sample and shard
    /// it stops (which a run with room does again).
    fn full(&self, message: &str) {
        // For a bucket, its local cache folder: the spool is what fills up.
        let folder = self.layout.output.local_folder();
        let reason = format!("{} is full ({message})", folder.display());
        download_task::halt(&self.interrupt, &self.console, &reason);
    }

    fn error(&self, message: String) {
        self.console.error(&message);
        crate::lock(&self.errors).push(message);
    }

    /// Opens the spool of `shard`, which the reader reached: the samples an
    /// earlier run spooled in it are reused.
    fn open_spool(&self, shard: u64) -> std::io::Result<()> {
        let spool = Spool::open(&self.layout.spool_folder(shard))?;
        crate::lock(&self.spools).insert(shard, spool);
        Ok(())
    }

    /// Whether an earlier run spooled the sample of `row` in `shard`.
    fn spooled(&self, shard: u64, row: u64) -> bool {
        crate::lock(&self.spools)
            .get(&shard)
            .is_some_and(|spool| spool.contains(row))
    }

    /// Spools a finished sample and counts it done. Columns read only for
    /// the recipe (hashes to verify) are not kept.
    fn finish(&self, shard: u64, mut sample: Sample, image: &[u8]) {
        let saved = &self.layout.saved_columns;
        sample
            .saved
            .retain(|(name, _)| saved.iter().any(|(kept, _)| kept == name));
        let sample = &sample;
        self.counters.samples.fetch_add(1, Ordering::Relaxed);
        if sample.status == Status::Success {
            self.counters.successes.fetch_add(1, Ordering::Relaxed);
        }
        let folder = self.layout.spool_folder(shard);
        let spooled = match self.layout.keys.row_of_key(&sample.key) {
            Some(row) => match crate::lock(&self.spools).get_mut(&shard) {
                Some(spool) => sample::spool(spool, row, sample, image),
                None => Err(std::io::Error::other("the shard's spool is not open")),
            },
            None => Err(std::io::Error::other("not a key of this run")),
        };
        // The spools' lock is released before `done` takes the shard's to write it.
        match spooled {
            Ok(()) => self.done(shard, 1),
            Err(error) => match crate::http::error::storage_full(&error) {
                Some(message) => self.full(message),
                None => self.error(format!(
                    "{}: cannot spool sample {} in {}: {error}",
                    sample.url,
                    sample.key,
                    folder.display()
                )),
            },
        }
    }
}

/// A row waiting for its download, by key, with what its body is reckoned
/// to weigh in the body budget.
type Waiting = Mutex<HashMap<String, (Row, Reservation)>>;

/// The bytes of bodies a run holds in memory at once, per image thread, and
/// at least. Without a bound in bytes, 64 downloads of large pictures each
/// held a whole body behind the image pool's full queue: bodies were 48-75
/// MB of a 160 MB peak on bench/dataset.sh's large set (heaptrack), where
/// some 60 bodies in the pipeline keep two image threads busy. Pictures of
/// a usual size (the default set averages 43 KB) never reach the bound.
const BODY_BUDGET_PER_IMAGE_WORKER: u64 = 16 << 20;
const BODY_BUDGET_LEAST: u64 = 32 << 20;

/// What a body is reckoned to weigh until some have arrived: large, so that
/// the first rows of a table of large pictures do not all start at once;
/// the bodies of the first round trip correct it.
const FIRST_BODY_ESTIMATE: u64 = 1 << 20;

/// The run's body budget, and what bodies have weighed so far.
struct Bodies {
    budget: Arc<Budget>,
    /// Bytes and count of the bodies arrived: their mean is the estimate.
    arrived: Mutex<(u64, u64)>,
}

impl Bodies {
    fn new(image_workers: usize, limit: Option<u64>) -> Bodies {
        let total = limit.unwrap_or_else(|| {
            (image_workers as u64 * BODY_BUDGET_PER_IMAGE_WORKER).max(BODY_BUDGET_LEAST)
        });
        Bodies {
            budget: Budget::new(total),
            arrived: Mutex::new((0, 0)),
        }
    }

    /// Holds what a body is reckoned to weigh, waiting while the budget is
    /// spent.
    fn reserve(&self) -> Reservation {
        let estimate = match *crate::lock(&self.arrived) {
            (_, 0) => FIRST_BODY_ESTIMATE,
            (bytes, count) => bytes / count,
        };
        self.budget
            .reserve(estimate.clamp(1, self.budget.total()))
            .expect("an estimate within the total")
    }

    /// A body of `bytes` arrived for `reservation`.
    fn arrived(&self, reservation: &mut Reservation, bytes: u64) {
        let mut arrived = crate::lock(&self.arrived);
        arrived.0 += bytes;
        arrived.1 += 1;
        drop(arrived);
        reservation.settle(bytes);
    }
}

/// Bodies waiting per image thread. Download threads that find the queue full
/// sleep until it is half empty, and are then woken all at once: with 64 of them
/// and 2 per image thread, that was 35 thread switches per image (70,000 for
/// bench/dataset.sh's 2,000). 8 wakes them a quarter as often, for at most 6
/// more bodies held per image thread.
const IMAGE_QUEUE_PER_WORKER: usize = 8;
/// Rows queued ahead of the download workers, per worker.
const DOWNLOAD_QUEUE_PER_WORKER: usize = 2;

/// Builds the dataset from `rows`. Errors only when the run cannot start (the
/// output folder, the lock, a strategy); failed samples are data, recorded in
/// their shard, and shards that cannot be written are listed in the result.
pub fn run(config: &DatasetConfig, table: Table) -> anyhow::Result<RunStats> {
    let started = Instant::now();
    // A bucket has no lock: its runs must split the work (--shard, queue
    // jobs). Its local cache folder is locked as an output folder is, so two
    // runs on one machine do not share a spool.
    let directory = &config.output.local_folder();
    let what = match config.output.is_bucket() {
        true => "local cache folder",
        false => "output folder",
    };
    crate::fs::create_folder(directory, what)?;
    let _lock = match config.shared_folder {
        true => FolderLock::share(directory),
        false => FolderLock::take(directory),
    }
    .with_context(|| format!("cannot take the {what} {}", directory.display()))?;
    let recorded = settings::DatasetSettings::of(config, &table.saved_types, &table.files);
    let prepared = settings::prepare(
        &config.output,
        config.incremental_mode,
        recorded,
        config.shared_folder,
    )?;
    if let Some(notice) = &prepared.notice {
        config.console.notice(notice);
    }
    let mut rows = table.rows;
    if prepared.first_shard > 0 {
        // An extending table: its rows come after the folder's shards.
        let offset = prepared.first_shard * config.samples_per_shard;
        rows = Box::new(rows.map(move |row| {
            row.map(|mut row| {
                row.number += offset;
                row
            })
        }));
    }
    let rows: Rows = match config.shards {
        Shards::All => rows,
        Shards::Part(part) => {
            let keys = Keys::new(config.samples_per_shard, config.shard_digits);
            // A row the table cannot give stays in: it stops every part's reading.
            Box::new(rows.filter(move |row| {
                row.as_ref()
                    .map_or(true, |row| part.takes_number(keys.shard_of(row.number)))
            }))
        }
        Shards::One(shard) => {
            let size = config.samples_per_shard;
            let (first, end) = (shard * size, (shard + 1) * size);
            // An unreadable row passes both: it stops the reading.
            Box::new(
                rows.skip_while(move |row| row.as_ref().is_ok_and(|row| row.number < first))
                    .take_while(move |row| row.as_ref().map_or(true, |row| row.number < end)),
            )
        }
    };
    let layout = config.layout_for(&table.saved_types);
    // A folder of this run's own: runs sharing the folder must not take
    // each other's downloads, nor remove them.
    let downloads = layout.work().join("downloads").join(format!(
        "{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    fs::create_dir_all(&downloads)
        .with_context(|| format!("cannot create {}", downloads.display()))?;
    let counters = Arc::new(Counters::default());
    let interrupt = config.interrupt.clone().unwrap_or_default();
    let tracker = Arc::new(Tracker {
        layout: layout.clone(),
        open: Mutex::new(BTreeMap::new()),
        stats: Mutex::new(Stats::default()),
        errors: Mutex::new(Vec::new()),
        counters: counters.clone(),
        shards_written: AtomicU64::new(0),
        console: config.console.clone(),
        interrupt: interrupt.clone(),
        retry: config.retry_failed,
        rewriting: Mutex::default(),
        spools: Mutex::default(),
    });
    let waiting: Arc<Waiting> = Arc::default();
    let bodies = Arc::new(Bodies::new(
        config.image_workers.max(1),
        config.memory_limit,
    ));

    // The image pool: its own engine run, on a thread of its own.
    let image_workers = config.image_workers.max(1);
    // Never interrupted: bodies already in memory are finished, and the pool
    // ends when the downloads do.
    let (image_sender, image_queue) =
        Queue::bounded(image_workers * IMAGE_QUEUE_PER_WORKER, Interrupt::default());
    let image_sink: Sink<(Sample, Vec<u8>)> = {
        let tracker = tracker.clone();
        Arc::new(move |(sample, image): (Sample, Vec<u8>), _| {
            match tracker.layout.keys.shard_of_key(&sample.key) {
                Some(shard) => tracker.finish(shard, sample, &image),
                None => tracker.error(format!(
                    "{}: a sample with a foreign key {}",
                    sample.url, sample.key
                )),
            }
        })
    };
    let images = Images {
        settings: config.image.clone(),
        recipe: config.recipe.clone(),
    };
    let image_pool = thread::Builder::new()
        .name("images".to_string())
        .spawn(move || {
            let result = engine::threads::run(&images, image_workers, &image_queue, &image_sink);
            // Should the pool stop early, downloads must not wait on its queue.
            image_queue.close();
            result
        })?;

    // Downloads: the same engine and download code as `grab get`.
    let mut settings = config.download.clone();
    settings.output_dir = downloads.clone();
    // Bodies stay in memory, but a worker process can only hand one over as
    // a file.
    let context = Context {
        interrupt: interrupt.clone(),
        body: match config.strategy {
            Strategy::Processes => BodySink::PartFile,
            _ => BodySink::Memory,
        },
        ..Context::new(settings, Arc::new(FolderNames::new(&downloads)))
    };
    let logins = context.logins.clone();
    // Each open shard holds its spool's log: the shards of the rows in
    // flight (queued, downloading, in the image pool), the reader's, and
    // one being written. Rows straggling in more shards than that have the
    // slack of a download's reserve, counted for a part file it does not
    // open here (bodies stay in memory).
    let requested = config.strategy.workers(config.jobs);
    let in_flight = (requested * (DOWNLOAD_QUEUE_PER_WORKER + 1)
        + image_workers * (IMAGE_QUEUE_PER_WORKER + 1)) as u64;
    let open_logs = in_flight.min(in_flight.div_ceil(config.samples_per_shard.max(1)) + 2);
    let (workers, capped) = engine::limits::cap_workers(requested, open_logs);
    if let Some(note) = capped {
        config.console.notice(&note);
    }
    let (sender, queue) = Queue::bounded(workers * DOWNLOAD_QUEUE_PER_WORKER, interrupt.clone());
    let reused = Arc::new(Mutex::new((Stats::default(), 0u64, 0u64)));
    let reader = {
        let (tracker, waiting, reused) = (tracker.clone(), waiting.clone(), reused.clone());
        let (interrupt, bodies) = (interrupt.clone(), bodies.clone());
        thread::Builder::new()
            .name("input".to_string())
            .spawn(move || {
                let pending = Pending {
                    sender: &sender,
                    waiting: &waiting,
                    bodies: &bodies,
                };
                read_rows(rows, &pending, &tracker, &reused, &interrupt)
            })?
    };
    // A quiet run (-q) shows nothing live either.
    let progress = if config.console.shows_failures() {
        config.progress
    } else {
        ProgressMode::None
    };
    let ticker = engine::view::Ticker::start(
        progress::DatasetView::new(config.console.clone(), counters.clone()),
        progress,
        config.heartbeat,
    );
    let download_sink: Sink<Outcome> = {
        let (tracker, waiting) = (tracker.clone(), waiting.clone());
        let (downloads, bodies) = (downloads.clone(), bodies.clone());
        Arc::new(move |outcome: Outcome, _| {
            downloaded(
                outcome,
                &tracker,
                &waiting,
                &bodies,
                &image_sender,
                &downloads,
            );
        })
    };
    let hosts = config.per_host.map(|limit| Arc::new(HostGate::new(limit)));
    let result = download_task::run(
        config.strategy,
        context,
        hosts,
        workers,
        &queue,
        &download_sink,
        &config.worker_program,
        &config.console,
    );
    // A strategy that stopped (interrupted, or unable to start) leaves the
    // reader waiting on a full queue, or on the budget that rows never
    // downloaded still hold.
    queue.close();
    crate::lock(&waiting).clear();
    let read = reader.join();
    // The last bodies go through the pool; its queue closes with the sink.
    drop(download_sink);
    let pooled = image_pool.join();
    if let Some(ticker) = ticker {
        ticker.stop();
    }
    result.with_context(|| format!("the {} strategy failed", config.strategy))?;
    if let Some(path) = &config.download.cookies.save {
        logins
            .save(path, config.download.cookies.keep_session)
            .with_context(|| format!("cannot save the cookies to {}", path.display()))?;
    }
    match pooled {
        Ok(result) => result.context("the image pool failed")?,
        Err(_) => anyhow::bail!("the image pool panicked"),
    }
    if read.is_err() {
        anyhow::bail!("the input reader panicked");
    }
    let _ = fs::remove_dir_all(&downloads);
    let open = crate::lock(&tracker.open).len();
    if open == 0 && !interrupt.stopping() && !config.shared_folder {
        // Every shard is written: nothing of the work folder is needed again.
        let _ = fs::remove_dir_all(layout.work());
    }
    let (reused_stats, shards_reused, samples_reused) = crate::lock(&reused).clone();
    let mut stats = crate::lock(&tracker.stats).clone();
    stats.add(&reused_stats);
    let elapsed = started.elapsed().as_secs_f64();
    let finished = counters.samples.load(Ordering::Relaxed);
    let mut errors = crate::lock(&tracker.errors).clone();
    if let Some(reason) = interrupt.halted() {
        errors.push(format!(
            "stopped because {reason}: {open} shard(s) left unfinished, their samples spooled for the next run"
        ));
    }
    if open > 0 && !interrupt.stopping() && errors.is_empty() {
        errors.push(format!("{open} shard(s) left unfinished"));
    }
    let shards_written = tracker.shards_written.load(Ordering::Relaxed);
    let mut run = RunStats {
        stats,
        shards: shards_written + shards_reused,
        shards_written,
        shards_reused,
        samples_reused,
        samples_fetched: finished,
        elapsed_seconds: elapsed,
        samples_per_second: if elapsed > 0.0 {
            finished as f64 / elapsed
        } else {
            0.0
        },
        errors,
        interrupted: interrupt.requested(),
    };
    if interrupt.halted().is_some() {
        // No room for it: the next run writes it, over every shard.
        return Ok(run);
    }
    if let Err(error) = write_stats(&config.output, &mut run) {
        let message = format!("{error:#}");
        config.console.error(&message);
        run.errors.push(message);
    }
    Ok(run)
}

/// The file that sums the whole output folder.
pub const STATS_NAME: &str = "stats.json";

/// Sets `run`'s totals to those of every complete shard in `output` (so
/// several `--shard` runs or queue workers writing one folder end with one
/// `stats.json` over all of it) and writes it there, whole. In a folder,
/// under an exclusive lock: each run writes its shards' stats before it
/// takes the lock, so the last run to take it counts every shard. A bucket
/// has no lock: after writing, a run lists the shards' stats again, and
/// writes once more if another run added some meanwhile. Since every run
/// uploads its shards' stats before it counts, the last `stats.json` written
/// counts them all.
pub fn write_stats(output: &Store, run: &mut RunStats) -> anyhow::Result<()> {
    let _lock = match output {
        Store::Folder(directory) => Some(
            crate::fs::lock::wait_for_folder(directory)
                .with_context(|| format!("cannot lock {}", directory.display()))?,
        ),
        Store::Bucket(_) => None,
    };
    // A bound, should other runs keep adding shards: the last of them counts.
    for _ in 0..8 {
        let counted = shard::stats_names(output)?;
        let (stats, shards) = shard::sum_stats(output, &counted)?;
        run.stats = stats;
        run.shards = shards;
        let mut text = serde_json::to_vec_pretty(run).expect("stats serialise to JSON");
        text.push(b'\n');
        write_output_file(output, STATS_NAME, &text, true)
            .with_context(|| format!("cannot write {}", output.describe(STATS_NAME)))?;
        if !output.is_bucket() || shard::stats_names(output)? == counted {
            break;
        }
    }
    Ok(())
}

/// Writes `name` at the top of the output (`stats.json`, `settings.json`),
/// whole: atomically in a folder, as one object in a bucket. Without
/// `replace`, a file already there stays and the call fails with
/// `AlreadyExists` (a bucket is looked at first: its runs split the work
/// with `--shard` and record the same settings). Every such file goes
/// through here, and is read through [`read_output_file`].
pub fn write_output_file(
    output: &Store,
    name: &str,
    bytes: &[u8],
    replace: bool,
) -> std::io::Result<()> {
    match output {
        Store::Folder(directory) => {
            crate::fs::atomic::write_atomically(&directory.join(name), bytes, replace)
        }
        Store::Bucket(_) => {
            if !replace && output.exists(name)? {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            output.write(name, bytes)
        }
    }
}

/// Reads `name` at the top of the output; none when it is not there.
pub fn read_output_file(output: &Store, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    output
        .read(name)
        .with_context(|| format!("cannot read {}", output.describe(name)))
}

/// A folder given to `grab dataset stats` that no dataset run wrote to: the
/// command line named the wrong folder.
#[derive(Debug, thiserror::Error)]
pub enum NotADataset {
    #[error("{}: no such folder", .0.display())]
    Missing(PathBuf),
    #[error("{} is a file, not a dataset's output folder", .0.display())]
    File(PathBuf),
    #[error("{0} holds no shards (no NNNNN_stats.json in it): not a dataset's output folder")]
    NoShards(String),
}

/// `grab dataset stats DIR`: rebuilds `stats.json` from the shards in the
/// folder or bucket prefix, keeping what the last run recorded about itself.
/// An output without shards is [`NotADataset`], and nothing is written to
/// it: a zero `stats.json` would pass for an empty dataset.
pub fn rebuild_stats(output: &Store) -> anyhow::Result<RunStats> {
    if let Store::Folder(directory) = output {
        match fs::metadata(directory) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(NotADataset::Missing(directory.to_path_buf()).into());
            }
            Ok(metadata) if !metadata.is_dir() => {
                return Err(NotADataset::File(directory.to_path_buf()).into());
            }
            _ => {}
        }
    }
    if shard::folder_stats(output)?.1 == 0 {
        return Err(NotADataset::NoShards(output.to_string()).into());
    }
    let mut run = match read_output_file(output, STATS_NAME) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        _ => RunStats::default(),
    };
    write_stats(output, &mut run)?;
    Ok(run)
}

/// The reader's side: each row skipped (its shard is complete), reused (spooled
/// by an earlier run), failed at once (no valid URL) or queued for download.
/// Where the reader hands rows to download.
struct Pending<'a> {
    sender: &'a Sender<Job>,
    waiting: &'a Waiting,
    bodies: &'a Bodies,
}

fn read_rows(
    rows: Rows,
    pending: &Pending,
    tracker: &Tracker,
    reused: &Mutex<(Stats, u64, u64)>,
    interrupt: &Interrupt,
) {
    let layout = &tracker.layout;
    let keys = layout.keys;
    // The shard being read: its number, rows so far, and whether it was complete.
    let mut current: Option<(u64, u64, bool)> = None;
    let mut complete = false;
    // `--retry-failed`, in a complete shard: the rows whose samples failed.
    let mut retrying: Option<std::collections::BTreeSet<u64>> = None;
    for row in rows {
        if interrupt.stopping() {
            return;
        }
        let row = match row {
            Ok(row) => row,
            Err(error) => {
                // Later rows' numbers cannot be trusted: the open shard stays
                // unfinished, to be redone by a run on a readable table.
                tracker.error(format!("stopped reading the table: {error}"));
                tracker.counters.input_done.store(true, Ordering::Relaxed);
                return;
            }
        };
        tracker.counters.rows.fetch_add(1, Ordering::Relaxed);
        let shard = keys.shard_of(row.number);
        if current.is_none_or(|(number, _, _)| number != shard) {
            if let Some((number, count, was_complete)) = current
                && !was_complete
            {
                tracker.closed(number, count);
            }
            complete = layout.is_complete(shard);
            retrying = None;
            if complete && tracker.retry {
                match retry::failed_rows(layout, shard) {
                    Ok(failed) if !failed.is_empty() => {
                        crate::lock(&tracker.rewriting).insert(shard);
                        retrying = Some(failed);
                        complete = false;
                    }
                    Ok(_) => {}
                    Err(error) => tracker.error(format!("{error:#}")),
                }
            }
            if complete {
                match layout.read_stats(shard) {
                    Ok(stats) => {
                        let mut reused = crate::lock(reused);
                        reused.0.add(&stats);
                        reused.1 += 1;
                    }
                    Err(error) => tracker.error(format!(
                        "cannot read {}: {error}",
                        layout.output.describe(&layout.stats_name(shard))
                    )),
                }
                tracker.counters.shards.fetch_add(1, Ordering::Relaxed);
            } else if let Err(error) = tracker.open_spool(shard) {
                match crate::http::error::storage_full(&error) {
                    Some(message) => tracker.full(message),
                    None => tracker.error(format!(
                        "cannot open the spool {}: {error}",
                        layout.spool_folder(shard).display()
                    )),
                }
                return;
            }
            current = Some((shard, 0, complete));
        }
        if retrying
            .as_ref()
            .is_some_and(|failed| !failed.contains(&row.number))
        {
            // A sample of the shard that stays as it is.
            continue;
        }
        if let Some((_, count, _)) = current.as_mut() {
            *count += 1;
        }
        if complete {
            continue;
        }
        if tracker.spooled(shard, row.number) {
            crate::lock(reused).2 += 1;
            tracker.done(shard, 1);
            continue;
        }
        let key = keys.key(row.number);
        let url = match crate::http::request::parse_line(&row.url) {
            Ok(Some((url, None))) => url,
            _ => {
                let sample = Sample::failed(
                    &row,
                    key,
                    Status::FailedToDownload,
                    format!("{}: not an http or https URL: {:?}", row.origin, row.url),
                    "not an http or https URL".to_string(),
                );
                tracker.finish(shard, sample, &[]);
                continue;
            }
        };
        let job = Job {
            url,
            name: Some(key.clone()),
            origin: Origin {
                source: row.origin.clone(),
                line: row.number as usize + 1,
            },
            plan: None,
            rank: None,
            queued_at: Duration::ZERO,
            checksum: None,
            mirrors: Vec::new(),
        };
        let reservation = pending.bodies.reserve();
        crate::lock(pending.waiting).insert(key, (row, reservation));
        if pending.sender.send_blocking(job).is_err() {
            return;
        }
    }
    tracker.counters.input_done.store(true, Ordering::Relaxed);
    if let Some((number, count, false)) = current {
        tracker.closed(number, count);
    }
}

/// A download's outcome: its body to the image pool, or its failure spooled.
fn downloaded(
    outcome: Outcome,
    tracker: &Tracker,
    waiting: &Waiting,
    bodies: &Bodies,
    images: &Sender<ImageJob>,
    downloads: &std::path::Path,
) {
    let key = outcome.job.name.clone().unwrap_or_default();
    let Some((row, mut reservation)) = crate::lock(waiting).remove(&key) else {
        tracker.error(format!(
            "{}: a download no row was waiting for",
            outcome.job.url
        ));
        return;
    };
    let shard = tracker.layout.keys.shard_of(row.number);
    // The download's own time, from its first request; not its wait in the queue.
    let download_seconds = outcome.elapsed.as_secs_f64();
    let fail = |status: Status, error: String, reason: String| {
        let mut sample = Sample::failed(&row, key.clone(), status, error, reason);
        sample.download_seconds = download_seconds;
        tracker.finish(shard, sample, &[]);
    };
    match outcome.verdict {
        Verdict::Saved(saved) => {
            let body = match saved.body {
                Some(body) => Ok(body.0),
                // A worker process saved it as a file.
                None => {
                    let path = downloads.join(&saved.name);
                    let body = fs::read(&path);
                    let _ = fs::remove_file(&path);
                    body.map_err(|error| {
                        format!("cannot read the download {}: {error}", path.display())
                    })
                }
            };
            match body {
                Ok(body) => {
                    bodies.arrived(&mut reservation, body.len() as u64);
                    let job = ImageJob {
                        row,
                        key,
                        body,
                        sha256: saved.sha256,
                        download_seconds,
                        _budget: reservation,
                    };
                    // Waits while the pool is behind: this holds downloads back.
                    if let Err(error) = images.send_blocking(job) {
                        // Not spooled: a re-run does this sample again.
                        let job = error.into_inner();
                        tracker.error(format!(
                            "{}: the image pool stopped before sample {}",
                            job.row.url, job.key
                        ));
                    }
                }
                Err(error) => fail(
                    Status::FailedToDownload,
                    error,
                    "cannot read the download".to_string(),
                ),
            }
        }
        // The run halts for it (see `download_task::run`); not spooled, the
        // sample is downloaded again by the next run.
        Verdict::Failed(error) if error.stops_the_run().is_some() => {}
        Verdict::Failed(DownloadError::OptedOut { directive }) => fail(
            Status::OptedOut,
            format!("opted out by X-Robots-Tag: {directive}"),
            sample::OPTED_OUT_REASON.to_string(),
        ),
        Verdict::Failed(error) => fail(Status::FailedToDownload, error.to_string(), error.reason()),
        Verdict::Skipped(_) => fail(
            Status::FailedToDownload,
            "skipped by the download planner".to_string(),
            "skipped".to_string(),
        ),
    }
}

/// Opens the table for `config`'s columns and shard size; a usage error when
/// it cannot be. A table in a bucket (`s3://...`) is downloaded first.
pub fn open(
    path: &std::path::Path,
    format: Option<InputFormat>,
    config: &DatasetConfig,
) -> Result<Table, input::InputError> {
    tables::open(
        path,
        format,
        &config.read_columns(),
        config.samples_per_shard,
    )
}
