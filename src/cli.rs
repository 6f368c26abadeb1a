//! The command line: clap definitions, and their conversion into the plain config
//! structs the library runs on. Nothing below this module sees clap.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::batch::{self, GetConfig};
use crate::compare::{self, CompareConfig, UrlList};
use crate::demo::{self, DemoConfig, GallerySpec};
use crate::filter::{self, Filter, FilterConfig, samples::SamplesConfig};
use crate::input::Inputs;
use crate::report::live::ProgressMode;
use crate::report::records::ReportFormat;
use crate::report::{INTERRUPTED_EXIT_CODE, Verbosity};
use crate::strategy::{self, StrategyKind};

const EXIT_CODES: &str = "Exit codes:\n  0  every URL was saved\n  1  a URL failed or an input line was invalid\n  2  usage error (unknown flag, unreadable input file)";

#[derive(Debug, Parser)]
#[command(name = "grab", version, about = "Download many URLs concurrently, four ways, and compare them.", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download URLs from arguments, files or stdin.
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// Download the same list with every strategy (and peers), and compare.
    Compare(CompareArgs),
    /// Serve the image gallery and the asynchronous demo endpoints.
    Serve(ServeArgs),
    /// Serve a gallery locally, compare the four strategies on it, explain.
    Demo(DemoArgs),
    /// A worker of the `processes` strategy (started by grab itself).
    #[command(name = strategy::WORKER_SUBCOMMAND, hide = true)]
    Worker {
        #[arg(long)]
        settings: String,
    },
    /// Apply Pillow-exact filters to JPEG and PNG images, in parallel.
    #[command(after_help = FILTER_EXIT_CODES)]
    Filter(FilterArgs),
    /// Write deterministic sample images to try `grab filter` on.
    Samples(SamplesArgs),
    /// A worker of the `processes` filter strategy (started by grab itself).
    #[command(name = filter::processes::WORKER_SUBCOMMAND, hide = true)]
    FilterWorker {
        #[arg(long)]
        settings: String,
    },
}

const FILTER_EXIT_CODES: &str = "Exit codes:\n  0  every image was filtered\n  1  an image failed (unreadable, not an image, over --max-pixels, ...)\n  2  usage error (unknown flag or filter, output folder that cannot be made)";

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Image files, or folders (every JPEG and PNG directly inside).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Filters to apply, in this order, comma-separated.
    #[arg(
        short,
        long,
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        required = true
    )]
    pub filters: Vec<Filter>,
    /// Folder to write into (created when missing).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// How images are filtered concurrently.
    #[arg(short, long, value_enum, default_value_t = filter::StrategyKind::Threads)]
    pub strategy: filter::StrategyKind,
    /// Images filtered at once (threads or worker processes) [default: the number of CPUs].
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Factor of the `contrast` filter (1 keeps the image, 0 makes it flat gray).
    #[arg(long, value_name = "FACTOR", default_value_t = filter::Settings::DEFAULT_CONTRAST, value_parser = finite_factor)]
    pub contrast: f32,
    /// JPEG quality of the outputs.
    #[arg(long, value_name = "Q", default_value_t = filter::Settings::DEFAULT_QUALITY, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Refuse images of more pixels, before decoding them.
    #[arg(long, value_name = "N", default_value_t = filter::Settings::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
    /// Ignore the EXIF orientation (filter the pixels as stored, as Pillow does).
    #[arg(long)]
    pub no_auto_orient: bool,
    /// Print only failures and the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SamplesArgs {
    /// How many images.
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Folder to write into (created when missing).
    #[arg(short, long, value_name = "DIR", default_value = "samples")]
    pub output_dir: PathBuf,
    /// Size of each image.
    #[arg(long, value_name = "WxH", default_value = "1600x1200", value_parser = filter::samples::parse_size)]
    pub size: (u32, u32),
}

