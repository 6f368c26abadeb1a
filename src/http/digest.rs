//! The digests of one body as it arrives: SHA-256 always (the manifest's
//! record of what was saved), and the one a `--checksum` asks for when it is
//! another, so a checked download costs one pass over its bytes, resumed
//! ones included.

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
