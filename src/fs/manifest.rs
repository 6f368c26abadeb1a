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
//! ([`open_no_follow`]), it must be a regular file, a line may not exceed
//! [`MAX_LINE_BYTES`] and only a few may fail to parse (a link to `/dev/zero` or
//! a file of junk is an error, not a hang), and an entry whose name is not a
//! path grab could have made (each `/`-separated component a name sanitising
//! leaves unchanged: `-x` and `--spread` names are such paths; `../x`, `/etc/x`
//! are not) is set aside, never used as a path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::layout;
use super::names::fingerprint;
use super::system::open_no_follow;

pub const MANIFEST_NAME: &str = ".grab-manifest.jsonl";

/// One line of the manifest. `url` is masked (see [`crate::redact`]) when it
/// carries credentials; `key` then identifies the full URL, so a re-run still
/// finds its entry without the secret being written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    Started {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_modified: Option<String>,
    },
    Saved {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        name: String,
        size: u64,
        sha256: String,
        /// Seconds since the Unix epoch.
        time: u64,
        /// The server's validators for the copy saved, which `-N` sends back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_modified: Option<String>,
    },
}

/// The URL as the manifest writes it, and the key that stands for it when
/// masking changed it.
fn written_url(url: &Url) -> (String, Option<String>) {
    match crate::redact::url(url) {
        Cow::Borrowed(same) => (same.to_string(), None),
        Cow::Owned(masked) => (masked, Some(format!("{:032x}", fingerprint(url.as_str())))),
    }
}

impl Entry {
    /// A download of `url` began writing `name`.
    pub fn started(
        url: &Url,
        name: &str,
        etag: Option<String>,
        last_modified: Option<String>,
    ) -> Entry {
        let (url, key) = written_url(url);
        Entry::Started {
            url,
            key,
            name: name.to_string(),
            etag,
            last_modified,
        }
    }

    /// `url` was saved whole as `name`, now.
    pub fn saved(url: &Url, name: &str, size: u64, sha256: &str) -> Entry {
        let (url, key) = written_url(url);
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Entry::Saved {
            url,
            key,
            name: name.to_string(),
            size,
            sha256: sha256.to_string(),
            time,
            etag: None,
            last_modified: None,
        }
    }

    /// A `saved` entry with the validators the server gave its copy.
    pub fn with_validators(mut self, etag: Option<String>, last_modified: Option<String>) -> Entry {
        if let Entry::Saved {
            etag: saved_etag,
            last_modified: saved_last_modified,
            ..
        } = &mut self
        {
            (*saved_etag, *saved_last_modified) = (etag, last_modified);
        }
        self
    }

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

    /// What a job's URL is matched by: the key when the URL was masked.
    fn fingerprint(&self) -> u128 {
        let key = match self {
            Entry::Started { key, .. } | Entry::Saved { key, .. } => key,
        };
        key.as_deref()
            .and_then(|key| u128::from_str_radix(key, 16).ok())
            .unwrap_or_else(|| fingerprint(self.url()))
    }
}

/// The writer: entries appended as downloads start and finish.
pub struct Manifest {
    file: Mutex<File>,
}

impl Manifest {
    pub fn open(directory: &Path) -> io::Result<Manifest> {
        let file = open_no_follow(
            OpenOptions::new().create(true).append(true),
            &directory.join(MANIFEST_NAME),
        )?;
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
        let file = match open_no_follow(
            OpenOptions::new().read(true),
            &directory.join(MANIFEST_NAME),
        ) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Known::default()),
            Err(error) => return Err(error),
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
            if !layout::is_safe_path(name) {
                known.refused.push(name.to_string());
                continue;
            }
            known.entries.insert(entry.fingerprint(), entry);
        }
        Ok(known)
    }

    pub fn get(&self, url: &str) -> Option<&Entry> {
        // A first run into a folder knows nothing: no URL needs hashing.
        if self.entries.is_empty() {
            return None;
        }
        self.entries.get(&fingerprint(url))
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

fn not_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{MANIFEST_NAME} is not a regular file"),
    )
}