fn finite_factor(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(factor) if factor.is_finite() => Ok(factor),
        _ => Err(format!("expected a number, got {text}")),
    }
}

/// Images filtered at once when not given: one per CPU.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

impl FilterArgs {
    pub fn config(&self) -> FilterConfig {
        FilterConfig {
            settings: filter::Settings {
                filters: self.filters.clone(),
                contrast: self.contrast,
                quality: self.quality,
                max_pixels: self.max_pixels,
                auto_orient: !self.no_auto_orient,
            },
            output_dir: self.output_dir.clone(),
            strategy: self.strategy,
            jobs: self.jobs.map_or_else(cpus, |jobs| jobs as usize),
            verbosity: if self.quiet {
                Verbosity::Quiet
            } else {
                Verbosity::Normal
            },
            worker_program: this_program(),
        }
    }
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// URLs to download.
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (`URL` or `URL NAME`); `-` reads stdin.
    #[arg(short, long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Folder to save into (created when missing).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// How downloads run concurrently.
    #[arg(short, long, value_enum, default_value_t = StrategyKind::Async)]
    pub strategy: StrategyKind,
    /// Downloads in flight at once (threads, worker processes or tasks).
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: u32,
    /// Abandon a transfer that receives nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// Give up connecting after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub connect_timeout: f64,
    /// Print only failures and the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout instead of the summary line.
    #[arg(long)]
    pub json: bool,
    /// Attempts after a transient failure (reset, timeout, cut-short body, 408, 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Base of the exponential backoff between attempts, in seconds (randomised).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = non_negative_seconds)]
    pub retry_wait: f64,
    /// Resume the .part files an interrupted run left (Range, with If-Range).
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,
    /// Download again what the manifest says is already complete.
    #[arg(long)]
    pub force: bool,
    /// Abandon responses larger than BYTES (by Content-Length, or while streaming).
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<u64>,
    /// At most N connections to any one host at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// Name files as the server's Content-Disposition suggests (sanitised).
    #[arg(long)]
    pub content_disposition: bool,
    /// Save only responses whose type matches (Content-Type and first bytes), e.g. `image/*`.
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',')]
    pub accept: Vec<String>,
    /// After Ctrl-C, how long downloads in flight may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = non_negative_seconds)]
    pub grace: f64,
    /// Live progress: a bar (default on a terminal), heartbeat lines (default
    /// otherwise), or none.
    #[arg(long, value_enum)]
    pub progress: Option<ProgressMode>,
    /// Seconds between heartbeat lines.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = positive_seconds)]
    pub heartbeat: f64,
    /// Write one record per URL to FILE (format from its extension, or --report-format).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The report's format, when its extension does not say.
    #[arg(long, value_enum, requires = "report")]
    pub report_format: Option<ReportFormat>,
    /// More log lines on stderr: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Filter each saved JPEG and PNG as it arrives (see `grab filter`), on a pool
    /// of one thread per CPU beside the downloads.
    #[arg(
        long = "filter",
        value_name = "LIST",
        value_enum,
        value_delimiter = ','
    )]
    pub filters: Vec<Filter>,
    /// Folder for the filtered images [default: OUTPUT_DIR/filtered].
    #[arg(long, value_name = "DIR", requires = "filters")]
    pub filter_output_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(short, long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Most connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// A request not answered within SECS gets 408.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub request_timeout: f64,
    /// After Ctrl-C or SIGTERM, how long requests in flight may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub grace: f64,
    /// Do not log each request.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// URLs to download; with none (and no -i), a gallery served in-process.
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line; `-` reads stdin.
    #[arg(short, long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Downloads in flight at once, for every strategy and peer.
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: u32,
    /// Strategies to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = StrategyKind::ALL)]
    pub strategies: Vec<StrategyKind>,
    /// Counted runs of each.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Uncounted runs of each first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Also run curl -Z, wget2 and aria2c, where installed.
    #[arg(long)]
    pub peers: bool,
    /// Write the table and every run's figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub export_json: Option<PathBuf>,
    /// Write the table as Markdown.
    #[arg(long, value_name = "FILE")]
    pub export_markdown: Option<PathBuf>,
    /// Images in the built-in gallery (when no URLs are given).
    #[arg(long, default_value_t = 50)]
    pub gallery_count: usize,
    /// Latency of each gallery image, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub gallery_delay_ms: u64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Images to download with each strategy.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub count: usize,
    /// Latency the local server adds to each response, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
    /// Downloads in flight at once.
    #[arg(short, long, default_value_t = 16)]
    pub jobs: usize,
    /// Counted runs of each strategy (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("expected a number of seconds, got {text}")),
    }
}

