//! `grab filter`: Pillow's BLUR, SHARPEN, CONTOUR, `convert("L")` and
//! `ImageEnhance.Contrast` on a batch of JPEG and PNG files, pixel for pixel, on
//! one of three of the engine's strategies (`sequential`, `threads`,
//! `processes`). One image is one job: [`filter_file`] reads, decodes, filters,
//! encodes and writes it, and every strategy runs exactly that function, so they
//! differ only in how many run at once and where. The same pool serves
//! `grab get --filter`, which filters each download as soon as it is saved
//! (composed in `cli::get_filter`).
//!
//! - `kernels`: the filters on an interleaved 8-bit buffer, exact to Pillow.
//! - `codec`: decoding, with the header (format, pixel limit) checked from
//!   the file's first bytes before it is read whole, EXIF orientation,
//!   16-bit and alpha; encoding in the input's format; the atomic write.
//! - `inputs`: paths and folders to jobs with their output names.
//! - the memory budget every image reserves from before decoding is the
//!   engine's (`engine/budget.rs`).
//! - `task`: the filter as an engine task, in this process or in workers.
//! - `pool`: the engine on a thread of its own, fed one job at a time.
//! - `record`: the outputs written into a folder, so that a run recognises
//!   its own and never replaces a file it did not write.
//! - `report`: per-image lines, the tally and the summary.

mod codec;
mod inputs;
mod kernels;
mod pool;
pub(crate) mod record;
mod report;
pub(crate) mod task;

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::Named;
use crate::console::{Console, human_bytes};
use crate::engine::budget::{Budget, OverBudget, Reservation};
use crate::engine::processes::{Parent, WorkerProgram};
use crate::engine::{self, Queue, Sink, Strategy};
pub use codec::{HEADER_BYTES, decode, encode};
pub use kernels::{Pixels, blur, contour, contrast, grayscale, sharpen};
pub use pool::Pool;
pub use record::RECORD_NAME;
pub use report::{Reporter, Summary};

/// One filter, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Pillow's `ImageFilter.BLUR` (5x5 ring average).
    Blur,
    /// Pillow's `ImageFilter.SHARPEN`.
    Sharpen,
    /// Pillow's `ImageFilter.CONTOUR`.
    Contour,
    /// Pillow's `convert("L")`: one channel of luma, alpha dropped.
    Grayscale,
    /// Pillow's `ImageEnhance.Contrast(image).enhance(factor)`.
    Contrast,
}

named!(Filter {
    Blur => "blur": "Pillow's ImageFilter.BLUR",
    Sharpen => "sharpen": "Pillow's ImageFilter.SHARPEN",
    Contour => "contour": "Pillow's ImageFilter.CONTOUR",
    Grayscale => "grayscale": "Pillow's convert(\"L\")",
    Contrast => "contrast": "Pillow's ImageEnhance.Contrast, by --contrast",
});

/// The engine's strategies a filter run can use: images are CPU work, so there
/// is no `async`.
pub const STRATEGIES: [Strategy; 3] =
    [Strategy::Sequential, Strategy::Threads, Strategy::Processes];

/// How each image is filtered: everything a worker process needs besides its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Applied in this order.
    pub filters: Vec<Filter>,
    /// The factor of [`Filter::Contrast`].
    pub contrast: f32,
    /// JPEG quality of the outputs, 1 to 100.
    pub quality: u8,
    /// Images with more pixels are refused before decoding.
    pub max_pixels: u64,
    /// Apply the EXIF orientation before filtering.
    pub auto_orient: bool,
    /// A thread (or worker) keeps each of its buffers for the next image up
    /// to this size; the run's budget sets aside what they may hold.
    #[serde(default = "Settings::default_kept_buffer_bytes")]
    pub kept_buffer_bytes: u64,
}

impl Settings {
    pub const DEFAULT_CONTRAST: f32 = 1.5;
    pub const DEFAULT_QUALITY: u8 = 90;
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

