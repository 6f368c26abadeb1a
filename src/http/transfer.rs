//! One attempt at a download, whatever client feeds it: the response head is
//! checked (status, resume range, size and type limits), the name settled and
//! the `.part` opened; then the body's chunks are written, hashed and counted;
//! then the length is checked, the part committed under its final name and the
//! manifest told.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::digest::{Digests, PrefixHasher};
use super::encoding::{self, Decoder};
use super::error::http_error;
use super::pace::Pace;
use super::{BodySink, Context, DownloadError, Reply, Saved, Settings};
use crate::fs::manifest::{self, Entry};
use crate::fs::names;
use crate::fs::part::PartFile;
use crate::fs::ranges::Ranges;
use crate::http::request::{Conditional, Job, Plan, Resume};
use crate::image::mime;

/// The parts of a response head a transfer looks at.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub content_range: Option<String>,
    /// `Accept-Ranges`: `none` says a resume would be refused.
    pub accept_ranges: Option<String>,
    pub content_disposition: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub retry_after: Option<String>,
    pub final_url: Option<String>,
    /// Every `X-Robots-Tag` value, for the opt-out
    /// ([`Acceptance::refused_robots`](super::settings::Acceptance::refused_robots)).
    pub robots: Vec<String>,
    /// `Content-Encoding`, decoded with `--compressed`.
    pub content_encoding: Option<String>,
}

