//! `grab get`: its flags, their conversion to a [`GetConfig`], and the command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{
    cpus, named, non_negative_seconds, positive_seconds, positive_size, size, usage_error,
};
use crate::console::{Console, Verbosity};
use crate::engine::ProgressMode;
use crate::engine::Strategy;
use crate::engine::processes::WorkerProgram;
use crate::exit::{EXIT_CODES, ExitStatus};
use crate::filter::{self, Filter, FilterConfig};
use crate::fs::layout::{Layout, MAX_SPREAD};
use crate::get::report::Summary;
use crate::get::report::records::ReportFormat;
use crate::get::{self, GetConfig, input::Inputs};

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct GetArgs {
    /// URLs to download.
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line; `-` reads stdin. A line is a URL, or a
    /// URL, a TAB and a file name; without a TAB the whole line is the URL (spaces
    /// included). An indented `out=NAME` line under a URL names it, as in aria2.
    #[arg(short, long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Folder to save into (created when missing); wget's -P.
    #[arg(
        short,
        long,
        value_name = "DIR",
        default_value = ".",
        visible_short_alias = 'P',
        alias = "directory-prefix"
    )]
    pub output_dir: PathBuf,
    /// Save the one URL given as FILE (replacing it), or write it to stdout with
    /// `-O -`, as wget. Takes exactly one URL argument.
    #[arg(short = 'O', long = "output-document", value_name = "FILE", conflicts_with_all = ["inputs", "output_dir", "filters", "force_directories", "spread"])]
    pub output_document: Option<PathBuf>,
    /// How downloads run concurrently.
    #[arg(short, long, value_parser = named::<Strategy>(), default_value = "async")]
    pub strategy: Strategy,
    /// Downloads in flight at once (threads, worker processes or tasks).
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: u32,
    /// Abandon a transfer that receives nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// Print only failures and the summary (a terminal keeps its live bar,
    /// which leaves nothing behind; elsewhere no heartbeat lines).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout instead of the summary line.
    #[arg(long)]
    pub json: bool,
    /// Attempts after a transient failure (reset, timeout, cut-short body, 408,
    /// 429, 5xx); a host that does not resolve is not retried. curl's --retry
    /// N is the same; wget's -t N counts the first attempt too (-t N is
    /// --retries N-1).
    #[arg(long, value_name = "N", default_value_t = 3, visible_alias = "retry")]
    pub retries: u32,
    /// Base of the exponential backoff between attempts, in seconds (randomised).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = non_negative_seconds)]
    pub retry_wait: f64,
    /// Resume the .part files an interrupted run left (Range, with If-Range);
    /// curl's `-C -` works too.
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,
    /// curl's `-C -` (`--continue-at -`): -c. An offset is refused: a resume
    /// starts where the .part file ends.
    #[arg(
        short = 'C',
        long = "continue-at",
        value_name = "-",
        hide = true,
        allow_hyphen_values = true
    )]
    pub continue_at: Option<String>,
    /// Download again what the manifest says is already complete.
    #[arg(long)]
    pub force: bool,
    /// Re-check files already complete, as wget's -N: asks with the server's
    /// ETag and date from the manifest (If-None-Match, If-Modified-Since); a
    /// 304 keeps the file, a newer copy replaces it once whole.
    #[arg(short = 'N', long, conflicts_with = "force")]
    pub timestamping: bool,
    /// Abandon responses larger than SIZE (by Content-Length, or while streaming,
    /// chunked bodies too): bytes, or with k, M, G (1024-based, as curl).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_size: Option<u64>,
    /// At most N connections to any one host at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// The digest the one URL given must have, `TYPE=HEX` (md5, sha-1,
    /// sha-256, sha-512): on a mismatch it fails and nothing is left under
    /// its name. In an -i file, aria2's indented `checksum=TYPE=HEX` line
    /// under a URL does the same for it.
    #[arg(long, value_name = "TYPE=HEX")]
    pub checksum: Option<crate::http::Checksum>,
    /// Leave each file dated when it was written, not by the server's
    /// Last-Modified (wget's flag).
    #[arg(long = "no-use-server-timestamps")]
    pub no_server_timestamps: bool,
    /// Name files as the server's Content-Disposition suggests: the last part
    /// of a name with folders (as curl and wget), sanitised.
    #[arg(long)]
    pub content_disposition: bool,
    /// Save only responses whose type matches (Content-Type and first bytes):
    /// MIME patterns (`image/*,application/pdf`), or extensions as wget takes
    /// them (`jpg,png`, read as their types: image/jpeg, image/png; a note
    /// says so).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub accept: Vec<String>,
    /// After Ctrl-C, how long downloads in flight may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = non_negative_seconds)]
    pub grace: f64,
    /// Live progress: a bar (default on a terminal), heartbeat lines (default
    /// otherwise), or none.
    #[arg(long, value_parser = named::<ProgressMode>())]
    pub progress: Option<ProgressMode>,
    /// Seconds between heartbeat lines.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = positive_seconds)]
    pub heartbeat: f64,
    /// Write one record per URL to FILE (format from its extension, or --report-format).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The report's format, when its extension does not say.
    #[arg(long, value_parser = named::<ReportFormat>(), requires = "report")]
    pub report_format: Option<ReportFormat>,
    /// More log lines on stderr: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Filter each saved JPEG and PNG as it arrives (see `grab filter`), on a pool
    /// of one thread per CPU beside the downloads.
    #[arg(
        long = "filter",
        value_name = "LIST",
        value_parser = named::<Filter>(),
        value_delimiter = ','
    )]
    pub filters: Vec<Filter>,
    /// Take only part K of N of the list, by a hash of each URL, so N runs
    /// split it exactly; `auto/N` reads K from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "K/N", value_parser = super::shard)]
    pub shard: Option<crate::partition::Shard>,
    /// Save under folders from each URL, as wget: `HOST[+PORT]/a/b/c.jpg` (the
    /// port only when it is not the scheme's own). Every folder is sanitised
    /// like a file name; nothing lands outside -o.
    #[arg(short = 'x', long)]
    pub force_directories: bool,
    /// With -x, no host folder: `a/b/c.jpg` (wget's -nH; `-nH` works too).
    #[arg(long = "no-host-directories")]
    pub no_host_directories: bool,
    /// With -x, leave out the first N folders of the URL's path: with
    /// `--cut-dirs 1`, `/a/b/c.jpg` goes to `HOST/b/c.jpg`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub cut_dirs: usize,
    /// Spread files over N levels of 256 folders named by a hash of the file's
    /// name (`--spread 2`: `3f/a0/c.jpg`), so no folder holds millions; the
    /// same name always lands in the same folder. Below the folders of -x.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=MAX_SPREAD as i64))]
    pub spread: Option<u8>,
    /// Folder for the filtered images [default: OUTPUT_DIR/filtered].
    #[arg(long, value_name = "DIR", requires = "filters")]
    pub filter_output_dir: Option<PathBuf>,
    /// Memory the images being filtered may hold together (k, M, G suffixes,
    /// 1024-based); see `grab filter --memory-limit` [default: half the
    /// available memory].
    #[arg(long, value_name = "SIZE", value_parser = positive_size, requires = "filters")]
    pub memory_limit: Option<u64>,
    #[command(flatten)]
    pub request: super::request::RequestArgs,
}