    /// The given filters with every other setting at its default.
    pub fn with_filters(filters: Vec<Filter>) -> Settings {
        Settings {
            filters,
            contrast: Settings::DEFAULT_CONTRAST,
            quality: Settings::DEFAULT_QUALITY,
            max_pixels: Settings::DEFAULT_MAX_PIXELS,
            auto_orient: true,
            kept_buffer_bytes: Settings::default_kept_buffer_bytes(),
        }
    }

    fn default_kept_buffer_bytes() -> u64 {
        Buffers::MAX_KEPT as u64
    }
}

/// Everything `grab filter` needs besides its paths, already validated.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub settings: Settings,
    pub output_dir: PathBuf,
    /// One of [`STRATEGIES`].
    pub strategy: Strategy,
    /// Images filtered at once (`sequential` is always 1).
    pub jobs: usize,
    pub console: Console,
    /// The grab executable the `processes` strategy starts as workers.
    pub worker_program: WorkerProgram,
    /// Bytes all images in flight may hold together, kept buffers included
    /// (`--memory-limit`; `engine::budget::default_limit` by default).
    pub memory_limit: u64,
}

impl FilterConfig {
    /// The settings as the workers get them, with the kept buffers sized to
    /// the budget, and the budget left for the images in flight: each of the
    /// workers' four buffers may keep up to 1/16 of its share, so the images
    /// get at least three quarters of the limit.
    fn budgeted(&self) -> (Settings, Arc<Budget>) {
        let workers = self.strategy.workers(self.jobs) as u64;
        let kept = (self.memory_limit / (16 * workers)).min(Buffers::MAX_KEPT as u64);
        let settings = Settings {
            kept_buffer_bytes: kept,
            ..self.settings.clone()
        };
        let images = self.memory_limit - 4 * workers * kept;
        (settings, Budget::new(images))
    }
}

/// Where an image's memory comes from: the run's budget in this process, the
/// parent's (asked over the pipe) in a worker process, or nowhere in particular
/// for a lone image filtered by a caller of [`filter_file`].
#[derive(Clone)]
pub enum Memory {
    Unlimited,
    Budget(Arc<Budget>),
    Parent(Parent<Reserve, Result<(), OverBudget>>),
}

/// A worker's request to its parent: hold this many bytes of the run's budget
/// for the job under way (given back when the job is over).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Reserve {
    pub bytes: u64,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Memory::Unlimited => formatter.write_str("Unlimited"),
            Memory::Budget(budget) => write!(formatter, "Budget({} bytes)", budget.total()),
            Memory::Parent(_) => formatter.write_str("Parent"),
        }
    }
}

impl Memory {
    /// Holds `bytes` for one image, waiting while they are not free. The
    /// reservation is `None` where nothing is held here (unlimited, or held by
    /// the parent for the job).
    fn reserve(&self, bytes: u64, job: &Job) -> Result<Option<Reservation>, FilterError> {
        let fail = |failure| FilterError::new(&job.input, failure);
        match self {
            Memory::Unlimited => Ok(None),
            Memory::Budget(budget) => budget.reserve(bytes).map(Some).map_err(|over| {
                fail(Failure::OverMemoryBudget {
                    needed: bytes,
                    budget: over.total,
                })
            }),
            Memory::Parent(parent) => match parent.ask(Reserve { bytes }) {
                Ok(Ok(())) => Ok(None),
                Ok(Err(over)) => Err(fail(Failure::OverMemoryBudget {
                    needed: bytes,
                    budget: over.total,
                })),
                Err(error) => Err(fail(Failure::NoBudget(error.to_string()))),
            },
        }
    }
}

/// One image to filter: where it is read and where its result goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
    /// A file at `output` may be replaced (it is an earlier output of ours);
    /// otherwise a file that appears there meanwhile is left alone and this
    /// job fails.
    #[serde(default)]
    pub replace: bool,
}

