//! The URL list: command-line arguments, files and stdin, read as one stream so a
//! list of millions never sits in memory. Each line is `URL` or `URL<TAB>NAME`
//! (see [`parse_line`]), optionally followed by aria2's indented `out=NAME`; blank
//! lines and `#` comments are skipped. A bad line becomes an error that names its
//! source and line number, and the stream goes on. A URL seen before is dropped,
//! remembered only by a 128-bit fingerprint. With `--shard K/N`, only the URLs
//! of part K are read on (see [`crate::partition`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use url::Url;

use crate::fs::fingerprints::FingerprintSet;
use crate::fs::names;
pub use crate::http::request::{ARGUMENT_SOURCE, Checksum, Job, Origin, Plan, Resume, parse_line};
use crate::partition::Shard;

/// The UTF-8 byte-order mark some editors (Notepad, Excel) put at the start
/// of a text file: never part of a line.
pub const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// An input line that is not a URL we can download.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct InvalidLine {
    pub origin: Origin,
    pub message: String,
}

/// An input that could not be opened: a usage error, reported before any download.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read input file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("cannot read input file {}: it is a folder", .0.display())]
    Folder(PathBuf),
    #[error("stdin (`-i -`) can be given only once")]
    StdinTwice,
    /// A URL argument that names a file here: a list meant for `-i`, which
    /// would otherwise be taken as a host (`urls.txt` is `http://urls.txt/`).
    #[error("{0} is a file, not a URL: to read the URLs in it, use -i {0}")]
    FileAsUrl(String),
}

/// aria2's mirrors: after a line's first field, each TAB-separated field that
/// is an http(s) URL is another source of the same file. Returns the line
/// without them (the URL and, if any, its name) and the mirrors.
pub fn split_mirrors(line: &str) -> (String, Vec<Url>) {
    // An indented URL is a URL (as wget2 and aria2 read it), not an empty
    // first field whose mirror it would be.
    let line = line.trim_end_matches(['\n', '\r']).trim_start();
    let mut fields = line.split('\t');
    let mut kept = fields.next().unwrap_or("").to_string();
    let mut mirrors = Vec::new();
    for field in fields {
        let trimmed = field.trim();
        match Url::parse(trimmed) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                mirrors.push(url)
            }
            _ => {
                kept.push('\t');
                kept.push_str(field);
            }
        }
    }
    (kept, mirrors)
}

/// An aria2 option line (`  out=NAME` indented under its URL): the key and value.
fn option_line(line: &str) -> Option<(&str, &str)> {
    if !line.starts_with([' ', '\t']) {
        return None;
    }
    let (key, value) = line.trim().split_once('=')?;
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-');
    is_key.then(|| (key, value.trim_end_matches(['\n', '\r'])))
}

struct Reader {
    label: String,
    reader: Box<dyn BufRead + Send>,
}

/// What a list's length can be counted from before it is read: the URL
/// arguments and the input files, when all are regular files (stdin and pipes
/// can be read only once).
#[derive(Debug, Clone)]
pub struct Estimate {
    arguments: u64,
    files: Vec<PathBuf>,
}

impl Estimate {
    /// The URL lines of every input: lines that are not blank, a `#` comment
    /// or an indented aria2 option (repeats and invalid lines still count).
    /// `None` when `stop` is raised first or a file cannot be read.
    pub fn count(&self, stop: &AtomicBool) -> Option<u64> {
        let mut total = self.arguments;
        let mut buffer = vec![0u8; 1 << 16];
        for path in &self.files {
            let mut file = File::open(path).ok()?;
            let mut line_start = true;
            let mut first = true;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let read = file.read(&mut buffer).ok()?;
                if read == 0 {
                    break;
                }
                let mut read = &buffer[..read];
                if std::mem::take(&mut first) {
                    read = read.strip_prefix(BYTE_ORDER_MARK).unwrap_or(read);
                }
                for &byte in read {
                    if line_start && !matches!(byte, b'\n' | b'\r' | b' ' | b'\t' | b'#') {
                        total += 1;
                    }
                    line_start = byte == b'\n';
                }
            }
        }
        Some(total)
    }
}

