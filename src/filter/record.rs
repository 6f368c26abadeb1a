//! The record of what the filters wrote into a folder: `.grab-filtered`, one
//! JSON string (a file name) per line, appended as each output is written.
//! It is how a run recognises its own outputs among the files of a folder:
//! `grab filter -o DIR DIR` neither filters them again nor counts them as
//! inputs it must not replace, and a file in the folder that is not in the
//! record (a download, the user's own) is never replaced: its output takes the
//! next free numbered name instead.
//!
//! Like the download manifest, the record is never followed through a link
//! and its reading is bounded: a link to `/dev/zero` or a huge file cannot
//! hang or fill memory; a record that cannot be read counts as empty, which
//! errs on the side of replacing nothing.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::fs::system::open_no_follow;

/// The record's file name inside the output folder.
pub const RECORD_NAME: &str = ".grab-filtered";

/// At most this much of a record is read: some four million names.
const MAX_RECORD_BYTES: u64 = 256 << 20;

/// The names recorded in `folder`.
pub fn load(folder: &Path) -> HashSet<String> {
    let Ok(file) = open_no_follow(OpenOptions::new().read(true), &folder.join(RECORD_NAME)) else {
        return HashSet::new();
    };
    if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return HashSet::new();
    }
    BufReader::new(file.take(MAX_RECORD_BYTES))
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<String>(&line).ok())
        .collect()
}

/// Adds `name` to the record of `folder`. One short append per name: lines
/// from several threads and worker processes do not interleave.
pub fn add(folder: &Path, name: &str) -> io::Result<()> {
    let mut file: File = open_no_follow(
        OpenOptions::new().append(true).create(true),
        &folder.join(RECORD_NAME),
    )?;
    let line = serde_json::to_string(name).map_err(io::Error::other)? + "\n";
    file.write_all(line.as_bytes())
}

/// The first of `desired`, `desired-1`, ... that no file in `folder` holds
/// unless the record says it is ours, and that `taken` (say, by another job
/// of the batch) does not refuse. Returns the name and whether a file of ours
/// sits there, to be replaced.
pub fn free_name(
    folder: &Path,
    desired: &str,
    recorded: &HashSet<String>,
    mut taken: impl FnMut(&str) -> bool,
) -> (String, bool) {
    (0..)
        .map(|n| crate::fs::names::numbered(desired, n))
        .find_map(|candidate| {
            let ours = recorded.contains(&candidate);
            let occupied = folder.join(&candidate).symlink_metadata().is_ok();
            (!taken(&candidate) && (ours || !occupied)).then_some((candidate, ours && occupied))
        })
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_recorded_and_read_back_whatever_they_hold() {
        let folder = tempfile::tempdir().unwrap();
        assert!(load(folder.path()).is_empty());
        add(folder.path(), "blur_a.jpg").unwrap();
        add(folder.path(), "two\nlines.png").unwrap();
        let names = load(folder.path());
        assert!(names.contains("blur_a.jpg"));
        assert!(names.contains("two\nlines.png"));
        assert_eq!(names.len(), 2);
    }

    // Making a symbolic link takes a privilege on Windows.
    #[cfg(unix)]
    #[test]
    fn a_linked_record_is_neither_read_nor_written() {
        let (folder, elsewhere) = crate::fs::scratch_file("elsewhere");
        std::fs::write(&elsewhere, "\"x.jpg\"\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, folder.path().join(RECORD_NAME)).unwrap();
        assert!(load(folder.path()).is_empty());
        assert!(add(folder.path(), "y.jpg").is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "\"x.jpg\"\n");
    }

    #[test]
    fn free_names_skip_files_that_are_not_ours() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("blur_a.jpg"), "downloaded").unwrap();
        let mut recorded = HashSet::new();
        let pick = |recorded: &HashSet<String>| {
            free_name(folder.path(), "blur_a.jpg", recorded, |_| false)
        };
        assert_eq!(pick(&recorded), ("blur_a-1.jpg".to_string(), false));
        recorded.insert("blur_a.jpg".to_string());
        assert_eq!(pick(&recorded), ("blur_a.jpg".to_string(), true));
        let taken = free_name(folder.path(), "blur_a.jpg", &recorded, |name| {
            name == "blur_a.jpg"
        });
        assert_eq!(taken, ("blur_a-1.jpg".to_string(), false));
    }
}