impl GetArgs {
    fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }

    /// The run's configuration, with `console` for its lines, `program` for its
    /// worker processes, and whether stderr is a terminal (for the live view).
    /// An error names the flag that is wrong.
    pub fn config(
        &self,
        console: Console,
        program: WorkerProgram,
        terminal: bool,
    ) -> Result<GetConfig, String> {
        if self.json && self.output_document.as_deref() == Some(std::path::Path::new("-")) {
            // Either would be cut by the other: stdout carries one thing.
            return Err(
                "-O - writes the file to stdout, and --json its summary: stdout carries one of them (use -O FILE with --json)"
                    .to_string(),
            );
        }
        let mut config = GetConfig::new(&self.output_dir, self.strategy);
        let settings = &mut config.settings;
        settings.timeouts.idle = Duration::from_secs_f64(self.timeout);
        settings.retries = self.retries;
        settings.retry_wait = Duration::from_secs_f64(self.retry_wait);
        settings.acceptance.max_size = self.max_size;
        settings.acceptance.accept = self.accept_patterns()?;
        self.request.apply(settings)?;
        settings.content_disposition = self.content_disposition;
        settings.server_timestamps = !self.no_server_timestamps;
        settings.layout = self.layout()?;
        config.jobs = self.jobs as usize;
        config.per_host = self.per_host.map(|limit| limit as usize);
        config.console = console;
        config.worker_program = program;
        config.resume = self.resume
            || match self.continue_at.as_deref() {
                None => false,
                Some("-") => true,
                Some(offset) => {
                    return Err(format!(
                        "-C {offset}: grab resumes where each .part file ends, not at an offset: use -c (curl's -C -)"
                    ));
                }
            };
        config.force = self.force;
        config.timestamping = self.timestamping;
        config.grace = Duration::from_secs_f64(self.grace);
        config.heartbeat = Duration::from_secs_f64(self.heartbeat);
        config.progress = match (self.progress, self.quiet) {
            (Some(mode), _) => mode,
            // A bar would fight with log lines and cannot be drawn off a terminal.
            (None, _) if terminal && self.verbose == 0 => ProgressMode::Bar,
            // Quiet: no heartbeat lines in a log; the bar above is erased at the end.
            (None, true) => ProgressMode::None,
            (None, false) => ProgressMode::Lines,
        };
        config.report = self.report()?;
        Ok(config)
    }

    /// `--accept` as MIME patterns: an entry without a `/` is an extension
    /// (`jpg`, `.png`, `*.gif`), read as its type; an unknown one is an error.
    /// `-o photo.jpg` with one URL most likely means `-O photo.jpg`: a hint, when
    /// the name has a file type's extension and is not an existing folder.
    pub fn output_file_hint(&self) -> Option<String> {
        let single = self.urls.len() == 1 && self.inputs.is_empty();
        let extension = self.output_dir.extension()?.to_str()?;
        (single
            && crate::image::mime::content_type_for_extension(extension).is_some()
            && !self.output_dir.is_dir())
        .then(|| {
            format!(
                "-o names the folder to save into; to save the file as {0}, use -O {0}",
                self.output_dir.display()
            )
        })
    }

    fn accept_patterns(&self) -> Result<Vec<String>, String> {
        self.accept
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                if entry.contains('/') {
                    return Ok(entry.to_string());
                }
                let extension = entry.trim_start_matches('*').trim_start_matches('.');
                crate::image::mime::content_type_for_extension(extension)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        format!(
                            "--accept {entry}: not a MIME type (like image/png) nor an extension grab knows (jpg, png, gif, webp, avif, bmp, tiff, svg, ico, html, txt, css, csv, json, xml, pdf, zip, gz, bin)"
                        )
                    })
            })
            .collect()
    }

    /// How `--accept` was read, when it held extensions: a line for the user.
    pub fn accept_note(&self) -> Option<String> {
        let patterns = self.accept_patterns().ok()?;
        let entries: Vec<&str> = self
            .accept
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.iter().all(|entry| entry.contains('/')) {
            return None;
        }
        Some(format!(
            "--accept {} read as {}",
            entries.join(","),
            patterns.join(", ")
        ))
    }

    /// Where files go. `-nH` and `--cut-dirs` shape the folders of -x and mean
    /// nothing without it (wget ignores them then; saying so is kinder).
    fn layout(&self) -> Result<Layout, String> {
        if !self.force_directories && (self.no_host_directories || self.cut_dirs > 0) {
            return Err(
                "-nH and --cut-dirs shape the folders that -x makes: add -x (--force-directories)"
                    .to_string(),
            );
        }
        let layout = Layout {
            force_directories: self.force_directories,
            no_host: self.no_host_directories,
            cut_dirs: self.cut_dirs,
            spread: self.spread.unwrap_or(0),
        };
        if !layout.is_flat() && !self.filters.is_empty() {
            // The filtered copies are named after the file alone: two folders'
            // `c.jpg` would meet in the filter's folder.
            return Err(
                "--filter saves flat names: it cannot follow -x or --spread yet".to_string(),
            );
        }
        Ok(layout)
    }

    /// The report file and its format; an error when neither says which format.
    fn report(&self) -> Result<Option<(PathBuf, ReportFormat)>, String> {
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
    pub fn filter_config(&self, console: Console, program: WorkerProgram) -> Option<FilterConfig> {
        if self.filters.is_empty() {
            return None;
        }
        Some(FilterConfig {
            settings: filter::Settings::with_filters(self.filters.clone()),
            output_dir: self
                .filter_output_dir
                .clone()
                .unwrap_or_else(|| self.output_dir.join("filtered")),
            strategy: Strategy::Threads,
            jobs: cpus(),
            console,
            worker_program: program,
            memory_limit: self
                .memory_limit
                .unwrap_or_else(crate::engine::budget::default_limit),
        })
    }

    /// The log filter these flags ask for, unless `RUST_LOG` says otherwise.
    pub fn log_filter(&self) -> &'static str {
        match self.verbose {
            0 => "warn",
            1 => "warn,grab=debug",
            _ => "warn,grab=trace",
        }
    }
}

