//! `grab dataset`: its flags, their conversion to a [`DatasetConfig`], and the
//! command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{cpus, named, positive_seconds, usage_error};
use crate::Named;
use crate::console::{Console, Verbosity};
use crate::dataset::input::{Columns, InputFormat};
use crate::dataset::recipe::{HashType, Recipe, VerifyHash};
use crate::dataset::settings::{IncrementalMode, SettingsError};
use crate::dataset::shard::OutputFormat;
use crate::dataset::{self, DatasetConfig, Shards, progress};
use crate::engine::ProgressMode;
use crate::engine::Strategy;
use crate::engine::processes::WorkerProgram;
use crate::exit::ExitStatus;
use crate::fs::store::Store;
use crate::image::resize::{EncodeFormat, ResizeMode};

/// Exit statuses of `grab dataset`: failed samples are data, not failures.
pub const DATASET_EXIT_CODES: &str = "Exit codes:\n  0    every shard was written (samples that failed are recorded in their shard's metadata)\n  1    a shard could not be written or the table could not be read to its end\n  2    usage error (unknown flag, unreadable table, missing column, an output folder built with other settings; for `stats`, a DIR that holds no shards)\n  130  interrupted by Ctrl-C or SIGTERM: finished samples are kept, run again to finish";

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
    /// What to do when the output folder holds an earlier dataset (its
    /// settings are kept in DIR/settings.json): continue it, refusing other
    /// settings (`incremental`, the default); remove its shards, stats and
    /// spool and start over (`overwrite`); or keep them and put this table's
    /// shards after the highest there (`extend`).
    #[arg(long, value_name = "MODE", value_parser = named::<IncrementalMode>())]
    pub incremental_mode: Option<IncrementalMode>,
    /// Fetch the failed samples of complete shards again and rewrite each
    /// such shard atomically, keys unchanged and the other samples as they
    /// were (shards not complete yet are built as usual).
    #[arg(long)]
    pub retry_failed: bool,
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
    /// JPEG or WebP quality (0-100, default 95; WebP 101 is lossless) or
    /// PNG compression effort (0-9, default 9).
    #[arg(long, value_name = "Q")]
    pub encode_quality: Option<u8>,
    /// Save every image as downloaded: no decoding, resizing nor encoding,
    /// and no width or height in its metadata (img2dataset's meaning).
    #[arg(long)]
    pub disable_all_reencoding: bool,
    /// Digits of shard names (img2dataset's oom_shard_count): 8 gives
    /// 00000000.tar, as DataComp's recipe.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=19))]
    pub oom_shard_count: u32,
    /// The hash of each downloaded image (the bytes as downloaded) kept in a
    /// metadata field of its name, or none.
    #[arg(long, value_name = "TYPE", default_value = "sha256", value_parser = ["md5", "sha256", "sha512", "none"])]
    pub compute_hash: String,
    /// A column holding each image's expected hash: an image whose hash
    /// differs is a failed download ("hash mismatch"). The column is read,
    /// not saved.
    #[arg(long, value_name = "NAME")]
    pub verify_hash_col: Option<String>,
    /// The hash --verify-hash-col holds [default: --compute-hash's].
    #[arg(long, value_name = "TYPE", value_parser = named::<HashType>(), requires = "verify_hash_col")]
    pub verify_hash_type: Option<HashType>,
    /// A column of boxes to blur (faces, say): a list of [x0, y0, x1, y1]
    /// relative to the image, blurred as img2dataset's blurrer does. The
    /// column is saved too, as img2dataset saves it.
    #[arg(long, value_name = "NAME")]
    pub bbox_col: Option<String>,
    /// Keep each image's EXIF tags in its metadata's `exif` field (a JSON
    /// object as text), as img2dataset's extract_exif.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub extract_exif: bool,
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
    /// Memory the downloaded bodies waiting to be decoded may hold together
    /// (k, M, G suffixes, 1024-based): a download starts once a body of the
    /// mean size so far fits, so large pictures cannot pile up behind busy
    /// image threads [default: 16M per image thread, at least 32M].
    #[arg(long, value_name = "SIZE", value_parser = super::positive_size)]
    pub memory_limit: Option<u64>,
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
    pub fn config(&self, program: WorkerProgram, terminal: bool) -> Result<DatasetConfig, String> {
        let mut config = self.build.config(program, terminal)?;
        config.samples_per_shard = self.table.samples_per_shard;
        config.columns = self.table.columns()?;
        config.shards = self.shard.map_or(Shards::All, Shards::Part);
        config.incremental_mode = self.incremental_mode;
        config.retry_failed = self.retry_failed;
        match self.incremental_mode {
            Some(mode @ (IncrementalMode::Overwrite | IncrementalMode::Extend))
                if self.retry_failed =>
            {
                return Err(format!(
                    "--retry-failed retries the folder's own shards: it cannot go with --incremental-mode {}",
                    mode.name()
                ));
            }
            _ => {}
        }
        if let Some(mode @ (IncrementalMode::Overwrite | IncrementalMode::Extend)) =
            self.incremental_mode
            && config.output.is_bucket()
        {
            return Err(format!(
                "--incremental-mode {} works on a local output folder; {} is a bucket (remove its objects, or use another prefix)",
                mode.name(),
                config.output
            ));
        }
        if self.retry_failed && config.output.is_bucket() {
            return Err(format!(
                "--retry-failed rewrites shards in a local output folder; {} is a bucket (run it on a local copy)",
                config.output
            ));
        }
        Ok(config)
    }
}

