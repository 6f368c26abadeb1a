//! `grab queue push|work|dataset|status`: their flags, and the commands.
//! `work` takes every flag of `grab get` but its inputs, `dataset` every flag
//! of `grab dataset` but the table's: the queue's jobs are their input.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{positive_seconds, usage_error};
use crate::console::{Console, Verbosity};
use crate::engine::processes::WorkerProgram;
use crate::exit::ExitStatus;
use crate::get::input::Inputs;
use crate::queue::NoSuchQueue;
use crate::queue::dataset::{DatasetWorkConfig, TableSpec};
use crate::queue::link::{AddressError, Link};
use crate::queue::work::{self, WorkConfig, Worked, WorkerConfig};
use crate::queue::{self, Keys};

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Add URLs to the queue (each URL once, however often pushed).
    Push(PushArgs),
    /// Download the queue's jobs, beside other workers, until it is drained.
    // Boxed: it carries every flag of `grab get`.
    Work(Box<WorkArgs>),
    /// Build the dataset shards pushed with `push --dataset`, beside other
    /// workers, until the queue is drained.
    Dataset(Box<DatasetWorkArgs>),
    /// How many jobs are waiting, pending (per worker), done, failed, dead.
    Status(StatusArgs),
}

/// Where the queue is.
#[derive(Debug, Args)]
pub struct Address {
    /// The Redis server (6.2 or later): redis://HOST:PORT/DB.
    #[arg(
        long,
        value_name = "URL",
        env = "GRAB_REDIS",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub redis: String,
    /// The queue's name: its keys in Redis start with grab:NAME:.
    #[arg(long, value_name = "NAME", default_value = "grab")]
    pub queue: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub address: Address,
    /// URLs to add.
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (`URL` or `URL NAME`); `-` reads stdin.
    #[arg(short, long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// URLs (or shard jobs) sent per round trip.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Print the counts as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Push one job per output shard of TABLE, for `grab queue dataset`
    /// workers (every worker reads TABLE at this absolute path).
    #[arg(long, value_name = "TABLE")]
    pub dataset: Option<PathBuf>,
    /// With --dataset: how the table is read and cut into shards.
    #[command(flatten, next_help_heading = "With --dataset")]
    pub table: super::dataset::TableArgs,
}

// The flags of `grab get` that a queue worker refuses (the queue's jobs are
// its input, named when pushed) are kept out of its help: it lists only what
// applies.
#[derive(Debug, Args)]
#[command(
    mut_arg("urls", |arg| arg.hide(true)),
    mut_arg("inputs", |arg| arg.hide(true)),
    mut_arg("output_document", |arg| arg.hide(true)),
    mut_arg("shard", |arg| arg.hide(true)),
    mut_arg("filters", |arg| arg.hide(true)),
    mut_arg("filter_output_dir", |arg| arg.hide(true)),
    mut_arg("memory_limit", |arg| arg.hide(true)),
    mut_arg("force_directories", |arg| arg.hide(true)),
    mut_arg("no_host_directories", |arg| arg.hide(true)),
    mut_arg("cut_dirs", |arg| arg.hide(true)),
    mut_arg("spread", |arg| arg.hide(true))
)]
pub struct WorkArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Jobs read per round trip [default: 2 per job slot].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: Option<u32>,
    /// Every flag of `grab get` but its inputs.
    #[command(flatten)]
    pub get: super::get::GetArgs,
}

#[derive(Debug, Args)]
pub struct DatasetWorkArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Every flag of `grab dataset` but the table's (the jobs carry those).
    #[command(flatten)]
    pub build: super::dataset::BuildArgs,
}

/// A worker's place in the fleet, for URL and dataset workers alike.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub address: Address,
    /// Take over a job left pending this long by a worker that stopped
    /// answering (died, or lost Redis).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = positive_seconds)]
    pub claim_idle: f64,
    /// Move a job delivered more than N times to the dead-letter stream.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_deliveries: u64,
    /// Keep waiting for new jobs when the queue is drained.
    #[arg(long)]
    pub follow: bool,
    /// How long Redis may be unreachable before the worker gives up (its jobs
    /// stay pending for the others).
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = positive_seconds)]
    pub redis_patience: f64,
}

