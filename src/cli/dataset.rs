//! `grab dataset`: its flags, their conversion to a [`DatasetConfig`], and the
//! command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{cpus, named, positive_seconds, usage_error};
use crate::console::{Console, Verbosity};
use crate::dataset::input::{Columns, InputFormat};
use crate::dataset::shard::OutputFormat;
use crate::dataset::{self, DatasetConfig, progress};
use crate::engine::ProgressMode;
use crate::engine::Strategy;
use crate::engine::processes::WorkerProgram;
use crate::exit::ExitStatus;
use crate::fs::store::Store;
use crate::image::resize::{EncodeFormat, ResizeMode};

/// Exit statuses of `grab dataset`: failed samples are data, not failures.
pub const DATASET_EXIT_CODES: &str = "Exit codes:\n  0    every shard was written (samples that failed are recorded in their shard's metadata)\n  1    a shard could not be written or the table could not be read to its end\n  2    usage error (unknown flag, unreadable table, missing column; for `stats`, a DIR that holds no shards)\n  130  interrupted by Ctrl-C or SIGTERM: finished samples are kept, run again to finish";

#[derive(Debug, Args)]
#[command(
    after_help = DATASET_EXIT_CODES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: Option<DatasetCommand>,
    /// The table of URLs: txt (a URL a line), csv, tsv, jsonl, json or
    /// parquet, text ones also .gz, .zst or .bz2; or a folder of such files,
    /// or a glob (quoted), read in sorted order. Also an object or a prefix
    /// in a bucket: s3://bucket/tables/ (gs://, az:// too).
    #[arg(value_name = "TABLE", required = true)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub table: TableArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Take only the output shards numbered K modulo N (keys stay those of
    /// the whole table); `auto/N` reads K from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "K/N", value_parser = super::shard)]
    pub shard: Option<crate::partition::Shard>,
}

/// How the table is read and cut into shards: `grab dataset`'s, and `grab
/// queue push --dataset`'s, whose jobs carry them to the workers.
#[derive(Debug, Args)]
pub struct TableArgs {
    /// The table's format [default: from each file's extension].
    #[arg(long, value_parser = named::<InputFormat>())]
    pub input_format: Option<InputFormat>,
    /// The column holding the URL.
    #[arg(long, value_name = "NAME", default_value = "url")]
    pub url_col: String,
    /// The column holding the caption, saved as KEY.txt.
    #[arg(long, value_name = "NAME")]
    pub caption_col: Option<String>,
    /// Columns copied into each sample's metadata.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub save_cols: Vec<String>,
    /// Samples in each shard.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub samples_per_shard: u64,
}

/// How shards are built: every flag of `grab dataset` but the table's.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Folder for the shards (created when missing), or a bucket prefix:
    /// s3://bucket/prefix (gs://, az:// too; credentials and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ENDPOINT_URL, AWS_ALLOW_HTTP). A bucket has no lock: concurrent
    /// runs must split the work with --shard.
    #[arg(short, long, value_name = "DIR", default_value = "dataset")]
    pub output_dir: PathBuf,
    /// How shards are stored.
    #[arg(long, value_parser = named::<OutputFormat>(), default_value = "files")]
    pub output_format: OutputFormat,
    /// Side of the output images, in pixels.
    #[arg(long, value_name = "PX", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub image_size: u32,
    /// How images are brought to --image-size (img2dataset's meanings).
    #[arg(long, value_parser = named::<ResizeMode>(), default_value = "border")]
    pub resize_mode: ResizeMode,
    /// Never enlarge: images that already fit are left as they are.
    #[arg(long)]
    pub resize_only_if_bigger: bool,
    /// Format of the saved images.
    #[arg(long, value_parser = named::<EncodeFormat>(), default_value = "jpg")]
    pub encode_format: EncodeFormat,
    /// JPEG quality (0-100, default 95) or PNG compression effort (0-9, default 9).
    #[arg(long, value_name = "Q")]
    pub encode_quality: Option<u8>,
    /// Keep the downloaded bytes when the image is already in the encode
    /// format, upright, opaque, and would not be resized.
    #[arg(long)]
    pub skip_reencode: bool,
    /// Refuse images whose shortest side is shorter than PX.
    #[arg(long, value_name = "PX", default_value_t = 0)]
    pub min_image_size: u32,
    /// Refuse images whose header declares more pixels than N, before decoding.
    #[arg(long, value_name = "N", default_value_t = 178_956_970)]
    pub max_image_area: u64,
    /// Refuse images whose longest side is more than R times the shortest.
    #[arg(long, value_name = "R")]
    pub max_aspect_ratio: Option<f64>,
    /// How downloads run concurrently. `async` (an event loop per core) costs
    /// the least CPU and memory beside the image threads.
    #[arg(short, long, value_parser = named::<Strategy>(), default_value = "async")]
    pub strategy: Strategy,
    /// Downloads in flight at once.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: u32,
    /// At most N connections to any one host at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// Threads decoding, resizing and encoding [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub image_workers: Option<u32>,
    /// Abandon a transfer that receives nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// Attempts after a transient failure (img2dataset's default is none); a
    /// host that does not resolve is not retried. curl's --retry N is the same.
    #[arg(long, value_name = "N", default_value_t = 0, visible_alias = "retry")]
    pub retries: u32,
    /// Abandon bodies larger than SIZE (bytes, or with k, M, G, 1024-based, as
    /// every size flag): what bounds a body held in memory.
    #[arg(long, value_name = "SIZE", default_value = "32M", value_parser = super::positive_size)]
    pub max_size: u64,
    /// X-Robots-Tag directives that mean "do not use" (img2dataset's four and
    /// `none`): such a response is not saved and counts as opted out, for
    /// `DIRECTIVE` and `grab: DIRECTIVE` alike. An empty list (`''`) turns the
    /// opt-out off.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "noai,noimageai,noindex,noimageindex,none"
    )]
    pub disallowed_header_directives: Vec<String>,
    /// Live progress: a bar (default on a terminal), heartbeat lines (default
    /// otherwise), or none.
    #[arg(long, value_parser = named::<ProgressMode>())]
    pub progress: Option<ProgressMode>,
    /// Seconds between heartbeat lines.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = positive_seconds)]
    pub heartbeat: f64,
    /// Print only errors and the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the run's stats as one JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub request: super::request::RequestArgs,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Rebuild DIR/stats.json from every shard's NNNNN_stats.json in DIR
    /// (after copying the folders of several runs together, say).
    Stats {
        /// The dataset's output folder, or its bucket prefix (s3://...).
        #[arg(value_name = "DIR")]
        output_dir: PathBuf,
        /// Print the stats as one JSON object on stdout instead of the summary.
        #[arg(long)]
        json: bool,
    },
}