/// A flag set by the first Ctrl-C (or SIGTERM); the second exits at once.
fn interrupt_flag() -> Option<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            INTERRUPTED_EXIT_CODE,
            flag.clone(),
        )
        .ok()?;
        signal_hook::flag::register(signal, flag.clone()).ok()?;
    }
    Some(flag)
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("expected a positive number of seconds, got {text}")),
    }
}

/// The running grab executable, which the `processes` strategy starts as workers.
fn this_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("grab"))
}

impl GetArgs {
    pub fn config(&self) -> GetConfig {
        let mut config = GetConfig::new(&self.output_dir, self.strategy, this_program());
        let settings = &mut config.settings;
        settings.connect_timeout = Duration::from_secs_f64(self.connect_timeout);
        settings.idle_timeout = Duration::from_secs_f64(self.timeout);
        settings.retries = self.retries;
        settings.retry_wait = Duration::from_secs_f64(self.retry_wait);
        settings.max_size = self.max_size;
        settings.accept = self.accept.clone();
        settings.content_disposition = self.content_disposition;
        config.jobs = self.jobs as usize;
        config.per_host = self.per_host.map(|limit| limit as usize);
        config.verbosity = if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        };
        config.json_summary = self.json;
        config.resume = self.resume;
        config.force = self.force;
        config.grace = Duration::from_secs_f64(self.grace);
        config.heartbeat = Duration::from_secs_f64(self.heartbeat);
        config.progress = match (self.quiet, self.progress) {
            (true, _) => ProgressMode::None,
            (false, Some(mode)) => mode,
            // A bar would fight with log lines and cannot be drawn off a terminal.
            (false, None) if std::io::stderr().is_terminal() && self.verbose == 0 => {
                ProgressMode::Bar
            }
            (false, None) => ProgressMode::Lines,
        };
        config
    }

    /// The report file and its format; an error when neither says which format.
    pub fn report(&self) -> Result<Option<(PathBuf, ReportFormat)>, String> {
        let Some(path) = &self.report else {
            return Ok(None);
        };
        match self.report_format.or_else(|| ReportFormat::from_path(path)) {
            Some(format) => Ok(Some((path.clone(), format))),
            None => Err(format!(
                "cannot tell the format of {} from its extension: give --report-format json|ndjson|csv",
                path.display()
            )),
        }
    }

    /// The filter pool of `--filter`, when asked for.
    pub fn filter_config(&self) -> Option<FilterConfig> {
        if self.filters.is_empty() {
            return None;
        }
        Some(FilterConfig {
            settings: filter::Settings::with_filters(self.filters.clone()),
            output_dir: self
                .filter_output_dir
                .clone()
                .unwrap_or_else(|| self.output_dir.join("filtered")),
            strategy: filter::StrategyKind::Threads,
            jobs: cpus(),
            verbosity: if self.quiet {
                Verbosity::Quiet
            } else {
                Verbosity::Normal
            },
            worker_program: this_program(),
        })
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("grab: {message}");
    ExitCode::from(2)
}

