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
//!
//! Nothing read from it is trusted: it is never opened through a symbolic link
//! (`O_NOFOLLOW`), it must be a regular file, a line may not exceed
//! [`MAX_LINE_BYTES`] and only a few may fail to parse (a link to `/dev/zero` or
//! a file of junk is an error, not a hang), and an entry whose name would not
//! survive sanitising unchanged (`../x`, `/etc/x`) is set aside, never used as a
//! path.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::naming;

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

    pub fn name(&self) -> &str {
        match self {
            Entry::Started { name, .. } | Entry::Saved { name, .. } => name,
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
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(directory.join(MANIFEST_NAME))
            .map_err(refuse_link)?;
        if !file.metadata()?.is_file() {
            return Err(not_a_file());
        }
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

/// The longest manifest line read: a URL of some kilobytes, a name, validators
/// and a hash fit many times over.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Lines that may fail to parse (each crash can tear one) before the file is
/// judged not to be a manifest at all.
const MAX_UNREADABLE_LINES: usize = 64;

/// What an earlier run recorded: the last entry for each URL.
#[derive(Default)]
pub struct Known {
    entries: HashMap<u128, Entry>,
    /// Names of entries set aside because they are not safe file names.
    refused: Vec<String>,
}

impl Known {
    /// Reads the folder's manifest; none yet is an empty record.
    pub fn load(directory: &Path) -> io::Result<Known> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(directory.join(MANIFEST_NAME))
        {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Known::default()),
            Err(error) => return Err(refuse_link(error)),
        };
        if !file.metadata()?.is_file() {
            return Err(not_a_file());
        }
        let mut known = Known::default();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut unreadable = 0;
        for number in 1.. {
            line.clear();
            if read_line(&mut reader, &mut line)? == 0 {
                break;
            }
            // A line torn by a crash does not parse, and is skipped.
            let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
                unreadable += 1;
                if unreadable > MAX_UNREADABLE_LINES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "not a grab manifest: line {number} is the {unreadable}th that does not parse"
                        ),
                    ));
                }
                continue;
            };
            let name = entry.name();
            if naming::sanitise(name).as_deref() != Some(name) {
                known.refused.push(name.to_string());
                continue;
            }
            known.entries.insert(fingerprint(entry.url()), entry);
        }
        Ok(known)
    }

    pub fn get(&self, url: &str) -> Option<&Entry> {
        self.entries.get(&fingerprint(url))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names of entries that were set aside: not safe as file names.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }
}

/// Reads one line (without its newline) into `line`, at most
/// [`MAX_LINE_BYTES`]; returns the bytes consumed, 0 at the end.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(consumed);
        }
        let (piece, done) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&available[..end], end + 1),
            None => (available, available.len()),
        };
        if line.len() + piece.len() > MAX_LINE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a grab manifest: a line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        line.extend_from_slice(piece);
        let ended = done > piece.len();
        reader.consume(done);
        consumed += done;
        if ended {
            return Ok(consumed);
        }
    }
}

/// `O_NOFOLLOW` on a symbolic link fails with `ELOOP`: say what it means.
fn refuse_link(error: io::Error) -> io::Error {
    if error.raw_os_error() == Some(nix::libc::ELOOP) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{MANIFEST_NAME} is a symbolic link, which grab does not follow"),
        )
    } else {
        error
    }
}

fn not_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{MANIFEST_NAME} is not a regular file"),
    )
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
    fn entries_with_unsafe_names_are_set_aside() {
        let directory = tempfile::tempdir().unwrap();
        let manifest = Manifest::open(directory.path()).unwrap();
        for (url, name) in [
            ("http://h/a", "../a"),
            ("http://h/b", "/etc/passwd"),
            ("http://h/c", ".hidden"),
            ("http://h/d", "fine.jpg"),
        ] {
            manifest
                .append(&Entry::Started {
                    url: url.into(),
                    name: name.into(),
                    etag: None,
                    last_modified: None,
                })
                .unwrap();
        }
        let known = Known::load(directory.path()).unwrap();
        assert_eq!(known.refused(), ["../a", "/etc/passwd", ".hidden"]);
        assert!(known.get("http://h/a").is_none() && known.get("http://h/b").is_none());
        assert!(known.get("http://h/d").is_some());
    }

    #[test]
    fn links_junk_and_endless_lines_are_errors() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(MANIFEST_NAME);
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(Manifest::open(directory.path()).is_err());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, vec![b'x'; 3 * MAX_LINE_BYTES]).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("longer than"), "{error}");
        std::fs::write(&path, "junk\n".repeat(1000)).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("does not parse"), "{error}");
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("not a regular file"), "{error}");
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
