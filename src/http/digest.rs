//! The digests of one body as it arrives: SHA-256 always (the manifest's
//! record of what was saved), and the one a `--checksum` asks for when it is
//! another, so a checked download costs one pass over its bytes, resumed
//! ones included. A file fetched in pieces (`--split`) is hashed by a
//! [`PrefixHasher`] on its own thread, following the part's complete prefix
//! while the pieces arrive, so little is left to hash after the last byte.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::request::{Algorithm, Checksum};
use crate::fs::manifest::hex;

/// A checksum's own hasher, when it is not SHA-256.
enum Other {
    Md5(Md5),
    Sha1(Sha1),
    Sha512(Sha512),
}

pub struct Digests {
    sha256: Sha256,
    other: Option<Other>,
}

impl Digests {
    /// Hashers for the manifest and for `checksum`, if any.
    pub fn new(checksum: Option<&Checksum>) -> Digests {
        let other = checksum.and_then(|checksum| match checksum.algorithm {
            Algorithm::Md5 => Some(Other::Md5(Md5::new())),
            Algorithm::Sha1 => Some(Other::Sha1(Sha1::new())),
            Algorithm::Sha256 => None,
            Algorithm::Sha512 => Some(Other::Sha512(Sha512::new())),
        });
        Digests {
            sha256: Sha256::new(),
            other,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        match &mut self.other {
            None => {}
            Some(Other::Md5(hasher)) => hasher.update(bytes),
            Some(Other::Sha1(hasher)) => hasher.update(bytes),
            Some(Other::Sha512(hasher)) => hasher.update(bytes),
        }
    }

    /// The SHA-256 in hex, and whether the body has `checksum` (`Err` with
    /// the digest it has instead).
    pub fn finish(self, checksum: Option<&Checksum>) -> (String, Result<(), String>) {
        let sha256 = hex(&self.sha256.finalize());
        let found = match self.other {
            None => sha256.clone(),
            Some(Other::Md5(hasher)) => hex(&hasher.finalize()),
            Some(Other::Sha1(hasher)) => hex(&hasher.finalize()),
            Some(Other::Sha512(hasher)) => hex(&hasher.finalize()),
        };
        let verdict = match checksum {
            Some(checksum) if checksum.hex != found => Err(found),
            _ => Ok(()),
        };
        (sha256, verdict)
    }
}

/// How far the part's complete prefix reaches, as the pieces tell the
/// hasher, and whether it will grow further.
struct Target {
    end: u64,
    over: Over,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    /// Pieces still arrive.
    Running,
    /// The file is whole: hash up to `end`, then stop.
    Whole,
    /// The download stopped short: the digests are not wanted.
    Abandoned,
}

struct Shared {
    target: Mutex<Target>,
    moved: Condvar,
}

/// What a [`PrefixHasher`] has hashed: the digests of the part's first
/// `position` bytes, and its first bytes for `--accept` when they were asked
/// for.
pub struct Hashed {
    pub digests: Digests,
    pub position: u64,
    pub first_bytes: Vec<u8>,
    /// How many first bytes to gather.
    sniff: usize,
}

/// Hashes a part file fetched in pieces, from where its digests stop (its
/// first byte, or the end of a resumed prefix), on a thread of its own, as
/// far as the pieces' complete prefix reaches ([`PrefixHasher::advance`]):
/// reading back what was just written costs a copy from the page cache, and
/// off the connections' path it costs them nothing. Once the file is whole,
/// [`PrefixHasher::finish`] hashes only what the thread has not reached yet.
/// Without a thread (none could be started) the whole part is hashed at the
/// finish, as a download without the thread would.
pub struct PrefixHasher {
    shared: Arc<Shared>,
    path: PathBuf,
    worker: Option<JoinHandle<io::Result<Hashed>>>,
    /// The digests when no thread took them.
    unstarted: Option<Hashed>,
}

impl PrefixHasher {
    /// Starts hashing the part at `path` from byte `position` into `digests`
    /// (which hold the bytes before it), gathering its first `sniff` bytes
    /// (none to gather past the start: a resumed part's were judged already).
    pub fn start(path: PathBuf, digests: Digests, position: u64, sniff: usize) -> PrefixHasher {
        let shared = Arc::new(Shared {
            target: Mutex::new(Target {
                end: 0,
                over: Over::Running,
            }),
            moved: Condvar::new(),
        });
        let hashed = Hashed {
            digests,
            position,
            first_bytes: Vec::new(),
            sniff,
        };
        let (worker_shared, worker_path) = (shared.clone(), path.clone());
        // The state goes to the thread through a slot it empties, so a
        // failed spawn leaves it here.
        let slot = Arc::new(Mutex::new(Some(hashed)));
        let worker_slot = slot.clone();
        let worker = std::thread::Builder::new()
            .name("piece-hasher".to_string())
            .spawn(move || {
                let hashed = crate::lock(&worker_slot)
                    .take()
                    .expect("the slot is filled before the spawn");
                follow(&worker_path, &worker_shared, hashed)
            })
            .ok();
        let unstarted = match worker {
            Some(_) => None,
            None => crate::lock(&slot).take(),
        };
        PrefixHasher {
            shared,
            path,
            worker,
            unstarted,
        }
    }

