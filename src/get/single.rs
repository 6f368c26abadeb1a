//! `-O FILE` and `-O -`: one URL saved to a file the user names, or written to
//! stdout, as wget's `-O`. A file download runs as any other (every strategy,
//! the part file, retries) in a fresh hidden folder beside the target, so the
//! target's folder gets no manifest or lock, and the finished file is renamed
//! onto the target (same file system: the target never holds a partial file),
//! which is replaced when it exists, as wget does. `-O -` streams the body to
//! stdout as it arrives, in this process (a worker process's stdout is its pipe
//! to the parent), and a reader that goes away stops it at once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use super::input::Inputs;
use super::report::Summary;
use super::{GetConfig, run};
use crate::engine::Strategy;
use crate::http::BodySink;

/// Where `-O` puts the download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    File(PathBuf),
    Stdout,
}

impl Destination {
    /// `-` is stdout, as in wget.
    pub fn parse(argument: &Path) -> Destination {
        match argument == Path::new("-") {
            true => Destination::Stdout,
            false => Destination::File(argument.to_path_buf()),
        }
    }
}

/// Downloads the one URL of `inputs` to `destination`. `config`'s output folder is
/// not used.
pub fn run_to(
    config: &GetConfig,
    inputs: Inputs,
    destination: &Destination,
) -> anyhow::Result<Summary> {
    let beside = match destination {
        Destination::File(path) => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        },
        Destination::Stdout => std::env::temp_dir(),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".grab-O-")
        .tempdir_in(&beside)
        .with_context(|| {
            format!(
                "cannot make a folder to download into in {}",
                beside.display()
            )
        })?;
    let mut config = config.clone();
    config.settings.output_dir = scratch.path().to_path_buf();
    if let Destination::Stdout = destination {
        config.body = BodySink::Stream(Arc::new(Mutex::new(Box::new(io::stdout()))));
        if config.strategy == Strategy::Processes {
            config.strategy = Strategy::Threads;
        }
    }
    let summary = run(&config, inputs)?;
    if let Destination::File(path) = destination
        && let Some(saved) = saved_file(scratch.path())?
    {
        fs::rename(&saved, path)
            .with_context(|| format!("cannot move the download to {}", path.display()))?;
    }
    Ok(summary)
}

/// The one file the run saved (grab's own dot-files aside), if any.
fn saved_file(directory: &Path) -> anyhow::Result<Option<PathBuf>> {
    let entries =
        fs::read_dir(directory).with_context(|| format!("cannot list {}", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with('.') && entry.file_type()?.is_file() {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}
