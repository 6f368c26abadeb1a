//! The command line: clap definitions, their conversion into the plain configs
//! the library runs on, and the dispatch. Nothing outside this module sees clap;
//! library enums are offered by name through [`Named`]. One file per command:
//! `get`, `dataset`, `queue`, `filter` (with `samples`), `serve`, `compare` (with `demo`).

mod compare;
mod dataset;
mod filter;
mod get;
mod get_filter;
mod queue;
mod request;
mod serve;

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
    // Boxed, as Dataset: its many flags would make every other command as large.
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
    /// Parses the process's arguments, wget's spellings included; on an error,
    /// prints it (with a hint for curl's and wget's flags) and exits.
    pub fn parse_wget() -> Cli {
        Cli::try_parse_hinted(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses a command line, wget's spellings included. An unknown flag gets
    /// a hint: grab's spelling of a flag curl and wget users type, else where
    /// the flags are listed, never only clap's tip to put it after `--`.
    pub fn try_parse_hinted(
        arguments: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Cli, clap::Error> {
        let arguments: Vec<std::ffi::OsString> = wget_spellings(arguments.into_iter()).collect();
        Cli::try_parse_from(&arguments).map_err(|error| with_hint(error, &arguments))
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

/// `error` with a hint when it is about an unknown flag (see
/// [`Cli::try_parse_hinted`]).
fn with_hint(mut error: clap::Error, arguments: &[std::ffi::OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let flag = flag.split('=').next().unwrap_or_default().to_string();
    let arguments: Vec<String> = arguments
        .iter()
        .map(|argument| argument.to_string_lossy().into_owned())
        .collect();
    let hint = match foreign_flag(&flag, value_of(&flag, &arguments)) {
        Some(hint) => {
            // clap's "similar argument" (`--retries` for `--tries`) would
            // take the number as it is.
            error.remove(ContextKind::SuggestedArg);
            hint
        }
        // clap's own suggestion of a similar flag is help enough.
        None if error.get(ContextKind::SuggestedArg).is_some() => return error,
        None => {
            let command = command_named(&arguments);
            format!(
                "'{flag}' is not a flag of '{command}': '{command} --help' lists them (a URL or file name that starts with '-' goes after '--')"
            )
        }
    };
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![hint.into()]),
    );
    error
}

/// What to type instead of a flag of curl or wget that grab spells otherwise
/// (or does not need); `value` is the one given with it.
fn foreign_flag(flag: &str, value: Option<&str>) -> Option<String> {
    Some(match flag {
        "-t" | "--tries" => match value.map(str::parse::<u32>) {
            Some(Ok(0)) => format!(
                "wget's {flag} 0 retries for ever; grab's --retries N takes the number of attempts after the first"
            ),
            Some(Ok(tries)) => format!(
                "wget's {flag} {tries} counts the first attempt; grab's --retries counts those after it: use --retries {}",
                tries - 1
            ),
            _ => format!("wget's {flag} N counts the first attempt: use --retries N-1"),
        },
        "-C" | "--continue-at" => {
            "curl's -C - is grab get's -c (--continue); grab dataset resumes a stopped run by itself"
                .to_string()
        }
        "-P" | "--directory-prefix" => format!("wget's {flag} DIR is grab's -o DIR"),
        "-L" | "--location" => {
            format!("grab follows redirects (up to 10) without being asked: leave out {flag}")
        }
        _ => return None,
    })
}

/// The value given with `flag` on the command line: `-t 3`, `-t3`, `--tries=3`.
fn value_of<'a>(flag: &str, arguments: &'a [String]) -> Option<&'a str> {
    let at = arguments.iter().position(|argument| {
        argument == flag
            || argument.strip_prefix(flag).is_some_and(|rest| {
                rest.starts_with('=') || (!flag.starts_with("--") && !rest.is_empty())
            })
    })?;
    let rest = &arguments[at][flag.len()..];
    match rest {
        "" => arguments.get(at + 1).map(String::as_str),
        rest => Some(rest.strip_prefix('=').unwrap_or(rest)),
    }
}

/// `grab get`, `grab queue work`: the command the arguments run, by walking
/// the subcommands they name.
fn command_named(arguments: &[String]) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut name = "grab".to_string();
    for argument in arguments.iter().skip(1) {
        match command.find_subcommand(argument) {
            Some(subcommand) => {
                name = format!("{name} {}", subcommand.get_name());
                command = subcommand.clone();
            }
            None if argument.starts_with('-') => continue,
            None => break,
        }
    }
    name
}