/// Every input of a run, opened up front so an unreadable file is a usage error
/// before anything downloads, then read lazily as an iterator of jobs.
pub struct Inputs {
    arguments: std::vec::IntoIter<String>,
    argument_index: usize,
    readers: std::vec::IntoIter<Reader>,
    current: Option<(Reader, usize)>,
    /// Every URL read, by fingerprint: 16 bytes each (see [`FingerprintSet`]).
    seen: FingerprintSet<u128>,
    duplicates: u64,
    buffer: Vec<u8>,
    shard: Option<Shard>,
    /// The last URL read, held until a line that is not one of its aria2
    /// options (or the end) shows it is complete.
    pending: Option<Job>,
    /// The last URL line was dropped (a repeat or invalid): its options go too.
    dropping_options: bool,
    warnings: Vec<InvalidLine>,
    estimate: Option<Estimate>,
    /// `--checksum`: the digest of the one URL given as an argument.
    argument_checksum: Option<Checksum>,
}

impl Inputs {
    /// `paths` are input files, `-` meaning stdin.
    pub fn open(arguments: Vec<String>, paths: &[PathBuf]) -> Result<Inputs, OpenError> {
        if let Some(file) = arguments
            .iter()
            .find(|argument| !argument.contains("://") && Path::new(argument).is_file())
        {
            return Err(OpenError::FileAsUrl(file.clone()));
        }
        let mut readers = Vec::new();
        let mut stdin_used = false;
        let mut estimate = Some(Estimate {
            arguments: arguments.len() as u64,
            files: Vec::new(),
        });
        for path in paths {
            if path == Path::new("-") {
                if stdin_used {
                    return Err(OpenError::StdinTwice);
                }
                stdin_used = true;
                estimate = None;
                readers.push(Reader {
                    label: "<stdin>".to_string(),
                    reader: Box::new(BufReader::new(io::stdin())),
                });
            } else {
                let file = File::open(path).map_err(|source| OpenError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                match file.metadata() {
                    Ok(metadata) if metadata.is_dir() => {
                        return Err(OpenError::Folder(path.clone()));
                    }
                    Ok(metadata) if metadata.is_file() => {
                        if let Some(estimate) = &mut estimate {
                            estimate.files.push(path.clone());
                        }
                    }
                    _ => estimate = None,
                }
                readers.push(Reader {
                    label: path.display().to_string(),
                    reader: Box::new(BufReader::new(file)),
                });
            }
        }
        let mut inputs = Inputs::from_parts(arguments, readers);
        inputs.estimate = estimate;
        Ok(inputs)
    }

    /// What the list's length can be counted from ahead of reading it; `None`
    /// for stdin or a pipe, and with `--shard` (which keeps an unknown part).
    pub fn estimate(&self) -> Option<Estimate> {
        self.estimate.clone().filter(|_| self.shard.is_none())
    }

    /// Inputs read from in-memory text, labelled as given (for tests and the demo).
    pub fn from_text(label: &str, text: String) -> Inputs {
        let reader = Reader {
            label: label.to_string(),
            reader: Box::new(io::Cursor::new(text.into_bytes())),
        };
        Inputs::from_parts(Vec::new(), vec![reader])
    }

    fn from_parts(arguments: Vec<String>, readers: Vec<Reader>) -> Inputs {
        Inputs {
            arguments: arguments.into_iter(),
            argument_index: 0,
            readers: readers.into_iter(),
            current: None,
            seen: FingerprintSet::new(),
            duplicates: 0,
            buffer: Vec::new(),
            shard: None,
            pending: None,
            dropping_options: false,
            warnings: Vec::new(),
            estimate: None,
            argument_checksum: None,
        }
    }

    /// The digest the URL given as an argument must have (`--checksum`, for
    /// a single URL).
    pub fn with_argument_checksum(mut self, checksum: Option<Checksum>) -> Inputs {
        self.argument_checksum = checksum;
        self
    }

    /// Lines read but not acted on (aria2 options grab does not support), since
    /// the last call: the caller prints them as notices.
    pub fn take_warnings(&mut self) -> Vec<InvalidLine> {
        std::mem::take(&mut self.warnings)
    }

    /// Applies an aria2 option line to the URL above it.
    fn apply_option(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), InvalidLine> {
        if self.dropping_options {
            return Ok(());
        }
        let Some(job) = self.pending.as_mut() else {
            return Err(InvalidLine {
                origin,
                message: format!("an option line with no URL above it: {key}={value}"),
            });
        };
        match key {
            "out" => job.name = Some(value.trim().to_string()).filter(|name| !name.is_empty()),
            "checksum" => match value.parse::<Checksum>() {
                Ok(checksum) => job.checksum = Some(checksum),
                Err(message) => {
                    // Asked to be checked and cannot be: not downloaded unchecked.
                    let url = self.pending.take().map(|job| job.url);
                    self.dropping_options = true;
                    return Err(InvalidLine {
                        origin,
                        message: format!(
                            "checksum={value}: {message}; {} is not downloaded",
                            url.map_or_else(String::new, |url| crate::redact::url(&url).into_owned())
                        ),
                    });
                }
            },
            _ => self.warnings.push(InvalidLine {
                origin,
                message: format!(
                    "aria2 option {key}={value} ignored: grab reads only out= and checksum= under a URL"
                ),
            }),
        }
        Ok(())
    }

    /// Keeps only the URLs that `shard` takes (`--shard K/N`); the others are
    /// passed over without a word, as another run's.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Inputs {
        self.shard = shard;
        self
    }

