//! `grab`: download many URLs concurrently, choosing how (one by one, OS threads,
//! worker processes, or async tasks), with every file named after its URL, written
//! atomically, timed and counted; plus the local server that makes every demo, test
//! and benchmark work without the internet.
//!
//! # Layout
//!
//! - [`cli`]: clap definitions and their conversion to plain configs; the binary
//!   (`src/main.rs`) only parses and calls [`cli::execute`].
//! - [`batch`]: one `grab get` run: input reader thread, bounded job queue,
//!   strategy, summary.
//! - [`input`]: the URL stream from arguments, files and stdin; line parsing,
//!   origins (`file:line`) for messages, duplicate fingerprints.
//! - [`naming`]: URL to file name, sanitising, and the batch's name registry.
//! - [`output`]: the `.part` file that becomes the final name only when complete.
//! - [`manifest`]: `.grab-manifest.jsonl`, the record of finished and started
//!   downloads that lets re-runs skip and `--continue` resume.
//! - [`download`]: one download, shared by all strategies: [`download::Transfer`]
//!   (status, limits, naming, part file, manifest), the retry decision, the
//!   blocking (ureq) and async (reqwest) drivers, and the error reasons.
//! - [`strategy`]: the [`strategy::Strategy`] trait and one module per strategy:
//!   `sequential`, `threads`, `processes` (with the hidden worker), `async`.
//! - [`report`]: per-file lines, the shared tally, the summary and exit code;
//!   [`report::live`] the progress bar and heartbeat, [`report::records`] the
//!   `--report` file.
//! - [`compare`]: `grab compare`, every strategy (and peers) measured from outside.
//! - [`server`]: `grab serve`: the asynchronous demo endpoints
//!   ([`server::operations`]), the gallery of generated images and files
//!   ([`server::gallery`] draws them), timing middleware, limits and shutdown.
//! - [`demo`]: the gallery served in-process, for `grab compare` without URLs and
//!   `grab demo` (that comparison, explained).
//! - [`filter`]: `grab filter` and `grab samples`: Pillow-exact image filters
//!   ([`filter::kernels`]) on a batch, sequentially, on threads or in worker
//!   processes; also run by `grab get --filter` as files arrive.

pub mod batch;
pub mod cli;
pub mod compare;
pub mod demo;
pub mod download;
pub mod filter;
pub mod input;
pub mod manifest;
pub mod naming;
pub mod output;
pub mod report;
pub mod server;
pub mod strategy;