impl Head {
    /// Reads the head through a header lookup, the same for both clients.
    pub fn read(
        status: u16,
        final_url: Option<String>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Head {
        // With a Transfer-Encoding the message ends where its framing says, and
        // a Content-Length beside it means nothing (RFC 9112, section 6.3): both
        // clients decode the chunks, so the length must not be held against them.
        let content_length = match header("transfer-encoding") {
            Some(_) => None,
            None => header("content-length").and_then(|value| value.trim().parse().ok()),
        };
        Head {
            status,
            content_type: header("content-type"),
            content_length,
            content_range: header("content-range"),
            accept_ranges: header("accept-ranges"),
            content_disposition: header("content-disposition"),
            etag: header("etag"),
            last_modified: header("last-modified"),
            retry_after: header("retry-after"),
            final_url,
            robots: Vec::new(),
            content_encoding: header("content-encoding"),
        }
    }

    /// Whether `Accept-Ranges` names `unit` (`bytes`, or `none` to refuse).
    fn accept_ranges_is(&self, unit: &str) -> bool {
        self.accept_ranges
            .as_deref()
            .is_some_and(|value| value.trim().eq_ignore_ascii_case(unit))
    }

    /// What a resume of this response's body may send in `If-Range`.
    fn resume_validator(&self) -> Option<String> {
        resume_validator(self.etag.as_deref(), self.last_modified.as_deref())
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

/// The validator a resume may send in `If-Range` (RFC 9110, section 13.1.5): a
/// strong ETag, else Last-Modified. A weak ETag (`W/"..."`) says "equivalent",
/// not "the same bytes", and is never sent.
pub fn resume_validator(etag: Option<&str>, last_modified: Option<&str>) -> Option<String> {
    etag.filter(|tag| !tag.starts_with("W/"))
        .or(last_modified)
        .map(str::to_string)
}

/// The TOTAL of an unsatisfied range's `bytes */TOTAL` (a 416's Content-Range).
fn parse_unsatisfied_range(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes")?
        .trim()
        .strip_prefix("*/")?
        .trim()
        .parse()
        .ok()
}

/// `bytes START-END/TOTAL` as (START, TOTAL); TOTAL may be `*`.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Headers that carry credentials, kept from hosts a redirect leads to.
fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|credential| name.eq_ignore_ascii_case(credential))
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

/// A body its encoding cannot decode (corrupt, or cut short).
fn decode_error(error: io::Error) -> DownloadError {
    DownloadError::Decode(format!("the compressed body does not decode: {error}"))
}

/// A failed write to the stream a body goes to: its reader went away (a
/// closed pipe: the download stops, quietly), or any other write error, by
/// the rule every write follows (a full disk stops the run).
fn stream_error(error: io::Error) -> DownloadError {
    match error.kind() {
        io::ErrorKind::BrokenPipe => DownloadError::OutputClosed,
        _ => {
            let stdout = Path::new("standard output");
            DownloadError::writing(stdout, stdout, error)
        }
    }
}

/// Redirects followed for one request, as curl's and wget's defaults allow
/// (wget: 20, curl with -L: 50; browsers about 20): 10 is more than real sites
/// use and stops loops early.
pub const MAX_REDIRECTS: u32 = 10;

/// How many first bytes of a body `--accept` judges: all that
/// [`mime::sniff`] looks at.
pub const SNIFF_BYTES: usize = 512;

/// One attempt at a download, fed by a client driver: the head once, then chunks.
pub struct Transfer<'a> {
    job: &'a Job,
    /// Where the next request goes: the job's URL, then where redirects lead.
    url: url::Url,
    /// The source the attempt asked first (the job's URL or a mirror).
    asked: url::Url,
    /// Redirects followed so far.
    hops: u32,
    context: &'a Context,
    /// The name and part this attempt continues, if any: the batch's plan from
    /// the manifest, or what an earlier attempt of this run kept.
    plan: Option<Plan>,
    /// Reserved name, given back if the transfer is not finished.
    name: Option<String>,
    part: Option<PartFile>,
    /// The body, when the context keeps bodies in memory instead of a part file.
    memory: Option<Vec<u8>>,
    /// Bytes written through, when the context streams bodies (`-O -`).
    streamed: Option<u64>,
    /// `--compressed`: the body's decoder, and the encoded bytes it was fed
    /// (what the Content-Length counts).
    decoder: Option<Decoder>,
    encoded: u64,
    encoded_length: Option<u64>,
    expected: Option<u64>,
    hasher: Digests,
    head: Head,
    /// Whether the first bytes were checked against `--accept` (or need not be).
    sniffed: bool,
    /// The body's first bytes, gathered until [`SNIFF_BYTES`] are in, however
    /// the server splits them, so a body sent a byte at a time is judged the
    /// same as one sent whole.
    first_bytes: Vec<u8>,
    /// This transfer's id with the progress sink, once the body started.
    progress: Option<u64>,
    /// When `--max-time` runs out for this attempt.
    deadline: Option<Instant>,
    /// `--speed-limit`: the current measuring window (its start, bytes in it)
    /// and since when the transfer has been below the limit.
    speed_window: (Instant, u64),
    slow_since: Option<Instant>,
    /// `--limit-rate-per-transfer`: this attempt's own pace.
    own_pace: Option<Pace>,
    /// Body bytes this attempt received, kept or not: what the live view counts.
    arrived: u64,
    /// Whether the server's answer made this attempt write the file from its
    /// first byte (so no byte of an earlier run survives in it).
    started_over: bool,
    /// The manifest's `started` record of a fresh download, held back until a
    /// write that does not end the body: a body that comes whole in its first
    /// chunk (most small files) gets only its `saved` record, one append
    /// instead of two. Its part could not be resumed anyway: it holds nothing
    /// until it holds everything.
    unrecorded_start: Option<Entry>,
    /// For a request of one piece of a split file: the range it asks for and
    /// the validator it must come from.
    piece: Option<PieceRequest>,
    /// Whether this attempt's body came in pieces and left complete ranges
    /// in its part (a resume keeps them, even with no complete prefix).
    pieces_kept: bool,
    /// Fetch the body on this one connection, whatever `--split` says: an
    /// earlier attempt found the server's ranges wrong.
    one_connection: bool,
}

/// The range `[start, end)` a piece's request asks for, if the file is still
/// the version `validator` names (`If-Range`).
#[derive(Debug, Clone)]
struct PieceRequest {
    start: u64,
    end: u64,
    validator: String,
}

/// Where a split download starts (see [`super::split`]): the part's record of
/// complete ranges and the validator every piece must come from.
pub struct PiecesStart {
    pub ranges: Ranges,
    /// Where the first response's body begins.
    pub offset: u64,
}

/// The span over which `--speed-limit` measures: curl's, one second.
const SPEED_WINDOW: Duration = Duration::from_secs(1);

impl<'a> Transfer<'a> {
    /// An attempt at `job` from its source `url` (its own, or a mirror's).
    pub fn new(job: &'a Job, context: &'a Context, plan: Option<Plan>, url: &url::Url) -> Self {
        Transfer {
            job,
            url: url.clone(),
            asked: url.clone(),
            hops: 0,
            context,
            plan,
            name: None,
            part: None,
            memory: None,
            streamed: None,
            decoder: None,
            encoded: 0,
            encoded_length: None,
            expected: None,
            hasher: Digests::new(job.checksum.as_ref()),
            head: Head::default(),
            sniffed: context.settings.acceptance.accept.is_empty(),
            first_bytes: Vec::new(),
            progress: None,
            deadline: context
                .settings
                .timeouts
                .max_time
                .map(|max_time| Instant::now() + max_time),
            speed_window: (Instant::now(), 0),
            slow_since: None,
            own_pace: context.settings.rates.per_transfer.map(Pace::new),
            arrived: 0,
            started_over: false,
            unrecorded_start: None,
            piece: None,
            pieces_kept: false,
            one_connection: false,
        }
    }

    /// This attempt fetches the body on one connection, whatever `--split`
    /// says (see [`Transfer::ranges_failed_split`]).
    pub fn on_one_connection(mut self) -> Self {
        self.one_connection = true;
        self
    }

    /// Whether this attempt split its body and failed because the server
    /// answered a range with another (a whole-file 200, another
    /// Content-Range): the next one should not split again. aria2 falls back
    /// to one connection the same way.
    pub fn ranges_failed_split(&self, error: &DownloadError) -> bool {
        self.pieces_kept && matches!(error, DownloadError::RangeMismatch)
    }