/// The SHA-256 of a file, in hex.
pub fn sha256_of_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hash_reader(File::open(path)?, |bytes| hasher.update(bytes))?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds everything a reader yields into a hasher.
pub fn hash_reader(mut reader: impl Read, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(count) => update(&buffer[..count]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Lowercase hex, two digits a byte: by table, since a `format!` per byte cost
/// 18,000 instructions per file, a tenth of a small file's download.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn last_entry_wins_and_torn_lines_are_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let manifest = Manifest::open(directory.path()).unwrap();
        let url = |raw: &str| Url::parse(raw).unwrap();
        let started = Entry::started(&url("http://h/a"), "a", Some("\"x\"".into()), None);
        manifest.append(&started).unwrap();
        let saved = Entry::saved(&url("http://h/a"), "a", 3, "00");
        manifest.append(&saved).unwrap();
        manifest
            .append(&Entry::started(&url("http://h/b"), "b", None, None))
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
    fn credentials_are_not_written_but_still_match() {
        let directory = tempfile::tempdir().unwrap();
        let manifest = Manifest::open(directory.path()).unwrap();
        let secret = "http://ann:hunter2@h/a.jpg?token=s3cret&id=1";
        manifest
            .append(&Entry::saved(
                &Url::parse(secret).unwrap(),
                "a.jpg",
                1,
                "00",
            ))
            .unwrap();
        let written = std::fs::read_to_string(directory.path().join(MANIFEST_NAME)).unwrap();
        assert!(
            !written.contains("hunter2") && !written.contains("s3cret"),
            "{written}"
        );
        assert!(
            written.contains("http://ann:***@h/a.jpg?token=***&id=1"),
            "{written}"
        );
        let known = Known::load(directory.path()).unwrap();
        assert_eq!(known.get(secret).map(Entry::name), Some("a.jpg"));
        // Another secret is another URL.
        assert!(
            known
                .get("http://ann:other@h/a.jpg?token=s3cret&id=1")
                .is_none()
        );
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
            ("http://h/e", "h/a/../../x"),
            ("http://h/f", "127.0.0.1+80/a/b/c.jpg"),
        ] {
            manifest
                .append(&Entry::started(&Url::parse(url).unwrap(), name, None, None))
                .unwrap();
        }
        let known = Known::load(directory.path()).unwrap();
        assert_eq!(
            known.refused(),
            ["../a", "/etc/passwd", ".hidden", "h/a/../../x"]
        );
        assert!(known.get("http://h/a").is_none() && known.get("http://h/b").is_none());
        assert!(known.get("http://h/d").is_some());
        // A subfolder's file, as -x and --spread make them, is accepted.
        assert!(known.get("http://h/f").is_some());
    }

    #[test]
    fn links_junk_and_endless_lines_are_errors() {
        let (directory, path) = crate::fs::scratch_file(MANIFEST_NAME);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            let error = Known::load(directory.path()).err().unwrap();
            assert!(error.to_string().contains("symbolic link"), "{error}");
            assert!(Manifest::open(directory.path()).is_err());
            std::fs::remove_file(&path).unwrap();
        }
        std::fs::write(&path, vec![b'x'; 3 * MAX_LINE_BYTES]).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("longer than"), "{error}");
        std::fs::write(&path, "junk\n".repeat(1000)).unwrap();
        let error = Known::load(directory.path()).err().unwrap();
        assert!(error.to_string().contains("does not parse"), "{error}");
        std::fs::remove_file(&path).unwrap();
        #[cfg(unix)]
        {
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
            let error = Known::load(directory.path()).err().unwrap();
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
    }

    #[test]
    fn missing_manifest_is_empty() {
        let directory = tempfile::tempdir().unwrap();
        assert!(Known::load(directory.path()).unwrap().entries.is_empty());
    }

    #[test]
    fn file_hash() {
        let (_directory, path) = crate::fs::scratch_file("x");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_of_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
