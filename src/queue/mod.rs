//! `grab queue`: a work queue on Redis Streams that many `grab` processes, on
//! many machines, drain together. The queue is only an input source and an
//! outcome sink for the same run as `grab get` ([`crate::get::run_from`]):
//! every strategy, the manifest, part files and names work as there.
//!
//! For a queue NAME, Redis holds (all keys start `grab:NAME:`):
//! - `jobs`: the stream of jobs (`url`, `name`), read by the consumer group
//!   `workers`; each worker is a consumer of its own unique name
//!   (host, pid, random);
//! - `urls`: a hash from each pushed URL's SHA-256 (128 bits, hex) to the name
//!   it was given: pushing a URL again adds nothing;
//! - `names`, `next`: the names handed out, and where each desired name's
//!   numbering goes on; a push reserves a file name for each new URL, so
//!   workers sharing one output folder never collide on a name;
//! - `errors`: the last error of each pending job whose last attempt failed;
//! - `done`: how many jobs were acknowledged;
//! - `results`: one entry per outcome (url, worker, status, name, size,
//!   sha256, error, deliveries): the fleet's outcome in one place;
//! - `dead`: jobs delivered more than `--max-deliveries` times, with their
//!   last error;
//! - `kind`: `urls` or `dataset`, set by the first push: a worker of the other
//!   kind refuses the queue.
//!
//! A dataset job (`grab queue push --dataset`) is one output shard of a table:
//! the field `dataset` holds the table's path, how to read it and the shard's
//! number (`dataset::ShardJob`), `name` the shard's name; `urls` holds each
//! job's SHA-256 the same way, so pushing a table twice adds nothing twice.
//!
//! - `link`: the connection, its clear errors and its reconnection;
//! - `work`: `grab queue work`, the worker, and what every worker shares
//!   (reading deliveries, acknowledging, keeping jobs fresh);
//! - `dataset`: `grab queue push --dataset` and `grab queue dataset`, a
//!   worker that builds one dataset shard per job.

pub(crate) mod dataset;
pub(crate) mod link;
pub(crate) mod work;

use redis::TypedCommands as _;
use redis::streams::{StreamInfoConsumer, StreamInfoGroup};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::fs::manifest::hex;
use crate::fs::names::{desired_name, split_extension};
use crate::get::input::Inputs;
use link::Link;

/// The kinds of queue: jobs of URLs to download, or dataset shards to build.
pub const URLS_KIND: &str = "urls";
pub const DATASET_KIND: &str = "dataset";

/// The consumer group every worker joins.
pub const GROUP: &str = "workers";

/// The Redis keys of one queue.
#[derive(Debug, Clone)]
pub struct Keys {
    pub queue: String,
    pub jobs: String,
    pub urls: String,
    pub names: String,
    pub next: String,
    pub errors: String,
    pub done: String,
    pub results: String,
    pub dead: String,
    pub kind: String,
}

impl Keys {
    pub fn new(queue: &str) -> Keys {
        let key = |part: &str| format!("grab:{queue}:{part}");
        Keys {
            queue: queue.to_string(),
            jobs: key("jobs"),
            urls: key("urls"),
            names: key("names"),
            next: key("next"),
            errors: key("errors"),
            done: key("done"),
            results: key("results"),
            dead: key("dead"),
            kind: key("kind"),
        }
    }
}

/// A URL's key in the `urls` hash: 128 bits of its SHA-256, so a queue of
/// 100 million URLs holds 32-byte fields, not the URLs themselves.
pub fn url_key(url: &url::Url) -> String {
    hex(&Sha256::digest(url.as_str().as_bytes())[..16])
}