/// An image filtered and written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filtered {
    pub width: u32,
    pub height: u32,
    /// Channels of the written image: 1 after `grayscale`.
    pub channels: u8,
    /// Size of the written file.
    pub bytes: u64,
}

/// What went wrong with one image; every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterError {
    /// The input, or the output for [`Failure::Encode`] and [`Failure::Write`].
    pub path: String,
    pub failure: Failure,
}

/// How one image failed; [`FilterError`] names the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    Read(String),
    NotAnImage,
    TooManyPixels { width: u32, height: u32, limit: u64 },
    Decode(String),
    OverMemoryBudget { needed: u64, budget: u64 },
    NoBudget(String),
    Encode(String),
    Write(String),
    WouldReplaceInput { output: String },
    OutputTaken { output: String },
    Panicked(String),
    WorkerDied,
    WorkerStart(String),
}

impl FilterError {
    pub fn new(path: &Path, failure: Failure) -> FilterError {
        FilterError {
            path: path.display().to_string(),
            failure,
        }
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = &self.path;
        match &self.failure {
            Failure::Read(message) => write!(formatter, "cannot read {path}: {message}"),
            Failure::NotAnImage => write!(formatter, "{path}: not a JPEG or PNG image"),
            Failure::TooManyPixels {
                width,
                height,
                limit,
            } => write!(
                formatter,
                "{path}: {width}x{height} is over the limit of {limit} pixels (--max-pixels); not decoded"
            ),
            Failure::Decode(message) => write!(formatter, "cannot decode {path}: {message}"),
            Failure::OverMemoryBudget { needed, budget } => write!(
                formatter,
                "{path}: needs {} to filter, more than the {} the memory budget has for images (--memory-limit); not decoded",
                human_bytes(*needed),
                human_bytes(*budget)
            ),
            Failure::NoBudget(message) => {
                write!(formatter, "{path}: cannot reserve memory: {message}")
            }
            Failure::Encode(message) => write!(formatter, "cannot encode {path}: {message}"),
            Failure::Write(message) => write!(formatter, "cannot write {path}: {message}"),
            Failure::WouldReplaceInput { output } => write!(
                formatter,
                "{path}: its output {output} would replace an input of this batch"
            ),
            Failure::OutputTaken { output } => write!(
                formatter,
                "{path}: its output {output} appeared meanwhile, not written by grab; left alone"
            ),
            Failure::Panicked(message) => {
                write!(formatter, "{path}: filtering panicked: {message}")
            }
            Failure::WorkerDied => write!(formatter, "{path}: the worker process died"),
            Failure::WorkerStart(message) => {
                write!(formatter, "{path}: no worker process: {message}")
            }
        }
    }
}

impl std::error::Error for FilterError {}

/// The result of one job, as every strategy reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<Filtered, FilterError>,
    pub elapsed: Duration,
}

/// `photo.jpg` after blur and grayscale is `blur_grayscale_photo.jpg`, the name
/// the Python original gives. A name that would pass
/// `fs::names::MAX_NAME_BYTES` (room left
/// under the filesystem's 255 bytes for a `-N` of a second input of the same
/// name) keeps the filters and the extension and loses the end of its stem, on
/// a character boundary, to `~` and a short hash of the whole input name: two
/// long names that differ only past the cut stay apart.
pub fn output_name(filters: &[Filter], input_name: &str) -> String {
    let mut prefix = String::new();
    for filter in filters {
        prefix.push_str(filter.name());
        prefix.push('_');
    }
    let limit = crate::fs::names::MAX_NAME_BYTES;
    if prefix.len() + input_name.len() <= limit {
        return prefix + input_name;
    }
    let (stem, extension) = crate::fs::names::split_extension(input_name);
    let extension = if extension.len() <= 16 { extension } else { "" };
    let tag = format!("~{:08x}", crate::fs::names::fingerprint(input_name) as u32);
    let mut end = limit
        .saturating_sub(prefix.len() + tag.len() + extension.len())
        .min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{prefix}{}{tag}{extension}", &stem[..end])
}

