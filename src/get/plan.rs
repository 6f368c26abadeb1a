//! Planning a URL against the output folder's manifest before it is queued: a
//! file an earlier run completed (still the same size and SHA-256) is skipped,
//! `--force` downloads it again over the same name, and `--continue` resumes the
//! part file an interrupted run left, with the validator recorded when it began.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::download::{Complete, Outcome};
use super::input::{Job, Plan, Resume};
use super::manifest::{self, Entry, Known};
use super::naming::{FolderNames, NameRegistry, PART_SUFFIX};

/// Decides, from the manifest of earlier runs, what to do with each URL.
pub struct Planner {
    pub known: Known,
    pub directory: PathBuf,
    pub names: Arc<FolderNames>,
    /// Resume part files (`--continue`).
    pub resume: bool,
    /// Download again what is complete (`--force`).
    pub force: bool,
}

/// What to do with one URL.
#[derive(Debug)]
pub enum Planned {
    /// Queue it (with a [`Plan`] when an earlier run left its file or part).
    Download(Job),
    /// Already complete: nothing to fetch.
    Skip(Outcome),
}

impl Planner {
    pub fn plan(&self, mut job: Job) -> Planned {
        let Some(entry) = self.known.get(job.url.as_str()) else {
            return Planned::Download(job);
        };
        match entry {
            Entry::Saved {
                name, size, sha256, ..
            } => {
                let path = self.directory.join(name);
                if !path
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.is_file())
                {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                if self.force {
                    job.plan = Some(Plan {
                        name: name.clone(),
                        resume: None,
                        replace: true,
                    });
                    return Planned::Download(job);
                }
                match file_matches(&path, *size, sha256) {
                    true => Planned::Skip(Outcome::skipped(
                        job,
                        Complete {
                            name: name.clone(),
                            bytes: *size,
                            sha256: sha256.clone(),
                        },
                    )),
                    // Changed on disk since: keep it, download the URL afresh.
                    false => Planned::Download(job),
                }
            }
            Entry::Started {
                name,
                etag,
                last_modified,
                ..
            } if self.resume => {
                let part = self.directory.join(format!("{name}{PART_SUFFIX}"));
                let Ok(metadata) = part.symlink_metadata() else {
                    return Planned::Download(job);
                };
                if !metadata.is_file() || self.directory.join(name).symlink_metadata().is_ok() {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                // Without a validator the server's file cannot be proven unchanged:
                // start the part over rather than splice onto it.
                let resume = etag
                    .clone()
                    .or_else(|| last_modified.clone())
                    .map(|validator| Resume {
                        offset: metadata.len(),
                        validator,
                    });
                job.plan = Some(Plan {
                    name: name.clone(),
                    resume,
                    replace: false,
                });
                Planned::Download(job)
            }
            Entry::Started { .. } => Planned::Download(job),
        }
    }
}

/// Whether a file still has the recorded size and SHA-256.
fn file_matches(path: &Path, size: u64, sha256: &str) -> bool {
    path.metadata().is_ok_and(|metadata| metadata.len() == size)
        && manifest::sha256_of_file(path).is_ok_and(|actual| actual == sha256)
}
