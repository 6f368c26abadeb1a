//! `grab filter` and `grab samples`: their flags, configs and commands.

use std::path::PathBuf;

use clap::Args;

use super::{choice, cpus, named, positive_size};
use crate::console::{Console, Verbosity};
use crate::engine::Strategy;
use crate::engine::processes::WorkerProgram;
use crate::exit::{EXIT_CODES, ExitStatus};
use crate::filter::{self, Filter, FilterConfig};
use crate::gallery::samples::{self, SamplesConfig};

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct FilterArgs {
    /// Image files, or folders (every JPEG and PNG directly inside).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Filters to apply, in this order, comma-separated.
    #[arg(
        short,
        long,
        value_name = "LIST",
        value_parser = named::<Filter>(),
        value_delimiter = ',',
        required = true
    )]
    pub filters: Vec<Filter>,
    /// Folder to write into (created when missing).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// How images are filtered concurrently.
    #[arg(short, long, value_parser = choice(&filter::STRATEGIES), default_value = "threads")]
    pub strategy: Strategy,
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
    /// Memory all images being filtered may hold together (k, M, G suffixes,
    /// 1024-based): an image waits until its share is free, one larger than
    /// the whole budget is refused [default: half the available memory].
    #[arg(long, value_name = "SIZE", value_parser = positive_size)]
    pub memory_limit: Option<u64>,
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
    #[arg(long, value_name = "WxH", default_value = "1600x1200", value_parser = samples::parse_size)]
    pub size: (u32, u32),
}

fn finite_factor(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(factor) if factor.is_finite() => Ok(factor),
        _ => Err(format!("expected a number, got {text}")),
    }
}

impl FilterArgs {
    pub fn config(&self, console: Console, program: WorkerProgram) -> FilterConfig {
        FilterConfig {
            settings: filter::Settings {
                filters: self.filters.clone(),
                contrast: self.contrast,
                quality: self.quality,
                max_pixels: self.max_pixels,
                auto_orient: !self.no_auto_orient,
                ..filter::Settings::with_filters(Vec::new())
            },
            output_dir: self.output_dir.clone(),
            strategy: self.strategy,
            jobs: self.jobs.map_or_else(cpus, |jobs| jobs as usize),
            console,
            worker_program: program,
            memory_limit: self
                .memory_limit
                .unwrap_or_else(crate::engine::budget::default_limit),
        }
    }
}

/// Runs `grab filter`.
pub fn run(arguments: &FilterArgs, program: WorkerProgram) -> ExitStatus {
    let verbosity = if arguments.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let config = arguments.config(Console::new(verbosity), program);
    match filter::run(&config, &arguments.paths) {
        Ok(summary) => {
            config.console.summary(&summary.line());
            summary.exit_status()
        }
        Err(error) => super::failed(error),
    }
}

/// Runs `grab samples`.
pub fn samples(arguments: &SamplesArgs) -> ExitStatus {
    let config = SamplesConfig {
        count: arguments.count as usize,
        output_dir: arguments.output_dir.clone(),
        width: arguments.size.0,
        height: arguments.size.1,
    };
    match samples::write(&config) {
        Ok(paths) => {
            eprintln!(
                "wrote {} sample images of {}x{} to {}",
                paths.len(),
                config.width,
                config.height,
                config.output_dir.display()
            );
            ExitStatus::Ok
        }
        Err(error) => super::failed(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(line: &[&str]) -> Result<FilterArgs, clap::Error> {
        let mut arguments = vec!["grab", "filter"];
        arguments.extend_from_slice(line);
        match Cli::try_parse_from(arguments)?.command {
            Command::Filter(arguments) => Ok(arguments),
            other => panic!("not filter: {other:?}"),
        }
    }

    #[test]
    fn flags_reach_the_config() {
        let arguments = parse(&[
            "a.jpg",
            "-f",
            "sharpen,contour",
            "-s",
            "processes",
            "-j",
            "3",
            "--quality",
            "85",
            "--contrast",
            "0.5",
            "--max-pixels",
            "10",
            "--no-auto-orient",
            "--memory-limit",
            "512M",
            "-o",
            "out",
        ])
        .unwrap();
        let config = arguments.config(Console::silent(), WorkerProgram::current());
        assert_eq!(config.settings.filters, [Filter::Sharpen, Filter::Contour]);
        assert_eq!(config.strategy, Strategy::Processes);
        assert_eq!(config.jobs, 3);
        assert_eq!(config.settings.quality, 85);
        assert_eq!(config.settings.contrast, 0.5);
        assert_eq!(config.settings.max_pixels, 10);
        assert!(!config.settings.auto_orient);
        assert_eq!(config.memory_limit, 512 << 20);
        assert_eq!(config.output_dir, PathBuf::from("out"));
    }

    #[test]
    fn defaults_and_refusals() {
        let config = parse(&["a.jpg", "-f", "blur"])
            .unwrap()
            .config(Console::silent(), WorkerProgram::current());
        assert_eq!(config.strategy, Strategy::Threads);
        assert_eq!(config.jobs, cpus());
        assert_eq!(config.settings.quality, filter::Settings::DEFAULT_QUALITY);
        // Images are CPU work: no async strategy.
        assert!(parse(&["a.jpg", "-f", "blur", "-s", "async"]).is_err());
        assert!(parse(&["a.jpg", "-f", "emboss"]).is_err());
        assert!(parse(&["a.jpg", "-f", "blur", "--contrast", "nan"]).is_err());
    }
}