/// Runs a parsed command line. `program` is what worker processes run: this
/// executable, with the log filter the process was started with.
pub fn execute(cli: Cli, program: WorkerProgram) -> ExitStatus {
    // A low soft limit is a default, not a choice: every command (and every
    // worker process, which inherits it) gets the hard one.
    crate::engine::limits::raise_open_files();
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

/// A worker whose parent is gone mid-job (seen by the pipe watch where the
/// kernel has no tie, macOS) ends at once, as the tie would have killed it.
fn orphaned() {
    tracing::warn!("the parent closed the pipe mid-job: it is gone; ending");
    std::process::exit(ExitStatus::Interrupted.code().into());
}

/// The body of `grab __worker TASK`: the worker's side of each engine client.
fn worker(task: &str, settings: &str) -> ExitStatus {
    let result = match task {
        download_task::TASK => processes::serve::<InWorkers, _>(orphaned, |parent| {
            download_task::worker(settings, parent)
        }),
        crate::filter::task::TASK => processes::serve::<Filtering, _>(orphaned, |parent| {
            Filtering::from_json(settings, parent)
        }),
        mock::TASK => processes::serve::<Mock, _>(orphaned, |parent| {
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

    /// The text of the error `grab ARGUMENTS...` ends with.
    fn error_of(arguments: &[&str]) -> String {
        let mut line = vec!["grab"];
        line.extend_from_slice(arguments);
        match Cli::try_parse_hinted(line.into_iter().map(Into::into)) {
            Ok(cli) => panic!("{arguments:?} parsed: {cli:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn curl_and_wget_flags_get_grabs_spelling() {
        for (arguments, hint) in [
            (&["get", "-t", "3", "u"][..], "use --retries 2"),
            (&["get", "-t3", "u"], "use --retries 2"),
            (&["get", "--tries=5", "u"], "use --retries 4"),
            (
                &["get", "--tries", "0", "u"],
                "wget's --tries 0 retries for ever",
            ),
            (&["dataset", "t.txt", "-t", "x"], "use --retries N-1"),
            (
                &["dataset", "t.txt", "-C", "-"],
                "grab get's -c (--continue)",
            ),
            (
                &["dataset", "t.txt", "-P", "d"],
                "wget's -P DIR is grab's -o DIR",
            ),
            (&["get", "-L", "u"], "leave out -L"),
        ] {
            let error = error_of(arguments);
            assert!(error.contains(hint), "{arguments:?}: {error}");
            assert!(
                !error.contains("as a value, use '--"),
                "{arguments:?}: {error}"
            );
            assert!(
                !error.contains("similar argument"),
                "{arguments:?}: {error}"
            );
        }
    }

    #[test]
    fn an_unknown_flag_never_gets_only_the_tip_to_quote_it() {
        let error = error_of(&["get", "-Z", "u"]);
        assert!(
            error.contains("'-Z' is not a flag of 'grab get': 'grab get --help' lists them"),
            "{error}"
        );
        assert!(!error.contains("as a value, use '--"), "{error}");
        let error = error_of(&["queue", "work", "-Z"]);
        assert!(error.contains("'grab queue work --help'"), "{error}");
        // A near miss keeps clap's own suggestion.
        let error = error_of(&["get", "--retires", "2", "u"]);
        assert!(error.contains("--retries"), "{error}");
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
