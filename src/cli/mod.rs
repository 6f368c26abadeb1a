//! The command line: clap definitions, their conversion into the plain configs
//! the library runs on, and the dispatch. Nothing outside this module sees clap;
//! library enums are offered by name through [`Named`]. One file per command:
//! [`get`], [`dataset`], [`queue`], [`filter`] (with `samples`), [`serve`], [`compare`] (with `demo`).

pub mod compare;
pub mod dataset;
pub mod filter;
pub mod get;
pub mod get_filter;
pub mod queue;
pub mod request;
pub mod serve;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use crate::Named;
use crate::engine::mock::{self, Mock};
use crate::engine::processes::{self, WORKER_SUBCOMMAND, WorkerProgram};
use crate::exit::{EXIT_CODES, ExitStatus};
use crate::filter::task::Filtering;
use crate::http::task::{self as download_task, InWorkers};

#[derive(Debug, Parser)]
#[command(name = "grab", version, about = "Download many URLs concurrently, four ways, and compare them.", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download URLs from arguments, files or stdin.
    // Boxed: its many flags would make every other command as large.
    Get(Box<get::GetArgs>),
    /// Build an image dataset from a table of URLs (img2dataset's job).
    Dataset(Box<dataset::DatasetArgs>),
    /// A work queue on Redis Streams that many workers drain together.
    Queue(Box<queue::QueueArgs>),
    /// Download the same list with every strategy (and peers), and compare.
    Compare(compare::CompareArgs),
    /// Serve the image gallery and the asynchronous demo endpoints.
    Serve(serve::ServeArgs),
    /// Serve a gallery locally, compare the four strategies on it, explain.
    Demo(compare::DemoArgs),
    /// Apply Pillow-exact filters to JPEG and PNG images, in parallel.
    Filter(filter::FilterArgs),
    /// Write deterministic sample images to try `grab filter` on.
    Samples(filter::SamplesArgs),
    /// A worker process of the `processes` strategy (started by grab itself).
    #[command(name = WORKER_SUBCOMMAND, hide = true)]
    Worker {
        /// `get`, `filter` or `mock`.
        task: String,
        #[arg(long)]
        settings: String,
    },
}

impl Cli {
    /// Parses the process's arguments, wget's spellings included.
    pub fn parse_wget() -> Cli {
        Cli::parse_from(wget_spellings(std::env::args_os()))
    }

    /// The log filter this command line asks for, unless `RUST_LOG` says otherwise.
    pub fn log_filter(&self) -> &'static str {
        match &self.command {
            Command::Serve(arguments) if !arguments.quiet => "warn,grab::server=info",
            Command::Get(arguments) => arguments.log_filter(),
            Command::Queue(queue) => match &queue.command {
                queue::QueueCommand::Work(arguments) => arguments.get.log_filter(),
                _ => "warn",
            },
            _ => "warn",
        }
    }
}

/// wget's flags that clap cannot spell (a short flag of two letters), as their
/// long names: `-nH` is `--no-host-directories`.
pub fn wget_spellings(
    arguments: impl Iterator<Item = std::ffi::OsString>,
) -> impl Iterator<Item = std::ffi::OsString> {
    arguments.map(|argument| match argument.to_str() {
        Some("-nH") => "--no-host-directories".into(),
        _ => argument,
    })
}

/// Runs a parsed command line. `program` is what worker processes run: this
/// executable, with the log filter the process was started with.
pub fn execute(cli: Cli, program: WorkerProgram) -> ExitStatus {
    match &cli.command {
        Command::Get(arguments) => get::run(arguments, program),
        Command::Dataset(arguments) => dataset::run(arguments, program),
        Command::Queue(arguments) => queue::run(arguments, program),
        Command::Filter(arguments) => filter::run(arguments, program),
        Command::Samples(arguments) => filter::samples(arguments),
        Command::Serve(arguments) => serve::run(arguments),
        Command::Compare(arguments) => compare::run(arguments, program.path),
        Command::Demo(arguments) => compare::demo(arguments, program.path),
        Command::Worker { task, settings } => worker(task, settings),
    }
}

