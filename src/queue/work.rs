//! `grab queue work`: one worker of the fleet. Jobs come from the consumer
//! group in batches (`XREADGROUP`), jobs that another worker left pending
//! longer than `--claim-idle` are taken over (`XAUTOCLAIM`), and both go
//! through the same run as `grab get`. A job is acknowledged only from the
//! run's outcome hook, which fires once the file is committed and in the
//! manifest; a failed job stays pending, with its error, for another
//! delivery, and one delivered more than `--max-deliveries` times goes to the
//! dead-letter stream instead. A worker keeps the jobs it holds fresh
//! (`XCLAIM ... JUSTID` every third of `--claim-idle`), so only the jobs of a
//! worker that died or lost Redis are taken over.
//!
//! A job taken over may have been committed already (its worker died between
//! the rename and the acknowledgement): its name is the queue's, so a file at
//! that name is that job's, and it is recorded and acknowledged without a
//! second download. A part file at that name is the dead worker's and is
//! removed.
//!
//! A worker that stops (Ctrl-C, a full disk) hands back the jobs it read and
//! never started: each is acknowledged and added again at the end of the
//! stream in one step, with its earlier deliveries in the field `earlier`, so
//! the next worker's read takes it at once (no `--claim-idle` to wait out,
//! as for a worker that died) and `--max-deliveries` still counts every real
//! attempt. A worker that leaves holding nothing removes its consumer from the
//! group, as workers do for those that died once their jobs are taken over;
//! one with nothing to do but the jobs others hold says whose, and when they
//! will be taken over.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use serde::Serialize;
use url::Url;

use super::link::Link;
use super::{GROUP, Keys, create_group, group, group_consumers};
use crate::console::Console;
use crate::engine::Interrupt;
use crate::fs::manifest::{self, Entry, Manifest};
use crate::fs::names::PART_SUFFIX;
use crate::get::input::{InvalidLine, Job, Origin};
use crate::get::plan::Planned;
use crate::get::{self, GetConfig, OutcomeHook, Source};
use crate::http::{Outcome, Saved, Verdict};

/// What a worker needs besides the download settings.
#[derive(Debug, Clone)]
pub struct WorkConfig {
    pub get: GetConfig,
    pub worker: WorkerConfig,
}

/// A worker's place in the fleet, whatever its jobs are (URLs or dataset
/// shards).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `redis://HOST:PORT/DB`.
    pub address: String,
    pub queue: String,
    /// This worker's consumer name, unique in the fleet.
    pub consumer: String,
    /// Jobs read per round trip.
    pub batch: usize,
    /// A job pending this long with its worker silent is taken over.
    pub claim_idle: Duration,
    /// Deliveries after which a job goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Wait for more jobs when the queue is drained.
    pub follow: bool,
    /// How long Redis may be away before the worker gives up.
    pub patience: Duration,
}

/// A consumer name no other worker has: host, pid, and random bits (a pid
/// is reused, a host name may be shared by containers).
pub fn consumer_name() -> String {
    // Linux's /proc, else Windows' variable; the random bits keep it unique
    // where neither says.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_string());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// What a worker did, beside the download summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Worked {
    pub consumer: String,
    pub acknowledged: u64,
    /// Failed attempts, left pending for another delivery.
    pub failed: u64,
    /// Moved to the dead-letter stream by this worker.
    pub dead: u64,
    /// Taken over from other workers (or from this one, after a failure).
    pub reclaimed: u64,
    /// Found committed by an earlier delivery, acknowledged without a download.
    pub recovered: u64,
    /// Read but never started when the worker stopped: given back to the queue.
    pub handed_back: u64,
    /// Why the worker stopped early, if it did (Redis lost for good).
    pub error: Option<String>,
}

#[derive(Default)]
pub(super) struct Counters {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
    reclaimed: AtomicU64,
    pub recovered: AtomicU64,
    handed_back: AtomicU64,
}

/// A job this worker holds: its stream entry and how often it was delivered.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub id: String,
    pub deliveries: u64,
}

/// Jobs held, by URL (a URL is in the queue once).
pub(super) type Held = Arc<Mutex<HashMap<String, Delivery>>>;