/// Runs `grab get`.
pub fn run(arguments: &GetArgs, program: WorkerProgram) -> ExitStatus {
    if arguments.urls.is_empty() && arguments.inputs.is_empty() {
        return usage_error("no URLs: give them as arguments or with -i FILE (-i - reads stdin)");
    }
    if arguments.output_document.is_some() && arguments.urls.len() != 1 {
        // wget concatenates them into the one file: rarely what is meant.
        return usage_error(format!(
            "-O saves exactly one URL, {} given (use -o DIR for several)",
            arguments.urls.len()
        ));
    }
    if arguments.checksum.is_some() && (arguments.urls.len() != 1 || !arguments.inputs.is_empty()) {
        return usage_error(
            "--checksum is for exactly one URL argument; in an -i file, put an indented checksum=TYPE=HEX line under each URL",
        );
    }
    let inputs = match Inputs::open(arguments.urls.clone(), &arguments.inputs) {
        Ok(inputs) => inputs
            .with_shard(arguments.shard)
            .with_argument_checksum(arguments.checksum.clone()),
        Err(error) => return usage_error(error),
    };
    // One console for the downloads and the filters, so filter lines step
    // aside for the bar too.
    let console = Console::new(arguments.verbosity());
    if let Some(hint) = arguments.output_file_hint() {
        console.notice(&hint);
    }
    let terminal = std::io::stderr().is_terminal();
    let mut config = match arguments.config(console.clone(), program.clone(), terminal) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    if let Some(note) = arguments.accept_note() {
        console.notice(&note);
    }
    config.interrupt = super::interrupt_on_signals();
    let print = |summary: &Summary| print_summary(summary, arguments.json, &console);
    if let Some(document) = &arguments.output_document {
        let destination = get::single::Destination::parse(document);
        return get::single::run_to(&config, inputs, &destination)
            .inspect(|summary| {
                if !summary.output_closed() {
                    print(summary)
                }
            })
            .map(|summary| summary.exit_status())
            .unwrap_or_else(super::failed);
    }
    let result = match arguments.filter_config(console.clone(), program) {
        None => get::run(&config, inputs)
            .inspect(print)
            .map(|summary| summary.exit_status()),
        Some(filters) => {
            super::get_filter::run(&config, inputs, &filters).map(|(downloads, filtered)| {
                print(&downloads);
                console.summary(&filtered.line());
                downloads.exit_status().and(filtered.exit_status())
            })
        }
    };
    result.unwrap_or_else(super::failed)
}