impl WorkerArgs {
    /// The worker's configuration, reading `batch` jobs per round trip.
    pub fn config(&self, batch: usize) -> WorkerConfig {
        WorkerConfig {
            address: self.address.redis.clone(),
            queue: self.address.queue.clone(),
            consumer: work::consumer_name(),
            batch,
            claim_idle: Duration::from_secs_f64(self.claim_idle),
            max_deliveries: self.max_deliveries,
            follow: self.follow,
            patience: Duration::from_secs_f64(self.redis_patience),
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub address: Address,
    /// Print the status as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A queue command that could not go on: a usage error (exit 2) when the
/// command line named something that is not there (an address that is not
/// Redis's, a queue no push made), else a failure.
fn queue_failed(error: anyhow::Error) -> ExitStatus {
    if error.is::<AddressError>() || error.is::<NoSuchQueue>() {
        return usage_error(format!("{error:#}"));
    }
    super::failed(error)
}

pub fn run(arguments: &QueueArgs, program: WorkerProgram) -> ExitStatus {
    match &arguments.command {
        QueueCommand::Push(arguments) => push(arguments),
        QueueCommand::Work(arguments) => work(arguments, program),
        QueueCommand::Dataset(arguments) => work_dataset(arguments, program),
        QueueCommand::Status(arguments) => status(arguments),
    }
}

fn push(arguments: &PushArgs) -> ExitStatus {
    if let Some(table) = &arguments.dataset {
        return push_dataset(arguments, table);
    }
    if arguments.table.given() {
        return usage_error(
            "--input-format, --url-col, --caption-col, --save-cols and --samples-per-shard apply with --dataset TABLE",
        );
    }
    if arguments.urls.is_empty() && arguments.inputs.is_empty() {
        return usage_error("no URLs: give them as arguments or with -i FILE (-i - reads stdin)");
    }
    let inputs = match Inputs::open(arguments.urls.clone(), &arguments.inputs) {
        Ok(inputs) => inputs,
        Err(error) => return usage_error(error),
    };
    let console = Console::new(Verbosity::Normal);
    let result = Link::open(&arguments.address.redis).and_then(|mut link| {
        let keys = Keys::new(&arguments.address.queue);
        queue::push(
            &mut link,
            &keys,
            inputs,
            arguments.batch as usize,
            |invalid| console.error(&invalid.to_string()),
        )
    });
    match result {
        Ok(pushed) => {
            if arguments.json {
                println!(
                    "{}",
                    serde_json::to_string(&pushed).expect("counts serialise")
                );
            } else {
                console.summary(&format!(
                    "queue {}: {} new job(s) of {} URL(s) read{}",
                    arguments.address.queue,
                    pushed.new,
                    pushed.read,
                    match pushed.invalid {
                        0 => String::new(),
                        invalid => format!(", {invalid} invalid line(s) left out"),
                    }
                ));
            }
            match pushed.invalid {
                0 => ExitStatus::Ok,
                _ => ExitStatus::Failed,
            }
        }
        Err(error) => queue_failed(error),
    }
}

fn push_dataset(arguments: &PushArgs, table: &std::path::Path) -> ExitStatus {
    if !arguments.urls.is_empty() || !arguments.inputs.is_empty() {
        return usage_error("--dataset pushes the shards of a table: give no URLs and no -i");
    }
    let columns = match arguments.table.columns() {
        Ok(columns) => columns,
        Err(message) => return usage_error(&message),
    };
    let spec = TableSpec {
        table: table.to_path_buf(),
        format: arguments.table.input_format,
        columns,
        samples_per_shard: arguments.table.samples_per_shard,
    };
    let console = Console::new(Verbosity::Normal);
    let result = Link::open(&arguments.address.redis).and_then(|mut link| {
        let keys = Keys::new(&arguments.address.queue);
        queue::dataset::push(&mut link, &keys, &spec, arguments.batch as usize)
    });
    match result {
        Ok(pushed) if arguments.json => {
            println!(
                "{}",
                serde_json::to_string(&pushed).expect("counts serialise")
            );
            ExitStatus::Ok
        }
        Ok(pushed) => {
            console.summary(&format!(
                "queue {}: {} new job(s) of {} shard(s) ({} rows of {})",
                arguments.address.queue,
                pushed.pushed.new,
                pushed.pushed.read,
                pushed.rows,
                table.display()
            ));
            ExitStatus::Ok
        }
        Err(error) => queue_failed(error),
    }
}

/// The worker's closing line, and its exit status: failed jobs are the
/// queue's to retry or bury, so a worker that did its part ends well; one
/// the run stopped (a full disk, told when it happened) did not.
fn worked_status(
    console: &Console,
    queue: &str,
    worked: &Worked,
    interrupted: bool,
    halted: bool,
) -> ExitStatus {
    let handed_back = match worked.handed_back {
        0 => String::new(),
        count => format!(", {count} never started and handed back"),
    };
    console.summary(&format!(
        "queue {queue} worker {}: {} acknowledged ({} found already committed), {} failed attempt(s) left pending, {} dead-lettered, {} taken over{handed_back}",
        worked.consumer,
        worked.acknowledged,
        worked.recovered,
        worked.failed,
        worked.dead,
        worked.reclaimed
    ));
    match &worked.error {
        Some(error) => {
            console.error(&format!("stopped: {error}"));
            ExitStatus::Failed
        }
        None if halted => ExitStatus::Failed,
        None if interrupted => ExitStatus::Interrupted,
        None => ExitStatus::Ok,
    }
}

fn work_dataset(arguments: &DatasetWorkArgs, program: WorkerProgram) -> ExitStatus {
    let terminal = std::io::stderr().is_terminal();
    let mut dataset = match arguments.build.config(program, terminal) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let console = dataset.console.clone();
    dataset.interrupt = super::interrupt_on_signals();
    let interrupt = dataset.interrupt.clone();
    let config = DatasetWorkConfig {
        dataset,
        worker: arguments.worker.config(1),
    };
    match queue::dataset::run(&config, &console) {
        Ok((worked, last)) => {
            if let Some(run) = &last {
                super::dataset::print_stats(run, arguments.build.json, &console);
            }
            let interrupted = interrupt.as_ref().is_some_and(|stop| stop.requested());
            let halted = interrupt
                .as_ref()
                .is_some_and(|stop| stop.halted().is_some());
            worked_status(&console, &config.worker.queue, &worked, interrupted, halted)
        }
        Err(error) => queue_failed(error),
    }
}

fn work(arguments: &WorkArgs, program: WorkerProgram) -> ExitStatus {
    let get = &arguments.get;
    if !get.urls.is_empty() || !get.inputs.is_empty() {
        return usage_error(
            "grab queue work takes its URLs from the queue: push them with grab queue push",
        );
    }
    if get.shard.is_some() || !get.filters.is_empty() {
        return usage_error("--shard and --filter do not apply to queue workers");
    }
    if get.force_directories || get.spread.is_some() {
        // The names are decided when the jobs are pushed, and a worker finds
        // an earlier delivery's file by that name alone.
        return usage_error("-x and --spread do not apply to queue workers yet");
    }
    let console = Console::new(if get.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    });
    let terminal = std::io::stderr().is_terminal();
    let mut config = match get.config(console.clone(), program, terminal) {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    config.interrupt = super::interrupt_on_signals();
    let batch = arguments
        .batch
        .map_or(config.jobs * 2, |batch| batch as usize);
    let work = WorkConfig {
        get: config,
        worker: arguments.worker.config(batch),
    };
    match work::run(&work, &console) {
        Ok((summary, worked)) => {
            super::get::print_summary(&summary, get.json, &console);
            worked_status(
                &console,
                &work.worker.queue,
                &worked,
                summary.interrupted,
                summary.stopped.is_some(),
            )
        }
        Err(error) => queue_failed(error),
    }
}

fn status(arguments: &StatusArgs) -> ExitStatus {
    let keys = Keys::new(&arguments.address.queue);
    let status = match Link::open(&arguments.address.redis)
        .and_then(|mut link| queue::status(&mut link, &keys))
    {
        Ok(status) => status,
        Err(error) => return queue_failed(error),
    };
    if arguments.json {
        println!(
            "{}",
            serde_json::to_string(&status).expect("status serialises")
        );
        return ExitStatus::Ok;
    }
    println!(
        "queue {}: {} total, {} waiting, {} pending, {} done, {} failed (pending again), {} dead",
        status.queue,
        status.total,
        status.waiting,
        status.pending,
        status.done,
        status.failed,
        status.dead
    );
    for consumer in &status.consumers {
        println!(
            "  {}: {} pending, idle {:.1} s",
            consumer.name, consumer.pending, consumer.idle_seconds
        );
    }
    ExitStatus::Ok
}