    /// A request for the piece `[start, end)` of `job`'s file from `url`,
    /// valid only while the file is the version `validator` names, and only
    /// until the download's `deadline` (`--max-time` counts the whole file).
    /// It has no part or name of its own: its bytes go to the download's.
    pub fn for_piece(
        job: &'a Job,
        context: &'a Context,
        url: &url::Url,
        (start, end): (u64, u64),
        validator: &str,
        deadline: Option<Instant>,
    ) -> Self {
        let mut transfer = Transfer::new(job, context, None, url);
        transfer.piece = Some(PieceRequest {
            start,
            end,
            validator: validator.to_string(),
        });
        transfer.deadline = deadline;
        transfer
    }

    /// When `--max-time` runs out for this attempt.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The job, its context and the source this attempt asked first: what
    /// the connections of a split download share.
    pub fn sharing(&self) -> (&'a Job, &'a Context, url::Url) {
        (self.job, self.context, self.asked.clone())
    }

    /// Body bytes this attempt received.
    pub fn arrived(&self) -> u64 {
        self.arrived
    }

    /// Whether this attempt wrote the file from its first byte.
    pub fn started_over(&self) -> bool {
        self.started_over
    }

    /// After `bytes` arrived: how long to wait before reading on, for
    /// `--limit-rate` (the run's pace) and `--limit-rate-per-transfer` (this
    /// transfer's), never past `--max-time`.
    pub fn pause(&self, bytes: usize) -> Duration {
        let bytes = bytes as u64;
        let shared = self.context.pace.as_ref().map(|pace| pace.take(bytes));
        let own = self.own_pace.as_ref().map(|pace| pace.take(bytes));
        let wait = shared.max(own).unwrap_or_default();
        match self.time_left() {
            Some(left) => wait.min(left),
            None => wait,
        }
    }

    /// A read buffer that keeps a rate-limited transfer smooth: about an
    /// eighth of a second of the slowest pace, between 1 KiB and 64 KiB.
    pub fn read_size(&self) -> usize {
        const LARGEST: u64 = 64 * 1024;
        let slowest = [
            self.context
                .pace
                .as_ref()
                .map(|pace| pace.bytes_per_second()),
            self.own_pace.as_ref().map(Pace::bytes_per_second),
        ]
        .into_iter()
        .flatten()
        .min();
        slowest.map_or(LARGEST, |rate| (rate / 8).clamp(1024, LARGEST)) as usize
    }

    /// How long the next request may take, by `--max-time` (`None`: no limit).
    /// Zero past the deadline: the clients then fail at once.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// A client's error, as the user should read it: a timeout at or past the
    /// deadline is `--max-time`, whatever the client called it; a body that
    /// ended early says how short it was.
    pub fn network_error(&self, error: DownloadError) -> DownloadError {
        if let Some(max_time) = self.settings().timeouts.max_time
            && self.time_left() == Some(Duration::ZERO)
            && matches!(
                error,
                DownloadError::TimedOut { .. } | DownloadError::Network(_)
            )
        {
            return DownloadError::MaxTime {
                millis: max_time.as_millis() as u64,
            };
        }
        // No connection before a response: through a proxy, it is the
        // proxy that could not be reached, as curl says.
        if matches!(
            error,
            DownloadError::ConnectionRefused | DownloadError::Resolve
        ) && self.part.is_none()
            && self.memory.is_none()
            && let Some(proxy) = self.settings().proxies.for_url(&self.url)
        {
            return DownloadError::Proxy {
                proxy: crate::redact::url_text(proxy.as_str()).into_owned(),
                failure: Box::new(error),
            };
        }
        // A body that stops for --speed-time is below any --speed-limit: the
        // read timeout was shortened to say so (see `Timeouts::read`).
        let settings = self.settings();
        if let (DownloadError::TimedOut { .. }, Some(limit), true) = (
            &error,
            settings.timeouts.speed_limit,
            (self.part.is_some() || self.memory.is_some())
                && settings.timeouts.speed_time < settings.timeouts.idle,
        ) {
            return DownloadError::TooSlow {
                limit,
                millis: settings.timeouts.speed_time.as_millis() as u64,
            };
        }
        self.body_error(error)
    }

    /// The URL this transfer asks for.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Keeps the cookies a response to [`Transfer::url`] sets (its
    /// `Set-Cookie` values), before [`Transfer::follow`] moves on: a login
    /// redirect's cookie goes with the request it leads to.
    pub fn keep_cookies(&self, values: &[String]) {
        self.context.logins.keep(&self.url, values);
    }

    /// Follows a redirect, when `status` with `location` is one: the next request
    /// goes where it leads. Only `http` and `https` are followed, at most
    /// `MAX_REDIRECTS` times; anything else ends the transfer with a final
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

