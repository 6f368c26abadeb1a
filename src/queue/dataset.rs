//! Dataset runs under the queue. `grab queue push --dataset TABLE` reads the
//! table once to count its rows and pushes one job per output shard; `grab
//! queue dataset` workers each take one shard job at a time and build it as
//! `grab dataset --shard` would: keys and shard numbers are the whole
//! table's, and every worker reads the table itself (so its path must be
//! readable by all of them, like the shared output folder, or in a bucket),
//! up to the end of its shard. With a bucket prefix for output, workers on
//! machines that share no folder find complete shards by their stats objects.
//!
//! A job is acknowledged only once its shard is renamed complete and its
//! stats written; a job whose shard is already complete (its worker died
//! before the acknowledgement, or a run built it earlier) is acknowledged
//! without work. Workers share the output folder: its lock is taken shared,
//! each worker downloads into a folder of its own, and shards are written by
//! number, so they never collide; a taken-over shard reuses the samples its
//! first worker spooled (the whole records of the shard's spool log; a
//! worker still running on it keeps its log locked, and the next appends to
//! a log of its own beside it).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use redis::streams::StreamId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::link::Link;
use super::work::{Delivery, Fleet, Report, Worked, WorkerConfig};
use super::{DATASET_KIND, Keys, Pushed, create_group, set_kind};
use crate::Named;
use crate::console::Console;
use crate::dataset::input::{Columns, InputFormat};
use crate::dataset::shard::shard_name;
use crate::dataset::{self, DatasetConfig, RunStats, Shards};
use crate::fs::manifest::hex;

/// One output shard of a table: what a worker needs to build it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardJob {
    /// The table, as an absolute path or a bucket URL.
    pub table: PathBuf,
    /// Its format's name (`csv`, `parquet`...); empty: each file's own, from
    /// its name.
    pub format: String,
    /// Flattened: the job's JSON (and so its key) is as when the columns
    /// were fields of their own.
    #[serde(flatten)]
    pub columns: Columns,
    pub samples_per_shard: u64,
    pub shard: u64,
}

/// How a table is pushed: its path, format, columns and shard size.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub table: PathBuf,
    /// `None`: each file's format from its name.
    pub format: Option<InputFormat>,
    pub columns: Columns,
    pub samples_per_shard: u64,
}

/// Adds each shard job not pushed before, in one atomic step per batch.
/// KEYS: jobs, urls. ARGV: (job key, shard name, job JSON) for each shard.
const PUSH_SCRIPT: &str = r#"
local added = 0
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'dataset', ARGV[i + 2], 'name', ARGV[i + 1])
    added = added + 1
  end
end
return added
"#;

/// What `grab queue push --dataset` did: shards read and new, and the
/// table's rows.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PushedShards {
    #[serde(flatten)]
    pub pushed: Pushed,
    pub rows: u64,
}

/// Reads the table to its end (as a stream) to count its rows, then pushes
/// one job per output shard, `batch` to a round trip. An unreadable table
/// pushes nothing.
pub fn push(
    link: &mut Link,
    keys: &Keys,
    spec: &TableSpec,
    batch: usize,
) -> anyhow::Result<PushedShards> {
    // A bucket's table (s3://...) is the same for every worker as it is.
    let table = match spec.table.to_str().and_then(crate::fs::store::scheme) {
        Some(_) => spec.table.clone(),
        None => std::path::absolute(&spec.table)
            .map_err(|error| anyhow::anyhow!("{}: {error}", spec.table.display()))?,
    };
    let (mut rows, mut end) = (0u64, 0u64);
    let table_rows =
        dataset::tables::open(&table, spec.format, &spec.columns, spec.samples_per_shard)?;
    for row in table_rows.rows {
        // Each file of a folder starts a shard: the last number says how
        // many shards there are, not the count of rows.
        end = row?.number + 1;
        rows += 1;
    }
    set_kind(link, keys, DATASET_KIND)?;
    create_group(link, keys)?;
    let script = redis::Script::new(PUSH_SCRIPT);
    let shards = end.div_ceil(spec.samples_per_shard);
    let mut pushed = PushedShards {
        rows,
        ..PushedShards::default()
    };
    let numbers: Vec<u64> = (0..shards).collect();
    for chunk in numbers.chunks(batch.max(1)) {
        let mut arguments = Vec::with_capacity(chunk.len() * 3);
        for &shard in chunk {
            let job = ShardJob {
                table: table.clone(),
                format: spec.format.map_or("", |format| format.name()).to_string(),
                columns: spec.columns.clone(),
                samples_per_shard: spec.samples_per_shard,
                shard,
            };
            let text = serde_json::to_string(&job).expect("a job serialises");
            arguments.push(hex(&Sha256::digest(text.as_bytes())[..16]));
            arguments.push(shard_name(shard));
            arguments.push(text);
        }
        let added: u64 = link.run("pushing shard jobs", |connection| {
            let mut invocation = script.prepare_invoke();
            invocation.key(&keys.jobs).key(&keys.urls);
            for argument in &arguments {
                invocation.arg(argument);
            }
            invocation.invoke(connection)
        })?;
        pushed.pushed.read += chunk.len() as u64;
        pushed.pushed.new += added;
    }
    Ok(pushed)
}

