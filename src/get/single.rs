//! `-O FILE` and `-O -`: one URL saved to a file the user names, or written to
//! stdout, as wget's `-O`. A file download runs as any other (every strategy,
//! the part file, retries) in a hidden folder beside the target, named after
//! it, so the target's folder gets no manifest or lock, and only a finished
//! file is renamed onto the target (same file system: the target never holds
//! a partial file), which is replaced when it exists, as wget does. The folder
//! goes with it; a download left as a part keeps it, for `-c` to resume. `-O -` streams the body to
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
use crate::fs::names::PART_SUFFIX;
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
    let path = match destination {
        Destination::File(path) => path,
        Destination::Stdout => {
            let scratch = tempfile::Builder::new()
                .prefix(".grab-O-")
                .tempdir()
                .context("cannot make a temporary folder")?;
            let mut config = config.clone();
            config.settings.output_dir = scratch.path().to_path_buf();
            config.body = BodySink::Stream(Arc::new(Mutex::new(Box::new(io::stdout()))));
            if config.strategy == Strategy::Processes {
                config.strategy = Strategy::Threads;
            }
            return run(&config, inputs);
        }
    };
    if path.is_dir() {
        anyhow::bail!("-O {} is a folder: -o saves into a folder", path.display());
    }
    let folder = download_folder(path)?;
    let mut config = config.clone();
    config.settings.output_dir = folder.clone();
    // A run that could not start (another run holds the folder's lock) leaves
    // the folder to whoever has it.
    let summary = run(&config, inputs)?;
    let kept = match &summary {
        // Only a whole file is moved onto the target: a failed or interrupted
        // download leaves the target as it was.
        summary if summary.saved + summary.skipped == 1 => match saved_file(&folder)? {
            Some(saved) => fs::rename(&saved, path)
                .with_context(|| format!("cannot move the download to {}", path.display()))
                .map(|()| false),
            None => Ok(false),
        },
        // A part left to resume stays in the folder, where the same command
        // with -c finds it (its manifest and lock with it).
        _ => Ok(holds_part(&folder)),
    };
    if !matches!(kept, Ok(true)) {
        let _ = fs::remove_dir_all(&folder);
    }
    kept?;
    Ok(summary)
}

/// The hidden folder beside `path` that its download runs in: named after
/// it, so that a download left as a part is resumed by the same command with
/// -c, and two runs for one target share a lock.
fn download_folder(path: &Path) -> anyhow::Result<PathBuf> {
    let beside = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("-O {} names no file", path.display()))?;
    let folder = beside.join(format!(".grab-O-{}", name.to_string_lossy()));
    fs::create_dir_all(&folder).with_context(|| {
        format!(
            "cannot make a folder to download into in {}",
            beside.display()
        )
    })?;
    Ok(folder)
}

/// The one whole file the run saved (grab's own dot-files and part files
/// aside), if any.
fn saved_file(directory: &Path) -> anyhow::Result<Option<PathBuf>> {
    Ok(files(directory)?
        .into_iter()
        .find(|(name, _)| !name.starts_with('.') && !name.ends_with(PART_SUFFIX))
        .map(|(_, path)| path))
}

/// Whether the folder holds a part file to resume.
fn holds_part(directory: &Path) -> bool {
    files(directory).is_ok_and(|files| files.iter().any(|(name, _)| name.ends_with(PART_SUFFIX)))
}

/// The files of `directory`, by name.
fn files(directory: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let entries =
        fs::read_dir(directory).with_context(|| format!("cannot list {}", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
        if entry.file_type()?.is_file() {
            files.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    Ok(files)
}