    /// How many URLs were dropped as repeats so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The next raw line with its origin, or `None` when every input is exhausted.
    fn next_line(&mut self) -> Option<Result<(String, Origin), InvalidLine>> {
        if let Some(argument) = self.arguments.next() {
            self.argument_index += 1;
            let origin = Origin {
                source: ARGUMENT_SOURCE.to_string(),
                line: self.argument_index,
            };
            return Some(Ok((argument, origin)));
        }
        loop {
            if self.current.is_none() {
                self.current = Some((self.readers.next()?, 0));
            }
            let (reader, line_number) = self.current.as_mut()?;
            self.buffer.clear();
            match reader.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {
                    // At any line's start, not only the file's: lists joined
                    // with `cat` carry each file's mark.
                    if self.buffer.starts_with(BYTE_ORDER_MARK) {
                        self.buffer.drain(..BYTE_ORDER_MARK.len());
                    }
                    *line_number += 1;
                    let origin = Origin {
                        source: reader.label.clone(),
                        line: *line_number,
                    };
                    return Some(match std::str::from_utf8(&self.buffer) {
                        Ok(text) => Ok((text.to_string(), origin)),
                        Err(_) => Err(InvalidLine {
                            origin,
                            message: "line is not valid UTF-8".to_string(),
                        }),
                    });
                }
                Err(error) => {
                    let origin = Origin {
                        source: reader.label.clone(),
                        line: *line_number + 1,
                    };
                    self.current = None;
                    return Some(Err(InvalidLine {
                        origin,
                        message: format!("read failed, rest of this input skipped: {error}"),
                    }));
                }
            }
        }
    }
}