impl TableArgs {
    /// The table's columns; an error names a saved column the metadata
    /// keeps for itself.
    pub fn columns(&self) -> Result<Columns, String> {
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
        .checked()
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
    /// Hashes, boxes, EXIF, reencoding.
    fn recipe(&self) -> Result<Recipe, String> {
        let compute_hash = HashType::from_name(&self.compute_hash);
        let verify_hash = match (
            &self.verify_hash_col,
            self.verify_hash_type.or(compute_hash),
        ) {
            (None, _) => None,
            (Some(column), Some(hash)) => Some(VerifyHash {
                column: column.clone(),
                hash,
            }),
            (Some(_), None) => {
                return Err(
                    "--verify-hash-col with --compute-hash none needs --verify-hash-type".into(),
                );
            }
        };
        Ok(Recipe {
            compute_hash,
            verify_hash,
            bbox_column: self.bbox_col.clone(),
            extract_exif: self.extract_exif,
            disable_all_reencoding: self.disable_all_reencoding,
        })
    }

    pub fn console(&self) -> Console {
        Console::new(match self.quiet {
            true => Verbosity::Quiet,
            false => Verbosity::Normal,
        })
    }

    /// The configuration of a run on the table's defaults (columns, shard
    /// size): the table's flags, or a queue job, set those. Its console is the
    /// one `-q` asks for: print through `config.console`, which the live view
    /// shares.
    pub fn config(&self, program: WorkerProgram, terminal: bool) -> Result<DatasetConfig, String> {
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
            (EncodeFormat::Webp, Some(quality)) if quality > 101 => {
                return Err(format!(
                    "--encode-quality for webp is 0-100, or 101 for lossless, got {quality}"
                ));
            }
            (EncodeFormat::Webp, Some(quality)) => quality,
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
        config.recipe = self.recipe()?;
        config.shard_digits = self.oom_shard_count as usize;
        let download = &mut config.download;
        self.request.apply(download)?;
        download.timeouts.idle = Duration::from_secs_f64(self.timeout);
        download.retries = self.retries;
        download.acceptance.max_size = Some(self.max_size);
        download.acceptance.refused_robots = self
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
        config.memory_limit = self.memory_limit;
        config.console = self.console();
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
    return_large_blocks();
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
    let terminal = std::io::stderr().is_terminal();
    let mut config = match arguments.config(program, terminal) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let console = config.console.clone();
    let table = match dataset::open(input, arguments.table.input_format, &config) {
        Ok(table) => table,
        Err(error) => return usage_error(error),
    };
    config.interrupt = super::interrupt_on_signals();
    let run = match dataset::run(&config, table) {
        Ok(run) => run,
        // The folder holds another dataset: the command line must say what to do.
        Err(error) => match error.downcast_ref::<SettingsError>() {
            Some(
                refused @ (SettingsError::Differ { .. }
                | SettingsError::Unrecorded(_)
                | SettingsError::SharedOverwrite(_)),
            ) => {
                return usage_error(refused);
            }
            _ => return super::failed(error),
        },
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

/// Blocks of 1 MiB and more (the bodies of large pictures) are mapped for
/// themselves and given back to the system when freed, instead of glibc's
/// default, which after the first large block is freed serves such blocks
/// from its heaps. There, large bodies among small blocks left the process
/// holding some 160 MB for some 100 MB in use (bench/dataset.sh's large
/// set, 1,500-2,600 px); with this, the body budget (`dataset`) and the
/// image threads' kept pixel buffers (`image::resize`), about 105 MB for
/// the same CPU time. 1 MiB, not glibc's first 128 KiB: smaller blocks
/// (a 256 px picture's canvas, its resizer's rows) come and go with every
/// picture, and mapping each anew cost the default set 4% more CPU. A
/// setting of the whole process, so it is made by the command, not by the
/// library.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a number glibc reads at its next allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
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
            Command::Dataset(arguments) => arguments.config(WorkerProgram::current(), false),
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
            config.download.acceptance.refused_robots,
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
        assert!(config.download.acceptance.refused_robots.is_empty());
        assert_eq!(config.image.encode_quality, 9);
        assert_eq!(config.download.user_agent, "bot/1");
        assert_eq!(config.columns.save, ["a", "b"]);
        assert!(config_of(&["t.csv", "--encode-format", "png", "--encode-quality", "10"]).is_err());
        assert!(config_of(&["t.csv", "--max-aspect-ratio", "0.5"]).is_err());
        for other in ["ftp://x", "foo://x"] {
            let error = config_of(&["t.csv", "-o", other]).unwrap_err();
            assert!(error.contains(other), "{error}");
        }
        assert_eq!(config.recipe, Recipe::default());
        assert_eq!(config.shard_digits, 5);
    }

    #[test]
    fn recipe_flags_reach_the_config() {
        let config = config_of(&[
            "t.parquet",
            "--oom-shard-count",
            "8",
            "--compute-hash",
            "md5",
            "--verify-hash-col",
            "hash",
            "--bbox-col",
            "face_bboxes",
            "--extract-exif",
            "false",
            "--disable-all-reencoding",
            "--encode-format",
            "webp",
            "--encode-quality",
            "101",
        ])
        .unwrap();
        assert_eq!(config.shard_digits, 8);
        assert_eq!(config.image.encode_quality, 101);
        assert_eq!(
            config.recipe,
            Recipe {
                compute_hash: Some(HashType::Md5),
                verify_hash: Some(VerifyHash {
                    column: "hash".into(),
                    hash: HashType::Md5,
                }),
                bbox_column: Some("face_bboxes".into()),
                extract_exif: false,
                disable_all_reencoding: true,
            }
        );
        let saved: Vec<String> = config
            .layout()
            .saved_columns
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(saved, ["face_bboxes"]);
        assert_eq!(config.read_columns().save, ["face_bboxes", "hash"]);
        let none = config_of(&["t.parquet", "--compute-hash", "none"]).unwrap();
        assert_eq!(none.recipe.compute_hash, None);
        assert!(
            config_of(&[
                "t.parquet",
                "--compute-hash",
                "none",
                "--verify-hash-col",
                "h"
            ])
            .is_err()
        );
        let typed = config_of(&[
            "t.parquet",
            "--compute-hash",
            "none",
            "--verify-hash-col",
            "h",
            "--verify-hash-type",
            "sha512",
        ])
        .unwrap();
        assert_eq!(typed.recipe.verify_hash.unwrap().hash, HashType::Sha512);
        assert!(
            config_of(&[
                "t.csv",
                "--encode-format",
                "webp",
                "--encode-quality",
                "102"
            ])
            .is_err()
        );
    }
}