/// An outcome for the acknowledging thread.
pub(super) enum Report {
    /// Committed (or already there): acknowledge.
    Done {
        id: String,
        url: String,
        name: String,
        size: u64,
        sha256: String,
        deliveries: u64,
    },
    /// Failed: keep pending, remember the error.
    Failed {
        id: String,
        url: String,
        error: String,
        deliveries: u64,
    },
    /// Delivered too often (or not a URL): to the dead-letter stream.
    Dead {
        id: String,
        url: String,
        name: String,
        error: String,
        deliveries: u64,
    },
    /// Never started: back to the queue for any worker, as a new entry with
    /// the job's `fields` and its earlier deliveries.
    Unstarted {
        id: String,
        fields: Vec<(String, String)>,
        deliveries: u64,
    },
}

impl Report {
    /// A job this worker holds (`delivery`) handed back, with its fields.
    pub(super) fn unstarted(delivery: Delivery, fields: &[(&str, &str)]) -> Report {
        Report::Unstarted {
            id: delivery.id,
            fields: fields
                .iter()
                .map(|(field, value)| (field.to_string(), value.to_string()))
                .collect(),
            deliveries: delivery.deliveries,
        }
    }
}

/// Hands a job back: acknowledged and added again as a new entry, its last
/// error kept under the new id; nothing if it is no longer pending (so a
/// repeat after a lost reply adds nothing).
/// KEYS: jobs, errors. ARGV: id, earlier deliveries, then field, value pairs.
const HAND_BACK_SCRIPT: &str = r#"
local id = ARGV[1]
if redis.call('XACK', KEYS[1], 'workers', id) == 0 then return 0 end
local entry = {}
for i = 3, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'earlier'
entry[#entry + 1] = ARGV[2]
local new = redis.call('XADD', KEYS[1], '*', unpack(entry))
local last = redis.call('HGET', KEYS[2], id)
if last then
  redis.call('HDEL', KEYS[2], id)
  redis.call('HSET', KEYS[2], new, last)
end
return 1
"#;

/// Removes a consumer from the group if it holds no job (a removed consumer's
/// pending jobs could never be taken over). KEYS: jobs. ARGV: consumer.
const LEAVE_SCRIPT: &str = r#"
local held = redis.call('XPENDING', KEYS[1], 'workers', '-', '+', 1, ARGV[1])
if #held > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', ARGV[1])
"#;

/// How often a job was delivered: its deliveries in this entry, and those of
/// the entries it was handed back from.
fn delivered(entry: &StreamId, times: u64) -> u64 {
    times + entry.get::<u64>("earlier").unwrap_or(0)
}

/// Acknowledges, records a failure or buries a job, with its results entry;
/// run again after a lost reply it changes nothing (XACK answers 0 for a job
/// no longer pending), so no job is acknowledged twice.
/// KEYS: jobs, results, errors, done, dead.
/// ARGV: kind, id, url, worker, name, size, sha256, error, deliveries.
const REPORT_SCRIPT: &str = r#"
local kind, id = ARGV[1], ARGV[2]
local function result(status, error)
  redis.call('XADD', KEYS[2], '*', 'url', ARGV[3], 'worker', ARGV[4], 'status', status,
    'name', ARGV[5], 'size', ARGV[6], 'sha256', ARGV[7], 'error', error,
    'deliveries', ARGV[9])
end
if kind == 'failed' then
  local pending = redis.call('XPENDING', KEYS[1], 'workers', id, id, 1)
  if #pending == 0 then return 0 end
  redis.call('HSET', KEYS[3], id, ARGV[8])
  result('failed', ARGV[8])
  return 1
end
local last = redis.call('HGET', KEYS[3], id)
if redis.call('XACK', KEYS[1], 'workers', id) == 0 then return 0 end
redis.call('HDEL', KEYS[3], id)
if kind == 'dead' then
  local error = ARGV[8]
  if error == '' then error = last or '' end
  redis.call('XADD', KEYS[5], '*', 'url', ARGV[3], 'name', ARGV[5], 'error', error,
    'deliveries', ARGV[9], 'id', id)
  result('dead', error)
else
  redis.call('INCR', KEYS[4])
  result(kind, '')
end
return 1
"#;

/// A worker's link to the fleet: the thread that reports outcomes and keeps
/// held jobs fresh, and what it shares with the side that reads and works.
pub(super) struct Fleet {
    pub held: Held,
    pub counters: Arc<Counters>,
    /// Why the worker stopped early (Redis lost for good).
    pub failure: Arc<Mutex<Option<String>>>,
    pub reports: mpsc::Sender<Report>,
    acknowledger: thread::JoinHandle<()>,
    consumer: String,
}

impl Fleet {
    /// Connects (twice: one link reads, the other acknowledges), checks
    /// that the queue holds jobs of `kind`, joins the consumer group and
    /// starts the acknowledging thread.
    pub fn join(
        config: &WorkerConfig,
        kind: &str,
        console: &Console,
    ) -> anyhow::Result<(Fleet, Reader)> {
        let keys = Keys::new(&config.queue);
        let mut link = Link::open(&config.address)?;
        link.patience = config.patience;
        {
            let console = console.clone();
            link.on_retry(move |message| console.notice(message));
        }
        match super::check_exists(&mut link, &keys) {
            // With --follow a worker may come before the first push.
            Err(error) if config.follow && error.is::<super::NoSuchQueue>() => {
                console.notice(&format!(
                    "queue {} has no jobs yet: waiting for grab queue push --queue {}",
                    keys.queue, keys.queue
                ));
            }
            other => other?,
        }
        check_kind(&mut link, &keys, kind)?;
        create_group(&mut link, &keys)?;
        let acknowledging = Link::open(&config.address).map(|mut link| {
            link.patience = config.patience;
            link
        })?;
        let held: Held = Arc::default();
        let counters = Arc::new(Counters::default());
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let (reports, received) = mpsc::channel::<Report>();
        let acknowledger = {
            let (keys, held, counters, failure) = (
                keys.clone(),
                held.clone(),
                counters.clone(),
                failure.clone(),
            );
            let (consumer, claim_idle) = (config.consumer.clone(), config.claim_idle);
            thread::Builder::new()
                .name("acknowledge".to_string())
                .spawn(move || {
                    let mut acknowledger = Acknowledger {
                        link: acknowledging,
                        keys,
                        consumer,
                        script: redis::Script::new(REPORT_SCRIPT),
                        hand_back: redis::Script::new(HAND_BACK_SCRIPT),
                        held,
                        counters,
                    };
                    match acknowledger.serve(&received, claim_idle) {
                        Ok(()) => acknowledger.leave(),
                        Err(error) => {
                            crate::lock(&failure).get_or_insert(format!("{error:#}"));
                        }
                    }
                })?
        };
        let mut reader = Reader {
            link,
            keys,
            consumer: config.consumer.clone(),
            batch: config.batch.max(1),
            claim_idle: config.claim_idle,
            cursor: "0-0".to_string(),
            last_reclaim: None,
            counters: counters.clone(),
            console: console.clone(),
            waiting_shown: None,
        };
        reader.prune()?;
        let fleet = Fleet {
            held,
            counters,
            failure,
            reports,
            acknowledger,
            consumer: config.consumer.clone(),
        };
        Ok((fleet, reader))
    }

    /// Waits for the last reports to be sent (every other sender must be
    /// dropped by now) and says what the worker did.
    pub fn finish(self) -> Worked {
        drop(self.reports);
        let _ = self.acknowledger.join();
        let counter = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Worked {
            consumer: self.consumer,
            acknowledged: counter(&self.counters.acknowledged),
            failed: counter(&self.counters.failed),
            dead: counter(&self.counters.dead),
            reclaimed: counter(&self.counters.reclaimed),
            recovered: counter(&self.counters.recovered),
            handed_back: counter(&self.counters.handed_back),
            error: crate::lock(&self.failure).clone(),
        }
    }
}

/// Refuses a queue that holds the other kind of job (URLs or dataset
/// shards): a worker of one kind would only bury the other's jobs.
pub(super) fn check_kind(link: &mut Link, keys: &Keys, kind: &str) -> anyhow::Result<()> {
    let found: Option<String> = link.run("reading the queue's kind", |connection| {
        redis::cmd("GET").arg(&keys.kind).query(connection)
    })?;
    match found {
        Some(found) if found != kind => anyhow::bail!(
            "queue {} holds {found} jobs, not {kind} jobs: {}",
            keys.queue,
            match found.as_str() {
                super::DATASET_KIND => "work on it with grab queue dataset",
                _ => "work on it with grab queue work",
            }
        ),
        _ => Ok(()),
    }
}

/// Runs one worker until the queue is drained (or, with `follow`, until
/// Ctrl-C). Errors when Redis cannot be reached or the run cannot start.
pub fn run(
    config: &WorkConfig,
    console: &Console,
) -> anyhow::Result<(get::report::Summary, Worked)> {
    let (fleet, reader) = Fleet::join(&config.worker, super::URLS_KIND, console)?;
    let interrupt = config.get.interrupt.clone().unwrap_or_default();
    let mut get_config = config.get.clone();
    get_config.interrupt = Some(interrupt.clone());
    get_config.shared_folder = true;
    let directory = config.get.settings.output_dir.clone();
    crate::fs::create_folder(&directory, "output folder")?;
    let source = QueueSource {
        reader,
        max_deliveries: config.worker.max_deliveries,
        follow: config.worker.follow,
        interrupt,
        manifest: Manifest::open(&directory)?,
        directory,
        buffer: VecDeque::new(),
        held: fleet.held.clone(),
        reports: fleet.reports.clone(),
        counters: fleet.counters.clone(),
        failure: fleet.failure.clone(),
        read: 0,
    };
    let hook: OutcomeHook = {
        let (held, reports) = (fleet.held.clone(), Mutex::new(fleet.reports.clone()));
        Arc::new(move |outcome: &Outcome| {
            let url = outcome.job.url.as_str();
            let Some(delivery) = crate::lock(&held).remove(url) else {
                return;
            };
            let report = match &outcome.verdict {
                Verdict::Saved(saved) => {
                    done(delivery, url, &saved.name, saved.bytes, &saved.sha256)
                }
                Verdict::Skipped(complete) => done(
                    delivery,
                    url,
                    &complete.name,
                    complete.bytes,
                    &complete.sha256,
                ),
                Verdict::Failed(error) => Report::Failed {
                    id: delivery.id,
                    url: url.to_string(),
                    error: error.to_string(),
                    deliveries: delivery.deliveries,
                },
            };
            let _ = crate::lock(&reports).send(report);
        })
    };
    let summary = get::run_from(&get_config, source, None, Some(hook));
    // The hook and the source held the other senders: the acknowledger
    // drains what is left and ends.
    let worked = fleet.finish();
    Ok((summary?, worked))
}

pub(super) fn done(delivery: Delivery, url: &str, name: &str, size: u64, sha256: &str) -> Report {
    Report::Done {
        id: delivery.id,
        url: url.to_string(),
        name: name.to_string(),
        size,
        sha256: sha256.to_string(),
        deliveries: delivery.deliveries,
    }
}

/// The jobs of the queue as the run's input.
struct QueueSource {
    reader: Reader,
    max_deliveries: u64,
    follow: bool,
    interrupt: Interrupt,
    directory: PathBuf,
    manifest: Manifest,
    /// Jobs read and not yet handed to the run.
    buffer: VecDeque<Planned>,
    held: Held,
    reports: mpsc::Sender<Report>,
    counters: Arc<Counters>,
    failure: Arc<Mutex<Option<String>>>,
    /// Jobs handed out, for their origin.
    read: usize,
}

/// Reads deliveries: jobs other workers left pending too long, then new ones.
pub(super) struct Reader {
    link: Link,
    pub keys: Keys,
    consumer: String,
    batch: usize,
    claim_idle: Duration,
    /// Where XAUTOCLAIM goes on scanning the pending list.
    cursor: String,
    last_reclaim: Option<Instant>,
    counters: Arc<Counters>,
    console: Console,
    /// The holders last named by [`Reader::tell_waiting`].
    waiting_shown: Option<String>,
}

/// How long one XREADGROUP waits for new jobs.
const BLOCK: Duration = Duration::from_millis(500);

impl Source for QueueSource {
    fn next_item(&mut self) -> Option<Result<Planned, InvalidLine>> {
        loop {
            if self.interrupt.stopping() {
                // What it read goes back when it is dropped.
                return None;
            }
            if let Some(planned) = self.buffer.pop_front() {
                return Some(Ok(planned));
            }
            let result = self.fill().and_then(|found| match found {
                true => Ok(false),
                false => self.drained(),
            });
            match result {
                Ok(true) if !self.follow => return None,
                Ok(_) => {}
                Err(error) => {
                    crate::lock(&self.failure).get_or_insert(format!("{error:#}"));
                    return None;
                }
            }
        }
    }

    fn on_unstarted(&self) -> Option<get::UnstartedHook> {
        Some(self.hand_back())
    }
}

/// Jobs read and never handed to the run (the run stopped, or its reader
/// stopped waiting for room in a full queue) go back to the queue for other
/// workers.
impl Drop for QueueSource {
    fn drop(&mut self) {
        let hand_back = self.hand_back();
        for planned in std::mem::take(&mut self.buffer) {
            match planned {
                Planned::Download(job) => hand_back(job),
                Planned::Skip(outcome) => hand_back(outcome.job),
            }
        }
    }
}

impl QueueSource {
    /// Gives a job this worker holds back to the queue.
    fn hand_back(&self) -> get::UnstartedHook {
        let (held, reports) = (self.held.clone(), Mutex::new(self.reports.clone()));
        Arc::new(move |job: Job| {
            let url = job.url.as_str();
            let Some(delivery) = crate::lock(&held).remove(url) else {
                return;
            };
            let name = job.name.as_deref().unwrap_or_default();
            let report = Report::unstarted(delivery, &[("url", url), ("name", name)]);
            let _ = crate::lock(&reports).send(report);
        })
    }

    /// Reads jobs into the buffer. False when there were none.
    fn fill(&mut self) -> anyhow::Result<bool> {
        let deliveries = self.reader.read()?;
        let found = !deliveries.is_empty();
        for (entry, count) in deliveries {
            self.take(entry, count);
        }
        Ok(found)
    }

    fn drained(&mut self) -> anyhow::Result<bool> {
        self.reader.drained(&self.held)
    }

    /// One delivered job: buried, found done, or buffered for the run.
    fn take(&mut self, entry: StreamId, deliveries: u64) {
        let url: String = entry.get("url").unwrap_or_default();
        let name: String = entry.get("name").unwrap_or_default();
        let dead = |error: String| Report::Dead {
            id: entry.id.clone(),
            url: url.clone(),
            name: name.clone(),
            error,
            deliveries,
        };
        let parsed = match Url::parse(&url) {
            Ok(parsed) if !name.is_empty() => parsed,
            _ => {
                let _ = self
                    .reports
                    .send(dead(format!("not a job: url {url:?}, name {name:?}")));
                return;
            }
        };
        if deliveries > self.max_deliveries {
            // The last error is the one the script finds in `errors`.
            let _ = self.reports.send(dead(String::new()));
            return;
        }
        self.read += 1;
        let job = Job {
            url: parsed,
            name: Some(name.clone()),
            origin: Origin {
                source: format!("queue {}", self.reader.keys.queue),
                line: self.read,
            },
            plan: None,
            rank: None,
            queued_at: Duration::ZERO,
            checksum: None,
            mirrors: Vec::new(),
        };
        let delivery = Delivery {
            id: entry.id.clone(),
            deliveries,
        };
        {
            let mut held = crate::lock(&self.held);
            if held.contains_key(&url) {
                // Still this worker's, taken back before its refresh came
                // round: it is already on its way.
                return;
            }
            held.insert(url.clone(), delivery);
        }
        if deliveries > 1 {
            if let Some(outcome) = self.committed_before(&job, &name) {
                self.counters.recovered.fetch_add(1, Ordering::Relaxed);
                self.buffer.push_back(Planned::Skip(outcome));
                return;
            }
            // The part of a worker that stopped answering: it is not coming back
            // for it (a live worker keeps its jobs fresh).
            let _ = std::fs::remove_file(self.directory.join(format!("{name}{PART_SUFFIX}")));
        }
        self.buffer.push_back(Planned::Download(job));
    }

    /// The job's file, when an earlier delivery committed it: a file at the
    /// queue's name for this URL can only be this URL's.
    fn committed_before(&self, job: &Job, name: &str) -> Option<Outcome> {
        let path = self.directory.join(name);
        let metadata = path.symlink_metadata().ok()?;
        if !metadata.is_file() {
            return None;
        }
        let sha256 = manifest::sha256_of_file(&path).ok()?;
        let _ = self
            .manifest
            .append(&Entry::saved(&job.url, name, metadata.len(), &sha256));
        let saved = Saved::found(name.to_string(), metadata.len(), sha256);
        Some(Outcome::recovered(job.clone(), saved, 0))
    }
}

impl Reader {
    /// A batch of deliveries, each with how often it was delivered: those
    /// left pending too long first, then new ones. Empty when there were none.
    pub fn read(&mut self) -> anyhow::Result<Vec<(StreamId, u64)>> {
        let interval =
            (self.claim_idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        if self
            .last_reclaim
            .is_none_or(|last| last.elapsed() >= interval)
        {
            self.last_reclaim = Some(Instant::now());
            let reclaimed = self.reclaim()?;
            if !reclaimed.is_empty() {
                return Ok(reclaimed);
            }
        }
        let reply: Option<StreamReadReply> = self.link.run("reading jobs", |connection| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(self.batch)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.keys.jobs)
                .arg(">")
                .query(connection)
        })?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| {
                let deliveries = delivered(&entry, 1);
                (entry, deliveries)
            })
            .collect())
    }

    /// Takes over jobs pending longer than `--claim-idle`, with how often
    /// each was delivered.
    fn reclaim(&mut self) -> anyhow::Result<Vec<(StreamId, u64)>> {
        let reply: StreamAutoClaimReply = self.link.run("taking over idle jobs", |connection| {
            redis::cmd("XAUTOCLAIM")
                .arg(&self.keys.jobs)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(self.claim_idle.as_millis() as u64)
                .arg(&self.cursor)
                .arg("COUNT")
                .arg(self.batch)
                .query(connection)
        })?;
        self.cursor = reply.next_stream_id;
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        let counts: Vec<StreamPendingCountReply> =
            self.link.run("counting deliveries", |connection| {
                let mut pipe = redis::pipe();
                for entry in &reply.claimed {
                    pipe.cmd("XPENDING")
                        .arg(&self.keys.jobs)
                        .arg(GROUP)
                        .arg(&entry.id)
                        .arg(&entry.id)
                        .arg(1);
                }
                pipe.query(connection)
            })?;
        self.counters
            .reclaimed
            .fetch_add(reply.claimed.len() as u64, Ordering::Relaxed);
        // Their workers' consumers may now hold nothing.
        self.prune()?;
        Ok(reply
            .claimed
            .into_iter()
            .zip(counts)
            .map(|(entry, count)| {
                let times = count
                    .ids
                    .first()
                    .map_or(1, |pending| pending.times_delivered as u64);
                let deliveries = delivered(&entry, times);
                (entry, deliveries)
            })
            .collect())
    }

    /// Removes from the group the consumers of workers gone (silent for
    /// `--claim-idle`) that hold nothing, so `grab queue status` lists only
    /// workers that are there or hold jobs.
    fn prune(&mut self) -> anyhow::Result<()> {
        let idle = self.claim_idle.as_millis() as usize;
        let gone: Vec<String> = group_consumers(&mut self.link, &self.keys)?
            .into_iter()
            .filter(|consumer| {
                consumer.name != self.consumer && consumer.pending == 0 && consumer.idle >= idle
            })
            .map(|consumer| consumer.name)
            .collect();
        let script = redis::Script::new(LEAVE_SCRIPT);
        for name in gone {
            self.link.run("removing a worker gone", |connection| {
                script
                    .key(&self.keys.jobs)
                    .arg(&name)
                    .invoke::<u64>(connection)
            })?;
        }
        Ok(())
    }

    /// When this worker has nothing to do but others hold jobs: says whose
    /// and when they are taken over, once for each set of holders.
    fn tell_waiting(&mut self) -> anyhow::Result<()> {
        let mut holders: Vec<redis::streams::StreamInfoConsumer> =
            group_consumers(&mut self.link, &self.keys)?
                .into_iter()
                .filter(|consumer| consumer.name != self.consumer && consumer.pending > 0)
                .collect();
        holders.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = holders.iter().map(|holder| holder.name.as_str()).collect();
        let key = names.join(",");
        if holders.is_empty() || self.waiting_shown.as_deref() == Some(key.as_str()) {
            return Ok(());
        }
        let jobs: usize = holders.iter().map(|holder| holder.pending).sum();
        let silent = |holder: &redis::streams::StreamInfoConsumer| holder.idle as f64 / 1000.0;
        let shown: Vec<String> = match holders.as_slice() {
            [only] => vec![format!("{}, silent {:.1} s", only.name, silent(only))],
            several => several
                .iter()
                .take(3)
                .map(|holder| {
                    format!(
                        "{} ({}, silent {:.1} s)",
                        holder.name,
                        holder.pending,
                        silent(holder)
                    )
                })
                .collect(),
        };
        let more = match holders.len() {
            0..=3 => String::new(),
            count => format!(" and {} more", count - 3),
        };
        self.console.notice(&format!(
            "queue {}: nothing to read; waiting for {jobs} job{} held by {}{more}: a worker's jobs are taken over once it is silent for {} s (--claim-idle)",
            self.keys.queue,
            if jobs == 1 { "" } else { "s" },
            shown.join(", "),
            self.claim_idle.as_secs_f64()
        ));
        self.waiting_shown = Some(key);
        Ok(())
    }

    /// Whether nothing is left: no job held here, none pending anywhere, none
    /// waiting to be read.
    pub fn drained(&mut self, held: &Held) -> anyhow::Result<bool> {
        if !crate::lock(held).is_empty() {
            return Ok(false);
        }
        let Some(group) = group(&mut self.link, &self.keys)? else {
            return Ok(true);
        };
        let (pending, lag) = (group.pending, group.lag.unwrap_or(0));
        if pending > 0 && lag == 0 {
            self.tell_waiting()?;
        }
        Ok(pending == 0 && lag == 0)
    }
}

