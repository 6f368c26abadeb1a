//! `grab`: download many URLs concurrently, choosing how (one by one, OS threads,
//! worker processes, or async tasks), with every file named after its URL, written
//! atomically, timed and counted; build image datasets; filter images
//! Pillow-exactly, also as they arrive; and the local server that makes every
//! demo, test and benchmark work without the internet.
//!
//! # Layout
//!
//! The files inside each module are private to the crate; what `main.rs`, the
//! tests and the benchmarks use is re-exported by the module itself
//! (`grab::engine::WorkerProgram`, `grab::fs::MANIFEST_NAME`).
//!
//! Leaf layers, which know no command:
//! - [`http`]: one download: the request ([`http::Job`]), the response policy
//!   and the attempt ([`http::Transfer`]), retries that resume, errors mapped
//!   once, TLS roots, proxies, rate limits, the blocking (ureq) and async
//!   (hyper, reqwest) clients with HTTP/2 by ALPN for every strategy, names
//!   looked up once per host for all of them (`http/resolve.rs`), one
//!   file over several connections (`http/split.rs`), `--compressed`
//!   decoding, and the download as an engine task (`http/task.rs`); a body
//!   goes to the sink the caller chooses ([`http::BodySink`]: a part file,
//!   memory, or a stream).
//! - [`fs`]: atomic writes with one file mode, the folder lock, part files,
//!   a split download's finished ranges, spools (append-only logs of
//!   checksummed records), names (sanitising, numbering), compact
//!   fingerprint tables for lists of millions (`fs/fingerprints.rs`),
//!   `-x`/`--spread` layout, the manifest, buckets (`s3://`, `fs/store.rs`);
//!   Linux's fast paths beside the portable way, and what differs by system.
//! - [`image`]: header checks before any pixel, MIME types and sniffing,
//!   reduced JPEG decoding, resizing and encoding as img2dataset means it,
//!   its box blur and its EXIF tags.
//! - [`engine`]: jobs in, outcomes out: the strategies (`sequential`,
//!   `threads`, worker `processes`, `async`), the bounded queue, the
//!   run's stop (Ctrl-C, or a halt such as a full disk), the open-file
//!   limit, a memory budget jobs reserve from (`engine/budget.rs`), the
//!   one live view (bar or heartbeat), workers' ties to their parent on
//!   each system; a mock task for tests.
//! - [`console`], [`redact`], [`exit`], [`partition`] (`--shard K/N`),
//!   [`gallery`] (the deterministic images the server serves and tests decode).
//!
//! Commands, clients of the layers and never of each other:
//! - [`get`]: input, planning against the manifest, the run, reports.
//! - [`dataset`]: a table to shards of resized images, spooled per sample,
//!   bodies in memory within a byte budget; settings kept with the output,
//!   failed samples retried, img2dataset's recipe options.
//! - [`filter`]: Pillow-exact filters and their codecs.
//! - [`queue`]: a work queue on Redis Streams whose workers run `get` and
//!   `dataset` runs (the one command allowed to call others).
//! - [`server`]: `grab serve`, the demo endpoints, the gallery and the page a
//!   browser gets at `/`.
//! - [`compare`]: `grab compare` and `grab demo`, with their table, their
//!   explanation and the picture of each strategy at work (SVG, HTML).
//! - [`cli`]: clap flags to configs, `get --filter` composed of `get` and
//!   `filter`, summaries printed; `src/main.rs` only sets up logging and
//!   calls it. The library returns results; only `cli` prints summaries and
//!   only `main` exits.

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

/// Text made safe inside HTML or XML content and attribute values: the pictures
/// `compare` draws and the page `serve` shows.
pub fn escape_markup(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
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

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            super::escape_markup("a&b<\"c\">'"),
            "a&amp;b&lt;&quot;c&quot;&gt;&#39;"
        );
    }
}
