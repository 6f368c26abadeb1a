//! One attempt at a download, whatever client feeds it: the response head is
//! checked (status, resume range, size and type limits), the name settled and
//! the `.part` opened; then the body's chunks are written, hashed and counted;
//! then the length is checked, the part committed under its final name and the
//! manifest told.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::error::http_error;
use super::{Context, DownloadError, Saved, Settings};
use crate::get::input::{Job, Resume};
use crate::get::manifest::{self, Entry};
use crate::get::naming;
use crate::get::part::PartFile;

/// The parts of a response head a transfer looks at.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub content_range: Option<String>,
    pub content_disposition: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub retry_after: Option<String>,
    pub final_url: Option<String>,
    /// Every `X-Robots-Tag` value, for the opt-out ([`Settings::refused_robots`]).
    pub robots: Vec<String>,
}

impl Head {
    /// Reads the head through a header lookup, the same for both clients.
    pub fn read(
        status: u16,
        final_url: Option<String>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Head {
        Head {
            status,
            content_type: header("content-type"),
            content_length: header("content-length").and_then(|value| value.trim().parse().ok()),
            content_range: header("content-range"),
            content_disposition: header("content-disposition"),
            etag: header("etag"),
            last_modified: header("last-modified"),
            retry_after: header("retry-after"),
            final_url,
            robots: Vec::new(),
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date.
pub(super) fn parse_retry_after(value: &str) -> Option<u64> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(seconds);
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs(),
    )
}

/// `bytes START-END/TOTAL` as (START, TOTAL); TOTAL may be `*`.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The product token `X-Robots-Tag` lines may address (`grab: noai`).
pub const ROBOTS_TOKEN: &str = "grab";

/// The first of `refused` directives that `X-Robots-Tag` values apply to us, as
/// img2dataset reads them: `DIRECTIVE, ...` applies to every agent, `TOKEN:
/// DIRECTIVE, ...` only when TOKEN is ours.
pub fn robots_refusal(values: &[String], refused: &[String]) -> Option<String> {
    values.iter().find_map(|value| {
        let (agent, directives) = match value.split_once(':') {
            Some((agent, directives)) => (Some(agent.trim().to_lowercase()), directives),
            None => (None, value.as_str()),
        };
        if agent.is_some_and(|agent| agent != ROBOTS_TOKEN) {
            return None;
        }
        directives
            .split(',')
            .map(|directive| directive.trim().to_lowercase())
            .find(|directive| refused.iter().any(|refused| refused == directive))
    })
}

/// Redirects followed for one request, as curl's and wget's defaults allow
/// (wget: 20, curl with -L: 50; browsers about 20): 10 is more than real sites
/// use and stops loops early.
pub const MAX_REDIRECTS: u32 = 10;

/// How many first bytes of a body `--accept` judges: all that
/// [`naming::sniff`] looks at.
pub const SNIFF_BYTES: usize = 512;

/// One attempt at a download, fed by a client driver: the head once, then chunks.
pub struct Transfer<'a> {
    job: &'a Job,
    /// Where the next request goes: the job's URL, then where redirects lead.
    url: url::Url,
    /// Redirects followed so far.
    hops: u32,
    context: &'a Context,
    /// The resume this attempt asks for, if any.
    resume: Option<&'a Resume>,
    /// Reserved name, given back if the transfer is not finished.
    name: Option<String>,
    part: Option<PartFile>,
    /// The body, when the context keeps bodies in memory instead of a part file.
    memory: Option<Vec<u8>>,
    expected: Option<u64>,
    hasher: Sha256,
    head: Head,
    /// Whether the first bytes were checked against `--accept` (or need not be).
    sniffed: bool,
    /// The body's first bytes, gathered until [`SNIFF_BYTES`] are in, however
    /// the server splits them, so a body sent a byte at a time is judged the
    /// same as one sent whole.
    first_bytes: Vec<u8>,
    /// This transfer's id with the progress sink, once the body started.
    progress: Option<u64>,
}

impl<'a> Transfer<'a> {
    pub fn new(job: &'a Job, context: &'a Context, resume: Option<&'a Resume>) -> Self {
        Transfer {
            job,
            url: job.url.clone(),
            hops: 0,
            context,
            resume,
            name: None,
            part: None,
            memory: None,
            expected: None,
            hasher: Sha256::new(),
            head: Head::default(),
            sniffed: context.settings.accept.is_empty(),
            first_bytes: Vec::new(),
            progress: None,
        }
    }