    /// The part's first `end` bytes are complete: the thread may hash them.
    pub fn advance(&self, end: u64) {
        let mut target = crate::lock(&self.shared.target);
        if end > target.end {
            target.end = end;
            self.shared.moved.notify_one();
        }
    }

    /// The part is whole at `total` bytes: what is left is hashed, and the
    /// digests of the whole part returned.
    pub fn finish(mut self, total: u64) -> io::Result<Hashed> {
        self.end(total, Over::Whole);
        let hashed = match (self.worker.take(), self.unstarted.take()) {
            (Some(worker), _) => worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the hashing thread panicked")))?,
            (None, Some(hashed)) => follow(&self.path, &self.shared, hashed)?,
            (None, None) => unreachable!("a hasher has its state or its thread"),
        };
        match hashed.position == total {
            true => Ok(hashed),
            false => Err(io::Error::other(format!(
                "hashed {} bytes of {total}",
                hashed.position
            ))),
        }
    }

    fn end(&self, end: u64, over: Over) {
        let mut target = crate::lock(&self.shared.target);
        target.end = target.end.max(end);
        target.over = over;
        self.shared.moved.notify_one();
    }
}

impl Drop for PrefixHasher {
    /// A download that stopped short: the thread is told to stop and waited
    /// for (at most the span it is reading), so it never holds the part open
    /// after its download is over (a part open elsewhere cannot be removed
    /// on every system).
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.end(0, Over::Abandoned);
            let _ = worker.join();
        }
    }
}

/// The hashing thread's work: waits for the prefix to grow, reads the new
/// span back from the part and hashes it, until the part is whole and
/// hashed (or the download abandoned).
fn follow(path: &std::path::Path, shared: &Shared, mut hashed: Hashed) -> io::Result<Hashed> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(hashed.position))?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let (end, over) = {
            let mut target = crate::lock(&shared.target);
            while target.over == Over::Running && target.end <= hashed.position {
                target = shared
                    .moved
                    .wait(target)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
            (target.end, target.over)
        };
        if over == Over::Abandoned {
            return Ok(hashed);
        }
        while hashed.position < end {
            let wanted = (end - hashed.position).min(buffer.len() as u64) as usize;
            let count = match file.read(&mut buffer[..wanted]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the part ends at byte {} before its complete prefix does at {end}",
                            hashed.position
                        ),
                    ));
                }
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            let bytes = &buffer[..count];
            if hashed.first_bytes.len() < hashed.sniff {
                let wanted = hashed.sniff - hashed.first_bytes.len();
                hashed
                    .first_bytes
                    .extend_from_slice(&bytes[..bytes.len().min(wanted)]);
            }
            hashed.digests.update(bytes);
            hashed.position += count as u64;
        }
        if over == Over::Whole {
            return Ok(hashed);
        }
    }
}

/// The digest of bytes already in memory, in lowercase hex.
pub fn hex_digest(algorithm: Algorithm, bytes: &[u8]) -> String {
    match algorithm {
        Algorithm::Md5 => hex(&Md5::digest(bytes)),
        Algorithm::Sha1 => hex(&Sha1::digest(bytes)),
        Algorithm::Sha256 => hex(&Sha256::digest(bytes)),
        Algorithm::Sha512 => hex(&Sha512::digest(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_gives_its_known_digest() {
        // The digests of "abc" from each algorithm's standard.
        let known = [
            ("md5", "900150983cd24fb0d6963f7d28e17f72"),
            ("sha-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "sha-256",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "sha-512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (name, digest) in known {
            let checksum: Checksum = format!("{name}={digest}").parse().unwrap();
            let mut digests = Digests::new(Some(&checksum));
            digests.update(b"a");
            digests.update(b"bc");
            assert_eq!(digests.finish(Some(&checksum)).1, Ok(()), "{name}");
            let mut digests = Digests::new(Some(&checksum));
            digests.update(b"abd");
            assert!(digests.finish(Some(&checksum)).1.is_err(), "{name}");
            assert_eq!(hex_digest(checksum.algorithm, b"abc"), digest, "{name}");
        }
    }
}