    /// Whether the body may come in pieces on several connections
    /// (`--split`), and from where: the response was the whole file or the
    /// rest of a part (200, or 206 to a resume), to a part file, not encoded,
    /// from a server that takes ranges (`Accept-Ranges: bytes`, or a 206)
    /// with a validator for `If-Range`, and more is missing than two pieces
    /// of `--min-split-size`. Anything else is fetched whole on this
    /// connection, as without `--split`. When it may, the part is named on
    /// disk, its start recorded and its ranges saved: from here a kill
    /// leaves what `-c` resumes.
    pub fn pieces(&mut self) -> Result<Option<PiecesStart>, DownloadError> {
        let settings = self.settings();
        if settings.split < 2
            || self.one_connection
            || settings.compressed
            || self.decoder.is_some()
            || !matches!(self.context.body, BodySink::PartFile)
            || !matches!(self.head.status, 200 | 206)
        {
            return Ok(None);
        }
        let (Some(total), Some(part)) = (self.expected, self.part.as_ref()) else {
            return Ok(None);
        };
        let takes_ranges = self.head.status == 206 || self.head.accept_ranges_is("bytes");
        let Some(validator) = self.head.resume_validator().filter(|_| takes_ranges) else {
            return Ok(None);
        };
        let offset = part.written();
        let ranges = match Ranges::load(&part.part_path()) {
            Some(ranges)
                if self.head.status == 206
                    && ranges.validator == validator
                    && ranges.total == total =>
            {
                ranges
            }
            _ => {
                let mut ranges = Ranges::new(validator, total);
                ranges.add(0, offset);
                ranges
            }
        };
        if ranges.total - ranges.complete() < 2 * settings.min_split_size.max(1) {
            return Ok(None);
        }
        let folder = &self.context.settings.output_dir;
        let part = self.part.as_mut().expect("checked above");
        part.name_on_disk()
            .map_err(|error| part_write_error(part, folder, error))?;
        ranges.save(&part.part_path()).map_err(|error| {
            DownloadError::writing(&Ranges::path_for(&part.part_path()), folder, error)
        })?;
        self.record_start()?;
        self.pieces_kept = true;
        Ok(Some(PiecesStart { ranges, offset }))
    }

    /// Bytes of a piece, written at `offset` of the part and counted as
    /// this attempt's, under the limits of the whole file (`--max-time`,
    /// `--speed-limit`).
    pub fn write_piece(&mut self, offset: u64, bytes: &[u8]) -> Result<(), DownloadError> {
        self.arrived += bytes.len() as u64;
        let folder = &self.context.settings.output_dir;
        let part = self.part.as_ref().expect("pieces() comes first");
        part.write_at(offset, bytes)
            .map_err(|error| part_write_error(part, folder, error))?;
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.advanced(id, bytes.len() as u64);
        }
        self.check_pace(bytes.len() as u64)
    }

    /// Saves the record of the part's complete ranges.
    pub fn save_ranges(&self, ranges: &Ranges) -> Result<(), DownloadError> {
        let Some(part) = self.part.as_ref() else {
            return Ok(());
        };
        ranges.save(&part.part_path()).map_err(|error| {
            DownloadError::writing(
                &Ranges::path_for(&part.part_path()),
                &self.context.settings.output_dir,
                error,
            )
        })
    }

    /// A hasher that follows the complete prefix of this download's part
    /// while its pieces arrive, and gathers the first bytes `--accept`
    /// judges. It goes on from this transfer's digests, which cover the
    /// part's first `written` bytes (what [`Transfer::head`] read back of a
    /// resumed part, then each byte written after it, as [`Transfer::finish`]
    /// relies on), so a resumed prefix is read once. `None` without a part.
    pub fn prefix_hasher(&mut self) -> Option<PrefixHasher> {
        let part = self.part.as_ref()?;
        let sniff = match self.sniffed {
            true => 0,
            false => SNIFF_BYTES,
        };
        let digests = std::mem::replace(&mut self.hasher, Digests::new(None));
        Some(PrefixHasher::start(
            part.part_path(),
            digests,
            part.written(),
            sniff,
        ))
    }

    /// The pieces are over: all in (the part is the whole file, whose
    /// `hasher` hashes what it has not yet reached, and [`Transfer::finish`]
    /// follows), or not (the part counts its complete prefix, and its record
    /// says the rest; the hasher is dropped).
    pub fn end_pieces(
        &mut self,
        ranges: &Ranges,
        hasher: Option<PrefixHasher>,
    ) -> Result<(), DownloadError> {
        let whole = ranges.is_whole();
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        if !whole {
            drop(hasher);
            part.set_written(ranges.prefix());
            return self.save_ranges(ranges);
        }
        part.set_written(ranges.total);
        let path = part.part_path();
        let hasher = hasher.unwrap_or_else(|| {
            PrefixHasher::start(
                path.clone(),
                Digests::new(self.job.checksum.as_ref()),
                0,
                SNIFF_BYTES,
            )
        });
        let hashed = hasher.finish(ranges.total).map_err(|error| {
            DownloadError::writing(&path, &self.context.settings.output_dir, error)
        })?;
        self.hasher = hashed.digests;
        if !self.sniffed {
            self.sniffed = true;
            self.check_first_bytes(&hashed.first_bytes)?;
        }
        Ok(())
    }

    /// The response head, once [`Transfer::head`] took it.
    pub fn response_head(&self) -> &Head {
        &self.head
    }

    fn resume(&self) -> Option<&Resume> {
        self.plan.as_ref().and_then(|plan| plan.resume.as_ref())
    }

