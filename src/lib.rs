//! `grab`: download many URLs concurrently, choosing how (one by one, OS threads,
//! worker processes, or async tasks), with every file named after its URL, written
//! atomically, timed and counted; filter images Pillow-exactly, also as they
//! arrive; and the local server that makes every demo, test and benchmark work
//! without the internet.
//!
//! # Layout
//!
//! - [`engine`]: jobs in, outcomes out, knowing nothing of HTTP or pixels: the
//!   [`engine::Task`] trait, the bounded [`engine::Queue`] with its
//!   [`engine::Interrupt`], the blocking worker loop ([`engine::threads`]:
//!   `sequential` and `threads`), the one worker-process supervisor and line
//!   protocol ([`engine::processes`]), the async driver (an event loop per
//!   core: [`engine::asynchronous`]), and a mock task for tests ([`engine::mock`]).
//!   `get`, `filter` and `dataset` are its clients.
//! - [`get`]: `grab get`: input ([`get::input`]), planning against the manifest
//!   ([`get::plan`], [`get::manifest`]), names ([`get::naming`]), folders
//!   (`-x`, `--spread`: [`get::layout`]), part files, unnamed until worth
//!   resuming, made relative to the folder's handle ([`get::part`]), one
//!   download split by concern ([`get::download`]: settings, one attempt,
//!   retries that resume, errors, TLS roots, proxies, rate limits, the
//!   clients: ureq blocking; async over hyper for plain http, reqwest for
//!   https and proxies), the download as an engine task
//!   ([`get::task`]), and what the user reads
//!   ([`get::report`]: lines, tally, live view, `--report`, the typed summary).
//! - [`filter`]: `grab filter` and `grab get --filter`: Pillow-exact kernels,
//!   codecs (headers checked before the whole read), the memory budget shared
//!   by all filter threads and workers, the record of outputs written, the
//!   filter as an engine task, its report.
//! - [`dataset`]: `grab dataset`: a table of URLs ([`dataset::input`]) to
//!   shards of resized images; downloads on the engine with `get`'s download
//!   code, bodies in memory; the image pipeline ([`dataset::image`], with
//!   JPEGs that shrink by 4 or more decoded at 1/4 scale by libjpeg,
//!   [`image::reduced`]) as a second engine client ([`dataset::task`]);
//!   each finished sample spooled
//!   ([`dataset::sample`]), shards written in key order and renamed into place
//!   ([`dataset::shard`], [`dataset::table`]); `stats.json`, the sum of every
//!   shard's stats in the output folder, whichever run wrote them
//!   ([`dataset::write_stats`], `grab dataset stats DIR`); the live line and
//!   summary ([`dataset::progress`]).
//! - [`partition`]: `--shard K/N`, one of N runs taking its part of a list (by
//!   URL hash for `get`, by output shard number for `dataset`).
//! - [`queue`]: `grab queue push|work|status`, a work queue on Redis Streams:
//!   the connection that reconnects ([`queue::link`]), the worker
//!   ([`queue::work`]) as a [`get::Source`] and an outcome hook of
//!   [`get::run_from`], the same run and strategies as `grab get`; dataset
//!   shards as jobs ([`queue::dataset`]: `push --dataset`, `grab queue
//!   dataset`), each built as a `dataset` run of that one shard.
//! - [`server`]: `grab serve`: the asynchronous demo endpoints, the gallery's
//!   routes (JSON errors, checked parameters, validators and ranges), timing
//!   middleware, its own accept loop over hyper with the limits (connection cap,
//!   header caps, header-read and send timeouts), and shutdown.
//! - [`gallery`]: the deterministic images and files that the server serves,
//!   `grab samples` writes and the tests decode.
//! - [`compare`]: `grab compare` (every strategy and peers, measured from outside)
//!   and `grab demo` (that comparison on a local gallery, explained).
//! - [`console`]: the one console every line is printed through.
//! - [`redact`]: credentials in URLs masked wherever text leaves (console, logs,
//!   manifest, reports).
//! - [`exit`]: the exit statuses every command ends with.
//! - [`cli`]: clap definitions, their conversion to the configs above, and the
//!   dispatch; the binary (`src/main.rs`) only sets up logging and calls it.
//!   Nothing else sees clap.

/// Implements [`Named`] for a fieldless enum: each variant with the name the
/// command line gives it and what it means.
macro_rules! named {
    ($type:ty { $($variant:ident => $name:literal: $help:literal),+ $(,)? }) => {
        impl $crate::Named for $type {
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }

            fn help(self) -> &'static str {
                match self {
                    $(Self::$variant => $help),+
                }
            }
        }
    };
}

pub mod cli;
pub mod compare;
pub mod console;
pub mod dataset;
pub mod engine;
pub mod exit;
pub mod filter;
pub mod fs;
pub mod gallery;
pub mod get;
pub mod http;
pub mod image;
pub mod partition;
pub mod queue;
pub mod redact;
pub mod server;

/// Locks a mutex even if a thread panicked while holding it: what it guards
/// (tallies, names, pipes) stays usable, and one panicking job must not stop
/// the run's reporting.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// One JSON line: the value and a newline, to be written whole.
pub fn json_line<T: serde::Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    Ok(line)
}

/// A library enum the command line offers by name (strategies, formats, modes).
pub trait Named: Sized + Copy + Send + Sync + 'static {
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    /// What the value means, for `--help`.
    fn help(self) -> &'static str;

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.name() == name)
    }
}