/// What a dataset worker does with the flags of `grab dataset` (but the
/// table's, which come with each job).
#[derive(Debug, Clone)]
pub struct DatasetWorkConfig {
    pub dataset: DatasetConfig,
    pub worker: WorkerConfig,
}

/// Runs one dataset worker until the queue is drained (or, with `follow`,
/// until Ctrl-C): shard jobs one at a time. Also returns the stats of the
/// whole run: what its shard runs did, summed, over the output folder's
/// totals after its last shard.
pub fn run(
    config: &DatasetWorkConfig,
    console: &Console,
) -> anyhow::Result<(Worked, Option<RunStats>)> {
    let mut worker = config.worker.clone();
    // A shard is long work: reading more would keep jobs from idle workers.
    worker.batch = 1;
    let (fleet, mut reader) = Fleet::join(&worker, DATASET_KIND, console)?;
    let interrupt = config.dataset.interrupt.clone().unwrap_or_default();
    let mut dataset = config.dataset.clone();
    dataset.interrupt = Some(interrupt.clone());
    dataset.shared_folder = true;
    let mut last = None;
    let fail = |error: anyhow::Error| {
        crate::lock(&fleet.failure).get_or_insert(format!("{error:#}"));
    };
    let started = std::time::Instant::now();
    while !interrupt.stopping() && crate::lock(&fleet.failure).is_none() {
        let deliveries = match reader.read() {
            Ok(deliveries) => deliveries,
            Err(error) => {
                fail(error);
                break;
            }
        };
        if deliveries.is_empty() {
            match reader.drained(&fleet.held) {
                Ok(true) if !worker.follow => break,
                Ok(_) => continue,
                Err(error) => {
                    fail(error);
                    break;
                }
            }
        }
        for (entry, count) in deliveries {
            if let Some(report) = build(&fleet, &dataset, &worker, entry, count, &mut last) {
                let _ = fleet.reports.send(report);
            }
        }
    }
    if let Some(whole) = &mut last {
        whole.elapsed_seconds = started.elapsed().as_secs_f64();
        whole.samples_per_second = match whole.elapsed_seconds {
            0.0 => 0.0,
            seconds => whole.samples_fetched as f64 / seconds,
        };
    }
    Ok((fleet.finish(), last))
}

/// Adds a shard run to the worker's whole run: its own counts summed, the
/// folder's totals (which every shard run reads afresh) from the latest.
fn add_run(whole: &mut Option<RunStats>, run: RunStats) {
    let Some(sum) = whole else {
        *whole = Some(run);
        return;
    };
    sum.stats = run.stats;
    sum.shards = run.shards;
    sum.shards_written += run.shards_written;
    sum.shards_reused += run.shards_reused;
    sum.samples_reused += run.samples_reused;
    sum.samples_fetched += run.samples_fetched;
    sum.errors.extend(run.errors);
    sum.interrupted |= run.interrupted;
}