    /// The URL this transfer asks for.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Follows a redirect, when `status` with `location` is one: the next request
    /// goes where it leads. Only `http` and `https` are followed, at most
    /// [`MAX_REDIRECTS`] times; anything else ends the transfer with a final
    /// error, before a byte is written. False when the response is not a
    /// redirect (a 3xx without a Location is an HTTP error for [`Transfer::head`]).
    pub fn follow(&mut self, status: u16, location: Option<&str>) -> Result<bool, DownloadError> {
        let (301 | 302 | 303 | 307 | 308, Some(location)) = (status, location) else {
            return Ok(false);
        };
        let next = self
            .url
            .join(location.trim())
            .map_err(|_| DownloadError::BadRedirect {
                location: location.to_string(),
            })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(DownloadError::RedirectScheme {
                scheme: next.scheme().to_string(),
            });
        }
        self.hops += 1;
        if self.hops > MAX_REDIRECTS {
            return Err(DownloadError::TooManyRedirects);
        }
        tracing::debug!(url = %self.job.url, to = %next, "redirected");
        self.url = next;
        Ok(true)
    }

    fn settings(&self) -> &Settings {
        &self.context.settings
    }

    fn directory(&self) -> &Path {
        &self.context.settings.output_dir
    }

    /// Headers this attempt sends: a Range from where the part file ends, valid only
    /// if the file is unchanged (`If-Range`), so a changed file comes back whole.
    pub fn request_headers(&self) -> Vec<(&'static str, String)> {
        match self.resume {
            Some(resume) => vec![
                ("range", format!("bytes={}-", resume.offset)),
                ("if-range", resume.validator.clone()),
            ],
            None => Vec::new(),
        }
    }

