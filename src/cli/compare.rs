//! `grab compare` and `grab demo`: their flags, configs and commands.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{named, usage_error};
use crate::Named;
use crate::compare::demo::{self, DemoConfig, GallerySpec};
use crate::compare::{self, CompareConfig, UrlList};
use crate::console::Console;
use crate::engine::Strategy;
use crate::exit::ExitStatus;
use crate::get::input::Inputs;
use crate::get::{self, GetConfig};
use crate::server::Background;

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
    #[arg(long, value_parser = named::<Strategy>(), value_delimiter = ',', default_value = "sequential,threads,processes,async")]
    pub strategies: Vec<Strategy>,
    /// Counted runs of each.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Uncounted runs of each first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Also run curl -Z, wget2 and aria2c, where installed.
    #[arg(long)]
    pub peers: bool,
    #[command(flatten)]
    pub exports: ExportArgs,
    /// Images in the built-in gallery (when no URLs are given).
    #[arg(long, default_value_t = 50)]
    pub gallery_count: usize,
    /// Latency of each gallery image, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub gallery_delay_ms: u64,
}

/// The files `grab compare` writes beside its table.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the table and every run's figures as JSON.
    #[arg(long = "export-json", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the table as Markdown.
    #[arg(long = "export-markdown", value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the timelines (a lane per worker, a bar per download) as an SVG.
    #[arg(long = "export-svg", value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write one self-contained HTML page: timelines, latencies, costs and the table.
    #[arg(long = "export-html", value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl ExportArgs {
    /// Writes each file asked for; the first failure, once all were tried.
    fn write(&self, comparison: &compare::Comparison) -> anyhow::Result<()> {
        let written = [
            self.json
                .as_ref()
                .map(|path| compare::export::write_json(comparison, path)),
            self.markdown
                .as_ref()
                .map(|path| compare::export::write_markdown(comparison, path)),
            self.svg
                .as_ref()
                .map(|path| compare::picture::write_svg(comparison, path)),
            self.html
                .as_ref()
                .map(|path| compare::picture::write_html(comparison, None, path)),
        ];
        written.into_iter().flatten().collect()
    }
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

/// Shows which contender is running (on a terminal, a line redrawn in place)
/// and prints each run as it ends, so a long comparison shows it is alive.
fn print_run(progress: compare::Progress) {
    let terminal = std::io::stderr().is_terminal();
    let label = |warmup: bool| if warmup { "warm-up" } else { "run" };
    match progress {
        compare::Progress::Starting {
            contender,
            round,
            warmup,
        } if terminal => {
            eprint!(
                "\r\x1b[2K  {} {:>2}  {contender:<12} running...",
                label(warmup),
                round + 1
            );
            let _ = std::io::stderr().flush();
        }
        compare::Progress::Starting { .. } => {}
        compare::Progress::Finished(run) => {
            if terminal {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "  {} {:>2}  {:<12} {:>7.3} s  {} saved, {} failed",
                label(run.warmup),
                run.round + 1,
                run.contender,
                run.wall_seconds,
                run.saved,
                run.failed
            );
        }
    }
}

/// Runs `grab compare`.
pub fn run(arguments: &CompareArgs, grab_program: PathBuf) -> ExitStatus {
    let work = match tempfile::tempdir() {
        Ok(work) => work,
        Err(error) => {
            return super::failed(anyhow::anyhow!("cannot create a temporary folder: {error}"));
        }
    };
    let config = CompareConfig {
        jobs: arguments.jobs as usize,
        strategies: arguments.strategies.clone(),
        repeat: arguments.repeat as usize,
        warmup: arguments.warmup as usize,
        peers: arguments.peers,
        grab_program: grab_program.clone(),
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
        with_gallery(spec, work.path(), |list| {
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
            return ExitStatus::Failed;
        }
    };
    println!(
        "{}\n\n{}",
        compare::export::caption(&comparison),
        compare::export::table(&comparison)
    );
    if let Err(error) = arguments.exports.write(&comparison) {
        eprintln!("grab: {error:#}");
        return ExitStatus::Failed;
    }
    let failed = invalid_lines > 0 || comparison.any_failed();
    ExitStatus::from_failures(failed)
}

/// Runs `grab demo`.
pub fn demo(arguments: &DemoArgs, grab_program: PathBuf) -> ExitStatus {
    let config = DemoConfig {
        gallery: GallerySpec {
            count: arguments.count.max(1),
            delay: Duration::from_millis(arguments.delay_ms),
        },
        jobs: arguments.jobs.max(1),
        repeat: arguments.repeat.max(1),
        grab_program: grab_program.clone(),
    };
    let compare_config = CompareConfig {
        jobs: config.jobs,
        strategies: Strategy::ALL.to_vec(),
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
            with_gallery(config.gallery, work.path(), |list| {
                compare::run(&compare_config, list, work.path(), print_run)
            })
        });
    match result {
        Ok(comparison) => {
            let explanation = demo::explanation(&config, &comparison);
            println!(
                "{}\n\n{}\n{}",
                compare::export::caption(&comparison),
                compare::export::table(&comparison),
                explanation
            );
            // Kept after grab exits: it is for the user to open.
            let picture = tempfile::Builder::new()
                .prefix("grab-demo-")
                .suffix(".html")
                .tempfile()
                .map_err(anyhow::Error::from)
                .and_then(|file| file.keep().map_err(anyhow::Error::from))
                .and_then(|(_, path)| {
                    compare::picture::write_html(&comparison, Some(&explanation), &path)
                        .map(|()| path)
                });
            match picture {
                Ok(path) => println!("The picture of these runs: {}", path.display()),
                Err(error) => {
                    eprintln!("grab: cannot write the demo's picture: {error:#}");
                    return ExitStatus::Failed;
                }
            }
            ExitStatus::from_failures(comparison.any_failed())
        }
        Err(error) => {
            eprintln!("grab: demo failed: {error:#}");
            ExitStatus::Failed
        }
    }
}

/// Serves the gallery while `work` runs on its URL list (written under `folder`).
/// Every image is drawn once beforehand, so no contender pays for drawing.
fn with_gallery<T>(
    spec: GallerySpec,
    folder: &Path,
    work: impl FnOnce(&UrlList) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let server = Background::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot start the local image server")?;
    let url = |number: usize| format!("{}/images/photo-{number:03}.jpg", server.base_url());
    let warm_up: String = (1..=spec.count).map(|number| url(number) + "\n").collect();
    let scratch = tempfile::tempdir_in(folder).context("cannot create a temporary folder")?;
    let mut config = GetConfig::new(scratch.path(), Strategy::Async);
    config.console = Console::silent();
    get::run(&config, Inputs::from_text("warm-up", warm_up))?;
    let delay = spec.delay.as_millis();
    let list = UrlList::write(
        folder,
        (1..=spec.count).map(|number| format!("{}?delay_ms={delay}", url(number))),
    )?;
    work(&list)
}