/// The download summary: one JSON object on stdout with `--json`, else the
/// summary line on stderr.
pub fn print_summary(summary: &Summary, json: bool, console: &Console) {
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).expect("a summary serialises to JSON")
        );
    } else {
        console.summary(&summary.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// `grab get ARGUMENTS...` as clap reads it.
    fn parsed(arguments: &[&str]) -> Result<Cli, clap::Error> {
        let mut line = vec!["grab", "get"];
        line.extend_from_slice(arguments);
        Cli::try_parse_from(line)
    }

    fn parse(arguments: &[&str]) -> GetArgs {
        match parsed(arguments).expect("the flags parse").command {
            Command::Get(arguments) => *arguments,
            other => panic!("not get: {other:?}"),
        }
    }

    fn config_of(arguments: &[&str], terminal: bool) -> Result<GetConfig, String> {
        parse(arguments).config(Console::silent(), WorkerProgram::current(), terminal)
    }

    #[test]
    fn defaults_are_those_documented() {
        let config = config_of(&["http://h/a"], false).unwrap();
        assert_eq!(config.strategy, Strategy::Async);
        assert_eq!(config.jobs, 16);
        assert_eq!(config.settings.output_dir, PathBuf::from("."));
        assert_eq!(config.settings.timeouts.idle, Duration::from_secs(30));
        assert_eq!(config.settings.timeouts.connect, Duration::from_secs(10));
        assert_eq!(config.settings.retries, 3);
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.progress, ProgressMode::Lines);
        assert!(!config.resume && !config.force);
        assert_eq!(config.report, None);
    }

    #[test]
    fn flags_reach_the_config() {
        let config = config_of(
            &[
                "-i",
                "urls.txt",
                "-o",
                "photos",
                "-s",
                "processes",
                "-j",
                "4",
                "--timeout",
                "2.5",
                "--retries",
                "0",
                "--retry-wait",
                "0",
                "-c",
                "--force",
                "--max-size",
                "1000",
                "--per-host",
                "2",
                "--accept",
                "image/*,text/plain",
                "--grace",
                "0",
                "--report",
                "r.csv",
                "--json",
            ],
            false,
        )
        .unwrap();
        assert_eq!(config.strategy, Strategy::Processes);
        assert_eq!(config.jobs, 4);
        assert_eq!(config.settings.output_dir, PathBuf::from("photos"));
        assert_eq!(config.settings.timeouts.idle, Duration::from_millis(2500));
        assert_eq!(config.settings.retries, 0);
        assert_eq!(config.settings.retry_wait, Duration::ZERO);
        assert_eq!(config.settings.acceptance.max_size, Some(1000));
        assert_eq!(config.settings.acceptance.accept, ["image/*", "text/plain"]);
        assert_eq!(config.per_host, Some(2));
        assert!(config.resume && config.force);
        assert_eq!(config.grace, Duration::ZERO);
        assert_eq!(
            config.report,
            Some((PathBuf::from("r.csv"), ReportFormat::Csv))
        );
    }

    #[test]
    fn request_flags_reach_the_settings() {
        let config = config_of(
            &[
                "--max-size",
                "10M",
                "--max-time",
                "2.5",
                "--speed-limit",
                "1k",
                "--speed-time",
                "4",
                "-H",
                "Authorization: Bearer x",
                "-H",
                "X-Empty:",
                "-A",
                "agent/1",
                "--accept",
                "jpg,.png,*.GIF,image/webp",
                "u",
            ],
            false,
        )
        .unwrap();
        let settings = &config.settings;
        assert_eq!(settings.acceptance.max_size, Some(10 << 20));
        assert_eq!(
            settings.timeouts.max_time,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(settings.timeouts.speed_limit, Some(1024));
        assert_eq!(settings.timeouts.speed_time, Duration::from_secs(4));
        assert_eq!(
            settings.headers,
            [
                ("Authorization".to_string(), "Bearer x".to_string()),
                ("X-Empty".to_string(), String::new())
            ]
        );
        assert_eq!(settings.user_agent, "agent/1");
        assert_eq!(
            settings.acceptance.accept,
            ["image/jpeg", "image/png", "image/gif", "image/webp"]
        );
        let defaults = config_of(&["u"], false).unwrap().settings;
        assert_eq!(
            defaults.user_agent,
            format!("grab/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(defaults.headers.is_empty() && defaults.timeouts.max_time.is_none());
        // A User-Agent in -H wins over -A, as in curl.
        let config = config_of(&["-A", "a", "-H", "user-agent: b", "u"], false).unwrap();
        assert_eq!(config.settings.user_agent, "b");
        assert!(config.settings.headers.is_empty());
        assert_eq!(
            parse(&["--accept", "jpg,image/png", "u"]).accept_note(),
            Some("--accept jpg,image/png read as image/jpeg, image/png".to_string())
        );
        assert_eq!(parse(&["--accept", "image/*", "u"]).accept_note(), None);
        // Nothing to say of an empty list (which accepts everything).
        assert_eq!(parse(&["--accept", "", "u"]).accept_note(), None);
        assert_eq!(parse(&["--accept", ",", "u"]).accept_note(), None);
        assert_eq!(
            parse(&["--accept", "jpg,", "u"]).accept_note(),
            Some("--accept jpg read as image/jpeg".to_string())
        );
    }

    #[test]
    fn bad_request_flags_say_what_is_wrong() {
        for (arguments, expected) in [
            (&["-H", "no colon", "u"][..], "expected 'Name: value'"),
            (&["-H", "Bad Name: x", "u"], "not a valid header name"),
            (&["-H", "Range: bytes=0-", "u"], "grab sets Range itself"),
            (&["-H", "Host: elsewhere", "u"], "grab sets Host itself"),
            (
                &["--accept", "jpg,exe", "u"],
                "--accept exe: not a MIME type",
            ),
        ] {
            let error = config_of(arguments, false).unwrap_err();
            assert!(error.contains(expected), "{arguments:?}: {error}");
        }
    }

    #[test]
    fn layout_flags_reach_the_settings() {
        assert!(config_of(&["u"], false).unwrap().settings.layout.is_flat());
        let config = config_of(
            &[
                "-x",
                "--no-host-directories",
                "--cut-dirs",
                "2",
                "--spread",
                "1",
                "u",
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            config.settings.layout,
            Layout {
                force_directories: true,
                no_host: true,
                cut_dirs: 2,
                spread: 1
            }
        );
        let spelled: Vec<_> =
            crate::cli::wget_spellings(["-x", "-nH", "u"].into_iter().map(Into::into)).collect();
        assert_eq!(spelled, ["-x", "--no-host-directories", "u"]);
        for arguments in [
            &["--no-host-directories", "u"][..],
            &["--cut-dirs", "1", "u"],
        ] {
            let error = config_of(arguments, false).unwrap_err();
            assert!(error.contains("add -x"), "{arguments:?}: {error}");
        }
        let error = config_of(&["--spread", "1", "--filter", "blur", "u"], false).unwrap_err();
        assert!(error.contains("--filter"), "{error}");
    }

    #[test]
    fn the_live_view_follows_the_terminal_and_the_flags() {
        assert_eq!(config_of(&["u"], true).unwrap().progress, ProgressMode::Bar);
        // Log lines would fight with a bar.
        assert_eq!(
            config_of(&["-v", "u"], true).unwrap().progress,
            ProgressMode::Lines
        );
        // Quiet hides per-file lines, not the bar, which leaves nothing behind.
        assert_eq!(
            config_of(&["-q", "u"], true).unwrap().progress,
            ProgressMode::Bar
        );
        assert_eq!(
            config_of(&["-q", "u"], false).unwrap().progress,
            ProgressMode::None
        );
        assert_eq!(
            config_of(&["-q", "--progress", "none", "u"], true)
                .unwrap()
                .progress,
            ProgressMode::None
        );
        assert_eq!(
            config_of(&["--progress", "none", "u"], true)
                .unwrap()
                .progress,
            ProgressMode::None
        );
    }

    #[test]
    fn a_report_needs_a_format() {
        let error = config_of(&["--report", "out.txt", "u"], false).unwrap_err();
        assert!(error.contains("--report-format"), "{error}");
        let config = config_of(
            &["--report", "out.txt", "--report-format", "ndjson", "u"],
            false,
        )
        .unwrap();
        assert_eq!(
            config.report,
            Some((PathBuf::from("out.txt"), ReportFormat::Ndjson))
        );
    }

    #[test]
    fn curl_and_wget_spellings_reach_the_config() {
        let config = config_of(&["--retry", "1", "-C", "-", "-P", "photos", "u"], false).unwrap();
        assert_eq!(config.settings.retries, 1);
        assert!(config.resume);
        assert_eq!(config.settings.output_dir, PathBuf::from("photos"));
        let config = config_of(
            &["--continue-at", "-", "--directory-prefix", "d", "u"],
            false,
        );
        assert!(config.unwrap().resume);
        let error = config_of(&["-C", "100", "u"], false).unwrap_err();
        assert!(error.contains("use -c"), "{error}");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        // Each is refused by clap itself.
        for arguments in [
            &["--max-size", "10X", "u"][..],
            &["--speed-limit", "0", "u"],
            &["--speed-time", "5", "u"],
            &["--max-time", "0", "u"],
            &["--spread", "0", "u"],
            &["--spread", "5", "u"],
            &["-x", "-O", "f.jpg", "u"],
            &["-s", "fibers", "u"],
            &["-j", "0", "u"],
            &["--timeout", "0", "u"],
            &["--grace", "-1", "u"],
            &["--filter", "emboss", "u"],
        ] {
            assert!(parsed(arguments).is_err(), "{arguments:?}");
        }
    }

    #[test]
    fn filters_while_downloading_go_beside_the_downloads() {
        let arguments = parse(&["-o", "photos", "--filter", "blur,grayscale", "u"]);
        let filters = arguments
            .filter_config(Console::silent(), WorkerProgram::current())
            .unwrap();
        assert_eq!(filters.settings.filters, [Filter::Blur, Filter::Grayscale]);
        assert_eq!(filters.output_dir, PathBuf::from("photos/filtered"));
        assert_eq!(filters.strategy, Strategy::Threads);
        assert!(
            parse(&["u"])
                .filter_config(Console::silent(), WorkerProgram::current())
                .is_none()
        );
    }
}