impl Iterator for Inputs {
    type Item = Result<Job, InvalidLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (text, origin) = match self.next_line() {
                None => return self.pending.take().map(Ok),
                Some(Ok(line)) => line,
                Some(Err(invalid)) => return Some(Err(invalid)),
            };
            if let Some((key, value)) = option_line(&text) {
                match self.apply_option(key, value, origin) {
                    Ok(()) => continue,
                    Err(invalid) => return Some(Err(invalid)),
                }
            }
            let (text, mirrors) = split_mirrors(&text);
            let item = match parse_line(&text) {
                Ok(None) => continue,
                Ok(Some((url, name))) => {
                    if self.shard.is_some_and(|shard| !shard.takes_url(&url)) {
                        // Another run's URL: its option lines go with it.
                        self.dropping_options = true;
                        continue;
                    }
                    self.dropping_options = !self.seen.add(names::fingerprint(url.as_str()));
                    if self.dropping_options {
                        self.duplicates += 1;
                        continue;
                    }
                    let checksum = match origin.source == ARGUMENT_SOURCE {
                        true => self.argument_checksum.clone(),
                        false => None,
                    };
                    let job = Job {
                        url,
                        name,
                        origin,
                        plan: None,
                        rank: None,
                        queued_at: std::time::Duration::ZERO,
                        checksum,
                        mirrors,
                    };
                    match self.pending.replace(job) {
                        Some(complete) => Ok(complete),
                        None => continue,
                    }
                }
                Err(message) => {
                    self.dropping_options = true;
                    Err(InvalidLine { origin, message })
                }
            };
            return Some(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_separated_urls_after_the_first_are_its_mirrors() {
        let (line, mirrors) =
            split_mirrors("http://a/x.bin\thttps://b/y.bin\tname.bin\thttp://c/z\n");
        assert_eq!(line, "http://a/x.bin\tname.bin");
        let mirrors: Vec<&str> = mirrors.iter().map(Url::as_str).collect();
        assert_eq!(mirrors, ["https://b/y.bin", "http://c/z"]);
        // A name that is not a URL stays a name; a lone URL has no mirrors.
        assert_eq!(split_mirrors("http://a/x\tx.bin").1, Vec::<Url>::new());
        assert_eq!(split_mirrors("http://a/x").0, "http://a/x");
        assert_eq!(
            split_mirrors("\thttp://a/x\thttp://b/x\n"),
            (
                "http://a/x".to_string(),
                vec![Url::parse("http://b/x").unwrap()]
            )
        );
        let mut inputs = Inputs::from_text("list", "http://a/1\thttp://b/1\n".to_string());
        let job = inputs.next().unwrap().unwrap();
        assert_eq!((job.url.as_str(), job.name), ("http://a/1", None));
        assert_eq!(job.mirrors.len(), 1);
    }

    #[test]
    fn a_tab_separates_url_and_name() {
        let (url, name) = parse_line("  https://h/a.jpg\tmy cat.jpg \n")
            .unwrap()
            .unwrap();
        assert_eq!(url.as_str(), "https://h/a.jpg");
        assert_eq!(name.as_deref(), Some("my cat.jpg"));
        assert_eq!(parse_line("http://h/a").unwrap().unwrap().1, None);
    }

    #[test]
    fn a_line_without_a_tab_is_one_url_spaces_and_all() {
        let (url, name) = parse_line("https://h/my photos/a.png\n").unwrap().unwrap();
        assert_eq!(url.as_str(), "https://h/my%20photos/a.png");
        assert_eq!(name, None);
    }

    #[test]
    fn errors_quote_the_line_and_say_what_was_taken_as_what() {
        let error = parse_line("not a url\tcat.jpg\n").unwrap_err();
        assert!(error.starts_with("not a valid URL ("), "{error}");
        assert!(
            error.ends_with(
                "\"not a url\" taken as the URL and \"cat.jpg\" as the name, from the line \"not a url\\tcat.jpg\""
            ),
            "{error}"
        );
        let error = parse_line("ftp://h/x y.png").unwrap_err();
        assert_eq!(
            error,
            "not an http or https URL: the whole line \"ftp://h/x y.png\" taken as the URL (a TAB separates a URL from a name)"
        );
    }

    #[test]
    fn aria2_out_lines_name_the_url_above_and_other_options_warn() {
        let text = "http://h/1.jpg\n  out=one.jpg\n\tdir=/tmp\nhttp://h/2.jpg\n out=\nhttp://h/1.jpg\n  out=dropped.jpg\n  out=orphan-of-a-repeat.jpg\nnot a url\n  out=x.jpg\nhttp://h/3.jpg\tthree.jpg\n  out=wins.jpg\n";
        let mut inputs = Inputs::from_text("list", text.to_string());
        let mut named = Vec::new();
        let mut errors = Vec::new();
        for item in inputs.by_ref() {
            match item {
                Ok(job) => named.push((job.url.path().to_string(), job.name, job.origin.line)),
                Err(invalid) => errors.push(invalid.to_string()),
            }
        }
        assert_eq!(
            named,
            [
                ("/1.jpg".to_string(), Some("one.jpg".to_string()), 1),
                ("/2.jpg".to_string(), None, 4),
                ("/3.jpg".to_string(), Some("wins.jpg".to_string()), 11),
            ]
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("list:9: not a valid URL"),
            "{errors:?}"
        );
        let warnings: Vec<String> = inputs
            .take_warnings()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            warnings,
            [
                "list:3: aria2 option dir=/tmp ignored: grab reads only out= and checksum= under a URL"
            ]
        );
        let mut orphan = Inputs::from_text("list", "  out=a.jpg\nhttp://h/a\n".to_string());
        let first = orphan.next().unwrap().unwrap_err().to_string();
        assert_eq!(
            first,
            "list:1: an option line with no URL above it: out=a.jpg"
        );
        assert!(orphan.next().unwrap().is_ok());
    }