impl DatasetArgs {
    /// The run's configuration; an error names the flag that is wrong.
    pub fn config(
        &self,
        console: Console,
        program: WorkerProgram,
        terminal: bool,
    ) -> Result<DatasetConfig, String> {
        let mut config = self.build.config(console, program, terminal)?;
        config.samples_per_shard = self.table.samples_per_shard;
        config.columns = self.table.columns();
        config.shard = self.shard;
        Ok(config)
    }
}

impl TableArgs {
    pub fn columns(&self) -> Columns {
        Columns {
            url: self.url_col.clone(),
            caption: self.caption_col.clone(),
            save: self
                .save_cols
                .iter()
                .filter(|name| !name.is_empty())
                .cloned()
                .collect(),
        }
    }

    /// Whether any flag differs from its default (they mean something only
    /// with a table).
    pub fn given(&self) -> bool {
        self.input_format.is_some()
            || self.url_col != "url"
            || self.caption_col.is_some()
            || !self.save_cols.is_empty()
            || self.samples_per_shard != 10_000
    }
}

impl BuildArgs {
    pub fn console(&self) -> Console {
        Console::new(match self.quiet {
            true => Verbosity::Quiet,
            false => Verbosity::Normal,
        })
    }

    /// The configuration of a run on the table's defaults (columns, shard
    /// size): the table's flags, or a queue job, set those.
    pub fn config(
        &self,
        console: Console,
        program: WorkerProgram,
        terminal: bool,
    ) -> Result<DatasetConfig, String> {
        let output = Store::open(&self.output_dir).map_err(|error| format!("-o {error}"))?;
        let mut config = DatasetConfig::in_store(output);
        config.output_format = self.output_format;
        let image = &mut config.image;
        image.image_size = self.image_size;
        image.resize_mode = self.resize_mode;
        image.resize_only_if_bigger = self.resize_only_if_bigger;
        image.encode_format = self.encode_format;
        image.encode_quality = match (self.encode_format, self.encode_quality) {
            (EncodeFormat::Png, None) => 9,
            (EncodeFormat::Png, Some(quality)) if quality > 9 => {
                return Err(format!("--encode-quality for png is 0-9, got {quality}"));
            }
            (_, Some(quality)) if quality > 100 => {
                return Err(format!("--encode-quality is 0-100, got {quality}"));
            }
            (_, Some(quality)) => quality,
            (_, None) => 95,
        };
        image.skip_reencode = self.skip_reencode;
        image.min_image_size = self.min_image_size;
        image.max_image_area = self.max_image_area;
        image.max_aspect_ratio = match self.max_aspect_ratio {
            Some(ratio) if ratio.is_nan() || ratio < 1.0 => {
                return Err(format!(
                    "--max-aspect-ratio must be at least 1, got {ratio}"
                ));
            }
            Some(ratio) => ratio,
            None => f64::INFINITY,
        };
        let download = &mut config.download;
        self.request.apply(download)?;
        download.idle_timeout = Duration::from_secs_f64(self.timeout);
        download.retries = self.retries;
        download.max_size = Some(self.max_size);
        download.refused_robots = self
            .disallowed_header_directives
            .iter()
            .map(|directive| directive.trim().to_lowercase())
            .filter(|directive| !directive.is_empty())
            .collect();
        config.strategy = self.strategy;
        config.jobs = self.jobs as usize;
        config.per_host = self.per_host.map(|limit| limit as usize);
        config.image_workers = self
            .image_workers
            .map_or_else(cpus, |workers| workers as usize);
        config.console = console;
        config.worker_program = program;
        config.heartbeat = Duration::from_secs_f64(self.heartbeat);
        config.progress = match (self.quiet, self.progress) {
            (true, _) => ProgressMode::None,
            (false, Some(mode)) => mode,
            (false, None) if terminal => ProgressMode::Bar,
            (false, None) => ProgressMode::Lines,
        };
        Ok(config)
    }
}