/// Applies every filter of `settings`, in order.
pub fn apply(image: Pixels, settings: &Settings) -> Pixels {
    apply_reusing(image, settings, &mut Vec::new())
}

/// [`apply`], each filter writing into `spare` and leaving the image it read
/// there for the next: two buffers for the whole chain.
pub fn apply_reusing(mut image: Pixels, settings: &Settings, spare: &mut Vec<u8>) -> Pixels {
    for filter in &settings.filters {
        let buffer = std::mem::take(spare);
        let result = match filter {
            Filter::Blur => kernels::blur_into(&image, buffer),
            Filter::Sharpen => kernels::sharpen_into(&image, buffer),
            Filter::Contour => kernels::contour_into(&image, buffer),
            // Already one channel: nothing to do.
            Filter::Grayscale if image.channels == 1 => {
                *spare = buffer;
                continue;
            }
            Filter::Grayscale => kernels::grayscale_into(&image, buffer),
            Filter::Contrast => kernels::contrast_into(&image, settings.contrast, buffer),
        };
        *spare = std::mem::replace(&mut image, result).data;
    }
    image
}

/// The buffers one image goes through, kept by each thread from one image to
/// the next. Fresh multi-megabyte buffers come from the kernel a page at a
/// time, and on a process's main thread glibc hands them back after every
/// image: measured, that doubled the time per image of `sequential` and of the
/// worker processes.
#[derive(Default)]
struct Buffers {
    file: Vec<u8>,
    pixels: Vec<u8>,
    spare: Vec<u8>,
    encoded: Vec<u8>,
}

impl Buffers {
    /// Larger buffers are freed after their image rather than held by an idle
    /// thread: one huge image should not pin memory for the rest of the batch.
    const MAX_KEPT: usize = 64 << 20;

    fn trim(&mut self, kept: u64) {
        let kept = usize::try_from(kept)
            .unwrap_or(usize::MAX)
            .min(Buffers::MAX_KEPT);
        for buffer in [
            &mut self.file,
            &mut self.pixels,
            &mut self.spare,
            &mut self.encoded,
        ] {
            if buffer.capacity() > kept {
                *buffer = Vec::new();
            }
        }
    }
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Filters one image: read, decode, filter, encode in the input's format, and
/// write atomically. Never panics: a panic inside (a codec bug on a hostile file)
/// becomes this image's error, so the batch goes on.
pub fn filter_file(job: &Job, settings: &Settings) -> Outcome {
    filter_within(job, settings, &Memory::Unlimited)
}

/// [`filter_file`], the image reserving its memory from `memory` once its
/// header is read, before the file is read whole.
pub fn filter_within(job: &Job, settings: &Settings, memory: &Memory) -> Outcome {
    let started = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| filter_unguarded(job, settings, memory)))
        .unwrap_or_else(|payload| {
            Err(FilterError::new(
                &job.input,
                Failure::Panicked(panic_message(payload.as_ref())),
            ))
        });
    Outcome {
        job: job.clone(),
        result,
        elapsed: started.elapsed(),
    }
}

fn filter_unguarded(
    job: &Job,
    settings: &Settings,
    memory: &Memory,
) -> Result<Filtered, FilterError> {
    // Taken out for the job, so a panic half-way leaves the thread's slot empty
    // rather than borrowed.
    let mut buffers = BUFFERS.with(|slot| slot.take());
    let result = filter_with(job, settings, memory, &mut buffers);
    buffers.trim(settings.kept_buffer_bytes);
    BUFFERS.with(|slot| slot.replace(buffers));
    result
}