/// The body of `grab __worker TASK`: the worker's side of each engine client.
fn worker(task: &str, settings: &str) -> ExitStatus {
    let result = match task {
        download_task::TASK => {
            processes::serve::<InWorkers, _>(|parent| download_task::worker(settings, parent))
        }
        crate::filter::task::TASK => {
            processes::serve::<Filtering, _>(|parent| Filtering::from_json(settings, parent))
        }
        mock::TASK => processes::serve::<Mock, _>(|parent| {
            Ok(Mock {
                parent: Some(parent),
                ..Mock::default()
            })
        }),
        other => Err(anyhow::anyhow!("no worker task named {other}")),
    };
    match result {
        Ok(()) => ExitStatus::Ok,
        Err(error) => {
            eprintln!(
                "grab worker: {}",
                crate::redact::text(&format!("{error:#}"))
            );
            ExitStatus::Failed
        }
    }
}

/// A clap parser for a library enum, by the names it answers to.
pub fn named<T: Named>() -> impl TypedValueParser<Value = T> {
    choice(T::ALL)
}

/// A clap parser for some of a library enum's values.
pub fn choice<T: Named>(values: &'static [T]) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        values
            .iter()
            .map(|value| PossibleValue::new(value.name()).help(value.help())),
    )
    .map(|name| T::from_name(&name).expect("clap accepts only the names offered"))
}

/// `grab: MESSAGE` and the usage status: the command line was wrong.
pub fn usage_error(message: impl std::fmt::Display) -> ExitStatus {
    eprintln!("grab: {}", crate::redact::text(&message.to_string()));
    ExitStatus::Usage
}

/// `grab: ERROR` and the failed status: the run could not go on.
pub fn failed(error: anyhow::Error) -> ExitStatus {
    eprintln!("grab: {}", crate::redact::text(&format!("{error:#}")));
    ExitStatus::Failed
}

/// `--shard K/N` or `auto/N`, the index read from the scheduler's variable.
pub fn shard(text: &str) -> Result<crate::partition::Shard, String> {
    crate::partition::Shard::parse(text, |name| std::env::var(name).ok())
}

/// The interrupt that Ctrl-C and SIGTERM raise; none (with a warning) when
/// the signals cannot be caught.
pub fn interrupt_on_signals() -> Option<crate::engine::Interrupt> {
    match crate::engine::Interrupt::on_signals() {
        Ok(interrupt) => Some(interrupt),
        Err(error) => {
            tracing::warn!("cannot catch Ctrl-C: {error}");
            None
        }
    }
}

/// Threads or workers when not given: one per CPU.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}

pub fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds >= 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("expected a number of seconds, got {text}")),
    }
}

pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("expected a positive number of seconds, got {text}")),
    }
}

/// A size in bytes, for every size flag of every command: `500`, `64k`,
/// `10M`, `1.5G`, `1T`, also written `10MB` or `1.5GiB` (any case). Like curl,
/// a k is 1024 bytes, not 1000, however it is spelled.
pub fn size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("expected a size such as 500, 64k, 10M, 1.5GiB (1024-based, as curl), got {text}")
    };
    let trimmed = text.trim();
    // The unit, in every spelling users bring: `M`, `MB`, `MiB`, any case.
    let digits_end = trimmed
        .find(|character: char| character.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(invalid()),
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes.round() as u64)
}

/// A positive [`size`], for rates and limits where zero would mean nothing.
pub fn positive_size(text: &str) -> Result<u64, String> {
    match size(text)? {
        0 => Err(format!("expected more than zero bytes, got {text}")),
        bytes => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_curls_suffixes() {
        assert_eq!(size("500"), Ok(500));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("64K"), Ok(64 << 10));
        assert_eq!(size("10M"), Ok(10 << 20));
        assert_eq!(size("1.5G"), Ok(3 << 29));
        assert_eq!(size("2t"), Ok(2 << 40));
        assert_eq!(size("1.5GiB"), Ok(3 << 29));
        assert_eq!(size("10MB"), Ok(10 << 20));
        assert_eq!(size("64KiB"), Ok(64 << 10));
        assert_eq!(size("500B"), Ok(500));
        assert_eq!(size("0"), Ok(0));
        for bad in [
            "", "M", "10X", "-1k", "1e30T", "ten", "10iB", "10MiBs", "1k5",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert!(positive_size("0k").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_must_be_finite() {
        assert_eq!(positive_seconds("1.5"), Ok(1.5));
        assert!(positive_seconds("0").is_err());
        assert_eq!(non_negative_seconds("0"), Ok(0.0));
        assert!(non_negative_seconds("inf").is_err());
        assert!(non_negative_seconds("-1").is_err());
    }
}