pub fn run(arguments: &DatasetArgs, program: WorkerProgram) -> ExitStatus {
    let input = match (&arguments.command, &arguments.input) {
        (Some(DatasetCommand::Stats { output_dir, json }), _) => {
            let output = match Store::open(output_dir) {
                Ok(output) => output,
                Err(error) => return usage_error(error),
            };
            return match dataset::rebuild_stats(&output) {
                Ok(run) => {
                    print_stats(&run, *json, &Console::new(Verbosity::Normal));
                    ExitStatus::Ok
                }
                Err(error) => match error.downcast_ref::<dataset::NotADataset>() {
                    Some(wrong_folder) => usage_error(wrong_folder),
                    None => super::failed(error),
                },
            };
        }
        (None, Some(input)) => input,
        (None, None) => return usage_error("no TABLE given"),
    };
    let console = arguments.build.console();
    let terminal = std::io::stderr().is_terminal();
    let mut config = match arguments.config(console.clone(), program, terminal) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let rows = match dataset::open(input, arguments.table.input_format, &config) {
        Ok(rows) => rows,
        Err(error) => return usage_error(error),
    };
    config.interrupt = super::interrupt_on_signals();
    let run = match dataset::run(&config, rows) {
        Ok(run) => run,
        Err(error) => return super::failed(error),
    };
    print_stats(&run, arguments.build.json, &console);
    if run.interrupted {
        ExitStatus::Interrupted
    } else {
        ExitStatus::from_failures(!run.errors.is_empty())
    }
}

/// The stats as one JSON object on stdout, or the summary on stderr.
pub fn print_stats(run: &dataset::RunStats, json: bool, console: &Console) {
    if json {
        println!(
            "{}",
            serde_json::to_string(run).expect("stats serialise to JSON")
        );
    } else {
        console.summary(&progress::summary(run));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config_of(arguments: &[&str]) -> Result<DatasetConfig, String> {
        let mut line = vec!["grab", "dataset"];
        line.extend_from_slice(arguments);
        match Cli::try_parse_from(line).expect("the flags parse").command {
            Command::Dataset(arguments) => {
                arguments.config(Console::silent(), WorkerProgram::current(), false)
            }
            other => panic!("not dataset: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_flags_reach_the_config() {
        let config = config_of(&["t.parquet"]).unwrap();
        assert_eq!(config.samples_per_shard, 10_000);
        assert_eq!(config.image.resize_mode, ResizeMode::Border);
        assert_eq!(config.image.encode_quality, 95);
        assert_eq!(
            config.download.refused_robots,
            ["noai", "noimageai", "noindex", "noimageindex", "none"]
        );
        assert_eq!(
            config.download.user_agent,
            crate::http::Settings::default_user_agent()
        );
        let config = config_of(&[
            "t.csv",
            "--disallowed-header-directives",
            "",
            "--encode-format",
            "png",
            "--user-agent",
            "bot/1",
            "--save-cols",
            "a,b",
        ])
        .unwrap();
        assert!(config.download.refused_robots.is_empty());
        assert_eq!(config.image.encode_quality, 9);
        assert_eq!(config.download.user_agent, "bot/1");
        assert_eq!(config.columns.save, ["a", "b"]);
        assert!(config_of(&["t.csv", "--encode-format", "png", "--encode-quality", "10"]).is_err());
        assert!(config_of(&["t.csv", "--max-aspect-ratio", "0.5"]).is_err());
        for other in ["ftp://x", "foo://x"] {
            let error = config_of(&["t.csv", "-o", other]).unwrap_err();
            assert!(error.contains(other), "{error}");
        }
    }
}