/// One delivered shard job: buried, found complete, built, or (interrupted)
/// left pending. The report for the acknowledging thread, if any.
fn build(
    fleet: &Fleet,
    config: &DatasetConfig,
    worker: &WorkerConfig,
    entry: StreamId,
    deliveries: u64,
    last: &mut Option<RunStats>,
) -> Option<Report> {
    let name: String = entry.get("name").unwrap_or_default();
    let text: String = entry.get("dataset").unwrap_or_default();
    let dead = |label: String, error: String| Report::Dead {
        id: entry.id.clone(),
        url: label,
        name: name.clone(),
        error,
        deliveries,
    };
    let job: ShardJob = match serde_json::from_str(&text) {
        Ok(job) => job,
        Err(error) => {
            return Some(dead(text.clone(), format!("not a dataset job: {error}")));
        }
    };
    // The job's name in the results and dead-letter streams.
    let label = format!("{}#{}", job.table.display(), shard_name(job.shard));
    if deliveries > worker.max_deliveries {
        // The last error is the one the script finds in `errors`.
        return Some(dead(label, String::new()));
    }
    let delivery = Delivery {
        id: entry.id.clone(),
        deliveries,
    };
    crate::lock(&fleet.held).insert(label.clone(), delivery.clone());
    let release = || crate::lock(&fleet.held).remove(&label);
    let mut shard_config = config.clone();
    shard_config.samples_per_shard = job.samples_per_shard;
    shard_config.columns = job.columns.clone();
    shard_config.shards = Shards::One(job.shard);
    let layout = shard_config.layout();
    // In the results stream, a shard's size is its samples saved.
    let done = || {
        let successes = layout
            .read_stats(job.shard)
            .map_or(0, |stats| stats.successes);
        super::work::done(
            delivery.clone(),
            &label,
            &layout.keys.shard_name(job.shard),
            successes,
            "",
        )
    };
    if layout.is_complete(job.shard) {
        release();
        fleet.counters.recovered.fetch_add(1, Ordering::Relaxed);
        if let Some(whole) = last {
            whole.shards_reused += 1;
        }
        return Some(done());
    }
    let failed = |error: String| Report::Failed {
        id: entry.id.clone(),
        url: label.clone(),
        error,
        deliveries,
    };
    let format = match InputFormat::from_name(&job.format) {
        Some(format) => Some(format),
        None if job.format.is_empty() => None,
        None => {
            release();
            return Some(dead(
                label.clone(),
                format!("no table format {:?}", job.format),
            ));
        }
    };
    let outcome = dataset::open(&job.table, format, &shard_config)
        .map_err(|error| format!("{error}"))
        .and_then(|rows| dataset::run(&shard_config, rows).map_err(|error| format!("{error:#}")));
    release();
    match outcome {
        Ok(run)
            if run.interrupted
                || config
                    .interrupt
                    .as_ref()
                    .is_some_and(|stop| stop.halted().is_some()) =>
        {
            // Stopped by Ctrl-C or a full disk, not by the shard: handed
            // back, its spooled samples wait for whoever takes it next.
            add_run(last, run);
            Some(Report::unstarted(
                delivery.clone(),
                &[("dataset", text.as_str()), ("name", name.as_str())],
            ))
        }
        Ok(run) => {
            let complete = layout.is_complete(job.shard);
            let errors = run.errors.join("; ");
            add_run(last, run);
            match complete {
                true => Some(done()),
                false if errors.is_empty() => Some(failed(format!(
                    "shard {} of {} has no rows",
                    shard_name(job.shard),
                    job.table.display()
                ))),
                false => Some(failed(errors)),
            }
        }
        Err(error) => Some(failed(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's key is the digest of its JSON, so pushing a table again must
    /// write the same bytes as every earlier version did.
    #[test]
    fn a_shard_job_keeps_its_json_to_the_byte() {
        let job = ShardJob {
            table: PathBuf::from("/data/t.csv"),
            format: "csv".to_string(),
            columns: Columns {
                url: "link".to_string(),
                caption: Some("text".to_string()),
                save: vec!["id".to_string(), "width".to_string()],
            },
            samples_per_shard: 10,
            shard: 3,
        };
        let text = concat!(
            r#"{"table":"/data/t.csv","format":"csv","url_col":"link","caption_col":"text","#,
            r#""save_cols":["id","width"],"samples_per_shard":10,"shard":3}"#
        );
        assert_eq!(serde_json::to_string(&job).unwrap(), text);
        assert_eq!(serde_json::from_str::<ShardJob>(text).unwrap(), job);
        let no_caption = r#"{"table":"t","format":"","url_col":"url","caption_col":null,"save_cols":[],"samples_per_shard":1,"shard":0}"#;
        let read: ShardJob = serde_json::from_str(no_caption).unwrap();
        assert_eq!(read.columns, Columns::default());
        assert_eq!(serde_json::to_string(&read).unwrap(), no_caption);
    }
}