    /// The response head: an error status or a refused type ends the transfer
    /// before any byte is written; otherwise the name is settled and the `.part`
    /// opened (appended to, when the server agreed to resume).
    pub fn head(&mut self, head: Head) -> Result<(), DownloadError> {
        if !(200..300).contains(&head.status) {
            return Err(http_error(head.status, head.retry_after.as_deref()));
        }
        let resumed_from = match (self.resume, head.status) {
            // A 206 belongs only if it starts where the part ends, its length
            // reaches the total it announces, and it comes from the version
            // recorded: a server that ignores If-Range must not get old and new
            // bytes spliced. Otherwise the retry starts the file over.
            (Some(resume), 206) => {
                let range = head.content_range.as_deref().and_then(parse_content_range);
                let whole = match (range, head.content_length) {
                    (Some((start, Some(total))), Some(length)) => start + length == total,
                    _ => true,
                };
                let same_version = match resume.validator.starts_with('"') {
                    true => head.etag.as_deref() == Some(resume.validator.as_str()),
                    false => head.last_modified.as_deref() == Some(resume.validator.as_str()),
                };
                match range {
                    Some((start, _)) if start == resume.offset && whole && same_version => {
                        Some(resume.offset)
                    }
                    _ => return Err(DownloadError::RangeMismatch),
                }
            }
            (None, 206) => return Err(DownloadError::RangeMismatch),
            _ => None,
        };
        self.expected = match resumed_from {
            Some(offset) => {
                let total = head
                    .content_range
                    .as_deref()
                    .and_then(parse_content_range)
                    .and_then(|(_, total)| total);
                total.or(head.content_length.map(|length| offset + length))
            }
            None => head.content_length,
        };
        let settings = self.settings();
        if let (Some(limit), Some(expected)) = (settings.max_size, self.expected)
            && expected > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        if let Some(content_type) = head.content_type.as_deref()
            && !settings.accept.is_empty()
            && !naming::content_type_matches(content_type, &settings.accept)
        {
            return Err(DownloadError::NotAccepted {
                found: content_type.to_string(),
            });
        }
        if let Some(directive) = robots_refusal(&head.robots, &settings.refused_robots) {
            return Err(DownloadError::OptedOut { directive });
        }
        if self.context.in_memory {
            // Nothing named, nothing on disk: the caller takes the bytes.
            let capacity = self
                .expected
                .unwrap_or(0)
                .min(settings.max_size.unwrap_or(0));
            self.memory = Some(Vec::with_capacity(capacity as usize));
            if let Some(sink) = &self.context.progress {
                let label = self.job.name.as_deref().unwrap_or(self.job.url.as_str());
                self.progress = Some(sink.started(label, self.expected));
            }
            self.head = head;
            return Ok(());
        }
        let (name, part) = match &self.job.plan {
            Some(plan) => {
                // The batch claimed this name for the job: its own part file, reused.
                self.name = Some(plan.name.clone());
                let part =
                    PartFile::reopen(self.directory(), &plan.name, resumed_from.unwrap_or(0))
                        .map_err(|error| {
                            self.write_error(
                                &format!("{}{}", plan.name, naming::PART_SUFFIX),
                                error,
                            )
                        })?;
                (
                    plan.name.clone(),
                    if plan.replace { part.replacing() } else { part },
                )
            }
            None => {
                let suggested = if settings.content_disposition {
                    head.content_disposition
                        .as_deref()
                        .and_then(naming::disposition_filename)
                } else {
                    None
                };
                let desired = naming::desired_name_with(
                    &self.job.url,
                    self.job.name.as_deref(),
                    suggested.as_deref(),
                    head.content_type.as_deref(),
                );
                let name = self
                    .context
                    .names
                    .reserve(&desired)
                    .map_err(|error| self.write_error(&desired, error))?;
                self.name = Some(name.clone());
                let part = PartFile::create(self.directory(), &name).map_err(|error| {
                    self.write_error(&format!("{name}{}", naming::PART_SUFFIX), error)
                })?;
                (name, part)
            }
        };
        if let Some(offset) = resumed_from {
            // The hash covers the whole file: read back the bytes kept.
            File::open(part.part_path())
                .and_then(|kept| manifest::hash_reader(kept.take(offset), &mut self.hasher))
                .map_err(|error| self.write_error(&name, error))?;
            self.sniffed = true;
        }
        if let Some(manifest) = &self.context.manifest {
            let entry = Entry::Started {
                url: self.job.url.to_string(),
                name: name.clone(),
                etag: head.etag.clone(),
                last_modified: head.last_modified.clone(),
            };
            manifest
                .append(&entry)
                .map_err(|error| self.write_error(manifest::MANIFEST_NAME, error))?;
        }
        if let Some(sink) = &self.context.progress {
            let id = sink.started(&name, self.expected);
            if let Some(offset) = resumed_from {
                sink.advanced(id, offset);
            }
            self.progress = Some(id);
        }
        tracing::debug!(url = %self.job.url, name, status = head.status, length = ?self.expected, "response");
        self.part = Some(part);
        self.head = head;
        Ok(())
    }

    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        if !self.sniffed {
            let wanted = SNIFF_BYTES - self.first_bytes.len();
            self.first_bytes
                .extend_from_slice(&bytes[..bytes.len().min(wanted)]);
            if self.first_bytes.len() >= SNIFF_BYTES {
                self.sniffed = true;
                let first_bytes = std::mem::take(&mut self.first_bytes);
                self.check_first_bytes(&first_bytes)?;
            }
        }
        let limit = self.settings().max_size;
        if let Some(memory) = self.memory.as_mut() {
            memory.extend_from_slice(bytes);
            self.hasher.update(bytes);
            if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
                sink.advanced(id, bytes.len() as u64);
            }
            return match limit {
                Some(limit) if memory.len() as u64 > limit => {
                    Err(DownloadError::TooLarge { limit })
                }
                _ => Ok(()),
            };
        }
        let part = self.part.as_mut().expect("head() comes before the body");
        if let Err(error) = part.write(bytes) {
            let path = part.part_path().display().to_string();
            return Err(DownloadError::Write {
                path,
                message: error.to_string(),
            });
        }
        self.hasher.update(bytes);
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.advanced(id, bytes.len() as u64);
        }
        if let Some(limit) = limit
            && part.written() > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        Ok(())
    }

    /// With `--accept`, the first bytes must not contradict it: a page of HTML
    /// served as `image/jpeg` is refused, and so is a body of unknown type that
    /// came without a Content-Type.
    fn check_first_bytes(&self, bytes: &[u8]) -> Result<(), DownloadError> {
        let accept = &self.settings().accept;
        if accept.is_empty() {
            return Ok(());
        }
        match naming::sniff(bytes) {
            Some(found) if !naming::content_type_matches(found, accept) => {
                Err(DownloadError::NotAccepted {
                    found: format!("{found} (by its first bytes)"),
                })
            }
            None if self.head.content_type.is_none() => Err(DownloadError::NotAccepted {
                found: "unknown (no Content-Type, unrecognised bytes)".to_string(),
            }),
            _ => Ok(()),
        }
    }

    pub fn received(&self) -> u64 {
        if let Some(memory) = &self.memory {
            return memory.len() as u64;
        }
        self.part.as_ref().map_or(0, PartFile::written)
    }

    /// The reason for a body that ended in an error: a short body is reported as
    /// such when the error itself says nothing more useful.
    pub fn body_error(&self, error: DownloadError) -> DownloadError {
        match (error, self.expected) {
            (DownloadError::Network(_), Some(expected)) if self.received() < expected => {
                DownloadError::Truncated {
                    received: self.received(),
                    expected,
                }
            }
            (error, _) => error,
        }
    }

    /// The body ended cleanly: check its length against what the head announced,
    /// move it to its final name and record it.
    pub fn finish(mut self) -> Result<Saved, DownloadError> {
        if !self.sniffed {
            // A body shorter than the sniffing window: judge what there is.
            let first_bytes = std::mem::take(&mut self.first_bytes);
            self.check_first_bytes(&first_bytes)?;
        }
        if let Some(body) = self.memory.take() {
            let received = body.len() as u64;
            if let Some(expected) = self.expected
                && received != expected
            {
                return Err(DownloadError::Truncated { received, expected });
            }
            return Ok(Saved {
                name: self.job.name.clone().unwrap_or_default(),
                bytes: received,
                status: Some(self.head.status),
                content_type: self.head.content_type.take(),
                sha256: manifest::hex(&std::mem::take(&mut self.hasher).finalize()),
                final_url: self.head.final_url.take(),
                body: Some(Box::new(super::outcome::Body(body))),
            });
        }
        let part = self.part.take().expect("head() comes before finish()");
        let received = part.written();
        if let Some(expected) = self.expected
            && received != expected
        {
            return Err(DownloadError::Truncated { received, expected });
        }
        let name = self.name.clone().expect("head() settled a name");
        part.commit()
            .map_err(|error| self.write_error(&name, error))?;
        // The name now belongs to the file on disk; keep it reserved.
        self.name = None;
        let sha256 = manifest::hex(&std::mem::take(&mut self.hasher).finalize());
        if let Some(manifest) = &self.context.manifest {
            let time = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let entry = Entry::Saved {
                url: self.job.url.to_string(),
                name: name.clone(),
                size: received,
                sha256: sha256.clone(),
                time,
            };
            manifest
                .append(&entry)
                .map_err(|error| self.write_error(manifest::MANIFEST_NAME, error))?;
        }
        Ok(Saved {
            name,
            bytes: received,
            status: Some(self.head.status),
            content_type: self.head.content_type.take(),
            sha256,
            final_url: self.head.final_url.take(),
            body: None,
        })
    }

    fn write_error(&self, name: &str, error: io::Error) -> DownloadError {
        DownloadError::Write {
            path: self.directory().join(name).display().to_string(),
            message: error.to_string(),
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.ended(id);
        }
        // The part file removes itself; the name goes back for other jobs.
        self.part.take();
        if let Some(name) = self.name.take() {
            self.context.names.release(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        assert_eq!(parse_retry_after("7"), Some(7));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn robots_directives_for_every_agent_or_ours_only() {
        let refused: Vec<String> = ["noai", "noimageai", "noindex", "none"]
            .map(String::from)
            .to_vec();
        let refusal = |values: &[&str]| {
            let values: Vec<String> = values.iter().map(|value| value.to_string()).collect();
            robots_refusal(&values, &refused)
        };
        assert_eq!(refusal(&["noarchive, NoAI"]), Some("noai".to_string()));
        assert_eq!(refusal(&["grab: noimageai"]), Some("noimageai".to_string()));
        assert_eq!(refusal(&["otherbot: noindex"]), None);
        assert_eq!(
            refusal(&["otherbot: noai", "none"]),
            Some("none".to_string())
        );
        assert_eq!(refusal(&["nofollow"]), None);
        assert_eq!(robots_refusal(&["noai".to_string()], &[]), None);
    }
}
