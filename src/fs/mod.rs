//! The file layer: everything grab writes goes through here, so the rules
//! (atomic commits, one file mode, names that cannot leave the folder, one run
//! per folder) hold for every command alike. Knows no command.
//!
//! - `atomic`: a whole file written under a temporary name and renamed into
//!   place, with the one mode rule;
//! - `lock`: `.grab-lock`, one run per output folder;
//! - `part`: the `.part` file that becomes the final name only when complete;
//! - `ranges`: which ranges of a part fetched in pieces (`--split`) are in;
//! - `names`: URL to file name, sanitising, numbering, the name registry;
//! - `fingerprints`: compact tables keyed by fingerprint, for what a run
//!   remembers of each of millions of URLs and names;
//! - `layout`: where a file goes: flat, `-x` folders, `--spread` folders;
//! - `manifest`: `.grab-manifest.jsonl`, what earlier runs saved and started;
//! - `spool`: append-only logs of keyed records with a checksum each,
//!   a torn tail cut on opening (`grab dataset`'s finished samples);
//! - `store`: an output's top-level files in a folder or a bucket prefix
//!   (`s3://`, `gs://`, `az://`), and tables downloaded from a bucket;
//! - `system`: what differs between Unix and Windows (opening without
//!   following a link, which file a path is), and why long paths need nothing.

pub(crate) mod atomic;
pub(crate) mod fingerprints;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod names;
pub(crate) mod part;
pub(crate) mod ranges;
pub(crate) mod spool;
pub(crate) mod store;
pub(crate) mod system;

use std::path::Path;

pub use lock::LOCK_NAME;
pub use manifest::{MANIFEST_NAME, hex};
pub use spool::{Found, HEADER as SPOOL_HEADER, records_in, scan};
pub use system::identity;

/// Creates the folder a command writes into (`what`: "output folder") with
/// its parents. When a file stands where a folder must be, the error says so,
/// naming it, rather than the system's "File exists".
pub fn create_folder(directory: &Path, what: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory).map_err(|error| {
        let cannot = format!("cannot create {what} {}", directory.display());
        match directory.ancestors().find(|ancestor| ancestor.is_file()) {
            Some(file) if file == directory => {
                anyhow::anyhow!("{cannot}: it is a file, not a folder")
            }
            Some(file) => anyhow::anyhow!("{cannot}: {} is a file, not a folder", file.display()),
            None => anyhow::Error::new(error).context(cannot),
        }
    })
}

/// A fresh scratch folder for a test (removed when dropped), and the path
/// of `name` in it, not yet created.
#[cfg(test)]
pub(crate) fn scratch_file(name: impl AsRef<Path>) -> (tempfile::TempDir, std::path::PathBuf) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join(name);
    (folder, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_a_folder_must_be_is_named() {
        let (scratch, file) = scratch_file("afile");
        std::fs::write(&file, "").unwrap();
        let error = create_folder(&file, "output folder")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("afile: it is a file, not a folder"),
            "{error}"
        );
        let error = create_folder(&file.join("sub"), "output folder")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(&format!("sub: {} is a file, not a folder", file.display())),
            "{error}"
        );
        create_folder(&scratch.path().join("a/b"), "output folder").unwrap();
        assert!(scratch.path().join("a/b").is_dir());
    }
}
