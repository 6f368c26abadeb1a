//! What one download asks for: the URL, where it came from (for messages),
//! the name the input gave, and what an earlier run left to resume or replace.
//! Every command that downloads (`get`, `dataset`, the queue) builds these;
//! none of it knows which command did. Also how a URL is read from a line of
//! text (a list, a table's cell), the same for every command.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// Where a URL came from, for messages: `urls.txt:12`, `<stdin>:3`, `argument 2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source == ARGUMENT_SOURCE {
            write!(formatter, "argument {}", self.line)
        } else {
            write!(formatter, "{}:{}", self.source, self.line)
        }
    }
}

/// The source name of URLs given as arguments.
pub const ARGUMENT_SOURCE: &str = "<argument>";

/// One URL to download.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub url: Url,
    /// The file name the input asked for, if any (still to be sanitised).
    pub name: Option<String>,
    pub origin: Origin,
    /// Set by the batch when an earlier run left this URL's file or part file.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// Its place, in input order, among the batch's new downloads sharing its
    /// base name (see `NameRegistry::reserve` in `fs/names.rs`); set by the planner.
    #[serde(default)]
    pub rank: Option<u64>,
    /// When the batch queued it, from the batch's start.
    #[serde(default)]
    pub queued_at: std::time::Duration,
    /// The digest the whole file must have.
    #[serde(default)]
    pub checksum: Option<Checksum>,
    /// Other sources of the same file (aria2's TAB-separated mirrors), tried
    /// in order when `url` fails for good; the name comes from `url`.
    #[serde(default)]
    pub mirrors: Vec<Url>,
}

impl Job {
    /// The URL of source `index`: `url` first, then each mirror.
    pub fn source(&self, index: usize) -> Option<&Url> {
        match index {
            0 => Some(&self.url),
            _ => self.mirrors.get(index - 1),
        }
    }
}

/// What the batch decided from the manifest for a URL seen before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The name, already claimed for this job.
    pub name: String,
    /// Continue the part file from where it ends.
    pub resume: Option<Resume>,
    /// Replace the finished file at the name (`--force`, and `-N` when the
    /// server's copy changed).
    pub replace: bool,
    /// `-N`: ask only for a copy newer than the file already complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Conditional>,
}

/// The file a `-N` request re-checks: its validators for `If-None-Match` and
/// `If-Modified-Since`, and what it holds, for the outcome of a 304.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditional {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// Where a part file ends, and the validator that proves the server's file has not
/// changed since (ETag, else Last-Modified) for `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub offset: u64,
    pub validator: String,
}

/// A digest the downloaded file must have (`--checksum`, aria2's
/// `checksum=` line): a mismatch is a failed download, and nothing is left
/// under the final name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub hex: String,
}

/// The digests `--checksum` knows, by aria2's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// aria2's name (`sha-256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha-1",
            Algorithm::Sha256 => "sha-256",
            Algorithm::Sha512 => "sha-512",
        }
    }

    fn hex_digits(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl std::str::FromStr for Checksum {
    type Err = String;

    /// `TYPE=HEX`, TYPE as aria2 spells it (`md5`, `sha-1`, `sha-256`,
    /// `sha-512`; without the dash too), HEX in either case.
    fn from_str(text: &str) -> Result<Checksum, String> {
        let (kind, hex) = text
            .split_once('=')
            .ok_or_else(|| format!("expected TYPE=HEX (such as sha-256=...), got {text}"))?;
        let algorithm = match kind.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(format!(
                    "unknown checksum type {kind:?}: md5, sha-1, sha-256 or sha-512"
                ));
            }
        };
        let hex = hex.trim().to_ascii_lowercase();
        if hex.len() != algorithm.hex_digits()
            || !hex.chars().all(|digit| digit.is_ascii_hexdigit())
        {
            return Err(format!(
                "a {} checksum is {} hex digits, got {hex:?}",
                algorithm.name(),
                algorithm.hex_digits()
            ));
        }
        Ok(Checksum { algorithm, hex })
    }
}

/// Parses one input line: `Ok(None)` for blank lines and comments. A TAB
/// separates the URL from a name; a line without one is the whole URL, its
/// spaces percent-encoded, so `https://h/my photos/a.png` is never misread as a
/// URL and a name. An error quotes the line and says which part was taken as what.
/// A `#fragment` is dropped: it is never sent, so `a.jpg#top` is `a.jpg`, one
/// download (as wget2 takes it).
pub fn parse_line(line: &str) -> Result<Option<(Url, Option<String>)>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (address, name) = match trimmed.split_once('\t') {
        Some((address, rest)) => (address.trim(), Some(rest.trim())),
        None => (trimmed, None),
    };
    let taken = || match name {
        Some(name) => {
            format!("{address:?} taken as the URL and {name:?} as the name, from the line {line:?}")
        }
        None => {
            format!("the whole line {line:?} taken as the URL (a TAB separates a URL from a name)")
        }
    };
    let mut url =
        parse_url(address).map_err(|error| format!("not a valid URL ({error}): {}", taken()))?;
    url.set_fragment(None);
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("not an http or https URL: {}", taken()));
    }
    Ok(Some((
        url,
        name.filter(|name| !name.is_empty()).map(str::to_string),
    )))
}

/// A URL as curl and wget take it: one without a scheme (`example.org/a.jpg`,
/// `localhost:8080/a.jpg`, `[::1]:8080/a`) is `http://`. A text with a scheme
/// of its own (`ftp://h/a`, `mailto:x`) keeps it, to be refused as such.
pub fn parse_url(text: &str) -> Result<Url, url::ParseError> {
    let parsed = Url::parse(text);
    if text.contains("://") {
        return parsed;
    }
    // `localhost:8080/a` parses with `localhost` as its scheme: a port after
    // the colon says it is a host.
    let host_and_port = text
        .split_once(':')
        .is_some_and(|(_, rest)| rest.starts_with(|character: char| character.is_ascii_digit()));
    match &parsed {
        Ok(_) if !host_and_port => parsed,
        _ => match Url::parse(&format!("http://{text}")) {
            Ok(url) if url.host().is_some() => Ok(url),
            _ => parsed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_fragment_is_dropped() {
        let (url, name) = parse_line("http://h/a.jpg#top\tb.jpg\n").unwrap().unwrap();
        assert_eq!(
            (url.as_str(), name.as_deref()),
            ("http://h/a.jpg", Some("b.jpg"))
        );
        let (url, _) = parse_line("http://h/a.jpg?x=1#").unwrap().unwrap();
        assert_eq!(url.as_str(), "http://h/a.jpg?x=1");
    }

    #[test]
    fn checksums_take_arias_spellings_and_check_their_length() {
        let digest = "a".repeat(64);
        let parsed: Checksum = format!("SHA-256={}", digest.to_uppercase())
            .parse()
            .unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Sha256);
        assert_eq!(parsed.hex, digest);
        assert!(format!("sha256={digest}").parse::<Checksum>().is_ok());
        assert!(
            format!("md5={}", "0".repeat(32))
                .parse::<Checksum>()
                .is_ok()
        );
        for bad in [
            format!("sha-1={digest}"),
            "sha-256".to_string(),
            format!("crc32={digest}"),
            format!("sha-256={}", "g".repeat(64)),
        ] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad}");
        }
    }
}