/// Adds each new URL with the first free numbered form of its name, in one
/// atomic step per batch, so concurrent pushes cannot give a name twice.
/// ARGV: (url key, url, stem, extension) for each URL.
const PUSH_SCRIPT: &str = r#"
local added = 0
for i = 1, #ARGV, 4 do
  local key, url, stem, extension = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HEXISTS', KEYS[2], key) == 0 then
    local desired = stem .. extension
    local n = tonumber(redis.call('HGET', KEYS[4], desired) or '0')
    local name
    while true do
      if n == 0 then name = desired else name = stem .. '-' .. n .. extension end
      local clash = redis.call('HEXISTS', KEYS[3], name) == 1
        or redis.call('HEXISTS', KEYS[3], name .. '.part') == 1
        or (string.sub(name, -5) == '.part'
            and redis.call('HEXISTS', KEYS[3], string.sub(name, 1, -6)) == 1)
      if not clash then break end
      n = n + 1
    end
    redis.call('HSET', KEYS[4], desired, n + 1)
    redis.call('HSET', KEYS[3], name, key)
    redis.call('HSET', KEYS[2], key, name)
    redis.call('XADD', KEYS[1], '*', 'url', url, 'name', name)
    added = added + 1
  end
end
return added
"#;

/// Marks the queue as holding jobs of `kind`, unless it holds the other kind.
pub fn set_kind(link: &mut Link, keys: &Keys, kind: &str) -> anyhow::Result<()> {
    link.run("setting the queue's kind", |connection| {
        redis::cmd("SET")
            .arg(&keys.kind)
            .arg(kind)
            .arg("NX")
            .query::<()>(connection)
    })?;
    work::check_kind(link, keys, kind)
}

/// A queue name no push made (a typo, most likely): the command line is
/// wrong, and nothing is created under that name.
#[derive(Debug, thiserror::Error)]
#[error("no queue named {queue:?} on Redis at {address}: {}", match existing.as_slice() {
    [] => "there is no queue there yet (grab queue push makes one)".to_string(),
    names => format!("the queues there are {} (--queue NAME)", names.join(", ")),
})]
pub struct NoSuchQueue {
    pub queue: String,
    pub address: String,
    pub existing: Vec<String>,
}

/// The queues on the server: those a push has made (their `kind` key), by name.
pub fn queues(link: &mut Link) -> anyhow::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = link.run("listing the queues", |connection| {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("grab:*:kind")
                .arg("COUNT")
                .arg(1000)
                .query(connection)
        })?;
        names.extend(keys.iter().filter_map(|key| {
            key.strip_prefix("grab:")?
                .strip_suffix(":kind")
                .map(str::to_string)
        }));
        if next == 0 {
            return Ok(names.into_iter().collect());
        }
        cursor = next;
    }
}

/// Errors with [`NoSuchQueue`] unless a push made the queue.
pub fn check_exists(link: &mut Link, keys: &Keys) -> anyhow::Result<()> {
    let exists: bool = link.run("looking for the queue", |connection| {
        redis::cmd("EXISTS").arg(&keys.kind).query(connection)
    })?;
    if exists {
        return Ok(());
    }
    Err(NoSuchQueue {
        queue: keys.queue.clone(),
        address: link.address().to_string(),
        existing: queues(link)?,
    }
    .into())
}

/// Creates the consumer group (and the stream) unless it exists.
pub fn create_group(link: &mut Link, keys: &Keys) -> anyhow::Result<()> {
    link.run("creating the consumer group", |connection| {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.jobs)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query(connection);
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    })
}

/// What `grab queue push` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Pushed {
    /// URLs read (repeats within the input left out).
    pub read: u64,
    /// Of those, new to the queue.
    pub new: u64,
    /// Lines that are not URLs, each reported.
    pub invalid: u64,
}