fn filter_with(
    job: &Job,
    settings: &Settings,
    memory: &Memory,
    buffers: &mut Buffers,
) -> Result<Filtered, FilterError> {
    let pixels = std::mem::take(&mut buffers.pixels);
    let opened = codec::open(&job.input, settings, &mut buffers.file)?;
    // Held until the image is written; what the thread keeps afterwards is
    // within the share set aside for kept buffers.
    let _reservation = memory.reserve(opened.memory_needed(), job)?;
    let decoded = codec::decode_opened(opened, &job.input, settings, &mut buffers.file, pixels)?;
    let (width, height) = (decoded.pixels.width, decoded.pixels.height);
    let result = apply_reusing(decoded.pixels, settings, &mut buffers.spare);
    let encoded = codec::encode_into(
        &result,
        decoded.format,
        settings.quality,
        &mut buffers.encoded,
    );
    let channels = result.channels;
    buffers.pixels = result.data;
    encoded.map_err(|message| FilterError::new(&job.output, Failure::Encode(message)))?;
    write_output(job, &buffers.encoded)?;
    Ok(Filtered {
        width,
        height,
        channels,
        bytes: buffers.encoded.len() as u64,
    })
}

/// Records the output as ours, then writes it: recorded first, so that an
/// output on disk is always recognised as ours, even after a crash between the
/// two.
fn write_output(job: &Job, bytes: &[u8]) -> Result<(), FilterError> {
    let write_error =
        |error: std::io::Error| FilterError::new(&job.output, Failure::Write(error.to_string()));
    let folder = match job.output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Some(name) = job.output.file_name() {
        record::add(folder, &name.to_string_lossy()).map_err(write_error)?;
    }
    match crate::fs::atomic::write_atomically(&job.output, bytes, job.replace) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(FilterError::new(
            &job.input,
            Failure::OutputTaken {
                output: job.output.display().to_string(),
            },
        )),
        result => result.map_err(write_error),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs one `grab filter` batch. Errors only when the batch cannot run at all (the
/// output folder cannot be made, a strategy cannot start); failed images are
/// counted in the summary instead.
pub fn run(config: &FilterConfig, paths: &[PathBuf]) -> anyhow::Result<Summary> {
    let directory = &config.output_dir;
    crate::fs::create_folder(directory, "output folder")?;
    let reporter = Arc::new(Reporter::new(config.console.clone()));
    let plan = inputs::plan(paths, directory, &config.settings.filters);
    let pool = Pool::start(config, reporter.clone())
        .with_context(|| format!("the {} strategy cannot start", config.strategy))?;
    for planned in plan {
        match planned {
            inputs::Planned::Job(job) => pool.submit(job),
            inputs::Planned::Failed(outcome) => reporter.record(&outcome),
            inputs::Planned::OwnOutput(path) => {
                reporter.skip(&path, "an output of grab filter, not filtered again")
            }
        }
    }
    pool.finish()
        .with_context(|| format!("the {} strategy failed", config.strategy))?;
    Ok(reporter.summary())
}

/// Runs the engine with the strategy of `config` until `queue` is drained.
fn run_engine(
    config: &FilterConfig,
    queue: &Queue<Job>,
    sink: &Sink<Outcome>,
) -> anyhow::Result<()> {
    let (settings, budget) = config.budgeted();
    let task = task::Filtering {
        settings,
        memory: Memory::Budget(budget),
    };
    let workers = config.strategy.workers(config.jobs);
    match config.strategy {
        Strategy::Sequential => engine::threads::sequential(&task, queue, sink),
        Strategy::Threads => engine::threads::run(&task, workers, queue, sink)?,
        Strategy::Processes => engine::processes::run(
            &task,
            &config.worker_program,
            workers,
            queue,
            sink,
            &config.console,
        )?,
        Strategy::Async => anyhow::bail!("grab filter has no async strategy: images are CPU work"),
    }
    Ok(())
}

/// Whether a file name says JPEG or PNG: what a folder contributes, and what
/// `grab get --filter` hands to the filters.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            ["jpg", "jpeg", "png"]
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_names_its_file() {
        let path = Path::new("in/a.jpg");
        let says = |failure| FilterError::new(path, failure).to_string();
        let message = || "why".to_string();
        let output = || "out/a.jpg".to_string();
        let texts = [
            (says(Failure::Read(message())), "cannot read in/a.jpg: why"),
            (
                says(Failure::NotAnImage),
                "in/a.jpg: not a JPEG or PNG image",
            ),
            (
                says(Failure::TooManyPixels {
                    width: 4,
                    height: 3,
                    limit: 10,
                }),
                "in/a.jpg: 4x3 is over the limit of 10 pixels (--max-pixels); not decoded",
            ),
            (
                says(Failure::Decode(message())),
                "cannot decode in/a.jpg: why",
            ),
            (
                says(Failure::OverMemoryBudget {
                    needed: 3 << 20,
                    budget: 2048,
                }),
                "in/a.jpg: needs 3.0 MiB to filter, more than the 2.0 KiB the memory budget has for images (--memory-limit); not decoded",
            ),
            (
                says(Failure::NoBudget(message())),
                "in/a.jpg: cannot reserve memory: why",
            ),
            (
                says(Failure::Encode(message())),
                "cannot encode in/a.jpg: why",
            ),
            (
                says(Failure::Write(message())),
                "cannot write in/a.jpg: why",
            ),
            (
                says(Failure::WouldReplaceInput { output: output() }),
                "in/a.jpg: its output out/a.jpg would replace an input of this batch",
            ),
            (
                says(Failure::OutputTaken { output: output() }),
                "in/a.jpg: its output out/a.jpg appeared meanwhile, not written by grab; left alone",
            ),
            (
                says(Failure::Panicked(message())),
                "in/a.jpg: filtering panicked: why",
            ),
            (
                says(Failure::WorkerDied),
                "in/a.jpg: the worker process died",
            ),
            (
                says(Failure::WorkerStart(message())),
                "in/a.jpg: no worker process: why",
            ),
        ];
        for (said, expected) in texts {
            assert_eq!(said, expected);
        }
    }

    #[test]
    fn output_names_join_the_filters_and_the_original_name() {
        let filters = [Filter::Blur, Filter::Contrast, Filter::Grayscale];
        assert_eq!(
            output_name(&filters, "photo1.jpg"),
            "blur_contrast_grayscale_photo1.jpg"
        );
        assert_eq!(output_name(&[], "a.png"), "a.png");
    }

    #[test]
    fn long_output_names_are_cut_on_a_character_boundary_and_stay_apart() {
        let filters = [Filter::Blur, Filter::Grayscale];
        // 250 bytes: 2-byte characters, so a cut can fall inside one.
        let long = format!("{}.jpg", "é".repeat(123));
        assert_eq!(long.len(), 250);
        let name = output_name(&filters, &long);
        assert!(
            name.len() <= crate::fs::names::MAX_NAME_BYTES,
            "{}",
            name.len()
        );
        assert!(name.starts_with("blur_grayscale_é"), "{name}");
        assert!(name.ends_with(".jpg"), "{name}");
        let other = format!("{}x.jpg", "é".repeat(122));
        assert_ne!(output_name(&filters, &other), name);
        // Numbered for a second input of the same name, still within 255.
        assert!(crate::fs::names::numbered(&name, 9999).len() <= 255);
    }

    #[test]
    fn filters_apply_in_order() {
        let image = Pixels::new(1, 1, 3, vec![200, 100, 0]);
        let mut settings = Settings::with_filters(vec![Filter::Grayscale, Filter::Contrast]);
        let gray = apply(image.clone(), &settings);
        assert_eq!((gray.channels, gray.data.len()), (1, 1));
        settings.filters = vec![Filter::Contrast];
        assert_eq!(apply(image, &settings).channels, 3);
    }

    #[test]
    fn image_extensions_ignore_case() {
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("c.jpeg")));
        assert!(has_image_extension(Path::new("d.Png")));
        assert!(!has_image_extension(Path::new("e.gif")));
        assert!(!has_image_extension(Path::new("png")));
    }
}