    #[test]
    fn a_url_without_a_scheme_is_http_as_in_curl_and_wget() {
        for (text, expected) in [
            ("example.org/a.jpg", "http://example.org/a.jpg"),
            ("localhost:8080/a.jpg", "http://localhost:8080/a.jpg"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("[::1]:8080/x", "http://[::1]:8080/x"),
            ("https://h/a", "https://h/a"),
        ] {
            let (url, _) = parse_line(text).unwrap().unwrap();
            assert_eq!(url.as_str(), expected, "{text}");
        }
        for text in [
            "mailto:a@b.org",
            "file:/etc/passwd",
            "ftp://h/a",
            "javascript:alert(1)",
        ] {
            assert!(parse_line(text).is_err(), "{text}");
        }
    }

    #[test]
    fn skips_blank_and_comment_lines() {
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("   \t").unwrap(), None);
        assert_eq!(parse_line("# http://h/a").unwrap(), None);
    }

    #[test]
    fn rejects_other_schemes_and_junk() {
        assert!(
            parse_line("ftp://h/a")
                .unwrap_err()
                .contains("not an http or https URL")
        );
        assert!(parse_line("just words").is_err());
        assert!(parse_line("file:///etc/passwd").is_err());
    }

    #[test]
    fn stream_reports_line_numbers_and_drops_duplicates() {
        let text = "http://h/1.jpg\n\n# c\nnot a url\nhttp://h/1.jpg\nhttp://h/2.jpg\tx.jpg\n";
        let mut inputs = Inputs::from_text("list.txt", text.to_string());
        let items: Vec<_> = inputs.by_ref().collect();
        assert_eq!(items.len(), 3);
        // A URL is held until the line after it shows it has no aria2 options,
        // so the invalid line below it is reported first.
        assert_eq!(
            items[0].as_ref().unwrap_err().origin.to_string(),
            "list.txt:4"
        );
        assert_eq!(items[1].as_ref().unwrap().origin.to_string(), "list.txt:1");
        let last = items[2].as_ref().unwrap();
        assert_eq!((last.origin.line, last.name.as_deref()), (6, Some("x.jpg")));
        assert_eq!(inputs.duplicates(), 1);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_url() {
        // The second as `cat` leaves it, joining two files.
        let text = "\u{FEFF}http://h/1.jpg\n\u{FEFF}http://h/2.jpg\n".to_string();
        let urls: Vec<String> = Inputs::from_text("list", text)
            .map(|item| item.unwrap().url.to_string())
            .collect();
        assert_eq!(urls, ["http://h/1.jpg", "http://h/2.jpg"]);
        let (_folder, path) = crate::fs::scratch_file("list.txt");
        std::fs::write(&path, "\u{FEFF}# a comment\nhttp://h/a\n").unwrap();
        let inputs = Inputs::open(Vec::new(), &[path]).unwrap();
        let estimate = inputs.estimate().unwrap();
        assert_eq!(estimate.count(&AtomicBool::new(false)), Some(1));
    }

    #[test]
    fn arguments_come_first() {
        let inputs = Inputs::from_parts(vec!["http://h/a".into()], Vec::new());
        let jobs: Vec<_> = inputs.collect();
        assert_eq!(jobs[0].as_ref().unwrap().origin.to_string(), "argument 1");
    }
}