/// The thread that tells Redis how jobs ended, in pipelined batches, and
/// keeps this worker's jobs fresh.
struct Acknowledger {
    link: Link,
    keys: Keys,
    consumer: String,
    script: redis::Script,
    hand_back: redis::Script,
    held: Held,
    counters: Arc<Counters>,
}

/// Reports sent in one round trip at most.
const REPORT_BATCH: usize = 512;

/// How long the first report of a batch waits for others.
const GATHER: Duration = Duration::from_millis(10);

impl Acknowledger {
    fn serve(
        &mut self,
        received: &mpsc::Receiver<Report>,
        claim_idle: Duration,
    ) -> anyhow::Result<()> {
        let refresh = (claim_idle / 3).max(Duration::from_millis(20));
        let mut refreshed = Instant::now();
        loop {
            let wait = refresh.saturating_sub(refreshed.elapsed());
            let mut batch = Vec::new();
            match received.recv_timeout(wait) {
                Ok(report) => batch.push(report),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Outcomes trickle in one by one: waiting a little for more makes
            // one round trip of many (an acknowledgement may lag by that much).
            let gathering = Instant::now() + GATHER;
            while batch.len() < REPORT_BATCH && !batch.is_empty() {
                match received.recv_timeout(gathering.saturating_duration_since(Instant::now())) {
                    Ok(report) => batch.push(report),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if !batch.is_empty() {
                self.send(&batch)?;
            }
            if refreshed.elapsed() >= refresh {
                self.refresh()?;
                refreshed = Instant::now();
            }
        }
    }

    fn send(&mut self, batch: &[Report]) -> anyhow::Result<()> {
        let results: Vec<u64> = self.link.run("acknowledging jobs", |connection| {
            let mut pipe = redis::pipe();
            for report in batch {
                if let Report::Unstarted {
                    id,
                    fields,
                    deliveries,
                } = report
                {
                    let mut invocation = self.hand_back.key(&self.keys.jobs);
                    invocation
                        .key(&self.keys.errors)
                        .arg(id)
                        .arg(deliveries.saturating_sub(1));
                    for (field, value) in fields {
                        invocation.arg(field).arg(value);
                    }
                    pipe.invoke_script(&invocation);
                    continue;
                }
                let (kind, id, url, name, size, sha256, error, deliveries) = match report {
                    Report::Done {
                        id,
                        url,
                        name,
                        size,
                        sha256,
                        deliveries,
                    } => (
                        "saved",
                        id,
                        url,
                        name.as_str(),
                        *size,
                        sha256.as_str(),
                        "",
                        deliveries,
                    ),
                    Report::Failed {
                        id,
                        url,
                        error,
                        deliveries,
                    } => ("failed", id, url, "", 0, "", error.as_str(), deliveries),
                    Report::Dead {
                        id,
                        url,
                        name,
                        error,
                        deliveries,
                    } => (
                        "dead",
                        id,
                        url,
                        name.as_str(),
                        0,
                        "",
                        error.as_str(),
                        deliveries,
                    ),
                    Report::Unstarted { .. } => unreachable!("handed back above"),
                };
                let url = crate::redact::text(url);
                pipe.invoke_script(
                    self.script
                        .key(&self.keys.jobs)
                        .key(&self.keys.results)
                        .key(&self.keys.errors)
                        .key(&self.keys.done)
                        .key(&self.keys.dead)
                        .arg(kind)
                        .arg(id)
                        .arg(url.as_ref())
                        .arg(&self.consumer)
                        .arg(name)
                        .arg(size)
                        .arg(sha256)
                        .arg(crate::redact::text(error).as_ref())
                        .arg(*deliveries),
                );
            }
            // EVALSHA in a pipeline does not load the script by itself, and a
            // restarted Redis has forgotten it: then no call of the batch ran,
            // and the batch goes again once it is loaded.
            match pipe.query(connection) {
                Err(error) if error.to_string().contains("NoScript") => {
                    self.script.prepare_invoke().load(connection)?;
                    self.hand_back.prepare_invoke().load(connection)?;
                    pipe.query(connection)
                }
                other => other,
            }
        })?;
        for (report, changed) in batch.iter().zip(results) {
            if changed == 0 {
                continue;
            }
            let counter = match report {
                Report::Done { .. } => &self.counters.acknowledged,
                Report::Failed { .. } => &self.counters.failed,
                Report::Dead { .. } => &self.counters.dead,
                Report::Unstarted { .. } => &self.counters.handed_back,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The worker is leaving: its consumer goes from the group if it holds
    /// nothing (else it stays, for its jobs to be taken over).
    fn leave(&mut self) {
        let script = redis::Script::new(LEAVE_SCRIPT);
        let left = self.link.run("leaving the group", |connection| {
            script
                .key(&self.keys.jobs)
                .arg(&self.consumer)
                .invoke::<u64>(connection)
        });
        if let Err(error) = left {
            tracing::debug!("{error:#}");
        }
    }

    /// Claims this worker's jobs again, which resets their idle time: only a
    /// worker that stopped is taken over. JUSTID leaves delivery counts alone.
    fn refresh(&mut self) -> anyhow::Result<()> {
        let ids: Vec<String> = crate::lock(&self.held)
            .values()
            .map(|delivery| delivery.id.clone())
            .collect();
        for chunk in ids.chunks(1000) {
            self.link.run("keeping jobs", |connection| {
                let mut command = redis::cmd("XCLAIM");
                command
                    .arg(&self.keys.jobs)
                    .arg(GROUP)
                    .arg(&self.consumer)
                    .arg(0);
                for id in chunk {
                    command.arg(id);
                }
                command.arg("JUSTID").query::<Vec<String>>(connection)
            })?;
        }
        Ok(())
    }
}
