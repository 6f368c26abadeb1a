//! The manifest of an output folder, `.grab-manifest.jsonl`: one JSON line per
//! event, appended, never rewritten. `started` records a download's name and the
//! validators (ETag, Last-Modified) a later `--continue` needs to resume it safely;
//! `saved` records a finished file with its size and SHA-256, so a re-run can skip
//! it while the file still matches.
//!
//! Appending is how a crash never corrupts it: each entry is one `write` on a file
//! opened with `O_APPEND` (whole, even across worker processes), and a torn last line
//! left by a crash is skipped when the manifest is read. The name starts with a dot,
//! which no sanitised download name can, so no download ever lands on it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST_NAME: &str = ".grab-manifest.jsonl";

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    Started {
        url: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_modified: Option<String>,
    },
    Saved {
        url: String,
        name: String,
        size: u64,
        sha256: String,
        /// Seconds since the Unix epoch.
        time: u64,
    },
}

impl Entry {
    pub fn url(&self) -> &str {
        match self {
            Entry::Started { url, .. } | Entry::Saved { url, .. } => url,
        }
    }
}

/// The writer: entries appended as downloads start and finish.
pub struct Manifest {
    file: Mutex<File>,
}

impl Manifest {
    pub fn open(directory: &Path) -> io::Result<Manifest> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(directory.join(MANIFEST_NAME))?;
        Ok(Manifest {
            file: Mutex::new(file),
        })
    }

    pub fn append(&self, entry: &Entry) -> io::Result<()> {
        crate::lock(&self.file).write_all(&crate::json_line(entry)?)
    }
}

fn fingerprint(url: &str) -> u128 {
    let digest = Sha256::digest(url.as_bytes());
    u128::from_le_bytes(
        digest[..16]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// What an earlier run recorded: the last entry for each URL.
#[derive(Default)]
pub struct Known {
    entries: HashMap<u128, Entry>,
}

impl Known {
    /// Reads the folder's manifest; none yet is an empty record.
    pub fn load(directory: &Path) -> io::Result<Known> {
        let file = match File::open(directory.join(MANIFEST_NAME)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Known::default()),
            Err(error) => return Err(error),
        };
        let mut entries = HashMap::new();
        for line in BufReader::new(file).split(b'\n') {
            // A line torn by a crash does not parse, and is skipped.
            if let Ok(entry) = serde_json::from_slice::<Entry>(&line?) {
                entries.insert(fingerprint(entry.url()), entry);
            }
        }
        Ok(Known { entries })
    }

    pub fn get(&self, url: &str) -> Option<&Entry> {
        self.entries.get(&fingerprint(url))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The SHA-256 of a file, in hex.
pub fn sha256_of_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hash_reader(File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds everything a reader yields into a hasher.
pub fn hash_reader(mut reader: impl Read, hasher: &mut Sha256) -> io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(count) => hasher.update(&buffer[..count]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_entry_wins_and_torn_lines_are_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let manifest = Manifest::open(directory.path()).unwrap();
        let started = Entry::Started {
            url: "http://h/a".into(),
            name: "a".into(),
            etag: Some("\"x\"".into()),
            last_modified: None,
        };
        manifest.append(&started).unwrap();
        let saved = Entry::Saved {
            url: "http://h/a".into(),
            name: "a".into(),
            size: 3,
            sha256: "00".into(),
            time: 1,
        };
        manifest.append(&saved).unwrap();
        manifest
            .append(&Entry::Started {
                url: "http://h/b".into(),
                name: "b".into(),
                etag: None,
                last_modified: None,
            })
            .unwrap();
        // A crash in the middle of a line.
        let mut file = OpenOptions::new()
            .append(true)
            .open(directory.path().join(MANIFEST_NAME))
            .unwrap();
        file.write_all(b"{\"event\":\"saved\",\"url\":\"http://h/b\",\"na")
            .unwrap();
        let known = Known::load(directory.path()).unwrap();
        assert_eq!(known.get("http://h/a"), Some(&saved));
        assert!(matches!(
            known.get("http://h/b"),
            Some(Entry::Started { .. })
        ));
        assert_eq!(known.get("http://h/c"), None);
    }

    #[test]
    fn missing_manifest_is_empty() {
        let directory = tempfile::tempdir().unwrap();
        assert!(Known::load(directory.path()).unwrap().is_empty());
    }

    #[test]
    fn file_hash() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("x");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_of_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