/// Runs a parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Get(arguments) => {
            let inputs = match Inputs::open(arguments.urls.clone(), &arguments.inputs) {
                Ok(inputs) => inputs,
                Err(error) => return usage_error(error),
            };
            if arguments.urls.is_empty() && arguments.inputs.is_empty() {
                return usage_error(
                    "no URLs: give them as arguments or with -i FILE (-i - reads stdin)",
                );
            }
            let mut config = arguments.config();
            config.interrupt = interrupt_flag();
            config.report = match arguments.report() {
                Ok(report) => report,
                Err(message) => return usage_error(message),
            };
            let result = match arguments.filter_config() {
                None => batch::run(&config, inputs).map(|summary| summary.exit_code()),
                Some(filters) => filter::while_downloading::run(&config, inputs, &filters)
                    .map(|(downloads, filtered)| downloads.exit_code().max(filtered.exit_code())),
            };
            match result {
                Ok(code) => ExitCode::from(code as u8),
                Err(error) => usage_error(format!("{error:#}")),
            }
        }
        Command::Filter(arguments) => match filter::run(&arguments.config(), &arguments.paths) {
            Ok(summary) => ExitCode::from(summary.exit_code() as u8),
            Err(error) => usage_error(format!("{error:#}")),
        },
        Command::Samples(arguments) => {
            let config = SamplesConfig {
                count: arguments.count as usize,
                output_dir: arguments.output_dir.clone(),
                width: arguments.size.0,
                height: arguments.size.1,
            };
            match filter::samples::write(&config) {
                Ok(paths) => {
                    eprintln!(
                        "wrote {} sample images of {}x{} to {}",
                        paths.len(),
                        config.width,
                        config.height,
                        config.output_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => usage_error(format!("{error:#}")),
            }
        }
        Command::FilterWorker { settings } => match filter::processes::worker_main(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("grab filter worker: {error:#}");
                ExitCode::from(1)
            }
        },
        Command::Serve(arguments) => serve(arguments),
        Command::Compare(arguments) => compare(arguments),
        Command::Demo(arguments) => demo(arguments),
        Command::Worker { settings } => match strategy::worker_main(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("grab worker: {error:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Prints each run as it ends, so a long comparison shows it is alive.
fn print_run(run: &compare::Run) {
    let label = if run.warmup { "warm-up" } else { "run" };
    eprintln!(
        "  {label} {:>2}  {:<12} {:>7.3} s  {} saved, {} failed",
        run.round + 1,
        run.contender,
        run.wall_seconds,
        run.saved,
        run.failed
    );
}

fn compare(arguments: CompareArgs) -> ExitCode {
    let work = match tempfile::tempdir() {
        Ok(work) => work,
        Err(error) => return usage_error(format!("cannot create a temporary folder: {error}")),
    };
    let config = CompareConfig {
        jobs: arguments.jobs as usize,
        strategies: arguments.strategies.clone(),
        repeat: arguments.repeat as usize,
        warmup: arguments.warmup as usize,
        peers: arguments.peers,
        grab_program: this_program(),
    };
    let mut invalid_lines = 0;
    let result = if arguments.urls.is_empty() && arguments.inputs.is_empty() {
        let spec = GallerySpec {
            count: arguments.gallery_count.max(1),
            delay: Duration::from_millis(arguments.gallery_delay_ms),
        };
        eprintln!(
            "no URLs given: comparing on {} gallery images served locally with {} ms latency",
            spec.count, arguments.gallery_delay_ms
        );
        demo::with_gallery(spec, work.path(), &config.grab_program, |list| {
            compare::run(&config, list, work.path(), print_run)
        })
    } else {
        let inputs = match Inputs::open(arguments.urls.clone(), &arguments.inputs) {
            Ok(inputs) => inputs,
            Err(error) => return usage_error(error),
        };
        let urls = inputs.filter_map(|item| match item {
            Ok(job) => Some(job.url.to_string()),
            Err(invalid) => {
                eprintln!("error: {invalid}");
                invalid_lines += 1;
                None
            }
        });
        UrlList::write(work.path(), urls)
            .and_then(|list| compare::run(&config, &list, work.path(), print_run))
    };
    let comparison = match result {
        Ok(comparison) => comparison,
        Err(error) => {
            eprintln!("grab: compare failed: {error:#}");
            return ExitCode::from(1);
        }
    };
    println!(
        "{}\n\n{}",
        compare::export::caption(&comparison),
        compare::export::table(&comparison)
    );
    let exports = [
        arguments
            .export_json
            .as_ref()
            .map(|path| compare::export::write_json(&comparison, path)),
        arguments
            .export_markdown
            .as_ref()
            .map(|path| compare::export::write_markdown(&comparison, path)),
    ];
    if let Some(error) = exports.into_iter().flatten().find_map(Result::err) {
        eprintln!("grab: {error:#}");
        return ExitCode::from(1);
    }
    let failed = invalid_lines > 0 || comparison.rows.iter().any(|row| row.failures > 0);
    ExitCode::from(u8::from(failed))
}

fn demo(arguments: DemoArgs) -> ExitCode {
    let config = DemoConfig {
        gallery: GallerySpec {
            count: arguments.count.max(1),
            delay: Duration::from_millis(arguments.delay_ms),
        },
        jobs: arguments.jobs.max(1),
        repeat: arguments.repeat.max(1),
        grab_program: this_program(),
    };
    let compare_config = CompareConfig {
        jobs: config.jobs,
        strategies: StrategyKind::ALL.to_vec(),
        repeat: config.repeat,
        warmup: 1,
        peers: false,
        grab_program: config.grab_program.clone(),
    };
    eprintln!(
        "Serving {} images locally with {} ms latency; downloading them with each strategy, {} at a time, {} times after a warm-up...",
        config.gallery.count, arguments.delay_ms, config.jobs, config.repeat
    );
    let result = tempfile::tempdir()
        .map_err(anyhow::Error::from)
        .and_then(|work| {
            demo::with_gallery(config.gallery, work.path(), &config.grab_program, |list| {
                compare::run(&compare_config, list, work.path(), |_| {})
            })
        });
    match result {
        Ok(comparison) => {
            println!(
                "{}\n\n{}\n{}",
                compare::export::caption(&comparison),
                compare::export::table(&comparison),
                demo::explanation(&config, &comparison)
            );
            let failed = comparison.rows.iter().any(|row| row.failures > 0);
            ExitCode::from(u8::from(failed))
        }
        Err(error) => {
            eprintln!("grab: demo failed: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The log filter for a command line, unless `RUST_LOG` says otherwise.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match &cli.command {
        Command::Serve(arguments) if !arguments.quiet => "warn,grab::server=info",
        Command::Get(arguments) if arguments.verbose == 1 => "warn,grab=debug",
        Command::Get(arguments) if arguments.verbose >= 2 => "warn,grab=trace",
        _ => "warn",
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::warn!(target: "grab::server", "shutting down: no new connections, letting requests in flight finish");
}

fn serve(arguments: ServeArgs) -> ExitCode {
    // Thousands of connections need thousands of descriptors: take what the hard
    // limit allows.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {error}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(format!("cannot start the runtime: {error}")),
    };
    let limits = crate::server::Limits {
        max_connections: arguments.max_connections.max(1),
        request_timeout: Duration::from_secs_f64(arguments.request_timeout),
        grace: Duration::from_secs_f64(arguments.grace),
    };
    let result = runtime.block_on(async {
        let address = SocketAddr::new(arguments.bind, arguments.port);
        let listener = crate::server::bind(address)
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        println!("serving on http://{local}  (try / or /images/index.txt?count=10)");
        crate::server::run_with(listener, shutdown_signal(), limits)
            .await
            .map_err(|error| error.to_string())
    });
    // Handlers still sleeping past the grace period are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => usage_error(message),
    }
}