    fn settings(&self) -> &Settings {
        &self.context.settings
    }

    fn directory(&self) -> &Path {
        self.context.folder.path()
    }

    /// Headers this attempt sends: a Range from where the part file ends, valid only
    /// if the file is unchanged (`If-Range`), so a changed file comes back whole.
    /// With them, the `-H` headers: credentials only while the request stays on
    /// the host asked for (a redirect elsewhere does not get them, as in curl).
    /// The jar's cookies go by their own domain and path rules.
    pub fn request_headers(&self) -> Vec<(&str, String)> {
        let same_host = self.url.host_str() == self.job.url.host_str()
            && self.url.port_or_known_default() == self.job.url.port_or_known_default();
        let mut headers: Vec<(&str, String)> = self
            .settings()
            .headers
            .iter()
            .filter(|(name, _)| same_host || !is_credential(name))
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        // Logins: the jar's cookies for where the request goes now (the
        // jar's own rules decide, redirect or not), and the .netrc entry of
        // the host asked for, never sent to another.
        // One Cookie header (RFC 6265, 5.4): an -H Cookie gets the jar's after it.
        if let Some(cookies) = self.context.logins.cookie_header(&self.url) {
            match headers
                .iter_mut()
                .find(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            {
                Some((_, given)) => *given = format!("{given}; {cookies}"),
                None => headers.push(("cookie", cookies)),
            }
        }
        let authorized = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if same_host
            && !authorized
            && let Some(host) = self.url.host_str()
            && let Some(basic) = self.context.logins.basic(host)
        {
            headers.push(("authorization", basic));
        }
        if let Some(piece) = &self.piece {
            let last = piece.end.saturating_sub(1);
            headers.push(("range", format!("bytes={}-{last}", piece.start)));
            headers.push(("if-range", piece.validator.clone()));
            return headers;
        }
        if let Some(resume) = self.resume() {
            headers.push(("range", format!("bytes={}-", resume.offset)));
            headers.push(("if-range", resume.validator.clone()));
        }
        // A range counts the bytes of one encoding: a resume asks for the
        // identity the part holds.
        if self.settings().compressed && self.resume().is_none() {
            headers.push(("accept-encoding", encoding::ACCEPTED.to_string()));
        }
        if let Some(conditional) = self.conditional() {
            if let Some(etag) = &conditional.etag {
                headers.push(("if-none-match", etag.clone()));
            }
            // As wget's -N: the server's own date when it gave one, else the
            // file's time.
            let since = conditional.last_modified.clone().or_else(|| {
                let name = &self.plan.as_ref()?.name;
                let modified = std::fs::metadata(self.directory().join(name))
                    .and_then(|metadata| metadata.modified())
                    .ok()?;
                Some(httpdate::fmt_http_date(modified))
            });
            if let Some(since) = since {
                headers.push(("if-modified-since", since));
            }
        }
        headers
    }

    fn conditional(&self) -> Option<&Conditional> {
        self.plan
            .as_ref()
            .and_then(|plan| plan.conditional.as_ref())
    }

    /// The response head: an error status or a refused type ends the transfer
    /// before any byte is written; otherwise the name is settled and the `.part`
    /// opened (appended to, when the server agreed to resume). True when the
    /// body is wanted; false when the part was already whole (a 416 that says
    /// so), and [`Transfer::finish`] follows at once.
    pub fn head(&mut self, head: Head) -> Result<bool, DownloadError> {
        if head.status == 304 && self.conditional().is_some() {
            return Err(DownloadError::NotModified);
        }
        let already_whole = self.already_whole(&head);
        if head.status == 416 && self.resume().is_some() && !already_whole {
            // The part reaches past the end of the file the server has: it is
            // not a prefix of it. The retry starts over.
            return Err(DownloadError::RangeMismatch);
        }
        if !(200..300).contains(&head.status) && !already_whole {
            return Err(http_error(head.status, head.retry_after.as_deref()));
        }
        let resumed_from = match (self.resume(), head.status) {
            (Some(resume), 416) if already_whole => Some(resume.offset),
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
        self.started_over = resumed_from.is_none();
        self.expected = match resumed_from {
            Some(offset) if already_whole => Some(offset),
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
        if self.settings().compressed && resumed_from.is_none() {
            self.decoder = Decoder::for_encoding(head.content_encoding.as_deref())
                .map_err(DownloadError::Decode)?;
            if self.decoder.is_some() {
                // The length is of the encoded body; the decoded one is known
                // only at its end, where the limits count it.
                self.encoded_length = self.expected.take();
            }
        }
        let settings = self.settings();
        if let (Some(limit), Some(expected)) = (settings.acceptance.max_size, self.expected)
            && expected > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        if let Some(content_type) = head.content_type.as_deref()
            && !settings.acceptance.accept.is_empty()
            && !mime::content_type_matches(content_type, &settings.acceptance.accept)
        {
            return Err(DownloadError::NotAccepted {
                found: content_type.to_string(),
            });
        }
        if let Some(directive) = robots_refusal(&head.robots, &settings.acceptance.refused_robots) {
            return Err(DownloadError::OptedOut { directive });
        }
        if !matches!(self.context.body, BodySink::PartFile) {
            // Nothing named, nothing on disk: the caller takes the bytes.
            match self.context.body {
                BodySink::Stream(_) => self.streamed = Some(0),
                _ => {
                    let capacity = self
                        .expected
                        .unwrap_or(0)
                        .min(settings.acceptance.max_size.unwrap_or(0));
                    self.memory = Some(Vec::with_capacity(capacity as usize));
                }
            }
            if let Some(sink) = &self.context.progress {
                let label = self.job.name.as_deref().unwrap_or(self.job.url.as_str());
                self.progress = Some(sink.started(label, self.expected));
            }
            self.head = head;
            return Ok(true);
        }
        let (name, part) = match &self.plan {
            Some(plan) => {
                // The batch claimed this name for the job: its own part file, reused.
                self.name = Some(plan.name.clone());
                let folder = &self.context.folder;
                let keep = resumed_from.unwrap_or(0);
                // A part fetched in pieces keeps its complete ranges past its
                // prefix, for as long as they are the version resumed.
                let pieces = self.resume().is_some_and(|resume| {
                    resumed_from.is_some()
                        && Ranges::load(&folder.path().join(format!(
                            "{}{}",
                            plan.name,
                            names::PART_SUFFIX
                        )))
                        .is_some_and(|ranges| ranges.validator == resume.validator)
                });
                let part = match pieces {
                    true => PartFile::reopen_pieces(folder, &plan.name, keep),
                    false => PartFile::reopen(folder, &plan.name, keep),
                }
                .map_err(|error| {
                    self.write_error(&format!("{}{}", plan.name, names::PART_SUFFIX), error)
                })?;
                if resumed_from.is_none() {
                    // Started over: no range of the old part counts.
                    Ranges::remove(&part.part_path());
                }
                (
                    plan.name.clone(),
                    if plan.replace { part.replacing() } else { part },
                )
            }
            None => {
                let suggested = if settings.content_disposition {
                    head.content_disposition
                        .as_deref()
                        .and_then(names::disposition_filename)
                } else {
                    None
                };
                let desired = settings.layout.place(
                    &self.job.url,
                    &names::desired_name_with(
                        &self.job.url,
                        self.job.name.as_deref(),
                        suggested.as_deref(),
                        head.content_type.as_deref(),
                    ),
                );
                // The job's rank is its place among the URLs of one name: a
                // name the server gave is not that one, and is numbered only
                // when taken (three `download?id=N` get a.txt, b.txt, c.txt).
                let rank = self.job.rank.filter(|_| suggested.is_none());
                let name = self
                    .context
                    .names
                    .reserve(&desired, rank)
                    .map_err(|error| self.write_error(&desired, error))?;
                self.name = Some(name.clone());
                let part = PartFile::create(&self.context.folder, &name).map_err(|error| {
                    self.write_error(&format!("{name}{}", names::PART_SUFFIX), error)
                })?;
                (name, part)
            }
        };
        if let Some(offset) = resumed_from {
            // The hash covers the whole file: read back the bytes kept.
            File::open(part.part_path())
                .and_then(|kept| {
                    manifest::hash_reader(kept.take(offset), |bytes| self.hasher.update(bytes))
                })
                .map_err(|error| self.write_error(&name, error))?;
            self.sniffed = true;
        }
        if self.context.manifest.is_some() {
            let entry = Entry::started(
                &self.job.url,
                &name,
                head.etag.clone(),
                head.last_modified.clone(),
            );
            // A planned name or a resumed part is recorded before any byte: a
            // kill then leaves what `-c` needs. A fresh one waits for its body.
            match (&self.plan, resumed_from) {
                (None, None) => self.unrecorded_start = Some(entry),
                _ => self.record(&entry)?,
            }
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
        Ok(!already_whole)
    }

    /// Whether a head answers a resume with "416: nothing past your end", and the
    /// file's size equals the part's: the part is the whole file (a run stopped
    /// between its last byte and its rename), finished as wget does. A 416 that
    /// names another size, or another version's ETag, is an error as usual.
    fn already_whole(&self, head: &Head) -> bool {
        let Some(resume) = self.resume() else {
            return false;
        };
        let total = head
            .content_range
            .as_deref()
            .and_then(parse_unsatisfied_range);
        let same_version = match (&head.etag, resume.validator.starts_with('"')) {
            (Some(etag), true) => *etag == resume.validator,
            _ => true,
        };
        head.status == 416 && total == Some(resume.offset) && same_version
    }

    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        let Some(decoder) = self.decoder.as_mut() else {
            return self.take(bytes);
        };
        self.encoded += bytes.len() as u64;
        let decoded = decoder.feed(bytes).map_err(decode_error)?;
        self.take(&decoded)
    }

    /// Body bytes as they are saved (decoded, with `--compressed`).
    fn take(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        self.arrived += bytes.len() as u64;
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
        let limit = self.settings().acceptance.max_size;
        let kept = match (self.memory.as_mut(), self.streamed.as_mut()) {
            (Some(memory), _) => {
                memory.extend_from_slice(bytes);
                Some(memory.len() as u64)
            }
            (None, Some(streamed)) => {
                if let BodySink::Stream(writer) = &self.context.body {
                    // Flushed as it comes: the reader gets each chunk now, not
                    // when a buffer fills (stdout holds back up to a line).
                    let mut writer = crate::lock(writer);
                    writer
                        .write_all(bytes)
                        .and_then(|_| writer.flush())
                        .map_err(stream_error)?;
                }
                *streamed += bytes.len() as u64;
                Some(*streamed)
            }
            (None, None) => None,
        };
        if let Some(kept) = kept {
            self.hasher.update(bytes);
            if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
                sink.advanced(id, bytes.len() as u64);
            }
            if let Some(limit) = limit
                && kept > limit
            {
                return Err(DownloadError::TooLarge { limit });
            }
            // A body held in memory or streamed trickles like one on disk:
            // the same limits.
            return self.check_pace(bytes.len() as u64);
        }
        let folder = &self.context.settings.output_dir;
        let part = self.part.as_mut().expect("head() comes before the body");
        if self.expected != Some(part.written() + bytes.len() as u64) {
            // Worth resuming from now on: named, then recorded as this batch's.
            part.name_on_disk()
                .map_err(|error| part_write_error(part, folder, error))?;
            self.record_start()?;
        }
        let folder = &self.context.settings.output_dir;
        let part = self.part.as_mut().expect("head() comes before the body");
        part.write(bytes)
            .map_err(|error| part_write_error(part, folder, error))?;
        self.hasher.update(bytes);
        if let (Some(sink), Some(id)) = (&self.context.progress, self.progress) {
            sink.advanced(id, bytes.len() as u64);
        }
        if let Some(limit) = limit
            && part.written() > limit
        {
            return Err(DownloadError::TooLarge { limit });
        }
        self.check_pace(bytes.len() as u64)
    }

    /// `--max-time` and `--speed-limit`, as bytes arrive. The clients' own
    /// timeouts cut a body that stops; these cut one that trickles.
    fn check_pace(&mut self, bytes: u64) -> Result<(), DownloadError> {
        let settings = &self.context.settings;
        if let Some(max_time) = settings.timeouts.max_time
            && self.time_left() == Some(Duration::ZERO)
        {
            return Err(DownloadError::MaxTime {
                millis: max_time.as_millis() as u64,
            });
        }
        let Some(limit) = settings.timeouts.speed_limit else {
            return Ok(());
        };
        let now = Instant::now();
        let (window_start, window_bytes) = &mut self.speed_window;
        *window_bytes += bytes;
        let span = now.duration_since(*window_start);
        if span < SPEED_WINDOW {
            return Ok(());
        }
        // Below the limit over a whole window: slow since that window began.
        if (*window_bytes as f64) < limit as f64 * span.as_secs_f64() {
            let since = *self.slow_since.get_or_insert(*window_start);
            if now.duration_since(since) >= settings.timeouts.speed_time {
                return Err(DownloadError::TooSlow {
                    limit,
                    millis: settings.timeouts.speed_time.as_millis() as u64,
                });
            }
        } else {
            self.slow_since = None;
        }
        self.speed_window = (now, 0);
        Ok(())
    }

    /// With `--accept`, the first bytes must not contradict it: a page of HTML
    /// served as `image/jpeg` is refused, and so is a body of unknown type that
    /// came without a Content-Type.
    fn check_first_bytes(&self, bytes: &[u8]) -> Result<(), DownloadError> {
        let accept = &self.settings().acceptance.accept;
        if accept.is_empty() {
            return Ok(());
        }
        match mime::sniff(bytes) {
            Some(found) if !mime::content_type_matches(found, accept) => {
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
        if let Some(streamed) = self.streamed {
            return streamed;
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
    pub fn finish(&mut self) -> Result<Saved, DownloadError> {
        if let Some(decoder) = self.decoder.take() {
            if let Some(expected) = self.encoded_length
                && self.encoded != expected
            {
                return Err(DownloadError::Truncated {
                    received: self.encoded,
                    expected,
                });
            }
            let tail = decoder.finish().map_err(decode_error)?;
            self.take(&tail)?;
        }
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
                sha256: self.finish_digests()?,
                reply: Some(self.reply()),
                body: Some(Box::new(super::outcome::Body(body))),
                resumed_from: None,
            });
        }
        if let Some(received) = self.streamed {
            if let Some(expected) = self.expected
                && received != expected
            {
                return Err(DownloadError::Truncated { received, expected });
            }
            if let BodySink::Stream(writer) = &self.context.body {
                crate::lock(writer).flush().map_err(stream_error)?;
            }
            return Ok(Saved {
                name: "-".to_string(),
                bytes: received,
                sha256: self.finish_digests()?,
                reply: Some(self.reply()),
                body: None,
                resumed_from: None,
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
        // A file whose digest is not the one asked for never takes its name;
        // its part goes with it.
        let sha256 = self.finish_digests()?;
        if self.settings().server_timestamps
            && let Some(time) = self
                .head
                .last_modified
                .as_deref()
                .and_then(|text| httpdate::parse_http_date(text).ok())
        {
            // A file the server cannot date keeps the time it was written.
            part.set_modified(time)
                .map_err(|error| self.write_error(&name, error))?;
        }
        part.commit()
            .map_err(|error| self.write_error(&name, error))?;
        // The name now belongs to the file on disk; keep it reserved.
        self.name = None;
        if self.context.manifest.is_some() {
            self.unrecorded_start = None;
            let entry = Entry::saved(&self.job.url, &name, received, &sha256)
                .with_validators(self.head.etag.clone(), self.head.last_modified.clone());
            if let Err(error) = self.record(&entry) {
                // Unrecorded (a full disk), the file would pass for another
                // URL's at the next run, which would name around it: it goes,
                // and that run downloads it again under its name.
                let _ = std::fs::remove_file(self.directory().join(&name));
                return Err(error);
            }
        }
        Ok(Saved {
            name,
            bytes: received,
            sha256,
            reply: Some(self.reply()),
            body: None,
            resumed_from: None,
        })
    }

    /// What the response said of its body, for the outcome: taken from the
    /// head, which is done with once the body is whole.
    fn reply(&mut self) -> Reply {
        Reply {
            status: self.head.status,
            content_type: self.head.content_type.take(),
            final_url: self.head.final_url.take(),
        }
    }

    /// The body's SHA-256, once it is whole; a failure when the job's
    /// checksum does not match.
    fn finish_digests(&mut self) -> Result<String, DownloadError> {
        let digests = std::mem::replace(&mut self.hasher, Digests::new(None));
        let checksum = self.job.checksum.as_ref();
        let (sha256, verdict) = digests.finish(checksum);
        match (verdict, checksum) {
            (Err(found), Some(checksum)) => Err(DownloadError::ChecksumMismatch {
                algorithm: checksum.algorithm.name().to_string(),
                expected: checksum.hex.clone(),
                found,
            }),
            _ => Ok(sha256),
        }
    }

    /// After a failed attempt, what the next one (or `--continue`) continues.
    /// When the bytes written can be continued (the failure was transient, the
    /// server gave a validator and did not refuse ranges), the part is kept and
    /// the plan resumes from its end: a failed attempt never deletes a prefix a
    /// resume can use. A name this job holds stays its own. Otherwise the part
    /// is removed when the transfer is dropped.
    pub fn next_plan(&mut self, error: &DownloadError) -> Option<Plan> {
        let Some(part) = self.part.take() else {
            // No body began: the plan's part is as it was, unless the server
            // showed that its bytes belong to another version.
            return self.plan.take().map(|plan| match error {
                DownloadError::RangeMismatch => Plan {
                    resume: None,
                    ..plan
                },
                // A 304 is an outcome, never retried; a body that began was a
                // new copy: later attempts fetch it whole.
                _ => plan,
            });
        };
        let refuses_ranges = self.head.accept_ranges_is("none");
        let validator = self.head.resume_validator();
        let offset = part.written();
        let kept = offset > 0 || self.pieces_kept;
        let replace = self.plan.as_ref().is_some_and(|plan| plan.replace);
        // A decoded body's bytes are not the ranges of any one encoding.
        let encoded = self.decoder.is_some() || self.encoded > 0;
        match validator {
            Some(validator) if error.is_transient() && !refuses_ranges && kept && !encoded => {
                // Kept for a resume: what a later run's `-c` needs is recorded.
                if !part.keep() {
                    return None;
                }
                if let Err(error) = self.record_start() {
                    tracing::debug!(url = %self.job.url, %error, "part not recorded");
                }
                let name = self.name.take()?;
                tracing::debug!(url = %self.job.url, name, offset, "part kept for a resume");
                Some(Plan {
                    name,
                    resume: Some(Resume { offset, validator }),
                    replace,
                    conditional: None,
                })
            }
            // The part goes; a name the batch claimed for this job stays its own.
            _ if self.plan.is_some() => self.name.take().map(|name| Plan {
                name,
                resume: None,
                replace,
                conditional: None,
            }),
            _ => None,
        }
    }

    fn record(&self, entry: &Entry) -> Result<(), DownloadError> {
        match &self.context.manifest {
            Some(manifest) => manifest
                .append(entry)
                .map_err(|error| self.write_error(manifest::MANIFEST_NAME, error)),
            None => Ok(()),
        }
    }

    /// Writes the held-back `started` record, if any.
    fn record_start(&mut self) -> Result<(), DownloadError> {
        match self.unrecorded_start.take() {
            Some(entry) => self.record(&entry),
            None => Ok(()),
        }
    }

    fn write_error(&self, name: &str, error: io::Error) -> DownloadError {
        DownloadError::writing(
            &self.directory().join(name),
            &self.context.settings.output_dir,
            error,
        )
    }
}

/// A failed write to `part`, naming its path, in the output folder `folder`.
fn part_write_error(part: &PartFile, folder: &Path, error: io::Error) -> DownloadError {
    DownloadError::writing(&part.part_path(), folder, error)
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