/// Pushes every URL of `inputs`, `batch` to a round trip. `on_invalid` hears
/// each line that is not a URL, which is left out.
pub fn push(
    link: &mut Link,
    keys: &Keys,
    inputs: Inputs,
    batch: usize,
    mut on_invalid: impl FnMut(&crate::get::input::InvalidLine),
) -> anyhow::Result<Pushed> {
    set_kind(link, keys, URLS_KIND)?;
    create_group(link, keys)?;
    let script = redis::Script::new(PUSH_SCRIPT);
    let mut pushed = Pushed::default();
    let mut arguments: Vec<String> = Vec::new();
    let send = |link: &mut Link, arguments: &mut Vec<String>| -> anyhow::Result<u64> {
        if arguments.is_empty() {
            return Ok(0);
        }
        let added: u64 = link.run("pushing jobs", |connection| {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(&keys.jobs)
                .key(&keys.urls)
                .key(&keys.names)
                .key(&keys.next);
            for argument in arguments.iter() {
                invocation.arg(argument);
            }
            invocation.invoke(connection)
        })?;
        arguments.clear();
        Ok(added)
    };
    for item in inputs {
        match item {
            Ok(job) => {
                pushed.read += 1;
                let name = desired_name(&job.url, job.name.as_deref(), None);
                let (stem, extension) = split_extension(&name);
                arguments.extend([
                    url_key(&job.url),
                    job.url.to_string(),
                    stem.to_string(),
                    extension.to_string(),
                ]);
                if arguments.len() >= batch * 4 {
                    pushed.new += send(link, &mut arguments)?;
                }
            }
            Err(invalid) => {
                pushed.invalid += 1;
                on_invalid(&invalid);
            }
        }
    }
    pushed.new += send(link, &mut arguments)?;
    Ok(pushed)
}

/// One worker's share of the pending jobs.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    pub pending: u64,
    /// Since the worker last read or claimed, in seconds.
    pub idle_seconds: f64,
}

/// Where a queue stands (`grab queue status`).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub queue: String,
    /// Jobs ever pushed.
    pub total: u64,
    /// Not yet delivered to any worker.
    pub waiting: u64,
    /// Delivered and not yet acknowledged (in flight, or failed and waiting
    /// for another delivery).
    pub pending: u64,
    /// Acknowledged: saved, or already there.
    pub done: u64,
    /// Pending jobs whose last attempt failed.
    pub failed: u64,
    /// Moved to the dead-letter stream.
    pub dead: u64,
    pub consumers: Vec<ConsumerStatus>,
}

/// The queue's consumer group as Redis describes it; `None` before a worker
/// made it.
fn group(link: &mut Link, keys: &Keys) -> anyhow::Result<Option<StreamInfoGroup>> {
    let reply = link.run("reading the consumer group", |connection| {
        connection.xinfo_groups(&keys.jobs)
    })?;
    Ok(reply.groups.into_iter().find(|group| group.name == GROUP))
}

/// The group's consumers, with what each holds.
fn group_consumers(link: &mut Link, keys: &Keys) -> anyhow::Result<Vec<StreamInfoConsumer>> {
    let reply = link.run("reading the consumers", |connection| {
        connection.xinfo_consumers(&keys.jobs, GROUP)
    })?;
    Ok(reply.consumers)
}

/// Reads the queue's counts; [`NoSuchQueue`] for a name no push made.
pub fn status(link: &mut Link, keys: &Keys) -> anyhow::Result<Status> {
    check_exists(link, keys)?;
    let (total, done, failed, dead, length): (u64, Option<u64>, u64, u64, u64) =
        link.run("reading the queue's counts", |connection| {
            redis::pipe()
                .cmd("HLEN")
                .arg(&keys.urls)
                .cmd("GET")
                .arg(&keys.done)
                .cmd("HLEN")
                .arg(&keys.errors)
                .cmd("XLEN")
                .arg(&keys.dead)
                .cmd("XLEN")
                .arg(&keys.jobs)
                .query(connection)
        })?;
    let mut consumers = Vec::new();
    let mut waiting = total.saturating_sub(done.unwrap_or(0) + dead);
    if (length > 0 || total > 0)
        && let Some(group) = group(link, keys).ok().flatten()
    {
        consumers = group_consumers(link, keys)?
            .into_iter()
            .map(|consumer| ConsumerStatus {
                name: consumer.name,
                pending: consumer.pending as u64,
                idle_seconds: consumer.idle as f64 / 1000.0,
            })
            .collect();
        waiting = group.lag.map_or(waiting, |lag| lag as u64);
    }
    Ok(Status {
        queue: keys.queue.clone(),
        total,
        waiting,
        pending: consumers.iter().map(|consumer| consumer.pending).sum(),
        done: done.unwrap_or(0),
        failed,
        dead,
        consumers,
    })
}
